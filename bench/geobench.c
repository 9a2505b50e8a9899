/*
 * geobench.c - one load generator for fleetd and redis-server alike.
 *
 * The same binary, data and request stream is pointed at each server in
 * turn, so every ratio in bench/README.md compares servers, not clients.
 * It speaks raw RESP over non-blocking sockets with epoll: C connections,
 * each keeping P requests in flight, and counts complete replies with a
 * small framing parser (it never builds reply objects, so a large
 * GEOSEARCH reply costs the client as little as possible).
 *
 * Positions are derived from the real data in ../shared/data: every pickup
 * and dropoff of the NYC and Chicago taxi trips, every AIS vessel position
 * and the Munich car trace are the hotspots; member i sits at hotspot
 * i mod n, moved by a deterministic offset of up to about 400 m, so the
 * density follows real traffic. Query centres are hotspots too.
 *
 * Modes:
 *   load      GEOADD all members (100 per command), then print used_memory
 *   geoadd    one member per GEOADD (new ids), P in flight per connection
 *   search    GEOSEARCH FROMLONLAT x y BYRADIUS R km [COUNT n]
 *   verify    run Q queries on two servers and compare replies byte for byte
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

typedef struct pt { double lon, lat, jitter; } pt;

static pt *hot;
static size_t nhot, caphot;

static double cur_jitter; /* degrees of spread for the file being read */

static void add_hot(double lon, double lat)
{
    if (!(lon > -180 && lon < 180 && lat > -85 && lat < 85) || (lon == 0 && lat == 0))
        return;
    if (nhot == caphot) {
        caphot = caphot ? caphot * 2 : 4096;
        hot = realloc(hot, caphot * sizeof(*hot));
        if (!hot) { perror("realloc"); exit(1); }
    }
    hot[nhot++] = (pt){lon, lat, cur_jitter};
}

/* Splits a CSV line in place (no quoted commas in the columns we read). */
static int csv_split(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

static void load_csv(const char *path, int lon_a, int lat_a, int lon_b, int lat_b,
                     int skip_header)
{
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "geobench: cannot open %s\n", path); exit(2); }
    char line[4096];
    char *fld[96];
    if (skip_header && !fgets(line, sizeof(line), f)) { fclose(f); return; }
    while (fgets(line, sizeof(line), f)) {
        int n = csv_split(line, fld, 96);
        if (lon_a < n && lat_a < n && fld[lon_a][0] && fld[lat_a][0])
            add_hot(strtod(fld[lon_a], NULL), strtod(fld[lat_a], NULL));
        if (lon_b >= 0 && lon_b < n && lat_b < n && fld[lon_b][0] && fld[lat_b][0])
            add_hot(strtod(fld[lon_b], NULL), strtod(fld[lat_b], NULL));
    }
    fclose(f);
}

static void load_munich(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "geobench: cannot open %s\n", path); exit(2); }
    char buf[256];
    int c, k = 0;
    /* Scans for POINT(lon lat) without a JSON parser: the format is fixed. */
    while ((c = fgetc(f)) != EOF) {
        if (c != 'P') continue;
        if (fscanf(f, "OINT(%255[^)])", buf) == 1) {
            double lon, lat;
            if (sscanf(buf, "%lf %lf", &lon, &lat) == 2) add_hot(lon, lat);
            k++;
        }
    }
    fclose(f);
}

