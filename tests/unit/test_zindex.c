/*
 * test_zindex.c - the ordered index against a brute-force reference.
 *
 * The reference is a sorted array: a fixed universe of members is sorted
 * once with an independent implementation of Redis' order, a flag per
 * member says whether it is in the index, and after each batch of random
 * inserts and deletes the live members, in order, are compared with
 * everything the index answers (check, count, rank, seek by rank, seek by
 * score, iteration both ways). Scores repeat a lot so that the name order
 * decides, and names share prefixes, differ only in length, and contain
 * NUL and 0xFF bytes.
 *
 * The random generator has a fixed seed, so every run is the same run.
 * Built with -DFL_ZINDEX_FAULTS (for zindex.c and this file) the
 * allocation-failure test runs too; otherwise it is skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/zindex.h"

#ifdef FL_ZINDEX_FAULTS
extern long fl_zindex_fault_countdown;
#endif

/* ---- deterministic random numbers (splitmix64) ---- */

static uint64_t rng_state;

static void rng_seed(uint64_t s) { rng_state = s; }

static uint64_t rng(void)
{
    uint64_t x = (rng_state += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static size_t rng_below(size_t n) { return (size_t)(rng() % n); }

/* ---- member records, carved from one arena ---- */

typedef struct arena {
    unsigned char *mem;
    size_t used, cap;
} arena;

static void arena_init(arena *a, size_t cap)
{
    a->mem = malloc(cap);
    assert_non_null(a->mem);
    a->used = 0;
    a->cap = cap;
}

static fl_zmember *member_new(arena *a, uint64_t score, const char *name,
                              size_t len)
{
    size_t need = (offsetof(fl_zmember, name) + len + 7) & ~(size_t)7;
    assert_true(a->used + need <= a->cap);
    fl_zmember *m = (fl_zmember *)(void *)(a->mem + a->used);
    a->used += need;
    m->score = score;
    m->len = (uint32_t)len;
    if (len) memcpy(m->name, name, len);
    return m;
}

/* Redis' order written out independently of fl_zmember_cmp. */
static int ref_cmp(const fl_zmember *a, const fl_zmember *b)
{
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    for (size_t i = 0; i < a->len && i < b->len; i++) {
        unsigned char ca = (unsigned char)a->name[i];
        unsigned char cb = (unsigned char)b->name[i];
        if (ca != cb) return ca < cb ? -1 : 1;
    }
    if (a->len == b->len) return 0;
    return a->len < b->len ? -1 : 1;
}

static int ref_qsort_cmp(const void *a, const void *b)
{
    return ref_cmp(*(fl_zmember *const *)a, *(fl_zmember *const *)b);
}

/* Writes a unique name for index i into buf; the shapes overlap so that
 * prefixes are shared. Returns the length. */
static size_t make_name(size_t i, char *buf, size_t cap)
{
    char num[24];
    int nl = snprintf(num, sizeof(num), "%zu", i);
    size_t len = 0;
    assert_true(nl > 0);
    if (i == 0) return 0; /* the empty name */
    switch (i % 6) {
    case 0: len = (size_t)snprintf(buf, cap, "car:%s", num); break;
    case 1: len = (size_t)snprintf(buf, cap, "car%s", num); break;
    case 2: len = (size_t)snprintf(buf, cap, "%s", num); break;
    case 3: /* "k\0<num>\xff": all alike up to and past a NUL byte */
        buf[0] = 'k';
        buf[1] = '\0';
        len = 2 + (size_t)snprintf(buf + 2, cap - 2, "%s", num);
        buf[len++] = (char)0xff;
        break;
    case 4:
        len = (size_t)snprintf(buf, cap, "vehicle-%040d%s", 0, num);
        break;
    default:
        len = (size_t)snprintf(buf, cap, "%s%.*s", num, (int)(i % 5), "aaaa");
        break;
    }
    assert_true(len < cap);
    return len;
}

/* Scores: mostly a few dozen values (long runs of ties), some spread over
 * 52 bits, a few at the top of the 64-bit range. */
static uint64_t make_score(void)
{
    uint64_t r = rng_below(100);
    if (r < 70) return rng_below(40) * 1000;
    if (r < 97) return rng() & ((1ULL << 52) - 1);
    return UINT64_MAX - rng_below(3);
}

/* ---- the reference: a sorted universe and who is present ---- */

typedef struct ref {
    arena ar;
    fl_zmember **uni;  /* sorted */
    size_t n;
    unsigned char *in;
    size_t *slot;      /* position in in_list or out_list */
    size_t *in_list, *out_list;
    size_t nin, nout;
    fl_zmember **live; /* built by ref_live: present members, in order */
    size_t *rank;      /* rank of uni[i] among live, if present */
    size_t nlive;
} ref;

static void ref_init(ref *r, size_t n)
{
    char name[96];
    arena_init(&r->ar, n * 96);
    r->n = n;
    r->uni = malloc(n * sizeof(*r->uni));
    r->in = calloc(n, 1);
    r->slot = malloc(n * sizeof(size_t));
    r->in_list = malloc(n * sizeof(size_t));
    r->out_list = malloc(n * sizeof(size_t));
    r->live = malloc(n * sizeof(*r->live));
    r->rank = malloc(n * sizeof(size_t));
    assert_true(r->uni && r->in && r->slot && r->in_list && r->out_list &&
                r->live && r->rank);
    for (size_t i = 0; i < n; i++) {
        size_t len = make_name(i, name, sizeof(name));
        r->uni[i] = member_new(&r->ar, make_score(), name, len);
    }
    qsort(r->uni, n, sizeof(*r->uni), ref_qsort_cmp);
    for (size_t i = 0; i + 1 < n; i++)
        assert_true(ref_cmp(r->uni[i], r->uni[i + 1]) < 0);
    for (size_t i = 0; i < n; i++) {
        r->out_list[i] = i;
        r->slot[i] = i;
    }
    r->nin = 0;
    r->nout = n;
    r->nlive = 0;
}

static void ref_free(ref *r)
{
    free(r->ar.mem);
    free(r->uni);
    free(r->in);
    free(r->slot);
    free(r->in_list);
    free(r->out_list);
    free(r->live);
    free(r->rank);
}

/* Moves universe index u between the present and absent lists. */
static void ref_toggle(ref *r, size_t u)
{
    size_t *from = r->in[u] ? r->in_list : r->out_list;
    size_t *nfrom = r->in[u] ? &r->nin : &r->nout;
    size_t *to = r->in[u] ? r->out_list : r->in_list;
    size_t *nto = r->in[u] ? &r->nout : &r->nin;
    size_t s = r->slot[u], last = from[--*nfrom];
    from[s] = last;
    r->slot[last] = s;
    to[*nto] = u;
    r->slot[u] = (*nto)++;
    r->in[u] ^= 1;
}

static void ref_live(ref *r)
{
    r->nlive = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (!r->in[i]) continue;
        r->rank[i] = r->nlive;
        r->live[r->nlive++] = r->uni[i];
    }
}

/* First live position with score >= x. */
static size_t ref_lower(const ref *r, uint64_t x)
{
    size_t lo = 0, hi = r->nlive;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->live[mid]->score < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void do_insert(fl_zindex *z, ref *r, size_t u)
{
    assert_false(r->in[u]);
    assert_int_equal(fl_zindex_insert(z, r->uni[u]), 0);
    ref_toggle(r, u);
}

static void do_delete(fl_zindex *z, ref *r, size_t u)
{
    assert_true(r->in[u]);
    assert_int_equal(fl_zindex_delete(z, r->uni[u]), 0);
    ref_toggle(r, u);
}

/* One random operation; p_insert in percent. Now and then also deletes
 * an absent member (a copy with the same score and name, so the index
 * must compare by value), which must fail. */
static void random_op(fl_zindex *z, ref *r, unsigned p_insert)
{
    int ins = r->nin == 0 || (r->nout > 0 && rng_below(100) < p_insert);
    if (ins) {
        size_t u = r->out_list[rng_below(r->nout)];
        if (rng_below(16) == 0) {
            _Alignas(8) unsigned char buf[160];
            const fl_zmember *m = r->uni[u];
            fl_zmember *copy = (fl_zmember *)(void *)buf;
            memcpy(copy, m, offsetof(fl_zmember, name) + m->len);
            assert_int_equal(fl_zindex_delete(z, copy), -ENOENT);
        }
        do_insert(z, r, u);
    } else {
        do_delete(z, r, r->in_list[rng_below(r->nin)]);
    }
}

/* ---- comparing the index with the reference ---- */

static void expect_next(fl_zit *it, const ref *r, size_t i)
{
    uint64_t score = 0;
    fl_zmember *m = NULL;
    if (i >= r->nlive) {
        assert_int_equal(fl_zit_next(it, &score, &m), 0);
        return;
    }
    assert_int_equal(fl_zit_next(it, &score, &m), 1);
    assert_ptr_equal(m, r->live[i]);
    assert_true(score == r->live[i]->score);
}

/* Expects the entry before live position i (none when i == 0). */
static void expect_prev(fl_zit *it, const ref *r, size_t i)
{
    uint64_t score = 0;
    fl_zmember *m = NULL;
    if (i == 0) {
        assert_int_equal(fl_zit_prev(it, &score, &m), 0);
        return;
    }
    assert_int_equal(fl_zit_prev(it, &score, &m), 1);
    assert_ptr_equal(m, r->live[i - 1]);
    assert_true(score == r->live[i - 1]->score);
}

static void verify_iteration(const fl_zindex *z, const ref *r)
{
    fl_zit it;
    fl_zindex_seek_rank(z, 0, &it);
    for (size_t i = 0; i <= r->nlive; i++) expect_next(&it, r, i);
    /* Past the end, prev walks the whole set back. */
    for (size_t i = r->nlive; i > 0; i--) expect_prev(&it, r, i);
    expect_prev(&it, r, 0);
    fl_zindex_seek_rank(z, r->nlive, &it);
    for (size_t i = r->nlive; i > 0; i--) expect_prev(&it, r, i);
    expect_prev(&it, r, 0);
    expect_next(&it, r, 0);
}

static void verify_ranks(const fl_zindex *z, const ref *r, int samples)
{
    for (int k = 0; k < samples; k++) {
        size_t u = rng_below(r->n);
        size_t want = r->in[u] ? r->rank[u] : (size_t)-1;
        assert_true(fl_zindex_rank(z, r->uni[u]) == want);
    }
}

static void verify_seek_rank(const fl_zindex *z, const ref *r, int samples)
{
    fl_zit it;
    for (int k = 0; k < samples; k++) {
        size_t rank = rng_below(r->nlive + 1);
        if (k == 0) rank = 0;
        if (k == 1) rank = r->nlive;
        fl_zindex_seek_rank(z, rank, &it);
        fl_zit back = it;
        for (size_t j = 0; j < 3; j++) expect_next(&it, r, rank + j);
        expect_prev(&back, r, rank);
    }
    /* Beyond the end clamps to the end. */
    fl_zindex_seek_rank(z, r->nlive + 7, &it);
    expect_next(&it, r, r->nlive);
    expect_prev(&it, r, r->nlive);
}

/* A score to seek: existing ones and their neighbours, the extremes, and
 * random values. */
static uint64_t seek_target(const ref *r, int k)
{
    switch (k) {
    case 0: return 0;
    case 1: return UINT64_MAX;
    case 2: return r->nlive ? r->live[0]->score : 1;
    case 3: return r->nlive ? r->live[r->nlive - 1]->score + 1 : 2;
    default: break;
    }
    if (r->nlive && rng_below(2)) {
        uint64_t s = r->live[rng_below(r->nlive)]->score;
        return s + rng_below(3) - 1;
    }
    return rng_below(2) ? rng_below(45000) : rng();
}

static void verify_seek_score(const fl_zindex *z, const ref *r, int samples)
{
    fl_zit it;
    for (int k = 0; k < samples; k++) {
        uint64_t x = seek_target(r, k);
        size_t want = ref_lower(r, x);
        fl_zindex_seek_score(z, x, &it);
        fl_zit back = it;
        for (size_t j = 0; j < 3; j++) expect_next(&it, r, want + j);
        expect_prev(&back, r, want);
        if (want > 0) expect_prev(&back, r, want - 1);
    }
}

static void verify(const fl_zindex *z, ref *r)
{
    ref_live(r);
    assert_int_equal(fl_zindex_check(z), 0);
    assert_int_equal(fl_zindex_count(z), r->nlive);
    verify_iteration(z, r);
    verify_ranks(z, r, 200);
    verify_seek_rank(z, r, 50);
    verify_seek_score(z, r, 100);
}

/* ---- tests ---- */

static void test_cmp(void **state)
{
    (void)state;
    assert_true(fl_zmember_cmp(1, "b", 1, 2, "a", 1) < 0);
    assert_true(fl_zmember_cmp(2, "a", 1, 1, "b", 1) > 0);
    assert_true(fl_zmember_cmp(5, "abc", 3, 5, "abd", 3) < 0);
    assert_true(fl_zmember_cmp(5, "ab", 2, 5, "abc", 3) < 0);
    assert_true(fl_zmember_cmp(5, "abc", 3, 5, "ab", 2) > 0);
    assert_true(fl_zmember_cmp(5, "", 0, 5, "a", 1) < 0);
    assert_true(fl_zmember_cmp(5, NULL, 0, 5, NULL, 0) == 0);
    assert_true(fl_zmember_cmp(5, "abc", 3, 5, "abc", 3) == 0);
    /* Bytes compare unsigned, NUL is an ordinary byte. */
    assert_true(fl_zmember_cmp(5, "a\xff", 2, 5, "a\x01", 2) > 0);
    assert_true(fl_zmember_cmp(5, "a\0", 2, 5, "a", 1) > 0);
    assert_true(fl_zmember_cmp(5, "a\0", 2, 5, "a\x01", 2) < 0);
    assert_true(fl_zmember_cmp(5, "a\0b", 3, 5, "a\0c", 3) < 0);
    assert_true(fl_zmember_cmp(UINT64_MAX, "", 0, 0, "z", 1) > 0);
}

static void test_empty(void **state)
{
    (void)state;
    fl_zindex *z = fl_zindex_new();
    assert_non_null(z);
    fl_zit it;
    uint64_t s;
    fl_zmember *m;
    _Alignas(8) unsigned char buf[64];
    fl_zmember *x = (fl_zmember *)(void *)buf;
    x->score = 7;
    x->len = 1;
    x->name[0] = 'x';
    assert_int_equal(fl_zindex_check(z), 0);
    assert_int_equal(fl_zindex_count(z), 0);
    assert_true(fl_zindex_rank(z, x) == (size_t)-1);
    assert_int_equal(fl_zindex_delete(z, x), -ENOENT);
    fl_zindex_seek_score(z, 0, &it);
    assert_int_equal(fl_zit_next(&it, &s, &m), 0);
    assert_int_equal(fl_zit_prev(&it, &s, &m), 0);
    fl_zindex_seek_rank(z, 3, &it);
    assert_int_equal(fl_zit_next(&it, &s, &m), 0);
    assert_true(fl_zindex_bytes(z) > 0 && fl_zindex_bytes(z) < 256);
    fl_zindex_free(z);
    fl_zindex_free(NULL);
}

/* Random inserts and deletes against the reference, through growth,
 * churn, shrinking, emptying and refilling. */
static void test_random_vs_reference(void **state)
{
    (void)state;
    static const struct {
        unsigned p_insert;
        int ops;
    } phases[] = {
        {85, 50000}, {50, 50000}, {65, 30000}, {15, 40000}, {50, 20000},
    };
    ref r;
    long ops = 0;
    rng_seed(12345);
    ref_init(&r, 50000);
    fl_zindex *z = fl_zindex_new();
    assert_non_null(z);
    for (int round = 0; round < 2; round++) {
        for (size_t ph = 0; ph < sizeof(phases) / sizeof(phases[0]); ph++) {
            for (int i = 0; i < phases[ph].ops; i++) {
                random_op(z, &r, phases[ph].p_insert);
                /* Small sizes change shape fastest: check them often. */
                int every = r.nin < 300 ? 50 : 2000;
                if (++ops % every == 0) verify(z, &r);
            }
            verify(z, &r);
        }
        /* Everything out, in random order, then everything back in. */
        while (r.nin) {
            do_delete(z, &r, r.in_list[rng_below(r.nin)]);
            if (++ops % 1000 == 0 || r.nin < 70) verify(z, &r);
        }
        verify(z, &r);
        assert_int_equal(fl_zindex_count(z), 0);
        while (r.nout) {
            do_insert(z, &r, r.out_list[rng_below(r.nout)]);
            if (++ops % 2000 == 0 || r.nin < 70) verify(z, &r);
        }
        verify(z, &r);
    }
    assert_true(ops >= 200000);
    fl_zindex_free(z);
    ref_free(&r);
}

/* A tree four levels deep, filled and emptied in random order. */
static void test_large_random(void **state)
{
    (void)state;
    ref r;
    rng_seed(777);
    ref_init(&r, 400000);
    fl_zindex *z = fl_zindex_new();
    assert_non_null(z);
    while (r.nout) {
        do_insert(z, &r, r.out_list[rng_below(r.nout)]);
        if (r.nin % 100000 == 0) verify(z, &r);
    }
    verify(z, &r);
    print_message("random insert of %zu: %.2f bytes/entry\n", r.nin,
                  (double)fl_zindex_bytes(z) / (double)r.nin);
    assert_true(fl_zindex_bytes(z) < 26 * r.nin);
    while (r.nin) {
        do_delete(z, &r, r.in_list[rng_below(r.nin)]);
        if (r.nin % 100000 == 0) verify(z, &r);
    }
    verify(z, &r);
    fl_zindex_free(z);
    ref_free(&r);
}

#define SEQ_N 1000000

/* Loads SEQ_N members in order (ascending, descending, or ascending names
 * under one score) and checks that the nodes stay nearly full. */
static void sequential(int mode, const char *what)
{
    arena ar;
    fl_zmember **v = malloc(SEQ_N * sizeof(*v));
    char name[32];
    assert_non_null(v);
    arena_init(&ar, (size_t)SEQ_N * 32);
    for (size_t i = 0; i < SEQ_N; i++) {
        int len = snprintf(name, sizeof(name), "m%09zu", i);
        uint64_t score = mode == 2 ? 42 : (uint64_t)i * 3;
        v[i] = member_new(&ar, score, name, (size_t)len);
    }
    fl_zindex *z = fl_zindex_new();
    assert_non_null(z);
    for (size_t i = 0; i < SEQ_N; i++) {
        size_t k = mode == 1 ? SEQ_N - 1 - i : i;
        assert_int_equal(fl_zindex_insert(z, v[k]), 0);
    }
    assert_int_equal(fl_zindex_check(z), 0);
    assert_int_equal(fl_zindex_count(z), SEQ_N);
    double per = (double)fl_zindex_bytes(z) / SEQ_N;
    print_message("%s insert of %d: %.2f bytes/entry\n", what, SEQ_N, per);
    assert_true(per < 32.0);
    /* Spot checks: rank, seek and iteration over a full tree. */
    for (size_t i = 0; i < SEQ_N; i += 9973)
        assert_true(fl_zindex_rank(z, v[i]) == i);
    fl_zit it;
    fl_zmember *m;
    uint64_t s;
    if (mode != 2) {
        fl_zindex_seek_score(z, 3 * 500000 - 1, &it);
        assert_int_equal(fl_zit_next(&it, &s, &m), 1);
        assert_ptr_equal(m, v[500000]);
    }
    fl_zindex_seek_rank(z, 0, &it);
    for (size_t i = 0; i < SEQ_N; i++) {
        assert_int_equal(fl_zit_next(&it, &s, &m), 1);
        if (m != v[i]) fail_msg("iteration differs at %zu", i);
    }
    assert_int_equal(fl_zit_next(&it, &s, &m), 0);
    /* Deleting every other entry merges nodes and keeps the tree sound. */
    for (size_t i = 0; i < SEQ_N; i += 2)
        assert_int_equal(fl_zindex_delete(z, v[i]), 0);
    assert_int_equal(fl_zindex_check(z), 0);
    assert_int_equal(fl_zindex_count(z), SEQ_N / 2);
    for (size_t i = 1; i < SEQ_N; i += 2)
        assert_int_equal(fl_zindex_delete(z, v[i]), 0);
    assert_int_equal(fl_zindex_check(z), 0);
    assert_int_equal(fl_zindex_count(z), 0);
    fl_zindex_free(z);
    free(ar.mem);
    free(v);
}

static void test_sequential_ascending(void **state)
{
    (void)state;
    sequential(0, "ascending");
}

static void test_sequential_descending(void **state)
{
    (void)state;
    sequential(1, "descending");
}

static void test_sequential_names(void **state)
{
    (void)state;
    sequential(2, "one score, ascending names:");
}

#ifdef FL_ZINDEX_FAULTS
/* Inserts u, failing the 1st, 2nd, ... allocation until it goes through;
 * every failure must leave the index exactly as it was. */
static void insert_under_faults(fl_zindex *z, ref *r, size_t u)
{
    size_t bytes = fl_zindex_bytes(z);
    for (long k = 1;; k++) {
        fl_zindex_fault_countdown = k;
        int rc = fl_zindex_insert(z, r->uni[u]);
        fl_zindex_fault_countdown = 0;
        if (rc == 0) break;
        assert_int_equal(rc, -ENOMEM);
        assert_true(fl_zindex_bytes(z) == bytes);
        assert_true(fl_zindex_rank(z, r->uni[u]) == (size_t)-1);
        if (r->nin % 64 == 0) verify(z, r);
        else assert_int_equal(fl_zindex_check(z), 0);
    }
    ref_toggle(r, u);
}

static void test_enomem(void **state)
{
    (void)state;
    ref r;
    rng_seed(99);
    ref_init(&r, 20000);
    for (long k = 1; k <= 2; k++) {
        fl_zindex_fault_countdown = k;
        assert_null(fl_zindex_new());
    }
    fl_zindex_fault_countdown = 0;
    fl_zindex *z = fl_zindex_new();
    assert_non_null(z);
    /* In order first: every 63rd insert splits, every ~4000th twice. */
    for (size_t u = 0; u < 12000; u++) insert_under_faults(z, &r, u);
    verify(z, &r);
    while (r.nout) insert_under_faults(z, &r, r.out_list[rng_below(r.nout)]);
    verify(z, &r);
    fl_zindex_free(z);
    ref_free(&r);
}
#else
static void test_enomem(void **state)
{
    (void)state;
    skip(); /* needs -DFL_ZINDEX_FAULTS */
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmp),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_random_vs_reference),
        cmocka_unit_test(test_large_random),
        cmocka_unit_test(test_sequential_ascending),
        cmocka_unit_test(test_sequential_descending),
        cmocka_unit_test(test_sequential_names),
        cmocka_unit_test(test_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
