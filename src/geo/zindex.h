/*
 * zindex.h - an order-statistic B+tree of geo members, ordered like a Redis
 * sorted set: by score, then by member bytes (memcmp, shorter first on a
 * common prefix).
 *
 * Why a B+tree and not Redis' skiplist: a geohash score orders members along
 * a Z-order curve, so every geohash cell is one contiguous run of leaves.
 * Radius and box queries become a few sequential scans of 16-byte entries
 * (score + pointer) that never touch a member unless its score falls in a
 * cell, which is both faster and about half the memory of skiplist nodes.
 * Inner nodes carry subtree counts so ZRANK and ZRANGE by index are
 * O(log n).
 *
 * Ownership: the index stores borrowed fl_zmember pointers; it never frees
 * members (the geo set owns them). The index owns its nodes.
 * Errors: functions return 0 on success or a negative errno-style code;
 * allocation failure returns -ENOMEM and leaves the tree unchanged.
 */
#ifndef FL_GEO_ZINDEX_H
#define FL_GEO_ZINDEX_H

#include <stddef.h>
#include <stdint.h>

/* A member record. Allocated by the geo set as one block of
 * sizeof(fl_zmember) + len bytes. `score` is the 52-bit geohash (stored as
 * an integer; Redis exposes it as a double, which is exact below 2^53). */
typedef struct fl_zmember {
    uint64_t score;
    uint32_t len;
    char name[];
} fl_zmember;

/* One index entry: the score inline, so scans never touch the member. */
typedef struct fl_zentry {
    uint64_t score;
    fl_zmember *m;
} fl_zentry;

/* Compares (score, name) like Redis' zset order: <0, 0, >0. */
int fl_zmember_cmp(uint64_t score_a, const char *a, size_t alen,
                   uint64_t score_b, const char *b, size_t blen);

typedef struct fl_zindex fl_zindex;

/* Iterator: a position between entries. Valid until the tree is modified. */
typedef struct fl_zit {
    const void *leaf;
    int pos;
} fl_zit;

fl_zindex *fl_zindex_new(void);          /* NULL on allocation failure */
void fl_zindex_free(fl_zindex *z);       /* frees nodes, not members */

/* Inserts m at its (m->score, m->name) position. m must not be present. */
int fl_zindex_insert(fl_zindex *z, fl_zmember *m);
/* Removes the entry equal to (m->score, m->name); -ENOENT if absent. */
int fl_zindex_delete(fl_zindex *z, const fl_zmember *m);

size_t fl_zindex_count(const fl_zindex *z);
/* 0-based rank of m, or (size_t)-1 when absent. O(log n). */
size_t fl_zindex_rank(const fl_zindex *z, const fl_zmember *m);

/* Positions it before the entry of the given rank (rank == count: at end). */
void fl_zindex_seek_rank(const fl_zindex *z, size_t rank, fl_zit *it);
/* Positions it before the first entry with score >= min_score. */
void fl_zindex_seek_score(const fl_zindex *z, uint64_t min_score, fl_zit *it);
/* Returns the entry after the position and advances; 0 at the end. */
int fl_zit_next(fl_zit *it, uint64_t *score, fl_zmember **m);
/* Bulk form of fl_zit_next for tight scans: *e receives the entries from
 * the position to the end of its leaf, the iterator moves past them, and
 * their number is returned (0 at the end). The entries are borrowed and
 * valid until the tree is modified. */
size_t fl_zit_span(fl_zit *it, const fl_zentry **e);
/* Returns the entry before the position and moves back; 0 at the start. */
int fl_zit_prev(fl_zit *it, uint64_t *score, fl_zmember **m);

/* Bytes held by the tree's nodes (for memory accounting). */
size_t fl_zindex_bytes(const fl_zindex *z);

/* Checks every invariant (order, counts, fill, links); 0 when sound.
 * For tests and debug builds. */
int fl_zindex_check(const fl_zindex *z);

#endif
