/*
 * keys_cmds.c - generic key commands and plain strings: DEL, EXISTS, TYPE,
 * KEYS, SCAN, SET, GET.
 *
 * Strings exist so that tools and tests can put a value of another type
 * under a key and see WRONGTYPE from the GEO commands exactly as in Redis.
 * fleetd has no key expiry; SET's expiry options are refused with a clear
 * error instead of being silently ignored.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "../db/db.h"
#include "cmd.h"
#include "server.h"

FL_CMD(del)
{
    long long n = 0;
    for (int i = 1; i < ctx->argc; i++)
        n += fl_db_del(ctx->server->db, ctx->argv[i], ctx->argvlen[i]);
    if (n) fl_cmd_log(ctx, ctx->argc, ctx->argv, ctx->argvlen);
    fl_reply_int(ctx->reply, n);
}

FL_CMD(exists)
{
    long long n = 0;
    for (int i = 1; i < ctx->argc; i++)
        n += fl_db_get(ctx->server->db, ctx->argv[i], ctx->argvlen[i]) != NULL;
    fl_reply_int(ctx->reply, n);
}

FL_CMD(type)
{
    fl_reply_simple(ctx->reply, fl_obj_type_name(
        fl_db_get(ctx->server->db, ctx->argv[1], ctx->argvlen[1])));
}

FL_CMD(get)
{
    fl_obj *o = fl_db_get(ctx->server->db, ctx->argv[1], ctx->argvlen[1]);
    if (!o) fl_reply_null(ctx->reply);
    else if (o->type != FL_OBJ_STRING) fl_reply_wrongtype(ctx);
    else fl_reply_bulk(ctx->reply, o->u.str.ptr, o->u.str.len);
}

FL_CMD(set)
{
    int nx = 0, xx = 0, get = 0;
    for (int i = 3; i < ctx->argc; i++) {
        if (fl_arg_eq(ctx, i, "NX")) nx = 1;
        else if (fl_arg_eq(ctx, i, "XX")) xx = 1;
        else if (fl_arg_eq(ctx, i, "GET")) get = 1;
        else if (fl_arg_eq(ctx, i, "KEEPTTL")) continue;
        else if (fl_arg_eq(ctx, i, "EX") || fl_arg_eq(ctx, i, "PX") ||
                 fl_arg_eq(ctx, i, "EXAT") || fl_arg_eq(ctx, i, "PXAT")) {
            fl_reply_error(ctx->reply,
                           "ERR key expiry is not supported by fleetd");
            return;
        } else {
            fl_reply_syntax_error(ctx);
            return;
        }
    }
    if (nx && xx) {
        fl_reply_syntax_error(ctx);
        return;
    }
    fl_db *db = ctx->server->db;
    fl_obj *old = fl_db_get(db, ctx->argv[1], ctx->argvlen[1]);
    if (get && old && old->type != FL_OBJ_STRING) {
        fl_reply_wrongtype(ctx);
        return;
    }
    int do_set = !((nx && old) || (xx && !old));
    if (get) {
        if (old) fl_reply_bulk(ctx->reply, old->u.str.ptr, old->u.str.len);
        else fl_reply_null(ctx->reply);
    }
    if (do_set) {
        fl_db_set_string(db, ctx->argv[1], ctx->argvlen[1], ctx->argv[2],
                         ctx->argvlen[2]);
        /* Logged without GET: the replay needs the change, not the reply. */
        const char *argv[3] = {"SET", ctx->argv[1], ctx->argv[2]};
        size_t lens[3] = {3, ctx->argvlen[1], ctx->argvlen[2]};
        fl_cmd_log(ctx, 3, argv, lens);
    }
    if (get) return;
    if (do_set) fl_reply_ok(ctx->reply);
    else fl_reply_null(ctx->reply);
}

/* Glob match with Redis' syntax (*, ?, [..], \ escapes); fnmatch(3) has the
 * same syntax, it only needs NUL-terminated copies. Keys containing a NUL
 * byte are matched up to it. */
static int glob_match(const char *pat, const char *s, size_t slen)
{
    char stack[256];
    char *copy = slen < sizeof(stack) ? stack : fl_xmalloc(slen + 1);
    memcpy(copy, s, slen);
    copy[slen] = '\0';
    int m = fnmatch(pat, copy, 0) == 0;
    if (copy != stack) free(copy);
    return m;
}

typedef struct key_collect {
    fl_reply *reply;
    const char *pattern; /* NULL: all */
    const char *type;    /* NULL: any */
    long count;
} key_collect;

static void collect_key(void *ud, const char *key, size_t klen,
                        const fl_obj *obj)
{
    key_collect *kc = ud;
    if (kc->type && strcmp(kc->type, fl_obj_type_name(obj)) != 0) return;
    if (kc->pattern && !glob_match(kc->pattern, key, klen)) return;
    fl_reply_bulk(kc->reply, key, klen);
    kc->count++;
}

FL_CMD(keys)
{
    char *pat = fl_xstrndup(ctx->argv[1], ctx->argvlen[1]);
    key_collect kc = {ctx->reply, strcmp(pat, "*") ? pat : NULL, NULL, 0};
    size_t h = fl_reply_defer(ctx->reply);
    uint64_t cursor = 0;
    do {
        cursor = fl_db_scan(ctx->server->db, cursor, 1024, collect_key, &kc);
    } while (cursor);
    fl_reply_set_deferred(ctx->reply, h, '*', kc.count);
    free(pat);
}

static int parse_cursor(const char *p, size_t n, uint64_t *out)
{
    char tmp[32];
    if (n == 0 || n >= sizeof(tmp)) return -1;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (tmp[i] < '0' || tmp[i] > '9') return -1;
    char *end;
    errno = 0;
    *out = strtoull(tmp, &end, 10);
    return *end == '\0' && errno == 0 ? 0 : -1;
}

FL_CMD(scan)
{
    uint64_t cursor;
    if (parse_cursor(ctx->argv[1], ctx->argvlen[1], &cursor) != 0) {
        fl_reply_error(ctx->reply, "ERR invalid cursor");
        return;
    }
    long long count = 10;
    char *pat = NULL, *type = NULL;
    for (int i = 2; i < ctx->argc; i += 2) {
        int last = i + 1 >= ctx->argc;
        if (!last && fl_arg_eq(ctx, i, "COUNT")) {
            if (fl_arg_ll(ctx, i + 1, &count) != 0) goto out;
            if (count < 1) {
                fl_reply_syntax_error(ctx);
                goto out;
            }
        } else if (!last && fl_arg_eq(ctx, i, "MATCH")) {
            free(pat);
            pat = fl_xstrndup(ctx->argv[i + 1], ctx->argvlen[i + 1]);
        } else if (!last && fl_arg_eq(ctx, i, "TYPE")) {
            free(type);
            type = fl_xstrndup(ctx->argv[i + 1], ctx->argvlen[i + 1]);
        } else {
            fl_reply_syntax_error(ctx);
            goto out;
        }
    }
    fl_buf keys;
    fl_buf_init(&keys);
    fl_reply kr = {&keys, ctx->reply->proto, 0};
    key_collect kc = {&kr, pat && strcmp(pat, "*") ? pat : NULL, type, 0};
    cursor = fl_db_scan(ctx->server->db, cursor, (size_t)count, collect_key, &kc);
    fl_reply_array(ctx->reply, 2);
    fl_reply_bulk_ll(ctx->reply, (long long)cursor);
    fl_reply_array(ctx->reply, kc.count);
    fl_buf_append(ctx->reply->out, keys.data, keys.len);
    fl_buf_free(&keys);
out:
    free(pat);
    free(type);
}
