/*
 * log.c - encoder and decoder for the write-ahead log format (see log.h for
 * the format and its invariants).
 *
 * Every read is checked against the bytes that remain before it happens,
 * with subtractions that cannot wrap (remaining = len - off, never
 * off + n <= len), because the input is a file that a crash or a disk may
 * have damaged in any way. Integers are assembled byte by byte, so the code
 * is independent of host byte order and alignment. The argv decoder is a
 * reusable core and returns -ENOMEM instead of aborting; the writers append
 * to an fl_buf and follow the server's abort-on-OOM policy.
 */
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#ifdef FL_LOG_FAULTS
/* Test builds only (-DFL_LOG_FAULTS): when set to k > 0, the k-th
 * allocation from now fails, so tests can reach every -ENOMEM path. */
long fl_log_fault_countdown;

static int fault_now(void)
{
    return fl_log_fault_countdown > 0 && --fl_log_fault_countdown == 0;
}

static void *log_realloc(void *p, size_t n)
{
    return fault_now() ? NULL : realloc(p, n);
}
#else
#define log_realloc realloc
#endif

/* ---- little-endian integers ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- header ---- */

void fl_log_header(uint8_t out[16], uint32_t kind)
{
    memcpy(out, FL_LOG_MAGIC, 8);
    put_le32(out + 8, FL_LOG_VERSION);
    put_le32(out + 12, kind);
}

int fl_log_check_header(const uint8_t *p, size_t n, uint32_t *kind)
{
    if (n < FL_LOG_HEADER_LEN) return -1;
    if (memcmp(p, FL_LOG_MAGIC, 8) != 0) return -1;
    if (get_le32(p + 8) != FL_LOG_VERSION) return -1;
    uint32_t k = get_le32(p + 12);
    if (k != FL_LOG_KIND_SEGMENT && k != FL_LOG_KIND_SNAPSHOT) return -1;
    if (kind) *kind = k;
    return 0;
}

/* ---- framing ---- */

static uint64_t record_sum(const void *payload, size_t len)
{
    uint64_t seed = (uint64_t)len * 0x9E3779B97F4A7C15ULL + 0x5EED;
    return XXH3_64bits_withSeed(payload, len, seed);
}

int fl_log_frame(fl_buf *out, const void *payload, size_t len)
{
    if (len == 0 || len > FL_LOG_MAX_RECORD) return -EMSGSIZE;
    uint8_t *p = (uint8_t *)fl_buf_reserve(out, FL_LOG_FRAME_LEN + len);
    put_le32(p, (uint32_t)len);
    put_le64(p + 4, record_sum(payload, len));
    memcpy(p + FL_LOG_FRAME_LEN, payload, len);
    out->len += FL_LOG_FRAME_LEN + len;
    return 0;
}

int fl_log_next(const uint8_t *buf, size_t len, size_t *off,
                const uint8_t **payload, size_t *plen)
{
    if (*off > len) return FL_LOG_CORRUPT; /* caller bug: never read */
    size_t left = len - *off;
    if (left == 0) return FL_LOG_END;
    if (left < 4) return FL_LOG_TORN;
    const uint8_t *rec = buf + *off;
    uint32_t n = get_le32(rec);
    if (n == 0 || n > FL_LOG_MAX_RECORD) return FL_LOG_CORRUPT;
    if (left < FL_LOG_FRAME_LEN || left - FL_LOG_FRAME_LEN < n)
        return FL_LOG_TORN;
    const uint8_t *body = rec + FL_LOG_FRAME_LEN;
    if (get_le64(rec + 4) != record_sum(body, n)) return FL_LOG_CORRUPT;
    *payload = body;
    *plen = n;
    *off += FL_LOG_FRAME_LEN + n;
    return FL_LOG_OK;
}

/* ---- binary fields ---- */

void fl_log_put_u8(fl_buf *b, uint8_t v)
{
    fl_buf_append(b, &v, 1);
}

void fl_log_put_varint(fl_buf *b, uint64_t v)
{
    uint8_t tmp[FL_LOG_VARINT_MAX];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    fl_buf_append(b, tmp, n);
}

void fl_log_put_u64(fl_buf *b, uint64_t v)
{
    uint8_t tmp[8];
    put_le64(tmp, v);
    fl_buf_append(b, tmp, 8);
}

void fl_log_put_double(fl_buf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    fl_log_put_u64(b, bits);
}

void fl_log_put_bytes(fl_buf *b, const void *p, size_t n)
{
    fl_log_put_varint(b, (uint64_t)n);
    fl_buf_append(b, p, n);
}

