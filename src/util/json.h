/*
 * json.h - writing JSON text into an fl_buf.
 *
 * Parsing request bodies is libjansson's job (the edges call it); writing
 * is done here by hand because replies are built on the event loop at
 * hundreds of thousands of objects per second, and a DOM built only to be
 * serialised would cost an allocation per value. These helpers emit
 * tokens; the caller places commas and braces.
 *
 * Strings are arbitrary bytes (ids are binary-safe in RESP): valid UTF-8
 * is copied, control characters are escaped, and every byte of an invalid
 * sequence becomes U+FFFD, so any input yields valid JSON.
 */
#ifndef FL_UTIL_JSON_H
#define FL_UTIL_JSON_H

#include <stddef.h>

#include "buf.h"

/* "s" with escapes. */
void fl_json_str(fl_buf *b, const char *s, size_t n);
void fl_json_cstr(fl_buf *b, const char *s);
/* "key": (key is a literal the caller knows needs no escaping). */
void fl_json_key(fl_buf *b, const char *key);
/* A number in its shortest round-trip form; null when not finite. */
void fl_json_num(fl_buf *b, double d);
/* A number with at most `digits` decimals (trailing zeros dropped);
 * null when not finite. Coordinates use 7 (1 cm), distances 3. */
void fl_json_fixed(fl_buf *b, double d, int digits);
void fl_json_int(fl_buf *b, long long v);
void fl_json_bool(fl_buf *b, int v);

#endif
