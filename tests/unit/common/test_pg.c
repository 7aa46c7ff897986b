/* The PostgreSQL pool against a real server: tests/with-stack.sh gives this
 * binary its own ephemeral cluster (SCALE_DATABASE_URL) and the directory to
 * stop and restart it (SCALE_TEST_STACK_DIR). Each test runs in its own
 * process, but all share one database: every test uses its own tables. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "scale/pg.h"

static const char *db_url(void) {
  const char *u = getenv("SCALE_DATABASE_URL");
  cr_assert(u != NULL && *u, "SCALE_DATABASE_URL is unset: run under tests/with-stack.sh");
  return u;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static sc_pg_pool_t *pool_for(const char *url, int max_conns, int acquire_ms, int stmt_ms) {
  sc_pg_opts_t o = {.url = url,
                    .max_conns = max_conns,
                    .acquire_timeout_ms = acquire_ms,
                    .connect_timeout_ms = 2000,
                    .statement_timeout_ms = stmt_ms,
                    .application_name = "scale-test"};
  sc_err_t err = {{0}};
  sc_pg_pool_t *p = sc_pg_pool_new(&o, &err);
  cr_assert_not_null(p, "pool: %s", err.msg);
  return p;
}

static sc_pg_pool_t *pool_of(int max_conns) { return pool_for(db_url(), max_conns, 2000, 0); }

static sc_pg_conn_t *acquire_ok(sc_pg_pool_t *p) {
  sc_pg_conn_t *c = NULL;
  sc_err_t why = {{0}};
  sc_status_t st = sc_pg_acquire(p, &c, &why);
  cr_assert_eq(st, SC_OK, "acquire: %s %s", sc_status_name(st), why.msg);
  cr_assert_not_null(c);
  return c;
}

static void exec_ok(sc_pg_conn_t *c, const char *sql) {
  sc_err_t why = {{0}};
  sc_status_t st = sc_pg_exec(c, NULL, sql, 0, NULL, NULL, &why);
  cr_assert_eq(st, SC_OK, "%s: %s %s", sql, sc_status_name(st), why.msg);
}

/* The single value a query returns, as an integer. */
static long long scalar(sc_pg_conn_t *c, const char *sql) {
  sc_err_t why = {{0}};
  PGresult *r = NULL;
  sc_status_t st = sc_pg_exec(c, NULL, sql, 0, NULL, &r, &why);
  cr_assert_eq(st, SC_OK, "%s: %s %s", sql, sc_status_name(st), why.msg);
  cr_assert_eq(PQntuples(r), 1);
  long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return v;
}

/* Counts rows on a fresh connection of its own pool, so what it sees is
 * what any other session sees. */
static long long count_elsewhere(const char *table) {
  char sql[128];
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  long long n = scalar(c, sql);
  sc_pg_release(c);
  sc_pg_pool_free(p);
  return n;
}

/* A loopback port nothing listens on. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  socklen_t n = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &n);
  close(fd);
  return ntohs(a.sin_port);
}

/* ---- queries ---- */

