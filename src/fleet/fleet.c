/*
 * fleet.c - vehicles: pings, deletion, counts, and the NEARBY and WITHIN
 * searches. Trips are in trip.c, supply cells in supply.c; the shape of the
 * whole is described in fleet.h.
 *
 * Searches reuse the geo set of GEOSEARCH: it returns candidates from the
 * cells around the shape, decided on their 52-bit geohash positions, and
 * this file filters them by status and fleet and re-measures them on the
 * exact positions. Because filters can reject candidates, a COUNT query
 * asks the index for more than it needs and asks again, four times wider,
 * when filtering left it short.
 */
#include "fleet_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util/buf.h"

#define FL_MEAN_EARTH_RADIUS_M 6371008.8
/* Candidates are drawn with Redis' larger radius constant; widen the
 * index radius so nothing inside the mean-radius circle is missed. */
#define FL_RADIUS_WIDEN (FL_GEO_EARTH_RADIUS_M / FL_MEAN_EARTH_RADIUS_M)
/* The index ranks on 52-bit geohash positions (within about 0.6 m of the
 * exact ones): a vehicle it leaves out of the nearest n can be at most
 * twice that closer than the farthest one it gave, exactly measured. */
#define FL_RANK_SLACK_M 3.0
#define FL_RELOCATE_AFTER 3

static const char *const status_names[FL_VS_COUNT] = {"available", "busy",
                                                      "offline"};

const char *fl_vstatus_name(int status)
{
    return status >= 0 && status < FL_VS_COUNT ? status_names[status] : "?";
}

int fl_vstatus_parse(const char *s, size_t n)
{
    for (int i = 0; i < FL_VS_COUNT; i++)
        if (strlen(status_names[i]) == n && strncasecmp(s, status_names[i], n) == 0)
            return i;
    return -1;
}

void fl_fleet_config_defaults(fl_fleet_config *c)
{
    c->jitter_m = 5.0;
    c->max_speed_kmh = 300.0;
    c->idle_speed_kmh = 2.0;
    c->max_future_ms = 5 * 60 * 1000;
    c->trip_idle_ms = 30 * 60 * 1000;
    c->trip_max_points = 100000;
    c->trip_history_max = 1000000;
}

static const char *vehicle_key(const void *rec, size_t *len)
{
    const fl_vehicle *v = rec;
    *len = v->id_len;
    return v->id;
}

static const char *group_key(const void *rec, size_t *len)
{
    const fl_fleet_group *g = rec;
    *len = g->name_len;
    return g->name;
}

static const char *trip_key(const void *rec, size_t *len)
{
    const fl_trip *t = rec;
    *len = t->id_len;
    return t->id;
}

static const char *history_key(const void *rec, size_t *len)
{
    const fl_trip_history *h = rec;
    *len = h->vid_len;
    return h->vid;
}

static void fleet_init_maps(fl_fleet *f)
{
    fl_ptrmap_init(&f->vehicles, f->seed, vehicle_key);
    fl_ptrmap_init(&f->groups, f->seed ^ 1, group_key);
    fl_ptrmap_init(&f->trips, f->seed ^ 2, trip_key);
    fl_ptrmap_init(&f->histories, f->seed ^ 3, history_key);
    f->where = fl_geoset_new(f->seed ^ 4);
    if (!f->where) abort();
}

fl_fleet *fl_fleet_new(const fl_fleet_config *cfg, uint64_t seed)
{
    fl_fleet *f = fl_xcalloc(1, sizeof(*f));
    f->cfg = *cfg;
    f->seed = seed;
    f->trip_seq = 1;
    fleet_init_maps(f);
    return f;
}

static void free_members(fl_fleet *f)
{
    fl__trips_free_all(f);
    for (size_t i = 0; i < fl_ptrmap_slots(&f->vehicles); i++)
        free(fl_ptrmap_at(&f->vehicles, i));
    for (size_t i = 0; i < fl_ptrmap_slots(&f->groups); i++)
        free(fl_ptrmap_at(&f->groups, i));
    fl_ptrmap_free(&f->vehicles);
    fl_ptrmap_free(&f->groups);
    free(f->group_by_no);
    f->group_by_no = NULL;
    f->ngroups = 0;
    fl_ptrmap_free(&f->trips);
    fl_ptrmap_free(&f->histories);
    fl_geoset_free(f->where);
    f->where = NULL;
    fl__cells_free(f);
    fl__demand_free(f);
}

