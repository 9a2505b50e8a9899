/*
 * wal.c - write-ahead log files: create, append, sync, rotate, list and
 * recover (see wal.h for the contract and log.h for the format).
 *
 * Plain POSIX calls, each result checked: write() may be partial or
 * interrupted, so it is looped; fdatasync() failure is sticky (after an
 * fsync error Linux may have dropped the dirty pages, and a retried fsync
 * would report success over lost data, as PostgreSQL learnt in 2018).
 * Renames are made durable by fsyncing the directory. Recovery streams the
 * file through a buffer that only has to hold one record, so a large
 * segment does not need its size in memory, and I/O errors come back as
 * -errno rather than the SIGBUS an mmap would raise.
 */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (1u << 20)   /* recovery buffer's first size */
#define PENDING_KEEP (1u << 20) /* pending buffer kept when empty */
#define FILE_MODE 0644

struct fl_wal {
    int fd;
    int failed; /* sticky -errno of a failed fdatasync, or 0 */
    uint64_t seq;
    uint64_t file_bytes; /* bytes written to the segment, header included */
    uint64_t records;
    fl_buf pending; /* framed records not yet written */
    char dir[];
};

/* ---- small helpers ---- */

static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Formats a message into err (when there is room) and returns rc. */
static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        if (n < 0) err[0] = '\0';
    }
    return rc;
}

/* Like set_err for a failed system call: reads errno before anything can
 * change it. */
static int sys_err(char *err, size_t errlen, const char *what, const char *path)
{
    int e = errno;
    return set_err(err, errlen, -e, "%s %s: %s", what, path, strerror(e));
}

static int write_all(int fd, const void *p, size_t n, size_t *done)
{
    const char *c = p;
    *done = 0;
    while (*done < n) {
        ssize_t k = write(fd, c + *done, n - *done);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -errno;
        if (k == 0) return -EIO; /* a regular file never does this */
        *done += (size_t)k;
    }
    return 0;
}

/* Reads from file offset `at` until n bytes or end of file; *got says how
 * many arrived. pread: the descriptor's position is not used (segments
 * are appended with O_APPEND). */
static int read_full(int fd, void *p, size_t n, uint64_t at, size_t *got)
{
    char *c = p;
    *got = 0;
    while (*got < n) {
        ssize_t k = pread(fd, c + *got, n - *got, (off_t)(at + *got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -errno;
        if (k == 0) break;
        *got += (size_t)k;
    }
    return 0;
}

static int sync_fd(int fd, int data_only)
{
    for (;;) {
        int rc = data_only ? fdatasync(fd) : fsync(fd);
        if (rc == 0) return 0;
        if (errno != EINTR) return -errno;
    }
}

int fl_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = sync_fd(fd, 0);
    /* A filesystem that cannot fsync a directory (EINVAL) orders its
     * metadata by other means; there is nothing more to do there. */
    if (rc == -EINVAL) rc = 0;
    if (close(fd) != 0 && rc == 0) rc = -errno;
    return rc;
}

int fl_store_path(char *out, size_t outlen, const char *dir, const char *prefix,
                  uint64_t seq, int tmp)
{
    int n = snprintf(out, outlen, "%s/%s.%010" PRIu64 "%s", dir, prefix, seq,
                     tmp ? ".tmp" : "");
    if (n < 0 || (size_t)n >= outlen) return -ENAMETOOLONG;
    return 0;
}

/* ---- listing a directory ---- */

/* Parses "<prefix>.<seq>" with the canonical 10-digit padding (more digits
 * only for seqs that need them). Returns the seq, or 0 for any other name
 * (seq 0 itself is not a valid name: it means "none"). */
static uint64_t parse_seq(const char *name, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0 || name[pl] != '.') return 0;
    const char *d = name + pl + 1;
    size_t nd = strlen(d);
    if (nd < 10 || nd > 20 || (nd > 10 && d[0] == '0')) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < nd; i++) {
        if (d[i] < '0' || d[i] > '9') return 0;
        unsigned dig = (unsigned)(d[i] - '0');
        if (v > (UINT64_MAX - dig) / 10) return 0;
        v = v * 10 + dig;
    }
    return v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int push_seq(uint64_t **arr, size_t *n, size_t *cap, uint64_t seq)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        uint64_t *a = realloc(*arr, ncap * sizeof(*a));
        if (!a) return -ENOMEM;
        *arr = a;
        *cap = ncap;
    }
    (*arr)[(*n)++] = seq;
    return 0;
}

