/*
 * test_fleet.c - the live-fleet domain with an injected clock: pings
 * (stale, implausible, relocation), trip metrics and paths, searches and
 * supply counts against brute force, retention, deletion, idle trips.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fleet/fleet.h"

#define T0 1700000000000LL

static uint64_t rng_state = 88172645463325252ULL;
static double rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static fl_fleet *new_fleet(void)
{
    fl_fleet_config c;
    fl_fleet_config_defaults(&c);
    return fl_fleet_new(&c, 42);
}

static int ping(fl_fleet *f, const char *id, double lon, double lat,
                int64_t ts, int status)
{
    fl_ping p = {lon, lat, ts, NAN, NAN, NULL, 0, status, 0, 0};
    int outcome = -1;
    int rc = fl_fleet_update(f, id, strlen(id), &p, ts, &outcome);
    assert_int_equal(rc, 0);
    return outcome;
}

/* A burst of TS-less pings (FL_TS_ARRIVAL, arrivals under FL_BURST_MS
 * apart): applied in arrival order, 140 m steps included (no speed is
 * judged from arrival times milliseconds apart), the trip counts the path
 * and derives no speed from it; a TS-less ping a few seconds later is
 * judged as usual; a client's own TS equal to the last is STALE, and so is
 * a TS-less ping behind a last ping more than FL_SERVER_TS_SLACK_MS ahead.
 * FL_TS_BURST (replay) applies the same way, STALE only before the last. */
static void test_arrival_burst(void **state)
{
    (void)state;
    fl_fleet *f = new_fleet();
    assert_non_null(f);
    int out = -1;
    fl_ping first = {11.5, 48.1, T0, NAN, NAN, NULL, 0, -1, FL_TS_ARRIVAL, 0};
    assert_int_equal(fl_fleet_update(f, "v", 1, &first, T0, &out), 0);
    assert_int_equal(out, FL_PING_APPLIED);
    assert_int_equal(first.burst, 0);
    const fl_trip *started = NULL;
    assert_int_equal(fl_fleet_trip_start(f, "v", 1, "t1", 2, T0, T0, &started), 0);
    static const int64_t arrive[] = {0, 0, 30, 99};
    for (int i = 1; i <= 4; i++) {
        int64_t at = T0 + arrive[i - 1];
        fl_ping p = {11.5 + i * 0.0019, 48.1, at, NAN, NAN, NULL, 0, -1, FL_TS_ARRIVAL, 0};
        assert_int_equal(fl_fleet_update(f, "v", 1, &p, at, &out), 0);
        assert_int_equal(out, FL_PING_APPLIED);
        assert_int_equal(p.burst, 1);
        assert_true(p.ts_ms == at);
        const fl_vehicle *v = fl_fleet_vehicle(f, "v", 1);
        assert_true(v->ts_ms == at && fabs(v->lon - (11.5 + i * 0.0019)) < 1e-6);
        assert_int_equal(v->flagged, 0);
    }
    const fl_trip *t = fl_fleet_trip(f, "t1", 2);
    assert_non_null(t);
    assert_true(t->distance_m > 4 * 130 && t->distance_m < 4 * 150);
    assert_true(t->max_speed_kmh == 0);
    /* Seconds later: an ordinary ping, judged (140 m in 5 s is plausible). */
    fl_ping later = {11.5 + 5 * 0.0019, 48.1, T0 + 5099, NAN, NAN, NULL, 0, -1, FL_TS_ARRIVAL, 0};
    assert_int_equal(fl_fleet_update(f, "v", 1, &later, T0 + 5099, &out), 0);
    assert_int_equal(out, FL_PING_APPLIED);
    assert_int_equal(later.burst, 0);
    assert_true(t->max_speed_kmh > 90 && t->max_speed_kmh < 110);
    fl_ping own = {11.6, 48.1, T0 + 5099, NAN, NAN, NULL, 0, -1, FL_TS_GIVEN, 0};
    assert_int_equal(fl_fleet_update(f, "v", 1, &own, T0 + 5099, &out), 0);
    assert_int_equal(out, FL_PING_STALE);
    fl_ping replay = {11.7, 48.1, T0 + 5098, NAN, NAN, NULL, 0, -1, FL_TS_BURST, 0};
    assert_int_equal(fl_fleet_update(f, "v", 1, &replay, T0, &out), 0);
    assert_int_equal(out, FL_PING_STALE);
    replay.ts_ms = T0 + 5099;
    assert_int_equal(fl_fleet_update(f, "v", 1, &replay, T0, &out), 0);
    assert_int_equal(out, FL_PING_APPLIED);
    assert_int_equal(replay.burst, 1);
    fl_ping ahead = {11.5, 48.1, T0 + 5000, NAN, NAN, NULL, 0, -1, FL_TS_GIVEN, 0};
    assert_int_equal(fl_fleet_update(f, "w", 1, &ahead, T0, &out), 0);
    fl_ping late = {11.5, 48.1, T0, NAN, NAN, NULL, 0, -1, FL_TS_ARRIVAL, 0};
    assert_int_equal(fl_fleet_update(f, "w", 1, &late, T0, &out), 0);
    assert_int_equal(out, FL_PING_STALE);
    fl_fleet_free(f);
}