static void load_data(const char *dir)
{
    char p[1024];
    cur_jitter = 0.0005; /* exact GPS fixes: about 50 m */
    snprintf(p, sizeof(p), "%s/trips/nyc_taxi_one_driver_2013-01.csv", dir);
    load_csv(p, 10, 11, 12, 13, 0);
    /* Chicago publishes community-area centroids, not fixes: spread each
     * trip back over about 1.5 km around its centroid. */
    cur_jitter = 0.015;
    snprintf(p, sizeof(p), "%s/trips/chicago_taxi_2013-2016.csv", dir);
    load_csv(p, 7, 6, 9, 8, 1);
    cur_jitter = 0.0005;
    snprintf(p, sizeof(p), "%s/tracks/ais_ny_harbor_2020-06-30_first_hour.csv", dir);
    load_csv(p, 1, 2, -1, -1, 1);
    snprintf(p, sizeof(p), "%s/tracks/car_munich_2014-09-10_1hz.json", dir);
    load_munich(p);
    if (nhot == 0) { fprintf(stderr, "geobench: no data under %s\n", dir); exit(2); }
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Member i is real point i mod n, in copy i / n of the whole data set.
 * Copies sit on a grid of 1-degree steps (each city's extent is under half
 * a degree, so copies never overlap): 1M members keep the real spatial
 * density of the data instead of piling up on the same few thousand
 * points. A small deterministic offset (the point's jitter) separates
 * repeated fixes. */
static pt copy_offset(uint64_t k)
{
    return (pt){(double)(k % 16) * 1.0, (double)(k / 16) * 1.0, 0};
}

static pt member_pos(uint64_t i)
{
    pt h = hot[i % nhot];
    pt off = copy_offset(i / nhot);
    uint64_t r = mix(i);
    double dx = ((double)(r & 0xFFFF) / 65535.0 - 0.5) * 2 * h.jitter;
    double dy = ((double)((r >> 16) & 0xFFFF) / 65535.0 - 0.5) * 2 * h.jitter;
    return (pt){h.lon + off.lon + dx / cos(h.lat * M_PI / 180),
                h.lat + off.lat + dy, 0};
}

/* Query centre q: a real point in one of the copies the members fill. */
static pt query_centre(uint64_t q, long members)
{
    uint64_t copies = ((uint64_t)members + nhot - 1) / nhot;
    uint64_t r = mix(q ^ 0xABCDEF);
    pt h = hot[r % nhot];
    pt off = copy_offset((r >> 32) % (copies ? copies : 1));
    return (pt){h.lon + off.lon, h.lat + off.lat, 0};
}

/* ---- RESP plumbing ---- */

typedef struct buf { char *p; size_t len, cap; } buf;

static void bput(buf *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) {
        while (b->len + n > b->cap) b->cap = b->cap ? b->cap * 2 : 65536;
        b->p = realloc(b->p, b->cap);
        if (!b->p) { perror("realloc"); exit(1); }
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put_cmd(buf *b, int argc, const char **argv)
{
    char tmp[32];
    int k = snprintf(tmp, sizeof(tmp), "*%d\r\n", argc);
    bput(b, tmp, (size_t)k);
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]);
        k = snprintf(tmp, sizeof(tmp), "$%zu\r\n", n);
        bput(b, tmp, (size_t)k);
        bput(b, argv[i], n);
        bput(b, "\r\n", 2);
    }
}

/* Returns the length of the complete reply at p, 0 if incomplete. */
static size_t reply_len(const char *p, size_t n)
{
    const char *e = memchr(p, '\n', n);
    if (!e) return 0;
    size_t head = (size_t)(e - p) + 1;
    long long v = strtoll(p + 1, NULL, 10);
    switch (p[0]) {
    case '$': case '=': case '!':
        if (v < 0) return head;
        return head + (size_t)v + 2 <= n ? head + (size_t)v + 2 : 0;
    case '*': case '~': case '%': case '>': {
        if (p[0] == '%') v *= 2;
        size_t pos = head;
        for (long long i = 0; i < v; i++) {
            size_t k = reply_len(p + pos, n - pos);
            if (!k) return 0;
            pos += k;
        }
        return pos;
    }
    default:
        return head;
    }
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends all of b and reads exactly `replies` replies; returns the bytes. */
static void roundtrip(int fd, const buf *b, long replies, buf *out)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t k = write(fd, b->p + off, b->len - off);
        if (k < 0) { perror("write"); exit(1); }
        off += (size_t)k;
    }
    out->len = 0;
    size_t parsed = 0;
    char tmp[65536];
    while (replies > 0) {
        size_t k;
        while (replies > 0 && parsed < out->len &&
               (k = reply_len(out->p + parsed, out->len - parsed)) > 0) {
            parsed += k;
            replies--;
        }
        if (replies == 0) break;
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r <= 0) { fprintf(stderr, "geobench: connection lost\n"); exit(1); }
        bput(out, tmp, (size_t)r);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This process's CPU time (user + system): the client's own cost per
 * request is printed so a run can show whether the client or the server
 * was the bottleneck. */
static double cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) { perror("getrusage"); exit(1); }
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ---- request generators ---- */

