/*
 * test_geo.c - the geo domain code: geohash arithmetic against values
 * captured from a real Redis 7.0.15 (GEOADD then ZSCORE / GEOPOS / GEOHASH /
 * GEODIST / STOREDIST), the conservative filters against Redis' exact test,
 * the member hash under churn, and fl_geoset_search against a naive
 * re-implementation of Redis' search (its cells, in its order, every member
 * tested) on thousands of random members around several centres.
 *
 * The naive reference only uses the exact primitives (fl_geo_search_cells,
 * fl_geo_in_shape), so any shortcut in the search that changed a result
 * or its order shows up here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/geohash.h"
#include "geo/geoset.h"
#include "fleet/fleet_int.h"

/* ---- helpers ---- */

static uint64_t rng_state = 0x243F6A8885A308D3ULL;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double urand(double lo, double hi)
{
    return lo + (hi - lo) * ((double)(rnd() >> 11) / 9007199254740992.0);
}

static double gauss(double sd)
{
    double s = 0;
    for (int i = 0; i < 6; i++) s += urand(-1, 1);
    return s * sd / 1.41421356;
}

/* GEOPOS' text for a coordinate: "%.17f" without trailing zeros. */
static void human(double d, char *out, size_t n)
{
    int l = snprintf(out, n, "%.17f", d);
    if (strchr(out, '.')) {
        while (out[l - 1] == '0') l--;
        if (out[l - 1] == '.') l--;
    }
    out[l] = '\0';
    if (l == 2 && out[0] == '-' && out[1] == '0') memcpy(out, "0", 2);
}

/* GEODIST's text: llrint(d * 10^4) as a fixed-point number. */
static void dist4(double d, char *out, size_t n)
{
    long long v = llrint(d * 10000.0);
    snprintf(out, n, "%lld.%04lld", v / 10000, v % 10000);
}

static uint64_t score_of(double lon, double lat)
{
    return fl_geo_score(lon, lat);
}

/* ---- encode / decode against Redis ---- */

typedef struct known_point {
    double lon, lat;
    uint64_t score;
    const char *x, *y, *hash;
} known_point;

static const known_point known[] = {
    {13.361389, 38.115556, 3479099956230698ULL, "13.36138933897018433",
     "38.11555639549629859", "sqc8b49rny0"},
    {15.087269, 37.502669, 3479447370796909ULL, "15.08726745843887329",
     "37.50266842333162032", NULL},
    {180, 85.05112878, 13510798882111488ULL, "180", "85.0511287799999991",
     "bp05b5048p0"},
    {-180, -85.05112878, 0, "-179.99999731779098511", "-85.05112751263942528",
     "00bh0hbj200"},
    {180, -85.05112878, 9007199254740992ULL, "180", "-85.05112751263942528", NULL},
    {-180, 85.05112878, 4503599627370496ULL, "-179.99999731779098511",
     "85.0511287799999991", "bp05b5048p0"},
    {179.99999999, 85.05112877, 0, "179.99999731779098511",
     "85.05112751263942528", "zzpgzgpfxz0"},
    {0, 0, 3377699720527872ULL, "0.00000268220901489", "0.00000126736058093",
     "s0000000000"},
    {1, 1, 3377822707026402ULL, NULL, NULL, NULL},
    {7, 7, 3384634692292344ULL, NULL, NULL, NULL},
    {12.758489, 38.788135, 3479273021651468ULL, NULL, NULL, NULL},
    {17.241510, 38.788135, 3481342659049484ULL, NULL, NULL, NULL},
};

static void test_known_points(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        const known_point *k = &known[i];
        uint64_t s = score_of(k->lon, k->lat);
        if (k->score || (k->lon == -180 && k->lat < 0)) assert_true(s == k->score);
        double xy[2];
        char buf[64];
        fl_geo_decode_score(s, xy);
        if (k->x) {
            human(xy[0], buf, sizeof(buf));
            assert_string_equal(buf, k->x);
            human(xy[1], buf, sizeof(buf));
            assert_string_equal(buf, k->y);
        }
        if (k->hash) {
            char h[12];
            fl_geo_hash_string(s, h);
            assert_string_equal(h, k->hash);
        }
    }
}