/* Adds one directory entry to f; cap[0] and cap[1] are the capacities of
 * its segment and snapshot arrays. */
static int scan_entry(fl_store_files *f, size_t cap[2], const char *name)
{
    uint64_t seq = parse_seq(name, "snapshot");
    if (seq) {
        if (seq > f->snapshot) f->snapshot = seq;
        return push_seq(&f->snapshots, &f->nsnapshots, &cap[1], seq);
    }
    seq = parse_seq(name, "log");
    return seq ? push_seq(&f->segments, &f->nsegments, &cap[0], seq) : 0;
}

int fl_store_scan(const char *dir, fl_store_files *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof(*out));
    DIR *d = opendir(dir);
    if (!d) return sys_err(err, errlen, "opendir", dir);
    size_t cap[2] = {0, 0};
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) rc = sys_err(err, errlen, "readdir", dir);
            break;
        }
        rc = scan_entry(out, cap, e->d_name);
        if (rc) {
            set_err(err, errlen, rc, "out of memory listing %s", dir);
            break;
        }
    }
    if (closedir(d) != 0 && rc == 0) rc = sys_err(err, errlen, "closedir", dir);
    if (rc) {
        fl_store_files_free(out);
        return rc;
    }
    if (out->nsegments > 1)
        qsort(out->segments, out->nsegments, sizeof(uint64_t), cmp_u64);
    if (out->nsnapshots > 1)
        qsort(out->snapshots, out->nsnapshots, sizeof(uint64_t), cmp_u64);
    return 0;
}

void fl_store_files_free(fl_store_files *f)
{
    free(f->segments);
    free(f->snapshots);
    memset(f, 0, sizeof(*f));
}

/* ---- creating and opening segments ---- */

/* Creates <dir>/log.<seq> holding only a header: written to a .tmp name,
 * synced and renamed over path (open_segment then syncs the directory). */
