/* Shared inside the accounts domain. */
#ifndef SCALE_ACCOUNTS_INT_H
#define SCALE_ACCOUNTS_INT_H

#include "accounts.h"

/* A database failure: the detail to the log, words to act on to the client. */
sc_status_t acct_db_fail(sc_call_t *call, sc_status_t st, const sc_err_t *why);

/* The ledger handlers (ledger_service.c). */
sc_status_t acct_append_transactions(sc_call_t *call, ProtobufCMessage **resp, void *svc);
sc_status_t acct_list_transactions(sc_call_t *call, const ProtobufCMessage *req, ProtobufCMessage **resp, void *svc);
sc_status_t acct_get_transaction(sc_call_t *call, const ProtobufCMessage *req, ProtobufCMessage **resp, void *svc);

#endif
