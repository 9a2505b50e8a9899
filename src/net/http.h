/*
 * http.h - the HTTP listener: the /v1 JSON API, event streams, the
 * dashboard, /metrics, /healthz, /readyz and /openapi.json.
 *
 * It runs on the event loop (libmicrohttpd without a thread of its own,
 * see http.c), so its handlers may read and change the fleet like any
 * command. fl_http_start installs the server's event hook for the live
 * streams.
 *
 * Ownership: fl_http_start allocates the listener and its socket;
 * fl_http_stop closes every HTTP connection and the socket at once and
 * frees the listener once the loop has closed its handles (run the loop
 * after it). srv and loop are borrowed and must outlive the listener.
 */
#ifndef FL_NET_HTTP_H
#define FL_NET_HTTP_H

#include <stddef.h>
#include <stdio.h>

#include <uv.h>

struct fl_server;
struct fl_http;

/* Binds srv->cfg.bind (a numeric IPv4 or IPv6 address, like the RESP
 * port) on srv->cfg.http_port (0: any free port, see fl_http_port) and
 * starts serving. Returns 0 with *out set, or a negative errno value with
 * a one-line reason in err (e.g. "cannot listen on http 127.0.0.1:7879:
 * Address already in use"). */
int fl_http_start(struct fl_http **out, uv_loop_t *loop,
                  struct fl_server *srv, char *err, size_t errlen);
/* Stops serving and frees h. NULL is a no-op. */
void fl_http_stop(struct fl_http *h);
/* The port actually bound (differs from cfg.http_port when that is 0). */
int fl_http_port(const struct fl_http *h);
/* Prints the route table ("METHOD /path" per line), for --routes. */
void fl_http_print_routes(FILE *out);

#endif
