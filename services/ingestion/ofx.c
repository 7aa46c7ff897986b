/* OFX / QFX statements: OFX 1.x (SGML, leaf elements usually not closed) and
 * OFX 2.x (XML), read by a small tolerant tokenizer of our own (no SGML
 * library with the OFX DTD exists for us to use).
 *
 * What is read: every <STMTTRN> (bank, credit card and investment-bank
 * statements; several statements per file are all read). A row is delivered
 * when its </STMTTRN> is seen (or implied by the end tag of an enclosing
 * aggregate), so the row's values are complete; its line is the physical
 * line of its <STMTTRN>.
 *
 *   DTPOSTED  -> date (the date part as written; the time and zone are not
 *                applied, the bank's booking day is what users see)
 *   TRNAMT    -> amount_minor, in the exponent of the row's currency (OFX
 *                signs are the account holder's: negative is money out;
 *                mapping.amount_sign POSITIVE_IS_OUT flips them for issuers
 *                that write card purchases positive; the rest of the mapping
 *                does not apply to OFX)
 *   CURDEF    -> currency (upper case); a <CURRENCY><CURSYM> inside the
 *                STMTTRN overrides it (the amount is in that currency).
 *                <ORIGCURRENCY> does not: per OFX 2.1.1 section 5.2 the
 *                amount has then already been converted into CURDEF.
 *   FITID     -> bank_txn_id
 *   PAYEE/NAME, else NAME -> merchant
 *   MEMO, else the merchant -> description
 *   TRNTYPE   -> payment_method (see `trntypes` below)
 *   CHECKNUM, else REFNUM -> reference
 *
 * Truncated files: a <STMTTRN> still open at the end of the data is rejected
 * through the callback ("the file ends inside this transaction"), since its
 * last value may have been cut; every complete transaction before it is read
 * and the parse returns SC_OK. A missing </OFX> alone is not an error.
 *
 * Text: CHARSET/ENCODING (1.x header) or the XML declaration's encoding says
 * whether values are UTF-8 or Windows-1252 (ISO-8859-1, USASCII and NONE are
 * read as Windows-1252, as browsers do). A file declared Windows-1252 whose
 * body is entirely valid UTF-8 with multi-byte sequences is read as UTF-8
 * (banks mislabel); bytes that are not valid UTF-8 in a UTF-8 file are read
 * as Windows-1252. Entities (&amp; &lt; &gt; &quot; &apos; &nbsp; &#N;
 * &#xH;) are decoded; an '&' that starts none of them is kept as written.
 * Control characters become spaces; values are trimmed.
 *
 * Not read: BANKACCTFROM/CCACCTFROM ACCTID (a row has no account field),
 * balances, pending <STMTTRNP> (not booked), investment transactions other
 * than INVBANKTRAN's STMTTRN, and CDATA sections (which OFX does not use).
 *
 * Bounds: input size, nesting depth, element name length and value length are
 * capped (SC_RESOURCE_EXHAUSTED naming the limit and the line). Scratch
 * memory comes from the caller's arena and is reused from row to row, so it
 * is bounded by the largest transaction, not by the row count.
 *
 * `res`: format OFX, rows_read (read + rejected), date_format "" (OFX dates
 * have one fixed form), the mapping unset but for amount_sign as given. It is
 * filled on every return, failures included.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "statement.h"

#define OFX_MAX_BYTES ((size_t)256 << 20) /* whole file */
#define OFX_MAX_DEPTH 32                  /* real statements nest about 8 deep */
#define OFX_MAX_NAME 64                   /* the longest OFX element name has 32 characters */
#define OFX_MAX_VALUE 32768               /* bytes; OFX's longest text fields allow a few hundred */
#define OFX_MAX_HEADER 4096               /* the 1.x header or the XML declaration */
#define OFX_QUOTE_MAX 40                  /* bytes of a bad value quoted in a reason */

typedef struct ofx_slice {
  const uint8_t *p; /* NULL: absent */
  size_t n;
} ofx_slice_t;

/* Element kinds. Unknown elements that hold no text may be empty leaves
 * written without an end tag, so they are pushed but are transparent: a leaf
 * belongs to the innermost element of a known kind. */
enum { K_UNKNOWN, K_OTHER, K_OFX, K_STMT, K_TRN, K_PAYEE, K_CURRENCY };

typedef struct ofx_elem {
  const uint8_t *name;
  size_t name_len;
  int kind;
} ofx_elem_t;

enum {
  F_TRNTYPE,
  F_DTPOSTED,
  F_TRNAMT,
  F_FITID,
  F_NAME,
  F_MEMO,
  F_CHECKNUM,
  F_REFNUM,
  F_PAYEE_NAME,
  F_CURSYM,
  F_COUNT
};

typedef struct ofx {
  const uint8_t *d;
  size_t n;
  int utf8; /* values are UTF-8 (else Windows-1252) */
  size_t lc_pos;
  int32_t line; /* the line of d[lc_pos] */
  ofx_elem_t stack[OFX_MAX_DEPTH];
  int depth;
  int trn_open;
  int32_t trn_line;
  ofx_slice_t f[F_COUNT];
  ofx_slice_t curdef;
  const char *default_currency;
  int32_t max_rows;
  int flip_sign; /* mapping.amount_sign POSITIVE_IS_OUT: the issuer wrote purchases positive */
  sc_arena_t *arena;
  ingest_row_cb cb;
  void *ctx;
  char *scratch;
  size_t scratch_cap, scratch_used;
  int32_t rows;
  int stop; /* set on max_rows, cancellation or a file-level error */
  sc_status_t st;
  sc_err_t *err;
} ofx_t;

