/*
 * cmd.h - the command table and what a command handler sees.
 *
 * Every protocol edge (RESP today, HTTP and ISO 8583 later) turns a request
 * into argv and calls fl_cmd_dispatch, so rules live in exactly one place.
 * A handler receives an fl_cmd_ctx: its arguments (borrowed, valid for the
 * call only), a reply writer, the server state, the calling session and the
 * current time (handlers never read the clock themselves).
 *
 * Arity follows Redis: positive = exact argc, negative = at least -arity.
 */
#ifndef FL_CMD_CMD_H
#define FL_CMD_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "../proto/resp.h"
#include "../metrics/hist.h"

struct fl_db;
struct fl_server;

/* Connection state the commands read and change. Owned by the edge that
 * holds the connection; commands only borrow it. */
typedef struct fl_session {
    uint64_t id;
    int proto;            /* 2 or 3 */
    int authenticated;
    int close_after_reply; /* QUIT, CLIENT KILL of self */
    char name[64];
    char addr[64];        /* "ip:port" */
    char laddr[64];
    uint64_t created_ms;
    uint64_t last_cmd_ms;
    const char *last_cmd; /* static name of the last command */
    uint64_t wal_need;    /* log records this session's replies wait for */
    uint64_t wal_own;     /* the last record of this session's own changes */
} fl_session;

enum fl_cmd_flags {
    FL_CMD_WRITE = 1 << 0,
    FL_CMD_READONLY = 1 << 1,
    FL_CMD_NOAUTH = 1 << 2,   /* allowed before AUTH (AUTH, HELLO, QUIT) */
    FL_CMD_FAST = 1 << 3,
    FL_CMD_ADMIN = 1 << 4,
    /* answered while the store loads on its worker thread: touches only
     * the connection and static tables, never the data or settings the
     * loader writes (the edge answers everything else LOADING) */
    FL_CMD_LOADING = 1 << 5
};

typedef struct fl_cmd_stats {
    uint64_t calls;
    uint64_t errors;     /* calls whose reply was an error */
    uint64_t rejected;   /* refused before running: arity, auth */
    uint64_t usec;       /* total run time, microseconds */
    fl_hist latency;     /* nanoseconds */
} fl_cmd_stats;

typedef struct fl_cmd_ctx {
    int argc;
    const char **argv;
    const size_t *argvlen;
    fl_reply *reply;
    fl_session *session;
    struct fl_server *server;
    uint64_t now_ms;      /* wall clock, milliseconds since the epoch */
    uint64_t now_us;      /* the same instant in microseconds */
} fl_cmd_ctx;

typedef void fl_cmd_fn(fl_cmd_ctx *ctx);

typedef struct fl_command {
    const char *name;     /* lower case */
    fl_cmd_fn *fn;
    int arity;
    unsigned flags;
    int first_key, last_key, key_step;
    const char *group;    /* for COMMAND DOCS: "geo", "server", ... */
    const char *summary;
    const char *since;
} fl_command;

/* The table, sorted by name. */
extern const fl_command fl_commands[];
extern const size_t fl_commands_count;

/* Case-insensitive lookup; NULL if unknown. */
const fl_command *fl_cmd_lookup(const char *name, size_t len);

/* Runs argv against the server: unknown-command, arity and auth errors are
 * answered here with Redis' messages. Returns the command that ran, or NULL
 * when it was refused; calls and errors are counted here. The caller times
 * the call and passes the duration to fl_cmd_record_latency, so this layer
 * reads no clock. */
const fl_command *fl_cmd_dispatch(fl_cmd_ctx *ctx);
void fl_cmd_record_latency(struct fl_server *s, const fl_command *c,
                           uint64_t ns);
/* Index of c in fl_commands (and in server->cmd_stats). */
size_t fl_cmd_index(const fl_command *c);

/* Helpers shared by handlers. */
int fl_arg_eq(const fl_cmd_ctx *ctx, int i, const char *lit); /* case-insens */
/* Strict integer parse without replying; 0 or -1. */
int fl_parse_ll(const char *p, size_t n, long long *out);
/* Parses argv[i] as a strict integer; on failure replies
 * "ERR value is not an integer or out of range" and returns -1. */
int fl_arg_ll(fl_cmd_ctx *ctx, int i, long long *out);
/* Double parse like Redis' string2d, without replying; 0 or -1. */
int fl_parse_double(const char *p, size_t n, double *out);
/* Parses argv[i] as a double; on failure replies
 * "ERR value is not a valid float" and returns -1. */
int fl_arg_double(fl_cmd_ctx *ctx, int i, double *out);
void fl_reply_syntax_error(fl_cmd_ctx *ctx);
void fl_reply_wrongtype(fl_cmd_ctx *ctx);
void fl_reply_arity_error(fl_cmd_ctx *ctx, const char *name);
/* Appends a change to the write-ahead log as the command that replays it
 * (nothing while the log is being replayed or when there is no log), and
 * makes the calling session's replies wait until the record is as durable
 * as the fsync policy demands. argv is borrowed for the call. */
void fl_cmd_log(fl_cmd_ctx *ctx, int argc, const char **argv,
                const size_t *lens);

/* "ERR unknown subcommand '<argv[1]>'. Try <cmd> HELP." as Redis says it. */
void fl_reply_unknown_subcommand(fl_cmd_ctx *ctx, const char *cmd);

/* Handlers, one per command, defined in the cmd/ files by group. */
#define FL_CMD(name) void fl_cmd_##name(fl_cmd_ctx *ctx)
FL_CMD(ping); FL_CMD(echo); FL_CMD(hello); FL_CMD(auth); FL_CMD(select);
FL_CMD(quit); FL_CMD(client); FL_CMD(info); FL_CMD(dbsize); FL_CMD(command);
FL_CMD(config); FL_CMD(flushall); FL_CMD(flushdb); FL_CMD(del);
FL_CMD(exists); FL_CMD(type); FL_CMD(keys); FL_CMD(scan); FL_CMD(set);
FL_CMD(get); FL_CMD(time);
FL_CMD(geoadd); FL_CMD(geopos); FL_CMD(geodist); FL_CMD(geohash);
FL_CMD(geosearch); FL_CMD(geosearchstore); FL_CMD(georadius);
FL_CMD(georadius_ro); FL_CMD(georadiusbymember);
FL_CMD(georadiusbymember_ro);
FL_CMD(vehicle_update); FL_CMD(vehicle_get); FL_CMD(vehicle_del);
FL_CMD(vehicle_count); FL_CMD(vehicle_nearby); FL_CMD(vehicle_within);
FL_CMD(trip_start); FL_CMD(trip_end); FL_CMD(trip_get); FL_CMD(trip_list);
FL_CMD(area_supply); FL_CMD(area_cell); FL_CMD(bgsave);
FL_CMD(zcard); FL_CMD(zscore); FL_CMD(zrange); FL_CMD(zrem); FL_CMD(zrank);

#endif
