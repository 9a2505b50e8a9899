/*
 * wire.h - fleet-replay's connections to fleetd: a batch buffer of RESP
 * commands per connection, sent and answered in one round trip.
 *
 * Ownership: a connection owns its hiredis context and buffers;
 * fl_rp_conn_free releases them. Sending and receiving return 0 or -1,
 * with the reason in c->rc->errstr (the connection is then unusable).
 */
#ifndef FL_REPLAY_WIRE_H
#define FL_REPLAY_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

#define FL_RP_CMD_MAX 320       /* bytes of the longest command we format */

enum fl_rp_kind {
    FL_RP_K_UPDATE = 0,
    FL_RP_K_START = 1,
    FL_RP_K_END = 2,
    FL_RP_K_END_LEFTOVER = 3,   /* ends a trip an earlier run left open */
};

typedef struct fl_rp_conn {
    redisContext *rc;
    char *buf;                  /* this batch's commands */
    size_t len, cap;
    uint32_t *off;              /* where each command starts in buf */
    uint8_t *kind;              /* enum fl_rp_kind of each */
    uint32_t n, max;
} fl_rp_conn;

typedef struct fl_rp_counts {
    uint64_t sent, errors, trips_started, trips_ended;
    uint64_t stale, implausible, relocated, leftover;
} fl_rp_counts;

/* One VEHICLE.UPDATE's arguments. */
typedef struct fl_rp_ping {
    const char *id;
    size_t id_len;
    double lon, lat;
    int64_t ts_ms;
    double kmh, heading;
    const char *fleet;
    int busy;
} fl_rp_ping;

/* Buffers for max_cmds commands a batch; -ENOMEM. rc stays NULL. */
int fl_rp_conn_init(fl_rp_conn *c, uint32_t max_cmds);
void fl_rp_conn_free(fl_rp_conn *c);

/* prefix + the index in at least 6 digits; out needs strlen(prefix)+11. */
size_t fl_rp_fmt_id(char *out, const char *prefix, uint32_t index);

/* Append one command to the batch; the caller keeps n < max. */
void fl_rp_put_update(fl_rp_conn *c, const fl_rp_ping *p);
void fl_rp_put_trip(fl_rp_conn *c, int kind, const char *id, size_t id_len,
                    int64_t ts_ms);

/* Writes the batch (blocking until the socket took it all). */
int fl_rp_send(fl_rp_conn *c);
/* Reads one reply per command of the batch, counts them into n (errors
 * are counted, the first few printed with their command) and empties
 * the batch. */
int fl_rp_receive(fl_rp_conn *c, fl_rp_counts *n);

#endif
