/*
 * server_cmds.c - server commands: INFO, DBSIZE, COMMAND, CONFIG, FLUSHALL,
 * FLUSHDB.
 *
 * CONFIG is driven by one table of settings (name, kind, bounds, whether it
 * may change at run time) so that CONFIG GET *, CONFIG SET and the config
 * file loader can never disagree about what a setting is.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../db/db.h"
#include "../fleet/fleet.h"
#include "cmd.h"
#include "server.h"
#include "../version.h"


FL_CMD(dbsize)
{
    fl_reply_int(ctx->reply, (long long)fl_db_size(ctx->server->db));
}

static int flush_args_ok(fl_cmd_ctx *ctx)
{
    if (ctx->argc > 2 || (ctx->argc == 2 && !fl_arg_eq(ctx, 1, "ASYNC") &&
                          !fl_arg_eq(ctx, 1, "SYNC"))) {
        fl_reply_syntax_error(ctx);
        return 0;
    }
    return 1;
}

FL_CMD(flushall)
{
    if (!flush_args_ok(ctx)) return;
    fl_db_flush(ctx->server->db);
    fl_fleet_clear(ctx->server->fleet);
    fl_cmd_log(ctx, ctx->argc, ctx->argv, ctx->argvlen);
    fl_reply_ok(ctx->reply);
}

/* Only the keyspace: the fleet is not a Redis database. */
FL_CMD(flushdb)
{
    if (!flush_args_ok(ctx)) return;
    fl_db_flush(ctx->server->db);
    fl_cmd_log(ctx, ctx->argc, ctx->argv, ctx->argvlen);
    fl_reply_ok(ctx->reply);
}

/* ---- CONFIG ---- */

enum cfg_kind { CFG_INT, CFG_STR, CFG_FSYNC, CFG_OUTLIMIT, CFG_CONST };

typedef struct cfg_param {
    const char *name;
    int kind;
    size_t off;          /* offset in fl_config */
    long long min, max;
    int is_mutable;
    const char *const_value; /* CFG_CONST */
} cfg_param;

#define OFF(f) offsetof(fl_config, f)
static const cfg_param cfg_params[] = {
    {"appendfsync", CFG_FSYNC, OFF(fsync), 0, 0, 1, NULL},
    {"appendonly", CFG_CONST, 0, 0, 0, 0, "yes"},
    {"bind", CFG_STR, OFF(bind), 0, 0, 0, NULL},
    {"client-output-buffer-limit", CFG_OUTLIMIT, OFF(client_output_limit), 0,
     0, 1, NULL},
    {"client-query-buffer-limit", CFG_INT, OFF(max_query_buffer),
     1024 * 1024, 1LL << 40, 1, NULL},
    {"databases", CFG_CONST, 0, 0, 0, 0, "1"},
    {"dir", CFG_STR, OFF(dir), 0, 0, 0, NULL},
    {"http-port", CFG_INT, OFF(http_port), 0, 65535, 0, NULL},
    {"load-async-bytes", CFG_INT, OFF(load_async_bytes), 0, 1LL << 50, 0, NULL},
    {"max-future-ms", CFG_INT, OFF(max_future_ms), 0, 1LL << 40, 1, NULL},
    {"max-multibulk-len", CFG_INT, OFF(max_multibulk), 1, 1LL << 31, 1, NULL},
    {"max-speed-kmh", CFG_INT, OFF(max_speed_kmh), 1, 100000, 1, NULL},
    {"maxclients", CFG_INT, OFF(maxclients), 1, 1000000, 1, NULL},
    {"port", CFG_INT, OFF(port), 0, 65535, 0, NULL},
    {"proto-inline-max-size", CFG_INT, OFF(max_inline), 1, 1LL << 30, 1, NULL},
    /* Below 2 GiB: arguments are printed with %.*s, which takes an int. */
    {"proto-max-bulk-len", CFG_INT, OFF(proto_max_bulk_len), 1024 * 1024,
     2147483647LL - 2, 1, NULL},
    {"requirepass", CFG_STR, OFF(requirepass), 0, 0, 1, NULL},
    {"save", CFG_CONST, 0, 0, 0, 0, ""},
    {"snapshot-log-bytes", CFG_INT, OFF(snapshot_log_bytes), 1024 * 1024,
     1LL << 40, 1, NULL},
    {"timeout", CFG_INT, OFF(timeout), 0, 1LL << 31, 1, NULL},
    {"trip-history-max", CFG_INT, OFF(trip_history_max), 1, 1LL << 32, 1, NULL},
    {"trip-idle-timeout", CFG_INT, OFF(trip_idle_timeout), 0, 1LL << 31, 1, NULL},
    {"trip-jitter-meters", CFG_INT, OFF(trip_jitter_m), 0, 10000, 1, NULL},
    {"trip-max-points", CFG_INT, OFF(trip_max_points), 2, 1 << 24, 1, NULL},
};
#define CFG_COUNT (sizeof(cfg_params) / sizeof(cfg_params[0]))

