/*
 * test_log.c - the write-ahead log codec and its files.
 *
 * The codec tests attack the format the way a crash or a disk would: every
 * truncation of a multi-record buffer must give the whole records before
 * the cut and then TORN, and every single bit flip must make its record
 * CORRUPT or TORN, never a record with other contents. Inputs are copied
 * to buffers of their exact size so that AddressSanitizer sees any read
 * past the end. The file tests write with fl_wal in a mkdtemp directory,
 * damage the file with raw writes and read it back with fl_log_read_file.
 *
 * The random generator has a fixed seed, so every run is the same run.
 * Built with -DFL_LOG_FAULTS (for log.c and this file) the argv decoder's
 * allocation-failure test runs too; otherwise it is skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "store/log.h"
#include "store/wal.h"

#ifdef FL_LOG_FAULTS
extern long fl_log_fault_countdown;
#endif

/* ---- deterministic random numbers (splitmix64) ---- */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s;
}

static uint64_t rng(void)
{
    uint64_t x = (rng_state += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng() % n);
}

static void rng_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng();
}

/* A copy of p in a buffer of exactly n bytes (ASan sees overreads). */
static uint8_t *exact_copy(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n) memcpy(c, p, n);
    return c;
}

/* ---- a set of framed records and where each one starts ---- */

#define MAX_RECS 4096

typedef struct recset {
    fl_buf buf;
    size_t n;
    size_t start[MAX_RECS + 1]; /* start[n] == buf.len */
    size_t len[MAX_RECS];
} recset;

static void recset_init(recset *s)
{
    fl_buf_init(&s->buf);
    s->n = 0;
    s->start[0] = 0;
}

static void recset_add(recset *s, const void *payload, size_t len)
{
    assert_true(s->n < MAX_RECS);
    assert_int_equal(fl_log_frame(&s->buf, payload, len), 0);
    s->len[s->n++] = len;
    s->start[s->n] = s->buf.len;
}

static void recset_add_random(recset *s, size_t len)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    rng_fill(p, len);
    recset_add(s, p, len);
    free(p);
}

static const uint8_t *recset_payload(const recset *s, size_t i)
{
    return (const uint8_t *)s->buf.data + s->start[i] + FL_LOG_FRAME_LEN;
}

/* ---- header ---- */

static void test_header(void **state)
{
    (void)state;
    uint8_t h[16];
    uint32_t kind = 0;
    fl_log_header(h, FL_LOG_KIND_SEGMENT);
    static const uint8_t want[16] = {'F', 'L', 'E', 'E', 'T', 'L', 'O', 'G',
                                     1,   0,   0,   0,   1,   0,   0,   0};
    assert_memory_equal(h, want, 16);
    assert_int_equal(fl_log_check_header(h, 16, &kind), 0);
    assert_int_equal(kind, 1);
    assert_int_equal(fl_log_check_header(h, 16, NULL), 0);
    assert_int_equal(fl_log_check_header(h, 15, &kind), -1);
    assert_int_equal(fl_log_check_header(h, 0, &kind), -1);

    fl_log_header(h, FL_LOG_KIND_SNAPSHOT);
    assert_int_equal(fl_log_check_header(h, 16, &kind), 0);
    assert_int_equal(kind, 2);

    fl_log_header(h, 3); /* unknown kind */
    assert_int_equal(fl_log_check_header(h, 16, &kind), -1);
    fl_log_header(h, 0);
    assert_int_equal(fl_log_check_header(h, 16, &kind), -1);

    fl_log_header(h, 1);
    h[8] = 2; /* a future version */
    assert_int_equal(fl_log_check_header(h, 16, &kind), -1);
    fl_log_header(h, 1);
    h[0] = 'f';
    assert_int_equal(fl_log_check_header(h, 16, &kind), -1);
}

/* ---- framing ---- */

/* The frame written out by hand from the format in log.h. */
static void check_frame_bytes(const uint8_t *f, const uint8_t *payload,
                              size_t len)
{
    uint32_t n = (uint32_t)f[0] | (uint32_t)f[1] << 8 | (uint32_t)f[2] << 16 |
                 (uint32_t)f[3] << 24;
    uint64_t sum = 0;
    for (int i = 0; i < 8; i++)
        sum |= (uint64_t)f[4 + i] << (8 * i);
    uint64_t seed = (uint64_t)len * 0x9E3779B97F4A7C15ULL + 0x5EED;
    assert_int_equal(n, len);
    assert_true(sum == XXH3_64bits_withSeed(payload, len, seed));
    assert_memory_equal(f + 12, payload, len);
}

static size_t random_len(void)
{
    switch (rng_below(8)) {
    case 0:
        return 1;
    case 1:
        return 1 + rng_below(70000);
    default:
        return 1 + rng_below(300);
    }
}

static void test_frame_roundtrip(void **state)
{
    (void)state;
    recset *s = malloc(sizeof(*s));
    assert_non_null(s);
    rng_seed(1);
    recset_init(s);
    for (int i = 0; i < 2000; i++)
        recset_add_random(s, random_len());
    uint8_t *buf = exact_copy(s->buf.data, s->buf.len);
    size_t off = 0;
    for (size_t i = 0; i < s->n; i++) {
        const uint8_t *p = NULL;
        size_t plen = 0;
        assert_int_equal(fl_log_next(buf, s->buf.len, &off, &p, &plen),
                         FL_LOG_OK);
        assert_int_equal(plen, s->len[i]);
        assert_ptr_equal(p, buf + s->start[i] + FL_LOG_FRAME_LEN);
        assert_int_equal(off, s->start[i + 1]);
        check_frame_bytes(buf + s->start[i], recset_payload(s, i), plen);
    }
    const uint8_t *p = NULL;
    size_t plen = 0;
    assert_int_equal(fl_log_next(buf, s->buf.len, &off, &p, &plen), FL_LOG_END);
    assert_int_equal(off, s->buf.len);
    free(buf);
    fl_buf_free(&s->buf);
    free(s);
}

/* A frame header with the given declared length and no valid sum. */
static void raw_frame(uint8_t f[12], uint32_t len)
{
    memset(f, 0, 12);
    for (int i = 0; i < 4; i++)
        f[i] = (uint8_t)(len >> (8 * i));
}

