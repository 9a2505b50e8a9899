/*
 * resp_server.c - RESP connections on libuv.
 *
 * Each client has an input buffer that libuv reads into directly, a parser
 * state, and two output buffers: `out` collects replies while `wire` is
 * being written. A read batch is parsed and executed in full (pipelining),
 * its replies are written with one uv_try_write, and only what the socket
 * does not take is queued with uv_write. This gives Redis' syscall pattern:
 * one read and one write per batch, whatever the pipeline depth.
 *
 * Limits, all from fl_config: maxclients (refused with Redis' message), the
 * query buffer (a client sending an endless frame is closed), the output
 * buffer (a client that does not read its replies is closed), the idle
 * timeout, and back-pressure: while a client has more than FL_OUT_PAUSE
 * bytes of replies unwritten we stop reading its requests.
 *
 * Durability: a client whose commands appended log records is "held":
 * its replies stay in `out` until the check phase of this loop turn has
 * written the log (and fsync'ed it under appendfsync always). Every client
 * served in one turn shares that write and that fsync: group commit, with
 * no extra thread and no reply ever sent ahead of its record.
 */
#include "resp_server.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "../cmd/cmd.h"
#include "../cmd/server.h"
#include "../proto/resp.h"

#define FL_READ_CHUNK (16 * 1024)
#define FL_OUT_PAUSE (1024 * 1024)
#define FL_READ_MAX (256 * 1024)
#define FL_WRITE_MAX (1u << 30) /* uv_buf_t lengths are unsigned int */
/* Buffers that grew past this are released once empty, so one large
 * request or reply does not pin its peak size for the connection's life. */
#define FL_BUF_KEEP (64 * 1024)

typedef struct fl_client {
    uv_tcp_t tcp;              /* first: the handle's address is the client */
    struct fl_client *prev, *next;
    fl_resp_server *rs;
    fl_session sess;
    fl_buf in;                 /* received, unparsed from `in_pos` */
    size_t in_pos;
    fl_resp_cmd cmd;
    fl_buf out;                /* replies not yet handed to the socket */
    fl_buf wire;               /* bytes owned by an in-flight uv_write */
    uv_write_t wreq;
    int writing;
    int reading;
    int closing;
    int held;                  /* replies wait for the log (see above) */
    struct fl_client *held_prev, *held_next;
    uint64_t last_active_ms;
} fl_client;

struct fl_resp_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t cron;
    fl_server *srv;
    fl_client *clients;
    fl_client *current;        /* the client whose command is running */
    fl_client *held;           /* clients whose replies wait for the log */
    uv_check_t check;          /* after I/O: write the log, release them */
    int handles_open;          /* listener, cron, check: freed when all closed */
    size_t nclients;
    uint64_t next_id;
    int closing;
};

static uint64_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static void client_freed(uv_handle_t *h)
{
    fl_client *c = (fl_client *)h;
    fl_buf_free(&c->in);
    fl_buf_free(&c->out);
    fl_buf_free(&c->wire);
    fl_resp_cmd_free(&c->cmd);
    free(c);
}

static void client_unhold(fl_client *c)
{
    if (!c->held) return;
    if (c->held_prev) c->held_prev->held_next = c->held_next;
    else c->rs->held = c->held_next;
    if (c->held_next) c->held_next->held_prev = c->held_prev;
    c->held_prev = c->held_next = NULL;
    c->held = 0;
}

static void client_close(fl_client *c)
{
    if (c->closing) return;
    c->closing = 1;
    client_unhold(c);
    fl_resp_server *rs = c->rs;
    if (c->prev) c->prev->next = c->next;
    else rs->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    rs->nclients--;
    uv_close((uv_handle_t *)&c->tcp, client_freed);
}

static void client_write_done(uv_write_t *req, int status);

/* Hands queued replies to the socket: try_write first, then uv_write for
 * the rest. */
