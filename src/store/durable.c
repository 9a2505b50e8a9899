/*
 * durable.c - loading, log policy, snapshots and idle-trip closing on the
 * event loop; see durable.h for the contract.
 *
 * The file state machine, as the directory holds it:
 *   snapshot.S   the state before segment S (complete: ends with 'E')
 *   log.K        records after snapshot S for every K >= S, in order
 *   *.tmp        a snapshot being written (ignored and removed at start)
 * Starting a snapshot rotates the log to log.S' first, so the child's
 * copy-on-write image is exactly "everything before S'". Only after the
 * child's file is complete and renamed are older segments deleted, so a
 * crash at any point leaves either the old snapshot with all its
 * segments, or the new one with its segments.
 */
#include "durable.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <limits.h>
#include <unistd.h>

#include "log.h"
#include "snapshot.h"
#include "wal.h"
#include "../fleet/fleet.h"

#define TICK_MS 100

struct fl_durable {
    int lock_fd;                /* flock'ed <dir>/LOCK: one fleetd per dir */
    uv_loop_t *loop;
    fl_server *s;
    uv_timer_t tick;
    uv_work_t fsync_req;
    int fsync_inflight, fsync_rc, fsync_fd;
    int fsync_finished; /* set (release) by the worker after fsync_rc */
    uint64_t fsync_target, fsync_t0, last_sync_ms, last_idle_ms;
    pid_t child;
    uint64_t child_seq;
    int snapshot_wanted;
    int presynced;              /* the pre-rotation sync has been started */
    uv_work_t prep_req;         /* creates the next segment off the loop */
    int prep_inflight, prep_rc;
    uint64_t prep_seq, prepared_seq;
    char prep_dir[PATH_MAX], prep_err[256];
    uint64_t retry_ms;          /* no automatic snapshot before this */
    int finishing;              /* a finished snapshot is being filed */
    int stopping, tick_closed;
};

static uint64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void maybe_free(fl_durable *d);

/* ---- loading ---- */

#define LOAD_BATCH 32 /* vehicle records prefetched together */

typedef struct load_ctx {
    fl_server *s;
    fl_apply_state st;
    int snapshot;               /* 1 while reading the snapshot */
    uint64_t replay_errors;
    fl_buf batch;               /* copies of pending 'V' records */
    size_t off[LOAD_BATCH + 1], nbatch;
    uint64_t seen;              /* records read so far */
} load_ctx;

static int apply_one(load_ctx *lc, const uint8_t *p, size_t n)
{
    lc->st.err[0] = '\0';
    int rc = fl_store_apply(lc->s, p, n, &lc->st);
    if (rc == 0) return 0;
    if (lc->snapshot) return rc;
    /* A logged command that fails on replay is a bug, not damage (the
     * checksum held): report it and keep the rest of the history. */
    if (lc->replay_errors++ < 10)
        fprintf(stderr, "fleetd: log replay: %s\n", lc->st.err);
    return 0;
}

/* Vehicles land at random places in three large tables: prefetching a
 * batch's slots first overlaps those cache misses instead of taking them
 * one at a time. */
static int flush_batch(load_ctx *lc)
{
    const uint8_t *base = (const uint8_t *)lc->batch.data;
    for (size_t i = 0; i < lc->nbatch; i++)
        fl_store_prefetch(lc->s, base + lc->off[i], lc->off[i + 1] - lc->off[i]);
    int rc = 0;
    for (size_t i = 0; i < lc->nbatch && rc == 0; i++)
        rc = apply_one(lc, base + lc->off[i], lc->off[i + 1] - lc->off[i]);
    lc->nbatch = 0;
    lc->batch.len = 0;
    return rc;
}

/* Every this many records the loader publishes its progress and looks
 * for a stop (an asynchronous load runs on a worker thread). */
#define LOAD_CHECK_EVERY 4096

static int on_record(void *ud, const uint8_t *p, size_t n)
{
    load_ctx *lc = ud;
    if (++lc->seen % LOAD_CHECK_EVERY == 0) {
        __atomic_store_n(&lc->s->load_records, lc->seen, __ATOMIC_RELAXED);
        if (__atomic_load_n(&lc->s->load_cancel, __ATOMIC_RELAXED)) return -ECANCELED;
    }
    if (n > 0 && p[0] == 'V') {
        lc->off[lc->nbatch++] = lc->batch.len;
        fl_buf_append(&lc->batch, p, n);
        lc->off[lc->nbatch] = lc->batch.len;
        return lc->nbatch == LOAD_BATCH ? flush_batch(lc) : 0;
    }
    int rc = flush_batch(lc);
    return rc ? rc : apply_one(lc, p, n);
}

