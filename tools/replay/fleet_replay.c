/*
 * fleet_replay.c - build/fleet-replay, the demo fleet driver: it drives a
 * running fleetd over RESP with the real NYC and Chicago taxi trips, the
 * AIS vessel hour and the Munich car trace of ../shared/data, scaled to N
 * vehicles (`fleet-replay --help`; README.md, "Demo fleet").
 *
 * Why it is shaped so:
 *  - A million vehicles, no copies. Tracks are built once (track.c,
 *    sources.c); vehicle k is only a track, a time shift within the
 *    track's loop and a translation of up to a few hundred metres, all
 *    derived from k by hashing, so the path keeps its real shape and
 *    speeds and each copy is at another moment of it. Per vehicle the
 *    tool keeps one int64 (its trip state): 8 MB at a million.
 *  - Data time is tied to the wall clock: at --speed F, data time is
 *    F * (now - 2024-01-01) seconds, and a vehicle is at track time
 *    shift + data time. Restarting the tool (same F) therefore continues
 *    every vehicle where the clock says it is instead of jumping back, and
 *    when fleetd already holds our fleets, each vehicle's first command
 *    ends the trip the earlier run left open. (Another F puts vehicles at
 *    other moments: fleetd flags two pings of each and then relocates it.)
 *  - TS is wall-clock now (never in the future, whatever max-future-ms
 *    says), and fleetd's max-speed-kmh is raised to F times the fastest
 *    move the tracks contain, with SPEED_MARGIN for TS rounding to the
 *    millisecond (never lowered). The alternative, a TS clock running F
 *    times faster than the wall clock, keeps implied speeds real but runs
 *    ahead of the clock by (F - 1) * runtime: at F = 10 it leaves the
 *    default 5-minute max-future-ms after 33 seconds, so a demo that runs
 *    for hours would have to switch the future check off, its vehicles
 *    would report times hours ahead (wrong "last seen", TRIP.LIST ranges
 *    and idle-trip closing), and a restarted replay would be STALE until
 *    the wall clock caught up. With TS = now, positions (so trip
 *    distances and paths) are real, the SPEED and HEADING sent are the
 *    real ones (fleetd's trip max_speed_kmh comes from SPEED), and only
 *    durations and idle times shrink by F. Events inside a ping interval
 *    (a pickup, a dropoff) are sent at the wall time when data time
 *    passed them, so pings stay ordered.
 *  - Scheduling is one sweep: vehicle k pings every --interval seconds of
 *    data time, at phase k/N of it. When the server cannot keep up, the
 *    sweep falls behind (at most one round) and every vehicle is still
 *    visited in turn, each ping computed at the current time.
 *  - One blocking round trip per batch (wire.c): --pipeline commands per
 *    connection written, then their replies read; vehicles are dealt to
 *    connections by number, so a vehicle's commands stay in order.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "replay.h"
#include "wire.h"

#define EPOCH_MS 1704067200000LL    /* 2024-01-01: data time 0 */
#define MAX_CMDS_PER_PING 5         /* ping + END at a dropoff, ping + START, ping */
#define SPEED_MARGIN 1.5            /* headroom over the fastest move */
#define FLEETD_MAX_SPEED 100000     /* CONFIG SET's upper bound */
#define MAX_VEHICLES 10000000       /* 80 MB of trip states */
#define VEH_NEW INT64_MIN           /* nothing sent in this run */
#define VEH_IDLE (-1)               /* between trips */

typedef struct options {
    const char *host, *password, *data_dir, *sources;
    int once;
    uint32_t port, connections, vehicles, pipeline;
    double speed, interval, duration, rate;
} options;

typedef struct replay {
    options opt;
    fl_rp_source src[FL_RP_SOURCES];
    uint32_t first[FL_RP_SOURCES], count[FL_RP_SOURCES];
    int nsrc;
    int64_t *trip;              /* per vehicle: VEH_* or its trip ordinal */
    fl_rp_conn *conns;
    uint64_t rot, paid;         /* pings sent; pings owed so far */
    int leftovers;              /* fleetd has vehicles of an earlier run */
    fl_rp_counts n;
} replay;

