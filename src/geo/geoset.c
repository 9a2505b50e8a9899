/*
 * geoset.c - a geo key's value: member hash + ordered index, and the
 * search that reproduces Redis 7.0's GEORADIUS/GEOSEARCH results.
 *
 * The member hash is open addressing with linear probing over 8-byte
 * slots, each an fl_zmember pointer with 16 bits of the member's hash in
 * the pointer's unused top bits (x86-64 and arm64 user pointers fit in 48
 * bits; if one ever does not, the table drops the tags and keeps working).
 * Probing compares tags before touching a member, so a lookup usually
 * dereferences exactly one member. The table is kept 57-85% full with
 * capacities between powers of two, because at 8 bytes a slot it is the
 * largest per-member cost after the member itself. Names are hashed with
 * SipHash-1-3 keyed by a per-set seed, so colliding names cannot be
 * prepared in advance.
 * Deletion shifts the following run back (no tombstones).
 *
 * Growing is incremental, as Redis' dict rehash is: a full rehash of a
 * million members (re-hashing every name) stalled the loop for ~80 ms.
 * When the table must grow, the current table becomes `old` and a larger
 * one starts empty; every later insert, update and removal moves the next
 * MIGRATE_STEP old slots, so the old table is empty long before the new
 * one can need to grow again. Lookups try the new table, then the old. In
 * the old table nothing is ever emptied: a moved or removed member leaves
 * SLOT_GONE, which probing steps over, so its probe runs stay intact.
 * Shrinking (rare, after mass removal) still rehashes at once.
 *
 * The search follows Redis step by step where the result depends on it
 * (which cells, in which order, which points are in, how ties sort) and
 * takes shortcuts only where they provably cannot change the result:
 *  - each of Redis' cells that holds many members is split into its four
 *    sub-cells, recursively; a sub-cell the conservative filter (geohash.h)
 *    puts wholly outside the shape is skipped with a seek, one wholly
 *    inside is taken without looking at its points (when no distance is
 *    needed); sub-cells are visited in score order, so the order of the
 *    matches is Redis' order;
 *  - remaining points are decided by cheap bounds, with Redis' exact test
 *    only when the bounds are unsure;
 *  - distances that are only printed (WITHDIST: four decimals) or used to
 *    order come from a libm-free approximation with a proven error bound;
 *    the exact value is computed where the approximation could print
 *    differently or order two matches differently;
 *  - COUNT n without ANY: Redis computes every match and partially sorts
 *    them with its own quicksort (pqsort), whose placement of equal
 *    distances depends on the whole array. fleetd searches best-first,
 *    keeping a bounded heap of the n best bounds, visits only the cells
 *    that can hold a top-n member, and answers when the n + 1 best have
 *    distinct exact distances (then every correct sort agrees). Otherwise
 *    it does what Redis does: all matches in Redis' order, then the same
 *    partial quicksort algorithm, so ties come out in Redis' order;
 *  - full sorts: Redis calls glibc qsort, a stable merge sort for these
 *    sizes, so fleetd sorts stably too.
 */
#include "geoset.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct fl_geoset {
    uint64_t k0, k1;        /* SipHash key */
    uintptr_t *slots;       /* 0 = empty */
    size_t cap;             /* slots: 2^k or 3 * 2^(k-1), see grow_cap */
    size_t count;
    size_t member_bytes;    /* estimated heap bytes of the member records */
    int kind;               /* enum fl_geoset_kind */
    int tagged;             /* slots carry hash tags in the top 16 bits */
    fl_zindex *z;
    uintptr_t *old;         /* table being emptied into slots, or NULL */
    size_t oldcap;
    size_t mig;             /* next old slot to move */
};

#define MIN_CAP 8
/* Old slots moved per mutation while growing. A growth by 4/3 or 3/2
 * leaves at least oldcap / 4 inserts before the next one; moving 16 per
 * mutation empties the old table after oldcap / 16. */
#define MIGRATE_STEP 16
#define SLOT_GONE ((uintptr_t)1) /* old table only: moved or removed */
#define TAG_SHIFT 48
#define PTR_MASK ((((uintptr_t)1) << (TAG_SHIFT % (8 * sizeof(uintptr_t)))) - 1)

/* ---- hashing ---- */

static uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

#define SIPROUND                                                         \
    do {                                                                 \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);        \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                           \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                           \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);        \
    } while (0)