/* ---- Small text helpers -------------------------------------------------- */

static int is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static int to_upper(int c) { return (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c; }
static int to_lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }
static int is_name_char(uint8_t c) {
  return is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == '-' || c == ':';
}

/* Case-insensitive: does the slice equal the NUL-terminated `s`? */
static int eq_ci(const uint8_t *p, size_t n, const char *s) {
  size_t i = 0;
  for (; i < n; i++)
    if (s[i] == '\0' || to_upper(p[i]) != to_upper((unsigned char)s[i])) return 0;
  return s[i] == '\0';
}

static int starts_ci(const uint8_t *p, size_t n, const char *s) {
  size_t k = strlen(s);
  return n >= k && eq_ci(p, k, s);
}

static ofx_slice_t trim(const uint8_t *p, size_t n) {
  while (n > 0 && is_space(p[0]))
    p++, n--;
  while (n > 0 && is_space(p[n - 1]))
    n--;
  ofx_slice_t s = {p, n};
  return s;
}

/* The index of the first occurrence of `pat` in d[from, n), or n. */
static size_t find(const uint8_t *d, size_t n, size_t from, const char *pat) {
  size_t k = strlen(pat);
  while (from < n) {
    const uint8_t *q = memchr(d + from, (unsigned char)pat[0], n - from);
    if (q == NULL) return n;
    size_t at = (size_t)(q - d);
    if (n - at >= k && memcmp(q, pat, k) == 0) return at;
    from = at + 1;
  }
  return n;
}

static void fail(ofx_t *x, sc_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(ofx_t *x, sc_status_t st, const char *fmt, ...) {
  if (x->st != SC_OK) return;
  x->st = st;
  x->stop = 1;
  if (x->err != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err->msg, sizeof(x->err->msg), fmt, ap);
    va_end(ap);
  }
}

/* The physical line of d[pos]. Positions only move forward. A line ends at
 * LF, CRLF or a lone CR. */
static int32_t line_at(ofx_t *x, size_t pos) {
  for (size_t i = x->lc_pos; i < pos && i < x->n; i++) {
    if (x->d[i] == '\n' || (x->d[i] == '\r' && (i + 1 >= x->n || x->d[i + 1] != '\n'))) {
      if (x->line < INT32_MAX) x->line++;
    }
  }
  if (pos > x->lc_pos) x->lc_pos = pos;
  return x->line;
}

/* ---- Character sets -------------------------------------------------------- */

/* Windows-1252 0x80..0x9F; 0 marks the five undefined bytes. */
static const uint16_t cp1252_hi[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,
};

static size_t put_utf8(char *out, uint32_t cp) {
  if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

static uint32_t cp1252(uint8_t c) {
  if (c < 0x80 || c >= 0xA0) return c;
  uint16_t u = cp1252_hi[c - 0x80];
  return u ? u : 0xFFFD;
}

/* The length of the valid UTF-8 sequence at p (no overlongs, surrogates or
 * code points above U+10FFFF), or 0. */
static size_t utf8_len(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  if (c < 0x80) return 1;
  size_t k;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF)
    k = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    k = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    k = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else
    return 0;
  if (n < k || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < k; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return k;
}

/* 1 when d[from, n) is valid UTF-8 holding at least one multi-byte sequence. */
static int looks_utf8(const uint8_t *d, size_t n, size_t from) {
  int multi = 0;
  for (size_t i = from; i < n;) {
    if (d[i] < 0x80) {
      i++;
      continue;
    }
    size_t k = utf8_len(d + i, n - i);
    if (k == 0) return 0;
    multi = 1;
    i += k;
  }
  return multi;
}

/* Decodes an entity at p[0] == '&'; returns the bytes consumed (0: not an
 * entity we know, keep the '&'). */
static size_t entity(const uint8_t *p, size_t n, uint32_t *cp) {
  size_t semi = 1;
  while (semi < n && semi < 12 && p[semi] != ';')
    semi++;
  if (semi >= n || p[semi] != ';' || semi < 2) return 0;
  const uint8_t *e = p + 1;
  size_t el = semi - 1;
  static const struct {
    const char *name;
    uint32_t cp;
  } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", 0xA0}};
  for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
    if (eq_ci(e, el, named[i].name)) {
      *cp = named[i].cp;
      return semi + 1;
    }
  }
  if (e[0] != '#') return 0;
  uint32_t v = 0;
  size_t i = 1;
  int hex = i < el && (e[i] == 'x' || e[i] == 'X');
  if (hex) i++;
  if (i >= el) return 0;
  for (; i < el; i++) {
    int c = e[i], dv;
    if (is_digit(c))
      dv = c - '0';
    else if (hex && to_lower(c) >= 'a' && to_lower(c) <= 'f')
      dv = to_lower(c) - 'a' + 10;
    else
      return 0;
    v = v * (hex ? 16u : 10u) + (uint32_t)dv;
    if (v > 0x10FFFF) v = 0x110000; /* stays invalid, no overflow: at most 10 digits */
  }
  *cp = v < 0x20 || v == 0x7F ? ' ' : v;
  return semi + 1;
}