static const char *fsync_names[] = {"always", "everysec", "no"};

static void cfg_value(const fl_config *c, const cfg_param *p, char *out,
                      size_t n)
{
    const char *base = (const char *)c + p->off;
    switch (p->kind) {
    case CFG_INT:
        if (p->off == OFF(port) || p->off == OFF(http_port))
            snprintf(out, n, "%d", *(const int *)base);
        else
            snprintf(out, n, "%lld", *(const long long *)base);
        break;
    case CFG_STR: snprintf(out, n, "%s", base); break;
    case CFG_FSYNC: snprintf(out, n, "%s", fsync_names[*(const int *)base]); break;
    case CFG_OUTLIMIT:
        snprintf(out, n, "normal %lld %lld 0 slave 0 0 0 pubsub 0 0 0",
                 *(const long long *)base, *(const long long *)base);
        break;
    default: snprintf(out, n, "%s", p->const_value); break;
    }
}

/* Bytes of a parameter's field in fl_config (0: a constant). */
static size_t cfg_field_size(const cfg_param *p)
{
    switch (p->kind) {
    case CFG_INT:
        return p->off == OFF(port) || p->off == OFF(http_port) ? sizeof(int)
                                                               : sizeof(long long);
    case CFG_STR: return p->off == OFF(requirepass) ? sizeof(((fl_config *)0)->requirepass) : 64;
    case CFG_FSYNC: return sizeof(int);
    case CFG_OUTLIMIT: return sizeof(long long);
    default: return 0;
    }
}

/* Applies a value; returns NULL or the reason it was refused. */
static const char *cfg_apply(fl_config *c, const cfg_param *p, const char *v)
{
    char *base = (char *)c + p->off;
    if (!p->is_mutable) return "can't set immutable config";
    if (p->kind == CFG_STR) {
        size_t cap = p->off == OFF(requirepass) ? sizeof(c->requirepass) : 64;
        if (strlen(v) >= cap) return "value is too long";
        snprintf(base, cap, "%s", v);
        return NULL;
    }
    if (p->kind == CFG_FSYNC) {
        for (int i = 0; i < 3; i++)
            if (strcasecmp(v, fsync_names[i]) == 0) {
                *(int *)base = i;
                return NULL;
            }
        return "argument(s) must be one of the following: always, everysec, no";
    }
    long long ll;
    if (p->kind == CFG_OUTLIMIT) {
        char cls[16];
        long long hard, soft, secs;
        if (sscanf(v, "%15s %lld %lld %lld", cls, &hard, &soft, &secs) != 4 ||
            strcasecmp(cls, "normal") != 0 || hard < 0)
            return "Invalid argument";
        *(long long *)base = hard;
        return NULL;
    }
    if (fl_parse_ll(v, strlen(v), &ll) != 0) return "argument couldn't be parsed into an integer";
    if (ll < p->min || ll > p->max) return "argument must be within the allowed range";
    *(long long *)base = ll;
    return NULL;
}

