/*
 * http.c - the HTTP edge: libmicrohttpd driven by the event loop.
 *
 * Why shaped so:
 * - libmicrohttpd runs without a thread of its own (external polling with
 *   epoll): its epoll descriptor sits in a uv_poll handle and its timeouts
 *   in a uv_timer, so every request is handled on the loop thread that
 *   owns the fleet. The /v1 handlers (http_api.c) then call the command
 *   table directly, with no lock and no hand-off; the price is that a
 *   scrape of /metrics runs on the loop too (it costs tens of
 *   microseconds).
 * - We create, bind and listen on the socket ourselves and hand it over
 *   (MHD_OPTION_LISTEN_SOCKET), so startup errors carry errno and a test
 *   can bind port 0 and ask which port it got.
 * - Limits: connections (global and per IP), idle timeout and memory per
 *   connection are libmicrohttpd's; request bodies are capped here by
 *   route (1 MiB for JSON, 32 MiB for an NDJSON batch, 1 KiB for methods
 *   that take none), refused with 413 from the declared length before
 *   a byte is read; a chunked body that passes the cap is dropped as it
 *   arrives and answered 413 at its end (libmicrohttpd cannot answer
 *   mid-upload), or cut off after 64 MiB.
 * - Durability: an answer that reports a change waits until the change's
 *   log record is as durable as --fsync demands, like a RESP reply. The
 *   request is suspended (MHD_suspend_connection) and resumed from the
 *   loop's check phase once the log has caught up. Every answer waits for
 *   the records appended before it, so no client reads a change that a
 *   crash could still take back.
 * - Server-Sent Events: a stream is a response whose content callback
 *   copies from the subscriber's buffer; with nothing to send it suspends
 *   the connection (libmicrohttpd's prescribed way to avoid a busy loop),
 *   and an event appended to the buffer resumes it. A subscriber that
 *   does not read is not allowed to grow without bound: past
 *   SSE_MAX_BUFFER (256 KiB) its events are dropped and counted. Events
 *   go out when their command runs, not when its record is durable: a
 *   crash can take back a change a stream has already shown.
 * - This is the edge: it reads the clocks and the dashboard's files.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <uv.h>

#include "http_api.h"
#include "../cmd/server.h"
#include "../fleet/fleet.h"
#include "../geo/geohash.h"
#include "../metrics/prom.h"
#include "../util/buf.h"

#define FL_HTTP_BACKLOG 128
#define FL_HTTP_MAX_CONNECTIONS 1024u
#define FL_HTTP_MAX_PER_IP 512u
#define FL_HTTP_TIMEOUT_S 10u
#define FL_HTTP_CONN_MEMORY ((size_t)32 * 1024)
#define FL_HTTP_OTHER_BODY ((size_t)1024) /* GET, DELETE, ... */
#define FL_HTTP_DRAIN_MAX ((uint64_t)64 << 20) /* dropped before closing */
#define FL_HTTP_BODIES_MAX ((size_t)256 << 20) /* all bodies buffered */
#define SSE_MAX_BUFFER ((size_t)256 << 10)
#define SSE_KEEPALIVE_MS 15000
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"

typedef struct http_req http_req;
typedef struct sse_sub sse_sub;
typedef struct list_stream list_stream;
typedef struct fl_http fl_http;

/* A connection suspended until the log reaches wal_need: held answers and
 * list streams between slices wait the same way, on one list each. */
typedef struct log_wait log_wait;
struct log_wait {
    log_wait *prev, *next;
    struct MHD_Connection *conn;
    uint64_t wal_need;
    int waiting;               /* linked and suspended */
};

struct fl_http {
    struct MHD_Daemon *daemon;
    fl_server *srv;
    uv_loop_t *loop;
    uv_poll_t poll;            /* libmicrohttpd's epoll descriptor */
    uv_timer_t timer;          /* libmicrohttpd's next timeout */
    uv_check_t check;          /* releases answers the log caught up with */
    uv_idle_t idle;            /* active while answers are held */
    uv_timer_t tick;           /* 1 s: stats, SSE stats and keepalives */
    int handles_open;
    int closing;
    int port;
    char web_dir[PATH_MAX];
    fl_api api;
    log_wait *held;            /* answers waiting for the log (http_req) */
    log_wait *lists_held;      /* vehicle lists between slices (list_stream) */
    uint64_t turn;             /* loop turns, counted in the check phase */
    size_t body_bytes;         /* request bodies buffered, all connections */
    sse_sub *subs;             /* event streams */
    uint64_t nsubs;
    fl_buf scratch;            /* one event, formatted once for every stream */
    /* the last stats sample */
    uint64_t prev_calls, prev_ms, last_keepalive_ms;
    fl_hist prev_hist;
    size_t update_cmd;         /* index of VEHICLE.UPDATE in cmd_stats */
};

