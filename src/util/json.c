/*
 * json.c - JSON tokens into an fl_buf (see json.h for why by hand).
 */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none:
 * rejects overlongs, surrogates and code points past U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

void fl_json_str(fl_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    fl_buf_append(b, "\"", 1);
    size_t run = 0; /* bytes copied verbatim, flushed in one append */
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            run++, i++;
            continue;
        }
        size_t seq = c >= 0x80 ? utf8_seq(p + i, n - i) : 0;
        if (seq) {
            run += seq, i += seq;
            continue;
        }
        fl_buf_append(b, p + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') fl_buf_printf(b, "\\%c", c);
        else if (c == '\n') fl_buf_append(b, "\\n", 2);
        else if (c == '\t') fl_buf_append(b, "\\t", 2);
        else if (c < 0x20) fl_buf_printf(b, "\\u%04x", c);
        else fl_buf_append(b, "\\ufffd", 6);
        i++;
    }
    fl_buf_append(b, p + n - run, run);
    fl_buf_append(b, "\"", 1);
}

void fl_json_cstr(fl_buf *b, const char *s)
{
    fl_json_str(b, s, strlen(s));
}

void fl_json_key(fl_buf *b, const char *key)
{
    fl_buf_printf(b, "\"%s\":", key);
}

void fl_json_num(fl_buf *b, double d)
{
    if (!isfinite(d)) {
        fl_buf_append(b, "null", 4);
        return;
    }
    char tmp[32];
    /* %.17g always round-trips; try shorter first for readable output. */
    for (int prec = 15; prec <= 17; prec++) {
        int k = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (k > 0 && (prec == 17 || strtod(tmp, NULL) == d)) {
            fl_buf_append(b, tmp, (size_t)k);
            return;
        }
    }
}

/* Fixed decimals by integer arithmetic: snprintf's %f costs ~10x more,
 * and a 100,000-vehicle list prints 200,000 coordinates. Exact for
 * |d| * 10^digits below 2^53; the caller's range check sends the rest to
 * snprintf. */
static void fixed_fast(fl_buf *b, double d, int digits, int64_t scale)
{
    char tmp[32], *p = tmp + sizeof(tmp);
    int64_t v = llround(d * (double)scale);
    int neg = v < 0;
    uint64_t u = neg ? (uint64_t)(-v) : (uint64_t)v;
    uint64_t ip = u / (uint64_t)scale, fp = u % (uint64_t)scale;
    int nd = digits;
    while (nd > 0 && fp % 10 == 0) {
        fp /= 10;
        nd--;
    }
    for (int i = 0; i < nd; i++) {
        *--p = (char)('0' + fp % 10);
        fp /= 10;
    }
    if (nd > 0) *--p = '.';
    do {
        *--p = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip);
    if (neg && u) *--p = '-';
    fl_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void fl_json_fixed(fl_buf *b, double d, int digits)
{
    if (!isfinite(d)) {
        fl_buf_append(b, "null", 4);
        return;
    }
    static const int64_t pow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000,
                                    10000000, 100000000};
    if (digits >= 0 && digits <= 8 && fabs(d) * (double)pow10[digits] < 9e15) {
        fixed_fast(b, d, digits, pow10[digits]);
        return;
    }
    char tmp[64];
    int k = snprintf(tmp, sizeof(tmp), "%.*f", digits, d);
    if (k <= 0 || (size_t)k >= sizeof(tmp)) {
        fl_json_num(b, d);
        return;
    }
    if (digits > 0) {
        while (k > 1 && tmp[k - 1] == '0') k--;
        if (tmp[k - 1] == '.') k--;
    }
    if (k == 2 && tmp[0] == '-' && tmp[1] == '0') { /* "-0" reads oddly */
        fl_buf_append(b, "0", 1);
        return;
    }
    fl_buf_append(b, tmp, (size_t)k);
}

void fl_json_int(fl_buf *b, long long v)
{
    fl_buf_printf(b, "%lld", v);
}

void fl_json_bool(fl_buf *b, int v)
{
    fl_buf_append_str(b, v ? "true" : "false");
}
