/*
 * http.h - the HTTP listener: GET /metrics (Prometheus), /healthz, /readyz.
 *
 * It runs on libmicrohttpd's own polling thread, apart from the event
 * loop, so a slow or hostile scraper can never delay a Redis client, and a
 * busy loop never stalls a scrape. From that thread it only reads the
 * server: counters with relaxed atomic loads, gauges the loop publishes
 * (metrics/prom.h), the ready and shutdown flags. It never touches the
 * keyspace or any connection of the loop.
 *
 * Ownership: fl_http_start allocates the listener and its socket;
 * fl_http_stop joins the thread, closes every HTTP connection and the
 * socket, and frees it. srv is borrowed and must outlive the listener.
 */
#ifndef FL_NET_HTTP_H
#define FL_NET_HTTP_H

#include <stddef.h>

struct fl_server;
struct fl_http;

/* Binds srv->cfg.bind (a numeric IPv4 or IPv6 address, like the RESP
 * port) on srv->cfg.http_port (0: any free port, see fl_http_port) and
 * starts serving. Returns 0 with *out set, or a negative errno value with
 * a one-line reason in err (e.g. "cannot listen on http 127.0.0.1:7879:
 * Address already in use"). */
int fl_http_start(struct fl_http **out, struct fl_server *srv, char *err,
                  size_t errlen);
/* Stops serving and frees h. NULL is a no-op. */
void fl_http_stop(struct fl_http *h);
/* The port actually bound (differs from cfg.http_port when that is 0). */
int fl_http_port(const struct fl_http *h);

#endif
