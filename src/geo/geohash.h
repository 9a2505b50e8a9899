/*
 * geohash.h - the geometry behind the GEO commands: 52-bit interleaved
 * geohashes, the haversine distance, and the cells a radius or box search
 * reads, all computed exactly as Redis 7.0 computes them.
 *
 * Why "exactly": a client sees the arithmetic. GEOPOS prints the decoded
 * cell centre to 17 decimals, GEODIST and WITHDIST print 4, whether a point
 * on the edge of a radius is in or out depends on the last bit of a double,
 * and the order of an unsorted search is the order of the nine cells Redis
 * reads. So every function here performs the same operations in the same
 * order as Redis (same constants, same intermediate roundings, same libm
 * calls); nothing is re-derived or "improved".
 *
 * The second half (fl_geo_filter) is fleetd's own: cheap, conservative
 * bounds that decide most points (and whole cells) without the haversine.
 * A filter answer is either certain or "unsure"; when unsure the caller
 * runs the exact Redis test, so results never differ from Redis.
 *
 * Pure domain code: no I/O, no clock, no allocation.
 */
#ifndef FL_GEO_GEOHASH_H
#define FL_GEO_GEOHASH_H

#include <stddef.h>
#include <stdint.h>

#define FL_GEO_STEP_MAX 26           /* bits per coordinate in a score */
#define FL_GEO_LAT_MIN (-85.05112878)
#define FL_GEO_LAT_MAX 85.05112878
#define FL_GEO_LON_MIN (-180.0)
#define FL_GEO_LON_MAX 180.0
#define FL_GEO_EARTH_RADIUS_M 6372797.560856
#define FL_GEO_MERCATOR_MAX 20037726.37

typedef struct fl_geo_range {
    double min, max;
} fl_geo_range;

/* A cell: `step` bits per coordinate, longitude in the odd bits and
 * latitude in the even bits. {0, 0} means "no cell" (a pruned neighbour). */
typedef struct fl_geo_cell {
    uint64_t bits;
    unsigned step;
} fl_geo_cell;

/* The edges of a cell, in degrees. */
typedef struct fl_geo_area {
    fl_geo_range lon, lat;
} fl_geo_area;

/* Longitude -180..180 and latitude +-85.05112878 (Web Mercator's limit). */
void fl_geo_coord_ranges(fl_geo_range *lon, fl_geo_range *lat);

/* 1 when (lon, lat) is inside the ranges GEOADD accepts, else 0. */
int fl_geo_coords_valid(double lon, double lat);
/* 1 when (lon, lat) is inside box (min lon, min lat, max lon, max lat),
 * edges included; min lon > max lon is a box across the antimeridian. */
int fl_geo_box_contains(const double box[4], double lon, double lat);

/* geohashEncode: the cell of `step` (1..32) bits holding (lon, lat) within
 * the given ranges. Returns 1, or 0 when the point is outside the ranges or
 * outside the GEOADD limits (then *out is not meaningful). */
int fl_geo_encode(const fl_geo_range *lon_r, const fl_geo_range *lat_r,
                  double lon, double lat, unsigned step, fl_geo_cell *out);

/* A cell's first score: bits << (52 - 2*step). */
uint64_t fl_geo_align52(fl_geo_cell c);

/* GEOADD's score for a valid point. Redis hands the 52-bit integer to ZADD
 * as a double, so a value above 2^53 (only possible at lon 180 exactly) is
 * rounded the way that conversion rounds it; this returns that value. */
uint64_t fl_geo_score(double lon, double lat);

/* geohashDecode: the edges of cell c within the ranges. Returns 0 for the
 * "no cell" value, else 1. */
int fl_geo_decode(const fl_geo_range *lon_r, const fl_geo_range *lat_r,
                  fl_geo_cell c, fl_geo_area *out);

/* The point a score stands for (GEOPOS): the centre of its step-26 cell,
 * clamped to the ranges. xy[0] = longitude, xy[1] = latitude. */
void fl_geo_decode_score(uint64_t score, double xy[2]);

/* GEOHASH's 11-character standard geohash of a score (the cell centre
 * re-encoded with latitude range -90..90; the last character is always
 * '0'). out receives 11 characters and a NUL. */
void fl_geo_hash_string(uint64_t score, char out[12]);

/* Redis' haversine distance in meters (with its shortcut when the
 * longitudes are equal). */
double fl_geo_distance(double lon1, double lat1, double lon2, double lat2);
/* Meters between two latitudes along a meridian (BYBOX's first test). */
double fl_geo_lat_distance(double lat1, double lat2);

/* geohashEstimateStepsByRadius: cell size for a search of that radius. */
unsigned fl_geo_estimate_steps(double range_m, double lat);

/* The eight neighbours of c, in the order
 * north, south, east, west, north-east, north-west, south-east, south-west.
 * They wrap around at the edges of the ranges, as Redis' do. */
void fl_geo_neighbours(fl_geo_cell c, fl_geo_cell out[8]);

enum fl_geo_shape_type { FL_GEO_CIRCLE = 1, FL_GEO_BOX = 2 };

/* A search area as the commands give it: the centre, and the radius or
 * the box in the request's unit; conversion is meters per unit. */