static void config_get(fl_cmd_ctx *ctx)
{
    size_t h = fl_reply_defer(ctx->reply);
    long n = 0;
    int seen[CFG_COUNT] = {0};
    for (int a = 2; a < ctx->argc; a++) {
        char *pat = fl_xstrndup(ctx->argv[a], ctx->argvlen[a]);
        for (size_t i = 0; i < CFG_COUNT; i++) {
            if (seen[i] || fnmatch(pat, cfg_params[i].name, FNM_CASEFOLD) != 0)
                continue;
            char val[256];
            cfg_value(&ctx->server->cfg, &cfg_params[i], val, sizeof(val));
            fl_reply_bulk_str(ctx->reply, cfg_params[i].name);
            fl_reply_bulk_str(ctx->reply, val);
            seen[i] = 1;
            n++;
        }
        free(pat);
    }
    fl_reply_set_deferred(ctx->reply, h, '%', n);
}

static const cfg_param *cfg_find(const char *name, size_t n)
{
    for (size_t i = 0; i < CFG_COUNT; i++)
        if (strlen(cfg_params[i].name) == n &&
            strncasecmp(cfg_params[i].name, name, n) == 0)
            return &cfg_params[i];
    return NULL;
}

/* All-or-nothing like Redis 7: apply to a copy, commit if every pair took. */
static void config_set(fl_cmd_ctx *ctx)
{
    if (ctx->argc < 4 || (ctx->argc - 2) % 2 != 0) {
        fl_reply_arity_error(ctx, "config|set");
        return;
    }
    fl_config next = ctx->server->cfg;
    for (int i = 2; i < ctx->argc; i += 2) {
        const cfg_param *p = cfg_find(ctx->argv[i], ctx->argvlen[i]);
        if (!p) {
            fl_reply_errorf(ctx->reply, "ERR Unknown option or number of "
                            "arguments for CONFIG SET - '%.*s'",
                            (int)ctx->argvlen[i], ctx->argv[i]);
            return;
        }
        char *v = fl_xstrndup(ctx->argv[i + 1], ctx->argvlen[i + 1]);
        const char *why = cfg_apply(&next, p, v);
        free(v);
        if (why) {
            fl_reply_errorf(ctx->reply, "ERR CONFIG SET failed (possibly "
                            "related to argument '%s') - %s", p->name, why);
            return;
        }
    }
    const fl_config *cur = &ctx->server->cfg;
    int rules_changed = cur->trip_jitter_m != next.trip_jitter_m ||
                        cur->max_speed_kmh != next.max_speed_kmh ||
                        cur->trip_max_points != next.trip_max_points ||
                        cur->trip_history_max != next.trip_history_max;
    /* Only the fields named are stored: a replayed rules record runs on
     * the loader's thread while the loop reads the other settings. */
    for (int i = 2; i < ctx->argc; i += 2) {
        const cfg_param *p = cfg_find(ctx->argv[i], ctx->argvlen[i]);
        memcpy((char *)&ctx->server->cfg + p->off, (const char *)&next + p->off,
               cfg_field_size(p));
    }
    fl_server_apply_config(ctx->server);
    if (rules_changed) {
        fl_server_log_rules(ctx->server);
        ctx->session->wal_need = ctx->session->wal_own = ctx->server->persist.appended;
    }
    fl_reply_ok(ctx->reply);
}

int fl_config_set_param(fl_config *c, const char *name, const char *value,
                        char *err, size_t errlen)
{
    const cfg_param *p = cfg_find(name, strlen(name));
    if (!p) {
        snprintf(err, errlen, "unknown setting '%s'", name);
        return -1;
    }
    cfg_param boot = *p;
    boot.is_mutable = 1; /* a config file may set what CONFIG SET cannot */
    if (boot.kind == CFG_CONST) {
        snprintf(err, errlen, "setting '%s' cannot be changed", name);
        return -1;
    }
    if (boot.kind == CFG_INT && (p->off == OFF(port) || p->off == OFF(http_port))) {
        long long ll;
        if (fl_parse_ll(value, strlen(value), &ll) != 0 || ll < 0 || ll > 65535) {
            snprintf(err, errlen, "'%s' must be a port number", name);
            return -1;
        }
        *(int *)((char *)c + p->off) = (int)ll;
        return 0;
    }
    if (boot.kind == CFG_STR && p->off != OFF(requirepass)) {
        size_t cap = p->off == OFF(dir) ? sizeof(c->dir) : sizeof(c->bind);
        if (strlen(value) >= cap) {
            snprintf(err, errlen, "'%s' is too long", name);
            return -1;
        }
        snprintf((char *)c + p->off, cap, "%s", value);
        return 0;
    }
    const char *why = cfg_apply(c, &boot, value);
    if (why) {
        snprintf(err, errlen, "'%s': %s", name, why);
        return -1;
    }
    return 0;
}

