/*
 * server.h - the state every command may read: configuration, the keyspace,
 * counters, and the hooks through which commands reach the connections
 * (CLIENT LIST/KILL) without including the network layer.
 *
 * One event-loop thread owns all of it. The metrics thread reads the
 * counters with relaxed atomic loads (see metrics/hist.h); it never writes.
 */
#ifndef FL_CMD_SERVER_H
#define FL_CMD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "cmd.h"
#include "../metrics/prom.h"
#include "../util/buf.h"

enum fl_fsync_policy { FL_FSYNC_ALWAYS, FL_FSYNC_EVERYSEC, FL_FSYNC_NO };

typedef struct fl_config {
    int port;
    int http_port;
    char bind[64];
    char dir[512];
    char config_file[512];
    int fsync;                 /* enum fl_fsync_policy */
    char requirepass[256];     /* empty: no AUTH required */
    long long maxclients;
    long long proto_max_bulk_len;
    long long max_multibulk;   /* arguments per command */
    long long max_inline;      /* bytes of one inline command */
    long long client_output_limit; /* bytes queued for one client */
    long long timeout;         /* idle seconds, 0 = never */
    long long max_query_buffer; /* bytes buffered for one client */
    /* the live fleet (see src/fleet/fleet.h) */
    long long trip_idle_timeout;   /* seconds; 0 = trips never auto-close */
    long long trip_jitter_m;       /* moves shorter than this are noise */
    long long max_speed_kmh;       /* faster implied speeds are implausible */
    long long max_future_ms;       /* pings further ahead are refused */
    long long trip_max_points;     /* path points kept per trip */
    long long trip_history_max;    /* finished trips kept */
    long long snapshot_log_bytes;  /* log size that triggers a snapshot */
    long long load_async_bytes;    /* a store this large loads with the
                                      listeners up, answering LOADING */
} fl_config;

/* Sets the defaults documented in docs/architecture.md. */
void fl_config_defaults(fl_config *c);
/* Sets one setting by its CONFIG name from text (config file, flags).
 * Unlike CONFIG SET it may set immutable settings. 0, or -1 with err. */
int fl_config_set_param(fl_config *c, const char *name, const char *value,
                        char *err, size_t errlen);

/* What live streams (SSE) are told. Pointers are borrowed for the call. */
enum fl_event_type {
    FL_EV_MOVE = 1, FL_EV_TRIP_STARTED = 2, FL_EV_TRIP_ENDED = 4
};
typedef struct fl_event {
    int type;
    const struct fl_vehicle *v;  /* MOVE */
    const struct fl_trip *t;     /* TRIP_* */
} fl_event;

typedef struct fl_server_hooks {
    void *ud;
    /* Appends one line per client in CLIENT LIST format. */
    void (*client_list)(void *ud, fl_buf *out);
    /* Kills the clients matching every given filter: id (when != 0),
     * addr and laddr (when non-NULL); no filter matches every client.
     * The client whose id is skip_id (when != 0) is spared. Returns how
     * many were killed. */
    long (*client_kill)(void *ud, uint64_t id, const char *addr,
                        const char *laddr, uint64_t skip_id);
    size_t (*clients_connected)(void *ud);
    size_t (*clients_output_bytes)(void *ud);
    /* Starts a background snapshot: 0, -EBUSY when one runs, or another
     * negative code with a reason in err. NULL without a data directory. */
    int (*bgsave)(void *ud, char *err, size_t errlen);
    /* Writes (and, by policy, fsyncs) the log records of this loop turn;
     * the RESP edge calls it before releasing replies that wait on them. */
    void (*persist_flush)(void *ud);
    void *store_ud;
    /* Live events, for the types set in event_mask (0: nobody listens,
     * and emitting costs one test). Never called while the log replays. */
    void (*event)(void *ud, const fl_event *ev);
    void *event_ud;
    unsigned event_mask;
    /* Heap bytes in use and resident set size of the process. */
    void (*memory)(void *ud, uint64_t *used, uint64_t *rss);
} fl_server_hooks;

/* Counters have one writer (the loop thread) and readers on the metrics
 * thread: a relaxed load and store is enough, and costs a plain add. */
#define FL_STAT_ADD(field, n) \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), \
                     __ATOMIC_RELAXED)
#define FL_STAT_INC(field) FL_STAT_ADD(field, 1)

typedef struct fl_server_stats {
    uint64_t connections_received;
    uint64_t connections_rejected;
    uint64_t commands_processed;
    uint64_t net_input_bytes;
    uint64_t net_output_bytes;
    uint64_t protocol_errors;
    uint64_t unknown_commands;
    uint64_t output_limit_disconnects;
    uint64_t idle_disconnects;
} fl_server_stats;

