/* scale.ingestion.v1.IngestionService: statement import, preview and the
 * record of imported files.
 *
 * An import parses the file (statement.h) and hands every row to the
 * accounts ledger's append path (ledger.h: COPY into staging, conflict-skip
 * on the fingerprint, one database transaction). The import record goes
 * 'pending' before the append and 'done' after it commits; a failed import
 * removes its record, so it leaves no trace, and a retry inserts each row
 * once. In one process the ledger is called directly; hosting ingestion
 * without accounts is refused at the call (FAILED_PRECONDITION). */
#include "ingestion.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "ledger.h"
#include "scale/accounts/v1/accounts.pb-c.h"
#include "scale/common/v1/common.pb-c.h"
#include "scale/ingestion/v1/ingestion.pb-c.h"
#include "scale/pbutil.h"
#include "scale/uuid.h"

#define MAX_LISTED_REJECTS 1000
#define DEFAULT_PREVIEW 20
#define MAX_PREVIEW 500
#define MAX_STREAM_FILE ((size_t)256 << 20)
#define DEFAULT_PAGE 50
#define MAX_PAGE 1000

/* The import parameters, common to the unary, streaming and preview calls. */
typedef struct params {
  const char *filename, *password, *account_id, *currency, *date_format;
  const Scale__Ingestion__V1__ColumnMapping *mapping;
  bool strict;
  int format;
} params_t;

static void column_of(const Scale__Ingestion__V1__ColumnRef *ref, ingest_column_t *out) {
  if (ref == NULL) return;
  if (ref->column_case == SCALE__INGESTION__V1__COLUMN_REF__COLUMN_NAME && ref->name && *ref->name) {
    out->name = ref->name;
  } else if (ref->column_case == SCALE__INGESTION__V1__COLUMN_REF__COLUMN_INDEX) {
    out->index = ref->index;
  }
}

static sc_status_t mapping_of(sc_call_t *call, const Scale__Ingestion__V1__ColumnMapping *m, ingest_mapping_t *out) {
  ingest_mapping_init(out);
  if (m == NULL) return SC_OK;
  const struct {
    const Scale__Ingestion__V1__ColumnRef *ref;
    ingest_column_t *col;
    const char *field;
  } cols[] = {{m->date_column, &out->date, "mapping.date_column"},
              {m->amount_column, &out->amount, "mapping.amount_column"},
              {m->debit_column, &out->debit, "mapping.debit_column"},
              {m->credit_column, &out->credit, "mapping.credit_column"},
              {m->description_column, &out->description, "mapping.description_column"},
              {m->merchant_column, &out->merchant, "mapping.merchant_column"},
              {m->currency_column, &out->currency, "mapping.currency_column"},
              {m->reference_column, &out->reference, "mapping.reference_column"},
              {m->payment_method_column, &out->payment_method, "mapping.payment_method_column"},
              {m->direction_column, &out->direction, "mapping.direction_column"}};
  for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
    if (cols[i].ref && cols[i].ref->column_case == SCALE__INGESTION__V1__COLUMN_REF__COLUMN_INDEX &&
        (cols[i].ref->index < 0 || cols[i].ref->index >= INGEST_MAX_COLUMNS)) {
      return sc_call_fail_field(call, cols[i].field, "column index %d is outside 0..%d", cols[i].ref->index,
                                INGEST_MAX_COLUMNS - 1);
    }
    column_of(cols[i].ref, cols[i].col);
  }
  out->amount_sign = (ingest_sign_t)m->amount_sign;
  if (m->header_line < 0) return sc_call_fail_field(call, "mapping.header_line", "must not be negative");
  out->header_line = m->header_line;
  if (m->delimiter && *m->delimiter) {
    const char *d = m->delimiter;
    char c = strcmp(d, "\\t") == 0 || strcmp(d, "tab") == 0 ? '\t' : d[0];
    if ((strlen(d) != 1 && c != '\t') || !strchr(",;\t|", c)) {
      return sc_call_fail_field(call, "mapping.delimiter", "one of ',', ';', '|' or a tab");
    }
    out->delimiter = c;
  }
  if (m->decimal_separator && *m->decimal_separator) {
    if (strcmp(m->decimal_separator, ".") != 0 && strcmp(m->decimal_separator, ",") != 0) {
      return sc_call_fail_field(call, "mapping.decimal_separator", "'.' or ','");
    }
    out->decimal_separator = m->decimal_separator[0];
  }
  if (m->sheet_name && *m->sheet_name) out->sheet_name = m->sheet_name;
  return SC_OK;
}