static int next_status(const uint8_t *buf, size_t len, size_t *off)
{
    const uint8_t *p = NULL;
    size_t plen = 0;
    size_t before = *off;
    int st = fl_log_next(buf, len, off, &p, &plen);
    if (st != FL_LOG_OK) assert_int_equal(*off, before);
    return st;
}

static void test_frame_limits(void **state)
{
    (void)state;
    fl_buf b;
    fl_buf_init(&b);
    uint8_t one = 'x';
    assert_int_equal(fl_log_frame(&b, &one, 0), -EMSGSIZE);
    assert_int_equal(fl_log_frame(&b, &one, FL_LOG_MAX_RECORD + 1), -EMSGSIZE);
    assert_int_equal(b.len, 0);

    uint8_t f[12];
    size_t off = 0;
    raw_frame(f, 0);
    assert_int_equal(next_status(f, 12, &off), FL_LOG_CORRUPT);
    assert_int_equal(next_status(f, 4, &off), FL_LOG_CORRUPT);
    assert_int_equal(next_status(f, 3, &off), FL_LOG_TORN);
    raw_frame(f, FL_LOG_MAX_RECORD + 1);
    assert_int_equal(next_status(f, 12, &off), FL_LOG_CORRUPT);
    assert_int_equal(next_status(f, 4, &off), FL_LOG_CORRUPT);
    raw_frame(f, 0xffffffffu);
    assert_int_equal(next_status(f, 12, &off), FL_LOG_CORRUPT);
    raw_frame(f, 5); /* declared 5, nothing follows */
    assert_int_equal(next_status(f, 12, &off), FL_LOG_TORN);
    assert_int_equal(next_status(f, 0, &off), FL_LOG_END);
    off = 13; /* past the end: refused without reading */
    assert_int_equal(next_status(f, 12, &off), FL_LOG_CORRUPT);

    /* The largest record is accepted. */
    uint8_t *big = calloc(1, FL_LOG_MAX_RECORD);
    assert_non_null(big);
    big[FL_LOG_MAX_RECORD - 1] = 7;
    assert_int_equal(fl_log_frame(&b, big, FL_LOG_MAX_RECORD), 0);
    off = 0;
    const uint8_t *p = NULL;
    size_t plen = 0;
    assert_int_equal(fl_log_next((uint8_t *)b.data, b.len, &off, &p, &plen),
                     FL_LOG_OK);
    assert_int_equal(plen, FL_LOG_MAX_RECORD);
    assert_int_equal(p[plen - 1], 7);
    free(big);
    fl_buf_free(&b);
}

static recset *small_recset(uint64_t seed, size_t n, size_t maxlen)
{
    recset *s = malloc(sizeof(*s));
    assert_non_null(s);
    rng_seed(seed);
    recset_init(s);
    for (size_t i = 0; i < n; i++)
        recset_add_random(s, 1 + rng_below(maxlen));
    return s;
}

static void recset_free(recset *s)
{
    fl_buf_free(&s->buf);
    free(s);
}

/* Cutting the buffer anywhere gives the whole records, then TORN (or END
 * exactly on a boundary). */
static void test_truncation(void **state)
{
    (void)state;
    recset *s = small_recset(2, 24, 40);
    recset_add_random(s, 300);
    recset_add_random(s, 1);
    for (size_t cut = 0; cut <= s->buf.len; cut++) {
        uint8_t *buf = exact_copy(s->buf.data, cut);
        size_t off = 0, i = 0;
        const uint8_t *p;
        size_t plen;
        int st;
        while ((st = fl_log_next(buf, cut, &off, &p, &plen)) == FL_LOG_OK) {
            assert_true(s->start[i + 1] <= cut);
            assert_int_equal(plen, s->len[i]);
            assert_memory_equal(p, recset_payload(s, i), plen);
            i++;
        }
        assert_int_equal(off, s->start[i]);
        assert_int_equal(st, cut == s->start[i] ? FL_LOG_END : FL_LOG_TORN);
        free(buf);
    }
    recset_free(s);
}

/* Which record holds byte pos. */
static size_t record_of(const recset *s, size_t pos)
{
    size_t i = 0;
    while (s->start[i + 1] <= pos)
        i++;
    return i;
}

static void test_bit_flips(void **state)
{
    (void)state;
    recset *s = small_recset(3, 5, 30);
    recset_add_random(s, 100);
    recset_add_random(s, 1);
    uint8_t *buf = exact_copy(s->buf.data, s->buf.len);
    for (size_t bit = 0; bit < s->buf.len * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        size_t hit = record_of(s, bit / 8), off = 0;
        const uint8_t *p;
        size_t plen;
        for (size_t i = 0; i < hit; i++) {
            assert_int_equal(fl_log_next(buf, s->buf.len, &off, &p, &plen),
                             FL_LOG_OK);
            assert_memory_equal(p, recset_payload(s, i), plen);
        }
        int st = fl_log_next(buf, s->buf.len, &off, &p, &plen);
        assert_true(st == FL_LOG_CORRUPT || st == FL_LOG_TORN);
        assert_int_equal(off, s->start[hit]);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    free(buf);
    recset_free(s);
}

/* ---- varints and the bounded reader ---- */

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void check_varint(uint64_t v)
{
    fl_buf b;
    fl_buf_init(&b);
    fl_log_put_varint(&b, v);
    assert_int_equal(b.len, varint_size(v));
    uint8_t *c = exact_copy(b.data, b.len);
    fl_log_reader r;
    fl_log_reader_init(&r, c, b.len);
    assert_true(fl_log_get_varint(&r) == v);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.off, b.len);
    free(c);
    fl_buf_free(&b);
}

/* Expects the bytes to be rejected as a varint. */
static void bad_varint(const uint8_t *p, size_t n)
{
    uint8_t *c = exact_copy(p, n);
    fl_log_reader r;
    fl_log_reader_init(&r, c, n);
    assert_true(fl_log_get_varint(&r) == 0);
    assert_int_equal(r.err, 1);
    assert_true(r.off <= n);
    assert_true(fl_log_get_u8(&r) == 0); /* sticky */
    assert_int_equal(r.err, 1);
    free(c);
}

