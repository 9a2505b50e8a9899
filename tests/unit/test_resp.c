/*
 * test_resp.c - the RESP parser and writer.
 *
 * The parser is checked on every frame shape Redis accepts, on every error
 * Redis reports (same strings), and on frames fed one byte at a time, which
 * must give the same command as the whole frame at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "proto/resp.h"

static const fl_resp_limits lim = {1024 * 1024, 512LL * 1024 * 1024, 65536, 0};

static int parse_all(const char *in, size_t len, fl_resp_cmd *c, size_t *used,
                     char *err)
{
    return fl_resp_parse(in, len, &lim, c, used, err, 128);
}

static void assert_arg(const fl_resp_cmd *c, int i, const char *s)
{
    assert_int_equal(c->argvlen[i], strlen(s));
    assert_memory_equal(c->argv[i], s, strlen(s));
}

static void test_multibulk(void **state)
{
    (void)state;
    fl_resp_cmd c;
    fl_resp_cmd_init(&c);
    const char *in = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\0ue\r\n*1\r\n$4\r\nPING\r\n";
    size_t len = 31 + 14, used;
    char err[128];
    assert_int_equal(parse_all(in, len, &c, &used, err), FL_RESP_OK);
    assert_int_equal(c.argc, 3);
    assert_arg(&c, 0, "SET");
    assert_int_equal(c.argvlen[2], 5);
    assert_memory_equal(c.argv[2], "va\0ue", 5);
    assert_int_equal(used, 31);
    assert_int_equal(parse_all(in + used, len - used, &c, &used, err), FL_RESP_OK);
    assert_arg(&c, 0, "PING");
    fl_resp_cmd_free(&c);
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    const char *in = "*2\r\n$4\r\nECHO\r\n$11\r\nhello world\r\n";
    size_t len = strlen(in), used = 0;
    char err[128];
    fl_resp_cmd c;
    fl_resp_cmd_init(&c);
    for (size_t n = 1; n < len; n++)
        assert_int_equal(parse_all(in, n, &c, &used, err), FL_RESP_INCOMPLETE);
    assert_int_equal(parse_all(in, len, &c, &used, err), FL_RESP_OK);
    assert_int_equal(used, len);
    assert_arg(&c, 1, "hello world");
    fl_resp_cmd_free(&c);
}

static void test_inline(void **state)
{
    (void)state;
    fl_resp_cmd c;
    fl_resp_cmd_init(&c);
    size_t used;
    char err[128];
    const char *in = "SET \"a b\" 'it\\'s' \"\\x41\\n\"\r\n";
    assert_int_equal(parse_all(in, strlen(in), &c, &used, err), FL_RESP_OK);
    assert_int_equal(c.argc, 4);
    assert_arg(&c, 1, "a b");
    assert_arg(&c, 2, "it's");
    assert_arg(&c, 3, "A\n");
    assert_int_equal(parse_all("\r\n", 2, &c, &used, err), FL_RESP_OK);
    assert_int_equal(c.argc, 0);
    assert_int_equal(parse_all("PING", 4, &c, &used, err), FL_RESP_INCOMPLETE);
    fl_resp_cmd_free(&c);
}

static void expect_error(const char *in, size_t len, const char *msg)
{
    fl_resp_cmd c;
    fl_resp_cmd_init(&c);
    size_t used;
    char err[128];
    assert_int_equal(parse_all(in, len, &c, &used, err), FL_RESP_ERROR);
    assert_string_equal(err, msg);
    fl_resp_cmd_free(&c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("*x\r\n", 4, "Protocol error: invalid multibulk length");
    expect_error("*1\r\n:1\r\n", 8, "Protocol error: expected '$', got ':'");
    expect_error("*1\r\n$-1\r\n", 9, "Protocol error: invalid bulk length");
    expect_error("*1\r\n$01\r\n", 9, "Protocol error: invalid bulk length");
    expect_error("\"abc\r\n", 6, "Protocol error: unbalanced quotes in request");
    expect_error("\"a\"b\r\n", 6, "Protocol error: unbalanced quotes in request");
    static char big[70000];
    memset(big, 'a', sizeof(big));
    expect_error(big, sizeof(big), "Protocol error: too big inline request");
    big[0] = '*';
    expect_error(big, sizeof(big), "Protocol error: too big mbulk count string");
    fl_resp_limits unauth = lim;
    unauth.unauthenticated = 1;
    fl_resp_cmd c;
    fl_resp_cmd_init(&c);
    size_t used;
    char err[128];
    assert_int_equal(fl_resp_parse("*11\r\n", 5, &unauth, &c, &used, err, 128),
                     FL_RESP_ERROR);
    assert_string_equal(err, "Protocol error: unauthenticated multibulk length");
    fl_resp_cmd_free(&c);
}

static void test_lying_header(void **state)
{
    (void)state;
    /* A header that announces a million arguments must not allocate for
     * them before they arrive. */
    fl_resp_cmd c;
    fl_resp_cmd_init(&c);
    size_t used;
    char err[128];
    assert_int_equal(parse_all("*1000000\r\n", 10, &c, &used, err),
                     FL_RESP_INCOMPLETE);
    assert_true(c.cap <= 64);
    fl_resp_cmd_free(&c);
}

static void test_writer(void **state)
{
    (void)state;
    fl_buf b;
    fl_buf_init(&b);
    fl_reply r2 = {&b, 2, 0};
    fl_reply_null(&r2);
    fl_reply_map(&r2, 2);
    fl_reply_double(&r2, 1.5);
    fl_reply_error(&r2, "ERR bad\r\nthing");
    size_t h = fl_reply_defer(&r2);
    fl_reply_int(&r2, 7);
    fl_reply_set_deferred(&r2, h, '%', 1);
    const char *want2 = "$-1\r\n*4\r\n$3\r\n1.5\r\n-ERR bad  thing\r\n*2\r\n:7\r\n";
    assert_int_equal(b.len, strlen(want2));
    assert_memory_equal(b.data, want2, b.len);
    assert_int_equal(r2.errors, 1);
    b.len = 0;
    fl_reply r3 = {&b, 3, 0};
    fl_reply_null(&r3);
    fl_reply_map(&r3, 2);
    fl_reply_double(&r3, 1.5);
    fl_reply_verbatim(&r3, "ab", 2);
    const char *want3 = "_\r\n%2\r\n,1.5\r\n=6\r\ntxt:ab\r\n";
    assert_int_equal(b.len, strlen(want3));
    assert_memory_equal(b.data, want3, b.len);
    fl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multibulk),    cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_inline),       cmocka_unit_test(test_errors),
        cmocka_unit_test(test_lying_header), cmocka_unit_test(test_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
