/* Shared inside the accounts domain. */
#ifndef SCALE_ACCOUNTS_INT_H
#define SCALE_ACCOUNTS_INT_H

#include "accounts.h"

/* The ledger handlers (ledger_service.c). */
sc_status_t acct_append_transactions(sc_call_t *call, ProtobufCMessage **resp, void *svc);
sc_status_t acct_list_transactions(sc_call_t *call, const ProtobufCMessage *req, ProtobufCMessage **resp, void *svc);
sc_status_t acct_get_transaction(sc_call_t *call, const ProtobufCMessage *req, ProtobufCMessage **resp, void *svc);

#endif
