/*
 * resp_server.h - the RESP listener: accepts Redis clients on the event loop
 * and feeds their commands to the command table.
 *
 * Ownership: fl_resp_server_start allocates the listener and owns every
 * client connection it accepts; fl_resp_server_close closes them all and
 * frees everything once the loop has run the close callbacks.
 */
#ifndef FL_NET_RESP_SERVER_H
#define FL_NET_RESP_SERVER_H

#include <stddef.h>
#include <uv.h>

struct fl_server;
typedef struct fl_resp_server fl_resp_server;

/* Binds cfg.bind:cfg.port and starts accepting. 0, or a negative libuv
 * code with a readable reason in err. Installs srv->hooks. */
int fl_resp_server_start(uv_loop_t *loop, struct fl_server *srv,
                         fl_resp_server **out, char *err, size_t errlen);
/* Stops accepting and closes every client (replies already queued are
 * dropped). The memory is released from the close callbacks. */
void fl_resp_server_close(fl_resp_server *rs);
size_t fl_resp_server_clients(const fl_resp_server *rs);

#endif
