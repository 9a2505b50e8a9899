/*
 * fleet.h - the live fleet: vehicles with their last position and status,
 * the trips they run, the trips they finished, and supply counts by area.
 *
 * Why this shape:
 *  - A vehicle is one allocation holding its id; a hash (id -> vehicle) and
 *    a geo set (id -> 52-bit geohash, the same index GEO commands use) find
 *    it by name and by place. NEARBY and WITHIN therefore run the geo
 *    set's cell-pruned searches, then filter by status and fleet.
 *  - A running trip hangs off its vehicle and is fed by every accepted
 *    ping: haversine distance (moves shorter than the jitter threshold are
 *    not counted; they accumulate against the last counted point), idle
 *    time (intervals reported below idle_speed_kmh; without a reported
 *    speed, stops with no counted move for FL_IDLE_WINDOW_MS or more,
 *    counted in full), maximum speed and the path as an encoded polyline (Google's
 *    format, 1e-5 degrees), appended in place, so a path costs a few bytes
 *    per point and is ready to serve.
 *  - Running trips sit in a list ordered by their last ping's arrival, so
 *    closing idle trips looks only at the oldest ones.
 *  - Finished trips are records kept in memory (and in the snapshot and
 *    log, see src/store/) up to a retention count, found by id and by
 *    vehicle (newest first). They outlive a deleted vehicle.
 *  - Supply: for every vehicle the standard-geohash cell of 7 characters
 *    is kept; counts by status are maintained for prefixes of 4 to 7
 *    characters (about 39 km down to 150 m) as vehicles move and change
 *    status.
 *
 * Time is passed in (now_ms); nothing here reads a clock or does I/O.
 * Pings older than or equal to a vehicle's last accepted one change
 * nothing (STALE); a ping implying a speed above max_speed_kmh from the
 * last accepted position is counted and ignored (IMPLAUSIBLE), unless it is
 * the third such ping in a row, which is taken as a relocation (the vehicle
 * moves, its trip does not count the jump).
 *
 * Ownership: the fleet owns vehicles, trips and paths. Pointers it returns
 * are borrowed and valid until the next call that modifies the fleet.
 * Errors: 0 or a negative errno code for bad input. Allocation failure
 * aborts (fl_xmalloc, the server's policy in docs/architecture.md): an
 * update touches four structures and undoing three of them on the fourth's
 * failure would cost more code than the fleet itself.
 */
#ifndef FL_FLEET_FLEET_H
#define FL_FLEET_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "../geo/geoset.h"
#include "../util/ptrmap.h"

enum fl_vstatus { FL_VS_AVAILABLE = 0, FL_VS_BUSY = 1, FL_VS_OFFLINE = 2 };
#define FL_VS_COUNT 3
#define FL_FLEET_ID_MAX 255        /* bytes of a vehicle, trip or fleet id */
#define FL_CELL_MIN_LEVEL 4        /* geohash characters */
#define FL_CELL_MAX_LEVEL 7
#define FL_IDLE_WINDOW_MS 60000    /* a stop this long is idle time */

/* "available", "busy", "offline". */
const char *fl_vstatus_name(int status);
/* Case-insensitive; the status or -1. */
int fl_vstatus_parse(const char *s, size_t n);

typedef struct fl_fleet_config {
    double jitter_m;            /* moves shorter than this are not counted */
    double max_speed_kmh;       /* faster implied speeds are implausible */
    double idle_speed_kmh;      /* slower pings count as idle time */
    int64_t max_future_ms;      /* pings further ahead are refused */
    int64_t trip_idle_ms;       /* running trips close after this; 0 never */
    uint32_t trip_max_points;   /* path points kept per trip */
    uint64_t trip_history_max;  /* finished trips kept */
} fl_fleet_config;

void fl_fleet_config_defaults(fl_fleet_config *c);

