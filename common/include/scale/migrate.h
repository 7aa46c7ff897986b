/* Schema migrations: each domain's services/<domain>/migrations/NNNN_*.sql,
 * embedded in the binary at build time, applied in order under an advisory
 * lock (two servers starting at once apply each migration once), each in its
 * own transaction and recorded with its SHA-256. An applied migration whose
 * file has since changed is refused, naming it. */
#ifndef SCALE_MIGRATE_H
#define SCALE_MIGRATE_H

#include <stddef.h>

#include "scale/pg.h"

typedef struct sc_migration {
  const char *domain; /* "accounts" */
  int version;        /* NNNN */
  const char *name;   /* "0001_init.sql" */
  const char *sql;
  size_t len;
} sc_migration_t;

/* The migrations embedded in this binary, ordered by domain then version. */
extern const sc_migration_t sc_migrations[];
extern const size_t sc_migration_count;

/* Applies what is missing. *applied (optional) gets how many were applied
 * now. Fails (status, err naming the migration) on a checksum mismatch, a
 * failing migration (rolled back; later ones not tried) or no database. */
sc_status_t sc_migrate_run(sc_pg_pool_t *pool, const sc_migration_t *migs, size_t n, int *applied, sc_err_t *err);

#endif
