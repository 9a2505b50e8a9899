/*
 * geohash.c - geohash encoding, distances and search cells, bit-identical
 * to Redis 7.0 (see geohash.h for why), plus fleetd's conservative filters.
 *
 * Conventions that matter for bit-exactness:
 *  - degrees are turned into radians by multiplying with D_R = pi/180 as
 *    one double (never by dividing by 180 later);
 *  - expressions keep Redis' evaluation order, e.g. the cell edges are
 *    min + (i * 1.0 / 2^step) * scale, and the haversine's 'a' is
 *    u*u + cos1*cos2*v*v evaluated left to right;
 *  - this file must be built without -ffast-math and without FMA
 *    contraction (C11 mode already implies -ffp-contract=off in gcc).
 */
#include "geohash.h"

#include <math.h>
#include <string.h>

/* pi / 180 as the one double Redis uses (M_PI is not in strict C11). */
static const double D_R = 3.14159265358979323846264338327950288 / 180.0;

static double deg_rad(double ang) { return ang * D_R; }
static double rad_deg(double ang) { return ang / D_R; }

void fl_geo_coord_ranges(fl_geo_range *lon, fl_geo_range *lat)
{
    lon->min = FL_GEO_LON_MIN;
    lon->max = FL_GEO_LON_MAX;
    lat->min = FL_GEO_LAT_MIN;
    lat->max = FL_GEO_LAT_MAX;
}

int fl_geo_coords_valid(double lon, double lat)
{
    return !(lon < FL_GEO_LON_MIN || lon > FL_GEO_LON_MAX ||
             lat < FL_GEO_LAT_MIN || lat > FL_GEO_LAT_MAX);
}

int fl_geo_box_contains(const double box[4], double lon, double lat)
{
    if (lat < box[1] || lat > box[3]) return 0;
    if (box[0] <= box[2]) return lon >= box[0] && lon <= box[2];
    return lon >= box[0] || lon <= box[2];
}

/* Spreads the 32 bits of v over the even bits of a 64-bit word. */
static uint64_t spread32(uint32_t v)
{
    uint64_t x = v;
    x = (x | (x << 16)) & 0x0000FFFF0000FFFFULL;
    x = (x | (x << 8)) & 0x00FF00FF00FF00FFULL;
    x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0FULL;
    x = (x | (x << 2)) & 0x3333333333333333ULL;
    x = (x | (x << 1)) & 0x5555555555555555ULL;
    return x;
}

/* The inverse of spread32: gathers the even bits of x. */
static uint32_t squash64(uint64_t x)
{
    x &= 0x5555555555555555ULL;
    x = (x | (x >> 1)) & 0x3333333333333333ULL;
    x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0FULL;
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FFULL;
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFFULL;
    x = (x | (x >> 16)) & 0x00000000FFFFFFFFULL;
    return (uint32_t)x;
}

int fl_geo_encode(const fl_geo_range *lon_r, const fl_geo_range *lat_r,
                  double lon, double lat, unsigned step, fl_geo_cell *out)
{
    if (step == 0 || step > 32) return 0;
    if (!fl_geo_coords_valid(lon, lat)) return 0;
    out->bits = 0;
    out->step = step;
    if (lat < lat_r->min || lat > lat_r->max || lon < lon_r->min ||
        lon > lon_r->max)
        return 0;
    double lat_off = (lat - lat_r->min) / (lat_r->max - lat_r->min);
    double lon_off = (lon - lon_r->min) / (lon_r->max - lon_r->min);
    lat_off *= (double)(1ULL << step);
    lon_off *= (double)(1ULL << step);
    /* Redis passes these doubles to uint32_t parameters: truncation. An
     * offset of exactly 2^step (the upper edge) is kept as is, which puts
     * a bit just above the cell's range; Redis does the same. */
    out->bits = spread32((uint32_t)lat_off) | (spread32((uint32_t)lon_off) << 1);
    return 1;
}

uint64_t fl_geo_align52(fl_geo_cell c)
{
    return c.bits << (52 - c.step * 2);
}

uint64_t fl_geo_score(double lon, double lat)
{
    fl_geo_range lo, la;
    fl_geo_cell c;
    fl_geo_coord_ranges(&lo, &la);
    if (!fl_geo_encode(&lo, &la, lon, lat, FL_GEO_STEP_MAX, &c)) return 0;
    /* ZADD parses the integer as a double: round-trip through one. */
    return (uint64_t)(double)fl_geo_align52(c);
}