/* Decodes a raw value into out (room for 3 * s.n + 1 bytes): charset,
 * entities, control characters as spaces, trimmed. Returns the length. */
static size_t decode(const ofx_t *x, ofx_slice_t s, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < s.n;) {
    uint8_t c = s.p[i];
    uint32_t cp;
    size_t k;
    if (c == '&' && (k = entity(s.p + i, s.n - i, &cp)) > 0) {
      o += put_utf8(out + o, cp);
      i += k;
    } else if (c < 0x80) {
      out[o++] = (char)(c < 0x20 || c == 0x7F ? ' ' : c);
      i++;
    } else if (x->utf8 && (k = utf8_len(s.p + i, s.n - i)) > 0) {
      memcpy(out + o, s.p + i, k);
      o += k;
      i += k;
    } else {
      o += put_utf8(out + o, cp1252(c));
      i++;
    }
  }
  size_t b = 0;
  while (b < o && out[b] == ' ')
    b++;
  while (o > b && out[o - 1] == ' ')
    o--;
  if (b > 0) memmove(out, out + b, o - b);
  o -= b;
  out[o] = '\0';
  return o;
}

/* ---- Rows ------------------------------------------------------------------ */

/* TRNTYPE -> payment_method. OTHER maps to none; a type not listed here is
 * kept, lower-cased, as the bank wrote it. */
static const struct {
  const char *trntype;
  const char *method;
} trntypes[] = {
    {"DEBIT", "debit"},
    {"CREDIT", "credit"},
    {"POS", "card"},
    {"ATM", "atm"},
    {"CHECK", "check"},
    {"XFER", "transfer"},
    {"PAYMENT", "payment"},
    {"DIRECTDEP", "direct deposit"},
    {"DIRECTDEBIT", "direct debit"},
    {"REPEATPMT", "standing order"},
    {"DEP", "deposit"},
    {"CASH", "cash"},
    {"FEE", "fee"},
    {"SRVCHG", "service charge"},
    {"INT", "interest"},
    {"DIV", "dividend"},
    {"HOLD", "hold"},
    {"OTHER", NULL},
};

static const char *payment_method(char *trntype) {
  if (trntype == NULL) return NULL;
  size_t n = strlen(trntype);
  for (size_t i = 0; i < sizeof(trntypes) / sizeof(trntypes[0]); i++)
    if (eq_ci((const uint8_t *)trntype, n, trntypes[i].trntype)) return trntypes[i].method;
  for (size_t i = 0; i < n; i++)
    trntype[i] = (char)to_lower((unsigned char)trntype[i]);
  return trntype;
}

static int days_in_month(int y, int m) {
  static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dm[m - 1];
}

static int num(const char *s, int k) {
  int v = 0;
  for (int i = 0; i < k; i++)
    v = v * 10 + (s[i] - '0');
  return v;
}

static int all_digits(const char *s, int k) {
  for (int i = 0; i < k; i++)
    if (!is_digit((unsigned char)s[i])) return 0;
  return 1;
}

/* OFX dates: YYYYMMDD[HHMMSS[.XXX]][[gmt offset[:tz name]]]; also the ISO
 * YYYY-MM-DD some exporters write. The date part as written -> out. */
static int ofx_date(const char *s, char out[11]) {
  int y, m, d;
  const char *rest;
  size_t n = strlen(s);
  if (n >= 8 && all_digits(s, 8)) {
    y = num(s, 4), m = num(s + 4, 2), d = num(s + 6, 2);
    rest = s + 8;
    if (*rest != '\0' && !is_digit((unsigned char)*rest) && *rest != '[' && *rest != '.') return -1;
  } else if (n >= 10 && all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2) && s[7] == '-' &&
             all_digits(s + 8, 2)) {
    y = num(s, 4), m = num(s + 5, 2), d = num(s + 8, 2);
    rest = s + 10;
    if (*rest != '\0' && *rest != 'T' && *rest != ' ') return -1;
  } else
    return -1;
  if (y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return -1;
  memcpy(out, s, 4);
  out[4] = '-';
  out[5] = (char)('0' + m / 10);
  out[6] = (char)('0' + m % 10);
  out[7] = '-';
  out[8] = (char)('0' + d / 10);
  out[9] = (char)('0' + d % 10);
  out[10] = '\0';
  return 0;
}

enum { AMT_OK = 0, AMT_NAN = -1, AMT_DECIMALS = -2, AMT_RANGE = -3 };

static int push_digit(int64_t *v, int dv) {
  if (*v > (INT64_MAX - dv) / 10) return -1;
  *v = *v * 10 + dv;
  return 0;
}

/* OFX amounts: a plain signed decimal, '.' or ',' as the decimal separator,
 * no grouping. Digits beyond the currency's exponent must be zeros: money is
 * never rounded here. */