static int load_snapshot(fl_server *s, uint64_t seq, load_ctx *lc,
                         char *err, size_t errlen)
{
    char path[1024];
    fl_log_report rep;
    if (fl_store_path(path, sizeof(path), s->cfg.dir, "snapshot", seq, 0)) return -1;
    lc->snapshot = 1;
    int rc = fl_log_read_file(path, FL_LOG_KIND_SNAPSHOT, on_record, lc, 0, &rep);
    if (rc == 0) rc = flush_batch(lc); /* a snapshot cut before its end */
    lc->snapshot = 0;
    if (rc == 0 && rep.status == FL_LOG_END && lc->st.saw_end) return 0;
    if (rc == -ECANCELED) return rc; /* load_all says so */
    const char *why = rc ? lc->st.err
                    : rep.status == FL_LOG_END ? "no end record" : rep.reason;
    snprintf(err, errlen, "snapshot %s is damaged (%s): refusing to start "
             "rather than load part of it", path, why);
    return -1;
}

/* Replays one segment; a bad tail of the last one is cut and reported. */
static int load_segment(fl_server *s, uint64_t seq, int last, load_ctx *lc,
                        char *err, size_t errlen)
{
    char path[1024];
    fl_log_report rep;
    if (fl_store_path(path, sizeof(path), s->cfg.dir, "log", seq, 0)) return -1;
    int rc = fl_log_read_file(path, FL_LOG_KIND_SEGMENT, on_record, lc, last, &rep);
    if (rc == 0) rc = flush_batch(lc);
    if (rc == -ECANCELED) return rc; /* load_all says so */
    if (rc != 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
        return -1;
    }
    if (rep.status == FL_LOG_END) return 0;
    if (!last) {
        snprintf(err, errlen, "%s is damaged at byte %llu (%s) and later "
                 "segments exist: move them aside to start from the data "
                 "before it", path, (unsigned long long)rep.good_bytes, rep.reason);
        return -1;
    }
    if (!rep.cut && rep.good_after) { /* good records after the damage */
        snprintf(err, errlen, "%s is damaged at byte %llu (%s) but holds good "
                 "records again from byte %llu, which may be acknowledged "
                 "writes, so it is not cut: keep a copy, then restore it, or "
                 "give up what follows the damage with: truncate -s %llu %s",
                 path, (unsigned long long)rep.good_bytes, rep.reason,
                 (unsigned long long)rep.good_after,
                 (unsigned long long)rep.good_bytes, path);
        return -1;
    }
    if (!rep.cut) { /* a bad header: nothing to cut back to */
        snprintf(err, errlen, "%s is damaged (%s): refusing to start; move it "
                 "aside to start from the data before it", path, rep.reason);
        return -1;
    }
    s->persist.tail_cut_bytes += rep.file_bytes - rep.good_bytes;
    fprintf(stderr, "fleetd: %s: %s; cut %llu bytes after record %llu "
            "(never acknowledged%s)%s%s\n", path, rep.reason,
            (unsigned long long)(rep.file_bytes - rep.good_bytes),
            (unsigned long long)rep.records,
            rep.good_after ? "; records past an unwritten page were never synced" : "",
            rep.kept[0] ? "; the cut bytes are kept in " : "", rep.kept);
    return 0;
}

static void remove_file(const char *dir, const char *prefix, uint64_t seq, int tmp)
{
    char path[1024];
    if (fl_store_path(path, sizeof(path), dir, prefix, seq, tmp) == 0 &&
        unlink(path) != 0 && errno != ENOENT)
        fprintf(stderr, "fleetd: cannot remove %s: %s\n", path, strerror(errno));
}

/* Deletes segments and snapshots older than snapshot `keep`. */
static void remove_older(const char *dir, uint64_t keep)
{
    fl_store_files files;
    char err[256];
    if (fl_store_scan(dir, &files, err, sizeof(err)) != 0) return;
    for (size_t i = 0; i < files.nsegments; i++)
        if (files.segments[i] < keep) remove_file(dir, "log", files.segments[i], 0);
    for (size_t i = 0; i < files.nsnapshots; i++)
        if (files.snapshots[i] < keep) remove_file(dir, "snapshot", files.snapshots[i], 0);
    fl_store_files_free(&files);
}