struct http_req {
    log_wait wait;             /* first: h->held holds &q->wait */
    fl_http *h;
    uint64_t start_ns;         /* when its headers were in */
    fl_buf body;
    size_t body_limit;
    int refused;               /* a 413 was queued */
    int too_large;             /* 413 or 503: the body passed a cap, dropped */
    uint64_t drained;          /* bytes dropped */
    int ready;                 /* resp is computed, waiting for the log */
    int started;               /* on_request has seen its headers */
    char *raw_path;            /* as sent, without the query; owned */
    fl_api_resp resp;
};

struct sse_sub {
    fl_http *h;
    struct MHD_Connection *conn;
    fl_sse_opts o;
    fl_buf out;
    size_t out_off;            /* bytes of out already sent */
    int suspended;
    double tokens;
    uint64_t tokens_ms;
    uint64_t dropped;
    sse_sub *prev, *next;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    /* Truncation is acceptable: err is a one-line human message. */
    if (vsnprintf(err, errlen, fmt, ap) < 0) err[0] = '\0';
    va_end(ap);
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void run_daemon(fl_http *h);

/* ---- responses ---- */

/* Content-Type (none for an empty 204), no caching, and Allow (405) or
 * WWW-Authenticate (401) when the answer calls for them. */
static int add_headers(struct MHD_Response *r, const char *ctype,
                       const char *allow, unsigned status)
{
    if (status == 401 &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"fleetd\"") != MHD_YES)
        return 0;
    return (status == 204 || !ctype ||
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) ==
                MHD_YES) &&
           MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                                   "no-store") == MHD_YES &&
           (!allow ||
            MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow) == MHD_YES);
}

/* Queues body (ownership moves to libmicrohttpd). */
static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status,
                                 const char *ctype, fl_buf *body,
                                 const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body->len, body->data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        fl_buf_free(body);
        return MHD_NO;
    }
    fl_buf_init(body); /* the response frees the bytes now */
    enum MHD_Result rc = MHD_NO;
    if (add_headers(r, ctype, allow, status)) rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r); /* drops our reference; the queue keeps one */
    return rc;
}

/* Counts an answer by class and records the request's latency. */
static void note_answer(http_req *q, unsigned status)
{
    fl_http_stats *st = &q->h->srv->http;
    if (status >= 100 && status < 600) FL_STAT_INC(st->answers[status / 100]);
    fl_hist_record(&st->latency, uv_hrtime() - q->start_ns);
}

static enum MHD_Result send_resp(http_req *q)
{
    fl_api_resp *r = &q->resp;
    note_answer(q, r->status);
    return send_body(q->wait.conn, r->status, r->ctype, &r->body, r->allow);
}

static enum MHD_Result send_problem(http_req *q, unsigned status,
                                    const char *detail)
{
    fl_api_problem(&q->resp, status, "%s", detail);
    return send_resp(q);
}

/* ---- the dashboard's files ---- */

static const char *file_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".geojson", "application/geo+json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".wasm", "application/wasm"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (!strcmp(dot, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

/* A path that stays inside the web directory: no "..", no hidden files. */
static int safe_path(const char *p)
{
    if (p[0] != '/' || strlen(p) > 200) return 0;
    return !strstr(p, "/.") && !strstr(p, "\\") && !strstr(p, "//");
}

static enum MHD_Result serve_static(http_req *q, const char *url)
{
    fl_http *h = q->h;
    char path[PATH_MAX + 256];
    if (!safe_path(url))
        return send_problem(q, 404, "no such file");
    if (!h->web_dir[0])
        return send_problem(q, 404, "the dashboard is not built: run make web");
    int k = snprintf(path, sizeof(path), "%s%s%s", h->web_dir, url,
                     url[strlen(url) - 1] == '/' ? "index.html" : "");
    int fd = k > 0 && (size_t)k < sizeof(path) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) (void)close(fd); /* read-only: nothing to lose */
        return send_problem(q, 404, "no such file");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r) {
        (void)close(fd);
        return MHD_NO;
    }
    enum MHD_Result rc = MHD_NO;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, file_type(path)) ==
            MHD_YES &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") ==
            MHD_YES)
        rc = MHD_queue_response(q->wait.conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    note_answer(q, MHD_HTTP_OK);
    return rc;
}

/* dirname(/proc/self/exe)/web, else its parent's web (build/san/fleetd
 * serves build/web). Empty when neither exists. */
static void find_web_dir(char *out, size_t n)
{
    char exe[PATH_MAX];
    out[0] = '\0';
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len <= 0) return;
    exe[len] = '\0';
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) return;
        *slash = '\0';
        char cand[PATH_MAX + 16];
        struct stat st;
        if (snprintf(cand, sizeof(cand), "%s/web", exe) < (int)sizeof(cand) &&
            stat(cand, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (strlen(cand) < n) memcpy(out, cand, strlen(cand) + 1);
            return;
        }
    }
}