/* One vehicle's parameters, derived from its number. */
typedef struct vehicle {
    const fl_rp_source *src;
    const fl_rp_track *tr;
    double shift, dlon, dlat;
    char id[48];
    size_t id_len;
} vehicle;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) abort(); /* cannot fail for these ids */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    /* An early wake (a signal) only makes the loop look again. */
    (void)nanosleep(&ts, NULL);
}

/* ---- options ---- */

static void usage(FILE *f)
{
    (void)fprintf(f,
        "usage: fleet-replay [--host H] [--port 7878] [--password P]\n"
        "         [--data ../shared/data] [--sources nyc,chicago,ais,munich]\n"
        "         [--vehicles 10000] [--speed 10] [--interval 10]\n"
        "         [--pipeline 256] [--connections 1] [--rate 0]\n"
        "         [--duration 0] [--once]\n"
        "Drives fleetd with real taxi, vessel and car tracks scaled to N\n"
        "vehicles; prints its send rate every second. --speed: data seconds\n"
        "per wall second; --interval: data seconds between a vehicle's\n"
        "pings; --rate: commands/s cap (0 none); --duration: seconds (0\n"
        "forever); --once: one position per vehicle, then exit.\n");
}

static int num_opt(const char *name, const char *s, double lo, double hi,
                   double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s && !*end && !errno && v >= lo && v <= hi) {
        *out = v;
        return 0;
    }
    (void)fprintf(stderr, "fleet-replay: --%s must be a number from %g to %g\n",
                  name, lo, hi);
    return -1;
}

static int int_opt(const char *name, const char *s, double lo, double hi,
                   double *out)
{
    if (num_opt(name, s, lo, hi, out)) return -1;
    if (*out == floor(*out)) return 0;
    (void)fprintf(stderr, "fleet-replay: --%s must be a whole number\n", name);
    return -1;
}

static const struct option long_opts[] = {
    {"host", 1, 0, 'h'},     {"port", 1, 0, 'p'},      {"password", 1, 0, 'a'},
    {"data", 1, 0, 'D'},     {"sources", 1, 0, 'S'},   {"vehicles", 1, 0, 'n'},
    {"speed", 1, 0, 'F'},    {"interval", 1, 0, 'i'},  {"pipeline", 1, 0, 'P'},
    {"connections", 1, 0, 'c'}, {"rate", 1, 0, 'r'},   {"duration", 1, 0, 'd'},
    {"once", 0, 0, 'o'},     {"help", 0, 0, 'H'},      {0, 0, 0, 0}};

/* A whole-number option; -1 (reported) when bad. */
static int count_opt(const char *name, const char *s, double hi, uint32_t *out)
{
    double v;
    if (int_opt(name, s, 1, hi, &v)) return -1;
    *out = (uint32_t)v;
    return 0;
}

/* One option; 1 = handled, 0 = --help, -1 = bad. */
static int take_opt(options *o, int c, const char *arg)
{
    int bad = 0;
    switch (c) {
    case 'h': o->host = arg; break;
    case 'a': o->password = arg; break;
    case 'D': o->data_dir = arg; break;
    case 'S': o->sources = arg; break;
    case 'o': o->once = 1; break;
    case 'p': bad = count_opt("port", arg, 65535, &o->port); break;
    case 'n': bad = count_opt("vehicles", arg, MAX_VEHICLES, &o->vehicles); break;
    case 'P': bad = count_opt("pipeline", arg, 100000, &o->pipeline); break;
    case 'c': bad = count_opt("connections", arg, 1000, &o->connections); break;
    case 'F': bad = num_opt("speed", arg, 0.01, 1000, &o->speed); break;
    case 'i': bad = num_opt("interval", arg, 0.1, 86400, &o->interval); break;
    case 'r': bad = num_opt("rate", arg, 0, 1e9, &o->rate); break;
    case 'd': bad = num_opt("duration", arg, 0, 1e9, &o->duration); break;
    case 'H': return 0;
    default: return -1;
    }
    return bad ? -1 : 1;
}

