/*
 * db.h - the keyspace: key -> typed value, the one database (db 0).
 *
 * fleetd keeps Redis' model of named keys holding typed values so that
 * TYPE, DEL, EXISTS, KEYS, SCAN and WRONGTYPE behave as Redis clients
 * expect. Two value types exist: plain strings (SET/GET) and geo sets
 * (GEOADD and the sorted-set reads). The keyspace is a chained hash table
 * grown by doubling; SCAN walks it with Redis' reverse-binary cursor, so
 * every key present for the whole scan is returned at least once even if
 * the table grows in between.
 *
 * Ownership: the db owns keys and values. fl_db_get returns a borrowed
 * pointer valid until the key is deleted or overwritten.
 */
#ifndef FL_DB_DB_H
#define FL_DB_DB_H

#include <stddef.h>
#include <stdint.h>

struct fl_geoset;

enum fl_obj_type {
    FL_OBJ_STRING = 1,
    FL_OBJ_GEO = 2
};

typedef struct fl_obj {
    int type;
    union {
        struct {
            char *ptr;
            size_t len;
        } str;
        struct fl_geoset *geo;
    } u;
} fl_obj;

typedef struct fl_db fl_db;

fl_db *fl_db_new(uint64_t hash_seed);
void fl_db_free(fl_db *db);

/* Borrowed pointer or NULL. */
fl_obj *fl_db_get(fl_db *db, const char *key, size_t klen);
/* Stores a string value (copied), replacing any value of any type. */
void fl_db_set_string(fl_db *db, const char *key, size_t klen,
                      const char *val, size_t vlen);
/* Takes ownership of geo and stores it under key, replacing any value. */
void fl_db_set_geo(fl_db *db, const char *key, size_t klen,
                   struct fl_geoset *geo);
/* Returns 1 if the key existed and was removed, else 0. */
int fl_db_del(fl_db *db, const char *key, size_t klen);
size_t fl_db_size(const fl_db *db);
void fl_db_flush(fl_db *db);
/* Bytes used by keys and values, for INFO memory and the metrics. */
size_t fl_db_bytes(const fl_db *db);

/* Members in all geo sets; O(number of geo keys). */
uint64_t fl_db_geo_members(const fl_db *db);

const char *fl_obj_type_name(const fl_obj *o);

/* Calls fn for keys in the buckets visited; returns the next cursor (0 when
 * the scan is complete). Visits about `count` buckets. */
typedef void fl_db_key_fn(void *ud, const char *key, size_t klen,
                          const fl_obj *obj);
uint64_t fl_db_scan(fl_db *db, uint64_t cursor, size_t count,
                    fl_db_key_fn *fn, void *ud);

#endif
