/* CSV statements: an RFC 4180 tokenizer feeding the table engine.
 *
 * Records are read straight from the caller's buffer, one at a time, into a
 * single row buffer capped at CSV_MAX_RECORD bytes: memory is the input plus
 * one row whatever the file's size. Quoted fields may hold delimiters, ""
 * quotes and line breaks; a record's line is the physical line where it
 * starts. Lines end in LF, CRLF or CR. Bytes are checked as UTF-8 while they
 * are copied; a row that is not UTF-8, or whose quote never closes, reaches
 * the engine as an error row (INGEST_CELL_ERROR) so it is rejected with its
 * line while the rest of the file is read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "statement.h"

#define CSV_MAX_RECORD ((size_t)1 << 20) /* bytes per record, all fields */
#define CSV_SLACK 128                    /* past the limit: the NUL, a 16-byte store, a UTF-8 sequence */
#define CSV_SNIFF_BYTES ((size_t)64 << 10)
#define CSV_SNIFF_RECORDS 100

typedef struct csv {
  const uint8_t *data;
  size_t len, begin; /* begin: after a BOM */
  char delim;
  size_t pos;   /* next record */
  int32_t line; /* physical line at pos */
  char *buf;    /* the current record's fields, NUL-terminated: min(file, CSV_MAX_RECORD) + CSV_SLACK bytes */
  ingest_cell_t cells[INGEST_MAX_COLUMNS];
  char reason[200];
  sc_status_t fatal; /* a limit that ended the parse */
  uint8_t care[256]; /* 1 for the bytes that stop a run: quote, CR, LF, NUL, non-ASCII */
} csv_t;

/* Length of the valid UTF-8 sequence at s (2-4), or 0. */
static size_t utf8_len(const uint8_t *s, size_t avail) {
  uint8_t c = s[0];
  if (c >= 0xC2 && c <= 0xDF) return avail >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] > 0x9F) return 0; /* surrogates */
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && s[1] < 0x90) return 0;
    if (c == 0xF4 && s[1] > 0x8F) return 0; /* past U+10FFFF */
    return 4;
  }
  return 0;
}

static void init_care(csv_t *c) {
  memset(c->care, 0, sizeof c->care);
  memset(c->care + 0x80, 1, 0x80);
  c->care[0] = c->care['\r'] = c->care['\n'] = c->care['"'] = 1;
}

/* Copies the run of a quoted field's bytes at d[p, lim) to dst + *o, up to
 * the first that needs care (care[]); returns its position. With SSE2
 * (every x86-64) it looks at 16 bytes a step and stores them before
 * looking: dst has CSV_SLACK bytes past the record limit for that. */
static size_t copy_run(const uint8_t *d, size_t p, size_t lim, char *dst, size_t *o, const uint8_t *care) {
  size_t w = *o;
#if defined(__SSE2__)
  const __m128i vs = _mm_set1_epi8('"'), vcr = _mm_set1_epi8('\r'), vlf = _mm_set1_epi8('\n');
  const __m128i zero = _mm_setzero_si128();
  while (p + 16 <= lim) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(d + p));
    _mm_storeu_si128((__m128i *)(void *)(dst + w), x);
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, vs), _mm_cmpeq_epi8(x, vcr)),
                             _mm_or_si128(_mm_cmpeq_epi8(x, vlf), _mm_cmpeq_epi8(x, zero)));
    unsigned mask = (unsigned)_mm_movemask_epi8(m) | (unsigned)_mm_movemask_epi8(x);
    if (mask != 0) {
      unsigned k = (unsigned)__builtin_ctz(mask);
      *o = w + k;
      return p + k;
    }
    p += 16;
    w += 16;
  }
#endif
  while (p < lim && !care[d[p]])
    dst[w++] = (char)d[p++];
  *o = w;
  return p;
}

static int fail_long(csv_t *c, int32_t line, sc_err_t *err) {
  sc_err_set(err,
             "line %d is longer than %zu bytes, the limit for one record: this does not look like a bank statement",
             (int)line, CSV_MAX_RECORD);
  c->fatal = SC_RESOURCE_EXHAUSTED;
  return -1;
}

/* Skips one line break at p (CRLF counts once). */
static size_t skip_eol(const uint8_t *d, size_t len, size_t p) {
  if (d[p] == '\r' && p + 1 < len && d[p + 1] == '\n') return p + 2;
  return p + 1;
}

/* Notes the first byte that is not UTF-8 and returns how many bytes to copy
 * (the sequence, or the one bad byte). */
