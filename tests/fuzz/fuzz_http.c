/*
 * fuzz_http.c - libFuzzer target for the HTTP API's request handling.
 *
 * The input is a sequence of requests separated by NUL bytes, each
 * "METHOD PATH[?QUERY]\nCONTENT-TYPE\nBODY", run in order against one
 * fresh in-process server, so sequences (put a vehicle, start its trip,
 * end it, query the area) reach the state-dependent paths. It drives
 * fl_api_handle, the same function the libmicrohttpd edge calls; the
 * socket layer itself is libmicrohttpd's and is exercised by the
 * integration tests. Every answer must be a well-formed status with a
 * body of the promised kind.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/server.h"
#include "net/http_api.h"

#define MAX_ARGS 16

typedef struct query {
    char *keys[MAX_ARGS], *vals[MAX_ARGS];
    int n;
} query;

static const char *query_arg(void *ud, const char *key)
{
    query *q = ud;
    for (int i = 0; i < q->n; i++)
        if (!strcmp(q->keys[i], key)) return q->vals[i];
    return NULL;
}

/* Splits "a=1&b=2" (in place) into q. */
static void parse_query(char *s, query *q)
{
    q->n = 0;
    while (s && *s && q->n < MAX_ARGS) {
        char *amp = strchr(s, '&');
        if (amp) *amp = '\0';
        char *eq = strchr(s, '=');
        if (eq) *eq = '\0';
        q->keys[q->n] = s;
        q->vals[q->n++] = eq ? eq + 1 : s + strlen(s);
        s = amp ? amp + 1 : NULL;
    }
}

static void check_answer(const fl_api_resp *r)
{
    assert(r->kind != FL_API_DONE || (r->status >= 200 && r->status < 600));
    if (r->kind == FL_API_DONE && r->status >= 400)
        assert(r->body.len > 0 && r->body.data[0] == '{');
}

static void run_one(fl_api *api, const char *p, size_t n, uint64_t now_ms)
{
    char *req = malloc(n + 1);
    memcpy(req, p, n);
    req[n] = '\0';
    char *nl1 = strchr(req, '\n');
    char *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
    if (nl1) *nl1 = '\0';
    if (nl2) *nl2 = '\0';
    char *sp = strchr(req, ' ');
    if (sp) *sp = '\0';
    char *path = sp ? sp + 1 : (char *)"/";
    char *qm = strchr(path, '?');
    if (qm) *qm = '\0';
    query q;
    parse_query(qm ? qm + 1 : NULL, &q);
    const char *body = nl2 ? nl2 + 1 : "";
    size_t body_len = nl2 ? n - (size_t)(nl2 + 1 - req) : 0;
    /* The path doubles as the raw one, so {id} segments go through the
     * percent-decoding the router does. */
    fl_api_req r = {req, path, query_arg, &q, nl1 && nl1[1] ? nl1 + 1 : NULL,
                    NULL, body, body_len, now_ms, now_ms * 1000, path};
    fl_api_resp resp;
    fl_api_resp_init(&resp);
    fl_api_handle(api, &r, &resp);
    check_answer(&resp);
    if (resp.kind == FL_API_LIST) { /* the edge's slices, all at once */
        assert(resp.status == 200 && resp.list);
        while (fl_api_list_next(resp.list, &resp.body)) continue;
        assert(resp.body.len > 0 && resp.body.data[0] == '{' &&
               resp.body.data[resp.body.len - 1] == '}');
    }
    fl_api_resp_free(&resp);
    free(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fl_config cfg;
    fl_config_defaults(&cfg);
    fl_server srv;
    uint64_t now = 1700000000000ULL;
    fl_server_init(&srv, &cfg, now, 42);
    srv.ready = 1;
    fl_api api;
    fl_api_init(&api, &srv);
    const char *p = (const char *)data, *end = p + size;
    for (int i = 0; i < 64 && p < end; i++) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        const char *stop = z ? z : end;
        run_one(&api, p, (size_t)(stop - p), now + (uint64_t)i * 1000);
        p = z ? z + 1 : end;
    }
    fl_api_free(&api);
    fl_server_free(&srv);
    return 0;
}
