/*
 * http.c - the HTTP edge on libmicrohttpd: /metrics, /healthz, /readyz.
 *
 * Why shaped so:
 * - We create, bind and listen on the socket ourselves and hand it to
 *   libmicrohttpd (MHD_OPTION_LISTEN_SOCKET). Startup errors then carry
 *   errno ("Address already in use") in the caller's err buffer instead of
 *   only a line in the log, and a test can bind port 0 and ask which port
 *   it got.
 * - libmicrohttpd runs its own polling thread (poll or epoll, its choice)
 *   with hard limits on connections (global and per IP), idle time and
 *   memory per connection, so misbehaving HTTP clients cost bounded
 *   resources on a thread Redis clients never wait for.
 * - Every route is GET (and HEAD, which libmicrohttpd answers with the
 *   GET headers and no body). Request bodies are useless here: a body
 *   declared larger than FL_HTTP_MAX_BODY, or of unknown length (chunked),
 *   is refused with 413 before it is read; a small one is read and dropped
 *   so the connection stays in step for keep-alive.
 * - Errors are RFC 9457 problem documents (application/problem+json).
 *   Their detail echoes the method and path, JSON-escaped to plain ASCII
 *   and truncated, so any request bytes make a valid, short body.
 * - This is the edge: it alone reads the clock and passes now to
 *   fl_prom_render.
 */
#define _POSIX_C_SOURCE 200809L

#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../cmd/server.h"
#include "../metrics/prom.h"
#include "../util/buf.h"

#define FL_HTTP_BACKLOG 64
#define FL_HTTP_MAX_CONNECTIONS 256u
#define FL_HTTP_MAX_PER_IP 64u
#define FL_HTTP_TIMEOUT_S 10u
#define FL_HTTP_CONN_MEMORY ((size_t)64 * 1024)
#define FL_HTTP_MAX_BODY 1024u
/* Bytes of method and path echoed in a problem's detail. */
#define FL_HTTP_ECHO_MAX 128u

#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"
#define CT_JSON "application/json"
#define CT_PROBLEM "application/problem+json"
#define ALLOW_GET "GET, HEAD"

struct fl_http {
    struct MHD_Daemon *daemon;
    fl_server *srv;
    int port;
};

/* Marks a request whose headers passed the checks (see on_request). */
static int request_accepted;

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

static uint64_t wall_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- responses ---- */

/* Queues body (ownership moves to libmicrohttpd) with the usual headers. */
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
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) ==
            MHD_YES &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                                "no-store") == MHD_YES &&
        (!allow ||
         MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow) == MHD_YES))
        rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r); /* drops our reference; the queue keeps one */
    return rc;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status,
                                 const char *ctype, const char *text)
{
    fl_buf b;
    fl_buf_init(&b);
    fl_buf_append_str(&b, text);
    return send_body(c, status, ctype, &b, NULL);
}

/* JSON string contents, ASCII only: bytes >= 0x80 become \u00XX so that
 * invalid UTF-8 in a request cannot make the body invalid JSON. */
static void json_escape(fl_buf *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    int cut = n > max;
    if (cut) n = max;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') fl_buf_printf(b, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f) fl_buf_printf(b, "\\u%04x", ch);
        else fl_buf_append(b, &s[i], 1);
    }
    if (cut) fl_buf_append_str(b, "...");
}

/* An RFC 9457 problem; detail is "<prefix><method> <path><suffix>". */
static enum MHD_Result send_problem(struct MHD_Connection *c, unsigned status,
                                    const char *title, const char *prefix,
                                    const char *method, const char *url,
                                    const char *suffix, const char *allow)
{
    fl_buf b;
    fl_buf_init(&b);
    fl_buf_printf(&b, "{\"type\":\"about:blank\",\"title\":\"%s\","
                      "\"status\":%u,\"detail\":\"%s", title, status, prefix);
    if (method) {
        json_escape(&b, method, FL_HTTP_ECHO_MAX);
        fl_buf_append_str(&b, " ");
    }
    if (url) json_escape(&b, url, FL_HTTP_ECHO_MAX);
    fl_buf_printf(&b, "%s\"}", suffix);
    return send_body(c, status, CT_PROBLEM, &b, allow);
}

/* ---- routes ---- */

typedef enum MHD_Result route_fn(struct fl_http *h, struct MHD_Connection *c);

static enum MHD_Result route_metrics(struct fl_http *h,
                                     struct MHD_Connection *c)
{
    fl_buf b;
    fl_buf_init(&b);
    fl_prom_render(h->srv, wall_ms(), &b);
    return send_body(c, MHD_HTTP_OK, CT_PROM, &b, NULL);
}

static enum MHD_Result route_healthz(struct fl_http *h,
                                     struct MHD_Connection *c)
{
    (void)h;
    return send_text(c, MHD_HTTP_OK, CT_JSON, "{\"status\":\"ok\"}");
}

