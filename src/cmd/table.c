/*
 * table.c - the command table and the dispatcher every protocol edge uses.
 *
 * The table is a sorted array searched with bsearch: about 40 entries, so a
 * lookup is six string compares and the whole table sits in a few cache
 * lines, which beats a hash table here. Arity and key positions are Redis
 * 7.0's so COMMAND INFO answers what client libraries expect. The refusal
 * messages (unknown command, arity, NOAUTH) are Redis' own, character for
 * character.
 */
#include "cmd.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server.h"
#include "../store/log.h"

#define W FL_CMD_WRITE
#define R FL_CMD_READONLY
#define N FL_CMD_NOAUTH
#define F FL_CMD_FAST
#define A FL_CMD_ADMIN
#define L FL_CMD_LOADING

/* Sorted by name (strcmp order). */
const fl_command fl_commands[] = {
    {"area.cell", fl_cmd_area_cell, 2, R | F, 0, 0, 0, "fleet",
     "Vehicle counts by status in one geohash cell.", "0.2.0"},
    {"area.supply", fl_cmd_area_supply, -2, R, 0, 0, 0, "fleet",
     "Vehicle counts by status per cell at a geohash precision.", "0.2.0"},
    {"auth", fl_cmd_auth, -2, N | F | L, 0, 0, 0, "connection",
     "Authenticates the connection.", "1.0.0"},
    {"bgsave", fl_cmd_bgsave, -1, A, 0, 0, 0, "server",
     "Writes a snapshot in the background and trims the log.", "1.0.0"},
    {"client", fl_cmd_client, -2, L, 0, 0, 0, "connection",
     "Connection management: ID, SETNAME, GETNAME, LIST, KILL.", "2.4.0"},
    {"command", fl_cmd_command, -1, L, 0, 0, 0, "server",
     "Details about commands: COUNT, INFO, DOCS, LIST.", "2.8.13"},
    {"config", fl_cmd_config, -2, A, 0, 0, 0, "server",
     "Reads or changes settings: GET, SET.", "2.0.0"},
    {"dbsize", fl_cmd_dbsize, 1, R | F, 0, 0, 0, "server",
     "Returns the number of keys.", "1.0.0"},
    {"del", fl_cmd_del, -2, W, 1, -1, 1, "generic",
     "Deletes one or more keys.", "1.0.0"},
    {"echo", fl_cmd_echo, 2, F | L, 0, 0, 0, "connection",
     "Returns the given string.", "1.0.0"},
    {"exists", fl_cmd_exists, -2, R | F, 1, -1, 1, "generic",
     "Counts how many of the keys exist.", "1.0.0"},
    {"flushall", fl_cmd_flushall, -1, W, 0, 0, 0, "server",
     "Removes all keys.", "1.0.0"},
    {"flushdb", fl_cmd_flushdb, -1, W, 0, 0, 0, "server",
     "Removes all keys of the current database.", "1.0.0"},
    {"geoadd", fl_cmd_geoadd, -5, W, 1, 1, 1, "geo",
     "Adds or updates members with their longitude and latitude.", "3.2.0"},
    {"geodist", fl_cmd_geodist, -4, R, 1, 1, 1, "geo",
     "Returns the distance between two members.", "3.2.0"},
    {"geohash", fl_cmd_geohash, -2, R, 1, 1, 1, "geo",
     "Returns members' positions as geohash strings.", "3.2.0"},
    {"geopos", fl_cmd_geopos, -2, R, 1, 1, 1, "geo",
     "Returns members' longitude and latitude.", "3.2.0"},
    {"georadius", fl_cmd_georadius, -6, W, 1, 1, 1, "geo",
     "Members within a radius of a point (deprecated form).", "3.2.0"},
    {"georadius_ro", fl_cmd_georadius_ro, -6, R, 1, 1, 1, "geo",
     "Read-only GEORADIUS.", "3.2.10"},
    {"georadiusbymember", fl_cmd_georadiusbymember, -5, W, 1, 1, 1, "geo",
     "Members within a radius of a member (deprecated form).", "3.2.0"},
    {"georadiusbymember_ro", fl_cmd_georadiusbymember_ro, -5, R, 1, 1, 1,
     "geo", "Read-only GEORADIUSBYMEMBER.", "3.2.10"},
    {"geosearch", fl_cmd_geosearch, -7, R, 1, 1, 1, "geo",
     "Members inside a radius or box.", "6.2.0"},
    {"geosearchstore", fl_cmd_geosearchstore, -8, W, 1, 2, 1, "geo",
     "Stores the members inside a radius or box.", "6.2.0"},
    {"get", fl_cmd_get, 2, R | F, 1, 1, 1, "string",
     "Returns the string value of a key.", "1.0.0"},
    {"hello", fl_cmd_hello, -1, N | F | L, 0, 0, 0, "connection",
     "Handshake: protocol version, AUTH, SETNAME.", "6.0.0"},
    {"info", fl_cmd_info, -1, 0, 0, 0, 0, "server",
     "Information and statistics about the server.", "1.0.0"},
    {"keys", fl_cmd_keys, 2, R, 0, 0, 0, "generic",
     "Returns all key names that match a pattern.", "1.0.0"},
    {"ping", fl_cmd_ping, -1, F, 0, 0, 0, "connection",
     "Returns PONG or the argument.", "1.0.0"},
    {"quit", fl_cmd_quit, -1, N | F | L, 0, 0, 0, "connection",
     "Closes the connection.", "1.0.0"},
    {"scan", fl_cmd_scan, -2, R, 0, 0, 0, "generic",
     "Iterates over the key names.", "2.8.0"},
    {"select", fl_cmd_select, 2, F | L, 0, 0, 0, "connection",
     "Selects the database (only 0 exists).", "1.0.0"},
    {"set", fl_cmd_set, -3, W, 1, 1, 1, "string",
     "Sets the string value of a key.", "1.0.0"},
    {"time", fl_cmd_time, 1, F, 0, 0, 0, "server",
     "Returns the server time.", "2.6.0"},
    {"trip.end", fl_cmd_trip_end, -2, W | F, 0, 0, 0, "fleet",
     "Ends a vehicle's running trip.", "0.2.0"},
    {"trip.get", fl_cmd_trip_get, 2, R | F, 0, 0, 0, "fleet",
     "A trip with its metrics and path.", "0.2.0"},
    {"trip.list", fl_cmd_trip_list, -2, R, 0, 0, 0, "fleet",
     "A vehicle's trips, newest first, by time range.", "0.2.0"},
    {"trip.start", fl_cmd_trip_start, -2, W | F, 0, 0, 0, "fleet",
     "Starts a trip for a vehicle.", "0.2.0"},
    {"type", fl_cmd_type, 2, R | F, 1, 1, 1, "generic",
     "Returns the type of a key.", "1.0.0"},
    {"vehicle.count", fl_cmd_vehicle_count, -1, R | F, 0, 0, 0, "fleet",
     "Vehicles by status, in all fleets or one.", "0.2.0"},
    {"vehicle.del", fl_cmd_vehicle_del, -2, W | F, 0, 0, 0, "fleet",
     "Deletes vehicles; their running trips end.", "0.2.0"},
    {"vehicle.get", fl_cmd_vehicle_get, 2, R | F, 0, 0, 0, "fleet",
     "A vehicle's last position, status and trip.", "0.2.0"},
    {"vehicle.nearby", fl_cmd_vehicle_nearby, -5, R, 0, 0, 0, "fleet",
     "Vehicles within a radius, nearest first, by status and fleet.", "0.2.0"},
    {"vehicle.update", fl_cmd_vehicle_update, -4, W | F, 0, 0, 0, "fleet",
     "Records a position ping; feeds the running trip.", "0.2.0"},
    {"vehicle.within", fl_cmd_vehicle_within, -5, R, 0, 0, 0, "fleet",
     "Vehicles inside a longitude/latitude box.", "0.2.0"},
    {"zcard", fl_cmd_zcard, 2, R | F, 1, 1, 1, "sorted-set",
     "Number of members of a geo key.", "1.2.0"},
    {"zrange", fl_cmd_zrange, -4, R, 1, 1, 1, "sorted-set",
     "Members in a range of ranks, scores or names.", "1.2.0"},
    {"zrank", fl_cmd_zrank, 3, R | F, 1, 1, 1, "sorted-set",
     "Rank of a member.", "2.0.0"},
    {"zrem", fl_cmd_zrem, -3, W | F, 1, 1, 1, "sorted-set",
     "Removes members.", "1.2.0"},
    {"zscore", fl_cmd_zscore, 3, R | F, 1, 1, 1, "sorted-set",
     "Score (52-bit geohash) of a member.", "1.2.0"},
};

