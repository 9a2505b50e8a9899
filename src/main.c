/*
 * main.c - fleetd's entry point: settings, listeners, signals, the loop.
 *
 * Settings come from defaults, then the YAML file (--config), then flags, so
 * a flag always wins. One event-loop thread owns the live state and serves
 * both listeners (RESP and HTTP). SIGTERM and SIGINT stop accepting,
 * close every client and exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "cmd/server.h"
#include "db/db.h"
#include "fleet/fleet.h"
#include "conf/config_file.h"
#include "net/http.h"
#include "net/resp_server.h"
#include "store/durable.h"
#include "version.h"


typedef struct fl_main {
    uv_loop_t *loop;
    fl_server srv;
    fl_resp_server *resp;
    struct fl_http *http;
    fl_durable *store;
    uv_signal_t sigterm, sigint;
    int signals_open;
    uv_timer_t gauges;
    int exit_code;
} fl_main;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: fleetd [options]\n"
        "  --port N              RESP port (default 7878)\n"
        "  --http-port N         HTTP port: API, dashboard, /metrics (default 7879, 0 = off)\n"
        "  --bind ADDR           listen address (default 127.0.0.1)\n"
        "  --dir DIR             data directory (default ./data)\n"
        "  --config FILE         YAML settings file\n"
        "  --fsync always|everysec|no  log fsync policy (default everysec)\n"
        "  --requirepass PASS    require AUTH\n"
        "  --maxclients N        maximum RESP clients (default 10000)\n"
        "  --timeout SECONDS     close idle clients (default 0 = never)\n"
        "  --load-async-bytes N  a store this large loads with the listeners up,\n"
        "                        answering LOADING until done (default 32 MB)\n"
        "  --check-config FILE   validate FILE and exit\n"
        "  --routes              print the HTTP routes and exit\n"
        "  --version, --help\n");
}

/* Flags map onto CONFIG names so the file, the flags and CONFIG SET share
 * one parser and one set of bounds. */
static const char *flag_setting(const char *flag)
{
    static const char *map[][2] = {
        {"--port", "port"}, {"--http-port", "http-port"}, {"--bind", "bind"},
        {"--dir", "dir"}, {"--fsync", "appendfsync"},
        {"--requirepass", "requirepass"}, {"--maxclients", "maxclients"},
        {"--timeout", "timeout"}, {"--load-async-bytes", "load-async-bytes"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(flag, map[i][0]) == 0) return map[i][1];
    return NULL;
}

static const char *find_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0) return argv[i + 1];
    return NULL;
}

