/*
 * fuzz_resp.c - libFuzzer target for the RESP request parser.
 *
 * Feeds the input as a byte stream split at a point chosen by the first
 * byte, so the fuzzer explores both whole frames and frames that arrive in
 * two pieces (the resume path). Every parsed argument must lie inside the
 * input; an error must carry a message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp.h"

static void check_args(const fl_resp_cmd *c, const char *in, size_t len)
{
    for (int i = 0; i < c->argc; i++) {
        const char *a = c->argv[i];
        int in_input = a >= in && a + c->argvlen[i] <= in + len;
        int in_inline = c->inline_store && a >= c->inline_store;
        if (!in_input && !in_inline) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fl_resp_limits lim = {1 << 16, 1 << 20, 4096, data[0] & 1};
    size_t split = size > 1 ? data[0] % size : 0;
    const char *in = (const char *)data + 1;
    size_t len = size - 1, pos = 0;
    fl_resp_cmd c;
    fl_resp_cmd_init(&c);
    char err[128];
    size_t avail = split < len ? split : len;
    for (int rounds = 0; rounds < 100000; rounds++) {
        size_t used = 0;
        int rc = fl_resp_parse(in + pos, avail - pos, &lim, &c, &used, err,
                               sizeof(err));
        if (rc == FL_RESP_ERROR) {
            if (err[0] == '\0') abort();
            break;
        }
        if (rc == FL_RESP_INCOMPLETE) {
            if (avail == len) break;
            avail = len;
            continue;
        }
        check_args(&c, in + pos, avail - pos);
        if (used == 0 || pos + used > avail) abort();
        pos += used;
    }
    fl_resp_cmd_free(&c);
    return 0;
}
