/* The PostgreSQL pool: a fixed array of slots, each holding at most one
 * libpq connection, handed out under one mutex. Connections are opened
 * lazily, outside the mutex, by the thread that needs one; a slot whose
 * connection died is reopened on its next acquire, which is how the pool
 * recovers from a server restart without being recreated. */
#include "scale/pg.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scale/log.h"

#define DEFAULT_MAX_CONNS 10
#define DEFAULT_ACQUIRE_TIMEOUT_MS 5000
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_STATEMENT_TIMEOUT_MS 30000
#define DEFAULT_APPLICATION_NAME "scale"
/* PQputCopyData takes an int length. */
#define COPY_CHUNK ((size_t)1 << 30)

struct sc_pg_conn {
  sc_pg_pool_t *pool;
  PGconn *pg;   /* NULL until connected, and after a broken one is closed */
  bool in_use;  /* guarded by pool->mu; everything else belongs to the holder */
  bool broken;  /* seen lost or in a state we cannot clean up: close on release */
  bool in_copy; /* between sc_pg_copy_start and its end or abort */
};

struct sc_pg_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a slot was released */
  sc_pg_conn_t *slots;
  int max_conns;
  int acquire_timeout_ms;
  /* The connection parameters, fixed at creation (see connect_slot). */
  char *url;
  char *application_name;
  char *options;
  char connect_timeout[16];
};

static void clear_result(void *r) { PQclear(r); }

static void on_notice(void *arg, const char *msg) {
  (void)arg;
  /* Notices ("schema already exists, skipping", a FATAL sent to an idle
   * session at shutdown) would otherwise go straight to stderr, outside the
   * log format. */
  size_t n = strcspn(msg, "\n");
  SC_LOG_DEBUGF(NULL, "postgres: %.*s", (int)n, msg);
}

/* Copies the first line of a libpq message into why, prefixed. */
static void set_why(sc_err_t *why, const char *prefix, const char *msg) {
  if (msg == NULL || *msg == '\0') msg = "no message";
  size_t n = strcspn(msg, "\n");
  sc_err_set(why, "%s%.*s", prefix, (int)n, msg);
}

static char *dup_str(const char *s) {
  size_t n = strlen(s);
  char *p = malloc(n + 1);
  if (p != NULL) memcpy(p, s, n + 1);
  return p;
}

static void free_secret(char *s) {
  /* The URL may carry a password: do not leave it in freed memory. */
  if (s == NULL) return;
  explicit_bzero(s, strlen(s));
  free(s);
}

/* Builds the "options" parameter: the URL's own options, if any, then our
 * statement timeout, so it reaches the server in the startup packet and
 * costs no extra round trip. */
static char *build_options(const char *url_options, int statement_timeout_ms) {
  char tail[48];
  int tn = snprintf(tail, sizeof(tail), "-c statement_timeout=%d", statement_timeout_ms);
  if (tn < 0 || (size_t)tn >= sizeof(tail)) return NULL;
  size_t un = url_options ? strlen(url_options) : 0;
  if (un > SIZE_MAX - (size_t)tn - 2) return NULL;
  char *s = malloc(un + 1 + (size_t)tn + 1);
  if (s == NULL) return NULL;
  size_t at = 0;
  if (un > 0) {
    memcpy(s, url_options, un);
    s[un] = ' ';
    at = un + 1;
  }
  memcpy(s + at, tail, (size_t)tn + 1);
  return s;
}

