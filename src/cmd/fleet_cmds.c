/*
 * fleet_cmds.c - VEHICLE.*, TRIP.* and AREA.* in the Redis-module style.
 *
 * Handlers parse and validate everything before they change anything, so a
 * refused command changes nothing. What a handler changes is logged as the
 * command that reproduces it deterministically: a missing TS becomes the
 * server's time, a generated trip id is written out, so replaying the log
 * rebuilds exactly the state that clients were told about.
 *
 * Replies: VEHICLE.UPDATE answers +OK, +STALE (older or duplicate ping,
 * nothing changed), +IMPLAUSIBLE (implied speed too high, counted only) or
 * +RELOCATED; records (VEHICLE.GET, TRIP.GET) are maps (flat arrays in
 * RESP2); positions and distances print like GEOSEARCH's.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "server.h"
#include "../fleet/fleet.h"

/* The "now" future timestamps are judged against. While the log replays,
 * none: the check admitted them when they arrived, and the clock at load
 * time (behind after a restore, or a lowered max-future-ms) must not
 * reject history. */
static int64_t admission_now(const fl_cmd_ctx *ctx)
{
    return ctx->server->persist.replaying ? INT64_MAX / 4 : (int64_t)ctx->now_ms;
}

/* ---- argument helpers ---- */

static int arg_is(const fl_cmd_ctx *ctx, int i, const char *lit)
{
    return fl_arg_eq(ctx, i, lit);
}

static int arg_id(fl_cmd_ctx *ctx, int i, const char *what)
{
    if (ctx->argvlen[i] > 0 && ctx->argvlen[i] <= FL_FLEET_ID_MAX) return 0;
    fl_reply_errorf(ctx->reply, "ERR %s id must be 1 to %d bytes", what,
                    FL_FLEET_ID_MAX);
    return -1;
}

static int arg_coords(fl_cmd_ctx *ctx, int i, double *lon, double *lat)
{
    if (fl_arg_double(ctx, i, lon) || fl_arg_double(ctx, i + 1, lat)) return -1;
    if (isfinite(*lon) && isfinite(*lat) && fl_geo_coords_valid(*lon, *lat))
        return 0;
    char msg[1024];
    int k = snprintf(msg, sizeof(msg), "ERR invalid longitude,latitude pair %f,%f",
                     *lon, *lat);
    fl_reply_error(ctx->reply, k > 0 ? msg : "ERR invalid longitude,latitude pair");
    return -1;
}

static int arg_ts(fl_cmd_ctx *ctx, int i, long long *ts)
{
    if (fl_arg_ll(ctx, i, ts)) return -1;
    if (*ts > 0) return 0;
    fl_reply_error(ctx->reply, "ERR TS must be a positive unix time in milliseconds");
    return -1;
}

static int arg_status(fl_cmd_ctx *ctx, int i, int *status)
{
    *status = fl_vstatus_parse(ctx->argv[i], ctx->argvlen[i]);
    if (*status >= 0) return 0;
    fl_reply_error(ctx->reply, "ERR STATUS must be available, busy or offline");
    return -1;
}

static void reply_future(fl_cmd_ctx *ctx)
{
    fl_reply_errorf(ctx->reply, "ERR timestamp is more than %lld ms in the future",
                    (long long)fl_fleet_get_config(ctx->server->fleet)->max_future_ms);
}

static void reply_unknown_vehicle(fl_cmd_ctx *ctx, int i)
{
    fl_reply_errorf(ctx->reply, "ERR unknown vehicle '%.*s'",
                    (int)ctx->argvlen[i], ctx->argv[i]);
}

/* Logs this command's argv with "TS <now>" appended when it had none, and
 * then "BURST 1" when the ping was applied as part of a burst (only a
 * TS-less ping can be), so that replay applies it the same way rather than
 * judge its speed from the logged arrival times. */