/* ---- event streams ---- */

static void subs_update_mask(fl_http *h)
{
    unsigned mask = 0;
    for (sse_sub *s = h->subs; s; s = s->next) mask |= s->o.types;
    h->srv->hooks.event_mask = mask & (FL_EV_MOVE | FL_EV_TRIP_STARTED | FL_EV_TRIP_ENDED);
}

static void sse_wake(sse_sub *s)
{
    if (!s->suspended) return;
    s->suspended = 0;
    MHD_resume_connection(s->conn);
}

static void sse_push(sse_sub *s, const char *p, size_t n)
{
    if (s->out_off && s->out_off == s->out.len) s->out.len = s->out_off = 0;
    if (s->out.len - s->out_off + n > SSE_MAX_BUFFER) {
        s->dropped++;
        FL_STAT_INC(s->h->srv->http.sse_dropped);
        return;
    }
    FL_STAT_INC(s->h->srv->http.sse_events);
    fl_buf_append(&s->out, p, n);
    sse_wake(s);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_sub *s = cls;
    size_t left = s->out.len - s->out_off;
    if (left) {
        /* A read offset, not fl_buf_consume: moving the rest down on
         * every block would be quadratic for a stream that fell behind. */
        size_t n = left < max ? left : max;
        memcpy(buf, s->out.data + s->out_off, n);
        s->out_off += n;
        if (s->out_off == s->out.len) s->out.len = s->out_off = 0;
        return (ssize_t)n;
    }
    if (s->h->closing) return MHD_CONTENT_READER_END_OF_STREAM;
    s->suspended = 1;
    MHD_suspend_connection(s->conn);
    return 0;
}

static void sse_free(void *cls)
{
    sse_sub *s = cls;
    fl_http *h = s->h;
    if (s->prev) s->prev->next = s->next;
    else h->subs = s->next;
    if (s->next) s->next->prev = s->prev;
    h->nsubs--;
    FL_STAT_ADD(h->srv->http.sse_streams, (uint64_t)-1);
    subs_update_mask(h);
    fl_buf_free(&s->out);
    free(s);
}

static enum MHD_Result start_stream(http_req *q)
{
    fl_http *h = q->h;
    sse_sub *s = fl_xcalloc(1, sizeof(*s));
    s->h = h;
    s->conn = q->wait.conn;
    s->o = q->resp.sse;
    s->tokens = s->o.rate;
    s->tokens_ms = uv_now(h->loop);
    fl_buf_init(&s->out);
    fl_buf_append_str(&s->out, "retry: 2000\n: fleetd events\n\n");
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, s, sse_free);
    if (!r) {
        fl_buf_free(&s->out);
        free(s);
        return MHD_NO;
    }
    s->next = h->subs;
    if (h->subs) h->subs->prev = s;
    h->subs = s;
    h->nsubs++;
    subs_update_mask(h);
    enum MHD_Result rc = MHD_NO;
    if (add_headers(r, "text/event-stream", NULL, MHD_HTTP_OK) &&
        MHD_add_response_header(r, "X-Accel-Buffering", "no") == MHD_YES)
        rc = MHD_queue_response(q->wait.conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r); /* sse_free runs when the stream ends */
    note_answer(q, MHD_HTTP_OK);
    FL_STAT_INC(h->srv->http.sse_streams);
    return rc;
}

static int move_admitted(sse_sub *s, const fl_vehicle *v, uint64_t now)
{
    if (s->o.has_bbox && !fl_geo_box_contains(s->o.bbox, v->lon, v->lat))
        return 0;
    s->tokens += (double)(now - s->tokens_ms) * s->o.rate / 1000.0;
    s->tokens_ms = now;
    if (s->tokens > s->o.rate) s->tokens = s->o.rate; /* a burst of 1 s */
    if (s->tokens < 1) return 0;
    s->tokens -= 1;
    return 1;
}

static void format_move(fl_buf *b, const fl_fleet *f, const fl_vehicle *v)
{
    b->len = 0;
    fl_buf_append_str(b, "event: move\ndata: ");
    fl_api_vehicle_json(b, f, v);
    fl_buf_append_str(b, "\n\n");
}

static void on_event(void *ud, const fl_event *ev)
{
    fl_http *h = ud;
    fl_buf *b = &h->scratch;
    b->len = 0;
    uint64_t now = uv_now(h->loop);
    for (sse_sub *s = h->subs; s; s = s->next) {
        if (!(s->o.types & (unsigned)ev->type)) continue;
        if (ev->type == FL_EV_MOVE) {
            if (!move_admitted(s, ev->v, now)) continue;
            if (!b->len) format_move(b, h->srv->fleet, ev->v);
        } else if (!b->len) {
            fl_buf_printf(b, "event: %s\ndata: ", ev->type == FL_EV_TRIP_STARTED
                                                      ? "trip_started" : "trip_ended");
            fl_api_trip_json(b, ev->t, 0);
            fl_buf_append_str(b, "\n\n");
        }
        sse_push(s, b->data, b->len);
    }
}

