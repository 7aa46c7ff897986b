/* The table engine: from physical rows of cells (CSV, XLSX) to statement rows.
 *
 * Pass 1 finds the header row (after any preamble) by the names banks give
 * their columns, or takes it from the mapping; it then reads the whole data
 * region once to infer the date format of the date column, the decimal
 * separator of each amount column and the sign convention, and to learn
 * where the data ends (summary lines follow it). Pass 2 rewinds and emits
 * each row, or rejects it with its line and a reason. Nothing is kept per
 * row, so memory is the source's one row plus this engine's fixed state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "statement.h"

enum role {
  R_DATE,
  R_AMOUNT,
  R_DEBIT,
  R_CREDIT,
  R_DESC,
  R_MERCHANT,
  R_CURRENCY,
  R_REF,
  R_PAYMENT,
  R_DIRECTION,
  N_MAPPED,             /* roles of ingest_mapping_t */
  R_BALANCE = N_MAPPED, /* recognised so that it takes no other role */
  R_IGNORE,
  N_ROLES
};

static const char *const k_role_field[N_MAPPED] = {
    "mapping.dateColumn",          "mapping.amountColumn",   "mapping.debitColumn",    "mapping.creditColumn",
    "mapping.descriptionColumn",   "mapping.merchantColumn", "mapping.currencyColumn", "mapping.referenceColumn",
    "mapping.paymentMethodColumn", "mapping.directionColumn"};

static ingest_column_t *map_col(ingest_mapping_t *m, int r) {
  switch (r) {
  case R_DATE: return &m->date;
  case R_AMOUNT: return &m->amount;
  case R_DEBIT: return &m->debit;
  case R_CREDIT: return &m->credit;
  case R_DESC: return &m->description;
  case R_MERCHANT: return &m->merchant;
  case R_CURRENCY: return &m->currency;
  case R_REF: return &m->reference;
  case R_PAYMENT: return &m->payment_method;
  default: return &m->direction;
  }
}

/* Header names, normalised (lower case, runs of anything but letters and
 * digits as one space, parenthesised parts and a trailing "in EUR" removed).
 * Rank: lower wins when several columns could take a role ("Date" over
 * "Value Date"). */
typedef struct synonym {
  const char *name;
  unsigned char role, rank;
} synonym_t;

static const synonym_t k_synonyms[] = {
    /* dates: transaction date first, then booking/posting, then value date */
    {"date", R_DATE, 0},
    {"datum", R_DATE, 0},
    {"fecha", R_DATE, 0},
    {"data", R_DATE, 1},
    {"txn date", R_DATE, 1},
    {"transaction date", R_DATE, 1},
    {"tran date", R_DATE, 1},
    {"trans date", R_DATE, 1},
    {"trx date", R_DATE, 1},
    {"date of transaction", R_DATE, 1},
    {"started date", R_DATE, 1},
    {"date op\xc3\xa9ration", R_DATE, 1},
    {"date operation", R_DATE, 1},
    {"fecha operaci\xc3\xb3n", R_DATE, 1},
    {"posting date", R_DATE, 2},
    {"post date", R_DATE, 2},
    {"posted date", R_DATE, 2},
    {"booking date", R_DATE, 2},
    {"book date", R_DATE, 2},
    {"buchungstag", R_DATE, 2},
    {"buchungsdatum", R_DATE, 2},
    {"buchung", R_DATE, 2},
    {"completed date", R_DATE, 2},
    {"data contabile", R_DATE, 2},
    {"value date", R_DATE, 3},
    {"value dt", R_DATE, 3},
    {"value dat", R_DATE, 3},
    {"valuta", R_DATE, 3},
    {"valutadatum", R_DATE, 3},
    {"wertstellung", R_DATE, 3},
    {"date valeur", R_DATE, 3},
    {"data valuta", R_DATE, 3},
    {"fecha valor", R_DATE, 3},
    /* a signed amount */
    {"amount", R_AMOUNT, 0},
    {"amt", R_AMOUNT, 0},
    {"transaction amount", R_AMOUNT, 0},
    {"txn amount", R_AMOUNT, 0},
    {"txn amt", R_AMOUNT, 0},
    {"betrag", R_AMOUNT, 0},
    {"umsatz", R_AMOUNT, 0},
    {"montant", R_AMOUNT, 0},
    {"importe", R_AMOUNT, 0},
    {"importo", R_AMOUNT, 0},
    {"bedrag", R_AMOUNT, 0},
    {"billing amount", R_AMOUNT, 1},
    /* money out */
    {"debit", R_DEBIT, 0},
    {"debits", R_DEBIT, 0},
    {"debit amount", R_DEBIT, 0},
    {"debit amt", R_DEBIT, 0},
    {"withdrawal", R_DEBIT, 0},
    {"withdrawals", R_DEBIT, 0},
    {"withdrawal amt", R_DEBIT, 0},
    {"withdrawal amount", R_DEBIT, 0},
    {"paid out", R_DEBIT, 0},
    {"money out", R_DEBIT, 0},
    {"outflow", R_DEBIT, 0},
    {"dr", R_DEBIT, 1},
    {"dr amount", R_DEBIT, 0},
    {"soll", R_DEBIT, 1},
    {"d\xc3\xa9"
     "bit",
     R_DEBIT, 0},
    {"out", R_DEBIT, 2},
    /* money in */
    {"credit", R_CREDIT, 0},
    {"credits", R_CREDIT, 0},
    {"credit amount", R_CREDIT, 0},
    {"credit amt", R_CREDIT, 0},
    {"deposit", R_CREDIT, 0},
    {"deposits", R_CREDIT, 0},
    {"deposit amt", R_CREDIT, 0},
    {"deposit amount", R_CREDIT, 0},
    {"paid in", R_CREDIT, 0},
    {"money in", R_CREDIT, 0},
    {"inflow", R_CREDIT, 0},
    {"cr", R_CREDIT, 1},
    {"cr amount", R_CREDIT, 0},
    {"haben", R_CREDIT, 1},
    {"cr\xc3\xa9"
     "dit",
     R_CREDIT, 0},
    {"in", R_CREDIT, 2},
    /* description */
    {"description", R_DESC, 0},
    {"narration", R_DESC, 0},
    {"narrative", R_DESC, 0},
    {"details", R_DESC, 1}, /* Chase puts DEBIT/CREDIT under "Details", text under "Description" */
    {"particulars", R_DESC, 0},
    {"transaction details", R_DESC, 0},
    {"transaction description", R_DESC, 0},
    {"transaction remarks", R_DESC, 0},
    {"transaction particulars", R_DESC, 0},
    {"remarks", R_DESC, 1},
    {"memo", R_DESC, 1},
    {"verwendungszweck", R_DESC, 0},
    {"libell\xc3\xa9", R_DESC, 0},
    {"libelle", R_DESC, 0},
    {"concepto", R_DESC, 0},
    {"descrizione", R_DESC, 0},
    {"omschrijving", R_DESC, 0},
    {"naam omschrijving", R_DESC, 0},
    {"buchungstext", R_DESC, 2},
    {"mededelingen", R_DESC, 2},
    {"notes", R_DESC, 3},
    /* merchant or counterparty */
    {"merchant", R_MERCHANT, 0},
    {"merchant name", R_MERCHANT, 0},
    {"payee", R_MERCHANT, 0},
    {"payee name", R_MERCHANT, 0},
    {"payee payer", R_MERCHANT, 1},
    {"counter party", R_MERCHANT, 1},
    {"counterparty", R_MERCHANT, 1},
    {"counterparty name", R_MERCHANT, 1},
    {"beguenstigter zahlungspflichtiger", R_MERCHANT, 1},
    {"beg\xc3\xbcnstigter zahlungspflichtiger", R_MERCHANT, 1},
    {"auftraggeber empf\xc3\xa4nger", R_MERCHANT, 1},
    {"auftraggeber beg\xc3\xbcnstigter", R_MERCHANT, 1},
    {"zahlungsempf\xc3\xa4nger in", R_MERCHANT, 1},
    {"empf\xc3\xa4nger", R_MERCHANT, 2},
    {"name", R_MERCHANT, 2},
    /* currency */
    {"currency", R_CURRENCY, 0},
    {"ccy", R_CURRENCY, 0},
    {"curr", R_CURRENCY, 0},
    {"currency code", R_CURRENCY, 0},
    {"w\xc3\xa4hrung", R_CURRENCY, 0},
    {"waehrung", R_CURRENCY, 0},
    {"devise", R_CURRENCY, 0},
    {"divisa", R_CURRENCY, 0},
    /* reference */
    {"reference", R_REF, 0},
    {"ref", R_REF, 0},
    {"ref no", R_REF, 0},
    {"reference no", R_REF, 0},
    {"reference number", R_REF, 0},
    {"ref no cheque no", R_REF, 0},
    {"chq ref no", R_REF, 0},
    {"chq ref number", R_REF, 0},
    {"ref number", R_REF, 0},
    {"cheque ref number", R_REF, 0},
    {"cheque ref no", R_REF, 0},
    {"chq no", R_REF, 1},
    {"chqno", R_REF, 1},
    {"cheque no", R_REF, 1},
    {"cheque number", R_REF, 1},
    {"check number", R_REF, 1},
    {"transaction id", R_REF, 1},
    {"txn id", R_REF, 1},
    {"transaction reference", R_REF, 0},
    {"kundenreferenz", R_REF, 1},
    {"kundenreferenz end to end", R_REF, 1},
    {"r\xc3\xa9"
     "f\xc3\xa9rence",
     R_REF, 0},
    {"referencia", R_REF, 0},
    /* payment method */
    {"mode", R_PAYMENT, 0},
    {"payment mode", R_PAYMENT, 0},
    {"payment method", R_PAYMENT, 0},
    {"payment type", R_PAYMENT, 0},
    {"transaction mode", R_PAYMENT, 0},
    {"transaction type", R_PAYMENT, 1},
    {"txn type", R_PAYMENT, 1},
    {"type", R_PAYMENT, 1},
    {"umsatztyp", R_PAYMENT, 1},
    {"vorgang", R_PAYMENT, 1},
    {"mutatiesoort", R_PAYMENT, 1},
    /* direction */
    {"dr cr", R_DIRECTION, 0},
    {"cr dr", R_DIRECTION, 0},
    {"drcr", R_DIRECTION, 0},
    {"debit credit", R_DIRECTION, 0},
    {"credit debit", R_DIRECTION, 0},
    {"debit credit indicator", R_DIRECTION, 0},
    {"credit debit indicator", R_DIRECTION, 0},
    {"af bij", R_DIRECTION, 0},
    {"soll haben", R_DIRECTION, 0},
    {"s h", R_DIRECTION, 0},
    {"direction", R_DIRECTION, 0},
    /* recognised, not used */
    {"balance", R_BALANCE, 0},
    {"closing balance", R_BALANCE, 0},
    {"running balance", R_BALANCE, 0},
    {"running bal", R_BALANCE, 0},
    {"available balance", R_BALANCE, 0},
    {"bal", R_BALANCE, 0},
    {"saldo", R_BALANCE, 0},
    {"kontostand", R_BALANCE, 0},
    {"solde", R_BALANCE, 0},
    {"local amount", R_IGNORE, 0},
};

