/* XLSX statements end to end through the table engine: shared, inline and
 * rich-text strings, numbers, dates in the 1900 and 1904 systems (serial 60,
 * Lotus's phantom leap day), gaps, preamble and hidden sheets, encrypted
 * workbooks, ZIP bombs, truncated archives and garbage. Fixtures are in
 * fixtures/xlsx (made by fixtures/make_xlsx_fixtures.py); the archives a test
 * needs only once are built here, in memory. */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "offcrypto.h"
#include "statement.h"

#define FIX SCALE_SOURCE_DIR "/tests/unit/ingestion/fixtures/xlsx/"
#define OFFCRYPTO SCALE_SHARED_DIR "/data/offcrypto/"

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  cr_assert_eq(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  cr_assert_geq(n, 0);
  rewind(f);
  uint8_t *buf = malloc((size_t)n + 1);
  cr_assert_not_null(buf);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* ---- What the parser delivers ------------------------------------------------- */

#define MAX_GOT 32

typedef struct got_row {
  int32_t line;
  int rejected;
  char date[11];
  int64_t amount;
  char desc[64], ref[32], reason[160];
} got_row_t;

typedef struct got {
  int n;
  got_row_t r[MAX_GOT];
  int stop_after; /* return nonzero after this many rows; 0: never */
} got_t;

static void copy_str(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src ? src : ""); }

static int collect(void *ctx, int32_t line, const ingest_row_t *row, const char *reason) {
  got_t *g = ctx;
  cr_assert_lt(g->n, MAX_GOT);
  got_row_t *r = &g->r[g->n++];
  memset(r, 0, sizeof *r);
  r->line = line;
  if (row == NULL) {
    r->rejected = 1;
    copy_str(r->reason, sizeof r->reason, reason);
  } else {
    memcpy(r->date, row->date, sizeof r->date);
    r->amount = row->amount_minor;
    copy_str(r->desc, sizeof r->desc, row->description);
    copy_str(r->ref, sizeof r->ref, row->reference);
  }
  return g->stop_after > 0 && g->n >= g->stop_after;
}

typedef struct run {
  sc_status_t st;
  sc_err_t err;
  ingest_result_t res;
  got_t got;
  sc_arena_t *arena;
} run_t;

static void parse(run_t *r, const uint8_t *data, size_t len, const ingest_opts_t *opts) {
  int stop = r->got.stop_after;
  memset(r, 0, sizeof *r);
  r->got.stop_after = stop;
  r->arena = sc_arena_new(0);
  cr_assert_not_null(r->arena);
  r->st = ingest_parse_xlsx(data, len, opts, r->arena, collect, &r->got, &r->res, &r->err);
}

static void parse_file(run_t *r, const char *path, const ingest_opts_t *opts) {
  size_t len = 0;
  uint8_t *data = slurp(path, &len);
  parse(r, data, len, opts);
  free(data);
}

static void done(run_t *r) { sc_arena_free(r->arena); }

static void expect_row(const got_row_t *r, int32_t line, const char *date, int64_t amount, const char *desc) {
  cr_assert_not(r->rejected, "line %d rejected: %s", r->line, r->reason);
  cr_assert_eq(r->line, line, "line %d, want %d", r->line, line);
  cr_assert_str_eq(r->date, date, "line %d", line);
  cr_assert_eq(r->amount, amount, "line %d: amount %lld, want %lld", line, (long long)r->amount, (long long)amount);
  if (desc != NULL) cr_assert_str_eq(r->desc, desc, "line %d", line);
}

/* ---- Fixtures -------------------------------------------------------------------- */