static void test_path_google_example(void **state)
{
    (void)state;
    fl_path p = {0};
    assert_int_equal(fl_path_append(&p, -120.2, 38.5), 0);
    assert_int_equal(fl_path_append(&p, -120.95, 40.7), 0);
    assert_int_equal(fl_path_append(&p, -126.453, 43.252), 0);
    const char *want = "_p~iF~ps|U_ulLnnqC_mqNvxq`@";
    assert_int_equal(p.len, strlen(want));
    assert_memory_equal(p.enc, want, p.len);
    double xy[6];
    assert_int_equal(fl_path_decode(p.enc, p.len, xy, 3), 3);
    assert_true(fabs(xy[4] - -126.453) < 1e-9 && fabs(xy[5] - 43.252) < 1e-9);
    free(p.enc);
}

static void test_path_roundtrip_random(void **state)
{
    (void)state;
    fl_path p = {0};
    double in[2000];
    for (int i = 0; i < 1000; i++) {
        in[2 * i] = rnd() * 360 - 180;
        in[2 * i + 1] = rnd() * 170 - 85;
        fl_path_append(&p, in[2 * i], in[2 * i + 1]);
    }
    double out[2000];
    assert_int_equal(fl_path_decode(p.enc, p.len, out, 1000), 1000);
    for (int i = 0; i < 2000; i++) assert_true(fabs(out[i] - in[i]) <= 0.5e-5 + 1e-12);
    /* A truncated path decodes to a prefix, never past its end. */
    assert_true(fl_path_decode(p.enc, p.len - 1, out, 1000) == 999);
    free(p.enc);
}

static void test_ping_outcomes(void **state)
{
    (void)state;
    fl_fleet *f = new_fleet();
    assert_int_equal(ping(f, "v", 11.5, 48.1, T0, -1), FL_PING_APPLIED);
    assert_int_equal(ping(f, "v", 11.6, 48.1, T0, -1), FL_PING_STALE);
    assert_int_equal(ping(f, "v", 11.6, 48.1, T0 - 5, -1), FL_PING_STALE);
    const fl_vehicle *v = fl_fleet_vehicle(f, "v", 1);
    assert_true(v->lon == 11.5 && v->ts_ms == T0);
    /* 100 km in 10 s is 36,000 km/h. */
    assert_int_equal(ping(f, "v", 12.9, 48.1, T0 + 10000, -1), FL_PING_IMPLAUSIBLE);
    assert_true(v->lon == 11.5 && v->flagged == 1);
    /* A normal ping in between resets the run. */
    assert_int_equal(ping(f, "v", 11.5005, 48.1, T0 + 20000, -1), FL_PING_APPLIED);
    assert_int_equal(ping(f, "v", 12.9, 48.1, T0 + 21000, -1), FL_PING_IMPLAUSIBLE);
    assert_int_equal(ping(f, "v", 12.9, 48.1, T0 + 22000, -1), FL_PING_IMPLAUSIBLE);
    assert_int_equal(ping(f, "v", 12.9, 48.1, T0 + 23000, -1), FL_PING_RELOCATED);
    assert_true(v->lon == 12.9 && v->flagged == 4);
    const fl_fleet_stats *st = fl_fleet_get_stats(f);
    assert_int_equal(st->pings_stale, 2);
    assert_int_equal(st->pings_implausible, 3);
    assert_int_equal(st->pings_relocated, 1);
    fl_fleet_free(f);
}