enum fl_trip_end_reason {
    FL_TRIP_RUNNING = 0, FL_TRIP_ENDED = 1, FL_TRIP_IDLE = 2,
    FL_TRIP_VEHICLE_DELETED = 3
};
const char *fl_trip_end_name(int reason);

/* The path as an encoded polyline plus what appending needs. The buffer
 * is exactly len bytes: a path grows by a few bytes per counted point, and
 * millions of running trips make slack the largest cost. */
typedef struct fl_path {
    char *enc;                  /* not NUL-terminated; NULL when empty */
    uint32_t len, points;
    int32_t last_lat_e5, last_lon_e5;
} fl_path;

struct fl_trip_history;
struct fl_vehicle;
typedef struct fl_fleet fl_fleet;

/* A trip. Fields only a running or only a finished trip needs share
 * storage (the unions): at millions of running trips each 8 bytes is
 * tens of megabytes. end_reason says which side is live. */
typedef struct fl_trip {
    struct fl_trip *lprev, *lnext; /* running list / finished FIFO */
    union {
        struct fl_vehicle *vehicle;   /* while running */
        struct fl_trip_history *hist; /* once finished */
    };
    union {
        struct {                      /* while running */
            int64_t last_move_ms;     /* time of the last counted move */
            int64_t idle_to_ms;       /* idle time is counted up to here */
        };
        struct {                      /* once finished: the vehicle's list */
            struct fl_trip *vnewer, *volder;
        };
    };
    int64_t start_ms, last_ms, end_ms; /* end_ms 0 while running */
    double distance_m;
    int64_t idle_ms;
    int32_t anchor_lon_e7, anchor_lat_e7; /* last counted point, 1e-7 deg */
    float max_speed_kmh;
    uint32_t pings;             /* accepted pings fed to the trip */
    uint32_t flagged;           /* implausible pings during the trip */
    fl_path path;
    uint8_t end_reason;         /* enum fl_trip_end_reason */
    uint8_t truncated;          /* path stopped at trip_max_points */
    uint8_t id_len;
    char id[];
} fl_trip;

struct fl_fleet_group;

typedef struct fl_vehicle fl_vehicle;
/* One live vehicle: 45 bytes and its id, allocated as exactly that
 * (offsetof(fl_vehicle, id) + id length), since at millions of vehicles
 * every 16 bytes of a malloc size class is tens of megabytes. */
struct fl_vehicle {
    double lon, lat;
    int64_t ts_ms;              /* last accepted ping */
    fl_trip *trip;              /* running trip or NULL */
    float speed_kmh;            /* NAN if never reported */
    uint16_t flagged;           /* implausible pings, saturating */
    uint16_t heading_cdeg;      /* 0.01 degree; FL_UNKNOWN16 if never */
    uint16_t group;             /* fleet number, 0 = none */
    uint8_t status;             /* enum fl_vstatus */
    uint8_t suspect;            /* implausible pings in a row */
    uint8_t id_len;
    char id[];
};
#define FL_UNKNOWN16 0xFFFF
#define FL_SPEED_MAX_KMH 6000.0     /* a reported speed above is refused */
#define FL_FLEETS_MAX 65535         /* distinct fleet names */

/* Last reported speed (km/h) and heading (degrees), NAN if never. */
float fl_vehicle_speed(const fl_vehicle *v);
float fl_vehicle_heading(const fl_vehicle *v);
/* The vehicle's fleet name, or NULL. */
const char *fl_vehicle_fleet(const fl_fleet *f, const fl_vehicle *v,
                             size_t *len);
/* The 35-bit standard geohash (7 characters) of the vehicle's cell. */
uint64_t fl_vehicle_cell(const fl_vehicle *v);

typedef struct fl_ping {
    double lon, lat;
    int64_t ts_ms;
    float speed_kmh, heading;   /* NAN: not reported */
    const char *fleet;          /* NULL: keep */
    size_t fleet_len;
    int status;                 /* -1: keep (available for a new vehicle) */
    int ts_kind;                /* fl_ping_ts (see fl_fleet_update) */
    int burst;                  /* out: applied as part of a burst */
} fl_ping;

