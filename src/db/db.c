/*
 * db.c - the keyspace hash table.
 *
 * Chained buckets, power-of-two table, doubled when the load reaches 1 and
 * halved when it falls under 1/8. Keys are hashed with seeded XXH3 so that
 * a client choosing key names cannot force every key into one chain.
 * Rehashing is done at once, not incrementally like Redis: fleetd keeps its
 * bulk data inside values (a geo set of millions of members is one key), so
 * the keyspace itself stays small and a full rehash is cheap.
 *
 * SCAN uses Redis' reverse-binary cursor: incrementing the cursor's
 * reversed bits visits buckets in an order under which a table that grows
 * or shrinks between calls still has every old bucket's keys either already
 * visited or still ahead.
 */
#include "db.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../geo/geoset.h"
#include "../util/buf.h"

typedef struct fl_dbentry {
    struct fl_dbentry *next;
    /* Geo values are also on a list of their own, so the gauges that sum
     * over geo sets cost O(geo keys), not O(all keys). */
    struct fl_dbentry *geo_prev, *geo_next;
    uint64_t hash;
    fl_obj obj;
    size_t klen;
    char key[];
} fl_dbentry;

struct fl_db {
    fl_dbentry **table;
    size_t mask;     /* table size - 1 */
    size_t count;
    size_t str_bytes;
    uint64_t seed;
    fl_dbentry *geo_head;
};

#define FL_DB_MIN_SIZE 16

static uint64_t key_hash(const fl_db *db, const char *key, size_t klen)
{
    return XXH3_64bits_withSeed(key, klen, db->seed);
}

fl_db *fl_db_new(uint64_t hash_seed)
{
    fl_db *db = fl_xcalloc(1, sizeof(*db));
    db->table = fl_xcalloc(FL_DB_MIN_SIZE, sizeof(*db->table));
    db->mask = FL_DB_MIN_SIZE - 1;
    db->seed = hash_seed;
    return db;
}

/* Frees the value of e (not e itself) and forgets its accounting. */
static void value_release(fl_db *db, fl_dbentry *e)
{
    fl_obj *o = &e->obj;
    if (o->type == FL_OBJ_STRING) {
        db->str_bytes -= o->u.str.len;
        free(o->u.str.ptr);
    } else if (o->type == FL_OBJ_GEO) {
        if (e->geo_prev) e->geo_prev->geo_next = e->geo_next;
        else db->geo_head = e->geo_next;
        if (e->geo_next) e->geo_next->geo_prev = e->geo_prev;
        fl_geoset_free(o->u.geo);
    }
    o->type = 0;
}

static void entry_free(fl_db *db, fl_dbentry *e)
{
    value_release(db, e);
    free(e);
}

void fl_db_flush(fl_db *db)
{
    for (size_t i = 0; i <= db->mask; i++) {
        fl_dbentry *e = db->table[i];
        while (e) {
            fl_dbentry *next = e->next;
            entry_free(db, e);
            e = next;
        }
        db->table[i] = NULL;
    }
    db->count = 0;
    db->geo_head = NULL;
}

void fl_db_free(fl_db *db)
{
    if (!db) return;
    fl_db_flush(db);
    free(db->table);
    free(db);
}

static void db_resize(fl_db *db, size_t size)
{
    fl_dbentry **t = fl_xcalloc(size, sizeof(*t));
    for (size_t i = 0; i <= db->mask; i++) {
        fl_dbentry *e = db->table[i];
        while (e) {
            fl_dbentry *next = e->next;
            size_t b = e->hash & (size - 1);
            e->next = t[b];
            t[b] = e;
            e = next;
        }
    }
    free(db->table);
    db->table = t;
    db->mask = size - 1;
}

static fl_dbentry **find_slot(fl_db *db, const char *key, size_t klen,
                              uint64_t h)
{
    fl_dbentry **pp = &db->table[h & db->mask];
    for (; *pp; pp = &(*pp)->next) {
        fl_dbentry *e = *pp;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return pp;
    }
    return pp;
}

fl_obj *fl_db_get(fl_db *db, const char *key, size_t klen)
{
    fl_dbentry **pp = find_slot(db, key, klen, key_hash(db, key, klen));
    return *pp ? &(*pp)->obj : NULL;
}