typedef struct opts {
    int port, port2, conns, pipeline;
    long members, requests;
    double radius_km;
    int count, withdist;
    const char *key, *data, *mode;
    long vehicles;      /* fleet modes: vehicles cycled through */
    long pings;         /* vsetup: extra pings per vehicle after TRIP.START */
    double rate;        /* open loop: requests per second (0: closed loop) */
    long long ts_now;   /* fleet modes: the setup's time, unix ms (0: now) */
    long step0;         /* vupdate: steps taken by earlier runs */
    const char *target; /* vsetup: fleetd or redis */
} opts;

enum { GEN_GEOADD, GEN_SEARCH, GEN_VUPDATE, GEN_VGEOADD };

static uint64_t next_id;

static void gen_geoadd(const opts *o, buf *b)
{
    char lon[32], lat[32], name[32];
    uint64_t id = next_id++;
    pt p = member_pos(id + 7777777);
    snprintf(lon, sizeof(lon), "%.6f", p.lon);
    snprintf(lat, sizeof(lat), "%.6f", p.lat);
    snprintf(name, sizeof(name), "new:%llu", (unsigned long long)id);
    const char *argv[] = {"GEOADD", o->key, lon, lat, name};
    put_cmd(b, 5, argv);
}

/* Vehicle v after `round` steps: its start, moved 10 m east per step (a
 * plausible 36 km/h at one ping per second). */
static pt vehicle_pos(uint64_t v, long round)
{
    pt p = member_pos(v);
    p.lon += (double)round * 10.0 / (111320.0 * cos(p.lat * M_PI / 180));
    return p;
}

/* Request i of a fleet run: vehicle i % N takes step step0 + i / N + 1,
 * one second and 10 m after the previous one (the setup's last ping is
 * step 0 at ts_now), so consecutive runs given growing step0 keep every
 * ping newer and plausible: no STALE or IMPLAUSIBLE replies. */
static void gen_vehicle(const opts *o, buf *b, uint64_t i, int geoadd)
{
    char lon[32], lat[32], name[32], ts[32];
    uint64_t v = i % (uint64_t)o->vehicles;
    long step = o->step0 + (long)(i / (uint64_t)o->vehicles) + 1;
    pt p = vehicle_pos(v, step);
    snprintf(lon, sizeof(lon), "%.6f", p.lon);
    snprintf(lat, sizeof(lat), "%.6f", p.lat);
    snprintf(name, sizeof(name), "veh:%llu", (unsigned long long)v);
    snprintf(ts, sizeof(ts), "%lld", o->ts_now + (long long)step * 1000);
    const char *up[] = {"VEHICLE.UPDATE", name, lon, lat, "TS", ts};
    const char *ga[] = {"GEOADD", o->key, lon, lat, name};
    if (geoadd) put_cmd(b, 5, ga);
    else put_cmd(b, 6, up);
}

static void gen_search(const opts *o, buf *b, uint64_t q)
{
    char lon[32], lat[32], rad[32], cnt[16];
    pt c = query_centre(q, o->members);
    snprintf(lon, sizeof(lon), "%.6f", c.lon);
    snprintf(lat, sizeof(lat), "%.6f", c.lat);
    snprintf(rad, sizeof(rad), "%g", o->radius_km);
    snprintf(cnt, sizeof(cnt), "%d", o->count);
    const char *argv[12] = {"GEOSEARCH", o->key, "FROMLONLAT", lon, lat,
                            "BYRADIUS", rad, "km"};
    int argc = 8;
    if (o->withdist) argv[argc++] = "WITHDIST";
    if (o->count) {
        argv[argc++] = "COUNT";
        argv[argc++] = cnt;
    }
    put_cmd(b, argc, argv);
}

/* ---- modes ---- */

static long long info_used_memory(int fd)
{
    buf b = {0}, out = {0};
    const char *argv[] = {"INFO", "memory"};
    put_cmd(&b, 2, argv);
    roundtrip(fd, &b, 1, &out);
    bput(&out, "", 1);
    const char *m = strstr(out.p, "used_memory:");
    long long v = m ? strtoll(m + 12, NULL, 10) : -1;
    free(b.p);
    free(out.p);
    return v;
}

