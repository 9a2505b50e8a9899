/*
 * log.h - the write-ahead log's byte format: file header, record framing,
 * command (argv) payloads and the small binary field codec that snapshots
 * use. Pure codec: no I/O, no clock, no global state (wal.h does the files).
 *
 * Why it is shaped so: recovery must tell "the process died while writing
 * the last record" (normal, cut it and go on) from "bytes we once wrote
 * are now different" (a disk or a bug: say so loudly). So every record
 * carries its length and a checksum over its payload, and the reader
 * reports those two cases apart. Commands are logged as their argv, like
 * Redis' AOF, so replay goes through the same command table as a client.
 *
 * ---- Format (all integers little-endian) ----
 *
 *   file    = header record*
 *   header  = "FLEETLOG" (8 bytes) | u32 version (1) | u32 kind
 *             kind 1 = log segment, 2 = snapshot
 *   record  = u32 len | u64 sum | payload (len bytes)
 *             1 <= len <= FL_LOG_MAX_RECORD (64 MiB)
 *             sum = XXH3_64bits_withSeed(payload, len,
 *                       len * 0x9E3779B97F4A7C15 + 0x5EED)
 *
 * The checksum's seed is derived from the length, so a damaged length
 * field fails the checksum too (or makes the record run past the end of
 * the file, which is TORN); the frame header needs no checksum of its own.
 *
 *   argv payload = 'A' | varint argc (1..1,048,576) | (varint len | bytes)*
 *   varint       = unsigned LEB128, at most 10 bytes, minimal (no
 *                  redundant 0x80 continuation bytes), value < 2^64
 *
 * Only one encoding of each value is accepted, so decode(encode(x)) == x
 * and encode(decode(b)) == b for every accepted b.
 *
 * ---- What the reader reports at each position ----
 *
 *   OK       a whole record whose checksum matches.
 *   END      no bytes left: the file ends on a record boundary.
 *   TORN     the bytes left are a prefix of a record (a frame header
 *            shorter than 12 bytes, or a payload shorter than declared).
 *            This is exactly what a crash in the middle of write() leaves:
 *            the record was never acknowledged, so dropping it is right.
 *   CORRUPT  a whole record is there but cannot be what we wrote: the
 *            checksum does not match, or the declared length is 0 or over
 *            the limit (checked as soon as the 4 length bytes exist). A
 *            filesystem that extends a file with zeros after a power loss
 *            shows up here too, at the tail.
 *
 * ---- Durability invariants (kept by wal.c and its callers) ----
 *
 * 1. A record is acknowledged to a client only after it has been written
 *    in full (and fdatasync'ed, when the policy demands it). So a bad tail
 *    only ever holds records nobody was told about.
 * 2. Records are appended, never rewritten in place; the file length only
 *    grows, except when recovery cuts a bad tail back to the last good
 *    record boundary (so the next append starts on a boundary).
 * 3. A reader never returns bytes of a record that is not whole and
 *    checksummed, and never reads past the buffer it was given.
 */
#ifndef FL_STORE_LOG_H
#define FL_STORE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "../util/buf.h"

#define FL_LOG_MAGIC "FLEETLOG"
#define FL_LOG_VERSION 1u
#define FL_LOG_KIND_SEGMENT 1u
#define FL_LOG_KIND_SNAPSHOT 2u
#define FL_LOG_HEADER_LEN 16u         /* magic + version + kind */
#define FL_LOG_FRAME_LEN 12u          /* u32 len + u64 sum */
#define FL_LOG_MAX_RECORD (64u << 20) /* payload bytes */
#define FL_LOG_MAX_ARGC 1048576       /* as Redis' max-multibulk-len */
#define FL_LOG_VARINT_MAX 10          /* bytes of a u64 varint */

enum fl_log_status {
    FL_LOG_OK = 0,     /* a record was returned */
    FL_LOG_END = 1,    /* no bytes left */
    FL_LOG_TORN = 2,   /* an incomplete record: a crash mid-write */
    FL_LOG_CORRUPT = 3 /* bad checksum, zero or over-limit length */
};

/* ---- file header ---- */

/* Writes the 16-byte header of a file of the given kind into out. */
void fl_log_header(uint8_t out[16], uint32_t kind);
/* Checks magic, version and kind (1 or 2) of the first n bytes of a file.
 * Returns 0 and stores the kind in *kind (if not NULL), or -1 when the
 * header is short or wrong. */