/* Text that marks a summary line ("Total", "Closing balance"): such lines
 * around the data are skipped, not rejected. Normalised like headers. */
static const char *const k_summary_words[] = {
    "total",
    "totals",
    "sub total",
    "subtotal",
    "grand total",
    "opening balance",
    "closing balance",
    "opening bal",
    "closing bal",
    "balance",
    "brought forward",
    "carried forward",
    "b f",
    "c f",
    "statement summary",
    "summary",
    "end of statement",
    "saldo",
    "anfangssaldo",
    "endsaldo",
    "kontostand",
    "summe",
    "solde",
    "count",
};

/* ---- small text helpers ------------------------------------------------ */

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || is_upper(c); }
static char lower(char c) { return is_upper(c) ? (char)(c - 'A' + 'a') : c; }
static char upper(char c) { return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c; }

/* Length of a white-space character at p (ASCII, NBSP, thin spaces), or 0. */
static size_t space_len(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  if (u[0] == ' ' || u[0] == '\t' || u[0] == '\r' || u[0] == '\n') return 1;
  if (u[0] == 0xC2 && u[1] == 0xA0) return 2;
  if (u[0] == 0xE2 && u[1] == 0x80 && (u[2] == 0x87 || u[2] == 0x89 || u[2] == 0x8A || u[2] == 0xAF)) return 3;
  return 0;
}

/* Trims white space: [*b, *e). */
static void trim(const char *s, const char **b, const char **e) {
  const char *p = s;
  size_t n;
  while ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x80) { /* else no leading space, at once */
    if ((n = space_len(p)) == 0) break;
    p += n;
  }
  const char *q = p + strlen(p);
  if (q > p && (unsigned char)q[-1] > ' ' && (unsigned char)q[-1] < 0x80) { /* no trailing space */
    *b = p;
    *e = q;
    return;
  }
  while (q > p) {
    unsigned char c = (unsigned char)q[-1];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
      q--;
    else if (q - p >= 2 && c == 0xA0 && (unsigned char)q[-2] == 0xC2)
      q -= 2;
    else if (q - p >= 3 && (unsigned char)q[-3] == 0xE2 && (unsigned char)q[-2] == 0x80 &&
             (c == 0x87 || c == 0x89 || c == 0x8A || c == 0xAF))
      q -= 3;
    else
      break;
  }
  *b = p;
  *e = q;
}

static int is_blank(const char *s) {
  unsigned char c = (unsigned char)s[0];
  if (c > ' ' && c < 0x80) return 0; /* the common cases, at once */
  if (c == '\0') return 1;
  size_t n;
  while ((n = space_len(s)) > 0)
    s += n;
  return *s == '\0';
}

/* Trimmed, ASCII-case-insensitive equality (mapping names, repeated headers). */
static int name_eq(const char *a, const char *b) {
  const char *ab, *ae, *bb, *be;
  trim(a, &ab, &ae);
  trim(b, &bb, &be);
  if (ae - ab != be - bb) return 0;
  for (; ab < ae; ab++, bb++)
    if (lower(*ab) != lower(*bb)) return 0;
  return 1;
}

/* A currency code from a header's "(INR)", "(€)", "in EUR": three capitals
 * (not "(Net)") or an unambiguous symbol. */
static void currency_from_text(const char *b, const char *e, char cur[4]) {
  while (b < e && (*b == ' ' || *b == '\t'))
    b++;
  while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  size_t n = (size_t)(e - b);
  if (n == 3 && is_upper(b[0]) && is_upper(b[1]) && is_upper(b[2])) {
    memcpy(cur, b, 3);
    cur[3] = '\0';
  } else if (n == 3 && memcmp(b, "\xE2\x82\xB9", 3) == 0) {
    memcpy(cur, "INR", 4);
  } else if (n == 3 && memcmp(b, "\xE2\x82\xAC", 3) == 0) {
    memcpy(cur, "EUR", 4);
  } else if (n == 2 && memcmp(b, "\xC2\xA3", 2) == 0) {
    memcpy(cur, "GBP", 4);
  }
}

/* Normalises a header cell into out (see k_synonyms); a currency named in it
 * goes to cur ("" when none). */
static void normalize(const char *s, char *out, size_t cap, char cur[4]) {
  size_t n = 0;
  int space = 0;
  cur[0] = '\0';
  for (const char *p = s; *p != '\0' && n + 2 < cap; p++) {
    char c = *p;
    if (c == '(' || c == '[') {
      const char *q = p + 1;
      while (*q != '\0' && *q != ')' && *q != ']')
        q++;
      currency_from_text(p + 1, q, cur);
      if (*q == '\0') break;
      p = q;
      space = n > 0;
      continue;
    }
    if (is_alpha(c) || is_digit(c) || (unsigned char)c >= 0x80) {
      if (space) out[n++] = ' ';
      space = 0;
      out[n++] = lower(c);
    } else {
      space = n > 0;
    }
  }
  out[n] = '\0';
  /* "Umsatz in EUR" -> "umsatz" (EUR) */
  if (n > 7 && memcmp(out + n - 7, " in ", 4) == 0 && is_alpha(out[n - 3]) && is_alpha(out[n - 2]) &&
      is_alpha(out[n - 1])) {
    const char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    if (e - s >= 3) currency_from_text(e - 3, e, cur);
    out[n - 7] = '\0';
  }
}

static const synonym_t *lookup(const char *norm) {
  if (norm[0] == '\0') return NULL;
  for (size_t i = 0; i < sizeof k_synonyms / sizeof k_synonyms[0]; i++)
    if (k_synonyms[i].name[0] == norm[0] && strcmp(k_synonyms[i].name, norm) == 0) return &k_synonyms[i];
  return NULL;
}