static void log_with_ts(fl_cmd_ctx *ctx, int had_ts, long long ts, int burst)
{
    if (had_ts) {
        fl_cmd_log(ctx, ctx->argc, ctx->argv, ctx->argvlen);
        return;
    }
    char num[24];
    size_t n = fl_fmt_u64(num, (uint64_t)ts);
    int at = ctx->argc, argc = at + (burst ? 4 : 2);
    const char **argv = fl_xmalloc(sizeof(*argv) * (size_t)argc);
    size_t *lens = fl_xmalloc(sizeof(*lens) * (size_t)argc);
    memcpy(argv, ctx->argv, sizeof(*argv) * (size_t)at);
    memcpy(lens, ctx->argvlen, sizeof(*lens) * (size_t)at);
    argv[at] = "TS";
    lens[at] = 2;
    argv[at + 1] = num;
    lens[at + 1] = n;
    if (burst) {
        argv[at + 2] = "BURST";
        lens[at + 2] = 5;
        argv[at + 3] = "1";
        lens[at + 3] = 1;
    }
    fl_cmd_log(ctx, argc, argv, lens);
    free(argv);
    free(lens);
}

/* ---- VEHICLE.UPDATE ---- */

static int parse_ping(fl_cmd_ctx *ctx, fl_ping *p, int *had_ts)
{
    if (arg_id(ctx, 1, "vehicle") || arg_coords(ctx, 2, &p->lon, &p->lat))
        return -1;
    long long ts = (long long)ctx->now_ms;
    *had_ts = 0;
    for (int i = 4; i < ctx->argc; i += 2) {
        if (i + 1 >= ctx->argc) {
            fl_reply_syntax_error(ctx);
            return -1;
        }
        double d;
        if (arg_is(ctx, i, "ts")) {
            if (arg_ts(ctx, i + 1, &ts)) return -1;
            *had_ts = 1;
        } else if (arg_is(ctx, i, "speed") || arg_is(ctx, i, "heading")) {
            int speed = arg_is(ctx, i, "speed");
            if (fl_arg_double(ctx, i + 1, &d)) return -1;
            if (speed ? !(d >= 0 && d <= FL_SPEED_MAX_KMH) : !(d >= 0 && d <= 360)) {
                fl_reply_error(ctx->reply, speed ? "ERR SPEED must be 0 to 6000 km/h"
                                                 : "ERR HEADING must be 0 to 360 degrees");
                return -1;
            }
            if (speed) p->speed_kmh = (float)d;
            else p->heading = (float)d;
        } else if (arg_is(ctx, i, "fleet")) {
            if (arg_id(ctx, i + 1, "fleet")) return -1;
            p->fleet = ctx->argv[i + 1];
            p->fleet_len = ctx->argvlen[i + 1];
        } else if (arg_is(ctx, i, "status")) {
            if (arg_status(ctx, i + 1, &p->status)) return -1;
        } else if (arg_is(ctx, i, "burst") && ctx->server->persist.replaying) {
            p->ts_kind = FL_TS_BURST; /* written only by log_with_ts */
        } else {
            fl_reply_syntax_error(ctx);
            return -1;
        }
    }
    p->ts_ms = ts;
    if (!*had_ts) p->ts_kind = FL_TS_ARRIVAL;
    return 0;
}

FL_CMD(vehicle_update)
{
    fl_ping p = {0, 0, 0, NAN, NAN, NULL, 0, -1, FL_TS_GIVEN, 0};
    int had_ts, outcome;
    if (parse_ping(ctx, &p, &had_ts)) return;
    int rc = fl_fleet_update(ctx->server->fleet, ctx->argv[1], ctx->argvlen[1],
                             &p, admission_now(ctx), &outcome);
    if (rc == -ERANGE) {
        reply_future(ctx);
        return;
    }
    if (rc == -ENOSPC) {
        fl_reply_error(ctx->reply, "ERR too many fleet names (at most 65535)");
        return;
    }
    if (rc != 0) {
        fl_reply_error(ctx->reply, "ERR invalid ping");
        return;
    }
    static const char *const answers[] = {"OK", "STALE", "IMPLAUSIBLE", "RELOCATED"};
    /* A stale ping changed nothing; an implausible one changed counters
     * that decide the next relocation, so it is logged too. */
    if (outcome != FL_PING_STALE) log_with_ts(ctx, had_ts, p.ts_ms, p.burst);
    /* The lookup only when a stream listens for moves. */
    if ((outcome == FL_PING_APPLIED || outcome == FL_PING_RELOCATED) &&
        fl_server_listens(ctx->server, FL_EV_MOVE))
        fl_server_emit(ctx->server, FL_EV_MOVE,
                       fl_fleet_vehicle(ctx->server->fleet, ctx->argv[1],
                                        ctx->argvlen[1]), NULL);
    fl_reply_simple(ctx->reply, answers[outcome]);
}

