/*
 * ptrmap.c - linear probing with backward-shift deletion; see ptrmap.h.
 *
 * Growth doubles the table at 3/4 load in one pass. The records hold their
 * own keys, so a rehash re-reads every key: at millions of records that is
 * a pause of tens of milliseconds once per doubling, written down in
 * docs/architecture.md as a known cost.
 */
#include "ptrmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

void fl_ptrmap_init(fl_ptrmap *m, uint64_t seed, fl_ptrmap_key_fn *key_of)
{
    memset(m, 0, sizeof(*m));
    m->seed = seed;
    m->key_of = key_of;
}

void fl_ptrmap_free(fl_ptrmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
}

static size_t slot_of(const fl_ptrmap *m, const char *key, size_t len)
{
    return (size_t)XXH3_64bits_withSeed(key, len, m->seed) & m->mask;
}

static int rec_has_key(const fl_ptrmap *m, const void *rec, const char *key,
                       size_t len)
{
    size_t n;
    const char *k = m->key_of(rec, &n);
    return n == len && memcmp(k, key, len) == 0;
}

void *fl_ptrmap_get(const fl_ptrmap *m, const char *key, size_t len)
{
    if (!m->slots) return NULL;
    for (size_t i = slot_of(m, key, len);; i = (i + 1) & m->mask) {
        void *rec = m->slots[i];
        if (!rec) return NULL;
        if (rec_has_key(m, rec, key, len)) return rec;
    }
}

static void place(fl_ptrmap *m, void *rec)
{
    size_t len;
    const char *key = m->key_of(rec, &len);
    size_t i = slot_of(m, key, len);
    while (m->slots[i]) i = (i + 1) & m->mask;
    m->slots[i] = rec;
}

static int grow(fl_ptrmap *m)
{
    size_t nslots = m->slots ? (m->mask + 1) * 2 : 16;
    void **old = m->slots;
    size_t old_n = m->slots ? m->mask + 1 : 0;
    void **slots = calloc(nslots, sizeof(*slots));
    if (!slots) return -ENOMEM;
    m->slots = slots;
    m->mask = nslots - 1;
    for (size_t i = 0; i < old_n; i++)
        if (old[i]) place(m, old[i]);
    free(old);
    return 0;
}

int fl_ptrmap_put(fl_ptrmap *m, void *rec)
{
    if (!m->slots || (m->count + 1) * 4 > (m->mask + 1) * 3) {
        int rc = grow(m);
        if (rc != 0) return rc;
    }
    place(m, rec);
    m->count++;
    return 0;
}

/* Moves later members of the probe run into the hole at `hole` when their
 * home slot allows it, so lookups never meet a gap inside their run. */
static void close_hole(fl_ptrmap *m, size_t hole)
{
    for (size_t j = (hole + 1) & m->mask; m->slots[j]; j = (j + 1) & m->mask) {
        size_t len;
        const char *key = m->key_of(m->slots[j], &len);
        size_t home = slot_of(m, key, len);
        /* j's record may move back to `hole` unless its home lies in
         * (hole, j] going around the ring. */
        int home_between = hole <= j ? (home > hole && home <= j)
                                     : (home > hole || home <= j);
        if (home_between) continue;
        m->slots[hole] = m->slots[j];
        m->slots[j] = NULL;
        hole = j;
    }
}

void *fl_ptrmap_del(fl_ptrmap *m, const char *key, size_t len)
{
    if (!m->slots) return NULL;
    for (size_t i = slot_of(m, key, len);; i = (i + 1) & m->mask) {
        void *rec = m->slots[i];
        if (!rec) return NULL;
        if (!rec_has_key(m, rec, key, len)) continue;
        m->slots[i] = NULL;
        m->count--;
        close_hole(m, i);
        return rec;
    }
}

size_t fl_ptrmap_bytes(const fl_ptrmap *m)
{
    return m->slots ? (m->mask + 1) * sizeof(void *) : 0;
}