void fl_fleet_free(fl_fleet *f)
{
    if (!f) return;
    free_members(f);
    free(f);
}

void fl_fleet_clear(fl_fleet *f)
{
    free_members(f);
    uint64_t closed = f->stats.trips_closed_idle;
    memset(&f->stats, 0, sizeof(f->stats));
    f->stats.trips_closed_idle = closed;
    fleet_init_maps(f);
}

void fl_fleet_configure(fl_fleet *f, const fl_fleet_config *cfg)
{
    f->cfg = *cfg;
}

const fl_fleet_config *fl_fleet_get_config(const fl_fleet *f)
{
    return &f->cfg;
}

const fl_fleet_stats *fl_fleet_get_stats(const fl_fleet *f)
{
    return &f->stats;
}

size_t fl_fleet_bytes(const fl_fleet *f)
{
    size_t per_vehicle = sizeof(fl_vehicle) + 16;
    return f->stats.vehicles * per_vehicle + fl_geoset_bytes(f->where) +
           fl_ptrmap_bytes(&f->vehicles) + fl_ptrmap_bytes(&f->trips) +
           fl_ptrmap_bytes(&f->histories) + f->trip_bytes +
           (f->cells.mask ? (f->cells.mask + 1) * sizeof(fl__cell) : 0);
}

double fl_fleet_distance_m(double lon1, double lat1, double lon2, double lat2)
{
    const double rad = M_PI / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double s1 = sin(dlat / 2), s2 = sin(dlon / 2);
    double a = s1 * s1 + cos(lat1 * rad) * cos(lat2 * rad) * s2 * s2;
    if (a > 1) a = 1;
    return 2 * FL_MEAN_EARTH_RADIUS_M * asin(sqrt(a));
}

const char *fl_vehicle_fleet(const fl_fleet *f, const fl_vehicle *v,
                             size_t *len)
{
    if (!v->group) {
        *len = 0;
        return NULL;
    }
    const fl_fleet_group *g = f->group_by_no[v->group];
    *len = g->name_len;
    return g->name;
}

static uint16_t encode16(float v, double scale)
{
    if (isnan(v)) return FL_UNKNOWN16;
    double x = round((double)v * scale);
    return x >= FL_UNKNOWN16 ? FL_UNKNOWN16 - 1 : (uint16_t)x;
}

static float decode16(uint16_t v, double scale)
{
    return v == FL_UNKNOWN16 ? NAN : (float)(v / scale);
}

float fl_vehicle_speed(const fl_vehicle *v)
{
    return v->speed_kmh;
}

float fl_vehicle_heading(const fl_vehicle *v)
{
    return decode16(v->heading_cdeg, 100.0);
}

/* 1e-7 degree (1 cm) inside the edge: the largest doubles below 180 still
 * round to the full range in the geohash arithmetic. */
#define FL_EDGE_MARGIN 1e-7

void fl__index_point(double lon, double lat, double *x, double *y)
{
    *x = lon > FL_GEO_LON_MAX - FL_EDGE_MARGIN ? FL_GEO_LON_MAX - FL_EDGE_MARGIN : lon;
    *y = lat > FL_GEO_LAT_MAX - FL_EDGE_MARGIN ? FL_GEO_LAT_MAX - FL_EDGE_MARGIN : lat;
}

uint64_t fl_vehicle_cell(const fl_vehicle *v)
{
    return fl__cell_of(v->lon, v->lat);
}

void fl_vehicle_get_state(const fl_vehicle *v, fl_vehicle_state *out)
{
    out->lon = v->lon;
    out->lat = v->lat;
    out->ts_ms = v->ts_ms;
    out->speed_kmh = fl_vehicle_speed(v);
    out->heading = fl_vehicle_heading(v);
    out->flagged = v->flagged;
    out->status = v->status;
    out->suspect = v->suspect;
}

/* ---- counts ---- */

/* The number of a fleet name, created on first use; 0 for no name, -1
 * when FL_FLEETS_MAX names exist. */