static sc_status_t validate(sc_call_t *call, const params_t *p, size_t len) {
  sc_status_t bad = SC_OK;
  if (len == 0) bad = sc_call_fail_field(call, "content", "empty: send the statement file's bytes");
  if (p->currency && *p->currency && !acct_currency_valid(p->currency)) {
    bad = sc_call_fail_field(call, "currency", "'%s' is not an ISO 4217 currency code (upper case, e.g. EUR)",
                             p->currency);
  }
  if (p->date_format && *p->date_format && (strlen(p->date_format) > 31 || !strchr(p->date_format, '%'))) {
    bad = sc_call_fail_field(call, "date_format", "a strftime-style format such as %%d/%%m/%%Y");
  }
  if (p->account_id && strlen(p->account_id) > 200) bad = sc_call_fail_field(call, "account_id", "longer than 200");
  if (p->filename && strlen(p->filename) > 255) bad = sc_call_fail_field(call, "filename", "longer than 255");
  return bad;
}

static void sha256_hex(const uint8_t *data, size_t len, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  static const char hex[] = "0123456789abcdef";
  EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
  for (unsigned i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[64] = '\0';
}

/* ---- the row callback ------------------------------------------------------ */

typedef struct ctx {
  sc_call_t *call;
  sc_arena_t *arena;
  const params_t *p;
  acct_append_t *append;    /* import; NULL for a preview */
  sc_fp_counter_t *counter; /* preview fingerprints */
  Scale__Ingestion__V1__RejectedRow **rejected;
  size_t n_rejected;
  int64_t rejected_count;
  Scale__Ingestion__V1__ParsedRow **rows; /* preview */
  size_t n_rows, max_rows;
  int64_t zero_rows;
  sc_status_t st; /* what stopped the parse, if not the parser */
  sc_err_t why;
} ctx_t;

static int reject(ctx_t *c, int32_t line, const char *reason, const char *column) {
  c->rejected_count++;
  if (c->p->strict) {
    c->st = sc_call_fail_field(c->call, "content", "line %d: %s (strict: the file is rejected)", (int)line, reason);
    return 1;
  }
  if (c->n_rejected < MAX_LISTED_REJECTS) {
    if (c->rejected == NULL) c->rejected = sc_arena_calloc(c->arena, MAX_LISTED_REJECTS, sizeof(*c->rejected));
    Scale__Ingestion__V1__RejectedRow *r = sc_arena_alloc(c->arena, sizeof(*r));
    if (c->rejected && r) {
      scale__ingestion__v1__rejected_row__init(r);
      r->line = line;
      r->reason = sc_arena_strdup(c->arena, reason);
      r->column = (char *)(column ? column : "");
      c->rejected[c->n_rejected++] = r;
    }
  }
  return 0;
}

static int on_row(void *ctx_, int32_t line, const ingest_row_t *row, const char *reason) {
  ctx_t *c = ctx_;
  if (row == NULL) return reject(c, line, reason ? reason : "unreadable row", NULL);
  const char *currency = row->currency ? row->currency : c->p->currency;
  if (currency == NULL || *currency == '\0') {
    c->st = sc_call_fail_field(c->call, "currency",
                               "the file has no currency column: pass the statement's currency (e.g. INR)");
    return 1;
  }
  acct_new_txn_t t = {.line = line,
                      .account_id = c->p->account_id,
                      .date = row->date,
                      .amount_minor = row->amount_minor,
                      .currency = currency,
                      .merchant = row->merchant,
                      .description = row->description,
                      .payment_method = row->payment_method,
                      .reference = row->reference,
                      .bank_txn_id = row->bank_txn_id};
  const char *bad = NULL;
  sc_fp_t fp;
  sc_status_t st;
  if (c->append != NULL) {
    st = acct_append_row(c->append, &t, &bad, &c->why);
  } else {
    /* Preview: fingerprint as the import would, keep the first rows. */
    if (row->amount_minor == 0) c->zero_rows++;
    sc_fp_input_t in = acct_fp_input(&t);
    st = sc_fp_compute_next(c->counter, &in, c->arena, &fp, &bad);
  }
  if (st == SC_INVALID_ARGUMENT) {
    char reason_buf[96];
    snprintf(reason_buf, sizeof(reason_buf), "invalid %s", bad ? bad : "value");
    return reject(c, line, reason_buf, bad);
  }
  if (st != SC_OK) {
    c->st = st;
    return 1;
  }
  if (c->append != NULL) return 0;
  if (c->n_rows < c->max_rows) {
    Scale__Ingestion__V1__ParsedRow *r = sc_arena_alloc(c->arena, sizeof(*r));
    if (r == NULL) {
      c->st = SC_RESOURCE_EXHAUSTED;
      return 1;
    }
    scale__ingestion__v1__parsed_row__init(r);
    r->line = line;
    r->date = sc_arena_strdup(c->arena, row->date);
    r->amount_minor = row->amount_minor;
    char cur[4] = {0};
    for (int i = 0, k = 0; currency[i] && k < 3; i++) {
      char ch = currency[i];
      if (ch == ' ' || ch == '\t') continue;
      cur[k++] = (char)((ch >= 'a' && ch <= 'z') ? ch - 'a' + 'A' : ch);
    }
    r->currency = sc_arena_strdup(c->arena, cur);
    r->merchant = sc_arena_strdup(c->arena, row->merchant ? row->merchant : "");
    r->description = sc_arena_strdup(c->arena, row->description ? row->description : "");
    r->payment_method = sc_arena_strdup(c->arena, row->payment_method ? row->payment_method : "");
    r->reference = sc_arena_strdup(c->arena, row->reference ? row->reference : "");
    r->bank_transaction_id = sc_arena_strdup(c->arena, row->bank_txn_id ? row->bank_txn_id : "");
    r->fingerprint = sc_arena_strdup(c->arena, fp.hex);
    c->rows[c->n_rows++] = r;
  }
  return 0; /* the whole file is read: counts and rejects cover all of it */
}

/* A file-level parse failure, as the client should see it. */
static sc_status_t parse_fail(sc_call_t *call, sc_status_t st, const ingest_result_t *res, const sc_err_t *err) {
  if (res->date_ambiguous) return sc_call_fail_field(call, "date_format", "%s", err->msg);
  if (st == SC_FAILED_PRECONDITION && strstr(err->msg, "password"))
    return sc_call_fail_field(call, "password", "%s", err->msg);
  if (st == SC_INVALID_ARGUMENT || st == SC_FAILED_PRECONDITION || st == SC_DATA_LOSS || st == SC_RESOURCE_EXHAUSTED) {
    return sc_call_fail(call, st == SC_DATA_LOSS ? SC_INVALID_ARGUMENT : st, "%s", err->msg);
  }
  return sc_call_fail_internal(call, SC_INTERNAL, "the statement could not be read", err->msg);
}

/* ---- import ----------------------------------------------------------------- */

static void fill_from_record(sc_arena_t *a, PGresult *r, Scale__Ingestion__V1__ImportStatementResponse *resp) {
  resp->import_id = sc_arena_strdup(a, PQgetvalue(r, 0, 0));
  resp->inserted = (int32_t)strtol(PQgetvalue(r, 0, 1), NULL, 10);
  resp->skipped_duplicates = (int32_t)strtol(PQgetvalue(r, 0, 2), NULL, 10);
  resp->skipped_zero_amount = (int32_t)strtol(PQgetvalue(r, 0, 3), NULL, 10);
  resp->rejected_count = (int32_t)strtol(PQgetvalue(r, 0, 4), NULL, 10);
  resp->rows_read = (int32_t)strtol(PQgetvalue(r, 0, 5), NULL, 10);
  resp->detected_format = (Scale__Ingestion__V1__StatementFormat)strtol(PQgetvalue(r, 0, 6), NULL, 10);
}

#define RECORD_COLUMNS "id::text, inserted, skipped_duplicates, skipped_zero_amount, rejected_count, rows_read, format"

static void forget_pending(ingest_service_t *s, const char *import_id) {
  sc_pg_conn_t *conn = NULL;
  sc_err_t why;
  if (sc_pg_acquire(s->pool, &conn, &why) != SC_OK) return; /* a later import sweeps stale records */
  const char *p[] = {import_id};
  sc_pg_exec(conn, NULL, "DELETE FROM ingestion.imports WHERE id = $1::uuid AND status = 'pending'", 1, p, NULL, &why);
  sc_pg_release(conn);
}

static sc_status_t run_import(sc_call_t *call, ingest_service_t *s, const params_t *p, const uint8_t *data, size_t len,
                              Scale__Ingestion__V1__ImportStatementResponse *resp) {
  const char *uid = sc_call_user_id(call);
  if (uid == NULL) return sc_call_fail(call, SC_UNAUTHENTICATED, "no authenticated user");
  if (s->pool == NULL) {
    return sc_call_fail(call, SC_FAILED_PRECONDITION, "imports need the accounts service in this process");
  }
  sc_status_t st = validate(call, p, len);
  if (st != SC_OK) return st;
  ingest_mapping_t mapping;
  st = mapping_of(call, p->mapping, &mapping);
  if (st != SC_OK) return st;
  sc_arena_t *a = sc_call_arena(call);
  char sha[65];
  sha256_hex(data, len, sha);
  resp->sha256 = sc_arena_strdup(a, sha);
  resp->account_id = (char *)(p->account_id ? p->account_id : "");

  /* The same bytes imported before: nothing new is written. */
  sc_pg_conn_t *conn = NULL;
  sc_err_t why = {{0}};
  st = sc_pg_acquire(s->pool, &conn, &why);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  PGresult *r = NULL;
  const char *q1[] = {uid, sha};
  st = sc_pg_exec(conn, a,
                  "SELECT " RECORD_COLUMNS " FROM ingestion.imports"
                  " WHERE user_id = $1::uuid AND sha256 = $2 AND status = 'done'",
                  2, q1, &r, &why);
  if (st == SC_OK && PQntuples(r) == 1) {
    sc_pg_release(conn);
    fill_from_record(a, r, resp);
    resp->already_imported = 1;
    return SC_OK;
  }
  char size[24], fmt[8];
  snprintf(size, sizeof(size), "%zu", len);
  snprintf(fmt, sizeof(fmt), "%d", p->format);
  const char *q2[] = {uid, p->filename ? p->filename : "", size, sha, p->account_id ? p->account_id : "", fmt};
  if (st == SC_OK) {
    /* Records of imports that died mid-way (the process, not the request). */
    st = sc_pg_exec(conn, NULL,
                    "DELETE FROM ingestion.imports WHERE user_id = $1::uuid AND status = 'pending'"
                    " AND created_at < now() - interval '1 hour'",
                    1, q1, NULL, &why);
  }
  if (st == SC_OK) {
    st = sc_pg_exec(conn, a,
                    "INSERT INTO ingestion.imports (user_id, filename, size_bytes, sha256, account_id, format)"
                    " VALUES ($1::uuid, $2, $3::bigint, $4, $5, $6::smallint) RETURNING id::text",
                    6, q2, &r, &why);
  }
  sc_pg_release(conn);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  const char *import_id = sc_arena_strdup(a, PQgetvalue(r, 0, 0));

  ctx_t c = {.call = call, .arena = a, .p = p, .st = SC_OK};
  st = acct_append_begin(s->pool, uid, ACCT_SOURCE_IMPORT, import_id, &c.append, &why);
  if (st != SC_OK) {
    forget_pending(s, import_id);
    return acct_db_fail(call, st, &why);
  }
  ingest_opts_t opts = {.default_currency = p->currency && *p->currency ? p->currency : NULL,
                        .date_format = p->date_format && *p->date_format ? p->date_format : NULL,
                        .mapping = &mapping,
                        .password = p->password && *p->password ? p->password : NULL};
  ingest_result_t res;
  memset(&res, 0, sizeof(res));
  sc_err_t perr = {{0}};
  st = ingest_parse(data, len, p->filename, (ingest_format_t)p->format, &opts, a, on_row, &c, &res, &perr);
  if (st != SC_OK || c.st != SC_OK) {
    acct_append_abort(c.append);
    forget_pending(s, import_id);
    if (c.st != SC_OK) {
      if (sc_call_status_message(call) != NULL) return c.st; /* the callback said why */
      return acct_db_fail(call, c.st, &c.why);
    }
    return parse_fail(call, st, &res, &perr);
  }
  acct_append_result_t ar;
  st = acct_append_finish(c.append, true, a, &ar, &why);
  if (st != SC_OK) {
    forget_pending(s, import_id);
    return acct_db_fail(call, st, &why);
  }

  char counts[6][24];
  snprintf(counts[0], sizeof(counts[0]), "%d", (int)res.rows_read);
  snprintf(counts[1], sizeof(counts[1]), "%lld", (long long)ar.inserted);
  snprintf(counts[2], sizeof(counts[2]), "%lld", (long long)ar.skipped_duplicates);
  snprintf(counts[3], sizeof(counts[3]), "%lld", (long long)ar.skipped_zero_amount);
  snprintf(counts[4], sizeof(counts[4]), "%lld", (long long)c.rejected_count);
  snprintf(counts[5], sizeof(counts[5]), "%d", (int)res.format);
  const char *q3[] = {import_id,
                      counts[0],
                      counts[1],
                      counts[2],
                      counts[3],
                      counts[4],
                      counts[5],
                      res.encrypted ? "true" : "false",
                      res.date_format,
                      ar.min_date[0] ? ar.min_date : NULL,
                      ar.max_date[0] ? ar.max_date : NULL};
  st = sc_pg_acquire(s->pool, &conn, &why);
  if (st == SC_OK) {
    st = sc_pg_exec(conn, NULL,
                    "UPDATE ingestion.imports SET status = 'done', rows_read = $2::int, inserted = $3::int,"
                    " skipped_duplicates = $4::int, skipped_zero_amount = $5::int, rejected_count = $6::int,"
                    " format = $7::smallint, encrypted = $8::boolean, date_format = $9,"
                    " min_date = $10::date, max_date = $11::date WHERE id = $1::uuid",
                    11, q3, NULL, &why);
    sc_pg_release(conn);
  }
  if (st == SC_ALREADY_EXISTS) {
    /* The same file finished importing meanwhile: its rows were deduplicated
     * against it, so ours added nothing the other did not. */
    forget_pending(s, import_id);
    resp->already_imported = 1;
  } else if (st != SC_OK) {
    /* The rows are committed; only the record's counts are missing, and a
     * retry of the same file finds every row already there. */
    return acct_db_fail(call, st, &why);
  }

  resp->import_id = (char *)import_id;
  resp->inserted = (int32_t)ar.inserted;
  resp->skipped_duplicates = (int32_t)ar.skipped_duplicates;
  resp->skipped_zero_amount = (int32_t)ar.skipped_zero_amount;
  resp->rejected = c.rejected;
  resp->n_rejected = c.n_rejected;
  resp->rejected_count = (int32_t)c.rejected_count;
  resp->rows_read = res.rows_read;
  resp->detected_format = (Scale__Ingestion__V1__StatementFormat)res.format;
  resp->date_format = sc_arena_strdup(a, res.date_format);
  resp->encrypted = res.encrypted != 0;
  if (ar.min_date[0]) {
    Scale__Common__V1__DateRange *dr = sc_arena_alloc(a, sizeof(*dr));
    if (dr) {
      scale__common__v1__date_range__init(dr);
      dr->from_date = sc_arena_strdup(a, ar.min_date);
      dr->to_date = sc_arena_strdup(a, ar.max_date);
      resp->date_range = dr;
    }
  }
  if (ar.n_dups > 0) {
    resp->possible_duplicates = sc_arena_calloc(a, ar.n_dups, sizeof(*resp->possible_duplicates));
    for (size_t i = 0; resp->possible_duplicates && i < ar.n_dups; i++) {
      Scale__Ingestion__V1__PossibleDuplicate *d = sc_arena_alloc(a, sizeof(*d));
      if (d == NULL) break;
      scale__ingestion__v1__possible_duplicate__init(d);
      const acct_possible_dup_t *x = &ar.dups[i];
      d->line = x->line;
      d->transaction_id = sc_arena_strdup(a, x->transaction_id);
      d->existing_transaction_id = sc_arena_strdup(a, x->existing_id);
      d->date = sc_arena_strdup(a, x->date);
      d->existing_date = sc_arena_strdup(a, x->existing_date);
      d->amount_minor = x->amount_minor;
      d->currency = sc_arena_strdup(a, x->currency);
      d->description = (char *)x->description;
      d->existing_description = (char *)x->existing_description;
      resp->possible_duplicates[resp->n_possible_duplicates++] = d;
    }
  }
  return SC_OK;
}

static sc_status_t import_statement(sc_call_t *call, const ProtobufCMessage *req_, ProtobufCMessage **resp_,
                                    void *svc) {
  const Scale__Ingestion__V1__ImportStatementRequest *req = (const void *)req_;
  params_t p = {req->filename,    req->password, req->account_id, req->currency,
                req->date_format, req->mapping,  req->strict,     (int)req->format};
  Scale__Ingestion__V1__ImportStatementResponse *resp = sc_arena_alloc(sc_call_arena(call), sizeof(*resp));
  if (resp == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  scale__ingestion__v1__import_statement_response__init(resp);
  sc_status_t st = run_import(call, svc, &p, req->content.data, req->content.len, resp);
  if (st == SC_OK) *resp_ = &resp->base;
  return st;
}

/* A header, then chunks: the file is gathered (bounded), then imported. */
static sc_status_t import_statement_stream(sc_call_t *call, ProtobufCMessage **resp_, void *svc) {
  sc_arena_t *a = sc_call_arena(call);
  params_t p = {0};
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  bool have_header = false;
  sc_status_t st = SC_OK;
  for (;;) {
    ProtobufCMessage *m = NULL;
    st = sc_call_recv(call, &m);
    if (st != SC_OK) goto out;
    if (m == NULL) break;
    const Scale__Ingestion__V1__ImportStatementStreamRequest *r = (const void *)m;
    if (r->part_case == SCALE__INGESTION__V1__IMPORT_STATEMENT_STREAM_REQUEST__PART_HEADER) {
      if (have_header || len > 0) {
        st = sc_call_fail_field(call, "header", "exactly one header, before the first chunk");
        goto out;
      }
      const Scale__Ingestion__V1__ImportStatementHeader *h = r->header;
      /* The message is reset by the next receive: keep copies. */
      Scale__Ingestion__V1__ColumnMapping *mcopy = NULL;
      if (h->mapping) {
        size_t n = protobuf_c_message_get_packed_size(&h->mapping->base);
        uint8_t *tmp = sc_arena_alloc(a, n ? n : 1);
        ProtobufCAllocator al = sc_arena_pb_allocator(a);
        if (tmp) protobuf_c_message_pack(&h->mapping->base, tmp);
        mcopy = tmp ? scale__ingestion__v1__column_mapping__unpack(&al, n, tmp) : NULL;
      }
      p = (params_t){sc_arena_strdup(a, h->filename),
                     sc_arena_strdup(a, h->password),
                     sc_arena_strdup(a, h->account_id),
                     sc_arena_strdup(a, h->currency),
                     sc_arena_strdup(a, h->date_format),
                     mcopy,
                     h->strict,
                     (int)h->format};
      have_header = true;
      if (h->content_length < 0 || (uint64_t)h->content_length > MAX_STREAM_FILE) {
        st = sc_call_fail_field(call, "header.content_length", "files over %zu MiB are not accepted",
                                MAX_STREAM_FILE >> 20);
        goto out;
      }
      if (h->content_length > 0) {
        cap = (size_t)h->content_length;
        buf = malloc(cap);
        if (buf == NULL) {
          st = sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
          goto out;
        }
      }
    } else if (r->part_case == SCALE__INGESTION__V1__IMPORT_STATEMENT_STREAM_REQUEST__PART_CHUNK) {
      if (!have_header) {
        st = sc_call_fail_field(call, "header", "the first message must be the header");
        goto out;
      }
      if (r->chunk.len > MAX_STREAM_FILE - len) {
        st = sc_call_fail(call, SC_PAYLOAD_TOO_LARGE, "files over %zu MiB are not accepted", MAX_STREAM_FILE >> 20);
        goto out;
      }
      if (len + r->chunk.len > cap) {
        size_t ncap = cap ? cap : ((size_t)1 << 20);
        while (ncap < len + r->chunk.len)
          ncap *= 2;
        if (ncap > MAX_STREAM_FILE) ncap = MAX_STREAM_FILE;
        uint8_t *nb = realloc(buf, ncap);
        if (nb == NULL) {
          st = sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
          goto out;
        }
        buf = nb;
        cap = ncap;
      }
      memcpy(buf + len, r->chunk.data, r->chunk.len);
      len += r->chunk.len;
    }
  }
  if (!have_header) {
    st = sc_call_fail_field(call, "header", "the stream carried no header");
    goto out;
  }
  {
    Scale__Ingestion__V1__ImportStatementResponse tmp;
    scale__ingestion__v1__import_statement_response__init(&tmp);
    st = run_import(call, svc, &p, buf, len, &tmp);
    if (st != SC_OK) goto out;
    /* Same fields, same numbers: a different message type by lint's rule. */
    Scale__Ingestion__V1__ImportStatementStreamResponse *resp = sc_arena_alloc(a, sizeof(*resp));
    if (resp == NULL) {
      st = sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
      goto out;
    }
    size_t n = scale__ingestion__v1__import_statement_response__get_packed_size(&tmp);
    uint8_t *bytes = sc_arena_alloc(a, n ? n : 1);
    ProtobufCAllocator al = sc_arena_pb_allocator(a);
    if (bytes) scale__ingestion__v1__import_statement_response__pack(&tmp, bytes);
    Scale__Ingestion__V1__ImportStatementStreamResponse *copy =
        bytes ? scale__ingestion__v1__import_statement_stream_response__unpack(&al, n, bytes) : NULL;
    if (copy == NULL) {
      st = sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
      goto out;
    }
    *resp_ = &copy->base;
  }
out:
  free(buf);
  return st;
}

/* ---- preview ---------------------------------------------------------------- */

static sc_status_t parse_statement(sc_call_t *call, const ProtobufCMessage *req_, ProtobufCMessage **resp_, void *svc) {
  ingest_service_t *s = svc;
  const Scale__Ingestion__V1__ParseStatementRequest *req = (const void *)req_;
  params_t p = {req->filename,    req->password, req->account_id, req->currency,
                req->date_format, req->mapping,  false,           (int)req->format};
  sc_status_t st = validate(call, &p, req->content.len);
  if (req->preview_rows < 0) st = sc_call_fail_field(call, "preview_rows", "must not be negative");
  if (st != SC_OK) return st;
  ingest_mapping_t mapping;
  st = mapping_of(call, p.mapping, &mapping);
  if (st != SC_OK) return st;
  sc_arena_t *a = sc_call_arena(call);
  Scale__Ingestion__V1__ParseStatementResponse *resp = sc_arena_alloc(a, sizeof(*resp));
  if (resp == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  scale__ingestion__v1__parse_statement_response__init(resp);
  ctx_t c = {.call = call, .arena = a, .p = &p, .st = SC_OK};
  c.max_rows = req->preview_rows == 0            ? DEFAULT_PREVIEW
               : req->preview_rows > MAX_PREVIEW ? MAX_PREVIEW
                                                 : (size_t)req->preview_rows;
  c.rows = sc_arena_calloc(a, c.max_rows, sizeof(*c.rows));
  c.counter = sc_fp_counter_new();
  if (c.rows == NULL || c.counter == NULL) {
    sc_fp_counter_free(c.counter);
    return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  }
  ingest_opts_t opts = {.default_currency = p.currency && *p.currency ? p.currency : "XXX",
                        .date_format = p.date_format && *p.date_format ? p.date_format : NULL,
                        .mapping = &mapping,
                        .password = p.password && *p.password ? p.password : NULL};
  if (p.currency == NULL || *p.currency == '\0') p.currency = "XXX"; /* preview without a currency: "XXX" */
  ingest_result_t res;
  memset(&res, 0, sizeof(res));
  sc_err_t perr = {{0}};
  st = ingest_parse(req->content.data, req->content.len, p.filename, (ingest_format_t)p.format, &opts, a, on_row, &c,
                    &res, &perr);
  sc_fp_counter_free(c.counter);
  if (c.st != SC_OK) return sc_call_status_message(call) ? c.st : sc_call_fail(call, c.st, "preview failed");
  if (st != SC_OK && !res.date_ambiguous) return parse_fail(call, st, &res, &perr);
  char sha[65];
  sha256_hex(req->content.data, req->content.len, sha);
  resp->sha256 = sc_arena_strdup(a, sha);
  resp->detected_format = (Scale__Ingestion__V1__StatementFormat)res.format;
  resp->date_format = sc_arena_strdup(a, res.date_format);
  resp->date_format_ambiguous = res.date_ambiguous != 0;
  if (res.n_date_candidates > 0) {
    resp->date_format_candidates = sc_arena_calloc(a, (size_t)res.n_date_candidates, sizeof(char *));
    for (int i = 0; resp->date_format_candidates && i < res.n_date_candidates; i++) {
      resp->date_format_candidates[resp->n_date_format_candidates++] = sc_arena_strdup(a, res.date_candidates[i]);
    }
  }
  /* res lives on this stack frame: copy what the response points to. */
  if (res.n_columns > 0) {
    resp->columns = sc_arena_calloc(a, (size_t)res.n_columns, sizeof(char *));
    for (int i = 0; resp->columns && i < res.n_columns; i++) {
      resp->columns[resp->n_columns++] = sc_arena_strdup(a, res.columns[i] ? res.columns[i] : "");
    }
  }
  resp->rows = c.rows;
  resp->n_rows = c.n_rows;
  resp->rows_read = res.rows_read;
  resp->zero_amount_rows = (int32_t)c.zero_rows;
  resp->rejected = c.rejected;
  resp->n_rejected = c.n_rejected;
  resp->rejected_count = (int32_t)c.rejected_count;
  resp->encrypted = res.encrypted != 0;
  /* Tell the user when these bytes were imported before (best effort). */
  const char *uid = sc_call_user_id(call);
  sc_pg_conn_t *conn = NULL;
  sc_err_t why;
  if (s->pool && uid && sc_pg_acquire(s->pool, &conn, &why) == SC_OK) {
    const char *q[] = {uid, sha};
    PGresult *r = NULL;
    if (sc_pg_exec(
            conn, a,
            "SELECT id::text FROM ingestion.imports WHERE user_id = $1::uuid AND sha256 = $2 AND status = 'done'", 2, q,
            &r, &why) == SC_OK &&
        PQntuples(r) == 1) {
      resp->previous_import_id = sc_arena_strdup(a, PQgetvalue(r, 0, 0));
    }
    sc_pg_release(conn);
  }
  *resp_ = &resp->base;
  return SC_OK;
}

/* ---- the record of imports ---------------------------------------------------- */

static sc_status_t list_uploaded_files(sc_call_t *call, const ProtobufCMessage *req_, ProtobufCMessage **resp_,
                                       void *svc) {
  ingest_service_t *s = svc;
  const Scale__Ingestion__V1__ListUploadedFilesRequest *req = (const void *)req_;
  const char *uid = sc_call_user_id(call);
  if (uid == NULL) return sc_call_fail(call, SC_UNAUTHENTICATED, "no authenticated user");
  if (req->page_size < 0) return sc_call_fail_field(call, "page_size", "must not be negative");
  sc_arena_t *a = sc_call_arena(call);
  int page = req->page_size == 0 ? DEFAULT_PAGE : req->page_size > MAX_PAGE ? MAX_PAGE : req->page_size;
  const char *filters = sc_arena_printf(a, "files\x1f%s\x1f%s", uid, req->account_id ? req->account_id : "");
  const char *cur_us = NULL, *cur_id = NULL;
  if (req->page_token && *req->page_token) {
    char *cursor = filters ? sc_pagetoken_decode(&s->page_key, filters, req->page_token, a) : NULL;
    char *sep = cursor ? strchr(cursor, '|') : NULL;
    if (sep == NULL) {
      return sc_call_fail_field(call, "page_token",
                                "invalid: modified, from another server, or used with different filters");
    }
    *sep = '\0';
    cur_us = cursor;
    cur_id = sep + 1;
  }
  char limit[16];
  snprintf(limit, sizeof(limit), "%d", page + 1);
  const char *params[] = {uid, req->account_id && *req->account_id ? req->account_id : NULL, cur_us, cur_id, limit};
  sc_pg_conn_t *conn = NULL;
  sc_err_t why = {{0}};
  sc_status_t st = sc_pg_acquire(s->pool, &conn, &why);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  PGresult *r = NULL;
  st = sc_pg_exec(conn, a,
                  "SELECT id::text, filename, size_bytes, sha256, format, account_id, rows_read, inserted,"
                  "       skipped_duplicates, skipped_zero_amount, rejected_count, encrypted,"
                  "       coalesce(min_date::text, ''), coalesce(max_date::text, ''),"
                  "       (extract(epoch FROM created_at) * 1000000)::bigint"
                  "  FROM ingestion.imports"
                  " WHERE user_id = $1::uuid AND status = 'done' AND ($2::text IS NULL OR account_id = $2)"
                  "   AND ($3::bigint IS NULL OR ((extract(epoch FROM created_at) * 1000000)::bigint, id)"
                  "        < ($3::bigint, $4::uuid))"
                  " ORDER BY created_at DESC, id DESC LIMIT $5::int",
                  5, params, &r, &why);
  sc_pg_release(conn);
  if (st != SC_OK) return acct_db_fail(call, st, &why);
  Scale__Ingestion__V1__ListUploadedFilesResponse *resp = sc_arena_alloc(a, sizeof(*resp));
  if (resp == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  scale__ingestion__v1__list_uploaded_files_response__init(resp);
  int n = PQntuples(r), shown = n > page ? page : n;
  resp->files = sc_arena_calloc(a, (size_t)(shown ? shown : 1), sizeof(*resp->files));
  for (int i = 0; resp->files && i < shown; i++) {
    Scale__Ingestion__V1__UploadedFile *f = sc_arena_alloc(a, sizeof(*f));
    if (f == NULL) break;
    scale__ingestion__v1__uploaded_file__init(f);
    f->import_id = sc_arena_strdup(a, PQgetvalue(r, i, 0));
    f->filename = sc_arena_strdup(a, PQgetvalue(r, i, 1));
    f->size_bytes = strtoll(PQgetvalue(r, i, 2), NULL, 10);
    f->sha256 = sc_arena_strdup(a, PQgetvalue(r, i, 3));
    f->format = (Scale__Ingestion__V1__StatementFormat)strtol(PQgetvalue(r, i, 4), NULL, 10);
    f->account_id = sc_arena_strdup(a, PQgetvalue(r, i, 5));
    f->rows_read = (int32_t)strtol(PQgetvalue(r, i, 6), NULL, 10);
    f->inserted = (int32_t)strtol(PQgetvalue(r, i, 7), NULL, 10);
    f->skipped_duplicates = (int32_t)strtol(PQgetvalue(r, i, 8), NULL, 10);
    f->skipped_zero_amount = (int32_t)strtol(PQgetvalue(r, i, 9), NULL, 10);
    f->rejected_count = (int32_t)strtol(PQgetvalue(r, i, 10), NULL, 10);
    f->encrypted = PQgetvalue(r, i, 11)[0] == 't';
    if (PQgetvalue(r, i, 12)[0]) {
      Scale__Common__V1__DateRange *dr = sc_arena_alloc(a, sizeof(*dr));
      if (dr) {
        scale__common__v1__date_range__init(dr);
        dr->from_date = sc_arena_strdup(a, PQgetvalue(r, i, 12));
        dr->to_date = sc_arena_strdup(a, PQgetvalue(r, i, 13));
        f->date_range = dr;
      }
    }
    f->created_at = sc_timestamp_from_us(a, PQgetvalue(r, i, 14));
    resp->files[resp->n_files++] = f;
  }
  if (n > page && resp->n_files == (size_t)shown) {
    const char *cursor = sc_arena_printf(a, "%s|%s", PQgetvalue(r, shown - 1, 14), PQgetvalue(r, shown - 1, 0));
    resp->next_page_token = cursor ? sc_pagetoken_encode(&s->page_key, filters, cursor, a) : NULL;
  }
  *resp_ = &resp->base;
  return SC_OK;
}

static const sc_rpc_method_t methods[] = {
    {.name = "ImportStatement", .kind = SC_RPC_UNARY, .unary = import_statement},
    {.name = "ImportStatementStream", .kind = SC_RPC_CLIENT_STREAMING, .client_stream = import_statement_stream},
    {.name = "ParseStatement", .kind = SC_RPC_UNARY, .unary = parse_statement},
    {.name = "ListUploadedFiles", .kind = SC_RPC_UNARY, .unary = list_uploaded_files},
};

sc_rpc_service_t ingest_service(ingest_service_t *s) {
  sc_rpc_service_t svc = {
      .descriptor = &scale__ingestion__v1__ingestion_service__descriptor,
      .methods = methods,
      .n_methods = sizeof(methods) / sizeof(methods[0]),
      .data = s,
  };
  return svc;
}
