/*
 * track.c - tracks for fleet-replay: building them from the real records,
 * and answering "where is the vehicle at track time a?" without state.
 *
 * Why this shape: every ping of every vehicle asks that question, at up
 * to a few hundred thousand pings a second, so the answer is two binary
 * searches and a linear interpolation over arrays built once. Building
 * does the thinking instead: taxi records that are implausible, or that
 * one cab could not drive in sequence, are dropped there, and the empty
 * legs between trips (wait at the dropoff, then drive to the next pickup)
 * become ordinary points, so the query never special-cases them.
 *
 * The speeds the tracks can imply are bounded here (MAX_TRIP_KMH,
 * MAX_LEG_KMH) and recorded per track (max_kmh): fleet-replay sizes
 * fleetd's plausibility limit from them.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

#define EARTH_M 6372797.560856  /* the radius fleetd and Redis use */
#define LEG_KMH 25.0            /* an empty cab between trips */
#define MAX_TRIP_KMH 120.0      /* straight line over the trip's duration */
#define MAX_LEG_KMH 80.0        /* an empty leg that would need more is dropped */
#define MIN_TRIP_S 30.0         /* shorter "trips" are meter mistakes */
#define MIN_GAP_S 1.0           /* dropoff to next pickup: events stay ordered */
#define STILL_M 200.0           /* a vessel moving less is moored: no trips */
#define STILL_S 60.0
#define MAX_REPORT_KMH 6000.0   /* fleetd refuses a SPEED above */

double fl_rp_distance_m(double lon1, double lat1, double lon2, double lat2)
{
    const double rad = M_PI / 180.0;
    double s1 = sin((lat2 - lat1) * rad / 2), s2 = sin((lon2 - lon1) * rad / 2);
    double a = s1 * s1 + cos(lat1 * rad) * cos(lat2 * rad) * s2 * s2;
    return 2.0 * EARTH_M * asin(sqrt(a < 1 ? a : 1));
}

/* Initial great-circle bearing in [0, 360). */
static double bearing_deg(double lon1, double lat1, double lon2, double lat2)
{
    const double rad = M_PI / 180.0;
    double dl = (lon2 - lon1) * rad, p1 = lat1 * rad, p2 = lat2 * rad;
    double y = sin(dl) * cos(p2);
    double x = cos(p1) * sin(p2) - sin(p1) * cos(p2) * cos(dl);
    double b = atan2(y, x) / rad;
    return b < 0 ? b + 360.0 : (b >= 360.0 ? b - 360.0 : b);
}

int fl_rp_track_add(fl_rp_track *tr, double t, double lon, double lat,
                    float kmh, float heading)
{
    if (tr->npts == tr->pts_cap) {
        uint32_t cap = tr->pts_cap ? tr->pts_cap * 2 : 64;
        fl_rp_point *p = realloc(tr->pts, sizeof(*p) * cap);
        if (!p) return -ENOMEM;
        tr->pts = p;
        tr->pts_cap = cap;
    }
    tr->pts[tr->npts++] = (fl_rp_point){t, lon, lat, kmh, heading};
    return 0;
}

static int add_trip(fl_rp_track *tr, double start, double end)
{
    if (tr->ntrips == tr->trips_cap) {
        uint32_t cap = tr->trips_cap ? tr->trips_cap * 2 : 16;
        fl_rp_trip *p = realloc(tr->trips, sizeof(*p) * cap);
        if (!p) return -ENOMEM;
        tr->trips = p;
        tr->trips_cap = cap;
    }
    tr->trips[tr->ntrips++] = (fl_rp_trip){start, end};
    return 0;
}

void fl_rp_track_free(fl_rp_track *tr)
{
    free(tr->pts);
    free(tr->trips);
    memset(tr, 0, sizeof(*tr));
}

/* ---- finishing: speeds, headings, scale ---- */

/* Fills the speeds and headings the data did not give from consecutive
 * points; a standing vehicle keeps the heading of its last move. Records
 * the fastest implied move, whatever the data reported. */
static void finish_moves(fl_rp_track *tr)
{
    float last = NAN, first = NAN;
    tr->max_kmh = 0;
    for (uint32_t i = 0; i < tr->npts; i++) {
        fl_rp_point *p = &tr->pts[i];
        double d = 0, dt = 0;
        if (i + 1 < tr->npts) {
            d = fl_rp_distance_m(p->lon, p->lat, p[1].lon, p[1].lat);
            dt = p[1].t - p->t;
        }
        double kmh = dt > 0 ? d / dt * 3.6 : 0;
        if (kmh > tr->max_kmh) tr->max_kmh = kmh;
        if (isnan(p->kmh)) p->kmh = (float)kmh;
        if (p->kmh > MAX_REPORT_KMH) p->kmh = (float)MAX_REPORT_KMH;
        if (isnan(p->heading) && d > 1.0)
            p->heading = (float)bearing_deg(p->lon, p->lat, p[1].lon, p[1].lat);
        if (isnan(p->heading)) p->heading = last;
        else last = p->heading;
        if (isnan(first)) first = last;
    }
    /* Points before the first move face the way it goes (north if none). */
    for (uint32_t i = 0; i < tr->npts; i++)
        if (isnan(tr->pts[i].heading)) tr->pts[i].heading = isnan(first) ? 0.0f : first;
}

