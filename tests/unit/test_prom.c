/*
 * test_prom.c - the /metrics page: rendered from a hand-filled fl_server
 * and checked twice, by the real `promtool check metrics` (the parser and
 * linter Prometheus users run, so "valid" means what they mean) and by
 * reading back the numbers we put in: counters, gauges, uptime, exact
 * power-of-two histogram buckets, quantiles within 2%, and no series for
 * commands never called.
 *
 * The test brings its own small command table (fl_commands and
 * fl_commands_count below) instead of src/cmd/table.c: the renderer only
 * needs names and slots, the test then links nothing but prom.o, hist.o
 * and buf.o from libfleetd.a (table.o, and the whole command layer behind
 * it, is never pulled in, so its symbols do not clash), and it can carry a
 * name that needs label escaping. If prom.c ever calls into table.c, this
 * table must go and the test use the real one.
 *
 * The promtool checks are skipped, saying so, where promtool is absent
 * (scripts/setup.sh installs it with the prometheus package).
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/server.h"
#include "metrics/hist.h"
#include "metrics/prom.h"
#include "util/buf.h"

#define START_MS 1700000000000ull

/* ---- a small command table standing in for src/cmd/table.c ---- */

#define ODD_NAME "odd\"na\\me\n" /* odd"na\me<newline> */
const fl_command fl_commands[] = {
    {"auth", NULL, -2, 0, 0, 0, 0, "connection", "", ""},
    {"geoadd", NULL, -5, 0, 1, 1, 1, "geo", "", ""},
    {"geosearch", NULL, -7, 0, 1, 1, 1, "geo", "", ""},
    {ODD_NAME, NULL, 1, 0, 0, 0, 0, "test", "", ""},
    {"ping", NULL, -1, 0, 0, 0, 0, "connection", "", ""},
    {"zscore", NULL, 3, 0, 1, 1, 1, "sorted-set", "", ""},
};
const size_t fl_commands_count = sizeof(fl_commands) / sizeof(fl_commands[0]);

/* ---- fixture ---- */

static fl_server *new_server(void)
{
    fl_server *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->cmd_stats = calloc(fl_commands_count, sizeof(*s->cmd_stats));
    assert_non_null(s->cmd_stats);
    s->start_ms = START_MS;
    return s;
}

static void free_server(fl_server *s)
{
    free(s->cmd_stats);
    free(s);
}

static fl_cmd_stats *stats_of(fl_server *s, const char *name)
{
    for (size_t i = 0; i < fl_commands_count; i++)
        if (strcmp(fl_commands[i].name, name) == 0) return &s->cmd_stats[i];
    fail_msg("no command %s in the test table", name);
    return NULL;
}

/* geoadd: 7 timed calls, one error; values chosen around bucket edges. */
static const uint64_t geoadd_ns[] = {1000, 1000, 1000, 1024, 2047, 2048,
                                     500000000};

static void fill(fl_server *s)
{
    s->stats = (fl_server_stats){.connections_received = 42,
                                 .connections_rejected = 1,
                                 .commands_processed = 107,
                                 .net_input_bytes = 9000,
                                 .net_output_bytes = 12000,
                                 .protocol_errors = 2,
                                 .unknown_commands = 3,
                                 .output_limit_disconnects = 4,
                                 .idle_disconnects = 5};
    fl_gauges g = {.connected_clients = 7, .keys = 1234,
                   .used_memory_bytes = 1u << 20, .rss_bytes = 3u << 20,
                   .geo_members = 99999};
    fl_gauges_publish(&s->gauges, &g);

    fl_cmd_stats *st = stats_of(s, "geoadd");
    st->calls = 7;
    st->errors = 1;
    for (size_t i = 0; i < sizeof(geoadd_ns) / sizeof(geoadd_ns[0]); i++)
        fl_hist_record(&st->latency, geoadd_ns[i]);
    st = stats_of(s, "ping");
    st->calls = 100;
    for (uint64_t i = 1; i <= 100; i++) fl_hist_record(&st->latency, i * 100);
    /* Refused only (NOAUTH): still listed, with zero calls. */
    stats_of(s, "auth")->rejected = 2;
    /* A name that must be escaped in a label value. */
    st = stats_of(s, ODD_NAME);
    st->calls = 1;
    fl_hist_record(&st->latency, 12345);
}