static void test_varint(void **state)
{
    (void)state;
    static const uint64_t fixed[] = {0,
                                     1,
                                     127,
                                     128,
                                     255,
                                     300,
                                     16383,
                                     16384,
                                     0xffffffffULL,
                                     0x100000000ULL,
                                     1ULL << 56,
                                     (1ULL << 63) - 1,
                                     1ULL << 63,
                                     UINT64_MAX};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        check_varint(fixed[i]);
    rng_seed(4);
    for (int i = 0; i < 10000; i++)
        check_varint(rng() >> rng_below(64));

    uint8_t max[10];
    memset(max, 0xff, 9);
    max[9] = 0x01; /* UINT64_MAX: the one valid 10-byte form */
    fl_log_reader r;
    fl_log_reader_init(&r, max, 10);
    assert_true(fl_log_get_varint(&r) == UINT64_MAX && r.err == 0);

    static const uint8_t zero2[] = {0x80, 0x00}, ff0[] = {0xff, 0x00},
                         three[] = {0x81, 0x80, 0x00}, cont[] = {0x80};
    bad_varint(zero2, 2); /* overlong 0 */
    bad_varint(ff0, 2);   /* overlong 127 */
    bad_varint(three, 3); /* overlong 1 */
    bad_varint(cont, 1);  /* truncated */
    bad_varint(cont, 0);  /* nothing */
    uint8_t big[11];
    memset(big, 0xff, 9);
    big[9] = 0x02; /* bit 64: overflow */
    bad_varint(big, 10);
    big[9] = 0x81; /* an 11th byte announced */
    big[10] = 0x01;
    bad_varint(big, 11);
    memset(big, 0x80, 9);
    big[9] = 0x00; /* overlong 0 in 10 bytes */
    bad_varint(big, 10);
}

/* A record made of every field type, read back from every prefix. */
static void put_all_fields(fl_buf *b)
{
    fl_log_put_u8(b, 0xA5);
    fl_log_put_varint(b, 300);
    fl_log_put_u64(b, 0x0102030405060708ULL);
    fl_log_put_double(b, -12.5);
    fl_log_put_bytes(b, "hello", 5);
    fl_log_put_bytes(b, "", 0);
    fl_log_put_varint(b, UINT64_MAX);
    fl_log_put_bytes(b, "z", 1);
}

/* Reads the fields back; returns how many were read before an error. */
static int get_all_fields(fl_log_reader *r)
{
    size_t len;
    const uint8_t *p;
    int n = 0;
    if (fl_log_get_u8(r) != 0xA5 || r->err) return n;
    n++;
    if (fl_log_get_varint(r) != 300 || r->err) return n;
    n++;
    if (fl_log_get_u64(r) != 0x0102030405060708ULL || r->err) return n;
    n++;
    if (fl_log_get_double(r) != -12.5 || r->err) return n;
    n++;
    p = fl_log_get_bytes(r, &len);
    if (!p || len != 5 || memcmp(p, "hello", 5) != 0) return n;
    n++;
    p = fl_log_get_bytes(r, &len);
    if (!p || len != 0) return n;
    n++;
    if (fl_log_get_varint(r) != UINT64_MAX || r->err) return n;
    n++;
    p = fl_log_get_bytes(r, &len);
    if (!p || len != 1 || p[0] != 'z') return n;
    return n + 1;
}

static void test_reader_bounds(void **state)
{
    (void)state;
    fl_buf b;
    fl_buf_init(&b);
    put_all_fields(&b);
    for (size_t cut = 0; cut <= b.len; cut++) {
        uint8_t *c = exact_copy(b.data, cut);
        fl_log_reader r;
        fl_log_reader_init(&r, c, cut);
        int n = get_all_fields(&r);
        assert_true(r.off <= cut);
        if (cut == b.len) {
            assert_int_equal(n, 8);
            assert_int_equal(r.err, 0);
            assert_int_equal(r.off, cut);
        } else {
            assert_true(n < 8);
            assert_int_equal(r.err, 1);
            size_t len = 99;
            assert_null(fl_log_get_bytes(&r, &len));
            assert_int_equal(len, 0);
            assert_true(fl_log_get_u64(&r) == 0);
            assert_true(fl_log_get_double(&r) == 0.0);
        }
        free(c);
    }
    /* A length that claims more than is there. */
    fl_buf_free(&b);
    fl_log_put_varint(&b, 6);
    fl_buf_append(&b, "abcde", 5);
    uint8_t *c = exact_copy(b.data, b.len);
    fl_log_reader r;
    fl_log_reader_init(&r, c, b.len);
    size_t len = 99;
    assert_null(fl_log_get_bytes(&r, &len));
    assert_int_equal(len, 0);
    assert_int_equal(r.err, 1);
    free(c);
    /* Doubles keep their bits, NaN payload and sign of zero included. */
    fl_buf_free(&b);
    uint64_t nan_bits = 0x7ff8000000000123ULL;
    double nan_in;
    memcpy(&nan_in, &nan_bits, 8);
    fl_log_put_double(&b, nan_in);
    fl_log_put_double(&b, -0.0);
    fl_log_reader_init(&r, b.data, b.len);
    double d = fl_log_get_double(&r);
    uint64_t bits;
    memcpy(&bits, &d, 8);
    assert_true(bits == nan_bits);
    d = fl_log_get_double(&r);
    memcpy(&bits, &d, 8);
    assert_true(bits == 0x8000000000000000ULL);
    fl_buf_free(&b);
}

/* ---- argv payloads ---- */

static void test_argv_format(void **state)
{
    (void)state;
    const char *argv[] = {"SET", "k", "v"};
    size_t lens[] = {3, 1, 1};
    fl_buf b;
    fl_buf_init(&b);
    fl_log_argv_encode(&b, 3, argv, lens);
    static const uint8_t want[] = {'A', 3, 3, 'S', 'E', 'T', 1, 'k', 1, 'v'};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    fl_buf_free(&b);
}

