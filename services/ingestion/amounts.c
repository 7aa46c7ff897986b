/* Money amounts as banks print them, to exact integer minor units.
 *
 * The text is taken apart into decorations (currency symbols and codes, a
 * sign, parentheses, a Dr/Cr marker) around a numeric core of digit groups and
 * separators; the core is checked against the grouping conventions in use
 * (1,234,567.89 / 1.234.567,89 / 1 234 567,89 / 1'234'567.89 / Indian
 * 12,34,567.89) and accumulated in uint64 with overflow checks. No floating
 * point anywhere: a statement amount is a decimal, not a binary fraction.
 */
#include <stdint.h>
#include <string.h>

#include "statement.h"

int ingest_currency_exponent(const char *code) {
  /* ISO 4217 minor units that are not 2. */
  static const char *const zero[] = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
                                     "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"};
  static const char *const three[] = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"};
  static const char *const four[] = {"CLF", "UYW"};
  if (code == NULL) return 2;
  char up[4];
  size_t n = 0;
  for (; code[n] != '\0' && n < 4; n++) {
    char c = code[n];
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    if (c < 'A' || c > 'Z') return 2;
    if (n < 3) up[n] = c;
  }
  if (n != 3) return 2;
  up[3] = '\0';
  for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
    if (memcmp(up, zero[i], 4) == 0) return 0;
  for (size_t i = 0; i < sizeof three / sizeof three[0]; i++)
    if (memcmp(up, three[i], 4) == 0) return 3;
  for (size_t i = 0; i < sizeof four / sizeof four[0]; i++)
    if (memcmp(up, four[i], 4) == 0) return 4;
  return 2;
}

/* Length of a white-space character at p (ASCII blank, NBSP, figure, thin,
 * hair and narrow no-break spaces), 0 if none. */
static size_t space_at(const char *p, const char *e) {
  const unsigned char *u = (const unsigned char *)p;
  size_t n = (size_t)(e - p);
  if (n >= 1 && (u[0] == ' ' || u[0] == '\t')) return 1;
  if (n >= 2 && u[0] == 0xC2 && u[1] == 0xA0) return 2;
  if (n >= 3 && u[0] == 0xE2 && u[1] == 0x80 && (u[2] == 0x87 || u[2] == 0x89 || u[2] == 0x8A || u[2] == 0xAF))
    return 3;
  return 0;
}

/* The same, for a character ending at e. */
static size_t space_before(const char *b, const char *e) {
  const unsigned char *u = (const unsigned char *)e;
  size_t n = (size_t)(e - b);
  if (n >= 1 && (u[-1] == ' ' || u[-1] == '\t')) return 1;
  if (n >= 2 && u[-2] == 0xC2 && u[-1] == 0xA0) return 2;
  if (n >= 3 && u[-3] == 0xE2 && u[-2] == 0x80 && (u[-1] == 0x87 || u[-1] == 0x89 || u[-1] == 0x8A || u[-1] == 0xAF))
    return 3;
  return 0;
}

/* Currency symbols (UTF-8): ₹ € £ ¥ ₩ ₽ ₺ ₪ ₫ ₱ ₦ $. */
static const char *const k_symbols[] = {"\xE2\x82\xB9", "\xE2\x82\xAC", "\xC2\xA3",     "\xC2\xA5",
                                        "\xE2\x82\xA9", "\xE2\x82\xBD", "\xE2\x82\xBA", "\xE2\x82\xAA",
                                        "\xE2\x82\xAB", "\xE2\x82\xB1", "\xE2\x82\xA6", "$"};

static size_t symbol_at(const char *p, const char *e) {
  for (size_t i = 0; i < sizeof k_symbols / sizeof k_symbols[0]; i++) {
    size_t n = strlen(k_symbols[i]);
    if ((size_t)(e - p) >= n && memcmp(p, k_symbols[i], n) == 0) return n;
  }
  return 0;
}

static size_t symbol_before(const char *b, const char *e) {
  for (size_t i = 0; i < sizeof k_symbols / sizeof k_symbols[0]; i++) {
    size_t n = strlen(k_symbols[i]);
    if ((size_t)(e - b) >= n && memcmp(e - n, k_symbols[i], n) == 0) return n;
  }
  return 0;
}

