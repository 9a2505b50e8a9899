/*
 * http_api.h - the JSON API under /v1 and the route table of the HTTP port.
 *
 * A request comes in as plain values (method, path, a query lookup, the
 * body) and leaves as a status, a content type and a body; nothing here
 * touches a socket, so the HTTP edge (http.c) stays a thin adapter over
 * libmicrohttpd and the fuzz target drives the same code without one.
 *
 * Writes go through the command table (fl_cmd_dispatch), exactly as a
 * RESP client's VEHICLE.UPDATE or TRIP.START, so the two protocols cannot
 * disagree about a rule and both land in the log the same way; the
 * response then carries the log position its answer must wait for
 * (wal_need). Reads render straight from the fleet into JSON.
 *
 * Runs on the event-loop thread only. Ownership: fl_api_resp.body belongs
 * to the caller, who frees it with fl_api_resp_free; everything in the
 * request is borrowed for the call.
 */
#ifndef FL_NET_HTTP_API_H
#define FL_NET_HTTP_API_H

#include <stddef.h>
#include <stdint.h>

#include "../cmd/cmd.h"
#include "../util/buf.h"

struct fl_server;
struct fl_fleet;
struct fl_vehicle;
struct fl_trip;

#define FL_API_MAX_JSON_BODY ((size_t)1 << 20)     /* one JSON document */
#define FL_API_MAX_NDJSON_BODY ((size_t)32 << 20)  /* POST /v1/positions */

typedef struct fl_api_req {
    const char *method;
    const char *path;                /* decoded, without the query */
    /* The value of query argument `key`, or NULL when absent. */
    const char *(*arg)(void *ud, const char *key);
    void *arg_ud;
    const char *content_type;        /* NULL when absent */
    const char *authorization;       /* NULL when absent */
    const char *body;
    size_t body_len;
    uint64_t now_ms, now_us;         /* wall clock, read by the edge */
    /* As sent, percent-encoded, without the query; NULL: use path. /v1
     * routes match on it, so an {id} may hold an encoded '/' (%2F). */
    const char *raw_path;
} fl_api_req;

/* What an event stream asks for (GET /v1/events). */
typedef struct fl_sse_opts {
    unsigned types;                  /* enum fl_event_type bits | FL_SSE_STATS */
    double rate;                     /* move events per second */
    int has_bbox;
    double bbox[4];
} fl_sse_opts;
#define FL_SSE_STATS 0x100u

enum fl_api_kind {
    FL_API_DONE = 0,     /* status, ctype and body are the answer */
    FL_API_STREAM = 1,   /* start an event stream with resp->sse */
    FL_API_STATIC = 2,   /* serve a dashboard file: the edge's job */
    FL_API_METRICS = 3,  /* render /metrics: the edge's job */
    FL_API_LIST = 4      /* status 200, ctype; the body comes in slices
                            from fl_api_list_next(resp->list) */
};

/* A vehicle list being written (GET /v1/vehicles). One page of 200,000
 * vehicles is ~10 MB of JSON and ~20 ms of rendering: done at once on
 * the loop it would stall every other client for that long (the p99 of
 * VEHICLE.UPDATE went from 0.3 ms to 30 ms with one dashboard polling).
 * So the edge asks for it a slice at a time, each bounded in vehicles
 * looked at and bytes written, between its other work. The walk resumes
 * from (key, id) values, never pointers, so vehicles may change or go
 * between slices; one that moves across the walk's position may appear
 * twice in the page or not at all, as across pages. */
typedef struct fl_api_list fl_api_list;

/* Appends the next slice of the answer to out. Returns 1 while more
 * slices follow, 0 once the answer is complete. */
int fl_api_list_next(fl_api_list *l, fl_buf *out);

typedef struct fl_api_resp {
    int kind;                        /* enum fl_api_kind */
    unsigned status;
    const char *ctype;               /* static string */
    const char *allow;               /* set with 405: points at allow_buf */
    char allow_buf[64];
    fl_buf body;                     /* owned by the caller */
    uint64_t wal_need;               /* log records the answer waits for */
    fl_sse_opts sse;
    fl_api_list *list;               /* FL_API_LIST: owned, freed by
                                        fl_api_resp_free unless taken */
} fl_api_resp;

/* Live numbers for /v1/stats and the SSE stats event, sampled once a
 * second by the edge. */
typedef struct fl_api_stats {
    double updates_per_s;
    double p50_us, p99_us;           /* VEHICLE.UPDATE, over the last second */
    uint64_t clients, http_clients, sse_clients;
    uint64_t ts_ms;
} fl_api_stats;

struct fl_api;
typedef struct fl_api {
    struct fl_server *srv;
    fl_session sess;                 /* the session HTTP commands run in */
    fl_buf reply;                    /* RESP replies of dispatched commands */
    fl_api_stats stats;
} fl_api;

void fl_api_init(fl_api *a, struct fl_server *srv);
void fl_api_free(fl_api *a);
/* Answers one request; the answer is always set (a problem on error). */
void fl_api_handle(fl_api *a, const fl_api_req *req, fl_api_resp *resp);

/* Percent-decodes in[0..n) into out (which may be in: the result is never
 * longer), except %00, which stays as it is: a NUL would cut the C string
 * a handler sees ("a%00b" would address "a"). Returns the length written;
 * out is not NUL-terminated. */
size_t fl_api_percent_decode(char *out, const char *in, size_t n);
void fl_api_resp_init(fl_api_resp *r);
void fl_api_resp_free(fl_api_resp *r);
/* Frees a list taken out of a response (resp->list set to NULL). */
void fl_api_list_free(fl_api_list *l);

/* An RFC 9457 problem document as the answer. */
void fl_api_problem(fl_api_resp *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* JSON of a vehicle and of a trip (path: 0 none, 1 polyline, 2 GeoJSON),
 * shared with the event streams. */
void fl_api_vehicle_json(fl_buf *b, const struct fl_fleet *f,
                         const struct fl_vehicle *v);
void fl_api_trip_json(fl_buf *b, const struct fl_trip *t, int path);
/* The live counters (the last sample and the fleet's counts). */
void fl_api_stats_json(fl_buf *b, const struct fl_api *a);

/* Whether a request to path may proceed with this Authorization header
 * (requirepass guards /v1 only). The edge asks before reading a body. */
int fl_api_authorized(const fl_api *a, const char *path,
                      const char *authorization);

/* The route table, for `fleetd --routes`: one "METHOD /path" per line. */
void fl_api_print_routes(fl_buf *out);

#endif