int fl_geo_decode(const fl_geo_range *lon_r, const fl_geo_range *lat_r,
                  fl_geo_cell c, fl_geo_area *out)
{
    if (c.bits == 0 && c.step == 0) return 0;
    double lat_scale = lat_r->max - lat_r->min;
    double lon_scale = lon_r->max - lon_r->min;
    uint32_t ilat = squash64(c.bits);
    uint32_t ilon = squash64(c.bits >> 1);
    double div = (double)(1ULL << c.step);
    /* (i + 1) is a 32-bit unsigned sum in Redis too. */
    out->lat.min = lat_r->min + (ilat * 1.0 / div) * lat_scale;
    out->lat.max = lat_r->min + ((uint32_t)(ilat + 1) * 1.0 / div) * lat_scale;
    out->lon.min = lon_r->min + (ilon * 1.0 / div) * lon_scale;
    out->lon.max = lon_r->min + ((uint32_t)(ilon + 1) * 1.0 / div) * lon_scale;
    return 1;
}

static void area_centre(const fl_geo_area *a, double xy[2])
{
    xy[0] = (a->lon.min + a->lon.max) / 2;
    if (xy[0] > FL_GEO_LON_MAX) xy[0] = FL_GEO_LON_MAX;
    if (xy[0] < FL_GEO_LON_MIN) xy[0] = FL_GEO_LON_MIN;
    xy[1] = (a->lat.min + a->lat.max) / 2;
    if (xy[1] > FL_GEO_LAT_MAX) xy[1] = FL_GEO_LAT_MAX;
    if (xy[1] < FL_GEO_LAT_MIN) xy[1] = FL_GEO_LAT_MIN;
}

void fl_geo_decode_score(uint64_t score, double xy[2])
{
    fl_geo_range lo, la;
    fl_geo_area a;
    fl_geo_cell c = {score, FL_GEO_STEP_MAX};
    fl_geo_coord_ranges(&lo, &la);
    fl_geo_decode(&lo, &la, c, &a); /* step 26: never "no cell" */
    area_centre(&a, xy);
}

void fl_geo_hash_string(uint64_t score, char out[12])
{
    static const char alphabet[] = "0123456789bcdefghjkmnpqrstuvwxyz";
    double xy[2];
    fl_geo_decode_score(score, xy);
    /* Standard geohashes use latitude -90..90, not the Mercator limits. */
    fl_geo_range lo = {-180, 180}, la = {-90, 90};
    fl_geo_cell c = {0, FL_GEO_STEP_MAX};
    if (!fl_geo_encode(&lo, &la, xy[0], xy[1], FL_GEO_STEP_MAX, &c))
        c.bits = 0; /* unreachable: a decoded point is always valid */
    for (int i = 0; i < 11; i++) {
        /* 52 bits give ten characters; the eleventh is '0' by convention. */
        unsigned idx = i == 10 ? 0 : (unsigned)((c.bits >> (52 - (i + 1) * 5)) & 0x1f);
        out[i] = alphabet[idx];
    }
    out[11] = '\0';
}

double fl_geo_lat_distance(double lat1, double lat2)
{
    return FL_GEO_EARTH_RADIUS_M * fabs(deg_rad(lat2) - deg_rad(lat1));
}

double fl_geo_distance(double lon1, double lat1, double lon2, double lat2)
{
    double lon1r = deg_rad(lon1);
    double lon2r = deg_rad(lon2);
    double v = sin((lon2r - lon1r) / 2);
    /* Redis' shortcut: same meridian, the haversine is the latitude arc. */
    if (v == 0.0) return fl_geo_lat_distance(lat1, lat2);
    double lat1r = deg_rad(lat1);
    double lat2r = deg_rad(lat2);
    double u = sin((lat2r - lat1r) / 2);
    double a = u * u + cos(lat1r) * cos(lat2r) * v * v;
    return 2.0 * FL_GEO_EARTH_RADIUS_M * asin(sqrt(a));
}

