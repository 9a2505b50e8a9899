/*
 * test_hist.c - the latency histogram keeps its promises (metrics/hist.h):
 * quantiles within 2% of the exact nearest-rank quantile on distributions
 * that span nanoseconds to seconds; bucket edges contiguous, monotone, one
 * at every power of two; fl_hist_count_le exact at powers of two (what the
 * Prometheus histogram relies on); huge values clamped; and a reader on
 * another thread never sees counts go backwards while the owner records.
 *
 * Samples come from a fixed-seed generator so a failure replays exactly.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/hist.h"

#define NSAMPLES 100000
#define MAX_REL_ERR 0.02
#define NS_PER_S 1e9

static const double qs[] = {0.5, 0.9, 0.99, 0.999};

/* ---- deterministic samples ---- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64: tiny, fast, and good enough for test distributions. */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): never 0, so log() is safe. */
static double rng_unit(void)
{
    return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(void)
{
    /* Box-Muller; one of the pair is enough here. */
    return sqrt(-2.0 * log(rng_unit())) * cos(6.283185307179586 * rng_unit());
}

/* Durations are whole nanoseconds, at least 1 (a relative error needs a
 * nonzero truth). */
static uint64_t to_ns(double x)
{
    if (x < 1.0) return 1;
    if (x > 1e12) return (uint64_t)1e12;
    return (uint64_t)llround(x);
}

typedef uint64_t sampler(void);

static uint64_t sample_uniform(void) { return to_ns(rng_unit() * NS_PER_S); }

static uint64_t sample_exponential(void)
{
    return to_ns(-50e3 * log(rng_unit())); /* mean 50 us */
}

static uint64_t sample_lognormal(void)
{
    /* median 100 us, sigma 3: 1st..99th percentile ~ 90 ns .. 100 ms. */
    return to_ns(exp(log(100e3) + 3.0 * rng_normal()));
}

static uint64_t sample_bimodal(void)
{
    /* 90% fast path near 20 us, 10% slow path near 200 ms. */
    double median = rng_unit() < 0.9 ? 20e3 : 200e6;
    return to_ns(exp(log(median) + 0.3 * rng_normal()));
}

/* ---- exact reference ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank, as hist.c: the ceil(q*n)-th smallest, 1-based. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    double r = ceil(q * (double)n);
    size_t rank = r < 1.0 ? 1 : (size_t)r;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void check_distribution(const char *name, sampler *next, uint64_t seed)
{
    uint64_t *v = malloc(NSAMPLES * sizeof(*v));
    fl_hist *h = calloc(1, sizeof(*h));
    assert_non_null(v);
    assert_non_null(h);
    rng_state = seed;
    for (size_t i = 0; i < NSAMPLES; i++) {
        v[i] = next();
        fl_hist_record(h, v[i]);
    }
    qsort(v, NSAMPLES, sizeof(*v), cmp_u64);
    assert_int_equal(h->count, NSAMPLES);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        double exact = (double)exact_quantile(v, NSAMPLES, qs[i]);
        double got = fl_hist_quantile(h, qs[i]);
        double rel = fabs(got - exact) / exact;
        if (rel >= MAX_REL_ERR)
            fail_msg("%s q=%g: exact %.0f ns, histogram %.1f ns, error %.3f%%",
                     name, qs[i], exact, got, rel * 100);
    }
    free(h);
    free(v);
}

static void test_quantiles_uniform(void **state)
{
    (void)state;
    check_distribution("uniform", sample_uniform, 1);
}

static void test_quantiles_exponential(void **state)
{
    (void)state;
    check_distribution("exponential", sample_exponential, 2);
}

static void test_quantiles_lognormal(void **state)
{
    (void)state;
    check_distribution("lognormal", sample_lognormal, 3);
}

static void test_quantiles_bimodal(void **state)
{
    (void)state;
    check_distribution("bimodal", sample_bimodal, 4);
}

/* Every q of every small value: the one-wide buckets are exact. */
static void test_quantiles_small_exact(void **state)
{
    (void)state;
    for (uint64_t x = 1; x < 200; x++) {
        fl_hist h;
        memset(&h, 0, sizeof(h));
        fl_hist_record(&h, x);
        double got = fl_hist_quantile(&h, 0.5);
        if (x < 64) assert_true(got == (double)x);
        assert_true(fabs(got - (double)x) / (double)x < MAX_REL_ERR);
    }
}

static void test_quantile_edges(void **state)
{
    (void)state;
    fl_hist h;
    memset(&h, 0, sizeof(h));
    assert_true(fl_hist_quantile(&h, 0.5) == 0.0); /* empty */
    fl_hist_record(&h, 5);
    fl_hist_record(&h, 7);
    fl_hist_record(&h, 9);
    assert_true(fl_hist_quantile(&h, 0.0) == 5.0);
    assert_true(fl_hist_quantile(&h, -1.0) == 5.0);
    assert_true(fl_hist_quantile(&h, NAN) == 5.0);
    assert_true(fl_hist_quantile(&h, 0.34) == 7.0);
    assert_true(fl_hist_quantile(&h, 1.0) == 9.0);
    assert_true(fl_hist_quantile(&h, 2.0) == 9.0);
}

/* ---- bucket geometry ---- */

static void test_buckets_contiguous(void **state)
{
    (void)state;
    assert_int_equal(fl_hist_bucket_lo(0), 0);
    for (unsigned i = 0; i < FL_HIST_BUCKETS; i++) {
        uint64_t lo = fl_hist_bucket_lo(i), hi = fl_hist_bucket_hi(i);
        assert_true(lo < hi);
        assert_int_equal(fl_hist_index(lo), i);
        assert_int_equal(fl_hist_index(hi - 1), i);
        if (i + 1 < FL_HIST_BUCKETS)
            assert_int_equal(fl_hist_bucket_lo(i + 1), hi);
        /* The 2% promise: past the one-wide buckets, width <= lo / 32. */
        if (lo >= 2 * FL_HIST_SUB) assert_true((hi - lo) * FL_HIST_SUB <= lo);
    }
    assert_int_equal(fl_hist_bucket_hi(FL_HIST_BUCKETS - 1),
                     1ull << FL_HIST_MAX_EXP);
}

static void test_powers_of_two_are_edges(void **state)
{
    (void)state;
    for (unsigned k = 0; k < FL_HIST_MAX_EXP; k++) {
        uint64_t p = 1ull << k;
        unsigned i = fl_hist_index(p);
        assert_int_equal(fl_hist_bucket_lo(i), p);
        if (k > 0) assert_int_equal(fl_hist_bucket_hi(fl_hist_index(p - 1)), p);
    }
}

static void test_index_monotone(void **state)
{
    (void)state;
    unsigned prev = 0;
    for (uint64_t v = 0; v < (1u << 16); v++) {
        unsigned i = fl_hist_index(v);
        assert_true(i == prev || i == prev + 1);
        prev = i;
    }
    /* Sorted random values across the whole range. */
    uint64_t *v = malloc(NSAMPLES * sizeof(*v));
    assert_non_null(v);
    rng_state = 42;
    for (size_t k = 0; k < NSAMPLES; k++) v[k] = rng_next() >> (rng_next() % 64);
    qsort(v, NSAMPLES, sizeof(*v), cmp_u64);
    for (size_t k = 1; k < NSAMPLES; k++)
        assert_true(fl_hist_index(v[k - 1]) <= fl_hist_index(v[k]));
    free(v);
}

/* ---- count_le and clamping ---- */

static void test_count_le_exact_at_powers_of_two(void **state)
{
    (void)state;
    fl_hist *h = calloc(1, sizeof(*h));
    uint64_t *v = malloc(NSAMPLES * sizeof(*v));
    assert_non_null(h);
    assert_non_null(v);
    size_t n = 0;
    /* Values straddling every edge, then random ones. */
    for (unsigned k = 1; k < FL_HIST_MAX_EXP; k++) {
        uint64_t p = 1ull << k;
        v[n++] = p - 1;
        v[n++] = p;
        v[n++] = p + 1;
    }
    rng_state = 7;
    while (n < NSAMPLES) v[n++] = to_ns(exp(log(100e3) + 3.0 * rng_normal()));
    for (size_t i = 0; i < n; i++) fl_hist_record(h, v[i]);
    for (unsigned k = 1; k <= FL_HIST_MAX_EXP; k++) {
        uint64_t bound = (1ull << k) - 1, want = 0;
        for (size_t i = 0; i < n; i++) want += v[i] <= bound;
        assert_int_equal(fl_hist_count_le(h, bound), want);
    }
    assert_int_equal(fl_hist_count_le(h, UINT64_MAX), n);
    free(v);
    free(h);
}

static void test_clamp(void **state)
{
    (void)state;
    fl_hist h;
    memset(&h, 0, sizeof(h));
    uint64_t limit = 1ull << FL_HIST_MAX_EXP;
    assert_int_equal(fl_hist_index(limit - 1), FL_HIST_BUCKETS - 1);
    assert_int_equal(fl_hist_index(limit), FL_HIST_BUCKETS - 1);
    assert_int_equal(fl_hist_index(UINT64_MAX), FL_HIST_BUCKETS - 1);
    fl_hist_record(&h, limit);
    fl_hist_record(&h, 1ull << 50);
    fl_hist_record(&h, UINT64_MAX); /* a clock stepping back, wrapped */
    assert_int_equal(h.count, 3);
    assert_int_equal(h.buckets[FL_HIST_BUCKETS - 1], 3);
    /* The sum takes clamped values, so it did not wrap. */
    assert_int_equal(h.sum, 3 * (limit - 1));
    double mid = fl_hist_quantile(&h, 0.5);
    assert_true(mid >= (double)fl_hist_bucket_lo(FL_HIST_BUCKETS - 1));
    assert_true(mid < (double)limit);
    /* Exact just below the last bucket, everything at or above it. */
    assert_int_equal(
        fl_hist_count_le(&h, fl_hist_bucket_lo(FL_HIST_BUCKETS - 1) - 1), 0);
    assert_int_equal(fl_hist_count_le(&h, limit - 1), 3);
    assert_int_equal(fl_hist_count_le(&h, UINT64_MAX), 3);
    /* Out-of-range bucket indexes read as the last bucket. */
    assert_int_equal(fl_hist_bucket_hi(FL_HIST_BUCKETS + 5), limit);
}

static void test_snapshot(void **state)
{
    (void)state;
    fl_hist *h = calloc(1, sizeof(*h)), *s = calloc(1, sizeof(*s));
    assert_non_null(h);
    assert_non_null(s);
    for (uint64_t v = 1; v < 5000; v += 3) fl_hist_record(h, v * 977);
    fl_hist_snapshot(h, s);
    assert_memory_equal(h, s, sizeof(*h));
    free(s);
    free(h);
}

/* ---- one writer, one reader ---- */

#define WRITES 2000000

static void *writer(void *arg)
{
    fl_hist *h = arg;
    for (uint64_t i = 0; i < WRITES; i++) fl_hist_record(h, (i * 7919) % 3000000);
    return NULL;
}

static void test_concurrent_reader(void **state)
{
    (void)state;
    fl_hist *h = calloc(1, sizeof(*h)), *s = calloc(1, sizeof(*s));
    assert_non_null(h);
    assert_non_null(s);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer, h), 0);
    uint64_t last = 0, last_le = 0;
    for (int i = 0; i < 200; i++) {
        fl_hist_snapshot(h, s);
        uint64_t le = fl_hist_count_le(s, (1ull << 20) - 1);
        assert_true(s->count >= last);
        assert_true(le >= last_le);
        assert_true(le <= s->count);
        assert_true(s->count <= WRITES);
        last = s->count;
        last_le = le;
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    fl_hist_snapshot(h, s);
    assert_int_equal(s->count, WRITES);
    assert_int_equal(h->count, WRITES);
    free(s);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles_uniform),
        cmocka_unit_test(test_quantiles_exponential),
        cmocka_unit_test(test_quantiles_lognormal),
        cmocka_unit_test(test_quantiles_bimodal),
        cmocka_unit_test(test_quantiles_small_exact),
        cmocka_unit_test(test_quantile_edges),
        cmocka_unit_test(test_buckets_contiguous),
        cmocka_unit_test(test_powers_of_two_are_edges),
        cmocka_unit_test(test_index_monotone),
        cmocka_unit_test(test_count_le_exact_at_powers_of_two),
        cmocka_unit_test(test_clamp),
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_concurrent_reader),
    };
    return cmocka_run_group_tests_name("hist", tests, NULL, NULL);
}