/* Removes the *.tmp files a crash left (a snapshot being written, a
 * segment being created): they were never part of the state. */
static void remove_leftovers(const char *dir)
{
    DIR *dh = opendir(dir);
    if (!dh) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(dh)) != NULL) {
        size_t n = strlen(e->d_name);
        int ours = strncmp(e->d_name, "snapshot.", 9) == 0 ||
                   strncmp(e->d_name, "log.", 4) == 0;
        if (!ours || n < 4 || strcmp(e->d_name + n - 4, ".tmp") != 0) continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue;
        if (unlink(path) == 0) fprintf(stderr, "fleetd: removed leftover %s\n", path);
    }
    closedir(dh);
}

/* The segments replayed must follow the snapshot (or the start) with no
 * seq missing: a gap is lost history, and replaying across it would build
 * a state that never existed. */
static int check_contiguous(const char *dir, const fl_store_files *f, size_t first,
                            char *err, size_t errlen)
{
    uint64_t want = f->snapshot ? f->snapshot : 1;
    for (size_t i = first; i < f->nsegments; i++, want++) {
        if (f->segments[i] == want) continue;
        snprintf(err, errlen, "%s: log.%010llu is missing (found log.%010llu "
                 "after %s): refusing to replay across the gap; put the "
                 "missing files back, or move the later ones aside to start "
                 "from the state before it", dir, (unsigned long long)want,
                 (unsigned long long)f->segments[i],
                 i > first ? "the segment before it"
                 : f->snapshot ? "the newest snapshot" : "no snapshot");
        return -1;
    }
    return 0;
}

/* The index of the newest segment holding more than its header. The next
 * segment is created ahead of a snapshot, so a crash can leave one with no
 * records after the segment whose tail it tore: that tail is still the
 * log's end and may be cut. */
static size_t last_with_records(const char *dir, const fl_store_files *f, size_t first)
{
    size_t last = f->nsegments ? f->nsegments - 1 : 0;
    char path[1024];
    struct stat st;
    while (last > first &&
           fl_store_path(path, sizeof(path), dir, "log", f->segments[last], 0) == 0 &&
           stat(path, &st) == 0 && st.st_size <= FL_LOG_HEADER_LEN)
        last--;
    return last;
}

/* Loads everything; *open_seq receives the segment to append to. 0, or
 * -ECANCELED after a stop (s->load_cancel), or -1, with a reason in err.
 * The caller sets s->persist.replaying around it (on the loop thread: the
 * loop reads it while an asynchronous load runs) and puts this start's
 * own settings back afterwards (replay applies the rules the log
 * recorded). */
static int load_all(fl_server *s, uint64_t *open_seq, char *err, size_t errlen)
{
    fl_store_files files;
    remove_leftovers(s->cfg.dir);
    int rc = fl_store_scan(s->cfg.dir, &files, err, errlen);
    if (rc != 0) return -1;
    load_ctx lc = {s, {0}, 0, 0, {0}, {0}, 0, 0};
    lc.st.now_ms = wall_ms();
    uint64_t t0 = wall_ms(), snap = files.snapshot;
    rc = snap ? load_snapshot(s, snap, &lc, err, errlen) : 0;
    uint64_t snap_records = lc.st.applied, snap_ms = wall_ms() - t0;
    size_t first = 0;
    while (first < files.nsegments && files.segments[first] < snap) first++;
    if (rc == 0) rc = check_contiguous(s->cfg.dir, &files, first, err, errlen);
    size_t last = last_with_records(s->cfg.dir, &files, first);
    for (size_t i = first; rc == 0 && i < files.nsegments; i++)
        rc = load_segment(s, files.segments[i], i >= last, &lc, err, errlen);
    *open_seq = files.nsegments > first ? files.segments[files.nsegments - 1]
                                        : (snap ? snap : 1);
    fl_store_files_free(&files);
    fl_buf_free(&lc.batch);
    if (rc == -ECANCELED) snprintf(err, errlen, "loading stopped before its end");
    if (rc != 0) return rc < 0 ? rc : -1;
    remove_older(s->cfg.dir, snap);
    s->persist.loaded_records = lc.st.applied + lc.replay_errors;
    s->persist.load_ms = wall_ms() - t0;
    fprintf(stderr, "fleetd: loaded %llu snapshot records (%llu ms) and %llu log "
            "records (%llu ms), %llu replay errors\n", (unsigned long long)snap_records,
            (unsigned long long)snap_ms,
            (unsigned long long)(lc.st.applied - snap_records),
            (unsigned long long)(s->persist.load_ms - snap_ms),
            (unsigned long long)lc.replay_errors);
    return 0;
}

