/*
 * prom.c - renders GET /metrics in the Prometheus text format 0.0.4.
 *
 * Shape: every family is written whole (HELP, TYPE, then its samples), as
 * the format requires, so per-command numbers are first gathered into one
 * row per active command from a single histogram snapshot, then written
 * family by family. Taking every per-command number from one snapshot
 * keeps a page self-consistent while the loop thread records: a
 * histogram's +Inf bucket equals its _count and buckets never decrease
 * along `le`.
 *
 * Histogram buckets are powers of two of nanoseconds, 2^10 (1.024 us) to
 * 2^30 (about 1.07 s), because every power of two is a bucket edge of
 * fl_hist, so fl_hist_count_le gives exact cumulative counts. fl_hist
 * buckets are half-open, [lo, hi): bucket le=2^k ns counts durations below
 * 2^k ns; with integer nanoseconds only a duration of exactly 2^k ns is
 * counted one bucket up. Bounds and sums are printed from integers
 * ("0.000001024"), never through a double, so a bound's text is the same on
 * every scrape and sums keep nanosecond precision.
 *
 * The fine quantiles are a summary (quantile="0.5" ... plus _sum, _count):
 * Prometheus reserves the `quantile` label for summaries, and promtool
 * rejects a gauge carrying it.
 *
 * All loads of loop-written memory are relaxed atomics; nothing here reads
 * a clock or writes to the server.
 */
#include "prom.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "../cmd/server.h"
#include "hist.h"
#include "../version.h"


#define LE_FIRST_EXP 10
#define LE_LAST_EXP 30
#define LE_COUNT (LE_LAST_EXP - LE_FIRST_EXP + 1)

static const double quantile_q[] = {0.5, 0.9, 0.99, 0.999};
static const char *const quantile_text[] = {"0.5", "0.9", "0.99", "0.999"};
#define QUANTILE_COUNT (sizeof(quantile_q) / sizeof(quantile_q[0]))

/* Everything the page says about one command, from one snapshot. */
typedef struct cmd_row {
    const char *name;
    uint64_t calls, errors, rejected;
    uint64_t le[LE_COUNT];     /* cumulative count below 2^(FIRST+i) ns */
    uint64_t count, sum_ns;
    double quantile_ns[QUANTILE_COUNT];
} cmd_row;

static uint64_t load64(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

#define GAUGE_WORDS (sizeof(fl_gauges) / sizeof(uint64_t))
_Static_assert(sizeof(fl_gauges) % sizeof(uint64_t) == 0,
               "fl_gauges holds uint64_t fields only");

void fl_gauges_publish(fl_gauges *g, const fl_gauges *src)
{
    uint64_t *dst = (uint64_t *)g;
    const uint64_t *from = (const uint64_t *)src;
    for (size_t i = 0; i < GAUGE_WORDS; i++)
        __atomic_store_n(&dst[i], from[i], __ATOMIC_RELAXED);
}

void fl_gauges_read(const fl_gauges *g, fl_gauges *out)
{
    const uint64_t *from = (const uint64_t *)g;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < GAUGE_WORDS; i++) dst[i] = load64(&from[i]);
}

/* ---- text helpers ---- */

static void family(fl_buf *out, const char *name, const char *type,
                   const char *help)
{
    /* help texts are constants here, free of '\\' and newlines. */
    fl_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values escape backslash, double quote and newline (format 0.0.4). */
static void label_value(fl_buf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\') fl_buf_append(out, "\\\\", 2);
        else if (*v == '"') fl_buf_append(out, "\\\"", 2);
        else if (*v == '\n') fl_buf_append(out, "\\n", 2);
        else fl_buf_append(out, v, 1);
    }
}

/* Writes `name{cmd="x"` (no closing brace: callers may add labels). */
static void cmd_series(fl_buf *out, const char *name, const char *cmd)
{
    fl_buf_printf(out, "%s{cmd=\"", name);
    label_value(out, cmd);
    fl_buf_append(out, "\"", 1);
}

/* Nanoseconds as exact decimal seconds: 1024 -> "0.000001024". */
static void ns_as_seconds(fl_buf *out, uint64_t ns)
{
    fl_buf_printf(out, "%llu.%09llu", (unsigned long long)(ns / 1000000000u),
                  (unsigned long long)(ns % 1000000000u));
}

static void ms_as_seconds(fl_buf *out, uint64_t ms)
{
    fl_buf_printf(out, "%llu.%03llu", (unsigned long long)(ms / 1000u),
                  (unsigned long long)(ms % 1000u));
}