static void test_known_distances(void **state)
{
    (void)state;
    double p[2], c[2], e[2], ch[2], mu[2];
    char buf[64];
    fl_geo_decode_score(score_of(13.361389, 38.115556), p);
    fl_geo_decode_score(score_of(15.087269, 37.502669), c);
    double d = fl_geo_distance(p[0], p[1], c[0], c[1]);
    dist4(d, buf, sizeof(buf));
    assert_string_equal(buf, "166274.1516");
    dist4(d / 1000, buf, sizeof(buf));
    assert_string_equal(buf, "166.2742");
    dist4(d / 1609.34, buf, sizeof(buf));
    assert_string_equal(buf, "103.3182");
    /* STOREDIST of GEORADIUS Sicily 15 37 200 km: the full doubles. */
    snprintf(buf, sizeof(buf), "%.17g", fl_geo_distance(15, 37, c[0], c[1]) / 1000);
    assert_string_equal(buf, "56.441257870158204");
    snprintf(buf, sizeof(buf), "%.17g", fl_geo_distance(15, 37, p[0], p[1]) / 1000);
    assert_string_equal(buf, "190.44242984775784");
    fl_geo_decode_score(score_of(-73.9857, 40.7484), e);
    fl_geo_decode_score(score_of(-87.6298, 41.8781), ch);
    fl_geo_decode_score(score_of(11.5820, 48.1351), mu);
    dist4(fl_geo_distance(e[0], e[1], ch[0], ch[1]) / 1609.34, buf, sizeof(buf));
    assert_string_equal(buf, "711.8118");
    dist4(fl_geo_distance(e[0], e[1], ch[0], ch[1]), buf, sizeof(buf));
    assert_string_equal(buf, "1145547.1411");
    dist4(fl_geo_distance(e[0], e[1], mu[0], mu[1]) / 0.3048, buf, sizeof(buf));
    assert_string_equal(buf, "21281736.3121");
    dist4(fl_geo_distance(e[0], e[1], e[0], e[1]), buf, sizeof(buf));
    assert_string_equal(buf, "0.0000");
}

static void test_limits(void **state)
{
    (void)state;
    assert_true(fl_geo_coords_valid(180, 85.05112878));
    assert_true(fl_geo_coords_valid(-180, -85.05112878));
    assert_true(fl_geo_coords_valid(0, 0));
    assert_false(fl_geo_coords_valid(180.0000001, 0));
    assert_false(fl_geo_coords_valid(-180.0000001, 0));
    assert_false(fl_geo_coords_valid(0, 85.051128781));
    assert_false(fl_geo_coords_valid(0, -86));
    assert_false(fl_geo_coords_valid(INFINITY, 0));
    /* Redis' step estimates: 0 -> 26, polar latitudes get coarser. */
    assert_int_equal(fl_geo_estimate_steps(0, 10), 26);
    assert_int_equal(fl_geo_estimate_steps(1000, 10), 14);
    assert_int_equal(fl_geo_estimate_steps(1000, 70), 13);
    assert_int_equal(fl_geo_estimate_steps(1000, -85), 12);
    assert_int_equal(fl_geo_estimate_steps(1e9, 0), 1);
    assert_int_equal(fl_geo_estimate_steps(INFINITY, 0), 1);
}

static void test_neighbours_wrap(void **state)
{
    (void)state;
    fl_geo_range lo, la;
    fl_geo_coord_ranges(&lo, &la);
    fl_geo_cell c, nb[8];
    /* A cell touching the antimeridian: its east neighbour is at -180. */
    assert_true(fl_geo_encode(&lo, &la, 179.99, 10, 10, &c));
    fl_geo_neighbours(c, nb);
    fl_geo_area a;
    assert_true(fl_geo_decode(&lo, &la, nb[2], &a));
    assert_true(a.lon.min == -180);
    assert_true(fl_geo_decode(&lo, &la, nb[3], &a));
    assert_true(a.lon.max < 179.99);
    /* North of the top row wraps to the bottom row, as in Redis. */
    assert_true(fl_geo_encode(&lo, &la, 0, 85.05, 8, &c));
    fl_geo_neighbours(c, nb);
    assert_true(fl_geo_decode(&lo, &la, nb[0], &a));
    assert_true(a.lat.min == FL_GEO_LAT_MIN);
}

/* Redis' cells for Palermo's GEORADIUSBYMEMBER 200 km: the unsorted reply
 * order was Palermo, edge1, Catania (cells in Redis' reading order). */
static void test_search_order_sicily(void **state)
{
    (void)state;
    fl_geoset *gs = fl_geoset_new(7);
    assert_non_null(gs);
    const char *names[] = {"Palermo", "Catania", "edge1", "edge2"};
    const double pts[4][2] = {{13.361389, 38.115556}, {15.087269, 37.502669},
                              {12.758489, 38.788135}, {17.241510, 38.788135}};
    for (int i = 0; i < 4; i++) {
        int out;
        assert_int_equal(fl_geoset_add(gs, names[i], strlen(names[i]),
                                       (double)score_of(pts[i][0], pts[i][1]), 0, &out), 0);
        assert_int_equal(out, FL_GEOSET_ADDED);
    }
    double xy[2];
    fl_geoset_point(gs, fl_geoset_find(gs, "Palermo", 7), xy);
    fl_geo_query q;
    memset(&q, 0, sizeof(q));
    q.shape = (fl_geo_shape){FL_GEO_CIRCLE, xy[0], xy[1], 200, 0, 0, 1000};
    q.want_dist = FL_GEO_DIST_EXACT;
    fl_geo_result r = {NULL, 0, 0};
    assert_int_equal(fl_geoset_search(gs, &q, &r), 0);
    assert_int_equal(r.n, 3);
    assert_memory_equal(r.v[0].m->name, "Palermo", 7);
    assert_memory_equal(r.v[1].m->name, "edge1", 5);
    assert_memory_equal(r.v[2].m->name, "Catania", 7);
    char buf[32];
    dist4(r.v[1].dist / 1000, buf, sizeof(buf));
    assert_string_equal(buf, "91.4007");
    /* BYBOX 400x400 km from 15,37 ASC: edge2 just before edge1. */
    q.shape = (fl_geo_shape){FL_GEO_BOX, 15, 37, 0, 400, 400, 1000};
    q.sort = FL_GEO_SORT_ASC;
    assert_int_equal(fl_geoset_search(gs, &q, &r), 0);
    assert_int_equal(r.n, 4);
    assert_memory_equal(r.v[2].m->name, "edge2", 5);
    dist4(r.v[2].dist / 1000, buf, sizeof(buf));
    assert_string_equal(buf, "279.7403");
    dist4(r.v[3].dist / 1000, buf, sizeof(buf));
    assert_string_equal(buf, "279.7405");
    fl_geo_result_free(&r);
    fl_geoset_free(gs);
}