/* ---- the log on the loop ---- */

static void log_failed(fl_server *s, const char *what, int rc)
{
    fl_persist *p = &s->persist;
    if (what[0] == 'w') p->write_errors++;
    else p->fsync_errors++;
    if (!p->broken)
        fprintf(stderr, "fleetd: log %s failed: %s; write commands are refused "
                "from now on\n", what, strerror(-rc));
    p->broken = 1;
}

static void sync_now(fl_durable *d)
{
    fl_persist *p = &d->s->persist;
    uint64_t t0 = uv_hrtime();
    int rc = fl_wal_sync(p->wal);
    fl_hist_record(&p->fsync_latency, uv_hrtime() - t0);
    FL_STAT_INC(p->fsyncs);
    if (rc != 0) {
        log_failed(d->s, "fsync", rc);
        return;
    }
    p->synced = p->written;
    d->last_sync_ms = wall_ms();
}

static void persist_flush(void *ud)
{
    fl_durable *d = ud;
    fl_persist *p = &d->s->persist;
    if (!p->wal || p->broken) return;
    if (fl_wal_pending(p->wal)) {
        uint64_t t0 = uv_hrtime();
        int rc = fl_wal_write(p->wal);
        fl_hist_record(&p->write_latency, uv_hrtime() - t0);
        if (rc != 0) {
            log_failed(d->s, "write", rc);
            return;
        }
    }
    p->written = p->appended;
    __atomic_store_n(&p->log_bytes, fl_wal_file_bytes(p->wal), __ATOMIC_RELAXED);
    /* With a background fsync in flight, its completion wakes the loop
     * and the next turn syncs. */
    if (d->s->cfg.fsync == FL_FSYNC_ALWAYS && p->synced < p->written &&
        !d->fsync_inflight)
        sync_now(d);
}

static void fsync_work(uv_work_t *req)
{
    fl_durable *d = req->data;
    d->fsync_rc = fdatasync(d->fsync_fd) == 0 ? 0 : -errno;
    __atomic_store_n(&d->fsync_finished, 1, __ATOMIC_RELEASE);
}

static void fsync_done(uv_work_t *req, int status)
{
    fl_durable *d = req->data;
    d->fsync_inflight = 0;
    if (d->stopping) {
        maybe_free(d);
        return;
    }
    fl_persist *p = &d->s->persist;
    fl_hist_record(&p->fsync_latency, uv_hrtime() - d->fsync_t0);
    FL_STAT_INC(p->fsyncs);
    if (status != 0 || d->fsync_rc != 0) {
        int rc = status ? status : d->fsync_rc;
        /* The fd synced is the wal's current one: no rotation or close
         * runs while a sync is in flight. */
        if (p->wal) fl_wal_fail(p->wal, rc);
        log_failed(d->s, "fsync", rc);
        return;
    }
    if (d->fsync_target > p->synced) p->synced = d->fsync_target;
}

/* Starts a thread-pool fdatasync of everything written so far. */
static void background_sync(fl_durable *d, uint64_t now)
{
    fl_persist *p = &d->s->persist;
    d->fsync_target = p->written;
    d->fsync_fd = fl_wal_fd(p->wal);
    d->fsync_t0 = uv_hrtime();
    d->fsync_req.data = d;
    d->fsync_finished = 0;
    d->last_sync_ms = now;
    if (uv_queue_work(d->loop, &d->fsync_req, fsync_work, fsync_done) == 0)
        d->fsync_inflight = 1;
}

static void everysec_sync(fl_durable *d, uint64_t now)
{
    fl_persist *p = &d->s->persist;
    if (d->s->cfg.fsync != FL_FSYNC_EVERYSEC || d->fsync_inflight ||
        p->broken || p->synced >= p->written || now - d->last_sync_ms < 1000)
        return;
    background_sync(d, now);
}

