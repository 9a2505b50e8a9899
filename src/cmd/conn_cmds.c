/*
 * conn_cmds.c - connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT,
 * CLIENT.
 *
 * These are what client libraries send before anything else (HELLO 3,
 * AUTH, CLIENT SETNAME, SELECT 0), so their replies and errors copy Redis
 * 7.0 exactly; a library that sees an unexpected string here refuses to
 * connect at all.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "server.h"
#include "../version.h"

FL_CMD(ping)
{
    if (ctx->argc > 2) {
        fl_reply_arity_error(ctx, "ping");
        return;
    }
    if (ctx->argc == 2) fl_reply_bulk(ctx->reply, ctx->argv[1], ctx->argvlen[1]);
    else fl_reply_simple(ctx->reply, "PONG");
}

FL_CMD(echo)
{
    fl_reply_bulk(ctx->reply, ctx->argv[1], ctx->argvlen[1]);
}

/* Constant-time comparison so a password cannot be guessed byte by byte
 * from response times. */
static int secret_eq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    unsigned diff = (unsigned)(alen ^ blen);
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[blen ? i % blen : 0];
    return diff == 0;
}

/* Checks user/pass for the single "default" user. 0 ok, -1 (replied). */
static int check_credentials(fl_cmd_ctx *ctx, int user_i, int pass_i)
{
    const char *pw = ctx->server->cfg.requirepass;
    int user_ok = user_i < 0 || fl_arg_eq(ctx, user_i, "default");
    int pass_ok = pw[0] ? secret_eq(ctx->argv[pass_i], ctx->argvlen[pass_i], pw)
                        : 1;
    if (!user_ok || !pass_ok) {
        fl_reply_error(ctx->reply, "WRONGPASS invalid username-password pair "
                                   "or user is disabled.");
        return -1;
    }
    ctx->session->authenticated = 1;
    return 0;
}

FL_CMD(auth)
{
    if (ctx->argc > 3) {
        fl_reply_syntax_error(ctx);
        return;
    }
    if (ctx->argc == 2 && !ctx->server->cfg.requirepass[0]) {
        fl_reply_error(ctx->reply,
            "ERR AUTH <password> called without any password configured for "
            "the default user. Are you sure your configuration is correct?");
        return;
    }
    int user_i = ctx->argc == 3 ? 1 : -1;
    if (check_credentials(ctx, user_i, ctx->argc - 1) == 0)
        fl_reply_ok(ctx->reply);
}

static int valid_client_name(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '!' || p[i] > '~') return 0;
    return 1;
}

static int set_client_name(fl_cmd_ctx *ctx, int i)
{
    if (!valid_client_name(ctx->argv[i], ctx->argvlen[i])) {
        fl_reply_error(ctx->reply, "ERR Client names cannot contain spaces, "
                                   "newlines or special characters.");
        return -1;
    }
    size_t n = ctx->argvlen[i];
    if (n >= sizeof(ctx->session->name)) n = sizeof(ctx->session->name) - 1;
    memcpy(ctx->session->name, ctx->argv[i], n);
    ctx->session->name[n] = '\0';
    return 0;
}

static void hello_reply(fl_cmd_ctx *ctx)
{
    fl_reply *r = ctx->reply;
    fl_reply_map(r, 7);
    fl_reply_bulk_str(r, "server");
    fl_reply_bulk_str(r, "redis");
    fl_reply_bulk_str(r, "version");
    fl_reply_bulk_str(r, FL_REDIS_COMPAT_VERSION);
    fl_reply_bulk_str(r, "proto");
    fl_reply_int(r, ctx->session->proto);
    fl_reply_bulk_str(r, "id");
    fl_reply_int(r, (long long)ctx->session->id);
    fl_reply_bulk_str(r, "mode");
    fl_reply_bulk_str(r, "standalone");
    fl_reply_bulk_str(r, "role");
    fl_reply_bulk_str(r, "master");
    fl_reply_bulk_str(r, "modules");
    fl_reply_array(r, 0);
}

/* HELLO in Redis 7.0's order: every option is parsed before anything
 * changes, then AUTH, then the authentication check, then SETNAME, so a
 * refused HELLO leaves the session as it was. */