static int group_no(fl_fleet *f, const char *name, size_t len)
{
    if (!name) return 0;
    fl_fleet_group *g = fl_ptrmap_get(&f->groups, name, len);
    if (g) return g->no;
    if (f->ngroups >= FL_FLEETS_MAX) return -1;
    g = fl_xcalloc(1, sizeof(*g) + len);
    g->name_len = (uint8_t)len;
    memcpy(g->name, name, len);
    g->no = (uint16_t)++f->ngroups;
    if (fl_ptrmap_put(&f->groups, g) != 0) abort();
    f->group_by_no = fl_xrealloc(f->group_by_no, (f->ngroups + 1) * sizeof(*f->group_by_no));
    f->group_by_no[g->no] = g;
    return g->no;
}

/* Adds (delta 1) or removes (-1) a vehicle from every count it is in. */
static void count_in(fl_fleet *f, uint64_t cell, int group, int status,
                     int delta)
{
    f->stats.by_status[status] += (uint64_t)(int64_t)delta;
    if (group) f->group_by_no[group]->by_status[status] += (uint64_t)(int64_t)delta;
    fl__cells_add(f, cell, status, delta);
}

static void count_vehicle(fl_fleet *f, const fl_vehicle *v, int delta)
{
    count_in(f, fl_vehicle_cell(v), v->group, v->status, delta);
}

void fl_fleet_count(const fl_fleet *f, const char *fleet, size_t len,
                    uint64_t out[FL_VS_COUNT])
{
    const uint64_t *src = f->stats.by_status;
    if (fleet) {
        const fl_fleet_group *g = fl_ptrmap_get(&f->groups, fleet, len);
        static const uint64_t zero[FL_VS_COUNT];
        src = g ? g->by_status : zero;
    }
    memcpy(out, src, sizeof(uint64_t) * FL_VS_COUNT);
}

/* ---- pings ---- */

static int ping_valid(const fl_fleet *f, size_t len, const fl_ping *p,
                      int64_t now_ms)
{
    if (len == 0 || len > FL_FLEET_ID_MAX) return -EINVAL;
    if (!isfinite(p->lon) || !isfinite(p->lat) ||
        !fl_geo_coords_valid(p->lon, p->lat))
        return -EINVAL;
    if (!isnan(p->speed_kmh) && !(p->speed_kmh >= 0 && p->speed_kmh <= FL_SPEED_MAX_KMH))
        return -EINVAL;
    if (!isnan(p->heading) && !(p->heading >= 0 && p->heading <= 360))
        return -EINVAL;
    if (p->fleet && (p->fleet_len == 0 || p->fleet_len > FL_FLEET_ID_MAX))
        return -EINVAL;
    if (p->status >= FL_VS_COUNT) return -EINVAL;
    if (p->ts_ms <= 0 ||
        (p->ts_ms > now_ms && p->ts_ms - now_ms > f->cfg.max_future_ms))
        return -ERANGE;
    return 0;
}

static uint64_t index_score(double lon, double lat)
{
    double x, y;
    fl__index_point(lon, lat, &x, &y);
    return fl_geo_score(x, y);
}

static void index_position(fl_fleet *f, fl_vehicle *v)
{
    int outcome;
    double score = (double)index_score(v->lon, v->lat);
    if (fl_geoset_add(f->where, v->id, v->id_len, score, 0, &outcome) != 0)
        abort();
}

/* A new vehicle, or NULL (nothing changed) when the id exists. */
static fl_vehicle *vehicle_create(fl_fleet *f, const char *id, size_t len,
                                  const fl_ping *p, int group)
{
    fl_vehicle *v = fl_xcalloc(1, offsetof(fl_vehicle, id) + len);
    v->id_len = (uint8_t)len;
    memcpy(v->id, id, len);
    v->lon = p->lon;
    v->lat = p->lat;
    v->ts_ms = p->ts_ms;
    v->speed_kmh = p->speed_kmh;
    v->heading_cdeg = encode16(p->heading, 100.0);
    v->status = p->status >= 0 ? (uint8_t)p->status : FL_VS_AVAILABLE;
    v->group = (uint16_t)group;
    int rc = fl_ptrmap_insert(&f->vehicles, v);
    if (rc == -EEXIST) {
        free(v);
        return NULL;
    }
    if (rc != 0) abort();
    index_position(f, v);
    f->stats.vehicles++;
    count_vehicle(f, v, 1);
    return v;
}