/* ---- snapshots ---- */

typedef struct snap_out {
    int fd;
    fl_buf buf;
} snap_out;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int snap_emit(void *ud, const void *payload, size_t len)
{
    snap_out *o = ud;
    if (fl_log_frame(&o->buf, payload, len) != 0) return -1;
    if (o->buf.len < (1u << 20)) return 0;
    int rc = write_all(o->fd, o->buf.data, o->buf.len);
    o->buf.len = 0;
    return rc;
}

/* In the child: the whole state into snapshot.<seq>.tmp, fsync'ed. */
static int child_write(const fl_server *s, uint64_t seq)
{
    char path[1024];
    if (fl_store_path(path, sizeof(path), s->cfg.dir, "snapshot", seq, 1)) return -1;
    snap_out o = {open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), {0}};
    if (o.fd < 0) return -1;
    uint8_t header[FL_LOG_HEADER_LEN];
    fl_log_header(header, FL_LOG_KIND_SNAPSHOT);
    fl_buf_append(&o.buf, header, sizeof(header));
    int rc = fl_snapshot_write(s, snap_emit, &o);
    if (rc == 0) rc = write_all(o.fd, o.buf.data, o.buf.len);
    if (rc == 0) rc = fsync(o.fd);
    if (close(o.fd) != 0) rc = -1;
    return rc;
}

static void prepare_work(uv_work_t *req)
{
    fl_durable *d = req->data;
    d->prep_rc = fl_wal_prepare(d->prep_dir, d->prep_seq, d->prep_err,
                                sizeof(d->prep_err));
}

static void prepare_done(uv_work_t *req, int status)
{
    fl_durable *d = req->data;
    d->prep_inflight = 0;
    if (d->stopping) {
        maybe_free(d);
        return;
    }
    /* On failure too: the rotation then creates the file itself and
     * reports its own error, rather than this retrying every tick. */
    d->prepared_seq = d->prep_seq;
    if (status != 0 || d->prep_rc != 0)
        fprintf(stderr, "fleetd: preparing the next log segment failed: %s; "
                "the rotation will create it\n", d->prep_err);
}

/* Creating the next segment costs two fsyncs (file and directory): done
 * on the thread pool before a snapshot, rotation on the loop only opens
 * it. Returns 1 while the preparation runs. */
static int prepare_next_segment(fl_durable *d)
{
    fl_persist *p = &d->s->persist;
    uint64_t next = fl_wal_seq(p->wal) + 1;
    if (d->prepared_seq == next) return 0;
    if (d->prep_inflight) return 1;
    const char *dir = fl_wal_dir(p->wal);
    if (strlen(dir) >= sizeof(d->prep_dir)) return 0;
    memcpy(d->prep_dir, dir, strlen(dir) + 1);
    d->prep_seq = next;
    d->prep_rc = -EIO;
    snprintf(d->prep_err, sizeof(d->prep_err), "not run");
    d->prep_req.data = d;
    if (uv_queue_work(d->loop, &d->prep_req, prepare_work, prepare_done) != 0) {
        d->prepared_seq = next; /* cannot queue: the rotation creates it */
        return 0;
    }
    d->prep_inflight = 1;
    return 1;
}

static int start_snapshot(fl_durable *d, char *err, size_t errlen)
{
    fl_persist *p = &d->s->persist;
    if (d->child || d->finishing) return -EBUSY;
    if (prepare_next_segment(d)) {
        d->snapshot_wanted = 1; /* the tick starts it once the file is ready */
        return 0;
    }
    if (d->fsync_inflight) {
        d->snapshot_wanted = 1; /* the tick starts it once the sync is done */
        return 0;
    }
    /* Rotation fdatasyncs the old segment on the loop: sync most of it on
     * the thread pool first, so only the last tick's records remain. */
    if (!d->presynced && d->s->cfg.fsync != FL_FSYNC_ALWAYS &&
        p->synced < p->written) {
        background_sync(d, wall_ms());
        d->presynced = 1;
        d->snapshot_wanted = 1;
        return 0;
    }
    d->presynced = 0;
    if (fl_wal_rotate(p->wal, err, errlen) != 0) {
        d->snapshot_wanted = 0;
        return -EIO;
    }
    p->written = p->synced = p->appended;
    uint64_t seq = fl_wal_seq(p->wal);
    fl_server_log_rules(d->s);  /* each segment opens with the rules */
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        int e = errno;
        snprintf(err, errlen, "fork: %s", strerror(e));
        d->snapshot_wanted = 0;
        return -e;
    }
    if (pid == 0) {
        /* The child must not outlive the server (an orphan would keep
         * writing a snapshot nobody will rename) nor hold its lock. */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        /* Nothing inherited is needed (the snapshot is a new file): drop
         * the lock, the listeners and every client socket, so a client the
         * server closes sees its connection end now, not when the child
         * exits, and the port is not held by the child. */
        (void)close_range(3, ~0U, 0);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        /* Background work: the snapshot takes only CPU the server and its
         * clients leave idle (on a small machine it would otherwise steal
         * a core from them for as long as it writes). */
        struct sched_param idle = {0};
        (void)sched_setscheduler(0, SCHED_IDLE, &idle);
        _exit(child_write(d->s, seq) == 0 ? 0 : 1);
    }
    d->child = pid;
    d->child_seq = seq;
    d->snapshot_wanted = 0;
    p->snapshot_running = (int)pid;
    return 0;
}