static size_t utf8_step(const uint8_t *d, size_t q, size_t len, size_t rec_start, size_t *bad_at, uint8_t *bad_byte) {
  size_t u = utf8_len(d + q, len - q);
  if (u == 0) {
    if (*bad_at == 0) {
      *bad_at = q - rec_start + 1;
      *bad_byte = d[q];
    }
    u = 1;
  }
  return u;
}

static int error_row(csv_t *c, int32_t line, const ingest_cell_t **cells, int *n_cells, int32_t *line_out) {
  c->cells[0] = (ingest_cell_t){c->reason, INGEST_CELL_ERROR};
  *line_out = line;
  *cells = c->cells;
  *n_cells = 1;
  return 1;
}

static int too_many_columns(csv_t *c, int32_t line, sc_err_t *err) {
  sc_err_set(err, "line %d has more than %d columns; at most %d are supported", (int)line, INGEST_MAX_COLUMNS,
             INGEST_MAX_COLUMNS);
  c->fatal = SC_RESOURCE_EXHAUSTED;
  return -1;
}

/* Reads one record into c->buf. Unquoted stretches are copied 16 bytes at a
 * time with their delimiters turned into NULs in place, so a field costs a
 * few instructions; quoted fields, line breaks and non-ASCII bytes take the
 * careful path. What is written never outgrows what is read (quotes go,
 * CRLF becomes LF), so bounding the bytes read bounds the row buffer. */
static int csv_next(void *impl, int32_t *line, const ingest_cell_t **cells, int *n_cells, sc_err_t *err) {
  csv_t *c = impl;
  const uint8_t *d = c->data;
  const size_t len = c->len;
  char *buf = c->buf;
  ingest_cell_t *cell = c->cells;
  const uint8_t delim = (uint8_t)c->delim;
  size_t p = c->pos;
  if (p >= len) return 0;
  const size_t rec_start = p;
  const size_t lim = len - p > CSV_MAX_RECORD ? p + CSV_MAX_RECORD : len; /* bytes this record may read */
  const int32_t start_line = c->line;
  int32_t ln = start_line;
  size_t w = 0;      /* bytes written to buf */
  size_t field = 0;  /* where the current field starts in buf */
  int nf = 0;        /* fields completed */
  size_t bad_at = 0; /* 1 + offset in the record of the first byte that is not UTF-8 */
  uint8_t bad_byte = 0;
  cell[0].text = buf;
#if defined(__SSE2__)
  const __m128i vdelim = _mm_set1_epi8((char)delim), vquote = _mm_set1_epi8('"');
  const __m128i vcr = _mm_set1_epi8('\r'), vlf = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
#endif

  for (;;) {
    if (p < len && d[p] == '"' && w == field) { /* a quoted field */
      const int32_t quote_line = ln;
      const size_t quote_pos = p;
      p++;
      for (;;) {
        size_t q = copy_run(d, p, lim, buf, &w, c->care);
        p = q;
        if (q >= lim) {
          /* The quote never closes (or not within the record limit): reject
           * the record and go on after the line the quote opened on. */
          size_t r = quote_pos;
          while (r < len && d[r] != '\n' && d[r] != '\r')
            r++;
          c->pos = r < len ? skip_eol(d, len, r) : len;
          c->line = quote_line + 1;
          snprintf(c->reason, sizeof c->reason,
                   "a quoted field opened on line %d is never closed (a \" is missing, or the file is truncated)",
                   (int)quote_line);
          return error_row(c, start_line, cells, n_cells, line);
        }
        uint8_t ch = d[q];
        if (ch == '"') {
          if (q + 1 < len && d[q + 1] == '"') {
            buf[w++] = '"';
            p = q + 2;
            continue;
          }
          p = q + 1;
          break;
        }
        if (ch == '\r' || ch == '\n') { /* a line break inside the field: kept as \n */
          buf[w++] = '\n';
          p = skip_eol(d, len, q);
          ln++;
          continue;
        }
        size_t u = utf8_step(d, q, len, rec_start, &bad_at, &bad_byte);
        memcpy(buf + w, d + q, u); /* buf has CSV_SLACK past the limit */
        w += u;
        p = q + u;
      }
    }
    /* Unquoted bytes (or what follows a closing quote, kept as written),
     * fields split at delimiters, up to a byte that needs care. */
#if defined(__SSE2__)
    while (p + 16 <= lim) {
      __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(d + p));
      _mm_storeu_si128((__m128i *)(void *)(buf + w), x);
      unsigned md = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, vdelim));
      __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, vquote), _mm_cmpeq_epi8(x, vcr)),
                               _mm_or_si128(_mm_cmpeq_epi8(x, vlf), _mm_cmpeq_epi8(x, zero)));
      unsigned ms = (unsigned)_mm_movemask_epi8(m) | (unsigned)_mm_movemask_epi8(x);
      unsigned stop = ms != 0 ? (unsigned)__builtin_ctz(ms) : 16u;
      md &= (1u << stop) - 1u;
      while (md != 0) {
        unsigned k = (unsigned)__builtin_ctz(md);
        md &= md - 1u;
        if (++nf >= INGEST_MAX_COLUMNS) return too_many_columns(c, start_line, err);
        buf[w + k] = '\0';
        field = w + k + 1;
        cell[nf].text = buf + field;
      }
      p += stop;
      w += stop;
      if (stop < 16) break;
    }