Test(pg, exec_with_params_null_params_and_arena_results) {
  sc_pg_pool_t *p = pool_of(2);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_arena_t *a = sc_arena_new(0);
  sc_err_t why = {{0}};
  PGresult *r = NULL;

  const char *params[] = {"2", "40", NULL};
  cr_assert_eq(sc_pg_exec(c, a, "SELECT $1::int + $2::int, $3::text IS NULL", 3, params, &r, &why), SC_OK, "%s",
               why.msg);
  cr_assert_str_eq(PQgetvalue(r, 0, 0), "42");
  cr_assert_str_eq(PQgetvalue(r, 0, 1), "t");

  /* Parameters are data, never SQL: a quote in one is just a character. */
  const char *tricky[] = {"x'); DROP TABLE nothing; --"};
  cr_assert_eq(sc_pg_exec(c, a, "SELECT length($1)", 1, tricky, &r, &why), SC_OK, "%s", why.msg);
  cr_assert_str_eq(PQgetvalue(r, 0, 0), "27");

  cr_assert_eq(sc_pg_exec(c, a, "SELECT 1", 0, NULL, &r, &why), SC_OK, "%s", why.msg);
  /* Many results on one arena: all freed with it (LeakSanitizer checks). */
  for (int i = 0; i < 50; i++) {
    cr_assert_eq(sc_pg_exec(c, a, "SELECT generate_series(1, 100)", 0, NULL, &r, &why), SC_OK);
    cr_assert_eq(PQntuples(r), 100);
  }
  sc_arena_reset(a);
  cr_assert_eq(sc_pg_exec(c, a, "SELECT 'after reset'", 0, NULL, &r, &why), SC_OK);
  sc_arena_free(a);

  /* Without an arena the result is the caller's. */
  cr_assert_eq(sc_pg_exec(c, NULL, "SELECT 'mine'", 0, NULL, &r, &why), SC_OK);
  cr_assert_str_eq(PQgetvalue(r, 0, 0), "mine");
  PQclear(r);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, unique_violation_is_already_exists) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  exec_ok(c, "CREATE TABLE pg_uniq (id text PRIMARY KEY)");
  const char *id[] = {"a"};
  sc_err_t why = {{0}};
  cr_assert_eq(sc_pg_exec(c, NULL, "INSERT INTO pg_uniq VALUES ($1)", 1, id, NULL, &why), SC_OK);
  sc_status_t st = sc_pg_exec(c, NULL, "INSERT INTO pg_uniq VALUES ($1)", 1, id, NULL, &why);
  cr_assert_eq(st, SC_ALREADY_EXISTS, "%s %s", sc_status_name(st), why.msg);
  cr_assert(strstr(why.msg, "23505"), "%s", why.msg);
  /* The connection is still good. */
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_uniq"), 1);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, syntax_error_is_internal_and_the_connection_survives) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  PGresult *r = (PGresult *)&why; /* must be left alone on failure */
  sc_status_t st = sc_pg_exec(c, NULL, "SELEC 1", 0, NULL, &r, &why);
  cr_assert_eq(st, SC_INTERNAL, "%s", sc_status_name(st));
  cr_assert(strstr(why.msg, "syntax error"), "%s", why.msg);
  cr_assert_eq((void *)r, (void *)&why);
  cr_assert_eq(scalar(c, "SELECT 7"), 7);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, two_statements_in_one_exec_are_refused) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  exec_ok(c, "CREATE TABLE pg_multi (x int)");
  sc_err_t why = {{0}};
  sc_status_t st =
      sc_pg_exec(c, NULL, "INSERT INTO pg_multi VALUES (1); INSERT INTO pg_multi VALUES (2)", 0, NULL, NULL, &why);
  cr_assert_eq(st, SC_INTERNAL, "%s", sc_status_name(st));
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_multi"), 0);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, statement_timeout_is_deadline_exceeded) {
  sc_pg_pool_t *p = pool_for(db_url(), 1, 2000, 100);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  double t0 = now_ms();
  sc_status_t st = sc_pg_exec(c, NULL, "SELECT pg_sleep(1)", 0, NULL, NULL, &why);
  double took = now_ms() - t0;
  cr_assert_eq(st, SC_DEADLINE_EXCEEDED, "%s %s", sc_status_name(st), why.msg);
  cr_assert_lt(took, 900, "took %.0f ms", took);
  /* A timeout cancels the statement, not the session. */
  cr_assert_eq(scalar(c, "SELECT 1"), 1);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, options_reach_the_server) {
  sc_pg_pool_t *p = pool_for(db_url(), 1, 2000, 1234);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  PGresult *r = NULL;
  cr_assert_eq(sc_pg_exec(c, NULL,
                          "SELECT current_setting('statement_timeout'), current_setting('application_name'),"
                          " current_setting('client_encoding')",
                          0, NULL, &r, &why),
               SC_OK, "%s", why.msg);
  cr_assert_str_eq(PQgetvalue(r, 0, 0), "1234ms");
  cr_assert_str_eq(PQgetvalue(r, 0, 1), "scale-test");
  cr_assert_str_eq(PQgetvalue(r, 0, 2), "UTF8");
  PQclear(r);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, url_options_are_kept_alongside_the_timeout) {
  char url[512];
  snprintf(url, sizeof(url), "%s?options=-c%%20search_path%%3Dpg_url_opts", db_url());
  sc_pg_pool_t *p = pool_for(url, 1, 2000, 4321);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  PGresult *r = NULL;
  cr_assert_eq(sc_pg_exec(c, NULL, "SELECT current_setting('search_path'), current_setting('statement_timeout')", 0,
                          NULL, &r, &why),
               SC_OK, "%s", why.msg);
  cr_assert_str_eq(PQgetvalue(r, 0, 0), "pg_url_opts");
  cr_assert_str_eq(PQgetvalue(r, 0, 1), "4321ms");
  PQclear(r);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, ping) {
  sc_pg_pool_t *p = pool_of(1);
  sc_err_t why = {{0}};
  cr_assert_eq(sc_pg_ping(p, &why), SC_OK, "%s", why.msg);
  sc_pg_pool_free(p);
}

