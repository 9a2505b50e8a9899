/*
 * server.c - configuration defaults and the lifetime of the server state.
 *
 * Defaults are Redis' where Redis has the same setting (maxclients 10000,
 * proto-max-bulk-len 512 MB, client-query-buffer-limit 1 GB) and tighter
 * where fleetd's own traffic makes a smaller bound safe: the output buffer
 * limit for a normal client is 64 MB so one stalled reader cannot hold
 * gigabytes of replies.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../db/db.h"

void fl_config_defaults(fl_config *c)
{
    memset(c, 0, sizeof(*c));
    c->port = 7878;
    c->http_port = 7879;
    snprintf(c->bind, sizeof(c->bind), "127.0.0.1");
    snprintf(c->dir, sizeof(c->dir), "./data");
    c->fsync = FL_FSYNC_EVERYSEC;
    c->maxclients = 10000;
    c->proto_max_bulk_len = 512LL * 1024 * 1024;
    c->max_multibulk = 1024LL * 1024;
    c->max_inline = 64 * 1024;
    c->client_output_limit = 64LL * 1024 * 1024;
    c->timeout = 0;
    c->max_query_buffer = 1024LL * 1024 * 1024;
}

int fl_server_init(fl_server *s, const fl_config *cfg, uint64_t now_ms,
                   uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->db = fl_db_new(seed);
    s->cmd_stats = fl_xcalloc(fl_commands_count, sizeof(*s->cmd_stats));
    s->start_ms = now_ms;
    s->run_id_seed = seed;
    uint64_t x = seed ^ 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 40; i++) {
        /* splitmix64 steps: enough to make run ids differ per start. */
        x += 0x9E3779B97F4A7C15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        s->run_id[i] = "0123456789abcdef"[z & 15];
    }
    s->run_id[40] = '\0';
    return 0;
}

void fl_server_free(fl_server *s)
{
    fl_db_free(s->db);
    free(s->cmd_stats);
    s->db = NULL;
    s->cmd_stats = NULL;
}
