/* libFuzzer target for the XLSX parser (ingest_parse_xlsx): the ZIP with its
 * limits, the workbook's XML parts, the cell store and the table engine fed
 * from it. Besides the sanitizers' findings it checks what every caller
 * relies on: each row's line is a sheet row (1..2^31-1) and matches the
 * callback's, dates are YYYY-MM-DD, strings are valid UTF-8, a failure
 * always says why, res says XLSX and rows_read counts the callbacks. A
 * compound file (encrypted workbook) is tried without a password, so the
 * input stops after its EncryptionInfo is read: fuzz_offcrypto covers the
 * rest. Seeds: tests/fuzz/corpus/xlsx/ (written by
 * tests/unit/ingestion/fixtures/make_xlsx_fixtures.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "statement.h"

typedef struct fuzz_ctx {
  int32_t rows;
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

static int on_row(void *vctx, int32_t line, const ingest_row_t *row, const char *reason) {
  fuzz_ctx_t *c = vctx;
  if (line < 1) abort();
  c->rows++;
  if (row == NULL) {
    if (reason == NULL || reason[0] == '\0') abort();
    check_utf8(reason);
    return 0;
  }
  if (row->line != line || strlen(row->date) != 10 || row->date[4] != '-' || row->date[7] != '-') abort();
  if (row->currency != NULL && strlen(row->currency) != 3) abort();
  check_utf8(row->merchant);
  check_utf8(row->description);
  check_utf8(row->payment_method);
  check_utf8(row->reference);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_ctx_t c = {0};
  sc_arena_t *arena = sc_arena_new(64 << 20);
  if (arena == NULL) return 0;
  ingest_opts_t opts;
  memset(&opts, 0, sizeof(opts));
  ingest_result_t res;
  sc_err_t err;
  err.msg[0] = '\0';
  sc_status_t st = ingest_parse_xlsx(data, size, &opts, arena, on_row, &c, &res, &err);
  if (st != SC_OK && err.msg[0] == '\0') abort();
  if (res.format != INGEST_FORMAT_XLSX) abort();
  if (st == SC_OK && res.rows_read != c.rows) abort();
  check_utf8(res.sheet);
  for (int i = 0; i < res.n_columns && i < INGEST_MAX_COLUMNS; i++)
    check_utf8(res.columns[i]);
  sc_arena_free(arena);
  return 0;
}