static void client_flush(fl_client *c)
{
    if (c->closing || c->writing || c->held || c->out.len == 0) return;
    size_t len = c->out.len < FL_WRITE_MAX ? c->out.len : FL_WRITE_MAX;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN) n = 0;
    if (n < 0) {
        client_close(c);
        return;
    }
    FL_STAT_ADD(c->rs->srv->stats.net_output_bytes, (uint64_t)n);
    fl_buf_consume(&c->out, (size_t)n);
    if (c->out.len == 0) {
        if (c->out.cap > FL_BUF_KEEP) fl_buf_free(&c->out);
        return;
    }
    fl_buf tmp = c->wire;     /* swap: out goes on the wire */
    c->wire = c->out;
    c->out = tmp;
    c->out.len = 0;
    b = uv_buf_init(c->wire.data, (unsigned)c->wire.len);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, client_write_done) != 0) {
        client_close(c);
        return;
    }
    c->writing = 1;
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void client_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void client_resume_reading(fl_client *c)
{
    if (c->reading || c->closing) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, client_alloc_cb, client_read_cb) == 0)
        c->reading = 1;
    else
        client_close(c);
}

static void client_write_done(uv_write_t *req, int status)
{
    fl_client *c = req->data;
    c->writing = 0;
    if (c->closing) return;
    if (status < 0) {
        client_close(c);
        return;
    }
    FL_STAT_ADD(c->rs->srv->stats.net_output_bytes, c->wire.len);
    c->wire.len = 0;
    if (c->wire.cap > FL_BUF_KEEP) fl_buf_free(&c->wire);
    /* A client whose replies are draining is not idle. */
    c->last_active_ms = uv_now(c->rs->loop);
    if (c->sess.close_after_reply && c->out.len == 0) {
        client_close(c);
        return;
    }
    client_flush(c);
    if (c->out.len + c->wire.len < FL_OUT_PAUSE) client_resume_reading(c);
}

static void client_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    fl_client *c = (fl_client *)h;
    char *p = fl_buf_reserve(&c->in, FL_READ_CHUNK);
    buf->base = p;
    /* Bounded reads keep one pipelining client from running an unbounded
     * batch while others wait; a large bulk is simply read in more calls
     * (the parser resumes where it stopped). */
    size_t room = c->in.cap - c->in.len;
    buf->len = room < FL_READ_MAX ? room : FL_READ_MAX;
}

/* While the store loads on its worker thread the data is the worker's:
 * only commands flagged FL_CMD_LOADING run; INFO shows the load's
 * progress; everything else is answered as Redis answers then. */
static int answer_while_loading(fl_client *c, fl_reply *reply)
{
    const char *name = c->cmd.argv[0];
    size_t len = c->cmd.argvlen[0];
    const fl_command *cmd = fl_cmd_lookup(name, len);
    if (cmd && (cmd->flags & FL_CMD_LOADING)) return 0;
    /* Authentication first, as Redis: dispatch answers NOAUTH without
     * running the command. */
    if (c->rs->srv->cfg.requirepass[0] && !c->sess.authenticated &&
        !(cmd && (cmd->flags & FL_CMD_NOAUTH)))
        return 0;
    if (cmd && !strcmp(cmd->name, "info")) {
        char info[160];
        int n = snprintf(info, sizeof(info), "# Persistence\r\nloading:1\r\n"
                         "loading_loaded_records:%llu\r\n",
                         (unsigned long long)__atomic_load_n(&c->rs->srv->load_records,
                                                             __ATOMIC_RELAXED));
        fl_reply_verbatim(reply, info, (size_t)n);
        return 1;
    }
    fl_reply_error(reply, "LOADING fleetd is loading the dataset in memory");
    return 1;
}

/* Runs one parsed command and records its latency. */
static void client_exec(fl_client *c, uint64_t now_us)
{
    fl_resp_server *rs = c->rs;
    fl_reply reply = {&c->out, c->sess.proto, 0};
    if (rs->srv->loading && answer_while_loading(c, &reply)) return;
    fl_cmd_ctx ctx = {c->cmd.argc, c->cmd.argv, c->cmd.argvlen, &reply,
                      &c->sess, rs->srv, now_us / 1000, now_us};
    rs->current = c;
    uint64_t t0 = uv_hrtime();
    const fl_command *cmd = fl_cmd_dispatch(&ctx);
    if (cmd) fl_cmd_record_latency(rs->srv, cmd, uv_hrtime() - t0);
    /* A reply may depend on changes other clients made this turn (a
     * STALE, a nil from SET NX, a read): it waits for their records too,
     * as Redis replies only after the AOF write of its event-loop turn. */
    if (c->sess.wal_need < rs->srv->persist.appended)
        c->sess.wal_need = rs->srv->persist.appended;
    rs->current = NULL;
    c->sess.last_cmd_ms = now_us / 1000;
}

