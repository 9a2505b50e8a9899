/*
 * hist.h - a fixed-size log-linear latency histogram, the SLI primitive.
 *
 * Values (nanoseconds) below 32 get a bucket each; above, every power of two
 * is split into 32 equal sub-buckets, so a bucket is at most 1/32 of its
 * lower edge wide and the bucket midpoint is within 1.6% of any value in it:
 * quantiles read back with relative error under 2%. Recording is a
 * count-leading-zeros, a shift and an increment: no allocation, no lock.
 *
 * Threading: only the owning thread records. Readers on other threads (the
 * HTTP metrics thread) load counters with relaxed atomics and may see a
 * histogram a few increments behind, never a torn counter.
 */
#ifndef FL_METRICS_HIST_H
#define FL_METRICS_HIST_H

#include <stdint.h>

#define FL_HIST_SUB_BITS 5
#define FL_HIST_SUB (1u << FL_HIST_SUB_BITS)
/* Powers of two up to 2^40 ns (about 18 minutes). */
#define FL_HIST_MAX_EXP 40
#define FL_HIST_BUCKETS ((FL_HIST_MAX_EXP - FL_HIST_SUB_BITS + 1) * FL_HIST_SUB)

typedef struct fl_hist {
    uint64_t count;
    uint64_t sum;      /* nanoseconds */
    uint64_t buckets[FL_HIST_BUCKETS];
} fl_hist;

void fl_hist_record(fl_hist *h, uint64_t value_ns);
/* Bucket index of a value and the [lo, hi) range a bucket covers. */
unsigned fl_hist_index(uint64_t v);
uint64_t fl_hist_bucket_lo(unsigned idx);
uint64_t fl_hist_bucket_hi(unsigned idx);
/* Value at quantile q in [0,1] (bucket midpoint), 0 when empty. */
double fl_hist_quantile(const fl_hist *h, double q);
/* Number of recorded values <= bound_ns, exact when bound_ns+1 is a
 * bucket edge (every power of two is). Safe from another thread. */
uint64_t fl_hist_count_le(const fl_hist *h, uint64_t bound_ns);
/* Relaxed-atomic snapshot for readers on other threads. */
void fl_hist_snapshot(const fl_hist *h, fl_hist *out);

#endif