sc_pg_pool_t *sc_pg_pool_new(const sc_pg_opts_t *opts, sc_err_t *err) {
  sc_pg_pool_t *pool = NULL;
  PQconninfoOption *info = NULL;
  char *parse_msg = NULL;
  if (opts == NULL || opts->url == NULL || opts->url[0] == '\0') {
    sc_err_set(err, "no database URL");
    goto fail;
  }
  /* libpq's parse message may quote the URL, password and all: say what is
   * wrong in general terms instead. */
  info = PQconninfoParse(opts->url, &parse_msg);
  if (info == NULL) {
    sc_err_set(err, "the database URL is not a valid PostgreSQL connection URL "
                    "(expected postgresql://user@host:port/dbname)");
    goto fail;
  }
  const char *url_options = NULL;
  for (PQconninfoOption *o = info; o->keyword != NULL; o++) {
    if (strcmp(o->keyword, "options") == 0) url_options = o->val;
  }

  int max_conns = opts->max_conns > 0 ? opts->max_conns : DEFAULT_MAX_CONNS;
  int connect_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
  int stmt_ms = opts->statement_timeout_ms > 0 ? opts->statement_timeout_ms : DEFAULT_STATEMENT_TIMEOUT_MS;
  pool = calloc(1, sizeof(*pool));
  if (pool == NULL) goto oom;
  pool->slots = calloc((size_t)max_conns, sizeof(*pool->slots));
  pool->url = dup_str(opts->url);
  pool->application_name = dup_str(opts->application_name ? opts->application_name : DEFAULT_APPLICATION_NAME);
  pool->options = build_options(url_options, stmt_ms);
  if (pool->slots == NULL || pool->url == NULL || pool->application_name == NULL || pool->options == NULL) goto oom;
  for (int i = 0; i < max_conns; i++)
    pool->slots[i].pool = pool;
  pool->max_conns = max_conns;
  pool->acquire_timeout_ms = opts->acquire_timeout_ms > 0 ? opts->acquire_timeout_ms : DEFAULT_ACQUIRE_TIMEOUT_MS;
  /* libpq counts whole seconds (and waits at least 2): round up, so the
   * timeout is never shorter than asked. */
  snprintf(pool->connect_timeout, sizeof(pool->connect_timeout), "%d", connect_ms / 1000 + (connect_ms % 1000 != 0));
  pthread_mutex_init(&pool->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&pool->cv, &ca);
  pthread_condattr_destroy(&ca);
  PQconninfoFree(info);
  return pool;

oom:
  sc_err_set(err, "out of memory creating the database pool");
  if (pool != NULL) {
    free(pool->slots);
    free_secret(pool->url);
    free(pool->application_name);
    free(pool->options);
    free(pool);
  }
fail:
  PQconninfoFree(info);
  PQfreemem(parse_msg);
  return NULL;
}

void sc_pg_pool_free(sc_pg_pool_t *pool) {
  if (pool == NULL) return;
  for (int i = 0; i < pool->max_conns; i++) {
    assert(!pool->slots[i].in_use && "sc_pg_pool_free with a connection checked out");
    if (pool->slots[i].pg != NULL) PQfinish(pool->slots[i].pg);
  }
  pthread_mutex_destroy(&pool->mu);
  pthread_cond_destroy(&pool->cv);
  free(pool->slots);
  free_secret(pool->url);
  free(pool->application_name);
  free(pool->options);
  free(pool);
}

static void close_conn(sc_pg_conn_t *c) {
  if (c->pg != NULL) PQfinish(c->pg);
  c->pg = NULL;
  c->broken = false;
  c->in_copy = false;
}

static sc_status_t connect_slot(sc_pg_conn_t *c, sc_err_t *why) {
  sc_pg_pool_t *pool = c->pool;
  /* expand_dbname=1: libpq parses the URL. Keywords later in the list win,
   * so gssencmode comes first (the URL may still ask for GSS; by default we
   * skip the Kerberos credential probe on every connect) and ours follow. */
  const char *const keys[] = {"gssencmode",      "dbname", "connect_timeout", "application_name", "options",
                              "client_encoding", NULL};
  const char *const vals[] = {"disable", pool->url, pool->connect_timeout, pool->application_name, pool->options,
                              "UTF8",    NULL};
  PGconn *pg = PQconnectdbParams(keys, vals, 1);
  if (pg == NULL) {
    sc_err_set(why, "out of memory connecting to the database");
    return SC_RESOURCE_EXHAUSTED;
  }
  if (PQstatus(pg) != CONNECTION_OK) {
    set_why(why, "database unavailable: ", PQerrorMessage(pg));
    PQfinish(pg);
    return SC_UNAVAILABLE;
  }
  PQsetNoticeProcessor(pg, on_notice, NULL);
  c->pg = pg;
  c->broken = false;
  c->in_copy = false;
  return SC_OK;
}