static void counter_line(fl_buf *out, const char *name, uint64_t v)
{
    fl_buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

/* ---- process and server-wide families ---- */

static void render_process(const fl_server *s, uint64_t now_ms, fl_buf *out)
{
    family(out, "fleetd_build_info", "gauge",
           "Always 1; the labels say which fleetd build is running.");
    fl_buf_append_str(out, "fleetd_build_info{version=\"" FL_VERSION "\"} 1\n");

    /* A wall clock stepping back must not print a negative uptime. */
    uint64_t up_ms = now_ms > s->start_ms ? now_ms - s->start_ms : 0;
    family(out, "fleetd_uptime_seconds", "gauge",
           "Seconds since the server started.");
    fl_buf_append_str(out, "fleetd_uptime_seconds ");
    ms_as_seconds(out, up_ms);
    fl_buf_append_str(out, "\n");

    family(out, "process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch in seconds.");
    fl_buf_append_str(out, "process_start_time_seconds ");
    ms_as_seconds(out, s->start_ms);
    fl_buf_append_str(out, "\n");
}

typedef struct stat_counter {
    const char *name;
    const char *help;
    size_t offset;             /* of a uint64_t in fl_server_stats */
} stat_counter;

#define STAT(field, name, help) \
    {name, help, offsetof(fl_server_stats, field)}
static const stat_counter stat_counters[] = {
    STAT(connections_received, "fleetd_connections_received_total",
         "Client connections accepted."),
    STAT(connections_rejected, "fleetd_connections_rejected_total",
         "Client connections refused (maxclients)."),
    STAT(commands_processed, "fleetd_commands_processed_total",
         "Commands run, all commands together."),
    STAT(net_input_bytes, "fleetd_net_input_bytes_total",
         "Bytes read from clients."),
    STAT(net_output_bytes, "fleetd_net_output_bytes_total",
         "Bytes written to clients."),
    STAT(protocol_errors, "fleetd_protocol_errors_total",
         "Connections closed for malformed RESP."),
    STAT(unknown_commands, "fleetd_unknown_commands_total",
         "Commands refused because no such command exists."),
    STAT(output_limit_disconnects, "fleetd_output_limit_disconnects_total",
         "Clients disconnected for exceeding the output buffer limit."),
    STAT(idle_disconnects, "fleetd_idle_disconnects_total",
         "Clients disconnected after the idle timeout."),
};
#undef STAT

static void render_stats(const fl_server_stats *st, fl_buf *out)
{
    size_t n = sizeof(stat_counters) / sizeof(stat_counters[0]);
    for (size_t i = 0; i < n; i++) {
        const stat_counter *c = &stat_counters[i];
        const uint64_t *p =
            (const uint64_t *)(const void *)((const char *)st + c->offset);
        family(out, c->name, "counter", c->help);
        counter_line(out, c->name, load64(p));
    }
}

/* A family of one unlabelled sample: type "gauge" or "counter". */
static void single(fl_buf *out, const char *name, const char *type,
                   const char *help, uint64_t v)
{
    family(out, name, type, help);
    counter_line(out, name, v);
}

static void gauge(fl_buf *out, const char *name, const char *help,
                  uint64_t v)
{
    single(out, name, "gauge", help, v);
}

static void labelled(fl_buf *out, const char *name, const char *label,
                     const char *value, uint64_t v)
{
    fl_buf_printf(out, "%s{%s=\"%s\"} %llu\n", name, label, value,
                  (unsigned long long)v);
}

static void render_fleet(const fl_gauges *g, fl_buf *out)
{
    static const char *const status[] = {"available", "busy", "offline"};
    family(out, "fleetd_vehicles", "gauge", "Live vehicles by status.");
    for (int i = 0; i < 3; i++)
        labelled(out, "fleetd_vehicles", "status", status[i], g->vehicles_by_status[i]);
    family(out, "fleetd_trips", "gauge", "Trips running, and finished ones kept.");
    labelled(out, "fleetd_trips", "state", "running", g->trips_running);
    labelled(out, "fleetd_trips", "state", "finished", g->trips_finished);
    single(out, "fleetd_trips_closed_idle_total", "counter",
           "Trips closed by the idle timeout.", g->trips_closed_idle);
    family(out, "fleetd_pings_total", "counter", "Position pings by outcome.");
    labelled(out, "fleetd_pings_total", "outcome", "applied", g->pings_applied);
    labelled(out, "fleetd_pings_total", "outcome", "stale", g->pings_stale);
    labelled(out, "fleetd_pings_total", "outcome", "implausible", g->pings_implausible);
    labelled(out, "fleetd_pings_total", "outcome", "relocated", g->pings_relocated);
}

static void render_store(const fl_gauges *g, fl_buf *out)
{
    gauge(out, "fleetd_log_bytes", "Size of the current write-ahead log segment.",
          g->log_bytes);
    single(out, "fleetd_log_records_total", "counter",
           "Records appended to the log.", g->log_records);
    single(out, "fleetd_log_errors_total", "counter",
           "Failed log writes and fsyncs (writes are refused after one).",
           g->log_errors);
    family(out, "fleetd_snapshots_total", "counter", "Background snapshots by result.");
    labelled(out, "fleetd_snapshots_total", "result", "ok", g->snapshots_ok);
    labelled(out, "fleetd_snapshots_total", "result", "failed", g->snapshots_failed);
    gauge(out, "fleetd_snapshot_in_progress", "1 while a snapshot child runs.",
          g->snapshot_running);
    family(out, "fleetd_last_snapshot_timestamp_seconds", "gauge",
           "When the last snapshot completed (0: never).");
    fl_buf_printf(out, "fleetd_last_snapshot_timestamp_seconds %.3f\n",
                  (double)g->last_snapshot_ms / 1000.0);
    family(out, "fleetd_load_duration_seconds", "gauge",
           "Time the last start spent loading snapshot and log.");
    fl_buf_printf(out, "fleetd_load_duration_seconds %.3f\n", (double)g->load_ms / 1000.0);
    gauge(out, "fleetd_load_tail_cut_bytes", "Bytes of a torn log tail cut at the last start.",
          g->tail_cut_bytes);
}

/* A histogram without labels, in the command histograms' buckets. */
static void render_histogram(fl_buf *out, const char *name, const char *help,
                             const fl_hist *h)
{
    fl_hist *snap = fl_xmalloc(sizeof(*snap));
    fl_hist_snapshot(h, snap);
    family(out, name, "histogram", help);
    for (unsigned i = 0; i < LE_COUNT; i++) {
        fl_buf_printf(out, "%s_bucket{le=\"", name);
        ns_as_seconds(out, 1ull << (LE_FIRST_EXP + i));
        fl_buf_printf(out, "\"} %llu\n", (unsigned long long)fl_hist_count_le(
                                             snap, (1ull << (LE_FIRST_EXP + i)) - 1));
    }
    fl_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum ", name,
                  (unsigned long long)snap->count, name);
    ns_as_seconds(out, snap->sum);
    fl_buf_printf(out, "\n%s_count %llu\n", name, (unsigned long long)snap->count);
    free(snap);
}

