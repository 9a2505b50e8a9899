/*
 * durable.h - durability on the event loop: load at start, the log's
 * write and fsync policy, background snapshots, idle-trip closing.
 *
 * Start: newest snapshot, then every log segment after it, through
 * fl_store_apply; a torn or corrupt tail of the last segment is cut at the
 * last good record and reported; then the log is opened for appending.
 * Per loop turn (the RESP edge's check phase, via hooks.persist_flush):
 * the turn's records are written with one write(); under appendfsync
 * always they are fdatasync'ed before any reply that depends on them
 * leaves (group commit). Under everysec a thread-pool job fdatasyncs once
 * a second; under no the kernel decides. A failed write or fsync marks
 * the log broken: writes are refused (MISCONF) until restart.
 *
 * Snapshots: the log moves to a new segment, the process forks, the child
 * writes snapshot.<seq>.tmp from its copy-on-write image and fsyncs it,
 * the parent renames it into place and deletes the segments and snapshots
 * it replaces. The loop never waits for the child. A snapshot starts on
 * BGSAVE and when the current segment outgrows snapshot-log-bytes.
 *
 * Ownership: fl_durable_start allocates the fl_durable and installs the
 * server's log (s->persist.wal) and hooks; fl_durable_stop writes and
 * syncs what is pending, closes the log and frees everything.
 */
#ifndef FL_STORE_DURABLE_H
#define FL_STORE_DURABLE_H

#include <stdint.h>
#include <uv.h>

#include "../cmd/server.h"

typedef struct fl_durable fl_durable;

/* Loads the state from s->cfg.dir and opens the log. 0, or -1 with a
 * readable reason in err (the server must not start). Progress and any
 * cut tail are reported on stderr. */
int fl_durable_start(uv_loop_t *loop, fl_server *s, fl_durable **out,
                     char *err, size_t errlen);
/* Bytes a start would read: the newest snapshot and the segments after. */
uint64_t fl_durable_bytes_to_load(const char *dir);

/* Called on the loop when an asynchronous load ends: the started store,
 * or NULL and the reason (the server must not serve); cancelled is 1
 * when the load gave up because s->load_cancel was set (a stop). */
typedef void fl_durable_loaded_fn(void *ud, fl_durable *d, int cancelled,
                                  const char *err);

/* As fl_durable_start, with the load on a worker thread of the loop's
 * pool, so the listeners can answer meanwhile. Until done is called the
 * worker owns s's data (fleet, keyspace, persist, the replayed rules in
 * s->cfg): the loop must only answer LOADING (s->loading). Returns 0 when
 * the load started, or -1 with a reason in err (the directory's lock). */
int fl_durable_start_async(uv_loop_t *loop, fl_server *s, fl_durable_loaded_fn *done,
                           void *ud, char *err, size_t errlen);
/* Writes and fsyncs pending records, stops a running snapshot child,
 * closes the log. 0, or -1 when the last records may not be durable. */
int fl_durable_stop(fl_durable *d);

#endif