static void zero_words(void *p, size_t bytes)
{
    uint64_t *w = p;
    for (size_t i = 0; i < bytes / sizeof(*w); i++)
        __atomic_store_n(&w[i], 0, __ATOMIC_RELAXED);
}

FL_CMD(config)
{
    if (fl_arg_eq(ctx, 1, "GET")) {
        if (ctx->argc < 3) fl_reply_arity_error(ctx, "config|get");
        else config_get(ctx);
    } else if (fl_arg_eq(ctx, 1, "SET")) {
        config_set(ctx);
    } else if (fl_arg_eq(ctx, 1, "RESETSTAT")) {
        /* Word by word with atomic stores: the metrics thread may be
         * reading these counters right now. */
        fl_server *s = ctx->server;
        zero_words(s->cmd_stats, fl_commands_count * sizeof(*s->cmd_stats));
        zero_words(&s->stats, sizeof(s->stats));
        fl_reply_ok(ctx->reply);
    } else if (fl_arg_eq(ctx, 1, "HELP")) {
        fl_reply_array(ctx->reply, 4);
        fl_reply_simple(ctx->reply, "CONFIG GET <pattern> [<pattern> ...]");
        fl_reply_simple(ctx->reply, "CONFIG SET <directive> <value> [<directive> <value> ...]");
        fl_reply_simple(ctx->reply, "CONFIG RESETSTAT");
        fl_reply_simple(ctx->reply, "HELP");
    } else {
        fl_reply_unknown_subcommand(ctx, "CONFIG");
    }
}

/* ---- COMMAND ---- */

static void reply_flags(fl_reply *r, unsigned f)
{
    const char *names[5];
    long n = 0;
    if (f & FL_CMD_WRITE) names[n++] = "write";
    if (f & FL_CMD_READONLY) names[n++] = "readonly";
    if (f & FL_CMD_ADMIN) names[n++] = "admin";
    if (f & FL_CMD_NOAUTH) names[n++] = "no_auth";
    if (f & FL_CMD_FAST) names[n++] = "fast";
    fl_reply_set(r, n);
    for (long i = 0; i < n; i++) fl_reply_simple(r, names[i]);
}

static void reply_command_info(fl_reply *r, const fl_command *c)
{
    char cat[48];
    fl_reply_array(r, 10);
    fl_reply_bulk_str(r, c->name);
    fl_reply_int(r, c->arity);
    reply_flags(r, c->flags);
    fl_reply_int(r, c->first_key);
    fl_reply_int(r, c->last_key);
    fl_reply_int(r, c->key_step);
    snprintf(cat, sizeof(cat), "@%s", c->group);
    fl_reply_set(r, 1);
    fl_reply_simple(r, cat);
    fl_reply_set(r, 0);   /* tips */
    fl_reply_array(r, 0); /* key specs */
    fl_reply_array(r, 0); /* subcommands */
}

static void reply_command_doc(fl_reply *r, const fl_command *c)
{
    fl_reply_bulk_str(r, c->name);
    fl_reply_map(r, 3);
    fl_reply_bulk_str(r, "summary");
    fl_reply_bulk_str(r, c->summary);
    fl_reply_bulk_str(r, "since");
    fl_reply_bulk_str(r, c->since);
    fl_reply_bulk_str(r, "group");
    fl_reply_bulk_str(r, c->group);
}