static void test_bad_pings(void **state)
{
    (void)state;
    fl_fleet *f = new_fleet();
    int out;
    fl_ping p = {NAN, 48, T0, NAN, NAN, NULL, 0, -1, 0, 0};
    assert_int_equal(fl_fleet_update(f, "v", 1, &p, T0, &out), -EINVAL);
    p.lon = INFINITY;
    assert_int_equal(fl_fleet_update(f, "v", 1, &p, T0, &out), -EINVAL);
    p.lon = 11;
    p.lat = 86;
    assert_int_equal(fl_fleet_update(f, "v", 1, &p, T0, &out), -EINVAL);
    p.lat = 48;
    p.ts_ms = T0 + 10 * 60 * 1000;
    assert_int_equal(fl_fleet_update(f, "v", 1, &p, T0, &out), -ERANGE);
    p.ts_ms = T0;
    p.speed_kmh = -1;
    assert_int_equal(fl_fleet_update(f, "v", 1, &p, T0, &out), -EINVAL);
    p.speed_kmh = NAN;
    assert_int_equal(fl_fleet_update(f, "", 0, &p, T0, &out), -EINVAL);
    assert_int_equal(fl_fleet_get_stats(f)->vehicles, 0);
    fl_fleet_free(f);
}

/* A trip over a walk: jitter below 5 m is not counted, but accumulates
 * against the last counted point. */
static void test_trip_metrics(void **state)
{
    (void)state;
    fl_fleet *f = new_fleet();
    ping(f, "car", 11.0, 48.0, T0, -1);
    const fl_trip *t;
    assert_int_equal(fl_fleet_trip_start(f, "car", 3, NULL, 0, T0, T0, &t), 0);
    assert_int_equal(t->id_len, 2);
    assert_memory_equal(t->id, "t1", 2);
    double ax = 11.0, ay = 48.0, want = 0, lon = 11.0;
    int counted = 1;
    for (int i = 1; i <= 100; i++) {
        lon += 0.00002; /* ~1.5 m per ping */
        ping(f, "car", lon, 48.0, T0 + i * 1000, -1);
        double d = fl_fleet_distance_m(ax, ay, lon, 48.0);
        if (d >= 5.0) {
            want += d;
            ax = lon;
            counted++;
        }
    }
    t = fl_fleet_vehicle(f, "car", 3)->trip;
    assert_true(fabs(t->distance_m - want) < 1e-6);
    assert_int_equal(t->path.points, counted);
    assert_int_equal(t->pings, 100);
    /* 1.5 m/s is 5.4 km/h measured over counted moves only. */
    assert_true(t->max_speed_kmh < 30);
    /* Standing still with a reported speed of 0: idle time. */
    for (int i = 101; i <= 110; i++) {
        fl_ping p = {lon, 48.0, T0 + i * 1000, 0, NAN, NULL, 0, -1, 0, 0};
        int out;
        assert_int_equal(fl_fleet_update(f, "car", 3, &p, T0 + i * 1000, &out), 0);
    }
    assert_int_equal(t->idle_ms, 10000);
    /* Without a reported speed a stop counts once it has lasted a minute,
     * then in full; a short stop does not count. */
    ping(f, "car", lon, 48.0, T0 + 130000, -1);
    assert_int_equal(t->idle_ms, 10000);
    ping(f, "car", lon, 48.0, T0 + 170000, -1);
    ping(f, "car", lon, 48.0, T0 + 230000, -1);
    assert_int_equal(t->idle_ms, 130000);
    assert_int_equal(fl_fleet_trip_end(f, "car", 3, T0 + 240000, FL_TRIP_ENDED, &t), 0);
    assert_int_equal(t->end_ms, T0 + 240000);
    assert_int_equal(t->end_reason, FL_TRIP_ENDED);
    assert_ptr_equal(fl_fleet_trip(f, "t1", 2), t);
    assert_ptr_equal(fl_fleet_trips_of(f, "car", 3), t);
    fl_fleet_free(f);
}

