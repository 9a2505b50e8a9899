/*
 * fleet_int.h - the fleet's private state, shared by fleet.c (vehicles and
 * searches), trip.c (trips and their history) and supply.c (counts by
 * area). Nothing outside src/fleet/ includes this.
 */
#ifndef FL_FLEET_INT_H
#define FL_FLEET_INT_H

#include "fleet.h"

typedef struct fl_fleet_group {
    uint64_t by_status[FL_VS_COUNT];
    uint16_t no;                /* what vehicles store; 1.. */
    uint8_t name_len;
    char name[];
} fl_fleet_group;

/* The finished trips of one vehicle id; lives while it holds trips. */
typedef struct fl_trip_history {
    fl_trip *newest, *oldest;
    uint8_t vid_len;
    char vid[];
} fl_trip_history;

/* One supply cell: key = level << 56 | prefix bits; 0 = empty slot. */
typedef struct fl__cell {
    uint64_t key;
    uint32_t by_status[FL_VS_COUNT];
} fl__cell;

typedef struct fl__cellmap {
    fl__cell *slots;
    size_t mask, count;
} fl__cellmap;

/* Recent trip starts, the demand side of supply and demand: a ring that
 * overwrites the oldest start when full. */
#define FL_DEMAND_MAX ((size_t)1 << 18)
typedef struct fl__demand_ev {
    int64_t ts_ms;
    uint64_t cell35;            /* 7-character geohash of the start */
} fl__demand_ev;

typedef struct fl__demand {
    fl__demand_ev *ev;          /* FL_DEMAND_MAX slots, allocated on use */
    size_t next, count;
} fl__demand;

struct fl_fleet {
    fl_fleet_config cfg;
    fl_fleet_stats stats;
    uint64_t seed;
    fl_ptrmap vehicles;         /* id -> fl_vehicle */
    fl_geoset *where;           /* id -> geohash score */
    fl_ptrmap groups;           /* fleet name -> fl_fleet_group */
    fl_fleet_group **group_by_no; /* [no], [0] unused */
    size_t ngroups;
    fl_ptrmap trips;            /* trip id -> fl_trip, running or finished */
    fl_ptrmap histories;        /* vehicle id -> fl_trip_history */
    fl_trip *run_oldest, *run_newest; /* running, by last ping arrival */
    fl_trip *fin_oldest, *fin_newest; /* finished, by end */
    fl__cellmap cells;
    fl__demand demand;
    uint64_t trip_seq;
    size_t trip_bytes;          /* trips and paths, for fl_fleet_bytes */
};

/* A running trip's vehicle is lprev/lnext's owner; it is found through
 * the `running_of` back pointer kept in the history-less case. */
void fl__trip_touch(fl_fleet *f, fl_trip *t);
/* Starts a trip on v (which has none) at ts_ms; tid NULL: generated.
 * with_point: the path starts at v's position (a restore brings its own).
 * 0 or -EADDRINUSE. */
int fl__trip_begin(fl_fleet *f, fl_vehicle *v, const char *tid, size_t tlen,
                   int64_t ts_ms, int with_point, const fl_trip **out);
/* How a trip takes a vehicle's step. */
enum fl_feed_kind {
    FL_FEED_TIMED = 0,     /* distance, and speed derived from time */
    FL_FEED_RELOCATED = 1, /* a jump: the trip moves on without counting it */
    FL_FEED_UNTIMED = 2    /* a burst: distance, but no time to derive speed */
};
/* Feeds v's running trip the step to (lon, lat) at ts_ms (before v moves);
 * feed: fl_feed_kind. */
void fl__trip_feed(fl_fleet *f, fl_vehicle *v, double lon, double lat,
                   int64_t ts_ms, float speed_kmh, int feed);
void fl__trips_free_all(fl_fleet *f);
/* Copies a trip's times, metrics and path (duplicated) from src. */
void fl__trip_copy(fl_fleet *f, fl_trip *dst, const fl_trip *src);

void fl__cells_add(fl_fleet *f, uint64_t cell35, int status, int delta);
void fl__cells_free(fl_fleet *f);
/* Notes a trip start at (lon, lat) for the demand counts. */
void fl__demand_note(fl_fleet *f, int64_t ts_ms, double lon, double lat);
void fl__demand_free(fl_fleet *f);
uint64_t fl__cell_of(double lon, double lat);
/* The point the index and the cells file a position under: lon 180 and
 * the top latitude would overflow the geohash by one bit (as in Redis),
 * so they are moved 1 cm inside the edge. */
void fl__index_point(double lon, double lat, double *x, double *y);

#endif