/* ---- stats, once a second ---- */

static void sample_stats(fl_http *h, uint64_t now_ms)
{
    const fl_cmd_stats *cs = &h->srv->cmd_stats[h->update_cmd];
    static fl_hist cur, diff;
    fl_hist_snapshot(&cs->latency, &cur);
    diff.count = cur.count - h->prev_hist.count;
    diff.sum = cur.sum - h->prev_hist.sum;
    for (unsigned i = 0; i < FL_HIST_BUCKETS; i++)
        diff.buckets[i] = cur.buckets[i] - h->prev_hist.buckets[i];
    h->prev_hist = cur;
    fl_api_stats *st = &h->api.stats;
    uint64_t dt = now_ms - h->prev_ms;
    st->updates_per_s = dt ? (double)(cs->calls - h->prev_calls) * 1000.0 / (double)dt : 0;
    st->p50_us = fl_hist_quantile(&diff, 0.5) / 1000.0;
    st->p99_us = fl_hist_quantile(&diff, 0.99) / 1000.0;
    st->clients = h->srv->hooks.clients_connected
                      ? h->srv->hooks.clients_connected(h->srv->hooks.ud) : 0;
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    st->http_clients = di ? di->num_connections : 0;
    st->sse_clients = h->nsubs;
    st->ts_ms = wall_us() / 1000;
    h->prev_calls = cs->calls;
    h->prev_ms = now_ms;
}

static void tick_cb(uv_timer_t *t)
{
    fl_http *h = t->data;
    uint64_t now = uv_now(h->loop);
    if (!h->srv->loading) sample_stats(h, now); /* the loader owns the counters */
    int keepalive = now - h->last_keepalive_ms >= SSE_KEEPALIVE_MS;
    if (keepalive) h->last_keepalive_ms = now;
    fl_buf *b = &h->scratch;
    b->len = 0;
    for (sse_sub *s = h->subs; s; s = s->next) {
        if (s->o.types & FL_SSE_STATS) {
            if (!b->len) {
                fl_buf_append_str(b, "event: stats\ndata: ");
                fl_api_stats_json(b, &h->api);
                fl_buf_append_str(b, "\n\n");
            }
            sse_push(s, b->data, b->len);
        } else if (keepalive) {
            sse_push(s, ": keepalive\n\n", 13);
        }
    }
    run_daemon(h);
}

/* ---- vehicle lists, written in slices ---- */

/* A GET /v1/vehicles answer (see fl_api_list in http_api.h): rendered one
 * slice per read callback, so a large page is spread over many turns of
 * the loop instead of stalling it. Each slice shows the fleet as it is
 * when rendered, so, like any read, it is not rendered while changes are
 * in the log but not yet durable: the stream waits (suspended) for the
 * check phase that makes them so. */
struct list_stream {
    log_wait wait;               /* first: h->lists_held holds &ls->wait */
    fl_http *h;
    fl_api_list *list;           /* owned */
    fl_buf out;                  /* rendered, not yet handed over */
    size_t out_off;
    int more;                    /* slices still to render */
    uint64_t turn;               /* the loop turn of the last slice */
};

static void wait_for_log(fl_http *h, log_wait **list, log_wait *w, uint64_t need);
static void wait_unlink(log_wait **list, log_wait *w);
static void wait_over(log_wait **list, log_wait *w);

/* Resumes the lists the log caught up with (all of them when giving up:
 * a broken log or a stop; the read callback then decides). */
static void release_lists(fl_http *h, uint64_t level, int give_up)
{
    for (log_wait *w = h->lists_held, *next; w; w = next) {
        next = w->next;
        if (give_up || w->wal_need <= level) wait_over(&h->lists_held, w);
    }
}