static void set_scale(fl_rp_track *tr)
{
    double lat = tr->pts[0].lat * M_PI / 180.0;
    tr->ky = 1.0 / 110574.0;
    tr->kx = 1.0 / (111320.0 * fmax(cos(lat), 0.01));
}

/* ---- taxis ---- */

static int cmp_taxi(const void *a, const void *b)
{
    double x = ((const fl_rp_taxi_trip *)a)->t0, y = ((const fl_rp_taxi_trip *)b)->t0;
    return (x > y) - (x < y);
}

static int taxi_plausible(const fl_rp_taxi_trip *t)
{
    double secs = t->t1 - t->t0;
    if (!(secs >= MIN_TRIP_S)) return 0;
    double d = fl_rp_distance_m(t->lon0, t->lat0, t->lon1, t->lat1);
    return d / secs * 3.6 <= MAX_TRIP_KMH;
}

/* Can a cab that dropped off per `from` reach `to`'s pickup at to_t0? */
static int reachable(const fl_rp_taxi_trip *from, const fl_rp_taxi_trip *to,
                     double to_t0)
{
    double gap = to_t0 - from->t1;
    if (gap < MIN_GAP_S) return 0;
    double d = fl_rp_distance_m(from->lon1, from->lat1, to->lon0, to->lat0);
    return d / gap * 3.6 <= MAX_LEG_KMH;
}

/* Keeps, in time order, the trips one cab can drive in a loop of
 * `period`; returns how many (compacted to the front of v). */
static size_t taxi_filter(fl_rp_taxi_trip *v, size_t n, double period)
{
    qsort(v, n, sizeof(*v), cmp_taxi);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!taxi_plausible(&v[i])) continue;
        if (k && !reachable(&v[k - 1], &v[i], v[i].t0)) continue;
        if (k && v[i].t1 >= v[0].t0 + period) continue;
        v[k++] = v[i];
    }
    /* The loop closes from the last dropoff to the first pickup. */
    while (k > 0 && !reachable(&v[k - 1], &v[0], v[0].t0 + period)) k--;
    return k;
}

/* An empty leg: wait at the dropoff, then drive straight to the pickup at
 * LEG_KMH, arriving at t_to (the point at t_from exists already). */
static int add_leg(fl_rp_track *tr, double t_from, double lon, double lat,
                   double t_to, double lon2, double lat2)
{
    double drive = fl_rp_distance_m(lon, lat, lon2, lat2) / (LEG_KMH / 3.6);
    if (drive > 0.5 && drive < t_to - t_from) {
        int rc = fl_rp_track_add(tr, t_to - drive, lon, lat, NAN, NAN);
        if (rc) return rc;
    }
    return fl_rp_track_add(tr, t_to, lon2, lat2, NAN, NAN);
}

static int taxi_points(fl_rp_track *tr, const fl_rp_taxi_trip *v, size_t k,
                       double period)
{
    int rc = fl_rp_track_add(tr, v[0].t0, v[0].lon0, v[0].lat0, NAN, NAN);
    for (size_t i = 0; i < k && !rc; i++) {
        if (i > 0)
            rc = add_leg(tr, v[i - 1].t1, v[i - 1].lon1, v[i - 1].lat1,
                         v[i].t0, v[i].lon0, v[i].lat0);
        if (!rc) rc = fl_rp_track_add(tr, v[i].t1, v[i].lon1, v[i].lat1, NAN, NAN);
        if (!rc) rc = add_trip(tr, v[i].t0, v[i].t1);
    }
    if (!rc)
        rc = add_leg(tr, v[k - 1].t1, v[k - 1].lon1, v[k - 1].lat1,
                     v[0].t0 + period, v[0].lon0, v[0].lat0);
    return rc;
}

int fl_rp_track_taxi(fl_rp_track *tr, fl_rp_taxi_trip *v, size_t n,
                     double period)
{
    size_t k = taxi_filter(v, n, period);
    if (k == 0) return -ENODATA;
    int rc = taxi_points(tr, v, k, period);
    if (rc) return rc;
    tr->shape = FL_RP_CYCLE;
    tr->period = period;
    tr->moving = 1;
    finish_moves(tr);
    set_scale(tr);
    return 0;
}

/* ---- vessels and the car ---- */

static int too_fast(const fl_rp_point *a, const fl_rp_point *b, double max_kmh)
{
    return fl_rp_distance_m(a->lon, a->lat, b->lon, b->lat) >
           max_kmh / 3.6 * (b->t - a->t);
}