static int mode_load(const opts *o)
{
    int fd = dial(o->port);
    buf b = {0}, out = {0};
    const char *del[] = {"DEL", o->key};
    put_cmd(&b, 2, del);
    roundtrip(fd, &b, 1, &out);
    long long before = info_used_memory(fd);
    double t0 = now_s();
    const int per = 100;
    char lon[100][32], lat[100][32], name[100][32];
    const char *argv[2 + 3 * 100];
    for (long i = 0; i < o->members;) {
        b.len = 0;
        long cmds = 0;
        for (int c = 0; c < 50 && i < o->members; c++, cmds++) {
            int argc = 0;
            argv[argc++] = "GEOADD";
            argv[argc++] = o->key;
            for (int k = 0; k < per && i < o->members; k++, i++) {
                pt p = member_pos((uint64_t)i);
                snprintf(lon[k], 32, "%.6f", p.lon);
                snprintf(lat[k], 32, "%.6f", p.lat);
                snprintf(name[k], 32, "v:%ld", i);
                argv[argc++] = lon[k];
                argv[argc++] = lat[k];
                argv[argc++] = name[k];
            }
            put_cmd(&b, argc, argv);
        }
        roundtrip(fd, &b, cmds, &out);
    }
    double t1 = now_s();
    long long after = info_used_memory(fd);
    printf("load members=%ld seconds=%.2f used_memory_delta=%lld bytes_per_member=%.1f\n",
           o->members, t1 - t0, after - before,
           (double)(after - before) / (double)o->members);
    close(fd);
    return 0;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct conn {
    int fd;
    buf in;
    size_t parsed;
    long inflight;
    double *sent_at;  /* ring of send times, one per in-flight request */
    long head, tail;
} conn;

/* Runs the closed-loop load: keeps P requests in flight on each of C
 * connections until `requests` replies have arrived. */
/* Builds every request before the clock starts, so the timed loop only
 * writes slices of one buffer and parses replies: the client stays far
 * from being the bottleneck. off[i] is where request i starts. */
static void pregenerate(const opts *o, int kind, buf *all, size_t **off)
{
    *off = malloc(sizeof(size_t) * ((size_t)o->requests + 1));
    if (!*off) { perror("malloc"); exit(1); }
    for (long i = 0; i < o->requests; i++) {
        (*off)[i] = all->len;
        if (kind == GEN_SEARCH) gen_search(o, all, (uint64_t)i);
        else if (kind == GEN_GEOADD) gen_geoadd(o, all);
        else gen_vehicle(o, all, (uint64_t)i, kind == GEN_VGEOADD);
    }
    (*off)[o->requests] = all->len;
}

/* How many requests are due by time t: all of them in a closed loop. */
static long due_by(const opts *o, double t0, double t)
{
    if (o->rate <= 0) return o->requests;
    long n = (long)((t - t0) * o->rate) + 1;
    return n < o->requests ? n : o->requests;
}

static int mode_load_test(const opts *o, int kind)
{
    conn *cs = calloc((size_t)o->conns, sizeof(*cs));
    /* epoll, not poll: poll() walks all C sockets on every turn, and at
     * one request in flight per connection that walk made the client,
     * not the server, the bottleneck. */
    int ep = epoll_create1(0);
    struct epoll_event *ready = calloc((size_t)o->conns, sizeof(*ready));
    double *lat = malloc(sizeof(double) * (size_t)o->requests);
    if (ep < 0) { perror("epoll_create1"); return 1; }
    if (!cs || !ready || !lat) { perror("calloc"); return 1; }
    long sent = 0, done = 0;
    buf all = {0};
    size_t *off;
    pregenerate(o, kind, &all, &off);
    long odd = 0; /* fleet runs: STALE or IMPLAUSIBLE replies (must be 0) */
    for (int i = 0; i < o->conns; i++) {
        cs[i].fd = dial(o->port);
        cs[i].sent_at = calloc((size_t)o->pipeline, sizeof(double));
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev)) { perror("epoll_ctl"); return 1; }
    }
    double cpu0 = cpu_s();
    double t0 = now_s();
    char tmp[1 << 16];
    int rr = 0; /* open loop: connections take due requests in turn */
    while (done < o->requests) {
        /* One clock read per turn keeps the client cheap: at tens of
         * thousands of requests a second its own CPU time would otherwise
         * show up as server latency. */
        double t = now_s();
        long due = due_by(o, t0, t);
        for (int k = 0; k < o->conns && sent < due; k++) {
            conn *c = &cs[(rr + k) % o->conns];
            long first = sent;
            while (c->inflight < o->pipeline && sent < due) {
                /* Open loop: latency counts from when the request was due,
                 * so a stalled server cannot hide its queueing delay. */
                c->sent_at[c->head++ % o->pipeline] =
                    o->rate > 0 ? t0 + (double)sent / o->rate : t;
                c->inflight++;
                sent++;
            }
            for (size_t p = off[first]; p < off[sent];) {
                ssize_t w = write(c->fd, all.p + p, off[sent] - p);
                if (w < 0 && errno != EAGAIN) { perror("write"); return 1; }
                if (w > 0) p += (size_t)w;
            }
        }
        rr = (rr + 1) % o->conns;
        struct timespec ts = {1, 0};
        if (o->rate > 0 && sent < o->requests) {
            double wait = t0 + (double)sent / o->rate - now_s();
            wait = wait < 0 ? 0 : wait < 0.001 ? wait : 0.001;
            ts.tv_sec = 0;
            ts.tv_nsec = (long)(wait * 1e9);
        }
        /* epoll_pwait2: open-loop runs need sub-millisecond waits. */
        int nready = epoll_pwait2(ep, ready, o->conns, &ts, NULL);
        if (nready < 0) { perror("epoll_wait"); return 1; }
        for (int e = 0; e < nready; e++) {
            conn *c = &cs[ready[e].data.u32];
            ssize_t r = read(c->fd, tmp, sizeof(tmp));
            if (r <= 0) { fprintf(stderr, "geobench: connection lost\n"); return 1; }
            bput(&c->in, tmp, (size_t)r);
            size_t k;
            double t = now_s();
            while (c->parsed < c->in.len &&
                   (k = reply_len(c->in.p + c->parsed, c->in.len - c->parsed)) > 0) {
                if (c->in.p[c->parsed] == '-') {
                    fprintf(stderr, "geobench: error reply %.*s\n", 120, c->in.p + c->parsed);
                    return 1;
                }
                if (c->in.p[c->parsed] == '+' && c->in.p[c->parsed + 1] != 'O') odd++;
                c->parsed += k;
                lat[done++] = t - c->sent_at[c->tail++ % o->pipeline];
                c->inflight--;
            }
            if (c->parsed == c->in.len) c->parsed = c->in.len = 0;
        }
    }
    double el = now_s() - t0, cpu = cpu_s() - cpu0;
    qsort(lat, (size_t)done, sizeof(double), cmpd);
    printf("%s ops=%ld seconds=%.3f ops_per_sec=%.0f client_cpu_us=%.2f "
           "p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f not_ok=%ld\n",
           o->mode, done, el, (double)done / el, cpu * 1e6 / (double)done,
           lat[done / 2] * 1e6,
           lat[(long)((double)done * 0.99)] * 1e6,
           lat[(long)((double)done * 0.999)] * 1e6, lat[done - 1] * 1e6, odd);
    for (int i = 0; i < o->conns; i++) close(cs[i].fd);
    close(ep);
    return 0;
}