static ssize_t list_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    list_stream *ls = cls;
    fl_http *h = ls->h;
    /* Cut short, the page must not look complete: no closing chunk. */
    if (h->closing) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (ls->out_off == ls->out.len) {
        ls->out.len = ls->out_off = 0;
        if (!ls->more) return MHD_CONTENT_READER_END_OF_STREAM;
        /* One slice per turn of the loop: libmicrohttpd keeps calling
         * while the socket takes data, and would otherwise write the
         * whole page before any other client is served. */
        if (ls->turn == h->turn) {
            wait_for_log(h, &h->lists_held, &ls->wait, 0);
            return 0;
        }
        ls->turn = h->turn;
        ls->more = fl_api_list_next(ls->list, &ls->out);
        /* The slice shows the fleet as it is now: like any read it goes
         * out once every change made so far is durable (checked after
         * rendering, so writes arriving meanwhile cannot postpone it). */
        fl_server *srv = h->srv;
        uint64_t need = srv->persist.appended;
        if (ls->out.len == 0 ||
            (need > fl_server_durable_level(srv) && !srv->persist.broken)) {
            wait_for_log(h, &h->lists_held, &ls->wait, ls->out.len ? need : 0); /* empty: next turn */
            return 0;
        }
    }
    size_t n = ls->out.len - ls->out_off;
    if (n > max) n = max;
    memcpy(buf, ls->out.data + ls->out_off, n);
    ls->out_off += n;
    return (ssize_t)n;
}

static void list_free(void *cls)
{
    list_stream *ls = cls;
    /* Not resumed (cannot happen in valid use): unlink only. */
    if (ls->wait.waiting) wait_unlink(&ls->h->lists_held, &ls->wait);
    fl_api_list_free(ls->list);
    fl_buf_free(&ls->out);
    free(ls);
}

static enum MHD_Result start_list(http_req *q)
{
    list_stream *ls = fl_xcalloc(1, sizeof(*ls));
    ls->h = q->h;
    ls->wait.conn = q->wait.conn;
    ls->list = q->resp.list;
    ls->more = 1;
    ls->turn = q->h->turn - 1; /* the first slice may go this turn */
    q->resp.list = NULL; /* the stream owns it now */
    fl_buf_init(&ls->out);
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16 * 1024, list_read, ls, list_free);
    if (!r) {
        list_free(ls);
        return MHD_NO;
    }
    enum MHD_Result rc = MHD_NO;
    if (add_headers(r, q->resp.ctype, NULL, MHD_HTTP_OK))
        rc = MHD_queue_response(q->wait.conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r); /* list_free runs when the answer is done */
    note_answer(q, MHD_HTTP_OK);
    return rc;
}

/* ---- waiting for the log ---- */

static void idle_cb(uv_idle_t *i)
{
    (void)i; /* its being active is the point: see check_cb */
}

static void keep_turning(fl_http *h)
{
    if (uv_idle_start(&h->idle, idle_cb) != 0) /* a no-op when active */
        fprintf(stderr, "fleetd: http: cannot start the idle handle\n");
}

/* Links w at the head of *list and suspends its connection until the log
 * reaches need; the loop keeps turning while anything waits. */
static void wait_for_log(fl_http *h, log_wait **list, log_wait *w, uint64_t need)
{
    keep_turning(h);
    w->wal_need = need;
    w->waiting = 1;
    w->prev = NULL;
    w->next = *list;
    if (*list) (*list)->prev = w;
    *list = w;
    MHD_suspend_connection(w->conn);
}

static void wait_unlink(log_wait **list, log_wait *w)
{
    if (w->prev) w->prev->next = w->next;
    else *list = w->next;
    if (w->next) w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->waiting = 0;
}

static void wait_over(log_wait **list, log_wait *w)
{
    wait_unlink(list, w);
    MHD_resume_connection(w->conn);
}

/* Flushes the log, then releases the held answers it caught up with.
 * An answer whose own change is not durable when the log has failed, or
 * when the server stops, becomes a 503: the change was applied but cannot
 * be promised. Answers held only for other clients' records (reads) go
 * out as they are then. */
static void release_held(fl_http *h, int stopping)
{
    fl_server *srv = h->srv;
    if (srv->hooks.persist_flush) srv->hooks.persist_flush(srv->hooks.store_ud);
    uint64_t level = fl_server_durable_level(srv);
    int give_up = stopping || srv->persist.broken;
    release_lists(h, level, give_up);
    for (log_wait *w = h->held, *next; w; w = next) {
        next = w->next;
        http_req *q = (http_req *)w; /* wait is its first member */
        if (w->wal_need <= level) {
            wait_over(&h->held, w);
        } else if (give_up) {
            if (q->resp.wal_need > level)
                fl_api_problem(&q->resp, 503, stopping
                               ? "shutting down before the change was durable"
                               : "the change was applied but the log failed, "
                                 "so it is not durable");
            wait_over(&h->held, w);
        }
    }
}

static void check_cb(uv_check_t *c)
{
    fl_http *h = c->data;
    h->turn++;
    if (!h->held && !h->lists_held) {
        (void)uv_idle_stop(&h->idle); /* never fails; a no-op when stopped */
        return;
    }
    release_held(h, 0);
    run_daemon(h);
    /* Keep-alive connections read their next request while their answer
     * is sent, so the run above may have held new answers; the idle
     * handle stops the loop from sleeping on them. */
    if (!h->held && !h->lists_held) (void)uv_idle_stop(&h->idle); /* never fails */
}