/* Removes GPS glitches, the moves faster than max_kmh. A lone far point
 * (the next one is back) is a spike and goes. A far point the next one
 * confirms is a real jump after a frozen fix (the car trace stands still
 * for seconds, then is 470 m on): the frozen fixes before it go instead,
 * so the vehicle drives there over the time the recorder lost. */
static void drop_glitches(fl_rp_track *tr, double max_kmh)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < tr->npts; i++) {
        const fl_rp_point *p = &tr->pts[i], *next = i + 1 < tr->npts ? p + 1 : NULL;
        if (k && too_fast(&tr->pts[k - 1], p, max_kmh)) {
            int stays = next && !too_fast(p, next, max_kmh) &&
                        too_fast(&tr->pts[k - 1], next, max_kmh);
            if (!stays) continue;
            while (k > 1 && too_fast(&tr->pts[k - 1], p, max_kmh)) k--;
        }
        tr->pts[k++] = *p;
    }
    tr->npts = k;
}

int fl_rp_track_pingpong(fl_rp_track *tr, double max_kmh)
{
    if (tr->npts == 0) return -ENODATA;
    drop_glitches(tr, max_kmh);
    double path = 0;
    for (uint32_t i = 1; i < tr->npts; i++)
        path += fl_rp_distance_m(tr->pts[i - 1].lon, tr->pts[i - 1].lat,
                                 tr->pts[i].lon, tr->pts[i].lat);
    tr->shape = FL_RP_PINGPONG;
    tr->period = tr->pts[tr->npts - 1].t;
    tr->dwell = fmax(60.0, tr->period / 10);
    tr->moving = tr->period >= STILL_S && path >= STILL_M;
    finish_moves(tr);
    set_scale(tr);
    return 0;
}

/* ---- queries ---- */

double fl_rp_track_cycle(const fl_rp_track *tr)
{
    if (tr->shape == FL_RP_CYCLE) return tr->period;
    return 2.0 * (tr->period + tr->dwell);
}

/* Position, speed and heading at track time u within the points. */
static void interpolate(const fl_rp_track *tr, double u, fl_rp_state *o)
{
    const fl_rp_point *p = tr->pts;
    if (tr->npts == 1) {
        *o = (fl_rp_state){p->lon, p->lat, 0.0f, p->heading, -1};
        return;
    }
    uint32_t lo = 0, hi = tr->npts - 2; /* last i with p[i].t <= u */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (p[mid].t <= u) lo = mid;
        else hi = mid - 1;
    }
    p += lo;
    double f = (u - p->t) / (p[1].t - p->t);
    f = f < 0 ? 0 : (f > 1 ? 1 : f);
    o->lon = p->lon + (p[1].lon - p->lon) * f;
    o->lat = p->lat + (p[1].lat - p->lat) * f;
    o->kmh = p->kmh;
    o->heading = p->heading;
}

/* The trip running at u (an index into trips), or -1. */
static int64_t trip_at(const fl_rp_track *tr, double u)
{
    if (tr->ntrips == 0 || u < tr->trips[0].start) return -1;
    uint32_t lo = 0, hi = tr->ntrips - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (tr->trips[mid].start <= u) lo = mid;
        else hi = mid - 1;
    }
    return u < tr->trips[lo].end ? (int64_t)lo : -1;
}

static void cycle_at(const fl_rp_track *tr, double a, fl_rp_state *o)
{
    double base = tr->pts[0].t;
    double c = floor((a - base) / tr->period);
    double u = a - c * tr->period; /* in [base, base + period) */
    interpolate(tr, u, o);
    int64_t j = trip_at(tr, u);
    o->trip = j < 0 ? -1 : (int64_t)c * tr->ntrips + j;
}

static void pingpong_at(const fl_rp_track *tr, double a, fl_rp_state *o)
{
    double span = tr->period, leg = span + tr->dwell;
    double p = floor(a / leg), w = a - p * leg;
    int back = fmod(p, 2.0) != 0;
    int dwelling = w >= span;
    double tau = dwelling ? span : w;
    interpolate(tr, back ? span - tau : tau, o);
    if (back) o->heading = fmodf(o->heading + 180.0f, 360.0f);
    if (dwelling) o->kmh = 0;
    o->trip = tr->moving && !dwelling ? (int64_t)p : -1;
}

void fl_rp_track_at(const fl_rp_track *tr, double a, fl_rp_state *out)
{
    if (tr->shape == FL_RP_CYCLE) cycle_at(tr, a, out);
    else pingpong_at(tr, a, out);
}

void fl_rp_trip_bounds(const fl_rp_track *tr, int64_t ord, double *start,
                       double *end)
{
    if (tr->shape == FL_RP_PINGPONG) {
        *start = (double)ord * (tr->period + tr->dwell);
        *end = *start + tr->period;
        return;
    }
    double c = (double)(ord / tr->ntrips);
    const fl_rp_trip *t = &tr->trips[ord % tr->ntrips];
    *start = c * tr->period + t->start;
    *end = c * tr->period + t->end;
}