/* Returns 0 to run, 1 to exit successfully, -1 on a bad command line. */
static int parse_args(int argc, char **argv, fl_config *cfg)
{
    char err[512];
    const char *check = find_flag(argc, argv, "--check-config");
    const char *file = check ? check : find_flag(argc, argv, "--config");
    if (file && fl_config_load_file(file, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetd: %s\n", err);
        return -1;
    }
    if (check) {
        printf("fleetd: %s is valid\n", check);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--routes")) {
            fl_http_print_routes(stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("fleetd %s\n", FL_VERSION);
            return 1;
        }
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        const char *name = flag_setting(argv[i]);
        if (!name || i + 1 >= argc) {
            fprintf(stderr, "fleetd: %s '%s'\n",
                    name ? "missing value for" : "unknown option", argv[i]);
            usage(stderr);
            return -1;
        }
        if (fl_config_set_param(cfg, name, argv[i + 1], err, sizeof(err)) != 0) {
            fprintf(stderr, "fleetd: %s: %s\n", argv[i], err);
            return -1;
        }
        i++;
    }
    return 0;
}

static void fleet_gauges(const fl_server *s, fl_gauges *g)
{
    const fl_fleet_stats *st = fl_fleet_get_stats(s->fleet);
    for (int i = 0; i < FL_VS_COUNT; i++) g->vehicles_by_status[i] = st->by_status[i];
    g->trips_running = st->trips_running;
    g->trips_finished = st->trips_finished;
    g->trips_closed_idle = st->trips_closed_idle;
    g->pings_applied = st->pings_applied;
    g->pings_stale = st->pings_stale;
    g->pings_implausible = st->pings_implausible;
    g->pings_relocated = st->pings_relocated;
    const fl_persist *p = &s->persist;
    g->log_bytes = p->log_bytes;
    g->log_records = p->appended;
    g->log_fsyncs = p->fsyncs;
    g->log_errors = p->write_errors + p->fsync_errors;
    g->snapshots_ok = p->snapshots_ok;
    g->snapshots_failed = p->snapshots_failed;
    g->last_snapshot_ms = p->last_snapshot_ms;
    g->snapshot_running = p->snapshot_running != 0;
    g->load_ms = p->load_ms;
    g->tail_cut_bytes = p->tail_cut_bytes;
}

/* Every 100 ms: computes the gauges /metrics shows (kept as published
 * words, so a render never walks the fleet). */
static void publish_gauges(uv_timer_t *t)
{
    static unsigned ticks;
    static uint64_t used, rss, db_bytes;
    fl_server *s = t->data;
    fl_gauges g = {0};
    g.connected_clients = s->hooks.clients_connected(s->hooks.ud);
    g.keys = fl_db_size(s->db);
    /* Not mallinfo2: it walks the allocator's free lists under its locks,
     * 5-11 ms on the loop with a fragmented heap of a few hundred MB (that
     * was most of the p99 at half the peak rate). The gauge is what fleetd
     * accounts for itself (fleet in O(1), keyspace in O(keys) every 10 s);
     * INFO memory asks the allocator, on demand. */
    if (ticks % 10 == 0) {
        size_t r = 0;
        rss = uv_resident_set_memory(&r) == 0 ? r : 0;
    }
    if (ticks++ % 100 == 0) db_bytes = fl_db_bytes(s->db);
    used = db_bytes + fl_fleet_bytes(s->fleet);
    g.used_memory_bytes = used;
    g.rss_bytes = rss;
    g.geo_members = fl_db_geo_members(s->db);
    fleet_gauges(s, &g);
    fl_gauges_publish(&s->gauges, &g);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Stops accepting and serving: listeners, signals, the gauge timer. */
static void stop_serving(fl_main *m)
{
    __atomic_store_n(&m->srv.shutdown_requested, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&m->srv.ready, 0, __ATOMIC_RELAXED);
    (void)uv_timer_stop(&m->gauges); /* never fails */
    if (m->http) fl_http_stop(m->http);
    m->http = NULL;
    if (m->resp) fl_resp_server_close(m->resp);
    m->resp = NULL;
    if (m->signals_open) {
        uv_signal_stop(&m->sigterm);
        uv_signal_stop(&m->sigint);
        uv_close((uv_handle_t *)&m->sigterm, NULL);
        uv_close((uv_handle_t *)&m->sigint, NULL);
        m->signals_open = 0;
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    fl_main *m = s->data;
    fprintf(stderr, "fleetd: received %s, shutting down\n",
            signum == SIGTERM ? "SIGTERM" : "SIGINT");
    /* A load on the worker gives up at its next check; `loaded` ends it. */
    __atomic_store_n(&m->srv.load_cancel, 1, __ATOMIC_RELAXED);
    stop_serving(m);
    if (fl_durable_stop(m->store) != 0) m->exit_code = 1;
    m->store = NULL;
}

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    if (uv_random(NULL, NULL, &seed, sizeof(seed), 0, NULL) != 0)
        seed = now_ms() ^ ((uint64_t)getpid() << 32);
    return seed;
}

static int make_dir(const char *dir)
{
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) return 0;
    fprintf(stderr, "fleetd: cannot create data directory %s: %s\n", dir,
            strerror(errno));
    return -1;
}

static int start_listeners(fl_main *m)
{
    char err[256];
    if (fl_resp_server_start(m->loop, &m->srv, &m->resp, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetd: %s\n", err);
        return -1;
    }
    if (m->srv.cfg.http_port &&
        fl_http_start(&m->http, m->loop, &m->srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetd: %s\n", err);
        return -1;
    }
    m->sigterm.data = m->sigint.data = m;
    if (uv_signal_init(m->loop, &m->sigterm) != 0 ||
        uv_signal_init(m->loop, &m->sigint) != 0 ||
        uv_signal_start(&m->sigterm, on_signal, SIGTERM) != 0 ||
        uv_signal_start(&m->sigint, on_signal, SIGINT) != 0) {
        fprintf(stderr, "fleetd: cannot install signal handlers\n");
        return -1;
    }
    m->signals_open = 1;
    return 0;
}

/* The gauges read the fleet: they start once it is loaded. */
static int start_gauges(fl_main *m)
{
    if (uv_timer_start(&m->gauges, publish_gauges, 0, 100) != 0) {
        fprintf(stderr, "fleetd: cannot start the gauge timer\n");
        return -1;
    }
    return 0;
}

static void announce(const fl_main *m, const char *state);

/* The store is loaded and the listeners are up: gauges on, ready. */
static int serve(fl_main *m)
{
    if (start_gauges(m) != 0) return -1;
    announce(m, "ready");
    __atomic_store_n(&m->srv.ready, 1, __ATOMIC_RELAXED);
    return 0;
}

static void announce(const fl_main *m, const char *state)
{
    const fl_config *cfg = &m->srv.cfg;
    printf("fleetd %s %s: resp %s:%d, http %s:%d, dir %s, fsync %s, pid %ld\n",
           FL_VERSION, state, cfg->bind, cfg->port, cfg->bind, cfg->http_port, cfg->dir,
           cfg->fsync == FL_FSYNC_ALWAYS ? "always"
           : cfg->fsync == FL_FSYNC_NO ? "no" : "everysec", (long)getpid());
    fflush(stdout);
}

/* The end of an asynchronous load (see fl_durable_start_async). */
static void loaded(void *ud, fl_durable *d, int cancelled, const char *err)
{
    fl_main *m = ud;
    m->srv.loading = 0;
    if (!d && !cancelled) { /* a damaged store, even with a stop pending */
        fprintf(stderr, "fleetd: %s\n", err);
        m->exit_code = 1;
    }
    if (m->srv.shutdown_requested) { /* a stop came while it loaded */
        if (fl_durable_stop(d) != 0) m->exit_code = 1;
        return;
    }
    m->store = d;
    if (!d || serve(m) != 0) {
        m->exit_code = 1;
        stop_serving(m);
        if (fl_durable_stop(d) != 0) m->exit_code = 1;
        m->store = NULL;
    }
}

/* Loads before listening (a small store), or listens and loads on a
 * worker thread, answering LOADING meanwhile (a store of at least
 * load-async-bytes). Returns 0 to run the loop, -1 to exit with 1. */
static int start(fl_main *m)
{
    char err[1024];
    fl_server *s = &m->srv;
    m->gauges.data = s;
    if (uv_timer_init(m->loop, &m->gauges) != 0) {
        fprintf(stderr, "fleetd: cannot create the gauge timer\n");
        return -1;
    }
    uint64_t bytes = fl_durable_bytes_to_load(s->cfg.dir);
    if (bytes < (uint64_t)s->cfg.load_async_bytes) {
        if (fl_durable_start(m->loop, s, &m->store, err, sizeof(err)) != 0) {
            fprintf(stderr, "fleetd: %s\n", err);
            return -1;
        }
        return start_listeners(m) != 0 || serve(m) != 0 ? -1 : 0;
    }
    /* The load (and the directory's lock) first: a second fleetd on the
     * same directory says so rather than fail on the ports. */
    s->loading = 1; /* before the worker starts: it owns the data from now */
    if (fl_durable_start_async(m->loop, s, loaded, m, err, sizeof(err)) != 0) {
        s->loading = 0;
        fprintf(stderr, "fleetd: %s\n", err);
        return -1;
    }
    if (start_listeners(m) != 0) return -1;
    fprintf(stderr, "fleetd: loading %.1f MB with the listeners up (LOADING until done)\n",
            (double)bytes / 1048576.0);
    announce(m, "loading");
    return 0;
}

int main(int argc, char **argv)
{
    fl_config cfg;
    fl_config_defaults(&cfg);
    int rc = parse_args(argc, argv, &cfg);
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (make_dir(cfg.dir) != 0) return 1;
    signal(SIGPIPE, SIG_IGN);

    static fl_main m;
    m.loop = uv_default_loop();
    fl_server_init(&m.srv, &cfg, now_ms(), random_seed());
    if (start(&m) != 0) {
        if (m.http) fl_http_stop(m.http);
        return 1;
    }
    uv_run(m.loop, UV_RUN_DEFAULT);

    if (m.http) fl_http_stop(m.http);
    uv_walk(m.loop, close_walk, NULL);
    uv_run(m.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(m.loop) != 0) fprintf(stderr, "fleetd: loop not empty at exit\n");
    fl_server_free(&m.srv);
    fprintf(stderr, "fleetd: bye\n");
    return m.exit_code;
}