/* Decides whether a newer ping from a known vehicle is applied (stale
 * ones never get here): APPLIED, IMPLAUSIBLE, or RELOCATED when a run of
 * implausible pings is taken as the vehicle's new place. */
static int judge_ping(fl_fleet *f, fl_vehicle *v, const fl_ping *p)
{
    double d = fl_fleet_distance_m(v->lon, v->lat, p->lon, p->lat);
    double hours = (double)(p->ts_ms - v->ts_ms) / 3.6e6;
    if (d <= f->cfg.jitter_m || d / 1000.0 <= f->cfg.max_speed_kmh * hours) {
        v->suspect = 0;
        return FL_PING_APPLIED;
    }
    if (v->flagged < UINT16_MAX) v->flagged++;
    if (v->trip) v->trip->flagged++;
    if (++v->suspect < FL_RELOCATE_AFTER) return FL_PING_IMPLAUSIBLE;
    v->suspect = 0;
    return FL_PING_RELOCATED;
}

/* feed: how the trip takes the step (fl_feed_kind). */
static void vehicle_apply(fl_fleet *f, fl_vehicle *v, const fl_ping *p,
                          int group, int feed)
{
    uint64_t old_cell = fl_vehicle_cell(v), cell = fl__cell_of(p->lon, p->lat);
    if (!p->fleet) group = v->group;
    int status = p->status >= 0 ? p->status : v->status;
    int recount = cell != old_cell || group != v->group || status != v->status;
    if (recount) count_in(f, old_cell, v->group, v->status, -1);
    if (v->trip) fl__trip_feed(f, v, p->lon, p->lat, p->ts_ms, p->speed_kmh,
                               feed);
    int moved = index_score(p->lon, p->lat) != index_score(v->lon, v->lat);
    v->lon = p->lon;
    v->lat = p->lat;
    v->ts_ms = p->ts_ms;
    if (!isnan(p->speed_kmh)) v->speed_kmh = p->speed_kmh;
    if (!isnan(p->heading)) v->heading_cdeg = encode16(p->heading, 100.0);
    v->group = (uint16_t)group;
    v->status = (uint8_t)status;
    if (moved) index_position(f, v);
    if (recount) count_in(f, cell, group, status, 1);
}

/* Whether ping p is part of a burst (see fl_fleet_update). */
static int in_burst(const fl_vehicle *v, const fl_ping *p)
{
    if (p->ts_kind == FL_TS_BURST) return p->ts_ms >= v->ts_ms;
    if (p->ts_kind != FL_TS_ARRIVAL) return 0;
    return p->ts_ms <= v->ts_ms ? v->ts_ms - p->ts_ms < FL_SERVER_TS_SLACK_MS
                                : p->ts_ms - v->ts_ms < FL_BURST_MS;
}

int fl_fleet_update(fl_fleet *f, const char *id, size_t len,
                    fl_ping *p, int64_t now_ms, int *outcome)
{
    int rc = ping_valid(f, len, p, now_ms);
    if (rc != 0) return rc;
    fl_vehicle *v = fl_ptrmap_get(&f->vehicles, id, len);
    p->burst = v && in_burst(v, p);
    /* Stale pings name no new fleet: the name is only looked up (and
     * created) for pings that will be applied. */
    if (v && p->ts_ms <= v->ts_ms && !p->burst) {
        f->stats.pings_stale++;
        *outcome = FL_PING_STALE;
        return 0;
    }
    int group = group_no(f, p->fleet, p->fleet_len);
    if (group < 0) return -ENOSPC;
    if (p->burst) {
        if (p->ts_ms < v->ts_ms) p->ts_ms = v->ts_ms;
        f->stats.pings_applied++;
        *outcome = FL_PING_APPLIED;
        vehicle_apply(f, v, p, group, FL_FEED_UNTIMED);
        return 0;
    }
    if (!v) {
        vehicle_create(f, id, len, p, group);
        f->stats.pings_applied++;
        *outcome = FL_PING_APPLIED;
        return 0;
    }
    *outcome = judge_ping(f, v, p);
    switch (*outcome) {
    case FL_PING_IMPLAUSIBLE: f->stats.pings_implausible++; return 0;
    case FL_PING_RELOCATED: f->stats.pings_relocated++; break;
    default: f->stats.pings_applied++; break;
    }
    vehicle_apply(f, v, p, group,
                  *outcome == FL_PING_RELOCATED ? FL_FEED_RELOCATED : FL_FEED_TIMED);
    return 0;
}

