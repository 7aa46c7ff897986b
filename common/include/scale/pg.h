/* PostgreSQL (libpq): a bounded, thread-safe connection pool with
 * per-statement timeouts and reconnect after a server restart, parameterised
 * queries only, COPY, and transactions with a clean rollback path.
 *
 * Errors come back as statuses: a lost or refused connection is
 * SC_UNAVAILABLE (the connection is dropped; the next acquire reconnects, so
 * the process recovers without a restart), a statement timeout
 * SC_DEADLINE_EXCEEDED, a unique violation SC_ALREADY_EXISTS, a full pool
 * SC_RESOURCE_EXHAUSTED, anything else SC_INTERNAL. `why` (optional) gets a
 * message for logs; it may hold SQL error text, so never send it to clients.
 */
#ifndef SCALE_PG_H
#define SCALE_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "scale/arena.h"
#include "scale/status.h"

typedef struct sc_pg_pool sc_pg_pool_t;
typedef struct sc_pg_conn sc_pg_conn_t;

typedef struct sc_pg_opts {
  const char *url;              /* postgresql://user@host:port/db (SCALE_DATABASE_URL) */
  int max_conns;                /* pool size; <= 0: 10 */
  int acquire_timeout_ms;       /* wait for a free connection; <= 0: 5000 */
  int connect_timeout_ms;       /* <= 0: 5000 */
  int statement_timeout_ms;     /* per statement; <= 0: 30000 */
  const char *application_name; /* shown in pg_stat_activity; NULL: "scale" */
} sc_pg_opts_t;

/* Creates the pool; connects lazily. Fails (NULL, err) only on bad options
 * (an unparseable URL). Thread-safe after creation. */
sc_pg_pool_t *sc_pg_pool_new(const sc_pg_opts_t *opts, sc_err_t *err);
/* Closes every connection. All must have been released. Accepts NULL. */
void sc_pg_pool_free(sc_pg_pool_t *pool);

/* Checks a connection out, reconnecting it if it was lost. */
sc_status_t sc_pg_acquire(sc_pg_pool_t *pool, sc_pg_conn_t **out, sc_err_t *why);
/* Returns it: an open transaction is rolled back, a broken connection closed. */
void sc_pg_release(sc_pg_conn_t *conn);
/* Returns it closed: for a session whose state (an advisory lock, a SET)
 * must not reach the next holder. The slot reconnects on its next acquire.
 * Accepts NULL. */
void sc_pg_discard(sc_pg_conn_t *conn);

/* Runs one parameterised statement (params as text, NULL = SQL NULL). On
 * success *res (may be NULL when not wanted) is the result, freed when
 * `arena` is reset or freed (arena NULL: the caller PQclear()s it). */
sc_status_t sc_pg_exec(sc_pg_conn_t *conn, sc_arena_t *arena, const char *sql, int nparams, const char *const *params,
                       PGresult **res, sc_err_t *why);

/* Transactions. rollback is safe to call when none is open. A failed commit
 * leaves no transaction open; committing a transaction in which a statement
 * failed (PostgreSQL answers ROLLBACK) is SC_ABORTED. */
sc_status_t sc_pg_begin(sc_pg_conn_t *conn, sc_err_t *why);
sc_status_t sc_pg_commit(sc_pg_conn_t *conn, sc_err_t *why);
void sc_pg_rollback(sc_pg_conn_t *conn);

/* COPY ... FROM STDIN: start, put data (text format rows), end. On any
 * failure the COPY is aborted; *rows (optional) gets the rows copied. */
sc_status_t sc_pg_copy_start(sc_pg_conn_t *conn, const char *copy_sql, sc_err_t *why);
sc_status_t sc_pg_copy_put(sc_pg_conn_t *conn, const char *data, size_t len, sc_err_t *why);
sc_status_t sc_pg_copy_end(sc_pg_conn_t *conn, int64_t *rows, sc_err_t *why);
void sc_pg_copy_abort(sc_pg_conn_t *conn, const char *reason);

/* The raw connection, for result helpers (never for building SQL text). */
PGconn *sc_pg_raw(sc_pg_conn_t *conn);

/* Is the database reachable? (acquire + SELECT 1) */
sc_status_t sc_pg_ping(sc_pg_pool_t *pool, sc_err_t *why);

#endif