static enum MHD_Result route_readyz(struct fl_http *h,
                                    struct MHD_Connection *c)
{
    const fl_server *s = h->srv;
    if (__atomic_load_n(&s->shutdown_requested, __ATOMIC_RELAXED))
        return send_problem(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "Service Unavailable", "shutting down", NULL,
                            NULL, "", NULL);
    if (!__atomic_load_n(&s->ready, __ATOMIC_RELAXED))
        return send_problem(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "Service Unavailable", "starting", NULL, NULL,
                            "", NULL);
    return send_text(c, MHD_HTTP_OK, CT_JSON, "{\"status\":\"ready\"}");
}

static const struct route {
    const char *path;
    route_fn *fn;
} routes[] = {
    {"/metrics", route_metrics},
    {"/healthz", route_healthz},
    {"/readyz", route_readyz},
};

static const struct route *find_route(const char *url)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(url, routes[i].path) == 0) return &routes[i];
    return NULL;
}

static int is_get_or_head(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
           strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* ---- request bodies ---- */

/* Strict decimal Content-Length; values past the limit are just "big". */
static int declared_body_too_large(const char *len)
{
    if (!len || !*len) return 0;
    uint64_t n = 0;
    for (const char *p = len; *p; p++) {
        if (*p < '0' || *p > '9') return 1; /* libmicrohttpd 400s these */
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > FL_HTTP_MAX_BODY) return 1;
    }
    return 0;
}

static enum MHD_Result refuse_body(struct MHD_Connection *c)
{
    char detail[96];
    int k = snprintf(detail, sizeof(detail),
                     "request bodies must declare a Content-Length of at "
                     "most %u bytes", FL_HTTP_MAX_BODY);
    if (k < 0) detail[0] = '\0';
    return send_problem(c, MHD_HTTP_CONTENT_TOO_LARGE, "Content Too Large",
                        detail, NULL, NULL, "", NULL);
}

/* ---- the handler ---- */

static enum MHD_Result dispatch(struct fl_http *h, struct MHD_Connection *c,
                                const char *url, const char *method)
{
    const struct route *r = find_route(url);
    if (!r)
        return send_problem(c, MHD_HTTP_NOT_FOUND, "Not Found",
                            "no route for ", method, url, "", NULL);
    if (!is_get_or_head(method))
        return send_problem(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "Method Not Allowed", "", method, url,
                            " is not allowed: use GET or HEAD", ALLOW_GET);
    return r->fn(h, c);
}

/*
 * libmicrohttpd calls this first when the headers are in (*req_cls NULL),
 * then once per piece of body, then once more with *upload_size 0 when the
 * request is complete. Oversized bodies are refused on the first call, so
 * they are never read; the answer goes out on the last call, after any
 * small body is drained.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    if (*req_cls == NULL) {
        const char *te = MHD_lookup_connection_value(
            c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        const char *cl = MHD_lookup_connection_value(
            c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (te || declared_body_too_large(cl)) return refuse_body(c);
        *req_cls = &request_accepted;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0; /* drop the (bounded) body */
        return MHD_YES;
    }
    return dispatch(cls, c, url, method);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    /* libmicrohttpd's messages end with a newline. Nothing to do if
     * stderr fails. */
    if (fputs("fleetd: http: ", stderr) >= 0) (void)vfprintf(stderr, fmt, ap);
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

static struct MHD_Daemon *start_daemon(struct fl_http *h, int fd)
{
    /* The logger goes first so that start-up messages use it too. */
    return MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_AUTO,
        0, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, on_log, (void *)NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, FL_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, FL_HTTP_MAX_PER_IP,
        MHD_OPTION_CONNECTION_TIMEOUT, FL_HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, FL_HTTP_CONN_MEMORY,
        MHD_OPTION_END);
}

int fl_http_start(struct fl_http **out, fl_server *srv, char *err,
                  size_t errlen)
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
    struct fl_http *h = fl_xcalloc(1, sizeof(*h));
    h->srv = srv;
    h->port = bound_port(fd);
    h->daemon = start_daemon(h, fd);
    if (!h->daemon) {
        /* A socket passed in stays ours when the daemon fails to start
         * (checked with 0.9.75: still open after a refused start); on
         * success MHD_stop_daemon closes it (fd count back to before). */
        (void)close(fd);
        free(h);
        set_err(err, errlen, "cannot start http server on %s:%d", cfg->bind,
                cfg->http_port);
        return -EIO;
    }
    *out = h;
    return 0;
}

void fl_http_stop(struct fl_http *h)
{
    if (!h) return;
    /* Joins the polling thread, closes connections and the listen socket. */
    MHD_stop_daemon(h->daemon);
    free(h);
}

int fl_http_port(const struct fl_http *h)
{
    return h->port;
}
