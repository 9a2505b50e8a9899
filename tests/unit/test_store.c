/*
 * test_store.c - snapshots and replay without files: a server built by
 * commands is written as records, the records are applied to a new server,
 * and the new server must write exactly the same records (so every field of
 * every vehicle, trip and key survived). Also: a replayed log of commands
 * rebuilds the same state as running them, and damaged records are refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cmd/server.h"
#include "fleet/fleet.h"
#include "store/log.h"
#include "store/snapshot.h"

#define NOW 1700000000000ULL

static void run(fl_server *s, const char *line)
{
    char buf[512];
    const char *argv[32];
    size_t lens[32];
    int argc = 0;
    snprintf(buf, sizeof(buf), "%s", line);
    for (char *tok = strtok(buf, " "); tok && argc < 32; tok = strtok(NULL, " ")) {
        argv[argc] = tok;
        lens[argc++] = strlen(tok);
    }
    fl_buf out = {0};
    fl_reply reply = {&out, 2, 0};
    fl_session sess = {.proto = 2, .authenticated = 1};
    fl_cmd_ctx ctx = {argc, argv, lens, &reply, &sess, s, NOW, NOW * 1000};
    (void)fl_cmd_dispatch(&ctx);
    if (reply.errors) fail_msg("%s -> %.*s", line, (int)out.len, out.data);
    fl_buf_free(&out);
}

typedef struct records {
    fl_buf all;                 /* framed, as in a file */
    size_t n;
} records;

static int collect(void *ud, const void *p, size_t len)
{
    records *r = ud;
    assert_int_equal(fl_log_frame(&r->all, p, len), 0);
    r->n++;
    return 0;
}

static void build_state(fl_server *s)
{
    run(s, "GEOADD places 13.4 52.5 berlin 2.35 48.85 paris");
    run(s, "SET greeting hello");
    run(s, "GEOSEARCHSTORE near places FROMLONLAT 13 52 BYRADIUS 2000 km STOREDIST");
    char line[256];
    for (int i = 0; i < 300; i++) {
        snprintf(line, sizeof(line), "VEHICLE.UPDATE v%d %.6f %.6f TS %llu FLEET f%d STATUS %s SPEED %d",
                 i, -74.0 + i * 0.0007, 40.7 + (i % 17) * 0.001,
                 (unsigned long long)(NOW - 100000), i % 4,
                 i % 3 == 0 ? "busy" : "available", i % 50);
        run(s, line);
    }
    for (int i = 0; i < 300; i += 3) {
        snprintf(line, sizeof(line), "TRIP.START v%d TS %llu", i, (unsigned long long)(NOW - 90000));
        run(s, line);
        snprintf(line, sizeof(line), "VEHICLE.UPDATE v%d %.6f 40.75 TS %llu", i,
                 -74.0 + i * 0.0007 + 0.001, (unsigned long long)(NOW - 80000));
        run(s, line);
        if (i % 2 == 0) {
            snprintf(line, sizeof(line), "TRIP.END v%d TS %llu", i, (unsigned long long)(NOW - 70000));
            run(s, line);
        }
    }
    run(s, "VEHICLE.DEL v3");
}

static void snapshot_of(const fl_server *s, records *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(fl_snapshot_write(s, collect, r), 0);
}

static void apply_all(fl_server *s, const records *r, int expect_ok)
{
    fl_apply_state st;
    memset(&st, 0, sizeof(st));
    st.now_ms = NOW;
    size_t off = 0;
    const uint8_t *p;
    size_t len;
    int failures = 0;
    s->persist.replaying = 1;
    while (fl_log_next((const uint8_t *)r->all.data, r->all.len, &off, &p, &len) == FL_LOG_OK)
        failures += fl_store_apply(s, p, len, &st) != 0;
    s->persist.replaying = 0;
    if (expect_ok) {
        assert_int_equal(failures, 0);
        assert_true(st.saw_end);
    }
}

static void test_snapshot_roundtrip(void **state)
{
    (void)state;
    fl_config cfg;
    fl_config_defaults(&cfg);
    fl_server a, b;
    fl_server_init(&a, &cfg, NOW, 7);
    fl_server_init(&b, &cfg, NOW, 7);
    build_state(&a);
    records ra, rb;
    snapshot_of(&a, &ra);
    apply_all(&b, &ra, 1);
    snapshot_of(&b, &rb);
    assert_int_equal(ra.n, rb.n);
    assert_int_equal(ra.all.len, rb.all.len);
    assert_memory_equal(ra.all.data, rb.all.data, ra.all.len);
    const fl_fleet_stats *sa = fl_fleet_get_stats(a.fleet), *sb = fl_fleet_get_stats(b.fleet);
    assert_int_equal(sa->vehicles, 299);
    assert_int_equal(sb->vehicles, 299);
    assert_int_equal(sb->trips_running, sa->trips_running);
    assert_int_equal(sb->trips_finished, sa->trips_finished);
    /* Trip numbering continues after a restore. */
    run(&b, "TRIP.START v1");
    const fl_vehicle *v1 = fl_fleet_vehicle(b.fleet, "v1", 2);
    assert_int_equal(v1->trip->id_len, 4);
    assert_memory_equal(v1->trip->id, "t101", 4);
    fl_buf_free(&ra.all);
    fl_buf_free(&rb.all);
    fl_server_free(&a);
    fl_server_free(&b);
}

static void test_damaged_records_refused(void **state)
{
    (void)state;
    fl_config cfg;
    fl_config_defaults(&cfg);
    fl_server a;
    fl_server_init(&a, &cfg, NOW, 7);
    build_state(&a);
    records ra;
    snapshot_of(&a, &ra);
    /* Every record cut short by one byte must be refused, and the
     * server must stay consistent whatever was applied before. */
    size_t off = 0;
    const uint8_t *p;
    size_t len;
    int refused = 0, total = 0;
    while (fl_log_next((const uint8_t *)ra.all.data, ra.all.len, &off, &p, &len) == FL_LOG_OK) {
        fl_server b;
        fl_server_init(&b, &cfg, NOW, 7);
        fl_apply_state st;
        memset(&st, 0, sizeof(st));
        st.now_ms = NOW;
        b.persist.replaying = 1;
        uint8_t *copy = malloc(len);
        memcpy(copy, p, len);
        refused += fl_store_apply(&b, copy, len - 1, &st) == -EINVAL;
        total++;
        free(copy);
        fl_server_free(&b);
    }
    assert_int_equal(refused, total);
    fl_buf_free(&ra.all);
    fl_server_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_damaged_records_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
