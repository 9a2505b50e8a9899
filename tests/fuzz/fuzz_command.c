/*
 * fuzz_command.c - libFuzzer target for the command layer.
 *
 * Parses the input as a RESP stream and runs every command against a fresh
 * in-process server (keyspace, geo sets, CONFIG, CLIENT ...), so the fuzzer
 * reaches argument parsing and the geo code through the same dispatcher the
 * network uses. The connection hooks are minimal in-process versions: this
 * target has no sockets.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/server.h"
#include "proto/resp.h"

static void list_hook(void *ud, fl_buf *out)
{
    (void)ud;
    fl_buf_append_str(out, "id=1 addr=127.0.0.1:1 name=\n");
}
static long kill_hook(void *ud, uint64_t id, const char *addr,
                      const char *laddr, uint64_t skip_id)
{
    (void)ud;
    (void)addr;
    (void)laddr;
    return id == 1 && skip_id != 1;
}
static size_t count_hook(void *ud) { (void)ud; return 1; }
static void mem_hook(void *ud, uint64_t *used, uint64_t *rss)
{
    (void)ud;
    *used = *rss = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fl_config cfg;
    fl_config_defaults(&cfg);
    fl_server srv;
    fl_server_init(&srv, &cfg, 1700000000000ULL, 42);
    srv.hooks.client_list = list_hook;
    srv.hooks.client_kill = kill_hook;
    srv.hooks.clients_connected = count_hook;
    srv.hooks.clients_output_bytes = count_hook;
    srv.hooks.memory = mem_hook;
    fl_session sess = {.id = 1, .proto = 2, .authenticated = 1};
    fl_buf out;
    fl_buf_init(&out);
    fl_resp_limits lim = {1 << 12, 1 << 16, 4096, 0};
    fl_resp_cmd c;
    fl_resp_cmd_init(&c);
    const char *in = (const char *)data;
    size_t pos = 0;
    char err[128];
    for (int n = 0; n < 256 && pos < size; n++) {
        size_t used;
        if (fl_resp_parse(in + pos, size - pos, &lim, &c, &used, err,
                          sizeof(err)) != FL_RESP_OK)
            break;
        pos += used;
        if (c.argc == 0) continue;
        fl_reply reply = {&out, sess.proto, 0};
        fl_cmd_ctx ctx = {c.argc, c.argv, c.argvlen, &reply, &sess, &srv,
                          1700000000000ULL, 1700000000000000ULL};
        const fl_command *cmd = fl_cmd_dispatch(&ctx);
        if (cmd) fl_cmd_record_latency(&srv, cmd, 1000);
        if (out.len == 0) abort(); /* every command must answer */
        out.len = 0;
    }
    fl_resp_cmd_free(&c);
    fl_buf_free(&out);
    fl_server_free(&srv);
    return 0;
}