/* Encodes a random command, decodes it into a, compares, re-encodes. */
static void argv_roundtrip_one(fl_log_argv *a, int argc, size_t maxlen)
{
    const char **argv = malloc((size_t)argc * sizeof(*argv));
    size_t *lens = malloc((size_t)argc * sizeof(*lens));
    assert_true(argv && lens);
    fl_buf store, b, again;
    fl_buf_init(&store);
    fl_buf_init(&b);
    fl_buf_init(&again);
    for (int i = 0; i < argc; i++) {
        lens[i] = rng_below(maxlen + 1);
        if (lens[i] == 0) continue; /* an empty fl_buf has no data yet */
        rng_fill((uint8_t *)fl_buf_reserve(&store, lens[i]), lens[i]);
        store.len += lens[i];
    }
    size_t pos = 0;
    for (int i = 0; i < argc; i++) {
        argv[i] = store.data ? store.data + pos : "";
        pos += lens[i];
    }
    fl_log_argv_encode(&b, argc, argv, lens);
    uint8_t *p = exact_copy(b.data, b.len);
    assert_int_equal(fl_log_argv_decode(p, b.len, a), 0);
    assert_int_equal(a->argc, argc);
    for (int i = 0; i < argc; i++) {
        assert_int_equal(a->lens[i], lens[i]);
        assert_memory_equal(a->argv[i], argv[i], lens[i]);
        assert_true((const uint8_t *)a->argv[i] >= p);
        assert_true((const uint8_t *)a->argv[i] + lens[i] <= p + b.len);
    }
    fl_log_argv_encode(&again, a->argc, a->argv, a->lens);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);
    free(p);
    free(argv);
    free(lens);
    fl_buf_free(&store);
    fl_buf_free(&b);
    fl_buf_free(&again);
}

static void test_argv_roundtrip(void **state)
{
    (void)state;
    fl_log_argv a = FL_LOG_ARGV_INIT;
    rng_seed(5);
    for (int i = 0; i < 2000; i++)
        argv_roundtrip_one(&a, 1 + (int)rng_below(20), 50);
    argv_roundtrip_one(&a, 3000, 4);
    argv_roundtrip_one(&a, 2, 200000);
    argv_roundtrip_one(&a, 1, 0);
    fl_log_argv_free(&a);
    assert_null(a.argv);
    assert_int_equal(a.cap, 0);
}

static int decode_bytes(fl_log_argv *a, const uint8_t *p, size_t n)
{
    uint8_t *c = exact_copy(p, n);
    int rc = fl_log_argv_decode(c, n, a);
    free(c);
    if (rc != 0) assert_int_equal(a->argc, 0);
    return rc;
}

static void test_argv_malformed(void **state)
{
    (void)state;
    fl_log_argv a = FL_LOG_ARGV_INIT;
    static const uint8_t good[] = {'A', 2, 3, 'G', 'E', 'T', 1, 'k'};
    assert_int_equal(decode_bytes(&a, good, sizeof(good)), 0);
    for (size_t cut = 0; cut < sizeof(good); cut++)
        assert_int_equal(decode_bytes(&a, good, cut), -1);
    static const uint8_t trailing[] = {'A', 1, 1, 'k', 0};
    assert_int_equal(decode_bytes(&a, trailing, sizeof(trailing)), -1);
    static const uint8_t type[] = {'B', 1, 1, 'k'};
    assert_int_equal(decode_bytes(&a, type, sizeof(type)), -1);
    static const uint8_t argc0[] = {'A', 0};
    assert_int_equal(decode_bytes(&a, argc0, sizeof(argc0)), -1);
    static const uint8_t past[] = {'A', 1, 5, 'a', 'b'};
    assert_int_equal(decode_bytes(&a, past, sizeof(past)), -1);
    static const uint8_t many[] = {'A', 5, 0}; /* 5 args, 1 byte left */
    assert_int_equal(decode_bytes(&a, many, sizeof(many)), -1);
    static const uint8_t over_argc[] = {'A', 0x81, 0x00, 1, 'k'};
    assert_int_equal(decode_bytes(&a, over_argc, sizeof(over_argc)), -1);
    static const uint8_t over_len[] = {'A', 1, 0x81, 0x00, 'k'};
    assert_int_equal(decode_bytes(&a, over_len, sizeof(over_len)), -1);
    static const uint8_t huge_len[] = {'A',  1,    0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0x01, 'k'};
    assert_int_equal(decode_bytes(&a, huge_len, sizeof(huge_len)), -1);

    /* argc: FL_LOG_MAX_ARGC empty arguments pass, one more does not. */
    size_t n = 1 + 3 + FL_LOG_MAX_ARGC + 1;
    uint8_t *p = calloc(1, n);
    assert_non_null(p);
    p[0] = 'A';
    p[1] = 0x80, p[2] = 0x80, p[3] = 0x40; /* 1,048,576 */
    assert_int_equal(fl_log_argv_decode(p, n - 1, &a), 0);
    assert_int_equal(a.argc, FL_LOG_MAX_ARGC);
    assert_int_equal(a.lens[FL_LOG_MAX_ARGC - 1], 0);
    p[1] = 0x81; /* 1,048,577 */
    assert_int_equal(fl_log_argv_decode(p, n, &a), -1);
    free(p);

    /* Still usable after failures. */
    assert_int_equal(decode_bytes(&a, good, sizeof(good)), 0);
    assert_int_equal(a.argc, 2);
    fl_log_argv_free(&a);
}

#ifdef FL_LOG_FAULTS
static void test_argv_enomem(void **state)
{
    (void)state;
    static const uint8_t two[] = {'A', 2, 1, 'a', 1, 'b'};
    static const uint8_t five[] = {'A', 5, 0, 0, 0, 0, 1, 'e'};
    fl_log_argv a = FL_LOG_ARGV_INIT;
    for (long k = 1; k <= 2; k++) {
        fl_log_fault_countdown = k;
        assert_int_equal(fl_log_argv_decode(two, sizeof(two), &a), -ENOMEM);
        assert_int_equal(a.argc, 0);
    }
    fl_log_fault_countdown = 0;
    assert_int_equal(fl_log_argv_decode(two, sizeof(two), &a), 0);
    for (long k = 1; k <= 2; k++) {
        fl_log_fault_countdown = k;
        assert_int_equal(fl_log_argv_decode(five, sizeof(five), &a), -ENOMEM);
        fl_log_fault_countdown = 0;
        assert_true(a.cap >= 2);
        /* The old arrays still hold what they held. */
        assert_int_equal(fl_log_argv_decode(two, sizeof(two), &a), 0);
    }
    fl_log_fault_countdown = 1; /* no growth needed: no allocation */
    assert_int_equal(fl_log_argv_decode(two, sizeof(two), &a), 0);
    /* A count the bytes cannot hold is malformed, found before allocating. */
    static const uint8_t liar[] = {'A', 0x80, 0x80, 0x40, 0};
    assert_int_equal(fl_log_argv_decode(liar, sizeof(liar), &a), -1);
    assert_int_equal(fl_log_fault_countdown, 1);
    fl_log_fault_countdown = 0;
    assert_int_equal(fl_log_argv_decode(five, sizeof(five), &a), 0);
    assert_int_equal(a.argc, 5);
    fl_log_argv_free(&a);
}
#else
static void test_argv_enomem(void **state)
{
    (void)state;
    skip(); /* needs -DFL_LOG_FAULTS */
}
#endif

