/*
 * test_json.c - the JSON writer: escapes, invalid UTF-8, numbers that
 * round-trip, fixed decimals. Every output is parsed back with libjansson.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "util/json.h"

static json_t *parse(const fl_buf *b)
{
    json_error_t err;
    json_t *j = json_loadb(b->data, b->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j) fail_msg("not JSON: %.*s (%s)", (int)b->len, b->data, err.text);
    return j;
}

static void test_strings(void **state)
{
    (void)state;
    fl_buf b;
    fl_buf_init(&b);
    const char raw[] = "a\"b\\c\n\t\x01 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x95";
    fl_json_str(&b, raw, sizeof(raw) - 1);
    json_t *j = parse(&b);
    assert_string_equal(json_string_value(j), raw);
    json_decref(j);
    /* Invalid UTF-8: a lone continuation, an overlong, a surrogate, a
     * truncated sequence at the end; each bad byte is U+FFFD. */
    const char bad[] = "x\x80y\xc0\xafz\xed\xa0\x80w\xe2\x82";
    b.len = 0;
    fl_json_str(&b, bad, sizeof(bad) - 1);
    j = parse(&b);
    assert_string_equal(json_string_value(j),
        "x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdw"
        "\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(j);
    b.len = 0;
    fl_json_str(&b, "a\0b", 3);
    j = parse(&b);
    assert_int_equal(json_string_length(j), 3);
    json_decref(j);
    fl_buf_free(&b);
}

static void test_numbers(void **state)
{
    (void)state;
    fl_buf b;
    fl_buf_init(&b);
    double vals[] = {0, -0.0, 1, -73.985512, 40.758, 1e-300, 1.7976931348623157e308,
                     0.1, 1.0 / 3, 123456789.123456789};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        b.len = 0;
        fl_json_num(&b, vals[i]);
        json_t *j = parse(&b);
        assert_true(json_number_value(j) == vals[i]);
        json_decref(j);
    }
    b.len = 0;
    fl_json_num(&b, NAN);
    fl_buf_append_str(&b, ",");
    fl_json_fixed(&b, INFINITY, 3);
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.data, "null,null", 9);
    struct { double v; int d; const char *want; } fixed[] = {
        {-73.98, 7, "-73.98"}, {40.7, 7, "40.7"}, {12.0, 2, "12"},
        {-0.0000001, 3, "0"}, {812.44, 1, "812.4"}, {5, 0, "5"},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        b.len = 0;
        fl_json_fixed(&b, fixed[i].v, fixed[i].d);
        fl_buf_append(&b, "", 1);
        assert_string_equal(b.data, fixed[i].want);
    }
    fl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