/* Puts every vehicle in place before a fleet run: on fleetd a first ping
 * and a running trip, then `pings` more pings one second apart, the last
 * at ts_now (step 0); on Redis the same last position with GEOADD.
 * Pipelined. */
static int mode_vsetup(const opts *o)
{
    int fd = dial(o->port), redis = !strcmp(o->target, "redis");
    buf b = {0}, out = {0};
    char lon[32], lat[32], name[32], ts[32];
    long long t_start = o->ts_now - o->pings * 1000;
    double t0 = now_s();
    for (long v = 0; v < o->vehicles;) {
        b.len = 0;
        long cmds = 0;
        for (int k = 0; k < 500 && v < o->vehicles; k++, v++) {
            snprintf(name, sizeof(name), "veh:%ld", v);
            for (long r = redis ? o->pings : 0; r <= o->pings; r++) {
                pt p = vehicle_pos((uint64_t)v, -o->pings + r);
                snprintf(lon, sizeof(lon), "%.6f", p.lon);
                snprintf(lat, sizeof(lat), "%.6f", p.lat);
                snprintf(ts, sizeof(ts), "%lld", t_start + r * 1000);
                const char *up[] = {"VEHICLE.UPDATE", name, lon, lat, "TS", ts};
                const char *ga[] = {"GEOADD", o->key, lon, lat, name};
                const char *st[] = {"TRIP.START", name, "TS", ts};
                if (redis) put_cmd(&b, 5, ga);
                else put_cmd(&b, 6, up);
                cmds++;
                if (!redis && r == 0) {
                    put_cmd(&b, 4, st);
                    cmds++;
                }
            }
        }
        roundtrip(fd, &b, cmds, &out);
        if (memchr(out.p, '-', out.len)) {
            fprintf(stderr, "geobench: setup error %.*s\n", 200, out.p);
            return 1;
        }
    }
    printf("vsetup target=%s vehicles=%ld pings=%ld seconds=%.2f\n", o->target,
           o->vehicles, redis ? 0 : o->pings + 1, now_s() - t0);
    close(fd);
    return 0;
}