int fl_log_check_header(const uint8_t *p, size_t n, uint32_t *kind);

/* ---- record framing ---- */

/* Appends one framed record (12-byte frame header + payload) to out.
 * Returns 0, or -EMSGSIZE (out unchanged) when len is 0 or over
 * FL_LOG_MAX_RECORD: such a record could never be read back, so the caller
 * must refuse the operation rather than log it. Aborts on out of memory
 * (fl_buf policy). */
int fl_log_frame(fl_buf *out, const void *payload, size_t len);

/* Reads the record at buf[*off..len). *off must be <= len.
 * Returns FL_LOG_OK with *payload and *plen set to the payload (borrowed: it
 * points into buf) and *off advanced past the record; otherwise
 * FL_LOG_END, FL_LOG_TORN or FL_LOG_CORRUPT with *off, *payload and *plen
 * untouched. Never reads outside buf[0..len). */
int fl_log_next(const uint8_t *buf, size_t len, size_t *off,
                const uint8_t **payload, size_t *plen);

/* ---- argv payloads (logged commands) ---- */

/* A decoded command. argv[i] points INTO the payload that was decoded
 * (borrowed, not NUL-terminated, valid while that payload is); the arrays
 * are owned by the struct, grown as needed and reused across calls.
 * Zero-initialise it (or use FL_LOG_ARGV_INIT) before the first decode;
 * release with fl_log_argv_free. */
typedef struct fl_log_argv {
    int argc;
    const char **argv;
    size_t *lens;
    size_t cap;
} fl_log_argv;

/* clang-format off */
#define FL_LOG_ARGV_INIT {0, NULL, NULL, 0}
/* clang-format on */

/* Appends an argv payload (not framed) to out. argc must be
 * 1..FL_LOG_MAX_ARGC. Aborts on out of memory (fl_buf policy). */
void fl_log_argv_encode(fl_buf *out, int argc, const char **argv,
                        const size_t *lens);
/* Decodes the argv payload p[0..n) into a. Returns 0; -1 when the payload
 * is malformed (not 'A', truncated, trailing bytes, argc 0 or over
 * FL_LOG_MAX_ARGC, an argument running past the payload, a bad varint);
 * or -ENOMEM, with a's previous arrays still valid and owned by a. Does
 * not abort on allocation failure (a reusable core). a->argc is 0 after
 * any failure. */
int fl_log_argv_decode(const uint8_t *p, size_t n, fl_log_argv *a);
/* Frees a's arrays and leaves it empty (reusable). */
void fl_log_argv_free(fl_log_argv *a);

/* ---- binary fields (snapshot payloads) ---- */

/* Writers append to b and abort on out of memory (fl_buf policy). */
void fl_log_put_u8(fl_buf *b, uint8_t v);
void fl_log_put_varint(fl_buf *b, uint64_t v);
void fl_log_put_u64(fl_buf *b, uint64_t v);  /* 8 bytes LE */
void fl_log_put_double(fl_buf *b, double v); /* its bits as a u64 */
void fl_log_put_bytes(fl_buf *b, const void *p, size_t n); /* varint n, p */

/* A bounds-checked cursor over p[0..n). Start with off = 0, err = 0.
 * On any overrun or malformed varint a getter sets err = 1 and returns
 * 0 / NULL; once err is set every getter returns 0 / NULL without reading,
 * so a caller may read a whole record and check err once at the end.
 * The reader borrows p; nothing to free. */
typedef struct fl_log_reader {
    const uint8_t *p;
    size_t n, off;
    int err;
} fl_log_reader;

void fl_log_reader_init(fl_log_reader *r, const void *p, size_t n);
uint8_t fl_log_get_u8(fl_log_reader *r);
uint64_t fl_log_get_varint(fl_log_reader *r);
uint64_t fl_log_get_u64(fl_log_reader *r);
double fl_log_get_double(fl_log_reader *r);
/* Returns a pointer into r->p (borrowed) to the next varint-length-prefixed
 * field and its length in *len; NULL and *len = 0 on error. A valid empty
 * field returns a non-NULL pointer with *len = 0. */
const uint8_t *fl_log_get_bytes(fl_log_reader *r, size_t *len);

#endif
