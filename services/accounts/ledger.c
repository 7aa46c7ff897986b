#include "ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale/pbcheck.h"

#define COPY_BUF (256 * 1024)

struct acct_append {
  sc_pg_conn_t *conn;
  sc_arena_t *scratch; /* per row */
  sc_fp_counter_t *counter;
  char user_id[37];
  int source;
  char import_id[37];
  char *buf; /* COPY data waiting to be sent */
  size_t len;
  int64_t rows, zero;
  char min_date[11], max_date[11];
};

static void append_free(acct_append_t *a) {
  if (a == NULL) return;
  if (a->conn) sc_pg_release(a->conn); /* rolls back an open transaction or COPY */
  sc_arena_free(a->scratch);
  sc_fp_counter_free(a->counter);
  free(a->buf);
  free(a);
}

void acct_append_abort(acct_append_t *a) { append_free(a); }

sc_status_t acct_append_begin(sc_pg_pool_t *pool, const char *user_id, int source, const char *import_id,
                              acct_append_t **out, sc_err_t *why) {
  acct_append_t *a = calloc(1, sizeof(*a));
  if (a == NULL || (a->scratch = sc_arena_new(0)) == NULL || (a->counter = sc_fp_counter_new()) == NULL ||
      (a->buf = malloc(COPY_BUF)) == NULL) {
    append_free(a);
    sc_err_set(why, "out of memory");
    return SC_RESOURCE_EXHAUSTED;
  }
  snprintf(a->user_id, sizeof(a->user_id), "%s", user_id);
  snprintf(a->import_id, sizeof(a->import_id), "%s", import_id ? import_id : "");
  a->source = source;
  sc_status_t st = sc_pg_acquire(pool, &a->conn, why);
  if (st == SC_OK) st = sc_pg_begin(a->conn, why);
  if (st == SC_OK) {
    /* A statement of a million rows is meant to be long: the per-statement
     * timeout that guards ordinary queries would cut it off. The caller's
     * deadline still bounds the whole append. */
    st = sc_pg_exec(a->conn, NULL, "SET LOCAL statement_timeout = '30min'", 0, NULL, NULL, why);
  }
  if (st == SC_OK) {
    st = sc_pg_exec(a->conn, NULL,
                    "CREATE TEMP TABLE ledger_staging ("
                    " line int NOT NULL, account_id text NOT NULL, date date NOT NULL, amount_minor bigint NOT NULL,"
                    " currency text NOT NULL, merchant text NOT NULL, description text NOT NULL,"
                    " payment_method text NOT NULL, reference text NOT NULL, bank_transaction_id text NOT NULL,"
                    " category text NOT NULL, fingerprint text NOT NULL) ON COMMIT DROP",
                    0, NULL, NULL, why);
  }
  if (st == SC_OK) {
    st = sc_pg_copy_start(a->conn,
                          "COPY ledger_staging (line, account_id, date, amount_minor, currency, merchant,"
                          " description, payment_method, reference, bank_transaction_id, category, fingerprint)"
                          " FROM STDIN",
                          why);
  }
  if (st != SC_OK) {
    append_free(a);
    return st;
  }
  *out = a;
  return SC_OK;
}

static sc_status_t flush(acct_append_t *a, sc_err_t *why) {
  if (a->len == 0) return SC_OK;
  sc_status_t st = sc_pg_copy_put(a->conn, a->buf, a->len, why);
  a->len = 0;
  return st;
}

/* COPY text format: backslash escapes for the four characters that matter. */
static sc_status_t put_field(acct_append_t *a, const char *s, char end, sc_err_t *why) {
  s = s ? s : "";
  for (;;) {
    if (COPY_BUF - a->len < 8) {
      sc_status_t st = flush(a, why);
      if (st != SC_OK) return st;
    }
    char c = *s++;
    if (c == '\0') break;
    switch (c) {
    case '\\':
      a->buf[a->len++] = '\\';
      a->buf[a->len++] = '\\';
      break;
    case '\t':
      a->buf[a->len++] = '\\';
      a->buf[a->len++] = 't';
      break;
    case '\n':
      a->buf[a->len++] = '\\';
      a->buf[a->len++] = 'n';
      break;
    case '\r':
      a->buf[a->len++] = '\\';
      a->buf[a->len++] = 'r';
      break;
    default: a->buf[a->len++] = c;
    }
  }
  a->buf[a->len++] = end;
  return SC_OK;
}

static int hex64(const char *s) {
  if (s == NULL || strlen(s) != 64) return 0;
  for (int i = 0; i < 64; i++) {
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  }
  return 1;
}

