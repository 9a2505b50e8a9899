/*
 * wal.h - the write-ahead log's files: naming and listing a data directory,
 * appending records to the current segment, rotating segments, and reading
 * a file back at recovery (cutting a torn tail). The byte format is log.h's.
 *
 * Why it is shaped so: the event loop appends records to an in-memory
 * buffer (cheap, no syscall per command) and decides when to write() and
 * when to fdatasync() according to its policy (group commit); the fd is
 * exposed so a background thread can fdatasync while the loop goes on.
 * Nothing here answers clients, so nothing here knows about policies.
 *
 * Files in a data directory (seq: 10 decimal digits, zero-padded, >= 1):
 *   log.<seq>            a log segment (header kind 1), appended to
 *   snapshot.<seq>       the state before segment <seq> (header kind 2)
 *   <either>.tmp         being written; ignored, renamed when complete
 * Recovery = newest snapshot.<S> + every segment with seq >= S, in order.
 *
 * A new segment is created as log.<seq>.tmp holding only its header,
 * fdatasync'ed, renamed, and the directory fsync'ed, so a segment's header
 * is never observed half-written.
 *
 * Errors: functions return 0 or -errno; -EBADMSG for a file whose header is
 * wrong; readable detail goes into the caller's err buffer (may be NULL
 * when errlen is 0). Not thread-safe: one owner (the loop thread), apart
 * from fdatasync on fl_wal_fd as described there.
 */
#ifndef FL_STORE_WAL_H
#define FL_STORE_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* ---- the data directory ---- */

/* What a data directory holds. Owned by the caller's struct; the arrays
 * are allocated by fl_store_scan and freed by fl_store_files_free. */
typedef struct fl_store_files {
    uint64_t snapshot;   /* newest complete snapshot seq, 0 if none */
    uint64_t *segments;  /* log segment seqs, ascending */
    size_t nsegments;
    uint64_t *snapshots; /* every snapshot seq, ascending */
    size_t nsnapshots;
} fl_store_files;

/* Lists dir. Ignores *.tmp, names that are not exactly log.<seq> or
 * snapshot.<seq> with canonical padding, and seq 0. Returns 0, -errno
 * (e.g. -ENOENT when dir is missing) or -ENOMEM; on failure *out is empty
 * and needs no free. */
int fl_store_scan(const char *dir, fl_store_files *out, char *err,
                  size_t errlen);
void fl_store_files_free(fl_store_files *f);

/* Writes "<dir>/<prefix>.<seq>" (plus ".tmp" when tmp is nonzero) into
 * out, prefix being "log" or "snapshot". Returns 0 or -ENAMETOOLONG. */
int fl_store_path(char *out, size_t outlen, const char *dir, const char *prefix,
                  uint64_t seq, int tmp);

/* fsyncs a directory, making renames and creations in it durable.
 * Returns 0 or -errno. */
int fl_fsync_dir(const char *dir);

/* ---- writing the current segment ---- */

typedef struct fl_wal fl_wal;

/* Opens <dir>/log.<seq> (seq >= 1) for appending. A missing or empty file
 * is created with a kind-1 header (see above); an existing one must have a
 * valid kind-1 header (-EBADMSG otherwise) and is appended to as it is:
 * the caller recovers it first (fl_log_read_file with cut_tail), since
 * records appended after a bad tail could never be read back. The
 * directory is fsync'ed on every successful open.
 * On success *out is a new fl_wal owned by the caller (fl_wal_close);
 * on failure *out is NULL. */
int fl_wal_open(fl_wal **out, const char *dir, uint64_t seq, char *err,
                size_t errlen);

/* Frames a record into the pending buffer (no I/O) and counts it. Returns
 * 0, or -EMSGSIZE when len is 0 or over FL_LOG_MAX_RECORD (nothing is
 * appended: the caller must refuse the command, a record it cannot log).
 * The payload is copied. Aborts on out of memory (server policy). */
int fl_wal_append(fl_wal *w, const void *payload, size_t len);

/* write()s every pending byte, retrying partial writes and EINTR. Returns
 * 0 or -errno. After a failure the bytes that did reach the file are
 * dropped from the pending buffer and the rest stay pending, so a retry
 * continues the same byte stream (the file then holds a torn record until
 * the retry succeeds). */
int fl_wal_write(fl_wal *w);

/* fdatasyncs the segment. Returns 0 or -errno. A failed fdatasync is
 * sticky: the kernel may have dropped the dirty pages, so a later success
 * would prove nothing; every later write/sync/rotate returns the same
 * error and the caller must stop acknowledging writes. */
int fl_wal_sync(fl_wal *w);

/* Bytes framed but not yet written. */
size_t fl_wal_pending(const fl_wal *w);
/* Bytes written to the current segment, header included (its size). */
uint64_t fl_wal_file_bytes(const fl_wal *w);
/* Records appended through this handle since fl_wal_open (pending ones
 * included, across rotations). */
