/* Statement parsing: what every format parser (CSV, XLSX, OFX) produces.
 *
 * A parser reads a whole file from memory and calls back once per data row,
 * in file order: either a row read (`row` set) or a row it could not read
 * (`row` NULL, `reason` set), each with its physical line number (CSV, OFX)
 * or sheet row number (XLSX), so users can find it in the file they have.
 * Strings in a row are valid during the callback only: copy what you keep.
 * Memory stays bounded by the file and one row, whatever the row count.
 *
 * File-level problems (not a statement, an unknown layout, a date format that
 * is truly ambiguous without a hint, an encrypted file without its password,
 * a wrong password, a corrupt or over-large archive) end the parse with a
 * status and a message in `err` a client can act on: it names what was found
 * ("columns found: Date, Narration, Withdrawal Amt., ...") and what to do
 * ("map them with mapping.dateColumn / mapping.amountColumn").
 */
#ifndef SCALE_INGESTION_STATEMENT_H
#define SCALE_INGESTION_STATEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "scale/arena.h"
#include "scale/status.h"

/* Values match scale.ingestion.v1.StatementFormat. */
typedef enum ingest_format {
  INGEST_FORMAT_UNKNOWN = 0,
  INGEST_FORMAT_CSV = 1,
  INGEST_FORMAT_XLSX = 2,
  INGEST_FORMAT_OFX = 3,
} ingest_format_t;

/* Values match scale.ingestion.v1.AmountSign. */
typedef enum ingest_sign {
  INGEST_SIGN_AUTO = 0, /* a signed amount column: negative is money out */
  INGEST_SIGN_NEGATIVE_IS_OUT = 1,
  INGEST_SIGN_POSITIVE_IS_OUT = 2, /* some card statements */
} ingest_sign_t;

typedef struct ingest_column {
  const char *name; /* header text, matched case-insensitively after trimming; NULL: unset */
  int index;        /* 0-based; -1: unset (name wins when both are set) */
} ingest_column_t;

/* An explicit column mapping (the override for detection). Unset columns
 * (name NULL and index -1) are detected. */
typedef struct ingest_mapping {
  ingest_column_t date, amount, debit, credit, description, merchant, currency, reference, payment_method,
      direction; /* direction: a Dr/Cr (debit/credit) column */
  ingest_sign_t amount_sign;
  int header_line;        /* 1-based physical line of the header; 0: detect */
  char delimiter;         /* ',', ';', '\t', '|'; 0: detect */
  char decimal_separator; /* '.' or ','; 0: detect per column */
  const char *sheet_name; /* XLSX; NULL: the first sheet holding a transaction table */
} ingest_mapping_t;

/* An unset mapping: every column -1/NULL. */
void ingest_mapping_init(ingest_mapping_t *m);

typedef struct ingest_opts {
  const char *default_currency;    /* ISO 4217 for files without a currency column; NULL: none */
  const char *date_format;         /* hint in strftime notation ("%d/%m/%Y"); NULL: infer from the whole column */
  const ingest_mapping_t *mapping; /* NULL: detect everything */
  const char *password;            /* encrypted XLSX; NULL: none given */
  int32_t max_rows;                /* stop after this many data rows (preview); 0: all */
} ingest_opts_t;

typedef struct ingest_row {
  int32_t line;         /* physical line (CSV, OFX) or sheet row (XLSX), 1-based */
  char date[11];        /* YYYY-MM-DD, the booking date */
  int64_t amount_minor; /* integer minor units, money out negative */
  const char *currency; /* ISO 4217, upper case; NULL: use the default */
  const char *merchant; /* NULL or text (UTF-8) */
  const char *description;
  const char *payment_method;
  const char *reference;
  const char *bank_txn_id; /* OFX FITID; NULL elsewhere */
} ingest_row_t;

/* Per row: row set, or row NULL with the reason it was rejected. Return 0 to
 * go on; anything else stops the parse, which then returns SC_CANCELLED. */
typedef int (*ingest_row_cb)(void *ctx, int32_t line, const ingest_row_t *row, const char *reason);

#define INGEST_MAX_COLUMNS 64
#define INGEST_MAX_DATE_CANDIDATES 4