/* Durability state, written by the loop thread; the metrics thread reads
 * the counters with relaxed loads. */
typedef struct fl_persist {
    struct fl_wal *wal;        /* NULL: no log (tests, --dir unset) */
    int replaying;             /* loading: commands are not logged */
    uint64_t appended;         /* records handed to the log */
    uint64_t written;          /* records written to the file */
    uint64_t synced;           /* records known to be on disk */
    uint64_t log_bytes;        /* size of the current log segment */
    uint64_t fsyncs, fsync_errors, write_errors;
    int broken;                /* a write or fsync failed: refuse writes */
    fl_hist fsync_latency;     /* nanoseconds */
    fl_hist write_latency;     /* nanoseconds of each loop-turn write() */
    uint64_t snapshots_ok, snapshots_failed;
    uint64_t last_snapshot_ms; /* 0: never */
    uint64_t last_snapshot_bytes;
    int snapshot_running;      /* pid of the child, 0 when none */
    uint64_t loaded_records, load_ms;
    uint64_t tail_cut_bytes;   /* bytes of a torn tail cut at the last load */
    fl_buf scratch;            /* encoding buffer for records */
} fl_persist;

/* The HTTP edge's counters (written on the loop, read by /metrics). */
typedef struct fl_http_stats {
    uint64_t answers[6];       /* by status class: [2] = 2xx ... [5] = 5xx */
    uint64_t sse_events;       /* events queued to streams */
    uint64_t sse_dropped;      /* events dropped for a full stream buffer */
    uint64_t sse_streams;      /* open now */
    fl_hist latency;           /* request in -> answer queued, nanoseconds */
} fl_http_stats;

typedef struct fl_server {
    fl_config cfg;
    struct fl_db *db;
    struct fl_fleet *fleet;
    fl_persist persist;
    fl_server_stats stats;
    fl_http_stats http;
    fl_cmd_stats *cmd_stats;   /* one per fl_commands entry, same order */
    fl_server_hooks hooks;
    uint64_t start_ms;
    uint64_t run_id_seed;
    char run_id[41];
    int shutdown_requested;
    int ready;                 /* listeners up, state loaded (for /readyz) */
    /* The store is loading on a worker thread, which owns the data until
     * it is done: the listeners answer LOADING and touch nothing else.
     * Written and read on the loop thread only. */
    int loading;
    int load_cancel;           /* atomic: the loader gives up (a stop) */
    uint64_t load_records;     /* atomic: records loaded so far (INFO) */
    fl_gauges gauges;          /* published by the loop every 100 ms */
} fl_server;

/* Pushes the fleet settings of cfg into the fleet (after CONFIG SET). */
void fl_server_apply_config(fl_server *s);
/* Logs the settings replay depends on (jitter, speed limit, path and
 * history sizes) as a CONFIG SET record: a log then replays under the
 * rules it was written with, whatever the next start is configured with.
 * Called when the log opens, at each new segment and when they change. */
void fl_server_log_rules(fl_server *s);
/* Ends trips idle for longer than trip-idle-timeout, logging each end.
 * Returns how many were closed. */
size_t fl_server_close_idle_trips(fl_server *s, uint64_t now_ms);

/* Whether a live stream listens for events of type. Replaying first: a
 * loader thread must not read the hooks, which the loop may change
 * meanwhile (a stop during an asynchronous load). */
static inline int fl_server_listens(const fl_server *s, int type)
{
    return !s->persist.replaying && (s->hooks.event_mask & (unsigned)type);
}

/* Tells the live streams about an event (see fl_server_hooks.event). */
static inline void fl_server_emit(fl_server *s, int type,
                                  const struct fl_vehicle *v,
                                  const struct fl_trip *t)
{
    if (fl_server_listens(s, type)) {
        fl_event ev = {type, v, t};
        s->hooks.event(s->hooks.event_ud, &ev);
    }
}
/* Records a client's replies must wait for: written, or synced under
 * --fsync always. */
static inline uint64_t fl_server_durable_level(const fl_server *s)
{
    return s->cfg.fsync == FL_FSYNC_ALWAYS ? s->persist.synced
                                           : s->persist.written;
}

/* Allocates cmd_stats and the db. Returns 0 or a negative code. */
int fl_server_init(fl_server *s, const fl_config *cfg, uint64_t now_ms,
                   uint64_t seed);
void fl_server_free(fl_server *s);

#endif
