/*
 * http_api.c - the routes of the HTTP port and the /v1 JSON handlers.
 *
 * Why shaped so:
 * - One table lists every route with its method and path pattern; the
 *   matcher, the 404/405 answers and `fleetd --routes` (which the suite
 *   compares with /openapi.json) all read it, so the document and the code
 *   cannot drift apart silently.
 * - Writes build the argv of the RESP command and run it through
 *   fl_cmd_dispatch; the RESP reply is read back only for its outcome or
 *   its error. Error text maps to a status by meaning (unknown -> 404,
 *   conflicts -> 409, a refusing log -> 503, the rest 400), and the detail
 *   is the command's own message without its "ERR " prefix.
 * - Bodies are parsed with libjansson. Numbers go to the command as
 *   "%.17g", which round-trips a double exactly.
 * - Reads render JSON directly from the fleet: no RESP detour, numbers stay
 *   numbers.
 */
#include "http_api.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "../cmd/server.h"
#include "../fleet/fleet.h"
#include "../geo/geohash.h"
#include "../geo/polygon.h"
#include "../geo/zindex.h"
#include "../util/json.h"

#define CT_JSON "application/json"
#define CT_PROBLEM "application/problem+json"
#define CT_GEOJSON "application/geo+json"
#define LIST_DEFAULT 100
#define LIST_MAX 10000
#define COMPACT_MAX 200000
#define SEARCH_DEFAULT 100
#define SEARCH_MAX 10000
#define TRIPS_MAX 1000
#define AREA_FEATURES_MAX 20000
#define NDJSON_ERRORS_MAX 100
#define SHAPE_POINTS_MAX 1000000
#define RADIUS_MAX_M 20000000.0

/* ---- answers ---- */

void fl_api_resp_init(fl_api_resp *r)
{
    memset(r, 0, sizeof(*r));
    fl_buf_init(&r->body);
}

void fl_api_resp_free(fl_api_resp *r)
{
    fl_buf_free(&r->body);
    fl_api_list_free(r->list);
    r->list = NULL;
}

static const char *status_title(unsigned status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Bad Request";
    }
}

void fl_api_problem(fl_api_resp *r, unsigned status, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (k < 0) detail[0] = '\0';
    r->kind = FL_API_DONE;
    r->status = status;
    r->ctype = CT_PROBLEM;
    r->body.len = 0;
    fl_buf_printf(&r->body, "{\"type\":\"about:blank\",\"title\":\"%s\","
                            "\"status\":%u,\"detail\":", status_title(status),
                  status);
    fl_json_cstr(&r->body, detail);
    fl_buf_append_str(&r->body, "}");
}

static void json_answer(fl_api_resp *r, unsigned status)
{
    r->kind = FL_API_DONE;
    r->status = status;
    r->ctype = CT_JSON;
    r->body.len = 0;
}

/* ---- JSON of fleet objects ---- */

static void float_or_null(fl_buf *b, float v, int digits)
{
    if (isnan(v)) fl_buf_append_str(b, "null");
    else fl_json_fixed(b, (double)v, digits);
}

void fl_api_vehicle_json(fl_buf *b, const fl_fleet *f, const fl_vehicle *v)
{
    size_t flen;
    const char *fleet = fl_vehicle_fleet(f, v, &flen);
    fl_buf_append_str(b, "{\"id\":");
    fl_json_str(b, v->id, v->id_len);
    fl_buf_append_str(b, ",\"lon\":");
    fl_json_fixed(b, v->lon, 7);
    fl_buf_append_str(b, ",\"lat\":");
    fl_json_fixed(b, v->lat, 7);
    fl_buf_printf(b, ",\"ts\":%lld,\"speed\":", (long long)v->ts_ms);
    float_or_null(b, fl_vehicle_speed(v), 2);
    fl_buf_append_str(b, ",\"heading\":");
    float_or_null(b, fl_vehicle_heading(v), 2);
    fl_buf_append_str(b, ",\"fleet\":");
    if (fleet) fl_json_str(b, fleet, flen);
    else fl_buf_append_str(b, "null");
    fl_buf_printf(b, ",\"status\":\"%s\",\"trip\":", fl_vstatus_name(v->status));
    if (v->trip) fl_json_str(b, v->trip->id, v->trip->id_len);
    else fl_buf_append_str(b, "null");
    fl_buf_printf(b, ",\"flagged\":%u}", (unsigned)v->flagged);
}

static const char *trip_state(const fl_trip *t)
{
    static const char *const names[] = {"running", "ended", "idle",
                                        "vehicle_deleted"};
    return t->end_reason <= FL_TRIP_VEHICLE_DELETED ? names[t->end_reason] : "ended";
}

static void path_geojson(fl_buf *b, const fl_trip *t)
{
    fl_buf_append_str(b, "{\"type\":\"LineString\",\"coordinates\":[");
    double *xy = fl_xmalloc(((size_t)t->path.points + 1) * 2 * sizeof(double));
    size_t n = fl_path_decode(t->path.enc, t->path.len, xy, t->path.points);
    for (size_t i = 0; i < n; i++) {
        fl_buf_append_str(b, i ? ",[" : "[");
        fl_json_fixed(b, xy[2 * i], 5);
        fl_buf_append_str(b, ",");
        fl_json_fixed(b, xy[2 * i + 1], 5);
        fl_buf_append_str(b, "]");
    }
    free(xy);
    fl_buf_append_str(b, "]}");
}

void fl_api_trip_json(fl_buf *b, const fl_trip *t, int path)
{
    size_t vlen;
    const char *vid = fl_trip_vehicle(t, &vlen);
    int64_t end = t->end_ms ? t->end_ms : t->last_ms;
    fl_buf_append_str(b, "{\"id\":");
    fl_json_str(b, t->id, t->id_len);
    fl_buf_append_str(b, ",\"vehicle\":");
    fl_json_str(b, vid, vlen);
    fl_buf_printf(b, ",\"state\":\"%s\",\"start\":%lld,\"end\":", trip_state(t),
                  (long long)t->start_ms);
    if (t->end_ms) fl_buf_printf(b, "%lld", (long long)t->end_ms);
    else fl_buf_append_str(b, "null");
    fl_buf_printf(b, ",\"last\":%lld,\"duration_ms\":%lld,\"distance_m\":",
                  (long long)t->last_ms, (long long)(end - t->start_ms));
    fl_json_fixed(b, t->distance_m, 1);
    fl_buf_printf(b, ",\"idle_ms\":%lld,\"max_speed\":", (long long)t->idle_ms);
    fl_json_fixed(b, (double)t->max_speed_kmh, 1);
    fl_buf_printf(b, ",\"pings\":%u,\"flagged\":%u,\"points\":%u,"
                     "\"truncated\":%s",
                  t->pings, t->flagged, t->path.points,
                  t->truncated ? "true" : "false");
    if (path == 1) {
        fl_buf_append_str(b, ",\"polyline\":");
        fl_json_str(b, t->path.enc ? t->path.enc : "", t->path.len);
    } else if (path == 2) {
        fl_buf_append_str(b, ",\"path\":");
        path_geojson(b, t);
    }
    fl_buf_append_str(b, "}");
}

void fl_api_stats_json(fl_buf *b, const fl_api *a)
{
    const fl_api_stats *s = &a->stats;
    const fl_fleet_stats *fs = fl_fleet_get_stats(a->srv->fleet);
    fl_buf_append_str(b, "{\"updates_per_s\":");
    fl_json_fixed(b, s->updates_per_s, 1);
    fl_buf_append_str(b, ",\"p50_us\":");
    fl_json_fixed(b, s->p50_us, 1);
    fl_buf_append_str(b, ",\"p99_us\":");
    fl_json_fixed(b, s->p99_us, 1);
    fl_buf_printf(b, ",\"clients\":%llu,\"http_clients\":%llu,"
                     "\"sse_clients\":%llu,\"ts\":%llu,\"vehicles\":%llu,"
                     "\"trips_running\":%llu,\"available\":%llu,\"busy\":%llu,"
                     "\"offline\":%llu}",
                  (unsigned long long)s->clients,
                  (unsigned long long)s->http_clients,
                  (unsigned long long)s->sse_clients,
                  (unsigned long long)s->ts_ms,
                  (unsigned long long)fs->vehicles,
                  (unsigned long long)fs->trips_running,
                  (unsigned long long)fs->by_status[FL_VS_AVAILABLE],
                  (unsigned long long)fs->by_status[FL_VS_BUSY],
                  (unsigned long long)fs->by_status[FL_VS_OFFLINE]);
}