sc_fp_input_t acct_fp_input(const acct_new_txn_t *t) {
  sc_fp_input_t in = {.account_id = t->account_id,
                      .bank_txn_id = t->bank_txn_id,
                      .date = t->date,
                      .amount_minor = t->amount_minor,
                      .currency = t->currency,
                      .merchant = t->merchant,
                      .description = t->description,
                      .payment_method = t->payment_method,
                      .reference = t->reference};
  return in;
}

sc_status_t acct_append_row(acct_append_t *a, const acct_new_txn_t *r, const char **bad_field, sc_err_t *why) {
  sc_arena_reset(a->scratch);
  sc_fp_input_t in = acct_fp_input(r);
  sc_fp_t fp;
  const char *bad = NULL;
  /* The fingerprint is computed even when the caller brings one: it also
   * validates every field (UTF-8, real date, currency). */
  sc_status_t st = sc_fp_compute_next(a->counter, &in, a->scratch, &fp, &bad);
  if (st == SC_OK && r->category && !sc_utf8_valid(r->category, strlen(r->category))) {
    st = SC_INVALID_ARGUMENT;
    bad = "category";
  }
  if (st == SC_OK && r->fingerprint && *r->fingerprint && !hex64(r->fingerprint)) {
    st = SC_INVALID_ARGUMENT;
    bad = "fingerprint";
  }
  if (st != SC_OK) {
    if (bad_field) *bad_field = bad ? bad : "";
    sc_err_set(why, "%s", st == SC_INVALID_ARGUMENT ? "invalid value" : "cannot fingerprint the row");
    return st;
  }
  if (r->amount_minor == 0) {
    a->zero++;
    return SC_OK;
  }
  char line[16], amount[24], currency[4];
  snprintf(line, sizeof(line), "%d", (int)r->line);
  snprintf(amount, sizeof(amount), "%lld", (long long)r->amount_minor);
  /* The currency as the fingerprint saw it: trimmed, upper case (already
   * checked to be three letters). */
  char cbuf[64] = "";
  if (strlen(r->currency) < sizeof(cbuf)) sc_fp_norm(r->currency, cbuf);
  for (int i = 0; i < 3 && cbuf[i]; i++) {
    currency[i] = (char)((cbuf[i] >= 'a' && cbuf[i] <= 'z') ? cbuf[i] - 'a' + 'A' : cbuf[i]);
  }
  currency[3] = '\0';
  const char *fields[] = {
      line,         r->account_id,  r->date,        amount,
      currency,     r->merchant,    r->description, r->payment_method,
      r->reference, r->bank_txn_id, r->category,    (r->fingerprint && *r->fingerprint) ? r->fingerprint : fp.hex};
  size_t n = sizeof(fields) / sizeof(fields[0]);
  for (size_t i = 0; i < n; i++) {
    st = put_field(a, fields[i], i + 1 < n ? '\t' : '\n', why);
    if (st != SC_OK) return st;
  }
  if (a->rows == 0 || strcmp(r->date, a->min_date) < 0) snprintf(a->min_date, sizeof(a->min_date), "%s", r->date);
  if (a->rows == 0 || strcmp(r->date, a->max_date) > 0) snprintf(a->max_date, sizeof(a->max_date), "%s", r->date);
  a->rows++;
  return SC_OK;
}

static const char *copy_text(sc_arena_t *arena, PGresult *r, int row, int col) {
  return sc_arena_strdup(arena, PQgetvalue(r, row, col));
}