const fl_vehicle *fl_fleet_vehicle(const fl_fleet *f, const char *id,
                                   size_t len)
{
    return fl_ptrmap_get(&f->vehicles, id, len);
}

int fl_fleet_delete(fl_fleet *f, const char *id, size_t len)
{
    fl_vehicle *v = fl_ptrmap_get(&f->vehicles, id, len);
    if (!v) return 0;
    if (v->trip) {
        const fl_trip *t;
        if (fl_fleet_trip_end(f, id, len, v->ts_ms, FL_TRIP_VEHICLE_DELETED, &t) != 0)
            abort();
    }
    count_vehicle(f, v, -1);
    (void)fl_geoset_remove(f->where, id, len);
    (void)fl_ptrmap_del(&f->vehicles, id, len);
    f->stats.vehicles--;
    free(v);
    return 1;
}

/* ---- searches ---- */

void fl_fleet_hits_free(fl_fleet_hits *h)
{
    free(h->v);
    fl_geo_result_free(&h->scratch);
    memset(h, 0, sizeof(*h));
}

static void hits_push(fl_fleet_hits *h, const fl_vehicle *v, double d)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = fl_xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    h->v[h->n].v = v;
    h->v[h->n].dist_m = d;
    h->n++;
}

typedef struct query_filter {
    int status;
    int group;                  /* 0: any */
    int no_match;               /* the fleet named does not exist */
} query_filter;

static query_filter make_filter(const fl_fleet *f, const fl_fleet_query *q)
{
    query_filter qf = {q->status, 0, 0};
    if (q->fleet) {
        const fl_fleet_group *g = fl_ptrmap_get(&f->groups, q->fleet, q->fleet_len);
        qf.group = g ? g->no : 0;
        qf.no_match = g == NULL;
    }
    return qf;
}

static int filter_pass(const query_filter *qf, const fl_vehicle *v)
{
    return (qf->status < 0 || v->status == qf->status) &&
           (!qf->group || v->group == qf->group);
}

static int hit_cmp(const void *a, const void *b)
{
    const fl_fleet_hit *x = a, *y = b;
    if (x->dist_m != y->dist_m) return x->dist_m < y->dist_m ? -1 : 1;
    size_t n = x->v->id_len < y->v->id_len ? x->v->id_len : y->v->id_len;
    int c = memcmp(x->v->id, y->v->id, n);
    return c ? c : (int)x->v->id_len - (int)y->v->id_len;
}

/* One round of NEARBY asking the index for at most `want` candidates
 * (0: all). Returns the number of candidates the index gave; *farthest is
 * the largest exact distance among them, filtered out or not. */
static long long near_round(const fl_fleet *f, const fl_fleet_query *q,
                            const query_filter *qf, long long want,
                            fl_fleet_hits *out, double *farthest)
{
    fl_geo_query gq = {0};
    gq.shape.type = FL_GEO_CIRCLE;
    gq.shape.lon = q->lon;
    gq.shape.lat = q->lat;
    gq.shape.radius = q->radius_m * FL_RADIUS_WIDEN + 1.0;
    gq.shape.conversion = 1;
    gq.count = want;
    gq.sort = want ? FL_GEO_SORT_ASC : FL_GEO_SORT_NONE;
    if (fl_geoset_search(f->where, &gq, &out->scratch) != 0) abort();
    out->n = 0;
    *farthest = 0;
    for (size_t i = 0; i < out->scratch.n; i++) {
        const fl_zmember *m = out->scratch.v[i].m;
        const fl_vehicle *v = fl_ptrmap_get(&f->vehicles, m->name, m->len);
        if (!v) continue;
        double d = fl_fleet_distance_m(q->lon, q->lat, v->lon, v->lat);
        if (d > *farthest) *farthest = d;
        if (filter_pass(qf, v) && d <= q->radius_m) hits_push(out, v, d);
    }
    return (long long)out->scratch.n;
}