/* ---- files ---- */

typedef struct tmpdir {
    char path[64];
} tmpdir;

static void tmpdir_make(tmpdir *d)
{
    snprintf(d->path, sizeof(d->path), "/tmp/fl_test_log.XXXXXX");
    assert_non_null(mkdtemp(d->path));
}

static void tmpdir_remove(tmpdir *d)
{
    DIR *dir = opendir(d->path);
    assert_non_null(dir);
    struct dirent *e;
    char p[sizeof(d->path) + sizeof(e->d_name) + 1];
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
        assert_int_equal(unlink(p), 0);
    }
    assert_int_equal(closedir(dir), 0);
    assert_int_equal(rmdir(d->path), 0);
}

static void seg_path(const tmpdir *d, uint64_t seq, char *out, size_t n)
{
    assert_int_equal(fl_store_path(out, n, d->path, "log", seq, 0), 0);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void write_file(const char *path, const void *p, size_t n, int append)
{
    int fd =
        open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    assert_int_equal(close(fd), 0);
}

/* Payloads the file tests write: record i is a function of i. */
typedef struct payloads {
    size_t n;
    uint8_t *p[MAX_RECS];
    size_t len[MAX_RECS];
} payloads;

static void payloads_add(payloads *ps, size_t len)
{
    assert_true(ps->n < MAX_RECS);
    ps->p[ps->n] = malloc(len);
    assert_non_null(ps->p[ps->n]);
    rng_fill(ps->p[ps->n], len);
    ps->p[ps->n][0] = (uint8_t)('A' + rng_below(26)); /* a kind letter, as real records */
    ps->len[ps->n++] = len;
}

static void payloads_free(payloads *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        free(ps->p[i]);
    ps->n = 0;
}

/* n random payloads of 1..maxlen bytes from seed; free with payloads_free
 * and free. */
static payloads *payloads_random(unsigned seed, int n, size_t maxlen)
{
    payloads *ps = calloc(1, sizeof(*ps));
    assert_non_null(ps);
    rng_seed(seed);
    for (int i = 0; i < n; i++)
        payloads_add(ps, 1 + rng_below(maxlen));
    return ps;
}

/* Checks each delivered record against ps; returns 7 at stop_at. */
typedef struct expect {
    const payloads *ps;
    size_t next;
    size_t stop_at;
} expect;

static int on_expected(void *ud, const uint8_t *payload, size_t len)
{
    expect *e = ud;
    assert_true(e->next < e->ps->n);
    assert_int_equal(len, e->ps->len[e->next]);
    assert_memory_equal(payload, e->ps->p[e->next], len);
    e->next++;
    return e->stop_at && e->next == e->stop_at ? 7 : 0;
}

static void read_expect(const char *path, const payloads *ps, int cut,
                        fl_log_report *rep, int status, uint64_t records)
{
    expect e = {ps, 0, 0};
    assert_int_equal(fl_log_read_file(path, 1, on_expected, &e, cut, rep), 0);
    assert_int_equal(rep->status, status);
    assert_int_equal(rep->records, records);
    assert_int_equal(e.next, records);
    assert_true(rep->reason[0] != '\0');
}

/* Writes ps[from..) through w, checking the byte accounting. */
static void wal_put(fl_wal *w, const payloads *ps, size_t from)
{
    uint64_t before = fl_wal_file_bytes(w), framed = 0;
    for (size_t i = from; i < ps->n; i++) {
        assert_int_equal(fl_wal_append(w, ps->p[i], ps->len[i]), 0);
        framed += FL_LOG_FRAME_LEN + ps->len[i];
    }
    assert_int_equal(fl_wal_pending(w), framed);
    assert_int_equal(fl_wal_write(w), 0);
    assert_int_equal(fl_wal_pending(w), 0);
    assert_int_equal(fl_wal_sync(w), 0);
    assert_int_equal(fl_wal_file_bytes(w), before + framed);
}

static void write_segment(const tmpdir *d, uint64_t seq, const payloads *ps)
{
    fl_wal *w = NULL;
    char err[256];
    assert_int_equal(fl_wal_open(&w, d->path, seq, err, sizeof(err)), 0);
    wal_put(w, ps, 0);
    assert_int_equal(fl_wal_close(w), 0);
}

/* The file layer's whole cycle: write, tear, recover, append, read. */
static void check_torn_tail(const tmpdir *d, payloads *ps, size_t tear)
{
    char path[256], err[256];
    fl_log_report rep;
    seg_path(d, 1, path, sizeof(path));
    uint64_t good = file_size(path);
    size_t n = ps->n;
    payloads_add(ps, 64);
    fl_buf half;
    fl_buf_init(&half);
    assert_int_equal(fl_log_frame(&half, ps->p[n], ps->len[n]), 0);
    assert_true(tear < half.len);
    write_file(path, half.data, tear, 1);

    read_expect(path, ps, 0, &rep, FL_LOG_TORN, n);
    assert_int_equal(rep.good_bytes, good);
    assert_int_equal(rep.file_bytes, good + tear);
    assert_int_equal(rep.cut, 0);
    assert_int_equal(file_size(path), good + tear);
    read_expect(path, ps, 1, &rep, FL_LOG_TORN, n);
    assert_int_equal(rep.cut, 1);
    assert_int_equal(file_size(path), good);

    fl_wal *w = NULL;
    assert_int_equal(fl_wal_open(&w, d->path, 1, err, sizeof(err)), 0);
    assert_int_equal(fl_wal_file_bytes(w), good);
    wal_put(w, ps, n);
    assert_int_equal(fl_wal_records(w), 1);
    assert_int_equal(fl_wal_close(w), 0);
    read_expect(path, ps, 0, &rep, FL_LOG_END, n + 1);
    assert_int_equal(rep.good_bytes, file_size(path));
    fl_buf_free(&half);
}

static void test_wal_torn_tail(void **state)
{
    (void)state;
    static const size_t tears[] = {1, 3, 4, 11, 12, 13, 40, 75};
    payloads *ps = payloads_random(6, 50, 200);
    tmpdir d;
    tmpdir_make(&d);
    write_segment(&d, 1, ps);
    char path[256];
    fl_log_report rep;
    seg_path(&d, 1, path, sizeof(path));
    read_expect(path, ps, 0, &rep, FL_LOG_END, 50);
    assert_int_equal(rep.good_bytes, file_size(path));
    assert_int_equal(rep.file_bytes, rep.good_bytes);
    for (size_t i = 0; i < sizeof(tears) / sizeof(tears[0]); i++)
        check_torn_tail(&d, ps, tears[i]);
    payloads_free(ps);
    free(ps);
    tmpdir_remove(&d);
}

static int on_any(void *ud, const uint8_t *payload, size_t len);

/* A cut CORRUPT tail was kept: bytes [good, size) of the file as it was. */
static void check_kept(const fl_log_report *rep, const char *seg, uint64_t good,
                       uint64_t size)
{
    char want[300];
    snprintf(want, sizeof(want), "%s.damaged-%llu", seg, (unsigned long long)good);
    assert_string_equal(rep->kept, want);
    assert_int_equal(file_size(rep->kept), size - good);
    assert_int_equal(unlink(rep->kept), 0);
}

/* Damages one byte of record k (at `within` from its start). */
static void check_corrupt(size_t k, size_t within)
{
    payloads *ps = payloads_random(7, 20, 100);
    tmpdir d;
    tmpdir_make(&d);
    write_segment(&d, 1, ps);
    char path[256];
    seg_path(&d, 1, path, sizeof(path));
    uint64_t at = FL_LOG_HEADER_LEN, size = file_size(path);
    for (size_t i = 0; i < k; i++)
        at += FL_LOG_FRAME_LEN + ps->len[i];
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, (off_t)(at + within)), 1);
    byte ^= 0x20;
    assert_int_equal(pwrite(fd, &byte, 1, (off_t)(at + within)), 1);
    assert_int_equal(close(fd), 0);

    fl_log_report rep;
    read_expect(path, ps, 0, &rep, FL_LOG_CORRUPT, k);
    assert_int_equal(rep.good_bytes, at);
    assert_int_equal(rep.file_bytes, size);
    assert_int_equal(rep.good_after, 0); /* searched only when cutting */
    assert_int_equal(file_size(path), size);
    /* Good records after the damaged one: the file is not cut (they may
     * be acknowledged writes), and the report says where they start. */
    read_expect(path, ps, 1, &rep, FL_LOG_CORRUPT, k);
    if (k + 1 == ps->n) { /* nothing good after it: cut, the bytes kept */
        assert_int_equal(rep.good_after, 0);
        assert_int_equal(rep.cut, 1);
        assert_int_equal(file_size(path), at);
        check_kept(&rep, path, at, size);
    } else {
        assert_int_equal(rep.cut, 0);
        assert_int_equal(rep.unwritten_page, 0);
        assert_int_equal(rep.good_after, at + FL_LOG_FRAME_LEN + ps->len[k]);
        assert_int_equal(file_size(path), size);
    }
    payloads_free(ps);
    free(ps);
    tmpdir_remove(&d);
}