unsigned fl_geo_estimate_steps(double range_m, double lat)
{
    if (range_m == 0) return FL_GEO_STEP_MAX;
    int step = 1;
    while (range_m < FL_GEO_MERCATOR_MAX) {
        range_m *= 2;
        step++;
    }
    step -= 2; /* make sure the range is included in most base cases */
    /* Wider cells towards the poles, where meridians converge. */
    if (lat > 66 || lat < -66) {
        step--;
        if (lat > 80 || lat < -80) step--;
    }
    if (step < 1) step = 1;
    if (step > FL_GEO_STEP_MAX) step = FL_GEO_STEP_MAX;
    return (unsigned)step;
}

#define FL_ODD_BITS 0xAAAAAAAAAAAAAAAAULL  /* longitude */
#define FL_EVEN_BITS 0x5555555555555555ULL /* latitude */

/* Moves c by d (+1 or -1) cells along the axis whose bits are `axis`
 * (FL_ODD_BITS: longitude, FL_EVEN_BITS: latitude), wrapping. Filling the
 * other axis' bits with ones makes the carry skip over them. */
static fl_geo_cell move_axis(fl_geo_cell c, int d, uint64_t axis)
{
    uint64_t other = ~axis;
    uint64_t v = c.bits & axis;
    uint64_t keep = c.bits & other;
    uint64_t zz = other >> (64 - c.step * 2);
    if (d > 0) {
        v = v + (zz + 1);
    } else {
        v = v | zz;
        v = v - (zz + 1);
    }
    v &= (axis >> (64 - c.step * 2));
    c.bits = v | keep;
    return c;
}

static fl_geo_cell move_x(fl_geo_cell c, int d)
{
    return move_axis(c, d, FL_ODD_BITS);
}

static fl_geo_cell move_y(fl_geo_cell c, int d)
{
    return move_axis(c, d, FL_EVEN_BITS);
}

void fl_geo_neighbours(fl_geo_cell c, fl_geo_cell out[8])
{
    out[0] = move_y(c, 1);              /* north */
    out[1] = move_y(c, -1);             /* south */
    out[2] = move_x(c, 1);              /* east */
    out[3] = move_x(c, -1);             /* west */
    out[4] = move_y(move_x(c, 1), 1);   /* north-east */
    out[5] = move_y(move_x(c, -1), 1);  /* north-west */
    out[6] = move_y(move_x(c, 1), -1);  /* south-east */
    out[7] = move_y(move_x(c, -1), -1); /* south-west */
}

void fl_geo_bounding_box(const fl_geo_shape *s, double bounds[4])
{
    double lon = s->lon, lat = s->lat;
    int circle = s->type == FL_GEO_CIRCLE;
    double height = s->conversion * (circle ? s->radius : s->height / 2);
    double width = s->conversion * (circle ? s->radius : s->width / 2);
    const double lat_delta = rad_deg(height / FL_GEO_EARTH_RADIUS_M);
    const double lon_delta_top =
        rad_deg(width / FL_GEO_EARTH_RADIUS_M / cos(deg_rad(lat + lat_delta)));
    const double lon_delta_bottom =
        rad_deg(width / FL_GEO_EARTH_RADIUS_M / cos(deg_rad(lat - lat_delta)));
    /* The box widens towards the pole: north in the northern hemisphere,
     * south in the southern one. */
    int south = lat < 0;
    bounds[0] = south ? lon - lon_delta_bottom : lon - lon_delta_top;
    bounds[2] = south ? lon + lon_delta_bottom : lon + lon_delta_top;
    bounds[1] = lat - lat_delta;
    bounds[3] = lat + lat_delta;
}

static const fl_geo_cell no_cell = {0, 0};

/* The cell and neighbours at `steps`, and the centre cell's edges. */
static void cells_at(const fl_geo_shape *s, unsigned steps, fl_geo_cell *hash,
                     fl_geo_cell nb[8], fl_geo_area *area)
{
    fl_geo_range lo, la;
    fl_geo_coord_ranges(&lo, &la);
    hash->bits = 0;
    hash->step = steps;
    (void)fl_geo_encode(&lo, &la, s->lon, s->lat, steps, hash);
    fl_geo_neighbours(*hash, nb);
    (void)fl_geo_decode(&lo, &la, *hash, area);
}

/* Redis checks whether the four direct neighbours reach the bounding box;
 * if one falls short, the cells are one step coarser. */
