/* The ledger's one write path: rows of one append (an import, a webhook
 * delivery, a device sync) go through COPY into a staging table and are
 * inserted with conflict-skip on (user_id, fingerprint) in ONE database
 * transaction: either every new row lands or none does. AppendTransactions
 * (gRPC) and, in one process, ingestion call this directly. */
#ifndef SCALE_ACCOUNTS_LEDGER_H
#define SCALE_ACCOUNTS_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "scale/arena.h"
#include "scale/fingerprint.h"
#include "scale/pg.h"

typedef struct acct_append acct_append_t;

/* Values match scale.accounts.v1.TransactionSource. */
enum { ACCT_SOURCE_UNSPECIFIED = 0, ACCT_SOURCE_IMPORT = 1, ACCT_SOURCE_WEBHOOK = 2, ACCT_SOURCE_DEVICE_SYNC = 3 };

typedef struct acct_new_txn {
  int32_t line;           /* the caller's row number, echoed in reports */
  const char *account_id; /* NULL: "" */
  const char *date;       /* YYYY-MM-DD */
  int64_t amount_minor;   /* 0: skipped and counted */
  const char *currency;
  const char *merchant, *description, *payment_method, *reference, *bank_txn_id, *category;
  const char *fingerprint; /* NULL: computed here, repeats numbered in append order */
} acct_new_txn_t;

typedef struct acct_possible_dup {
  int32_t line;
  char transaction_id[37], existing_id[37];
  char date[11], existing_date[11];
  int64_t amount_minor;
  char currency[4];
  const char *description, *existing_description; /* in the result's arena */
} acct_possible_dup_t;

typedef struct acct_append_result {
  int64_t inserted, skipped_duplicates, skipped_zero_amount, rows;
  acct_possible_dup_t *dups; /* at most ACCT_MAX_DUPS, in the arena given to finish */
  size_t n_dups;
  char min_date[11], max_date[11]; /* over the rows appended ("" when none) */
} acct_append_result_t;

#define ACCT_MAX_DUPS 1000

/* The fingerprint's view of a row (the occurrence is left at 0). */
sc_fp_input_t acct_fp_input(const acct_new_txn_t *t);

/* Starts an append for user_id: takes a connection, opens the transaction,
 * creates the staging table, starts the COPY. import_id may be NULL. */
sc_status_t acct_append_begin(sc_pg_pool_t *pool, const char *user_id, int source, const char *import_id,
                              acct_append_t **out, sc_err_t *why);
/* Adds one row. SC_INVALID_ARGUMENT names the bad field in *bad_field (and
 * the reason in why); the append stays usable (the caller decides whether a
 * bad row fails everything). */
sc_status_t acct_append_row(acct_append_t *a, const acct_new_txn_t *row, const char **bad_field, sc_err_t *why);
/* Inserts the new rows and commits. Reports possible duplicates (same amount
 * and currency within 3 days, different text) when report_dups. Frees a. */
sc_status_t acct_append_finish(acct_append_t *a, bool report_dups, sc_arena_t *arena, acct_append_result_t *res,
                               sc_err_t *why);
/* Rolls back and frees. Accepts NULL. */
void acct_append_abort(acct_append_t *a);

#endif