/* ---- VEHICLE.GET / DEL / COUNT ---- */

static void reply_float_or_null(fl_reply *r, float v)
{
    if (isnan(v)) fl_reply_null(r);
    else fl_reply_double(r, (double)v);
}

static void reply_vehicle(fl_cmd_ctx *ctx, const fl_vehicle *v)
{
    fl_reply *r = ctx->reply;
    size_t flen;
    const char *fleet = fl_vehicle_fleet(ctx->server->fleet, v, &flen);
    fl_reply_map(r, 10);
    fl_reply_bulk_str(r, "id");
    fl_reply_bulk(r, v->id, v->id_len);
    fl_reply_bulk_str(r, "lon");
    fl_reply_double(r, v->lon);
    fl_reply_bulk_str(r, "lat");
    fl_reply_double(r, v->lat);
    fl_reply_bulk_str(r, "ts");
    fl_reply_int(r, v->ts_ms);
    fl_reply_bulk_str(r, "speed");
    reply_float_or_null(r, fl_vehicle_speed(v));
    fl_reply_bulk_str(r, "heading");
    reply_float_or_null(r, fl_vehicle_heading(v));
    fl_reply_bulk_str(r, "fleet");
    if (fleet) fl_reply_bulk(r, fleet, flen);
    else fl_reply_null(r);
    fl_reply_bulk_str(r, "status");
    fl_reply_bulk_str(r, fl_vstatus_name(v->status));
    fl_reply_bulk_str(r, "trip");
    if (v->trip) fl_reply_bulk(r, v->trip->id, v->trip->id_len);
    else fl_reply_null(r);
    fl_reply_bulk_str(r, "flagged");
    fl_reply_int(r, v->flagged);
}

FL_CMD(vehicle_get)
{
    const fl_vehicle *v = fl_fleet_vehicle(ctx->server->fleet, ctx->argv[1],
                                           ctx->argvlen[1]);
    if (!v) {
        reply_unknown_vehicle(ctx, 1);
        return;
    }
    reply_vehicle(ctx, v);
}

/* Deletes one vehicle; its running trip ends (and streams hear of it). */
static int delete_vehicle(fl_cmd_ctx *ctx, int i)
{
    fl_fleet *f = ctx->server->fleet;
    const fl_vehicle *v = fl_fleet_vehicle(f, ctx->argv[i], ctx->argvlen[i]);
    char tid[FL_FLEET_ID_MAX];
    size_t tlen = v && v->trip ? v->trip->id_len : 0;
    if (tlen) memcpy(tid, v->trip->id, tlen);
    int n = fl_fleet_delete(f, ctx->argv[i], ctx->argvlen[i]);
    const fl_trip *t = tlen ? fl_fleet_trip(f, tid, tlen) : NULL;
    if (t) fl_server_emit(ctx->server, FL_EV_TRIP_ENDED, NULL, t);
    return n;
}

FL_CMD(vehicle_del)
{
    long long n = 0;
    for (int i = 1; i < ctx->argc; i++) n += delete_vehicle(ctx, i);
    if (n > 0) fl_cmd_log(ctx, ctx->argc, ctx->argv, ctx->argvlen);
    fl_reply_int(ctx->reply, n);
}

FL_CMD(vehicle_count)
{
    const char *fleet = NULL;
    size_t flen = 0;
    int status = -1;
    for (int i = 1; i < ctx->argc; i += 2) {
        if (i + 1 >= ctx->argc) {
            fl_reply_syntax_error(ctx);
            return;
        }
        if (arg_is(ctx, i, "fleet")) {
            fleet = ctx->argv[i + 1];
            flen = ctx->argvlen[i + 1];
        } else if (arg_is(ctx, i, "status")) {
            if (arg_status(ctx, i + 1, &status)) return;
        } else {
            fl_reply_syntax_error(ctx);
            return;
        }
    }
    uint64_t c[FL_VS_COUNT];
    fl_fleet_count(ctx->server->fleet, fleet, flen, c);
    if (status >= 0) {
        fl_reply_int(ctx->reply, (long long)c[status]);
        return;
    }
    fl_reply_map(ctx->reply, FL_VS_COUNT + 1);
    fl_reply_bulk_str(ctx->reply, "total");
    fl_reply_int(ctx->reply, (long long)(c[0] + c[1] + c[2]));
    for (int s = 0; s < FL_VS_COUNT; s++) {
        fl_reply_bulk_str(ctx->reply, fl_vstatus_name(s));
        fl_reply_int(ctx->reply, (long long)c[s]);
    }
}

