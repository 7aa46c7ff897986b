/* libFuzzer target for CSV statements (ingest_parse_csv and the table engine
 * behind it), and for the amount and date helpers on the same bytes.
 *
 * Input: a CSV file. When the first byte is below 0x08 it is not part of the
 * file but picks options: bit 0 a date_format hint, bit 1 a mapping by
 * index (date 0, amount 1, description 2), bit 2 positive-is-out, and
 * together (7) a ';' delimiter with ',' decimals and a 3-row preview.
 *
 * Beyond the sanitizers' findings it checks what callers rely on: every
 * callback is a row or a reason, never both; lines rise strictly and stay
 * within the file; dates are real YYYY-MM-DD dates; strings are UTF-8; a
 * failure says why. For the helpers: an amount that parses prints back as
 * a plain decimal that parses to the same value, a date that parses reads
 * back as itself in ISO form, and the fast numeric date reader agrees with
 * the general one. Seeds: tests/fuzz/corpus/csv/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statement.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_ctx {
  int32_t last_line, max_line;
} fuzz_ctx_t;

static void check_utf8(const char *s) {
  if (s == NULL) return;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned char c = *p;
    size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (k == 0 || (k == 2 && c < 0xC2) || c > 0xF4) abort();
    for (size_t i = 1; i < k; i++)
      if ((p[i] & 0xC0) != 0x80) abort();
    p += k;
  }
}

static void check_date(const char *date) {
  char again[11];
  if (strlen(date) != 10 || ingest_date_parse(date, "%Y-%m-%d", again) != 0 || strcmp(again, date) != 0) abort();
}

static int on_row(void *vctx, int32_t line, const ingest_row_t *row, const char *reason) {
  fuzz_ctx_t *c = vctx;
  if (line < 1 || line > c->max_line || line <= c->last_line) abort();
  c->last_line = line;
  if ((row == NULL) == (reason == NULL)) abort();
  if (row == NULL) {
    if (reason[0] == '\0') abort();
    check_utf8(reason);
    return 0;
  }
  if (row->line != line) abort();
  check_date(row->date);
  if (row->currency != NULL && strlen(row->currency) != 3) abort();
  check_utf8(row->merchant);
  check_utf8(row->description);
  check_utf8(row->payment_method);
  check_utf8(row->reference);
  if (row->bank_txn_id != NULL) abort();
  return 0;
}

/* The helpers on a prefix of the input as a string. */
static void helpers(const uint8_t *data, size_t size) {
  char s[65];
  size_t n = size < 64 ? size : 64;
  memcpy(s, data, n);
  s[n] = '\0';
  static const char dec[] = {0, '.', ','};
  for (int e = 0; e <= 4; e++) {
    for (size_t k = 0; k < sizeof dec; k++) {
      int64_t v = 0;
      const char *why = NULL;
      if (ingest_parse_amount(s, dec[k], e, &v, &why) != 0) {
        if (why == NULL) abort();
        continue;
      }
      /* print as a plain decimal and read it back */
      char plain[40];
      uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
      uint64_t scale = 1;
      for (int i = 0; i < e; i++)
        scale *= 10;
      if (e > 0)
        snprintf(plain, sizeof plain, "%s%llu.%0*llu", v < 0 ? "-" : "", (unsigned long long)(mag / scale), e,
                 (unsigned long long)(mag % scale));
      else
        snprintf(plain, sizeof plain, "%s%llu", v < 0 ? "-" : "", (unsigned long long)mag);
      int64_t w = 0;
      if (ingest_parse_amount(plain, '.', e, &w, &why) != 0 || w != v) abort();
    }
  }
  static const char *const fmts[] = {"%d/%m/%Y", "%m/%d/%y", "%Y-%m-%d", "%d %b %Y", "%b %d, %Y", "%Y%m%d"};
  for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++) {
    char out[11];
    if (ingest_date_parse(s, fmts[k], out) == 0) check_date(out);
  }
  /* %e never takes the fast numeric path and reads %d's digits alike (it
   * also takes a blank before them, so texts with blanks are left out):
   * the two readings must agree */
  static const char *const pairs[][2] = {
      {"%d/%m/%Y", "%e/%m/%Y"}, {"%Y-%m-%d", "%Y-%m-%e"}, {"%m/%d/%y", "%m/%e/%y"}, {"%d.%m.%Y", "%e.%m.%Y"}};
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0] && strpbrk(s, " \t") == NULL; k++) {
    char o1[11], o2[11];
    const char *w1 = NULL, *w2 = NULL;
    int r1 = ingest_date_parse_why(s, pairs[k][0], o1, &w1), r2 = ingest_date_parse_why(s, pairs[k][1], o2, &w2);
    if (r1 != r2 || (r1 == 0 && strcmp(o1, o2) != 0) || (r1 != 0 && strcmp(w1, w2) != 0)) abort();
  }
  const char *vals[1] = {s};
  char fmt[32], cands[INGEST_MAX_DATE_CANDIDATES][32];
  int nc = 0;
  int r = ingest_date_infer(vals, 1, fmt, cands, &nc);
  if (r == 1) {
    char out[11];
    if (ingest_date_parse(s, fmt, out) != 0) abort();
  } else if (r == 0 && (nc < 2 || nc > INGEST_MAX_DATE_CANDIDATES)) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned flags = 0;
  if (size > 0 && data[0] < 0x08) {
    flags = data[0];
    data++;
    size--;
  }
  helpers(data, size);

  fuzz_ctx_t c = {.last_line = 0, .max_line = 1};
  for (size_t i = 0; i < size; i++)
    if (data[i] == '\n' || (data[i] == '\r' && (i + 1 == size || data[i + 1] != '\n'))) c.max_line++;
  ingest_mapping_t m;
  ingest_mapping_init(&m);
  ingest_opts_t opts;
  memset(&opts, 0, sizeof opts);
  opts.mapping = &m;
  opts.default_currency = "EUR";
  if (flags == 7) {
    m.delimiter = ';';
    m.decimal_separator = ',';
    opts.max_rows = 3;
  } else {
    if (flags & 1) opts.date_format = "%d/%m/%Y";
    if (flags & 2) {
      m.date.index = 0;
      m.amount.index = 1;
      m.description.index = 2;
    }
    if (flags & 4) m.amount_sign = INGEST_SIGN_POSITIVE_IS_OUT;
  }
  sc_arena_t *arena = sc_arena_new(16 << 20);
  if (arena == NULL) return 0;
  ingest_result_t res;
  sc_err_t err;
  err.msg[0] = '\0';
  sc_status_t st = ingest_parse_csv(data, size, &opts, arena, on_row, &c, &res, &err);
  if (st != SC_OK) {
    if (st != SC_INVALID_ARGUMENT && st != SC_RESOURCE_EXHAUSTED) abort();
    if (err.msg[0] == '\0') abort();
  } else {
    if (res.format != INGEST_FORMAT_CSV || res.rows_read < 0) abort();
    if (opts.max_rows > 0 && res.rows_read > opts.max_rows) abort();
    for (int i = 0; i < res.n_columns; i++)
      if (res.columns[i] == NULL) abort();
  }
  if (res.date_ambiguous && (st == SC_OK || res.n_date_candidates < 2)) abort();
  sc_arena_free(arena);
  return 0;
}
