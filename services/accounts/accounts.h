/* Accounts domain: profiles, settings and the transaction ledger. */
#ifndef SCALE_ACCOUNTS_ACCOUNTS_H
#define SCALE_ACCOUNTS_ACCOUNTS_H

#include <stdbool.h>

#include "scale/pagetoken.h"
#include "scale/pg.h"
#include "scale/rpc.h"

typedef struct acct_service {
  sc_pg_pool_t *pool;          /* owned by the caller; outlives the server */
  sc_pagetoken_key_t page_key; /* signs ListTransactions page tokens */
} acct_service_t;

/* scale.accounts.v1.AccountsService over s. */
sc_rpc_service_t acct_service(acct_service_t *s);

/* A database failure as a call status: the detail (SQL errors) to the log,
 * words a client can act on to the client. Shared with ingestion. */
sc_status_t acct_db_fail(sc_call_t *call, sc_status_t st, const sc_err_t *why);

/* Validators, exposed for tests. */
bool acct_currency_valid(const char *code);
bool acct_locale_valid(const char *tag);

#endif