static void test_trip_errors_and_idle(void **state)
{
    (void)state;
    fl_fleet *f = new_fleet();
    const fl_trip *t;
    assert_int_equal(fl_fleet_trip_start(f, "x", 1, NULL, 0, T0, T0, &t), -ENOENT);
    ping(f, "a", 2.35, 48.85, T0, -1);
    ping(f, "b", 2.36, 48.85, T0, -1);
    assert_int_equal(fl_fleet_trip_start(f, "a", 1, "trip", 4, T0, T0, &t), 0);
    assert_int_equal(fl_fleet_trip_start(f, "a", 1, NULL, 0, T0, T0, &t), -EEXIST);
    assert_int_equal(fl_fleet_trip_start(f, "b", 1, "trip", 4, T0, T0, &t), -EADDRINUSE);
    assert_int_equal(fl_fleet_trip_start(f, "b", 1, NULL, 0, T0 + 3600000, T0, &t), -ERANGE);
    assert_int_equal(fl_fleet_trip_end(f, "b", 1, T0, FL_TRIP_ENDED, &t), -ESRCH);
    assert_int_equal(fl_fleet_trip_start(f, "b", 1, NULL, 0, T0, T0, &t), 0);
    /* b keeps pinging, a goes quiet: only a is idle after 30 minutes. */
    ping(f, "b", 2.36, 48.85, T0 + 29 * 60000, -1);
    assert_null(fl_fleet_idle_trip(f, T0 + 29 * 60000));
    const fl_trip *idle = fl_fleet_idle_trip(f, T0 + 30 * 60000);
    assert_non_null(idle);
    assert_memory_equal(idle->id, "trip", 4);
    assert_int_equal(fl_fleet_trip_end(f, "a", 1, idle->last_ms, FL_TRIP_IDLE, &t), 0);
    assert_null(fl_fleet_idle_trip(f, T0 + 30 * 60000));
    assert_int_equal(fl_fleet_get_stats(f)->trips_closed_idle, 1);
    fl_fleet_free(f);
}

static void test_retention_and_delete(void **state)
{
    (void)state;
    fl_fleet_config c;
    fl_fleet_config_defaults(&c);
    c.trip_history_max = 3;
    fl_fleet *f = fl_fleet_new(&c, 7);
    const fl_trip *t;
    ping(f, "v", 10, 50, T0, -1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fl_fleet_trip_start(f, "v", 1, NULL, 0, T0 + i * 10, T0 + i * 10, &t), 0);
        assert_int_equal(fl_fleet_trip_end(f, "v", 1, T0 + i * 10 + 5, FL_TRIP_ENDED, &t), 0);
    }
    assert_null(fl_fleet_trip(f, "t1", 2));
    assert_null(fl_fleet_trip(f, "t2", 2));
    assert_non_null(fl_fleet_trip(f, "t3", 2));
    int n = 0;
    for (t = fl_fleet_trips_of(f, "v", 1); t; t = t->volder) n++;
    assert_int_equal(n, 3);
    /* Deleting ends the running trip; the history outlives the vehicle
     * and is found again when the id comes back. */
    assert_int_equal(fl_fleet_trip_start(f, "v", 1, NULL, 0, T0 + 100, T0 + 100, &t), 0);
    assert_int_equal(fl_fleet_delete(f, "v", 1), 1);
    assert_int_equal(fl_fleet_delete(f, "v", 1), 0);
    t = fl_fleet_trip(f, "t6", 2);
    assert_non_null(t);
    assert_int_equal(t->end_reason, FL_TRIP_VEHICLE_DELETED);
    ping(f, "v", 10, 50, T0 + 200, -1);
    assert_ptr_equal(fl_fleet_trips_of(f, "v", 1), t);
    assert_int_equal(fl_fleet_get_stats(f)->trips_finished, 3);
    fl_fleet_free(f);
}