/* U+2212 MINUS SIGN, which typeset exports use. */
static int minus_at(const char *p, const char *e) {
  return e - p >= 3 && (unsigned char)p[0] == 0xE2 && (unsigned char)p[1] == 0x88 && (unsigned char)p[2] == 0x92;
}
static int minus_before(const char *b, const char *e) {
  return e - b >= 3 && (unsigned char)e[-3] == 0xE2 && (unsigned char)e[-2] == 0x88 && (unsigned char)e[-1] == 0x92;
}

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int word_is(const char *w, size_t n, const char *lit) {
  size_t m = strlen(lit);
  if (n != m) return 0;
  for (size_t i = 0; i < n; i++)
    if (lower(w[i]) != lit[i]) return 0;
  return 1;
}

enum word_kind { W_NONE, W_CURRENCY, W_DR, W_CR };

/* A word of letters (with an optional trailing '.') around the number: a
 * currency code (three capitals, "Rs", "Rs.") or a Dr/Cr marker. */
static enum word_kind classify_word(const char *w, size_t n) {
  if (n > 0 && w[n - 1] == '.') n--;
  if (word_is(w, n, "dr")) return W_DR;
  if (word_is(w, n, "cr")) return W_CR;
  if (word_is(w, n, "rs") || word_is(w, n, "inr")) return W_CURRENCY;
  if (n == 3 && is_upper(w[0]) && is_upper(w[1]) && is_upper(w[2])) return W_CURRENCY;
  return W_NONE;
}

typedef struct decor {
  int minus, plus, paren_open, paren_close, dr, cr;
} decor_t;

/* Strips the decorations before the number. Returns 0, or -1 when something
 * else is there. */
static int strip_prefix(const char **pp, const char *e, decor_t *d) {
  const char *p = *pp;
  while (p < e && !is_digit(*p)) {
    size_t n;
    if ((n = space_at(p, e)) > 0) {
      p += n;
    } else if (*p == '(') {
      d->paren_open++;
      p++;
    } else if (*p == '-') {
      d->minus++;
      p++;
    } else if (minus_at(p, e)) {
      d->minus++;
      p += 3;
    } else if (*p == '+') {
      d->plus++;
      p++;
    } else if ((n = symbol_at(p, e)) > 0) {
      p += n;
    } else if ((*p == '.' || *p == ',') && p + 1 < e && is_digit(p[1])) {
      break; /* ".50" */
    } else if (is_alpha(*p)) {
      const char *w = p;
      while (p < e && is_alpha(*p))
        p++;
      if (p < e && *p == '$' && p - w <= 3) { /* US$, HK$, A$ */
        p++;
        continue;
      }
      if (p < e && *p == '.') p++;
      switch (classify_word(w, (size_t)(p - w))) {
      case W_CURRENCY: break;
      case W_DR: d->dr++; break;
      case W_CR: d->cr++; break;
      case W_NONE: return -1;
      }
    } else {
      return -1;
    }
  }
  *pp = p;
  return 0;
}

/* The same after the number, walking back from the end. */
static int strip_suffix(const char *b, const char **ep, decor_t *d) {
  const char *e = *ep;
  while (e > b && !is_digit(e[-1])) {
    size_t n;
    if ((n = space_before(b, e)) > 0) {
      e -= n;
    } else if (e[-1] == '-' && e - b >= 3 && (e[-2] == ',' || e[-2] == '.') && is_digit(e[-3])) {
      e -= 2; /* "50,-": fifty, no cents */
    } else if (e[-1] == ')') {
      d->paren_close++;
      e--;
    } else if (e[-1] == '-') {
      d->minus++;
      e--;
    } else if (minus_before(b, e)) {
      d->minus++;
      e -= 3;
    } else if (e[-1] == '+') {
      d->plus++;
      e--;
    } else if ((n = symbol_before(b, e)) > 0) {
      e -= n;
    } else if ((e[-1] == '.' || e[-1] == ',') && e - b >= 2 && is_digit(e[-2])) {
      break; /* "12." is 12 */
    } else if (is_alpha(e[-1]) || e[-1] == '.') {
      const char *we = e;
      if (e[-1] == '.') e--;
      while (e > b && is_alpha(e[-1]))
        e--;
      if (e == we || (e == we - 1 && *e == '.')) return -1;
      switch (classify_word(e, (size_t)(we - e))) {
      case W_CURRENCY: break;
      case W_DR: d->dr++; break;
      case W_CR: d->cr++; break;
      case W_NONE: return -1;
      }
    } else {
      return -1;
    }
  }
  *ep = e;
  return 0;
}

