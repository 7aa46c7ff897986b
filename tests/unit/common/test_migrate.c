/* The migration runner against a real server (tests/with-stack.sh). All
 * tests share one database and its scale_meta.schema_migrations, so each
 * uses a domain (and schema) of its own. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "scale/log.h"
#include "scale/migrate.h"

#define MIG(domain, version, name, sql)                                                                                \
  { domain, version, name, sql, sizeof(sql) - 1 }

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

static sc_pg_pool_t *pool_for(const char *url, int max_conns, int stmt_ms) {
  sc_pg_opts_t o = {.url = url, .max_conns = max_conns, .connect_timeout_ms = 2000, .statement_timeout_ms = stmt_ms};
  sc_err_t err = {{0}};
  sc_pg_pool_t *p = sc_pg_pool_new(&o, &err);
  cr_assert_not_null(p, "pool: %s", err.msg);
  return p;
}

static sc_pg_pool_t *pool(void) { return pool_for(db_url(), 2, 0); }

/* The first value of a one-row query, copied into buf ("" for NULL). */
static const char *query1(sc_pg_pool_t *p, const char *sql, int n, const char *const *params, char *buf, size_t cap) {
  sc_pg_conn_t *c = NULL;
  sc_err_t why = {{0}};
  cr_assert_eq(sc_pg_acquire(p, &c, &why), SC_OK, "%s", why.msg);
  PGresult *r = NULL;
  sc_status_t st = sc_pg_exec(c, NULL, sql, n, params, &r, &why);
  cr_assert_eq(st, SC_OK, "%s: %s", sql, why.msg);
  cr_assert_eq(PQntuples(r), 1, "%s", sql);
  snprintf(buf, cap, "%s", PQgetvalue(r, 0, 0));
  PQclear(r);
  sc_pg_release(c);
  return buf;
}

static long long count_records(sc_pg_pool_t *p, const char *domain) {
  char buf[32];
  const char *d[] = {domain};
  return strtoll(
      query1(p, "SELECT count(*) FROM scale_meta.schema_migrations WHERE domain = $1", 1, d, buf, sizeof(buf)), NULL,
      10);
}

static int table_exists(sc_pg_pool_t *p, const char *table) {
  char buf[8];
  const char *t[] = {table};
  return strcmp(query1(p, "SELECT to_regclass($1) IS NOT NULL", 1, t, buf, sizeof(buf)), "t") == 0;
}

static sc_status_t run(sc_pg_pool_t *p, const sc_migration_t *m, size_t n, int *applied, sc_err_t *err) {
  *applied = -1;
  memset(err, 0, sizeof(*err));
  return sc_migrate_run(p, m, n, applied, err);
}

Test(migrate, applies_in_order_and_records_checksums) {
  static const sc_migration_t m[] = {
      MIG("m_order", 1, "0001_schema.sql",
          "CREATE SCHEMA m_order;\nCREATE TABLE m_order.items (id int PRIMARY KEY, label text);\n"),
      MIG("m_order", 2, "0002_seed.sql",
          "INSERT INTO m_order.items VALUES (1, 'one');\nALTER TABLE m_order.items ADD COLUMN note text;\n"),
      MIG("m_order", 10, "0010_more.sql", "UPDATE m_order.items SET note = 'ten';"),
  };
  sc_pg_pool_t *p = pool();
  int applied;
  sc_err_t err;
  sc_status_t st = run(p, m, 3, &applied, &err);
  cr_assert_eq(st, SC_OK, "%s %s", sc_status_name(st), err.msg);
  cr_assert_eq(applied, 3);
  char buf[128];
  cr_assert_str_eq(query1(p, "SELECT note FROM m_order.items WHERE id = 1", 0, NULL, buf, sizeof(buf)), "ten");
  cr_assert_eq(count_records(p, "m_order"), 3);
  for (size_t i = 0; i < 3; i++) {
    char version[16];
    snprintf(version, sizeof(version), "%d", m[i].version);
    /* The checksum, computed by the server from the same text. */
    const char *params[] = {m[i].domain, version, m[i].sql, m[i].name};
    cr_assert_str_eq(query1(p,
                            "SELECT sha256 = encode(sha256(convert_to($3, 'UTF8')), 'hex') AND name = $4"
                            " FROM scale_meta.schema_migrations WHERE domain = $1 AND version = $2::int",
                            4, params, buf, sizeof(buf)),
                     "t", "record of %s", m[i].name);
  }
  cr_assert_str_eq(query1(p,
                          "SELECT bool_and(applied_at <= (SELECT applied_at FROM scale_meta.schema_migrations"
                          " WHERE domain = 'm_order' AND version = 10))"
                          " FROM scale_meta.schema_migrations WHERE domain = 'm_order'",
                          0, NULL, buf, sizeof(buf)),
                   "t");
  sc_pg_pool_free(p);
}