/* ---- searches and supply against brute force ---- */

#define NV 3000
typedef struct ref_vehicle {
    char id[16];
    double lon, lat;
    int status;
    int fleet;
} ref_vehicle;

static ref_vehicle refs[NV];
static const char *fleets[] = {"red", "blue", "green"};

static fl_fleet *populate(void)
{
    fl_fleet *f = new_fleet();
    for (int i = 0; i < NV; i++) {
        ref_vehicle *r = &refs[i];
        snprintf(r->id, sizeof(r->id), "v%d", i);
        /* A dense city and a handful near the antimeridian. */
        if (i % 100 == 0) {
            r->lon = i % 200 ? 179.95 + rnd() * 0.05 : -180 + rnd() * 0.05;
            r->lat = -17 + rnd() * 0.1;
        } else {
            r->lon = -74.0 + rnd() * 0.2;
            r->lat = 40.65 + rnd() * 0.2;
        }
        r->status = (int)(rnd() * 3);
        r->fleet = (int)(rnd() * 3);
        fl_ping p = {r->lon, r->lat, T0, NAN, NAN, fleets[r->fleet],
                     strlen(fleets[r->fleet]), r->status, 0, 0};
        int out;
        assert_int_equal(fl_fleet_update(f, r->id, strlen(r->id), &p, T0, &out), 0);
    }
    return f;
}

static int hit_sorted_ok(const fl_fleet_hits *h)
{
    for (size_t i = 1; i < h->n; i++)
        if (h->v[i].dist_m < h->v[i - 1].dist_m) return 0;
    return 1;
}

static void check_nearby(fl_fleet *f, double lon, double lat, double r_m,
                         int status, int fleet, long long count)
{
    fl_fleet_query q = {.lon = lon, .lat = lat, .radius_m = r_m,
                        .status = status, .count = count};
    if (fleet >= 0) {
        q.fleet = fleets[fleet];
        q.fleet_len = strlen(fleets[fleet]);
    }
    fl_fleet_hits h = {0};
    assert_int_equal(fl_fleet_search(f, &q, &h), 0);
    size_t want = 0;
    for (int i = 0; i < NV; i++) {
        const ref_vehicle *r = &refs[i];
        if ((status >= 0 && r->status != status) || (fleet >= 0 && r->fleet != fleet))
            continue;
        if (fl_fleet_distance_m(lon, lat, r->lon, r->lat) <= r_m) want++;
    }
    if (count && want > (size_t)count) want = (size_t)count;
    assert_int_equal(h.n, want);
    assert_true(hit_sorted_ok(&h));
    for (size_t i = 0; i < h.n; i++) {
        const fl_vehicle *v = h.v[i].v;
        assert_true(status < 0 || v->status == status);
        assert_true(h.v[i].dist_m <= r_m);
    }
    fl_fleet_hits_free(&h);
}

static void test_nearby_brute_force(void **state)
{
    (void)state;
    fl_fleet *f = populate();
    for (int k = 0; k < 60; k++) {
        double lon = -74.0 + rnd() * 0.2, lat = 40.65 + rnd() * 0.2;
        double r = 100 + rnd() * 3000;
        check_nearby(f, lon, lat, r, -1, -1, 0);
        check_nearby(f, lon, lat, r, k % 3, -1, 0);
        check_nearby(f, lon, lat, r, -1, k % 3, 5);
        check_nearby(f, lon, lat, r, k % 3, (k + 1) % 3, 3);
    }
    fl_fleet_free(f);
}