/* ---- filters never contradict Redis' exact test ---- */

static fl_geo_shape random_shape(void)
{
    static const double centres[][2] = {{-73.9857, 40.7484}, {179.99, -16.5},
        {-179.995, 65}, {20, 84.9}, {0, 0}, {-45, -84.99}, {13.36, 38.11}};
    const double *c = centres[rnd() % 7];
    fl_geo_shape s;
    memset(&s, 0, sizeof(s));
    s.lon = c[0] + gauss(0.01);
    s.lat = c[1] + gauss(0.01);
    if (s.lon > 180) s.lon = 180;
    if (s.lon < -180) s.lon = -180;
    if (s.lat > FL_GEO_LAT_MAX) s.lat = FL_GEO_LAT_MAX;
    if (s.lat < FL_GEO_LAT_MIN) s.lat = FL_GEO_LAT_MIN;
    double scale = pow(10, urand(0, 6.5)); /* 1 m .. 3000 km */
    static const double units[] = {1, 1000, 0.3048, 1609.34};
    s.conversion = units[rnd() % 4];
    if (rnd() % 2) {
        s.type = FL_GEO_CIRCLE;
        s.radius = scale / s.conversion;
    } else {
        s.type = FL_GEO_BOX;
        s.width = scale * urand(0.2, 2) / s.conversion;
        s.height = scale * urand(0.2, 2) / s.conversion;
    }
    return s;
}

/* A random stored point near the shape's edge (or anywhere nearby). */
static uint64_t random_score_near(const fl_geo_shape *s)
{
    double r_m = s->type == FL_GEO_CIRCLE ? s->radius * s->conversion
                                          : fmax(s->width, s->height) * s->conversion / 2;
    double deg = r_m / 111000.0 * urand(0.5, 1.6);
    double ang = urand(0, 6.283185307179586);
    double lat = s->lat + deg * sin(ang);
    double lon = s->lon + deg * cos(ang) / fmax(0.05, cos(s->lat * 0.017453292519943295));
    while (lon > 180) lon -= 360;
    while (lon < -180) lon += 360;
    if (lat > FL_GEO_LAT_MAX) lat = FL_GEO_LAT_MAX;
    if (lat < FL_GEO_LAT_MIN) lat = FL_GEO_LAT_MIN;
    return score_of(lon, lat);
}

static void test_filter_point_sound(void **state)
{
    (void)state;
    long decided = 0, total = 0;
    for (int t = 0; t < 300; t++) {
        fl_geo_shape s = random_shape();
        fl_geo_filter f;
        fl_geo_filter_init(&f, &s);
        for (int i = 0; i < 2000; i++) {
            double xy[2], d, ab[2];
            fl_geo_decode_score(random_score_near(&s), xy);
            int in = fl_geo_in_shape(&s, xy[0], xy[1], &d);
            int cls = fl_geo_filter_point(&f, xy[0], xy[1], ab);
            total++;
            if (cls == FL_GEO_IN) assert_true(in);
            if (cls == FL_GEO_OUT) assert_false(in);
            decided += cls != FL_GEO_UNSURE;
            /* The bounds bracket Redis' distance (which itself carries
             * about 1e-9 m of rounding from degrees-to-radians). */
            double exact = fl_geo_distance(s.lon, s.lat, xy[0], xy[1]);
            double slack = 1e-7 + 1e-12 * exact;
            assert_true(2 * FL_GEO_EARTH_RADIUS_M * asin(sqrt(ab[0])) <= exact + slack);
            assert_true(2 * FL_GEO_EARTH_RADIUS_M * asin(sqrt(fmin(ab[1], 1))) >= exact - slack);
            /* Centre terms cached: bit-identical distance. */
            assert_true(fl_geo_filter_distance(&f, xy[0], xy[1]) == exact);
        }
    }
    /* The filter must decide the vast majority of points. */
    assert_true(decided > total * 9 / 10);
}