/* SipHash-1-3 (one compression round, three finalisation rounds). */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const char *p, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m = 0;
        for (size_t j = 0; j < 8; j++) m |= (uint64_t)s[i + j] << (8 * j);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t j = 0; i + j < n; j++) b |= (uint64_t)s[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t name_hash(const fl_geoset *gs, const char *name, size_t len)
{
    return siphash13(gs->k0, gs->k1, name, len);
}

/* ---- member records ---- */

static size_t record_size(size_t len)
{
    return offsetof(fl_zmember, name) + len;
}

/* What malloc is likely to use for a request (glibc: 16-byte granules,
 * 8 bytes of header, 32 bytes minimum), for memory accounting only. */
static size_t alloc_estimate(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

static fl_zmember *record_new(const char *name, size_t len, uint64_t score)
{
    if (len > UINT32_MAX) return NULL;
    fl_zmember *m = malloc(record_size(len));
    if (!m) return NULL;
    m->score = score;
    m->len = (uint32_t)len;
    if (len) memcpy(m->name, name, len);
    return m;
}

/* ---- slots ---- */

static fl_zmember *slot_member(const fl_geoset *gs, uintptr_t s)
{
    return (fl_zmember *)(gs->tagged ? (s & PTR_MASK) : s);
}

/* The tag is the hash's low 16 bits: independent of the home slot, which
 * comes from the high half. */
static uint64_t hash_tag(uint64_t h)
{
    return h & 0xFFFF;
}

static int slot_tag_ok(const fl_geoset *gs, uintptr_t s, uint64_t h)
{
    return !gs->tagged || (uint64_t)(s >> TAG_SHIFT) == hash_tag(h);
}

/* Drops every tag: used once if a member pointer needs the top bits. */
static void untag_all(fl_geoset *gs)
{
    for (size_t i = 0; i < gs->cap; i++) gs->slots[i] &= PTR_MASK;
    for (size_t i = 0; gs->old && i < gs->oldcap; i++) gs->old[i] &= PTR_MASK;
    gs->tagged = 0;
}

static uintptr_t slot_make(fl_geoset *gs, const fl_zmember *m, uint64_t h)
{
    uintptr_t p = (uintptr_t)m;
    if (gs->tagged && (p & ~PTR_MASK)) untag_all(gs);
    if (!gs->tagged) return p;
    return p | (uintptr_t)(hash_tag(h) << TAG_SHIFT);
}

static int member_is(const fl_zmember *m, const char *name, size_t len)
{
    return m->len == len && (len == 0 || memcmp(m->name, name, len) == 0);
}

/* A hash's home slot: the high 32 bits scaled to the capacity, so the
 * capacity need not be a power of two. */
static size_t home_slot(size_t cap, uint64_t h)
{
    return (size_t)(((h >> 32) * (uint64_t)cap) >> 32);
}

static size_t next_slot(size_t cap, size_t i)
{
    return i + 1 == cap ? 0 : i + 1;
}

/* The slot holding name (*found = 1) or the empty slot ending its probe
 * run (*found = 0). The table always has an empty slot. */
static size_t find_slot(const fl_geoset *gs, const char *name, size_t len,
                        uint64_t h, int *found)
{
    size_t i = home_slot(gs->cap, h);
    for (;;) {
        uintptr_t s = gs->slots[i];
        if (!s) {
            *found = 0;
            return i;
        }
        if (slot_tag_ok(gs, s, h) && member_is(slot_member(gs, s), name, len)) {
            *found = 1;
            return i;
        }
        i = next_slot(gs->cap, i);
    }
}

/* The empty new-table slot for a member not in it. */
static size_t free_slot(const fl_geoset *gs, uint64_t h)
{
    size_t j = home_slot(gs->cap, h);
    while (gs->slots[j]) j = next_slot(gs->cap, j);
    return j;
}

/* Moves up to MIGRATE_STEP old slots into the new table. Each move
 * misses the cache twice (the member, to hash its name, then its home
 * slot in the new table), so the batch is done in passes that prefetch
 * for the next one instead of waiting on each miss in turn. */
static size_t migrate_batch(fl_geoset *gs, size_t n)
{
    uintptr_t moving[MIGRATE_STEP];
    size_t home[MIGRATE_STEP], k = 0, looked = 0;
    if (n > MIGRATE_STEP) n = MIGRATE_STEP;
    if (n > gs->oldcap - gs->mig) n = gs->oldcap - gs->mig;
    for (; looked < n; looked++) {
        uintptr_t s = gs->old[gs->mig + looked];
        if (!s || s == SLOT_GONE) continue;
        __builtin_prefetch(slot_member(gs, s));
        moving[k++] = s;
        gs->old[gs->mig + looked] = SLOT_GONE;
    }
    for (size_t i = 0; i < k; i++) {
        const fl_zmember *m = slot_member(gs, moving[i]);
        home[i] = home_slot(gs->cap, name_hash(gs, m->name, m->len));
        __builtin_prefetch(&gs->slots[home[i]], 1);
    }
    for (size_t i = 0; i < k; i++) {
        size_t j = home[i];
        while (gs->slots[j]) j = next_slot(gs->cap, j);
        gs->slots[j] = moving[i];
    }
    gs->mig += looked;
    return looked;
}

/* Moves up to n old slots into the new table; frees the old table once
 * it is empty. Never fails: the new table has room for every member. */
static void migrate(fl_geoset *gs, size_t n)
{
    while (gs->old && n > 0) {
        n -= migrate_batch(gs, n);
        if (gs->mig == gs->oldcap) {
            free(gs->old);
            gs->old = NULL;
            gs->oldcap = gs->mig = 0;
        }
    }
}

/* Starts growing to cap: the current table becomes the old one. */
static int grow(fl_geoset *gs, size_t cap)
{
    migrate(gs, SIZE_MAX); /* finish a previous growth first */
    uintptr_t *ns = calloc(cap, sizeof(*ns));
    if (!ns) return -ENOMEM;
    gs->old = gs->slots;
    gs->oldcap = gs->cap;
    gs->mig = 0;
    gs->slots = ns;
    gs->cap = cap;
    return 0;
}

/* The old-table slot holding name, or NULL. */
static uintptr_t *old_find(const fl_geoset *gs, const char *name, size_t len,
                           uint64_t h)
{
    if (!gs->old) return NULL;
    size_t i = home_slot(gs->oldcap, h);
    for (;;) {
        uintptr_t s = gs->old[i];
        if (!s) return NULL;
        if (s != SLOT_GONE && slot_tag_ok(gs, s, h) &&
            member_is(slot_member(gs, s), name, len))
            return &gs->old[i];
        i = next_slot(gs->oldcap, i);
    }
}

/* The slot (in either table) holding name, or NULL; *in_new tells which. */
static uintptr_t *lookup(const fl_geoset *gs, const char *name, size_t len,
                         uint64_t h, int *in_new)
{
    int found;
    /* A new member misses in both tables while one grows: wait on the
     * two cache misses at once, not one after the other. */
    if (gs->old) __builtin_prefetch(&gs->old[home_slot(gs->oldcap, h)]);
    size_t i = find_slot(gs, name, len, h, &found);
    *in_new = found;
    if (found) return &gs->slots[i];
    return old_find(gs, name, len, h);
}

static int resize(fl_geoset *gs, size_t cap)
{
    migrate(gs, SIZE_MAX);
    uintptr_t *ns = calloc(cap, sizeof(*ns));
    if (!ns) return -ENOMEM;
    uintptr_t *old = gs->slots;
    size_t oldcap = gs->cap;
    gs->slots = ns;
    gs->cap = cap;
    for (size_t i = 0; i < oldcap; i++) {
        /* Rehashing reads every member: overlap those cache misses. */
        if (i + 16 < oldcap && old[i + 16]) __builtin_prefetch(slot_member(gs, old[i + 16]));
        if (!old[i]) continue;
        const fl_zmember *m = slot_member(gs, old[i]);
        uint64_t h = name_hash(gs, m->name, m->len);
        size_t j = home_slot(cap, h);
        while (ns[j]) j = next_slot(cap, j);
        ns[j] = old[i]; /* the tag depends on the hash only */
    }
    free(old);
    return 0;
}

/* Capacities step by 4/3 and 3/2 alternately (8, 12, 16, 24, 32, ...):
 * with the 85% load limit the table stays 57-85% full, where doubling
 * would leave it as low as 42%. Slots are most of a member's overhead. */
static size_t grow_cap(size_t cap)
{
    return (cap & (cap - 1)) == 0 ? cap + cap / 2 : cap / 3 * 4;
}

static size_t shrink_cap(size_t cap)
{
    return (cap & (cap - 1)) == 0 ? cap / 4 * 3 : cap / 3 * 2;
}

/* Keeps the load at or below 85%. */
static int reserve_one(fl_geoset *gs)
{
    if ((gs->count + 1) * 20 <= gs->cap * 17) return 0;
    if (gs->cap > SIZE_MAX / 2 / sizeof(uintptr_t)) return -ENOMEM;
    return grow(gs, grow_cap(gs->cap));
}

void fl_geoset_prefetch(const fl_geoset *gs, const char *name, size_t len)
{
    uint64_t h = name_hash(gs, name, len);
    __builtin_prefetch(&gs->slots[home_slot(gs->cap, h)], 1);
}

int fl_geoset_reserve(fl_geoset *gs, size_t n)
{
    size_t cap = gs->cap ? gs->cap : 8;
    if (n > SIZE_MAX / 32) return -ENOMEM;
    while (n * 20 > cap * 17) cap = grow_cap(cap);
    return cap == gs->cap ? 0 : resize(gs, cap);
}

/* After a removal: shrink when the load drops under 20%. Best effort. */
static void maybe_shrink(fl_geoset *gs)
{
    if (gs->cap <= MIN_CAP || gs->count * 5 >= gs->cap) return;
    size_t want = gs->cap;
    while (want > MIN_CAP && gs->count * 2 < shrink_cap(want))
        want = shrink_cap(want);
    if (want < gs->cap) (void)resize(gs, want);
}

/* Empties slot i and moves later members of the run back so that every
 * member stays reachable from its home slot. */
static void slot_delete(fl_geoset *gs, size_t i)
{
    size_t j = i;
    gs->slots[i] = 0;
    for (;;) {
        j = next_slot(gs->cap, j);
        uintptr_t s = gs->slots[j];
        if (!s) return;
        const fl_zmember *m = slot_member(gs, s);
        size_t home = home_slot(gs->cap, name_hash(gs, m->name, m->len));
        /* Leave it if its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        gs->slots[i] = s;
        gs->slots[j] = 0;
        i = j;
    }
}

/* ---- scores ---- */

static uint64_t dbl_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bits_dbl(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static int score_to_stored(const fl_geoset *gs, double score, uint64_t *out)
{
    if (gs->kind == FL_GEOSET_DOUBLE) {
        if (!(score >= 0)) return -EINVAL;
        *out = dbl_bits(score == 0 ? 0.0 : score); /* no -0 */
        return 0;
    }
    if (!(score >= 0 && score <= 9223372036854775808.0) || score != floor(score))
        return -EINVAL;
    *out = (uint64_t)score;
    return 0;
}

double fl_geoset_value(const fl_geoset *gs, uint64_t stored)
{
    return gs->kind == FL_GEOSET_DOUBLE ? bits_dbl(stored) : (double)stored;
}

static uint64_t geohash_of(const fl_geoset *gs, uint64_t stored)
{
    if (gs->kind != FL_GEOSET_DOUBLE) return stored;
    double v = bits_dbl(stored);
    return v < 18446744073709551616.0 ? (uint64_t)v : UINT64_MAX;
}

uint64_t fl_geoset_geohash(const fl_geoset *gs, const fl_zmember *m)
{
    return geohash_of(gs, m->score);
}

void fl_geoset_point(const fl_geoset *gs, const fl_zmember *m, double xy[2])
{
    fl_geo_decode_score(geohash_of(gs, m->score), xy);
}

/* The stored key of the double Redis compares a geohash bound as. */
static uint64_t key_of(const fl_geoset *gs, uint64_t g)
{
    double d = (double)g;
    return gs->kind == FL_GEOSET_DOUBLE ? dbl_bits(d) : (uint64_t)d;
}

/* ---- the set ---- */

fl_geoset *fl_geoset_new_kind(uint64_t seed, int kind)
{
    fl_geoset *gs = calloc(1, sizeof(*gs));
    if (!gs) return NULL;
    uint64_t x = seed;
    gs->k0 = splitmix(&x);
    gs->k1 = splitmix(&x);
    gs->kind = kind == FL_GEOSET_DOUBLE ? FL_GEOSET_DOUBLE : FL_GEOSET_GEOHASH;
    gs->tagged = sizeof(uintptr_t) == 8;
    gs->slots = calloc(MIN_CAP, sizeof(*gs->slots));
    gs->cap = MIN_CAP;
    gs->z = fl_zindex_new();
    if (!gs->slots || !gs->z) {
        fl_geoset_free(gs);
        return NULL;
    }
    return gs;
}

fl_geoset *fl_geoset_new(uint64_t seed)
{
    return fl_geoset_new_kind(seed, FL_GEOSET_GEOHASH);
}

void fl_geoset_free(fl_geoset *gs)
{
    if (!gs) return;
    if (gs->slots) {
        for (size_t i = 0; i < gs->cap; i++)
            if (gs->slots[i]) free(slot_member(gs, gs->slots[i]));
        free(gs->slots);
    }
    for (size_t i = 0; gs->old && i < gs->oldcap; i++)
        if (gs->old[i] && gs->old[i] != SLOT_GONE)
            free(slot_member(gs, gs->old[i]));
    free(gs->old);
    fl_zindex_free(gs->z);
    free(gs);
}

int fl_geoset_kind(const fl_geoset *gs) { return gs->kind; }

size_t fl_geoset_card(const fl_geoset *gs) { return gs->count; }

size_t fl_geoset_bytes(const fl_geoset *gs)
{
    return alloc_estimate(sizeof(*gs)) +
           alloc_estimate(gs->cap * sizeof(*gs->slots)) +
           (gs->old ? alloc_estimate(gs->oldcap * sizeof(*gs->old)) : 0) +
           gs->member_bytes + fl_zindex_bytes(gs->z);
}

const fl_zindex *fl_geoset_index(const fl_geoset *gs) { return gs->z; }

const fl_zmember *fl_geoset_find(const fl_geoset *gs, const char *name,
                                 size_t len)
{
    int in_new;
    const uintptr_t *slot = lookup(gs, name, len, name_hash(gs, name, len), &in_new);
    return slot ? slot_member(gs, *slot) : NULL;
}

/* Replaces member m (in slot i) by a record with the new score. The new
 * record enters the index before the old one leaves, so a failed
 * allocation leaves everything as it was. */
static int update_score(fl_geoset *gs, uintptr_t *slot, uint64_t h,
                        uint64_t stored)
{
    fl_zmember *m = slot_member(gs, *slot);
    fl_zmember *nm = record_new(m->name, m->len, stored);
    if (!nm) return -ENOMEM;
    int rc = fl_zindex_insert(gs->z, nm);
    if (rc) {
        free(nm);
        return rc;
    }
    (void)fl_zindex_delete(gs->z, m); /* present: cannot fail */
    *slot = slot_make(gs, nm, h);
    free(m);
    return 0;
}

static int insert_new(fl_geoset *gs, const char *name, size_t len, uint64_t h,
                      uint64_t stored)
{
    int rc = reserve_one(gs);
    if (rc) return rc;
    fl_zmember *nm = record_new(name, len, stored);
    if (!nm) return -ENOMEM;
    rc = fl_zindex_insert(gs->z, nm);
    if (rc) {
        free(nm);
        return rc;
    }
    migrate(gs, MIGRATE_STEP);
    uintptr_t slot = slot_make(gs, nm, h); /* may untag: before free_slot */
    gs->slots[free_slot(gs, h)] = slot;
    gs->count++;
    gs->member_bytes += alloc_estimate(record_size(len));
    return 0;
}

int fl_geoset_add(fl_geoset *gs, const char *name, size_t len, double score,
                  int flags, int *outcome)
{
    uint64_t stored;
    *outcome = FL_GEOSET_NOP;
    if (score_to_stored(gs, score, &stored)) return -EINVAL;
    uint64_t h = name_hash(gs, name, len);
    int in_new;
    uintptr_t *slot = lookup(gs, name, len, h, &in_new);
    if (slot) {
        if (flags & FL_GEOSET_NX) return 0;
        if (slot_member(gs, *slot)->score == stored) return 0;
        int rc = update_score(gs, slot, h, stored);
        if (rc == 0) *outcome = FL_GEOSET_UPDATED;
        migrate(gs, MIGRATE_STEP);
        return rc;
    }
    if (flags & FL_GEOSET_XX) return 0;
    int rc = insert_new(gs, name, len, h, stored);
    if (rc == 0) *outcome = FL_GEOSET_ADDED;
    return rc;
}

int fl_geoset_remove(fl_geoset *gs, const char *name, size_t len)
{
    int in_new;
    uintptr_t *slot = lookup(gs, name, len, name_hash(gs, name, len), &in_new);
    if (!slot) return 0;
    fl_zmember *m = slot_member(gs, *slot);
    (void)fl_zindex_delete(gs->z, m);
    if (in_new) slot_delete(gs, (size_t)(slot - gs->slots));
    else *slot = SLOT_GONE; /* old probe runs must stay unbroken */
    gs->count--;
    gs->member_bytes -= alloc_estimate(record_size(m->len));
    free(m);
    migrate(gs, MIGRATE_STEP);
    maybe_shrink(gs);
    return 1;
}

int fl_geoset_rank(const fl_geoset *gs, const char *name, size_t len,
                   size_t *rank)
{
    const fl_zmember *m = fl_geoset_find(gs, name, len);
    if (!m) return -ENOENT;
    size_t r = fl_zindex_rank(gs->z, m);
    if (r == (size_t)-1) return -ENOENT;
    *rank = r;
    return 0;
}

void fl_geoset_seek_value(const fl_geoset *gs, double v, int strict,
                          fl_zit *it)
{
    uint64_t key;
    if (v == 0) v = 0.0; /* -0 compares like 0 */
    if (v < 0) {
        key = 0;
    } else if (gs->kind == FL_GEOSET_DOUBLE) {
        key = dbl_bits(v) + (strict ? 1 : 0); /* +inf + 1 is past all */
    } else if (v >= 18446744073709551616.0) {
        key = UINT64_MAX; /* no stored integer reaches it */
    } else {
        double f = floor(v);
        key = (uint64_t)f + ((strict || f != v) ? 1 : 0);
    }
    fl_zindex_seek_score(gs->z, key, it);
}

/* ---- search: results ---- */

void fl_geo_result_free(fl_geo_result *r)
{
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

static int result_push(fl_geo_result *r, const fl_zmember *m, double dist,
                       int approx)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 256;
        if (nc > SIZE_MAX / sizeof(*r->v)) return -ENOMEM;
        fl_geo_match *nv = realloc(r->v, nc * sizeof(*nv));
        if (!nv) return -ENOMEM;
        r->v = nv;
        r->cap = nc;
    }
    fl_geo_match *e = &r->v[r->n++];
    e->m = m;
    e->dist = dist;
    e->alo = e->ahi = 0;
    e->approx = approx;
    return 0;
}

/* ---- search: walking the index ---- */

/* A partly covered cell holding at least this many members is split into
 * its four sub-cells instead of being scanned point by point. */
#define PEEK 16
/* Entries to step over before a gap is crossed with a seek instead. */
#define GALLOP 8
/* Above 2^53 a double cannot hold every integer, so there (only cells at
 * longitude 180 exactly) scores of neighbouring cells collapse together
 * and a sub-range no longer matches a sub-cell: no shortcuts. */
#define EXACT_LIMIT (1ULL << 53)

typedef struct scan {
    const fl_geoset *gs;
    const fl_geo_shape *shape;
    fl_geo_filter f;
    fl_geo_range lon_r, lat_r;
    fl_zit it;           /* positioned after the span sp */
    const fl_zentry *sp; /* entries after cur in the current leaf */
    size_t sp_n;
    uint64_t at;         /* cur is the first entry with stored score >= at */
    int have;            /* cur/cur_m hold that entry */
    uint64_t cur;
    fl_zmember *cur_m;
} scan;

static void sc_init(scan *s, const fl_geoset *gs, const fl_geo_shape *shape)
{
    memset(s, 0, sizeof(*s));
    s->gs = gs;
    s->shape = shape;
    s->at = UINT64_MAX; /* nothing positioned yet: the first move seeks */
    fl_geo_filter_init(&s->f, shape);
    fl_geo_coord_ranges(&s->lon_r, &s->lat_r);
}

/* Steps through a leaf's entries in place: the per-entry cost of a scan
 * is a pointer bump, and the tree is consulted once per leaf. */
static void sc_next(scan *s)
{
    if (s->sp_n == 0) {
        s->sp_n = fl_zit_span(&s->it, &s->sp);
        if (s->sp_n == 0) {
            s->have = 0;
            return;
        }
    }
    s->cur = s->sp->score;
    s->cur_m = s->sp->m;
    s->sp++;
    s->sp_n--;
    s->have = 1;
}

static void sc_seek(scan *s, uint64_t key)
{
    fl_zindex_seek_score(s->gs->z, key, &s->it);
    s->sp_n = 0;
    s->at = key;
    sc_next(s);
}

/* Moves to the first entry with stored score >= key: a few steps forward
 * when the gap is small, a seek otherwise (or when key is behind). */
static void sc_goto(scan *s, uint64_t key)
{
    if (key < s->at) {
        sc_seek(s, key);
        return;
    }
    s->at = key;
    for (int i = 0; i < GALLOP; i++) {
        if (!s->have || s->cur >= key) return;
        sc_next(s);
    }
    if (!s->have || s->cur >= key) return;
    if (s->sp_n && s->sp[s->sp_n - 1].score >= key) {
        /* Still inside this leaf (a skipped sub-cell usually is): search
         * it rather than descend the tree again from the root. */
        size_t lo = 0, hi = s->sp_n - 1;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->sp[mid].score < key) lo = mid + 1;
            else hi = mid;
        }
        s->sp += lo;
        s->sp_n -= lo;
        sc_next(s);
        return;
    }
    sc_seek(s, key);
}

/* 1 when at least n entries, starting with cur, lie below hi. */
static int sc_at_least(const scan *s, uint64_t hi, int n)
{
    fl_zit it = s->it;
    const fl_zentry *sp = s->sp;
    size_t left = s->sp_n;
    for (int i = 1; i < n; i++, sp++, left--) {
        if (left == 0 && (left = fl_zit_span(&it, &sp)) == 0) return 0;
        if (sp->score >= hi) return 0;
    }
    return 1;
}

static fl_geo_cell cell_next(fl_geo_cell c)
{
    c.bits++;
    return c;
}

static fl_geo_cell cell_child(fl_geo_cell c, uint64_t k)
{
    fl_geo_cell child = {(c.bits << 2) | k, c.step + 1};
    return child;
}

/* The stored-score range [lo, hi) of cell c, and whether only the exact
 * test may be used in it. */
static int cell_keys(const scan *s, fl_geo_cell c, uint64_t *lo, uint64_t *hi)
{
    uint64_t ghi = fl_geo_align52(cell_next(c));
    *lo = key_of(s->gs, fl_geo_align52(c));
    *hi = key_of(s->gs, ghi);
    return ghi > EXACT_LIMIT || !s->f.usable;
}

static int cell_class(const scan *s, fl_geo_cell c, int exact_only)
{
    if (exact_only) return FL_GEO_UNSURE;
    fl_geo_area a;
    (void)fl_geo_decode(&s->lon_r, &s->lat_r, c, &a);
    return fl_geo_filter_area(&s->f, &a);
}

/* A match's distance: exact, or (PRINT) the cheap approximation when
 * it applies, with *approx telling which. */
static double sc_dist(const scan *s, const double xy[2], int mode, int *approx)
{
    *approx = 0;
    if (mode == FL_GEO_DIST_PRINT) {
        int exact;
        double d = fl_geo_filter_distance_approx(&s->f, xy[0], xy[1], &exact);
        if (d >= 0) {
            *approx = !exact;
            return d;
        }
    }
    return fl_geo_filter_distance(&s->f, xy[0], xy[1]);
}

/* Decides the entry at cur: 1 when Redis counts it in the shape. xy gets
 * its point; *dist its distance when computed (dist_mode, see
 * FL_GEO_DIST_*), else -1, and *approx whether that is approximate; ab
 * (when not NULL) its 'a' bounds. known_in: its cell is wholly inside. */
static int sc_point(const scan *s, int known_in, int dist_mode, double ab[2],
                    double xy[2], double *dist, int *approx)
{
    fl_geo_decode_score(geohash_of(s->gs, s->cur), xy);
    int cls = FL_GEO_IN;
    if (!known_in) cls = fl_geo_filter_point(&s->f, xy[0], xy[1], ab);
    else if (ab) fl_geo_filter_abounds(&s->f, xy[0], xy[1], &ab[0], &ab[1]);
    *dist = -1;
    *approx = 0;
    if (cls == FL_GEO_OUT) return 0;
    if (cls == FL_GEO_UNSURE) return fl_geo_in_shape(s->shape, xy[0], xy[1], dist);
    if (dist_mode) *dist = sc_dist(s, xy, dist_mode, approx);
    return 1;
}

/* ---- search: Redis' order ---- */

/* The walk Redis does: its cells in its order, each in score order. */
typedef struct walk {
    scan s;
    fl_geo_result *r;
    size_t limit;        /* ANY: stop at this many matches; 0 = none */
    int dist_mode;       /* FL_GEO_DIST_*: distances for every match */
    int err;
    int done;
} walk;

static void wk_accept(walk *w, double dist, int approx)
{
    /* The reply will read the member's name: start that cache miss now,
     * while the scan goes on. A short record can still straddle two cache
     * lines (it starts 16-byte aligned), so ask for both. */
    __builtin_prefetch(w->s.cur_m);
    __builtin_prefetch((const char *)w->s.cur_m + 24);
    if (result_push(w->r, w->s.cur_m, dist, approx)) {
        w->err = -ENOMEM;
        return;
    }
    /* Redis checks its ANY limit right after each append. */
    if (w->limit && w->r->n >= w->limit) w->done = 1;
}

/* Consumes the entries below hi. all_in: the cell is wholly inside, so
 * without distances to report nothing needs decoding. */
static void wk_run(walk *w, uint64_t hi, int all_in)
{
    scan *s = &w->s;
    int lazy = all_in && !w->dist_mode;
    while (s->have && s->cur < hi) {
        double xy[2], dist = -1;
        int approx = 0;
        if (lazy || sc_point(s, all_in, w->dist_mode, NULL, xy, &dist, &approx)) {
            wk_accept(w, dist, approx);
            if (w->done || w->err) return;
        }
        sc_next(s);
    }
}

static void wk_cell(walk *w, fl_geo_cell c)
{
    scan *s = &w->s;
    uint64_t lo, hi;
    int exact_only = cell_keys(s, c, &lo, &hi);
    sc_goto(s, lo);
    if (!s->have || s->cur >= hi) return; /* nothing stored in this cell */
    int cls = cell_class(s, c, exact_only);
    if (cls == FL_GEO_OUT) return;
    if (cls == FL_GEO_UNSURE && !exact_only && c.step < FL_GEO_STEP_MAX &&
        sc_at_least(s, hi, PEEK)) {
        /* Sub-cells in score order keep Redis' order. */
        for (uint64_t k = 0; k < 4 && !w->done && !w->err; k++)
            wk_cell(w, cell_child(c, k));
        return;
    }
    wk_run(w, hi, cls == FL_GEO_IN);
}

static int walk_redis_order(walk *w, const fl_geo_cell *cells,
                            const int *order, int ncells)
{
    w->r->n = 0;
    for (int i = 0; i < ncells && !w->done && !w->err; i++)
        wk_cell(w, cells[order[i]]);
    return w->err;
}

/* ---- search: ordering ---- */

typedef int match_cmp(const fl_geo_match *a, const fl_geo_match *b);

/* Redis' comparators: by distance only, as -1/0/1. */
static int cmp_asc(const fl_geo_match *a, const fl_geo_match *b)
{
    if (a->dist > b->dist) return 1;
    if (a->dist == b->dist) return 0;
    return -1;
}

static int cmp_desc(const fl_geo_match *a, const fl_geo_match *b)
{
    return -cmp_asc(a, b);
}

static void swap_m(fl_geo_match *a, fl_geo_match *b)
{
    fl_geo_match t = *a;
    *a = *b;
    *b = t;
}

static void vecswap_m(fl_geo_match *a, fl_geo_match *b, size_t n)
{
    for (size_t i = 0; i < n; i++) swap_m(a + i, b + i);
}

static size_t med3(const fl_geo_match *v, size_t a, size_t b, size_t c,
                   match_cmp *cmp)
{
    if (cmp(v + a, v + b) < 0)
        return cmp(v + b, v + c) < 0 ? b : (cmp(v + a, v + c) < 0 ? c : a);
    return cmp(v + b, v + c) > 0 ? b : (cmp(v + a, v + c) < 0 ? a : c);
}

static void insertion_sort(fl_geo_match *v, size_t n, match_cmp *cmp)
{
    for (size_t m = 1; m < n; m++)
        for (size_t l = m; l > 0 && cmp(v + l - 1, v + l) > 0; l--)
            swap_m(v + l, v + l - 1);
}

/* Picks the pivot the way Bentley & McIlroy's qsort does. */
static size_t pick_pivot(const fl_geo_match *v, size_t n, match_cmp *cmp)
{
    size_t pm = n / 2;
    if (n > 7) {
        size_t pl = 0, pn = n - 1;
        if (n > 40) {
            size_t d = n / 8;
            pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
            pm = med3(v, pm - d, pm, pm + d, cmp);
            pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
        }
        pm = med3(v, pl, pm, pn, cmp);
    }
    return pm;
}

/*
 * The partial quicksort Redis 7.0 uses for COUNT (its pqsort: Bentley &
 * McIlroy's "Engineering a Sort Function" as in BSD qsort, skipping
 * partitions that lie wholly outside the wanted ranks). Reimplemented here
 * step for step - pivot choice, three-way partition, swap order - because
 * the order in which it leaves equal distances is part of the reply. The
 * 7.0.15 binary has no "nothing swapped: switch to insertion sort" step
 * (later pqsort.c copies do); replies with ties confirm this. `base` and
 * the rank range [lo, hi] are in elements of the whole array.
 */
static void psort(fl_geo_match *base, fl_geo_match *v, size_t n,
                  match_cmp *cmp, size_t lo, size_t hi)
{
    for (;;) {
        if (n < 7) {
            insertion_sort(v, n, cmp);
            return;
        }
        swap_m(v, v + pick_pivot(v, n, cmp));
        size_t pa = 1, pb = 1, pc = n - 1, pd = n - 1;
        int r;
        for (;;) {
            while (pb <= pc && (r = cmp(v + pb, v)) <= 0) {
                if (r == 0) {
                    swap_m(v + pa, v + pb);
                    pa++;
                }
                pb++;
            }
            while (pb <= pc && (r = cmp(v + pc, v)) >= 0) {
                if (r == 0) {
                    swap_m(v + pc, v + pd);
                    pd--;
                }
                pc--;
            }
            if (pb > pc) break;
            swap_m(v + pb, v + pc);
            pb++;
            pc--;
        }
        size_t k = pa < pb - pa ? pa : pb - pa;
        vecswap_m(v, v + pb - k, k);
        k = pd - pc < n - pd - 1 ? pd - pc : n - pd - 1;
        vecswap_m(v + pb, v + n - k, k);
        size_t s = (size_t)(v - base);
        size_t left = pb - pa;
        if (left > 1 && !(hi < s || lo >= s + left))
            psort(base, v, left, cmp, lo, hi);
        size_t right = pd - pc;
        if (right <= 1) return;
        v = v + n - right;
        n = right;
        s = (size_t)(v - base);
        if (hi < s || lo >= s + n) return;
    }
}

typedef int match_before(const fl_geo_match *a, const fl_geo_match *b);

static int dist_before_asc(const fl_geo_match *a, const fl_geo_match *b)
{
    return a->dist < b->dist;
}

static int dist_before_desc(const fl_geo_match *a, const fl_geo_match *b)
{
    return a->dist > b->dist;
}

/* Stable merge sort: b goes before a only when before(b, a). */
static int msort(fl_geo_match *v, size_t n, match_before *before)
{
    if (n < 2) return 0;
    fl_geo_match *tmp = malloc(n * sizeof(*tmp));
    if (!tmp) return -ENOMEM;
    fl_geo_match *src = v, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t i = 0; i < n; i += 2 * w) {
            size_t a = i, am = i + w < n ? i + w : n, b = am;
            size_t bm = i + 2 * w < n ? i + 2 * w : n, o = i;
            while (a < am && b < bm)
                dst[o++] = before(&src[b], &src[a]) ? src[b++] : src[a++];
            while (a < am) dst[o++] = src[a++];
            while (b < bm) dst[o++] = src[b++];
        }
        fl_geo_match *t = src;
        src = dst;
        dst = t;
    }
    if (src != v) memcpy(v, src, n * sizeof(*v));
    free(tmp);
    return 0;
}