static int create_segment(const char *dir, uint64_t seq, const char *path,
                          char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    int rc = fl_store_path(tmp, sizeof(tmp), dir, "log", seq, 1);
    if (rc) return set_err(err, errlen, rc, "path too long in %s", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
    if (fd < 0) return sys_err(err, errlen, "create", tmp);
    uint8_t hdr[FL_LOG_HEADER_LEN];
    fl_log_header(hdr, FL_LOG_KIND_SEGMENT);
    size_t done;
    rc = write_all(fd, hdr, sizeof(hdr), &done);
    if (rc == 0) rc = sync_fd(fd, 1);
    if (close(fd) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
    if (rc) {
        /* Best effort: a leftover .tmp is ignored by scan and replaced by
         * the next attempt's O_TRUNC. */
        (void)unlink(tmp);
        return set_err(err, errlen, rc, "create %s: %s", path, strerror(-rc));
    }
    return 0;
}

/* Checks an existing segment opened as fd. Returns 0 (usable, *size set),
 * 1 (empty: to be created), or a negative code. fresh: the caller needs a
 * segment without records (rotation). */
static int check_segment(int fd, const char *path, int fresh, uint64_t *size,
                         char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return sys_err(err, errlen, "stat", path);
    if (st.st_size == 0) return 1;
    uint8_t hdr[FL_LOG_HEADER_LEN];
    size_t got = 0;
    int rc = read_full(fd, hdr, sizeof(hdr), 0, &got);
    if (rc) return set_err(err, errlen, rc, "read %s: %s", path, strerror(-rc));
    uint32_t kind = 0;
    if (fl_log_check_header(hdr, got, &kind) != 0 ||
        kind != FL_LOG_KIND_SEGMENT)
        return set_err(err, errlen, -EBADMSG,
                       "%s: not a fleetd log segment (bad header)", path);
    if (fresh && (uint64_t)st.st_size > FL_LOG_HEADER_LEN)
        return set_err(err, errlen, -EEXIST, "%s already holds records", path);
    *size = (uint64_t)st.st_size;
    return 0;
}

static int sync_dir(const char *dir, char *err, size_t errlen)
{
    int rc = fl_fsync_dir(dir);
    if (rc)
        return set_err(err, errlen, rc, "fsync directory %s: %s", dir,
                       strerror(-rc));
    return 0;
}

/* Opens (creating if missing or empty) segment seq of dir for appending.
 * The directory is synced on every success, not only after a creation, so
 * that an open retried after a failed directory sync still makes the
 * segment's name durable before anything is appended to it. */
static int open_segment(const char *dir, uint64_t seq, int fresh, int *fdp,
                        uint64_t *size, char *err, size_t errlen)
{
    char path[PATH_MAX];
    int rc = fl_store_path(path, sizeof(path), dir, "log", seq, 0);
    if (rc) return set_err(err, errlen, rc, "path too long in %s", dir);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
        if (fd < 0 && errno != ENOENT)
            return sys_err(err, errlen, "open", path);
        if (fd >= 0) {
            rc = check_segment(fd, path, fresh, size, err, errlen);
            if (rc == 0) rc = sync_dir(dir, err, errlen);
            if (rc == 0) {
                *fdp = fd;
                return 0;
            }
            (void)close(fd); /* nothing written through it: nothing lost */
            if (rc < 0) return rc;
        }
        if (attempt == 0) {
            rc = create_segment(dir, seq, path, err, errlen);
            if (rc) return rc;
        }
    }
    return set_err(err, errlen, -EIO, "%s vanished after creation", path);
}

/* ---- the writer ---- */

int fl_wal_open(fl_wal **out, const char *dir, uint64_t seq, char *err,
                size_t errlen)
{
    *out = NULL;
    if (seq == 0)
        return set_err(err, errlen, -EINVAL, "log segment seq must be >= 1");
    size_t dlen = strlen(dir);
    fl_wal *w = malloc(sizeof(*w) + dlen + 1);
    if (!w) return set_err(err, errlen, -ENOMEM, "out of memory");
    memcpy(w->dir, dir, dlen + 1);
    int rc = open_segment(dir, seq, 0, &w->fd, &w->file_bytes, err, errlen);
    if (rc) {
        free(w);
        return rc;
    }
    w->failed = 0;
    w->seq = seq;
    w->records = 0;
    fl_buf_init(&w->pending);
    *out = w;
    return 0;
}

int fl_wal_append(fl_wal *w, const void *payload, size_t len)
{
    int rc = fl_log_frame(&w->pending, payload, len);
    if (rc == 0) w->records++;
    return rc;
}

int fl_wal_write(fl_wal *w)
{
    if (w->failed) return w->failed;
    size_t done = 0;
    int rc = write_all(w->fd, w->pending.data, w->pending.len, &done);
    w->file_bytes += done;
    fl_buf_consume(&w->pending, done);
    /* A burst may have grown the buffer a lot; do not keep it forever. */
    if (w->pending.len == 0 && w->pending.cap > PENDING_KEEP)
        fl_buf_free(&w->pending);
    return rc;
}

int fl_wal_sync(fl_wal *w)
{
    if (w->failed) return w->failed;
    int rc = sync_fd(w->fd, 1);
    if (rc) w->failed = rc;
    return rc;
}

size_t fl_wal_pending(const fl_wal *w)
{
    return w->pending.len;
}

uint64_t fl_wal_file_bytes(const fl_wal *w)
{
    return w->file_bytes;
}

uint64_t fl_wal_records(const fl_wal *w)
{
    return w->records;
}

uint64_t fl_wal_seq(const fl_wal *w)
{
    return w->seq;
}

int fl_wal_fd(const fl_wal *w)
{
    return w->fd;
}

void fl_wal_fail(fl_wal *w, int rc)
{
    if (!w->failed) w->failed = rc < 0 ? rc : -EIO;
}

int fl_wal_rotate(fl_wal *w, char *err, size_t errlen)
{
    int rc = fl_wal_write(w);
    if (rc == 0) rc = fl_wal_sync(w);
    if (rc)
        return set_err(err, errlen, rc, "log.%010" PRIu64 ": %s", w->seq,
                       strerror(-rc));
    int fd;
    uint64_t size;
    rc = open_segment(w->dir, w->seq + 1, 1, &fd, &size, err, errlen);
    if (rc) return rc;
    /* The old segment is synced: a close error cannot lose its data. */
    (void)close(w->fd);
    w->fd = fd;
    w->seq++;
    w->file_bytes = size;
    return 0;
}

int fl_wal_prepare(const char *dir, uint64_t seq, char *err, size_t errlen)
{
    char path[PATH_MAX];
    int rc = fl_store_path(path, sizeof(path), dir, "log", seq, 0);
    if (rc) return set_err(err, errlen, rc, "path too long in %s", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        uint64_t size;
        rc = check_segment(fd, path, 1, &size, err, errlen);
        (void)close(fd); /* read only */
        if (rc <= 0) return rc; /* usable as it is, or unusable */
    } else if (errno != ENOENT) {
        return sys_err(err, errlen, "open", path);
    }
    rc = create_segment(dir, seq, path, err, errlen);
    return rc ? rc : sync_dir(dir, err, errlen);
}

const char *fl_wal_dir(const fl_wal *w)
{
    return w->dir;
}

int fl_wal_close(fl_wal *w)
{
    if (!w) return 0;
    int rc = fl_wal_write(w);
    int rc2 = fl_wal_sync(w);
    if (rc == 0) rc = rc2;
    if (close(w->fd) != 0 && rc == 0) rc = -errno;
    fl_buf_free(&w->pending);
    free(w);
    return rc;
}

/* ---- reading a file back ---- */

/* A window over the file: unread bytes are buf[start..end). */
typedef struct rd {
    int fd;
    int eof;
    uint64_t off; /* file offset of the next read */
    uint8_t *buf;
    size_t cap, start, end;
} rd;

/* Bytes the record at the window's start needs to be whole: its declared
 * size once the length field is there (fl_log_next has then checked it is
 * within the limit), a frame header before. */
static size_t rd_need(const rd *r)
{
    size_t avail = r->end - r->start;
    if (avail < 4) return FL_LOG_FRAME_LEN;
    const uint8_t *p = r->buf + r->start;
    uint32_t len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                   (uint32_t)p[3] << 24;
    return FL_LOG_FRAME_LEN + len;
}

/* Moves the unread bytes to the front, grows the buffer to hold the
 * record being read, and reads as much as fits. Sets eof at end of file. */
static int rd_fill(rd *r)
{
    size_t need = rd_need(r);
    size_t avail = r->end - r->start;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, avail);
        r->start = 0;
        r->end = avail;
    }
    if (r->cap < need) {
        size_t cap = need > READ_CHUNK ? need : READ_CHUNK;
        uint8_t *b = realloc(r->buf, cap);
        if (!b) return -ENOMEM;
        r->buf = b;
        r->cap = cap;
    }
    size_t got = 0;
    int rc = read_full(r->fd, r->buf + r->end, r->cap - r->end, r->off, &got);
    if (rc) return rc;
    r->off += got;
    r->end += got;
    if (r->end < r->cap) r->eof = 1;
    return 0;
}

