/*
 * hist.c - the log-linear latency histogram declared in hist.h.
 *
 * Layout: index v for v < 64 (the 32 linear buckets, then the first power
 * of two, 32..63, whose sub-buckets are also one wide); above, a value with
 * highest set bit e lands in bucket (e - 4) * 32 + the next five bits. So a
 * bucket is found with one count-leading-zeros and a shift, every power of
 * two starts a bucket, and bucket k's upper edge is bucket k+1's lower one.
 * Values of 2^40 ns and more are clamped to the last bucket.
 *
 * Concurrency: one thread records; others read. Recording is a relaxed
 * load, +1, relaxed store per counter (no read-modify-write instruction:
 * nobody else writes, and a locked add costs ten times a plain one). Readers
 * use relaxed loads and so see each counter whole, possibly a few records
 * behind. Readers derive totals from the buckets they loaded, never from
 * `count`, so what they compute (ranks, cumulative counts) is consistent
 * with the buckets they walk even while the owner is recording.
 */
#include "hist.h"

#define FL_HIST_LAST (FL_HIST_BUCKETS - 1u)
/* First value past the covered range: clamped into the last bucket. */
#define FL_HIST_LIMIT (1ull << FL_HIST_MAX_EXP)

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Single-writer increment: readers on other threads see old or new. */
static void bump(uint64_t *p, uint64_t by)
{
    __atomic_store_n(p, load(p) + by, __ATOMIC_RELAXED);
}

unsigned fl_hist_index(uint64_t v)
{
    /* Below 2 * FL_HIST_SUB buckets are one wide, so the index is v. */
    if (v < 2u * FL_HIST_SUB) return (unsigned)v;
    if (v >= FL_HIST_LIMIT) return FL_HIST_LAST;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (e - FL_HIST_SUB_BITS)) & (FL_HIST_SUB - 1);
    return (e - FL_HIST_SUB_BITS + 1) * FL_HIST_SUB + sub;
}

/* Indexes past the end are treated as the last bucket, so callers walking
 * edges cannot shift by 64 or more. */
static unsigned clamp_index(unsigned idx)
{
    return idx > FL_HIST_LAST ? FL_HIST_LAST : idx;
}

uint64_t fl_hist_bucket_lo(unsigned idx)
{
    idx = clamp_index(idx);
    if (idx < 2u * FL_HIST_SUB) return idx;
    unsigned e = idx / FL_HIST_SUB + FL_HIST_SUB_BITS - 1;
    uint64_t mantissa = FL_HIST_SUB + idx % FL_HIST_SUB;
    return mantissa << (e - FL_HIST_SUB_BITS);
}

uint64_t fl_hist_bucket_hi(unsigned idx)
{
    idx = clamp_index(idx);
    if (idx < 2u * FL_HIST_SUB) return (uint64_t)idx + 1;
    unsigned e = idx / FL_HIST_SUB + FL_HIST_SUB_BITS - 1;
    return fl_hist_bucket_lo(idx) + (1ull << (e - FL_HIST_SUB_BITS));
}

void fl_hist_record(fl_hist *h, uint64_t value_ns)
{
    /* The sum takes the clamped value too: one wrapped duration (a clock
     * stepping back, 2^64 - small) must not wrap the sum for good. */
    if (value_ns >= FL_HIST_LIMIT) value_ns = FL_HIST_LIMIT - 1;
    bump(&h->buckets[fl_hist_index(value_ns)], 1);
    bump(&h->count, 1);
    bump(&h->sum, value_ns);
}

static uint64_t bucket_total(const fl_hist *h)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < FL_HIST_BUCKETS; i++) n += load(&h->buckets[i]);
    return n;
}

/* Midpoint of the integers a bucket holds, lo..hi-1: exact for the
 * one-wide buckets, within 1/64 of any value in the wider ones. */
static double bucket_mid(unsigned idx)
{
    uint64_t lo = fl_hist_bucket_lo(idx), hi = fl_hist_bucket_hi(idx);
    return (double)lo + (double)(hi - 1 - lo) / 2.0;
}

/* Nearest-rank: the ceil(q * n)-th smallest value, at least the first.
 * Computed without libm so the histogram links anywhere. */
static uint64_t quantile_rank(double q, uint64_t n)
{
    if (!(q > 0.0)) return 1;          /* also catches NaN */
    if (q >= 1.0) return n;
    double x = q * (double)n;
    uint64_t r = (uint64_t)x;
    if ((double)r < x) r++;
    if (r < 1) r = 1;
    return r > n ? n : r;
}

double fl_hist_quantile(const fl_hist *h, double q)
{
    uint64_t n = bucket_total(h);
    if (n == 0) return 0.0;
    uint64_t rank = quantile_rank(q, n), seen = 0;
    unsigned last_nonempty = 0;
    for (unsigned i = 0; i < FL_HIST_BUCKETS; i++) {
        uint64_t c = load(&h->buckets[i]);
        if (c == 0) continue;
        last_nonempty = i;
        seen += c;
        if (seen >= rank) return bucket_mid(i);
    }
    /* Unreachable unless buckets shrank under us (a stats reset). */
    return bucket_mid(last_nonempty);
}

uint64_t fl_hist_count_le(const fl_hist *h, uint64_t bound_ns)
{
    /* Every bucket up to the one holding bound_ns: exact when that bucket
     * ends at bound_ns + 1; otherwise it also counts values in
     * (bound_ns, bucket end). */
    unsigned last = fl_hist_index(bound_ns);
    uint64_t n = 0;
    for (unsigned i = 0; i <= last; i++) n += load(&h->buckets[i]);
    return n;
}

void fl_hist_snapshot(const fl_hist *h, fl_hist *out)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < FL_HIST_BUCKETS; i++) {
        out->buckets[i] = load(&h->buckets[i]);
        n += out->buckets[i];
    }
    /* count from the copied buckets so the copy is self-consistent
     * (a histogram's +Inf bucket must equal its count). */
    out->count = n;
    out->sum = load(&h->sum);
}
