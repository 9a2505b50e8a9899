/*
 * snapshot.c - state records out (fl_snapshot_write, run in the snapshot
 * child) and records of either kind back in (fl_store_apply, run while
 * loading). See snapshot.h for the record layouts.
 *
 * Decoding is strict: every field is bounds-checked by the log reader, a
 * record must be consumed exactly, and the domain's restore functions
 * re-validate coordinates and ids, so a record that passed its checksum
 * but is inconsistent is refused rather than half-applied.
 */
#include "snapshot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "../db/db.h"
#include "../fleet/fleet.h"
#include "../geo/geoset.h"

#define GEO_CHUNK 8192  /* members per 'G' record: well under the 64 MiB cap */

typedef struct writer {
    const fl_fleet *fleet;
    fl_buf rec;
    uint64_t records;
    int (*emit)(void *ud, const void *payload, size_t len);
    void *ud;
    int rc;
} writer;

static int flush_record(writer *w)
{
    if (w->rc == 0) w->rc = w->emit(w->ud, w->rec.data, w->rec.len);
    w->rec.len = 0;
    w->records++;
    return w->rc;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float bits_float(uint64_t u64)
{
    uint32_t u = (uint32_t)u64;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t u)
{
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* ---- writing ---- */

static void put_trip(fl_buf *b, const fl_trip *t)
{
    fl_log_put_bytes(b, t->id, t->id_len);
    fl_log_put_varint(b, (uint64_t)t->start_ms);
    fl_log_put_varint(b, (uint64_t)t->last_ms);
    fl_log_put_varint(b, (uint64_t)t->end_ms);
    fl_log_put_double(b, t->distance_m);
    fl_log_put_varint(b, (uint64_t)t->idle_ms);
    int running = t->end_reason == FL_TRIP_RUNNING;
    fl_log_put_varint(b, running ? (uint64_t)t->last_move_ms : 0);
    fl_log_put_varint(b, running ? (uint64_t)t->idle_to_ms : 0);
    fl_log_put_varint(b, zigzag(t->anchor_lon_e7));
    fl_log_put_varint(b, zigzag(t->anchor_lat_e7));
    fl_log_put_varint(b, float_bits(t->max_speed_kmh));
    fl_log_put_varint(b, t->pings);
    fl_log_put_varint(b, t->flagged);
    fl_log_put_u8(b, t->end_reason);
    fl_log_put_u8(b, t->truncated);
    fl_log_put_bytes(b, t->path.enc, t->path.len);
    fl_log_put_varint(b, zigzag(t->path.last_lat_e5));
    fl_log_put_varint(b, zigzag(t->path.last_lon_e5));
    fl_log_put_varint(b, t->path.points);
}

static int write_vehicle(void *ud, const fl_vehicle *v)
{
    writer *w = ud;
    fl_buf *b = &w->rec;
    size_t flen;
    const char *fleet = fl_vehicle_fleet(w->fleet, v, &flen);
    fl_log_put_u8(b, 'V');
    fl_log_put_bytes(b, v->id, v->id_len);
    fl_log_put_double(b, v->lon);
    fl_log_put_double(b, v->lat);
    fl_log_put_varint(b, (uint64_t)v->ts_ms);
    fl_log_put_varint(b, float_bits(fl_vehicle_speed(v)));
    fl_log_put_varint(b, float_bits(fl_vehicle_heading(v)));
    fl_log_put_bytes(b, fleet ? fleet : "", flen);
    fl_log_put_u8(b, v->status);
    fl_log_put_varint(b, v->flagged);
    fl_log_put_u8(b, v->suspect);
    fl_log_put_u8(b, v->trip != NULL);
    if (v->trip) put_trip(b, v->trip);
    return flush_record(w);
}

static int write_trip(void *ud, const fl_trip *t)
{
    writer *w = ud;
    size_t vlen;
    const char *vid = fl_trip_vehicle(t, &vlen);
    fl_log_put_u8(&w->rec, 'T');
    fl_log_put_bytes(&w->rec, vid, vlen);
    put_trip(&w->rec, t);
    return flush_record(w);
}

static void write_geo(writer *w, const char *key, size_t klen,
                      const fl_geoset *gs)
{
    fl_zit it;
    uint64_t score;
    fl_zmember *m;
    size_t left = fl_geoset_card(gs);
    fl_zindex_seek_rank(fl_geoset_index(gs), 0, &it);
    while (left > 0 && w->rc == 0) {
        size_t n = left < GEO_CHUNK ? left : GEO_CHUNK;
        fl_log_put_u8(&w->rec, 'G');
        fl_log_put_bytes(&w->rec, key, klen);
        fl_log_put_u8(&w->rec, (uint8_t)fl_geoset_kind(gs));
        fl_log_put_varint(&w->rec, n);
        for (size_t i = 0; i < n && fl_zit_next(&it, &score, &m); i++) {
            fl_log_put_double(&w->rec, fl_geoset_value(gs, score));
            fl_log_put_bytes(&w->rec, m->name, m->len);
        }
        left -= n;
        (void)flush_record(w);
    }
}

static void write_key(void *ud, const char *key, size_t klen, const fl_obj *o)
{
    writer *w = ud;
    if (w->rc) return;
    if (o->type == FL_OBJ_GEO) {
        write_geo(w, key, klen, o->u.geo);
        return;
    }
    fl_log_put_u8(&w->rec, 'S');
    fl_log_put_bytes(&w->rec, key, klen);
    fl_log_put_bytes(&w->rec, o->u.str.ptr, o->u.str.len);
    (void)flush_record(w);
}

int fl_snapshot_write(const fl_server *s,
                      int (*emit)(void *ud, const void *payload, size_t len),
                      void *ud)
{
    writer w = {s->fleet, {0}, 0, emit, ud, 0};
    const fl_fleet_stats *st = fl_fleet_get_stats(s->fleet);
    fl_log_put_u8(&w.rec, 'M');
    fl_log_put_varint(&w.rec, fl_fleet_trip_seq(s->fleet));
    fl_log_put_varint(&w.rec, st->vehicles);
    fl_log_put_varint(&w.rec, st->trips_running + st->trips_finished);
    (void)flush_record(&w);
    uint64_t cursor = 0;
    do {
        cursor = fl_db_scan(s->db, cursor, 1024, write_key, &w);
    } while (cursor != 0 && w.rc == 0);
    if (w.rc == 0) (void)fl_fleet_each_finished(s->fleet, write_trip, &w);
    if (w.rc == 0) (void)fl_fleet_each_vehicle(s->fleet, write_vehicle, &w);
    if (w.rc == 0) {
        fl_log_put_u8(&w.rec, 'E');
        fl_log_put_varint(&w.rec, w.records);
        w.rc = emit(ud, w.rec.data, w.rec.len);
    }
    fl_buf_free(&w.rec);
    return w.rc;
}

/* ---- applying ---- */

/* Reads trip fields into t (whose id storage holds FL_FLEET_ID_MAX). */
static void get_trip(fl_log_reader *r, fl_trip *t)
{
    size_t n;
    const uint8_t *id = fl_log_get_bytes(r, &n);
    if (!id || n == 0 || n > FL_FLEET_ID_MAX) r->err = 1;
    if (r->err) return;
    memcpy(t->id, id, n);
    t->id_len = (uint8_t)n;
    t->start_ms = (int64_t)fl_log_get_varint(r);
    t->last_ms = (int64_t)fl_log_get_varint(r);
    t->end_ms = (int64_t)fl_log_get_varint(r);
    t->distance_m = fl_log_get_double(r);
    t->idle_ms = (int64_t)fl_log_get_varint(r);
    t->last_move_ms = (int64_t)fl_log_get_varint(r);
    t->idle_to_ms = (int64_t)fl_log_get_varint(r);
    int64_t alon = unzigzag(fl_log_get_varint(r));
    int64_t alat = unzigzag(fl_log_get_varint(r));
    t->anchor_lon_e7 = (int32_t)alon;
    t->anchor_lat_e7 = (int32_t)alat;
    t->max_speed_kmh = bits_float(fl_log_get_varint(r));
    t->pings = (uint32_t)fl_log_get_varint(r);
    t->flagged = (uint32_t)fl_log_get_varint(r);
    t->end_reason = fl_log_get_u8(r);
    t->truncated = fl_log_get_u8(r);
    size_t plen;
    const uint8_t *path = fl_log_get_bytes(r, &plen);
    t->path.enc = (char *)path;
    t->path.len = (uint32_t)plen;
    t->path.last_lat_e5 = (int32_t)unzigzag(fl_log_get_varint(r));
    t->path.last_lon_e5 = (int32_t)unzigzag(fl_log_get_varint(r));
    t->path.points = (uint32_t)fl_log_get_varint(r);
    if (plen > UINT32_MAX || t->start_ms < 0 || t->last_ms < 0 ||
        t->end_ms < 0 || t->idle_ms < 0 || !isfinite(t->distance_m) ||
        alon < -1800000000LL || alon > 1800000000LL ||
        alat < -900000000LL || alat > 900000000LL)
        r->err = 1;
}

typedef union trip_buf {
    fl_trip t;
    char raw[sizeof(fl_trip) + FL_FLEET_ID_MAX + 1];
} trip_buf;

static int apply_vehicle(fl_server *s, fl_log_reader *r)
{
    size_t idlen, flen;
    fl_vehicle_state v;
    memset(&v, 0, sizeof(v));
    const uint8_t *id = fl_log_get_bytes(r, &idlen);
    v.lon = fl_log_get_double(r);
    v.lat = fl_log_get_double(r);
    v.ts_ms = (int64_t)fl_log_get_varint(r);
    v.speed_kmh = bits_float(fl_log_get_varint(r));
    v.heading = bits_float(fl_log_get_varint(r));
    const uint8_t *fleet = fl_log_get_bytes(r, &flen);
    v.status = fl_log_get_u8(r);
    v.flagged = (uint32_t)fl_log_get_varint(r);
    v.suspect = fl_log_get_u8(r);
    int has_trip = fl_log_get_u8(r);
    trip_buf tb;
    memset(&tb, 0, sizeof(tb));
    if (has_trip) get_trip(r, &tb.t);
    if (r->err || r->off != r->n || has_trip > 1) return -EINVAL;
    return fl_fleet_restore_vehicle(s->fleet, (const char *)id, idlen, &v,
                                    flen ? (const char *)fleet : NULL, flen,
                                    has_trip ? &tb.t : NULL);
}

static int apply_trip(fl_server *s, fl_log_reader *r)
{
    size_t vlen;
    const uint8_t *vid = fl_log_get_bytes(r, &vlen);
    trip_buf tb;
    memset(&tb, 0, sizeof(tb));
    get_trip(r, &tb.t);
    if (r->err || r->off != r->n) return -EINVAL;
    return fl_fleet_restore_trip(s->fleet, (const char *)vid, vlen, &tb.t);
}

static int apply_string(fl_server *s, fl_log_reader *r)
{
    size_t klen, vlen;
    const uint8_t *k = fl_log_get_bytes(r, &klen);
    const uint8_t *v = fl_log_get_bytes(r, &vlen);
    if (r->err || r->off != r->n) return -EINVAL;
    fl_db_set_string(s->db, (const char *)k, klen, (const char *)v, vlen);
    return 0;
}

static fl_geoset *geo_target(fl_server *s, const uint8_t *k, size_t klen,
                             int kind)
{
    fl_obj *o = fl_db_get(s->db, (const char *)k, klen);
    if (o) return o->type == FL_OBJ_GEO && fl_geoset_kind(o->u.geo) == kind
                  ? o->u.geo : NULL;
    fl_geoset *gs = fl_geoset_new_kind(s->run_id_seed ^ (uint64_t)klen, kind);
    if (gs) fl_db_set_geo(s->db, (const char *)k, klen, gs);
    return gs;
}

static int apply_geo(fl_server *s, fl_log_reader *r)
{
    size_t klen;
    const uint8_t *k = fl_log_get_bytes(r, &klen);
    int kind = fl_log_get_u8(r);
    uint64_t n = fl_log_get_varint(r);
    if (r->err || n == 0 || n > GEO_CHUNK ||
        (kind != FL_GEOSET_GEOHASH && kind != FL_GEOSET_DOUBLE))
        return -EINVAL;
    fl_geoset *gs = geo_target(s, k, klen, kind);
    if (!gs) return -EINVAL;
    for (uint64_t i = 0; i < n; i++) {
        double score = fl_log_get_double(r);
        size_t mlen;
        const uint8_t *m = fl_log_get_bytes(r, &mlen);
        int outcome;
        if (r->err || !(score >= 0) || !isfinite(score) ||
            fl_geoset_add(gs, (const char *)m, mlen, score, 0, &outcome))
            return -EINVAL;
    }
    return r->off == r->n ? 0 : -EINVAL;
}

static int apply_meta(fl_server *s, fl_log_reader *r)
{
    uint64_t seq = fl_log_get_varint(r), vehicles = 0, trips = 0;
    if (r->off < r->n) { /* counts are optional: older snapshots lack them */
        vehicles = fl_log_get_varint(r);
        trips = fl_log_get_varint(r);
    }
    /* Counts are hints for sizing: capped so that a damaged record cannot
     * make the loader reserve absurd tables. */
    if (r->err || r->off != r->n) return -EINVAL;
    if (vehicles > (1ULL << 25)) vehicles = 1ULL << 25; /* a hint, capped */
    if (trips > (1ULL << 25)) trips = 1ULL << 25;
    fl_fleet_set_trip_seq(s->fleet, seq);
    fl_fleet_reserve(s->fleet, vehicles, trips);
    return 0;
}

static int apply_argv(fl_server *s, const uint8_t *p, size_t n,
                      fl_apply_state *st)
{
    static fl_log_argv a = FL_LOG_ARGV_INIT;
    static fl_buf out;
    if (fl_log_argv_decode(p, n, &a) != 0) return -EINVAL;
    fl_session sess = {0};
    sess.proto = 2;
    sess.authenticated = 1;
    out.len = 0;
    fl_reply reply = {&out, 2, 0};
    fl_cmd_ctx ctx = {a.argc, a.argv, a.lens, &reply, &sess, s, st->now_ms,
                      st->now_ms * 1000};
    const fl_command *c = fl_cmd_dispatch(&ctx);
    if (c && reply.errors == 0) return 0;
    snprintf(st->err, sizeof(st->err), "replayed %.*s answered %.*s",
             (int)(a.lens[0] < 40 ? a.lens[0] : 40), a.argv[0],
             (int)(out.len < 100 ? out.len : 100), out.data ? out.data : "");
    return -EINVAL;
}

void fl_store_prefetch(const fl_server *s, const uint8_t *p, size_t n)
{
    if (n == 0 || p[0] != 'V') return;
    fl_log_reader r;
    fl_log_reader_init(&r, p + 1, n - 1);
    size_t idlen, flen, tlen = 0;
    const uint8_t *id = fl_log_get_bytes(&r, &idlen);
    r.off += 16;                       /* lon, lat */
    (void)fl_log_get_varint(&r);       /* ts */
    (void)fl_log_get_varint(&r);       /* speed */
    (void)fl_log_get_varint(&r);       /* heading */
    (void)fl_log_get_bytes(&r, &flen); /* fleet */
    r.off += 1;                        /* status */
    (void)fl_log_get_varint(&r);       /* flagged */
    r.off += 1;                        /* suspect */
    int has_trip = fl_log_get_u8(&r);
    const uint8_t *tid = has_trip ? fl_log_get_bytes(&r, &tlen) : NULL;
    if (r.err || !id || r.off > r.n) return;
    fl_fleet_prefetch(s->fleet, (const char *)id, idlen, (const char *)tid, tlen);
}

int fl_store_apply(fl_server *s, const uint8_t *p, size_t n,
                   fl_apply_state *st)
{
    if (n == 0) return -EINVAL;
    fl_log_reader r;
    fl_log_reader_init(&r, p + 1, n - 1);
    int rc;
    switch (p[0]) {
    case 'A': rc = apply_argv(s, p, n, st); break;
    case 'V': rc = apply_vehicle(s, &r); break;
    case 'T': rc = apply_trip(s, &r); break;
    case 'S': rc = apply_string(s, &r); break;
    case 'G': rc = apply_geo(s, &r); break;
    case 'M': rc = apply_meta(s, &r); break;
    case 'E': {
        uint64_t count = fl_log_get_varint(&r);
        rc = r.err || r.off != r.n || count != st->applied ? -EINVAL : 0;
        if (rc == 0) st->saw_end = 1;
        return rc;
    }
    default: rc = -EINVAL; break;
    }
    if (rc == 0) st->applied++;
    else if (!st->err[0])
        snprintf(st->err, sizeof(st->err), "malformed '%c' record", p[0]);
    return rc;
}
