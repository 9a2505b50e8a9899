/*
 * polygon.h - areas bounded by polygons (GeoJSON Polygon and MultiPolygon,
 * holes included) and the point-in-area test.
 *
 * Edges are straight lines in longitude/latitude, as RFC 7946 defines
 * GeoJSON geometry; a polygon that crosses the antimeridian must be sent
 * split in two, as RFC 7946 asks. The test is even-odd ray casting over
 * all rings of a polygon, so holes need no special case, behind a
 * bounding-box check per polygon. Points on an edge may fall either side.
 *
 * Ownership: an fl_shape owns copies of its rings; fl_shape_free frees
 * them. Building never reads the clock or does I/O (the HTTP edge parses
 * the GeoJSON and hands the rings over).
 */
#ifndef FL_GEO_POLYGON_H
#define FL_GEO_POLYGON_H

#include <stddef.h>

typedef struct fl_ring {
    double *xy;          /* n points as lon, lat pairs */
    size_t n;
} fl_ring;

typedef struct fl_polygon {
    fl_ring *rings;      /* [0] the outer ring, then holes */
    size_t nrings;
    double bbox[4];      /* of the outer ring: min lon, min lat, max lon, max lat */
} fl_polygon;

typedef struct fl_shape {
    fl_polygon *polys;
    size_t npolys;
    size_t points;       /* all vertices, for limits */
    double bbox[4];      /* of all polygons */
} fl_shape;

void fl_shape_init(fl_shape *s);
void fl_shape_free(fl_shape *s);
/* Starts a new polygon; its first ring added is the outer one. */
void fl_shape_begin_polygon(fl_shape *s);
/* Adds a ring of n points (lon, lat pairs, copied) to the current
 * polygon. A ring needs at least 4 points with the last equal to the
 * first (RFC 7946) and finite coordinates within GEOADD's range.
 * 0 or -EINVAL (nothing added). */
int fl_shape_add_ring(fl_shape *s, const double *xy, size_t n);
/* 1 when (lon, lat) is inside some polygon and outside its holes. */
int fl_shape_contains(const fl_shape *s, double lon, double lat);

#endif