Test(xlsx, strings_numbers_and_1900_dates) {
  run_t r;
  parse_file(&r, FIX "statement_1900.xlsx", NULL);
  cr_assert_eq(r.st, SC_OK, "%s", r.err.msg);
  cr_assert_eq(r.res.format, INGEST_FORMAT_XLSX);
  cr_assert_not(r.res.encrypted);
  cr_assert_str_eq(r.res.sheet, "Transactions", "the visible sheet with the table, after the preamble sheet");
  /* Header on row 3 after a preamble row, columns B and D empty: positions kept. */
  cr_assert_eq(r.res.n_columns, 6);
  cr_assert_str_eq(r.res.columns[0], "Date");
  cr_assert_str_eq(r.res.columns[1], "");
  cr_assert_str_eq(r.res.columns[2], "Description", "rich-text runs joined");
  cr_assert_str_eq(r.res.columns[4], "Amount");

  got_t *g = &r.got;
  cr_assert_eq(g->n, 7, "rows: %d", g->n);
  expect_row(&g->r[0], 4, "2024-01-01", -450, "Coffee & cake"); /* built-in format 14, shared string */
  cr_assert_str_eq(g->r[0].ref, "R1", "a formula's string result");
  expect_row(&g->r[1], 5, "2024-01-02", 250000, "Salary");             /* custom dd/mm/yyyy, inline string */
  expect_row(&g->r[2], 6, "2024-01-03", -120010, "Caf\xC3\xA9 Tokyo"); /* date-time; %.17g noise; no phonetic */
  cr_assert(g->r[3].rejected, "serial 60 is 1900-02-29, which did not exist");
  cr_assert_eq(g->r[3].line, 7);
  cr_assert(strstr(g->r[3].reason, "1900-02-29") != NULL, "%s", g->r[3].reason);
  expect_row(&g->r[4], 8, "1900-03-01", 30, "Tea_shop");     /* serial 61; 0.30000000000000004; _x005F_ */
  expect_row(&g->r[5], 9, "1900-02-28", 1, "Day before");    /* serial 59; 1E-2 */
  expect_row(&g->r[6], 10, "2024-01-09", 1234567890, "Big"); /* format "Day "d is a date */
  cr_assert_str_eq(g->r[6].ref, "12:00:00", "a time-only format gives the time of day");
  /* Row 12, "Total", is a summary after the data: neither a row nor a rejection. */
  done(&r);
}

Test(xlsx, dates_1904_prefixed_xml_and_positional_cells) {
  run_t r;
  parse_file(&r, FIX "statement_1904.xlsx", NULL);
  cr_assert_eq(r.st, SC_OK, "%s", r.err.msg);
  cr_assert_str_eq(r.res.sheet, "Statement");
  got_t *g = &r.got;
  cr_assert_eq(g->n, 3, "rows: %d", g->n);
  expect_row(&g->r[0], 2, "2024-01-01", -20000, "ATM");    /* 43830 in the 1904 system */
  expect_row(&g->r[1], 3, "1904-01-01", 1025, "Epoch");    /* serial 0 is day one in 1904 */
  expect_row(&g->r[2], 4, "1904-01-02", -300, "Next day"); /* cells without r: A, B, C by order */
  done(&r);
}

Test(xlsx, sheet_name_picks_a_sheet) {
  ingest_mapping_t m;
  ingest_mapping_init(&m);
  ingest_opts_t o = {.mapping = &m};
  run_t r;

  m.sheet_name = "hidden"; /* case-insensitive, and hidden sheets can be picked */
  parse_file(&r, FIX "statement_1900.xlsx", &o);
  cr_assert_eq(r.st, SC_OK, "%s", r.err.msg);
  cr_assert_str_eq(r.res.sheet, "Hidden");
  cr_assert_eq(r.got.n, 1);
  expect_row(&r.got.r[0], 2, "2023-03-15", -100, NULL);
  done(&r);

  m.sheet_name = "Nope";
  parse_file(&r, FIX "statement_1900.xlsx", &o);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT);
  cr_assert(strstr(r.err.msg, "'Hidden', 'Summary', 'Transactions'") != NULL, "%s", r.err.msg);
  done(&r);

  m.sheet_name = "Summary";
  parse_file(&r, FIX "statement_1900.xlsx", &o);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT);
  cr_assert_str_eq(r.res.sheet, "Summary");
  cr_assert(strstr(r.err.msg, "Opening balance") != NULL, "says what it found: %s", r.err.msg);
  cr_assert_eq(r.got.n, 0);
  done(&r);
}

