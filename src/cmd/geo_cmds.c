/*
 * geo_cmds.c - the GEO commands and the sorted-set reads of geo keys:
 * GEOADD, GEOPOS, GEODIST, GEOHASH, GEORADIUS[_RO], GEORADIUSBYMEMBER[_RO],
 * GEOSEARCH, GEOSEARCHSTORE, ZCARD, ZSCORE, ZRANK, ZREM, ZRANGE.
 *
 * Clients must not be able to tell fleetd from Redis 7.0 here, so each
 * handler follows Redis' own sequence of checks: which argument is parsed
 * first decides which error a malformed command gets, and key lookups
 * (WRONGTYPE) happen exactly where Redis does them. Option words are
 * compared like Redis' strcasecmp on C strings (an argument ends at its
 * first NUL byte for that purpose); numbers are parsed like string2d /
 * string2ll / strtod in the same places.
 *
 * Replies: distances are 4-decimal bulk strings, coordinates are Redis'
 * "human" long doubles (%.17Lf with trailing zeros removed; a RESP3 double
 * under HELLO 3), scores are %.17g doubles. The hot path (search replies)
 * writes RESP bytes straight into the output buffer.
 *
 * Geometry and member storage live in src/geo; this file only parses,
 * looks keys up and formats.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../db/db.h"
#include "../geo/geohash.h"
#include "../geo/geoset.h"
#include "cmd.h"
#include "server.h"

/* ---- argument helpers ---- */

/* Length of argument i as a C string: up to its first NUL byte. */
static size_t arg_clen(const fl_cmd_ctx *ctx, int i)
{
    const char *z = memchr(ctx->argv[i], '\0', ctx->argvlen[i]);
    return z ? (size_t)(z - ctx->argv[i]) : ctx->argvlen[i];
}

/* Redis compares option words with strcasecmp on NUL-terminated strings.
 * lit is lower case ASCII. */
static int opt_is(const fl_cmd_ctx *ctx, int i, const char *lit)
{
    size_t n = arg_clen(ctx, i);
    if (n != strlen(lit)) return 0;
    for (size_t k = 0; k < n; k++)
        if (tolower((unsigned char)ctx->argv[i][k]) != (unsigned char)lit[k])
            return 0;
    return 1;
}

/* A NUL-terminated copy of argument i for the strto* functions; frees
 * with arg_cstr_free. Short arguments use the caller's stack buffer. */
static char *arg_cstr(const fl_cmd_ctx *ctx, int i, char *stack, size_t cap)
{
    size_t n = ctx->argvlen[i];
    char *p = n < cap ? stack : fl_xmalloc(n + 1);
    memcpy(p, ctx->argv[i], n);
    p[n] = '\0';
    return p;
}

static void arg_cstr_free(char *p, const char *stack)
{
    if (p != stack) free(p);
}

/* getDoubleFromObjectOrReply: msg NULL means Redis' default message. */
static int arg_double(fl_cmd_ctx *ctx, int i, double *out, const char *msg)
{
    if (fl_parse_double(ctx->argv[i], ctx->argvlen[i], out) == 0) return 0;
    fl_reply_error(ctx->reply, msg ? msg : "ERR value is not a valid float");
    return -1;
}

static void reply_oom(fl_cmd_ctx *ctx)
{
    fl_reply_error(ctx->reply, "ERR out of memory");
}

/* The value under key i: 0 with *gs (NULL when missing), or -1 after
 * replying WRONGTYPE. */
static int lookup_geo(fl_cmd_ctx *ctx, int i, fl_geoset **gs)
{
    fl_obj *o = fl_db_get(ctx->server->db, ctx->argv[i], ctx->argvlen[i]);
    *gs = NULL;
    if (!o) return 0;
    if (o->type != FL_OBJ_GEO) {
        fl_reply_wrongtype(ctx);
        return -1;
    }
    *gs = o->u.geo;
    return 0;
}

/* extractLongLatOrReply: both numbers, then the range check. */
static int arg_lonlat(fl_cmd_ctx *ctx, int i, double xy[2])
{
    if (arg_double(ctx, i, &xy[0], NULL) || arg_double(ctx, i + 1, &xy[1], NULL))
        return -1;
    if (!fl_geo_coords_valid(xy[0], xy[1])) {
        /* %f of a huge value is long: size the buffer for the worst case. */
        char msg[1024];
        int k = snprintf(msg, sizeof(msg),
                         "ERR invalid longitude,latitude pair %f,%f", xy[0], xy[1]);
        fl_reply_error(ctx->reply, k > 0 ? msg : "ERR invalid longitude,latitude pair");
        return -1;
    }
    return 0;
}

/* extractUnitOrReply: meters per unit, or -1 after replying. */
static double arg_unit(fl_cmd_ctx *ctx, int i)
{
    if (opt_is(ctx, i, "m")) return 1;
    if (opt_is(ctx, i, "km")) return 1000;
    if (opt_is(ctx, i, "ft")) return 0.3048;
    if (opt_is(ctx, i, "mi")) return 1609.34;
    fl_reply_error(ctx->reply,
                   "ERR unsupported unit provided. please use M, KM, FT, MI");
    return -1;
}

