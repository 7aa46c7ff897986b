/* AccountsService's ledger methods: AppendTransactions (the one write path),
 * ListTransactions (filters, keyset paging with tamper-evident tokens) and
 * GetTransaction. Every statement is scoped to the caller's user id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts_int.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "ledger.h"
#include "scale/accounts/v1/accounts.pb-c.h"
#include "scale/pbutil.h"
#include "scale/uuid.h"

#define DEFAULT_PAGE 50
#define MAX_PAGE 1000
#define MAX_FILTER_TEXT 200

static int date_ok(const char *d) { return sc_fp_date_valid(d); }

/* ---- AppendTransactions ---------------------------------------------------- */

sc_status_t acct_append_transactions(sc_call_t *call, ProtobufCMessage **resp_, void *svc) {
  acct_service_t *s = svc;
  const char *uid = sc_call_user_id(call);
  if (uid == NULL) return sc_call_fail(call, SC_UNAUTHENTICATED, "no authenticated user");
  sc_arena_t *arena = sc_call_arena(call);
  acct_append_t *ap = NULL;
  bool report = false;
  int64_t index = 0;
  sc_err_t why = {{0}};
  sc_status_t st = SC_OK;
  for (;;) {
    ProtobufCMessage *m = NULL;
    st = sc_call_recv(call, &m);
    if (st != SC_OK) goto fail;
    if (m == NULL) break;
    const Scale__Accounts__V1__AppendTransactionsRequest *req = (const void *)m;
    if (ap == NULL) {
      const Scale__Accounts__V1__AppendTransactionsHeader *h = req->header;
      const char *import_id = h && h->import_id && *h->import_id ? h->import_id : NULL;
      if (import_id && !sc_uuid_valid(import_id)) {
        st = sc_call_fail_field(call, "header.import_id", "not a UUID");
        goto fail;
      }
      report = h && h->report_possible_duplicates;
      st = acct_append_begin(s->pool, uid, h ? (int)h->source : 0, import_id, &ap, &why);
      if (st != SC_OK) {
        st = acct_db_fail(call, st, &why);
        goto fail;
      }
    } else if (req->header != NULL) {
      st = sc_call_fail_field(call, "header", "only the first message may carry the header");
      goto fail;
    }
    for (size_t i = 0; i < req->n_rows; i++, index++) {
      const Scale__Accounts__V1__NewTransaction *r = req->rows[i];
      acct_new_txn_t t = {.line = r->line ? r->line : (int32_t)(index + 1),
                          .account_id = r->account_id,
                          .date = r->date,
                          .amount_minor = r->amount_minor,
                          .currency = r->currency,
                          .merchant = r->merchant,
                          .description = r->description,
                          .payment_method = r->payment_method,
                          .reference = r->reference,
                          .bank_txn_id = r->bank_transaction_id,
                          .category = r->category,
                          .fingerprint = r->fingerprint};
      const char *bad = NULL;
      st = acct_append_row(ap, &t, &bad, &why);
      if (st == SC_INVALID_ARGUMENT) {
        /* All or nothing: one bad row fails the append, naming it. */
        char field[64];
        snprintf(field, sizeof(field), "rows[%lld].%s", (long long)index, bad ? bad : "");
        st = sc_call_fail_field(call, field, "invalid value (line %d)", (int)t.line);
        goto fail;
      }
      if (st != SC_OK) {
        st = acct_db_fail(call, st, &why);
        goto fail;
      }
    }
  }
  if (ap == NULL) return sc_call_fail_field(call, "header", "the stream carried no message");
  acct_append_result_t res;
  st = acct_append_finish(ap, report, arena, &res, &why);
  ap = NULL;
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  Scale__Accounts__V1__AppendTransactionsResponse *resp = sc_arena_alloc(arena, sizeof(*resp));
  if (resp == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  scale__accounts__v1__append_transactions_response__init(resp);
  resp->inserted = (int32_t)res.inserted;
  resp->skipped_duplicates = (int32_t)res.skipped_duplicates;
  resp->skipped_zero_amount = (int32_t)res.skipped_zero_amount;
  if (res.n_dups > 0) {
    resp->possible_duplicates = sc_arena_calloc(arena, res.n_dups, sizeof(*resp->possible_duplicates));
    for (size_t i = 0; resp->possible_duplicates && i < res.n_dups; i++) {
      Scale__Accounts__V1__PossibleDuplicate *d = sc_arena_alloc(arena, sizeof(*d));
      if (d == NULL) break;
      scale__accounts__v1__possible_duplicate__init(d);
      acct_possible_dup_t *x = &res.dups[i];
      d->line = x->line;
      d->transaction_id = sc_arena_strdup(arena, x->transaction_id);
      d->existing_transaction_id = sc_arena_strdup(arena, x->existing_id);
      d->date = sc_arena_strdup(arena, x->date);
      d->existing_date = sc_arena_strdup(arena, x->existing_date);
      d->amount_minor = x->amount_minor;
      d->currency = sc_arena_strdup(arena, x->currency);
      d->description = (char *)x->description;
      d->existing_description = (char *)x->existing_description;
      resp->possible_duplicates[resp->n_possible_duplicates++] = d;
    }
  }
  *resp_ = &resp->base;
  return SC_OK;
fail:
  acct_append_abort(ap);
  return st;
}

/* ---- reading --------------------------------------------------------------- */

#define TXN_COLUMNS                                                                                                    \
  "id::text, account_id, date::text, amount_minor, currency, merchant, description, payment_method, reference,"        \
  " category, fingerprint, coalesce(import_id::text, ''), bank_transaction_id, source,"                                \
  " (extract(epoch FROM created_at) * 1000000)::bigint, (extract(epoch FROM updated_at) * 1000000)::bigint"

static Scale__Accounts__V1__Transaction *txn_from_row(sc_arena_t *a, PGresult *r, int i) {
  Scale__Accounts__V1__Transaction *t = sc_arena_alloc(a, sizeof(*t));
  if (t == NULL) return NULL;
  scale__accounts__v1__transaction__init(t);
  char **text[] = {&t->id,
                   &t->account_id,
                   &t->date,
                   NULL,
                   &t->currency,
                   &t->merchant,
                   &t->description,
                   &t->payment_method,
                   &t->reference,
                   &t->category,
                   &t->fingerprint,
                   &t->import_id,
                   &t->bank_transaction_id};
  for (int c = 0; c < 13; c++) {
    if (text[c]) *text[c] = sc_arena_strdup(a, PQgetvalue(r, i, c));
  }
  t->amount_minor = strtoll(PQgetvalue(r, i, 3), NULL, 10);
  t->source = (Scale__Accounts__V1__TransactionSource)strtol(PQgetvalue(r, i, 13), NULL, 10);
  t->created_at = sc_timestamp_from_us(a, PQgetvalue(r, i, 14));
  t->updated_at = sc_timestamp_from_us(a, PQgetvalue(r, i, 15));
  return t;
}

/* LIKE pattern for a substring match of user text: escape the wildcards. */
static char *like_pattern(sc_arena_t *a, const char *s) {
  size_t n = strlen(s);
  char *p = sc_arena_alloc(a, 2 * n + 3);
  if (p == NULL) return NULL;
  size_t o = 0;
  p[o++] = '%';
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' || s[i] == '_' || s[i] == '\\') p[o++] = '\\';
    p[o++] = s[i];
  }
  p[o++] = '%';
  p[o] = '\0';
  return p;
}