/* Returns the entry for key, creating it (with type 0) if absent. */
static fl_dbentry *upsert(fl_db *db, const char *key, size_t klen)
{
    uint64_t h = key_hash(db, key, klen);
    fl_dbentry **pp = find_slot(db, key, klen, h);
    if (*pp) {
        value_release(db, *pp);
        return *pp;
    }
    fl_dbentry *e = fl_xmalloc(sizeof(*e) + klen);
    e->hash = h;
    e->klen = klen;
    memcpy(e->key, key, klen);
    e->obj.type = 0;
    e->next = NULL;
    *pp = e;
    db->count++;
    if (db->count > db->mask + 1) db_resize(db, (db->mask + 1) * 2);
    return e;
}

void fl_db_set_string(fl_db *db, const char *key, size_t klen,
                      const char *val, size_t vlen)
{
    char *copy = fl_xmalloc(vlen ? vlen : 1);
    memcpy(copy, val, vlen);
    fl_dbentry *e = upsert(db, key, klen);
    e->obj.type = FL_OBJ_STRING;
    e->obj.u.str.ptr = copy;
    e->obj.u.str.len = vlen;
    db->str_bytes += vlen;
}

void fl_db_set_geo(fl_db *db, const char *key, size_t klen,
                   struct fl_geoset *geo)
{
    fl_dbentry *e = upsert(db, key, klen);
    e->obj.type = FL_OBJ_GEO;
    e->obj.u.geo = geo;
    e->geo_prev = NULL;
    e->geo_next = db->geo_head;
    if (db->geo_head) db->geo_head->geo_prev = e;
    db->geo_head = e;
}

uint64_t fl_db_geo_members(const fl_db *db)
{
    uint64_t n = 0;
    for (const fl_dbentry *e = db->geo_head; e; e = e->geo_next)
        n += fl_geoset_card(e->obj.u.geo);
    return n;
}

int fl_db_del(fl_db *db, const char *key, size_t klen)
{
    fl_dbentry **pp = find_slot(db, key, klen, key_hash(db, key, klen));
    fl_dbentry *e = *pp;
    if (!e) return 0;
    *pp = e->next;
    entry_free(db, e);
    db->count--;
    size_t size = db->mask + 1;
    if (size > FL_DB_MIN_SIZE && db->count < size / 8)
        db_resize(db, size / 2);
    return 1;
}

size_t fl_db_size(const fl_db *db)
{
    return db->count;
}

size_t fl_db_bytes(const fl_db *db)
{
    size_t bytes = (db->mask + 1) * sizeof(*db->table) + db->str_bytes;
    for (size_t i = 0; i <= db->mask; i++) {
        for (const fl_dbentry *e = db->table[i]; e; e = e->next) {
            bytes += sizeof(*e) + e->klen;
            if (e->obj.type == FL_OBJ_GEO) bytes += fl_geoset_bytes(e->obj.u.geo);
        }
    }
    return bytes;
}

const char *fl_obj_type_name(const fl_obj *o)
{
    if (!o) return "none";
    return o->type == FL_OBJ_GEO ? "zset" : "string";
}

static uint64_t rev64(uint64_t v)
{
    v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
    v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
    v = ((v >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((v & 0x0F0F0F0F0F0F0F0FULL) << 4);
    v = ((v >> 8) & 0x00FF00FF00FF00FFULL) | ((v & 0x00FF00FF00FF00FFULL) << 8);
    v = ((v >> 16) & 0x0000FFFF0000FFFFULL) | ((v & 0x0000FFFF0000FFFFULL) << 16);
    return (v >> 32) | (v << 32);
}

uint64_t fl_db_scan(fl_db *db, uint64_t cursor, size_t count,
                    fl_db_key_fn *fn, void *ud)
{
    if (count == 0) count = 1;
    uint64_t mask = db->mask;
    do {
        for (const fl_dbentry *e = db->table[cursor & mask]; e; e = e->next)
            fn(ud, e->key, e->klen, &e->obj);
        /* Increment the reversed cursor over the bits of the mask. */
        cursor |= ~mask;
        cursor = rev64(cursor);
        cursor++;
        cursor = rev64(cursor);
    } while (cursor && --count);
    return cursor;
}