enum fl_ping_ts {
    FL_TS_GIVEN = 0,   /* the client's TS */
    FL_TS_ARRIVAL = 1, /* no TS: ts_ms is the server's arrival time */
    FL_TS_BURST = 2    /* replay of a ping that was applied as a burst */
};

/* A TS-less ping arriving less than FL_BURST_MS after the vehicle's last
 * ping (or at most FL_SERVER_TS_SLACK_MS before it) belongs to a burst. */
#define FL_BURST_MS 100
#define FL_SERVER_TS_SLACK_MS 1000

enum fl_ping_outcome {
    FL_PING_APPLIED = 0, FL_PING_STALE = 1, FL_PING_IMPLAUSIBLE = 2,
    FL_PING_RELOCATED = 3
};

typedef struct fl_fleet_stats {
    uint64_t vehicles;
    uint64_t by_status[FL_VS_COUNT];
    uint64_t trips_running;
    uint64_t trips_finished;    /* kept now */
    uint64_t trips_closed_idle; /* lifetime counters from here on */
    uint64_t pings_applied;
    uint64_t pings_stale;
    uint64_t pings_implausible;
    uint64_t pings_relocated;
} fl_fleet_stats;

fl_fleet *fl_fleet_new(const fl_fleet_config *cfg, uint64_t seed);
void fl_fleet_free(fl_fleet *f);           /* NULL is fine */
/* Replaces the settings (CONFIG SET); applies to later pings. */
void fl_fleet_configure(fl_fleet *f, const fl_fleet_config *cfg);
const fl_fleet_config *fl_fleet_get_config(const fl_fleet *f);
const fl_fleet_stats *fl_fleet_get_stats(const fl_fleet *f);
/* Approximate heap bytes. */
size_t fl_fleet_bytes(const fl_fleet *f);
/* Removes everything (FLUSHALL). */
void fl_fleet_clear(fl_fleet *f);

/* Applies a ping. -EINVAL: coordinates outside GEOADD's range or not
 * finite, id empty or too long, speed outside 0..FL_SPEED_MAX_KMH;
 * -ERANGE: ts_ms more than max_future_ms after now_ms or not positive;
 * -ENOSPC: a new fleet name beyond FL_FLEETS_MAX. *outcome: fl_ping_outcome.
 * A ping not after the vehicle's last is STALE. An FL_TS_ARRIVAL ping in a
 * burst (pipelined or coalesced TS-less pings of one vehicle) is applied
 * in arrival order at max(arrival, last) with p->burst = 1: arrival times
 * a few milliseconds apart say nothing of the vehicle's speed, so none is
 * judged (never IMPLAUSIBLE) or derived for the trip from that step. The
 * caller logs p->ts_ms and the burst mark; replay passes FL_TS_BURST, which
 * applies the same way at that time (STALE only if before the last). */
int fl_fleet_update(fl_fleet *f, const char *id, size_t len,
                    fl_ping *p, int64_t now_ms, int *outcome);
const fl_vehicle *fl_fleet_vehicle(const fl_fleet *f, const char *id,
                                   size_t len);
/* Deletes a vehicle; its running trip ends (reason VEHICLE_DELETED) at
 * its last ping. 1 if it existed, 0 if not. */
int fl_fleet_delete(fl_fleet *f, const char *id, size_t len);

/* Vehicles by place. */
typedef struct fl_fleet_query {
    double lon, lat, radius_m;  /* NEARBY */
    double box[4];              /* WITHIN: min lon, min lat, max lon, max lat */
    int is_box;
    long long count;            /* 0: all */
    int status;                 /* -1: any */
    const char *fleet;          /* NULL: any */
    size_t fleet_len;
} fl_fleet_query;

typedef struct fl_fleet_hit {
    const fl_vehicle *v;
    double dist_m;              /* NEARBY: from the query point */
} fl_fleet_hit;

