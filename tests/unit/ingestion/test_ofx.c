/* ingest_parse_ofx against hand-made statements modelled on real exports
 * (fixtures/ofx/): every row exactly (line, date, amount in minor units,
 * currency, text, FITID), rejected transactions with their lines and reasons,
 * and bad input: truncation at every byte, garbage, nesting, size limits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "statement.h"

#define FIXTURES SCALE_SOURCE_DIR "/tests/unit/ingestion/fixtures/ofx/"
#define MAX_GOT 64

typedef struct got_row {
  int32_t line;
  int rejected;
  char date[11];
  int64_t amount;
  const char *currency, *merchant, *description, *payment_method, *reference, *fitid, *reason;
} got_row_t;

typedef struct got {
  sc_arena_t *arena;
  got_row_t rows[MAX_GOT];
  int n;       /* callbacks seen */
  int stop_at; /* return non-zero on this callback (1-based); 0: never */
} got_t;

typedef struct want {
  int32_t line;
  const char *date;
  int64_t amount;
  const char *currency, *merchant, *description, *payment_method, *reference, *fitid;
} want_t;

static const char *dup(sc_arena_t *a, const char *s) { return s ? sc_arena_strdup(a, s) : NULL; }

static int collect(void *ctx, int32_t line, const ingest_row_t *row, const char *reason) {
  got_t *g = ctx;
  cr_assert_lt(g->n, MAX_GOT);
  got_row_t *r = &g->rows[g->n++];
  memset(r, 0, sizeof(*r));
  r->line = line;
  if (row == NULL) {
    cr_assert_not_null(reason);
    r->rejected = 1;
    r->reason = dup(g->arena, reason);
  } else {
    cr_assert_eq(row->line, line);
    memcpy(r->date, row->date, sizeof(r->date));
    r->amount = row->amount_minor;
    r->currency = dup(g->arena, row->currency);
    r->merchant = dup(g->arena, row->merchant);
    r->description = dup(g->arena, row->description);
    r->payment_method = dup(g->arena, row->payment_method);
    r->reference = dup(g->arena, row->reference);
    r->fitid = dup(g->arena, row->bank_txn_id);
  }
  return g->stop_at > 0 && g->n >= g->stop_at;
}

static uint8_t *slurp(const char *name, size_t *len) {
  char path[512];
  snprintf(path, sizeof(path), FIXTURES "%s", name);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  uint8_t *buf = malloc(1 << 20);
  cr_assert_not_null(buf);
  *len = fread(buf, 1, (1 << 20) - 1, f);
  buf[*len] = 0; /* the tests look for text in it */
  fclose(f);
  return buf;
}

static sc_status_t parse_opts(const uint8_t *d, size_t n, const ingest_opts_t *opts, got_t *g, ingest_result_t *res,
                              sc_err_t *err) {
  if (g->arena == NULL) g->arena = sc_arena_new(0);
  err->msg[0] = '\0';
  return ingest_parse_ofx(d, n, opts, g->arena, collect, g, res, err);
}

static sc_status_t parse(const uint8_t *d, size_t n, got_t *g, ingest_result_t *res, sc_err_t *err) {
  ingest_opts_t opts;
  memset(&opts, 0, sizeof(opts));
  return parse_opts(d, n, &opts, g, res, err);
}

static sc_status_t parse_str(const char *s, got_t *g, ingest_result_t *res, sc_err_t *err) {
  return parse((const uint8_t *)s, strlen(s), g, res, err);
}

static void str_eq(const char *got, const char *want, const char *what, int i) {
  if (want == NULL)
    cr_assert_null(got, "row %d: %s is '%s', expected none", i, what, got);
  else {
    cr_assert_not_null(got, "row %d: %s missing, expected '%s'", i, what, want);
    cr_assert_str_eq(got, want, "row %d: %s", i, what);
  }
}

