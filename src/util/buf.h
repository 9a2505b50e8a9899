/*
 * buf.h - a growable byte buffer, the one output container of fleetd.
 *
 * Replies, INFO text and the metrics page are all built by appending to an
 * fl_buf, so there is exactly one place that grows memory for output. The
 * server binary treats allocation failure as fatal (see docs/architecture.md,
 * "Out of memory"): fl_buf_* abort with a message rather than return NULL,
 * which keeps every reply writer free of error paths.
 *
 * Ownership: the fl_buf owns `data`; fl_buf_free releases it and leaves an
 * empty buffer that may be reused.
 */
#ifndef FL_UTIL_BUF_H
#define FL_UTIL_BUF_H

#include <stddef.h>
#include <stdarg.h>

typedef struct fl_buf {
    char *data;
    size_t len;
    size_t cap;
} fl_buf;

void fl_buf_init(fl_buf *b);
void fl_buf_free(fl_buf *b);
/* Ensures room for `extra` more bytes; returns pointer to data+len. */
char *fl_buf_reserve(fl_buf *b, size_t extra);
void fl_buf_append(fl_buf *b, const void *p, size_t n);
void fl_buf_append_str(fl_buf *b, const char *s);
void fl_buf_printf(fl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void fl_buf_vprintf(fl_buf *b, const char *fmt, va_list ap);
/* Drops the first n bytes (used after a partial socket write). */
void fl_buf_consume(fl_buf *b, size_t n);
/* Inserts n bytes at offset off, shifting the tail. */
void fl_buf_insert(fl_buf *b, size_t off, const void *p, size_t n);

/* Allocation helpers that abort on failure (server policy). */
void *fl_xmalloc(size_t n);
void *fl_xcalloc(size_t n, size_t size);
void *fl_xrealloc(void *p, size_t n);
char *fl_xstrndup(const char *s, size_t n);

#endif