/* extractDistanceOrReply: radius and unit. */
static int arg_radius(fl_cmd_ctx *ctx, int i, fl_geo_shape *s)
{
    double r;
    if (arg_double(ctx, i, &r, "ERR need numeric radius")) return -1;
    if (r < 0) {
        fl_reply_error(ctx->reply, "ERR radius cannot be negative");
        return -1;
    }
    double conv = arg_unit(ctx, i + 1);
    if (conv < 0) return -1;
    s->radius = r;
    s->conversion = conv;
    return 0;
}

/* extractBoxOrReply: width, height and unit. */
static int arg_box(fl_cmd_ctx *ctx, int i, fl_geo_shape *s)
{
    double w, h;
    if (arg_double(ctx, i, &w, "ERR need numeric width") ||
        arg_double(ctx, i + 1, &h, "ERR need numeric height"))
        return -1;
    if (h < 0 || w < 0) {
        fl_reply_error(ctx->reply, "ERR height or width cannot be negative");
        return -1;
    }
    double conv = arg_unit(ctx, i + 2);
    if (conv < 0) return -1;
    s->width = w;
    s->height = h;
    s->conversion = conv;
    return 0;
}

/* ---- reply helpers ---- */

/* Writes v in decimal at p; returns the length. */
/* Distances with four decimals as Redis 7.0's addReplyDoubleDistance
 * writes them (fixedpoint_d2string): d * 10^4 rounded to the nearest
 * integer with ties to even (llrint), then printed as a fixed-point
 * number. This differs from printf("%.4f") when d * 10^4 lands within
 * rounding error of .5, so it must be done this way, not with printf. */
static size_t fmt_dist(double d, char *buf)
{
    if (d == 0) {
        memcpy(buf, "0.0000", 6);
        return 6;
    }
    long long v = llrint(d * 10000.0);
    size_t k = 0;
    unsigned long long u = (unsigned long long)v;
    if (v < 0) {
        buf[k++] = '-';
        u = 0 - u;
    }
    k += fl_fmt_u64(buf + k, u / 10000);
    unsigned f = (unsigned)(u % 10000);
    buf[k++] = '.';
    buf[k++] = (char)('0' + f / 1000);
    buf[k++] = (char)('0' + f / 100 % 10);
    buf[k++] = (char)('0' + f / 10 % 10);
    buf[k++] = (char)('0' + f % 10);
    return k;
}

static void reply_dist(fl_reply *r, double d)
{
    char buf[32];
    fl_reply_bulk(r, buf, fmt_dist(d, buf));
}

/* Redis' ld2string(LD_STR_HUMAN) of a double: "%.17Lf" (the same digits
 * as "%.17f" for a value that is a double), trailing zeros and a trailing
 * dot removed, "-0" written as "0". */
static size_t fmt_human(double d, char *buf, size_t cap)
{
    if (isinf(d)) {
        int k = snprintf(buf, cap, "%s", d > 0 ? "inf" : "-inf");
        return k < 0 ? 0 : (size_t)k;
    }
    int k = snprintf(buf, cap, "%.17f", d);
    if (k < 0) return 0;
    size_t l = (size_t)k < cap ? (size_t)k : cap - 1;
    if (memchr(buf, '.', l)) {
        while (l > 0 && buf[l - 1] == '0') l--;
        if (l > 0 && buf[l - 1] == '.') l--;
    }
    if (l == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        l = 1;
    }
    return l;
}

/* addReplyHumanLongDouble: a bulk string in RESP2, a double in RESP3. */
static void reply_human(fl_reply *r, double d)
{
    char buf[400];
    size_t n = fmt_human(d, buf, sizeof(buf));
    if (r->proto < 3) {
        fl_reply_bulk(r, buf, n);
        return;
    }
    fl_reply_line(r, ',', buf, n);
}

static void reply_member(fl_reply *r, const fl_zmember *m)
{
    fl_reply_bulk(r, m->name, m->len);
}

/* ---- GEOADD ---- */

/* A per-key hash seed: derived from the server's random seed and the key,
 * so it needs no clock and differs between keys and between runs. */
static uint64_t key_seed(const fl_cmd_ctx *ctx, int i)
{
    uint64_t h = ctx->server->run_id_seed ^ 0x9E3779B97F4A7C15ULL;
    for (size_t k = 0; k < ctx->argvlen[i]; k++) {
        h ^= (unsigned char)ctx->argv[i][k];
        h *= 0x100000001B3ULL;
    }
    return h ^ (h >> 29);
}