static void test_filter_area_sound(void **state)
{
    (void)state;
    fl_geo_range lo, la;
    fl_geo_coord_ranges(&lo, &la);
    for (int t = 0; t < 300; t++) {
        fl_geo_shape s = random_shape();
        fl_geo_filter f;
        fl_geo_filter_init(&f, &s);
        for (int i = 0; i < 200; i++) {
            uint64_t g = random_score_near(&s);
            unsigned step = 8 + (unsigned)(rnd() % 19);
            fl_geo_cell c = {g >> (52 - 2 * step), step};
            fl_geo_area a;
            assert_true(fl_geo_decode(&lo, &la, c, &a));
            int cls = fl_geo_filter_area(&f, &a);
            if (cls == FL_GEO_UNSURE) continue;
            uint64_t base = fl_geo_align52(c), span = 1ULL << (52 - 2 * step);
            for (int k = 0; k < 20; k++) {
                double xy[2], d;
                fl_geo_decode_score(base + rnd() % span, xy);
                assert_int_equal(fl_geo_in_shape(&s, xy[0], xy[1], &d), cls == FL_GEO_IN);
            }
        }
    }
}

/* ---- the member hash ---- */

static void make_name(int i, char *out, size_t *len)
{
    /* Varied lengths, including empty names and NUL bytes. */
    size_t n = (size_t)(i % 37);
    for (size_t k = 0; k < n; k++) out[k] = (char)("ab\0z9"[(i + (int)k) % 5] + (k % 3));
    if (n > 4) snprintf(out, n, "%d", i);
    *len = n;
}

static int in_spans(const fl_geo_span *sp, size_t n, uint64_t score)
{
    for (size_t i = 0; i < n; i++)
        if (score >= sp[i].lo && score < sp[i].hi) return 1;
    return 0;
}

/* A box's spans hold every point the box holds (corners, edges, the
 * antimeridian and the world's edges included), sorted and disjoint; for
 * a small box they are small. */
static void test_box_spans(void **state)
{
    (void)state;
    for (int t = 0; t < 20000; t++) {
        double size = fmin(pow(10, urand(-5, 2.6)), 359.9); /* 1 m to the world */
        double box[4];
        box[0] = urand(-180, 180);
        box[1] = urand(FL_GEO_LAT_MIN, FL_GEO_LAT_MAX);
        box[2] = box[0] + size;
        box[3] = fmin(box[1] + size / 2, FL_GEO_LAT_MAX);
        if (box[2] > 180) box[2] -= 360;            /* across the antimeridian */
        if (t % 50 == 0) box[2] = 180;             /* on the world's edges */
        if (t % 70 == 0) box[3] = FL_GEO_LAT_MAX;
        if (t % 90 == 0) box[0] = -180;
        fl_geo_span sp[FL_GEO_BOX_SPANS];
        size_t n = fl_geo_box_spans(box, sp);
        assert_true(n >= 1 && n <= FL_GEO_BOX_SPANS);
        for (size_t i = 0; i < n; i++) {
            assert_true(sp[i].lo < sp[i].hi);
            if (i) assert_true(sp[i - 1].hi < sp[i].lo);
        }
        double corners[4][2] = {{box[0], box[1]}, {box[2], box[3]},
                                {box[0], box[3]}, {box[2], box[1]}};
        for (int k = 0; k < 4; k++)
            if (!in_spans(sp, n, score_of(corners[k][0], corners[k][1])))
                fail_msg("box %.9f,%.9f,%.9f,%.9f: corner %d outside its spans",
                         box[0], box[1], box[2], box[3], k);
        for (int k = 0; k < 50; k++) {
            double lon = box[0] <= box[2] ? urand(box[0], box[2])
                                          : urand(box[0], box[2] + 360);
            if (lon > 180) lon -= 360;
            double lat = urand(box[1], box[3]);
            assert_true(fl_geo_box_contains(box, lon, lat));
            if (!in_spans(sp, n, score_of(lon, lat)))
                fail_msg("box %.9f,%.9f,%.9f,%.9f: %.9f,%.9f outside its spans",
                         box[0], box[1], box[2], box[3], lon, lat);
        }
    }
    /* The world's upper edges: raw scores (past every cell) and the keys
     * the fleet indexes there (pulled 1e-7 degrees inside), for boxes
     * whose corners lie on or within rounding of the edge. */
    const double e180 = 180, below = nextafter(180, 0), top = FL_GEO_LAT_MAX;
    const double edge_boxes[][4] = {
        {180, 0, 180, 10}, {below, 0, 180, 10}, {170, 85.05112878, 180, 85.05112878},
        {180, -20, -170, -10}, {-10, 80, 10, 85.05112878}, {below, 80, below, top},
    };
    for (size_t b = 0; b < sizeof(edge_boxes) / sizeof(edge_boxes[0]); b++) {
        const double *box = edge_boxes[b];
        fl_geo_span sp[FL_GEO_BOX_SPANS];
        size_t n = fl_geo_box_spans(box, sp);
        double pts[][2] = {{box[0], box[1]}, {box[2], box[3]}, {box[0], box[3]},
                           {box[2], box[1]}, {e180, box[1]}, {box[0], top}};
        for (size_t k = 0; k < sizeof(pts) / sizeof(pts[0]); k++) {
            if (!fl_geo_box_contains(box, pts[k][0], pts[k][1])) continue;
            double x, y;
            fl__index_point(pts[k][0], pts[k][1], &x, &y);
            if (!in_spans(sp, n, score_of(pts[k][0], pts[k][1])) ||
                !in_spans(sp, n, score_of(x, y)))
                fail_msg("edge box %zu: %.17g,%.17g (raw or as indexed) outside its spans",
                         b, pts[k][0], pts[k][1]);
        }
    }
    /* 500 m around Times Square: the spans hold no point 5 km away */
    const double small[4] = {-73.988, 40.756, -73.982, 40.760};
    fl_geo_span sp[FL_GEO_BOX_SPANS];
    size_t n = fl_geo_box_spans(small, sp);
    assert_false(in_spans(sp, n, score_of(-73.93, 40.756)));
    assert_false(in_spans(sp, n, score_of(-73.985, 40.80)));
}