/* ---- VEHICLE.NEARBY / WITHIN ---- */

typedef struct search_opts {
    fl_fleet_query q;
    int withdist, withcoord;
    double unit;
} search_opts;

static double parse_unit(const fl_cmd_ctx *ctx, int i)
{
    if (arg_is(ctx, i, "m")) return 1;
    if (arg_is(ctx, i, "km")) return 1000;
    if (arg_is(ctx, i, "ft")) return 0.3048;
    if (arg_is(ctx, i, "mi")) return 1609.34;
    return -1;
}

static int parse_search_opts(fl_cmd_ctx *ctx, int i, search_opts *o, int near)
{
    for (; i < ctx->argc; i++) {
        int has_value = i + 1 < ctx->argc;
        long long n;
        if (arg_is(ctx, i, "withdist") && near) o->withdist = 1;
        else if (arg_is(ctx, i, "withcoord")) o->withcoord = 1;
        else if (arg_is(ctx, i, "count") && has_value) {
            if (fl_arg_ll(ctx, ++i, &n)) return -1;
            if (n <= 0) {
                fl_reply_error(ctx->reply, "ERR COUNT must be > 0");
                return -1;
            }
            o->q.count = n;
        } else if (arg_is(ctx, i, "status") && has_value) {
            if (arg_status(ctx, ++i, &o->q.status)) return -1;
        } else if (arg_is(ctx, i, "fleet") && has_value) {
            o->q.fleet = ctx->argv[++i];
            o->q.fleet_len = ctx->argvlen[i];
        } else {
            fl_reply_syntax_error(ctx);
            return -1;
        }
    }
    return 0;
}

static void reply_hits(fl_cmd_ctx *ctx, const search_opts *o,
                       const fl_fleet_hits *h)
{
    fl_reply *r = ctx->reply;
    int extra = o->withdist + o->withcoord;
    fl_reply_array(r, (long)h->n);
    for (size_t i = 0; i < h->n; i++) {
        const fl_vehicle *v = h->v[i].v;
        if (extra) fl_reply_array(r, 1 + extra);
        fl_reply_bulk(r, v->id, v->id_len);
        if (o->withdist) {
            char num[64];
            int k = snprintf(num, sizeof(num), "%.4f", h->v[i].dist_m / o->unit);
            fl_reply_bulk(r, num, (size_t)k);
        }
        if (o->withcoord) {
            fl_reply_array(r, 2);
            fl_reply_double(r, v->lon);
            fl_reply_double(r, v->lat);
        }
    }
}

static void run_search(fl_cmd_ctx *ctx, search_opts *o)
{
    fl_fleet_hits hits = {0};
    int rc = fl_fleet_search(ctx->server->fleet, &o->q, &hits);
    if (rc == 0) reply_hits(ctx, o, &hits);
    else fl_reply_error(ctx->reply, "ERR invalid search area");
    fl_fleet_hits_free(&hits);
}

FL_CMD(vehicle_nearby)
{
    search_opts o = {.q = {.status = -1}};
    double radius;
    if (arg_coords(ctx, 1, &o.q.lon, &o.q.lat) || fl_arg_double(ctx, 3, &radius))
        return;
    o.unit = parse_unit(ctx, 4);
    if (o.unit < 0) {
        fl_reply_error(ctx->reply, "ERR unsupported unit provided. please use M, KM, FT, MI");
        return;
    }
    if (!(radius >= 0) || !isfinite(radius)) {
        fl_reply_error(ctx->reply, "ERR radius cannot be negative");
        return;
    }
    o.q.radius_m = radius * o.unit;
    if (parse_search_opts(ctx, 5, &o, 1)) return;
    run_search(ctx, &o);
}