static void check_row(const got_row_t *r, const want_t *w, int i) {
  cr_assert_not(r->rejected, "row %d (line %d) rejected: %s", i, r->line, r->reason);
  cr_assert_eq(r->line, w->line, "row %d: line %d, expected %d", i, r->line, w->line);
  cr_assert_str_eq(r->date, w->date, "row %d: date", i);
  cr_assert_eq(r->amount, w->amount, "row %d: amount %lld, expected %lld", i, (long long)r->amount,
               (long long)w->amount);
  str_eq(r->currency, w->currency, "currency", i);
  str_eq(r->merchant, w->merchant, "merchant", i);
  str_eq(r->description, w->description, "description", i);
  str_eq(r->payment_method, w->payment_method, "payment_method", i);
  str_eq(r->reference, w->reference, "reference", i);
  str_eq(r->fitid, w->fitid, "bank_txn_id", i);
}

static void check_rows(const got_t *g, const want_t *w, int n) {
  cr_assert_eq(g->n, n, "%d rows, expected %d", g->n, n);
  for (int i = 0; i < n; i++)
    check_row(&g->rows[i], &w[i], i);
}

static void check_file(const char *name, const want_t *w, int n) {
  size_t len;
  uint8_t *d = slurp(name, &len);
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse(d, len, &g, &res, &err), SC_OK, "%s: %s", name, err.msg);
  check_rows(&g, w, n);
  cr_assert_eq(res.format, INGEST_FORMAT_OFX);
  cr_assert_eq(res.rows_read, n);
  cr_assert_str_eq(res.date_format, "");
  cr_assert_eq(res.n_columns, 0);
  cr_assert_eq(res.mapping.date.index, -1);
  cr_assert_eq(res.mapping.amount_sign, INGEST_SIGN_AUTO);
  sc_arena_free(g.arena);
  free(d);
}

/* SGML OFX 1.02, CRLF, CHARSET:1252 (É 0xC9, – 0x96, ’ 0x92, € 0x80), SGML
 * entities next to a bare '&', leaf elements without end tags. */
static const want_t bank_sgml[] = {
    {39, "2024-01-05", -4500, "USD", "CAF\xc3\x89 DU MONDE", "Card purchase \xe2\x80\x93 New Orleans", "card", NULL,
     "202401050001"},
    {47, "2024-01-06", 123450, "USD", "ACME PAYROLL", "Salary January", "direct deposit", NULL, "202401060002"},
    {55, "2024-01-07", -25000, "USD", "CHECK 1042", "CHECK 1042", "check", "1042", "202401070003"},
    {63, "2024-01-10", -8999, "USD", "AT&T MOBILITY",
     "Bill payment \xe2\x80\x99"
     "autopay\xe2\x80\x99 \xe2\x82\xac"
     "0 fee",
     "payment", "ACH88213", "202401100004"},
    {72, "2024-01-15", -6000, "USD", "ATM WITHDRAWAL M&S", "ATM WITHDRAWAL M&S", "atm", NULL, "202401150005"},
    {80, "2024-01-20", 50000, "USD", "TRANSFER FROM SAVINGS", "Ref 7781 <online>", "transfer", NULL, "202401200006"},
    {88, "2024-01-31", -1250, "USD", "MONTHLY SERVICE FEE", "MONTHLY SERVICE FEE", "fee", NULL, "202401310007"},
    {95, "2024-01-31", 42, "USD", "INTEREST PAID", "INTEREST PAID", "interest", NULL, "202401310008"},
};

Test(ofx, sgml_bank_statement_every_row_exactly) {
  check_file("bank_sgml_102.ofx", bank_sgml, (int)(sizeof(bank_sgml) / sizeof(bank_sgml[0])));
}

Test(ofx, qfx_credit_card_statement) {
  static const want_t w[] = {
      {44, "2024-02-03", -2347, "USD", "WHOLEFDS MKT #10234", "GROCERY STORES", "debit", NULL,
       "2024020324692164034100019453728"},
      {53, "2024-02-10", -5412, "USD", "AMAZON MKTPL*2K4LM1QX0", "AMZN.COM/BILL WA", "debit", NULL,
       "2024021024445004041000123459876"},
      {62, "2024-02-15", 35000, "USD", "PAYMENT - THANK YOU", "PAYMENT - THANK YOU", "credit", NULL,
       "2024021574011254046000001234567"},
      {70, "2024-02-29", -999, "USD", "NETFLIX.COM", "866-579-7172 CA", "debit", NULL,
       "2024022924011344060000098765432"},
  };
  check_file("cc_statement.qfx", w, 4);
}