static int ofx_amount(const char *s, int exponent, int64_t *out) {
  const char *p = s;
  int neg = 0, digits = 0, frac = 0, extra = 0;
  int64_t v = 0;
  if (*p == '+' || *p == '-') neg = *p++ == '-';
  for (; is_digit((unsigned char)*p); p++, digits++)
    if (push_digit(&v, *p - '0') != 0) return AMT_RANGE;
  if (*p == '.' || *p == ',') {
    for (p++; is_digit((unsigned char)*p); p++, digits++) {
      if (frac < exponent) {
        if (push_digit(&v, *p - '0') != 0) return AMT_RANGE;
        frac++;
      } else if (*p != '0')
        extra = 1;
    }
  }
  if (*p != '\0' || digits == 0) return AMT_NAN;
  if (extra) return AMT_DECIMALS;
  for (; frac < exponent; frac++)
    if (push_digit(&v, 0) != 0) return AMT_RANGE;
  *out = neg ? -v : v;
  return AMT_OK;
}

static int currency_exponent(const char *code) {
  int e = ingest_currency_exponent(code);
  return e < 0 ? 2 : e > 6 ? 6 : e; /* keeps ofx_amount's scaling small */
}

/* An ISO 4217 code: three ASCII letters, upper-cased in place. */
static int iso_code(char *s) {
  if (s == NULL || strlen(s) != 3) return 0;
  for (int i = 0; i < 3; i++) {
    if (!is_alpha((unsigned char)s[i])) return 0;
    s[i] = (char)to_upper((unsigned char)s[i]);
  }
  return 1;
}

/* A bad value for a reason: at most OFX_QUOTE_MAX bytes, cut on a UTF-8
 * character boundary, "..." when cut. */
static const char *quote(const char *s, char out[OFX_QUOTE_MAX + 4]) {
  size_t n = strlen(s);
  if (n <= OFX_QUOTE_MAX) return s;
  n = OFX_QUOTE_MAX;
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  memcpy(out, s, n);
  memcpy(out + n, "...", 4);
  return out;
}

/* Decodes a field into the scratch area (sized by trn_scratch). NULL when the
 * field is absent or empty. */
static char *take(ofx_t *x, ofx_slice_t s) {
  if (s.p == NULL) return NULL;
  char *out = x->scratch + x->scratch_used;
  size_t n = decode(x, s, out);
  x->scratch_used += n + 1;
  return n > 0 ? out : NULL;
}

/* Makes room for every field of the transaction decoded at once. Grows by
 * doubling from the arena, so the total is bounded by twice the largest
 * transaction. */
static int trn_scratch(ofx_t *x) {
  size_t need = 3 * x->curdef.n + 1;
  for (int i = 0; i < F_COUNT; i++)
    need += 3 * x->f[i].n + 1;
  x->scratch_used = 0;
  if (need <= x->scratch_cap) return 0;
  size_t cap = x->scratch_cap ? x->scratch_cap : 4096;
  while (cap < need)
    cap *= 2;
  char *p = sc_arena_alloc(x->arena, cap);
  if (p == NULL) {
    fail(x, SC_RESOURCE_EXHAUSTED, "out of memory reading the transaction at line %d", (int)x->trn_line);
    return -1;
  }
  x->scratch = p;
  x->scratch_cap = cap;
  return 0;
}

static void deliver(ofx_t *x, const ingest_row_t *row, const char *reason) {
  int32_t line = row ? row->line : x->trn_line;
  if (x->cb != NULL && x->cb(x->ctx, line, row, reason) != 0) {
    fail(x, SC_CANCELLED, "the import was stopped at the transaction on line %d", (int)line);
    return;
  }
  if (x->max_rows > 0 && x->rows >= x->max_rows) x->stop = 1;
}

/* Ends the open transaction: delivers its row, or rejects it with a reason. */
static void trn_finish(ofx_t *x, int eof) {
  char why[256], q[OFX_QUOTE_MAX + 4];
  x->trn_open = 0;
  if (x->stop) return;
  if (x->rows < INT32_MAX) x->rows++;
  if (eof) {
    deliver(x, NULL, "the file ends inside this transaction (no </STMTTRN>): the file looks truncated");
    return;
  }
  if (trn_scratch(x) != 0) return;
  char *dtposted = take(x, x->f[F_DTPOSTED]);
  char *trnamt = take(x, x->f[F_TRNAMT]);
  char *cursym = take(x, x->f[F_CURSYM]);
  char *curdef = take(x, x->curdef);
  ingest_row_t row;
  memset(&row, 0, sizeof(row));
  row.line = x->trn_line;
  if (dtposted == NULL) {
    deliver(x, NULL, "missing DTPOSTED (the date the transaction was posted)");
    return;
  }
  if (ofx_date(dtposted, row.date) != 0) {
    snprintf(why, sizeof(why), "DTPOSTED '%s' is not a date (expected YYYYMMDD)", quote(dtposted, q));
    deliver(x, NULL, why);
    return;
  }
  if (trnamt == NULL) {
    deliver(x, NULL, "missing TRNAMT (the amount)");
    return;
  }
  const char *currency = NULL;
  if (cursym != NULL) {
    if (!iso_code(cursym)) {
      snprintf(why, sizeof(why), "CURRENCY/CURSYM '%s' is not an ISO 4217 currency code", quote(cursym, q));
      deliver(x, NULL, why);
      return;
    }
    currency = cursym;
  } else if (curdef != NULL) {
    if (!iso_code(curdef)) {
      snprintf(why, sizeof(why), "the statement's CURDEF '%s' is not an ISO 4217 currency code", quote(curdef, q));
      deliver(x, NULL, why);
      return;
    }
    currency = curdef;
  }
  const char *exp_code = currency ? currency : x->default_currency;
  int exponent = exp_code ? currency_exponent(exp_code) : 2;
  switch (ofx_amount(trnamt, exponent, &row.amount_minor)) {
  case AMT_OK: break;
  case AMT_DECIMALS:
    snprintf(why, sizeof(why), "TRNAMT '%s' has more decimals than %s allows (%d)", quote(trnamt, q),
             exp_code ? exp_code : "the currency", exponent);
    deliver(x, NULL, why);
    return;
  case AMT_RANGE:
    snprintf(why, sizeof(why), "TRNAMT '%s' is too large", quote(trnamt, q));
    deliver(x, NULL, why);
    return;
  default:
    snprintf(why, sizeof(why), "TRNAMT '%s' is not a number", quote(trnamt, q));
    deliver(x, NULL, why);
    return;
  }
  if (x->flip_sign) row.amount_minor = -row.amount_minor;
  char *name = take(x, x->f[F_NAME]);
  char *payee = take(x, x->f[F_PAYEE_NAME]);
  char *memo = take(x, x->f[F_MEMO]);
  char *checknum = take(x, x->f[F_CHECKNUM]);
  char *refnum = take(x, x->f[F_REFNUM]);
  row.currency = currency;
  row.merchant = payee ? payee : name;
  row.description = memo ? memo : row.merchant;
  row.payment_method = payment_method(take(x, x->f[F_TRNTYPE]));
  row.reference = checknum ? checknum : refnum;
  row.bank_txn_id = take(x, x->f[F_FITID]);
  deliver(x, &row, NULL);
}