/* ---- the handler ---- */

static const char *query_arg(void *ud, const char *key)
{
    return MHD_lookup_connection_value(ud, MHD_GET_ARGUMENT_KIND, key);
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result answer(http_req *q, const char *url, const char *method)
{
    fl_http *h = q->h;
    uint64_t now_us = wall_us();
    fl_api_req req = {method, url, query_arg, q->wait.conn,
                      header(q->wait.conn, MHD_HTTP_HEADER_CONTENT_TYPE),
                      header(q->wait.conn, MHD_HTTP_HEADER_AUTHORIZATION),
                      q->body.data, q->body.len, now_us / 1000, now_us, q->raw_path};
    fl_api_handle(&h->api, &req, &q->resp);
    switch (q->resp.kind) {
    case FL_API_STREAM: return start_stream(q);
    case FL_API_LIST: return start_list(q);
    case FL_API_STATIC: return serve_static(q, url);
    case FL_API_METRICS:
        q->resp.body.len = 0;
        fl_prom_render(h->srv, now_us / 1000, &q->resp.body);
        q->resp.status = 200;
        q->resp.ctype = CT_PROM;
        break;
    default: break;
    }
    uint64_t need = q->resp.wal_need;
    if (h->srv->persist.appended > need) need = h->srv->persist.appended;
    if (h->closing) { /* nothing may be held while the daemon stops */
        if (q->resp.wal_need > fl_server_durable_level(h->srv))
            fl_api_problem(&q->resp, 503, "shutting down before the change was durable");
        need = 0;
    }
    if (need > fl_server_durable_level(h->srv)) {
        q->ready = 1;
        wait_for_log(h, &h->held, &q->wait, need);
        return MHD_YES;
    }
    return send_resp(q);
}

/* Strict decimal Content-Length above limit. */
static int declared_too_large(const char *len, size_t limit)
{
    if (!len || !*len) return 0;
    uint64_t n = 0;
    for (const char *p = len; *p; p++) {
        if (*p < '0' || *p > '9') return 1; /* libmicrohttpd 400s these */
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > limit) return 1;
    }
    return 0;
}

static enum MHD_Result refuse_body(http_req *q)
{
    char detail[96];
    q->refused = 1;
    q->body.len = 0;
    int k = snprintf(detail, sizeof(detail), "request bodies here are limited "
                     "to %zu bytes", q->body_limit);
    return send_problem(q, 413, k > 0 ? detail : "request body too large");
}

/* Bodies only mean something to PUT and POST; other methods get a token
 * allowance, so a GET cannot make the server buffer a megabyte. */
static size_t body_limit(const char *method, const char *url)
{
    if (strcmp(method, "PUT") != 0 && strcmp(method, "POST") != 0)
        return FL_HTTP_OTHER_BODY;
    return strcmp(url, "/v1/positions") == 0 ? FL_API_MAX_NDJSON_BODY
                                             : FL_API_MAX_JSON_BODY;
}

/* libmicrohttpd hands the request target over as sent, before decoding
 * it: its path is kept, so the router can tell an id's encoded '/' (%2F)
 * from a separator. The request is allocated here; on_completed frees it
 * (libmicrohttpd calls it for every request this callback saw). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)c;
    http_req *q = fl_xcalloc(1, sizeof(*q));
    q->h = cls;
    q->raw_path = fl_xstrndup(uri, strcspn(uri, "?#"));
    return q;
}

/* Fills in a request once its headers are in. */
static void start_req(http_req *q, struct MHD_Connection *c, const char *method,
                      const char *url)
{
    q->started = 1;
    q->wait.conn = c;
    fl_buf_init(&q->body);
    fl_api_resp_init(&q->resp);
    q->body_limit = body_limit(method, url);
    q->start_ns = uv_hrtime();
}

