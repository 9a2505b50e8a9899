/*
 * supply.c - vehicle counts by status per area cell, at geohash precisions
 * of 4 to 7 characters (about 39 x 20 km down to 153 x 153 m).
 *
 * Why standard geohash cells: their names are what map tools and other
 * services already speak, a prefix is the parent cell, and one 35-bit value
 * per vehicle gives every level by a shift. The counts live in one
 * open-addressing table keyed by level << 56 | prefix, with the three
 * status counters inline (24-byte slots); an empty cell is removed at once
 * (backward shift), so the table holds only cells that have vehicles.
 */
#include "fleet_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../util/buf.h"

#define CELL_BITS 35   /* 7 characters of 5 bits */

static const char base32[] = "0123456789bcdefghjkmnpqrstuvwxyz";

uint64_t fl__cell_of(double lon, double lat)
{
    fl_geo_range lon_r = {-180.0, 180.0}, lat_r = {-90.0, 90.0};
    fl_geo_cell c;
    /* 180 is -180: file it in the last cell below, not one bit over. */
    fl__index_point(lon, lat, &lon, &lat);
    /* 18 bits per axis, longitude first: the top 35 bits are the
     * standard 7-character geohash. */
    if (!fl_geo_encode(&lon_r, &lat_r, lon, lat, 18, &c)) return 0;
    return c.bits >> 1;
}

static uint64_t cell_key(uint64_t cell35, int level)
{
    return (uint64_t)level << 56 | cell35 >> (CELL_BITS - 5 * level);
}

static size_t home_slot(const fl__cellmap *m, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & m->mask;
}

static void cells_grow(fl__cellmap *m)
{
    size_t n = m->slots ? (m->mask + 1) * 2 : 64;
    fl__cell *old = m->slots;
    size_t old_n = old ? m->mask + 1 : 0;
    m->slots = fl_xcalloc(n, sizeof(*m->slots));
    m->mask = n - 1;
    for (size_t i = 0; i < old_n; i++) {
        if (!old[i].key) continue;
        size_t j = home_slot(m, old[i].key);
        while (m->slots[j].key) j = (j + 1) & m->mask;
        m->slots[j] = old[i];
    }
    free(old);
}

static fl__cell *cells_slot(fl__cellmap *m, uint64_t key)
{
    if (!m->slots || (m->count + 1) * 4 > (m->mask + 1) * 3) cells_grow(m);
    size_t i = home_slot(m, key);
    while (m->slots[i].key && m->slots[i].key != key) i = (i + 1) & m->mask;
    if (!m->slots[i].key) {
        memset(&m->slots[i], 0, sizeof(m->slots[i]));
        m->slots[i].key = key;
        m->count++;
    }
    return &m->slots[i];
}

static void cells_remove(fl__cellmap *m, size_t hole)
{
    m->slots[hole].key = 0;
    m->count--;
    for (size_t j = (hole + 1) & m->mask; m->slots[j].key; j = (j + 1) & m->mask) {
        size_t home = home_slot(m, m->slots[j].key);
        int stays = hole <= j ? (home > hole && home <= j)
                              : (home > hole || home <= j);
        if (stays) continue;
        m->slots[hole] = m->slots[j];
        memset(&m->slots[j], 0, sizeof(m->slots[j]));
        hole = j;
    }
}

void fl__cells_add(fl_fleet *f, uint64_t cell35, int status, int delta)
{
    fl__cellmap *m = &f->cells;
    for (int level = FL_CELL_MIN_LEVEL; level <= FL_CELL_MAX_LEVEL; level++) {
        fl__cell *c = cells_slot(m, cell_key(cell35, level));
        c->by_status[status] += (uint32_t)delta;
        if (c->by_status[0] | c->by_status[1] | c->by_status[2]) continue;
        cells_remove(m, (size_t)(c - m->slots));
    }
}

void fl__cells_free(fl_fleet *f)
{
    free(f->cells.slots);
    memset(&f->cells, 0, sizeof(f->cells));
}

void fl_cell_name(uint64_t cell, int level, char out[FL_CELL_MAX_LEVEL + 1])
{
    for (int i = 0; i < level; i++)
        out[i] = base32[(cell >> (5 * (level - 1 - i))) & 31];
    out[level] = '\0';
}

void fl_cell_bounds(uint64_t cell, int level, double out[4])
{
    double lon[2] = {-180.0, 180.0}, lat[2] = {-90.0, 90.0};
    int bits = 5 * level;
    for (int i = 0; i < bits; i++) {
        int bit = (int)(cell >> (bits - 1 - i)) & 1;
        double *r = i % 2 == 0 ? lon : lat;
        double mid = (r[0] + r[1]) / 2;
        r[bit ? 0 : 1] = mid;
    }
    out[0] = lon[0];
    out[1] = lat[0];
    out[2] = lon[1];
    out[3] = lat[1];
}