/* Writes why the record at file offset `at` is bad into rep->reason. */
static void describe_bad(fl_log_report *rep, const rd *r, uint64_t at)
{
    size_t avail = r->end - r->start;
    const char *what = "checksum mismatch";
    char tmp[64];
    if (rep->status == FL_LOG_TORN) {
        if (avail < FL_LOG_FRAME_LEN)
            snprintf(tmp, sizeof(tmp), "torn frame header (%zu of 12 bytes)",
                     avail);
        else
            snprintf(tmp, sizeof(tmp), "torn record (%zu of %zu bytes)", avail,
                     rd_need(r));
        what = tmp;
    } else if (avail >= 4) {
        size_t len = rd_need(r) - FL_LOG_FRAME_LEN;
        if (len == 0) what = "zero length";
        if (len > FL_LOG_MAX_RECORD) {
            snprintf(tmp, sizeof(tmp), "length %zu over the limit", len);
            what = tmp;
        }
    }
    snprintf(rep->reason, sizeof(rep->reason),
             "%s at offset %" PRIu64 " after %" PRIu64 " records", what, at,
             rep->records);
}

/* Checks the header; returns 1 when it is good, 0 (rep filled) if not. */
static int read_header(rd *r, uint32_t expect_kind, fl_log_report *rep, int *rc)
{
    uint8_t hdr[FL_LOG_HEADER_LEN];
    size_t got = 0;
    uint32_t kind = 0;
    *rc = read_full(r->fd, hdr, sizeof(hdr), 0, &got);
    r->off = got;
    if (*rc) {
        snprintf(rep->reason, sizeof(rep->reason), "read: %s", strerror(-*rc));
        return 0;
    }
    rep->status = FL_LOG_CORRUPT;
    if (got < FL_LOG_HEADER_LEN) {
        snprintf(rep->reason, sizeof(rep->reason),
                 "short header (%zu of 16 bytes)", got);
        return 0;
    }
    if (fl_log_check_header(hdr, got, &kind) != 0) {
        snprintf(rep->reason, sizeof(rep->reason), "bad header");
        return 0;
    }
    if (expect_kind && kind != expect_kind) {
        snprintf(rep->reason, sizeof(rep->reason), "file kind %u, expected %u",
                 (unsigned)kind, (unsigned)expect_kind);
        return 0;
    }
    rep->status = FL_LOG_END;
    rep->good_bytes = FL_LOG_HEADER_LEN;
    return 1;
}