/* Stable sort by distance (ascending or descending). */
static int stable_sort(fl_geo_match *v, size_t n, int desc)
{
    return msort(v, n, desc ? dist_before_desc : dist_before_asc);
}

static void exact_dist(const scan *s, fl_geo_match *e)
{
    double xy[2];
    fl_geo_decode_score(geohash_of(s->gs, e->m->score), xy);
    e->dist = fl_geo_filter_distance(&s->f, xy[0], xy[1]);
    e->approx = 0;
}

/* Exact distances where they are missing or approximate. */
static void fill_dists(const scan *s, fl_geo_match *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].dist < 0 || v[i].approx) exact_dist(s, &v[i]);
}

/* Distances close enough that approximations cannot order them. */
static int too_close(double a, double b)
{
    double m = a > b ? a : b;
    return fabs(a - b) <= 2 * (FL_GEO_APPROX_REL * m + FL_GEO_APPROX_ABS) * 1.01;
}

/* The scan position, kept in alo while sorting. */
static int seq_before_asc(const fl_geo_match *a, const fl_geo_match *b)
{
    return a->dist < b->dist || (a->dist == b->dist && a->alo < b->alo);
}

static int seq_before_desc(const fl_geo_match *a, const fl_geo_match *b)
{
    return a->dist > b->dist || (a->dist == b->dist && a->alo < b->alo);
}

