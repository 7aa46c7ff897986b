/* The migration runner. One connection, holding a session advisory lock for
 * the whole run, so a second server starting at the same time waits and then
 * finds everything applied. Each migration runs in its own transaction
 * together with the row that records it, so a migration is either applied
 * and recorded or neither. */
#include "scale/migrate.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scale/log.h"

/* Every SCALE process migrates under this key: "SCALEMIG" as a big-endian
 * int64. Fixed, so processes of different builds exclude each other too. */
#define LOCK_KEY "5999710924423645511"
#define SHA_HEX_LEN 64
/* How much of each digest a checksum error shows. */
#define SHA_SHOWN 12

static int sha256_hex(const char *data, size_t len, char out[SHA_HEX_LEN + 1]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen * 2 != SHA_HEX_LEN) return -1;
  static const char hex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < mdlen; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[SHA_HEX_LEN] = '\0';
  return 0;
}

/* The list is built by cmake/Migrations.cmake; tests and other callers may
 * pass their own. Check what the runner relies on before touching the
 * database. */
static sc_status_t check_list(const sc_migration_t *migs, size_t n, sc_err_t *err) {
  for (size_t i = 0; i < n; i++) {
    const sc_migration_t *m = &migs[i];
    if (m->domain == NULL || m->name == NULL || m->sql == NULL || m->version <= 0) {
      sc_err_set(err, "migration #%zu is incomplete (domain, name, sql and a positive version are required)", i);
      return SC_INTERNAL;
    }
    /* PQexec reads up to the first NUL: an embedded one would silently cut
     * the migration short. */
    if (m->sql[m->len] != '\0' || memchr(m->sql, '\0', m->len) != NULL) {
      sc_err_set(err, "migration %s/%s is not one NUL-terminated text of %zu bytes", m->domain, m->name, m->len);
      return SC_INTERNAL;
    }
    if (i > 0) {
      const sc_migration_t *p = &migs[i - 1];
      int cmp = strcmp(p->domain, m->domain);
      if (cmp > 0 || (cmp == 0 && p->version >= m->version)) {
        sc_err_set(err, "migrations out of order or duplicated: %s/%s comes after %s/%s", m->domain, m->name, p->domain,
                   p->name);
        return SC_INTERNAL;
      }
    }
  }
  return SC_OK;
}

static sc_status_t step(sc_pg_conn_t *c, const char *sql, const char *what, sc_err_t *err) {
  sc_err_t why = {{0}};
  sc_status_t st = sc_pg_exec(c, NULL, sql, 0, NULL, NULL, &why);
  if (st != SC_OK) sc_err_set(err, "migrations: %s: %s", what, why.msg);
  return st;
}

/* 1-based line of a 1-based character position in text (UTF-8). */
static int line_of(const char *text, size_t len, long pos) {
  int line = 1;
  long chars = 0;
  for (size_t i = 0; i < len && chars < pos - 1; i++) {
    unsigned char ch = (unsigned char)text[i];
    if ((ch & 0xC0) == 0x80) continue;
    chars++;
    if (ch == '\n') line++;
  }
  return line;
}

/* Runs the migration's own text. */
static sc_status_t run_sql(sc_pg_conn_t *c, const sc_migration_t *m, sc_err_t *err) {
  PGconn *pg = sc_pg_raw(c);
  /* The one non-parameterised execution in SCALE: the text is our own
   * migration file, embedded at build time, never input. PQexec because a
   * migration is several statements (PQexecParams runs exactly one); it runs
   * inside the transaction the caller opened. */
  PGresult *r = PQexec(pg, m->sql);
  ExecStatusType s = PQresultStatus(r);
  sc_status_t st = SC_OK;
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY) {
    if (PQtransactionStatus(pg) != PQTRANS_INTRANS) {
      sc_err_set(err, "migration %s/%s ended its transaction itself; it must not contain BEGIN, COMMIT or ROLLBACK",
                 m->domain, m->name);
      st = SC_INTERNAL;
    }
  } else if (s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH) {
    /* The connection is left mid-COPY; the caller discards it. */
    sc_err_set(err, "migration %s/%s uses COPY with STDIN/STDOUT, which a migration cannot", m->domain, m->name);
    st = SC_INTERNAL;
  } else {
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL) msg = PQerrorMessage(pg);
    const char *pos = r ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
    char where[32] = "";
    if (pos != NULL) {
      long p = strtol(pos, NULL, 10);
      if (p > 0) snprintf(where, sizeof(where), " (line %d)", line_of(m->sql, m->len, p));
    }
    st = PQstatus(pg) == CONNECTION_OK ? SC_INTERNAL : SC_UNAVAILABLE;
    sc_err_set(err, "migration %s/%s failed%s: %.*s", m->domain, m->name, where, (int)strcspn(msg, "\n"), msg);
  }
  PQclear(r);
  return st;
}

