/*
 * resp.c - RESP request parsing and reply writing.
 *
 * Parsing follows Redis' networking.c behaviour and error strings exactly,
 * because clients and proxies match on them: "*<n>\r\n" then n times
 * "$<len>\r\n<bytes>\r\n", or an inline line split like sdssplitargs. The
 * multibulk parser records argument offsets as it goes (mb_pos, argoff) so a
 * frame that arrives in pieces is never rescanned from its start.
 */
#include "resp.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FL_PROTO_INLINE_MAX 65536  /* Redis' PROTO_INLINE_MAX_SIZE */
#define FL_UNAUTH_MAX_MULTIBULK 10
#define FL_UNAUTH_MAX_BULK 16384

void fl_resp_cmd_init(fl_resp_cmd *c)
{
    memset(c, 0, sizeof(*c));
}

void fl_resp_cmd_free(fl_resp_cmd *c)
{
    free(c->argv);
    free(c->argvlen);
    free(c->argoff);
    free(c->inline_store);
    fl_resp_cmd_init(c);
}

void fl_resp_cmd_reset(fl_resp_cmd *c)
{
    c->argc = 0;
    c->mb_len = 0;
    c->mb_pos = 0;
}

static void cmd_reserve(fl_resp_cmd *c, int n)
{
    if (n <= c->cap) return;
    int cap = c->cap ? c->cap : 8;
    while (cap < n) cap *= 2;
    c->argv = fl_xrealloc(c->argv, sizeof(*c->argv) * (size_t)cap);
    c->argvlen = fl_xrealloc(c->argvlen, sizeof(*c->argvlen) * (size_t)cap);
    c->argoff = fl_xrealloc(c->argoff, sizeof(*c->argoff) * (size_t)cap);
    c->cap = cap;
}

/* Strict decimal parse of p[0..n) like Redis' string2ll: no spaces, no
 * leading '+', no leading zeros except "0" itself. */
static int parse_ll(const char *p, size_t n, long long *out)
{
    if (n == 0 || n > 20) return -1;
    size_t i = 0;
    int neg = 0;
    if (p[0] == '-') {
        neg = 1;
        i = 1;
        if (n == 1) return -1;
    }
    if (p[i] == '0' && n > i + 1) return -1;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (ULLONG_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1) return -1;
        *out = (long long)(0 - v);
    } else {
        if (v > (unsigned long long)LLONG_MAX) return -1;
        *out = (long long)v;
    }
    return 0;
}

static int set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return FL_RESP_ERROR;
}

/* ---- inline commands ---- */

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* Reads one double-quoted argument starting after the quote. Writes the
 * unescaped bytes to *dst. Returns bytes of input used, or -1 if the quote
 * is unbalanced or not followed by a space or the end. */
static long split_dquoted(const char *p, size_t n, char **dst)
{
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        if (c == '\\' && i + 3 < n && p[i + 1] == 'x' &&
            hex_val(p[i + 2]) >= 0 && hex_val(p[i + 3]) >= 0) {
            *(*dst)++ = (char)(hex_val(p[i + 2]) * 16 + hex_val(p[i + 3]));
            i += 4;
        } else if (c == '\\' && i + 1 < n) {
            char e = p[i + 1];
            *(*dst)++ = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t'
                      : e == 'b' ? '\b' : e == 'a' ? '\a' : e;
            i += 2;
        } else if (c == '"') {
            if (i + 1 < n && !is_space(p[i + 1])) return -1;
            return (long)(i + 1);
        } else {
            *(*dst)++ = c;
            i++;
        }
    }
    return -1;
}

static long split_squoted(const char *p, size_t n, char **dst)
{
    size_t i = 0;
    while (i < n) {
        if (p[i] == '\\' && i + 1 < n && p[i + 1] == '\'') {
            *(*dst)++ = '\'';
            i += 2;
        } else if (p[i] == '\'') {
            if (i + 1 < n && !is_space(p[i + 1])) return -1;
            return (long)(i + 1);
        } else {
            *(*dst)++ = p[i++];
        }
    }
    return -1;
}