typedef struct fl_geo_shape {
    int type;              /* enum fl_geo_shape_type */
    double lon, lat;
    double radius;         /* FL_GEO_CIRCLE */
    double width, height;  /* FL_GEO_BOX */
    double conversion;
} fl_geo_shape;

/* geohashBoundingBox: {min lon, min lat, max lon, max lat}. */
void fl_geo_bounding_box(const fl_geo_shape *s, double bounds[4]);

/* geohashCalculateAreasByShapeWGS84 followed by the way Redis walks the
 * result: out[0..8] are the centre cell then the eight neighbours in the
 * order above, with the ones Redis prunes set to "no cell". Returns the
 * number of cells to read and writes their indexes in reading order to
 * order[]: a no-cell is skipped, and so is a cell equal to the one read
 * just before it (Redis' test for huge radiuses, including its quirk of
 * never comparing against the centre cell). */
int fl_geo_search_cells(const fl_geo_shape *s, fl_geo_cell out[9],
                        int order[9]);

/* geoWithinShape for a decoded point: 1 when Redis counts (lon, lat) in
 * the shape, with *dist the distance from the centre in meters; else 0. */
int fl_geo_in_shape(const fl_geo_shape *s, double lon, double lat,
                    double *dist);

/* ---- conservative filters (fleetd's own, see the top of this file) ---- */

typedef struct fl_geo_filter {
    int usable;          /* 0: shape too large or not finite; always unsure */
    int type;
    double lon0, lat0;   /* centre, degrees */
    double lon0r, lat0r; /* the same in radians, as Redis computes them */
    double c0, s0;       /* cos and sin of the centre latitude */
    double a_in, a_out;  /* circle: haversine 'a' thresholds (see .c) */
    double lon_in, lon_out; /* box: the same for the east-west test */
    double h;            /* box: half height in meters, as Redis has it */
    double h_in, h_out;  /* box: the same with margins, for whole areas */
} fl_geo_filter;

void fl_geo_filter_init(fl_geo_filter *f, const fl_geo_shape *s);

enum { FL_GEO_OUT = -1, FL_GEO_UNSURE = 0, FL_GEO_IN = 1 };

/* Classifies a decoded point: FL_GEO_IN / FL_GEO_OUT when Redis' test is
 * certain to give that answer, FL_GEO_UNSURE otherwise. When ab is not
 * NULL it also receives fl_geo_filter_abounds() of the point. */
int fl_geo_filter_point(const fl_geo_filter *f, double lon, double lat,
                        double ab[2]);

/* Redis' distance from the filter's centre to (lon, lat): the same value
 * as fl_geo_distance(lon0, lat0, lon, lat), with the centre's terms
 * computed once. */
double fl_geo_filter_distance(const fl_geo_filter *f, double lon, double lat);

/* Classifies every point that can decode inside the area a (edges in
 * degrees, any extent within one turn of longitude). */
int fl_geo_filter_area(const fl_geo_filter *f, const fl_geo_area *a);

/* Redis' distance from the centre computed without libm calls (the same
 * radians, then Taylor series for the small angles): within
 * FL_GEO_APPROX_REL * d + FL_GEO_APPROX_ABS meters of the exact value,
 * or bit-exact when the longitudes are equal (Redis' own shortcut, taken
 * here too; *exact is then 1, else 0). Returns -1 when the angles are too
 * large for the series. */
double fl_geo_filter_distance_approx(const fl_geo_filter *f, double lon,
                                     double lat, int *exact);
#define FL_GEO_APPROX_REL 1e-13
#define FL_GEO_APPROX_ABS 1e-12

/* Bounds on the haversine 'a' term from the centre to any point that can
 * decode inside area a (see fl_geo_filter_abounds). */
void fl_geo_filter_area_abounds(const fl_geo_filter *f, const fl_geo_area *a,
                                double *lo, double *hi);

/* Bounds on the haversine 'a' term from the centre to (lon, lat):
 * lo <= a <= hi. Distances are monotonic in a, so these order points
 * without computing distances. Only meaningful when f->usable. */
void fl_geo_filter_abounds(const fl_geo_filter *f, double lon, double lat,
                           double *lo, double *hi);

/* Widens an 'a' bound so that comparing widened bounds is safe against
 * the rounding of Redis' own distance computation: every point whose
 * exact Redis distance can be <= the distance of a point with a <= hi has
 * lo <= fl_geo_a_widen(hi, +1); symmetrically with -1. */
double fl_geo_a_widen(double a, int dir);

/* A run of scores [lo, hi). */
typedef struct fl_geo_span {
    uint64_t lo, hi;
} fl_geo_span;

#define FL_GEO_BOX_SPANS 33 /* 16 cells each side of the antimeridian, + edge */
/* Sorted, disjoint score runs that together hold the score of every valid
 * point fl_geo_box_contains(box, ...) accepts (box as it describes it,
 * with valid corners and min lat <= max lat), and of every such point
 * pulled up to 1e-6 degrees inside the world's upper edges. They come from
 * cells of one size, the smallest of which at most 16 cover the box, so
 * they hold little else: a walk of an index in score order reads the box
 * by seeking from one run to the next. Returns how many were written. */
size_t fl_geo_box_spans(const double box[4], fl_geo_span out[FL_GEO_BOX_SPANS]);

#endif