const size_t fl_commands_count = sizeof(fl_commands) / sizeof(fl_commands[0]);

static int cmd_name_cmp(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const fl_command *)elem)->name);
}

const fl_command *fl_cmd_lookup(const char *name, size_t len)
{
    char lower[32];
    if (len == 0 || len >= sizeof(lower)) return NULL;
    for (size_t i = 0; i < len; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[len] = '\0';
    if (memchr(name, '\0', len)) return NULL;
    return bsearch(lower, fl_commands, fl_commands_count, sizeof(fl_command),
                   cmd_name_cmp);
}

size_t fl_cmd_index(const fl_command *c)
{
    return (size_t)(c - fl_commands);
}

static void reply_unknown(fl_cmd_ctx *ctx)
{
    char args[256];
    size_t used = 0;
    args[0] = '\0';
    for (int i = 1; i < ctx->argc && used < 128; i++) {
        int room = 128 - (int)used;
        int len = (int)ctx->argvlen[i] < room ? (int)ctx->argvlen[i] : room;
        int k = snprintf(args + used, sizeof(args) - used, "'%.*s' ", len,
                         ctx->argv[i]);
        if (k < 0) break;
        used += (size_t)k;
        if (used >= sizeof(args)) used = sizeof(args) - 1;
    }
    int nlen = ctx->argvlen[0] < 128 ? (int)ctx->argvlen[0] : 128;
    fl_reply_errorf(ctx->reply,
                    "ERR unknown command '%.*s', with args beginning with: %s",
                    nlen, ctx->argv[0], args);
}

/* A write must be loggable: refused when the log has failed (Redis'
 * MISCONF) or when its record would exceed the log's record limit. */
static int write_allowed(fl_cmd_ctx *ctx)
{
    const fl_persist *p = &ctx->server->persist;
    if (!p->wal || p->replaying) return 1;
    if (p->broken) {
        fl_reply_error(ctx->reply, "MISCONF Errors writing to the write-ahead "
                       "log: write commands are refused (see the server log)");
        return 0;
    }
    size_t bytes = 0;
    for (int i = 0; i < ctx->argc; i++) bytes += ctx->argvlen[i] + 10;
    /* The logged form may gain two arguments (TS t). */
    if (bytes <= FL_LOG_MAX_RECORD / 2 && ctx->argc + 2 <= FL_LOG_MAX_ARGC) return 1;
    fl_reply_errorf(ctx->reply, "ERR command too large for the write-ahead "
                    "log (at most %u MB)", FL_LOG_MAX_RECORD / 2 >> 20);
    return 0;
}

const fl_command *fl_cmd_dispatch(fl_cmd_ctx *ctx)
{
    fl_server *s = ctx->server;
    const fl_command *c = fl_cmd_lookup(ctx->argv[0], ctx->argvlen[0]);
    if (!c) {
        FL_STAT_INC(s->stats.unknown_commands);
        reply_unknown(ctx);
        return NULL;
    }
    fl_cmd_stats *st = &s->cmd_stats[fl_cmd_index(c)];
    /* Redis 7.0's order: arity first, then authentication. A session that
     * has not authenticated is let through once requirepass is cleared. */
    if ((c->arity > 0 && ctx->argc != c->arity) ||
        (c->arity < 0 && ctx->argc < -c->arity)) {
        FL_STAT_INC(st->rejected);
        fl_reply_arity_error(ctx, c->name);
        return NULL;
    }
    if (s->cfg.requirepass[0] && !ctx->session->authenticated &&
        !(c->flags & FL_CMD_NOAUTH)) {
        FL_STAT_INC(st->rejected);
        fl_reply_error(ctx->reply, "NOAUTH Authentication required.");
        return NULL;
    }
    if ((c->flags & FL_CMD_WRITE) && !write_allowed(ctx)) {
        FL_STAT_INC(st->rejected);
        return NULL;
    }
    int errors_before = ctx->reply->errors;
    ctx->session->last_cmd = c->name;
    c->fn(ctx);
    /* Replay is not traffic, and may run on a loader thread while the
     * loop counts its own commands: only the loop's are counted. */
    if (s->persist.replaying) return c;
    FL_STAT_INC(st->calls);
    if (ctx->reply->errors != errors_before)
        FL_STAT_INC(st->errors);
    FL_STAT_INC(s->stats.commands_processed);
    return c;
}

void fl_cmd_record_latency(fl_server *s, const fl_command *c, uint64_t ns)
{
    fl_cmd_stats *st = &s->cmd_stats[fl_cmd_index(c)];
    FL_STAT_ADD(st->usec, ns / 1000);
    fl_hist_record(&st->latency, ns);
}

int fl_arg_eq(const fl_cmd_ctx *ctx, int i, const char *lit)
{
    size_t n = strlen(lit);
    return ctx->argvlen[i] == n && strncasecmp(ctx->argv[i], lit, n) == 0;
}

/* Strict integer like Redis' string2ll (no spaces, no '+', no leading 0). */
int fl_parse_ll(const char *p, size_t n, long long *out)
{
    char tmp[32];
    if (n == 0 || n >= sizeof(tmp)) return -1;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    if (tmp[0] == '+' || isspace((unsigned char)tmp[0])) return -1;
    if ((tmp[0] == '0' && n > 1) || (tmp[0] == '-' && tmp[1] == '0'))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(tmp, &end, 10);
    if (errno || *end != '\0') return -1;
    *out = v;
    return 0;
}

int fl_arg_ll(fl_cmd_ctx *ctx, int i, long long *out)
{
    if (fl_parse_ll(ctx->argv[i], ctx->argvlen[i], out) == 0) return 0;
    fl_reply_error(ctx->reply, "ERR value is not an integer or out of range");
    return -1;
}

/* Plain decimals of at most 15 digits ("-73.98765", "40.7") are most of
 * what clients send. Such a mantissa and a power of ten up to 1e15 are
 * both exact doubles, so one IEEE division rounds correctly: the result
 * is the one strtod gives (Clinger's fast path), without the copy, the
 * locale and the big-number machinery. That needs double arithmetic in
 * double precision (no x87 excess precision, no -ffast-math reciprocals):
 * elsewhere the fast path is off. Anything else returns 0 and is left to
 * strtod. */
#if FLT_EVAL_METHOD == 0 && !defined(__FAST_MATH__)
#define PLAIN_DECIMAL_EXACT 1
#else
#define PLAIN_DECIMAL_EXACT 0
#endif
static int parse_plain_decimal(const char *p, size_t n, double *out)
{
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    size_t i = 0, digits = 0, frac = 0;
    int negative = 0, dot = 0;
    uint64_t mantissa = 0;
    if (i < n && (p[i] == '-' || p[i] == '+')) negative = p[i++] == '-';
    for (; i < n; i++) {
        char c = p[i];
        if (c == '.' && !dot) {
            dot = 1;
            continue;
        }
        if (c < '0' || c > '9' || ++digits > 15) return 0;
        mantissa = mantissa * 10 + (uint64_t)(c - '0');
        frac += (size_t)dot;
    }
    if (digits == 0) return 0;
    double v = (double)mantissa / pow10[frac];
    *out = negative ? -v : v;
    return 1;
}

/* Redis' string2d: the whole argument must be a double (strtod syntax),
 * no leading space, no NaN, no overflow or underflow to 0. */
int fl_parse_double(const char *p, size_t n, double *out)
{
    if (PLAIN_DECIMAL_EXACT && parse_plain_decimal(p, n, out)) return 0;
    char stack[128];
    if (n == 0) return -1;
    char *s = n < sizeof(stack) ? stack : fl_xmalloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    int bad = (size_t)(end - s) != n || isspace((unsigned char)s[0]) ||
              (errno == ERANGE &&
               (v == HUGE_VAL || v == -HUGE_VAL || fpclassify(v) == FP_ZERO)) ||
              isnan(v);
    if (s != stack) free(s);
    if (bad) return -1;
    *out = v;
    return 0;
}

int fl_arg_double(fl_cmd_ctx *ctx, int i, double *out)
{
    if (fl_parse_double(ctx->argv[i], ctx->argvlen[i], out) == 0) return 0;
    fl_reply_error(ctx->reply, "ERR value is not a valid float");
    return -1;
}

void fl_reply_syntax_error(fl_cmd_ctx *ctx)
{
    fl_reply_error(ctx->reply, "ERR syntax error");
}

void fl_reply_wrongtype(fl_cmd_ctx *ctx)
{
    fl_reply_error(ctx->reply,
        "WRONGTYPE Operation against a key holding the wrong kind of value");
}

void fl_reply_arity_error(fl_cmd_ctx *ctx, const char *name)
{
    fl_reply_errorf(ctx->reply,
                    "ERR wrong number of arguments for '%s' command", name);
}

void fl_reply_unknown_subcommand(fl_cmd_ctx *ctx, const char *cmd)
{
    fl_reply_errorf(ctx->reply, "ERR unknown subcommand '%.*s'. Try %s HELP.",
                    (int)(ctx->argvlen[1] < 128 ? ctx->argvlen[1] : 128),
                    ctx->argv[1], cmd);
}