FL_CMD(hello)
{
    long long ver = ctx->session->proto;
    if (ctx->argc >= 2) {
        if (fl_parse_ll(ctx->argv[1], ctx->argvlen[1], &ver) != 0) {
            fl_reply_error(ctx->reply,
                "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver < 2 || ver > 3) {
            fl_reply_error(ctx->reply, "NOPROTO unsupported protocol version");
            return;
        }
    }
    int auth_i = -1, name_i = -1;
    for (int i = 2; i < ctx->argc; i++) {
        int more = ctx->argc - i - 1;
        if (fl_arg_eq(ctx, i, "AUTH") && more >= 2) {
            auth_i = i + 1;
            i += 2;
        } else if (fl_arg_eq(ctx, i, "SETNAME") && more >= 1) {
            name_i = ++i;
        } else {
            fl_reply_errorf(ctx->reply, "ERR Syntax error in HELLO option '%.*s'",
                            (int)(ctx->argvlen[i] < 128 ? ctx->argvlen[i] : 128),
                            ctx->argv[i]);
            return;
        }
    }
    if (auth_i > 0 && check_credentials(ctx, auth_i, auth_i + 1) != 0) return;
    if (ctx->server->cfg.requirepass[0] && !ctx->session->authenticated) {
        fl_reply_error(ctx->reply,
            "NOAUTH HELLO must be called with the client already "
            "authenticated, otherwise the HELLO <proto> AUTH <user> <pass> "
            "option can be used to authenticate the client and select the "
            "RESP protocol version at the same time");
        return;
    }
    if (name_i > 0 && set_client_name(ctx, name_i) != 0) return;
    ctx->session->proto = (int)ver;
    ctx->reply->proto = (int)ver;
    hello_reply(ctx);
}

FL_CMD(select)
{
    long long db;
    if (fl_arg_ll(ctx, 1, &db) != 0) return;
    if (db != 0) {
        fl_reply_error(ctx->reply, "ERR DB index is out of range");
        return;
    }
    fl_reply_ok(ctx->reply);
}

FL_CMD(quit)
{
    ctx->session->close_after_reply = 1;
    fl_reply_ok(ctx->reply);
}

FL_CMD(time)
{
    fl_reply_array(ctx->reply, 2);
    fl_reply_bulk_ll(ctx->reply, (long long)(ctx->now_us / 1000000));
    fl_reply_bulk_ll(ctx->reply, (long long)(ctx->now_us % 1000000));
}

/* ---- CLIENT ---- */

static void client_info_line(fl_cmd_ctx *ctx, fl_buf *out)
{
    const fl_session *s = ctx->session;
    fl_buf_printf(out,
        "id=%llu addr=%s laddr=%s fd=0 name=%s age=%llu idle=0 flags=N db=0 "
        "sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 "
        "multi-mem=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|info "
        "user=default redir=-1 resp=%d\n",
        (unsigned long long)s->id, s->addr, s->laddr, s->name,
        (unsigned long long)((ctx->now_ms - s->created_ms) / 1000), s->proto);
}

static void client_list(fl_cmd_ctx *ctx)
{
    if (ctx->argc > 2 && !(ctx->argc == 4 && fl_arg_eq(ctx, 2, "TYPE"))) {
        fl_reply_syntax_error(ctx);
        return;
    }
    fl_buf out;
    fl_buf_init(&out);
    if (ctx->argc == 2 || fl_arg_eq(ctx, 3, "normal"))
        ctx->server->hooks.client_list(ctx->server->hooks.ud, &out);
    else if (!fl_arg_eq(ctx, 3, "master") && !fl_arg_eq(ctx, 3, "replica") &&
             !fl_arg_eq(ctx, 3, "pubsub")) {
        fl_buf_free(&out);
        fl_reply_errorf(ctx->reply, "ERR Unknown client type '%.*s'",
                        (int)ctx->argvlen[3], ctx->argv[3]);
        return;
    }
    fl_reply_verbatim(ctx->reply, out.data ? out.data : "", out.len);
    fl_buf_free(&out);
}

/* Copies argument i into a NUL-terminated buffer of n bytes. */
static void arg_copy(const fl_cmd_ctx *ctx, int i, char *out, size_t n)
{
    size_t len = ctx->argvlen[i] < n - 1 ? ctx->argvlen[i] : n - 1;
    memcpy(out, ctx->argv[i], len);
    out[len] = '\0';
}

typedef struct kill_filter {
    long long id;
    const char *addr, *laddr;
    int skipme;
    int match_none; /* a TYPE or USER no fleetd client can have */
} kill_filter;

/* Parses the filters of the new form; 0, or -1 after replying. */
static int kill_filters(fl_cmd_ctx *ctx, kill_filter *f, char *addr,
                        char *laddr, size_t n)
{
    for (int i = 2; i < ctx->argc; i += 2) {
        if (i + 1 >= ctx->argc) goto syntax;
        if (fl_arg_eq(ctx, i, "ID")) {
            if (fl_parse_ll(ctx->argv[i + 1], ctx->argvlen[i + 1], &f->id) != 0 ||
                f->id <= 0) {
                fl_reply_error(ctx->reply, "ERR client-id should be greater than 0");
                return -1;
            }
        } else if (fl_arg_eq(ctx, i, "ADDR")) {
            arg_copy(ctx, i + 1, addr, n);
            f->addr = addr;
        } else if (fl_arg_eq(ctx, i, "LADDR")) {
            arg_copy(ctx, i + 1, laddr, n);
            f->laddr = laddr;
        } else if (fl_arg_eq(ctx, i, "SKIPME")) {
            if (fl_arg_eq(ctx, i + 1, "yes")) f->skipme = 1;
            else if (fl_arg_eq(ctx, i + 1, "no")) f->skipme = 0;
            else goto syntax;
        } else if (fl_arg_eq(ctx, i, "TYPE")) {
            if (fl_arg_eq(ctx, i + 1, "master") || fl_arg_eq(ctx, i + 1, "replica") ||
                fl_arg_eq(ctx, i + 1, "slave") || fl_arg_eq(ctx, i + 1, "pubsub")) {
                f->match_none = 1;
            } else if (!fl_arg_eq(ctx, i + 1, "normal")) {
                fl_reply_errorf(ctx->reply, "ERR Unknown client type '%.*s'",
                                (int)(ctx->argvlen[i + 1] < 128 ? ctx->argvlen[i + 1] : 128),
                                ctx->argv[i + 1]);
                return -1;
            }
        } else if (fl_arg_eq(ctx, i, "USER")) {
            if (!fl_arg_eq(ctx, i + 1, "default")) {
                fl_reply_errorf(ctx->reply, "ERR No such user '%.*s'",
                                (int)(ctx->argvlen[i + 1] < 128 ? ctx->argvlen[i + 1] : 128),
                                ctx->argv[i + 1]);
                return -1;
            }
        } else {
            goto syntax;
        }
    }
    return 0;
syntax:
    fl_reply_syntax_error(ctx);
    return -1;
}

static void client_kill(fl_cmd_ctx *ctx)
{
    char addr[128], laddr[128];
    fl_server_hooks *h = &ctx->server->hooks;
    if (ctx->argc == 3) { /* old form: CLIENT KILL addr:port, self included */
        arg_copy(ctx, 2, addr, sizeof(addr));
        if (h->client_kill(h->ud, 0, addr, NULL, 0) == 0) {
            fl_reply_error(ctx->reply, "ERR No such client");
            return;
        }
        fl_reply_ok(ctx->reply);
        return;
    }
    kill_filter f = {0, NULL, NULL, 1, 0};
    if (kill_filters(ctx, &f, addr, laddr, sizeof(addr)) != 0) return;
    long killed = f.match_none ? 0
        : h->client_kill(h->ud, (uint64_t)f.id, f.addr, f.laddr,
                         f.skipme ? ctx->session->id : 0);
    fl_reply_int(ctx->reply, killed);
}

static const char *client_help[] = {
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME", "    Return the name of the current connection.",
    "ID", "    Return the ID of the current connection.",
    "INFO", "    Return information about the current client connection.",
    "KILL <ip:port>", "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are: ID <client-id>, ADDR <ip:port>.",
    "LIST [TYPE normal]", "    Return information about client connections.",
    "SETNAME <name>", "    Assign the name <name> to the current connection.",
    "HELP", "    Print this help.",
};

static void reply_help(fl_cmd_ctx *ctx, const char **lines, size_t n)
{
    fl_reply_array(ctx->reply, (long)n);
    for (size_t i = 0; i < n; i++) fl_reply_simple(ctx->reply, lines[i]);
}

/* Arity check for a subcommand: Redis reports it as 'client|name'. */
static int sub_arity(fl_cmd_ctx *ctx, const char *full, int arity)
{
    if ((arity > 0 && ctx->argc != arity) ||
        (arity < 0 && ctx->argc < -arity)) {
        fl_reply_arity_error(ctx, full);
        return -1;
    }
    return 0;
}

FL_CMD(client)
{
    if (fl_arg_eq(ctx, 1, "ID")) {
        if (sub_arity(ctx, "client|id", 2) == 0)
            fl_reply_int(ctx->reply, (long long)ctx->session->id);
    } else if (fl_arg_eq(ctx, 1, "SETNAME")) {
        if (sub_arity(ctx, "client|setname", 3) == 0 &&
            set_client_name(ctx, 2) == 0)
            fl_reply_ok(ctx->reply);
    } else if (fl_arg_eq(ctx, 1, "GETNAME")) {
        if (sub_arity(ctx, "client|getname", 2) != 0) return;
        if (ctx->session->name[0]) fl_reply_bulk_str(ctx->reply, ctx->session->name);
        else fl_reply_null(ctx->reply);
    } else if (fl_arg_eq(ctx, 1, "LIST")) {
        if (sub_arity(ctx, "client|list", -2) == 0) client_list(ctx);
    } else if (fl_arg_eq(ctx, 1, "KILL")) {
        if (sub_arity(ctx, "client|kill", -3) == 0) client_kill(ctx);
    } else if (fl_arg_eq(ctx, 1, "INFO")) {
        if (sub_arity(ctx, "client|info", 2) != 0) return;
        fl_buf out;
        fl_buf_init(&out);
        client_info_line(ctx, &out);
        fl_reply_verbatim(ctx->reply, out.data, out.len);
        fl_buf_free(&out);
    } else if (fl_arg_eq(ctx, 1, "HELP")) {
        reply_help(ctx, client_help, sizeof(client_help) / sizeof(*client_help));
    } else {
        fl_reply_unknown_subcommand(ctx, "CLIENT");
    }
}