static void test_geoset_churn(void **state)
{
    (void)state;
    enum { N = 30000 };
    fl_geoset *gs = fl_geoset_new(42);
    assert_non_null(gs);
    static char present[N];
    memset(present, 0, sizeof(present));
    size_t card = 0;
    for (int round = 0; round < 6; round++) {
        for (int j = 0; j < N; j++) {
            int i = (int)(rnd() % N);
            char name[64];
            size_t len;
            make_name(i, name, &len);
            int out;
            if (rnd() % 3) {
                assert_int_equal(fl_geoset_add(gs, name, len, (double)(rnd() % 1000), 0, &out), 0);
                if (!present[i]) {
                    /* Two indexes may share a name; count names, not ids. */
                    if (out == FL_GEOSET_ADDED) card++;
                }
                present[i] = 1;
            } else {
                card -= (size_t)fl_geoset_remove(gs, name, len);
                present[i] = 0;
            }
        }
        for (int i = 0; i < N; i++) {
            char name[64];
            size_t len;
            make_name(i, name, &len);
            const fl_zmember *m = fl_geoset_find(gs, name, len);
            if (m) {
                assert_int_equal(m->len, len);
                assert_memory_equal(m->name, name, len);
            }
        }
        assert_int_equal(fl_zindex_check(fl_geoset_index(gs)), 0);
        assert_int_equal(fl_zindex_count(fl_geoset_index(gs)), fl_geoset_card(gs));
        assert_true(fl_geoset_bytes(gs) > fl_geoset_card(gs) * 16);
    }
    (void)card;
    /* Removing everything empties the set and shrinks the table. */
    for (int i = 0; i < N; i++) {
        char name[64];
        size_t len;
        make_name(i, name, &len);
        (void)fl_geoset_remove(gs, name, len);
    }
    assert_int_equal(fl_geoset_card(gs), 0);
    fl_geoset_free(gs);
}

/* Adds, updates, removes and finds checked one by one against a reference
 * while the member hash grows (incrementally, with an old table being
 * emptied) and shrinks: every answer must be the reference's. */
static void test_geoset_growth_reference(void **state)
{
    (void)state;
    enum { N = 60000, OPS = 400000 };
    fl_geoset *gs = fl_geoset_new(7);
    assert_non_null(gs);
    static int score[N]; /* -1: absent */
    for (int i = 0; i < N; i++) score[i] = -1;
    size_t card = 0;
    for (int op = 0; op < OPS; op++) {
        /* Mostly inserts in the first half, mostly removals after. */
        int grow_phase = op < OPS / 2;
        int i = (int)(rnd() % N);
        char name[32];
        int len = snprintf(name, sizeof(name), "m:%d", i);
        unsigned r = (unsigned)(rnd() % 10);
        if (r < (grow_phase ? 7u : 3u)) {
            int sc = (int)(rnd() % 4);
            int out;
            assert_int_equal(fl_geoset_add(gs, name, (size_t)len, sc, 0, &out), 0);
            int want = score[i] < 0 ? FL_GEOSET_ADDED
                     : score[i] == sc ? FL_GEOSET_NOP : FL_GEOSET_UPDATED;
            assert_int_equal(out, want);
            if (score[i] < 0) card++;
            score[i] = sc;
        } else if (r < 9) {
            assert_int_equal(fl_geoset_remove(gs, name, (size_t)len), score[i] >= 0);
            if (score[i] >= 0) card--;
            score[i] = -1;
        } else {
            const fl_zmember *m = fl_geoset_find(gs, name, (size_t)len);
            if (score[i] < 0) {
                assert_null(m);
            } else {
                assert_non_null(m);
                assert_int_equal(m->score, (uint64_t)score[i]);
            }
        }
        assert_int_equal(fl_geoset_card(gs), card);
        if (op % 50000 == 0) {
            for (int k = 0; k < N; k++) {
                len = snprintf(name, sizeof(name), "m:%d", k);
                const fl_zmember *m = fl_geoset_find(gs, name, (size_t)len);
                assert_int_equal(m != NULL, score[k] >= 0);
            }
            assert_int_equal(fl_zindex_count(fl_geoset_index(gs)), card);
        }
    }
    fl_geoset_free(gs);
}