/* 0, 1 after --help (exit 0), -1 on a bad option (exit 2). */
static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){.host = "127.0.0.1", .data_dir = "../shared/data",
                   .sources = "nyc,chicago,ais,munich", .port = 7878,
                   .connections = 1, .vehicles = 10000, .pipeline = 256,
                   .speed = 10, .interval = 10};
    int c;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        int rc = c == '?' ? -1 : take_opt(o, c, optarg);
        if (rc <= 0) {
            usage(rc ? stderr : stdout);
            return rc ? -1 : 1;
        }
    }
    if (optind == argc) return 0;
    (void)fprintf(stderr, "fleet-replay: unexpected argument '%s'\n", argv[optind]);
    return -1;
}

/* ---- sources and vehicles ---- */

/* Marks the sources named in the comma list; -1 on an unknown name. */
static int pick_sources(const char *list, int *want)
{
    memset(want, 0, sizeof(int) * FL_RP_SOURCES);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < FL_RP_SOURCES; i++) {
            const char *name = fl_rp_source_defaults[i].name;
            if (n == strlen(name) && strncmp(p, name, n) == 0) found = want[i] = 1;
        }
        if (!found) {
            (void)fprintf(stderr, "fleet-replay: unknown source '%.*s' (nyc, "
                          "chicago, ais, munich)\n", (int)n, p);
            return -1;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

/* Loads the wanted sources that exist; the number loaded, -1 out of
 * memory, -2 for an unknown source name. */
static int load_sources(replay *r)
{
    int want[FL_RP_SOURCES];
    char err[4352];
    if (pick_sources(r->opt.sources, want)) return -2;
    for (int i = 0; i < FL_RP_SOURCES; i++) {
        if (!want[i]) continue;
        fl_rp_source s = fl_rp_source_defaults[i];
        int rc = fl_rp_source_load(&s, r->opt.data_dir, err, sizeof(err));
        if (rc == -ENOMEM) return -1;
        if (rc) {
            (void)fprintf(stderr, "fleet-replay: skipping %s: %s\n", s.name, err);
            continue;
        }
        r->src[r->nsrc++] = s;
    }
    return r->nsrc;
}

/* Splits the vehicles among the sources by weight (largest remainder),
 * every source at least one when there are enough vehicles. */
static void split_vehicles(replay *r)
{
    uint32_t n = r->opt.vehicles, given = 0;
    double w = 0, frac[FL_RP_SOURCES];
    for (int i = 0; i < r->nsrc; i++) w += r->src[i].weight;
    for (int i = 0; i < r->nsrc; i++) {
        double share = (double)n * r->src[i].weight / w;
        r->count[i] = (uint32_t)share;
        frac[i] = share - r->count[i];
        given += r->count[i];
    }
    for (; given < n; given++) {
        int best = 0;
        for (int i = 1; i < r->nsrc; i++) if (frac[i] > frac[best]) best = i;
        r->count[best]++;
        frac[best] = -1;
    }
    for (int i = 0; i < r->nsrc && n >= (uint32_t)r->nsrc; i++) {
        if (r->count[i]) continue;
        int big = 0;
        for (int j = 1; j < r->nsrc; j++) if (r->count[j] > r->count[big]) big = j;
        r->count[big]--;
        r->count[i] = 1;
    }
    for (int i = 0, at = 0; i < r->nsrc; at += (int)r->count[i], i++)
        r->first[i] = (uint32_t)at;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static double unit(uint64_t h)
{
    return (double)(h >> 11) * 0x1.0p-53;
}

static void vehicle_of(const replay *r, uint32_t k, vehicle *v)
{
    int s = 0;
    while (s + 1 < r->nsrc && k >= r->first[s + 1]) s++;
    uint32_t idx = k - r->first[s];
    v->src = &r->src[s];
    v->tr = &v->src->tracks[idx % v->src->ntracks];
    uint64_t h1 = mix64(((uint64_t)(s + 1) << 40) ^ idx), h2 = mix64(h1), h3 = mix64(h2);
    /* At least one whole loop: track times stay positive for any clock. */
    v->shift = (1.0 + unit(h1)) * fl_rp_track_cycle(v->tr);
    v->dlon = (unit(h2) * 2 - 1) * v->src->offset_m * v->tr->kx;
    v->dlat = (unit(h3) * 2 - 1) * v->src->offset_m * v->tr->ky;
    v->id_len = fl_rp_fmt_id(v->id, v->src->prefix, idx);
}

/* ---- driving one vehicle ---- */

static double data_time(const replay *r, int64_t wall_ms)
{
    return (double)(wall_ms - EPOCH_MS) / 1000.0 * r->opt.speed;
}

/* The wall-clock ms at which the vehicle passed track time a. */
static int64_t ts_of(const replay *r, const vehicle *v, double a)
{
    return EPOCH_MS + (int64_t)floor((a - v->shift) * 1000.0 / r->opt.speed);
}

static void put_ping(fl_rp_conn *c, const vehicle *v, const fl_rp_state *st,
                     int64_t ts, int busy)
{
    fl_rp_ping p = {v->id, v->id_len, st->lon + v->dlon, st->lat + v->dlat, ts,
                    st->kmh, st->heading, v->src->fleet, busy};
    fl_rp_put_update(c, &p);
}

/* A ping at the trip's end or start, then the TRIP command, both at the
 * moment data time passed it. The dropoff ping is taken a millisecond
 * before the dropoff: it reports the speed it arrived with, since fleetd
 * counts the time before a ping reporting a standstill as idle. */
static void put_event(const replay *r, fl_rp_conn *c, const vehicle *v,
                      int64_t ord, int kind)
{
    double start, end;
    fl_rp_trip_bounds(v->tr, ord, &start, &end);
    double a = kind == FL_RP_K_END ? end - 0.001 : start;
    fl_rp_state st;
    fl_rp_track_at(v->tr, a, &st);
    int64_t ts = ts_of(r, v, a);
    put_ping(c, v, &st, ts, kind != FL_RP_K_END);
    fl_rp_put_trip(c, kind, v->id, v->id_len, ts);
}

static void drive(replay *r, fl_rp_conn *c, uint32_t k, int64_t wall_ms)
{
    vehicle v;
    fl_rp_state st;
    vehicle_of(r, k, &v);
    fl_rp_track_at(v.tr, v.shift + data_time(r, wall_ms), &st);
    int64_t prev = r->trip[k], cur = st.trip;
    if (r->opt.once) {
        put_ping(c, &v, &st, wall_ms, cur >= 0);
        return;
    }
    if (prev == VEH_NEW) {
        /* A trip an earlier run left open ends where that run stopped. */
        if (r->leftovers)
            fl_rp_put_trip(c, FL_RP_K_END_LEFTOVER, v.id, v.id_len, wall_ms);
        /* The vehicle must exist before its trip starts. */
        put_ping(c, &v, &st, wall_ms, cur >= 0);
        if (cur >= 0) fl_rp_put_trip(c, FL_RP_K_START, v.id, v.id_len, wall_ms);
        r->trip[k] = cur >= 0 ? cur : VEH_IDLE;
        return;
    }
    if (prev >= 0 && cur != prev) put_event(r, c, &v, prev, FL_RP_K_END);
    if (cur >= 0 && cur != prev) put_event(r, c, &v, cur, FL_RP_K_START);
    put_ping(c, &v, &st, wall_ms, cur >= 0);
    r->trip[k] = cur >= 0 ? cur : VEH_IDLE;
}

/* ---- connections and the server's settings ---- */

static redisReply *command(redisContext *rc, const char *fmt, const char *arg)
{
    redisReply *rep = redisCommand(rc, fmt, arg);
    if (!rep)
        (void)fprintf(stderr, "fleet-replay: lost connection to fleetd: %s\n",
                      rc->errstr);
    return rep;
}

static int connect_one(const options *o, fl_rp_conn *c)
{
    struct timeval tv = {5, 0};
    c->rc = redisConnectWithTimeout(o->host, o->port, tv);
    if (!c->rc || c->rc->err) {
        (void)fprintf(stderr, "fleet-replay: cannot connect to %s:%u: %s\n", o->host,
                      o->port, c->rc ? c->rc->errstr : "out of memory");
        return -1;
    }
    struct timeval rw = {30, 0};    /* a server silent this long is gone */
    if (redisSetTimeout(c->rc, rw) != REDIS_OK) return -1;
    if (!o->password) return 0;
    redisReply *rep = command(c->rc, "AUTH %s", o->password);
    int bad = !rep || rep->type == REDIS_REPLY_ERROR;
    if (rep && bad) (void)fprintf(stderr, "fleet-replay: AUTH: %s\n", rep->str);
    if (rep) freeReplyObject(rep);
    return bad ? -1 : 0;
}

static int connect_all(replay *r)
{
    uint32_t per = r->opt.pipeline + MAX_CMDS_PER_PING;
    r->conns = calloc(r->opt.connections, sizeof(*r->conns));
    if (!r->conns) return -1;
    for (uint32_t i = 0; i < r->opt.connections; i++) {
        if (fl_rp_conn_init(&r->conns[i], per)) {
            (void)fprintf(stderr, "fleet-replay: out of memory\n");
            return -1;
        }
        if (connect_one(&r->opt, &r->conns[i])) return -1;
    }
    return 0;
}

/* fleetd's max-speed-kmh, or -1 when it has none (another server). */
static double max_speed_setting(redisContext *rc)
{
    redisReply *rep = command(rc, "CONFIG GET %s", "max-speed-kmh");
    double v = -1;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING)
        v = strtod(rep->element[1]->str, NULL);
    if (rep) freeReplyObject(rep);
    return v;
}

/* Whether fleetd already has vehicles of our fleets (an earlier run, or
 * a --once load): then their first command ends any trip left open. */
static int find_leftovers(replay *r)
{
    for (int i = 0; i < r->nsrc && !r->leftovers; i++) {
        redisReply *rep = command(r->conns[0].rc, "VEHICLE.COUNT FLEET %s",
                                  r->src[i].fleet);
        if (!rep) return -1;
        r->leftovers = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
                       rep->element[1]->type == REDIS_REPLY_INTEGER &&
                       rep->element[1]->integer > 0;
        freeReplyObject(rep);
    }
    return 0;
}

/* TS is wall-clock now, so implied speeds are F times the real ones:
 * raise fleetd's plausibility limit to cover the fastest move (see the
 * header). Never lowers it. */
static int fit_max_speed(replay *r)
{
    double fastest = 0;
    for (int i = 0; i < r->nsrc; i++) fastest = fmax(fastest, r->src[i].max_kmh);
    double need = ceil(fmax(fastest, 1) * r->opt.speed * SPEED_MARGIN);
    double cur = max_speed_setting(r->conns[0].rc);
    if (cur < 0 || cur >= need) return 0;
    if (need > FLEETD_MAX_SPEED) {
        (void)fprintf(stderr, "fleet-replay: --speed %g needs max-speed-kmh %.0f; "
                      "fleetd allows %d: fast moves will be IMPLAUSIBLE\n",
                      r->opt.speed, need, FLEETD_MAX_SPEED);
        need = FLEETD_MAX_SPEED;
    }
    char num[32];
    (void)snprintf(num, sizeof(num), "%.0f", need);
    redisReply *rep = command(r->conns[0].rc, "CONFIG SET max-speed-kmh %s", num);
    if (!rep) return -1;
    if (rep->type == REDIS_REPLY_ERROR)
        (void)fprintf(stderr, "fleet-replay: CONFIG SET max-speed-kmh: %s\n", rep->str);
    else
        (void)fprintf(stderr, "fleet-replay: raised fleetd's max-speed-kmh from %.0f "
                      "to %s: time runs %gx, TS is the wall clock\n", cur, num,
                      r->opt.speed);
    freeReplyObject(rep);
    return 0;
}

/* ---- the loop ---- */

static void print_line(const replay *r, double secs, uint64_t rate)
{
    const fl_rp_counts *n = &r->n;
    /* A closed stdout must not stop the fleet: the result is not needed. */
    (void)printf("fleet-replay: t=%.0fs sent=%llu rate=%llu/s vehicles=%u "
                 "trips_started=%llu trips_ended=%llu errors=%llu\n", secs,
                 (unsigned long long)n->sent, (unsigned long long)rate,
                 r->opt.vehicles, (unsigned long long)n->trips_started,
                 (unsigned long long)n->trips_ended, (unsigned long long)n->errors);
    (void)fflush(stdout);
}

static void print_summary(const replay *r, double secs)
{
    const fl_rp_counts *n = &r->n;
    struct rusage ru;
    long rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
    (void)printf("fleet-replay: done t=%.1fs sent=%llu rate=%.0f/s vehicles=%u "
                 "trips_started=%llu trips_ended=%llu errors=%llu stale=%llu "
                 "implausible=%llu relocated=%llu leftover_trips_ended=%llu "
                 "max_rss=%ldkB\n",
                 secs, (unsigned long long)n->sent,
                 secs > 0 ? (double)n->sent / secs : 0.0, r->opt.vehicles,
                 (unsigned long long)n->trips_started,
                 (unsigned long long)n->trips_ended, (unsigned long long)n->errors,
                 (unsigned long long)n->stale, (unsigned long long)n->implausible,
                 (unsigned long long)n->relocated, (unsigned long long)n->leftover,
                 rss_kb);
    (void)fflush(stdout);
}

/* Pings due since the start: N per interval of data time. */
static uint64_t pings_due(const replay *r, int64_t elapsed_ms)
{
    if (r->opt.once) return r->opt.vehicles;
    double rounds = (double)elapsed_ms / 1000.0 * r->opt.speed / r->opt.interval;
    return (uint64_t)(rounds * r->opt.vehicles);
}

/* Commands the --rate cap allows now (UINT64_MAX without a cap). */
static uint64_t rate_room(const replay *r, int64_t elapsed_ms)
{
    if (r->opt.rate <= 0) return UINT64_MAX;
    double allowed = r->opt.rate * (double)elapsed_ms / 1000.0;
    return allowed > (double)r->n.sent ? (uint64_t)(allowed - (double)r->n.sent) : 0;
}

/* Fills the connections' batches with the pings that are due. */
static void fill(replay *r, uint64_t due, uint64_t room)
{
    int64_t wall = clock_ms(CLOCK_REALTIME);
    uint32_t per = r->opt.pipeline;
    uint64_t cmds = 0;
    while (r->paid < due && cmds < room && (!r->opt.once || r->rot < r->opt.vehicles)) {
        uint32_t k = (uint32_t)(r->rot % r->opt.vehicles);
        fl_rp_conn *c = &r->conns[k % r->opt.connections];
        /* A ping with its trip events goes whole into one batch. */
        if (c->n > 0 && c->n + MAX_CMDS_PER_PING > per) break;
        uint32_t before = c->n;
        drive(r, c, k, wall);
        cmds += c->n - before;
        r->paid++;
        r->rot++;
    }
}

/* Sends every batch, then reads every reply: all connections' batches
 * are in flight together. */
static int round_trip(replay *r)
{
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < r->opt.connections; i++) {
            fl_rp_conn *c = &r->conns[i];
            if ((pass == 0 ? fl_rp_send(c) : fl_rp_receive(c, &r->n)) == 0) continue;
            (void)fprintf(stderr, "fleet-replay: lost connection to fleetd "
                          "at %s:%u: %s\n", r->opt.host, r->opt.port,
                          c->rc->errstr[0] ? c->rc->errstr : "closed");
            return -1;
        }
    }
    return 0;
}