/* ---- the bound ---- */

Test(pg, full_pool_is_resource_exhausted_after_the_acquire_timeout) {
  sc_pg_pool_t *p = pool_for(db_url(), 2, 200, 0);
  sc_pg_conn_t *a = acquire_ok(p);
  sc_pg_conn_t *b = acquire_ok(p);
  cr_assert_neq(a, b);
  sc_pg_conn_t *c = NULL;
  sc_err_t why = {{0}};
  double t0 = now_ms();
  sc_status_t st = sc_pg_acquire(p, &c, &why);
  double took = now_ms() - t0;
  cr_assert_eq(st, SC_RESOURCE_EXHAUSTED, "%s", sc_status_name(st));
  cr_assert_null(c);
  cr_assert_geq(took, 190, "gave up after %.0f ms", took);
  cr_assert_lt(took, 1000, "gave up after %.0f ms", took);
  cr_assert_str_eq(why.msg, "no free database connection within 200 ms");
  /* Both are still usable, and a released one is handed out again. */
  cr_assert_eq(scalar(a, "SELECT 1"), 1);
  cr_assert_eq(scalar(b, "SELECT 2"), 2);
  sc_pg_release(a);
  c = acquire_ok(p);
  cr_assert_eq(scalar(c, "SELECT 3"), 3);
  sc_pg_release(c);
  sc_pg_release(b);
  sc_pg_pool_free(p);
}

static void *release_later(void *conn) {
  usleep(150 * 1000);
  sc_pg_release(conn);
  return NULL;
}

Test(pg, a_waiting_acquire_gets_the_released_connection) {
  sc_pg_pool_t *p = pool_for(db_url(), 1, 5000, 0);
  sc_pg_conn_t *a = acquire_ok(p);
  pthread_t t;
  pthread_create(&t, NULL, release_later, a);
  double t0 = now_ms();
  sc_pg_conn_t *b = acquire_ok(p);
  double took = now_ms() - t0;
  pthread_join(t, NULL);
  cr_assert_geq(took, 100, "%.0f ms", took);
  cr_assert_lt(took, 2000, "%.0f ms: woken late", took);
  sc_pg_release(b);
  sc_pg_pool_free(p);
}

#define N_THREADS 8
#define N_QUERIES 200
#define SHARED_POOL 3

typedef struct {
  sc_pg_pool_t *pool;
  int id;
  atomic_int *failures;
} worker_t;

static void *worker(void *arg) {
  worker_t *w = arg;
  sc_arena_t *a = sc_arena_new(0);
  for (int i = 0; i < N_QUERIES; i++) {
    sc_pg_conn_t *c = NULL;
    sc_err_t why = {{0}};
    PGresult *r = NULL;
    char v[32];
    snprintf(v, sizeof(v), "%d", w->id * 100000 + i);
    const char *params[] = {v};
    if (sc_pg_acquire(w->pool, &c, &why) != SC_OK) {
      atomic_fetch_add(w->failures, 1);
      continue;
    }
    if (sc_pg_exec(c, a, "SELECT $1::int * 2", 1, params, &r, &why) != SC_OK ||
        strtoll(PQgetvalue(r, 0, 0), NULL, 10) != 2LL * (w->id * 100000 + i)) {
      atomic_fetch_add(w->failures, 1);
    }
    sc_pg_release(c);
    sc_arena_reset(a);
  }
  sc_arena_free(a);
  return NULL;
}