static void render_gauges(const fl_gauges *shared, fl_buf *out)
{
    fl_gauges g;
    fl_gauges_read(shared, &g);
    gauge(out, "fleetd_connected_clients", "Client connections open.",
          g.connected_clients);
    gauge(out, "fleetd_keys", "Keys in the keyspace.", g.keys);
    gauge(out, "fleetd_geo_members", "Members of all geo sets together.",
          g.geo_members);
    gauge(out, "fleetd_memory_used_bytes",
          "Bytes of the keyspace and the fleet as fleetd accounts for them.",
          g.used_memory_bytes);
    gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
          g.rss_bytes);
    render_fleet(&g, out);
    render_store(&g, out);
}

/* ---- per-command families ---- */

static void fill_row(cmd_row *r, const fl_cmd_stats *st, fl_hist *snap)
{
    fl_hist_snapshot(&st->latency, snap);
    for (unsigned i = 0; i < LE_COUNT; i++)
        r->le[i] = fl_hist_count_le(snap, (1ull << (LE_FIRST_EXP + i)) - 1);
    r->count = snap->count;
    r->sum_ns = snap->sum;
    for (size_t i = 0; i < QUANTILE_COUNT; i++)
        r->quantile_ns[i] = fl_hist_quantile(snap, quantile_q[i]);
}

/* Rows for the commands used at least once; returns how many. The caller
 * frees *rows. */
static size_t collect_rows(const fl_server *s, cmd_row **rows)
{
    cmd_row *r = fl_xcalloc(fl_commands_count ? fl_commands_count : 1,
                            sizeof(*r));
    fl_hist *snap = fl_xmalloc(sizeof(*snap));
    size_t n = 0;
    for (size_t i = 0; i < fl_commands_count; i++) {
        const fl_cmd_stats *st = &s->cmd_stats[i];
        uint64_t calls = load64(&st->calls), rejected = load64(&st->rejected);
        if (calls == 0 && rejected == 0) continue;
        r[n].name = fl_commands[i].name;
        r[n].calls = calls;
        r[n].rejected = rejected;
        r[n].errors = load64(&st->errors);
        fill_row(&r[n], st, snap);
        n++;
    }
    free(snap);
    *rows = r;
    return n;
}

typedef uint64_t row_field(const cmd_row *r);
static uint64_t row_calls(const cmd_row *r) { return r->calls; }
static uint64_t row_errors(const cmd_row *r) { return r->errors; }
static uint64_t row_rejected(const cmd_row *r) { return r->rejected; }