static void test_geoset_flags(void **state)
{
    (void)state;
    fl_geoset *gs = fl_geoset_new(1);
    int out;
    assert_int_equal(fl_geoset_add(gs, "a", 1, 10, FL_GEOSET_XX, &out), 0);
    assert_int_equal(out, FL_GEOSET_NOP);
    assert_null(fl_geoset_find(gs, "a", 1));
    assert_int_equal(fl_geoset_add(gs, "a", 1, 10, FL_GEOSET_NX, &out), 0);
    assert_int_equal(out, FL_GEOSET_ADDED);
    assert_int_equal(fl_geoset_add(gs, "a", 1, 11, FL_GEOSET_NX, &out), 0);
    assert_int_equal(out, FL_GEOSET_NOP);
    assert_int_equal(fl_geoset_add(gs, "a", 1, 10, 0, &out), 0);
    assert_int_equal(out, FL_GEOSET_NOP); /* same score */
    assert_int_equal(fl_geoset_add(gs, "a", 1, 12, FL_GEOSET_XX, &out), 0);
    assert_int_equal(out, FL_GEOSET_UPDATED);
    assert_true(fl_geoset_value(gs, fl_geoset_find(gs, "a", 1)->score) == 12);
    assert_int_equal(fl_geoset_add(gs, "b", 1, 1.5, 0, &out), -EINVAL);
    assert_int_equal(fl_geoset_add(gs, "b", 1, -1, 0, &out), -EINVAL);
    assert_int_equal(fl_geoset_add(gs, "b", 1, 5, 0, &out), 0);
    size_t rank;
    assert_int_equal(fl_geoset_rank(gs, "b", 1, &rank), 0);
    assert_int_equal(rank, 0);
    assert_int_equal(fl_geoset_rank(gs, "a", 1, &rank), 0);
    assert_int_equal(rank, 1);
    assert_int_equal(fl_geoset_rank(gs, "c", 1, &rank), -ENOENT);
    /* seek_value: first score >= / > v. */
    fl_zit it;
    uint64_t sc;
    fl_zmember *m;
    fl_geoset_seek_value(gs, 5, 0, &it);
    assert_true(fl_zit_next(&it, &sc, &m) && sc == 5);
    fl_geoset_seek_value(gs, 5, 1, &it);
    assert_true(fl_zit_next(&it, &sc, &m) && sc == 12);
    fl_geoset_seek_value(gs, 4.5, 0, &it);
    assert_true(fl_zit_next(&it, &sc, &m) && sc == 5);
    fl_geoset_seek_value(gs, -INFINITY, 0, &it);
    assert_true(fl_zit_next(&it, &sc, &m) && sc == 5);
    fl_geoset_seek_value(gs, INFINITY, 0, &it);
    assert_false(fl_zit_next(&it, &sc, &m));
    assert_int_equal(fl_geoset_remove(gs, "a", 1), 1);
    assert_int_equal(fl_geoset_remove(gs, "a", 1), 0);
    assert_int_equal(fl_geoset_card(gs), 1);
    fl_geoset_free(gs);

    /* A STOREDIST set holds doubles; bit patterns keep their order. */
    gs = fl_geoset_new_kind(2, FL_GEOSET_DOUBLE);
    assert_int_equal(fl_geoset_kind(gs), FL_GEOSET_DOUBLE);
    assert_int_equal(fl_geoset_add(gs, "x", 1, 190.44242984775784, 0, &out), 0);
    assert_int_equal(fl_geoset_add(gs, "y", 1, 56.441257870158204, 0, &out), 0);
    assert_int_equal(fl_geoset_add(gs, "z", 1, 0.0, 0, &out), 0);
    assert_int_equal(fl_geoset_rank(gs, "y", 1, &rank), 0);
    assert_int_equal(rank, 1);
    assert_true(fl_geoset_value(gs, fl_geoset_find(gs, "y", 1)->score) == 56.441257870158204);
    assert_true(fl_geoset_geohash(gs, fl_geoset_find(gs, "x", 1)) == 190);
    fl_geoset_seek_value(gs, 56.441257870158204, 1, &it);
    assert_true(fl_zit_next(&it, &sc, &m) && m->name[0] == 'x');
    fl_geoset_free(gs);
}

/* ---- search against the naive reference ---- */