/* How long to wait for the next due ping: long enough to batch a few,
 * short enough to keep every vehicle on time. */
static int64_t nap_for(const replay *r, int64_t elapsed_ms, uint64_t room)
{
    if (room == 0) return 5;
    double next_s = (double)(r->paid + 1) / r->opt.vehicles * r->opt.interval /
                    r->opt.speed;
    double wait = next_s * 1000.0 - (double)elapsed_ms;
    return wait < 2 ? 2 : (wait > 20 ? 20 : (int64_t)wait);
}

static int run(replay *r)
{
    int64_t t0 = clock_ms(CLOCK_MONOTONIC), next_print = t0 + 1000;
    uint64_t sent_at_print = 0;
    uint32_t n = r->opt.vehicles;
    while (!g_stop) {
        int64_t now = clock_ms(CLOCK_MONOTONIC), el = now - t0;
        if (now >= next_print) {
            print_line(r, (double)(now - t0) / 1000.0, r->n.sent - sent_at_print);
            sent_at_print = r->n.sent;
            next_print = next_print + 1000 > now ? next_print + 1000 : now + 1000;
        }
        if (r->opt.duration > 0 && el >= (int64_t)(r->opt.duration * 1000)) break;
        if (r->opt.once && r->rot >= n) break;
        uint64_t due = pings_due(r, el), room = rate_room(r, el);
        if (due > r->paid + n) r->paid = due - n;   /* owe at most one round */
        if (r->paid >= due || room == 0) {
            int64_t wait = nap_for(r, el, room), to_print = next_print - now;
            nap_ms(wait < to_print ? wait : (to_print > 0 ? to_print : 1));
            continue;
        }
        fill(r, due, room);
        if (round_trip(r)) return -1;
    }
    return 0;
}

