/*
 * test_polygon.c - point in polygon: squares, holes, multipolygons,
 * concave shapes, validation of rings, and a brute-force comparison with
 * an independent winding-number test on random polygons.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "geo/polygon.h"

static void square(double *xy, double x0, double y0, double x1, double y1)
{
    double pts[10] = {x0, y0, x1, y0, x1, y1, x0, y1, x0, y0};
    for (int i = 0; i < 10; i++) xy[i] = pts[i];
}

static void test_square_with_hole(void **state)
{
    (void)state;
    fl_shape s;
    fl_shape_init(&s);
    double outer[10], hole[10];
    square(outer, 0, 0, 10, 10);
    square(hole, 4, 4, 6, 6);
    fl_shape_begin_polygon(&s);
    assert_int_equal(fl_shape_add_ring(&s, outer, 5), 0);
    assert_int_equal(fl_shape_add_ring(&s, hole, 5), 0);
    assert_true(fl_shape_contains(&s, 1, 1));
    assert_true(fl_shape_contains(&s, 9.9, 5));
    assert_false(fl_shape_contains(&s, 5, 5));   /* in the hole */
    assert_false(fl_shape_contains(&s, 11, 5));
    assert_false(fl_shape_contains(&s, -0.1, 5));
    assert_int_equal((int)s.points, 10);
    assert_true(s.bbox[0] == 0 && s.bbox[3] == 10);
    fl_shape_free(&s);
}

static void test_multipolygon_and_concave(void **state)
{
    (void)state;
    fl_shape s;
    fl_shape_init(&s);
    double a[10], b[10];
    square(a, 0, 0, 1, 1);
    square(b, 20, 20, 21, 21);
    fl_shape_begin_polygon(&s);
    assert_int_equal(fl_shape_add_ring(&s, a, 5), 0);
    fl_shape_begin_polygon(&s);
    assert_int_equal(fl_shape_add_ring(&s, b, 5), 0);
    /* A U shape: the notch between the arms is outside. */
    double u[18] = {30, 0, 33, 0, 33, 3, 32, 3, 32, 1, 31, 1, 31, 3, 30, 3, 30, 0};
    fl_shape_begin_polygon(&s);
    assert_int_equal(fl_shape_add_ring(&s, u, 9), 0);
    assert_true(fl_shape_contains(&s, 0.5, 0.5));
    assert_true(fl_shape_contains(&s, 20.5, 20.5));
    assert_false(fl_shape_contains(&s, 10, 10));
    assert_true(fl_shape_contains(&s, 30.5, 2));
    assert_false(fl_shape_contains(&s, 31.5, 2)); /* the notch */
    assert_true(fl_shape_contains(&s, 31.5, 0.5));
    fl_shape_free(&s);
}

static void test_invalid_rings(void **state)
{
    (void)state;
    fl_shape s;
    fl_shape_init(&s);
    double open_ring[8] = {0, 0, 1, 0, 1, 1, 0, 1};
    double sq[10];
    square(sq, 0, 0, 1, 1);
    assert_int_equal(fl_shape_add_ring(&s, sq, 5), -EINVAL); /* no polygon */
    fl_shape_begin_polygon(&s);
    assert_int_equal(fl_shape_add_ring(&s, open_ring, 4), -EINVAL);
    assert_int_equal(fl_shape_add_ring(&s, sq, 3), -EINVAL);
    double bad[10];
    square(bad, 0, 0, 1, 100); /* latitude out of range */
    assert_int_equal(fl_shape_add_ring(&s, bad, 5), -EINVAL);
    square(bad, 0, 0, NAN, 1);
    assert_int_equal(fl_shape_add_ring(&s, bad, 5), -EINVAL);
    assert_int_equal((int)s.points, 0);
    fl_shape_free(&s);
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static double rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Winding number (Sunday's algorithm): nonzero inside, for simple rings
 * the same answer as even-odd. */
static int winding(const double *xy, size_t n, double x, double y)
{
    int wn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        double x0 = xy[2 * i], y0 = xy[2 * i + 1];
        double x1 = xy[2 * i + 2], y1 = xy[2 * i + 3];
        double cross = (x1 - x0) * (y - y0) - (x - x0) * (y1 - y0);
        if (y0 <= y) {
            if (y1 > y && cross > 0) wn++;
        } else if (y1 <= y && cross < 0) {
            wn--;
        }
    }
    return wn != 0;
}

/* Star-shaped random polygons (simple by construction) against the
 * winding number at random points. */
static void test_random_star_polygons(void **state)
{
    (void)state;
    for (int round = 0; round < 200; round++) {
        size_t k = 3 + (size_t)(rnd() * 30);
        double xy[2 * 40];
        for (size_t i = 0; i < k; i++) {
            double ang = 2 * M_PI * (double)i / (double)k;
            double r = 0.2 + rnd();
            xy[2 * i] = 10 + r * cos(ang);
            xy[2 * i + 1] = 20 + r * sin(ang);
        }
        xy[2 * k] = xy[0];
        xy[2 * k + 1] = xy[1];
        fl_shape s;
        fl_shape_init(&s);
        fl_shape_begin_polygon(&s);
        assert_int_equal(fl_shape_add_ring(&s, xy, k + 1), 0);
        for (int p = 0; p < 200; p++) {
            double x = 8.5 + 3 * rnd(), y = 18.5 + 3 * rnd();
            assert_int_equal(fl_shape_contains(&s, x, y), winding(xy, k + 1, x, y));
        }
        fl_shape_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_square_with_hole),
        cmocka_unit_test(test_multipolygon_and_concave),
        cmocka_unit_test(test_invalid_rings),
        cmocka_unit_test(test_random_star_polygons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