typedef struct ref_match {
    const fl_zmember *m;
    double dist;
} ref_match;

/* Redis' search done the slow way: its cells in its order, and in each
 * every stored member with a score in the cell's range, tested exactly. */
static size_t naive_search(const fl_geoset *gs, const fl_geo_shape *s,
                           size_t any_limit, ref_match *out)
{
    fl_geo_cell cells[9];
    int order[9];
    int nc = fl_geo_search_cells(s, cells, order);
    size_t n = 0;
    for (int i = 0; i < nc; i++) {
        fl_geo_cell c = cells[order[i]];
        uint64_t lo = fl_geo_align52(c);
        c.bits++;
        uint64_t hi = fl_geo_align52(c);
        double dlo = (double)lo, dhi = (double)hi;
        fl_zit it;
        uint64_t sc;
        fl_zmember *m;
        fl_zindex_seek_rank(fl_geoset_index(gs), 0, &it);
        while (fl_zit_next(&it, &sc, &m)) {
            double v = fl_geoset_value(gs, sc);
            if (!(v >= dlo && v < dhi)) continue;
            double xy[2], d;
            fl_geoset_point(gs, m, xy);
            if (!fl_geo_in_shape(s, xy[0], xy[1], &d)) continue;
            out[n].m = m;
            out[n].dist = d;
            n++;
            if (any_limit && n >= any_limit) return n;
        }
    }
    return n;
}