static void command_docs(fl_cmd_ctx *ctx)
{
    if (ctx->argc == 2) {
        fl_reply_map(ctx->reply, (long)fl_commands_count);
        for (size_t i = 0; i < fl_commands_count; i++)
            reply_command_doc(ctx->reply, &fl_commands[i]);
        return;
    }
    size_t h = fl_reply_defer(ctx->reply);
    long n = 0;
    for (int i = 2; i < ctx->argc; i++) {
        const fl_command *c = fl_cmd_lookup(ctx->argv[i], ctx->argvlen[i]);
        if (!c) continue;
        reply_command_doc(ctx->reply, c);
        n++;
    }
    fl_reply_set_deferred(ctx->reply, h, '%', n);
}

FL_CMD(command)
{
    fl_reply *r = ctx->reply;
    if (ctx->argc == 1) {
        fl_reply_array(r, (long)fl_commands_count);
        for (size_t i = 0; i < fl_commands_count; i++)
            reply_command_info(r, &fl_commands[i]);
    } else if (fl_arg_eq(ctx, 1, "COUNT") && ctx->argc == 2) {
        fl_reply_int(r, (long long)fl_commands_count);
    } else if (fl_arg_eq(ctx, 1, "INFO")) {
        fl_reply_array(r, ctx->argc - 2);
        for (int i = 2; i < ctx->argc; i++) {
            const fl_command *c = fl_cmd_lookup(ctx->argv[i], ctx->argvlen[i]);
            if (c) reply_command_info(r, c);
            else fl_reply_null_array(r);
        }
    } else if (fl_arg_eq(ctx, 1, "DOCS")) {
        command_docs(ctx);
    } else if (fl_arg_eq(ctx, 1, "LIST") && ctx->argc == 2) {
        fl_reply_array(r, (long)fl_commands_count);
        for (size_t i = 0; i < fl_commands_count; i++)
            fl_reply_bulk_str(r, fl_commands[i].name);
    } else if (fl_arg_eq(ctx, 1, "COUNT")) {
        fl_reply_arity_error(ctx, "command|count");
    } else if (fl_arg_eq(ctx, 1, "LIST")) {
        fl_reply_syntax_error(ctx);
    } else {
        fl_reply_unknown_subcommand(ctx, "COMMAND");
    }
}

/* ---- INFO ---- */

static void info_server(fl_cmd_ctx *ctx, fl_buf *b)
{
    const fl_server *s = ctx->server;
    uint64_t up = (ctx->now_ms - s->start_ms) / 1000;
    fl_buf_printf(b, "# Server\r\nredis_version:%s\r\nfleetd_version:%s\r\n"
        "redis_mode:standalone\r\nos:Linux\r\narch_bits:64\r\n"
        "multiplexing_api:libuv\r\nprocess_id:%ld\r\nrun_id:%s\r\n"
        "tcp_port:%d\r\nhttp_port:%d\r\nuptime_in_seconds:%llu\r\n"
        "uptime_in_days:%llu\r\nconfig_file:%s\r\n\r\n",
        FL_REDIS_COMPAT_VERSION, FL_VERSION, (long)getpid(), s->run_id,
        s->cfg.port, s->cfg.http_port, (unsigned long long)up,
        (unsigned long long)(up / 86400), s->cfg.config_file);
}

static void info_clients(fl_cmd_ctx *ctx, fl_buf *b)
{
    const fl_server_hooks *h = &ctx->server->hooks;
    fl_buf_printf(b, "# Clients\r\nconnected_clients:%zu\r\nmaxclients:%lld\r\n"
        "client_output_bytes:%zu\r\nblocked_clients:0\r\n\r\n",
        h->clients_connected(h->ud), ctx->server->cfg.maxclients,
        h->clients_output_bytes(h->ud));
}