/* ---- main ---- */

/* One line per source on stderr: what the vehicles replay. */
static void describe_sources(const replay *r)
{
    for (int i = 0; i < r->nsrc; i++) {
        const fl_rp_source *s = &r->src[i];
        uint64_t trips = 0, moving = 0;
        for (uint32_t t = 0; t < s->ntracks; t++) {
            trips += s->tracks[t].ntrips;
            moving += (uint64_t)s->tracks[t].moving;
        }
        (void)fprintf(stderr, "fleet-replay: %s: %u vehicles on %u tracks "
                      "(%llu moving, %llu taxi trips), fastest move %.0f km/h\n",
                      s->fleet, r->count[i], s->ntracks, (unsigned long long)moving,
                      (unsigned long long)trips, s->max_kmh);
    }
}

static int setup(replay *r)
{
    int loaded = load_sources(r);
    if (loaded < 0) return loaded;
    if (loaded == 0) {
        (void)fprintf(stderr, "fleet-replay: no source data found under %s "
                      "(see --data and --sources)\n", r->opt.data_dir);
        return -2;
    }
    split_vehicles(r);
    describe_sources(r);
    r->trip = malloc(sizeof(*r->trip) * r->opt.vehicles);
    if (!r->trip) return -1;
    for (uint32_t k = 0; k < r->opt.vehicles; k++) r->trip[k] = VEH_NEW;
    return 0;
}