uint64_t fl_wal_records(const fl_wal *w);
/* Seq of the current segment. */
uint64_t fl_wal_seq(const fl_wal *w);
/* The current segment's fd, for a background thread to fdatasync. It is
 * owned by w and changes at fl_wal_rotate and fl_wal_close: the caller
 * must not sync it concurrently with those, and must treat a failed sync
 * on it as fl_wal_sync does. */
int fl_wal_fd(const fl_wal *w);

/* Records that a sync of fl_wal_fd failed with rc (< 0) elsewhere: from now
 * on w behaves as if fl_wal_sync had failed (sticky, see there). */
void fl_wal_fail(fl_wal *w, int rc);

/* Writes pending bytes, fdatasyncs, then moves to a new segment seq+1
 * (created as above; -EEXIST if log.<seq+1> already holds records) and
 * closes the old one. On failure w stays on its old segment, usable. */
int fl_wal_rotate(fl_wal *w, char *err, size_t errlen);
/* Creates segment seq of dir ahead of a rotation: header written, file
 * and directory synced, so that the rotation (on the event loop) only
 * opens it. Touches no fl_wal, so it may run on another thread. A valid
 * empty segment already there is kept. 0, or a negative code with err. */
int fl_wal_prepare(const char *dir, uint64_t seq, char *err, size_t errlen);
/* The directory the log lives in (owned by w). */
const char *fl_wal_dir(const fl_wal *w);

/* Writes pending bytes, fdatasyncs, closes and frees w (always, even on
 * error). Returns 0 or the first -errno met: a nonzero result means the
 * last records may not be durable. NULL is accepted. */
int fl_wal_close(fl_wal *w);

/* ---- reading a file back ---- */

/* The largest record the search for good records after a bad one tries
 * (log records are far smaller; bigger candidates would make the search
 * slow on garbage). */
#define FL_LOG_RESYNC_MAX (1u << 20)

/* What fl_log_read_file found. */
typedef struct fl_log_report {
    uint64_t records;    /* good records accepted by on_record */
    uint64_t good_bytes; /* header + those records: the good prefix */
    uint64_t file_bytes; /* the file's size when it was opened */
    int status;          /* FL_LOG_END, FL_LOG_TORN or FL_LOG_CORRUPT;
                            FL_LOG_OK if on_record stopped the reading */
    int cut;             /* 1 if the file was truncated to good_bytes */
    uint64_t good_after; /* with cut_tail: offset of a good record found
                            after a CORRUPT one, 0 if none */
    int unwritten_page;  /* ...and zeros of a power loss lie between */
    char kept[1100];     /* where a cut CORRUPT tail was copied, or "" */
    char reason[160];    /* why it stopped, for the log line */
} fl_log_report;

/* Reads the file at path: checks its header (kind expect_kind, or any kind
 * when expect_kind is 0), then calls on_record(ud, payload, len) for each
 * good record in order. The payload is borrowed and valid only during the
 * call. A nonzero return from on_record stops the reading and is returned.
 * Reading stops at the first TORN or CORRUPT record; records after it are
 * not delivered. rep (required) is filled in every case.
 *
 * An empty (0-byte) file is valid and empty (END, good_bytes 0). A file
 * shorter than its header or with a wrong header (or the wrong kind) is
 * CORRUPT with good_bytes 0 and is never modified.
 *
 * cut_tail nonzero and a TORN record after a good header (the file ends
 * inside it: a crash mid-write): the file is ftruncate()d to good_bytes
 * and fsync'ed, so the next append starts on a record boundary.
 *
 * cut_tail nonzero and a CORRUPT record (whole, but its checksum or length
 * is wrong): the rest of the file is searched for a good record (length
 * at most FL_LOG_RESYNC_MAX, payload opening with a kind letter 'A'..'Z',
 * checksum right; the search gives up after 64 MiB checksummed). Found
 * (rep->good_after): the damage is in the middle, and cutting would throw
 * away records that may have been acknowledged, so the file is left as it
 * is (cut 0) for the caller to refuse. Except when zeros of a power loss
 * lie between (rep->unwritten_page: the rest of the damaged record's page,
 * or a whole 4 KiB page): pages of an unsynced tail can reach the disk out
 * of order, and nothing past an unwritten page was ever synced. Whenever a
 * CORRUPT tail is cut, its bytes are first copied to
 * "<path>.damaged-<good_bytes>" (rep->kept), so nothing is destroyed.
 *
 * Memory: one buffer that grows to the largest record (at most 64 MiB +
 * 12 bytes), not the whole file; the search past a CORRUPT record reads
 * through one more of 5 MiB. Returns 0 when the reading completed
 * (whatever rep->status says), -errno on an I/O failure or -ENOMEM, or
 * on_record's nonzero value. */
int fl_log_read_file(const char *path, uint32_t expect_kind,
                     int (*on_record)(void *ud, const uint8_t *payload,
                                      size_t len),
                     void *ud, int cut_tail, fl_log_report *rep);

#endif
