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
#include "../fleet/fleet.h"
#include "../store/log.h"
#include "../store/wal.h"

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
    fl_fleet_config fc;
    fl_fleet_config_defaults(&fc);
    c->trip_idle_timeout = fc.trip_idle_ms / 1000;
    c->trip_jitter_m = (long long)fc.jitter_m;
    c->max_speed_kmh = (long long)fc.max_speed_kmh;
    c->max_future_ms = fc.max_future_ms;
    c->trip_max_points = fc.trip_max_points;
    c->trip_history_max = (long long)fc.trip_history_max;
    /* A restart replays the log since the last snapshot: 64 MB is about
     * 850k pings, about 1.5 s of replay. */
    c->snapshot_log_bytes = 64LL * 1024 * 1024;
    c->load_async_bytes = 32LL * 1024 * 1024;
}

static void fleet_config_of(const fl_config *c, fl_fleet_config *fc)
{
    fl_fleet_config_defaults(fc);
    fc->trip_idle_ms = c->trip_idle_timeout * 1000;
    fc->jitter_m = (double)c->trip_jitter_m;
    fc->max_speed_kmh = (double)c->max_speed_kmh;
    fc->max_future_ms = c->max_future_ms;
    fc->trip_max_points = (uint32_t)c->trip_max_points;
    fc->trip_history_max = (uint64_t)c->trip_history_max;
}

void fl_server_apply_config(fl_server *s)
{
    fl_fleet_config fc;
    fleet_config_of(&s->cfg, &fc);
    fl_fleet_configure(s->fleet, &fc);
}

void fl_cmd_log(fl_cmd_ctx *ctx, int argc, const char **argv,
                const size_t *lens)
{
    fl_persist *p = &ctx->server->persist;
    if (!p->wal || p->replaying) return;
    p->scratch.len = 0;
    fl_log_argv_encode(&p->scratch, argc, argv, lens);
    fl_wal_append(p->wal, p->scratch.data, p->scratch.len);
    p->appended++;
    if (ctx->session) ctx->session->wal_need = ctx->session->wal_own = p->appended;
}

void fl_server_log_rules(fl_server *s)
{
    static const char *const names[] = {"trip-jitter-meters", "max-speed-kmh",
                                        "trip-max-points", "trip-history-max"};
    const long long values[] = {s->cfg.trip_jitter_m, s->cfg.max_speed_kmh,
                                s->cfg.trip_max_points, s->cfg.trip_history_max};
    const char *argv[10] = {"CONFIG", "SET"};
    size_t lens[10] = {6, 3};
    char num[4][24];
    for (int i = 0; i < 4; i++) {
        argv[2 + 2 * i] = names[i];
        lens[2 + 2 * i] = strlen(names[i]);
        lens[3 + 2 * i] = fl_fmt_u64(num[i], (uint64_t)values[i]);
        argv[3 + 2 * i] = num[i];
    }
    fl_cmd_ctx ctx = {0};
    ctx.server = s;
    fl_cmd_log(&ctx, 10, argv, lens);
}

size_t fl_server_close_idle_trips(fl_server *s, uint64_t now_ms)
{
    size_t n = 0;
    const fl_trip *t;
    while ((t = fl_fleet_idle_trip(s->fleet, (int64_t)now_ms)) != NULL) {
        size_t vlen;
        const char *v = fl_trip_vehicle(t, &vlen);
        char vid[FL_FLEET_ID_MAX + 1], num[24];
        memcpy(vid, v, vlen);
        int64_t at = t->last_ms;
        size_t nlen = fl_fmt_u64(num, (uint64_t)at);
        if (fl_fleet_trip_end(s->fleet, vid, vlen, at, FL_TRIP_IDLE, &t) != 0)
            break;
        const char *argv[6] = {"TRIP.END", vid, "TS", num, "REASON", "idle"};
        size_t lens[6] = {8, vlen, 2, nlen, 6, 4};
        fl_cmd_ctx ctx = {0};
        ctx.server = s;
        fl_cmd_log(&ctx, 6, argv, lens);
        fl_server_emit(s, FL_EV_TRIP_ENDED, NULL, t);
        n++;
    }
    return n;
}

int fl_server_init(fl_server *s, const fl_config *cfg, uint64_t now_ms,
                   uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->db = fl_db_new(seed);
    fl_fleet_config fc;
    fleet_config_of(cfg, &fc);
    s->fleet = fl_fleet_new(&fc, seed ^ 0xF1EE7ULL);
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
    fl_fleet_free(s->fleet);
    s->fleet = NULL;
    fl_buf_free(&s->persist.scratch);
    free(s->cmd_stats);
    s->db = NULL;
    s->cmd_stats = NULL;
}