static void protocol_error(fl_client *c, const char *msg)
{
    fl_reply r = {&c->out, c->sess.proto, 0};
    fl_reply_errorf(&r, "ERR %s", msg);
    FL_STAT_INC(c->rs->srv->stats.protocol_errors);
    c->sess.close_after_reply = 1;
}

static fl_resp_limits client_limits(const fl_client *c)
{
    const fl_config *cfg = &c->rs->srv->cfg;
    fl_resp_limits lim = {cfg->max_multibulk, cfg->proto_max_bulk_len,
                          (size_t)cfg->max_inline,
                          cfg->requirepass[0] && !c->sess.authenticated};
    return lim;
}

/* Parses and executes every complete command in the input buffer. */
static void client_process(fl_client *c)
{
    uint64_t now_us = wall_us();
    char err[128];
    while (!c->sess.close_after_reply && !c->closing) {
        fl_resp_limits lim = client_limits(c);
        size_t used;
        int rc = fl_resp_parse(c->in.data + c->in_pos, c->in.len - c->in_pos,
                               &lim, &c->cmd, &used, err, sizeof(err));
        if (rc == FL_RESP_INCOMPLETE) break;
        if (rc == FL_RESP_ERROR) {
            protocol_error(c, err);
            break;
        }
        if (c->cmd.argc > 0) client_exec(c, now_us);
        c->in_pos += used;
        /* 0 means no limit, as in Redis; even then one connection may not
         * queue more than one socket write can carry. */
        long long limit = c->rs->srv->cfg.client_output_limit;
        size_t cap = limit > 0 && limit < FL_WRITE_MAX ? (size_t)limit : FL_WRITE_MAX;
        if (c->out.len + c->wire.len > cap) {
            FL_STAT_INC(c->rs->srv->stats.output_limit_disconnects);
            client_close(c);
            return;
        }
    }
    fl_buf_consume(&c->in, c->in_pos);
    c->in_pos = 0;
    if (c->in.len == 0 && c->in.cap > FL_BUF_KEEP) fl_buf_free(&c->in);
    if (c->in.len > (size_t)c->rs->srv->cfg.max_query_buffer) {
        FL_STAT_INC(c->rs->srv->stats.protocol_errors);
        client_close(c);
    }
}

/* After a batch: hand replies to the socket, then close, pause or resume
 * reading as the client's state says. */
static void client_after_process(fl_client *c)
{
    client_flush(c);
    if (c->closing) return;
    if (c->sess.close_after_reply && !c->writing) {
        client_close(c);
        return;
    }
    int pause = c->sess.close_after_reply ||
                c->out.len + c->wire.len >= FL_OUT_PAUSE;
    if (pause && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    } else if (!pause && !c->reading) {
        client_resume_reading(c);
    }
}

static void client_hold(fl_client *c)
{
    if (!c->held) {
        c->held = 1;
        c->held_prev = NULL;
        c->held_next = c->rs->held;
        if (c->rs->held) c->rs->held->held_prev = c;
        c->rs->held = c;
    }
    if (c->out.len + c->wire.len >= FL_OUT_PAUSE && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    fl_client *c = (fl_client *)s;
    if (nread < 0) {
        client_close(c);
        return;
    }
    if (nread == 0) return;
    c->in.len += (size_t)nread;
    FL_STAT_ADD(c->rs->srv->stats.net_input_bytes, (uint64_t)nread);
    c->last_active_ms = uv_now(c->rs->loop);
    if (c->sess.close_after_reply) {
        /* After QUIT or a protocol error nothing more is read: input is
         * dropped, not buffered, while the last replies drain. */
        c->in.len = 0;
        return;
    }
    client_process(c);
    if (c->closing) return;
    if (c->sess.wal_need > fl_server_durable_level(c->rs->srv)) {
        client_hold(c);
        return;
    }
    client_after_process(c);
}

/* Check phase: make this turn's log records durable, then release the
 * replies that waited for them. If the log has failed, a client waiting
 * for its own writes is disconnected: they were applied but cannot be
 * promised. One waiting only for other clients' records (a read, or the
 * MISCONF refusal of a write) gets its reply as it is: those records will
 * never be durable, and reads keep being served, as over HTTP. */
static void check_cb(uv_check_t *h)
{
    fl_resp_server *rs = h->data;
    fl_server *srv = rs->srv;
    if (srv->hooks.persist_flush) srv->hooks.persist_flush(srv->hooks.store_ud);
    uint64_t level = fl_server_durable_level(srv);
    fl_client *c = rs->held;
    while (c) {
        fl_client *next = c->held_next;
        if (c->sess.wal_need <= level ||
            (srv->persist.broken && c->sess.wal_own <= level)) {
            client_unhold(c);
            client_after_process(c);
        } else if (srv->persist.broken) {
            client_close(c);
        }
        c = next;
    }
}

static void fill_addr(uv_tcp_t *tcp, int peer, char *out, size_t n)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rc = peer ? uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len)
                  : uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len);
    char ip[64] = "?";
    int port = 0;
    if (rc == 0 && ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    } else if (rc == 0 && ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    }
    if (strchr(ip, ':')) snprintf(out, n, "[%s]:%d", ip, port); /* as Redis */
    else snprintf(out, n, "%s:%d", ip, port);
}