/* Splits line[0..n) into arguments stored in cmd->inline_store. */
static int split_inline(const char *line, size_t n, fl_resp_cmd *cmd,
                        const fl_resp_limits *lim)
{
    free(cmd->inline_store);
    cmd->inline_store = fl_xmalloc(n + 1);
    char *dst = cmd->inline_store;
    size_t i = 0;
    cmd->argc = 0;
    while (1) {
        while (i < n && is_space(line[i])) i++;
        if (i >= n) break;
        if (cmd->argc >= lim->max_multibulk) return -1;
        char *start = dst;
        long used;
        if (line[i] == '"') {
            used = split_dquoted(line + i + 1, n - i - 1, &dst);
        } else if (line[i] == '\'') {
            used = split_squoted(line + i + 1, n - i - 1, &dst);
        } else {
            used = 0;
            while (i + (size_t)used < n && !is_space(line[i + (size_t)used]))
                *dst++ = line[i + (size_t)used++];
            used--; /* no opening quote to skip */
        }
        if (used < 0) return -1;
        i += (size_t)used + 1;
        cmd_reserve(cmd, cmd->argc + 1);
        cmd->argoff[cmd->argc] = (size_t)(start - cmd->inline_store);
        cmd->argvlen[cmd->argc] = (size_t)(dst - start);
        cmd->argc++;
    }
    for (int a = 0; a < cmd->argc; a++)
        cmd->argv[a] = cmd->inline_store + cmd->argoff[a];
    return 0;
}

static int parse_inline(const char *in, size_t len, const fl_resp_limits *lim,
                        fl_resp_cmd *cmd, size_t *consumed, char *err,
                        size_t errlen)
{
    const char *nl = memchr(in, '\n', len);
    size_t max_inline = lim->max_inline ? lim->max_inline : FL_PROTO_INLINE_MAX;
    if (!nl) {
        if (len > max_inline)
            return set_err(err, errlen, "Protocol error: too big inline request");
        return FL_RESP_INCOMPLETE;
    }
    size_t linelen = (size_t)(nl - in);
    if (linelen > max_inline)
        return set_err(err, errlen, "Protocol error: too big inline request");
    if (linelen && in[linelen - 1] == '\r') linelen--;
    if (split_inline(in, linelen, cmd, lim) != 0)
        return set_err(err, errlen,
                       "Protocol error: unbalanced quotes in request");
    *consumed = (size_t)(nl - in) + 1;
    return FL_RESP_OK;
}

/* ---- multibulk ---- */

/* Finds "<prefix><number>\r\n" at in[pos..len). Returns 1 when complete
 * (number in *v, *next after the LF), 0 when more bytes are needed, -1 when
 * the line is absurdly long (caller picks the message). The number itself
 * is validated by the caller. */
static int read_len_line(const char *in, size_t len, size_t pos,
                         const char **num, size_t *numlen, size_t *next)
{
    const char *cr = memchr(in + pos, '\r', len - pos);
    if (!cr) return (len - pos > FL_PROTO_INLINE_MAX) ? -1 : 0;
    size_t crpos = (size_t)(cr - in);
    if (crpos + 1 >= len) return 0; /* the '\n' has not arrived */
    *num = in + pos + 1;
    *numlen = crpos - pos - 1;
    *next = crpos + 2;
    return 1;
}

static int parse_mb_header(const char *in, size_t len,
                           const fl_resp_limits *lim, fl_resp_cmd *cmd,
                           size_t *consumed, char *err, size_t errlen)
{
    const char *num;
    size_t numlen, next;
    int rc = read_len_line(in, len, 0, &num, &numlen, &next);
    if (rc < 0)
        return set_err(err, errlen, "Protocol error: too big mbulk count string");
    if (rc == 0) return FL_RESP_INCOMPLETE;
    long long n;
    if (parse_ll(num, numlen, &n) != 0 || n > INT_MAX || n > lim->max_multibulk)
        return set_err(err, errlen, "Protocol error: invalid multibulk length");
    if (lim->unauthenticated && n > FL_UNAUTH_MAX_MULTIBULK)
        return set_err(err, errlen,
                       "Protocol error: unauthenticated multibulk length");
    if (n <= 0) {
        cmd->argc = 0;
        *consumed = next;
        return FL_RESP_OK;
    }
    cmd->mb_len = n;
    cmd->mb_pos = next;
    cmd->argc = 0;
    /* Grow lazily: a lying header must not reserve memory up front. */
    cmd_reserve(cmd, n < 64 ? (int)n : 64);
    return FL_RESP_INCOMPLETE;
}

