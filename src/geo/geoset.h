/*
 * geoset.h - the value stored under a geo key: members with a score, kept
 * both in a hash (name -> member) and in an order-statistic index ordered
 * like a Redis sorted set (score, then name).
 *
 * Why this shape: GEOADD/GEOPOS/ZSCORE look members up by name, searches
 * and ZRANGE walk the index by score. Each member is one allocation (the
 * fl_zmember record) that both structures point to, so a member costs its
 * record, one 8-byte hash slot and one 16-byte index entry: no per-member
 * dict entries, skiplist nodes or string copies.
 *
 * Scores. A geo set normally holds 52-bit geohashes (integers). GEORADIUS
 * ... STOREDIST and GEOSEARCHSTORE ... STOREDIST create sorted sets whose
 * scores are distances, which Redis then serves like any geo key (GEOPOS
 * decodes (uint64_t)score). So a set has a kind, fixed at creation:
 *  - FL_GEOSET_GEOHASH: m->score is the integer score itself;
 *  - FL_GEOSET_DOUBLE:  m->score holds the IEEE-754 bits of a non-negative
 *    double score (for such doubles the bit patterns sort like the values,
 *    so the index needs no special case).
 * fl_geoset_value() turns a stored score into the double Redis would hold.
 *
 * Search. fl_geoset_search() returns exactly the members, in exactly the
 * order, that Redis 7.0's georadiusGeneric would reply with, including
 * COUNT/ANY truncation and ASC/DESC ordering with Redis' tie behaviour. It
 * is built for dense data: it skips score ranges whose cells lie outside
 * the shape, accepts cells wholly inside without distance computations,
 * decides most points with cheap bounds, and for COUNT without ANY computes
 * exact distances only for the few candidates that can make the top N.
 *
 * Ownership: the set owns its members; pointers to members (fl_zmember,
 * search results) are borrowed and valid until the set is modified or
 * freed. Errors: functions return 0 or a negative errno code (-ENOMEM on
 * allocation failure, leaving the set unchanged); none aborts.
 */
#ifndef FL_GEO_GEOSET_H
#define FL_GEO_GEOSET_H

#include <stddef.h>
#include <stdint.h>

#include "geohash.h"
#include "zindex.h"

typedef struct fl_geoset fl_geoset;

enum fl_geoset_kind { FL_GEOSET_GEOHASH = 0, FL_GEOSET_DOUBLE = 1 };

/* A new empty set of geohash kind; the seed keys the member hash (pick it
 * per set so that colliding names cannot be precomputed). NULL on OOM. */
fl_geoset *fl_geoset_new(uint64_t seed);
/* The same with an explicit kind (enum fl_geoset_kind). */
fl_geoset *fl_geoset_new_kind(uint64_t seed, int kind);
void fl_geoset_free(fl_geoset *gs); /* NULL is fine */

int fl_geoset_kind(const fl_geoset *gs);
size_t fl_geoset_card(const fl_geoset *gs);
/* Approximate heap bytes: members, hash table, index and the set itself. */
size_t fl_geoset_bytes(const fl_geoset *gs);

/* ZADD-style flags and outcomes. */
enum { FL_GEOSET_NX = 1, FL_GEOSET_XX = 2 };
enum {
    FL_GEOSET_NOP = 0,     /* nothing changed */
    FL_GEOSET_ADDED = 1,   /* a new member */
    FL_GEOSET_UPDATED = 2  /* an existing member got a different score */
};

/* Adds name with the given score, or updates its score, honouring NX
 * (only add) and XX (only update). *outcome receives FL_GEOSET_*. A
 * geohash set accepts integer scores in [0, 2^63] only (-EINVAL
 * otherwise); a double set accepts scores >= 0. 0 or -ENOMEM/-EINVAL. */
int fl_geoset_add(fl_geoset *gs, const char *name, size_t len, double score,
                  int flags, int *outcome);

/* Sizes the member hash for n members at once (a loader that knows the
 * count avoids growing through every size on the way). 0 or -ENOMEM. */
int fl_geoset_reserve(fl_geoset *gs, size_t n);
/* Hints the CPU to fetch the hash slot of name (see fl_ptrmap_prefetch). */
void fl_geoset_prefetch(const fl_geoset *gs, const char *name, size_t len);
/* Removes name; returns 1 if it was there, 0 if not. Never fails. */
int fl_geoset_remove(fl_geoset *gs, const char *name, size_t len);

/* The member record of name, or NULL. */
const fl_zmember *fl_geoset_find(const fl_geoset *gs, const char *name,
                                 size_t len);

/* The double Redis holds for a stored score. */
double fl_geoset_value(const fl_geoset *gs, uint64_t stored);
/* The position a member stands for (Redis decodes (uint64_t)score). */
void fl_geoset_point(const fl_geoset *gs, const fl_zmember *m, double xy[2]);
/* The geohash Redis decodes for a member: (uint64_t)score. */
uint64_t fl_geoset_geohash(const fl_geoset *gs, const fl_zmember *m);

/* 0-based rank of name in (score, name) order; -ENOENT when absent. */
int fl_geoset_rank(const fl_geoset *gs, const char *name, size_t len,
                   size_t *rank);

/* The index, for walking members in order (ZRANGE). Borrowed. */
const fl_zindex *fl_geoset_index(const fl_geoset *gs);

/* Positions it before the first member whose score value is > v (strict)
 * or >= v (not strict); v must not be NaN. */
void fl_geoset_seek_value(const fl_geoset *gs, double v, int strict,
                          fl_zit *it);

/* ---- search ---- */

enum { FL_GEO_SORT_NONE = 0, FL_GEO_SORT_ASC = 1, FL_GEO_SORT_DESC = 2 };

/* What the caller does with distances. PRINT: it prints d / conversion
 * with four decimals the way Redis does (llrint of d * 10^4), so a
 * distance may be an approximation that provably prints the same; EXACT:
 * it needs the very double Redis computes (STOREDIST). */
enum { FL_GEO_DIST_NONE = 0, FL_GEO_DIST_PRINT = 1, FL_GEO_DIST_EXACT = 2 };

typedef struct fl_geo_query {
    fl_geo_shape shape;
    int sort;           /* as the client asked; COUNT without ANY implies
                           ASC exactly as in Redis, applied inside */
    long long count;    /* 0: unlimited */
    int any;            /* stop after `count` matches in scan order */
    int want_dist;      /* FL_GEO_DIST_* */
} fl_geo_query;

typedef struct fl_geo_match {
    const fl_zmember *m;
    double dist;        /* meters, for every returned match when the query
                           wanted distances (see FL_GEO_DIST_*) */
    double alo, ahi;    /* scratch for the search */
    int approx;         /* scratch: dist is an approximation */
} fl_geo_match;

/* Search results. Owned by the caller: zero-initialise, pass to any number
 * of searches (the array is reused), then fl_geo_result_free. */
typedef struct fl_geo_result {
    fl_geo_match *v;
    size_t n, cap;
} fl_geo_result;

void fl_geo_result_free(fl_geo_result *r);

/* Runs a GEOSEARCH-family query. On success r->v[0..n) are the members to
 * reply with, in reply order. 0 or -ENOMEM. */
int fl_geoset_search(const fl_geoset *gs, const fl_geo_query *q,
                     fl_geo_result *r);

#endif