static const char *nz(const char *s) { return s && *s ? s : NULL; }

sc_status_t acct_list_transactions(sc_call_t *call, const ProtobufCMessage *req_, ProtobufCMessage **resp_, void *svc) {
  acct_service_t *s = svc;
  const Scale__Accounts__V1__ListTransactionsRequest *req = (const void *)req_;
  const char *uid = sc_call_user_id(call);
  if (uid == NULL) return sc_call_fail(call, SC_UNAUTHENTICATED, "no authenticated user");
  sc_arena_t *a = sc_call_arena(call);

  /* Validate every filter first, reporting each bad one. */
  sc_status_t bad = SC_OK;
  if (req->page_size < 0) bad = sc_call_fail_field(call, "page_size", "must not be negative");
  if (nz(req->from_date) && !date_ok(req->from_date)) {
    bad = sc_call_fail_field(call, "from_date", "'%s' is not a YYYY-MM-DD date", req->from_date);
  }
  if (nz(req->to_date) && !date_ok(req->to_date)) {
    bad = sc_call_fail_field(call, "to_date", "'%s' is not a YYYY-MM-DD date", req->to_date);
  }
  if (bad == SC_OK && nz(req->from_date) && nz(req->to_date) && strcmp(req->from_date, req->to_date) > 0) {
    bad = sc_call_fail_field(call, "to_date", "is before from_date");
  }
  if (req->min_amount_minor && req->max_amount_minor && req->min_amount_minor->value > req->max_amount_minor->value) {
    bad = sc_call_fail_field(call, "max_amount_minor", "is less than min_amount_minor");
  }
  char currency[4] = "";
  if (nz(req->currency)) {
    /* Case is not meaningful in a currency code: "eur" is EUR. */
    for (size_t i = 0; i < 3 && req->currency[i]; i++) {
      char c = req->currency[i];
      currency[i] = (char)((c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c);
    }
    if (strlen(req->currency) != 3 || !acct_currency_valid(currency)) {
      bad = sc_call_fail_field(call, "currency", "'%s' is not an ISO 4217 currency code", req->currency);
    }
  }
  if (nz(req->import_id) && !sc_uuid_valid(req->import_id)) {
    bad = sc_call_fail_field(call, "import_id", "not a UUID");
  }
  const char *texts[][2] = {
      {"category", req->category}, {"merchant", req->merchant}, {"query", req->query}, {"account_id", req->account_id}};
  for (size_t i = 0; i < 4; i++) {
    if (texts[i][1] && strlen(texts[i][1]) > MAX_FILTER_TEXT) {
      bad = sc_call_fail_field(call, texts[i][0], "longer than %d bytes", MAX_FILTER_TEXT);
    }
  }
  if (bad != SC_OK) return bad;

  int page = req->page_size == 0 ? DEFAULT_PAGE : req->page_size > MAX_PAGE ? MAX_PAGE : req->page_size;
  char min_s[24] = "", max_s[24] = "", limit_s[16];
  if (req->min_amount_minor) snprintf(min_s, sizeof(min_s), "%lld", (long long)req->min_amount_minor->value);
  if (req->max_amount_minor) snprintf(max_s, sizeof(max_s), "%lld", (long long)req->max_amount_minor->value);
  snprintf(limit_s, sizeof(limit_s), "%d", page + 1);

  /* The filters a token is bound to (page_size may change between pages). */
  const char *filters = sc_arena_printf(a, "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s", uid,
                                        req->from_date ? req->from_date : "", req->to_date ? req->to_date : "", min_s,
                                        max_s, req->currency ? req->currency : "", req->category ? req->category : "",
                                        req->merchant ? req->merchant : "", req->query ? req->query : "",
                                        req->account_id ? req->account_id : "", req->import_id ? req->import_id : "");
  const char *cur_date = NULL, *cur_id = NULL;
  if (nz(req->page_token)) {
    char *cursor = filters ? sc_pagetoken_decode(&s->page_key, filters, req->page_token, a) : NULL;
    char *sep = cursor ? strchr(cursor, '|') : NULL;
    if (sep == NULL) {
      return sc_call_fail_field(call, "page_token",
                                "invalid: modified, from another server, or used with different filters");
    }
    *sep = '\0';
    cur_date = cursor;
    cur_id = sep + 1;
  }
  const char *params[] = {uid,
                          nz(req->from_date),
                          nz(req->to_date),
                          min_s[0] ? min_s : NULL,
                          max_s[0] ? max_s : NULL,
                          currency[0] ? currency : NULL,
                          nz(req->category),
                          nz(req->merchant),
                          nz(req->query) ? like_pattern(a, req->query) : NULL,
                          nz(req->account_id),
                          nz(req->import_id),
                          cur_date,
                          cur_id,
                          limit_s};
  sc_pg_conn_t *conn = NULL;
  sc_err_t why = {{0}};
  sc_status_t st = sc_pg_acquire(s->pool, &conn, &why);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  PGresult *r = NULL;
  st = sc_pg_exec(conn, a,
                  "SELECT " TXN_COLUMNS " FROM accounts.transactions"
                  " WHERE user_id = $1::uuid"
                  "   AND ($2::date IS NULL OR date >= $2::date) AND ($3::date IS NULL OR date <= $3::date)"
                  "   AND ($4::bigint IS NULL OR amount_minor >= $4::bigint)"
                  "   AND ($5::bigint IS NULL OR amount_minor <= $5::bigint)"
                  "   AND ($6::text IS NULL OR currency = $6::text)"
                  "   AND ($7::text IS NULL OR lower(category) = lower($7::text))"
                  "   AND ($8::text IS NULL OR lower(merchant) = lower($8::text))"
                  "   AND ($9::text IS NULL OR merchant ILIKE $9::text OR description ILIKE $9::text)"
                  "   AND ($10::text IS NULL OR account_id = $10::text)"
                  "   AND ($11::uuid IS NULL OR import_id = $11::uuid)"
                  "   AND ($12::date IS NULL OR (date, id) < ($12::date, $13::uuid))"
                  " ORDER BY date DESC, id DESC LIMIT $14::int",
                  14, params, &r, &why);
  sc_pg_release(conn);
  if (st != SC_OK) return acct_db_fail(call, st, &why);

  Scale__Accounts__V1__ListTransactionsResponse *resp = sc_arena_alloc(a, sizeof(*resp));
  if (resp == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  scale__accounts__v1__list_transactions_response__init(resp);
  int n = PQntuples(r);
  int shown = n > page ? page : n;
  resp->transactions = sc_arena_calloc(a, (size_t)(shown ? shown : 1), sizeof(*resp->transactions));
  if (resp->transactions == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  for (int i = 0; i < shown; i++) {
    resp->transactions[i] = txn_from_row(a, r, i);
    if (resp->transactions[i] == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  }
  resp->n_transactions = (size_t)shown;
  if (n > page) {
    const Scale__Accounts__V1__Transaction *last = resp->transactions[shown - 1];
    const char *cursor = sc_arena_printf(a, "%s|%s", last->date, last->id);
    resp->next_page_token = cursor ? sc_pagetoken_encode(&s->page_key, filters, cursor, a) : NULL;
    if (resp->next_page_token == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  }
  *resp_ = &resp->base;
  return SC_OK;
}

sc_status_t acct_get_transaction(sc_call_t *call, const ProtobufCMessage *req_, ProtobufCMessage **resp_, void *svc) {
  acct_service_t *s = svc;
  const Scale__Accounts__V1__GetTransactionRequest *req = (const void *)req_;
  const char *uid = sc_call_user_id(call);
  if (uid == NULL) return sc_call_fail(call, SC_UNAUTHENTICATED, "no authenticated user");
  if (!sc_uuid_valid(req->id)) return sc_call_fail_field(call, "id", "not a UUID");
  sc_arena_t *a = sc_call_arena(call);
  sc_pg_conn_t *conn = NULL;
  sc_err_t why = {{0}};
  sc_status_t st = sc_pg_acquire(s->pool, &conn, &why);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  const char *params[] = {uid, req->id};
  PGresult *r = NULL;
  st = sc_pg_exec(conn, a,
                  "SELECT " TXN_COLUMNS " FROM accounts.transactions WHERE user_id = $1::uuid AND id = $2::uuid", 2,
                  params, &r, &why);
  sc_pg_release(conn);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  /* Another user's transaction is as absent as a missing one. */
  if (PQntuples(r) != 1) return sc_call_fail(call, SC_NOT_FOUND, "no transaction %s", req->id);
  Scale__Accounts__V1__GetTransactionResponse *resp = sc_arena_alloc(a, sizeof(*resp));
  if (resp == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  scale__accounts__v1__get_transaction_response__init(resp);
  resp->transaction = txn_from_row(a, r, 0);
  *resp_ = &resp->base;
  return resp->transaction ? SC_OK : sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
}
