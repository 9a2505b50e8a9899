/*
 * polygon.c - point in polygon by even-odd ray casting (see polygon.h).
 */
#include "polygon.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geohash.h"
#include "../util/buf.h"

void fl_shape_init(fl_shape *s)
{
    memset(s, 0, sizeof(*s));
}

void fl_shape_free(fl_shape *s)
{
    for (size_t i = 0; i < s->npolys; i++) {
        for (size_t r = 0; r < s->polys[i].nrings; r++)
            free(s->polys[i].rings[r].xy);
        free(s->polys[i].rings);
    }
    free(s->polys);
    fl_shape_init(s);
}

void fl_shape_begin_polygon(fl_shape *s)
{
    s->polys = fl_xrealloc(s->polys, (s->npolys + 1) * sizeof(*s->polys));
    memset(&s->polys[s->npolys], 0, sizeof(*s->polys));
    s->npolys++;
}

static int ring_valid(const double *xy, size_t n)
{
    if (n < 4 || xy[0] != xy[2 * (n - 1)] || xy[1] != xy[2 * (n - 1) + 1])
        return 0;
    for (size_t i = 0; i < n; i++) {
        double lon = xy[2 * i], lat = xy[2 * i + 1];
        if (!isfinite(lon) || !isfinite(lat) || !fl_geo_coords_valid(lon, lat))
            return 0;
    }
    return 1;
}

static void grow_bbox(double bb[4], const double *xy, size_t n, int first)
{
    for (size_t i = 0; i < n; i++) {
        double lon = xy[2 * i], lat = xy[2 * i + 1];
        if (first && i == 0) {
            bb[0] = bb[2] = lon;
            bb[1] = bb[3] = lat;
            continue;
        }
        if (lon < bb[0]) bb[0] = lon;
        if (lat < bb[1]) bb[1] = lat;
        if (lon > bb[2]) bb[2] = lon;
        if (lat > bb[3]) bb[3] = lat;
    }
}

int fl_shape_add_ring(fl_shape *s, const double *xy, size_t n)
{
    if (s->npolys == 0 || !ring_valid(xy, n)) return -EINVAL;
    fl_polygon *p = &s->polys[s->npolys - 1];
    p->rings = fl_xrealloc(p->rings, (p->nrings + 1) * sizeof(*p->rings));
    fl_ring *r = &p->rings[p->nrings++];
    r->n = n;
    r->xy = fl_xmalloc(n * 2 * sizeof(double));
    memcpy(r->xy, xy, n * 2 * sizeof(double));
    if (p->nrings == 1) {
        grow_bbox(p->bbox, xy, n, 1);
        grow_bbox(s->bbox, xy, n, s->npolys == 1);
    }
    s->points += n;
    return 0;
}

/* Crossings of the ray from (x, y) towards +x with the ring's edges. */
static int ring_crossings(const fl_ring *r, double x, double y)
{
    int odd = 0;
    const double *p = r->xy;
    for (size_t i = 0, j = r->n - 1; i < r->n; j = i++) {
        double xi = p[2 * i], yi = p[2 * i + 1];
        double xj = p[2 * j], yj = p[2 * j + 1];
        if ((yi > y) != (yj > y) &&
            x < (xj - xi) * (y - yi) / (yj - yi) + xi)
            odd = !odd;
    }
    return odd;
}

static int polygon_contains(const fl_polygon *p, double x, double y)
{
    if (x < p->bbox[0] || x > p->bbox[2] || y < p->bbox[1] || y > p->bbox[3])
        return 0;
    int odd = 0;
    for (size_t r = 0; r < p->nrings; r++)
        odd ^= ring_crossings(&p->rings[r], x, y);
    return odd;
}

int fl_shape_contains(const fl_shape *s, double lon, double lat)
{
    for (size_t i = 0; i < s->npolys; i++)
        if (s->polys[i].nrings && polygon_contains(&s->polys[i], lon, lat))
            return 1;
    return 0;
}