/* ---- Elements ---------------------------------------------------------------- */

static const struct {
  const char *name;
  int kind;
} aggregates[] = {
    {"OFX", K_OFX},
    {"STMTRS", K_STMT},
    {"CCSTMTRS", K_STMT},
    {"INVSTMTRS", K_STMT},
    {"STMTTRN", K_TRN},
    {"PAYEE", K_PAYEE},
    {"CURRENCY", K_CURRENCY},
    /* Known aggregates whose own leaves we do not read. */
    {"ORIGCURRENCY", K_OTHER},
    {"SIGNONMSGSRSV1", K_OTHER},
    {"SONRS", K_OTHER},
    {"STATUS", K_OTHER},
    {"FI", K_OTHER},
    {"BANKMSGSRSV1", K_OTHER},
    {"CREDITCARDMSGSRSV1", K_OTHER},
    {"INVSTMTMSGSRSV1", K_OTHER},
    {"STMTTRNRS", K_OTHER},
    {"CCSTMTTRNRS", K_OTHER},
    {"INVSTMTTRNRS", K_OTHER},
    {"BANKACCTFROM", K_OTHER},
    {"CCACCTFROM", K_OTHER},
    {"INVACCTFROM", K_OTHER},
    {"BANKACCTTO", K_OTHER},
    {"CCACCTTO", K_OTHER},
    {"BANKTRANLIST", K_OTHER},
    {"INVTRANLIST", K_OTHER},
    {"INVBANKTRAN", K_OTHER},
    {"INVPOSLIST", K_OTHER},
    {"INVBAL", K_OTHER},
    {"LEDGERBAL", K_OTHER},
    {"AVAILBAL", K_OTHER},
    {"BALLIST", K_OTHER},
    {"BAL", K_OTHER},
    {"IMAGEDATA", K_OTHER},
    {"BANKTRANLISTP", K_OTHER}, /* pending transactions (OFX 2.2): not booked, not read */
    {"STMTTRNP", K_OTHER},
};

/* Leaves that may be written empty without an end tag ("<MEMO>" then the next
 * tag): known, so they are not taken for aggregates. */
static const char *const leaves[] = {
    "TRNTYPE",    "DTPOSTED", "DTUSER",        "DTAVAIL",     "TRNAMT",   "FITID",     "CORRECTFITID", "CORRECTACTION",
    "SRVRTID",    "CHECKNUM", "REFNUM",        "SIC",         "PAYEEID",  "NAME",      "EXTDNAME",     "MEMO",
    "CURSYM",     "CURRATE",  "INV401KSOURCE", "CURDEF",      "BANKID",   "BRANCHID",  "ACCTID",       "ACCTTYPE",
    "ACCTKEY",    "DTSTART",  "DTEND",         "BALAMT",      "DTASOF",   "CODE",      "SEVERITY",     "MESSAGE",
    "DTSERVER",   "LANGUAGE", "ORG",           "FID",         "TRNUID",   "CLTCOOKIE", "MKTGINFO",     "DTPROFUP",
    "DTACCTUP",   "INTU.BID", "INTU.USERID",   "ADDR1",       "ADDR2",    "ADDR3",     "CITY",         "STATE",
    "POSTALCODE", "COUNTRY",  "PHONE",         "SUBACCTFUND", "BROKERID", "DESC",      "VALUE",        "BALTYPE",
};

static int kind_of(const uint8_t *name, size_t n) {
  for (size_t i = 0; i < sizeof(aggregates) / sizeof(aggregates[0]); i++)
    if (eq_ci(name, n, aggregates[i].name)) return aggregates[i].kind;
  return K_UNKNOWN;
}