FL_CMD(geoadd)
{
    int nx = 0, xx = 0, ch = 0, first = 2;
    while (first < ctx->argc) {
        if (opt_is(ctx, first, "nx")) nx = 1;
        else if (opt_is(ctx, first, "xx")) xx = 1;
        else if (opt_is(ctx, first, "ch")) ch = 1;
        else break;
        first++;
    }
    if ((ctx->argc - first) % 3 || (xx && nx)) {
        fl_reply_syntax_error(ctx);
        return;
    }
    int n = (ctx->argc - first) / 3;
    /* Every pair is validated before anything is written, as in Redis. */
    uint64_t *scores = fl_xmalloc(((size_t)n + 1) * sizeof(*scores));
    for (int e = 0; e < n; e++) {
        double xy[2];
        if (arg_lonlat(ctx, first + e * 3, xy)) goto out;
        scores[e] = fl_geo_score(xy[0], xy[1]);
    }
    if (n == 0) { /* ZADD's own check: no score/member pairs */
        fl_reply_syntax_error(ctx);
        goto out;
    }
    fl_geoset *gs;
    if (lookup_geo(ctx, 1, &gs)) goto out;
    if (!gs) {
        if (xx) {
            fl_reply_int(ctx->reply, 0);
            goto out;
        }
        gs = fl_geoset_new(key_seed(ctx, 1));
        if (!gs) {
            reply_oom(ctx);
            goto out;
        }
        fl_db_set_geo(ctx->server->db, ctx->argv[1], ctx->argvlen[1], gs);
    }
    long long added = 0, updated = 0;
    int flags = (nx ? FL_GEOSET_NX : 0) | (xx ? FL_GEOSET_XX : 0);
    for (int e = 0; e < n; e++) {
        int i = first + e * 3 + 2, outcome;
        if (fl_geoset_add(gs, ctx->argv[i], ctx->argvlen[i],
                          (double)scores[e], flags, &outcome)) {
            /* Never leave an empty set behind: Redis has no such keys. */
            if (fl_geoset_card(gs) == 0)
                (void)fl_db_del(ctx->server->db, ctx->argv[1], ctx->argvlen[1]);
            /* The members before this one are in: log them (the same
             * command cut after them), or a restart would lose them. */
            if (added + updated) fl_cmd_log(ctx, i - 2, ctx->argv, ctx->argvlen);
            reply_oom(ctx);
            goto out;
        }
        added += outcome == FL_GEOSET_ADDED;
        updated += outcome == FL_GEOSET_UPDATED;
    }
    if (added + updated) fl_cmd_log(ctx, ctx->argc, ctx->argv, ctx->argvlen);
    fl_reply_int(ctx->reply, ch ? added + updated : added);
out:
    free(scores);
}

/* ---- GEOPOS, GEOHASH, GEODIST ---- */

/* GEOPOS and GEOHASH: one reply per member argument, a null for a member
 * (or key) that is not there. */
typedef void member_reply_fn(fl_reply *r, const fl_geoset *gs,
                             const fl_zmember *m);

static void reply_per_member(fl_cmd_ctx *ctx, int null_array,
                             member_reply_fn *fn)
{
    fl_geoset *gs;
    if (lookup_geo(ctx, 1, &gs)) return;
    fl_reply_array(ctx->reply, ctx->argc - 2);
    for (int i = 2; i < ctx->argc; i++) {
        const fl_zmember *m = gs ? fl_geoset_find(gs, ctx->argv[i], ctx->argvlen[i]) : NULL;
        if (m) fn(ctx->reply, gs, m);
        else if (null_array) fl_reply_null_array(ctx->reply);
        else fl_reply_null(ctx->reply);
    }
}

static void reply_position(fl_reply *r, const fl_geoset *gs, const fl_zmember *m)
{
    double xy[2];
    fl_geoset_point(gs, m, xy);
    fl_reply_array(r, 2);
    reply_human(r, xy[0]);
    reply_human(r, xy[1]);
}

static void reply_hash_string(fl_reply *r, const fl_geoset *gs, const fl_zmember *m)
{
    char buf[12];
    fl_geo_hash_string(fl_geoset_geohash(gs, m), buf);
    fl_reply_bulk(r, buf, 11);
}

FL_CMD(geopos)
{
    reply_per_member(ctx, 1, reply_position);
}

FL_CMD(geohash)
{
    reply_per_member(ctx, 0, reply_hash_string);
}

FL_CMD(geodist)
{
    double to_meter = 1;
    if (ctx->argc == 5) {
        to_meter = arg_unit(ctx, 4);
        if (to_meter < 0) return;
    } else if (ctx->argc > 5) {
        fl_reply_syntax_error(ctx);
        return;
    }
    fl_geoset *gs;
    if (lookup_geo(ctx, 1, &gs)) return;
    const fl_zmember *a = gs ? fl_geoset_find(gs, ctx->argv[2], ctx->argvlen[2]) : NULL;
    const fl_zmember *b = gs ? fl_geoset_find(gs, ctx->argv[3], ctx->argvlen[3]) : NULL;
    if (!a || !b) {
        fl_reply_null(ctx->reply);
        return;
    }
    double p[2], q[2];
    fl_geoset_point(gs, a, p);
    fl_geoset_point(gs, b, q);
    reply_dist(ctx->reply, fl_geo_distance(p[0], p[1], q[0], q[1]) / to_meter);
}

/* ---- the search family ---- */

