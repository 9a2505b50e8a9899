/*
 * wire.c - the RESP side of fleet-replay: commands formatted straight into
 * a connection's batch buffer, a batch sent and its replies read in one
 * round trip, and the replies counted.
 *
 * Why this shape: at a few hundred thousand commands a second the client
 * must cost less than the server, so commands are written by hand into
 * one buffer per connection (fixed-point numbers, no printf), handed to
 * hiredis in one piece, and only the replies are parsed by hiredis. A
 * batch remembers where each command starts and what it was, so an error
 * reply can be printed with its command and a trip reply counted.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define ERRORS_SHOWN 5

int fl_rp_conn_init(fl_rp_conn *c, uint32_t max_cmds)
{
    memset(c, 0, sizeof(*c));
    c->max = max_cmds;
    c->cap = (size_t)max_cmds * FL_RP_CMD_MAX;
    c->buf = malloc(c->cap);
    c->off = malloc(sizeof(*c->off) * max_cmds);
    c->kind = malloc(max_cmds);
    if (c->buf && c->off && c->kind) return 0;
    fl_rp_conn_free(c);
    return -ENOMEM;
}

void fl_rp_conn_free(fl_rp_conn *c)
{
    if (c->rc) redisFree(c->rc);
    free(c->buf);
    free(c->off);
    free(c->kind);
    memset(c, 0, sizeof(*c));
}

/* ---- formatting ---- */

static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