/* Delivers records until the end, a bad record, a callback's stop or an
 * error. Returns 0, on_record's value or a negative code. */
static int read_records(rd *r,
                        int (*on_record)(void *, const uint8_t *, size_t),
                        void *ud, fl_log_report *rep)
{
    for (;;) {
        size_t off = r->start, plen = 0;
        const uint8_t *payload = NULL;
        int st = fl_log_next(r->buf, r->end, &off, &payload, &plen);
        if (st == FL_LOG_OK) {
            int rc = on_record(ud, payload, plen);
            if (rc) {
                rep->status = FL_LOG_OK;
                snprintf(rep->reason, sizeof(rep->reason),
                         "stopped by the caller after %" PRIu64 " records",
                         rep->records);
                return rc;
            }
            rep->records++;
            rep->good_bytes += off - r->start;
            r->start = off;
            continue;
        }
        if (st != FL_LOG_CORRUPT && !r->eof) {
            int rc = rd_fill(r);
            if (rc) {
                snprintf(rep->reason, sizeof(rep->reason), "read: %s",
                         strerror(-rc));
                return rc;
            }
            continue;
        }
        rep->status = st;
        if (st == FL_LOG_END)
            snprintf(rep->reason, sizeof(rep->reason), "%" PRIu64 " records",
                     rep->records);
        else
            describe_bad(rep, r, rep->good_bytes);
        return 0;
    }
}

/* Zeros in the damaged region, the mark of a power loss: pages of the
 * unsynced tail that never reached the disk read as zeros, either the rest
 * of the page where the damage starts (its older copy on disk ended
 * there) or whole pages. Bit rot does not write zeros to a page boundary. */
typedef struct zero_scan {
    uint64_t damage;  /* file offset of the bad record */
    uint64_t run_at;  /* where the current run of zeros began */
    uint64_t run;     /* its length so far */
    int unwritten;
} zero_scan;

static void zero_scan_byte(zero_scan *z, uint64_t at, uint8_t byte)
{
    enum { PAGE = 4096 };
    if (byte) {
        z->run = 0;
        return;
    }
    if (z->run++ == 0) z->run_at = at;
    if ((at + 1) % PAGE == 0 && (z->run_at == z->damage || z->run >= PAGE))
        z->unwritten = 1;
}

/* Whether a good record starts at buf[i] (got bytes in buf). Candidates
 * are filtered before their checksum: a length up to FL_LOG_RESYNC_MAX and
 * a payload that opens with a record kind letter; *hashed counts the bytes
 * checksummed, so binary garbage cannot make the search slow. */
static int good_record_at(const uint8_t *buf, size_t got, size_t i, uint64_t *hashed)
{
    if (got - i <= FL_LOG_FRAME_LEN) return 0;
    uint32_t len = (uint32_t)buf[i] | (uint32_t)buf[i + 1] << 8 |
                   (uint32_t)buf[i + 2] << 16 | (uint32_t)buf[i + 3] << 24;
    uint8_t kind = buf[i + FL_LOG_FRAME_LEN];
    if (len == 0 || len > FL_LOG_RESYNC_MAX || kind < 'A' || kind > 'Z') return 0;
    if (len > got - i - FL_LOG_FRAME_LEN) return 0;
    *hashed += len;
    size_t off = i;
    const uint8_t *payload;
    size_t plen;
    return fl_log_next(buf, got, &off, &payload, &plen) == FL_LOG_OK;
}

/* Searches the file after the bad record at `damage` for a good record:
 * sets rep->good_after to the first one's offset (0 if none, or if the
 * search gives up after hash_max bytes checksummed) and
 * rep->unwritten_page when zeros of a power loss lie before it. Reads in
 * windows that overlap by the largest candidate record, so each offset is
 * tried once with its whole record in the buffer. */