static int bgsave_hook(void *ud, char *err, size_t errlen)
{
    return start_snapshot(ud, err, errlen);
}

/* Filing a finished snapshot: rename, directory fsync, and deleting the
 * segments and snapshots it replaces. Deleting a large file can block for
 * tens of milliseconds while ext4 frees its extents, so all of it runs on
 * the thread pool, never on the loop (Redis closes old AOFs the same way). */
typedef struct finish_job {
    uv_work_t req;
    fl_durable *d;
    char dir[512];
    uint64_t seq;
    int child_ok, filed;
    uint64_t bytes;
} finish_job;

static void finish_work(uv_work_t *req)
{
    finish_job *j = req->data;
    char tmp[1024], final[1024];
    if (j->child_ok && fl_store_path(tmp, sizeof(tmp), j->dir, "snapshot", j->seq, 1) == 0 &&
        fl_store_path(final, sizeof(final), j->dir, "snapshot", j->seq, 0) == 0 &&
        rename(tmp, final) == 0 && fl_fsync_dir(j->dir) == 0) {
        struct stat st;
        j->bytes = stat(final, &st) == 0 ? (uint64_t)st.st_size : 0;
        j->filed = 1;
        remove_older(j->dir, j->seq);
        return;
    }
    remove_file(j->dir, "snapshot", j->seq, 1);
}

static void finish_done(uv_work_t *req, int status)
{
    finish_job *j = req->data;
    fl_durable *d = j->d;
    d->finishing = 0;
    if (!d->stopping) {
        fl_persist *p = &d->s->persist;
        p->snapshot_running = 0;
        if (status == 0 && j->filed) {
            p->last_snapshot_bytes = j->bytes;
            p->last_snapshot_ms = wall_ms();
            p->snapshots_ok++;
        } else {
            p->snapshots_failed++;
            fprintf(stderr, "fleetd: snapshot %llu failed\n", (unsigned long long)j->seq);
        }
    }
    free(j);
    maybe_free(d);
}

static void snapshot_finished(fl_durable *d, int ok)
{
    finish_job *j = fl_xcalloc(1, sizeof(*j));
    j->req.data = j;
    j->d = d;
    snprintf(j->dir, sizeof(j->dir), "%s", d->s->cfg.dir);
    j->seq = d->child_seq;
    j->child_ok = ok;
    d->child = 0;
    d->finishing = 1;
    if (uv_queue_work(d->loop, &j->req, finish_work, finish_done) != 0) {
        finish_work(&j->req);
        finish_done(&j->req, 0);
    }
}

static void reap_child(fl_durable *d)
{
    int status;
    pid_t r = waitpid(d->child, &status, WNOHANG);
    if (r == 0) return;
    snapshot_finished(d, r == d->child && WIFEXITED(status) &&
                         WEXITSTATUS(status) == 0);
}

