/*
 * fuzz_store.c - libFuzzer target for loading: every record kind a
 * snapshot or log segment holds ('M' 'S' 'G' 'V' 'T' 'E' and logged 'A'
 * commands) applied to a fresh in-process server, as fleetd does at start.
 *
 * Checksums would stop the fuzzer at the frame, and the frame reader has
 * its own target (fuzz_log), so here the input is a plain sequence of
 * payloads, each preceded by a one-byte length (0 = a 2-byte length
 * follows). A malformed record must be refused with -EINVAL, never
 * crash, leak or leave a state that later records trip over.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/server.h"
#include "fleet/fleet.h"
#include "store/snapshot.h"

static size_t next_len(const uint8_t *d, size_t n, size_t *pos)
{
    if (*pos >= n) return 0;
    size_t len = d[(*pos)++];
    if (len == 0 && *pos + 2 <= n) {
        len = (size_t)d[*pos] | (size_t)d[*pos + 1] << 8;
        *pos += 2;
    }
    return len;
}

static int count_vehicle(void *ud, const fl_vehicle *v)
{
    (void)v;
    (*(size_t *)ud)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fl_config cfg;
    fl_config_defaults(&cfg);
    fl_server srv;
    fl_server_init(&srv, &cfg, 1700000000000ULL, 42);
    srv.persist.replaying = 1;
    fl_apply_state st;
    memset(&st, 0, sizeof(st));
    st.now_ms = 1700000000000ULL;
    size_t pos = 0;
    for (int n = 0; n < 512 && pos < size; n++) {
        size_t len = next_len(data, size, &pos);
        if (len == 0 || len > size - pos) break;
        /* A copy of exactly len bytes: ASan catches any over-read. */
        uint8_t *rec = malloc(len);
        memcpy(rec, data + pos, len);
        (void)fl_store_apply(&srv, rec, len, &st);
        free(rec);
        pos += len;
    }
    /* Whatever was applied must be a consistent fleet. */
    size_t walked = 0;
    (void)fl_fleet_each_vehicle(srv.fleet, count_vehicle, &walked);
    if (walked != fl_fleet_get_stats(srv.fleet)->vehicles) abort();
    fl_server_free(&srv);
    return 0;
}