static void test_wal_corrupt_middle(void **state)
{
    (void)state;
    check_corrupt(7, FL_LOG_FRAME_LEN); /* payload byte */
    check_corrupt(3, 5);                /* checksum byte */
    check_corrupt(12, 0);               /* length byte */
    check_corrupt(0, FL_LOG_FRAME_LEN);
    check_corrupt(19, FL_LOG_FRAME_LEN); /* the last record */
}

/* What a power loss can leave in the unsynced tail: part of a record, then
 * an unwritten page (zeros), then later pages that did reach the disk. No
 * good record past an unwritten page was synced, so the tail is cut; the
 * same damage without a whole zero page is not. */
static void test_wal_unwritten_page(void **state)
{
    (void)state;
    payloads *ps = payloads_random(8, 10, 100);
    tmpdir d;
    tmpdir_make(&d);
    char path[256];
    seg_path(&d, 1, path, sizeof(path));
    for (int zeros = 0; zeros < 2; zeros++) {
        write_segment(&d, 1, ps);
        uint64_t good = file_size(path);
        fl_buf tail;
        fl_buf_init(&tail);
        assert_int_equal(fl_log_frame(&tail, ps->p[0], ps->len[0]), 0);
        size_t torn = tail.len / 2;
        write_file(path, tail.data, torn, 1); /* half a record */
        size_t gap = zeros ? 2 * 4096 : 100;  /* two pages: one is aligned */
        uint8_t *fill = calloc(1, gap);
        assert_non_null(fill);
        if (!zeros) memset(fill, 0x5A, gap);
        write_file(path, fill, gap, 1);
        free(fill);
        write_file(path, tail.data, tail.len, 1); /* a good record again */
        uint64_t size = file_size(path);
        fl_log_report rep;
        uint64_t n = 0;
        assert_int_equal(fl_log_read_file(path, 1, on_any, &n, 1, &rep), 0);
        assert_int_equal(n, 10);
        assert_int_equal(rep.good_bytes, good);
        assert_int_equal(rep.good_after, good + torn + gap);
        assert_int_equal(rep.unwritten_page, zeros);
        assert_int_equal(rep.cut, zeros);
        assert_int_equal(file_size(path), zeros ? good : size);
        if (zeros) check_kept(&rep, path, good, size);
        fl_buf_free(&tail);
        assert_int_equal(unlink(path), 0);
    }

    /* The page where the damage starts kept its older copy: zeros from the
     * damage to the page's end, then a later page that did reach the disk. */
    write_segment(&d, 1, ps);
    uint64_t good = file_size(path);
    size_t to_page = 4096 - (size_t)(good % 4096);
    uint8_t *fill = calloc(1, to_page);
    assert_non_null(fill);
    write_file(path, fill, to_page, 1);
    free(fill);
    fl_buf later;
    fl_buf_init(&later);
    assert_int_equal(fl_log_frame(&later, ps->p[1], ps->len[1]), 0);
    write_file(path, later.data, later.len, 1);
    uint64_t size = file_size(path);
    fl_log_report rep;
    uint64_t n = 0;
    assert_int_equal(fl_log_read_file(path, 1, on_any, &n, 1, &rep), 0);
    assert_int_equal(rep.status, FL_LOG_CORRUPT);
    assert_int_equal(rep.good_after, good + to_page);
    assert_int_equal(rep.unwritten_page, 1);
    assert_int_equal(rep.cut, 1);
    check_kept(&rep, path, good, size);
    assert_int_equal(unlink(path), 0);

    /* A torn record (the file ends inside it) whose payload holds a whole
     * valid frame, as a client's value may: still a torn tail, cut. */
    write_segment(&d, 1, ps);
    good = file_size(path);
    fl_buf outer;
    fl_buf_init(&outer);
    uint8_t *inner = malloc(later.len + 40);
    assert_non_null(inner);
    inner[0] = 'A';
    memcpy(inner + 1, later.data, later.len);
    memset(inner + 1 + later.len, 'x', 39);
    assert_int_equal(fl_log_frame(&outer, inner, later.len + 40), 0);
    write_file(path, outer.data, outer.len - 20, 1);
    n = 0;
    assert_int_equal(fl_log_read_file(path, 1, on_any, &n, 1, &rep), 0);
    assert_int_equal(rep.status, FL_LOG_TORN);
    assert_int_equal(rep.good_after, 0);
    assert_int_equal(rep.cut, 1);
    assert_int_equal(file_size(path), good);
    free(inner);
    fl_buf_free(&outer);
    fl_buf_free(&later);
    assert_int_equal(unlink(path), 0);
    payloads_free(ps);
    free(ps);
    tmpdir_remove(&d);
}