static void render_cmd_counter(const cmd_row *rows, size_t n, fl_buf *out,
                               const char *name, const char *help,
                               row_field *field)
{
    family(out, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        cmd_series(out, name, rows[i].name);
        fl_buf_printf(out, "} %llu\n", (unsigned long long)field(&rows[i]));
    }
}

/* The _sum (seconds) and _count lines a histogram and a summary share. */
static void render_sum_count(const cmd_row *r, const char *family, fl_buf *out)
{
    char name[96];
    snprintf(name, sizeof(name), "%s_sum", family);
    cmd_series(out, name, r->name);
    fl_buf_append_str(out, "} ");
    ns_as_seconds(out, r->sum_ns);
    fl_buf_append_str(out, "\n");
    snprintf(name, sizeof(name), "%s_count", family);
    cmd_series(out, name, r->name);
    fl_buf_printf(out, "} %llu\n", (unsigned long long)r->count);
}

static void render_histogram_row(const cmd_row *r, fl_buf *out)
{
    for (unsigned i = 0; i < LE_COUNT; i++) {
        cmd_series(out, "fleetd_command_duration_seconds_bucket", r->name);
        fl_buf_append_str(out, ",le=\"");
        ns_as_seconds(out, 1ull << (LE_FIRST_EXP + i));
        fl_buf_printf(out, "\"} %llu\n", (unsigned long long)r->le[i]);
    }
    cmd_series(out, "fleetd_command_duration_seconds_bucket", r->name);
    fl_buf_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)r->count);
    render_sum_count(r, "fleetd_command_duration_seconds", out);
}

static void render_summary_row(const cmd_row *r, fl_buf *out)
{
    for (size_t i = 0; i < QUANTILE_COUNT; i++) {
        cmd_series(out, "fleetd_command_duration_quantile_seconds", r->name);
        /* %.9g of seconds keeps nanosecond resolution up to 1 s and far
         * more precision than the histogram's 2% anywhere. */
        fl_buf_printf(out, ",quantile=\"%s\"} %.9g\n", quantile_text[i],
                      r->quantile_ns[i] / 1e9);
    }
    render_sum_count(r, "fleetd_command_duration_quantile_seconds", out);
}

static void render_commands(const fl_server *s, fl_buf *out)
{
    cmd_row *rows;
    size_t n = collect_rows(s, &rows);
    render_cmd_counter(rows, n, out, "fleetd_commands_total",
                       "Calls per command (refused calls not included).",
                       row_calls);
    render_cmd_counter(rows, n, out, "fleetd_command_errors_total",
                       "Calls per command whose reply was an error.",
                       row_errors);
    render_cmd_counter(rows, n, out, "fleetd_command_rejected_total",
                       "Calls refused before running (arity, NOAUTH).",
                       row_rejected);
    family(out, "fleetd_command_duration_seconds", "histogram",
           "Command run time, power-of-two buckets.");
    for (size_t i = 0; i < n; i++) render_histogram_row(&rows[i], out);
    family(out, "fleetd_command_duration_quantile_seconds", "summary",
           "Command run time quantiles since start (under 2% error).");
    for (size_t i = 0; i < n; i++) render_summary_row(&rows[i], out);
    free(rows);
}

static void render_http(const fl_http_stats *h, fl_buf *out)
{
    static const char *const cls[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
    family(out, "fleetd_http_requests_total", "counter",
           "HTTP requests answered, by status class.");
    for (int i = 1; i <= 5; i++)
        labelled(out, "fleetd_http_requests_total", "code", cls[i], load64(&h->answers[i]));
    render_histogram(out, "fleetd_http_request_duration_seconds",
                     "HTTP request received to answer queued, log wait included.",
                     &h->latency);
    gauge(out, "fleetd_sse_streams", "Server-Sent Event streams open.",
          load64(&h->sse_streams));
    single(out, "fleetd_sse_events_total", "counter",
           "Events queued to Server-Sent Event streams.", load64(&h->sse_events));
    single(out, "fleetd_sse_dropped_events_total", "counter",
           "Events dropped because a stream's reader fell 256 KiB behind.",
           load64(&h->sse_dropped));
}

void fl_prom_render(const fl_server *s, uint64_t now_ms, fl_buf *out)
{
    render_process(s, now_ms, out);
    render_stats(&s->stats, out);
    render_gauges(&s->gauges, out);
    render_histogram(out, "fleetd_log_fsync_duration_seconds",
                     "fdatasync time of the write-ahead log.",
                     &s->persist.fsync_latency);
    render_histogram(out, "fleetd_log_write_duration_seconds",
                     "write() time of one loop turn's log records.",
                     &s->persist.write_latency);
    render_http(&s->http, out);
    render_commands(s, out);
}