#define MAX_GROUPS 24

typedef struct core {
  const char *group[MAX_GROUPS]; /* digit runs */
  size_t glen[MAX_GROUPS];
  char sep[MAX_GROUPS]; /* sep[i] follows group[i]: '.', ',', ' ' (any space), '\'' */
  int n;                /* groups */
} core_t;

/* Splits "1,23,456.78" into digit groups and the separators between them.
 * Returns 0, or -1 for anything that is not digits and single separators. */
static int split_core(const char *p, const char *e, core_t *c) {
  c->n = 0;
  for (;;) {
    if (c->n == MAX_GROUPS) return -1;
    const char *g = p;
    while (p < e && is_digit(*p))
      p++;
    c->group[c->n] = g;
    c->glen[c->n] = (size_t)(p - g);
    c->sep[c->n] = 0;
    c->n++;
    if (p == e) return 0;
    size_t n;
    char s;
    if (*p == '.' || *p == ',' || *p == '\'') {
      s = *p;
      n = 1;
    } else if ((n = space_at(p, e)) > 0) {
      s = ' ';
    } else if (e - p >= 3 && (unsigned char)p[0] == 0xE2 && (unsigned char)p[1] == 0x80 &&
               (unsigned char)p[2] == 0x99) { /* ’ as in 1’234.50 */
      s = '\'';
      n = 3;
    } else {
      return -1;
    }
    /* A group may be empty only at the very start (".50") or the very end ("12.") */
    if (c->glen[c->n - 1] == 0 && c->n > 1) return -1;
    c->sep[c->n - 1] = s;
    p += n;
  }
}

/* Grouping of the integer part: groups[0..n) joined by one separator kind.
 * Western: 1-3 digits, then threes. Indian: 1-2 digits, then twos, then a
 * final three. */
static int grouping_ok(const core_t *c, int n) {
  if (n <= 1) return 1;
  char s = c->sep[0];
  for (int i = 0; i < n - 1; i++)
    if (c->sep[i] != s) return 0;
  if (c->glen[0] < 1 || c->glen[0] > 3) return 0;
  int western = 1;
  for (int i = 1; i < n; i++)
    if (c->glen[i] != 3) western = 0;
  if (western) return 1;
  if (c->glen[0] > 2 || c->glen[n - 1] != 3) return 0;
  for (int i = 1; i < n - 1; i++)
    if (c->glen[i] != 2) return 0;
  return 1;
}

/* The common case, "-1234.56": no decoration, no grouping, at most the
 * currency's decimals, at most 14 integer digits (no overflow possible).
 * Returns -1 for anything else, which the full parser then reads. */
static int plain_amount(const char *s, char dec, int exponent, int64_t *minor) {
  const char *p = s;
  int neg = *p == '-';
  p += neg;
  int64_t v = 0;
  int nd = 0, fd = 0;
  while (is_digit(*p)) {
    if (++nd > 14) return -1;
    v = v * 10 + (*p++ - '0');
  }
  if (nd == 0) return -1;
  if (*p == dec) {
    p++;
    while (is_digit(*p)) {
      if (++fd > exponent) return -1;
      v = v * 10 + (*p++ - '0');
    }
  }
  if (*p != '\0') return -1;
  for (; fd < exponent; fd++)
    v *= 10;
  *minor = neg ? -v : v;
  return 0;
}