/* OFX 2.1.1 XML: closed tags, UTF-8, XML entities (named and numeric), a
 * comment holding a tag, CURRENCY (the amount is in GBP) and ORIGCURRENCY (the
 * amount was converted: stays EUR), PAYEE/NAME, an empty <MEMO/>. */
Test(ofx, xml_ofx2_statement_with_entities_and_currencies) {
  static const want_t w[] = {
      {32, "2024-03-02", -1280, "EUR",
       "B\xc3\xa4"
       "ckerei M\xc3\xbcller & S\xc3\xb6hne",
       "Kartenzahlung <girocard> \xe2\x82\xac"
       "12,80 \xe2\x80\x94 \"Danke\"",
       "card", NULL, "DE-2024-0302-01"},
      {40, "2024-03-09", -4120, "GBP", "PRET A MANGER LONDON", "Card payment in GBP", "card", NULL, "DE-2024-0309-02"},
      {52, "2024-03-12", -2563, "EUR", "HOTEL Z\xc3\x9cRICH", "HOTEL Z\xc3\x9cRICH", "card", NULL, "DE-2024-0312-03"},
      {63, "2024-03-15", -8900, "EUR", "Stadtwerke K\xc3\xb6ln GmbH", "Strom M\xc3\xa4rz", "direct debit",
       "MANDATE-7781", "DE-2024-0315-04"},
      {79, "2024-03-28", 250000, "EUR", "Gehalt", "Gehalt", "transfer", NULL, "DE-2024-0328-05"},
  };
  check_file("bank_xml_211.ofx", w, 5);
}

Test(ofx, jpy_statement_has_no_minor_units) {
  size_t len;
  uint8_t *d = slurp("jpy_statement.ofx", &len);
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse(d, len, &g, &res, &err), SC_OK, "%s", err.msg);
  static const want_t w[] = {
      {40, "2024-04-02", -1500, "JPY",
       "\xe3\x82\xbb\xe3\x83\x96\xe3\x83\xb3-\xe3\x82\xa4\xe3\x83\xac\xe3\x83\x96\xe3"
       "\x83\xb3 \xe6\x96\xb0\xe5\xae\xbf\xe5\xba\x97",
       "\xe3\x82\xbb\xe3\x83\x96\xe3\x83\xb3-\xe3\x82\xa4\xe3\x83\xac\xe3\x83\x96\xe3\x83\xb3 \xe6\x96\xb0\xe5\xae\xbf"
       "\xe5\xba\x97",
       "card", NULL, "JP0402001"},
      {47, "2024-04-25", 250000, "JPY", "\xe7\xb5\xa6\xe4\xb8\x8e",
       "\xe6\xa0\xaa\xe5\xbc\x8f\xe4\xbc\x9a\xe7\xa4\xbe\xe3\x82\xb5\xe3\x83\xb3\xe3\x83\x97\xe3\x83\xab",
       "direct deposit", NULL, "JP0425002"},
      {55, "2024-04-27", -980, "JPY", "ATM \xe6\x89\x8b\xe6\x95\xb0\xe6\x96\x99",
       "ATM \xe6\x89\x8b\xe6\x95\xb0\xe6\x96\x99", "atm", NULL, "JP0427003"},
  };
  cr_assert_eq(g.n, 4);
  for (int i = 0; i < 3; i++)
    check_row(&g.rows[i], &w[i], i);
  cr_assert(g.rows[3].rejected);
  cr_assert_eq(g.rows[3].line, 62);
  cr_assert_str_eq(g.rows[3].reason, "TRNAMT '-12.5' has more decimals than JPY allows (0)");
  cr_assert_eq(res.rows_read, 4);
  sc_arena_free(g.arena);
  free(d);
}