static int search_box(const fl_fleet *f, const fl_fleet_query *q,
                      const query_filter *qf, fl_fleet_hits *out);

/* The circle's bounding box in degrees; returns 1 when it crosses the
 * antimeridian or reaches a pole, where the geohash cells around the
 * centre do not wrap and the circle is searched as boxes instead. */
static int near_box(const fl_fleet_query *q, double b[4])
{
    const double deg = M_PI / 180.0;
    double dlat = q->radius_m / (FL_MEAN_EARTH_RADIUS_M * deg) * 1.001 + 1e-6;
    double far_lat = fabs(q->lat) + dlat;
    double dlon = far_lat >= 89.0 ? 360.0 : dlat / cos(far_lat * deg);
    b[1] = fmax(q->lat - dlat, FL_GEO_LAT_MIN);
    b[3] = fmin(q->lat + dlat, FL_GEO_LAT_MAX);
    if (dlon >= 180.0) {
        b[0] = -180.0;
        b[2] = 180.0;
        return 1;
    }
    b[0] = q->lon - dlon;
    b[2] = q->lon + dlon;
    if (b[0] >= -180.0 && b[2] < 180.0) return 0;
    if (b[0] < -180.0) b[0] += 360.0;
    if (b[2] >= 180.0) b[2] -= 360.0;
    return 1;
}

/* NEARBY by boxes: every candidate of the bounding box, measured. */
static void near_by_box(const fl_fleet *f, const fl_fleet_query *q,
                        const query_filter *qf, const double b[4],
                        fl_fleet_hits *out)
{
    fl_fleet_query bq = *q;
    bq.is_box = 1;
    bq.count = 0;
    memcpy(bq.box, b, sizeof(bq.box));
    if (search_box(f, &bq, qf, out) != 0) out->n = 0;
    size_t kept = 0;
    for (size_t i = 0; i < out->n; i++) {
        const fl_vehicle *v = out->v[i].v;
        double d = fl_fleet_distance_m(q->lon, q->lat, v->lon, v->lat);
        if (d > q->radius_m) continue;
        out->v[kept].v = v;
        out->v[kept++].dist_m = d;
    }
    out->n = kept;
}

static int search_near(const fl_fleet *f, const fl_fleet_query *q,
                       const query_filter *qf, fl_fleet_hits *out)
{
    if (!fl_geo_coords_valid(q->lon, q->lat) || !(q->radius_m >= 0) ||
        !isfinite(q->radius_m))
        return -EINVAL;
    double b[4];
    if (near_box(q, b)) {
        near_by_box(f, q, qf, b, out);
        if (out->n > 1) qsort(out->v, out->n, sizeof(*out->v), hit_cmp);
        if (q->count && (long long)out->n > q->count) out->n = (size_t)q->count;
        return 0;
    }
    int filtered = q->status >= 0 || q->fleet;
    /* A little slack even unfiltered: the index ranks on geohash
     * positions, the reply on exact ones. */
    long long want = q->count ? (filtered ? q->count * 2 + 16 : q->count + 8) : 0;
    for (;;) {
        double farthest;
        long long got = near_round(f, q, qf, want, out, &farthest);
        if (!want || got < want) break;
        if ((long long)out->n >= q->count) {
            /* Decided when every vehicle the index left out is farther
             * than the count-th hit: then ties at that distance are all
             * here and the id order among them is the true one (20 cabs
             * at one taxi-stand centroid would otherwise come out as the
             * index's arbitrary subset of them). */
            qsort(out->v, out->n, sizeof(*out->v), hit_cmp);
            if (out->v[q->count - 1].dist_m < farthest - FL_RANK_SLACK_M) break;
        }
        want = want > (1LL << 40) ? 0 : want * 4;
    }
    if (out->n > 1) qsort(out->v, out->n, sizeof(*out->v), hit_cmp);
    if (q->count && (long long)out->n > q->count) out->n = (size_t)q->count;
    return 0;
}

/* Boxes too large for a geohash box search are answered by a scan. */
static void box_scan(const fl_fleet *f, const double b[4],
                     const query_filter *qf, long long count,
                     fl_fleet_hits *out)
{
    for (size_t i = 0; i < fl_ptrmap_slots(&f->vehicles); i++) {
        const fl_vehicle *v = fl_ptrmap_at(&f->vehicles, i);
        if (!v || !filter_pass(qf, v) || !fl_geo_box_contains(b, v->lon, v->lat)) continue;
        hits_push(out, v, 0);
        if (count && (long long)out->n >= count) return;
    }
}