/* Applies m unless it is recorded; *did says whether it ran. */
static sc_status_t apply_one(sc_pg_conn_t *c, const sc_migration_t *m, bool *did, sc_err_t *err) {
  sc_status_t st;
  sc_err_t why = {{0}};
  PGresult *r = NULL;
  char sha[SHA_HEX_LEN + 1];
  char version[16];
  *did = false;
  if (sha256_hex(m->sql, m->len, sha) != 0) {
    sc_err_set(err, "migrations: SHA-256 unavailable");
    return SC_INTERNAL;
  }
  snprintf(version, sizeof(version), "%d", m->version);

  const char *key[] = {m->domain, version};
  st = sc_pg_exec(c, NULL, "SELECT sha256 FROM scale_meta.schema_migrations WHERE domain = $1 AND version = $2::int", 2,
                  key, &r, &why);
  if (st != SC_OK) {
    sc_err_set(err, "migrations: reading the record of %s/%s: %s", m->domain, m->name, why.msg);
    return st;
  }
  if (PQntuples(r) == 1) {
    const char *recorded = PQgetvalue(r, 0, 0);
    if (strcmp(recorded, sha) != 0) {
      sc_err_set(err,
                 "migration %s/%s was changed after it was applied (recorded sha256 %.*s…, file %.*s…); "
                 "restore it and add a new migration instead",
                 m->domain, m->name, SHA_SHOWN, recorded, SHA_SHOWN, sha);
      st = SC_FAILED_PRECONDITION;
    }
    PQclear(r);
    return st;
  }
  PQclear(r);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  st = sc_pg_begin(c, &why);
  if (st != SC_OK) {
    sc_err_set(err, "migration %s/%s: BEGIN failed: %s", m->domain, m->name, why.msg);
    return st;
  }
  st = run_sql(c, m, err);
  if (st != SC_OK) goto fail;
  const char *rec[] = {m->domain, version, m->name, sha};
  st = sc_pg_exec(c, NULL,
                  "INSERT INTO scale_meta.schema_migrations (domain, version, name, sha256) "
                  "VALUES ($1, $2::int, $3, $4)",
                  4, rec, NULL, &why);
  if (st == SC_OK) st = sc_pg_commit(c, &why);
  if (st != SC_OK) {
    sc_err_set(err, "migration %s/%s: recording it failed: %s", m->domain, m->name, why.msg);
    goto fail;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  SC_LOG_INFOF(NULL, "applied migration %s/%s in %.0f ms", m->domain, m->name, ms);
  *did = true;
  return SC_OK;

fail:
  sc_pg_rollback(c);
  return st;
}

sc_status_t sc_migrate_run(sc_pg_pool_t *pool, const sc_migration_t *migs, size_t n, int *applied, sc_err_t *err) {
  int count = 0;
  bool locked = false;
  sc_pg_conn_t *c = NULL;
  sc_err_t why = {{0}};
  sc_status_t st = check_list(migs, n, err);
  if (st != SC_OK) goto out;
  st = sc_pg_acquire(pool, &c, &why);
  if (st != SC_OK) {
    sc_err_set(err, "migrations: %s", why.msg);
    goto out;
  }
  /* A migration may outlast the pool's statement timeout (an index build),
   * and so may waiting for another server's run; this session is closed at
   * the end, so the override never reaches another holder. */
  st = step(c, "SET statement_timeout = 0", "disabling the statement timeout", err);
  if (st != SC_OK) goto out;
  st = step(c, "SELECT pg_advisory_lock(" LOCK_KEY ")", "taking the migration lock", err);
  if (st != SC_OK) goto out;
  locked = true;
  st = step(c, "CREATE SCHEMA IF NOT EXISTS scale_meta", "creating schema scale_meta", err);
  if (st != SC_OK) goto out;
  st = step(c,
            "CREATE TABLE IF NOT EXISTS scale_meta.schema_migrations ("
            " domain text, version int, name text NOT NULL, sha256 text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (domain, version))",
            "creating scale_meta.schema_migrations", err);
  if (st != SC_OK) goto out;
  for (size_t i = 0; i < n; i++) {
    bool did = false;
    st = apply_one(c, &migs[i], &did, err);
    if (st != SC_OK) goto out;
    if (did) count++;
  }
  SC_LOG_DEBUGF(NULL, "migrations: %d applied, %zu up to date", count, n - (size_t)count);

out:
  if (c != NULL) {
    /* Unlock explicitly so a waiting server goes on at once; closing the
     * session would release the lock too, a moment later. */
    if (locked) (void)sc_pg_exec(c, NULL, "SELECT pg_advisory_unlock(" LOCK_KEY ")", 0, NULL, NULL, NULL);
    sc_pg_discard(c);
  }
  if (applied != NULL) *applied = count;
  return st;
}