/* Results, owned by the caller: zero-initialise, reuse, then free. */
typedef struct fl_fleet_hits {
    fl_fleet_hit *v;
    size_t n, cap;
    fl_geo_result scratch;
} fl_fleet_hits;
void fl_fleet_hits_free(fl_fleet_hits *h);

/* NEARBY: vehicles within radius_m of (lon, lat), nearest first, by the
 * haversine on their exact positions (the index decides candidates on
 * the 52-bit geohash, within 0.6 m). WITHIN: vehicles inside the box
 * (min lon > max lon crosses the antimeridian), in index order.
 * 0, -EINVAL (bad shape) or -ENOMEM. */
int fl_fleet_search(const fl_fleet *f, const fl_fleet_query *q,
                    fl_fleet_hits *out);

/* Vehicles by status, in one fleet (name) or all (NULL). */
void fl_fleet_count(const fl_fleet *f, const char *fleet, size_t len,
                    uint64_t out[FL_VS_COUNT]);

/* ---- trips ---- */

/* Starts a trip at the vehicle's last position. id NULL: one is made
 * ("t" and a sequence number). ts_ms: the start, at least the vehicle's
 * last ping. -ENOENT no such vehicle, -EEXIST a trip is running,
 * -EADDRINUSE the id is taken, -EINVAL bad id, -ERANGE ts in the future. */
int fl_fleet_trip_start(fl_fleet *f, const char *vid, size_t vlen,
                        const char *tid, size_t tlen, int64_t ts_ms,
                        int64_t now_ms, const fl_trip **out);
/* Ends the vehicle's running trip at max(ts_ms, its last ping).
 * -ENOENT no such vehicle, -ESRCH no trip running. */
int fl_fleet_trip_end(fl_fleet *f, const char *vid, size_t vlen,
                      int64_t ts_ms, int reason, const fl_trip **out);
/* A running or finished trip by id, or NULL. */
const fl_trip *fl_fleet_trip(const fl_fleet *f, const char *tid, size_t tlen);
/* The vehicle id a trip belongs to. */
const char *fl_trip_vehicle(const fl_trip *t, size_t *len);
/* The vehicle's finished trips, newest first (NULL when none); walk with
 * t->volder. */
const fl_trip *fl_fleet_trips_of(const fl_fleet *f, const char *vid,
                                 size_t vlen);
/* The oldest running trip idle since before now_ms - trip_idle_ms, or
 * NULL: the caller ends it (and logs that) with fl_fleet_trip_end. */
const fl_trip *fl_fleet_idle_trip(const fl_fleet *f, int64_t now_ms);
/* The next generated trip number (kept across restarts by the store). */
uint64_t fl_fleet_trip_seq(const fl_fleet *f);
void fl_fleet_set_trip_seq(fl_fleet *f, uint64_t seq);

/* ---- supply by area ---- */

typedef struct fl_cell_count {
    uint64_t cell;              /* the prefix bits (5 per character) */
    int level;                  /* characters, FL_CELL_MIN..MAX_LEVEL */
    uint32_t by_status[FL_VS_COUNT];
} fl_cell_count;

/* Calls fn for every non-empty cell of `level` characters whose bounds
 * intersect the box (NULL: all), in no particular order; stops when fn
 * returns nonzero. -EINVAL for a level out of range. */
int fl_fleet_cells(const fl_fleet *f, int level, const double *box,
                   int (*fn)(void *ud, const fl_cell_count *c), void *ud);
/* Demand: trips started at or after since_ms (among the last
 * FL_DEMAND_MAX starts), counted by the cell of `level` characters they
 * started in. Calls fn for every such cell whose bounds intersect the box
 * (NULL: all); stops when fn returns nonzero. -EINVAL for a bad level. */
int fl_fleet_demand_cells(const fl_fleet *f, int level, const double *box,
                          int64_t since_ms,
                          int (*fn)(void *ud, uint64_t cell, int level,
                                    uint32_t starts),
                          void *ud);
