/*
 * fuzz_log.c - libFuzzer target for the write-ahead log codec.
 *
 * The input is a log file's body. After the header check, two walks:
 *  - the real one, fl_log_next record by record: every OK record must lie
 *    inside the input, framing it again must give back its exact bytes, and
 *    a non-OK status must leave the offset alone;
 *  - one that follows the declared lengths without checking sums, because
 *    the fuzzer cannot forge XXH3 checksums and would otherwise never reach
 *    the payload decoder with interesting bytes.
 * Each payload starting with 'A' is decoded from a copy of its exact size
 * (so ASan sees any read past it); a decoded argv must point inside it and
 * re-encode to the same bytes. Last, the body after the header is read as a
 * stream of snapshot fields chosen by its own bytes, checking the bounded
 * reader's offsets.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/log.h"

static void check_argv(const fl_log_argv *a, const uint8_t *p, size_t n)
{
    if (a->argc < 1 || a->argc > FL_LOG_MAX_ARGC) abort();
    for (int i = 0; i < a->argc; i++) {
        const uint8_t *arg = (const uint8_t *)a->argv[i];
        if (arg < p || a->lens[i] > n || arg + a->lens[i] > p + n) abort();
    }
    fl_buf again;
    fl_buf_init(&again);
    fl_log_argv_encode(&again, a->argc, a->argv, a->lens);
    if (again.len != n || memcmp(again.data, p, n) != 0) abort();
    fl_buf_free(&again);
}

static void decode_payload(const uint8_t *payload, size_t n, fl_log_argv *a)
{
    if (n == 0 || payload[0] != 'A') return;
    uint8_t *copy = malloc(n);
    if (!copy) return;
    memcpy(copy, payload, n);
    int rc = fl_log_argv_decode(copy, n, a);
    if (rc == 0)
        check_argv(a, copy, n);
    else if ((rc != -1 && rc != -ENOMEM) || a->argc != 0)
        abort();
    free(copy);
}

static void check_reframe(const uint8_t *rec, const uint8_t *p, size_t n)
{
    fl_buf f;
    fl_buf_init(&f);
    if (fl_log_frame(&f, p, n) != 0) abort();
    if (f.len != FL_LOG_FRAME_LEN + n || memcmp(f.data, rec, f.len) != 0)
        abort();
    fl_buf_free(&f);
}

static void walk_records(const uint8_t *buf, size_t len, fl_log_argv *a)
{
    size_t off = FL_LOG_HEADER_LEN;
    for (;;) {
        size_t before = off, plen = 0;
        const uint8_t *p = NULL;
        int st = fl_log_next(buf, len, &off, &p, &plen);
        if (st != FL_LOG_OK) {
            if (off != before || (st == FL_LOG_END && off != len)) abort();
            if (st != FL_LOG_END && st != FL_LOG_TORN && st != FL_LOG_CORRUPT)
                abort();
            return;
        }
        if (p != buf + before + FL_LOG_FRAME_LEN || plen == 0 ||
            plen > FL_LOG_MAX_RECORD || off > len ||
            off - before != FL_LOG_FRAME_LEN + plen)
            abort();
        check_reframe(buf + before, p, plen);
        decode_payload(p, plen, a);
    }
}

static void walk_unchecked(const uint8_t *buf, size_t len, fl_log_argv *a)
{
    size_t off = FL_LOG_HEADER_LEN;
    while (len - off >= FL_LOG_FRAME_LEN) {
        const uint8_t *f = buf + off;
        size_t n = (size_t)f[0] | (size_t)f[1] << 8 | (size_t)f[2] << 16 |
                   (size_t)f[3] << 24;
        if (n == 0 || n > len - off - FL_LOG_FRAME_LEN) return;
        decode_payload(f + FL_LOG_FRAME_LEN, n, a);
        off += FL_LOG_FRAME_LEN + n;
    }
}

/* Reads fields chosen by the data itself until the reader fails. */
static void walk_fields(const uint8_t *p, size_t n)
{
    fl_log_reader r;
    fl_log_reader_init(&r, p, n);
    while (!r.err) {
        size_t before = r.off, len = 0;
        const uint8_t *b;
        switch (fl_log_get_u8(&r) % 5) {
        case 0:
            (void)fl_log_get_u8(&r);
            break;
        case 1:
            (void)fl_log_get_varint(&r);
            break;
        case 2:
            (void)fl_log_get_u64(&r);
            break;
        case 3:
            (void)fl_log_get_double(&r);
            break;
        default:
            b = fl_log_get_bytes(&r, &len);
            if (b && (b < p || len > n || b + len > p + n)) abort();
            if (!b && (len != 0 || !r.err)) abort();
        }
        if (r.off > n || (!r.err && r.off <= before)) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t kind = 0;
    if (fl_log_check_header(data, size, &kind) != 0) return 0;
    if (kind != FL_LOG_KIND_SEGMENT && kind != FL_LOG_KIND_SNAPSHOT) abort();
    fl_log_argv a = FL_LOG_ARGV_INIT;
    walk_records(data, size, &a);
    walk_unchecked(data, size, &a);
    fl_log_argv_free(&a);
    walk_fields(data + FL_LOG_HEADER_LEN, size - FL_LOG_HEADER_LEN);
    return 0;
}