Test(migrate, a_second_run_applies_nothing_and_releases_the_lock) {
  static const sc_migration_t m[] = {
      MIG("m_twice", 1, "0001_init.sql", "CREATE SCHEMA m_twice;\nCREATE TABLE m_twice.t (x int);\n"),
      MIG("m_twice", 2, "0002_row.sql", "INSERT INTO m_twice.t VALUES (1);\n"),
  };
  sc_pg_pool_t *p = pool();
  int applied;
  sc_err_t err;
  cr_assert_eq(run(p, m, 2, &applied, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(applied, 2);
  cr_assert_eq(run(p, m, 2, &applied, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(applied, 0);
  char buf[32];
  cr_assert_str_eq(query1(p, "SELECT count(*) FROM m_twice.t", 0, NULL, buf, sizeof(buf)), "1");
  cr_assert_eq(count_records(p, "m_twice"), 2);
  /* Another session can take the migration lock at once. */
  cr_assert_str_eq(query1(p,
                          "SELECT pg_try_advisory_lock(5999710924423645511)"
                          " AND pg_advisory_unlock(5999710924423645511)",
                          0, NULL, buf, sizeof(buf)),
                   "t");
  sc_pg_pool_free(p);
}

Test(migrate, an_edited_applied_migration_is_refused) {
  static const sc_migration_t v1[] = {
      MIG("m_edit", 1, "0001_init.sql", "CREATE SCHEMA m_edit;\nCREATE TABLE m_edit.a (x int);\n"),
  };
  static const sc_migration_t v2[] = {
      MIG("m_edit", 1, "0001_init.sql", "CREATE SCHEMA m_edit;\nCREATE TABLE m_edit.a (x bigint);\n"),
      MIG("m_edit", 2, "0002_next.sql", "CREATE TABLE m_edit.b (x int);\n"),
  };
  sc_pg_pool_t *p = pool();
  int applied;
  sc_err_t err;
  cr_assert_eq(run(p, v1, 1, &applied, &err), SC_OK, "%s", err.msg);
  sc_status_t st = run(p, v2, 2, &applied, &err);
  cr_assert_eq(st, SC_FAILED_PRECONDITION, "%s %s", sc_status_name(st), err.msg);
  cr_assert(strstr(err.msg, "migration m_edit/0001_init.sql was changed after it was applied (recorded sha256 "), "%s",
            err.msg);
  cr_assert(strstr(err.msg, "restore it and add a new migration instead"), "%s", err.msg);
  cr_assert_eq(applied, 0);
  cr_assert(!table_exists(p, "m_edit.b"), "a migration after the refused one ran");
  cr_assert_eq(count_records(p, "m_edit"), 1);
  sc_pg_pool_free(p);
}

Test(migrate, a_failing_migration_rolls_back_completely_and_stops_the_run) {
  static const sc_migration_t bad[] = {
      MIG("m_fail", 1, "0001_schema.sql", "CREATE SCHEMA m_fail;\n"),
      MIG("m_fail", 2, "0002_bad.sql",
          "CREATE TABLE m_fail.half (x int);\nINSERT INTO m_fail.half VALUES (1);\nSELECT 1 / 0;\n"),
      MIG("m_fail", 3, "0003_later.sql", "CREATE TABLE m_fail.later (x int);\n"),
  };
  sc_pg_pool_t *p = pool();
  int applied;
  sc_err_t err;
  sc_status_t st = run(p, bad, 3, &applied, &err);
  cr_assert_eq(st, SC_INTERNAL, "%s %s", sc_status_name(st), err.msg);
  cr_assert(strstr(err.msg, "migration m_fail/0002_bad.sql failed"), "%s", err.msg);
  cr_assert(strstr(err.msg, "division by zero"), "%s", err.msg);
  cr_assert_eq(applied, 1);
  cr_assert(!table_exists(p, "m_fail.half"), "the failed migration's first statements were kept");
  cr_assert(!table_exists(p, "m_fail.later"), "a migration after the failed one ran");
  cr_assert_eq(count_records(p, "m_fail"), 1);

  /* Fixed, the run goes on from where it stopped. */
  static const sc_migration_t fixed[] = {
      MIG("m_fail", 1, "0001_schema.sql", "CREATE SCHEMA m_fail;\n"),
      MIG("m_fail", 2, "0002_bad.sql", "CREATE TABLE m_fail.half (x int);\nINSERT INTO m_fail.half VALUES (1);\n"),
      MIG("m_fail", 3, "0003_later.sql", "CREATE TABLE m_fail.later (x int);\n"),
  };
  cr_assert_eq(run(p, fixed, 3, &applied, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(applied, 2);
  cr_assert(table_exists(p, "m_fail.later"));
  sc_pg_pool_free(p);
}

Test(migrate, a_syntax_error_names_the_migration_and_line) {
  static const sc_migration_t m[] = {
      MIG("m_syntax", 1, "0001_typo.sql", "CREATE SCHEMA m_syntax;\n\nCREATE TABL m_syntax.t (x int);\n"),
  };
  sc_pg_pool_t *p = pool();
  int applied;
  sc_err_t err;
  cr_assert_eq(run(p, m, 1, &applied, &err), SC_INTERNAL);
  cr_assert(strstr(err.msg, "migration m_syntax/0001_typo.sql failed (line 3): syntax error"), "%s", err.msg);
  cr_assert_eq(count_records(p, "m_syntax"), 0);
  sc_pg_pool_free(p);
}

Test(migrate, a_migration_may_not_end_its_own_transaction) {
  static const sc_migration_t m[] = {
      MIG("m_commit", 1, "0001_commit.sql", "CREATE SCHEMA m_commit;\nCOMMIT;\n"),
  };
  sc_pg_pool_t *p = pool();
  int applied;
  sc_err_t err;
  cr_assert_eq(run(p, m, 1, &applied, &err), SC_INTERNAL);
  cr_assert(strstr(err.msg, "m_commit/0001_commit.sql ended its transaction itself"), "%s", err.msg);
  cr_assert_eq(count_records(p, "m_commit"), 0);
  sc_pg_pool_free(p);
}

typedef struct {
  pthread_barrier_t *go;
  const sc_migration_t *m;
  size_t n;
  sc_status_t st;
  int applied;
  sc_err_t err;
} runner_t;

static void *runner(void *arg) {
  runner_t *r = arg;
  sc_pg_opts_t o = {.url = getenv("SCALE_DATABASE_URL"), .max_conns = 1};
  sc_pg_pool_t *p = sc_pg_pool_new(&o, &r->err);
  if (p == NULL) {
    r->st = SC_INTERNAL;
    return NULL;
  }
  pthread_barrier_wait(r->go);
  r->st = sc_migrate_run(p, r->m, r->n, &r->applied, &r->err);
  sc_pg_pool_free(p);
  return NULL;
}

Test(migrate, two_runners_at_once_apply_each_migration_once) {
  /* Neither migration is idempotent: a second application fails loudly. */
  static const sc_migration_t m[] = {
      MIG("m_race", 1, "0001_slow.sql",
          "CREATE SCHEMA m_race;\nCREATE TABLE m_race.t (x int);\nSELECT pg_sleep(0.5);\n"),
      MIG("m_race", 2, "0002_row.sql", "INSERT INTO m_race.t VALUES (1);\n"),
  };
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, 2);
  runner_t r[2] = {{.go = &go, .m = m, .n = 2}, {.go = &go, .m = m, .n = 2}};
  pthread_t t[2];
  double t0 = now_ms();
  for (int i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, runner, &r[i]);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  double took = now_ms() - t0;
  pthread_barrier_destroy(&go);
  for (int i = 0; i < 2; i++)
    cr_assert_eq(r[i].st, SC_OK, "runner %d: %s %s", i, sc_status_name(r[i].st), r[i].err.msg);
  cr_assert_eq(r[0].applied + r[1].applied, 2, "applied %d + %d", r[0].applied, r[1].applied);
  cr_assert_geq(took, 500);
  sc_pg_pool_t *p = pool();
  char buf[32];
  cr_assert_eq(count_records(p, "m_race"), 2);
  cr_assert_str_eq(query1(p, "SELECT count(*) FROM m_race.t", 0, NULL, buf, sizeof(buf)), "1");
  sc_pg_pool_free(p);
}

Test(migrate, migrations_outlast_the_statement_timeout_without_changing_the_pool) {
  static const sc_migration_t m[] = {
      MIG("m_slow", 1, "0001_slow.sql", "SELECT pg_sleep(0.3);\n"),
  };
  sc_pg_pool_t *p = pool_for(db_url(), 1, 100);
  int applied;
  sc_err_t err;
  cr_assert_eq(run(p, m, 1, &applied, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(applied, 1);
  char buf[32];
  cr_assert_str_eq(query1(p, "SHOW statement_timeout", 0, NULL, buf, sizeof(buf)), "100ms");
  sc_pg_pool_free(p);
}

Test(migrate, bad_lists_are_refused_before_touching_the_database) {
  static const sc_migration_t unordered[] = {
      MIG("m_list", 2, "0002_b.sql", "SELECT 2;"),
      MIG("m_list", 1, "0001_a.sql", "SELECT 1;"),
  };
  static const sc_migration_t duplicated[] = {
      MIG("m_list", 1, "0001_a.sql", "SELECT 1;"),
      MIG("m_list", 1, "0001_b.sql", "SELECT 1;"),
  };
  static const sc_migration_t domains[] = {
      MIG("m_list_b", 1, "0001_a.sql", "SELECT 1;"),
      MIG("m_list_a", 1, "0001_a.sql", "SELECT 1;"),
  };
  static const char with_nul[] = "SELECT 1;\0DROP SCHEMA scale_meta CASCADE;";
  const sc_migration_t nul[] = {{"m_list", 1, "0001_nul.sql", with_nul, sizeof(with_nul) - 1}};
  sc_pg_pool_t *p = pool();
  int applied;
  sc_err_t err;
  cr_assert_eq(run(p, unordered, 2, &applied, &err), SC_INTERNAL);
  cr_assert(strstr(err.msg, "out of order"), "%s", err.msg);
  cr_assert_eq(applied, 0);
  cr_assert_eq(run(p, duplicated, 2, &applied, &err), SC_INTERNAL);
  cr_assert_eq(run(p, domains, 2, &applied, &err), SC_INTERNAL);
  cr_assert_eq(run(p, nul, 1, &applied, &err), SC_INTERNAL);
  cr_assert(strstr(err.msg, "m_list/0001_nul.sql"), "%s", err.msg);
  cr_assert_eq(count_records(p, "m_list"), 0);
  sc_pg_pool_free(p);
}

Test(migrate, no_database_is_unavailable) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  socklen_t len = sizeof(a);
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  char url[128];
  snprintf(url, sizeof(url), "postgresql://postgres@127.0.0.1:%d/scale", ntohs(a.sin_port));
  static const sc_migration_t m[] = {MIG("m_down", 1, "0001_a.sql", "SELECT 1;")};
  sc_pg_pool_t *p = pool_for(url, 1, 0);
  int applied;
  sc_err_t err;
  cr_assert_eq(run(p, m, 1, &applied, &err), SC_UNAVAILABLE);
  cr_assert(strstr(err.msg, "migrations: database unavailable"), "%s", err.msg);
  cr_assert_eq(applied, 0);
  sc_pg_pool_free(p);
}

/* Runs fn with stderr sent to a temp file; returns what was written. */
static char *capture_stderr(void (*fn)(void)) {
  char path[] = "/tmp/scale-migrate-log-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  int saved = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  static char buf[65536];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  unlink(path);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static void migrate_logged(void) {
  static const sc_migration_t m[] = {MIG("m_log", 1, "0001_init.sql", "CREATE SCHEMA m_log;")};
  sc_log_setup("scale-test", SC_LOG_INFO, SC_LOG_JSON);
  sc_pg_pool_t *p = pool();
  int applied;
  sc_err_t err;
  cr_assert_eq(run(p, m, 1, &applied, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(run(p, m, 1, &applied, &err), SC_OK, "%s", err.msg);
  sc_pg_pool_free(p);
}

Test(migrate, each_applied_migration_is_logged_at_info) {
  char *out = capture_stderr(migrate_logged);
  char *line = strstr(out, "applied migration m_log/0001_init.sql");
  cr_assert_not_null(line, "%s", out);
  cr_assert(strstr(out, "\"level\":\"info\""), "%s", out);
  cr_assert_null(strstr(line + 1, "applied migration m_log/0001_init.sql"), "logged twice: %s", out);
}

Test(migrate, the_embedded_migrations_are_well_formed_and_apply) {
  for (size_t i = 0; i < sc_migration_count; i++) {
    const sc_migration_t *m = &sc_migrations[i];
    cr_assert_eq(m->sql[m->len], '\0', "%s/%s is not NUL-terminated", m->domain, m->name);
    cr_assert_eq(strlen(m->sql), m->len, "%s/%s", m->domain, m->name);
    char prefix[8];
    snprintf(prefix, sizeof(prefix), "%04d_", m->version);
    cr_assert(strncmp(m->name, prefix, 5) == 0, "%s/%s has version %d", m->domain, m->name, m->version);
  }
  sc_pg_pool_t *p = pool();
  int applied;
  sc_err_t err;
  sc_status_t st = run(p, sc_migrations, sc_migration_count, &applied, &err);
  cr_assert_eq(st, SC_OK, "%s %s", sc_status_name(st), err.msg);
  cr_assert_eq((size_t)applied, sc_migration_count);
  cr_assert_eq(run(p, sc_migrations, sc_migration_count, &applied, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(applied, 0);
  sc_pg_pool_free(p);
}