Test(xlsx, preview_and_cancel) {
  ingest_opts_t o = {.max_rows = 2};
  run_t r;
  parse_file(&r, FIX "statement_1900.xlsx", &o);
  cr_assert_eq(r.st, SC_OK, "%s", r.err.msg);
  cr_assert_eq(r.got.n, 2);
  done(&r);

  r.got.stop_after = 1;
  parse_file(&r, FIX "statement_1900.xlsx", NULL);
  cr_assert_eq(r.st, SC_CANCELLED, "%s", r.err.msg);
  cr_assert_eq(r.got.n, 1, "nothing after the callback said stop, and no second sheet tried");
  done(&r);
}

/* ---- Encrypted workbooks ------------------------------------------------------------ */

Test(xlsx, encrypted_statement_end_to_end) {
  ingest_opts_t o = {.password = "Stat3ment-\xE2\x82\xAC"}; /* "Stat3ment-€": UTF-8 in, UTF-16LE for the KDF */
  run_t r;
  parse_file(&r, FIX "statement_password.xlsx", &o);
  cr_assert_eq(r.st, SC_OK, "%s", r.err.msg);
  cr_assert(r.res.encrypted);
  cr_assert_eq(r.got.n, 2);
  expect_row(&r.got.r[0], 2, "2025-01-01", -8215, "Groceries");
  expect_row(&r.got.r[1], 3, "2025-01-02", 1999, "Refund");
  done(&r);

  o.password = "Stat3ment-E";
  parse_file(&r, FIX "statement_password.xlsx", &o);
  cr_assert_eq(r.st, SC_FAILED_PRECONDITION);
  cr_assert_str_eq(r.err.msg, "password incorrect");
  cr_assert(r.res.encrypted);
  cr_assert_eq(r.got.n, 0);
  done(&r);

  parse_file(&r, FIX "statement_password.xlsx", NULL);
  cr_assert_eq(r.st, SC_FAILED_PRECONDITION);
  cr_assert_str_eq(r.err.msg, "file is encrypted; password required");
  cr_assert(r.res.encrypted);
  done(&r);
}

Test(xlsx, excel_made_encrypted_workbook) {
  /* msoffcrypto-tool's Excel-made vector holds one row, "lorem | ipsum": it
   * decrypts, and the engine reports what it found. */
  ingest_opts_t o = {.password = "Password1234_"};
  run_t r;
  parse_file(&r, OFFCRYPTO "example_password.xlsx", &o);
  cr_assert(r.res.encrypted);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT, "%s", r.err.msg);
  cr_assert_str_eq(r.res.sheet, "Sheet1");
  cr_assert_eq(r.res.n_columns, 2);
  cr_assert_str_eq(r.res.columns[0], "lorem");
  cr_assert_str_eq(r.res.columns[1], "ipsum");
  cr_assert(strstr(r.err.msg, "lorem") != NULL, "%s", r.err.msg);
  done(&r);

  /* The same workbook unencrypted reads the same. */
  parse_file(&r, OFFCRYPTO "example.xlsx", NULL);
  cr_assert_not(r.res.encrypted);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT);
  cr_assert_eq(r.res.n_columns, 2);
  cr_assert_str_eq(r.res.columns[1], "ipsum");
  done(&r);
}