/*
 * Sorts like a stable sort on Redis' exact distances, with approximate
 * ones where that cannot matter: sort by the distances at hand, then every
 * run of neighbours too close to be ordered by approximations gets exact
 * distances and is re-sorted by (distance, scan position). Anything
 * outside such a run is further away than both errors together, so its
 * place does not depend on them.
 */
static int sort_by_dist(const scan *s, fl_geo_result *r, int desc)
{
    int any_approx = 0;
    for (size_t i = 0; i < r->n; i++) {
        r->v[i].alo = (double)i;
        any_approx |= r->v[i].approx;
    }
    int rc = stable_sort(r->v, r->n, desc);
    if (rc || !any_approx) return rc;
    for (size_t i = 0; i < r->n;) {
        size_t j = i;
        int approx = r->v[i].approx;
        while (j + 1 < r->n && too_close(r->v[j].dist, r->v[j + 1].dist))
            approx |= r->v[++j].approx;
        if (j > i && approx) {
            fill_dists(s, r->v + i, j - i + 1);
            rc = msort(r->v + i, j - i + 1, desc ? seq_before_desc : seq_before_asc);
            if (rc) return rc;
        }
        i = j + 1;
    }
    return 0;
}

/* PRINT mode: an approximate distance stands only where it rounds to
 * the same four decimals as the exact one would, whatever its error. */