Test(ofx, rejected_transactions_with_lines_and_reasons) {
  size_t len;
  uint8_t *d = slurp("rejects.ofx", &len);
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse(d, len, &g, &res, &err), SC_OK, "%s", err.msg);
  static const struct {
    int32_t line;
    const char *reason; /* NULL: read */
  } w[] = {
      {23, NULL},
      {30, "TRNAMT 'abc' is not a number"},
      {37, "missing DTPOSTED (the date the transaction was posted)"},
      {43, "DTPOSTED '20241345' is not a date (expected YYYYMMDD)"},
      {50, "missing TRNAMT (the amount)"},
      {56, "TRNAMT '1,234.56' is not a number"},
      {63, "TRNAMT '-12.345' has more decimals than USD allows (2)"},
      {70, "DTPOSTED '20230229' is not a date (expected YYYYMMDD)"},
      {77, NULL},
  };
  cr_assert_eq(g.n, 9);
  for (int i = 0; i < 9; i++) {
    cr_assert_eq(g.rows[i].line, w[i].line, "entry %d: line %d", i, g.rows[i].line);
    if (w[i].reason == NULL)
      cr_assert_not(g.rows[i].rejected, "line %d: %s", w[i].line, g.rows[i].reason);
    else
      cr_assert_str_eq(g.rows[i].reason, w[i].reason, "line %d", w[i].line);
  }
  cr_assert_eq(g.rows[0].amount, -1000);
  cr_assert_str_eq(g.rows[8].fitid, "R9");
  cr_assert_eq(g.rows[8].amount, 710);
  cr_assert_eq(res.rows_read, 9);
  sc_arena_free(g.arena);
  free(d);
}

/* Two bank statements (USD checking, CAD savings) and a EUR card statement
 * in one file, with the 1.x header written on one line. */
Test(ofx, every_statement_of_a_multi_account_file) {
  static const want_t w[] = {
      {14, "2024-07-01", -1999, "USD", "HULU", "HULU", "debit", NULL, "CHK-1"},
      {21, "2024-07-02", 10000, "USD", "VENMO CASHOUT", "VENMO CASHOUT", "credit", NULL, "CHK-2"},
      {41, "2024-07-31", 321, "CAD", "INTEREST", "INTEREST", "interest", NULL, "SAV-1"},
      {61, "2024-07-15", -750, "EUR", "BOULANGERIE", "BOULANGERIE", "debit", NULL, "CC-1"},
  };
  check_file("multi_account.ofx", w, 4);
}

Test(ofx, statement_without_transactions_is_ok_and_empty) { check_file("no_transactions.ofx", NULL, 0); }

/* The file cut in the middle of a STMTTRN (inside its TRNAMT): the complete
 * transactions are read, the cut one is rejected, the parse is SC_OK. */
Test(ofx, truncated_inside_a_transaction) {
  size_t len;
  uint8_t *d = slurp("bank_sgml_102.ofx", &len);
  const char *cut = strstr((const char *)d, "<TRNAMT>-89.99");
  cr_assert_not_null(cut);
  size_t n = (size_t)(cut - (const char *)d) + strlen("<TRNAMT>-89.9");
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse(d, n, &g, &res, &err), SC_OK, "%s", err.msg);
  for (int i = 0; i < 3; i++)
    check_row(&g.rows[i], &bank_sgml[i], i);
  cr_assert_eq(g.n, 4);
  cr_assert(g.rows[3].rejected);
  cr_assert_eq(g.rows[3].line, 63);
  cr_assert(strstr(g.rows[3].reason, "truncated") != NULL, "%s", g.rows[3].reason);
  cr_assert_eq(res.rows_read, 4);
  sc_arena_free(g.arena);
  free(d);
}

/* Cut at every byte: the parse either says the file is not OFX (cut before
 * <OFX>) or reads a prefix of the full rows, and at most one transaction,
 * the last, is rejected as truncated. A cut never yields a wrong row. */