FL_CMD(vehicle_within)
{
    search_opts o = {.q = {.status = -1, .is_box = 1}, .unit = 1};
    double *b = o.q.box;
    if (arg_coords(ctx, 1, &b[0], &b[1]) || arg_coords(ctx, 3, &b[2], &b[3]))
        return;
    if (b[1] > b[3]) {
        fl_reply_error(ctx->reply, "ERR the box's min latitude is above its max latitude");
        return;
    }
    if (parse_search_opts(ctx, 5, &o, 0)) return;
    run_search(ctx, &o);
}

/* ---- TRIP.* ---- */

static void reply_trip(fl_cmd_ctx *ctx, const fl_trip *t, int with_path)
{
    fl_reply *r = ctx->reply;
    size_t vlen;
    const char *vid = fl_trip_vehicle(t, &vlen);
    int64_t end = t->end_ms ? t->end_ms : t->last_ms;
    fl_reply_map(r, 13 + with_path);
    fl_reply_bulk_str(r, "id");
    fl_reply_bulk(r, t->id, t->id_len);
    fl_reply_bulk_str(r, "vehicle");
    fl_reply_bulk(r, vid, vlen);
    fl_reply_bulk_str(r, "state");
    fl_reply_bulk_str(r, fl_trip_end_name(t->end_reason));
    fl_reply_bulk_str(r, "start");
    fl_reply_int(r, t->start_ms);
    fl_reply_bulk_str(r, "end");
    if (t->end_ms) fl_reply_int(r, t->end_ms);
    else fl_reply_null(r);
    fl_reply_bulk_str(r, "last_ping");
    fl_reply_int(r, t->last_ms);
    fl_reply_bulk_str(r, "duration_ms");
    fl_reply_int(r, end - t->start_ms);
    fl_reply_bulk_str(r, "distance_m");
    fl_reply_double(r, round(t->distance_m * 10) / 10);
    fl_reply_bulk_str(r, "idle_ms");
    fl_reply_int(r, t->idle_ms);
    fl_reply_bulk_str(r, "max_speed_kmh");
    fl_reply_double(r, round((double)t->max_speed_kmh * 10) / 10);
    fl_reply_bulk_str(r, "pings");
    fl_reply_int(r, t->pings);
    fl_reply_bulk_str(r, "flagged");
    fl_reply_int(r, t->flagged);
    fl_reply_bulk_str(r, "points");
    fl_reply_int(r, t->path.points);
    if (with_path) {
        fl_reply_bulk_str(r, "polyline");
        fl_reply_bulk(r, t->path.enc, t->path.len);
    }
}

/* Parses [ID id] [TS ms] [REASON r] from argv[2..]; 0 or -1 (replied). */
static int parse_trip_opts(fl_cmd_ctx *ctx, int allow_id, int *id_at,
                           long long *ts, int *had_ts, int *reason)
{
    *had_ts = 0;
    for (int i = 2; i < ctx->argc; i += 2) {
        if (i + 1 >= ctx->argc) {
            fl_reply_syntax_error(ctx);
            return -1;
        }
        if (allow_id && arg_is(ctx, i, "id")) {
            if (arg_id(ctx, i + 1, "trip")) return -1;
            *id_at = i + 1;
        } else if (arg_is(ctx, i, "ts")) {
            if (arg_ts(ctx, i + 1, ts)) return -1;
            *had_ts = 1;
        } else if (!allow_id && arg_is(ctx, i, "reason")) {
            /* Written by the log for idle closes; clients may use it. */
            if (arg_is(ctx, i + 1, "idle")) *reason = FL_TRIP_IDLE;
            else if (arg_is(ctx, i + 1, "ended")) *reason = FL_TRIP_ENDED;
            else {
                fl_reply_error(ctx->reply, "ERR REASON must be ended or idle");
                return -1;
            }
        } else {
            fl_reply_syntax_error(ctx);
            return -1;
        }
    }
    return 0;
}

static void log_trip_start(fl_cmd_ctx *ctx, const fl_trip *t, long long ts)
{
    char num[24];
    size_t n = fl_fmt_u64(num, (uint64_t)ts);
    const char *argv[6] = {"TRIP.START", ctx->argv[1], "ID", t->id, "TS", num};
    size_t lens[6] = {10, ctx->argvlen[1], 2, t->id_len, 2, n};
    fl_cmd_log(ctx, 6, argv, lens);
}