static void info_memory(fl_cmd_ctx *ctx, fl_buf *b)
{
    const fl_server_hooks *h = &ctx->server->hooks;
    uint64_t used = 0, rss = 0;
    h->memory(h->ud, &used, &rss);
    fl_buf_printf(b, "# Memory\r\nused_memory:%llu\r\nused_memory_rss:%llu\r\n"
        "used_memory_dataset:%zu\r\nmem_allocator:libc\r\n\r\n",
        (unsigned long long)used, (unsigned long long)rss,
        fl_db_bytes(ctx->server->db));
}

static void info_persistence(fl_cmd_ctx *ctx, fl_buf *b)
{
    const fl_persist *p = &ctx->server->persist;
    fl_buf_printf(b, "# Persistence\r\nloading:%d\r\naof_enabled:%d\r\n"
        "appendfsync:%s\r\naof_current_size:%llu\r\n"
        "aof_records_appended:%llu\r\naof_records_synced:%llu\r\n"
        "aof_fsyncs:%llu\r\naof_last_write_status:%s\r\n"
        "rdb_bgsave_in_progress:%d\r\nrdb_last_save_time:%llu\r\n"
        "rdb_last_bgsave_status:%s\r\nrdb_saves:%llu\r\n"
        "loading_loaded_records:%llu\r\nloading_ms:%llu\r\n"
        "loading_tail_cut_bytes:%llu\r\n\r\n",
        p->replaying, p->wal != NULL, fsync_names[ctx->server->cfg.fsync],
        (unsigned long long)p->log_bytes, (unsigned long long)p->appended,
        (unsigned long long)p->synced, (unsigned long long)p->fsyncs,
        p->write_errors || p->fsync_errors ? "err" : "ok",
        p->snapshot_running != 0, (unsigned long long)(p->last_snapshot_ms / 1000),
        p->snapshots_failed && !p->snapshots_ok ? "err" : "ok",
        (unsigned long long)p->snapshots_ok, (unsigned long long)p->loaded_records,
        (unsigned long long)p->load_ms, (unsigned long long)p->tail_cut_bytes);
}

static void info_fleet(fl_cmd_ctx *ctx, fl_buf *b)
{
    const fl_fleet_stats *st = fl_fleet_get_stats(ctx->server->fleet);
    fl_buf_printf(b, "# Fleet\r\nvehicles:%llu\r\nvehicles_available:%llu\r\n"
        "vehicles_busy:%llu\r\nvehicles_offline:%llu\r\ntrips_running:%llu\r\n"
        "trips_finished:%llu\r\ntrips_closed_idle:%llu\r\npings_applied:%llu\r\n"
        "pings_stale:%llu\r\npings_implausible:%llu\r\npings_relocated:%llu\r\n"
        "fleet_memory_bytes:%zu\r\n\r\n",
        (unsigned long long)st->vehicles, (unsigned long long)st->by_status[0],
        (unsigned long long)st->by_status[1], (unsigned long long)st->by_status[2],
        (unsigned long long)st->trips_running, (unsigned long long)st->trips_finished,
        (unsigned long long)st->trips_closed_idle, (unsigned long long)st->pings_applied,
        (unsigned long long)st->pings_stale, (unsigned long long)st->pings_implausible,
        (unsigned long long)st->pings_relocated, fl_fleet_bytes(ctx->server->fleet));
}

FL_CMD(bgsave)
{
    const fl_server_hooks *h = &ctx->server->hooks;
    if (ctx->argc > 2 || (ctx->argc == 2 && !fl_arg_eq(ctx, 1, "SCHEDULE"))) {
        fl_reply_syntax_error(ctx);
        return;
    }
    if (!h->bgsave) {
        fl_reply_error(ctx->reply, "ERR persistence is off (no data directory)");
        return;
    }
    char err[256] = "";
    int rc = h->bgsave(h->store_ud, err, sizeof(err));
    if (rc == -EBUSY)
        fl_reply_error(ctx->reply, "ERR Background save already in progress");
    else if (rc != 0)
        fl_reply_errorf(ctx->reply, "ERR Background save failed: %s", err);
    else
        fl_reply_simple(ctx->reply, "Background saving started");
}