static int find_good_after(int fd, uint64_t damage, fl_log_report *rep)
{
    enum { WINDOW = 4u << 20 };
    const uint64_t hash_max = 64u << 20;
    const size_t overlap = FL_LOG_FRAME_LEN + FL_LOG_RESYNC_MAX;
    uint8_t *buf = malloc(WINDOW + overlap);
    if (!buf) return -ENOMEM;
    zero_scan z = {damage, damage, 0, 0};
    uint64_t base = damage, hashed = 0; /* base: file offset of buf[0] */
    int rc = 0;
    for (;;) {
        size_t got = 0;
        rc = read_full(fd, buf, WINDOW + overlap, base, &got);
        if (rc || got == 0) break;
        int last = got < WINDOW + overlap;
        size_t stop = last ? got : WINDOW; /* offsets tried from this window */
        for (size_t i = 0; i < stop && hashed <= hash_max; i++) {
            if (base + i > damage && good_record_at(buf, got, i, &hashed)) {
                rep->good_after = base + i;
                rep->unwritten_page = z.unwritten;
                free(buf);
                return 0;
            }
            zero_scan_byte(&z, base + i, buf[i]);
        }
        if (last || hashed > hash_max) break;
        base += WINDOW;
    }
    free(buf);
    return rc;
}

/* Copies bytes [from, end of file) of fd to path (created, fsync'ed), so
 * a cut that may hold good records destroys nothing. */
static int keep_tail(int fd, uint64_t from, const char *path)
{
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
    if (out < 0) return -errno;
    uint8_t *buf = malloc(READ_CHUNK);
    int rc = buf ? 0 : -ENOMEM;
    for (uint64_t at = from; rc == 0;) {
        size_t got = 0, done = 0;
        rc = read_full(fd, buf, READ_CHUNK, at, &got);
        if (rc || got == 0) break;
        rc = write_all(out, buf, got, &done);
        at += got;
    }
    free(buf);
    if (rc == 0) rc = sync_fd(out, 0);
    if (close(out) != 0 && rc == 0) rc = -errno;
    return rc;
}

/* Cuts the file back to its good prefix and makes that durable. */
static int cut_file(int fd, fl_log_report *rep)
{
    if (ftruncate(fd, (off_t)rep->good_bytes) != 0) return -errno;
    int rc = sync_fd(fd, 0);
    if (rc) return rc;
    rep->cut = 1;
    size_t n = strlen(rep->reason);
    snprintf(rep->reason + n, sizeof(rep->reason) - n, "; cut to %" PRIu64,
             rep->good_bytes);
    return 0;
}

int fl_log_read_file(const char *path, uint32_t expect_kind,
                     int (*on_record)(void *ud, const uint8_t *payload,
                                      size_t len),
                     void *ud, int cut_tail, fl_log_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    rep->status = FL_LOG_END;
    rd r = {.fd = -1};
    r.fd = open(path, (cut_tail ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (r.fd < 0) {
        int rc = -errno;
        snprintf(rep->reason, sizeof(rep->reason), "open: %s", strerror(-rc));
        return rc;
    }
    int rc = 0;
    struct stat st;
    if (fstat(r.fd, &st) != 0) {
        rc = -errno;
        snprintf(rep->reason, sizeof(rep->reason), "stat: %s", strerror(-rc));
    } else {
        rep->file_bytes = (uint64_t)st.st_size;
        if (st.st_size == 0)
            snprintf(rep->reason, sizeof(rep->reason), "empty file");
        else if (read_header(&r, expect_kind, rep, &rc))
            rc = read_records(&r, on_record, ud, rep);
    }
    int torn = rep->status == FL_LOG_TORN;
    int corrupt = rep->status == FL_LOG_CORRUPT && rep->good_bytes > 0;
    if (rc == 0 && cut_tail && corrupt) {
        rc = find_good_after(r.fd, rep->good_bytes, rep);
        if (rc == 0 && (!rep->good_after || rep->unwritten_page)) {
            int n = snprintf(rep->kept, sizeof(rep->kept), "%s.damaged-%" PRIu64,
                             path, rep->good_bytes);
            rc = n < 0 || (size_t)n >= sizeof(rep->kept) ? -ENAMETOOLONG
                                                         : keep_tail(r.fd, rep->good_bytes, rep->kept);
            if (rc) rep->kept[0] = '\0';
        }
        if (rc)
            snprintf(rep->reason, sizeof(rep->reason), "reading past the damage: %s",
                     strerror(-rc));
    }
    if (rc == 0 && cut_tail && (torn || (corrupt && rep->kept[0]))) {
        rc = cut_file(r.fd, rep);
        if (rc)
            snprintf(rep->reason, sizeof(rep->reason), "cut: %s",
                     strerror(-rc));
    }
    free(r.buf);
    if (close(r.fd) != 0 && rc == 0) rc = -errno;
    return rc;
}