static void box_part(const fl_fleet *f, const double b[4],
                     const query_filter *qf, long long count,
                     fl_fleet_hits *out)
{
    const double rad = M_PI / 180.0, R = FL_GEO_EARTH_RADIUS_M;
    if (b[2] - b[0] > 120 || b[3] - b[1] > 60) {
        box_scan(f, b, qf, count, out);
        return;
    }
    double min_abs = b[1] <= 0 && b[3] >= 0 ? 0
                   : fmin(fabs(b[1]), fabs(b[3]));
    fl_geo_query gq = {0};
    gq.shape.type = FL_GEO_BOX;
    gq.shape.lon = (b[0] + b[2]) / 2;
    gq.shape.lat = (b[1] + b[3]) / 2;
    gq.shape.width = (b[2] - b[0]) * rad * R * cos(min_abs * rad) + 2.0;
    gq.shape.height = (b[3] - b[1]) * rad * R + 2.0;
    gq.shape.conversion = 1;
    if (fl_geoset_search(f->where, &gq, &out->scratch) != 0) abort();
    for (size_t i = 0; i < out->scratch.n; i++) {
        const fl_zmember *m = out->scratch.v[i].m;
        const fl_vehicle *v = fl_ptrmap_get(&f->vehicles, m->name, m->len);
        if (!v || !filter_pass(qf, v) || !fl_geo_box_contains(b, v->lon, v->lat)) continue;
        hits_push(out, v, 0);
        if (count && (long long)out->n >= count) return;
    }
}

static int search_box(const fl_fleet *f, const fl_fleet_query *q,
                      const query_filter *qf, fl_fleet_hits *out)
{
    const double *b = q->box;
    for (int i = 0; i < 4; i++)
        if (!isfinite(b[i])) return -EINVAL;
    if (!fl_geo_coords_valid(b[0], b[1]) || !fl_geo_coords_valid(b[2], b[3]) ||
        b[1] > b[3])
        return -EINVAL;
    if (b[0] <= b[2]) {
        box_part(f, b, qf, q->count, out);
        return 0;
    }
    double east[4] = {b[0], b[1], 180.0, b[3]};
    double west[4] = {-180.0, b[1], b[2], b[3]};
    box_part(f, east, qf, q->count, out);
    if (!q->count || (long long)out->n < q->count)
        box_part(f, west, qf, q->count, out);
    return 0;
}

int fl_fleet_search(const fl_fleet *f, const fl_fleet_query *q,
                    fl_fleet_hits *out)
{
    out->n = 0;
    if (q->count < 0) return -EINVAL;
    fl_fleet_query capped;
    if (q->count > (1LL << 40)) { /* more than any fleet; keeps the math in range */
        capped = *q;
        capped.count = 1LL << 40;
        q = &capped;
    }
    query_filter qf = make_filter(f, q);
    if (qf.no_match) return 0;
    return q->is_box ? search_box(f, q, &qf, out) : search_near(f, q, &qf, out);
}

/* ---- walking and restoring ---- */

void fl_fleet_prefetch(const fl_fleet *f, const char *vid, size_t vlen,
                       const char *tid, size_t tlen)
{
    fl_ptrmap_prefetch(&f->vehicles, vid, vlen);
    fl_geoset_prefetch(f->where, vid, vlen);
    if (tid) fl_ptrmap_prefetch(&f->trips, tid, tlen);
}

void fl_fleet_reserve(fl_fleet *f, uint64_t vehicles, uint64_t trips)
{
    /* Best effort: a failed reservation only means rehashing later. */
    (void)fl_ptrmap_reserve(&f->vehicles, (size_t)vehicles);
    (void)fl_ptrmap_reserve(&f->trips, (size_t)trips);
    (void)fl_geoset_reserve(f->where, (size_t)vehicles);
}

typedef struct each_plain {
    int (*fn)(void *ud, const fl_vehicle *v);
    void *ud;
} each_plain;