/* v with `dec` decimals (1 to 7); |v| must be below 1e9. */
static size_t fmt_fixed(char *out, double v, int dec)
{
    static const uint64_t p10[] = {1, 10, 100, 1000, 10000, 100000, 1000000,
                                   10000000};
    size_t n = 0;
    if (v < 0) {
        out[n++] = '-';
        v = -v;
    }
    uint64_t scaled = (uint64_t)llround(v * (double)p10[dec]);
    n += fmt_u64(out + n, scaled / p10[dec]);
    out[n++] = '.';
    uint64_t frac = scaled % p10[dec];
    for (int i = dec - 1; i >= 0; i--) {
        out[n + (size_t)i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return n + (size_t)dec;
}

size_t fl_rp_fmt_id(char *out, const char *prefix, uint32_t index)
{
    size_t n = strlen(prefix);
    char digits[12];
    size_t d = fmt_u64(digits, index);
    size_t pad = d < 6 ? 6 - d : 0;
    memcpy(out, prefix, n);
    memset(out + n, '0', pad);
    memcpy(out + n + pad, digits, d);
    return n + pad + d;
}

static char *put_lit(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_bulk(char *p, const char *s, size_t n)
{
    *p++ = '$';
    p += fmt_u64(p, n);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, s, n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

static char *put_fixed(char *p, double v, int dec)
{
    char num[32];
    return put_bulk(p, num, fmt_fixed(num, v, dec));
}

static char *put_u64(char *p, uint64_t v)
{
    char num[24];
    return put_bulk(p, num, fmt_u64(num, v));
}

static char *begin(fl_rp_conn *c, int kind)
{
    c->off[c->n] = (uint32_t)c->len;
    c->kind[c->n++] = (uint8_t)kind;
    return c->buf + c->len;
}

void fl_rp_put_update(fl_rp_conn *c, const fl_rp_ping *p)
{
    char *w = begin(c, FL_RP_K_UPDATE);
    w = put_lit(w, "*14\r\n$14\r\nVEHICLE.UPDATE\r\n");
    w = put_bulk(w, p->id, p->id_len);
    w = put_fixed(w, p->lon, 6);
    w = put_fixed(w, p->lat, 6);
    w = put_lit(w, "$2\r\nTS\r\n");
    w = put_u64(w, (uint64_t)p->ts_ms);
    w = put_lit(w, "$5\r\nSPEED\r\n");
    w = put_fixed(w, p->kmh, 1);
    w = put_lit(w, "$7\r\nHEADING\r\n");
    w = put_fixed(w, p->heading, 1);
    w = put_lit(w, "$5\r\nFLEET\r\n");
    w = put_bulk(w, p->fleet, strlen(p->fleet));
    w = put_lit(w, "$6\r\nSTATUS\r\n");
    w = p->busy ? put_bulk(w, "busy", 4) : put_bulk(w, "available", 9);
    c->len = (size_t)(w - c->buf);
}

void fl_rp_put_trip(fl_rp_conn *c, int kind, const char *id, size_t id_len,
                    int64_t ts_ms)
{
    char *w = begin(c, kind);
    if (kind != FL_RP_K_START) w = put_lit(w, "*4\r\n$8\r\nTRIP.END\r\n");
    else w = put_lit(w, "*4\r\n$10\r\nTRIP.START\r\n");
    w = put_bulk(w, id, id_len);
    w = put_lit(w, "$2\r\nTS\r\n");
    w = put_u64(w, (uint64_t)ts_ms);
    c->len = (size_t)(w - c->buf);
}

/* ---- replies ---- */

/* The RESP command at p (n bytes) as space-separated words. */
static void command_words(const char *p, size_t n, char *out, size_t outlen)
{
    const char *end = p + n;
    size_t o = 0;
    p = memchr(p, '\n', n);
    while (p && ++p < end && *p == '$' && o + 1 < outlen) {
        char *nl;
        unsigned long len = strtoul(p + 1, &nl, 10);
        const char *s = nl + 2;
        if (s + len > end) break;
        int k = snprintf(out + o, outlen - o, "%s%.*s", o ? " " : "", (int)len, s);
        if (k < 0) break;
        o += (size_t)k < outlen - o ? (size_t)k : outlen - o - 1;
        p = s + len + 1;
    }
    out[o] = '\0';
}

static void show_error(const fl_rp_conn *c, uint32_t i, const char *msg)
{
    char words[512];
    size_t end = i + 1 < c->n ? c->off[i + 1] : c->len;
    command_words(c->buf + c->off[i], end - c->off[i], words, sizeof(words));
    /* Nothing useful can be done if stderr itself fails. */
    (void)fprintf(stderr, "fleet-replay: fleetd refused \"%s\": %s\n", words, msg);
}

static void count_reply(fl_rp_conn *c, uint32_t i, const redisReply *rep,
                        fl_rp_counts *n)
{
    int kind = c->kind[i];
    if (kind == FL_RP_K_END_LEFTOVER) {
        /* Usually there is no such trip (or no such vehicle yet). */
        n->leftover += rep->type != REDIS_REPLY_ERROR;
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        if (++n->errors <= ERRORS_SHOWN) show_error(c, i, rep->str);
        return;
    }
    if (kind == FL_RP_K_START) n->trips_started++;
    else if (kind == FL_RP_K_END) n->trips_ended++;
    else if (rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") != 0) {
        if (strcmp(rep->str, "STALE") == 0) n->stale++;
        else if (strcmp(rep->str, "IMPLAUSIBLE") == 0) n->implausible++;
        else if (strcmp(rep->str, "RELOCATED") == 0) n->relocated++;
    }
}

int fl_rp_send(fl_rp_conn *c)
{
    if (c->n == 0) return 0;
    if (redisAppendFormattedCommand(c->rc, c->buf, c->len) != REDIS_OK) return -1;
    int done = 0;
    while (!done)
        if (redisBufferWrite(c->rc, &done) != REDIS_OK) return -1;
    return 0;
}

int fl_rp_receive(fl_rp_conn *c, fl_rp_counts *n)
{
    for (uint32_t i = 0; i < c->n; i++) {
        void *rep;
        if (redisGetReply(c->rc, &rep) != REDIS_OK) return -1;
        count_reply(c, i, rep, n);
        freeReplyObject(rep);
    }
    n->sent += c->n;
    c->n = 0;
    c->len = 0;
    return 0;
}