static size_t brute_box(const double b[4], int status)
{
    size_t n = 0;
    for (int i = 0; i < NV; i++) {
        const ref_vehicle *r = &refs[i];
        int lon_in = b[0] <= b[2] ? (r->lon >= b[0] && r->lon <= b[2])
                                  : (r->lon >= b[0] || r->lon <= b[2]);
        if (lon_in && r->lat >= b[1] && r->lat <= b[3] &&
            (status < 0 || r->status == status))
            n++;
    }
    return n;
}

static void test_within_brute_force(void **state)
{
    (void)state;
    fl_fleet *f = populate();
    double boxes[][4] = {
        {-74.0, 40.65, -73.8, 40.85}, {-73.95, 40.7, -73.9, 40.72},
        {179.9, -17.2, -179.9, -16.8}, /* crosses the antimeridian */
        {-180, -85, 180, 85},           /* the world: a scan */
    };
    for (size_t k = 0; k < sizeof(boxes) / sizeof(boxes[0]); k++) {
        for (int status = -1; status < 3; status++) {
            fl_fleet_query q = {.is_box = 1, .status = status};
            memcpy(q.box, boxes[k], sizeof(q.box));
            fl_fleet_hits h = {0};
            assert_int_equal(fl_fleet_search(f, &q, &h), 0);
            assert_int_equal(h.n, brute_box(boxes[k], status));
            fl_fleet_hits_free(&h);
        }
    }
    for (int k = 0; k < 50; k++) {
        double b[4] = {-74.0 + rnd() * 0.2, 40.65 + rnd() * 0.1, 0, 0};
        b[2] = b[0] + rnd() * 0.05;
        b[3] = b[1] + rnd() * 0.05;
        fl_fleet_query q = {.is_box = 1, .status = -1};
        memcpy(q.box, b, sizeof(b));
        fl_fleet_hits h = {0};
        assert_int_equal(fl_fleet_search(f, &q, &h), 0);
        assert_int_equal(h.n, brute_box(b, -1));
        fl_fleet_hits_free(&h);
    }
    fl_fleet_query bad = {.is_box = 1, .box = {0, 10, 1, 5}};
    fl_fleet_hits h = {0};
    assert_int_equal(fl_fleet_search(f, &bad, &h), -EINVAL);
    fl_fleet_hits_free(&h);
    fl_fleet_free(f);
}

typedef struct cell_sum {
    uint64_t total[FL_VS_COUNT];
    size_t cells;
    int level;
} cell_sum;

static int add_cell(void *ud, const fl_cell_count *c)
{
    cell_sum *s = ud;
    assert_int_equal(c->level, s->level);
    for (int i = 0; i < FL_VS_COUNT; i++) s->total[i] += c->by_status[i];
    s->cells++;
    return 0;
}