static int neighbours_fall_short(const fl_geo_cell nb[8], const double b[4])
{
    fl_geo_range lo, la;
    fl_geo_area n, so, e, w;
    fl_geo_coord_ranges(&lo, &la);
    (void)fl_geo_decode(&lo, &la, nb[0], &n);
    (void)fl_geo_decode(&lo, &la, nb[1], &so);
    (void)fl_geo_decode(&lo, &la, nb[2], &e);
    (void)fl_geo_decode(&lo, &la, nb[3], &w);
    return n.lat.max < b[3] || so.lat.min > b[1] || e.lon.max < b[2] ||
           w.lon.min > b[0];
}

/* Zeroes the neighbours that lie wholly beyond the bounding box side that
 * the centre cell already crosses. */
static void prune(fl_geo_cell nb[8], const fl_geo_area *area, const double b[4])
{
    if (area->lat.min < b[1]) nb[1] = nb[7] = nb[6] = no_cell; /* S SW SE */
    if (area->lat.max > b[3]) nb[0] = nb[4] = nb[5] = no_cell; /* N NE NW */
    if (area->lon.min < b[0]) nb[3] = nb[7] = nb[5] = no_cell; /* W SW NW */
    if (area->lon.max > b[2]) nb[2] = nb[6] = nb[4] = no_cell; /* E SE NE */
}

int fl_geo_search_cells(const fl_geo_shape *s, fl_geo_cell out[9],
                        int order[9])
{
    double b[4];
    fl_geo_bounding_box(s, b);
    /* A box is searched as the circle through its corners. */
    double radius_m = s->type == FL_GEO_CIRCLE ? s->radius :
        sqrt((s->width / 2) * (s->width / 2) + (s->height / 2) * (s->height / 2));
    radius_m *= s->conversion;
    unsigned steps = fl_geo_estimate_steps(radius_m, s->lat);
    fl_geo_cell hash, nb[8];
    fl_geo_area area;
    cells_at(s, steps, &hash, nb, &area);
    if (steps > 1 && neighbours_fall_short(nb, b)) {
        steps--;
        cells_at(s, steps, &hash, nb, &area);
    }
    if (steps >= 2) prune(nb, &area, b);
    out[0] = hash;
    memcpy(out + 1, nb, sizeof(nb));
    int n = 0, last = 0;
    for (int i = 0; i < 9; i++) {
        if (out[i].bits == 0 && out[i].step == 0) continue;
        /* Redis skips a repeat of the cell read just before, but its test
         * is "last_processed && ..." so the centre (index 0) never counts. */
        if (last && out[i].bits == out[last].bits && out[i].step == out[last].step)
            continue;
        order[n++] = i;
        last = i;
    }
    return n;
}

int fl_geo_in_shape(const fl_geo_shape *s, double lon, double lat,
                    double *dist)
{
    if (s->type == FL_GEO_CIRCLE) {
        *dist = fl_geo_distance(s->lon, s->lat, lon, lat);
        return !(*dist > s->radius * s->conversion);
    }
    double width_m = s->width * s->conversion;
    double height_m = s->height * s->conversion;
    /* Latitude first: it is the cheaper test. */
    if (fl_geo_lat_distance(lat, s->lat) > height_m / 2) return 0;
    if (fl_geo_distance(lon, lat, s->lon, lat) > width_m / 2) return 0;
    *dist = fl_geo_distance(s->lon, s->lat, lon, lat);
    return 1;
}

/* ---- conservative filters ----
 *
 * Redis decides "in" by comparing its computed haversine d with a limit r.
 * With a = sin^2(dlat/2) + cos(lat0) cos(lat) sin^2(dlon/2), the exact
 * distance is 2R asin(sqrt(a)), increasing in a. Cheap polynomial bounds
 * (x - x^3/6 <= sin x <= x for x >= 0, and a first-order expansion of
 * cos(lat) with its remainder) give lo <= a <= hi without any libm call.
 * Redis' own result differs from the exact value by rounding only: far
 * below EPS_ABS + EPS_REL * d for the distances the filter accepts (it is
 * disabled beyond FILTER_MAX_M, where asin near 1 loses accuracy). So:
 *   hi < sin^2((r - eps) / 2R)  =>  Redis says in;
 *   lo > sin^2((r + eps) / 2R)  =>  Redis says out;
 * anything else is "unsure" and gets the exact test. */
#define EPS_ABS 1e-6          /* meters */
#define EPS_REL 1e-9
#define FILTER_MAX_M 1e7      /* meters */
#define A_SLACK 1e-12         /* covers the rounding of the bounds */

static double sq(double x) { return x * x; }