#endif
    while (p < lim) {
      uint8_t b = d[p];
      if (b == delim) {
        if (nf + 1 >= INGEST_MAX_COLUMNS) return too_many_columns(c, start_line, err);
        buf[w++] = '\0';
        field = w;
        cell[++nf].text = buf + field;
        p++;
      } else if (!c->care[b]) {
        buf[w++] = (char)b;
        p++;
      } else {
        break;
      }
    }
    if (p == len) break;
    if (p >= lim) return fail_long(c, start_line, err);
    uint8_t b = d[p];
    if (b == '\n' || b == '\r') {
      p = skip_eol(d, len, p);
      ln++;
      break;
    }
    if (b == '"') {
      if (w == field) continue; /* a quoted field: the top of the loop */
      buf[w++] = '"';           /* a quote inside an unquoted field is text */
      p++;
      continue;
    }
    size_t u = utf8_step(d, p, len, rec_start, &bad_at, &bad_byte);
    memcpy(buf + w, d + p, u);
    w += u;
    p += u;
  }
  buf[w] = '\0';
  nf++;
  c->pos = p;
  c->line = ln;
  if (bad_at != 0) {
    if (bad_byte == 0)
      snprintf(c->reason, sizeof c->reason, "line contains a NUL byte (at byte %zu): not text", bad_at);
    else
      snprintf(c->reason, sizeof c->reason, "line is not valid UTF-8 (byte 0x%02X at byte %zu): save the file as UTF-8",
               bad_byte, bad_at);
    return error_row(c, start_line, cells, n_cells, line);
  }
  cell[0].kind = INGEST_CELL_TEXT; /* after an error row */
  *line = start_line;
  *cells = cell;
  *n_cells = nf;
  return 1;
}

static int csv_rewind(void *impl, sc_err_t *err) {
  (void)err;
  csv_t *c = impl;
  c->pos = c->begin;
  c->line = 1;
  return 0;
}

/* The delimiter whose field count is the same on most of the first records
 * (outside quotes). Ties go to the one that is not mostly between digits
 * (a decimal comma: "05.01.2026;-12,50" splits two ways alike), then to more
 * fields, then to , ; tab | in that order. */
static char detect_delimiter(const uint8_t *d, size_t len) {
  static const char cands[] = {',', ';', '\t', '|'};
  size_t n = len < CSV_SNIFF_BYTES ? len : CSV_SNIFF_BYTES;
  char best = ',';
  int best_score = 0, best_fields = 0, best_decimal = 0;
  for (size_t k = 0; k < sizeof cands; k++) {
    char delim = cands[k];
    int counts[CSV_SNIFF_RECORDS];
    int nrec = 0, fields = 1, in_quote = 0, at_start = 1;
    int total = 0, between_digits = 0;
    for (size_t i = 0; i < n && nrec < CSV_SNIFF_RECORDS; i++) {
      char ch = (char)d[i];
      if (in_quote) {
        if (ch == '"') {
          if (i + 1 < n && d[i + 1] == '"')
            i++;
          else
            in_quote = 0;
        }
        continue;
      }
      if (ch == '"' && at_start) {
        in_quote = 1;
        at_start = 0;
      } else if (ch == delim) {
        fields++;
        at_start = 1;
        total++;
        if (i > 0 && i + 1 < n && d[i - 1] >= '0' && d[i - 1] <= '9' && d[i + 1] >= '0' && d[i + 1] <= '9')
          between_digits++;
      } else if (ch == '\n' || ch == '\r') {
        if (ch == '\r' && i + 1 < n && d[i + 1] == '\n') i++;
        counts[nrec++] = fields;
        fields = 1;
        at_start = 1;
      } else {
        at_start = 0;
      }
    }
    if (nrec < CSV_SNIFF_RECORDS && fields > 1) counts[nrec++] = fields;
    /* the most frequent count of at least 2 fields */
    int score = 0, mode = 0;
    for (int i = 0; i < nrec; i++) {
      if (counts[i] < 2) continue;
      int f = 0;
      for (int j = 0; j < nrec; j++)
        f += counts[j] == counts[i];
      if (f > score || (f == score && counts[i] > mode)) {
        score = f;
        mode = counts[i];
      }
    }
    int decimal = between_digits * 2 > total;
    if (score > best_score || (score == best_score && score > 0 &&
                               ((best_decimal && !decimal) || (best_decimal == decimal && mode > best_fields)))) {
      best = delim;
      best_score = score;
      best_fields = mode;
      best_decimal = decimal;
    }
  }
  return best;
}