Test(pg, many_threads_share_a_small_pool) {
  sc_pg_opts_t o = {
      .url = db_url(), .max_conns = SHARED_POOL, .acquire_timeout_ms = 30000, .application_name = "scale-test-shared"};
  sc_err_t err = {{0}};
  sc_pg_pool_t *p = sc_pg_pool_new(&o, &err);
  cr_assert_not_null(p, "%s", err.msg);
  atomic_int failures = 0;
  pthread_t t[N_THREADS];
  worker_t w[N_THREADS];
  for (int i = 0; i < N_THREADS; i++) {
    w[i] = (worker_t){.pool = p, .id = i, .failures = &failures};
    pthread_create(&t[i], NULL, worker, &w[i]);
  }
  for (int i = 0; i < N_THREADS; i++)
    pthread_join(t[i], NULL);
  cr_assert_eq(atomic_load(&failures), 0, "%d of %d queries failed", atomic_load(&failures), N_THREADS * N_QUERIES);
  /* The bound held on the server side too. */
  sc_pg_conn_t *c = acquire_ok(p);
  long long sessions = scalar(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'scale-test-shared'");
  cr_assert_leq(sessions, SHARED_POOL);
  cr_assert_geq(sessions, 1);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

/* ---- transactions ---- */

Test(pg, rollback_leaves_no_rows) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  exec_ok(c, "CREATE TABLE pg_tx_rb (x int)");
  cr_assert_eq(sc_pg_begin(c, &why), SC_OK, "%s", why.msg);
  exec_ok(c, "INSERT INTO pg_tx_rb VALUES (1), (2)");
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_tx_rb"), 2);
  sc_pg_rollback(c);
  cr_assert_eq(PQtransactionStatus(sc_pg_raw(c)), PQTRANS_IDLE);
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_tx_rb"), 0);
  sc_pg_rollback(c); /* none open: harmless */
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, release_rolls_back_an_open_transaction) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  exec_ok(c, "CREATE TABLE pg_tx_rel (x int)");
  long long pid = scalar(c, "SELECT pg_backend_pid()");
  cr_assert_eq(sc_pg_begin(c, &why), SC_OK, "%s", why.msg);
  exec_ok(c, "INSERT INTO pg_tx_rel VALUES (1)");
  sc_pg_release(c);
  /* A pool of one: the same session comes back, idle and without the row. */
  c = acquire_ok(p);
  cr_assert_eq(scalar(c, "SELECT pg_backend_pid()"), pid, "the session was closed rather than rolled back");
  cr_assert_eq(PQtransactionStatus(sc_pg_raw(c)), PQTRANS_IDLE);
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_tx_rel"), 0);
  sc_pg_release(c);
  sc_pg_pool_free(p);
  cr_assert_eq(count_elsewhere("pg_tx_rel"), 0);
}

Test(pg, commit_makes_rows_visible) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  exec_ok(c, "CREATE TABLE pg_tx_commit (x int)");
  cr_assert_eq(sc_pg_begin(c, &why), SC_OK, "%s", why.msg);
  exec_ok(c, "INSERT INTO pg_tx_commit VALUES (1), (2), (3)");
  cr_assert_eq(count_elsewhere("pg_tx_commit"), 0, "visible before commit");
  cr_assert_eq(sc_pg_commit(c, &why), SC_OK, "%s", why.msg);
  cr_assert_eq(count_elsewhere("pg_tx_commit"), 3);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, commit_after_a_failed_statement_is_aborted_and_closes_the_transaction) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  exec_ok(c, "CREATE TABLE pg_tx_failed (x int PRIMARY KEY)");
  cr_assert_eq(sc_pg_begin(c, &why), SC_OK, "%s", why.msg);
  exec_ok(c, "INSERT INTO pg_tx_failed VALUES (1)");
  cr_assert_eq(sc_pg_exec(c, NULL, "INSERT INTO pg_tx_failed VALUES (1)", 0, NULL, NULL, &why), SC_ALREADY_EXISTS);
  sc_status_t st = sc_pg_commit(c, &why);
  cr_assert_eq(st, SC_ABORTED, "%s %s", sc_status_name(st), why.msg);
  cr_assert_eq(PQtransactionStatus(sc_pg_raw(c)), PQTRANS_IDLE);
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_tx_failed"), 0);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, failing_commit_leaves_no_transaction_open) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  exec_ok(c, "CREATE TABLE pg_tx_deferred (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)");
  cr_assert_eq(sc_pg_begin(c, &why), SC_OK, "%s", why.msg);
  exec_ok(c, "INSERT INTO pg_tx_deferred VALUES (1), (1)");
  /* The deferred check fails at COMMIT itself. */
  sc_status_t st = sc_pg_commit(c, &why);
  cr_assert_eq(st, SC_ALREADY_EXISTS, "%s %s", sc_status_name(st), why.msg);
  cr_assert_eq(PQtransactionStatus(sc_pg_raw(c)), PQTRANS_IDLE);
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_tx_deferred"), 0);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