static int parse_mb_args(const char *in, size_t len, const fl_resp_limits *lim,
                         fl_resp_cmd *cmd, char *err, size_t errlen)
{
    while (cmd->argc < cmd->mb_len) {
        size_t pos = cmd->mb_pos;
        if (pos >= len) return FL_RESP_INCOMPLETE;
        const char *num;
        size_t numlen, next;
        int rc = read_len_line(in, len, pos, &num, &numlen, &next);
        if (rc < 0)
            return set_err(err, errlen,
                           "Protocol error: too big bulk count string");
        if (in[pos] != '$') {
            char msg[64];
            snprintf(msg, sizeof(msg), "Protocol error: expected '$', got '%c'",
                     in[pos]);
            return set_err(err, errlen, msg);
        }
        if (rc == 0) return FL_RESP_INCOMPLETE;
        long long blen;
        if (parse_ll(num, numlen, &blen) != 0 || blen < 0 ||
            blen > lim->max_bulk)
            return set_err(err, errlen, "Protocol error: invalid bulk length");
        if (lim->unauthenticated && blen > FL_UNAUTH_MAX_BULK)
            return set_err(err, errlen,
                           "Protocol error: unauthenticated bulk length");
        if (len - next < (size_t)blen + 2) return FL_RESP_INCOMPLETE;
        cmd_reserve(cmd, cmd->argc + 1);
        cmd->argoff[cmd->argc] = next;
        cmd->argvlen[cmd->argc] = (size_t)blen;
        cmd->argc++;
        cmd->mb_pos = next + (size_t)blen + 2;
    }
    return FL_RESP_OK;
}

int fl_resp_parse(const char *in, size_t len, const fl_resp_limits *lim,
                  fl_resp_cmd *cmd, size_t *consumed, char *err, size_t errlen)
{
    *consumed = 0;
    if (cmd->mb_len == 0) {
        if (len == 0) return FL_RESP_INCOMPLETE;
        if (in[0] != '*') {
            cmd->argc = 0;
            return parse_inline(in, len, lim, cmd, consumed, err, errlen);
        }
        int rc = parse_mb_header(in, len, lim, cmd, consumed, err, errlen);
        if (rc != FL_RESP_INCOMPLETE || cmd->mb_len == 0) return rc;
    }
    int rc = parse_mb_args(in, len, lim, cmd, err, errlen);
    if (rc != FL_RESP_OK) {
        if (rc == FL_RESP_ERROR) fl_resp_cmd_reset(cmd);
        return rc;
    }
    for (int a = 0; a < cmd->argc; a++) cmd->argv[a] = in + cmd->argoff[a];
    *consumed = cmd->mb_pos;
    cmd->mb_len = 0;
    cmd->mb_pos = 0;
    return FL_RESP_OK;
}

/* ---- writer ----
 *
 * Length lines and bulk strings are formatted by hand rather than with
 * snprintf: a search reply writes thousands of them, and GEOADD's whole
 * reply is one ":1\r\n". */

/* Room for n more bytes; the common case (already there) stays inline. */
static char *room(fl_reply *r, size_t n)
{
    fl_buf *b = r->out;
    return b->cap - b->len >= n ? b->data + b->len : fl_buf_reserve(b, n);
}

size_t fl_fmt_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

static void put_len_line(fl_reply *r, char type, long long v)
{
    char *p = room(r, 24);
    size_t k = 0;
    p[k++] = type;
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        p[k++] = '-';
        u = 0 - u;
    }
    k += fl_fmt_u64(p + k, u);
    p[k++] = '\r';
    p[k++] = '\n';
    r->out->len += k;
}

void fl_reply_line(fl_reply *r, char type, const char *s, size_t n)
{
    char *p = room(r, n + 3);
    p[0] = type;
    memcpy(p + 1, s, n);
    p[n + 1] = '\r';
    p[n + 2] = '\n';
    r->out->len += n + 3;
}