/* Is an idle connection still usable? libpq learns that the server went away
 * only when it next reads, so look first: an idle session is never sent
 * anything we want (we use no LISTEN), and a server shutting down sends it a
 * FATAL and closes. Readable means gone, or as good as: reconnect. */
static bool idle_conn_ok(PGconn *pg) {
  if (PQstatus(pg) != CONNECTION_OK || PQtransactionStatus(pg) != PQTRANS_IDLE) return false;
  struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
  if (p.fd < 0) return false;
  int rc;
  do
    rc = poll(&p, 1, 0);
  while (rc < 0 && errno == EINTR);
  return rc == 0;
}

/* Under pool->mu: a free slot, one with a live connection first. */
static sc_pg_conn_t *take_free(sc_pg_pool_t *pool) {
  sc_pg_conn_t *empty = NULL;
  for (int i = 0; i < pool->max_conns; i++) {
    sc_pg_conn_t *c = &pool->slots[i];
    if (c->in_use) continue;
    if (c->pg != NULL) {
      c->in_use = true;
      return c;
    }
    if (empty == NULL) empty = c;
  }
  if (empty != NULL) empty->in_use = true;
  return empty;
}

static void put_back(sc_pg_conn_t *c) {
  sc_pg_pool_t *pool = c->pool;
  pthread_mutex_lock(&pool->mu);
  c->in_use = false;
  pthread_cond_signal(&pool->cv);
  pthread_mutex_unlock(&pool->mu);
}

sc_status_t sc_pg_acquire(sc_pg_pool_t *pool, sc_pg_conn_t **out, sc_err_t *why) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += pool->acquire_timeout_ms / 1000;
  deadline.tv_nsec += (long)(pool->acquire_timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }

  pthread_mutex_lock(&pool->mu);
  sc_pg_conn_t *c = take_free(pool);
  while (c == NULL) {
    int rc = pthread_cond_timedwait(&pool->cv, &pool->mu, &deadline);
    c = take_free(pool);
    if (rc == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&pool->mu);
  if (c == NULL) {
    sc_err_set(why, "no free database connection within %d ms", pool->acquire_timeout_ms);
    return SC_RESOURCE_EXHAUSTED;
  }

  /* Connecting happens outside the mutex: a slow or refused connect holds
   * up only the caller that needs it. */
  if (c->pg != NULL && !idle_conn_ok(c->pg)) {
    SC_LOG_DEBUGF(NULL, "database connection lost while idle; reconnecting");
    close_conn(c);
  }
  if (c->pg == NULL) {
    sc_status_t st = connect_slot(c, why);
    if (st != SC_OK) {
      put_back(c);
      return st;
    }
  }
  *out = c;
  return SC_OK;
}

/* Maps a failed result (res may be NULL) to a status and message, and marks
 * the connection broken if libpq lost it. */
static sc_status_t fail_result(sc_pg_conn_t *c, const PGresult *res, sc_err_t *why) {
  if (PQstatus(c->pg) != CONNECTION_OK) {
    c->broken = true;
    set_why(why, "database connection lost: ", res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
    return SC_UNAVAILABLE;
  }
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  /* The primary message only: DETAIL and CONTEXT quote row values. */
  const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  if (msg == NULL) msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg);
  char prefix[40];
  snprintf(prefix, sizeof(prefix), "database error %s: ", state ? state : "(none)");
  set_why(why, prefix, msg);
  if (state == NULL) return SC_INTERNAL;
  if (strcmp(state, "23505") == 0) return SC_ALREADY_EXISTS;    /* unique_violation */
  if (strcmp(state, "57014") == 0) return SC_DEADLINE_EXCEEDED; /* query_canceled: statement_timeout */
  /* connection_exception, admin/crash shutdown, cannot_connect_now */
  if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
      strcmp(state, "57P03") == 0) {
    return SC_UNAVAILABLE;
  }
  return SC_INTERNAL;
}