/* ---- COPY ---- */

#define COPY_ROWS 100000

Test(pg, copy_loads_100k_rows) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  exec_ok(c, "CREATE TABLE pg_copy_big (id int PRIMARY KEY, label text)");
  cr_assert_eq(sc_pg_copy_start(c, "COPY pg_copy_big (id, label) FROM STDIN", &why), SC_OK, "%s", why.msg);
  char buf[64 * 1024];
  size_t used = 0;
  for (int i = 0; i < COPY_ROWS; i++) {
    int n = snprintf(buf + used, sizeof(buf) - used, "%d\tlabel %d\n", i, i);
    used += (size_t)n;
    if (sizeof(buf) - used < 64 || i == COPY_ROWS - 1) {
      cr_assert_eq(sc_pg_copy_put(c, buf, used, &why), SC_OK, "%s", why.msg);
      used = 0;
    }
  }
  int64_t rows = -1;
  cr_assert_eq(sc_pg_copy_end(c, &rows, &why), SC_OK, "%s", why.msg);
  cr_assert_eq(rows, COPY_ROWS);
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_copy_big"), COPY_ROWS);
  cr_assert_eq(scalar(c, "SELECT sum(id) FROM pg_copy_big"), (long long)COPY_ROWS * (COPY_ROWS - 1) / 2);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

static void put_rows(sc_pg_conn_t *c, int from, int to) {
  sc_err_t why = {{0}};
  for (int i = from; i < to; i++) {
    char row[32];
    int n = snprintf(row, sizeof(row), "%d\n", i);
    cr_assert_eq(sc_pg_copy_put(c, row, (size_t)n, &why), SC_OK, "%s", why.msg);
  }
}

Test(pg, malformed_row_aborts_the_copy_and_its_transaction) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  exec_ok(c, "CREATE TABLE pg_copy_bad (id int)");
  cr_assert_eq(sc_pg_begin(c, &why), SC_OK, "%s", why.msg);
  exec_ok(c, "INSERT INTO pg_copy_bad VALUES (-1)");
  cr_assert_eq(sc_pg_copy_start(c, "COPY pg_copy_bad FROM STDIN", &why), SC_OK, "%s", why.msg);
  put_rows(c, 0, 500);
  cr_assert_eq(sc_pg_copy_put(c, "not-a-number\n", 13, &why), SC_OK, "%s", why.msg);
  put_rows(c, 500, 1000);
  int64_t rows = -1;
  sc_status_t st = sc_pg_copy_end(c, &rows, &why);
  cr_assert_eq(st, SC_INTERNAL, "%s %s", sc_status_name(st), why.msg);
  cr_assert(strstr(why.msg, "22P02"), "%s", why.msg);
  cr_assert_eq(rows, -1, "rows set on failure");
  cr_assert_eq(PQtransactionStatus(sc_pg_raw(c)), PQTRANS_INERROR);
  sc_pg_rollback(c);
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_copy_bad"), 0);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, malformed_row_without_a_transaction_copies_nothing) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  exec_ok(c, "CREATE TABLE pg_copy_bad2 (id int)");
  cr_assert_eq(sc_pg_copy_start(c, "COPY pg_copy_bad2 FROM STDIN", &why), SC_OK, "%s", why.msg);
  put_rows(c, 0, 100);
  cr_assert_eq(sc_pg_copy_put(c, "1\t2\n", 4, &why), SC_OK, "%s", why.msg); /* extra column */
  cr_assert_neq(sc_pg_copy_end(c, NULL, &why), SC_OK);
  cr_assert_eq(PQtransactionStatus(sc_pg_raw(c)), PQTRANS_IDLE);
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_copy_bad2"), 0);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, copy_abort_and_release_mid_copy_leave_nothing) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  exec_ok(c, "CREATE TABLE pg_copy_abort (id int)");
  cr_assert_eq(sc_pg_copy_start(c, "COPY pg_copy_abort FROM STDIN", &why), SC_OK, "%s", why.msg);
  put_rows(c, 0, 100);
  /* Nothing but the COPY may run while it is open. */
  cr_assert_eq(sc_pg_exec(c, NULL, "SELECT 1", 0, NULL, NULL, &why), SC_INTERNAL);
  sc_pg_copy_abort(c, "test abort");
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_copy_abort"), 0);

  cr_assert_eq(sc_pg_copy_start(c, "COPY pg_copy_abort FROM STDIN", &why), SC_OK, "%s", why.msg);
  put_rows(c, 0, 100);
  sc_pg_release(c);
  c = acquire_ok(p);
  cr_assert_eq(scalar(c, "SELECT count(*) FROM pg_copy_abort"), 0);
  cr_assert_eq(sc_pg_copy_put(c, "1\n", 2, &why), SC_INTERNAL, "put without a COPY");
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