static void info_stats(fl_cmd_ctx *ctx, fl_buf *b)
{
    const fl_server_stats *st = &ctx->server->stats;
    fl_buf_printf(b, "# Stats\r\ntotal_connections_received:%llu\r\n"
        "total_commands_processed:%llu\r\ntotal_net_input_bytes:%llu\r\n"
        "total_net_output_bytes:%llu\r\nrejected_connections:%llu\r\n"
        "protocol_errors:%llu\r\nunknown_commands:%llu\r\n"
        "client_output_limit_disconnections:%llu\r\n"
        "client_idle_timeouts:%llu\r\n\r\n",
        (unsigned long long)st->connections_received,
        (unsigned long long)st->commands_processed,
        (unsigned long long)st->net_input_bytes,
        (unsigned long long)st->net_output_bytes,
        (unsigned long long)st->connections_rejected,
        (unsigned long long)st->protocol_errors,
        (unsigned long long)st->unknown_commands,
        (unsigned long long)st->output_limit_disconnects,
        (unsigned long long)st->idle_disconnects);
}

static void info_commandstats(fl_cmd_ctx *ctx, fl_buf *b)
{
    fl_buf_append_str(b, "# Commandstats\r\n");
    for (size_t i = 0; i < fl_commands_count; i++) {
        const fl_cmd_stats *st = &ctx->server->cmd_stats[i];
        if (!st->calls && !st->rejected) continue;
        fl_buf_printf(b, "cmdstat_%s:calls=%llu,usec=%llu,usec_per_call=%.2f,"
            "rejected_calls=%llu,failed_calls=%llu,p50_usec=%.3f,"
            "p99_usec=%.3f\r\n", fl_commands[i].name,
            (unsigned long long)st->calls, (unsigned long long)st->usec,
            st->calls ? (double)st->usec / (double)st->calls : 0.0,
            (unsigned long long)st->rejected, (unsigned long long)st->errors,
            fl_hist_quantile(&st->latency, 0.5) / 1000.0,
            fl_hist_quantile(&st->latency, 0.99) / 1000.0);
    }
    fl_buf_append_str(b, "\r\n");
}

static void info_keyspace(fl_cmd_ctx *ctx, fl_buf *b)
{
    size_t n = fl_db_size(ctx->server->db);
    fl_buf_append_str(b, "# Keyspace\r\n");
    if (n) fl_buf_printf(b, "db0:keys=%zu,expires=0,avg_ttl=0\r\n", n);
    fl_buf_append_str(b, "\r\n");
}

typedef void info_fn(fl_cmd_ctx *ctx, fl_buf *b);
static const struct {
    const char *name;
    info_fn *fn;
    int in_default;
} info_sections[] = {
    {"server", info_server, 1},       {"clients", info_clients, 1},
    {"memory", info_memory, 1},       {"persistence", info_persistence, 1},
    {"stats", info_stats, 1},         {"commandstats", info_commandstats, 0},
    {"keyspace", info_keyspace, 1},   {"fleet", info_fleet, 1},
};
#define INFO_COUNT (sizeof(info_sections) / sizeof(info_sections[0]))

FL_CMD(info)
{
    int want[INFO_COUNT] = {0};
    int any = 0;
    for (int a = 1; a < ctx->argc; a++) {
        int all = fl_arg_eq(ctx, a, "all") || fl_arg_eq(ctx, a, "everything");
        int dflt = fl_arg_eq(ctx, a, "default");
        for (size_t i = 0; i < INFO_COUNT; i++)
            if (all || (dflt && info_sections[i].in_default) ||
                fl_arg_eq(ctx, a, info_sections[i].name))
                want[i] = any = 1;
        any = 1;
    }
    fl_buf b;
    fl_buf_init(&b);
    for (size_t i = 0; i < INFO_COUNT; i++)
        if (any ? want[i] : info_sections[i].in_default)
            info_sections[i].fn(ctx, &b);
    if (b.len >= 2) b.len -= 2; /* no blank line after the last section */
    fl_reply_verbatim(ctx->reply, b.data ? b.data : "", b.len);
    fl_buf_free(&b);
}