static void ref_stable_sort(ref_match *v, size_t n, int desc)
{
    for (size_t i = 1; i < n; i++) {
        ref_match x = v[i];
        size_t j = i;
        while (j > 0 && (desc ? v[j - 1].dist < x.dist : v[j - 1].dist > x.dist)) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

static fl_geoset *random_set(size_t n, double (*centres)[2], int ncent)
{
    fl_geoset *gs = fl_geoset_new(99);
    assert_non_null(gs);
    double pool[64][2];
    int npool = 0;
    for (size_t i = 0; i < n; i++) {
        const double *c = centres[rnd() % (uint64_t)ncent];
        double lon, lat;
        if (npool && rnd() % 5 == 0) {
            /* Repeated positions: equal distances, Redis' tie orders. */
            const double *p = pool[rnd() % (uint64_t)npool];
            lon = p[0];
            lat = p[1];
        } else {
            lon = c[0] + gauss(0.05);
            lat = c[1] + gauss(0.05);
            if (lon > 180) lon -= 360;
            if (lon < -180) lon += 360;
            if (lat > FL_GEO_LAT_MAX) lat = FL_GEO_LAT_MAX;
            if (lat < FL_GEO_LAT_MIN) lat = FL_GEO_LAT_MIN;
            if (npool < 64) {
                pool[npool][0] = lon;
                pool[npool][1] = lat;
                npool++;
            }
        }
        char name[32];
        int len = snprintf(name, sizeof(name), "m%zu", i);
        int out;
        assert_int_equal(fl_geoset_add(gs, name, (size_t)len,
                                       (double)score_of(lon, lat), 0, &out), 0);
    }
    return gs;
}

static void check_query(const fl_geoset *gs, const fl_geo_query *q,
                        ref_match *ref, ref_match *tmp)
{
    fl_geo_result r = {NULL, 0, 0};
    assert_int_equal(fl_geoset_search(gs, q, &r), 0);
    size_t count = (size_t)q->count;
    int sort = q->sort;
    if (count && sort == FL_GEO_SORT_NONE && !q->any) sort = FL_GEO_SORT_ASC;
    size_t n = naive_search(gs, &q->shape, q->any ? count : 0, ref);
    if (sort != FL_GEO_SORT_NONE) ref_stable_sort(ref, n, sort == FL_GEO_SORT_DESC);
    size_t want = count && count < n ? count : n;
    assert_int_equal(r.n, want);
    int partial = count && count < n; /* Redis' pqsort: ties may move */
    for (size_t i = 0; i < want; i++) {
        if (!partial) assert_ptr_equal(r.v[i].m, ref[i].m);
        if (q->want_dist == FL_GEO_DIST_EXACT) assert_true(r.v[i].dist == ref[i].dist);
        if (q->want_dist == FL_GEO_DIST_PRINT) {
            /* May be approximate, but must print like Redis' value. */
            char a[64], b[64];
            dist4(r.v[i].dist / q->shape.conversion, a, sizeof(a));
            dist4(ref[i].dist / q->shape.conversion, b, sizeof(b));
            assert_string_equal(a, b);
        }
    }
    if (partial) {
        /* Same multiset: each returned member is a match at its rank's
         * distance, and none is returned twice. */
        memcpy(tmp, ref, n * sizeof(*ref));
        for (size_t i = 0; i < want; i++) {
            size_t j = 0;
            while (j < n && tmp[j].m != r.v[i].m) j++;
            assert_true(j < n);
            assert_true(tmp[j].dist == ref[i].dist);
            tmp[j].m = NULL;
        }
    }
    fl_geo_result_free(&r);
}

static void test_search_vs_naive(void **state)
{
    (void)state;
    double centres[][2] = {{-73.9857, 40.7484}, {11.582, 48.1351}, {179.97, -16.5},
                           {-179.98, 60}, {20, 84.95}, {0, 0}};
    enum { N = 4000 };
    fl_geoset *gs = random_set(N, centres, 6);
    ref_match *ref = malloc(N * sizeof(*ref)), *tmp = malloc(N * sizeof(*tmp));
    assert_non_null(ref);
    assert_non_null(tmp);
    static const long long counts[] = {1, 2, 3, 5, 10, 50, 100000};
    for (int t = 0; t < 400; t++) {
        fl_geo_query q;
        memset(&q, 0, sizeof(q));
        const double *c = centres[rnd() % 6];
        double r_m = pow(10, urand(0, 6.3));
        q.shape.lon = c[0] + gauss(0.05);
        q.shape.lat = c[1] + gauss(0.05);
        if (q.shape.lon > 180) q.shape.lon -= 360;
        if (q.shape.lon < -180) q.shape.lon += 360;
        if (q.shape.lat > FL_GEO_LAT_MAX) q.shape.lat = FL_GEO_LAT_MAX;
        q.shape.conversion = rnd() % 2 ? 1 : 1000;
        if (rnd() % 2) {
            q.shape.type = FL_GEO_CIRCLE;
            q.shape.radius = r_m / q.shape.conversion;
        } else {
            q.shape.type = FL_GEO_BOX;
            q.shape.width = r_m * urand(0.3, 3) / q.shape.conversion;
            q.shape.height = r_m * urand(0.3, 3) / q.shape.conversion;
        }
        q.sort = (int)(rnd() % 3);
        if (rnd() % 2) q.count = counts[rnd() % 7];
        q.any = q.count && rnd() % 3 == 0;
        q.want_dist = (int)(rnd() % 3);
        check_query(gs, &q, ref, tmp);
    }
    free(ref);
    free(tmp);
    fl_geoset_free(gs);
}

/* Dense data, 1 km queries: the shape the search is optimised for. */
static void test_search_dense(void **state)
{
    (void)state;
    double centres[][2] = {{-73.98, 40.75}};
    enum { N = 20000 };
    fl_geoset *gs = random_set(N, centres, 1);
    ref_match *ref = malloc(N * sizeof(*ref)), *tmp = malloc(N * sizeof(*tmp));
    assert_non_null(ref);
    assert_non_null(tmp);
    for (int t = 0; t < 60; t++) {
        fl_geo_query q;
        memset(&q, 0, sizeof(q));
        q.shape = (fl_geo_shape){FL_GEO_CIRCLE, -73.98 + gauss(0.03), 40.75 + gauss(0.03),
                                 1, 0, 0, 1000};
        q.sort = (int)(rnd() % 3);
        q.count = rnd() % 2 ? 10 : 0;
        q.want_dist = (int)(rnd() % 3);
        check_query(gs, &q, ref, tmp);
    }
    free(ref);
    free(tmp);
    fl_geoset_free(gs);
}

/* A STOREDIST set searched like a geo key: scores decode near -180,-85. */
static void test_search_double_set(void **state)
{
    (void)state;
    fl_geoset *gs = fl_geoset_new_kind(5, FL_GEOSET_DOUBLE);
    for (int i = 0; i < 500; i++) {
        char name[16];
        int len = snprintf(name, sizeof(name), "d%d", i);
        int out;
        assert_int_equal(fl_geoset_add(gs, name, (size_t)len, urand(0, 5000), 0, &out), 0);
    }
    ref_match *ref = malloc(500 * sizeof(*ref)), *tmp = malloc(500 * sizeof(*tmp));
    double xy[2];
    fl_geo_decode_score(0, xy);
    for (int t = 0; t < 50; t++) {
        fl_geo_query q;
        memset(&q, 0, sizeof(q));
        q.shape = (fl_geo_shape){FL_GEO_CIRCLE, xy[0], xy[1], urand(0, 100), 0, 0, 1000};
        q.sort = (int)(rnd() % 3);
        q.want_dist = 1 + (int)(rnd() % 2);
        check_query(gs, &q, ref, tmp);
    }
    free(ref);
    free(tmp);
    fl_geoset_free(gs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_points),
        cmocka_unit_test(test_known_distances),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_neighbours_wrap),
        cmocka_unit_test(test_search_order_sicily),
        cmocka_unit_test(test_filter_point_sound),
        cmocka_unit_test(test_filter_area_sound),
        cmocka_unit_test(test_box_spans),
        cmocka_unit_test(test_geoset_churn),
        cmocka_unit_test(test_geoset_growth_reference),
        cmocka_unit_test(test_geoset_flags),
        cmocka_unit_test(test_search_vs_naive),
        cmocka_unit_test(test_search_dense),
        cmocka_unit_test(test_search_double_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