static void test_supply_counts(void **state)
{
    (void)state;
    fl_fleet *f = populate();
    /* Move, recolour and delete some, then every level must still add up
     * to the status counts, and one cell must match brute force. */
    for (int i = 0; i < NV; i += 7) {
        ref_vehicle *r = &refs[i];
        r->lon += 0.01;
        r->status = (r->status + 1) % 3;
        fl_ping p = {r->lon, r->lat, T0 + 60000, NAN, NAN, NULL, 0, r->status, 0, 0};
        int out;
        assert_int_equal(fl_fleet_update(f, r->id, strlen(r->id), &p, T0 + 60000, &out), 0);
        assert_int_equal(out, FL_PING_APPLIED);
    }
    for (int i = 3; i < NV; i += 11) {
        assert_int_equal(fl_fleet_delete(f, refs[i].id, strlen(refs[i].id)), 1);
        refs[i].status = -1;
    }
    uint64_t by[FL_VS_COUNT] = {0};
    for (int i = 0; i < NV; i++)
        if (refs[i].status >= 0) by[refs[i].status]++;
    for (int i = 0; i < NV; i++) {
        const fl_vehicle *v = fl_fleet_vehicle(f, refs[i].id, strlen(refs[i].id));
        if (refs[i].status < 0) assert_null(v);
        else assert_int_equal(v->status, refs[i].status);
    }
    uint64_t counted[FL_VS_COUNT];
    fl_fleet_count(f, NULL, 0, counted);
    assert_memory_equal(counted, by, sizeof(by));
    for (int level = FL_CELL_MIN_LEVEL; level <= FL_CELL_MAX_LEVEL; level++) {
        cell_sum s = {{0}, 0, level};
        assert_int_equal(fl_fleet_cells(f, level, NULL, add_cell, &s), 0);
        assert_memory_equal(s.total, by, sizeof(by));
    }
    /* The cell of vehicle 1 at precision 6, counted by hand. */
    const fl_vehicle *v1 = fl_fleet_vehicle(f, refs[1].id, strlen(refs[1].id));
    char name[8];
    fl_cell_name(fl_vehicle_cell(v1) >> 5, 6, name);
    fl_cell_count cc;
    assert_int_equal(fl_fleet_cell(f, name, 6, &cc), 0);
    double b[4];
    fl_cell_bounds(cc.cell, 6, b);
    uint64_t want[FL_VS_COUNT] = {0};
    for (int i = 0; i < NV; i++) {
        const ref_vehicle *r = &refs[i];
        if (r->status >= 0 && r->lon >= b[0] && r->lon < b[2] &&
            r->lat >= b[1] && r->lat < b[3])
            want[r->status]++;
    }
    for (int i = 0; i < FL_VS_COUNT; i++) assert_int_equal(cc.by_status[i], want[i]);
    assert_int_equal(fl_fleet_cell(f, "dr5r", 3, &cc), -EINVAL);
    assert_int_equal(fl_fleet_cell(f, "dr5a", 4, &cc), -EINVAL);
    fl_fleet_free(f);
}

static void test_cell_names(void **state)
{
    (void)state;
    fl_fleet *f = new_fleet();
    /* Times Square: geohash dr5ru7 (precision 6) by any geohash tool. */
    ping(f, "ts", -73.9855, 40.7580, T0, -1);
    const fl_vehicle *v = fl_fleet_vehicle(f, "ts", 2);
    char name[8];
    fl_cell_name(fl_vehicle_cell(v), 7, name);
    assert_memory_equal(name, "dr5ru7", 6);
    fl_fleet_free(f);
}

/* Demand: trip starts by the cell they started in, within a window, at
 * every level; restored trips count from the first point of their path. */
typedef struct demand_seen {
    char cells[16][FL_CELL_MAX_LEVEL + 1];
    uint32_t starts[16];
    int n;
} demand_seen;

static int note_demand(void *ud, uint64_t cell, int level, uint32_t starts)
{
    demand_seen *d = ud;
    assert_true(d->n < 16);
    fl_cell_name(cell, level, d->cells[d->n]);
    d->starts[d->n++] = starts;
    return 0;
}

static uint32_t demand_of(demand_seen *d, const char *cell)
{
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->cells[i], cell)) return d->starts[i];
    return 0;
}