Test(pg, copy_start_refuses_other_statements) {
  sc_pg_pool_t *p = pool_of(1);
  sc_pg_conn_t *c = acquire_ok(p);
  sc_err_t why = {{0}};
  cr_assert_eq(sc_pg_copy_start(c, "COPY nonexistent_table FROM STDIN", &why), SC_INTERNAL);
  cr_assert_eq(sc_pg_copy_start(c, "SELECT 1", &why), SC_INTERNAL);
  cr_assert_eq(scalar(c, "SELECT 5"), 5);
  sc_pg_release(c);
  sc_pg_pool_free(p);
}

/* ---- bad configuration, no server ---- */

Test(pg, bad_url_fails_without_echoing_the_password) {
  const char *urls[] = {
      "postgresql://scale:hunter2@127.0.0.1:5432/scale?no_such_option=1",
      "postgresql://scale:hunter2@[::1/scale",
      "host=127.0.0.1 password=hunter2 dbname",
  };
  for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
    sc_pg_opts_t o = {.url = urls[i]};
    sc_err_t err = {{0}};
    sc_pg_pool_t *p = sc_pg_pool_new(&o, &err);
    cr_assert_null(p, "%s was accepted", urls[i]);
    cr_assert(strstr(err.msg, "not a valid PostgreSQL connection URL"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "hunter2"), "password echoed: %s", err.msg);
  }
  sc_err_t err = {{0}};
  cr_assert_null(sc_pg_pool_new(NULL, &err));
  sc_pg_opts_t empty = {.url = ""};
  cr_assert_null(sc_pg_pool_new(&empty, &err));
  sc_pg_pool_free(NULL);
}

Test(pg, refused_connection_is_unavailable_at_once) {
  char url[128];
  snprintf(url, sizeof(url), "postgresql://postgres@127.0.0.1:%d/scale", closed_port());
  sc_pg_pool_t *p = pool_for(url, 2, 2000, 0);
  sc_pg_conn_t *c = NULL;
  sc_err_t why = {{0}};
  double t0 = now_ms();
  sc_status_t st = sc_pg_acquire(p, &c, &why);
  double took = now_ms() - t0;
  cr_assert_eq(st, SC_UNAVAILABLE, "%s", sc_status_name(st));
  cr_assert_null(c);
  cr_assert_lt(took, 1000, "%.0f ms", took);
  cr_assert(strstr(why.msg, "database unavailable"), "%s", why.msg);
  /* The failed slot went back: the pool is not leaking capacity. */
  for (int i = 0; i < 5; i++)
    cr_assert_eq(sc_pg_acquire(p, &c, &why), SC_UNAVAILABLE);
  cr_assert_eq(sc_pg_ping(p, &why), SC_UNAVAILABLE);
  sc_pg_pool_free(p);
}