static void tick(uv_timer_t *t)
{
    fl_durable *d = t->data;
    fl_server *s = d->s;
    uint64_t now = wall_ms();
    everysec_sync(d, now);
    if (d->child) reap_child(d);
    char err[256] = "";
    if (!d->child && !d->finishing && !s->persist.broken && now >= d->retry_ms &&
        (d->snapshot_wanted ||
         s->persist.log_bytes > (uint64_t)s->cfg.snapshot_log_bytes)) {
        int rc = start_snapshot(d, err, sizeof(err));
        if (rc < 0 && rc != -EBUSY) {
            /* Back off like Redis: no rotation storm while fork fails. */
            d->snapshot_wanted = d->presynced = 0;
            d->retry_ms = now + 5000;
            fprintf(stderr, "fleetd: snapshot failed: %s; retrying in 5 s\n",
                    err[0] ? err : strerror(-rc));
        }
    }
    if (now - d->last_idle_ms >= 1000) {
        d->last_idle_ms = now;
        if (!s->persist.broken) (void)fl_server_close_idle_trips(s, now);
    }
}

/* ---- start and stop ---- */

/* Two servers appending to one log would interleave garbage. */
static int lock_dir(const char *dir, char *err, size_t errlen)
{
    char path[1024];
    if (snprintf(path, sizeof(path), "%s/LOCK", dir) >= (int)sizeof(path)) {
        snprintf(err, errlen, "data directory path too long");
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "data directory %s is in use by another fleetd", dir);
        close(fd);
        return -1;
    }
    return fd;
}

/* Replay changed s->cfg to the rules the log recorded; this start's own
 * settings take over now (and are logged once the log is open). */
static void restore_settings(fl_server *s, const fl_config *startup)
{
    s->cfg = *startup;
    fl_server_apply_config(s);
}

/* After a load: opens the log at seq and starts the store on the loop.
 * Takes lock_fd (closed on failure). */
static int open_after_load(uv_loop_t *loop, fl_server *s, int lock_fd, uint64_t seq,
                           fl_durable **out, char *err, size_t errlen)
{
    fl_wal *wal = NULL;
    if (fl_wal_open(&wal, s->cfg.dir, seq, err, errlen) != 0) {
        close(lock_fd);
        return -1;
    }
    fl_durable *d = fl_xcalloc(1, sizeof(*d));
    d->lock_fd = lock_fd;
    d->loop = loop;
    d->s = s;
    d->last_sync_ms = d->last_idle_ms = wall_ms();
    s->persist.wal = wal;
    s->persist.log_bytes = fl_wal_file_bytes(wal);
    fl_server_log_rules(s);
    s->hooks.bgsave = bgsave_hook;
    s->hooks.persist_flush = persist_flush;
    s->hooks.store_ud = d;
    d->tick.data = d;
    if (uv_timer_init(loop, &d->tick) != 0 ||
        uv_timer_start(&d->tick, tick, TICK_MS, TICK_MS) != 0) {
        snprintf(err, errlen, "cannot start the store's timer");
        return -1;
    }
    *out = d;
    return 0;
}

/* A load, run on the loop (fl_durable_start) or on the loop's thread pool
 * (fl_durable_start_async): the directory's lock is held from load_begin,
 * load_all runs in load_work, and load_end, on the loop, puts this
 * start's settings back and opens the log (or releases the lock). */
typedef struct load_job {
    uv_work_t req;
    uv_loop_t *loop;
    fl_server *s;
    fl_config startup;
    int lock_fd, rc;
    uint64_t seq;
    char err[4096];             /* room for two paths and a reason */
    fl_durable_loaded_fn *done;
    void *ud;
} load_job;

static load_job *load_begin(uv_loop_t *loop, fl_server *s, char *err, size_t errlen)
{
    int lock_fd = lock_dir(s->cfg.dir, err, errlen);
    if (lock_fd < 0) return NULL;
    load_job *j = fl_xcalloc(1, sizeof(*j));
    j->req.data = j;
    j->loop = loop;
    j->s = s;
    j->startup = s->cfg;
    j->lock_fd = lock_fd;
    s->persist.replaying = 1; /* set and cleared on the loop */
    return j;
}

static void load_work(uv_work_t *req)
{
    load_job *j = req->data;
    j->rc = load_all(j->s, &j->seq, j->err, sizeof(j->err));
}

/* 0 with the store in *d, or -ECANCELED or -1 with the reason in j->err. */
static int load_end(load_job *j, fl_durable **d)
{
    j->s->persist.replaying = 0;
    restore_settings(j->s, &j->startup);
    if (j->rc != 0) {
        close(j->lock_fd);
        return j->rc;
    }
    return open_after_load(j->loop, j->s, j->lock_fd, j->seq, d, j->err, sizeof(j->err));
}