static int on_any(void *ud, const uint8_t *payload, size_t len)
{
    (void)payload;
    (void)len;
    (*(uint64_t *)ud)++;
    return 0;
}

static void read_status(const char *path, uint32_t kind, int cut,
                        int want_status, uint64_t want_good)
{
    fl_log_report rep;
    uint64_t n = 0;
    assert_int_equal(fl_log_read_file(path, kind, on_any, &n, cut, &rep), 0);
    assert_int_equal(rep.status, want_status);
    assert_int_equal(rep.good_bytes, want_good);
    assert_int_equal(rep.cut, 0);
    assert_int_equal(n, 0);
}

static void test_read_file_edges(void **state)
{
    (void)state;
    tmpdir d;
    tmpdir_make(&d);
    char path[256], err[256];
    uint8_t h[16];
    fl_wal *w = NULL;
    seg_path(&d, 5, path, sizeof(path));

    write_file(path, "", 0, 0); /* empty: valid and empty */
    read_status(path, 1, 1, FL_LOG_END, 0);
    assert_int_equal(fl_wal_open(&w, d.path, 5, err, sizeof(err)), 0);
    assert_int_equal(fl_wal_file_bytes(w), 16);
    assert_int_equal(fl_wal_close(w), 0);
    assert_int_equal(file_size(path), 16);
    read_status(path, 1, 0, FL_LOG_END, 16); /* header only */

    fl_log_header(h, FL_LOG_KIND_SEGMENT);
    write_file(path, h, 10, 0); /* short header: never cut */
    read_status(path, 1, 1, FL_LOG_CORRUPT, 0);
    assert_int_equal(file_size(path), 10);
    assert_int_equal(fl_wal_open(&w, d.path, 5, err, sizeof(err)), -EBADMSG);
    assert_null(w);
    assert_true(err[0] != '\0');

    h[3] = 'X'; /* wrong magic */
    write_file(path, h, 16, 0);
    read_status(path, 1, 1, FL_LOG_CORRUPT, 0);
    assert_int_equal(file_size(path), 16);
    assert_int_equal(fl_wal_open(&w, d.path, 5, err, sizeof(err)), -EBADMSG);

    fl_log_header(h, FL_LOG_KIND_SNAPSHOT); /* the wrong kind */
    write_file(path, h, 16, 0);
    read_status(path, 1, 1, FL_LOG_CORRUPT, 0);
    read_status(path, 2, 0, FL_LOG_END, 16);
    read_status(path, 0, 0, FL_LOG_END, 16);
    assert_int_equal(fl_wal_open(&w, d.path, 5, err, sizeof(err)), -EBADMSG);

    fl_log_report rep;
    seg_path(&d, 6, path, sizeof(path));
    assert_int_equal(fl_log_read_file(path, 1, on_any, NULL, 0, &rep), -ENOENT);
    assert_int_equal(fl_wal_open(&w, d.path, 0, err, sizeof(err)), -EINVAL);
    assert_int_equal(fl_wal_open(&w, "/nonexistent/fl", 1, err, sizeof(err)),
                     -ENOENT);
    assert_int_equal(fl_fsync_dir(d.path), 0);
    assert_int_equal(fl_fsync_dir("/nonexistent/fl"), -ENOENT);
    tmpdir_remove(&d);
}

static void test_read_file_stop(void **state)
{
    (void)state;
    payloads *ps = payloads_random(8, 10, 20);
    tmpdir d;
    tmpdir_make(&d);
    write_segment(&d, 1, ps);
    char path[256];
    seg_path(&d, 1, path, sizeof(path));
    expect e = {ps, 0, 3};
    fl_log_report rep;
    assert_int_equal(fl_log_read_file(path, 1, on_expected, &e, 1, &rep), 7);
    assert_int_equal(rep.status, FL_LOG_OK);
    assert_int_equal(rep.records, 2);
    assert_int_equal(e.next, 3);
    assert_int_equal(rep.cut, 0);
    payloads_free(ps);
    free(ps);
    tmpdir_remove(&d);
}

/* Records larger than the reader's first buffer, and many small records
 * across its refills. */
static void test_read_file_large(void **state)
{
    (void)state;
    payloads *ps = calloc(1, sizeof(*ps));
    assert_non_null(ps);
    tmpdir d;
    tmpdir_make(&d);
    rng_seed(9);
    payloads_add(ps, 3u << 20);
    payloads_add(ps, 10);
    payloads_add(ps, (3u << 19) + 7);
    for (int i = 0; i < 3000; i++)
        payloads_add(ps, 1 + rng_below(1000));
    payloads_add(ps, 2u << 20);
    write_segment(&d, 1, ps);
    char path[256];
    seg_path(&d, 1, path, sizeof(path));
    fl_log_report rep;
    read_expect(path, ps, 0, &rep, FL_LOG_END, ps->n);

    /* Tear the last (2 MiB) record in half. */
    uint64_t size = file_size(path);
    uint64_t good = size - FL_LOG_FRAME_LEN - ps->len[ps->n - 1];
    assert_int_equal(truncate(path, (off_t)(good + (1u << 20))), 0);
    read_expect(path, ps, 1, &rep, FL_LOG_TORN, ps->n - 1);
    assert_int_equal(rep.good_bytes, good);
    assert_int_equal(file_size(path), good);
    payloads_free(ps);
    free(ps);
    tmpdir_remove(&d);
}