enum {
    RADIUS_COORDS = 1,   /* GEORADIUS: centre from arguments */
    RADIUS_MEMBER = 2,   /* GEORADIUSBYMEMBER: centre from a member */
    RADIUS_NOSTORE = 4,  /* the _RO variants */
    GEOSEARCH = 8,       /* FROM... / BY... options */
    GEOSEARCHSTORE = 16  /* destination is argv[1], STOREDIST is a flag */
};

typedef struct search_opts {
    fl_geo_query q;
    int withdist, withhash, withcoord;
    int frommember, fromloc, byradius, bybox;
    int storedist;
    int store_idx;       /* argv index of the destination key, or 0 */
} search_opts;

/* The centre from a member; replies and returns -1 when it is absent. */
static int centre_from_member(fl_cmd_ctx *ctx, const fl_geoset *gs, int i,
                              fl_geo_shape *s)
{
    const fl_zmember *m = fl_geoset_find(gs, ctx->argv[i], ctx->argvlen[i]);
    if (!m) {
        fl_reply_error(ctx->reply, "ERR could not decode requested zset member");
        return -1;
    }
    double xy[2];
    fl_geoset_point(gs, m, xy);
    s->lon = xy[0];
    s->lat = xy[1];
    return 0;
}

/* The fixed arguments before the options; returns the index of the first
 * option, or -1 after replying. */
static int parse_base(fl_cmd_ctx *ctx, const fl_geoset *gs, int flags,
                      search_opts *o)
{
    fl_geo_shape *s = &o->q.shape;
    if (flags & RADIUS_COORDS) {
        double xy[2];
        s->type = FL_GEO_CIRCLE;
        if (arg_lonlat(ctx, 2, xy)) return -1;
        s->lon = xy[0];
        s->lat = xy[1];
        return arg_radius(ctx, 4, s) ? -1 : 6;
    }
    if (flags & RADIUS_MEMBER) {
        if (!gs) return 5; /* parse on to choose the empty reply */
        s->type = FL_GEO_CIRCLE;
        if (centre_from_member(ctx, gs, 2, s)) return -1;
        return arg_radius(ctx, 3, s) ? -1 : 5;
    }
    if (flags & GEOSEARCHSTORE) {
        o->store_idx = 1;
        return 3;
    }
    return 2;
}

/* One option at argv[i] (remaining = arguments from i on). Returns how many
 * arguments it used, or -1 after replying. */
static int parse_option(fl_cmd_ctx *ctx, const fl_geoset *gs, int flags,
                        search_opts *o, int i, int remaining)
{
    int can_store = !(flags & RADIUS_NOSTORE) && !(flags & GEOSEARCH);
    int search = (flags & GEOSEARCH) != 0;
    if (opt_is(ctx, i, "withdist")) o->withdist = 1;
    else if (opt_is(ctx, i, "withhash")) o->withhash = 1;
    else if (opt_is(ctx, i, "withcoord")) o->withcoord = 1;
    else if (opt_is(ctx, i, "any")) o->q.any = 1;
    else if (opt_is(ctx, i, "asc")) o->q.sort = FL_GEO_SORT_ASC;
    else if (opt_is(ctx, i, "desc")) o->q.sort = FL_GEO_SORT_DESC;
    else if (opt_is(ctx, i, "count") && remaining > 1) {
        long long c;
        if (fl_arg_ll(ctx, i + 1, &c)) return -1;
        if (c <= 0) {
            fl_reply_error(ctx->reply, "ERR COUNT must be > 0");
            return -1;
        }
        o->q.count = c;
        return 2;
    } else if (opt_is(ctx, i, "store") && remaining > 1 && can_store) {
        o->store_idx = i + 1;
        o->storedist = 0;
        return 2;
    } else if (opt_is(ctx, i, "storedist") && remaining > 1 && can_store) {
        o->store_idx = i + 1;
        o->storedist = 1;
        return 2;
    } else if (opt_is(ctx, i, "storedist") && search && (flags & GEOSEARCHSTORE)) {
        o->storedist = 1;
    } else if (opt_is(ctx, i, "frommember") && remaining > 1 && search &&
               !o->fromloc) {
        /* Without a key, Redis parses on and answers empty at the end. */
        if (gs && centre_from_member(ctx, gs, i + 1, &o->q.shape)) return -1;
        o->frommember = 1;
        return 2;
    } else if (opt_is(ctx, i, "fromlonlat") && remaining > 2 && search &&
               !o->frommember) {
        double xy[2];
        if (arg_lonlat(ctx, i + 1, xy)) return -1;
        o->q.shape.lon = xy[0];
        o->q.shape.lat = xy[1];
        o->fromloc = 1;
        return 3;
    } else if (opt_is(ctx, i, "byradius") && remaining > 2 && search &&
               !o->bybox) {
        if (arg_radius(ctx, i + 1, &o->q.shape)) return -1;
        o->q.shape.type = FL_GEO_CIRCLE;
        o->byradius = 1;
        return 3;
    } else if (opt_is(ctx, i, "bybox") && remaining > 3 && search &&
               !o->byradius) {
        if (arg_box(ctx, i + 1, &o->q.shape)) return -1;
        o->q.shape.type = FL_GEO_BOX;
        o->bybox = 1;
        return 4;
    } else {
        fl_reply_syntax_error(ctx);
        return -1;
    }
    return 1;
}

