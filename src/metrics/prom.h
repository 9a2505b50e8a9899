/*
 * prom.h - the Prometheus text exposition (format 0.0.4) of fleetd's
 * counters, latency histograms and gauges: the body of GET /metrics.
 *
 * Rendering runs on the HTTP thread while the loop thread keeps writing, so
 * it only loads, with relaxed atomics: the per-command counters and
 * histograms (written by the loop with single-writer atomic stores, see
 * hist.h), fl_server_stats, and an fl_gauges block. Gauges such as the key
 * count or used memory can only be computed on the loop thread (they walk
 * loop-owned structures), so the loop computes them every 100 ms and
 * publishes the numbers into fl_server.gauges with fl_gauges_publish; the
 * page shows values at most that old.
 *
 * Rendering reads no clock: the caller (the HTTP edge) passes now_ms, wall
 * clock milliseconds since the epoch like fl_server.start_ms.
 */
#ifndef FL_METRICS_PROM_H
#define FL_METRICS_PROM_H

#include <stdint.h>

#include "../util/buf.h"

struct fl_server;

/* Loop-computed gauges. Written only through fl_gauges_publish (loop
 * thread), read only through fl_gauges_read (any thread). */
typedef struct fl_gauges {
    uint64_t connected_clients;
    uint64_t keys;
    uint64_t used_memory_bytes;
    uint64_t rss_bytes;
    uint64_t geo_members;
    /* the live fleet */
    uint64_t vehicles_by_status[3]; /* available, busy, offline */
    uint64_t trips_running, trips_finished, trips_closed_idle;
    uint64_t pings_applied, pings_stale, pings_implausible, pings_relocated;
    /* durability */
    uint64_t log_bytes, log_records, log_fsyncs, log_errors;
    uint64_t snapshots_ok, snapshots_failed, last_snapshot_ms;
    uint64_t snapshot_running, load_ms, tail_cut_bytes;
} fl_gauges;  /* only uint64_t fields: published word by word */

/* Copies src into the shared block g, field by field with relaxed atomic
 * stores. Fields are independent numbers: a reader may see a mix of two
 * publications, never a torn field. */
void fl_gauges_publish(fl_gauges *g, const fl_gauges *src);
/* Copies the shared block g into out with relaxed atomic loads. */
void fl_gauges_read(const fl_gauges *g, fl_gauges *out);

/* Appends the whole metrics page for s to out (the caller owns out and
 * its memory). Per-command series appear only for commands called, or
 * refused, at least once. Safe on any thread; reads s only. */
void fl_prom_render(const struct fl_server *s, uint64_t now_ms, fl_buf *out);

#endif