static void make_printable(const scan *s, fl_geo_result *r, double conv)
{
    for (size_t i = 0; i < r->n; i++) {
        fl_geo_match *e = &r->v[i];
        if (!e->approx) continue;
        double q = e->dist / conv * 10000.0;
        double err = (FL_GEO_APPROX_REL * e->dist + FL_GEO_APPROX_ABS) / conv * 10000.0;
        double frac = q - floor(q);
        if (!(fabs(frac - 0.5) > 4 * err + 1e-9 * q + 1e-9)) exact_dist(s, e);
    }
}

/* ---- search: COUNT n without ANY ----
 *
 * Redis computes every match and its distance, then partially sorts. The
 * n nearest (or farthest) only depend on the neighbourhood of the centre
 * (or of the far edge), so fleetd searches best-first: cells are taken
 * from a priority queue by their bound on 'a', split while they hold many
 * members, and dropped once they provably hold nothing better than the
 * n-th best match found so far. The matches kept are then reduced to the
 * candidates for the top n, which get exact distances. The answer stands
 * when the best n + 1 candidates have distinct distances (then any correct
 * sort, Redis' included, orders them the same way); otherwise, or when
 * fewer than n members match at all (Redis then sorts them all, stably),
 * the caller falls back to Redis' own procedure.
 */