void fl_reply_simple(fl_reply *r, const char *s)
{
    fl_reply_line(r, '+', s, strlen(s));
}

void fl_reply_ok(fl_reply *r)
{
    fl_buf_append(r->out, "+OK\r\n", 5);
}

void fl_reply_error(fl_reply *r, const char *msg)
{
    size_t n = strlen(msg);
    char *p = fl_buf_reserve(r->out, n + 3);
    p[0] = '-';
    for (size_t i = 0; i < n; i++)
        p[i + 1] = (msg[i] == '\r' || msg[i] == '\n') ? ' ' : msg[i];
    p[n + 1] = '\r';
    p[n + 2] = '\n';
    r->out->len += n + 3;
    r->errors++;
}

void fl_reply_errorf(fl_reply *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fl_reply_error(r, msg);
}

void fl_reply_int(fl_reply *r, long long v)
{
    put_len_line(r, ':', v);
}

void fl_reply_bulk(fl_reply *r, const void *p, size_t n)
{
    char *d = room(r, n + 26);
    size_t k = 0;
    d[k++] = '$';
    k += fl_fmt_u64(d + k, n);
    d[k++] = '\r';
    d[k++] = '\n';
    memcpy(d + k, p, n);
    k += n;
    d[k++] = '\r';
    d[k++] = '\n';
    r->out->len += k;
}

void fl_reply_bulk_str(fl_reply *r, const char *s)
{
    fl_reply_bulk(r, s, strlen(s));
}

void fl_reply_bulk_ll(fl_reply *r, long long v)
{
    char tmp[32];
    int k = snprintf(tmp, sizeof(tmp), "%lld", v);
    fl_reply_bulk(r, tmp, (size_t)k);
}

void fl_reply_null(fl_reply *r)
{
    if (r->proto >= 3) fl_buf_append(r->out, "_\r\n", 3);
    else fl_buf_append(r->out, "$-1\r\n", 5);
}

void fl_reply_null_array(fl_reply *r)
{
    if (r->proto >= 3) fl_buf_append(r->out, "_\r\n", 3);
    else fl_buf_append(r->out, "*-1\r\n", 5);
}

void fl_reply_array(fl_reply *r, long n)
{
    put_len_line(r, '*', n);
}

void fl_reply_map(fl_reply *r, long n)
{
    if (r->proto >= 3) put_len_line(r, '%', n);
    else put_len_line(r, '*', 2 * n);
}

void fl_reply_set(fl_reply *r, long n)
{
    put_len_line(r, r->proto >= 3 ? '~' : '*', n);
}

void fl_reply_double(fl_reply *r, double d)
{
    char tmp[64];
    int k;
    if (isinf(d)) k = snprintf(tmp, sizeof(tmp), "%s", d > 0 ? "inf" : "-inf");
    else k = snprintf(tmp, sizeof(tmp), "%.17g", d);
    if (r->proto >= 3) fl_reply_line(r, ',', tmp, (size_t)k);
    else fl_reply_bulk(r, tmp, (size_t)k);
}

void fl_reply_verbatim(fl_reply *r, const char *p, size_t n)
{
    if (r->proto < 3) {
        fl_reply_bulk(r, p, n);
        return;
    }
    put_len_line(r, '=', (long long)n + 4);
    fl_buf_append(r->out, "txt:", 4);
    fl_buf_append(r->out, p, n);
    fl_buf_append(r->out, "\r\n", 2);
}

void fl_reply_bool(fl_reply *r, int v)
{
    if (r->proto >= 3) fl_buf_append(r->out, v ? "#t\r\n" : "#f\r\n", 4);
    else fl_buf_append(r->out, v ? ":1\r\n" : ":0\r\n", 4);
}

size_t fl_reply_defer(fl_reply *r)
{
    return r->out->len;
}

void fl_reply_set_deferred(fl_reply *r, size_t handle, char type, long n)
{
    char tmp[32];
    if (r->proto < 3) {
        if (type == '%') n *= 2;
        type = '*';
    }
    int k = snprintf(tmp, sizeof(tmp), "%c%ld\r\n", type, n);
    fl_buf_insert(r->out, handle, tmp, (size_t)k);
}