static int box_meets(const double *box, const double b[4])
{
    if (b[1] > box[3] || b[3] < box[1]) return 0;
    if (box[0] <= box[2]) return !(b[0] > box[2] || b[2] < box[0]);
    return b[2] >= box[0] || b[0] <= box[2]; /* box crosses 180 */
}

int fl_fleet_cells(const fl_fleet *f, int level, const double *box,
                   int (*fn)(void *ud, const fl_cell_count *c), void *ud)
{
    if (level < FL_CELL_MIN_LEVEL || level > FL_CELL_MAX_LEVEL) return -EINVAL;
    const fl__cellmap *m = &f->cells;
    for (size_t i = 0; m->slots && i <= m->mask; i++) {
        const fl__cell *c = &m->slots[i];
        if (!c->key || (int)(c->key >> 56) != level) continue;
        fl_cell_count cc = {c->key & ((1ULL << 56) - 1), level, {0}};
        if (box) {
            double b[4];
            fl_cell_bounds(cc.cell, level, b);
            if (!box_meets(box, b)) continue;
        }
        memcpy(cc.by_status, c->by_status, sizeof(cc.by_status));
        int rc = fn(ud, &cc);
        if (rc) return rc;
    }
    return 0;
}

int fl_fleet_cell(const fl_fleet *f, const char *gh, size_t n,
                  fl_cell_count *out)
{
    if (n < FL_CELL_MIN_LEVEL || n > FL_CELL_MAX_LEVEL) return -EINVAL;
    uint64_t cell = 0;
    for (size_t i = 0; i < n; i++) {
        char c = gh[i] >= 'A' && gh[i] <= 'Z' ? (char)(gh[i] - 'A' + 'a') : gh[i];
        const char *p = c ? memchr(base32, c, 32) : NULL;
        if (!p) return -EINVAL;
        cell = cell << 5 | (uint64_t)(p - base32);
    }
    memset(out, 0, sizeof(*out));
    out->cell = cell;
    out->level = (int)n;
    const fl__cellmap *m = &f->cells;
    if (!m->slots) return 0;
    uint64_t key = (uint64_t)n << 56 | cell;
    for (size_t i = home_slot(m, key); m->slots[i].key; i = (i + 1) & m->mask) {
        if (m->slots[i].key != key) continue;
        memcpy(out->by_status, m->slots[i].by_status, sizeof(out->by_status));
        break;
    }
    return 0;
}

/* ---- demand: recent trip starts by cell ---- */

void fl__demand_note(fl_fleet *f, int64_t ts_ms, double lon, double lat)
{
    fl__demand *d = &f->demand;
    if (!d->ev) d->ev = fl_xmalloc(FL_DEMAND_MAX * sizeof(*d->ev));
    d->ev[d->next] = (fl__demand_ev){ts_ms, fl__cell_of(lon, lat)};
    d->next = (d->next + 1) % FL_DEMAND_MAX;
    if (d->count < FL_DEMAND_MAX) d->count++;
}

void fl__demand_free(fl_fleet *f)
{
    free(f->demand.ev);
    memset(&f->demand, 0, sizeof(f->demand));
}

/* Per-call tally of starts by cell: open addressing on the cell bits,
 * sized for every event so it never fills. */
typedef struct demand_tally {
    uint64_t *key;      /* cell + 1; 0 = empty */
    uint32_t *n;
    size_t mask;
} demand_tally;

static void tally_add(demand_tally *t, uint64_t cell)
{
    size_t i = (size_t)((cell + 1) * 0x9E3779B97F4A7C15ULL >> 20) & t->mask;
    while (t->key[i] && t->key[i] != cell + 1) i = (i + 1) & t->mask;
    t->key[i] = cell + 1;
    t->n[i]++;
}

int fl_fleet_demand_cells(const fl_fleet *f, int level, const double *box,
                          int64_t since_ms,
                          int (*fn)(void *ud, uint64_t cell, int level,
                                    uint32_t starts),
                          void *ud)
{
    if (level < FL_CELL_MIN_LEVEL || level > FL_CELL_MAX_LEVEL) return -EINVAL;
    const fl__demand *d = &f->demand;
    if (d->count == 0) return 0;
    size_t cap = 16;
    while (cap < 2 * d->count) cap <<= 1;
    demand_tally t = {fl_xcalloc(cap, sizeof(uint64_t)),
                      fl_xcalloc(cap, sizeof(uint32_t)), cap - 1};
    int shift = 5 * (FL_CELL_MAX_LEVEL - level);
    for (size_t i = 0; i < d->count; i++)
        if (d->ev[i].ts_ms >= since_ms) tally_add(&t, d->ev[i].cell35 >> shift);
    int rc = 0;
    for (size_t i = 0; i < cap && rc == 0; i++) {
        if (!t.key[i]) continue;
        if (box) {
            double b[4];
            fl_cell_bounds(t.key[i] - 1, level, b);
            if (!box_meets(box, b)) continue;
        }
        rc = fn(ud, t.key[i] - 1, level, t.n[i]);
    }
    free(t.key);
    free(t.n);
    return rc;
}