/* Whether any cell of the row reads as a summary label. */
static int is_summary_row(const ingest_cell_t *cells, int n) {
  char norm[64], cur[4];
  for (int i = 0; i < n; i++) {
    if (cells[i].text[0] == '\0' || strlen(cells[i].text) > 200) continue;
    normalize(cells[i].text, norm, sizeof norm, cur);
    for (size_t k = 0; k < sizeof k_summary_words / sizeof k_summary_words[0]; k++) {
      size_t l = strlen(k_summary_words[k]);
      if (strncmp(norm, k_summary_words[k], l) == 0 && (norm[l] == '\0' || norm[l] == ' ')) return 1;
    }
  }
  return 0;
}

/* -1 money out, +1 money in, 0 not a direction. */
static int direction_of(const char *s) {
  static const char *const out_words[] = {"dr", "d", "db", "debit", "withdrawal", "af", "s", "soll"};
  static const char *const in_words[] = {"cr", "c", "credit", "deposit", "bij", "h", "haben"};
  char norm[32], cur[4];
  if (strlen(s) > 24) return 0;
  normalize(s, norm, sizeof norm, cur);
  for (size_t i = 0; i < sizeof out_words / sizeof out_words[0]; i++)
    if (strcmp(norm, out_words[i]) == 0) return -1;
  for (size_t i = 0; i < sizeof in_words / sizeof in_words[0]; i++)
    if (strcmp(norm, in_words[i]) == 0) return 1;
  return 0;
}

/* A currency written in an amount cell: "INR 1,234.00", "1.234,56 EUR",
 * "₹1,234", "Rs. 500", "€12". */
static void currency_in_amount(const char *s, char cur[4]) {
  cur[0] = '\0';
  size_t n = strlen(s);
  if (n == 0) return;
  if ((is_digit(s[0]) || (s[0] == '-' && is_digit(s[1]))) && !is_alpha(s[n - 1]) && (unsigned char)s[n - 1] < 0x80)
    return; /* "-1234.50": nothing around the number */
  const char *b, *e;
  trim(s, &b, &e);
  while (b < e && (*b == '-' || *b == '+' || *b == '('))
    b++;
  while (e > b && (e[-1] == '-' || e[-1] == ')'))
    e--;
  if (e - b < 2) return;
  if (e - b >= 4 && is_upper(b[0]) && is_upper(b[1]) && is_upper(b[2]) && !is_alpha(b[3])) {
    currency_from_text(b, b + 3, cur);
  } else if (is_alpha(b[0]) && lower(b[0]) == 'r' && lower(b[1]) == 's' && (e - b == 2 || !is_alpha(b[2]))) {
    memcpy(cur, "INR", 4);
  } else if (e - b >= 4 && is_upper(e[-1]) && is_upper(e[-2]) && is_upper(e[-3]) && !is_alpha(e[-4])) {
    if (!((e[-2] == 'D' || e[-2] == 'C') && e[-1] == 'R' && e[-3] == ' ')) currency_from_text(e - 3, e, cur);
  }
  if (cur[0] != '\0') return;
  if (e - b >= 3 && (memcmp(b, "\xE2\x82\xB9", 3) == 0 || memcmp(e - 3, "\xE2\x82\xB9", 3) == 0))
    memcpy(cur, "INR", 4);
  else if (e - b >= 3 && (memcmp(b, "\xE2\x82\xAC", 3) == 0 || memcmp(e - 3, "\xE2\x82\xAC", 3) == 0))
    memcpy(cur, "EUR", 4);
  else if (memcmp(b, "\xC2\xA3", 2) == 0 || memcmp(e - 2, "\xC2\xA3", 2) == 0)
    memcpy(cur, "GBP", 4);
}

/* A plain decimal from a spreadsheet's numeric cell ("-1234.5", "1.5E-3"),
 * rounded half away from zero to `exponent` places: the cell held a binary
 * double, so digits past the currency's are representation noise. */
static int parse_number_cell(const char *s, int exponent, int64_t *minor) {
  const char *p, *e;
  trim(s, &p, &e);
  int neg = 0;
  if (p < e && (*p == '-' || *p == '+')) neg = *p++ == '-';
  char digits[48];
  int nd = 0, point = -1, any = 0;
  for (; p < e && (is_digit(*p) || *p == '.'); p++) {
    if (*p == '.') {
      if (point >= 0) return -1;
      point = nd;
      continue;
    }
    any = 1;
    if (nd == 0 && *p == '0' && point < 0) continue; /* leading zeros */
    if (nd == (int)sizeof digits) return -1;
    digits[nd++] = *p;
  }
  if (!any) return -1;
  if (point < 0) point = nd;
  int exp10 = 0;
  if (p < e && (*p == 'e' || *p == 'E')) {
    p++;
    int eneg = 0;
    if (p < e && (*p == '-' || *p == '+')) eneg = *p++ == '-';
    if (p == e) return -1;
    for (; p < e && is_digit(*p); p++) {
      exp10 = exp10 * 10 + (*p - '0');
      if (exp10 > 400) return -1;
    }
    if (eneg) exp10 = -exp10;
  }
  if (p != e) return -1;
  /* value = 0.d1d2... * 10^(point + exp10); keep point + exp10 + exponent digits */
  int keep = point + exp10 + exponent;
  if (keep > 18) return -1;
  uint64_t v = 0;
  for (int i = 0; i < keep; i++)
    v = v * 10 + (uint64_t)(i < nd ? digits[i] - '0' : 0);
  if (keep >= 0 && keep < nd && digits[keep] >= '5') v++;
  if (keep < 0) v = 0;
  if (v > (uint64_t)INT64_MAX) return -1;
  *minor = neg ? -(int64_t)v : (int64_t)v;
  return 0;
}

/* The cell's text for a quote in a message: at most 40 bytes, cut on a
 * character boundary, control characters as spaces. */
static void snippet(const char *s, char *out, size_t cap) {
  size_t n = 0, max = cap - 4 < 40 ? cap - 4 : 40;
  const char *b, *e;
  trim(s, &b, &e);
  size_t len = (size_t)(e - b);
  size_t take = len;
  if (take > max) {
    take = max;
    while (take > 0 && ((unsigned char)b[take] & 0xC0) == 0x80)
      take--;
  }
  for (size_t i = 0; i < take; i++)
    out[n++] = ((unsigned char)b[i] < 0x20) ? ' ' : b[i];
  if (take < len) {
    memcpy(out + n, "...", 3);
    n += 3;
  }
  out[n] = '\0';
}

/* A bounded string builder for messages. */
typedef struct sbuf {
  char *p;
  size_t cap, len;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n) {
  if (b->len + 1 >= b->cap) return;
  size_t room = b->cap - 1 - b->len;
  if (n > room) n = room;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}
