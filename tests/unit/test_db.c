/*
 * test_db.c - the keyspace: set/get/del through growth and shrink, types,
 * and SCAN's guarantee that a key present for the whole scan is returned
 * even when the table is resized between calls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"

#define NKEYS 20000

static void key_name(int i, char *out, size_t n)
{
    snprintf(out, n, "key:%d", i);
}

static void test_set_get_del(void **state)
{
    (void)state;
    fl_db *db = fl_db_new(12345);
    char k[32];
    for (int i = 0; i < NKEYS; i++) {
        key_name(i, k, sizeof(k));
        fl_db_set_string(db, k, strlen(k), k, strlen(k));
    }
    assert_int_equal(fl_db_size(db), NKEYS);
    for (int i = 0; i < NKEYS; i++) {
        key_name(i, k, sizeof(k));
        fl_obj *o = fl_db_get(db, k, strlen(k));
        assert_non_null(o);
        assert_int_equal(o->type, FL_OBJ_STRING);
        assert_memory_equal(o->u.str.ptr, k, strlen(k));
    }
    fl_db_set_string(db, "key:1", 5, "new", 3);
    assert_int_equal(fl_db_size(db), NKEYS);
    assert_memory_equal(fl_db_get(db, "key:1", 5)->u.str.ptr, "new", 3);
    for (int i = 0; i < NKEYS; i += 2) {
        key_name(i, k, sizeof(k));
        assert_int_equal(fl_db_del(db, k, strlen(k)), 1);
        assert_int_equal(fl_db_del(db, k, strlen(k)), 0);
    }
    assert_int_equal(fl_db_size(db), NKEYS / 2);
    assert_null(fl_db_get(db, "key:0", 5));
    assert_string_equal(fl_obj_type_name(fl_db_get(db, "key:1", 5)), "string");
    assert_string_equal(fl_obj_type_name(NULL), "none");
    fl_db_flush(db);
    assert_int_equal(fl_db_size(db), 0);
    fl_db_free(db);
}

typedef struct seen {
    unsigned char *hits;
} seen;

static void mark(void *ud, const char *key, size_t klen, const fl_obj *obj)
{
    (void)obj;
    seen *s = ud;
    char tmp[32];
    memcpy(tmp, key, klen);
    tmp[klen] = '\0';
    int i = (int)strtol(tmp + 4, NULL, 10);
    if (i < NKEYS) s->hits[i] = 1;
}

static void test_scan_across_resize(void **state)
{
    (void)state;
    fl_db *db = fl_db_new(99);
    char k[32];
    for (int i = 0; i < NKEYS / 4; i++) {
        key_name(i, k, sizeof(k));
        fl_db_set_string(db, k, strlen(k), "v", 1);
    }
    seen s = {calloc(NKEYS, 1)};
    uint64_t cursor = 0;
    int calls = 0, added = NKEYS / 4;
    do {
        cursor = fl_db_scan(db, cursor, 10, mark, &s);
        /* Grow the table while the scan is under way. */
        for (int j = 0; j < 50 && added < NKEYS; j++, added++) {
            key_name(added, k, sizeof(k));
            fl_db_set_string(db, k, strlen(k), "v", 1);
        }
        calls++;
    } while (cursor != 0 && calls < 1000000);
    for (int i = 0; i < NKEYS / 4; i++) assert_true(s.hits[i]);
    free(s.hits);
    fl_db_free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_del),
        cmocka_unit_test(test_scan_across_resize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