sc_status_t ingest_parse_csv(const uint8_t *data, size_t len, const ingest_opts_t *opts, sc_arena_t *arena,
                             ingest_row_cb cb, void *ctx, ingest_result_t *res, sc_err_t *err) {
  ingest_result_t local;
  csv_t *c = NULL;
  sc_status_t st;
  if (res == NULL) res = &local;
  memset(res, 0, sizeof *res);
  res->format = INGEST_FORMAT_CSV;
  if (data == NULL) len = 0;

  size_t begin = 0;
  if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) begin = 3;
  if (len >= 2 && ((data[0] == 0xFF && data[1] == 0xFE) || (data[0] == 0xFE && data[1] == 0xFF))) {
    sc_err_set(err, "the file is UTF-16 text; export or save it as UTF-8 (CSV UTF-8) and import it again");
    return SC_INVALID_ARGUMENT;
  }
  size_t i = begin;
  while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
    i++;
  if (i == len) {
    sc_err_set(err, "the file is empty");
    return SC_INVALID_ARGUMENT;
  }
  /* Binary files (and UTF-16 without a BOM) have NULs and control bytes. */
  size_t sniff = len - begin < CSV_SNIFF_BYTES ? len - begin : CSV_SNIFF_BYTES;
  size_t ctl = 0;
  for (size_t k = begin; k < begin + sniff; k++) {
    uint8_t b = data[k];
    if (b == 0) {
      sc_err_set(err, "the file is not text (it holds NUL bytes): not a CSV statement%s",
                 (k - begin) % 2 == 1 || (k > begin && data[k - 1] == 0) ? " (UTF-16 text must be saved as UTF-8)"
                                                                         : "");
      return SC_INVALID_ARGUMENT;
    }
    if (b < 0x20 && b != '\t' && b != '\r' && b != '\n' && b != '\f') ctl++;
  }
  if (ctl * 100 > sniff) {
    sc_err_set(err, "the file is not text (%zu control bytes in its first %zu): not a CSV statement", ctl, sniff);
    return SC_INVALID_ARGUMENT;
  }

  char delim = 0;
  if (opts != NULL && opts->mapping != NULL && opts->mapping->delimiter != 0) {
    delim = opts->mapping->delimiter;
    if (delim == '"' || delim == '\r' || delim == '\n' || (uint8_t)delim >= 0x80) {
      sc_err_set(err, "mapping.delimiter must be one character such as ',' ';' '\\t' or '|'");
      return SC_INVALID_ARGUMENT;
    }
  } else {
    delim = detect_delimiter(data + begin, len - begin);
  }

  c = calloc(1, sizeof *c);
  if (c == NULL) {
    sc_err_set(err, "out of memory");
    return SC_RESOURCE_EXHAUSTED;
  }
  c->data = data;
  c->len = len;
  c->begin = begin;
  c->delim = delim;
  c->pos = begin;
  c->line = 1;
  c->fatal = SC_OK;
  /* One allocation for the largest record, which the file's size bounds too. */
  c->buf = malloc((len - begin < CSV_MAX_RECORD ? len - begin : CSV_MAX_RECORD) + CSV_SLACK);
  if (c->buf == NULL) {
    free(c);
    sc_err_set(err, "out of memory");
    return SC_RESOURCE_EXHAUSTED;
  }
  init_care(c);
  for (int k = 0; k < INGEST_MAX_COLUMNS; k++)
    c->cells[k].kind = INGEST_CELL_TEXT;
  ingest_table_src_t src = {.impl = c, .next = csv_next, .rewind = csv_rewind};
  st = ingest_table_parse(&src, opts, arena, cb, ctx, res, err);
  if (st != SC_OK && c->fatal != SC_OK) st = c->fatal;
  res->format = INGEST_FORMAT_CSV;
  res->delimiter = delim;
  res->mapping.delimiter = delim;
  free(c->buf);
  free(c);
  return st;
}