Test(xlsx, tampered_encrypted_workbook) {
  size_t len = 0;
  uint8_t *data = slurp(FIX "statement_password.xlsx", &len);
  /* Flip a byte of the EncryptedPackage stream where it lies in the file. */
  sc_arena_t *a = sc_arena_new(0);
  offcrypto_cfb_t *cfb = NULL;
  uint8_t *pkg = NULL;
  size_t pkg_len = 0;
  sc_err_t err;
  cr_assert_eq(offcrypto_cfb_open(data, len, a, &cfb, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(offcrypto_cfb_read(cfb, "EncryptedPackage", a, &pkg, &pkg_len, &err), SC_OK, "%s", err.msg);
  uint8_t *at = memmem(data, len, pkg + 1000, 32);
  cr_assert_not_null(at);
  at[5] ^= 0x20;
  sc_arena_free(a);
  ingest_opts_t o = {.password = "Stat3ment-\xE2\x82\xAC"};
  run_t r;
  parse(&r, data, len, &o);
  cr_assert_eq(r.st, SC_DATA_LOSS, "%s: %s", sc_status_name(r.st), r.err.msg);
  cr_assert_str_eq(r.err.msg, "encrypted package failed its integrity check (tampered or corrupt)");
  cr_assert_eq(r.got.n, 0);
  done(&r);
  free(data);
}

Test(xlsx, encrypted_word_document_is_not_a_spreadsheet) {
  ingest_opts_t o = {.password = "Password1234_"};
  run_t r;
  parse_file(&r, OFFCRYPTO "ecma376standard_password.docx", &o);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT);
  cr_assert_str_eq(r.err.msg, "not a spreadsheet: no worksheet found");
  cr_assert(r.res.encrypted);
  done(&r);
}

/* ---- Archives built here ----------------------------------------------------------------- */

typedef struct zpart {
  const char *name;
  const uint8_t *data; /* stored as is; or, with fill_count, deflated: */
  size_t len;
  const char *prefix, *suffix; /* prefix + fill_count x fill + suffix */
  char fill;
  size_t fill_count;
  int lie; /* declare 1000 bytes unpacked whatever the truth */
} zpart_t;

typedef struct zbuf {
  uint8_t *p;
  size_t n, cap;
} zbuf_t;

static void zb_put(zbuf_t *b, const void *p, size_t n) {
  if (n == 0) return;
  if (b->n + n > b->cap) {
    while (b->n + n > b->cap)
      b->cap = b->cap ? b->cap * 2 : 4096;
    b->p = realloc(b->p, b->cap);
    cr_assert_not_null(b->p);
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

static void zb_le(zbuf_t *b, uint32_t v, int bytes) {
  uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  zb_put(b, le, (size_t)bytes);
}

static void deflate_part(const zpart_t *p, zbuf_t *out, uint32_t *crc, uint64_t *raw) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  cr_assert_eq(deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_RLE), Z_OK);
  static uint8_t in[1 << 20], buf[1 << 16];
  memset(in, p->fill, sizeof in);
  const uint8_t *pieces[3] = {(const uint8_t *)p->prefix, in, (const uint8_t *)p->suffix};
  size_t left[3] = {strlen(p->prefix), p->fill_count, strlen(p->suffix)};
  *crc = (uint32_t)crc32(0, NULL, 0);
  *raw = 0;
  for (int k = 0; k < 3; k++) {
    while (left[k] > 0 || k == 2) {
      size_t take = left[k] < sizeof in ? left[k] : sizeof in;
      zs.next_in = (Bytef *)pieces[k];
      zs.avail_in = (uInt)take;
      *crc = (uint32_t)crc32(*crc, pieces[k], (uInt)take);
      *raw += take;
      left[k] -= take;
      int flush = k == 2 ? Z_FINISH : Z_NO_FLUSH;
      int rc;
      do {
        zs.next_out = buf;
        zs.avail_out = sizeof buf;
        rc = deflate(&zs, flush);
        zb_put(out, buf, sizeof buf - zs.avail_out);
      } while (zs.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
      if (k == 2) break;
    }
  }
  deflateEnd(&zs);
}

static uint8_t *zip_build(const zpart_t *parts, size_t n, size_t *out_len) {
  zbuf_t z = {0}, cd = {0};
  for (size_t i = 0; i < n; i++) {
    const zpart_t *p = &parts[i];
    zbuf_t body = {0};
    uint32_t crc;
    uint64_t raw;
    int method = p->prefix != NULL ? 8 : 0;
    if (method == 8) {
      deflate_part(p, &body, &crc, &raw);
    } else {
      zb_put(&body, p->data ? (const void *)p->data : "", p->len);
      crc = (uint32_t)crc32(crc32(0, NULL, 0), p->data, (uInt)p->len);
      raw = p->len;
    }
    uint32_t usize = p->lie ? 1000 : (uint32_t)raw, nlen = (uint32_t)strlen(p->name), off = (uint32_t)z.n;
    zb_le(&z, 0x04034b50, 4), zb_le(&z, 20, 2), zb_le(&z, 0, 2), zb_le(&z, (uint32_t)method, 2);
    zb_le(&z, 0, 2), zb_le(&z, 0x21, 2), zb_le(&z, crc, 4), zb_le(&z, (uint32_t)body.n, 4), zb_le(&z, usize, 4);
    zb_le(&z, nlen, 2), zb_le(&z, 0, 2), zb_put(&z, p->name, nlen), zb_put(&z, body.p, body.n);
    zb_le(&cd, 0x02014b50, 4), zb_le(&cd, 20, 2), zb_le(&cd, 20, 2), zb_le(&cd, 0, 2), zb_le(&cd, (uint32_t)method, 2);
    zb_le(&cd, 0, 2), zb_le(&cd, 0x21, 2), zb_le(&cd, crc, 4), zb_le(&cd, (uint32_t)body.n, 4), zb_le(&cd, usize, 4);
    zb_le(&cd, nlen, 2), zb_le(&cd, 0, 2), zb_le(&cd, 0, 2), zb_le(&cd, 0, 2), zb_le(&cd, 0, 2), zb_le(&cd, 0, 4);
    zb_le(&cd, off, 4), zb_put(&cd, p->name, nlen);
    free(body.p);
  }
  uint32_t cd_off = (uint32_t)z.n;
  zb_put(&z, cd.p, cd.n);
  zb_le(&z, 0x06054b50, 4), zb_le(&z, 0, 2), zb_le(&z, 0, 2), zb_le(&z, (uint32_t)n, 2), zb_le(&z, (uint32_t)n, 2);
  zb_le(&z, (uint32_t)cd.n, 4), zb_le(&z, cd_off, 4), zb_le(&z, 0, 2);
  free(cd.p);
  *out_len = z.n;
  return z.p;
}

#define NS "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\""
#define RNS "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
#define ROOT_RELS                                                                                                      \
  "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"r\" "      \
  "Type=\"" RNS "/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
#define WB_RELS_1                                                                                                      \
  "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" "   \
  "Type=\"" RNS "/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>"
#define WB_1                                                                                                           \
  "<workbook " NS " xmlns:r=\"" RNS "\"><sheets><sheet name=\"S\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"

#define STR(s) (const uint8_t *)(s), strlen(s)

/* A one-sheet workbook with the given sheet XML and, when not NULL, styles
 * (all stored, not deflated). */
static void parse_workbook(run_t *r, const char *sheet_xml, const char *styles_xml, const ingest_opts_t *opts) {
  static const char rels_styles[] =
      "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship "
      "Id=\"rId1\" Type=\"" RNS "/worksheet\" Target=\"worksheets/sheet1.xml\"/><Relationship Id=\"rId2\" "
      "Type=\"" RNS "/styles\" Target=\"styles.xml\"/></Relationships>";
  zpart_t parts[] = {
      {"_rels/.rels", STR(ROOT_RELS)},
      {"xl/workbook.xml", STR(WB_1)},
      {"xl/_rels/workbook.xml.rels", STR(styles_xml ? rels_styles : WB_RELS_1)},
      {"xl/worksheets/sheet1.xml", STR(sheet_xml)},
      {"xl/styles.xml", STR(styles_xml ? styles_xml : "")},
  };
  size_t len = 0;
  uint8_t *zip = zip_build(parts, styles_xml ? 5 : 4, &len);
  parse(r, zip, len, opts);
  free(zip);
}

static void parse_sheet_xml(run_t *r, const char *sheet_xml, const ingest_opts_t *opts) {
  parse_workbook(r, sheet_xml, NULL, opts);
}

#define HEADER_ROW                                                                                                     \
  "<row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>Date</t></is></c><c r=\"B1\" t=\"inlineStr\"><is><t>Amount</t>"     \
  "</is></c><c r=\"C1\" t=\"inlineStr\"><is><t>Description</t></is></c></row>"

Test(xlsx, cell_types_and_wide_rows) {
  run_t r;
  parse_sheet_xml(&r,
                  "<worksheet " NS "><sheetData>" HEADER_ROW
                  /* t="d" ISO date; a boolean description; a note far to the right (column CA) */
                  "<row r=\"2\"><c r=\"A2\" t=\"d\"><v>2024-02-29T00:00:00</v></c><c r=\"B2\"><v>1.5E+3</v></c>"
                  "<c r=\"C2\" t=\"b\"><v>1</v></c><c r=\"CA2\" t=\"inlineStr\"><is><t>note</t></is></c></row>"
                  /* an error value; a text amount; an out-of-range shared string index */
                  "<row r=\"3\"><c r=\"A3\" t=\"d\"><v>2024-03-01</v></c><c r=\"B3\" t=\"inlineStr\"><is><t>"
                  "-2,000.50</t></is></c><c r=\"C3\" t=\"e\"><v>#N/A</v></c><c r=\"D3\" t=\"s\"><v>99</v></c></row>"
                  /* a number Excel would never write, kept as text and rejected as an amount */
                  "<row r=\"4\"><c r=\"A4\" t=\"d\"><v>2024-03-02</v></c><c r=\"B4\"><v>12..5</v></c></row>"
                  "<row r=\"1048576\"><c r=\"A1048576\" t=\"d\"><v>2024-03-03</v></c><c r=\"B1048576\"><v>-0.125</v>"
                  "</c></row>"
                  "</sheetData></worksheet>",
                  NULL);
  cr_assert_eq(r.st, SC_OK, "%s", r.err.msg);
  got_t *g = &r.got;
  cr_assert_eq(g->n, 4, "rows: %d", g->n);
  expect_row(&g->r[0], 2, "2024-02-29", 150000, "TRUE");
  expect_row(&g->r[1], 3, "2024-03-01", -200050, "#N/A");
  cr_assert(g->r[2].rejected, "12..5 is not a number");
  cr_assert_eq(g->r[2].line, 4);
  expect_row(&g->r[3], 1048576, "2024-03-03", -13, NULL); /* half away from zero */
  done(&r);
}

Test(xlsx, number_formats_decide_what_is_a_date) {
  /* Formats that look date-ish to a naive scan but are numbers ([Magenta],
   * E+00, quoted "mm", General), dates in locale and month-name forms, and
   * an elapsed-time format. */
  const char *styles =
      "<styleSheet " NS "><numFmts>"
      "<numFmt numFmtId=\"164\" formatCode=\"[$-409]d mmmm yyyy;@\"/>"
      "<numFmt numFmtId=\"165\" formatCode=\"[Magenta]0.00;[Red]-0.00\"/>"
      "<numFmt numFmtId=\"166\" formatCode=\"0.00E+00\"/>"
      "<numFmt numFmtId=\"167\" formatCode=\"#,##0.00 &quot;mm&quot;\"/>"
      "<numFmt numFmtId=\"168\" formatCode=\"[h]:mm\"/>"
      "<numFmt numFmtId=\"169\" formatCode=\"mmm\\-yy\"/>"
      "</numFmts><cellXfs><xf numFmtId=\"0\"/><xf numFmtId=\"164\"/><xf numFmtId=\"165\"/><xf numFmtId=\"166\"/>"
      "<xf numFmtId=\"167\"/><xf numFmtId=\"168\"/><xf numFmtId=\"169\"/><xf numFmtId=\"49\"/></cellXfs>"
      "</styleSheet>";
#define ROW(n, date, dstyle, amt, astyle)                                                                              \
  "<row r=\"" #n "\"><c r=\"A" #n "\" s=\"" #dstyle "\"><v>" date "</v></c><c r=\"B" #n "\" s=\"" #astyle "\"><v>" amt \
  "</v></c><c r=\"C" #n "\" s=\"5\"><v>0.75</v></c></row>"
  run_t r;
  parse_workbook(&r,
                 "<worksheet " NS "><sheetData>" HEADER_ROW ROW(2, "45292", 1, "12.5", 2) ROW(3, "45293", 1, "-3", 3)
                     ROW(4, "45294", 6, "7", 4) ROW(5, "45295", 1, "8", 0)
                         ROW(6, "45296", 1, "9", 7) "</sheetData></worksheet>",
                 styles, NULL);
#undef ROW
  cr_assert_eq(r.st, SC_OK, "%s", r.err.msg);
  got_t *g = &r.got;
  cr_assert_eq(g->n, 5, "rows: %d", g->n);
  expect_row(&g->r[0], 2, "2024-01-01", 1250, "18:00:00"); /* [h]:mm is a time, not a date */
  expect_row(&g->r[1], 3, "2024-01-02", -300, NULL);
  expect_row(&g->r[2], 4, "2024-01-03", 700, NULL); /* "mmm-yy": months without hours are months */
  expect_row(&g->r[3], 5, "2024-01-04", 800, NULL);
  expect_row(&g->r[4], 6, "2024-01-05", 900, NULL); /* built-in 49 is text "@": still the number */
  done(&r);
}

Test(xlsx, malformed_and_hostile_xml) {
  run_t r;
  parse_sheet_xml(&r, "<worksheet " NS "><sheetData><row r=\"1\"><c r=\"A1\"><v>1</v></row></sheetData></worksheet>",
                  NULL);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT);
  cr_assert(strstr(r.err.msg, "xl/worksheets/sheet1.xml is not well-formed XML") != NULL, "%s", r.err.msg);
  done(&r);

  parse_sheet_xml(&r,
                  "<!DOCTYPE w [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>"
                  "<worksheet " NS "><sheetData><row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>&b;</t></is></c>"
                  "</row></sheetData></worksheet>",
                  NULL);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT);
  cr_assert(strstr(r.err.msg, "DOCTYPE") != NULL, "%s", r.err.msg);
  done(&r);

  parse_sheet_xml(&r, "<worksheet " NS "><sheetData></sheetData></worksheet>", NULL);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT);
  cr_assert(strstr(r.err.msg, "empty") != NULL, "%s", r.err.msg);
  done(&r);
}