/* Reads and frees every pending result. A COPY state here is one we cannot
 * finish cleanly (a COPY TO STDOUT started by mistake): the connection is
 * closed on release instead. */
static void drain(sc_pg_conn_t *c) {
  PGresult *r;
  while ((r = PQgetResult(c->pg)) != NULL) {
    ExecStatusType s = PQresultStatus(r);
    PQclear(r);
    if (s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH) {
      c->broken = true;
      break;
    }
  }
  if (PQstatus(c->pg) != CONNECTION_OK) c->broken = true;
}

static sc_status_t usable(sc_pg_conn_t *c, sc_err_t *why) {
  if (c->broken) {
    sc_err_set(why, "database connection lost");
    return SC_UNAVAILABLE;
  }
  if (c->in_copy) {
    sc_err_set(why, "a COPY is in progress on this connection");
    return SC_INTERNAL;
  }
  return SC_OK;
}

sc_status_t sc_pg_exec(sc_pg_conn_t *c, sc_arena_t *arena, const char *sql, int nparams, const char *const *params,
                       PGresult **res, sc_err_t *why) {
  sc_status_t st = usable(c, why);
  if (st != SC_OK) return st;
  if (sql == NULL || nparams < 0 || (nparams > 0 && params == NULL)) {
    sc_err_set(why, "sc_pg_exec: bad arguments");
    return SC_INTERNAL;
  }
  /* PQexecParams even with no parameters: the extended protocol runs exactly
   * one statement, so no text can smuggle in a second one. */
  PGresult *r = PQexecParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
  ExecStatusType s = PQresultStatus(r);
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
    if (res == NULL) {
      PQclear(r);
    } else if (arena != NULL) {
      if (sc_arena_add_cleanup(arena, clear_result, r) != 0) {
        PQclear(r);
        sc_err_set(why, "out of memory keeping a database result");
        return SC_RESOURCE_EXHAUSTED;
      }
      *res = r;
    } else {
      *res = r;
    }
    return SC_OK;
  }
  if (r == NULL || s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE || s == PGRES_NONFATAL_ERROR) {
    st = fail_result(c, r, why);
  } else if (s == PGRES_COPY_IN) {
    PQclear(r);
    r = NULL;
    c->in_copy = true;
    sc_pg_copy_abort(c, "COPY through sc_pg_exec");
    sc_err_set(why, "COPY must go through sc_pg_copy_start");
    st = SC_INTERNAL;
  } else {
    /* An empty query, or a COPY TO STDOUT we will not read. */
    if (s != PGRES_EMPTY_QUERY) c->broken = true;
    sc_err_set(why, "unexpected result %s", PQresStatus(s));
    st = SC_INTERNAL;
  }
  PQclear(r);
  return st;
}

sc_status_t sc_pg_begin(sc_pg_conn_t *c, sc_err_t *why) { return sc_pg_exec(c, NULL, "BEGIN", 0, NULL, NULL, why); }

sc_status_t sc_pg_commit(sc_pg_conn_t *c, sc_err_t *why) {
  PGresult *r = NULL;
  sc_status_t st = sc_pg_exec(c, NULL, "COMMIT", 0, NULL, &r, why);
  if (st == SC_OK) {
    /* COMMIT of a transaction in which a statement failed succeeds as
     * ROLLBACK: the caller's writes are gone, which is not success. */
    if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
      sc_err_set(why, "transaction rolled back: a statement in it had failed");
      st = SC_ABORTED;
    }
    PQclear(r);
  }
  /* Whatever happened, no transaction stays open on a healthy connection. */
  if (st != SC_OK) sc_pg_rollback(c);
  return st;
}

void sc_pg_rollback(sc_pg_conn_t *c) {
  if (c->broken || c->pg == NULL) return;
  if (c->in_copy) sc_pg_copy_abort(c, "transaction rolled back");
  if (c->broken) return;
  PGTransactionStatusType ts = PQtransactionStatus(c->pg);
  if (ts == PQTRANS_IDLE) return;
  if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR) {
    c->broken = true;
    return;
  }
  PGresult *r = PQexecParams(c->pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_COMMAND_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE) c->broken = true;
  PQclear(r);
}

