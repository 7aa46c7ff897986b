/* Format detection and dispatch to the statement parsers. */
#include <string.h>

#include "statement.h"

void ingest_mapping_init(ingest_mapping_t *m) {
  memset(m, 0, sizeof *m);
  ingest_column_t *cols[] = {&m->date,     &m->amount,   &m->debit,     &m->credit,         &m->description,
                             &m->merchant, &m->currency, &m->reference, &m->payment_method, &m->direction};
  for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
    cols[i]->name = NULL;
    cols[i]->index = -1;
  }
  m->amount_sign = INGEST_SIGN_AUTO;
}

static int has_ext(const char *filename, const char *ext) {
  if (filename == NULL) return 0;
  size_t n = strlen(filename), e = strlen(ext);
  if (n < e) return 0;
  const char *p = filename + n - e;
  for (size_t i = 0; i < e; i++) {
    char c = p[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != ext[i]) return 0;
  }
  return 1;
}

/* Case-insensitive search for an ASCII word in the first bytes. */
static int find_ci(const uint8_t *d, size_t n, const char *word) {
  size_t w = strlen(word);
  for (size_t i = 0; i + w <= n; i++) {
    size_t k = 0;
    while (k < w) {
      uint8_t c = d[i + k];
      if (c >= 'a' && c <= 'z') c = (uint8_t)(c - 'a' + 'A');
      if (c != (uint8_t)word[k]) break;
      k++;
    }
    if (k == w) return 1;
  }
  return 0;
}

/* Text: no NUL bytes and few control bytes in the first 4 KiB. */
static int looks_like_text(const uint8_t *d, size_t n) {
  size_t ctl = 0;
  for (size_t i = 0; i < n; i++) {
    if (d[i] == 0) return 0;
    if (d[i] < 0x20 && d[i] != '\t' && d[i] != '\r' && d[i] != '\n' && d[i] != '\f') ctl++;
  }
  return ctl * 100 <= n;
}

ingest_format_t ingest_detect(const uint8_t *data, size_t len, const char *filename) {
  if (data == NULL) len = 0;
  if (len >= 4 && memcmp(data, "PK\x03\x04", 4) == 0) return INGEST_FORMAT_XLSX;
  if (len >= 8 && memcmp(data, "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8) == 0) return INGEST_FORMAT_XLSX;
  size_t head = len < 4096 ? len : 4096;
  if (find_ci(data, head, "OFXHEADER") || find_ci(data, head, "<OFX")) return INGEST_FORMAT_OFX;
  if (has_ext(filename, ".csv") || has_ext(filename, ".txt") || has_ext(filename, ".tsv")) return INGEST_FORMAT_CSV;
  if (has_ext(filename, ".xlsx") || has_ext(filename, ".xlsm")) return INGEST_FORMAT_XLSX;
  if (has_ext(filename, ".ofx") || has_ext(filename, ".qfx") || has_ext(filename, ".qbo")) return INGEST_FORMAT_OFX;
  if (len > 0 && looks_like_text(data, head)) return INGEST_FORMAT_CSV;
  return INGEST_FORMAT_UNKNOWN;
}

sc_status_t ingest_parse(const uint8_t *data, size_t len, const char *filename, ingest_format_t format_hint,
                         const ingest_opts_t *opts, sc_arena_t *arena, ingest_row_cb cb, void *ctx,
                         ingest_result_t *res, sc_err_t *err) {
  ingest_format_t f = format_hint != INGEST_FORMAT_UNKNOWN ? format_hint : ingest_detect(data, len, filename);
  switch (f) {
  case INGEST_FORMAT_CSV: return ingest_parse_csv(data, len, opts, arena, cb, ctx, res, err);
  case INGEST_FORMAT_XLSX: return ingest_parse_xlsx(data, len, opts, arena, cb, ctx, res, err);
  case INGEST_FORMAT_OFX: return ingest_parse_ofx(data, len, opts, arena, cb, ctx, res, err);
  default: break;
  }
  if (res != NULL) memset(res, 0, sizeof *res);
  if (len == 0)
    sc_err_set(err, "the file is empty");
  else
    sc_err_set(err, "not a statement file: it is not CSV text, an XLSX workbook or OFX/QFX (%s)",
               filename != NULL && filename[0] != '\0' ? filename : "no file name");
  return SC_INVALID_ARGUMENT;
}