FL_CMD(trip_start)
{
    int id_at = 0, had_ts, reason = 0;
    long long ts = (long long)ctx->now_ms;
    if (arg_id(ctx, 1, "vehicle") ||
        parse_trip_opts(ctx, 1, &id_at, &ts, &had_ts, &reason))
        return;
    const fl_trip *t;
    int rc = fl_fleet_trip_start(ctx->server->fleet, ctx->argv[1], ctx->argvlen[1],
                                 id_at ? ctx->argv[id_at] : NULL,
                                 id_at ? ctx->argvlen[id_at] : 0, ts,
                                 admission_now(ctx), &t);
    switch (rc) {
    case 0: break;
    case -ENOENT: reply_unknown_vehicle(ctx, 1); return;
    case -EEXIST: {
        const fl_vehicle *v = fl_fleet_vehicle(ctx->server->fleet, ctx->argv[1],
                                               ctx->argvlen[1]);
        fl_reply_errorf(ctx->reply, "ERR vehicle '%.*s' already has a running trip '%.*s'",
                        (int)ctx->argvlen[1], ctx->argv[1], (int)v->trip->id_len,
                        v->trip->id);
        return;
    }
    case -EADDRINUSE: fl_reply_error(ctx->reply, "ERR trip id already exists"); return;
    case -ERANGE: reply_future(ctx); return;
    default: fl_reply_error(ctx->reply, "ERR invalid trip"); return;
    }
    log_trip_start(ctx, t, ts);
    fl_server_emit(ctx->server, FL_EV_TRIP_STARTED, NULL, t);
    fl_reply_bulk(ctx->reply, t->id, t->id_len);
}

FL_CMD(trip_end)
{
    int id_at = 0, had_ts, reason = FL_TRIP_ENDED;
    long long ts = (long long)ctx->now_ms;
    if (arg_id(ctx, 1, "vehicle") ||
        parse_trip_opts(ctx, 0, &id_at, &ts, &had_ts, &reason))
        return;
    const fl_fleet_config *fc = fl_fleet_get_config(ctx->server->fleet);
    if (ts > admission_now(ctx) && ts - admission_now(ctx) > fc->max_future_ms) {
        reply_future(ctx);
        return;
    }
    const fl_trip *t;
    int rc = fl_fleet_trip_end(ctx->server->fleet, ctx->argv[1], ctx->argvlen[1],
                               ts, reason, &t);
    if (rc == -ENOENT) {
        reply_unknown_vehicle(ctx, 1);
        return;
    }
    if (rc != 0) {
        fl_reply_errorf(ctx->reply, "ERR vehicle '%.*s' has no running trip",
                        (int)ctx->argvlen[1], ctx->argv[1]);
        return;
    }
    log_with_ts(ctx, had_ts, ts, 0);
    fl_server_emit(ctx->server, FL_EV_TRIP_ENDED, NULL, t);
    reply_trip(ctx, t, 0);
}

FL_CMD(trip_get)
{
    const fl_trip *t = fl_fleet_trip(ctx->server->fleet, ctx->argv[1],
                                     ctx->argvlen[1]);
    if (!t) {
        fl_reply_errorf(ctx->reply, "ERR unknown trip '%.*s'",
                        (int)ctx->argvlen[1], ctx->argv[1]);
        return;
    }
    reply_trip(ctx, t, 1);
}

static int trip_overlaps(const fl_trip *t, long long from, long long to)
{
    int64_t end = t->end_ms ? t->end_ms : t->last_ms;
    return t->start_ms <= to && end >= from;
}

/* TRIP.LIST vehicle [FROM ms] [TO ms] [COUNT n] [WITHPATH]: newest first,
 * the running trip first when it overlaps. */
