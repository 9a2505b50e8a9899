/*
 * test_numbers.c - fl_parse_double, which every coordinate and radius
 * goes through. Its fast path for plain decimals must give bit for bit
 * what strtod gives (Redis parses with strtod, and a GEOADD score must
 * not differ in the last bit), and must accept and refuse exactly what
 * strtod does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"

/* What fl_parse_double must do, written with strtod alone. */
static int reference_parse(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || s[0] == ' ' || isnan(v)) return -1;
    if (errno == ERANGE && (isinf(v) || v == 0)) return -1;
    *out = v;
    return 0;
}

static void expect_same(const char *s)
{
    double want = 0, got = 0;
    int want_rc = reference_parse(s, &want);
    int got_rc = fl_parse_double(s, strlen(s), &got);
    if (want_rc != got_rc || (want_rc == 0 && memcmp(&want, &got, sizeof(want)))) {
        fail_msg("'%s': strtod %d %.17g, fl_parse_double %d %.17g", s, want_rc,
                 want, got_rc, got);
    }
}

static void test_edge_cases(void **state)
{
    (void)state;
    const char *cases[] = {
        "0", "-0", "+0", "0.0", "-0.0", "1.", ".5", "-.5", "+.5", ".", "-", "+",
        "", "1..2", "1.2.3", "--1", "+-1", "1-", " 1", "1 ", "1e3", "1E-3",
        "inf", "-inf", "nan", "0x1p3", "123456789012345", "1234567890123456",
        "0.123456789012345", "0.1234567890123456", "999999999999999.",
        "-179.999999999999", "85.05112878", "-73.98765432", "40.7128",
        "000000000000001.5", "0000000000000000001", "1e400", "1e-400",
        "12345678901234567890", "180", "-180.0000001",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_same(cases[i]);
}

/* Random plain decimals in every split of up to 17 digits around the
 * point, so both the fast path (up to 15) and the fallback are crossed. */
static void test_random_decimals(void **state)
{
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char s[40];
    for (int n = 0; n < 300000; n++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int digits = 1 + (int)(x % 17), point = (int)((x >> 8) % (uint64_t)(digits + 1));
        size_t len = 0;
        if ((x >> 16) & 1) s[len++] = '-';
        uint64_t d = x >> 20;
        for (int k = 0; k < digits; k++) {
            if (k == point) s[len++] = '.';
            s[len++] = (char)('0' + (d % 10));
            d = d / 10 ? d / 10 : x * 31 + (uint64_t)k;
        }
        s[len] = '\0';
        expect_same(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_random_decimals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