static void refuse_client(fl_resp_server *rs, fl_client *c)
{
    static const char msg[] = "-ERR max number of clients reached\r\n";
    uv_buf_t b = uv_buf_init((char *)msg, sizeof(msg) - 1);
    (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    FL_STAT_INC(rs->srv->stats.connections_rejected);
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, client_freed);
}

static void on_connection(uv_stream_t *l, int status)
{
    fl_resp_server *rs = l->data;
    if (status < 0) return;
    fl_client *c = fl_xcalloc(1, sizeof(*c));
    c->rs = rs;
    if (uv_tcp_init(rs->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->wreq.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, client_freed);
        return;
    }
    FL_STAT_INC(rs->srv->stats.connections_received);
    if ((long long)rs->nclients >= rs->srv->cfg.maxclients) {
        refuse_client(rs, c);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    c->sess.id = ++rs->next_id;
    c->sess.proto = 2;
    c->sess.authenticated = rs->srv->cfg.requirepass[0] == '\0';
    c->sess.created_ms = wall_us() / 1000;
    c->sess.last_cmd = "NULL";
    fill_addr(&c->tcp, 1, c->sess.addr, sizeof(c->sess.addr));
    fill_addr(&c->tcp, 0, c->sess.laddr, sizeof(c->sess.laddr));
    c->last_active_ms = uv_now(rs->loop);
    c->next = rs->clients;
    if (rs->clients) rs->clients->prev = c;
    rs->clients = c;
    rs->nclients++;
    client_resume_reading(c);
}

/* ---- hooks for CLIENT and INFO ---- */

static void hook_client_list(void *ud, fl_buf *out)
{
    fl_resp_server *rs = ud;
    uint64_t now = wall_us() / 1000;
    for (fl_client *c = rs->clients; c; c = c->next) {
        uv_os_fd_t fd = -1;
        (void)uv_fileno((uv_handle_t *)&c->tcp, &fd);
        fl_buf_printf(out,
            "id=%llu addr=%s laddr=%s fd=%d name=%s age=%llu idle=%llu "
            "flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=%zu qbuf-free=%zu "
            "argv-mem=0 multi-mem=0 obl=0 oll=0 omem=%zu tot-mem=%zu "
            "events=r cmd=%s user=default redir=-1 resp=%d\n",
            (unsigned long long)c->sess.id, c->sess.addr, c->sess.laddr,
            (int)fd, c->sess.name,
            (unsigned long long)((now - c->sess.created_ms) / 1000),
            (unsigned long long)((now - (c->sess.last_cmd_ms
                ? c->sess.last_cmd_ms : c->sess.created_ms)) / 1000),
            c->in.len, c->in.cap - c->in.len, c->out.len + c->wire.len,
            c->in.cap + c->out.cap + c->wire.cap + sizeof(*c),
            c->sess.last_cmd, c->sess.proto);
    }
}

static long hook_client_kill(void *ud, uint64_t id, const char *addr,
                             const char *laddr, uint64_t skip_id)
{
    fl_resp_server *rs = ud;
    long killed = 0;
    fl_client *c = rs->clients;
    while (c) {
        fl_client *next = c->next;
        int match = (id == 0 || c->sess.id == id) &&
                    (!addr || strcmp(addr, c->sess.addr) == 0) &&
                    (!laddr || strcmp(laddr, c->sess.laddr) == 0) &&
                    c->sess.id != skip_id && !c->sess.close_after_reply;
        if (match) {
            killed++;
            /* The running client cannot be freed under its own command:
             * it is closed once its reply is written. */
            if (c == rs->current) c->sess.close_after_reply = 1;
            else client_close(c);
        }
        c = next;
    }
    return killed;
}

static size_t hook_clients_connected(void *ud)
{
    return ((fl_resp_server *)ud)->nclients;
}

static size_t hook_output_bytes(void *ud)
{
    size_t n = 0;
    for (fl_client *c = ((fl_resp_server *)ud)->clients; c; c = c->next)
        n += c->out.len + c->wire.len;
    return n;
}

static void hook_memory(void *ud, uint64_t *used, uint64_t *rss)
{
    (void)ud;
    struct mallinfo2 mi = mallinfo2();
    *used = mi.uordblks + mi.hblkhd;
    size_t r = 0;
    *rss = uv_resident_set_memory(&r) == 0 ? r : 0;
}

/* Once a second: close idle clients when a timeout is configured. */
static void cron_tick(uv_timer_t *t)
{
    fl_resp_server *rs = t->data;
    long long timeout = rs->srv->cfg.timeout;
    if (timeout <= 0) return;
    uint64_t now = uv_now(rs->loop);
    fl_client *c = rs->clients;
    while (c) {
        fl_client *next = c->next;
        /* A client that neither sends nor takes its replies for the
         * whole timeout is closed too: a pending write does not exempt it. */
        if (now - c->last_active_ms > (uint64_t)timeout * 1000) {
            FL_STAT_INC(rs->srv->stats.idle_disconnects);
            client_close(c);
        }
        c = next;
    }
}

static void handle_closed(uv_handle_t *h)
{
    fl_resp_server *rs = h->data;
    if (--rs->handles_open == 0) free(rs);
}

static int listen_on(fl_resp_server *rs, const fl_config *cfg)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(cfg->bind, cfg->port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        rc = uv_ip6_addr(cfg->bind, cfg->port, (struct sockaddr_in6 *)&addr);
    if (rc != 0) return rc;
    rc = uv_tcp_bind(&rs->listener, (struct sockaddr *)&addr, 0);
    if (rc != 0) return rc;
    return uv_listen((uv_stream_t *)&rs->listener, 511, on_connection);
}

int fl_resp_server_start(uv_loop_t *loop, fl_server *srv, fl_resp_server **out,
                         char *err, size_t errlen)
{
    fl_resp_server *rs = fl_xcalloc(1, sizeof(*rs));
    rs->loop = loop;
    rs->srv = srv;
    int rc = uv_tcp_init(loop, &rs->listener);
    if (rc != 0) {
        free(rs);
        snprintf(err, errlen, "cannot create socket: %s", uv_strerror(rc));
        return rc;
    }
    rs->listener.data = rs;
    rs->handles_open = 1;
    rc = listen_on(rs, &srv->cfg);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", srv->cfg.bind,
                 srv->cfg.port, uv_strerror(rc));
        uv_close((uv_handle_t *)&rs->listener, handle_closed);
        return rc;
    }
    if (uv_timer_init(loop, &rs->cron) != 0 || uv_check_init(loop, &rs->check) != 0) {
        snprintf(err, errlen, "cannot create the loop's timer or check handle");
        uv_close((uv_handle_t *)&rs->listener, handle_closed);
        return UV_ENOMEM;
    }
    rs->cron.data = rs;
    rs->check.data = rs;
    rs->handles_open += 2;
    (void)uv_timer_start(&rs->cron, cron_tick, 1000, 1000);
    (void)uv_check_start(&rs->check, check_cb);
    srv->hooks.ud = rs;
    srv->hooks.client_list = hook_client_list;
    srv->hooks.client_kill = hook_client_kill;
    srv->hooks.clients_connected = hook_clients_connected;
    srv->hooks.clients_output_bytes = hook_output_bytes;
    srv->hooks.memory = hook_memory;
    *out = rs;
    return 0;
}

size_t fl_resp_server_clients(const fl_resp_server *rs)
{
    return rs->nclients;
}

void fl_resp_server_close(fl_resp_server *rs)
{
    /* Replies still waiting for the log are dropped with their clients;
     * the records themselves are written by the store's shutdown. */
    while (rs->clients) client_close(rs->clients);
    uv_timer_stop(&rs->cron);
    uv_close((uv_handle_t *)&rs->cron, handle_closed);
    uv_check_stop(&rs->check);
    uv_close((uv_handle_t *)&rs->check, handle_closed);
    uv_close((uv_handle_t *)&rs->listener, handle_closed);
}