int ingest_parse_amount(const char *text, char decimal, int exponent, int64_t *minor, const char **reason) {
  static const char *const not_number = "is not a number";
  const char *why = not_number;
  if (text == NULL || minor == NULL || exponent < 0 || exponent > 4) goto fail;
  if (plain_amount(text, decimal == ',' ? ',' : '.', exponent, minor) == 0) {
    if (reason != NULL) *reason = NULL;
    return 0;
  }
  const char *p = text, *e = text + strlen(text);
  decor_t d = {0};
  size_t n;
  while (p < e && (n = space_at(p, e)) > 0)
    p += n;
  while (e > p && (n = space_before(p, e)) > 0)
    e -= n;
  if (p == e) {
    why = "is empty";
    goto fail;
  }
  if (strip_prefix(&p, e, &d) != 0 || p == e) goto fail;
  if (strip_suffix(p, &e, &d) != 0 || p == e) goto fail;

  core_t c;
  if (split_core(p, e, &c) != 0) goto fail;
  int n_dot = 0, n_comma = 0, n_other = 0;
  for (int i = 0; i < c.n - 1; i++) {
    if (c.sep[i] == '.')
      n_dot++;
    else if (c.sep[i] == ',')
      n_comma++;
    else
      n_other++;
  }
  char last = c.n > 1 ? c.sep[c.n - 2] : 0;
  /* Which separator is the decimal point (0: none). */
  char dec = 0;
  if (decimal == '.' || decimal == ',') {
    if (last == decimal) dec = decimal;
    int n_dec = decimal == '.' ? n_dot : n_comma;
    if (n_dec > (dec ? 1 : 0)) goto fail;
  } else if (n_dot > 0 && n_comma > 0) {
    if (last != '.' && last != ',') goto fail;
    dec = last;
    if ((dec == '.' ? n_dot : n_comma) != 1) goto fail;
  } else if (n_dot == 1 && last == '.') {
    dec = '.';
  } else if (n_comma == 1 && last == ',') {
    /* "1,234" is a thousand in most exports; "12,50" and "0,500" are not. */
    if (c.glen[c.n - 1] != 3 || (c.n == 2 && c.glen[0] == 1 && c.group[0][0] == '0') || n_other > 0) dec = ',';
  }
  int n_int = dec ? c.n - 1 : c.n;
  if (!grouping_ok(&c, n_int)) goto fail;
  /* A lone empty group is only "." or ","; a trailing empty group only after
   * the decimal point. */
  size_t digits = 0;
  for (int i = 0; i < c.n; i++)
    digits += c.glen[i];
  if (digits == 0) goto fail;
  if (!dec && c.glen[c.n - 1] == 0) goto fail;
  if (dec && n_int == 1 && c.glen[0] == 0 && c.glen[1] == 0) goto fail;

  if (d.paren_open != d.paren_close || d.paren_open > 1 || d.minus > 1 || d.plus > 1 || d.dr + d.cr > 1) goto fail;
  int negative = d.minus + d.paren_open + d.dr;
  if (negative > 1 || (negative && (d.plus || d.cr))) {
    why = "has conflicting signs";
    goto fail;
  }

  uint64_t v = 0;
  const uint64_t max = (uint64_t)INT64_MAX;
  for (int i = 0; i < n_int; i++) {
    for (size_t k = 0; k < c.glen[i]; k++) {
      unsigned dg = (unsigned)(c.group[i][k] - '0');
      if (v > (max - dg) / 10) {
        why = "is too large";
        goto fail;
      }
      v = v * 10 + dg;
    }
  }
  uint64_t frac = 0;
  if (dec) {
    const char *f = c.group[c.n - 1];
    size_t fl = c.glen[c.n - 1];
    for (size_t k = 0; k < fl; k++) {
      if ((int)k < exponent)
        frac = frac * 10 + (uint64_t)(f[k] - '0');
      else if (f[k] != '0') {
        why = "has more decimal places than the currency allows";
        goto fail;
      }
    }
    for (size_t k = fl; (int)k < exponent; k++)
      frac *= 10;
  }
  for (int k = 0; k < exponent; k++) {
    if (v > max / 10) {
      why = "is too large";
      goto fail;
    }
    v *= 10;
  }
  if (v > max - frac) {
    why = "is too large";
    goto fail;
  }
  v += frac;
  *minor = negative ? -(int64_t)v : (int64_t)v;
  if (reason != NULL) *reason = NULL;
  return 0;
fail:
  if (reason != NULL) *reason = why;
  return -1;
}