static int is_leaf(const uint8_t *name, size_t n) {
  for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++)
    if (eq_ci(name, n, leaves[i])) return 1;
  return 0;
}

static void on_close(ofx_t *x, const ofx_elem_t *e, int eof) {
  if (e->kind == K_TRN && x->trn_open)
    trn_finish(x, eof);
  else if (e->kind == K_STMT)
    x->curdef.p = NULL, x->curdef.n = 0;
}

/* Pops the stack down to `depth` entries, closing each element. */
static void pop_to(ofx_t *x, int depth, int eof) {
  while (x->depth > depth && x->st == SC_OK) {
    x->depth--;
    on_close(x, &x->stack[x->depth], eof);
  }
}

static void push(ofx_t *x, const uint8_t *name, size_t n, int kind, int32_t line) {
  if (kind == K_TRN && x->trn_open) {
    /* A <STMTTRN> inside an open one: the previous one lacked its end tag. */
    for (int i = x->depth - 1; i >= 0; i--) {
      if (x->stack[i].kind == K_TRN) {
        pop_to(x, i, 0);
        break;
      }
    }
    if (x->stop) return;
  }
  if (x->depth >= OFX_MAX_DEPTH) {
    fail(x, SC_RESOURCE_EXHAUSTED, "OFX elements nest deeper than %d levels at line %d (limit); not a statement",
         OFX_MAX_DEPTH, (int)line);
    return;
  }
  if (kind == K_TRN) {
    x->trn_open = 1;
    x->trn_line = line;
    memset(x->f, 0, sizeof(x->f));
  } else if (kind == K_STMT) {
    x->curdef.p = NULL, x->curdef.n = 0;
  }
  ofx_elem_t *e = &x->stack[x->depth++];
  e->name = name;
  e->name_len = n;
  e->kind = kind;
}

static int same_name(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  if (an != bn) return 0;
  for (size_t i = 0; i < an; i++)
    if (to_upper(a[i]) != to_upper(b[i])) return 0;
  return 1;
}

static void end_tag(ofx_t *x, const uint8_t *name, size_t n) {
  for (int i = x->depth - 1; i >= 0; i--) {
    if (same_name(x->stack[i].name, x->stack[i].name_len, name, n)) {
      pop_to(x, i, 0);
      return;
    }
  }
  /* An end tag nothing opened: ignored (tolerance for sloppy exporters). */
}

static void set_field(ofx_slice_t *f, ofx_slice_t v) {
  if (f->p == NULL) *f = v; /* the first occurrence wins */
}

static void leaf(ofx_t *x, const uint8_t *name, size_t n, const uint8_t *text, size_t text_len, int32_t line) {
  ofx_slice_t v = trim(text, text_len);
  if (v.n > OFX_MAX_VALUE) {
    fail(x, SC_RESOURCE_EXHAUSTED, "the value of <%.*s> at line %d is longer than %d bytes (limit)", (int)n,
         (const char *)name, (int)line, OFX_MAX_VALUE);
    return;
  }
  int ctx = K_UNKNOWN;
  for (int i = x->depth - 1; i >= 0 && ctx == K_UNKNOWN; i--)
    ctx = x->stack[i].kind;
  switch (ctx) {
  case K_TRN: {
    static const struct {
      const char *name;
      int field;
    } fields[] = {{"TRNTYPE", F_TRNTYPE}, {"DTPOSTED", F_DTPOSTED}, {"TRNAMT", F_TRNAMT},     {"FITID", F_FITID},
                  {"NAME", F_NAME},       {"MEMO", F_MEMO},         {"CHECKNUM", F_CHECKNUM}, {"REFNUM", F_REFNUM}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
      if (eq_ci(name, n, fields[i].name)) {
        set_field(&x->f[fields[i].field], v);
        break;
      }
    }
    break;
  }
  case K_PAYEE:
    if (x->trn_open && eq_ci(name, n, "NAME")) set_field(&x->f[F_PAYEE_NAME], v);
    break;
  case K_CURRENCY:
    if (x->trn_open && eq_ci(name, n, "CURSYM")) set_field(&x->f[F_CURSYM], v);
    break;
  case K_STMT:
    if (eq_ci(name, n, "CURDEF")) x->curdef = v;
    break;
  default: break;
  }
}

/* ---- Tokenizer ----------------------------------------------------------- */

enum { T_START, T_EMPTY, T_END, T_SKIP, T_INCOMPLETE };

typedef struct ofx_tok {
  int kind;
  const uint8_t *name;
  size_t name_len;
  size_t end; /* just past the markup */
} ofx_tok_t;

/* The next '<' at or after `from` that starts markup, or n. A '<' followed by
 * anything else is text. */
static size_t find_markup(const ofx_t *x, size_t from) {
  while (from < x->n) {
    const uint8_t *q = memchr(x->d + from, '<', x->n - from);
    if (q == NULL) return x->n;
    size_t at = (size_t)(q - x->d);
    if (at + 1 >= x->n) return at;
    uint8_t c = x->d[at + 1];
    if (is_alpha(c) || c == '_' || c == '/' || c == '!' || c == '?') return at;
    from = at + 1;
  }
  return x->n;
}

/* Reads a name at `at`; returns its length, 0 if none, or SIZE_MAX when it
 * is longer than the limit. */