static void cut_everywhere(const char *name, const want_t *full, int n_full) {
  size_t len;
  uint8_t *d = slurp(name, &len);
  for (size_t n = 0; n <= len; n++) {
    uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees any read past the cut */
    cr_assert_not_null(copy);
    memcpy(copy, d, n);
    got_t g = {0};
    ingest_result_t res;
    sc_err_t err;
    sc_status_t st = parse(copy, n, &g, &res, &err);
    if (st == SC_INVALID_ARGUMENT) {
      cr_assert(strstr(err.msg, "not an OFX document") != NULL, "cut at %zu: %s", n, err.msg);
      cr_assert_eq(g.n, 0);
    } else {
      cr_assert_eq(st, SC_OK, "cut at %zu: %s", n, err.msg);
      cr_assert_leq(g.n, n_full, "cut at %zu", n);
      for (int i = 0; i < g.n; i++) {
        if (g.rows[i].rejected) {
          cr_assert_eq(i, g.n - 1, "cut at %zu: rejection before the end", n);
          cr_assert(strstr(g.rows[i].reason, "truncated") != NULL, "cut at %zu: %s", n, g.rows[i].reason);
          cr_assert_eq(g.rows[i].line, full[i].line);
        } else {
          check_row(&g.rows[i], &full[i], i);
        }
      }
    }
    sc_arena_free(g.arena);
    free(copy);
  }
  free(d);
}

Test(ofx, truncated_at_every_byte_never_yields_a_wrong_row) { cut_everywhere("bank_sgml_102.ofx", bank_sgml, 8); }

Test(ofx, garbage_is_not_an_ofx_document) {
  static const char *const texts[] = {
      "Date,Description,Amount\r\n2024-01-05,Coffee,-4.50\r\n",
      ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">"
       "<BkToCstmrStmt/></Document>\n"),
      "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\n",
      "OFXHEADER:100\n\n<HTML><BODY>Session expired</BODY></HTML>\n",
      "   \n\t  ",
      "<?xml version=\"1.0\"",
  };
  for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
    got_t g = {0};
    ingest_result_t res;
    sc_err_t err;
    cr_assert_eq(parse_str(texts[i], &g, &res, &err), SC_INVALID_ARGUMENT, "text %zu", i);
    cr_assert(strstr(err.msg, "not an OFX document") != NULL, "text %zu: %s", i, err.msg);
    cr_assert_eq(g.n, 0);
    cr_assert_eq(res.format, INGEST_FORMAT_OFX);
    sc_arena_free(g.arena);
  }
  /* Binary noise (a fixed xorshift stream), with and without an OFX header in front. */
  uint8_t *noise = malloc(1 << 16);
  cr_assert_not_null(noise);
  uint32_t s = 2463534242u;
  for (size_t i = 0; i < (1 << 16); i++) {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;
    noise[i] = (uint8_t)s;
  }
  noise[0] = 0x00;
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse(noise, 1 << 16, &g, &res, &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "not an OFX document") != NULL, "%s", err.msg);
  memcpy(noise, "<OFX>", 5);
  sc_status_t st = parse(noise, 1 << 16, &g, &res, &err);
  cr_assert(st == SC_OK || st == SC_RESOURCE_EXHAUSTED, "%s", sc_status_name(st));
  cr_assert_eq(g.n, 0, "noise produced a transaction");
  sc_arena_free(g.arena);
  free(noise);
  /* UTF-16 gets its own explanation. */
  g = (got_t){0};
  cr_assert_eq(parse((const uint8_t *)"\xff\xfeO\0F\0X\0", 8, &g, &res, &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "UTF-16") != NULL, "%s", err.msg);
  sc_arena_free(g.arena);
}

static char *repeat(const char *head, const char *unit, size_t times, const char *tail) {
  size_t hn = strlen(head), un = strlen(unit), tn = strlen(tail);
  char *s = malloc(hn + un * times + tn + 1);
  cr_assert_not_null(s);
  memcpy(s, head, hn);
  for (size_t i = 0; i < times; i++)
    memcpy(s + hn + i * un, unit, un);
  memcpy(s + hn + un * times, tail, tn + 1);
  return s;
}

Test(ofx, deeply_nested_garbage_hits_the_depth_cap) {
  static const char *const units[] = {"<A>", "<STMTRS>\n", "<BANKMSGSRSV1><STMTTRNRS>"};
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    char *s = repeat("OFXHEADER:100\n\n<OFX>\n", units[i], 100000, "");
    got_t g = {0};
    ingest_result_t res;
    sc_err_t err;
    cr_assert_eq(parse_str(s, &g, &res, &err), SC_RESOURCE_EXHAUSTED, "unit %zu", i);
    cr_assert(strstr(err.msg, "deeper than 32 levels") != NULL, "%s", err.msg);
    sc_arena_free(g.arena);
    free(s);
  }
}