/* The counts of one cell given as a geohash string (4..7 characters).
 * -EINVAL when it is not a geohash of that length. */
int fl_fleet_cell(const fl_fleet *f, const char *gh, size_t n,
                  fl_cell_count *out);
/* The geohash string of a cell; out gets level characters and a NUL. */
void fl_cell_name(uint64_t cell, int level, char out[FL_CELL_MAX_LEVEL + 1]);
/* The edges of a cell in degrees: min lon, min lat, max lon, max lat. */
void fl_cell_bounds(uint64_t cell, int level, double out[4]);

/* ---- walking and restoring (snapshots) ---- */

/* Calls fn for every vehicle in index (geohash) order; stops on nonzero. */
int fl_fleet_each_vehicle(const fl_fleet *f,
                          int (*fn)(void *ud, const fl_vehicle *v), void *ud);
/* The vehicle's place in index order (its 52-bit geohash). */
uint64_t fl_fleet_vehicle_key(const fl_fleet *f, const fl_vehicle *v);
/* Calls fn for the vehicles after (key, id) in index order (id NULL:
 * from the first; len 0: from the first at key or after), with each
 * one's key; stops on nonzero and returns it. The pair is a resumable
 * cursor that stays valid while vehicles move; a vehicle that moves
 * across it between two pages is seen twice or not at all, like a Redis
 * SCAN over a changing set. */
int fl_fleet_each_vehicle_after(const fl_fleet *f, uint64_t key,
                                const char *id, size_t len,
                                int (*fn)(void *ud, const fl_vehicle *v,
                                          uint64_t key),
                                void *ud);
/* Calls fn for every finished trip, oldest first; stops on nonzero. */
int fl_fleet_each_finished(const fl_fleet *f,
                           int (*fn)(void *ud, const fl_trip *t), void *ud);
/* A vehicle's state as snapshots carry it. */
typedef struct fl_vehicle_state {
    double lon, lat;
    int64_t ts_ms;
    float speed_kmh, heading;   /* NAN: never reported */
    uint32_t flagged;
    int status, suspect;
} fl_vehicle_state;
void fl_vehicle_get_state(const fl_vehicle *v, fl_vehicle_state *out);
/* Re-creates a vehicle exactly (position, status, counters, fleet) and,
 * when trip is not NULL, its running trip (fields and path copied).
 * -EEXIST, -EINVAL or -ENOSPC. */
int fl_fleet_restore_vehicle(fl_fleet *f, const char *id, size_t len,
                             const fl_vehicle_state *v, const char *fleet,
                             size_t fleet_len, const fl_trip *trip);
/* Hints the CPU to fetch what restoring vehicle vid (with trip tid, or
 * NULL) will touch in the tables; loaders call it a few records ahead. */
void fl_fleet_prefetch(const fl_fleet *f, const char *vid, size_t vlen,
                       const char *tid, size_t tlen);
/* Sizes the tables for about this many vehicles and trips (a loader that
 * knows the counts avoids rehashing millions of entries). */
void fl_fleet_reserve(fl_fleet *f, uint64_t vehicles, uint64_t trips);
/* Re-creates a finished trip of vehicle vid (appended as its newest). */
int fl_fleet_restore_trip(fl_fleet *f, const char *vid, size_t vlen,
                          const fl_trip *t);

/* Haversine on the mean Earth radius (6371008.8 m), for trip distance. */
double fl_fleet_distance_m(double lon1, double lat1, double lon2, double lat2);
/* Appends a point to an encoded polyline. 0 or -ENOMEM. */
int fl_path_append(fl_path *p, double lon, double lat);
/* Decodes point i..: walks the polyline; returns the number of points
 * written to xy (pairs lon, lat), at most max. */
size_t fl_path_decode(const char *enc, size_t len, double *xy, size_t max);

#endif