static size_t read_name(const ofx_t *x, size_t at) {
  size_t k = 0;
  while (at + k < x->n && is_name_char(x->d[at + k])) {
    if (++k > OFX_MAX_NAME) return SIZE_MAX;
  }
  return k;
}

/* The end of a tag: just past its '>', or at a '<' that begins before one
 * (a tag missing its '>'). n when the data ends first. */
static size_t tag_end(const ofx_t *x, size_t from, int *self_closing) {
  for (size_t i = from; i < x->n; i++) {
    if (x->d[i] == '>') {
      if (self_closing) *self_closing = i > from && x->d[i - 1] == '/';
      return i + 1;
    }
    if (x->d[i] == '<') return i;
  }
  return x->n;
}

static int markup(ofx_t *x, size_t at, ofx_tok_t *t) {
  const uint8_t *d = x->d;
  size_t n = x->n;
  memset(t, 0, sizeof(*t));
  t->kind = T_INCOMPLETE;
  if (at + 1 >= n) return 0;
  if (d[at + 1] == '!' || d[at + 1] == '?') {
    const char *close = d[at + 1] == '?' ? "?>" : ">";
    if (n - at >= 4 && memcmp(d + at, "<!--", 4) == 0)
      close = "-->";
    else if (n - at >= 9 && memcmp(d + at, "<![CDATA[", 9) == 0)
      close = "]]>";
    size_t e = find(d, n, at + 2, close);
    if (e >= n) return 0;
    t->kind = T_SKIP;
    t->end = e + strlen(close);
    return 0;
  }
  int is_end = d[at + 1] == '/';
  size_t name_at = at + 1 + (size_t)is_end;
  size_t k = read_name(x, name_at);
  if (k == SIZE_MAX) {
    fail(x, SC_RESOURCE_EXHAUSTED, "an element name at line %d is longer than %d characters (limit); not OFX",
         (int)line_at(x, at), OFX_MAX_NAME);
    return -1;
  }
  int self_closing = 0;
  size_t e = tag_end(x, name_at + k, is_end ? NULL : &self_closing);
  if (e >= n) return 0;
  t->name = d + name_at;
  t->name_len = k;
  t->end = e;
  if (k == 0)
    t->kind = T_SKIP; /* "</>" and the like */
  else
    t->kind = is_end ? T_END : self_closing ? T_EMPTY : T_START;
  return 0;
}

/* ---- Header -------------------------------------------------------------- */

static int is_utf8_label(const uint8_t *p, size_t n) { return eq_ci(p, n, "UTF-8") || eq_ci(p, n, "UTF8"); }

/* Finds the body and the text encoding. Not OFX -> SC_INVALID_ARGUMENT. */
static sc_status_t header(ofx_t *x, size_t *body, sc_err_t *err) {
  const uint8_t *d = x->d;
  size_t n = x->n, pos = 0;
  int declared_utf8 = 0;
  if (n >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF)
    pos = 3;
  else if (n >= 2 && ((d[0] == 0xFF && d[1] == 0xFE) || (d[0] == 0xFE && d[1] == 0xFF))) {
    sc_err_set(err, "the file is UTF-16 text; OFX files are read as UTF-8 or Windows-1252: export it again or "
                    "convert it to UTF-8");
    return SC_INVALID_ARGUMENT;
  }
  while (pos < n && is_space(d[pos]))
    pos++;
  if (starts_ci(d + pos, n - pos, "OFXHEADER")) {
    /* KEY:VALUE pairs, one a line (or, from some banks, all on one line). */
    size_t lt = pos;
    while (lt < n && d[lt] != '<' && lt - pos <= OFX_MAX_HEADER)
      lt++;
    if (lt - pos > OFX_MAX_HEADER) {
      sc_err_set(err, "not an OFX document: the OFXHEADER header runs past %d bytes without an element",
                 OFX_MAX_HEADER);
      return SC_INVALID_ARGUMENT;
    }
    if (lt >= n) {
      sc_err_set(err, "not an OFX document: an OFXHEADER header but no <OFX> element (the file may be truncated)");
      return SC_INVALID_ARGUMENT;
    }
    for (size_t i = pos; i < lt;) {
      while (i < lt && is_space(d[i]))
        i++;
      size_t s = i;
      while (i < lt && !is_space(d[i]))
        i++;
      const uint8_t *colon = memchr(d + s, ':', i - s);
      if (colon == NULL) continue;
      size_t kl = (size_t)(colon - (d + s));
      const uint8_t *v = colon + 1;
      size_t vl = i - s - kl - 1;
      if ((eq_ci(d + s, kl, "ENCODING") || eq_ci(d + s, kl, "CHARSET")) && is_utf8_label(v, vl)) declared_utf8 = 1;
    }
    pos = lt;
  } else if (starts_ci(d + pos, n - pos, "<?xml")) {
    size_t e = find(d, n, pos, "?>");
    if (e >= n || e - pos > OFX_MAX_HEADER) {
      sc_err_set(err, "not an OFX document: the XML declaration is not closed");
      return SC_INVALID_ARGUMENT;
    }
    declared_utf8 = 1; /* XML's default */
    for (size_t i = pos; i + 8 < e; i++) {
      if (!starts_ci(d + i, e - i, "encoding")) continue;
      size_t j = i + 8;
      while (j < e && (is_space(d[j]) || d[j] == '='))
        j++;
      if (j < e && (d[j] == '"' || d[j] == '\'')) {
        uint8_t qc = d[j++];
        size_t s = j;
        while (j < e && d[j] != qc)
          j++;
        declared_utf8 = is_utf8_label(d + s, j - s);
      }
      break;
    }
  } else if (!starts_ci(d + pos, n - pos, "<?OFX") && !starts_ci(d + pos, n - pos, "<OFX>")) {
    sc_err_set(err, "not an OFX document: OFX files begin with an OFXHEADER:100 header, an <?xml ...?><?OFX "
                    "OFXHEADER=\"200\" ...?> declaration or an <OFX> element");
    return SC_INVALID_ARGUMENT;
  } else {
    declared_utf8 = 1;
  }
  x->utf8 = declared_utf8 || looks_utf8(d, n, pos);
  *body = pos;
  return SC_OK;
}