static double eps_for(double r) { return EPS_ABS + EPS_REL * r; }

static void a_thresholds(double r, double *in, double *out)
{
    double e = eps_for(r);
    double ri = r - e;
    *in = ri > 0 ? sq(sin(ri / (2 * FL_GEO_EARTH_RADIUS_M))) * (1 - A_SLACK) : -1;
    *out = sq(sin((r + e) / (2 * FL_GEO_EARTH_RADIUS_M))) * (1 + A_SLACK);
}

void fl_geo_filter_init(fl_geo_filter *f, const fl_geo_shape *s)
{
    memset(f, 0, sizeof(*f));
    f->type = s->type;
    f->lon0 = s->lon;
    f->lat0 = s->lat;
    f->lon0r = deg_rad(s->lon);
    f->lat0r = deg_rad(s->lat);
    f->c0 = cos(deg_rad(s->lat));
    f->s0 = sin(deg_rad(s->lat));
    if (s->type == FL_GEO_CIRCLE) {
        double r = s->radius * s->conversion;
        if (!(r >= 0 && r <= FILTER_MAX_M)) return;
        a_thresholds(r, &f->a_in, &f->a_out);
    } else {
        double w = s->width * s->conversion / 2;
        double h = s->height * s->conversion / 2;
        if (!(w >= 0 && w <= FILTER_MAX_M && h >= 0 && h <= FILTER_MAX_M))
            return;
        a_thresholds(w, &f->lon_in, &f->lon_out);
        f->h = h;
        f->h_in = h - eps_for(h);
        f->h_out = h + eps_for(h);
    }
    f->usable = 1;
}

/* Series for small angles (|x| <= 0.04): the first omitted terms are
 * below 1e-17 relative, far under the rounding of the evaluation.
 * Horner form with constant coefficients (no divisions). */
static double sin_series(double x)
{
    double x2 = x * x;
    return x * (1 + x2 * (-1.0 / 6 + x2 * (1.0 / 120 + x2 * (-1.0 / 5040 +
                x2 * (1.0 / 362880)))));
}

static double cos_series(double x)
{
    double x2 = x * x;
    return 1 + x2 * (-1.0 / 2 + x2 * (1.0 / 24 + x2 * (-1.0 / 720 +
           x2 * (1.0 / 40320))));
}

static double asin_series(double z)
{
    double z2 = z * z;
    return z * (1 + z2 * (1.0 / 6 + z2 * (3.0 / 40 + z2 * (5.0 / 112 +
                z2 * (35.0 / 1152)))));
}

double fl_geo_filter_distance_approx(const fl_geo_filter *f, double lon,
                                     double lat, int *exact)
{
    double lon2r = deg_rad(lon);
    double lat2r = deg_rad(lat);
    double y = (lon2r - f->lon0r) / 2;
    /* sin(y) == 0 exactly when y == 0: Redis' shortcut, exact here too. */
    *exact = y == 0;
    if (y == 0) return FL_GEO_EARTH_RADIUS_M * fabs(lat2r - f->lat0r);
    double dl = lat2r - f->lat0r;
    if (fabs(dl) > 0.04 || fabs(y) > 0.02) return -1;
    double u = sin_series(dl / 2);
    double v = sin_series(y);
    /* cos(lat) from the centre's cos/sin: no cancellation, as |lat| stays
     * below 85.06 degrees while dl is small. */
    double c2 = f->c0 * cos_series(dl) - f->s0 * sin_series(dl);
    double a = u * u + f->c0 * c2 * v * v;
    return 2.0 * FL_GEO_EARTH_RADIUS_M * asin_series(sqrt(a));
}

/* Longitude difference folded into [-180, 180]. */
static double fold_lon(double d)
{
    if (d > 180) return d - 360;
    if (d < -180) return d + 360;
    return d;
}

/* sin(x) bounds for 0 <= x <= pi/2. */
static double sin_lo(double x) { return x - x * x * x / 6; }
static double sin_hi(double x) { return x < 1 ? x : 1; }

/* cos(lat) bounds from the centre's cos/sin and the signed difference in
 * radians: cos(l0 + d) = c0 - s0 d + rem, |rem| <= d^2 / 2. */
static void cos_bounds(const fl_geo_filter *f, double dr, double *lo, double *hi)
{
    double c = f->c0 - f->s0 * dr;
    double rem = dr * dr / 2;
    *lo = c - rem;
    *hi = c + rem;
    if (*lo < 0) *lo = 0;
    if (*hi > 1) *hi = 1;
}