static void teardown(replay *r)
{
    for (uint32_t i = 0; r->conns && i < r->opt.connections; i++)
        fl_rp_conn_free(&r->conns[i]);
    free(r->conns);
    free(r->trip);
    for (int i = 0; i < r->nsrc; i++) fl_rp_source_free(&r->src[i]);
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    if (sigemptyset(&sa.sa_mask) || sigaction(SIGINT, &sa, NULL) ||
        sigaction(SIGTERM, &sa, NULL))
        return -1;
    /* A server that goes away must be an error from write, not a kill. */
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

/* Exit status: 0 done, 1 a failure at run time (connection, memory),
 * 2 bad usage or no data. */
int main(int argc, char **argv)
{
    replay r;
    memset(&r, 0, sizeof(r));
    int rc = parse_options(argc, argv, &r.opt);
    if (rc) return rc > 0 ? 0 : 2;
    rc = setup(&r);
    if (rc == -1) (void)fprintf(stderr, "fleet-replay: out of memory\n");
    if (!rc) rc = install_signals() || connect_all(&r) ? -1 : 0;
    if (!rc && !r.opt.once) rc = fit_max_speed(&r) || find_leftovers(&r) ? -1 : 0;
    if (!rc) {
        int64_t t0 = clock_ms(CLOCK_MONOTONIC);
        rc = run(&r);
        print_summary(&r, (double)(clock_ms(CLOCK_MONOTONIC) - t0) / 1000.0);
    }
    teardown(&r);
    return rc == -2 ? 2 : (rc ? 1 : 0);
}
