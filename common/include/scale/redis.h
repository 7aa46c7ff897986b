/* Redis (hiredis): connections with timeouts and reconnect, and the helpers
 * SCALE needs: Streams with consumer groups (jobs, at-least-once, with
 * pending-entry recovery), pub/sub, and an atomic sliding-window rate limit
 * (a Lua script).
 *
 * A client is a small pool of connections, thread-safe. A lost connection is
 * SC_UNAVAILABLE for that command and is re-established by the next one.
 * The connect and command timeouts bound every call (blocking reads add
 * their block time; a call may first wait up to both for a free connection).
 * The process must ignore SIGPIPE (sc_process_block_signals does): hiredis
 * writes with write(2).
 */
#ifndef SCALE_REDIS_H
#define SCALE_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scale/arena.h"
#include "scale/status.h"

typedef struct sc_redis sc_redis_t;

typedef struct sc_redis_opts {
  const char *url;        /* redis://[[user]:password@]host[:port][/db] (SCALE_REDIS_URL),
                             or unix://[[user]:password@]/path[?db=N]; percent-encoded
                             credentials */
  int max_conns;          /* <= 0: 8 */
  int connect_timeout_ms; /* <= 0: 2000 */
  int command_timeout_ms; /* <= 0: 2000 (blocking reads add their block time) */
} sc_redis_opts_t;

/* Connects lazily; NULL (err) only for a bad URL (the message never quotes
 * the URL) or out of memory. */
sc_redis_t *sc_redis_new(const sc_redis_opts_t *opts, sc_err_t *err);
void sc_redis_free(sc_redis_t *r);

/* One command in argv form. *reply (optional; freeReplyObject it, or pass an
 * arena to have it freed with the arena) gets the reply. A Redis error reply
 * is SC_INTERNAL with its text in why. */
sc_status_t sc_redis_cmd(sc_redis_t *r, sc_arena_t *arena, redisReply **reply, sc_err_t *why, int argc,
                         const char **argv, const size_t *argvlen);
/* PING. */
sc_status_t sc_redis_ping(sc_redis_t *r, sc_err_t *why);

/* ---- Streams ----------------------------------------------------------- */

typedef struct sc_redis_field {
  const char *name;
  const char *value;
  size_t value_len;
} sc_redis_field_t;

typedef struct sc_redis_entry {
  char id[48];              /* "1700000000000-0" */
  sc_redis_field_t *fields; /* in the arena */
  size_t n_fields;
  int64_t deliveries; /* from XAUTOCLAIM/XPENDING when known, else 0 */
} sc_redis_entry_t;

/* XADD stream MAXLEN ~ maxlen * fields...; id_out (optional, 48 bytes). */
sc_status_t sc_redis_xadd(sc_redis_t *r, const char *stream, int64_t maxlen, const sc_redis_field_t *fields, size_t n,
                          char *id_out, sc_err_t *why);
/* XGROUP CREATE stream group $ MKSTREAM; an existing group is success. */
sc_status_t sc_redis_group_create(sc_redis_t *r, const char *stream, const char *group, sc_err_t *why);
/* XREADGROUP up to count (>= 1) new entries (">") for consumer, blocking up
 * to block_ms (0: do not block). Entries live in the arena; *n = 0 on
 * timeout. A missing group is SC_INTERNAL with "NOGROUP" in why. */
sc_status_t sc_redis_xreadgroup(sc_redis_t *r, sc_arena_t *arena, const char *stream, const char *group,
                                const char *consumer, size_t count, int block_ms, sc_redis_entry_t **entries, size_t *n,
                                sc_err_t *why);
/* XACK. */
sc_status_t sc_redis_xack(sc_redis_t *r, const char *stream, const char *group, const char *id, sc_err_t *why);
/* Pending-entry recovery: XAUTOCLAIM up to count (>= 1) entries idle longer
 * than min_idle_ms (crashed consumers) to `consumer`, oldest first (the scan
 * starts at 0-0). Each entry's deliveries includes this claim. */
sc_status_t sc_redis_xautoclaim(sc_redis_t *r, sc_arena_t *arena, const char *stream, const char *group,
                                const char *consumer, int64_t min_idle_ms, size_t count, sc_redis_entry_t **entries,
                                size_t *n, sc_err_t *why);

/* ---- Pub/sub ----------------------------------------------------------- */

typedef struct sc_redis_sub sc_redis_sub_t;

sc_status_t sc_redis_publish(sc_redis_t *r, const char *channel, const char *msg, size_t len, sc_err_t *why);
/* A subscription on its own connection (one thread at a time); subscribed
 * when this returns. r must outlive it. NULL (err) when Redis is unreachable. */
sc_redis_sub_t *sc_redis_subscribe(sc_redis_t *r, const char *channel, sc_err_t *err);
/* Waits up to timeout_ms for a message; SC_OK with *msg NULL on timeout.
 * The message (NUL-terminated, length in *len) lives in the arena. A lost
 * connection is SC_UNAVAILABLE (messages sent meanwhile are lost, as ever
 * with pub/sub); the next call reconnects and resubscribes, so back off
 * between calls that fail. */
sc_status_t sc_redis_sub_next(sc_redis_sub_t *s, sc_arena_t *arena, int timeout_ms, char **msg, size_t *len,
                              sc_err_t *why);
void sc_redis_sub_free(sc_redis_sub_t *s);

/* ---- Rate limiting ----------------------------------------------------- */

typedef struct sc_rate_result {
  bool allowed;
  int64_t limit;
  int64_t remaining;      /* after this request */
  int64_t reset_ms;       /* until the window frees a slot */
  int64_t retry_after_ms; /* 0 when allowed */
} sc_rate_result_t;

/* Sliding-window log limit: at most `limit` (>= 1) requests per `window_ms`
 * (>= 1) for key, decided atomically in Redis on the server's clock (one Lua
 * script, EVALSHA with an EVAL fallback). Refused requests are not counted. */
sc_status_t sc_redis_rate_limit(sc_redis_t *r, const char *key, int64_t limit, int64_t window_ms, sc_rate_result_t *out,
                                sc_err_t *why);

#endif