typedef struct tn_node {
    double prio;         /* smaller first */
    double alo, ahi;     /* 'a' bounds of the cell */
    fl_geo_cell c;
} tn_node;

typedef struct topn {
    scan s;
    fl_geo_result *r;    /* matches found, with their bounds */
    size_t k;
    int desc;
    double *kh;          /* heap of the k best worst-case bounds so far */
    size_t kn;
    tn_node *q;          /* cells to visit, a binary heap on prio */
    size_t qn, qcap;
    int err;
} topn;

/* Beyond about 10000 km the rounding margins of fl_geo_a_widen do not
 * hold, so no pruning and no answer from bounds there. */
#define TOPN_MAX_A 0.5

static void dheap_down(double *h, size_t n, size_t i, int max)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && (max ? h[c + 1] > h[c] : h[c + 1] < h[c])) c++;
        if (max ? h[c] <= h[i] : h[c] >= h[i]) return;
        double t = h[c];
        h[c] = h[i];
        h[i] = t;
        i = c;
    }
}

static void dheap_up(double *h, size_t i, int max)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (max ? h[p] >= h[i] : h[p] <= h[i]) return;
        double t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}

/* Records a match's worst-case bound: its ahi when looking for the
 * nearest (keep the k smallest, max-heap), its alo for the farthest. */