static char *render(const fl_server *s, uint64_t now_ms)
{
    fl_buf b;
    fl_buf_init(&b);
    fl_prom_render(s, now_ms, &b);
    fl_buf_append(&b, "", 1); /* NUL-terminate for strstr */
    return b.data;
}

static void assert_has(const char *page, const char *line)
{
    if (!strstr(page, line)) fail_msg("missing line: %s\n%s", line, page);
}

/* ---- promtool ---- */

static int have_promtool(void)
{
    const char *path = getenv("PATH");
    if (!path) return 0;
    char *dirs = strdup(path), *save = NULL;
    assert_non_null(dirs);
    int found = 0;
    for (char *d = strtok_r(dirs, ":", &save); d && !found;
         d = strtok_r(NULL, ":", &save)) {
        char full[4096];
        int k = snprintf(full, sizeof(full), "%s/promtool", d);
        found = k > 0 && (size_t)k < sizeof(full) && access(full, X_OK) == 0;
    }
    free(dirs);
    return found;
}

/* Pipes page into `promtool check metrics`; returns its exit status. */
static int promtool_check(const char *page)
{
    FILE *p = popen("promtool check metrics", "w");
    assert_non_null(p);
    size_t n = strlen(page);
    size_t w = fwrite(page, 1, n, p);
    int st = pclose(p);
    assert_int_equal(w, n);
    assert_true(st != -1 && WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void check_with_promtool(const char *page)
{
    if (!have_promtool()) {
        fprintf(stderr, "test_prom: promtool not found in PATH; skipping the "
                        "promtool check (install the prometheus package)\n");
        skip();
    }
    int rc = promtool_check(page);
    if (rc != 0) fail_msg("promtool check metrics exited %d on:\n%s", rc, page);
}

/* ---- tests ---- */

static void test_promtool_accepts_page(void **state)
{
    (void)state;
    fl_server *s = new_server();
    fill(s);
    char *page = render(s, START_MS + 12345);
    check_with_promtool(page);
    free(page);
    free_server(s);
}

static void test_promtool_accepts_idle_page(void **state)
{
    (void)state;
    fl_server *s = new_server();
    char *page = render(s, START_MS);
    assert_null(strstr(page, "cmd=\""));
    check_with_promtool(page);
    free(page);
    free_server(s);
}

static void test_server_series(void **state)
{
    (void)state;
    fl_server *s = new_server();
    fill(s);
    char *page = render(s, START_MS + 12345);
    assert_has(page, "\nfleetd_build_info{version=\"0.1.0\"} 1\n");
    assert_has(page, "\nfleetd_uptime_seconds 12.345\n");
    assert_has(page, "\nprocess_start_time_seconds 1700000000.000\n");
    assert_has(page, "# TYPE fleetd_connections_received_total counter\n"
                     "fleetd_connections_received_total 42\n");
    assert_has(page, "\nfleetd_connections_rejected_total 1\n");
    assert_has(page, "\nfleetd_commands_processed_total 107\n");
    assert_has(page, "\nfleetd_net_input_bytes_total 9000\n");
    assert_has(page, "\nfleetd_net_output_bytes_total 12000\n");
    assert_has(page, "\nfleetd_protocol_errors_total 2\n");
    assert_has(page, "\nfleetd_unknown_commands_total 3\n");
    assert_has(page, "\nfleetd_output_limit_disconnects_total 4\n");
    assert_has(page, "\nfleetd_idle_disconnects_total 5\n");
    assert_has(page, "# TYPE fleetd_connected_clients gauge\n"
                     "fleetd_connected_clients 7\n");
    assert_has(page, "\nfleetd_keys 1234\n");
    assert_has(page, "\nfleetd_geo_members 99999\n");
    assert_has(page, "\nfleetd_memory_used_bytes 1048576\n");
    assert_has(page, "\nprocess_resident_memory_bytes 3145728\n");
    free(page);
    /* A wall clock behind start_ms reads as zero uptime, not a wrap. */
    page = render(s, START_MS - 5000);
    assert_has(page, "\nfleetd_uptime_seconds 0.000\n");
    free(page);
    free_server(s);
}

static void test_command_series(void **state)
{
    (void)state;
    fl_server *s = new_server();
    fill(s);
    char *page = render(s, START_MS);
    assert_has(page, "\nfleetd_commands_total{cmd=\"geoadd\"} 7\n");
    assert_has(page, "\nfleetd_commands_total{cmd=\"ping\"} 100\n");
    assert_has(page, "\nfleetd_commands_total{cmd=\"auth\"} 0\n");
    assert_has(page, "\nfleetd_command_errors_total{cmd=\"geoadd\"} 1\n");
    assert_has(page, "\nfleetd_command_rejected_total{cmd=\"auth\"} 2\n");
    assert_has(page, "\nfleetd_commands_total{cmd=\"odd\\\"na\\\\me\\n\"} 1\n");
    /* Never called, never refused: absent. */
    assert_null(strstr(page, "cmd=\"zscore\""));
    assert_null(strstr(page, "cmd=\"geosearch\""));
    free(page);
    free_server(s);
}

/* Power-of-two buckets are exact: le=2^k ns counts values below 2^k ns. */
static void test_histogram_buckets_exact(void **state)
{
    (void)state;
    fl_server *s = new_server();
    fill(s);
    char *page = render(s, START_MS);
    const char *b = "fleetd_command_duration_seconds_bucket{cmd=\"geoadd\",";
    char line[160];
    static const struct { const char *le; unsigned count; } want[] = {
        {"0.000001024", 3},    /* the three 1000s */
        {"0.000002048", 5},    /* + 1024, 2047 */
        {"0.000004096", 6},    /* + 2048 */
        {"0.536870912", 7},    /* + 0.5 s */
        {"1.073741824", 7},
        {"+Inf", 7},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int k = snprintf(line, sizeof(line), "\n%sle=\"%s\"} %u\n", b,
                         want[i].le, want[i].count);
        assert_true(k > 0 && (size_t)k < sizeof(line));
        assert_has(page, line);
    }
    assert_has(page, "\nfleetd_command_duration_seconds_count{cmd=\"geoadd\"} 7\n");
    /* 3*1000 + 1024 + 2047 + 2048 + 500000000 ns, to the nanosecond. */
    assert_has(page,
               "\nfleetd_command_duration_seconds_sum{cmd=\"geoadd\"} 0.500008119\n");
    free(page);
    free_server(s);
}

static double sample_value(const char *page, const char *series)
{
    const char *p = strstr(page, series);
    if (!p) fail_msg("missing series %s", series);
    return strtod(p + strlen(series), NULL);
}

static void test_quantiles(void **state)
{
    (void)state;
    fl_server *s = new_server();
    fill(s);
    char *page = render(s, START_MS);
    /* ping recorded 100, 200, ..., 10000 ns: nearest-rank quantiles. */
    static const struct { const char *q; double exact_ns; } want[] = {
        {"0.5", 5000}, {"0.9", 9000}, {"0.99", 9900}, {"0.999", 10000},
    };
    char series[160];
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int k = snprintf(series, sizeof(series),
                         "\nfleetd_command_duration_quantile_seconds{cmd=\"ping\","
                         "quantile=\"%s\"} ", want[i].q);
        assert_true(k > 0 && (size_t)k < sizeof(series));
        double got = sample_value(page, series) * 1e9;
        double rel = (got - want[i].exact_ns) / want[i].exact_ns;
        if (rel < 0) rel = -rel;
        if (rel >= 0.02)
            fail_msg("q=%s: %.1f ns vs exact %.0f ns", want[i].q, got,
                     want[i].exact_ns);
    }
    assert_has(page,
               "\nfleetd_command_duration_quantile_seconds_count{cmd=\"ping\"} 100\n");
    free(page);
    free_server(s);
}

int main(void)
{
    /* promtool exiting early must fail the check, not kill the test. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_promtool_accepts_page),
        cmocka_unit_test(test_promtool_accepts_idle_page),
        cmocka_unit_test(test_server_series),
        cmocka_unit_test(test_command_series),
        cmocka_unit_test(test_histogram_buckets_exact),
        cmocka_unit_test(test_quantiles),
    };
    return cmocka_run_group_tests_name("prom", tests, NULL, NULL);
}