/*
 * libmicrohttpd calls this first when the headers are in (*req_cls NULL),
 * then once per piece of body, then with *upload_size 0 when the request
 * is complete, and once more after a resume.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
    (void)version;
    fl_http *h = cls;
    http_req *q = *req_cls;
    if (!q) q = *req_cls = on_uri(h, url, c); /* not reached: on_uri ran */
    if (!q->started) {
        start_req(q, c, method, url);
        /* Before a byte of body is read: a client without the password
         * cannot make the server buffer anything. */
        if (!fl_api_authorized(&h->api, url,
                               header(c, MHD_HTTP_HEADER_AUTHORIZATION))) {
            q->refused = 1;
            return send_problem(q, 401, "send Authorization: Bearer <requirepass>");
        }
        if (declared_too_large(header(c, MHD_HTTP_HEADER_CONTENT_LENGTH),
                               q->body_limit))
            return refuse_body(q);
        return MHD_YES;
    }
    if (*upload_size != 0 && q->refused) {
        *upload_size = 0; /* answered already (401, 413): nothing to keep */
        return MHD_YES;
    }
    if (*upload_size != 0) {
        /* libmicrohttpd cannot answer in the middle of an upload: a body
         * (chunked, so of unknown length) that passes the cap is read and
         * dropped, and answered 413 at its end; past FL_HTTP_DRAIN_MAX
         * dropped bytes the connection is closed instead. */
        if (!q->too_large && (q->body.len + *upload_size > q->body_limit ||
                              h->body_bytes + *upload_size > FL_HTTP_BODIES_MAX)) {
            q->too_large = q->body.len + *upload_size > q->body_limit ? 413 : 503;
            h->body_bytes -= q->body.len;
            fl_buf_free(&q->body);
        }
        if (q->too_large) {
            q->drained += *upload_size;
            *upload_size = 0;
            return q->drained > FL_HTTP_DRAIN_MAX ? MHD_NO : MHD_YES;
        }
        fl_buf_append(&q->body, upload_data, *upload_size);
        h->body_bytes += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    if (q->too_large) {
        int status = q->too_large;
        q->too_large = 0;
        if (status == 413) return refuse_body(q);
        q->refused = 1;
        return send_problem(q, 503, "too many request bodies in flight; retry");
    }
    if (q->refused) return MHD_YES;
    if (q->ready) return send_resp(q);
    return answer(q, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    http_req *q = *req_cls;
    if (!q) return;
    q->h->body_bytes -= q->body.len;
    fl_buf_free(&q->body);
    fl_api_resp_free(&q->resp);
    free(q->raw_path);
    free(q);
    *req_cls = NULL;
}

/* Percent-decoding of the path and query, in place, as libmicrohttpd's
 * own except that %00 stays as it is (fl_api_percent_decode). */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    size_t n = fl_api_percent_decode(s, s, strlen(s));
    s[n] = '\0';
    return n;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    /* libmicrohttpd's messages end with a newline. Nothing to do if
     * stderr fails. */
    if (fputs("fleetd: http: ", stderr) >= 0) (void)vfprintf(stderr, fmt, ap);
}

/* ---- driving libmicrohttpd from the loop ---- */

static void timer_cb(uv_timer_t *t)
{
    run_daemon(t->data);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_daemon(p->data);
}

static void run_daemon(fl_http *h)
{
    if (h->closing) return;
    (void)MHD_run(h->daemon); /* errors are per connection, logged by MHD */
    MHD_UNSIGNED_LONG_LONG to;
    if (MHD_get_timeout(h->daemon, &to) == MHD_YES) {
        if (uv_timer_start(&h->timer, timer_cb, to, 0) != 0)
            fprintf(stderr, "fleetd: http: cannot arm the timeout timer\n");
    } else {
        (void)uv_timer_stop(&h->timer); /* stopping never fails */
    }
}

/* ---- listening socket ---- */

static int parse_bind(const char *host, int port, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return 0;
    }
    return -EINVAL;
}

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return -errno;
    int fd_fl = fcntl(fd, F_GETFD);
    if (fd_fl < 0 || fcntl(fd, F_SETFD, fd_fl | FD_CLOEXEC) != 0) return -errno;
    int on = 1;
    /* As libuv does for the RESP port: restart without waiting TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0)
        return -errno;
    return 0;
}

/* Returns a listening, non-blocking socket or a negative errno. */
static int open_listener(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM, 0);
    if (fd < 0) return -errno;
    int rc = set_flags(fd);
    if (rc == 0 && bind(fd, (const struct sockaddr *)ss, len) != 0)
        rc = -errno;
    if (rc == 0 && listen(fd, FL_HTTP_BACKLOG) != 0) rc = -errno;
    if (rc != 0) {
        (void)close(fd); /* nothing to report beyond the first error */
        return rc;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

static struct MHD_Daemon *start_daemon(fl_http *h, int fd)
{
    /* The logger goes first so that start-up messages use it too. */
    return MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, on_log, (void *)NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)h,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, (void *)NULL,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, (void *)h,
        MHD_OPTION_CONNECTION_LIMIT, FL_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, FL_HTTP_MAX_PER_IP,
        MHD_OPTION_CONNECTION_TIMEOUT, FL_HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, FL_HTTP_CONN_MEMORY,
        MHD_OPTION_END);
}