Test(xlsx, archives_that_are_not_workbooks) {
  run_t r;
  zpart_t other[] = {{"readme.txt", STR("hello")}};
  size_t len = 0;
  uint8_t *zip = zip_build(other, 1, &len);
  parse(&r, zip, len, NULL);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT);
  cr_assert_str_eq(r.err.msg, "not a spreadsheet: no worksheet found");
  done(&r);
  free(zip);

  zpart_t xlsb[] = {{"_rels/.rels", STR("<Relationships><Relationship Id=\"r\" Type=\"" RNS
                                        "/officeDocument\" Target=\"xl/workbook.bin\"/></Relationships>")}};
  zip = zip_build(xlsb, 1, &len);
  parse(&r, zip, len, NULL);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT);
  cr_assert(strstr(r.err.msg, ".xlsb") != NULL, "%s", r.err.msg);
  done(&r);
  free(zip);
}

Test(xlsx, zip_bomb_is_refused) {
  /* 300 MB of spaces inside sheetData deflate to a few hundred KB. Once with
   * honest sizes (refused from the declared size), once declaring 1000 bytes
   * (refused while inflating, from what actually comes out). */
  for (int lie = 0; lie < 2; lie++) {
    zpart_t parts[] = {
        {"_rels/.rels", STR(ROOT_RELS)},
        {"xl/workbook.xml", STR(WB_1)},
        {"xl/_rels/workbook.xml.rels", STR(WB_RELS_1)},
        {"xl/worksheets/sheet1.xml", NULL, 0, "<worksheet " NS "><sheetData>", "</sheetData></worksheet>", ' ',
         (size_t)300 << 20, lie},
    };
    size_t len = 0;
    uint8_t *zip = zip_build(parts, 4, &len);
    cr_assert_lt(len, 1 << 20, "the bomb is small: %zu bytes", len);
    run_t r;
    parse(&r, zip, len, NULL);
    cr_assert_eq(r.st, SC_RESOURCE_EXHAUSTED, "%s: %s", sc_status_name(r.st), r.err.msg);
    cr_assert(strstr(r.err.msg, "ZIP bomb") != NULL, "%s", r.err.msg);
    cr_assert(strstr(r.err.msg, "xl/worksheets/sheet1.xml") != NULL, "names the entry: %s", r.err.msg);
    cr_assert(strstr(r.err.msg, lie ? "times its compressed size" : "declares") != NULL, "%s", r.err.msg);
    done(&r);
    free(zip);
  }
}