void fl_log_reader_init(fl_log_reader *r, const void *p, size_t n)
{
    r->p = p;
    r->n = n;
    r->off = 0;
    r->err = 0;
}

static int reader_fail(fl_log_reader *r)
{
    r->err = 1;
    return 0;
}

/* True when n more bytes can be read; sets err otherwise. */
static int reader_has(fl_log_reader *r, size_t n)
{
    if (r->err) return 0;
    if (r->off > r->n || r->n - r->off < n) return reader_fail(r);
    return 1;
}

uint8_t fl_log_get_u8(fl_log_reader *r)
{
    if (!reader_has(r, 1)) return 0;
    return r->p[r->off++];
}

/* The 10th byte may only carry bit 63 (value 0 or 1); a last byte of 0
 * after a continuation is an overlong encoding. Both are rejected so that
 * every value has exactly one encoding. */
uint64_t fl_log_get_varint(fl_log_reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < FL_LOG_VARINT_MAX; i++) {
        if (!reader_has(r, 1)) return 0;
        uint8_t byte = r->p[r->off++];
        if (i == FL_LOG_VARINT_MAX - 1 && byte > 1) return reader_fail(r);
        v |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            if (byte == 0 && i > 0) return reader_fail(r);
            return v;
        }
    }
    return reader_fail(r); /* not reached: the 10th byte ends the loop */
}

uint64_t fl_log_get_u64(fl_log_reader *r)
{
    if (!reader_has(r, 8)) return 0;
    uint64_t v = get_le64(r->p + r->off);
    r->off += 8;
    return v;
}

double fl_log_get_double(fl_log_reader *r)
{
    uint64_t bits = fl_log_get_u64(r);
    double v;
    memcpy(&v, &bits, sizeof(v));
    return r->err ? 0.0 : v;
}

const uint8_t *fl_log_get_bytes(fl_log_reader *r, size_t *len)
{
    *len = 0;
    uint64_t n = fl_log_get_varint(r);
    if (r->err) return NULL;
    if (n > r->n - r->off) { /* off <= n holds while err is 0 */
        reader_fail(r);
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += (size_t)n;
    *len = (size_t)n;
    return p;
}

/* ---- argv payloads ---- */

void fl_log_argv_encode(fl_buf *out, int argc, const char **argv,
                        const size_t *lens)
{
    assert(argc >= 1 && argc <= FL_LOG_MAX_ARGC);
    fl_log_put_u8(out, 'A');
    fl_log_put_varint(out, (uint64_t)argc);
    for (int i = 0; i < argc; i++)
        fl_log_put_bytes(out, argv[i], lens[i]);
}

/* Grows a's arrays to hold argc entries. On failure a keeps whichever
 * array did grow (still valid) and its old cap, which is never more than
 * either array holds. */
static int argv_reserve(fl_log_argv *a, size_t argc)
{
    if (a->cap >= argc) return 0;
    const char **argv = log_realloc(a->argv, argc * sizeof(*argv));
    if (!argv) return -ENOMEM;
    a->argv = argv;
    size_t *lens = log_realloc(a->lens, argc * sizeof(*lens));
    if (!lens) return -ENOMEM;
    a->lens = lens;
    a->cap = argc;
    return 0;
}

int fl_log_argv_decode(const uint8_t *p, size_t n, fl_log_argv *a)
{
    fl_log_reader r;
    fl_log_reader_init(&r, p, n);
    a->argc = 0;
    if (fl_log_get_u8(&r) != 'A') return -1;
    uint64_t argc = fl_log_get_varint(&r);
    /* Each argument takes at least its one-byte length: a count larger
     * than the bytes left is malformed, and is refused before allocating. */
    if (r.err || argc == 0 || argc > FL_LOG_MAX_ARGC || argc > n - r.off)
        return -1;
    int rc = argv_reserve(a, (size_t)argc);
    if (rc != 0) return rc;
    for (size_t i = 0; i < argc; i++) {
        size_t len;
        const uint8_t *arg = fl_log_get_bytes(&r, &len);
        if (!arg) return -1;
        a->argv[i] = (const char *)arg;
        a->lens[i] = len;
    }
    if (r.off != n) return -1;
    a->argc = (int)argc;
    return 0;
}

void fl_log_argv_free(fl_log_argv *a)
{
    free(a->argv);
    free(a->lens);
    a->argc = 0;
    a->argv = NULL;
    a->lens = NULL;
    a->cap = 0;
}