static int start_handles(fl_http *h)
{
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di) return -EINVAL;
    h->poll.data = h->timer.data = h->check.data = h->tick.data = h->idle.data = h;
    int rc = uv_poll_init(h->loop, &h->poll, di->epoll_fd);
    if (rc) return rc;
    h->handles_open++;
    if ((rc = uv_timer_init(h->loop, &h->timer)) != 0) return rc;
    h->handles_open++;
    if ((rc = uv_check_init(h->loop, &h->check)) != 0) return rc;
    h->handles_open++;
    if ((rc = uv_timer_init(h->loop, &h->tick)) != 0) return rc;
    h->handles_open++;
    if ((rc = uv_idle_init(h->loop, &h->idle)) != 0) return rc;
    h->handles_open++;
    if ((rc = uv_poll_start(&h->poll, UV_READABLE, poll_cb)) != 0 ||
        (rc = uv_check_start(&h->check, check_cb)) != 0 ||
        (rc = uv_timer_start(&h->tick, tick_cb, 1000, 1000)) != 0)
        return rc;
    return 0;
}

int fl_http_start(struct fl_http **out, uv_loop_t *loop, fl_server *srv,
                  char *err, size_t errlen)
{
    const fl_config *cfg = &srv->cfg;
    struct sockaddr_storage ss;
    socklen_t len;
    *out = NULL;
    if (cfg->http_port < 0 || cfg->http_port > 65535 ||
        parse_bind(cfg->bind, cfg->http_port, &ss, &len) != 0) {
        set_err(err, errlen, "cannot listen on http %s:%d: invalid address",
                cfg->bind, cfg->http_port);
        return -EINVAL;
    }
    int fd = open_listener(&ss, len);
    if (fd < 0) {
        set_err(err, errlen, "cannot listen on http %s:%d: %s", cfg->bind,
                cfg->http_port, strerror(-fd));
        return fd;
    }
    fl_http *h = fl_xcalloc(1, sizeof(*h));
    h->srv = srv;
    h->loop = loop;
    h->port = bound_port(fd);
    fl_api_init(&h->api, srv);
    fl_buf_init(&h->scratch);
    find_web_dir(h->web_dir, sizeof(h->web_dir));
    const fl_command *upd = fl_cmd_lookup("vehicle.update", 14);
    h->update_cmd = upd ? fl_cmd_index(upd) : 0;
    h->prev_ms = uv_now(loop);
    /* Replayed commands are counted too: start the rate after them. */
    h->prev_calls = srv->cmd_stats[h->update_cmd].calls;
    h->api.stats.ts_ms = wall_us() / 1000; /* before the first sample too */
    fl_hist_snapshot(&srv->cmd_stats[h->update_cmd].latency, &h->prev_hist);
    h->daemon = start_daemon(h, fd);
    if (!h->daemon) {
        (void)close(fd);
        fl_api_free(&h->api);
        fl_buf_free(&h->scratch);
        free(h);
        set_err(err, errlen, "cannot start the http server on %s:%d",
                cfg->bind, cfg->http_port);
        return -EIO;
    }
    int rc = start_handles(h);
    if (rc != 0) {
        set_err(err, errlen, "cannot watch the http server: %s", uv_strerror(rc));
        fl_http_stop(h);
        return rc;
    }
    srv->hooks.event = on_event;
    srv->hooks.event_ud = h;
    *out = h;
    return 0;
}

static void http_free(fl_http *h)
{
    fl_api_free(&h->api);
    fl_buf_free(&h->scratch);
    free(h);
}

static void handle_closed(uv_handle_t *handle)
{
    fl_http *h = handle->data;
    if (--h->handles_open == 0) http_free(h);
}

/* Resumes what waits, so that stopping finds no suspended connection. */
static void resume_all(fl_http *h)
{
    release_held(h, 1);
    for (sse_sub *s = h->subs; s; s = s->next) sse_wake(s);
}

void fl_http_stop(struct fl_http *h)
{
    if (!h) return;
    /* closing first: the last run below must not hold new answers, since
     * a daemon must not be stopped with a suspended connection. */
    h->closing = 1;
    resume_all(h);
    h->srv->hooks.event = NULL;
    h->srv->hooks.event_mask = 0;
    (void)MHD_run(h->daemon);
    MHD_stop_daemon(h->daemon); /* closes the listening socket too */
    h->daemon = NULL;
    if (h->handles_open == 0) {
        http_free(h);
        return;
    }
    uv_handle_t *hs[5] = {(uv_handle_t *)&h->poll, (uv_handle_t *)&h->timer,
                          (uv_handle_t *)&h->check, (uv_handle_t *)&h->tick,
                          (uv_handle_t *)&h->idle};
    int open = h->handles_open;
    for (int i = 0; i < open; i++) uv_close(hs[i], handle_closed);
}

int fl_http_port(const struct fl_http *h)
{
    return h->port;
}

void fl_http_print_routes(FILE *out)
{
    fl_buf b;
    fl_buf_init(&b);
    fl_api_print_routes(&b);
    if (b.len) (void)fwrite(b.data, 1, b.len, out);
    fl_buf_free(&b);
}
