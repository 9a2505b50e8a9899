/*
 * trip.c - trips: start, feed from pings, end, idle close, the finished
 * trips kept by id and by vehicle, and the encoded-polyline path.
 *
 * A running trip is in the running list (oldest last ping first), so the
 * idle sweep looks only at its head. A finished trip moves to the finished
 * FIFO (retention drops from its head) and to its vehicle's history list,
 * newest first, which answers "trips of vehicle X between T1 and T2".
 */
#include "fleet_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../geo/geohash.h"
#include "../util/buf.h"

/* ---- the path ---- */

/* Writes one polyline value (at most 7 characters); returns its length. */
static uint32_t path_put_value(char *out, int32_t v)
{
    int64_t s = (int64_t)v * 2;
    uint64_t u = (uint64_t)(v < 0 ? ~s : s);
    uint32_t n = 0;
    while (u >= 0x20) {
        out[n++] = (char)((0x20 | (u & 0x1f)) + 63);
        u >>= 5;
    }
    out[n++] = (char)(u + 63);
    return n;
}

int fl_path_append(fl_path *p, double lon, double lat)
{
    int32_t la = (int32_t)lround(lat * 1e5), lo = (int32_t)lround(lon * 1e5);
    int32_t dla = p->points ? la - p->last_lat_e5 : la;
    int32_t dlo = p->points ? lo - p->last_lon_e5 : lo;
    char tmp[16];
    uint32_t n = path_put_value(tmp, dla);
    n += path_put_value(tmp + n, dlo);
    /* Exact growth: glibc's realloc stays in place while the chunk has
     * room, so this costs a copy only when the size class changes. */
    p->enc = fl_xrealloc(p->enc, p->len + n);
    memcpy(p->enc + p->len, tmp, n);
    p->len += n;
    p->last_lat_e5 = la;
    p->last_lon_e5 = lo;
    p->points++;
    return 0;
}

/* Reads one value; returns bytes used, 0 when the input ends early. */
static size_t path_get_value(const char *s, size_t n, int64_t *out)
{
    uint64_t u = 0;
    for (size_t i = 0; i < n && i < 7; i++) {
        int c = (unsigned char)s[i] - 63;
        if (c < 0 || c > 63) return 0;
        u |= (uint64_t)(c & 0x1f) << (5 * i);
        if (!(c & 0x20)) {
            *out = (u & 1) ? ~(int64_t)(u >> 1) : (int64_t)(u >> 1);
            return i + 1;
        }
    }
    return 0;
}

size_t fl_path_decode(const char *enc, size_t len, double *xy, size_t max)
{
    size_t off = 0, n = 0;
    int64_t la = 0, lo = 0;
    while (off < len && n < max) {
        int64_t dla, dlo;
        size_t a = path_get_value(enc + off, len - off, &dla);
        if (!a) break;
        size_t b = path_get_value(enc + off + a, len - off - a, &dlo);
        if (!b) break;
        off += a + b;
        la += dla;
        lo += dlo;
        xy[2 * n] = (double)lo / 1e5;
        xy[2 * n + 1] = (double)la / 1e5;
        n++;
    }
    return n;
}

/* ---- lists ---- */

static void list_unlink(fl_trip **oldest, fl_trip **newest, fl_trip *t)
{
    if (t->lprev) t->lprev->lnext = t->lnext;
    else *oldest = t->lnext;
    if (t->lnext) t->lnext->lprev = t->lprev;
    else *newest = t->lprev;
    t->lprev = t->lnext = NULL;
}

static void list_push(fl_trip **oldest, fl_trip **newest, fl_trip *t)
{
    t->lnext = NULL;
    t->lprev = *newest;
    if (*newest) (*newest)->lnext = t;
    else *oldest = t;
    *newest = t;
}

void fl__trip_touch(fl_fleet *f, fl_trip *t)
{
    if (f->run_newest == t) return;
    list_unlink(&f->run_oldest, &f->run_newest, t);
    list_push(&f->run_oldest, &f->run_newest, t);
}

/* ---- ids ---- */

/* Keeps generated ids ahead of any "t<number>" id seen. */
static void note_trip_id(fl_fleet *f, const char *id, size_t len)
{
    if (len < 2 || len > 20 || id[0] != 't') return;
    uint64_t n = 0;
    for (size_t i = 1; i < len; i++) {
        if (id[i] < '0' || id[i] > '9') return;
        n = n * 10 + (uint64_t)(id[i] - '0');
    }
    if (n >= f->trip_seq) f->trip_seq = n + 1;
}