static void tn_note(topn *t, double alo, double ahi)
{
    double v = t->desc ? alo : ahi;
    if (t->kn < t->k) {
        t->kh[t->kn] = v;
        dheap_up(t->kh, t->kn++, !t->desc);
    } else if (t->desc ? v > t->kh[0] : v < t->kh[0]) {
        t->kh[0] = v;
        dheap_down(t->kh, t->kn, 0, !t->desc);
    }
}

/* Can a cell with these bounds hold a candidate for the top k? */
static int tn_viable(const topn *t, double alo, double ahi)
{
    if (t->kn < t->k) return 1;
    double b = t->kh[0];
    if (b > TOPN_MAX_A) return 1;
    return t->desc ? ahi >= fl_geo_a_widen(b, -1) : alo <= fl_geo_a_widen(b, 1);
}

static void tn_push(topn *t, fl_geo_cell c)
{
    if (t->qn == t->qcap) {
        size_t nc = t->qcap ? t->qcap * 2 : 64;
        tn_node *nq = realloc(t->q, nc * sizeof(*nq));
        if (!nq) {
            t->err = -ENOMEM;
            return;
        }
        t->q = nq;
        t->qcap = nc;
    }
    tn_node n;
    fl_geo_area a;
    n.c = c;
    (void)fl_geo_decode(&t->s.lon_r, &t->s.lat_r, c, &a);
    fl_geo_filter_area_abounds(&t->s.f, &a, &n.alo, &n.ahi);
    n.prio = t->desc ? -n.ahi : n.alo;
    size_t i = t->qn++;
    while (i > 0 && t->q[(i - 1) / 2].prio > n.prio) {
        t->q[i] = t->q[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->q[i] = n;
}

static tn_node tn_pop(topn *t)
{
    tn_node top = t->q[0], last = t->q[--t->qn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= t->qn) break;
        if (c + 1 < t->qn && t->q[c + 1].prio < t->q[c].prio) c++;
        if (t->q[c].prio >= last.prio) break;
        t->q[i] = t->q[c];
        i = c;
    }
    if (t->qn) t->q[i] = last;
    return top;
}

/* Scans the members of one cell (cur is its first entry). */
static void tn_scan(topn *t, uint64_t hi, int all_in)
{
    scan *s = &t->s;
    while (s->have && s->cur < hi) {
        double xy[2], ab[2], dist;
        int approx;
        if (sc_point(s, all_in, FL_GEO_DIST_NONE, ab, xy, &dist, &approx)) {
            if (result_push(t->r, s->cur_m, dist, 0)) {
                t->err = -ENOMEM;
                return;
            }
            fl_geo_match *e = &t->r->v[t->r->n - 1];
            e->alo = ab[0];
            e->ahi = ab[1];
            tn_note(t, ab[0], ab[1]);
        }
        sc_next(s);
    }
}

static void tn_visit(topn *t, tn_node n)
{
    scan *s = &t->s;
    uint64_t lo, hi;
    int exact_only = cell_keys(s, n.c, &lo, &hi);
    sc_goto(s, lo);
    if (!s->have || s->cur >= hi) return;
    int cls = cell_class(s, n.c, exact_only);
    if (cls == FL_GEO_OUT) return;
    if (!exact_only && n.c.step < FL_GEO_STEP_MAX && sc_at_least(s, hi, PEEK)) {
        for (uint64_t k = 0; k < 4 && !t->err; k++) tn_push(t, cell_child(n.c, k));
        return;
    }
    tn_scan(t, hi, cls == FL_GEO_IN);
}

/* The top k from the matches found: 0 (answer in r), 1 (fall back) or
 * -ENOMEM. */
static int tn_answer(topn *t)
{
    fl_geo_result *r = t->r;
    if (t->kn < t->k || t->kh[0] > TOPN_MAX_A) return 1;
    double th = fl_geo_a_widen(t->kh[0], t->desc ? -1 : 1);
    size_t nc = 0;
    for (size_t i = 0; i < r->n; i++) {
        fl_geo_match *e = &r->v[i];
        if (t->desc ? e->ahi < th : e->alo > th) continue;
        r->v[nc++] = *e; /* compacting in place keeps the scan order */
    }
    r->n = nc;
    fill_dists(&t->s, r->v, nc);
    int rc = stable_sort(r->v, nc, t->desc);
    if (rc) return rc;
    size_t check = nc < t->k + 1 ? nc : t->k + 1;
    for (size_t i = 1; i < check; i++)
        if (t->desc ? !(r->v[i - 1].dist > r->v[i].dist)
                    : !(r->v[i - 1].dist < r->v[i].dist))
            return 1;
    r->n = t->k;
    return 0;
}

static int top_n(const fl_geoset *gs, const fl_geo_shape *shape,
                 const fl_geo_cell *cells, const int *order, int ncells,
                 size_t k, int desc, fl_geo_result *r)
{
    topn t;
    memset(&t, 0, sizeof(t));
    sc_init(&t.s, gs, shape);
    if (!t.s.f.usable) return 1;
    t.r = r;
    t.k = k;
    t.desc = desc;
    r->n = 0;
    t.kh = malloc(k * sizeof(*t.kh));
    if (!t.kh) return -ENOMEM;
    for (int i = 0; i < ncells; i++) tn_push(&t, cells[order[i]]);
    while (t.qn && !t.err) {
        tn_node n = tn_pop(&t);
        /* The queue is ordered by the same bound: nothing after can help. */
        if (!tn_viable(&t, n.alo, n.ahi)) break;
        tn_visit(&t, n);
    }
    int rc = t.err ? t.err : tn_answer(&t);
    free(t.kh);
    free(t.q);
    return rc;
}

/* ---- search: entry point ---- */

/* Orders and truncates the walk's matches as Redis' reply would. */
static int finish(walk *w, int sort, size_t count)
{
    fl_geo_result *r = w->r;
    if (sort == FL_GEO_SORT_NONE) {
        if (count && r->n > count) r->n = count;
        return 0;
    }
    int desc = sort == FL_GEO_SORT_DESC;
    if (count && count < r->n) {
        /* Redis' partial sort, for its placement of equal distances. */
        fill_dists(&w->s, r->v, r->n);
        psort(r->v, r->v, r->n, desc ? cmp_desc : cmp_asc, 0, count - 1);
        r->n = count;
        return 0;
    }
    return sort_by_dist(&w->s, r, desc);
}

int fl_geoset_search(const fl_geoset *gs, const fl_geo_query *q,
                     fl_geo_result *r)
{
    int sort = q->sort;
    size_t count = q->count > 0 ? (size_t)q->count : 0;
    /* Redis: COUNT without an order means the nearest ones, unless ANY. */
    if (count && sort == FL_GEO_SORT_NONE && !q->any) sort = FL_GEO_SORT_ASC;
    int desc = sort == FL_GEO_SORT_DESC;
    fl_geo_cell cells[9];
    int order[9];
    int ncells = fl_geo_search_cells(&q->shape, cells, order);
    r->n = 0;
    if (sort != FL_GEO_SORT_NONE && count && !q->any && count < fl_geoset_card(gs)) {
        int rc = top_n(gs, &q->shape, cells, order, ncells, count, desc, r);
        if (rc <= 0) return rc;
    }
    walk w;
    memset(&w, 0, sizeof(w));
    sc_init(&w.s, gs, &q->shape);
    w.r = r;
    w.limit = q->any ? count : 0;
    w.dist_mode = q->want_dist == FL_GEO_DIST_EXACT ? FL_GEO_DIST_EXACT :
                  (q->want_dist || sort != FL_GEO_SORT_NONE) ? FL_GEO_DIST_PRINT :
                  FL_GEO_DIST_NONE;
    int rc = walk_redis_order(&w, cells, order, ncells);
    if (rc == 0) rc = finish(&w, sort, count);
    if (rc == 0 && q->want_dist == FL_GEO_DIST_PRINT)
        make_printable(&w.s, r, q->shape.conversion);
    return rc;
}