static int each_plain_fn(void *ud, const fl_vehicle *v, uint64_t key)
{
    (void)key;
    const each_plain *e = ud;
    return e->fn(e->ud, v);
}

int fl_fleet_each_vehicle(const fl_fleet *f,
                          int (*fn)(void *ud, const fl_vehicle *v), void *ud)
{
    each_plain e = {fn, ud};
    return fl_fleet_each_vehicle_after(f, 0, NULL, 0, each_plain_fn, &e);
}

uint64_t fl_fleet_vehicle_key(const fl_fleet *f, const fl_vehicle *v)
{
    const fl_zmember *m = fl_geoset_find(f->where, v->id, v->id_len);
    return m ? m->score : 0;
}

int fl_fleet_each_vehicle_after(const fl_fleet *f, uint64_t key,
                                const char *id, size_t len,
                                int (*fn)(void *ud, const fl_vehicle *v,
                                          uint64_t key),
                                void *ud)
{
    fl_zit it;
    enum { BATCH = 16 };
    uint64_t score[BATCH];
    fl_zmember *m[BATCH];
    if (id) fl_zindex_seek_score(fl_geoset_index(f->where), key, &it);
    else fl_zindex_seek_rank(fl_geoset_index(f->where), 0, &it);
    /* Index order is place order, and vehicles are scattered in memory:
     * prefetch a batch's hash slots before reading any of them (a whole
     * list of 100,000 took twice as long without). */
    for (;;) {
        int n = 0;
        while (n < BATCH && fl_zit_next(&it, &score[n], &m[n])) {
            if (id && fl_zmember_cmp(score[n], m[n]->name, m[n]->len, key, id, len) <= 0)
                continue;
            fl_ptrmap_prefetch(&f->vehicles, m[n]->name, m[n]->len);
            n++;
        }
        for (int i = 0; i < n; i++) {
            const fl_vehicle *v = fl_ptrmap_get(&f->vehicles, m[i]->name, m[i]->len);
            int rc = v ? fn(ud, v, score[i]) : 0;
            if (rc) return rc;
        }
        if (n < BATCH) return 0;
    }
}

int fl_fleet_restore_vehicle(fl_fleet *f, const char *id, size_t len,
                             const fl_vehicle_state *src, const char *fleet,
                             size_t fleet_len, const fl_trip *trip)
{
    fl_ping p = {src->lon, src->lat, src->ts_ms, src->speed_kmh, src->heading,
                 fleet, fleet_len, src->status, FL_TS_GIVEN, 0};
    if (len == 0 || len > FL_FLEET_ID_MAX || src->status >= FL_VS_COUNT ||
        !isfinite(src->lon) || !isfinite(src->lat) ||
        !fl_geo_coords_valid(src->lon, src->lat) || src->ts_ms <= 0 ||
        (!isnan(src->speed_kmh) && !(src->speed_kmh >= 0 && src->speed_kmh <= FL_SPEED_MAX_KMH)) ||
        (!isnan(src->heading) && !(src->heading >= 0 && src->heading <= 360)) ||
        (fleet && (fleet_len == 0 || fleet_len > FL_FLEET_ID_MAX)))
        return -EINVAL;
    if (trip && (trip->id_len == 0 || trip->start_ms <= 0 ||
                 trip->end_reason != FL_TRIP_RUNNING ||
                 !(trip->distance_m >= 0) || !(trip->max_speed_kmh >= 0)))
        return -EINVAL;
    int group = group_no(f, fleet, fleet_len);
    if (group < 0) return -ENOSPC;
    fl_vehicle *v = vehicle_create(f, id, len, &p, group);
    if (!v) return -EEXIST;
    v->flagged = (uint16_t)(src->flagged < UINT16_MAX ? src->flagged : UINT16_MAX);
    v->suspect = src->suspect < FL_RELOCATE_AFTER ? src->suspect : 0;
    if (!trip) return 0;
    const fl_trip *t;
    int rc = fl__trip_begin(f, v, trip->id, trip->id_len, trip->start_ms, 0, &t);
    if (rc != 0) return rc;
    /* fl_fleet_trip_start began a path at the vehicle's position; the
     * restored trip brings its own, and its metrics. */
    fl__trip_copy(f, (fl_trip *)t, trip);
    return 0;
}