static void sb_str(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

/* ---- the engine's state --------------------------------------------------- */

typedef struct amtstat {
  uint64_t dot, comma;  /* votes for the decimal separator */
  uint64_t neg, dr, cr; /* values with a minus or parentheses, a Dr, a Cr marker */
} amtstat_t;

/* A statement's date column holds few distinct texts (a month has 31 days,
 * a year 366): a cache of their readings spares most parses. It is two-way
 * set-associative and large enough (100 KiB) that dates cycling through a
 * year or two rarely evict each other. Replaying a cached reading in pass 1 is exact: once a value
 * has been added, the formats still in the running all read it alike, so
 * adding it again changes only the counts. */
#define DCACHE_SETS 1024 /* a power of two; two entries each */
#define DCACHE_KEY 24
typedef struct dcache {
  uint32_t tag[DCACHE_SETS * 2];         /* high bits of the key's hash */
  char key[DCACHE_SETS * 2][DCACHE_KEY]; /* "": empty */
  char date[DCACHE_SETS * 2][11];
  const char *why[DCACHE_SETS * 2];
  signed char effect[DCACHE_SETS * 2];
  unsigned char older[DCACHE_SETS]; /* the way to replace next */
  int last;                         /* the entry found last (rows of one day come together) */
} dcache_t;

/* The entry holding s (*hit 1), or the one to put s in (*hit 0); -1 when s
 * is too long to cache. The hash mixes the first and last 8 bytes and the
 * length: every byte of a key up to 16 bytes long. */
static int dcache_find(dcache_t *c, const char *s, int *hit) {
  if (strcmp(c->key[c->last], s) == 0 && s[0] != '\0') {
    *hit = 1;
    return c->last;
  }
  size_t n = strlen(s);
  if (n + 1 > DCACHE_KEY) return -1;
  uint64_t a = 0, b = 0;
  if (n >= 8) {
    memcpy(&a, s, 8);
    memcpy(&b, s + n - 8, 8);
  } else {
    for (size_t i = 0; i < n; i++)
      a |= (uint64_t)(unsigned char)s[i] << (8 * i);
  }
  uint64_t h = a ^ (b * 0x9E3779B97F4A7C15u) ^ n;
  h ^= h >> 33; /* MurmurHash3's fmix64 */
  h *= 0xFF51AFD7ED558CCDu;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53u;
  h ^= h >> 33;
  int set = (int)(h & (DCACHE_SETS - 1));
  uint32_t tag = (uint32_t)(h >> 32);
  for (int w = 0; w < 2; w++) {
    int i = set * 2 + w;
    if (c->tag[i] == tag && memcmp(c->key[i], s, n + 1) == 0) {
      c->older[set] = (unsigned char)(1 - w);
      *hit = 1;
      return c->last = i;
    }
  }
  int i = set * 2 + c->older[set];
  c->older[set] = (unsigned char)(1 - c->older[set]);
  c->tag[i] = tag;
  memcpy(c->key[i], s, n + 1);
  *hit = 0;
  return c->last = i;
}

typedef struct engine {
  const ingest_table_src_t *src;
  const ingest_opts_t *opts;
  sc_arena_t *arena;
  ingest_row_cb cb;
  void *ctx;
  ingest_result_t *res;
  sc_err_t *err;
  ingest_mapping_t given; /* opts->mapping or an unset one */

  int col[N_MAPPED];         /* resolved columns, -1: none */
  int explicit_amounts;      /* the mapping named amount, debit or credit */
  char hdr_cur[N_MAPPED][4]; /* currency named in the header of a role's column */
  int32_t header_line;       /* 0: none */
  int n_header;
  const char **header; /* header cells, arena copies; NULL: none */
  int by_index;        /* date and amounts mapped by position: data starts at the first date */
  int32_t first_data_line;

  /* pass 1 */
  ingest_date_inferrer_t dates;
  char date_first[48], date_unread[48], date_mixed[48]; /* for messages */
  int32_t last_data_line;
  uint64_t n_rows;
  amtstat_t amt[3]; /* amount, debit, credit */
  uint64_t pay_dir, pay_other;
  char decimal[3];
  int unmarked_out; /* AUTO: a column marking credits "Cr" and nothing else: unmarked values are money out */

  dcache_t cache1; /* date texts seen: what adding them did (0 unread, 1 read, 2 odd) */

  /* pass 2 */
  char date_format[32];
  dcache_t cache2;      /* date texts seen: the date, or why not */
  int default_exponent; /* of opts->default_currency */
  char last_cur[4];     /* the last row currency and its exponent */
  int last_exponent;
  char *scratch;
  size_t scratch_cap;
} engine_t;

/* A cell's text, "" past the row's end or for an unmapped column. Callers
 * have set error rows aside already. */
static const char *cell_at(const ingest_cell_t *cells, int n, int col) {
  return (unsigned)col < (unsigned)n ? cells[col].text : "";
}
static ingest_cell_kind_t kind_at(const ingest_cell_t *cells, int n, int col) {
  if (col < 0 || col >= n) return INGEST_CELL_TEXT;
  return cells[col].kind;
}

static int is_error_row(const ingest_cell_t *cells, int n) { return n == 1 && cells[0].kind == INGEST_CELL_ERROR; }

/* Resolves the roles on a candidate header row: explicit names and indexes
 * first, then known names for the rest. Returns 1 when the row is a header
 * (a date and an amount, debit or credit column), 0 when not, -1 when an
 * explicit name is not among its cells (*missing set). */
static int resolve(engine_t *E, const ingest_cell_t *cells, int n, int *col, char hdr_cur[][4], int *missing) {
  int taken[INGEST_MAX_COLUMNS] = {0};
  int rank[N_MAPPED];
  for (int r = 0; r < N_MAPPED; r++) {
    col[r] = -1;
    rank[r] = 255;
    hdr_cur[r][0] = '\0';
  }
  for (int r = 0; r < N_MAPPED; r++) {
    const ingest_column_t *mc = map_col(&E->given, r);
    if (mc->name != NULL) {
      int found = -1;
      for (int i = 0; i < n && found < 0; i++)
        if (cells[i].kind != INGEST_CELL_ERROR && name_eq(cells[i].text, mc->name)) found = i;
      if (found < 0) { /* the same after normalising ("Amount (INR)" for "amount inr") */
        char a[96], b[96], c1[4], c2[4];
        normalize(mc->name, a, sizeof a, c1);
        for (int i = 0; i < n && found < 0; i++) {
          if (cells[i].kind == INGEST_CELL_ERROR) continue;
          normalize(cells[i].text, b, sizeof b, c2);
          if (a[0] != '\0' && strcmp(a, b) == 0) found = i;
        }
      }
      if (found < 0) {
        *missing = r;
        return -1;
      }
      col[r] = found;
      rank[r] = 0;
      taken[found] = 1;
    } else if (mc->index >= 0) {
      col[r] = mc->index;
      rank[r] = 0;
      if (mc->index < INGEST_MAX_COLUMNS) taken[mc->index] = 1;
    }
  }
  for (int i = 0; i < n && i < INGEST_MAX_COLUMNS; i++) {
    if (taken[i] || cells[i].kind == INGEST_CELL_ERROR) continue;
    const char *t = cells[i].text;
    if (t[0] == '\0' || strlen(t) > 80) continue;
    char norm[96], cur[4];
    normalize(t, norm, sizeof norm, cur);
    const synonym_t *s = lookup(norm);
    if (s == NULL || s->role >= N_MAPPED) continue;
    int r = s->role;
    if (E->explicit_amounts && (r == R_AMOUNT || r == R_DEBIT || r == R_CREDIT)) continue;
    if (map_col(&E->given, r)->name != NULL || map_col(&E->given, r)->index >= 0) continue;
    if (s->rank < rank[r]) {
      col[r] = i;
      rank[r] = s->rank;
      memcpy(hdr_cur[r], cur, 4);
    }
  }
  for (int r = 0; r < N_MAPPED; r++) /* currency in explicitly mapped headers too */
    if (col[r] >= 0 && col[r] < n && hdr_cur[r][0] == '\0' && cells[col[r]].kind != INGEST_CELL_ERROR) {
      char norm[96];
      if (strlen(cells[col[r]].text) <= 80) normalize(cells[col[r]].text, norm, sizeof norm, hdr_cur[r]);
    }
  return col[R_DATE] >= 0 && (col[R_AMOUNT] >= 0 || col[R_DEBIT] >= 0 || col[R_CREDIT] >= 0);
}

/* "Date, Narration, Withdrawal Amt., ..." of a row into b. */
static void list_columns(sbuf_t *b, const char *const *names, int n) {
  int first = 1;
  for (int i = 0; i < n; i++) {
    if (names[i] == NULL || is_blank(names[i])) continue;
    char s[64];
    snippet(names[i], s, sizeof s);
    if (!first) sb_str(b, ", ");
    sb_str(b, s);
    first = 0;
  }
  if (first) sb_str(b, "(none)");
}

static const char **copy_cells(engine_t *E, const ingest_cell_t *cells, int n, size_t max_len) {
  const char **names = sc_arena_calloc(E->arena, (size_t)(n > 0 ? n : 1), sizeof *names);
  if (names == NULL) return NULL;
  for (int i = 0; i < n; i++) {
    const char *t = cells[i].kind == INGEST_CELL_ERROR ? "" : cells[i].text;
    size_t l = strlen(t);
    names[i] = sc_arena_strndup(E->arena, t, l < max_len ? l : max_len);
    if (names[i] == NULL) return NULL;
  }
  return names;
}

static sc_status_t oom(engine_t *E) {
  sc_err_set(E->err, "out of memory reading the statement");
  return SC_RESOURCE_EXHAUSTED;
}

/* Calls next(), turning the source's failure into a status. */
static int next_row(engine_t *E, int32_t *line, const ingest_cell_t **cells, int *n, sc_status_t *st) {
  int r = E->src->next(E->src->impl, line, cells, n, E->err);
  if (r < 0)
    *st = SC_INVALID_ARGUMENT;
  else if (r > 0 && *n > INGEST_MAX_COLUMNS) {
    sc_err_set(E->err, "line %d has %d columns; at most %d are supported", (int)*line, *n, INGEST_MAX_COLUMNS);
    *st = SC_RESOURCE_EXHAUSTED;
    r = -1;
  }
  return r;
}

static sc_status_t do_rewind(engine_t *E) {
  if (E->src->rewind(E->src->impl, E->err) != 0) return SC_INVALID_ARGUMENT;
  return SC_OK;
}

static void set_header(engine_t *E, const int *col, char hdr_cur[][4]) {
  memcpy(E->col, col, sizeof E->col);
  memcpy(E->hdr_cur, hdr_cur, sizeof E->hdr_cur);
}

static int date_readable(const char *text, ingest_cell_kind_t kind) {
  if (is_blank(text)) return 0;
  if (kind == INGEST_CELL_DATE) return 1;
  ingest_date_inferrer_t probe;
  ingest_date_infer_init(&probe);
  return ingest_date_infer_add(&probe, text);
}

/* Pass 1, part 1, when the date and amount columns are given by position:
 * the data starts at the first row with a date there; the row before it, if
 * any, names the columns. The source is left rewound. */
static sc_status_t find_data_by_index(engine_t *E) {
  sc_status_t st = SC_OK;
  int32_t line, cand_line = 0;
  const ingest_cell_t *cells;
  int n, r;
  int32_t scanned = 0;
  for (int k = 0; k < N_MAPPED; k++) {
    const ingest_column_t *mc = map_col(&E->given, k);
    E->col[k] = mc->name == NULL ? mc->index : -1;
  }
  while ((r = next_row(E, &line, &cells, &n, &st)) > 0) {
    if (is_error_row(cells, n)) continue;
    if (date_readable(cell_at(cells, n, E->col[R_DATE]), kind_at(cells, n, E->col[R_DATE]))) {
      E->first_data_line = line;
      break;
    }
    int nonblank = 0;
    for (int i = 0; i < n; i++)
      nonblank += !is_blank(cells[i].text);
    cand_line = nonblank >= 2 ? line : 0;
    if (++scanned >= INGEST_HEADER_SCAN_ROWS) break;
  }
  if (r < 0) return st;
  if (E->first_data_line == 0) {
    sc_err_set(E->err,
               "no row has a date in column %d (mapping.dateColumn, 0-based) in the first %d lines; check the "
               "mapping or set date_format",
               E->col[R_DATE], (int)scanned);
    return SC_INVALID_ARGUMENT;
  }
  if ((st = do_rewind(E)) != SC_OK) return st;
  if (cand_line > 0) { /* copy the header's names */
    while ((r = next_row(E, &line, &cells, &n, &st)) > 0 && line < cand_line) {
    }
    if (r < 0) return st;
    if (r > 0 && line == cand_line) {
      E->header = copy_cells(E, cells, n, (size_t)1 << 20);
      if (E->header == NULL) return oom(E);
      E->n_header = n;
      E->header_line = line;
    }
    if ((st = do_rewind(E)) != SC_OK) return st;
  }
  return SC_OK;
}

/* Pass 1, part 1: the header row. On success the source is positioned after
 * it (or rewound, when the mapping gives the columns by position). */
static sc_status_t find_header(engine_t *E) {
  sc_status_t st = SC_OK;
  int32_t line;
  const ingest_cell_t *cells;
  int n, r;
  int col[N_MAPPED];
  char hdr_cur[N_MAPPED][4];
  int missing = -1;
  /* for the error message: the widest row seen, and rows the source could not read */
  const char **best = NULL;
  int best_n = 0, best_nonblank = 0;
  int32_t best_line = 0;
  int n_bad = 0;
  int32_t bad_line = 0;
  char bad_reason[160] = "";
  int32_t scanned = 0;
  int want = E->given.header_line;
  int want_bad = 0;

  const ingest_mapping_t *g = &E->given;
  if (want <= 0 && g->date.index >= 0 && g->date.name == NULL && g->amount.name == NULL && g->debit.name == NULL &&
      g->credit.name == NULL && (g->amount.index >= 0 || g->debit.index >= 0 || g->credit.index >= 0)) {
    E->by_index = 1;
    return find_data_by_index(E);
  }

  while ((r = next_row(E, &line, &cells, &n, &st)) > 0) {
    if (is_error_row(cells, n)) {
      if (n_bad++ == 0) {
        bad_line = line;
        snippet(cells[0].text, bad_reason, sizeof bad_reason);
      }
      if (want > 0 && line >= want) {
        want_bad = 1;
        break;
      }
      continue;
    }
    if (want > 0 && line < want) continue;
    int m = -1;
    int is_header = resolve(E, cells, n, col, hdr_cur, &m);
    if (is_header < 0 && missing < 0) missing = m;
    int nonblank = 0;
    for (int i = 0; i < n; i++)
      nonblank += !is_blank(cells[i].text);
    if (is_header > 0 || want > 0) {
      E->header_line = line;
      E->n_header = n;
      E->header = copy_cells(E, cells, n, (size_t)1 << 20);
      if (E->header == NULL) return oom(E);
      if (is_header > 0) {
        set_header(E, col, hdr_cur);
        E->first_data_line = line + 1;
        return SC_OK;
      }
      best = E->header;
      best_n = n;
      best_line = line;
      break; /* the given header line does not name the columns: report it */
    }
    if (nonblank > best_nonblank) {
      best = copy_cells(E, cells, n, 60);
      if (best == NULL) return oom(E);
      best_n = n;
      best_nonblank = nonblank;
      best_line = line;
    }
    if (++scanned >= INGEST_HEADER_SCAN_ROWS) break;
  }
  if (r < 0) return st;

  /* Unknown layout: say what was found and how to map it. */
  char msg[sizeof E->err->msg];
  sbuf_t b = {msg, sizeof msg, 0};
  msg[0] = '\0';
  if (best != NULL && E->res != NULL) {
    E->res->n_columns = best_n < INGEST_MAX_COLUMNS ? best_n : INGEST_MAX_COLUMNS;
    for (int i = 0; i < E->res->n_columns; i++)
      E->res->columns[i] = best[i];
  }
  if (missing >= 0) {
    const ingest_column_t *mc = map_col(&E->given, missing);
    char s[64];
    snippet(mc->name, s, sizeof s);
    sb_str(&b, k_role_field[missing]);
    sb_str(&b, " '");
    sb_str(&b, s);
    sb_str(&b, "' is not a column of this file");
  } else if (want_bad) {
    char s[256];
    snprintf(s, sizeof s, "line %d (mapping.headerLine) could not be read: %s", (int)bad_line, bad_reason);
    sb_str(&b, s);
    n_bad = 0;
  } else if (want > 0 && best == NULL) {
    char s[96];
    snprintf(s, sizeof s, "mapping.headerLine %d is past the end of the file", want);
    sb_str(&b, s);
  } else if (want > 0) {
    char s[96];
    snprintf(s, sizeof s, "line %d (mapping.headerLine) has no date column and amount column", (int)best_line);
    sb_str(&b, s);
  } else if (best == NULL) {
    sb_str(&b, "no transaction table found: the file has no rows with columns");
  } else {
    sb_str(&b, "no transaction table found: no row names a date column and an amount (or debit/credit) column");
  }
  if (best != NULL) {
    char s[32];
    snprintf(s, sizeof s, "; columns found (line %d): ", (int)best_line);
    sb_str(&b, s);
    list_columns(&b, best, best_n);
    if (missing < 0) {
      int c2[N_MAPPED], m2 = -1;
      char cur2[N_MAPPED][4];
      ingest_cell_t tmp[INGEST_MAX_COLUMNS];
      int tn = best_n < INGEST_MAX_COLUMNS ? best_n : INGEST_MAX_COLUMNS;
      for (int i = 0; i < tn; i++)
        tmp[i] = (ingest_cell_t){best[i], INGEST_CELL_TEXT};
      resolve(E, tmp, tn, c2, cur2, &m2);
      if (c2[R_DATE] >= 0 && c2[R_DATE] < tn) {
        char s2[64];
        snippet(best[c2[R_DATE]], s2, sizeof s2);
        sb_str(&b, "; the date column looks like '");
        sb_str(&b, s2);
        sb_str(&b, "' but no amount, debit or credit column is recognised");
      }
    }
  }
  sb_str(&b, "; map the columns with mapping.dateColumn and mapping.amountColumn (or mapping.debitColumn and "
             "mapping.creditColumn), by header name or 0-based index");
  if (want <= 0 && missing < 0) sb_str(&b, ", and mapping.headerLine for the header row");
  if (n_bad > 0) {
    char s[256];
    snprintf(s, sizeof s, "; %d line%s could not be read (line %d: %s)", n_bad, n_bad == 1 ? "" : "s", (int)bad_line,
             bad_reason);
    sb_str(&b, s);
  }
  sc_err_set(E->err, "%s", msg);
  return SC_INVALID_ARGUMENT;
}

/* Votes on the decimal separator of one amount value, and notes its sign
 * markers. */
static void amount_stats(amtstat_t *a, const char *s) {
  /* "-1234.56", "0,5", "120": the common shape, in one tight loop */
  const char *q = s + (*s == '-');
  const char *d0 = q;
  while (is_digit(*q))
    q++;
  if (q > d0) {
    char sep = 0;
    const char *f = q;
    if (*q == '.' || *q == ',') {
      sep = *q;
      f = ++q;
      while (is_digit(*q))
        q++;
    }
    if (*q == '\0' && (sep == 0 || (q > f && q - f != 3))) {
      a->neg += *s == '-';
      if (sep == '.')
        a->dot++;
      else if (sep == ',')
        a->comma++;
      return;
    }
  }
  int n_dot = 0, n_comma = 0;
  char last = 0;
  int after = 0, digits = 0;
  for (const char *p = s; *p != '\0'; p++) {
    char c = *p;
    if (is_digit(c)) {
      after++;
      digits++;
    } else if ((c == '.' || c == ',') && digits > 0 && is_digit(p[1])) {
      if (c == '.')
        n_dot++;
      else
        n_comma++;
      last = c;
      after = 0;
    } else if (c == '-' || c == '(') {
      a->neg++;
    } else if ((c == 'D' || c == 'd') && (p[1] == 'r' || p[1] == 'R')) {
      a->dr++;
    } else if ((c == 'C' || c == 'c') && (p[1] == 'r' || p[1] == 'R')) {
      a->cr++;
    }
  }
  if (n_dot > 0 && n_comma > 0) {
    if (last == '.')
      a->dot++;
    else
      a->comma++;
  } else if (n_comma > 1) {
    a->dot++;
  } else if (n_dot > 1) {
    a->comma++;
  } else if (n_comma == 1 && after != 3) {
    a->comma++;
  } else if (n_dot == 1 && after != 3) {
    a->dot++;
  }
}

/* Looks like a date even if not a real one: 31/02/2026, 2026-13-45,
 * 05 Foo 2026. */
static int date_shaped(const char *s) {
  const char *p, *e;
  trim(s, &p, &e);
  int n = 0;
  while (p < e && is_digit(*p) && n < 5) {
    p++;
    n++;
  }
  if (n < 1 || n > 4 || p == e || (*p != '/' && *p != '-' && *p != '.' && *p != ' ')) return 0;
  p++;
  n = 0;
  if (p < e && is_alpha(*p)) {
    while (p < e && is_alpha(*p) && n < 10) {
      p++;
      n++;
    }
    if (n < 3 || n > 9) return 0;
  } else {
    while (p < e && is_digit(*p) && n < 3) {
      p++;
      n++;
    }
    if (n < 1 || n > 2) return 0;
  }
  if (p == e || (*p != '/' && *p != '-' && *p != '.' && *p != ' ')) return 0;
  p++;
  n = 0;
  while (p < e && is_digit(*p) && n < 5) {
    p++;
    n++;
  }
  return n >= 2 && n <= 4 && (p == e || *p == ' ' || *p == 'T');
}

/* Pass 1, part 2: the data region, for inference. */
static sc_status_t scan_data(engine_t *E) {
  sc_status_t st = SC_OK;
  int32_t line;
  const ingest_cell_t *cells;
  int n, r;
  const int amt_cols[3] = {E->col[R_AMOUNT], E->col[R_DEBIT], E->col[R_CREDIT]};
  while ((r = next_row(E, &line, &cells, &n, &st)) > 0) {
    if (line < E->first_data_line) continue;
    if (++E->n_rows > INGEST_MAX_ROWS) {
      sc_err_set(E->err, "the statement has more than %d rows (line %d); split it into smaller files", INGEST_MAX_ROWS,
                 (int)line);
      return SC_RESOURCE_EXHAUSTED;
    }
    if (is_error_row(cells, n)) {
      E->last_data_line = line;
      continue;
    }
    const char *date = cell_at(cells, n, E->col[R_DATE]);
    ingest_cell_kind_t dkind = kind_at(cells, n, E->col[R_DATE]);
    int date_blank = is_blank(date);
    int any_amount = 0;
    for (int k = 0; k < 3; k++) {
      const char *a = cell_at(cells, n, amt_cols[k]);
      if (is_blank(a)) continue;
      any_amount = 1;
      if (kind_at(cells, n, amt_cols[k]) == INGEST_CELL_TEXT) amount_stats(&E->amt[k], a);
    }
    int read = dkind == INGEST_CELL_DATE;
    int hit = 0, slot = -1;
    if (!date_blank && dkind == INGEST_CELL_TEXT && (slot = dcache_find(&E->cache1, date, &hit)) >= 0 && hit) {
      int effect = E->cache1.effect[slot];
      read = effect != 0;
      if (effect == 0)
        E->dates.n_unread++;
      else
        E->dates.n_values++;
      if (effect == 2) E->dates.n_odd++;
    } else if (!date_blank && dkind == INGEST_CELL_TEXT) {
      uint64_t before = E->dates.n_values, odd = E->dates.n_odd;
      read = ingest_date_infer_add(&E->dates, date);
      if (slot >= 0) E->cache1.effect[slot] = (signed char)(!read ? 0 : E->dates.n_odd > odd ? 2 : 1);
      if (read && before == 0 && E->date_first[0] == '\0') snippet(date, E->date_first, sizeof E->date_first);
      if (!read && E->date_unread[0] == '\0' && any_amount) snippet(date, E->date_unread, sizeof E->date_unread);
      if (E->dates.n_odd > odd && E->date_mixed[0] == '\0') snippet(date, E->date_mixed, sizeof E->date_mixed);
    }
    /* The data ends at the last row with an amount and a date (or what
     * should have been one: "31/02/2026" is a row to reject, not a footer). */
    if (any_amount && !date_blank && (read || date_shaped(date))) E->last_data_line = line;
    if (E->col[R_PAYMENT] >= 0 && E->pay_other == 0) {
      const char *pm = cell_at(cells, n, E->col[R_PAYMENT]);
      if (!is_blank(pm)) {
        if (direction_of(pm) != 0)
          E->pay_dir++;
        else
          E->pay_other++;
      }
    }
  }
  return r < 0 ? st : SC_OK;
}

/* Decides the date format, decimal separators and sign conventions from
 * pass 1. */
static sc_status_t decide(engine_t *E) {
  const ingest_opts_t *o = E->opts;
  const char *date_name = E->header != NULL && E->col[R_DATE] < E->n_header ? E->header[E->col[R_DATE]] : "date";
  char dn[64];
  snippet(date_name, dn, sizeof dn);
  if (o->date_format != NULL && o->date_format[0] != '\0') {
    size_t l = strlen(o->date_format);
    if (l >= sizeof E->date_format) {
      sc_err_set(E->err, "date_format '%.40s...' is too long", o->date_format);
      return SC_INVALID_ARGUMENT;
    }
    memcpy(E->date_format, o->date_format, l + 1);
  } else {
    char cands[INGEST_MAX_DATE_CANDIDATES][32];
    int nc = 0;
    int r = ingest_date_infer_finish(&E->dates, E->date_format, cands, &nc);
    if (r == 0) {
      if (E->res != NULL) {
        E->res->date_ambiguous = 1;
        E->res->n_date_candidates = nc;
        memcpy(E->res->date_candidates, cands, sizeof cands);
      }
      char list[160];
      sbuf_t b = {list, sizeof list, 0};
      list[0] = '\0';
      for (int i = 0; i < nc; i++) {
        if (i > 0) sb_str(&b, ", ");
        sb_str(&b, cands[i]);
      }
      sc_err_set(E->err,
                 "the dates in column '%s' (e.g. '%s') fit several formats: %s; every day is 12 or less, so day "
                 "and month cannot be told apart: set date_format to the right one",
                 dn, E->date_first, list);
      return SC_INVALID_ARGUMENT;
    }
    if (r < 0) {
      if (E->dates.n_odd > 0 && E->dates.n_values > 0) {
        sc_err_set(E->err,
                   "the dates in column '%s' do not follow one format ('%s', then '%s'); set date_format (for "
                   "example \"%%d/%%m/%%Y\")",
                   dn, E->date_first, E->date_mixed);
        return SC_INVALID_ARGUMENT;
      }
      if (E->dates.n_values == 0 && E->date_unread[0] != '\0') {
        sc_err_set(E->err,
                   "no known date format reads column '%s' (e.g. '%s'); set date_format in strftime notation (for "
                   "example \"%%d/%%m/%%Y\") or map another column with mapping.dateColumn",
                   dn, E->date_unread);
        return SC_INVALID_ARGUMENT;
      }
      E->date_format[0] = '\0'; /* no text dates (spreadsheet dates, or no rows) */
    }
  }
  for (int k = 0; k < 3; k++) {
    char d = E->given.decimal_separator;
    if (d != '.' && d != ',') d = E->amt[k].comma > E->amt[k].dot ? ',' : '.';
    E->decimal[k] = d;
  }
  /* A single amount column whose credits carry "Cr" and debits nothing (card
   * statements): unmarked values are money out. */
  const amtstat_t *a = &E->amt[0];
  E->unmarked_out =
      E->given.amount_sign == INGEST_SIGN_AUTO && E->col[R_DIRECTION] < 0 && a->cr > 0 && a->dr == 0 && a->neg == 0;
  /* A "Type" column holding only Debit/Credit beside an unsigned amount is
   * the direction, not a payment method. */
  if (E->col[R_DIRECTION] < 0 && E->col[R_AMOUNT] >= 0 && E->col[R_PAYMENT] >= 0 && E->pay_dir > 0 &&
      E->pay_other == 0 && a->neg == 0 && a->dr == 0 && a->cr == 0 && map_col(&E->given, R_PAYMENT)->name == NULL &&
      map_col(&E->given, R_PAYMENT)->index < 0) {
    E->col[R_DIRECTION] = E->col[R_PAYMENT];
    E->col[R_PAYMENT] = -1;
  }
  return SC_OK;
}

/* Fills res with what was found and used. */
static void report(engine_t *E) {
  ingest_result_t *res = E->res;
  if (res == NULL) return;
  memcpy(res->date_format, E->date_format, sizeof res->date_format);
  if (E->header != NULL) {
    res->n_columns = E->n_header < INGEST_MAX_COLUMNS ? E->n_header : INGEST_MAX_COLUMNS;
    for (int i = 0; i < res->n_columns; i++)
      res->columns[i] = E->header[i];
  }
  ingest_mapping_t m = E->given;
  for (int r = 0; r < N_MAPPED; r++) {
    ingest_column_t *c = map_col(&m, r);
    c->index = E->col[r];
    c->name = (E->header != NULL && E->col[r] >= 0 && E->col[r] < E->n_header) ? E->header[E->col[r]] : NULL;
  }
  m.header_line = E->header_line;
  int dk = E->col[R_AMOUNT] >= 0 ? 0 : E->col[R_DEBIT] >= 0 ? 1 : 2;
  m.decimal_separator = E->decimal[dk];
  if (m.amount_sign == INGEST_SIGN_AUTO && E->unmarked_out) m.amount_sign = INGEST_SIGN_POSITIVE_IS_OUT;
  res->mapping = m;
}

/* Copies the trimmed texts a row hands out into the scratch buffer (cells
 * may carry padding; the row's strings must be NUL-terminated). */
static int ensure_scratch(engine_t *E, size_t need) {
  if (need <= E->scratch_cap) return 0;
  size_t cap = E->scratch_cap ? E->scratch_cap : 1024;
  while (cap < need)
    cap *= 2;
  char *p = realloc(E->scratch, cap);
  if (p == NULL) return -1;
  E->scratch = p;
  E->scratch_cap = cap;
  return 0;
}

static int reject(engine_t *E, int32_t line, const char *reason) {
  E->res->rows_read++;
  if (E->cb == NULL) return 0;
  return E->cb(E->ctx, line, NULL, reason);
}

static void amount_reason(char *out, size_t cap, const char *what, const char *text, const char *why) {
  char s[64];
  snippet(text, s, sizeof s);
  snprintf(out, cap, "%s '%s' %s", what, s, why);
}

/* Parses one amount cell to minor units. */
static int cell_amount(const ingest_cell_t *cells, int n, int col, char decimal, int exponent, int64_t *v,
                       const char **why) {
  const char *t = cell_at(cells, n, col);
  if (kind_at(cells, n, col) == INGEST_CELL_NUMBER) {
    *why = "is not a number";
    return parse_number_cell(t, exponent, v);
  }
  return ingest_parse_amount(t, decimal, exponent, v, why);
}

/* Whether an amount carries its own direction: "500.00 Cr", "Dr 12". */
static int has_cr_dr_marker(const char *s) {
  const char *b = s, *e = s + strlen(s);
  while (b < e && (*b == ' ' || *b == '\t'))
    b++;
  while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  if (e - b >= 3 && (lower(b[0]) == 'c' || lower(b[0]) == 'd') && lower(b[1]) == 'r' && !is_alpha(b[2])) return 1;
  if (e - b >= 1 && e[-1] == '.') e--;
  if (e - b < 3 || is_alpha(e[-3])) return 0;
  char c1 = lower(e[-2]), c2 = lower(e[-1]);
  return (c1 == 'c' || c1 == 'd') && c2 == 'r';
}

/* Pass 2. */
static sc_status_t emit(engine_t *E) {
  sc_status_t st = SC_OK;
  int32_t line;
  const ingest_cell_t *cells;
  int n, r;
  const ingest_opts_t *o = E->opts;
  const int c_date = E->col[R_DATE], c_amt = E->col[R_AMOUNT], c_deb = E->col[R_DEBIT], c_cre = E->col[R_CREDIT];
  char reason[256];
  while ((r = next_row(E, &line, &cells, &n, &st)) > 0) {
    if (line < E->first_data_line) continue;
    if (o->max_rows > 0 && E->res->rows_read >= o->max_rows) break;
    if (line > E->last_data_line) continue; /* summary lines after the data */
    if (is_error_row(cells, n)) {
      if (reject(E, line, cells[0].text) != 0) goto cancelled;
      continue;
    }
    const char *date = cell_at(cells, n, c_date);
    const char *amt = cell_at(cells, n, c_amt), *deb = cell_at(cells, n, c_deb), *cre = cell_at(cells, n, c_cre);
    int has_amt = !is_blank(amt), has_deb = !is_blank(deb), has_cre = !is_blank(cre);
    int date_blank = is_blank(date);
    if (date_blank && !has_amt && !has_deb && !has_cre) continue;
    /* a header repeated on every page */
    if (is_alpha(date[0]) && E->header != NULL && c_date < E->n_header && name_eq(date, E->header[c_date])) continue;

    ingest_row_t row = {0};
    row.line = line;
    const char *date_why = NULL;
    if (date_blank) {
      date_why = "is empty";
    } else if (kind_at(cells, n, c_date) == INGEST_CELL_DATE) {
      if (ingest_date_parse_why(date, "%Y-%m-%d", row.date, &date_why) != 0) date_why = "is not a real date";
    } else if (E->date_format[0] == '\0') {
      date_why = "is not a date";
    } else {
      int hit = 0;
      int slot = dcache_find(&E->cache2, date, &hit);
      if (hit) {
        memcpy(row.date, E->cache2.date[slot], sizeof row.date);
        date_why = E->cache2.why[slot];
      } else {
        ingest_date_parse_why(date, E->date_format, row.date, &date_why);
        if (slot >= 0) {
          memcpy(E->cache2.date[slot], row.date, sizeof row.date);
          E->cache2.why[slot] = date_why;
        }
      }
    }
    if ((date_why != NULL || (!has_amt && !has_deb && !has_cre)) && is_summary_row(cells, n)) continue;
    if (date_why != NULL) {
      if (date_blank)
        snprintf(reason, sizeof reason, "date is empty");
      else {
        char s[64];
        snippet(date, s, sizeof s);
        if (strcmp(date_why, "does not match the date format") == 0)
          snprintf(reason, sizeof reason, "date '%s' does not match the date format %s", s, E->date_format);
        else
          snprintf(reason, sizeof reason, "date '%s' %s", s, date_why);
      }
      if (reject(E, line, reason) != 0) goto cancelled;
      continue;
    }
    if (!has_amt && !has_deb && !has_cre) {
      if (reject(E, line, "amount is empty") != 0) goto cancelled;
      continue;
    }

    /* currency: its column, else written in the amount, else the header's */
    char cur[4] = "";
    if (E->col[R_CURRENCY] >= 0) {
      const char *cb, *ce;
      trim(cell_at(cells, n, E->col[R_CURRENCY]), &cb, &ce);
      if (ce > cb) {
        if (ce - cb != 3 || !is_alpha(cb[0]) || !is_alpha(cb[1]) || !is_alpha(cb[2])) {
          char s[64];
          snippet(cell_at(cells, n, E->col[R_CURRENCY]), s, sizeof s);
          snprintf(reason, sizeof reason, "currency '%s' is not an ISO 4217 code", s);
          if (reject(E, line, reason) != 0) goto cancelled;
          continue;
        }
        for (int i = 0; i < 3; i++)
          cur[i] = upper(cb[i]);
        cur[3] = '\0';
      }
    }
    int src_col = has_amt ? c_amt : has_deb ? c_deb : c_cre;
    int src_role = has_amt ? R_AMOUNT : has_deb ? R_DEBIT : R_CREDIT;
    if (cur[0] == '\0' && kind_at(cells, n, src_col) == INGEST_CELL_TEXT)
      currency_in_amount(cell_at(cells, n, src_col), cur);
    if (cur[0] == '\0' && E->hdr_cur[src_role][0] != '\0') memcpy(cur, E->hdr_cur[src_role], 4);
    int exponent = E->default_exponent;
    if (cur[0] != '\0') {
      if (memcmp(cur, E->last_cur, 4) != 0) {
        memcpy(E->last_cur, cur, 4);
        E->last_exponent = ingest_currency_exponent(cur);
      }
      exponent = E->last_exponent;
    }

    int64_t value = 0;
    const char *why = NULL;
    if (has_amt) {
      if (cell_amount(cells, n, c_amt, E->decimal[0], exponent, &value, &why) != 0) {
        amount_reason(reason, sizeof reason, "amount", amt, why);
        if (reject(E, line, reason) != 0) goto cancelled;
        continue;
      }
      if (E->col[R_DIRECTION] >= 0 && !is_blank(cell_at(cells, n, E->col[R_DIRECTION]))) {
        const char *dir = cell_at(cells, n, E->col[R_DIRECTION]);
        int d = direction_of(dir);
        if (d == 0) {
          char s[64];
          snippet(dir, s, sizeof s);
          snprintf(reason, sizeof reason, "direction '%s' is neither debit (Dr) nor credit (Cr)", s);
          if (reject(E, line, reason) != 0) goto cancelled;
          continue;
        }
        if (value < 0) value = -value;
        if (d < 0) value = -value;
      } else if (kind_at(cells, n, c_amt) == INGEST_CELL_TEXT && has_cr_dr_marker(amt)) {
        /* "500.00 Cr" says which way it goes, whatever the column's convention */
      } else if (E->given.amount_sign == INGEST_SIGN_POSITIVE_IS_OUT || E->unmarked_out) {
        value = -value;
      }
    } else {
      int64_t dv = 0, cv = 0;
      if (has_deb && cell_amount(cells, n, c_deb, E->decimal[1], exponent, &dv, &why) != 0) {
        amount_reason(reason, sizeof reason, "debit", deb, why);
        if (reject(E, line, reason) != 0) goto cancelled;
        continue;
      }
      if (has_cre && cell_amount(cells, n, c_cre, E->decimal[2], exponent, &cv, &why) != 0) {
        amount_reason(reason, sizeof reason, "credit", cre, why);
        if (reject(E, line, reason) != 0) goto cancelled;
        continue;
      }
      value = (cv < 0 ? -cv : cv) - (dv < 0 ? -dv : dv);
    }
    row.amount_minor = value;

    /* texts, trimmed, in the scratch buffer */
    const int text_roles[4] = {R_MERCHANT, R_DESC, R_PAYMENT, R_REF};
    const char *tb[4], *te[4];
    size_t need = 4;
    for (int k = 0; k < 4; k++) {
      int col = E->col[text_roles[k]];
      if (col < 0 || col >= n) {
        tb[k] = te[k] = "";
        continue;
      }
      trim(cells[col].text, &tb[k], &te[k]);
      need += (size_t)(te[k] - tb[k]) + 1;
    }
    if (ensure_scratch(E, need) != 0) return oom(E);
    char *w = E->scratch;
    const char *outs[4];
    for (int k = 0; k < 4; k++) {
      if (te[k] == tb[k]) {
        outs[k] = NULL;
        continue;
      }
      size_t l = (size_t)(te[k] - tb[k]);
      memcpy(w, tb[k], l);
      w[l] = '\0';
      outs[k] = w;
      w += l + 1;
    }
    row.merchant = outs[0];
    row.description = outs[1];
    row.payment_method = outs[2];
    row.reference = outs[3];
    row.currency = cur[0] != '\0' ? cur : NULL;
    E->res->rows_read++;
    if (E->cb != NULL && E->cb(E->ctx, line, &row, NULL) != 0) goto cancelled;
  }
  return r < 0 ? st : SC_OK;
cancelled:
  sc_err_set(E->err, "the parse was stopped at line %d", (int)line);
  return SC_CANCELLED;
}

sc_status_t ingest_table_parse(const ingest_table_src_t *src, const ingest_opts_t *opts, sc_arena_t *arena,
                               ingest_row_cb cb, void *ctx, ingest_result_t *res, sc_err_t *err) {
  static const ingest_opts_t no_opts = {0};
  ingest_result_t local_res;
  sc_arena_t *own_arena = NULL;
  sc_status_t st;
  if (src == NULL || src->next == NULL || src->rewind == NULL) {
    sc_err_set(err, "no table source");
    return SC_INVALID_ARGUMENT;
  }
  /* On the heap: the date caches make it tens of KiB, too much for the
   * small stacks of some server threads. */
  engine_t *E = calloc(1, sizeof *E);
  if (E == NULL) {
    sc_err_set(err, "out of memory");
    return SC_RESOURCE_EXHAUSTED;
  }
  if (res == NULL) {
    memset(&local_res, 0, sizeof local_res);
    res = &local_res;
  }
  if (arena == NULL) {
    own_arena = arena = sc_arena_new(0);
    if (arena == NULL) {
      free(E);
      sc_err_set(err, "out of memory");
      return SC_RESOURCE_EXHAUSTED;
    }
  }
  E->src = src;
  E->opts = opts != NULL ? opts : &no_opts;
  E->arena = arena;
  E->cb = cb;
  E->ctx = ctx;
  E->res = res;
  E->err = err;
  if (E->opts->mapping != NULL)
    E->given = *E->opts->mapping;
  else
    ingest_mapping_init(&E->given);
  for (int r = 0; r < N_MAPPED; r++)
    E->col[r] = -1;
  for (int r = R_AMOUNT; r <= R_CREDIT; r++)
    if (map_col(&E->given, r)->name != NULL || map_col(&E->given, r)->index >= 0) E->explicit_amounts = 1;
  for (int r = 0; r < N_MAPPED; r++) {
    const ingest_column_t *mc = map_col(&E->given, r);
    if (mc->name == NULL && mc->index >= INGEST_MAX_COLUMNS) {
      sc_err_set(err, "%s index %d is out of range (at most %d columns)", k_role_field[r], mc->index,
                 INGEST_MAX_COLUMNS);
      st = SC_INVALID_ARGUMENT;
      goto out;
    }
  }
  res->rows_read = 0;
  res->date_ambiguous = 0;
  res->n_date_candidates = 0;
  res->date_format[0] = '\0';
  ingest_date_infer_init(&E->dates);

  if ((st = do_rewind(E)) != SC_OK) goto out;
  if ((st = find_header(E)) != SC_OK) goto out;
  for (int r = 0; r < N_MAPPED; r++) {
    if (E->col[r] >= 0 && !E->by_index && E->header != NULL && E->col[r] >= E->n_header) {
      sc_err_set(err, "%s index %d is out of range: the header (line %d) has %d columns", k_role_field[r], E->col[r],
                 (int)E->header_line, E->n_header);
      st = SC_INVALID_ARGUMENT;
      goto out;
    }
  }
  if ((st = scan_data(E)) != SC_OK) goto out;
  if ((st = decide(E)) != SC_OK) goto out;
  E->default_exponent = ingest_currency_exponent(E->opts->default_currency);
  report(E);
  if ((st = do_rewind(E)) != SC_OK) goto out;
  st = emit(E);
out:
  if (own_arena != NULL) { /* the strings lived in our arena: do not hand them out */
    for (int i = 0; i < INGEST_MAX_COLUMNS; i++)
      res->columns[i] = NULL;
    res->n_columns = 0;
    for (int r = 0; r < N_MAPPED; r++)
      map_col(&res->mapping, r)->name = NULL;
    sc_arena_free(own_arena);
  }
  free(E->scratch);
  free(E);
  return st;
}