Test(ofx, huge_value_hits_the_value_cap) {
  const char *head = "OFXHEADER:100\n\n<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>USD<BANKTRANLIST>\n"
                     "<STMTTRN><TRNTYPE>POS<DTPOSTED>20240105<TRNAMT>-1.00<FITID>1\n<MEMO>";
  char *s =
      repeat(head, "x", (size_t)8 << 20, "\n</STMTTRN></BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\n");
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse_str(s, &g, &res, &err), SC_RESOURCE_EXHAUSTED);
  cr_assert(strstr(err.msg, "<MEMO> at line 5") != NULL && strstr(err.msg, "32768") != NULL, "%s", err.msg);
  cr_assert_eq(g.n, 0);
  free(s);
  /* At the cap exactly, the value is read whole. */
  s = repeat(head, "y", 32768, "\n</STMTTRN></BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\n");
  cr_assert_eq(parse_str(s, &g, &res, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(g.n, 1);
  cr_assert_eq(strlen(g.rows[0].description), 32768);
  free(s);
  sc_arena_free(g.arena);
}

Test(ofx, long_element_name_and_oversized_file) {
  char *s = repeat("<OFX><", "N", 65, ">1</OFX>");
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse_str(s, &g, &res, &err), SC_RESOURCE_EXHAUSTED);
  cr_assert(strstr(err.msg, "longer than 64 characters") != NULL, "%s", err.msg);
  free(s);
  /* Over the size limit: refused before a byte is read (the mapping is never touched). */
  size_t big = ((size_t)256 << 20) + 1;
  void *m = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  cr_assert_neq(m, MAP_FAILED);
  cr_assert_eq(parse(m, big, &g, &res, &err), SC_RESOURCE_EXHAUSTED);
  cr_assert(strstr(err.msg, "limit") != NULL, "%s", err.msg);
  munmap(m, big);
  sc_arena_free(g.arena);
}

/* Tolerance for what exporters really write: no header, no </STMTTRN> before
 * the next <STMTTRN>, lower-case tags, ISO dates, unknown and OTHER types,
 * a decimal comma, CURSYM in lower case. */
Test(ofx, sloppy_sgml_is_read) {
  const char *s = "<OFX>\n"
                  "<CREDITCARDMSGSRSV1><CCSTMTTRNRS><CCSTMTRS><CURDEF>GBP\n"
                  "<BANKTRANLIST>\n"
                  "<STMTTRN><TRNTYPE>BILLPAY<DTPOSTED>2024-02-29<TRNAMT>-1,5<FITID>a\n"
                  "<STMTTRN><TRNTYPE>OTHER<DTPOSTED>20240301<TRNAMT>2<FITID>b<NAME>Shop<MEMO>\n"
                  "<stmttrn><trntype>pos<dtposted>20240302<trnamt>-3.00<fitid>c<name>lower<currency><cursym>usd"
                  "</currency>\n"
                  "</BANKTRANLIST></CCSTMTRS></CCSTMTTRNRS></CREDITCARDMSGSRSV1></OFX>\n";
  static const want_t w[] = {
      {4, "2024-02-29", -150, "GBP", NULL, NULL, "billpay", NULL, "a"},
      {5, "2024-03-01", 200, "GBP", "Shop", "Shop", NULL, NULL, "b"},
      {6, "2024-03-02", -300, "USD", "lower", "lower", "card", NULL, "c"},
  };
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse_str(s, &g, &res, &err), SC_OK, "%s", err.msg);
  check_rows(&g, w, 3);
  sc_arena_free(g.arena);
}