void fl_geo_filter_abounds(const fl_geo_filter *f, double lon, double lat,
                           double *lo, double *hi)
{
    double dlat = lat - f->lat0;
    double xp = fabs(dlat) * D_R * 0.5;
    double xl = fabs(fold_lon(lon - f->lon0)) * D_R * 0.5;
    double clo, chi;
    cos_bounds(f, dlat * D_R, &clo, &chi);
    double sl = sin_lo(xl), sh = sin_hi(xl);
    *lo = sq(sin_lo(xp)) + f->c0 * clo * sl * sl;
    *hi = sq(sin_hi(xp)) + f->c0 * chi * sh * sh;
}

static int box_point(const fl_geo_filter *f, double lon, double lat)
{
    /* The latitude test is Redis' own, exactly, and cheap. */
    if (fl_geo_lat_distance(lat, f->lat0) > f->h) return FL_GEO_OUT;
    double xl = fabs(fold_lon(lon - f->lon0)) * D_R * 0.5;
    double clo, chi;
    cos_bounds(f, (lat - f->lat0) * D_R, &clo, &chi);
    double sl = sin_lo(xl), sh = sin_hi(xl);
    if (clo * clo * sl * sl > f->lon_out) return FL_GEO_OUT;
    if (chi * chi * sh * sh < f->lon_in) return FL_GEO_IN;
    return FL_GEO_UNSURE;
}

int fl_geo_filter_point(const fl_geo_filter *f, double lon, double lat,
                        double ab[2])
{
    double lo, hi;
    if (f->type == FL_GEO_BOX || !f->usable) {
        if (ab) fl_geo_filter_abounds(f, lon, lat, &ab[0], &ab[1]);
        return f->usable ? box_point(f, lon, lat) : FL_GEO_UNSURE;
    }
    fl_geo_filter_abounds(f, lon, lat, &lo, &hi);
    if (ab) {
        ab[0] = lo;
        ab[1] = hi;
    }
    if (lo > f->a_out) return FL_GEO_OUT;
    if (hi < f->a_in) return FL_GEO_IN;
    return FL_GEO_UNSURE;
}

double fl_geo_filter_distance(const fl_geo_filter *f, double lon, double lat)
{
    /* fl_geo_distance(lon0, lat0, lon, lat) step by step, reusing the
     * centre's radians and cosine (the same values it would compute). */
    double lon2r = deg_rad(lon);
    double v = sin((lon2r - f->lon0r) / 2);
    double lat2r = deg_rad(lat);
    if (v == 0.0) return FL_GEO_EARTH_RADIUS_M * fabs(lat2r - f->lat0r);
    double u = sin((lat2r - f->lat0r) / 2);
    double a = u * u + f->c0 * cos(lat2r) * v * v;
    return 2.0 * FL_GEO_EARTH_RADIUS_M * asin(sqrt(a));
}

/* Smallest and largest |longitude difference| (degrees, folded) between
 * the centre and any longitude in [l1, l2]. */
static void lon_span(double lon0, double l1, double l2, double *mn, double *mx)
{
    double d1 = l1 - lon0, d2 = l2 - lon0;
    double mid = (d1 + d2) / 2;
    while (mid > 180) { d1 -= 360; d2 -= 360; mid -= 360; }
    while (mid < -180) { d1 += 360; d2 += 360; mid += 360; }
    if (d1 <= 0 && d2 >= 0) *mn = 0;
    else if (d1 > 0) *mn = d2 > 180 ? fmin(d1, 360 - d2) : d1;
    else *mn = d1 < -180 ? fmin(-d2, 360 + d1) : -d2;
    if (*mn < 0) *mn = 0;
    *mx = (d1 <= -180 || d2 >= 180) ? 180 : fmax(fabs(d1), fabs(d2));
}

/* Smallest and largest |latitude difference| over [l1, l2]. */
static void lat_span(double lat0, double l1, double l2, double *mn, double *mx)
{
    double a = fabs(l1 - lat0), b = fabs(l2 - lat0);
    *mn = (l1 <= lat0 && lat0 <= l2) ? 0 : fmin(a, b);
    *mx = fmax(a, b);
}