int fl_durable_start(uv_loop_t *loop, fl_server *s, fl_durable **out,
                     char *err, size_t errlen)
{
    load_job *j = load_begin(loop, s, err, errlen);
    if (!j) return -1;
    load_work(&j->req);
    int rc = load_end(j, out);
    if (rc != 0) snprintf(err, errlen, "%s", j->err);
    free(j);
    return rc == 0 ? 0 : -1;
}

uint64_t fl_durable_bytes_to_load(const char *dir)
{
    fl_store_files files;
    char err[256], path[1024];
    struct stat st;
    uint64_t total = 0;
    if (fl_store_scan(dir, &files, err, sizeof(err)) != 0) return 0;
    if (files.snapshot &&
        fl_store_path(path, sizeof(path), dir, "snapshot", files.snapshot, 0) == 0 &&
        stat(path, &st) == 0)
        total += (uint64_t)st.st_size;
    for (size_t i = 0; i < files.nsegments; i++)
        if (files.segments[i] >= files.snapshot &&
            fl_store_path(path, sizeof(path), dir, "log", files.segments[i], 0) == 0 &&
            stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
    fl_store_files_free(&files);
    return total;
}

static void load_done(uv_work_t *req, int status)
{
    load_job *j = req->data;
    fl_durable *d = NULL;
    if (status != 0) {
        snprintf(j->err, sizeof(j->err), "the load did not run: %s", uv_strerror(status));
        j->rc = -1;
    }
    int rc = load_end(j, &d);
    j->done(j->ud, rc == 0 ? d : NULL, rc == -ECANCELED, rc == 0 ? NULL : j->err);
    free(j);
}

int fl_durable_start_async(uv_loop_t *loop, fl_server *s, fl_durable_loaded_fn *done,
                           void *ud, char *err, size_t errlen)
{
    load_job *j = load_begin(loop, s, err, errlen);
    if (!j) return -1;
    j->done = done;
    j->ud = ud;
    int rc = uv_queue_work(loop, &j->req, load_work, load_done);
    if (rc != 0) {
        s->persist.replaying = 0;
        snprintf(err, errlen, "cannot start the load: %s", uv_strerror(rc));
        close(j->lock_fd);
        free(j);
        return -1;
    }
    return 0;
}

/* The store is freed once stopped and nothing in flight refers to it. */
static void maybe_free(fl_durable *d)
{
    if (!d->stopping || !d->tick_closed || d->fsync_inflight || d->finishing ||
        d->prep_inflight)
        return;
    if (d->lock_fd >= 0) close(d->lock_fd);
    free(d);
}

static void tick_closed(uv_handle_t *h)
{
    fl_durable *d = h->data;
    d->tick_closed = 1;
    maybe_free(d);
}

int fl_durable_stop(fl_durable *d)
{
    if (!d) return 0;
    fl_server *s = d->s;
    if (d->child) {
        (void)kill(d->child, SIGKILL);
        (void)waitpid(d->child, NULL, 0);
        remove_file(s->cfg.dir, "snapshot", d->child_seq, 1);
        d->child = 0;
        s->persist.snapshot_running = 0;
    }
    /* A background fdatasync still running syncs the fd the close is about
     * to sync and close: wait for it (the loop is stopping anyway), and
     * carry its failure into the close. Linux reports a writeback error to
     * one fsync only, so the close's own sync could otherwise succeed. */
    if (d->fsync_inflight) {
        if (uv_cancel((uv_req_t *)&d->fsync_req) != 0) {
            const struct timespec ms = {0, 1000000};
            while (!__atomic_load_n(&d->fsync_finished, __ATOMIC_ACQUIRE))
                (void)nanosleep(&ms, NULL);
            if (d->fsync_rc != 0 && s->persist.wal) fl_wal_fail(s->persist.wal, d->fsync_rc);
        }
    }
    int rc = fl_wal_close(s->persist.wal);
    s->persist.wal = NULL;
    s->hooks.bgsave = NULL;
    s->hooks.persist_flush = NULL;
    d->stopping = 1;
    uv_timer_stop(&d->tick);
    uv_close((uv_handle_t *)&d->tick, tick_closed);
    if (rc != 0) fprintf(stderr, "fleetd: closing the log: %s\n", strerror(-rc));
    return rc == 0 ? 0 : -1;
}