sc_status_t acct_append_finish(acct_append_t *a, bool report_dups, sc_arena_t *arena, acct_append_result_t *res,
                               sc_err_t *why) {
  memset(res, 0, sizeof(*res));
  int64_t copied = 0;
  sc_status_t st = flush(a, why);
  if (st == SC_OK) st = sc_pg_copy_end(a->conn, &copied, why);
  char source[8];
  snprintf(source, sizeof(source), "%d", a->source);
  const char *params[] = {a->user_id, a->import_id[0] ? a->import_id : NULL, source};
  PGresult *r = NULL;
  /* Possible duplicates need rows that were in the ledger before this
   * append; a first import (the common bulk case) has none, and skips the
   * work entirely. */
  bool look_for_dups = false;
  if (st == SC_OK && report_dups) {
    const char *p0[] = {a->user_id};
    st = sc_pg_exec(a->conn, arena, "SELECT EXISTS (SELECT 1 FROM accounts.transactions WHERE user_id = $1::uuid)", 1,
                    p0, &r, why);
    look_for_dups = st == SC_OK && PQgetvalue(r, 0, 0)[0] == 't';
  }
  if (st == SC_OK && look_for_dups) {
    st = sc_pg_exec(a->conn, NULL, "CREATE TEMP TABLE ledger_inserted (id uuid, fingerprint text) ON COMMIT DROP", 0,
                    NULL, NULL, why);
  }
  if (st == SC_OK) {
    /* Conflict-skip on the dedup key; repeats inside one append were given
     * distinct occurrences, so only true re-imports are skipped. */
    static const char insert[] =
        "INSERT INTO accounts.transactions (user_id, account_id, date, amount_minor, currency,"
        "    merchant, description, payment_method, reference, bank_transaction_id, category,"
        "    fingerprint, import_id, source)"
        "  SELECT $1::uuid, account_id, date, amount_minor, currency, merchant, description,"
        "         payment_method, reference, bank_transaction_id, category, fingerprint, $2::uuid, $3::smallint"
        "    FROM ledger_staging"
        "  ON CONFLICT (user_id, fingerprint) DO NOTHING";
    if (look_for_dups) {
      char with_ids[sizeof(insert) + 160];
      snprintf(with_ids, sizeof(with_ids),
               "WITH ins AS (%s RETURNING id, fingerprint) INSERT INTO ledger_inserted SELECT id, fingerprint FROM ins",
               insert);
      st = sc_pg_exec(a->conn, arena, with_ids, 3, params, &r, why);
    } else {
      st = sc_pg_exec(a->conn, arena, insert, 3, params, &r, why);
    }
  }
  if (st == SC_OK) res->inserted = strtoll(PQcmdTuples(r), NULL, 10);
  if (st == SC_OK && look_for_dups && res->inserted > 0) {
    /* Same amount and currency within 3 days, different text, already in
     * the ledger before this append: reported, never merged. A set join
     * (not a probe per row), one match per new row. */
    const char *p1[] = {a->user_id};
    st = sc_pg_exec(a->conn, arena,
                    "SELECT line, nid, eid, ndate, edate, amount_minor, currency, ndesc, edesc FROM ("
                    "  SELECT DISTINCT ON (n.id) s.line, n.id::text AS nid, e.id::text AS eid,"
                    "         n.date::text AS ndate, e.date::text AS edate, n.amount_minor, n.currency,"
                    "         n.description AS ndesc, e.description AS edesc"
                    "    FROM ledger_inserted i"
                    "    JOIN accounts.transactions n ON n.id = i.id"
                    "    JOIN ledger_staging s ON s.fingerprint = i.fingerprint"
                    "    JOIN accounts.transactions e ON e.user_id = $1::uuid"
                    "         AND e.amount_minor = n.amount_minor AND e.currency = n.currency"
                    "         AND e.date BETWEEN n.date - 3 AND n.date + 3"
                    "   WHERE NOT EXISTS (SELECT 1 FROM ledger_inserted x WHERE x.id = e.id)"
                    "     AND lower(e.description || e.merchant) <> lower(n.description || n.merchant)"
                    "   ORDER BY n.id, abs(e.date - n.date), e.id) d"
                    " ORDER BY line LIMIT 1000",
                    1, p1, &r, why);
    if (st == SC_OK && PQntuples(r) > 0) {
      int n = PQntuples(r);
      res->dups = sc_arena_calloc(arena, (size_t)n, sizeof(*res->dups));
      for (int i = 0; res->dups && i < n; i++) {
        acct_possible_dup_t *d = &res->dups[i];
        d->line = (int32_t)strtol(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(d->transaction_id, sizeof(d->transaction_id), "%s", PQgetvalue(r, i, 1));
        snprintf(d->existing_id, sizeof(d->existing_id), "%s", PQgetvalue(r, i, 2));
        snprintf(d->date, sizeof(d->date), "%s", PQgetvalue(r, i, 3));
        snprintf(d->existing_date, sizeof(d->existing_date), "%s", PQgetvalue(r, i, 4));
        d->amount_minor = strtoll(PQgetvalue(r, i, 5), NULL, 10);
        snprintf(d->currency, sizeof(d->currency), "%s", PQgetvalue(r, i, 6));
        d->description = copy_text(arena, r, i, 7);
        d->existing_description = copy_text(arena, r, i, 8);
        res->n_dups++;
      }
    }
  }
  if (st == SC_OK) st = sc_pg_commit(a->conn, why);
  if (st == SC_OK) {
    res->rows = a->rows + a->zero;
    res->skipped_zero_amount = a->zero;
    res->skipped_duplicates = copied - res->inserted;
    snprintf(res->min_date, sizeof(res->min_date), "%s", a->min_date);
    snprintf(res->max_date, sizeof(res->max_date), "%s", a->max_date);
  } else {
    memset(res, 0, sizeof(*res));
  }
  append_free(a);
  return st;
}