static void touch(const tmpdir *d, const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", d->path, name);
    write_file(p, "", 0, 0);
}

static void test_store_scan(void **state)
{
    (void)state;
    static const char *names[] = {"log.0000000003",
                                  "log.0000000001",
                                  "log.0000000010",
                                  "log.0000000002.tmp",
                                  "snapshot.0000000002",
                                  "snapshot.0000000004",
                                  "snapshot.0000000005.tmp",
                                  "snapshot.0000000000",
                                  "log.0000000000",
                                  "foo",
                                  "log.12",
                                  "log.00000000011",
                                  "log.12345678901",
                                  "log.000000000x",
                                  "logx.0000000004",
                                  "log.",
                                  "snapshot.000000009",
                                  "log.99999999999999999999",
                                  "log.1234567891.tmp",
                                  "snapshot.1234567890.tmp"};
    tmpdir d;
    tmpdir_make(&d);
    fl_store_files f;
    char err[256];
    assert_int_equal(fl_store_scan(d.path, &f, err, sizeof(err)), 0);
    assert_int_equal(f.snapshot, 0);
    assert_int_equal(f.nsegments, 0);
    fl_store_files_free(&f);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        touch(&d, names[i]);
    assert_int_equal(fl_store_scan(d.path, &f, err, sizeof(err)), 0);
    assert_int_equal(f.snapshot, 4);
    static const uint64_t want[] = {1, 3, 10, 12345678901ULL};
    assert_int_equal(f.nsegments, 4);
    for (size_t i = 0; i < 4; i++)
        assert_true(f.segments[i] == want[i]);
    assert_int_equal(f.nsnapshots, 2);
    assert_true(f.snapshots[0] == 2 && f.snapshots[1] == 4);
    fl_store_files_free(&f);
    assert_null(f.segments);
    assert_null(f.snapshots);

    assert_int_equal(fl_store_scan("/nonexistent/fl", &f, err, sizeof(err)),
                     -ENOENT);
    assert_true(err[0] != '\0');
    assert_int_equal(f.nsegments, 0);

    char p[64];
    assert_int_equal(fl_store_path(p, sizeof(p), "d", "log", 1, 0), 0);
    assert_string_equal(p, "d/log.0000000001");
    assert_int_equal(fl_store_path(p, sizeof(p), "d", "snapshot", 2, 1), 0);
    assert_string_equal(p, "d/snapshot.0000000002.tmp");
    assert_int_equal(fl_store_path(p, 16, "d", "log", 1, 0), -ENAMETOOLONG);
    tmpdir_remove(&d);
}

static void test_wal_rotate(void **state)
{
    (void)state;
    payloads *ps = calloc(1, sizeof(*ps));
    assert_non_null(ps);
    tmpdir d;
    tmpdir_make(&d);
    rng_seed(10);
    char path[256], err[256];
    fl_log_report rep;
    fl_wal *w = NULL;
    for (int i = 0; i < 3; i++)
        payloads_add(ps, 1 + rng_below(50));
    assert_int_equal(fl_wal_open(&w, d.path, 1, err, sizeof(err)), 0);
    for (size_t i = 0; i < ps->n; i++)
        assert_int_equal(fl_wal_append(w, ps->p[i], ps->len[i]), 0);
    assert_int_equal(fl_wal_rotate(w, err, sizeof(err)), 0);
    assert_int_equal(fl_wal_seq(w), 2);
    assert_int_equal(fl_wal_file_bytes(w), FL_LOG_HEADER_LEN);
    assert_int_equal(fl_wal_pending(w), 0);
    assert_true(fl_wal_fd(w) >= 0);
    seg_path(&d, 1, path, sizeof(path));
    read_expect(path, ps, 0, &rep, FL_LOG_END, 3);
    seg_path(&d, 2, path, sizeof(path));
    assert_int_equal(file_size(path), FL_LOG_HEADER_LEN);
    assert_int_equal(fl_wal_append(w, "x", 0), -EMSGSIZE);
    assert_int_equal(fl_wal_append(w, "x", 1), 0);
    assert_int_equal(fl_wal_records(w), 4);
    assert_int_equal(fl_wal_rotate(w, err, sizeof(err)), 0);
    assert_int_equal(fl_wal_close(w), 0);

    /* log.5 already holds records: rotating onto it is refused. */
    write_segment(&d, 5, ps);
    assert_int_equal(fl_wal_open(&w, d.path, 4, err, sizeof(err)), 0);
    assert_int_equal(fl_wal_rotate(w, err, sizeof(err)), -EEXIST);
    assert_true(err[0] != '\0');
    assert_int_equal(fl_wal_seq(w), 4);
    wal_put(w, ps, 0); /* still usable */
    assert_int_equal(fl_wal_close(w), 0);
    seg_path(&d, 4, path, sizeof(path));
    read_expect(path, ps, 0, &rep, FL_LOG_END, 3);

    fl_store_files f;
    assert_int_equal(fl_store_scan(d.path, &f, err, sizeof(err)), 0);
    static const uint64_t want[] = {1, 2, 3, 4, 5};
    assert_int_equal(f.nsegments, 5);
    for (size_t i = 0; i < 5; i++)
        assert_true(f.segments[i] == want[i]);
    fl_store_files_free(&f);
    payloads_free(ps);
    free(ps);
    tmpdir_remove(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_frame_roundtrip),
        cmocka_unit_test(test_frame_limits),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_varint),
        cmocka_unit_test(test_reader_bounds),
        cmocka_unit_test(test_argv_format),
        cmocka_unit_test(test_argv_roundtrip),
        cmocka_unit_test(test_argv_malformed),
        cmocka_unit_test(test_argv_enomem),
        cmocka_unit_test(test_wal_torn_tail),
        cmocka_unit_test(test_wal_corrupt_middle),
        cmocka_unit_test(test_wal_unwritten_page),
        cmocka_unit_test(test_read_file_edges),
        cmocka_unit_test(test_read_file_stop),
        cmocka_unit_test(test_read_file_large),
        cmocka_unit_test(test_store_scan),
        cmocka_unit_test(test_wal_rotate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