/* Same queries to both servers; replies must match byte for byte. */
static int mode_verify(const opts *o_in)
{
    opts copy = *o_in;
    copy.withdist = 1;
    const opts *o = &copy;
    int a = dial(o->port), b2 = dial(o->port2);
    buf b = {0}, ra = {0}, rb = {0};
    long mismatches = 0, results = 0;
    for (long q = 0; q < o->requests; q++) {
        b.len = 0;
        gen_search(o, &b, (uint64_t)q);
        roundtrip(a, &b, 1, &ra);
        roundtrip(b2, &b, 1, &rb);
        results += strtol(ra.p + 1, NULL, 10);
        if (ra.len != rb.len || memcmp(ra.p, rb.p, ra.len) != 0) {
            if (mismatches++ < 3)
                fprintf(stderr, "mismatch on query %ld: %.*s... vs %.*s...\n", q,
                        80, ra.p, 80, rb.p);
        }
    }
    printf("verify queries=%ld mean_results=%.1f mismatches=%ld\n", o->requests,
           (double)results / (double)o->requests, mismatches);
    return mismatches != 0;
}

int main(int argc, char **argv)
{
    opts o = {.port = 6379, .conns = 50, .pipeline = 1, .members = 1000000,
              .requests = 100000, .radius_km = 1, .count = 0, .key = "bench:geo",
              .data = "../shared/data", .mode = "search", .vehicles = 100000,
              .target = "fleetd"};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port")) o.port = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--port2")) o.port2 = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--conns")) o.conns = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--pipeline")) o.pipeline = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--members")) o.members = strtol(v, NULL, 10);
        else if (!strcmp(k, "--requests")) o.requests = strtol(v, NULL, 10);
        else if (!strcmp(k, "--radius-km")) o.radius_km = strtod(v, NULL);
        else if (!strcmp(k, "--withdist")) o.withdist = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--count")) o.count = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--key")) o.key = v;
        else if (!strcmp(k, "--data")) o.data = v;
        else if (!strcmp(k, "--mode")) o.mode = v;
        else if (!strcmp(k, "--vehicles")) o.vehicles = strtol(v, NULL, 10);
        else if (!strcmp(k, "--pings")) o.pings = strtol(v, NULL, 10);
        else if (!strcmp(k, "--rate")) o.rate = strtod(v, NULL);
        else if (!strcmp(k, "--ts-now")) o.ts_now = strtoll(v, NULL, 10);
        else if (!strcmp(k, "--target")) o.target = v;
        else if (!strcmp(k, "--step0")) o.step0 = strtol(v, NULL, 10);
        else { fprintf(stderr, "geobench: unknown option %s\n", k); return 2; }
    }
    load_data(o.data);
    if (o.ts_now == 0) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        o.ts_now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    }
    if (!strcmp(o.mode, "load")) return mode_load(&o);
    if (!strcmp(o.mode, "geoadd")) return mode_load_test(&o, GEN_GEOADD);
    if (!strcmp(o.mode, "search")) return mode_load_test(&o, GEN_SEARCH);
    if (!strcmp(o.mode, "vupdate")) return mode_load_test(&o, GEN_VUPDATE);
    if (!strcmp(o.mode, "vgeoadd")) return mode_load_test(&o, GEN_VGEOADD);
    if (!strcmp(o.mode, "vsetup")) return mode_vsetup(&o);
    if (!strcmp(o.mode, "verify")) return mode_verify(&o);
    fprintf(stderr, "geobench: unknown mode %s\n", o.mode);
    return 2;
}