void sc_pg_release(sc_pg_conn_t *c) {
  if (c == NULL) return;
  if (c->pg != NULL) {
    sc_pg_rollback(c);
    if (PQstatus(c->pg) != CONNECTION_OK) c->broken = true;
  }
  if (c->broken) close_conn(c);
  put_back(c);
}

void sc_pg_discard(sc_pg_conn_t *c) {
  if (c == NULL) return;
  close_conn(c);
  put_back(c);
}

sc_status_t sc_pg_copy_start(sc_pg_conn_t *c, const char *copy_sql, sc_err_t *why) {
  sc_status_t st = usable(c, why);
  if (st != SC_OK) return st;
  PGresult *r = PQexecParams(c->pg, copy_sql, 0, NULL, NULL, NULL, NULL, 0);
  ExecStatusType s = PQresultStatus(r);
  if (s == PGRES_COPY_IN) {
    c->in_copy = true;
  } else if (r == NULL || s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE) {
    st = fail_result(c, r, why);
  } else {
    if (s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH) c->broken = true;
    sc_err_set(why, "not a COPY ... FROM STDIN statement (result %s)", PQresStatus(s));
    st = SC_INTERNAL;
  }
  PQclear(r);
  return st;
}

sc_status_t sc_pg_copy_put(sc_pg_conn_t *c, const char *data, size_t len, sc_err_t *why) {
  if (c->broken) {
    sc_err_set(why, "database connection lost");
    return SC_UNAVAILABLE;
  }
  if (!c->in_copy) {
    sc_err_set(why, "no COPY in progress");
    return SC_INTERNAL;
  }
  while (len > 0) {
    size_t n = len < COPY_CHUNK ? len : COPY_CHUNK;
    if (PQputCopyData(c->pg, data, (int)n) != 1) {
      sc_status_t st = fail_result(c, NULL, why);
      sc_pg_copy_abort(c, "sending COPY data failed");
      return st;
    }
    data += n;
    len -= n;
  }
  return SC_OK;
}

sc_status_t sc_pg_copy_end(sc_pg_conn_t *c, int64_t *rows, sc_err_t *why) {
  if (c->broken) {
    sc_err_set(why, "database connection lost");
    return SC_UNAVAILABLE;
  }
  if (!c->in_copy) {
    sc_err_set(why, "no COPY in progress");
    return SC_INTERNAL;
  }
  c->in_copy = false;
  if (PQputCopyEnd(c->pg, NULL) != 1) {
    /* libpq stays in COPY mode: nothing more can be done on it. */
    sc_status_t st = fail_result(c, NULL, why);
    c->broken = true;
    return st;
  }
  sc_status_t st = SC_OK;
  PGresult *r = PQgetResult(c->pg);
  bool more = r != NULL;
  if (PQresultStatus(r) == PGRES_COMMAND_OK) {
    const char *t = PQcmdTuples(r);
    char *end = NULL;
    errno = 0;
    long long n = strtoll(t, &end, 10);
    if (rows != NULL) *rows = (errno == 0 && end != t && *end == '\0') ? (int64_t)n : -1;
  } else {
    st = fail_result(c, r, why);
  }
  PQclear(r);
  if (more && !c->broken) drain(c);
  return st;
}

void sc_pg_copy_abort(sc_pg_conn_t *c, const char *reason) {
  if (!c->in_copy || c->broken) return;
  c->in_copy = false;
  /* The reason becomes the server's error message for the COPY. */
  if (PQputCopyEnd(c->pg, reason ? reason : "aborted by the client") != 1) {
    c->broken = true;
    return;
  }
  drain(c);
}

PGconn *sc_pg_raw(sc_pg_conn_t *c) { return c->pg; }

sc_status_t sc_pg_ping(sc_pg_pool_t *pool, sc_err_t *why) {
  sc_pg_conn_t *c = NULL;
  sc_status_t st = sc_pg_acquire(pool, &c, why);
  if (st != SC_OK) return st;
  st = sc_pg_exec(c, NULL, "SELECT 1", 0, NULL, NULL, why);
  sc_pg_release(c);
  return st;
}
