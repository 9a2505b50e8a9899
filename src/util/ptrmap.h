/*
 * ptrmap.h - an open-addressing hash set of records found by a byte key
 * that the records carry themselves (vehicles by id, trips by id, fleets by
 * name).
 *
 * Why this shape: the key already lives inside the record, so the table
 * holds nothing but one pointer per slot (8 bytes, load <= 3/4) and a
 * lookup is one hash, a linear probe and a memcmp on the record it lands
 * on. The pointer's unused top 16 bits carry 16 bits of the key's hash,
 * so a probe past other records almost never touches them (a cache miss
 * each at millions of records). Deletion shifts the following run back
 * (no tombstones), so a table under insert/delete churn never degrades.
 *
 * Ownership: the map borrows its records and never frees them; it owns
 * its slot array. Errors: fl_ptrmap_put returns -ENOMEM on allocation
 * failure and leaves the map unchanged; nothing aborts.
 */
#ifndef FL_UTIL_PTRMAP_H
#define FL_UTIL_PTRMAP_H

#include <stddef.h>
#include <stdint.h>

/* Returns the key bytes of a record and their length. */
typedef const char *fl_ptrmap_key_fn(const void *rec, size_t *len);

typedef struct fl_ptrmap {
    uintptr_t *slots;   /* 0 = empty; else pointer | tag << 48 */
    size_t mask;        /* slots - 1; 0 with no table yet */
    size_t count;
    uint64_t seed;
    fl_ptrmap_key_fn *key_of;
} fl_ptrmap;

void fl_ptrmap_init(fl_ptrmap *m, uint64_t seed, fl_ptrmap_key_fn *key_of);
void fl_ptrmap_free(fl_ptrmap *m);       /* frees the slots, not records */
void *fl_ptrmap_get(const fl_ptrmap *m, const char *key, size_t len);
/* Adds rec, whose key must not be present. 0 or -ENOMEM. */
int fl_ptrmap_put(fl_ptrmap *m, void *rec);
/* Adds rec unless a record with its key is present (-EEXIST): one probe
 * sequence instead of a lookup and an insert. 0, -EEXIST or -ENOMEM. */
int fl_ptrmap_insert(fl_ptrmap *m, void *rec);
/* Removes and returns the record with that key, or NULL. */
void *fl_ptrmap_del(fl_ptrmap *m, const char *key, size_t len);
/* Bytes held by the slot array. */
size_t fl_ptrmap_bytes(const fl_ptrmap *m);
/* Grows the table now so that n records fit without a rehash. 0 or
 * -ENOMEM. */
int fl_ptrmap_reserve(fl_ptrmap *m, size_t n);
/* Hints the CPU to fetch the slot key would land on: a loader that
 * knows its next keys overlaps the cache misses of many inserts. */
void fl_ptrmap_prefetch(const fl_ptrmap *m, const char *key, size_t len);
/* Slot i's record or NULL, for walking all records: i < fl_ptrmap_slots. */
size_t fl_ptrmap_slots(const fl_ptrmap *m);
void *fl_ptrmap_at(const fl_ptrmap *m, size_t i);

#endif