/* Bounds of cos(latitude) over [l1, l2] (degrees). Near the centre they
 * come from its cos/sin without a libm call (a search classifies
 * thousands of cells): cos(lat0 + d) = c0 - s0 d - cos(x) d^2 / 2 for some
 * x, so over [d1, d2] it stays within the linear part's range widened by
 * max(d1^2, d2^2) / 2. Farther out that widening would blur the bounds,
 * and cos itself is used. */
static void cos_span(const fl_geo_filter *f, double l1, double l2, double *lo,
                     double *hi)
{
    double d1 = (l1 - f->lat0) * D_R, d2 = (l2 - f->lat0) * D_R;
    double rem = fmax(d1 * d1, d2 * d2) / 2;
    if (rem < 1e-6) {
        double c1 = f->c0 - f->s0 * d1, c2 = f->c0 - f->s0 * d2;
        *lo = fmax(0, fmin(c1, c2) - rem - 1e-14);
        *hi = fmin(1, fmax(c1, c2) + rem + 1e-14);
        return;
    }
    double a = fabs(l1), b = fabs(l2);
    double amin = (l1 <= 0 && l2 >= 0) ? 0 : fmin(a, b);
    double amax = fmin(fmax(a, b), 90);
    *lo = cos(deg_rad(amax)) * (1 - 1e-14) - 1e-300;
    *hi = fmin(1, cos(deg_rad(amin)) * (1 + 1e-14));
    if (*lo < 0) *lo = 0;
}

/* The spans of an area as seen from the centre: |dlon| and |dlat| ranges
 * (degrees) and the range of cos(latitude). */
typedef struct area_spans {
    double dlo_mn, dlo_mx, dla_mn, dla_mx, clo, chi;
} area_spans;

static void spans_of(const fl_geo_filter *f, const fl_geo_area *a,
                     area_spans *sp)
{
    /* Widen by far more than the rounding of a decoded centre, so points
     * clamped onto an edge are covered too. */
    const double m = 1e-9;
    lon_span(f->lon0, a->lon.min - m, a->lon.max + m, &sp->dlo_mn, &sp->dlo_mx);
    lat_span(f->lat0, a->lat.min - m, a->lat.max + m, &sp->dla_mn, &sp->dla_mx);
    cos_span(f, a->lat.min - m, a->lat.max + m, &sp->clo, &sp->chi);
}

static void spans_abounds(const fl_geo_filter *f, const area_spans *sp,
                          double *lo, double *hi)
{
    double sl = sin_lo(sp->dlo_mn * D_R * 0.5), sh = sin_hi(sp->dlo_mx * D_R * 0.5);
    *lo = sq(sin_lo(sp->dla_mn * D_R * 0.5)) + f->c0 * sp->clo * sl * sl;
    *hi = sq(sin_hi(sp->dla_mx * D_R * 0.5)) + f->c0 * sp->chi * sh * sh;
}

void fl_geo_filter_area_abounds(const fl_geo_filter *f, const fl_geo_area *a,
                                double *lo, double *hi)
{
    area_spans sp;
    spans_of(f, a, &sp);
    spans_abounds(f, &sp, lo, hi);
}

int fl_geo_filter_area(const fl_geo_filter *f, const fl_geo_area *a)
{
    if (!f->usable) return FL_GEO_UNSURE;
    area_spans sp;
    spans_of(f, a, &sp);
    if (f->type == FL_GEO_CIRCLE) {
        double lo, hi;
        spans_abounds(f, &sp, &lo, &hi);
        if (lo > f->a_out) return FL_GEO_OUT;
        if (hi < f->a_in) return FL_GEO_IN;
        return FL_GEO_UNSURE;
    }
    double dla_mn = sp.dla_mn, dla_mx = sp.dla_mx, clo = sp.clo, chi = sp.chi;
    double sl = sin_lo(sp.dlo_mn * D_R * 0.5), sh = sin_hi(sp.dlo_mx * D_R * 0.5);
    double ld_mn = FL_GEO_EARTH_RADIUS_M * dla_mn * D_R;
    double ld_mx = FL_GEO_EARTH_RADIUS_M * dla_mx * D_R;
    if (ld_mn * (1 - 1e-12) > f->h_out) return FL_GEO_OUT;
    if (clo * clo * sl * sl > f->lon_out) return FL_GEO_OUT;
    if (ld_mx * (1 + 1e-12) < f->h_in && chi * chi * sh * sh < f->lon_in)
        return FL_GEO_IN;
    return FL_GEO_UNSURE;
}

