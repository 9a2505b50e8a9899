/*
 * replay.h - what the parts of fleet-replay share: tracks built once from
 * the real data in ../shared/data, and the question every ping asks of
 * them, "where is a vehicle on this track at track time a?".
 *
 * Why this shape: a million vehicles cannot each own a copy of a track, so
 * a track is read-only once built and a vehicle is only (track, time shift,
 * offset), derived from its number by hashing (fleet_replay.c). A track is
 * therefore a pure function of time, with two shapes:
 *  - CYCLE (taxis): timed points looping with a period; the points include
 *    the empty legs between trips and the leg from the last dropoff back to
 *    the first pickup, so the loop never jumps. Trips are intervals.
 *  - PINGPONG (vessels, the car): the recorded pass forward, a dwell, the
 *    same path backward, a dwell. Each pass is one trip; the path's shape
 *    and speeds stay real in both directions, and nothing ever teleports.
 * Time is in seconds of data time; positions are WGS84 degrees.
 *
 * Ownership: a source owns its tracks, a track its arrays; free with
 * fl_rp_source_free. Errors are negative errno codes with a readable
 * message in a caller's buffer.
 */
#ifndef FL_REPLAY_H
#define FL_REPLAY_H

#include <stddef.h>
#include <stdint.h>

/* A recorded or derived position. kmh and heading describe the move from
 * this point to the next (NAN until rp_track_finish fills them in). */
typedef struct fl_rp_point {
    double t, lon, lat;
    float kmh, heading;
} fl_rp_point;

typedef struct fl_rp_trip {
    double start, end;
} fl_rp_trip;

enum fl_rp_shape { FL_RP_CYCLE = 0, FL_RP_PINGPONG = 1 };

typedef struct fl_rp_track {
    fl_rp_point *pts;
    uint32_t npts, pts_cap;
    fl_rp_trip *trips;          /* CYCLE only, sorted, within one period */
    uint32_t ntrips, trips_cap;
    int shape;
    int moving;                 /* PINGPONG: 0 = stays put, never a trip */
    double period;              /* CYCLE: loop length; PINGPONG: one pass */
    double dwell;               /* PINGPONG: stop at each end */
    double kx, ky;              /* degrees per metre east and north */
    double max_kmh;             /* fastest move between two points */
} fl_rp_track;

/* A taxi trip as the data gives it; times in seconds. */
typedef struct fl_rp_taxi_trip {
    double t0, t1;
    double lon0, lat0, lon1, lat1;
} fl_rp_taxi_trip;

/* One data set turned into tracks. */
typedef struct fl_rp_source {
    const char *name;           /* as in --sources */
    const char *fleet;          /* FLEET name sent to fleetd */
    const char *prefix;         /* vehicle id prefix */
    const char *file;           /* path under the data directory */
    int weight;                 /* share of the vehicles */
    double offset_m;            /* a vehicle's shift is up to this far */
    fl_rp_track *tracks;
    uint32_t ntracks;
    double max_kmh;             /* fastest move on any of its tracks */
} fl_rp_source;

/* Where a vehicle is at one instant. trip: the trip's ordinal (unique and
 * increasing along the vehicle's time), or -1 between trips. */
typedef struct fl_rp_state {
    double lon, lat;
    float kmh, heading;
    int64_t trip;
} fl_rp_state;

/* ---- track.c ---- */

/* Appends a point; -ENOMEM. kmh/heading may be NAN (computed later). */
int fl_rp_track_add(fl_rp_track *tr, double t, double lon, double lat,
                    float kmh, float heading);
/* Builds a CYCLE track from taxi trips (sorted here, in place): drops
 * records that are implausible or that one cab could not drive in
 * sequence, then adds the empty legs. -ENOMEM, or -ENODATA when no trip
 * survives. */
int fl_rp_track_taxi(fl_rp_track *tr, fl_rp_taxi_trip *v, size_t n,
                     double period);
/* Makes a PINGPONG track of the points added (times must be increasing,
 * the first at 0), without the points that would need more than max_kmh
 * to reach (GPS glitches). -ENODATA without points. */
int fl_rp_track_pingpong(fl_rp_track *tr, double max_kmh);
/* The length after which the track repeats. */
double fl_rp_track_cycle(const fl_rp_track *tr);
/* The vehicle's state at track time a >= 0. */
void fl_rp_track_at(const fl_rp_track *tr, double a, fl_rp_state *out);
/* The start and end (track time) of trip number ord. */
void fl_rp_trip_bounds(const fl_rp_track *tr, int64_t ord, double *start,
                       double *end);
void fl_rp_track_free(fl_rp_track *tr);
/* Great-circle distance in metres. */
double fl_rp_distance_m(double lon1, double lat1, double lon2, double lat2);

/* ---- sources.c ---- */

/* The four sources in their default order, with no tracks loaded. */
extern const fl_rp_source fl_rp_source_defaults[4];
#define FL_RP_SOURCES 4

/* Reads s->file under dir into s->tracks. -ENOENT when the file is
 * missing, -EINVAL when it holds no usable record, -ENOMEM; err says
 * which. */
int fl_rp_source_load(fl_rp_source *s, const char *dir, char *err,
                      size_t errlen);
void fl_rp_source_free(fl_rp_source *s);

#endif
