/*
 * resp.h - the Redis protocol (RESP2/RESP3): request parser and reply writer.
 *
 * The parser is incremental and zero-copy: it is handed the bytes received so
 * far (always starting at the first unconsumed byte) and either completes a
 * command whose arguments point into that input, asks for more bytes, or
 * reports a protocol error with Redis' own message. Progress through a
 * half-received multibulk is kept in the fl_resp_cmd as offsets, not
 * pointers, so the caller may move or grow its buffer between calls and a
 * command sent one byte at a time still costs O(its length) in total.
 *
 * The writer appends RESP to an fl_buf. RESP3-only types (map, set, double,
 * null, verbatim) degrade to their RESP2 shapes when the client speaks RESP2,
 * exactly as Redis does, so command handlers never branch on the version.
 */
#ifndef FL_PROTO_RESP_H
#define FL_PROTO_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "../util/buf.h"

enum fl_resp_status {
    FL_RESP_OK = 0,         /* a full command was parsed */
    FL_RESP_INCOMPLETE = 1, /* need more bytes */
    FL_RESP_ERROR = -1      /* protocol error; err holds the message */
};

typedef struct fl_resp_limits {
    long long max_multibulk;   /* maximum number of arguments */
    long long max_bulk;        /* maximum length of one argument */
    size_t max_inline;         /* maximum length of an inline command line */
    int unauthenticated;       /* Redis' tighter limits before AUTH */
} fl_resp_limits;

/* One command being parsed. Owned by the connection; the arrays it holds
 * are freed by fl_resp_cmd_free. After FL_RESP_OK, argv[i] points into the
 * input passed to the last fl_resp_parse call (or into inline_store) and
 * stays valid until the caller changes that input or parses again. */
typedef struct fl_resp_cmd {
    int argc;
    int cap;
    const char **argv;
    size_t *argvlen;
    size_t *argoff;
    char *inline_store;
    /* resume state for a partially received multibulk */
    long long mb_len;  /* 0 = not inside a multibulk */
    size_t mb_pos;     /* offset of the next unparsed byte */
} fl_resp_cmd;

void fl_resp_cmd_init(fl_resp_cmd *c);
void fl_resp_cmd_free(fl_resp_cmd *c);
/* Forgets progress on the current command (after an error or a reset). */
void fl_resp_cmd_reset(fl_resp_cmd *c);

/* Parses at most one command from in[0..len). On FL_RESP_OK, *consumed is
 * the number of bytes the command took. argc == 0 means an empty command
 * (blank inline line, "*0"): skip it. On FL_RESP_ERROR, err (errlen bytes)
 * receives Redis' message without the leading '-'. Never reads beyond
 * in[len-1]. */
int fl_resp_parse(const char *in, size_t len, const fl_resp_limits *lim,
                  fl_resp_cmd *cmd, size_t *consumed, char *err, size_t errlen);

/* ---- reply writer ---- */

typedef struct fl_reply {
    fl_buf *out;
    int proto;    /* 2 or 3 */
    int errors;   /* error replies written (for the error counters) */
} fl_reply;

void fl_reply_simple(fl_reply *r, const char *s);          /* +s */
/* One line of a given type: "<type><s>\r\n" (s must hold no CR or LF). */
void fl_reply_line(fl_reply *r, char type, const char *s, size_t n);
/* Writes v in decimal at p (room for 20 bytes); returns the length. */
size_t fl_fmt_u64(char *p, uint64_t v);
void fl_reply_ok(fl_reply *r);                             /* +OK */
/* Error line. msg must begin with its code ("ERR ...", "WRONGTYPE ...");
 * CR and LF in msg are replaced by spaces, as Redis does. */
void fl_reply_error(fl_reply *r, const char *msg);
void fl_reply_errorf(fl_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void fl_reply_int(fl_reply *r, long long v);
void fl_reply_bulk(fl_reply *r, const void *p, size_t n);
void fl_reply_bulk_str(fl_reply *r, const char *s);
void fl_reply_bulk_ll(fl_reply *r, long long v);
void fl_reply_null(fl_reply *r);        /* $-1 / _ */
void fl_reply_null_array(fl_reply *r);  /* *-1 / _ */
void fl_reply_array(fl_reply *r, long n);
void fl_reply_map(fl_reply *r, long n);  /* %n / *2n */
void fl_reply_set(fl_reply *r, long n);  /* ~n / *n */
/* A double as Redis' addReplyDouble: RESP3 ",%.17g", RESP2 bulk "%.17g"
 * (inf/-inf spelled as Redis spells them). */
void fl_reply_double(fl_reply *r, double d);
/* Verbatim text (RESP3 "=len\r\ntxt:..."), plain bulk in RESP2. */
void fl_reply_verbatim(fl_reply *r, const char *p, size_t n);
void fl_reply_bool(fl_reply *r, int v); /* #t/#f / :1/:0 */

/* Deferred aggregate length: returns a handle; write the elements, then
 * call fl_reply_set_deferred with the real count. type is '*', '%' or '~'
 * ('%' and '~' degrade to '*' in RESP2, with n doubled for maps). */
size_t fl_reply_defer(fl_reply *r);
void fl_reply_set_deferred(fl_reply *r, size_t handle, char type, long n);

#endif
