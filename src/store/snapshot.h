/*
 * snapshot.h - the server's state as records, and records back into state.
 *
 * One loader serves both files: a snapshot is a sequence of binary state
 * records (one per vehicle with its running trip, one per finished trip,
 * keys in chunks), a log segment is a sequence of argv records (commands,
 * replayed through the command table). fl_store_apply takes either kind,
 * so restart = apply(snapshot records) then apply(log records).
 *
 * Payload types (first byte), fields as in store/log.h:
 *   'M' meta       varint trip_seq, varint vehicles, varint trips (the
 *                  loader sizes its tables from the counts)
 *   'S' string     bytes key, bytes value
 *   'G' geo chunk  bytes key, u8 kind, varint n, n x (double score, bytes name)
 *   'V' vehicle    bytes id, double lon, lat, varint ts, u32 speed/heading
 *                  float bits (as varints), bytes fleet (empty: none),
 *                  u8 status, varint flagged, u8 suspect, u8 has_trip,
 *                  [trip fields]
 *   'T' trip       bytes vehicle id, trip fields (a finished trip)
 *   'E' end        varint records before it: a snapshot without it is
 *                  incomplete and refused
 *   'A' argv       a logged command (store/log.h)
 * Vehicles are written in geohash order, so loading them appends to the
 * index's B+tree instead of inserting at random places.
 *
 * Ownership: nothing is retained from the payloads passed in; the state
 * copies what it keeps. Errors: 0 or a negative errno code (-EINVAL for a
 * malformed or inconsistent record: the caller treats it as corruption).
 */
#ifndef FL_STORE_SNAPSHOT_H
#define FL_STORE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "../cmd/server.h"

/* Writes every state record through emit (which frames and writes it).
 * Returns 0, or the first nonzero value emit returned. */
int fl_snapshot_write(const fl_server *s,
                      int (*emit)(void *ud, const void *payload, size_t len),
                      void *ud);

/* Applies one record of either kind. For 'A' records the command runs
 * with s->persist.replaying set; an error reply is -EINVAL. 'E' checks
 * the record count against *applied (records before it) and sets
 * *saw_end. */
typedef struct fl_apply_state {
    uint64_t applied;
    int saw_end;
    uint64_t now_ms;
    char err[160];
} fl_apply_state;
int fl_store_apply(fl_server *s, const uint8_t *p, size_t n,
                   fl_apply_state *st);
/* For a 'V' record: hints the CPU to fetch the table slots applying it
 * will touch (a loader prefetches a batch, then applies it). No effect on
 * other records or malformed ones. */
void fl_store_prefetch(const fl_server *s, const uint8_t *p, size_t n);

#endif