/* ---- running commands ---- */

typedef struct argv_builder {
    int argc;
    const char *argv[20];
    size_t lens[20];
    char nums[8][32];
    int nnums;
} argv_builder;

static void argv_push(argv_builder *ab, const char *s, size_t n)
{
    ab->argv[ab->argc] = s;
    ab->lens[ab->argc++] = n;
}

static void argv_push_str(argv_builder *ab, const char *s)
{
    argv_push(ab, s, strlen(s));
}

static void argv_push_num(argv_builder *ab, double d)
{
    char *p = ab->nums[ab->nnums++];
    int k = snprintf(p, 32, "%.17g", d);
    argv_push(ab, p, k > 0 ? (size_t)k : 0);
}

static void argv_push_int(argv_builder *ab, long long v)
{
    char *p = ab->nums[ab->nnums++];
    int k = snprintf(p, 32, "%lld", v);
    argv_push(ab, p, k > 0 ? (size_t)k : 0);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs argv as a command; returns its RESP reply (NUL-terminated, owned
 * by a->reply until the next command). */
static const char *run_cmd(fl_api *a, const fl_api_req *req, argv_builder *ab,
                           fl_api_resp *resp)
{
    a->reply.len = 0;
    fl_reply reply = {&a->reply, 3, 0};
    /* One session serves every HTTP request: what a command logs is its
     * own answer's need only, not carried into the next request (a write
     * refused after a failed one would else read as applied). */
    a->sess.wal_need = 0;
    fl_cmd_ctx ctx = {ab->argc, ab->argv, ab->lens, &reply, &a->sess, a->srv,
                      req->now_ms, req->now_us};
    uint64_t t0 = mono_ns();
    const fl_command *cmd = fl_cmd_dispatch(&ctx);
    if (cmd) fl_cmd_record_latency(a->srv, cmd, mono_ns() - t0);
    if (a->sess.wal_need > resp->wal_need) resp->wal_need = a->sess.wal_need;
    fl_buf_append(&a->reply, "", 1);
    a->reply.len--;
    return a->reply.data;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The HTTP status a command's error stands for, from the fixed start of
 * its message only: the rest echoes ids, and an id may say anything. The
 * two messages that start "ERR vehicle '<id>'" are both conflicts (a trip
 * already running, no trip running). */
static unsigned error_status(const char *msg)
{
    if (starts_with(msg, "ERR unknown vehicle '") ||
        starts_with(msg, "ERR unknown trip '"))
        return 404;
    if (starts_with(msg, "ERR vehicle '") ||
        starts_with(msg, "ERR trip id already exists"))
        return 409;
    if (starts_with(msg, "MISCONF") || starts_with(msg, "LOADING")) return 503;
    return 400;
}

/* The error text of a RESP error reply "-ERR msg\r\n" (copied to out). */
static const char *error_text(const char *reply, char *out, size_t n)
{
    const char *p = reply + 1;
    if (!strncmp(p, "ERR ", 4)) p += 4;
    size_t len = strcspn(p, "\r\n");
    if (len >= n) len = n - 1;
    memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

/* Answers a command's error reply; 1 if reply was an error. */
static int answer_if_error(const char *reply, fl_api_resp *resp)
{
    if (reply[0] != '-') return 0;
    char msg[600];
    error_text(reply, msg, sizeof(msg));
    fl_api_problem(resp, error_status(reply + 1), "%s", msg);
    return 1;
}

/* ---- request inputs ---- */

static int arg_double(const fl_api_req *req, const char *key, double *out,
                      int *present)
{
    const char *s = req->arg(req->arg_ud, key);
    *present = s != NULL;
    if (!s) return 0;
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return (*s && !*end && errno == 0 && isfinite(*out)) ? 0 : -1;
}

static int arg_long(const fl_api_req *req, const char *key, long long lo,
                    long long hi, long long *out)
{
    const char *s = req->arg(req->arg_ud, key);
    if (!s) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* "min lon,min lat,max lon,max lat"; 1 parsed, 0 absent, -1 bad. */
static int parse_bbox(const char *s, double bb[4])
{
    if (!s) return 0;
    char *end;
    for (int i = 0; i < 4; i++) {
        errno = 0;
        bb[i] = strtod(s, &end);
        if (end == s || errno || !isfinite(bb[i])) return -1;
        if (i < 3 && *end != ',') return -1;
        s = end + (i < 3);
    }
    if (*end) return -1;
    if (!fl_geo_coords_valid(bb[0], bb[1]) || !fl_geo_coords_valid(bb[2], bb[3]) ||
        bb[1] > bb[3])
        return -1;
    return 1;
}

typedef struct vehicle_filter {
    int status;                  /* -1 any */
    const char *fleet;
    size_t fleet_len;
} vehicle_filter;

static int parse_filter(const fl_api_req *req, vehicle_filter *vf,
                        fl_api_resp *resp)
{
    vf->status = -1;
    vf->fleet = req->arg(req->arg_ud, "fleet");
    vf->fleet_len = vf->fleet ? strlen(vf->fleet) : 0;
    const char *st = req->arg(req->arg_ud, "status");
    if (st && (vf->status = fl_vstatus_parse(st, strlen(st))) < 0) {
        fl_api_problem(resp, 400, "status must be available, busy or offline");
        return -1;
    }
    if (vf->fleet && (vf->fleet_len == 0 || vf->fleet_len > FL_FLEET_ID_MAX)) {
        fl_api_problem(resp, 400, "fleet must be 1 to %d bytes", FL_FLEET_ID_MAX);
        return -1;
    }
    return 0;
}

static int filter_match(const fl_fleet *f, const vehicle_filter *vf,
                        const fl_vehicle *v)
{
    if (vf->status >= 0 && v->status != vf->status) return 0;
    if (!vf->fleet) return 1;
    size_t n;
    const char *name = fl_vehicle_fleet(f, v, &n);
    return name && n == vf->fleet_len && memcmp(name, vf->fleet, n) == 0;
}

/* Parses a JSON object body; answers and returns NULL when it is not one. */
static json_t *body_object(const fl_api_req *req, fl_api_resp *resp)
{
    const char *ct = req->content_type;
    if (ct && strncasecmp(ct, "application/json", 16) != 0 &&
        strncasecmp(ct, "application/geo+json", 20) != 0) {
        fl_api_problem(resp, 415, "the body must be application/json");
        return NULL;
    }
    json_error_t err;
    json_t *j = json_loadb(req->body ? req->body : "", req->body_len,
                           JSON_REJECT_DUPLICATES, &err);
    if (!j) {
        fl_api_problem(resp, 400, "invalid JSON at line %d column %d: %s",
                       err.line, err.column, err.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        fl_api_problem(resp, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Optional typed members; each answers 400 on a wrong type. */
static int member_number(json_t *o, const char *key, double *out, int required,
                         int *present, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    *present = v != NULL && !json_is_null(v);
    if (!*present) {
        if (required) snprintf(err, errlen, "%s is required", key);
        return required ? -1 : 0;
    }
    if (!json_is_number(v)) {
        snprintf(err, errlen, "%s must be a number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int member_string(json_t *o, const char *key, const char **out,
                         size_t *len, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || json_string_length(v) == 0) {
        snprintf(err, errlen, "%s must be a non-empty string", key);
        return -1;
    }
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

static int member_ts(json_t *o, long long *out, int *present, char *err,
                     size_t errlen)
{
    json_t *v = json_object_get(o, "ts");
    *present = v != NULL && !json_is_null(v);
    if (!*present) return 0;
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        snprintf(err, errlen, "ts must be a positive integer (unix milliseconds)");
        return -1;
    }
    *out = (long long)json_integer_value(v);
    return 0;
}

/* ---- positions ---- */

/* Builds VEHICLE.UPDATE from a position object; -1 with err on bad input. */
static int position_argv(json_t *o, const char *id, size_t idlen,
                         argv_builder *ab, char *err, size_t errlen)
{
    double lon, lat, speed, heading;
    long long ts;
    int has, has_ts;
    const char *fleet, *status;
    size_t fleet_len = 0, status_len = 0;
    memset(ab, 0, sizeof(*ab));
    if (member_number(o, "lon", &lon, 1, &has, err, errlen) ||
        member_number(o, "lat", &lat, 1, &has, err, errlen) ||
        member_ts(o, &ts, &has_ts, err, errlen) ||
        member_string(o, "fleet", &fleet, &fleet_len, err, errlen) ||
        member_string(o, "status", &status, &status_len, err, errlen))
        return -1;
    argv_push_str(ab, "VEHICLE.UPDATE");
    argv_push(ab, id, idlen);
    argv_push_num(ab, lon);
    argv_push_num(ab, lat);
    if (has_ts) {
        argv_push_str(ab, "TS");
        argv_push_int(ab, ts);
    }
    if (member_number(o, "speed", &speed, 0, &has, err, errlen)) return -1;
    if (has) {
        argv_push_str(ab, "SPEED");
        argv_push_num(ab, speed);
    }
    if (member_number(o, "heading", &heading, 0, &has, err, errlen)) return -1;
    if (has) {
        argv_push_str(ab, "HEADING");
        argv_push_num(ab, heading);
    }
    if (fleet) {
        argv_push_str(ab, "FLEET");
        argv_push(ab, fleet, fleet_len);
    }
    if (status) {
        argv_push_str(ab, "STATUS");
        argv_push(ab, status, status_len);
    }
    return 0;
}

static const char *outcome_name(const char *reply)
{
    if (!strncmp(reply, "+OK", 3)) return "applied";
    if (!strncmp(reply, "+STALE", 6)) return "stale";
    if (!strncmp(reply, "+IMPLAUSIBLE", 12)) return "implausible";
    if (!strncmp(reply, "+RELOCATED", 10)) return "relocated";
    return NULL;
}

#define ID_SEGMENT_MAX 1024      /* decoded bytes of an {id}; ids are 255 */

typedef struct route_ctx {
    fl_api *a;
    const fl_api_req *req;
    fl_api_resp *resp;
    const char *id;              /* the {id} segment, decoded (in idbuf) */
    size_t idlen;
    char idbuf[ID_SEGMENT_MAX];
} route_ctx;

/* 404 for the {id} of the path: "unknown vehicle 'v9'" as RESP says it. */
static void unknown_id(route_ctx *rc, const char *what)
{
    int n = rc->idlen > FL_FLEET_ID_MAX ? FL_FLEET_ID_MAX : (int)rc->idlen;
    fl_api_problem(rc->resp, 404, "unknown %s '%.*s'", what, n, rc->id);
}

static void put_position(route_ctx *rc)
{
    char err[300];
    argv_builder ab;
    json_t *o = body_object(rc->req, rc->resp);
    if (!o) return;
    int bad = position_argv(o, rc->id, rc->idlen, &ab, err, sizeof(err));
    if (bad) {
        json_decref(o);
        fl_api_problem(rc->resp, 400, "%s", err);
        return;
    }
    const char *reply = run_cmd(rc->a, rc->req, &ab, rc->resp);
    json_decref(o);
    if (answer_if_error(reply, rc->resp)) return;
    const char *outcome = outcome_name(reply);
    const fl_fleet *f = rc->a->srv->fleet;
    const fl_vehicle *v = fl_fleet_vehicle(f, rc->id, rc->idlen);
    json_answer(rc->resp, 200);
    fl_buf *b = &rc->resp->body;
    fl_buf_printf(b, "{\"outcome\":\"%s\",\"vehicle\":", outcome ? outcome : "applied");
    if (v) fl_api_vehicle_json(b, f, v);
    else fl_buf_append_str(b, "null");
    fl_buf_append_str(b, "}");
}

/* ---- NDJSON batch ---- */

typedef struct batch_tally {
    uint64_t lines, applied, stale, implausible, relocated, failed;
    fl_buf errors;
    unsigned nerrors;
} batch_tally;

static void batch_error(batch_tally *t, uint64_t line, unsigned status,
                        const char *detail)
{
    t->failed++;
    if (t->nerrors >= NDJSON_ERRORS_MAX) return;
    if (t->nerrors++) fl_buf_append_str(&t->errors, ",");
    fl_buf_printf(&t->errors, "{\"line\":%llu,\"status\":%u,\"detail\":",
                  (unsigned long long)line, status);
    fl_json_cstr(&t->errors, detail);
    fl_buf_append_str(&t->errors, "}");
}

static void batch_line(route_ctx *rc, batch_tally *t, const char *p, size_t n,
                       uint64_t lineno)
{
    char err[300];
    json_error_t jerr;
    t->lines++;
    json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        snprintf(err, sizeof(err), o ? "a line must be a JSON object"
                                     : "invalid JSON at column %d: %s",
                 jerr.column, jerr.text);
        batch_error(t, lineno, 400, err);
        json_decref(o);
        return;
    }
    const char *id;
    size_t idlen = 0;
    argv_builder ab;
    if (member_string(o, "id", &id, &idlen, err, sizeof(err)) ||
        (!id && snprintf(err, sizeof(err), "id is required") > 0) ||
        position_argv(o, id, idlen, &ab, err, sizeof(err))) {
        batch_error(t, lineno, 400, err);
        json_decref(o);
        return;
    }
    const char *reply = run_cmd(rc->a, rc->req, &ab, rc->resp);
    json_decref(o);
    if (reply[0] == '-') {
        batch_error(t, lineno, error_status(reply + 1),
                    error_text(reply, err, sizeof(err)));
        return;
    }
    const char *oc = outcome_name(reply);
    if (oc && oc[0] == 's') t->stale++;
    else if (oc && oc[0] == 'i') t->implausible++;
    else if (oc && oc[0] == 'r') t->relocated++;
    else t->applied++;
}

static void post_positions(route_ctx *rc)
{
    const char *ct = rc->req->content_type;
    if (ct && strncasecmp(ct, "application/x-ndjson", 20) != 0 &&
        strncasecmp(ct, "application/ndjson", 18) != 0 &&
        strncasecmp(ct, "application/jsonl", 17) != 0 &&
        strncasecmp(ct, "application/json", 16) != 0 &&
        strncasecmp(ct, "text/plain", 10) != 0) {
        fl_api_problem(rc->resp, 415, "the body must be application/x-ndjson");
        return;
    }
    batch_tally t;
    memset(&t, 0, sizeof(t));
    fl_buf_init(&t.errors);
    const char *p = rc->req->body ? rc->req->body : "";
    const char *end = p + rc->req->body_len;
    for (uint64_t lineno = 1; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        size_t n = (size_t)(stop - p);
        if (n && p[n - 1] == '\r') n--;
        size_t sp = 0;
        while (sp < n && (p[sp] == ' ' || p[sp] == '\t')) sp++;
        if (sp < n) batch_line(rc, &t, p, n, lineno);
        p = nl ? nl + 1 : end;
    }
    json_answer(rc->resp, 200);
    fl_buf_printf(&rc->resp->body,
                  "{\"lines\":%llu,\"applied\":%llu,\"stale\":%llu,"
                  "\"implausible\":%llu,\"relocated\":%llu,\"failed\":%llu,"
                  "\"errors\":[",
                  (unsigned long long)t.lines, (unsigned long long)t.applied,
                  (unsigned long long)t.stale, (unsigned long long)t.implausible,
                  (unsigned long long)t.relocated, (unsigned long long)t.failed);
    fl_buf_append(&rc->resp->body, t.errors.data, t.errors.len);
    fl_buf_append_str(&rc->resp->body, "]}");
    fl_buf_free(&t.errors);
}

/* ---- vehicles ---- */

static void get_vehicle(route_ctx *rc)
{
    const fl_fleet *f = rc->a->srv->fleet;
    const fl_vehicle *v = fl_fleet_vehicle(f, rc->id, rc->idlen);
    if (!v) {
        unknown_id(rc, "vehicle");
        return;
    }
    json_answer(rc->resp, 200);
    fl_api_vehicle_json(&rc->resp->body, f, v);
}

static void delete_vehicle(route_ctx *rc)
{
    argv_builder ab;
    memset(&ab, 0, sizeof(ab));
    argv_push_str(&ab, "VEHICLE.DEL");
    argv_push(&ab, rc->id, rc->idlen);
    const char *reply = run_cmd(rc->a, rc->req, &ab, rc->resp);
    if (answer_if_error(reply, rc->resp)) return;
    if (!strncmp(reply, ":0", 2)) {
        unknown_id(rc, "vehicle");
        return;
    }
    rc->resp->kind = FL_API_DONE;
    rc->resp->status = 204;
    rc->resp->ctype = CT_JSON;
    rc->resp->body.len = 0;
}

/* Slices of a list: at most this many vehicles looked at, and about this
 * many bytes written, per call (each well under a millisecond). */
#define SLICE_LOOKS 4096
#define SLICE_BYTES (16 * 1024)

/* A place in index order, copied: the vehicle itself may be gone. */
typedef struct list_pos {
    uint64_t key;
    size_t len;                  /* 0: from the first vehicle at key or after */
    char id[FL_FLEET_ID_MAX];
} list_pos;

struct fl_api_list {
    const fl_fleet *f;
    vehicle_filter vf;           /* vf.fleet points at fleet below */
    char fleet[FL_FLEET_ID_MAX];
    int has_bbox;
    double bbox[4];
    fl_geo_span spans[FL_GEO_BOX_SPANS]; /* where the bbox lies in key order */
    size_t nspans, span;         /* span: the first not yet passed */
    long long limit, n;
    int compact, started;
    list_pos at;                 /* the walk resumes after this */
    list_pos last;               /* the last vehicle written: the cursor */
    fl_buf *out;                 /* during a slice */
    size_t looks, out_stop;
};

static void compact_row(fl_buf *b, const fl_vehicle *v)
{
    fl_buf_append_str(b, "[");
    fl_json_str(b, v->id, v->id_len);
    fl_buf_append_str(b, ",");
    fl_json_fixed(b, v->lon, 6);
    fl_buf_append_str(b, ",");
    fl_json_fixed(b, v->lat, 6);
    fl_buf_append_str(b, ",\"");
    fl_buf_append_str(b, fl_vstatus_name(v->status));
    fl_buf_append_str(b, "\",");
    float_or_null(b, fl_vehicle_heading(v), 0);
    fl_buf_append_str(b, ",");
    if (v->trip) fl_json_str(b, v->trip->id, v->trip->id_len);
    else fl_buf_append_str(b, "null");
    fl_buf_append_str(b, "]");
}

static void set_pos(list_pos *p, uint64_t key, const fl_vehicle *v)
{
    p->key = key;
    p->len = v->id_len;
    memcpy(p->id, v->id, v->id_len);
}

static int list_match(const fl_api_list *l, const fl_vehicle *v)
{
    return (!l->has_bbox || fl_geo_box_contains(l->bbox, v->lon, v->lat)) &&
           filter_match(l->f, &l->vf, v);
}

enum { SLICE_FULL = 1, PAGE_FULL = 2, SEEK = 3, BOX_PASSED = 4 };

/* A seek costs about as much as reading this many vehicles in order. */
#define SEEK_LOOKS 16

/* With a bbox, the walk seeks over the keys between the box's spans
 * instead of reading every vehicle of the fleet. */
static int list_visit(void *ud, const fl_vehicle *v, uint64_t key)
{
    fl_api_list *l = ud;
    if (l->nspans) {
        while (l->span < l->nspans && key >= l->spans[l->span].hi) l->span++;
        if (l->span == l->nspans) return BOX_PASSED;
        if (key < l->spans[l->span].lo) {
            l->at.key = l->spans[l->span].lo;
            l->at.len = 0;
            return SEEK;
        }
    }
    if (list_match(l, v)) {
        if (l->n == l->limit) return PAGE_FULL; /* one more exists */
        if (l->n++) fl_buf_append_str(l->out, ",");
        if (l->compact) compact_row(l->out, v);
        else fl_api_vehicle_json(l->out, l->f, v);
        set_pos(&l->last, key, v);
    }
    if (++l->looks < SLICE_LOOKS && l->out->len < l->out_stop) return 0;
    set_pos(&l->at, key, v);
    return SLICE_FULL;
}

static void hex(fl_buf *b, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) fl_buf_printf(b, "%02x", p[i]);
}

int fl_api_list_next(fl_api_list *l, fl_buf *out)
{
    if (!l->started) {
        l->started = 1;
        if (l->compact)
            fl_buf_append_str(out, "{\"fields\":[\"id\",\"lon\",\"lat\",\"status\","
                                   "\"heading\",\"trip\"],\"vehicles\":[");
        else fl_buf_append_str(out, "{\"vehicles\":[");
    }
    l->out = out;
    l->looks = 0;
    l->out_stop = out->len + SLICE_BYTES;
    int stop;
    do {
        stop = fl_fleet_each_vehicle_after(l->f, l->at.key, l->at.id, l->at.len,
                                           list_visit, l);
        l->looks += SEEK_LOOKS;
    } while (stop == SEEK && l->looks < SLICE_LOOKS);
    l->out = NULL;
    if (stop == SLICE_FULL || stop == SEEK) return 1;
    fl_buf_append_str(out, "],\"next_cursor\":");
    if (stop == PAGE_FULL && l->last.len) {
        fl_buf_printf(out, "\"%llx.", (unsigned long long)l->last.key);
        hex(out, (const unsigned char *)l->last.id, l->last.len);
        fl_buf_append_str(out, "\"}");
    } else {
        fl_buf_append_str(out, "null}");
    }
    return 0;
}

void fl_api_list_free(fl_api_list *l)
{
    free(l);
}

/* Cursor "<key hex>.<id hex>": opaque to clients, URL-safe. */
static int parse_cursor(const char *s, list_pos *at)
{
    char *end;
    errno = 0;
    unsigned long long k = strtoull(s, &end, 16);
    if (end == s || *end != '.' || errno) return -1;
    const char *h = end + 1;
    size_t n = strlen(h);
    if (n == 0 || n % 2 || n / 2 > FL_FLEET_ID_MAX) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned byte;
        if (sscanf(h + 2 * i, "%2x", &byte) != 1 ||
            !strchr("0123456789abcdefABCDEF", h[2 * i]) ||
            !strchr("0123456789abcdefABCDEF", h[2 * i + 1]))
            return -1;
        at->id[i] = (char)byte;
    }
    at->key = k;
    at->len = n / 2;
    return 0;
}

/* Checks the list's arguments into l; answers 400 and returns -1 if bad. */
static int list_args(route_ctx *rc, fl_api_list *l)
{
    const fl_api_req *req = rc->req;
    const char *format = req->arg(req->arg_ud, "format");
    l->compact = format && !strcmp(format, "compact");
    if (format && !l->compact && strcmp(format, "full")) {
        fl_api_problem(rc->resp, 400, "format must be full or compact");
        return -1;
    }
    l->limit = LIST_DEFAULT;
    if (arg_long(req, "limit", 1, l->compact ? COMPACT_MAX : LIST_MAX, &l->limit)) {
        fl_api_problem(rc->resp, 400, "limit must be an integer from 1 to %d",
                       l->compact ? COMPACT_MAX : LIST_MAX);
        return -1;
    }
    if (parse_filter(req, &l->vf, rc->resp)) return -1;
    if (l->vf.fleet) { /* the request's string lasts only for this call */
        memcpy(l->fleet, l->vf.fleet, l->vf.fleet_len);
        l->vf.fleet = l->fleet;
    }
    l->has_bbox = parse_bbox(req->arg(req->arg_ud, "bbox"), l->bbox);
    if (l->has_bbox < 0) {
        fl_api_problem(rc->resp, 400, "bbox must be min lon,min lat,max lon,max lat "
                                      "within GEOADD's range");
        return -1;
    }
    if (l->has_bbox) l->nspans = fl_geo_box_spans(l->bbox, l->spans);
    const char *cur = req->arg(req->arg_ud, "cursor");
    if (cur && *cur && parse_cursor(cur, &l->at)) {
        fl_api_problem(rc->resp, 400, "cursor is not one this server gave");
        return -1;
    }
    return 0;
}

/* The answer is a list the edge writes in slices (FL_API_LIST). */
static void list_vehicles(route_ctx *rc)
{
    fl_api_list *l = fl_xcalloc(1, sizeof(*l));
    l->f = rc->a->srv->fleet;
    if (list_args(rc, l)) {
        free(l);
        return;
    }
    json_answer(rc->resp, 200);
    rc->resp->kind = FL_API_LIST;
    rc->resp->list = l;
}

/* Writes search hits as {"vehicles":[...]}; with_dist adds distance_m. */
static void hits_answer(route_ctx *rc, const fl_fleet_hits *h, int with_dist,
                        const fl_shape *shape, long long count)
{
    const fl_fleet *f = rc->a->srv->fleet;
    json_answer(rc->resp, 200);
    fl_buf *b = &rc->resp->body;
    fl_buf_append_str(b, "{\"vehicles\":[");
    long long n = 0;
    for (size_t i = 0; i < h->n && n < count; i++) {
        const fl_vehicle *v = h->v[i].v;
        if (shape && !fl_shape_contains(shape, v->lon, v->lat)) continue;
        if (n++) fl_buf_append_str(b, ",");
        fl_api_vehicle_json(b, f, v);
        if (with_dist) {
            b->len--; /* reopen the object */
            fl_buf_append_str(b, ",\"distance_m\":");
            fl_json_fixed(b, h->v[i].dist_m, 2);
            fl_buf_append_str(b, "}");
        }
    }
    fl_buf_append_str(b, "]}");
}

static int search_count(route_ctx *rc, long long *count)
{
    *count = SEARCH_DEFAULT;
    if (arg_long(rc->req, "count", 1, SEARCH_MAX, count) == 0) return 0;
    fl_api_problem(rc->resp, 400, "count must be an integer from 1 to %d",
                   SEARCH_MAX);
    return -1;
}

static void run_search(route_ctx *rc, fl_fleet_query *q, int with_dist,
                       const fl_shape *shape, long long count)
{
    fl_fleet_hits hits;
    memset(&hits, 0, sizeof(hits));
    int err = fl_fleet_search(rc->a->srv->fleet, q, &hits);
    if (err == 0) hits_answer(rc, &hits, with_dist, shape, count);
    else fl_api_problem(rc->resp, err == -ENOMEM ? 503 : 400, "invalid search area");
    fl_fleet_hits_free(&hits);
}

static void nearby(route_ctx *rc)
{
    fl_fleet_query q;
    memset(&q, 0, sizeof(q));
    int has_lon, has_lat, has_r;
    vehicle_filter vf;
    long long count;
    if (arg_double(rc->req, "lon", &q.lon, &has_lon) ||
        arg_double(rc->req, "lat", &q.lat, &has_lat) ||
        arg_double(rc->req, "radius", &q.radius_m, &has_r) || !has_lon ||
        !has_lat || !has_r) {
        fl_api_problem(rc->resp, 400, "lon, lat and radius (metres) are required numbers");
        return;
    }
    if (!fl_geo_coords_valid(q.lon, q.lat)) {
        fl_api_problem(rc->resp, 400, "invalid longitude,latitude pair %f,%f",
                       q.lon, q.lat);
        return;
    }
    if (!(q.radius_m >= 0 && q.radius_m <= RADIUS_MAX_M)) {
        fl_api_problem(rc->resp, 400, "radius must be 0 to %.0f metres", RADIUS_MAX_M);
        return;
    }
    if (search_count(rc, &count) || parse_filter(rc->req, &vf, rc->resp)) return;
    q.count = count;
    q.status = vf.status;
    q.fleet = vf.fleet;
    q.fleet_len = vf.fleet_len;
    run_search(rc, &q, 1, NULL, count);
}

static void within_box(route_ctx *rc)
{
    fl_fleet_query q;
    memset(&q, 0, sizeof(q));
    vehicle_filter vf;
    long long count;
    if (parse_bbox(rc->req->arg(rc->req->arg_ud, "bbox"), q.box) != 1) {
        fl_api_problem(rc->resp, 400, "bbox=min lon,min lat,max lon,max lat is "
                                      "required, within GEOADD's range");
        return;
    }
    if (search_count(rc, &count) || parse_filter(rc->req, &vf, rc->resp)) return;
    q.is_box = 1;
    q.count = count;
    q.status = vf.status;
    q.fleet = vf.fleet;
    q.fleet_len = vf.fleet_len;
    run_search(rc, &q, 0, NULL, count);
}

/* ---- GeoJSON polygons ---- */

static int add_rings(fl_shape *s, json_t *rings, char *err, size_t errlen)
{
    if (!json_is_array(rings) || json_array_size(rings) == 0) {
        snprintf(err, errlen, "a Polygon's coordinates must be an array of rings");
        return -1;
    }
    fl_shape_begin_polygon(s);
    size_t ri;
    json_t *ring;
    json_array_foreach(rings, ri, ring) {
        size_t n = json_array_size(ring);
        if (!json_is_array(ring) || s->points + n > SHAPE_POINTS_MAX) {
            snprintf(err, errlen, "a ring must be an array of positions "
                     "(at most %d in all)", SHAPE_POINTS_MAX);
            return -1;
        }
        double *xy = fl_xmalloc((n ? n : 1) * 2 * sizeof(double));
        size_t pi;
        json_t *pos;
        int bad = 0;
        json_array_foreach(ring, pi, pos) {
            json_t *x = json_array_get(pos, 0), *y = json_array_get(pos, 1);
            if (!json_is_array(pos) || !json_is_number(x) || !json_is_number(y)) {
                bad = 1;
                break;
            }
            xy[2 * pi] = json_number_value(x);
            xy[2 * pi + 1] = json_number_value(y);
        }
        if (bad || fl_shape_add_ring(s, xy, n) != 0) {
            snprintf(err, errlen, "ring %zu is not a closed ring of at least 4 "
                     "[lon, lat] positions within GEOADD's range", ri);
            free(xy);
            return -1;
        }
        free(xy);
    }
    return 0;
}

static int add_geometry(fl_shape *s, json_t *g, int depth, char *err,
                        size_t errlen)
{
    const char *type = json_string_value(json_object_get(g, "type"));
    if (!json_is_object(g) || !type || depth > 2) {
        snprintf(err, errlen, "expected a GeoJSON object with a type");
        return -1;
    }
    if (!strcmp(type, "Feature"))
        return add_geometry(s, json_object_get(g, "geometry"), depth + 1, err, errlen);
    if (!strcmp(type, "FeatureCollection")) {
        json_t *fs = json_object_get(g, "features"), *ft;
        size_t i;
        if (!json_is_array(fs)) {
            snprintf(err, errlen, "a FeatureCollection needs features");
            return -1;
        }
        json_array_foreach(fs, i, ft)
            if (add_geometry(s, ft, depth + 1, err, errlen)) return -1;
        return 0;
    }
    json_t *coords = json_object_get(g, "coordinates");
    if (!strcmp(type, "Polygon")) return add_rings(s, coords, err, errlen);
    if (!strcmp(type, "MultiPolygon")) {
        json_t *poly;
        size_t i;
        if (!json_is_array(coords)) {
            snprintf(err, errlen, "a MultiPolygon's coordinates must be an array");
            return -1;
        }
        json_array_foreach(coords, i, poly)
            if (add_rings(s, poly, err, errlen)) return -1;
        return 0;
    }
    snprintf(err, errlen, "unsupported GeoJSON type '%.40s': use Polygon, "
             "MultiPolygon, Feature or FeatureCollection", type);
    return -1;
}

static void within_polygon(route_ctx *rc)
{
    char err[300];
    vehicle_filter vf;
    long long count;
    if (search_count(rc, &count) || parse_filter(rc->req, &vf, rc->resp)) return;
    json_t *o = body_object(rc->req, rc->resp);
    if (!o) return;
    fl_shape shape;
    fl_shape_init(&shape);
    int bad = add_geometry(&shape, o, 0, err, sizeof(err));
    json_decref(o);
    if (!bad && shape.points == 0) {
        snprintf(err, sizeof(err), "no polygon in the body");
        bad = 1;
    }
    if (bad) {
        fl_api_problem(rc->resp, 400, "%s", err);
        fl_shape_free(&shape);
        return;
    }
    fl_fleet_query q;
    memset(&q, 0, sizeof(q));
    memcpy(q.box, shape.bbox, sizeof(q.box));
    q.is_box = 1;
    q.status = vf.status;
    q.fleet = vf.fleet;
    q.fleet_len = vf.fleet_len;
    run_search(rc, &q, 0, &shape, count);
    fl_shape_free(&shape);
}

/* ---- trips ---- */

static int trip_path_mode(route_ctx *rc)
{
    const char *p = rc->req->arg(rc->req->arg_ud, "path");
    if (!p || !strcmp(p, "polyline")) return 1;
    if (!strcmp(p, "geojson")) return 2;
    if (!strcmp(p, "none")) return 0;
    fl_api_problem(rc->resp, 400, "path must be polyline, geojson or none");
    return -1;
}

static void trip_answer(route_ctx *rc, unsigned status, const fl_trip *t, int path)
{
    json_answer(rc->resp, status);
    fl_api_trip_json(&rc->resp->body, t, path);
}

static void post_trip(route_ctx *rc)
{
    char err[300];
    json_t *o = body_object(rc->req, rc->resp);
    if (!o) return;
    const char *vid, *tid;
    size_t vlen = 0, tlen = 0;
    long long ts;
    int has_ts;
    argv_builder ab;
    memset(&ab, 0, sizeof(ab));
    if (member_string(o, "vehicle", &vid, &vlen, err, sizeof(err)) ||
        (!vid && snprintf(err, sizeof(err), "vehicle is required") > 0) ||
        member_string(o, "id", &tid, &tlen, err, sizeof(err)) ||
        member_ts(o, &ts, &has_ts, err, sizeof(err))) {
        json_decref(o);
        fl_api_problem(rc->resp, 400, "%s", err);
        return;
    }
    argv_push_str(&ab, "TRIP.START");
    argv_push(&ab, vid, vlen);
    if (tid) {
        argv_push_str(&ab, "ID");
        argv_push(&ab, tid, tlen);
    }
    if (has_ts) {
        argv_push_str(&ab, "TS");
        argv_push_int(&ab, ts);
    }
    const char *reply = run_cmd(rc->a, rc->req, &ab, rc->resp);
    json_decref(o);
    if (answer_if_error(reply, rc->resp)) return;
    /* "$<len>\r\n<id>\r\n" */
    const char *nl = strstr(reply, "\r\n");
    const fl_trip *t = NULL;
    if (reply[0] == '$' && nl)
        t = fl_fleet_trip(rc->a->srv->fleet, nl + 2, (size_t)atol(reply + 1));
    if (!t) {
        fl_api_problem(rc->resp, 500, "the trip started but cannot be read back");
        return;
    }
    trip_answer(rc, 201, t, 1);
}

static void end_trip(route_ctx *rc)
{
    char err[300];
    const fl_fleet *f = rc->a->srv->fleet;
    const fl_trip *t = fl_fleet_trip(f, rc->id, rc->idlen);
    if (!t) {
        unknown_id(rc, "trip");
        return;
    }
    if (t->end_reason != FL_TRIP_RUNNING) {
        fl_api_problem(rc->resp, 409, "trip '%.*s' is not running",
                       (int)t->id_len, t->id);
        return;
    }
    long long ts = 0;
    int has_ts = 0;
    if (rc->req->body_len) {
        json_t *o = body_object(rc->req, rc->resp);
        if (!o) return;
        int bad = member_ts(o, &ts, &has_ts, err, sizeof(err));
        json_decref(o);
        if (bad) {
            fl_api_problem(rc->resp, 400, "%s", err);
            return;
        }
    }
    size_t vlen;
    char vid[FL_FLEET_ID_MAX], tid[FL_FLEET_ID_MAX];
    const char *owner = fl_trip_vehicle(t, &vlen);
    memcpy(vid, owner, vlen);
    size_t tlen = t->id_len;
    memcpy(tid, t->id, tlen);
    argv_builder ab;
    memset(&ab, 0, sizeof(ab));
    argv_push_str(&ab, "TRIP.END");
    argv_push(&ab, vid, vlen);
    if (has_ts) {
        argv_push_str(&ab, "TS");
        argv_push_int(&ab, ts);
    }
    const char *reply = run_cmd(rc->a, rc->req, &ab, rc->resp);
    if (answer_if_error(reply, rc->resp)) return;
    t = fl_fleet_trip(f, tid, tlen);
    if (!t) {
        fl_api_problem(rc->resp, 500, "the trip ended but is no longer kept");
        return;
    }
    trip_answer(rc, 200, t, 1);
}

static void get_trip(route_ctx *rc)
{
    int path = trip_path_mode(rc);
    if (path < 0) return;
    const fl_trip *t = fl_fleet_trip(rc->a->srv->fleet, rc->id, rc->idlen);
    if (!t) {
        unknown_id(rc, "trip");
        return;
    }
    trip_answer(rc, 200, t, path);
}

static int trip_overlaps(const fl_trip *t, long long from, long long to)
{
    int64_t end = t->end_ms ? t->end_ms : t->last_ms;
    return t->start_ms <= to && end >= from;
}

static void list_trips(route_ctx *rc)
{
    const fl_api_req *req = rc->req;
    const char *vid = req->arg(req->arg_ud, "vehicle");
    long long from = 0, to = INT64_MAX, limit = LIST_DEFAULT;
    if (!vid || !*vid || strlen(vid) > FL_FLEET_ID_MAX) {
        fl_api_problem(rc->resp, 400, "vehicle=<id> is required");
        return;
    }
    if (arg_long(req, "from", 0, INT64_MAX, &from) ||
        arg_long(req, "to", 0, INT64_MAX, &to) ||
        arg_long(req, "limit", 1, TRIPS_MAX, &limit)) {
        fl_api_problem(rc->resp, 400, "from and to must be unix milliseconds and "
                                      "limit 1 to %d", TRIPS_MAX);
        return;
    }
    int path = trip_path_mode(rc);
    if (path < 0) return;
    const fl_fleet *f = rc->a->srv->fleet;
    size_t vlen = strlen(vid);
    const fl_vehicle *v = fl_fleet_vehicle(f, vid, vlen);
    const fl_trip *t = fl_fleet_trips_of(f, vid, vlen);
    if (!v && !t) {
        fl_api_problem(rc->resp, 404, "unknown vehicle '%s'", vid);
        return;
    }
    json_answer(rc->resp, 200);
    fl_buf *b = &rc->resp->body;
    fl_buf_append_str(b, "{\"trips\":[");
    long long n = 0;
    if (v && v->trip && trip_overlaps(v->trip, from, to)) {
        fl_api_trip_json(b, v->trip, path);
        n++;
    }
    for (; t && n < limit; t = t->volder) {
        if (!trip_overlaps(t, from, to)) continue;
        if (n++) fl_buf_append_str(b, ",");
        fl_api_trip_json(b, t, path);
    }
    fl_buf_append_str(b, "]}");
}

/* ---- areas ---- */

typedef struct area_cell {
    uint64_t cell;
    uint32_t by_status[FL_VS_COUNT];
    uint32_t demand;
} area_cell;

typedef struct area_acc {
    area_cell *v;
    size_t n, cap;
} area_acc;

static area_cell *area_push(area_acc *a, uint64_t cell)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->v = fl_xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    area_cell *c = &a->v[a->n++];
    memset(c, 0, sizeof(*c));
    c->cell = cell;
    return c;
}

static int area_supply(void *ud, const fl_cell_count *c)
{
    area_cell *ac = area_push(ud, c->cell);
    memcpy(ac->by_status, c->by_status, sizeof(ac->by_status));
    return 0;
}

static int area_demand(void *ud, uint64_t cell, int level, uint32_t starts)
{
    (void)level;
    area_push(ud, cell)->demand = starts;
    return 0;
}

static int cell_cmp(const void *a, const void *b)
{
    uint64_t x = ((const area_cell *)a)->cell, y = ((const area_cell *)b)->cell;
    return x < y ? -1 : x > y;
}

/* Sorts by cell and folds supply and demand rows of one cell together. */
static void area_merge(area_acc *a)
{
    if (a->n == 0) return;
    qsort(a->v, a->n, sizeof(*a->v), cell_cmp);
    size_t w = 0;
    for (size_t r = 1; r < a->n; r++) {
        if (a->v[r].cell == a->v[w].cell) {
            for (int s = 0; s < FL_VS_COUNT; s++)
                a->v[w].by_status[s] += a->v[r].by_status[s];
            a->v[w].demand += a->v[r].demand;
        } else {
            a->v[++w] = a->v[r];
        }
    }
    a->n = w + 1;
}

static void area_feature(fl_buf *b, const area_cell *c, int level)
{
    double bb[4];
    char name[FL_CELL_MAX_LEVEL + 1];
    fl_cell_bounds(c->cell, level, bb);
    fl_cell_name(c->cell, level, name);
    fl_buf_append_str(b, "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\","
                         "\"coordinates\":[[");
    const int corner[5][2] = {{0, 1}, {2, 1}, {2, 3}, {0, 3}, {0, 1}};
    for (int i = 0; i < 5; i++) {
        fl_buf_append_str(b, i ? ",[" : "[");
        fl_json_fixed(b, bb[corner[i][0]], 6);
        fl_buf_append_str(b, ",");
        fl_json_fixed(b, bb[corner[i][1]], 6);
        fl_buf_append_str(b, "]");
    }
    fl_buf_printf(b, "]]},\"properties\":{\"cell\":\"%s\",\"available\":%u,"
                     "\"busy\":%u,\"offline\":%u,\"supply\":%u,\"demand\":%u}}",
                  name, c->by_status[FL_VS_AVAILABLE], c->by_status[FL_VS_BUSY],
                  c->by_status[FL_VS_OFFLINE], c->by_status[FL_VS_AVAILABLE],
                  c->demand);
}

static void areas(route_ctx *rc)
{
    const fl_api_req *req = rc->req;
    long long level = 6, window = 3600;
    double bb[4];
    if (arg_long(req, "level", FL_CELL_MIN_LEVEL, FL_CELL_MAX_LEVEL, &level) ||
        arg_long(req, "window", 1, 7 * 86400, &window)) {
        fl_api_problem(rc->resp, 400, "level must be %d to %d and window 1 to "
                       "604800 seconds", FL_CELL_MIN_LEVEL, FL_CELL_MAX_LEVEL);
        return;
    }
    int hasbox = parse_bbox(req->arg(req->arg_ud, "bbox"), bb);
    if (hasbox < 0) {
        fl_api_problem(rc->resp, 400, "bbox must be min lon,min lat,max lon,max lat");
        return;
    }
    const fl_fleet *f = rc->a->srv->fleet;
    area_acc acc = {0};
    int64_t since = (int64_t)req->now_ms - window * 1000;
    if (fl_fleet_cells(f, (int)level, hasbox ? bb : NULL, area_supply, &acc) ||
        fl_fleet_demand_cells(f, (int)level, hasbox ? bb : NULL, since,
                              area_demand, &acc)) {
        free(acc.v);
        fl_api_problem(rc->resp, 400, "invalid level");
        return;
    }
    area_merge(&acc);
    json_answer(rc->resp, 200);
    rc->resp->ctype = CT_GEOJSON;
    fl_buf *b = &rc->resp->body;
    size_t shown = acc.n < AREA_FEATURES_MAX ? acc.n : AREA_FEATURES_MAX;
    fl_buf_printf(b, "{\"type\":\"FeatureCollection\",\"level\":%lld,"
                     "\"window\":%lld,\"truncated\":%s,\"features\":[",
                  level, window, shown < acc.n ? "true" : "false");
    for (size_t i = 0; i < shown; i++) {
        if (i) fl_buf_append_str(b, ",");
        area_feature(b, &acc.v[i], (int)level);
    }
    fl_buf_append_str(b, "]}");
    free(acc.v);
}

/* ---- stats, events, and the routes of other layers ---- */

static void get_stats(route_ctx *rc)
{
    json_answer(rc->resp, 200);
    fl_api_stats_json(&rc->resp->body, rc->a);
}

static int parse_types(const char *s, unsigned *out)
{
    *out = 0;
    for (;;) {
        size_t n = strcspn(s, ",");
        if (n == 5 && !strncmp(s, "moves", 5)) *out |= FL_EV_MOVE;
        else if (n == 5 && !strncmp(s, "trips", 5))
            *out |= FL_EV_TRIP_STARTED | FL_EV_TRIP_ENDED;
        else if (n == 5 && !strncmp(s, "stats", 5)) *out |= FL_SSE_STATS;
        else return -1; /* unknown or empty (",,", a trailing comma) */
        if (!s[n]) return 0;
        s += n + 1;
    }
}

static void events(route_ctx *rc)
{
    const fl_api_req *req = rc->req;
    fl_sse_opts *o = &rc->resp->sse;
    const char *types = req->arg(req->arg_ud, "types");
    long long rate = 100;
    o->types = FL_EV_MOVE | FL_EV_TRIP_STARTED | FL_EV_TRIP_ENDED | FL_SSE_STATS;
    if (types && parse_types(types, &o->types)) {
        fl_api_problem(rc->resp, 400, "types is a comma-separated list of moves, "
                                      "trips and stats");
        return;
    }
    if (arg_long(req, "rate", 1, 10000, &rate)) {
        fl_api_problem(rc->resp, 400, "rate must be 1 to 10000 move events per second");
        return;
    }
    o->rate = (double)rate;
    o->has_bbox = parse_bbox(req->arg(req->arg_ud, "bbox"), o->bbox);
    if (o->has_bbox < 0) {
        fl_api_problem(rc->resp, 400, "bbox must be min lon,min lat,max lon,max lat");
        return;
    }
    rc->resp->kind = FL_API_STREAM;
    rc->resp->status = 200;
    rc->resp->ctype = "text/event-stream";
}

static void healthz(route_ctx *rc)
{
    json_answer(rc->resp, 200);
    fl_buf_append_str(&rc->resp->body, "{\"status\":\"ok\"}");
}

static void readyz(route_ctx *rc)
{
    const fl_server *s = rc->a->srv;
    if (__atomic_load_n(&s->shutdown_requested, __ATOMIC_RELAXED)) {
        fl_api_problem(rc->resp, 503, "shutting down");
        return;
    }
    if (s->loading) {
        fl_api_problem(rc->resp, 503, "loading the dataset in memory (%llu records so far)",
                       (unsigned long long)__atomic_load_n(&s->load_records,
                                                           __ATOMIC_RELAXED));
        return;
    }
    if (!__atomic_load_n(&s->ready, __ATOMIC_RELAXED)) {
        fl_api_problem(rc->resp, 503, "starting");
        return;
    }
    /* Writes are refused once the log has failed: a balancer should send
     * traffic elsewhere, while /healthz (alive) keeps the reads served. */
    if (s->persist.broken) {
        fl_api_problem(rc->resp, 503, "the write-ahead log failed; writes are refused "
                                      "(see the server log)");
        return;
    }
    json_answer(rc->resp, 200);
    fl_buf_append_str(&rc->resp->body, "{\"status\":\"ready\"}");
}

extern const char fl_openapi_json[];
extern const char fl_openapi_json_end[];

static void openapi(route_ctx *rc)
{
    json_answer(rc->resp, 200);
    fl_buf_append(&rc->resp->body, fl_openapi_json,
                  (size_t)(fl_openapi_json_end - fl_openapi_json));
}

static void metrics(route_ctx *rc)
{
    rc->resp->kind = FL_API_METRICS;
}

static void dashboard(route_ctx *rc)
{
    rc->resp->kind = FL_API_STATIC;
}

/* ---- the table ---- */

typedef void route_fn(route_ctx *rc);

enum route_flags { R_V1 = 1, R_PREFIX = 2 };

static const struct route {
    const char *method;
    const char *pattern;         /* "{id}" matches one segment */
    route_fn *fn;
    unsigned flags;
} routes[] = {
    {"GET", "/healthz", healthz, 0},
    {"GET", "/readyz", readyz, 0},
    {"GET", "/metrics", metrics, 0},
    {"GET", "/openapi.json", openapi, 0},
    {"GET", "/v1/stats", get_stats, R_V1},
    {"PUT", "/v1/vehicles/{id}/position", put_position, R_V1},
    {"POST", "/v1/positions", post_positions, R_V1},
    {"GET", "/v1/vehicles", list_vehicles, R_V1},
    {"GET", "/v1/vehicles/nearby", nearby, R_V1},
    {"GET", "/v1/vehicles/within", within_box, R_V1},
    {"POST", "/v1/vehicles/within", within_polygon, R_V1},
    {"GET", "/v1/vehicles/{id}", get_vehicle, R_V1},
    {"DELETE", "/v1/vehicles/{id}", delete_vehicle, R_V1},
    {"POST", "/v1/trips", post_trip, R_V1},
    {"GET", "/v1/trips", list_trips, R_V1},
    {"GET", "/v1/trips/{id}", get_trip, R_V1},
    {"POST", "/v1/trips/{id}/end", end_trip, R_V1},
    {"GET", "/v1/areas", areas, R_V1},
    {"GET", "/v1/events", events, R_V1},
    {"GET", "/", dashboard, R_PREFIX},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Matches path against pattern; the {id} segment goes to *id. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t fl_api_percent_decode(char *out, const char *in, size_t n)
{
    size_t w = 0;
    for (size_t r = 0; r < n;) {
        int hi = in[r] == '%' && r + 2 < n ? hex_value(in[r + 1]) : -1;
        int lo = hi >= 0 ? hex_value(in[r + 2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            out[w++] = (char)(hi << 4 | lo);
            r += 3;
        } else {
            out[w++] = in[r++];
        }
    }
    return w;
}

/* Matches path (raw: percent-encoded) against pattern; the {id} segment
 * is decoded after the split on '/', so an id may hold '/' as %2F. An id
 * too long to decode does not match (404). */
static int route_match(const char *pattern, const char *path, const char **id,
                       size_t *idlen, char idbuf[ID_SEGMENT_MAX])
{
    while (*pattern && *path) {
        if (!strncmp(pattern, "{id}", 4)) {
            size_t n = strcspn(path, "/");
            if (n == 0 || n > ID_SEGMENT_MAX) return 0;
            *id = idbuf;
            *idlen = fl_api_percent_decode(idbuf, path, n);
            pattern += 4;
            path += n;
            continue;
        }
        if (*pattern++ != *path++) return 0;
    }
    return *pattern == '\0' && *path == '\0';
}

/* Static dashboard files: "/" and paths without "/v1/" that no other
 * route claims. */
static int is_static_path(const char *path)
{
    return path[0] == '/' && strncmp(path, "/v1/", 4) != 0 &&
           strcmp(path, "/v1") != 0;
}

static int method_is(const char *want, const char *method)
{
    return !strcmp(want, method) ||
           (!strcmp(want, "GET") && !strcmp(method, "HEAD"));
}

int fl_api_authorized(const fl_api *a, const char *path,
                      const char *authorization)
{
    const char *pass = a->srv->cfg.requirepass;
    if (!pass[0] || (strncmp(path, "/v1/", 4) != 0 && strcmp(path, "/v1") != 0))
        return 1;
    const char *h = authorization;
    return h && !strncasecmp(h, "Bearer ", 7) && !strcmp(h + 7, pass);
}

/* Adds a method (and HEAD after GET) to an Allow list once. */
static void allow_add(char *allow, size_t cap, const char *method)
{
    const char *m[2] = {method, !strcmp(method, "GET") ? "HEAD" : NULL};
    for (int i = 0; i < 2 && m[i]; i++) {
        if (strstr(allow, m[i]) || strlen(allow) + strlen(m[i]) + 3 > cap) continue;
        if (allow[0]) strcat(allow, ", ");
        strcat(allow, m[i]);
    }
}

void fl_api_handle(fl_api *a, const fl_api_req *req, fl_api_resp *resp)
{
    route_ctx rc = {a, req, resp, NULL, 0, {0}};
    const char *raw = req->raw_path ? req->raw_path : req->path;
    char allow[64] = "";
    const struct route *hit = NULL;
    for (size_t i = 0; i < NROUTES && !hit; i++) {
        const struct route *r = &routes[i];
        const char *id = NULL;
        size_t idlen = 0;
        int match = (r->flags & R_PREFIX)
                        ? is_static_path(req->path)
                        : route_match(r->pattern, raw, &id, &idlen, rc.idbuf);
        if (!match) continue;
        if (method_is(r->method, req->method)) {
            hit = r;
            rc.id = id;
            rc.idlen = idlen;
        } else {
            allow_add(allow, sizeof(allow), r->method);
        }
    }
    if (!hit && allow[0]) {
        memcpy(resp->allow_buf, allow, sizeof(resp->allow_buf));
        fl_api_problem(resp, 405, "%s is not allowed here: use %s", req->method,
                       allow);
        resp->allow = resp->allow_buf;
        return;
    }
    if (!hit) {
        fl_api_problem(resp, 404, "no route for %s %.200s", req->method, req->path);
        return;
    }
    if ((hit->flags & R_V1) && !fl_api_authorized(a, req->path, req->authorization)) {
        fl_api_problem(resp, 401, "send Authorization: Bearer <requirepass>");
        return;
    }
    /* The store's worker thread owns the data while it loads. */
    if ((hit->flags & R_V1) && a->srv->loading) {
        fl_api_problem(resp, 503, "loading the dataset in memory; retry shortly");
        return;
    }
    hit->fn(&rc);
}

void fl_api_print_routes(fl_buf *out)
{
    for (size_t i = 0; i < NROUTES; i++)
        fl_buf_printf(out, "%s %s\n", routes[i].method, routes[i].pattern);
}

void fl_api_init(fl_api *a, fl_server *srv)
{
    memset(a, 0, sizeof(*a));
    a->srv = srv;
    a->sess.proto = 3;
    a->sess.authenticated = 1;
    snprintf(a->sess.name, sizeof(a->sess.name), "http");
    snprintf(a->sess.addr, sizeof(a->sess.addr), "http");
    fl_buf_init(&a->reply);
}

void fl_api_free(fl_api *a)
{
    fl_buf_free(&a->reply);
}
