/* libFuzzer target for the OFX/QFX parser (ingest_parse_ofx). Besides the
 * sanitizers' findings it checks what every caller relies on: rows come in
 * file order with lines in range, dates are YYYY-MM-DD, strings are valid
 * UTF-8 without control characters, and a failure always says why. Seeds:
 * tests/fuzz/corpus/ofx/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "statement.h"

typedef struct fuzz_ctx {
  int32_t last_line, max_line;
  int32_t rows;
} fuzz_ctx_t;

static void check_text(const char *s) {
  if (s == NULL) return;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned char c = *p;
    if (c < 0x20 || c == 0x7F) abort();
    size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (k == 0 || (k == 2 && c < 0xC2) || c > 0xF4) abort();
    for (size_t i = 1; i < k; i++)
      if ((p[i] & 0xC0) != 0x80) abort();
    p += k;
  }
}

static int on_row(void *vctx, int32_t line, const ingest_row_t *row, const char *reason) {
  fuzz_ctx_t *c = vctx;
  if (line < 1 || line > c->max_line || line < c->last_line) abort();
  c->last_line = line;
  c->rows++;
  if (row == NULL) {
    if (reason == NULL || reason[0] == '\0') abort();
    check_text(reason);
    return 0;
  }
  if (row->line != line || strlen(row->date) != 10 || row->date[4] != '-' || row->date[7] != '-') abort();
  if (row->currency != NULL && strlen(row->currency) != 3) abort();
  check_text(row->merchant);
  check_text(row->description);
  check_text(row->payment_method);
  check_text(row->reference);
  check_text(row->bank_txn_id);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_ctx_t c = {.last_line = 1, .max_line = 1};
  for (size_t i = 0; i < size; i++)
    if (data[i] == '\n' || data[i] == '\r') c.max_line++;
  sc_arena_t *arena = sc_arena_new(16 << 20);
  if (arena == NULL) return 0;
  ingest_opts_t opts;
  memset(&opts, 0, sizeof(opts));
  ingest_result_t res;
  sc_err_t err;
  err.msg[0] = '\0';
  sc_status_t st = ingest_parse_ofx(data, size, &opts, arena, on_row, &c, &res, &err);
  if (st != SC_OK && err.msg[0] == '\0') abort();
  if (res.format != INGEST_FORMAT_OFX || res.rows_read != c.rows) abort();
  sc_arena_free(arena);
  return 0;
}