static void test_demand_cells(void **state)
{
    (void)state;
    fl_fleet *f = new_fleet();
    const fl_trip *t;
    /* Two starts in Times Square (dr5ru7), one in Chicago (dp3wjz), one
     * an hour earlier in Times Square. */
    assert_int_equal(ping(f, "a", -73.9855, 40.7580, T0, -1), 0);
    assert_int_equal(ping(f, "b", -73.9856, 40.7581, T0, -1), 0);
    assert_int_equal(ping(f, "c", -87.6298, 41.8781, T0, -1), 0);
    assert_int_equal(fl_fleet_trip_start(f, "a", 1, NULL, 0, T0 - 3600000, T0, &t), 0);
    assert_int_equal(fl_fleet_trip_end(f, "a", 1, T0, FL_TRIP_ENDED, &t), 0);
    assert_int_equal(fl_fleet_trip_start(f, "a", 1, NULL, 0, T0, T0, &t), 0);
    assert_int_equal(fl_fleet_trip_start(f, "b", 1, NULL, 0, T0, T0, &t), 0);
    assert_int_equal(fl_fleet_trip_start(f, "c", 1, NULL, 0, T0, T0, &t), 0);
    demand_seen d = {0};
    assert_int_equal(fl_fleet_demand_cells(f, 6, NULL, T0 - 60000, note_demand, &d), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(demand_of(&d, "dr5ru7"), 2);
    assert_int_equal(demand_of(&d, "dp3wjz"), 1);
    memset(&d, 0, sizeof(d));
    assert_int_equal(fl_fleet_demand_cells(f, 4, NULL, 0, note_demand, &d), 0);
    assert_int_equal(demand_of(&d, "dr5r"), 3);
    memset(&d, 0, sizeof(d));
    double nyc[4] = {-75, 40, -73, 41};
    assert_int_equal(fl_fleet_demand_cells(f, 6, nyc, 0, note_demand, &d), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(demand_of(&d, "dr5ru7"), 3);
    assert_int_equal(fl_fleet_demand_cells(f, 3, NULL, 0, note_demand, &d), -EINVAL);
    assert_int_equal(fl_fleet_demand_cells(f, 8, NULL, 0, note_demand, &d), -EINVAL);
    /* A restored finished trip counts at its path's first point. */
    fl_fleet *g = new_fleet();
    const fl_trip *done = fl_fleet_trips_of(f, "a", 1);
    assert_non_null(done);
    assert_int_equal(fl_fleet_restore_trip(g, "a", 1, done), 0);
    memset(&d, 0, sizeof(d));
    assert_int_equal(fl_fleet_demand_cells(g, 6, NULL, 0, note_demand, &d), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(demand_of(&d, "dr5ru7"), 1);
    fl_fleet_free(g);
    fl_fleet_clear(f);
    memset(&d, 0, sizeof(d));
    assert_int_equal(fl_fleet_demand_cells(f, 6, NULL, 0, note_demand, &d), 0);
    assert_int_equal(d.n, 0);
    fl_fleet_free(f);
}

/* Paging by (key, id) visits every vehicle once, in index order, and
 * survives a vehicle moving between pages. */
static int page_collect(void *ud, const fl_vehicle *v, uint64_t key)
{
    (void)key;
    int *seen = ud;
    char num[16] = {0}; /* ids are not NUL-terminated */
    memcpy(num, v->id + 1, v->id_len - 1 < 15 ? v->id_len - 1 : 15);
    int k = atoi(num);
    seen[k]++;
    seen[1000] = k;
    return ++seen[1001] % 7 == 0;
}

static void test_paging_cursor(void **state)
{
    (void)state;
    fl_fleet *f = new_fleet();
    char id[16];
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof(id), "v%d", i);
        assert_int_equal(ping(f, id, -74 + rnd(), 40 + rnd(), T0, -1), 0);
    }
    int seen[1002] = {0};
    uint64_t key = 0;
    const char *last = NULL;
    char lastbuf[16];
    while (fl_fleet_each_vehicle_after(f, key, last, last ? strlen(last) : 0,
                                       page_collect, seen)) {
        snprintf(lastbuf, sizeof(lastbuf), "v%d", seen[1000]);
        const fl_vehicle *v = fl_fleet_vehicle(f, lastbuf, strlen(lastbuf));
        key = fl_fleet_vehicle_key(f, v);
        last = lastbuf;
    }
    for (int i = 0; i < 500; i++) assert_int_equal(seen[i], 1);
    fl_fleet_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_google_example),
        cmocka_unit_test(test_path_roundtrip_random),
        cmocka_unit_test(test_ping_outcomes),
        cmocka_unit_test(test_arrival_burst),
        cmocka_unit_test(test_bad_pings),
        cmocka_unit_test(test_trip_metrics),
        cmocka_unit_test(test_trip_errors_and_idle),
        cmocka_unit_test(test_retention_and_delete),
        cmocka_unit_test(test_nearby_brute_force),
        cmocka_unit_test(test_within_brute_force),
        cmocka_unit_test(test_supply_counts),
        cmocka_unit_test(test_cell_names),
        cmocka_unit_test(test_demand_cells),
        cmocka_unit_test(test_paging_cursor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
