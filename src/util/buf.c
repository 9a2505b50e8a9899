/*
 * buf.c - growable byte buffer and aborting allocators.
 *
 * Growth doubles capacity so appending n bytes one at a time is amortised
 * O(n). Allocation failure aborts: the server cannot answer a client it has
 * no memory to answer, and a partial reply would corrupt the stream.
 */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fl_oom(size_t n)
{
    fprintf(stderr, "fleetd: out of memory allocating %zu bytes\n", n);
    abort();
}

void *fl_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) fl_oom(n);
    return p;
}

void *fl_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fl_oom(n * size);
    return p;
}

void *fl_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) fl_oom(n);
    return q;
}

char *fl_xstrndup(const char *s, size_t n)
{
    char *p = fl_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void fl_buf_init(fl_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void fl_buf_free(fl_buf *b)
{
    free(b->data);
    fl_buf_init(b);
}

char *fl_buf_reserve(fl_buf *b, size_t extra)
{
    if (b->cap - b->len < extra) {
        size_t want = b->len + extra;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < want) cap *= 2;
        b->data = fl_xrealloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

void fl_buf_append(fl_buf *b, const void *p, size_t n)
{
    if (n == 0) return;
    memcpy(fl_buf_reserve(b, n), p, n);
    b->len += n;
}

void fl_buf_append_str(fl_buf *b, const char *s)
{
    fl_buf_append(b, s, strlen(s));
}

void fl_buf_vprintf(fl_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    char *dst = fl_buf_reserve(b, 128);
    int n = vsnprintf(dst, b->cap - b->len, fmt, cp);
    va_end(cp);
    if (n < 0) return;
    if ((size_t)n >= b->cap - b->len) {
        dst = fl_buf_reserve(b, (size_t)n + 1);
        n = vsnprintf(dst, b->cap - b->len, fmt, ap);
        if (n < 0) return;
    }
    b->len += (size_t)n;
}

void fl_buf_printf(fl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fl_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void fl_buf_consume(fl_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void fl_buf_insert(fl_buf *b, size_t off, const void *p, size_t n)
{
    fl_buf_reserve(b, n);
    memmove(b->data + off + n, b->data + off, b->len - off);
    memcpy(b->data + off, p, n);
    b->len += n;
}