/* What the parser found and used. Strings live in the caller's arena. */
typedef struct ingest_result {
  ingest_format_t format;
  int encrypted;        /* the file was a password-protected package */
  char date_format[32]; /* used, strftime notation ("%Y-%m-%d"); "" when dates were not text */
  int date_ambiguous;   /* set when the parse failed for want of date_format */
  char date_candidates[INGEST_MAX_DATE_CANDIDATES][32];
  int n_date_candidates;
  const char *columns[INGEST_MAX_COLUMNS]; /* header cells, as found */
  int n_columns;
  ingest_mapping_t mapping; /* as used (detected or given) */
  int32_t rows_read;        /* data rows seen: read + rejected */
  char delimiter;           /* CSV */
  const char *sheet;        /* XLSX: the sheet used */
} ingest_result_t;

/* Each parser: SC_OK when the file was read (rows may still have been
 * rejected, one by one, through the callback); otherwise a file-level status
 * (SC_INVALID_ARGUMENT, SC_FAILED_PRECONDITION for "password required" /
 * "password incorrect", SC_DATA_LOSS for a tampered encrypted package,
 * SC_RESOURCE_EXHAUSTED for limits) with err set. */
sc_status_t ingest_parse_csv(const uint8_t *data, size_t len, const ingest_opts_t *opts, sc_arena_t *arena,
                             ingest_row_cb cb, void *ctx, ingest_result_t *res, sc_err_t *err);
sc_status_t ingest_parse_xlsx(const uint8_t *data, size_t len, const ingest_opts_t *opts, sc_arena_t *arena,
                              ingest_row_cb cb, void *ctx, ingest_result_t *res, sc_err_t *err);
sc_status_t ingest_parse_ofx(const uint8_t *data, size_t len, const ingest_opts_t *opts, sc_arena_t *arena,
                             ingest_row_cb cb, void *ctx, ingest_result_t *res, sc_err_t *err);

/* Detects the format (content first: ZIP or OLE compound-file signature,
 * OFX header; then the file name's extension) and runs its parser. */
ingest_format_t ingest_detect(const uint8_t *data, size_t len, const char *filename);
sc_status_t ingest_parse(const uint8_t *data, size_t len, const char *filename, ingest_format_t format_hint,
                         const ingest_opts_t *opts, sc_arena_t *arena, ingest_row_cb cb, void *ctx,
                         ingest_result_t *res, sc_err_t *err);

/* ---- The table engine (table.c), shared by CSV and XLSX ------------------
 *
 * CSV and XLSX differ in how cells are stored, not in what a bank statement
 * table looks like: both hand the engine a source of physical rows of cells,
 * and the engine finds the header (after any preamble), maps columns (or
 * applies the explicit mapping), infers the date format from the whole date
 * column, parses amounts (signed, debit/credit, Dr/Cr, parentheses, symbols,
 * separators), skips summary lines after the data, and calls back per row. */

typedef enum ingest_cell_kind {
  INGEST_CELL_TEXT = 0,   /* as written in the file */
  INGEST_CELL_NUMBER = 1, /* text holds a plain decimal: "-1234.5" (XLSX numeric cells) */
  INGEST_CELL_DATE = 2,   /* text holds YYYY-MM-DD (XLSX date-formatted cells) */
  /* Added for sources that can fail on one row (CSV: invalid UTF-8, an
   * unterminated quote): the row is this single cell and its text is the
   * reason. The engine rejects it through the callback when it lies among
   * the data rows and ignores it in the preamble or after the data. */
  INGEST_CELL_ERROR = 3,
} ingest_cell_kind_t;

typedef struct ingest_cell {
  const char *text; /* NUL-terminated UTF-8; "" for an empty cell */
  ingest_cell_kind_t kind;
} ingest_cell_t;

/* A source of physical rows. next() returns 1 with the row's cells (valid
 * until the next call), 0 at the end, -1 on error (err set). rewind() starts
 * over (the engine reads twice: detection, then rows). */
typedef struct ingest_table_src {
  void *impl;
  int (*next)(void *impl, int32_t *line, const ingest_cell_t **cells, int *n_cells, sc_err_t *err);
  int (*rewind)(void *impl, sc_err_t *err);
} ingest_table_src_t;

sc_status_t ingest_table_parse(const ingest_table_src_t *src, const ingest_opts_t *opts, sc_arena_t *arena,
                               ingest_row_cb cb, void *ctx, ingest_result_t *res, sc_err_t *err);