Test(xlsx, total_unpacked_bytes_are_capped) {
  /* Twenty sheets that all point at one stored (not compressed) 15 MB part:
   * no entry is a bomb, but reading them all would inflate 300 MB. */
  size_t big_len = (size_t)15 << 20;
  char *big = malloc(big_len + 1);
  const char *head = "<worksheet " NS "><sheetData>", *tail = "</sheetData></worksheet>";
  memset(big, ' ', big_len);
  memcpy(big, head, strlen(head));
  memcpy(big + big_len - strlen(tail), tail, strlen(tail));
  char wb[4096] = "<workbook " NS " xmlns:r=\"" RNS "\"><sheets>",
       rels[4096] = "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">";
  for (int i = 1; i <= 20; i++) {
    char s[256];
    snprintf(s, sizeof s, "<sheet name=\"S%d\" sheetId=\"%d\" r:id=\"rId%d\"/>", i, i, i);
    strncat(wb, s, sizeof wb - strlen(wb) - 1);
    snprintf(s, sizeof s, "<Relationship Id=\"rId%d\" Type=\"" RNS "/worksheet\" Target=\"worksheets/big.xml\"/>", i);
    strncat(rels, s, sizeof rels - strlen(rels) - 1);
  }
  strncat(wb, "</sheets></workbook>", sizeof wb - strlen(wb) - 1);
  strncat(rels, "</Relationships>", sizeof rels - strlen(rels) - 1);
  zpart_t parts[] = {
      {"_rels/.rels", STR(ROOT_RELS)},
      {"xl/workbook.xml", STR(wb)},
      {"xl/_rels/workbook.xml.rels", STR(rels)},
      {"xl/worksheets/big.xml", (const uint8_t *)big, big_len},
  };
  size_t len = 0;
  uint8_t *zip = zip_build(parts, 4, &len);
  run_t r;
  parse(&r, zip, len, NULL);
  cr_assert_eq(r.st, SC_RESOURCE_EXHAUSTED, "%s: %s", sc_status_name(r.st), r.err.msg);
  cr_assert(strstr(r.err.msg, "256 MiB") != NULL, "%s", r.err.msg);
  done(&r);
  free(zip);
  free(big);
}