static size_t trip_size(size_t id_len)
{
    return offsetof(fl_trip, id) + id_len;
}

/* A new trip filed under its id, or NULL when the id is taken. */
static fl_trip *trip_alloc(fl_fleet *f, const char *id, size_t len)
{
    fl_trip *t = fl_xcalloc(1, trip_size(len));
    t->id_len = (uint8_t)len;
    memcpy(t->id, id, len);
    int rc = fl_ptrmap_insert(&f->trips, t);
    if (rc == -EEXIST) {
        free(t);
        return NULL;
    }
    if (rc != 0) abort();
    note_trip_id(f, id, len);
    f->trip_bytes += trip_size(len);
    return t;
}

/* The anchor (last counted point) is kept in 1e-7 degrees (1 cm). */
static void set_anchor(fl_trip *t, double lon, double lat)
{
    t->anchor_lon_e7 = (int32_t)lround(lon * 1e7);
    t->anchor_lat_e7 = (int32_t)lround(lat * 1e7);
}

static void append_point(fl_fleet *f, fl_trip *t, double lon, double lat)
{
    uint32_t before = t->path.len;
    (void)fl_path_append(&t->path, lon, lat);
    f->trip_bytes += t->path.len - before;
}

static size_t generate_id(fl_fleet *f, char out[32])
{
    for (;;) {
        int n = snprintf(out, 32, "t%llu", (unsigned long long)f->trip_seq++);
        if (!fl_ptrmap_get(&f->trips, out, (size_t)n)) return (size_t)n;
    }
}

/* ---- start, feed, end ---- */

int fl_fleet_trip_start(fl_fleet *f, const char *vid, size_t vlen,
                        const char *tid, size_t tlen, int64_t ts_ms,
                        int64_t now_ms, const fl_trip **out)
{
    fl_vehicle *v = fl_ptrmap_get(&f->vehicles, vid, vlen);
    if (!v) return -ENOENT;
    if (v->trip) return -EEXIST;
    if (tid && (tlen == 0 || tlen > FL_FLEET_ID_MAX)) return -EINVAL;
    if (ts_ms <= 0 || (ts_ms > now_ms && ts_ms - now_ms > f->cfg.max_future_ms))
        return -ERANGE;
    int rc = fl__trip_begin(f, v, tid, tlen, ts_ms, 1, out);
    if (rc == 0) fl__demand_note(f, ts_ms, v->lon, v->lat);
    return rc;
}

int fl__trip_begin(fl_fleet *f, fl_vehicle *v, const char *tid, size_t tlen,
                   int64_t ts_ms, int with_point, const fl_trip **out)
{
    char gen[32];
    if (!tid) {
        tlen = generate_id(f, gen);
        tid = gen;
    }
    fl_trip *t = trip_alloc(f, tid, tlen);
    if (!t) return -EADDRINUSE;
    t->vehicle = v;
    t->start_ms = ts_ms;
    t->last_ms = v->ts_ms > ts_ms ? v->ts_ms : ts_ms;
    t->last_move_ms = t->idle_to_ms = t->last_ms;
    set_anchor(t, v->lon, v->lat);
    if (with_point) append_point(f, t, v->lon, v->lat);
    v->trip = t;
    list_push(&f->run_oldest, &f->run_newest, t);
    f->stats.trips_running++;
    *out = t;
    return 0;
}

/* Counts [from, to) as idle, never counting any instant twice. */
static void add_idle(fl_trip *t, int64_t from, int64_t to)
{
    if (from < t->idle_to_ms) from = t->idle_to_ms;
    if (to <= from) return;
    t->idle_ms += to - from;
    t->idle_to_ms = to;
}

