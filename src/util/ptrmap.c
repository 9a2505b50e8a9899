/*
 * ptrmap.c - linear probing with backward-shift deletion and hash tags in
 * the pointers' top bits; see ptrmap.h.
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

#define TAG_SHIFT 48
#define PTR_MASK (((uintptr_t)1 << TAG_SHIFT) - 1)

static uint64_t hash_of(const fl_ptrmap *m, const char *key, size_t len)
{
    return XXH3_64bits_withSeed(key, len, m->seed);
}

/* Home slot from the low bits, tag from the top 16: independent. */
static size_t home(const fl_ptrmap *m, uint64_t h)
{
    return (size_t)h & m->mask;
}

static uintptr_t tag_of(uint64_t h)
{
    return (uintptr_t)(h >> 48) << TAG_SHIFT;
}

static void *rec_of(uintptr_t s)
{
    return (void *)(s & PTR_MASK);
}

static int rec_has_key(const fl_ptrmap *m, uintptr_t s, uint64_t h,
                       const char *key, size_t len)
{
    if ((s & ~PTR_MASK) != tag_of(h)) return 0;
    size_t n;
    const char *k = m->key_of(rec_of(s), &n);
    return n == len && memcmp(k, key, len) == 0;
}

void *fl_ptrmap_get(const fl_ptrmap *m, const char *key, size_t len)
{
    if (!m->slots) return NULL;
    uint64_t h = hash_of(m, key, len);
    for (size_t i = home(m, h);; i = (i + 1) & m->mask) {
        uintptr_t s = m->slots[i];
        if (!s) return NULL;
        if (rec_has_key(m, s, h, key, len)) return rec_of(s);
    }
}

static size_t rec_hash_home(const fl_ptrmap *m, uintptr_t s, uint64_t *h)
{
    size_t len;
    const char *key = m->key_of(rec_of(s), &len);
    *h = hash_of(m, key, len);
    return home(m, *h);
}

static void place(fl_ptrmap *m, uintptr_t s)
{
    uint64_t h;
    size_t i = rec_hash_home(m, s, &h);
    while (m->slots[i]) i = (i + 1) & m->mask;
    m->slots[i] = s;
}

static int resize(fl_ptrmap *m, size_t nslots)
{
    uintptr_t *old = m->slots;
    size_t old_n = m->slots ? m->mask + 1 : 0;
    uintptr_t *slots = calloc(nslots, sizeof(*slots));
    if (!slots) return -ENOMEM;
    m->slots = slots;
    m->mask = nslots - 1;
    for (size_t i = 0; i < old_n; i++) {
        /* Rehashing reads every record: overlap those cache misses. */
        if (i + 16 < old_n && old[i + 16]) __builtin_prefetch(rec_of(old[i + 16]));
        if (old[i]) place(m, old[i]);
    }
    free(old);
    return 0;
}

static int fits(const fl_ptrmap *m, size_t n, size_t nslots)
{
    return m->slots && n * 4 <= nslots * 3;
}

int fl_ptrmap_reserve(fl_ptrmap *m, size_t n)
{
    size_t nslots = m->slots ? m->mask + 1 : 16;
    if (fits(m, n, nslots)) return 0;
    while (n * 4 > nslots * 3) nslots *= 2;
    return resize(m, nslots);
}

static int add(fl_ptrmap *m, void *rec, int unique)
{
    uintptr_t p = (uintptr_t)rec;
    /* User-space pointers leave the top 16 bits free (x86-64, arm64). */
    if (p & ~PTR_MASK) abort();
    if (!fits(m, m->count + 1, m->slots ? m->mask + 1 : 0)) {
        int rc = resize(m, m->slots ? (m->mask + 1) * 2 : 16);
        if (rc != 0) return rc;
    }
    size_t len;
    const char *key = m->key_of(rec, &len);
    uint64_t h = hash_of(m, key, len);
    size_t i = home(m, h);
    for (; m->slots[i]; i = (i + 1) & m->mask)
        if (unique && rec_has_key(m, m->slots[i], h, key, len)) return -EEXIST;
    m->slots[i] = p | tag_of(h);
    m->count++;
    return 0;
}

int fl_ptrmap_put(fl_ptrmap *m, void *rec)
{
    return add(m, rec, 0);
}

int fl_ptrmap_insert(fl_ptrmap *m, void *rec)
{
    return add(m, rec, 1);
}

/* Moves later members of the probe run into the hole at `hole` when their
 * home slot allows it, so lookups never meet a gap inside their run. */
static void close_hole(fl_ptrmap *m, size_t hole)
{
    for (size_t j = (hole + 1) & m->mask; m->slots[j]; j = (j + 1) & m->mask) {
        uint64_t h;
        size_t home = rec_hash_home(m, m->slots[j], &h);
        /* j's record may move back to `hole` unless its home lies in
         * (hole, j] going around the ring. */
        int home_between = hole <= j ? (home > hole && home <= j)
                                     : (home > hole || home <= j);
        if (home_between) continue;
        m->slots[hole] = m->slots[j];
        m->slots[j] = 0;
        hole = j;
    }
}

void *fl_ptrmap_del(fl_ptrmap *m, const char *key, size_t len)
{
    if (!m->slots) return NULL;
    uint64_t h = hash_of(m, key, len);
    for (size_t i = home(m, h);; i = (i + 1) & m->mask) {
        uintptr_t s = m->slots[i];
        if (!s) return NULL;
        if (!rec_has_key(m, s, h, key, len)) continue;
        m->slots[i] = 0;
        m->count--;
        close_hole(m, i);
        return rec_of(s);
    }
}

void fl_ptrmap_prefetch(const fl_ptrmap *m, const char *key, size_t len)
{
    if (m->slots) __builtin_prefetch(&m->slots[home(m, hash_of(m, key, len))], 1);
}

size_t fl_ptrmap_slots(const fl_ptrmap *m)
{
    return m->slots ? m->mask + 1 : 0;
}

void *fl_ptrmap_at(const fl_ptrmap *m, size_t i)
{
    return rec_of(m->slots[i]);
}

size_t fl_ptrmap_bytes(const fl_ptrmap *m)
{
    return m->slots ? (m->mask + 1) * sizeof(void *) : 0;
}