FL_CMD(trip_list)
{
    long long from = 0, to = INT64_MAX, count = 0;
    int with_path = 0;
    for (int i = 2; i < ctx->argc; i++) {
        int has_value = i + 1 < ctx->argc;
        if (arg_is(ctx, i, "withpath")) with_path = 1;
        else if (arg_is(ctx, i, "from") && has_value) {
            if (fl_arg_ll(ctx, ++i, &from)) return;
        } else if (arg_is(ctx, i, "to") && has_value) {
            if (fl_arg_ll(ctx, ++i, &to)) return;
        } else if (arg_is(ctx, i, "count") && has_value) {
            if (fl_arg_ll(ctx, ++i, &count)) return;
            if (count <= 0) {
                fl_reply_error(ctx->reply, "ERR COUNT must be > 0");
                return;
            }
        } else {
            fl_reply_syntax_error(ctx);
            return;
        }
    }
    const fl_fleet *f = ctx->server->fleet;
    const fl_vehicle *v = fl_fleet_vehicle(f, ctx->argv[1], ctx->argvlen[1]);
    size_t h = fl_reply_defer(ctx->reply);
    long n = 0;
    if (v && v->trip && trip_overlaps(v->trip, from, to)) {
        reply_trip(ctx, v->trip, with_path);
        n++;
    }
    for (const fl_trip *t = fl_fleet_trips_of(f, ctx->argv[1], ctx->argvlen[1]);
         t && (!count || n < count); t = t->volder) {
        if (!trip_overlaps(t, from, to)) continue;
        reply_trip(ctx, t, with_path);
        n++;
    }
    fl_reply_set_deferred(ctx->reply, h, '*', n);
}

/* ---- AREA.* ---- */

typedef struct cells_reply {
    fl_reply *r;
    long n, limit;
} cells_reply;

static void reply_cell(fl_reply *r, const fl_cell_count *c)
{
    char name[FL_CELL_MAX_LEVEL + 1];
    fl_cell_name(c->cell, c->level, name);
    fl_reply_array(r, 1 + FL_VS_COUNT);
    fl_reply_bulk_str(r, name);
    for (int s = 0; s < FL_VS_COUNT; s++) fl_reply_int(r, c->by_status[s]);
}

static int cells_each(void *ud, const fl_cell_count *c)
{
    cells_reply *cr = ud;
    reply_cell(cr->r, c);
    return ++cr->n >= cr->limit;
}

/* AREA.SUPPLY precision [BOX minlon minlat maxlon maxlat] [LIMIT n]:
 * [cell, available, busy, offline] for every non-empty cell. */
FL_CMD(area_supply)
{
    long long level, limit = 100000;
    double box[4];
    int has_box = 0;
    if (fl_arg_ll(ctx, 1, &level)) return;
    if (level < FL_CELL_MIN_LEVEL || level > FL_CELL_MAX_LEVEL) {
        fl_reply_errorf(ctx->reply, "ERR precision must be %d to %d geohash characters",
                        FL_CELL_MIN_LEVEL, FL_CELL_MAX_LEVEL);
        return;
    }
    for (int i = 2; i < ctx->argc; i++) {
        if (arg_is(ctx, i, "box") && i + 4 < ctx->argc) {
            if (arg_coords(ctx, i + 1, &box[0], &box[1]) ||
                arg_coords(ctx, i + 3, &box[2], &box[3]))
                return;
            has_box = 1;
            i += 4;
        } else if (arg_is(ctx, i, "limit") && i + 1 < ctx->argc) {
            if (fl_arg_ll(ctx, ++i, &limit)) return;
            if (limit <= 0) {
                fl_reply_error(ctx->reply, "ERR LIMIT must be > 0");
                return;
            }
        } else {
            fl_reply_syntax_error(ctx);
            return;
        }
    }
    cells_reply cr = {ctx->reply, 0, limit};
    size_t h = fl_reply_defer(ctx->reply);
    (void)fl_fleet_cells(ctx->server->fleet, (int)level, has_box ? box : NULL,
                         cells_each, &cr);
    fl_reply_set_deferred(ctx->reply, h, '*', cr.n);
}

/* AREA.CELL geohash: [cell, available, busy, offline] of one cell. */
FL_CMD(area_cell)
{
    fl_cell_count c;
    if (fl_fleet_cell(ctx->server->fleet, ctx->argv[1], ctx->argvlen[1], &c)) {
        fl_reply_errorf(ctx->reply, "ERR cell must be a geohash of %d to %d characters",
                        FL_CELL_MIN_LEVEL, FL_CELL_MAX_LEVEL);
        return;
    }
    reply_cell(ctx->reply, &c);
}