/* The checks Redis makes once all options are read. */
static int check_options(fl_cmd_ctx *ctx, int flags, const search_opts *o)
{
    if (o->store_idx && (o->withdist || o->withhash || o->withcoord)) {
        fl_reply_errorf(ctx->reply,
            "ERR %s is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            (flags & GEOSEARCHSTORE) ? "GEOSEARCHSTORE" : "STORE option in GEORADIUS");
        return -1;
    }
    int nlen = (int)arg_clen(ctx, 0);
    if ((flags & GEOSEARCH) && !(o->frommember || o->fromloc)) {
        fl_reply_errorf(ctx->reply,
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for %.*s",
            nlen, ctx->argv[0]);
        return -1;
    }
    if ((flags & GEOSEARCH) && !(o->byradius || o->bybox)) {
        fl_reply_errorf(ctx->reply,
            "ERR exactly one of BYRADIUS and BYBOX can be specified for %.*s",
            nlen, ctx->argv[0]);
        return -1;
    }
    if (o->q.any && !o->q.count) {
        fl_reply_error(ctx->reply, "ERR the ANY argument requires COUNT argument");
        return -1;
    }
    return 0;
}

/* Members are scattered in memory and a reply touches each one: asking
 * for them this many entries ahead overlaps the cache misses. */
#define PREFETCH_AHEAD 12

static void reply_matches(fl_cmd_ctx *ctx, const fl_geoset *gs,
                          const search_opts *o, const fl_geo_result *res)
{
    fl_reply *r = ctx->reply;
    int extra = o->withdist + o->withhash + o->withcoord;
    double conv = o->q.shape.conversion;
    fl_reply_array(r, (long)res->n);
    for (size_t i = 0; i < res->n; i++) {
        const fl_geo_match *e = &res->v[i];
        if (i + PREFETCH_AHEAD < res->n) {
            const char *m = (const char *)res->v[i + PREFETCH_AHEAD].m;
            __builtin_prefetch(m);
            __builtin_prefetch(m + 24); /* records may straddle two lines */
        }
        if (extra) fl_reply_array(r, (long)(extra + 1));
        reply_member(r, e->m);
        if (o->withdist) reply_dist(r, e->dist / conv);
        if (o->withhash)
            fl_reply_int(r, (long long)fl_geoset_value(gs, e->m->score));
        if (o->withcoord) {
            double xy[2];
            fl_geoset_point(gs, e->m, xy);
            fl_reply_array(r, 2);
            reply_human(r, xy[0]);
            reply_human(r, xy[1]);
        }
    }
}

/* STORE / STOREDIST: a new set with the results, or no key at all. */
static void store_matches(fl_cmd_ctx *ctx, const fl_geoset *gs,
                          const search_opts *o, const fl_geo_result *res)
{
    int si = o->store_idx;
    if (res->n == 0) {
        if (fl_db_del(ctx->server->db, ctx->argv[si], ctx->argvlen[si])) fl_cmd_log(ctx, ctx->argc, ctx->argv, ctx->argvlen);
        fl_reply_int(ctx->reply, 0);
        return;
    }
    int kind = o->storedist ? FL_GEOSET_DOUBLE : fl_geoset_kind(gs);
    fl_geoset *dst = fl_geoset_new_kind(key_seed(ctx, si), kind);
    if (!dst) {
        reply_oom(ctx);
        return;
    }
    for (size_t i = 0; i < res->n; i++) {
        const fl_geo_match *e = &res->v[i];
        double score = o->storedist ? e->dist / o->q.shape.conversion
                                    : fl_geoset_value(gs, e->m->score);
        int outcome;
        if (fl_geoset_add(dst, e->m->name, e->m->len, score, 0, &outcome)) {
            fl_geoset_free(dst);
            reply_oom(ctx);
            return;
        }
    }
    /* Built completely first: the source may be the key being replaced. */
    fl_db_set_geo(ctx->server->db, ctx->argv[si], ctx->argvlen[si], dst);
    fl_cmd_log(ctx, ctx->argc, ctx->argv, ctx->argvlen);
    fl_reply_int(ctx->reply, (long long)res->n);
}

/* Redis' georadiusGeneric: src is the argv index of the source key. */
static void georadius_generic(fl_cmd_ctx *ctx, int src, int flags)
{
    fl_geoset *gs;
    if (lookup_geo(ctx, src, &gs)) return;
    search_opts o;
    memset(&o, 0, sizeof(o));
    int i = parse_base(ctx, gs, flags, &o);
    if (i < 0) return;
    while (i < ctx->argc) {
        int used = parse_option(ctx, gs, flags, &o, i, ctx->argc - i);
        if (used < 0) return;
        i += used;
    }
    if (check_options(ctx, flags, &o)) return;
    if (!gs) {
        if (o.store_idx) {
            if (fl_db_del(ctx->server->db, ctx->argv[o.store_idx],
                          ctx->argvlen[o.store_idx]))
                fl_cmd_log(ctx, ctx->argc, ctx->argv, ctx->argvlen);
            fl_reply_int(ctx->reply, 0);
        } else {
            fl_reply_array(ctx->reply, 0);
        }
        return;
    }
    o.q.want_dist = o.withdist ? FL_GEO_DIST_PRINT :
                    (o.store_idx && o.storedist) ? FL_GEO_DIST_EXACT : FL_GEO_DIST_NONE;
    fl_geo_result res = {NULL, 0, 0};
    if (fl_geoset_search(gs, &o.q, &res)) {
        fl_geo_result_free(&res);
        reply_oom(ctx);
        return;
    }
    if (o.store_idx) store_matches(ctx, gs, &o, &res);
    else reply_matches(ctx, gs, &o, &res);
    fl_geo_result_free(&res);
}

FL_CMD(georadius) { georadius_generic(ctx, 1, RADIUS_COORDS); }

FL_CMD(georadius_ro)
{
    georadius_generic(ctx, 1, RADIUS_COORDS | RADIUS_NOSTORE);
}

FL_CMD(georadiusbymember) { georadius_generic(ctx, 1, RADIUS_MEMBER); }

FL_CMD(georadiusbymember_ro)
{
    georadius_generic(ctx, 1, RADIUS_MEMBER | RADIUS_NOSTORE);
}

FL_CMD(geosearch) { georadius_generic(ctx, 1, GEOSEARCH); }

FL_CMD(geosearchstore)
{
    georadius_generic(ctx, 2, GEOSEARCH | GEOSEARCHSTORE);
}

/* ---- sorted-set reads and ZREM ---- */

FL_CMD(zcard)
{
    fl_geoset *gs;
    if (lookup_geo(ctx, 1, &gs)) return;
    fl_reply_int(ctx->reply, gs ? (long long)fl_geoset_card(gs) : 0);
}

FL_CMD(zscore)
{
    fl_geoset *gs;
    if (lookup_geo(ctx, 1, &gs)) return;
    const fl_zmember *m = gs ? fl_geoset_find(gs, ctx->argv[2], ctx->argvlen[2]) : NULL;
    if (!m) fl_reply_null(ctx->reply);
    else fl_reply_double(ctx->reply, fl_geoset_value(gs, m->score));
}

FL_CMD(zrank)
{
    fl_geoset *gs;
    if (lookup_geo(ctx, 1, &gs)) return;
    size_t rank;
    if (!gs || fl_geoset_rank(gs, ctx->argv[2], ctx->argvlen[2], &rank))
        fl_reply_null(ctx->reply);
    else
        fl_reply_int(ctx->reply, (long long)rank);
}

FL_CMD(zrem)
{
    fl_geoset *gs;
    if (lookup_geo(ctx, 1, &gs)) return;
    if (!gs) {
        fl_reply_int(ctx->reply, 0);
        return;
    }
    long long deleted = 0;
    for (int i = 2; i < ctx->argc; i++) {
        deleted += fl_geoset_remove(gs, ctx->argv[i], ctx->argvlen[i]);
        if (fl_geoset_card(gs) == 0) {
            /* Redis deletes the emptied key and stops looking. */
            (void)fl_db_del(ctx->server->db, ctx->argv[1], ctx->argvlen[1]);
            break;
        }
    }
    if (deleted) fl_cmd_log(ctx, ctx->argc, ctx->argv, ctx->argvlen);
    fl_reply_int(ctx->reply, deleted);
}

/* ---- ZRANGE ---- */

enum { RANGE_RANK, RANGE_SCORE, RANGE_LEX };

typedef struct score_range {
    double min, max;
    int minex, maxex;
} score_range;

/* One lex bound: '-' / '+' are the infinities, else (x or [x. */
typedef struct lex_bound {
    int inf;             /* -1: minus infinity, 1: plus infinity, 0: text */
    const char *p;
    size_t n;
} lex_bound;

typedef struct lex_range {
    lex_bound min, max;
    int minex, maxex;
} lex_range;

typedef struct range_emit {
    fl_reply *r;
    const fl_geoset *gs;
    int withscores;
} range_emit;

static void emit(const range_emit *e, const fl_zmember *m)
{
    if (e->withscores && e->r->proto >= 3) fl_reply_array(e->r, 2);
    reply_member(e->r, m);
    if (e->withscores) fl_reply_double(e->r, fl_geoset_value(e->gs, m->score));
}

/* zslParseRange for one bound: strtod of the C string, '(' for open. */
static int parse_score_bound(const fl_cmd_ctx *ctx, int i, double *v, int *ex)
{
    char stack[128];
    char *s = arg_cstr(ctx, i, stack, sizeof(stack));
    const char *p = s;
    *ex = 0;
    if (p[0] == '(') {
        p++;
        *ex = 1;
    }
    char *end;
    *v = strtod(p, &end);
    int bad = end[0] != '\0' || isnan(*v);
    arg_cstr_free(s, stack);
    return bad ? -1 : 0;
}

static int parse_lex_bound(const fl_cmd_ctx *ctx, int i, lex_bound *b, int *ex)
{
    const char *p = ctx->argv[i];
    size_t n = ctx->argvlen[i];
    /* Redis reads the C string: an empty or NUL-led argument is invalid. */
    if (n == 0) return -1;
    b->inf = 0;
    b->p = p + 1;
    b->n = n - 1;
    switch (p[0]) {
    case '+':
    case '-':
        if (n > 1 && p[1] != '\0') return -1;
        *ex = 1;
        b->inf = p[0] == '+' ? 1 : -1;
        return 0;
    case '(': *ex = 1; return 0;
    case '[': *ex = 0; return 0;
    default: return -1;
    }
}

/* sdscmplex: the infinities sort outside every string. */
static int lex_cmp(const lex_bound *a, const lex_bound *b)
{
    if (a->inf && a->inf == b->inf) return 0;
    if (a->inf < 0 || b->inf > 0) return -1;
    if (a->inf > 0 || b->inf < 0) return 1;
    size_t m = a->n < b->n ? a->n : b->n;
    int c = m ? memcmp(a->p, b->p, m) : 0;
    if (c) return c;
    return a->n < b->n ? -1 : (a->n > b->n);
}

static int lex_gte_min(const fl_zmember *m, const lex_range *lr)
{
    lex_bound v = {0, m->name, m->len};
    int c = lex_cmp(&v, &lr->min);
    return lr->minex ? c > 0 : c >= 0;
}

static int lex_lte_max(const fl_zmember *m, const lex_range *lr)
{
    lex_bound v = {0, m->name, m->len};
    int c = lex_cmp(&v, &lr->max);
    return lr->maxex ? c < 0 : c <= 0;
}

static int score_gte_min(double v, const score_range *sr)
{
    return sr->minex ? v > sr->min : v >= sr->min;
}

static int score_lte_max(double v, const score_range *sr)
{
    return sr->maxex ? v < sr->max : v <= sr->max;
}

static void range_by_rank(const range_emit *e, long long start, long long end,
                          int rev)
{
    long long llen = (long long)fl_geoset_card(e->gs);
    if (start < 0) start = llen + start;
    if (end < 0) end = llen + end;
    if (start < 0) start = 0;
    if (start > end || start >= llen) {
        fl_reply_array(e->r, 0);
        return;
    }
    if (end >= llen) end = llen - 1;
    long long n = end - start + 1;
    fl_reply_array(e->r, (long)(e->withscores && e->r->proto < 3 ? 2 * n : n));
    fl_zit it;
    uint64_t sc;
    fl_zmember *m;
    const fl_zindex *z = fl_geoset_index(e->gs);
    fl_zindex_seek_rank(z, (size_t)(rev ? llen - start : start), &it);
    for (long long k = 0; k < n; k++) {
        if (!(rev ? fl_zit_prev(&it, &sc, &m) : fl_zit_next(&it, &sc, &m))) break;
        emit(e, m);
    }
}

static void finish_deferred(const range_emit *e, size_t h, long n)
{
    if (e->withscores && e->r->proto < 3) n *= 2;
    fl_reply_set_deferred(e->r, h, '*', n);
}

static void range_by_score(const range_emit *e, const score_range *sr,
                           long long offset, long long limit, int rev)
{
    size_t h = fl_reply_defer(e->r);
    long n = 0;
    long long llen = (long long)fl_geoset_card(e->gs);
    /* A negative offset makes Redis step off the end: nothing. */
    if (offset < 0 || (offset > 0 && offset >= llen)) goto done;
    fl_zit it;
    uint64_t sc;
    fl_zmember *m;
    if (rev) fl_geoset_seek_value(e->gs, sr->max, !sr->maxex, &it);
    else fl_geoset_seek_value(e->gs, sr->min, sr->minex, &it);
    for (;;) {
        if (!(rev ? fl_zit_prev(&it, &sc, &m) : fl_zit_next(&it, &sc, &m))) break;
        if (offset > 0) {
            offset--;
            continue;
        }
        if (limit == 0) break;
        double v = fl_geoset_value(e->gs, sc);
        if (rev ? !score_gte_min(v, sr) : !score_lte_max(v, sr)) break;
        emit(e, m);
        n++;
        if (limit > 0) limit--;
    }
done:
    finish_deferred(e, h, n);
}

/* BYLEX as Redis runs it on a listpack: a linear walk in (score, name)
 * order, which is also what it does on any set whose names ascend with
 * their scores. */
static void range_by_lex(const range_emit *e, const lex_range *lr,
                         long long offset, long long limit, int rev)
{
    size_t h = fl_reply_defer(e->r);
    long n = 0;
    const fl_zindex *z = fl_geoset_index(e->gs);
    size_t card = fl_geoset_card(e->gs);
    fl_zit it;
    uint64_t sc;
    fl_zmember *m = NULL, *first, *last;
    int c = lex_cmp(&lr->min, &lr->max);
    if (card == 0 || c > 0 || (c == 0 && (lr->minex || lr->maxex))) goto done;
    fl_zindex_seek_rank(z, card, &it);
    if (!fl_zit_prev(&it, &sc, &last) || !lex_gte_min(last, lr)) goto done;
    fl_zindex_seek_rank(z, 0, &it);
    if (!fl_zit_next(&it, &sc, &first) || !lex_lte_max(first, lr)) goto done;
    /* Find the starting element the way zzlFirst/LastInLexRange do. */
    fl_zindex_seek_rank(z, rev ? card : 0, &it);
    int found = 0;
    while (rev ? fl_zit_prev(&it, &sc, &m) : fl_zit_next(&it, &sc, &m)) {
        if (rev ? lex_lte_max(m, lr) : lex_gte_min(m, lr)) {
            found = rev ? lex_gte_min(m, lr) : lex_lte_max(m, lr);
            break;
        }
    }
    if (!found || offset < 0) goto done;
    for (int have = 1; have;
         have = rev ? fl_zit_prev(&it, &sc, &m) : fl_zit_next(&it, &sc, &m)) {
        if (offset > 0) {
            offset--;
            continue;
        }
        if (limit == 0) break;
        if (rev ? !lex_gte_min(m, lr) : !lex_lte_max(m, lr)) break;
        emit(e, m);
        n++;
        if (limit > 0) limit--;
    }
done:
    finish_deferred(e, h, n);
}

typedef struct zrange_opts {
    int type, rev, withscores;
    long long offset, limit;
} zrange_opts;

static int parse_zrange_opts(fl_cmd_ctx *ctx, zrange_opts *zo)
{
    int type_set = 0;
    zo->type = RANGE_RANK;
    zo->offset = 0;
    zo->limit = -1;
    for (int j = 4; j < ctx->argc; j++) {
        int left = ctx->argc - j - 1;
        if (opt_is(ctx, j, "withscores")) {
            zo->withscores = 1;
        } else if (opt_is(ctx, j, "limit") && left >= 2) {
            if (fl_arg_ll(ctx, j + 1, &zo->offset) || fl_arg_ll(ctx, j + 2, &zo->limit))
                return -1;
            j += 2;
        } else if (!zo->rev && opt_is(ctx, j, "rev")) {
            zo->rev = 1;
        } else if (!type_set && opt_is(ctx, j, "bylex")) {
            zo->type = RANGE_LEX;
            type_set = 1;
        } else if (!type_set && opt_is(ctx, j, "byscore")) {
            zo->type = RANGE_SCORE;
            type_set = 1;
        } else {
            fl_reply_syntax_error(ctx);
            return -1;
        }
    }
    if (zo->limit != -1 && zo->type == RANGE_RANK) {
        fl_reply_error(ctx->reply, "ERR syntax error, LIMIT is only supported in "
                                   "combination with either BYSCORE or BYLEX");
        return -1;
    }
    if (zo->withscores && zo->type == RANGE_LEX) {
        fl_reply_error(ctx->reply,
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX");
        return -1;
    }
    return 0;
}

FL_CMD(zrange)
{
    zrange_opts zo;
    memset(&zo, 0, sizeof(zo));
    if (parse_zrange_opts(ctx, &zo)) return;
    /* BYSCORE/BYLEX with REV take the range as max, min. */
    int minidx = 2, maxidx = 3;
    if (zo.rev && zo.type != RANGE_RANK) {
        minidx = 3;
        maxidx = 2;
    }
    long long start = 0, end = 0;
    score_range sr;
    lex_range lr;
    if (zo.type == RANGE_RANK) {
        if (fl_arg_ll(ctx, minidx, &start) || fl_arg_ll(ctx, maxidx, &end)) return;
    } else if (zo.type == RANGE_SCORE) {
        if (parse_score_bound(ctx, minidx, &sr.min, &sr.minex) ||
            parse_score_bound(ctx, maxidx, &sr.max, &sr.maxex)) {
            fl_reply_error(ctx->reply, "ERR min or max is not a float");
            return;
        }
    } else if (parse_lex_bound(ctx, minidx, &lr.min, &lr.minex) ||
               parse_lex_bound(ctx, maxidx, &lr.max, &lr.maxex)) {
        fl_reply_error(ctx->reply, "ERR min or max not valid string range item");
        return;
    }
    fl_geoset *gs;
    fl_obj *o = fl_db_get(ctx->server->db, ctx->argv[1], ctx->argvlen[1]);
    if (!o) {
        fl_reply_array(ctx->reply, 0);
        return;
    }
    if (lookup_geo(ctx, 1, &gs)) return;
    range_emit e = {ctx->reply, gs, zo.withscores};
    if (zo.type == RANGE_RANK) range_by_rank(&e, start, end, zo.rev);
    else if (zo.type == RANGE_SCORE) range_by_score(&e, &sr, zo.offset, zo.limit, zo.rev);
    else range_by_lex(&e, &lr, zo.offset, zo.limit, zo.rev);
}