void fl__trip_feed(fl_fleet *f, fl_vehicle *v, double lon, double lat,
                   int64_t ts_ms, float speed_kmh, int feed)
{
    fl_trip *t = v->trip;
    int64_t prev = t->last_ms;
    int64_t dt = ts_ms > prev ? ts_ms - prev : 0;
    t->pings++;
    t->last_ms = ts_ms > t->last_ms ? ts_ms : t->last_ms;
    fl__trip_touch(f, t);
    if (feed == FL_FEED_RELOCATED) {
        set_anchor(t, lon, lat);
        return;
    }
    double d = fl_fleet_distance_m(t->anchor_lon_e7 / 1e7, t->anchor_lat_e7 / 1e7,
                                   lon, lat);
    int moved = d >= f->cfg.jitter_m;
    if (moved) {
        t->distance_m += d;
        set_anchor(t, lon, lat);
        if (t->path.points < f->cfg.trip_max_points) append_point(f, t, lon, lat);
        else t->truncated = 1;
    }
    double kmh = speed_kmh;
    if (isnan(speed_kmh)) {
        double step = fl_fleet_distance_m(v->lon, v->lat, lon, lat);
        kmh = feed == FL_FEED_TIMED && dt > 0 && step >= f->cfg.jitter_m
                  ? step / (double)dt * 3600.0 : 0;
    }
    if (moved) t->last_move_ms = ts_ms;
    if (!isnan(speed_kmh)) {
        if (speed_kmh < f->cfg.idle_speed_kmh) add_idle(t, prev, ts_ms);
    } else if (!moved && ts_ms - t->last_move_ms >= FL_IDLE_WINDOW_MS) {
        add_idle(t, t->last_move_ms, ts_ms);
    }
    if (kmh > t->max_speed_kmh) t->max_speed_kmh = (float)kmh;
}

static fl_trip_history *history_of(fl_fleet *f, const char *vid, size_t vlen)
{
    fl_trip_history *h = fl_ptrmap_get(&f->histories, vid, vlen);
    if (h) return h;
    h = fl_xcalloc(1, sizeof(*h) + vlen);
    h->vid_len = (uint8_t)vlen;
    memcpy(h->vid, vid, vlen);
    if (fl_ptrmap_put(&f->histories, h) != 0) abort();
    return h;
}

static void history_push(fl_trip_history *h, fl_trip *t)
{
    t->hist = h;
    t->vnewer = NULL;
    t->volder = h->newest;
    if (h->newest) h->newest->vnewer = t;
    else h->oldest = t;
    h->newest = t;
}

static void free_trip(fl_fleet *f, fl_trip *t)
{
    f->trip_bytes -= trip_size(t->id_len) + t->path.len;
    free(t->path.enc);
    free(t);
}

/* Forgets the oldest finished trip (retention). */
static void drop_oldest_finished(fl_fleet *f)
{
    fl_trip *t = f->fin_oldest;
    fl_trip_history *h = t->hist;
    list_unlink(&f->fin_oldest, &f->fin_newest, t);
    if (t->vnewer) t->vnewer->volder = t->volder;
    else h->newest = t->volder;
    if (t->volder) t->volder->vnewer = t->vnewer;
    else h->oldest = t->vnewer;
    (void)fl_ptrmap_del(&f->trips, t->id, t->id_len);
    f->stats.trips_finished--;
    free_trip(f, t);
    if (h->newest) return;
    (void)fl_ptrmap_del(&f->histories, h->vid, h->vid_len);
    free(h);
}

/* Files a trip that just ended: history, FIFO, retention. */
static void file_finished(fl_fleet *f, fl_trip *t, const char *vid,
                          size_t vlen)
{
    history_push(history_of(f, vid, vlen), t);
    list_push(&f->fin_oldest, &f->fin_newest, t);
    f->stats.trips_finished++;
    while (f->stats.trips_finished > f->cfg.trip_history_max &&
           f->fin_oldest != t)
        drop_oldest_finished(f);
}

int fl_fleet_trip_end(fl_fleet *f, const char *vid, size_t vlen,
                      int64_t ts_ms, int reason, const fl_trip **out)
{
    fl_vehicle *v = fl_ptrmap_get(&f->vehicles, vid, vlen);
    if (!v) return -ENOENT;
    fl_trip *t = v->trip;
    if (!t) return -ESRCH;
    list_unlink(&f->run_oldest, &f->run_newest, t);
    f->stats.trips_running--;
    if (reason == FL_TRIP_IDLE) f->stats.trips_closed_idle++;
    v->trip = NULL;
    t->end_ms = ts_ms > t->last_ms ? ts_ms : t->last_ms;
    t->end_reason = (uint8_t)(reason > FL_TRIP_RUNNING ? reason : FL_TRIP_ENDED);
    t->last_move_ms = t->idle_to_ms = 0; /* the storage becomes vnewer/volder */
    file_finished(f, t, vid, vlen);
    *out = t;
    return 0;
}

/* ---- queries ---- */

const fl_trip *fl_fleet_trip(const fl_fleet *f, const char *tid, size_t tlen)
{
    return fl_ptrmap_get(&f->trips, tid, tlen);
}