/* (Added) What ingest_table_parse fills in `res`: columns, n_columns, mapping
 * (columns as resolved, with both name and index), date_format,
 * date_ambiguous, date_candidates, rows_read. It does not clear `res` and
 * leaves format, encrypted, delimiter and sheet to the calling parser. A
 * source's next() returning -1 ends the parse with SC_INVALID_ARGUMENT and
 * the source's err; the caller may refine that status (a limit). Limits:
 * INGEST_MAX_ROWS data rows (SC_RESOURCE_EXHAUSTED); the header is looked
 * for in the first INGEST_HEADER_SCAN_ROWS rows. NUMBER cells ("-1234.5",
 * "1.5E-3") are rounded half away from zero to the currency's decimals: they
 * held binary doubles. DATE cells are taken as they are; the date format is
 * inferred from TEXT cells only. */
#define INGEST_MAX_ROWS 10000000
#define INGEST_HEADER_SCAN_ROWS 1000

/* ---- Dates (dates.c) ------------------------------------------------------ */

/* Parses `text` with a strftime-style format (%d %m %Y %y %b %B %e, literal
 * separators) into YYYY-MM-DD. Returns 0, or -1 (not a real date). */
int ingest_date_parse(const char *text, const char *format, char out[11]);

/* Infers the format of a date column from all its values (day-first,
 * month-first, ISO, month names, 2- or 4-digit years). Returns 1 with the
 * format, 0 when several fit every value (candidates listed), -1 when none
 * does. */
int ingest_date_infer(const char *const *values, size_t n, char format[32],
                      char candidates[INGEST_MAX_DATE_CANDIDATES][32], int *n_candidates);

/* (Added) Values no known format reads at all ("", "Total", "31/02/2026")
 * are left out of the inference; they are rows to reject, not evidence. So
 * are a few values (at most 1 in 20 of those read) that only a format ruled
 * out by earlier values reads (one "2026-01-15" among day-first dates); more
 * than that is a column of mixed formats: -1. Formats that read every
 * other value alike (05/05/2026 as %d/%m/%Y and %m/%d/%Y) count as one
 * candidate: the first in preference order wins. */

/* (Added) The streaming form of ingest_date_infer, so a column of millions of
 * rows is inferred without holding its values: init, add each value, finish
 * (same answers as ingest_date_infer). The state is plain data (copyable). */
#define INGEST_DATE_MAX_FORMATS 32
typedef struct ingest_date_inferrer {
  uint32_t alive;                           /* formats that read every value so far */
  uint32_t differ[INGEST_DATE_MAX_FORMATS]; /* bit j of differ[i]: i and j read some value as different dates */
  uint64_t n_values;                        /* values some format reads */
  uint64_t n_unread;                        /* values no format reads */
  uint64_t n_odd;                           /* values only an already excluded format reads */
} ingest_date_inferrer_t;

void ingest_date_infer_init(ingest_date_inferrer_t *st);
/* Returns 1 when some known format reads the value, else 0. */
int ingest_date_infer_add(ingest_date_inferrer_t *st, const char *value);
int ingest_date_infer_finish(const ingest_date_inferrer_t *st, char format[32],
                             char candidates[INGEST_MAX_DATE_CANDIDATES][32], int *n_candidates);

/* (Added) ingest_date_parse that says why it failed: *reason is "does not
 * match the date format" (wrong shape) or "is not a real date" (31/02/2026,
 * month 13, a year outside 1900-2199). Both also accept %a %A %H %I %M %S
 * %p %z %Z (read and ignored, for hints like "%d/%m/%Y %H:%M") and a
 * trailing time of day after any format. */
int ingest_date_parse_why(const char *text, const char *format, char out[11], const char **reason);

/* ---- Shared helpers for the parsers (amounts.c) ------------------------- */

/* Parses a money amount as banks print it: optional currency symbol or code,
 * sign, parentheses for negatives, "Dr"/"Cr" suffix, thousands separators
 * (1,234.56 / 1.234,56 / 1 234,56 / Indian 1,23,456.78), decimal point or
 * comma (`decimal` '.' or ','; 0: infer from the text). The result is in minor
 * units of a currency with `exponent` decimals (2 for most; 0 for JPY, 3 for
 * KWD). Returns 0, or -1 with a reason. */
int ingest_parse_amount(const char *text, char decimal, int exponent, int64_t *minor, const char **reason);

/* The number of minor-unit decimals of an ISO 4217 currency (2 if unknown). */
int ingest_currency_exponent(const char *code);

#endif