/* ---- The parse ----------------------------------------------------------- */

sc_status_t ingest_parse_ofx(const uint8_t *data, size_t len, const ingest_opts_t *opts, sc_arena_t *arena,
                             ingest_row_cb cb, void *ctx, ingest_result_t *res, sc_err_t *err) {
  ofx_t x;
  memset(&x, 0, sizeof(x));
  if (res != NULL) {
    memset(res, 0, sizeof(*res));
    res->format = INGEST_FORMAT_OFX;
    ingest_mapping_init(&res->mapping);
  }
  if (data == NULL || len == 0) {
    sc_err_set(err, "not an OFX document: the file is empty");
    return SC_INVALID_ARGUMENT;
  }
  if (len > OFX_MAX_BYTES) {
    sc_err_set(err, "the OFX file is %zu bytes; the limit is %zu", len, OFX_MAX_BYTES);
    return SC_RESOURCE_EXHAUSTED;
  }
  x.d = data;
  x.n = len;
  x.line = 1;
  x.arena = arena;
  x.cb = cb;
  x.ctx = ctx;
  x.err = err;
  x.st = SC_OK;
  if (opts != NULL) {
    x.default_currency = opts->default_currency;
    x.max_rows = opts->max_rows;
    x.flip_sign = opts->mapping != NULL && opts->mapping->amount_sign == INGEST_SIGN_POSITIVE_IS_OUT;
    if (res != NULL && opts->mapping != NULL) res->mapping.amount_sign = opts->mapping->amount_sign;
  }
  size_t pos = 0;
  sc_status_t st = header(&x, &pos, err);
  if (st != SC_OK) return st;

  int seen_root = 0, pending = 0;
  ofx_tok_t pend = {0};
  int32_t pend_line = 0;
  while (!x.stop) {
    size_t mk = find_markup(&x, pos);
    const uint8_t *text = x.d + pos;
    size_t text_len = mk - pos;
    ofx_tok_t t = {.kind = T_INCOMPLETE};
    if (mk < x.n && markup(&x, mk, &t) != 0) break;
    if (pending) {
      /* A start tag's meaning shows only now: a leaf when it holds text, is
       * closed at once, or is a leaf name we know; an aggregate otherwise
       * (and always when it is an aggregate we know). */
      pending = 0;
      int kind = kind_of(pend.name, pend.name_len);
      int closes_it = t.kind == T_END && same_name(t.name, t.name_len, pend.name, pend.name_len);
      int aggregate = kind != K_UNKNOWN;
      if (!aggregate && !closes_it && trim(text, text_len).n == 0 && !is_leaf(pend.name, pend.name_len)) aggregate = 1;
      if (aggregate) {
        push(&x, pend.name, pend.name_len, kind, pend_line);
      } else {
        leaf(&x, pend.name, pend.name_len, text, text_len, pend_line);
        if (closes_it && !x.stop) {
          pos = t.end;
          continue;
        }
      }
      if (x.stop) break;
    }
    if (t.kind == T_INCOMPLETE) break;
    if (t.kind == T_START || t.kind == T_EMPTY) {
      if (!seen_root) {
        if (!eq_ci(t.name, t.name_len, "OFX")) {
          sc_err_set(err, "not an OFX document: the first element is <%.*s> at line %d, expected <OFX>",
                     (int)t.name_len, (const char *)t.name, (int)line_at(&x, mk));
          return SC_INVALID_ARGUMENT;
        }
        seen_root = 1;
      }
      int32_t line = line_at(&x, mk);
      if (t.kind == T_START) {
        pending = 1;
        pend = t;
        pend_line = line;
      } else {
        int kind = kind_of(t.name, t.name_len);
        if (kind != K_UNKNOWN) {
          push(&x, t.name, t.name_len, kind, line);
          pop_to(&x, x.depth - 1, 0);
        } else {
          leaf(&x, t.name, t.name_len, t.name, 0, line);
        }
      }
    } else if (t.kind == T_END) {
      end_tag(&x, t.name, t.name_len);
    }
    pos = t.end;
  }
  if (x.st == SC_OK && !seen_root) {
    sc_err_set(err, "not an OFX document: no <OFX> element found");
    return SC_INVALID_ARGUMENT;
  }
  if (x.st == SC_OK && !x.stop) pop_to(&x, 0, 1);
  if (res != NULL) res->rows_read = x.rows;
  return x.st;
}