Test(pg, silent_server_is_unavailable_within_the_connect_timeout) {
  /* A socket that listens but never answers: the kernel completes the TCP
   * handshake, the startup packet goes unanswered. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(fd, 8), 0);
  socklen_t n = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &n);
  char url[128];
  snprintf(url, sizeof(url), "postgresql://postgres@127.0.0.1:%d/scale", ntohs(a.sin_port));
  sc_pg_pool_t *p = pool_for(url, 1, 2000, 0); /* connect timeout 2000 ms */
  sc_pg_conn_t *c = NULL;
  sc_err_t why = {{0}};
  double t0 = now_ms();
  sc_status_t st = sc_pg_acquire(p, &c, &why);
  double took = now_ms() - t0;
  cr_assert_eq(st, SC_UNAVAILABLE, "%s", sc_status_name(st));
  cr_assert_geq(took, 1500, "%.0f ms", took);
  cr_assert_lt(took, 4000, "%.0f ms", took);
  sc_pg_pool_free(p);
  close(fd);
}

/* ---- server restart ---- */

static void stack(const char *verb) {
  const char *dir = getenv("SCALE_TEST_STACK_DIR");
  cr_assert(dir != NULL, "SCALE_TEST_STACK_DIR is unset: run under tests/with-stack.sh");
  char cmd[2048];
  snprintf(cmd, sizeof(cmd), "'%s/scripts/stack.sh' %s '%s'%s >/dev/null", SCALE_SOURCE_DIR, verb, dir,
           strcmp(verb, "start") == 0 ? " --ephemeral" : "");
  cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* Runs even when the test fails, so the tests after it have a server. */
static void restart_stack(void) {
  const char *dir = getenv("SCALE_TEST_STACK_DIR");
  if (dir == NULL) return;
  char cmd[2048];
  snprintf(cmd, sizeof(cmd), "'%s/scripts/stack.sh' start '%s' --ephemeral >/dev/null", SCALE_SOURCE_DIR, dir);
  if (system(cmd) != 0) fprintf(stderr, "restarting the stack failed\n");
}

Test(pg, the_same_pool_survives_a_server_restart, .fini = restart_stack) {
  sc_pg_pool_t *p = pool_for(db_url(), 2, 2000, 0);
  /* A second pool whose connection stays idle across the restart and is
   * not touched while the server is down. */
  sc_pg_pool_t *idle = pool_for(db_url(), 1, 2000, 0);
  sc_pg_conn_t *held = acquire_ok(p);
  sc_pg_conn_t *other = acquire_ok(p);
  sc_pg_conn_t *ic = acquire_ok(idle);
  long long old_pid = scalar(ic, "SELECT pg_backend_pid()");
  exec_ok(held, "SELECT 1");
  exec_ok(other, "SELECT 1");
  sc_pg_release(other);
  sc_pg_release(ic);

  stack("stop");
  sc_err_t why = {{0}};
  double t0 = now_ms();
  sc_status_t st = sc_pg_exec(held, NULL, "SELECT 1", 0, NULL, NULL, &why);
  cr_assert_eq(st, SC_UNAVAILABLE, "exec on a held connection: %s %s", sc_status_name(st), why.msg);
  cr_assert_eq(sc_pg_exec(held, NULL, "SELECT 1", 0, NULL, NULL, &why), SC_UNAVAILABLE);
  sc_pg_release(held);
  sc_pg_conn_t *c = NULL;
  st = sc_pg_acquire(p, &c, &why);
  cr_assert_eq(st, SC_UNAVAILABLE, "acquire while down: %s %s", sc_status_name(st), why.msg);
  cr_assert_eq(sc_pg_ping(p, &why), SC_UNAVAILABLE);
  double took = now_ms() - t0;
  cr_assert_lt(took, 3000, "%.0f ms while the server was down", took);

  stack("start");
  /* Every slot reconnects, with no error shown to the caller. */
  sc_pg_conn_t *a = acquire_ok(p);
  sc_pg_conn_t *b = acquire_ok(p);
  cr_assert_eq(scalar(a, "SELECT 1"), 1);
  cr_assert_eq(scalar(b, "SELECT 2"), 2);
  sc_pg_release(a);
  sc_pg_release(b);
  ic = acquire_ok(idle);
  cr_assert_eq(scalar(ic, "SELECT 3"), 3, "an idle connection from before the restart was handed out");
  cr_assert_neq(scalar(ic, "SELECT pg_backend_pid()"), old_pid);
  sc_pg_release(ic);
  cr_assert_eq(sc_pg_ping(p, &why), SC_OK, "%s", why.msg);
  sc_pg_pool_free(idle);
  sc_pg_pool_free(p);
}