Test(xlsx, truncated_and_damaged_archives) {
  size_t len = 0;
  uint8_t *data = slurp(FIX "statement_1900.xlsx", &len);
  size_t cuts[] = {1, 4, 30, 100, len / 4, len / 2, len - 100, len - 22, len - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    uint8_t *cut = malloc(cuts[i]);
    memcpy(cut, data, cuts[i]);
    run_t r;
    parse(&r, cut, cuts[i], NULL);
    cr_assert_eq(r.st, SC_INVALID_ARGUMENT, "cut at %zu: %s: %s", cuts[i], sc_status_name(r.st), r.err.msg);
    cr_assert_eq(r.got.n, 0);
    done(&r);
    free(cut);
  }
  /* A damaged byte inside the compressed worksheet: a CRC or inflate error. */
  const char *name = "xl/worksheets/sheet3.xml";
  uint8_t *hdr = memmem(data, len, name, strlen(name));
  cr_assert_not_null(hdr);
  hdr[strlen(name) + 40] ^= 0x55;
  run_t r;
  parse(&r, data, len, NULL);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT, "%s: %s", sc_status_name(r.st), r.err.msg);
  cr_assert(strstr(r.err.msg, "sheet3.xml") != NULL, "%s", r.err.msg);
  done(&r);
  free(data);
}

Test(xlsx, binary_garbage) {
  uint8_t buf[4096];
  uint32_t seed = 12345;
  for (size_t i = 0; i < sizeof buf; i++) {
    seed = seed * 1103515245u + 12345u;
    buf[i] = (uint8_t)(seed >> 16);
  }
  const uint8_t zip_sig[4] = {'P', 'K', 3, 4}, cfb_sig[8] = {0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};
  for (int v = 0; v < 3; v++) {
    if (v == 1) memcpy(buf, zip_sig, sizeof zip_sig);
    if (v == 2) memcpy(buf, cfb_sig, sizeof cfb_sig);
    run_t r;
    parse(&r, buf, sizeof buf, NULL);
    cr_assert_eq(r.st, SC_INVALID_ARGUMENT, "variant %d: %s: %s", v, sc_status_name(r.st), r.err.msg);
    cr_assert_neq(r.err.msg[0], '\0');
    done(&r);
  }
  run_t r;
  parse(&r, buf, 0, NULL);
  cr_assert_eq(r.st, SC_INVALID_ARGUMENT);
  done(&r);
}