Test(ofx, charset_declarations_and_mislabels) {
  /* Declared Windows-1252 but written in UTF-8 (common): read as UTF-8. */
  const char *mislabelled = "OFXHEADER:100\nCHARSET:1252\n\n<OFX><STMTRS><CURDEF>EUR<BANKTRANLIST><STMTTRN>"
                            "<DTPOSTED>20240101<TRNAMT>-1<NAME>Caf\xc3\xa9</STMTTRN></BANKTRANLIST></STMTRS></OFX>";
  /* Declared UTF-8 with a stray Windows-1252 byte: that byte is converted. */
  const char *stray = "<?xml version=\"1.0\" encoding=\"utf-8\"?><OFX><STMTRS><CURDEF>EUR</CURDEF><BANKTRANLIST>"
                      "<STMTTRN><DTPOSTED>20240101</DTPOSTED><TRNAMT>-1</TRNAMT><NAME>Caf\xe9 \xe2\x82\xac</NAME>"
                      "</STMTTRN></BANKTRANLIST></STMTRS></OFX>";
  /* XML declared ISO-8859-1: read as Windows-1252 (0x80 is the euro sign). */
  const char *latin = "<?xml version='1.0' encoding='ISO-8859-1'?><OFX><STMTRS><CURDEF>EUR</CURDEF><BANKTRANLIST>"
                      "<STMTTRN><DTPOSTED>20240101</DTPOSTED><TRNAMT>-1</TRNAMT><NAME>Caf\xe9 \x80</NAME>"
                      "</STMTTRN></BANKTRANLIST></STMTRS></OFX>";
  const char *const inputs[] = {mislabelled, stray, latin};
  const char *const want[] = {"Caf\xc3\xa9", "Caf\xc3\xa9 \xe2\x82\xac", "Caf\xc3\xa9 \xe2\x82\xac"};
  for (int i = 0; i < 3; i++) {
    got_t g = {0};
    ingest_result_t res;
    sc_err_t err;
    cr_assert_eq(parse_str(inputs[i], &g, &res, &err), SC_OK, "input %d: %s", i, err.msg);
    cr_assert_eq(g.n, 1, "input %d", i);
    cr_assert_str_eq(g.rows[0].merchant, want[i], "input %d", i);
    sc_arena_free(g.arena);
  }
}

Test(ofx, default_currency_when_the_statement_has_none) {
  const char *s = "<OFX><BANKTRANLIST><STMTTRN><DTPOSTED>20240101<TRNAMT>-1500<FITID>z</STMTTRN></BANKTRANLIST>"
                  "</OFX>";
  ingest_opts_t opts;
  memset(&opts, 0, sizeof(opts));
  opts.default_currency = "JPY";
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse_opts((const uint8_t *)s, strlen(s), &opts, &g, &res, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(g.n, 1);
  cr_assert_null(g.rows[0].currency); /* the caller's default applies */
  cr_assert_eq(g.rows[0].amount, -1500);
  sc_arena_free(g.arena);
}

Test(ofx, max_rows_and_cancellation) {
  size_t len;
  uint8_t *d = slurp("bank_sgml_102.ofx", &len);
  ingest_opts_t opts;
  memset(&opts, 0, sizeof(opts));
  opts.max_rows = 2;
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse_opts(d, len, &opts, &g, &res, &err), SC_OK, "%s", err.msg);
  check_rows(&g, bank_sgml, 2);
  cr_assert_eq(res.rows_read, 2);
  sc_arena_free(g.arena);

  g = (got_t){.stop_at = 3};
  cr_assert_eq(parse(d, len, &g, &res, &err), SC_CANCELLED);
  cr_assert_eq(g.n, 3);
  cr_assert_neq(err.msg[0], '\0');
  sc_arena_free(g.arena);
  free(d);
}

/* Some card issuers write purchases positive: the mapping's amount_sign
 * override flips them; nothing else of the mapping applies to OFX. */
Test(ofx, positive_is_out_flips_the_signs) {
  size_t len;
  uint8_t *d = slurp("cc_statement.qfx", &len);
  ingest_mapping_t m;
  memset(&m, 0, sizeof(m));
  m.amount_sign = INGEST_SIGN_POSITIVE_IS_OUT;
  ingest_opts_t opts;
  memset(&opts, 0, sizeof(opts));
  opts.mapping = &m;
  got_t g = {0};
  ingest_result_t res;
  sc_err_t err;
  cr_assert_eq(parse_opts(d, len, &opts, &g, &res, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(g.n, 4);
  cr_assert_eq(g.rows[0].amount, 2347);
  cr_assert_eq(g.rows[2].amount, -35000);
  cr_assert_eq(res.mapping.amount_sign, INGEST_SIGN_POSITIVE_IS_OUT);
  sc_arena_free(g.arena);
  free(d);
}