const char *fl_trip_vehicle(const fl_trip *t, size_t *len)
{
    if (t->end_reason == FL_TRIP_RUNNING) {
        *len = t->vehicle->id_len;
        return t->vehicle->id;
    }
    *len = t->hist->vid_len;
    return t->hist->vid;
}

const fl_trip *fl_fleet_trips_of(const fl_fleet *f, const char *vid,
                                 size_t vlen)
{
    const fl_trip_history *h = fl_ptrmap_get(&f->histories, vid, vlen);
    return h ? h->newest : NULL;
}

const fl_trip *fl_fleet_idle_trip(const fl_fleet *f, int64_t now_ms)
{
    const fl_trip *t = f->run_oldest;
    if (!t || f->cfg.trip_idle_ms <= 0) return NULL;
    return now_ms - t->last_ms >= f->cfg.trip_idle_ms ? t : NULL;
}

uint64_t fl_fleet_trip_seq(const fl_fleet *f)
{
    return f->trip_seq;
}

void fl_fleet_set_trip_seq(fl_fleet *f, uint64_t seq)
{
    if (seq > f->trip_seq) f->trip_seq = seq;
}

const char *fl_trip_end_name(int reason)
{
    static const char *const names[] = {"running", "ended", "idle",
                                        "vehicle-deleted"};
    return reason >= 0 && reason <= FL_TRIP_VEHICLE_DELETED ? names[reason] : "?";
}

int fl_fleet_each_finished(const fl_fleet *f,
                           int (*fn)(void *ud, const fl_trip *t), void *ud)
{
    for (const fl_trip *t = f->fin_oldest; t; t = t->lnext) {
        int rc = fn(ud, t);
        if (rc) return rc;
    }
    return 0;
}

void fl__trip_copy(fl_fleet *f, fl_trip *dst, const fl_trip *src)
{
    f->trip_bytes -= dst->path.len;
    free(dst->path.enc);
    dst->path = src->path;
    dst->path.enc = NULL;
    if (src->path.len) {
        dst->path.enc = fl_xmalloc(src->path.len);
        memcpy(dst->path.enc, src->path.enc, src->path.len);
    }
    f->trip_bytes += dst->path.len;
    double first[2];
    /* A restored trip's path starts where it started: demand survives a
     * restart as far as the kept trips reach. */
    if (fl_path_decode(dst->path.enc, dst->path.len, first, 1) == 1 &&
        fl_geo_coords_valid(first[0], first[1]))
        fl__demand_note(f, src->start_ms, first[0], first[1]);
    dst->start_ms = src->start_ms;
    dst->last_ms = src->last_ms;
    dst->end_ms = src->end_ms;
    dst->distance_m = src->distance_m;
    dst->idle_ms = src->idle_ms;
    if (src->end_reason == FL_TRIP_RUNNING) {
        dst->last_move_ms = src->last_move_ms;
        dst->idle_to_ms = src->idle_to_ms;
    }
    dst->anchor_lon_e7 = src->anchor_lon_e7;
    dst->anchor_lat_e7 = src->anchor_lat_e7;
    dst->max_speed_kmh = src->max_speed_kmh;
    dst->pings = src->pings;
    dst->flagged = src->flagged;
    dst->truncated = src->truncated;
}

int fl_fleet_restore_trip(fl_fleet *f, const char *vid, size_t vlen,
                          const fl_trip *src)
{
    if (vlen == 0 || vlen > FL_FLEET_ID_MAX || src->id_len == 0 ||
        src->start_ms <= 0 || !(src->distance_m >= 0) ||
        !(src->max_speed_kmh >= 0) || src->end_ms < src->start_ms ||
        src->end_reason == FL_TRIP_RUNNING ||
        src->end_reason > FL_TRIP_VEHICLE_DELETED)
        return -EINVAL;
    fl_trip *t = trip_alloc(f, src->id, src->id_len);
    if (!t) return -EEXIST;
    fl__trip_copy(f, t, src);
    t->end_reason = src->end_reason;
    file_finished(f, t, vid, vlen);
    return 0;
}

void fl__trips_free_all(fl_fleet *f)
{
    for (size_t i = 0; i < fl_ptrmap_slots(&f->trips); i++)
        if (fl_ptrmap_at(&f->trips, i)) free_trip(f, fl_ptrmap_at(&f->trips, i));
    for (size_t i = 0; i < fl_ptrmap_slots(&f->histories); i++)
        free(fl_ptrmap_at(&f->histories, i));
    f->run_oldest = f->run_newest = NULL;
    f->fin_oldest = f->fin_newest = NULL;
    f->trip_bytes = 0;
}