double fl_geo_a_widen(double a, int dir)
{
    /* Work in sqrt(a) ~ d / 2R: a distance error e moves sqrt(a) by at
     * most e / 2R, and EPS_REL * d is at most pi * EPS_REL * sqrt(a) * 2R
     * / 2R. The factors below are far larger than both. */
    double s = sqrt(a > 0 ? a : 0);
    if (dir > 0) return sq(s * (1 + 1e-8) + 1e-12) * (1 + A_SLACK);
    s = s * (1 - 1e-8) - 1e-12;
    return s > 0 ? sq(s) * (1 - A_SLACK) : 0;
}

/* ---- box spans: where in score order a box's points lie ---- */

#define SPAN_CELLS 16 /* per box that does not cross the antimeridian */

/* Cells of one step covering box (min lon <= max lon), as spans. *edge
 * is set when a corner lies on the world's upper edge, where scores fall
 * past every cell. */
static size_t box_cell_spans(const double box[4], fl_geo_span *out, int *edge)
{
    fl_geo_range lo_r, la_r;
    fl_geo_coord_ranges(&lo_r, &la_r);
    for (unsigned step = FL_GEO_STEP_MAX; step >= 1; step--) {
        fl_geo_cell a, b;
        if (!fl_geo_encode(&lo_r, &la_r, box[0], box[1], step, &a) ||
            !fl_geo_encode(&lo_r, &la_r, box[2], box[3], step, &b))
            return 0; /* callers pass valid corners */
        /* A corner on the upper edge (or within rounding of it) encodes
         * one past the last cell. Clamped, the cells still hold every
         * point pulled just inside the edge (as the fleet indexes them);
         * the raw scores beyond are the edge span's. */
        uint32_t last = (uint32_t)((1ULL << step) - 1);
        uint32_t x0 = squash64(a.bits >> 1), x1 = squash64(b.bits >> 1);
        uint32_t y0 = squash64(a.bits), y1 = squash64(b.bits);
        *edge |= x1 > last || y1 > last;
        x0 = x0 > last ? last : x0;
        y0 = y0 > last ? last : y0;
        x1 = x1 > last ? last : x1;
        y1 = y1 > last ? last : y1;
        if ((uint64_t)(x1 - x0 + 1) * (y1 - y0 + 1) > SPAN_CELLS) continue;
        unsigned shift = 52 - 2 * step;
        size_t n = 0;
        for (uint32_t x = x0; x <= x1; x++)
            for (uint32_t y = y0; y <= y1; y++) {
                uint64_t cell = spread32(y) | (spread32(x) << 1);
                out[n++] = (fl_geo_span){cell << shift, (cell + 1) << shift};
            }
        return n;
    }
    return 0; /* not reached: at step 1 there are only 4 cells */
}

/* At most FL_GEO_BOX_SPANS: an insertion sort, and no allocation. */
static void sort_spans(fl_geo_span *s, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        fl_geo_span v = s[i];
        size_t j = i;
        for (; j > 0 && s[j - 1].lo > v.lo; j--) s[j] = s[j - 1];
        s[j] = v;
    }
}

size_t fl_geo_box_spans(const double box[4], fl_geo_span out[FL_GEO_BOX_SPANS])
{
    size_t n;
    int edge = 0;
    if (box[0] <= box[2]) {
        n = box_cell_spans(box, out, &edge);
    } else { /* across the antimeridian: the two sides */
        const double east[4] = {box[0], box[1], FL_GEO_LON_MAX, box[3]};
        const double west[4] = {FL_GEO_LON_MIN, box[1], box[2], box[3]};
        n = box_cell_spans(east, out, &edge);
        n += box_cell_spans(west, out + n, &edge);
    }
    /* Points on the upper edge of the world (lon 180 or the top latitude)
     * score at 2^52 and above, past every cell. */
    if (edge) out[n++] = (fl_geo_span){1ULL << 52, UINT64_MAX};
    sort_spans(out, n);
    size_t merged = 0;
    for (size_t i = 0; i < n; i++) {
        if (merged && out[merged - 1].hi >= out[i].lo) {
            if (out[i].hi > out[merged - 1].hi) out[merged - 1].hi = out[i].hi;
        } else {
            out[merged++] = out[i];
        }
    }
    return merged;
}
