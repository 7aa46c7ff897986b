/* ingest_date_parse and the inference of a date column's format over all of
 * its values. */
#include <criterion/criterion.h>
#include <string.h>

#include "statement.h"

static void parses(const char *text, const char *fmt, const char *want) {
  char out[11] = "xxxxxxxxxx";
  cr_assert_eq(ingest_date_parse(text, fmt, out), 0, "'%s' with %s did not parse", text, fmt);
  cr_assert_str_eq(out, want, "'%s' with %s", text, fmt);
}

static void fails(const char *text, const char *fmt, const char *why) {
  char out[11];
  const char *reason = NULL;
  cr_assert_eq(ingest_date_parse_why(text, fmt, out, &reason), -1, "'%s' with %s parsed as %s", text, fmt, out);
  cr_assert_eq(ingest_date_parse(text, fmt, out), -1);
  if (why != NULL) cr_assert_str_eq(reason, why, "'%s' with %s", text, fmt);
}

Test(dates, every_listed_format) {
  parses("2026-01-05", "%Y-%m-%d", "2026-01-05");
  parses("05/01/2026", "%d/%m/%Y", "2026-01-05");
  parses("01/05/2026", "%m/%d/%Y", "2026-01-05");
  parses("05-01-2026", "%d-%m-%Y", "2026-01-05");
  parses("05.01.2026", "%d.%m.%Y", "2026-01-05");
  parses("05/01/26", "%d/%m/%y", "2026-01-05");
  parses("01/05/26", "%m/%d/%y", "2026-01-05");
  parses("2026/01/05", "%Y/%m/%d", "2026-01-05");
  parses("05 Jan 2026", "%d %b %Y", "2026-01-05");
  parses("05-Jan-2026", "%d-%b-%Y", "2026-01-05");
  parses("05-Jan-26", "%d-%b-%y", "2026-01-05");
  parses("Jan 05, 2026", "%b %d, %Y", "2026-01-05");
  parses("05 January 2026", "%d %B %Y", "2026-01-05");
  parses("20260105", "%Y%m%d", "2026-01-05");
}

Test(dates, leading_zeros_case_and_blanks) {
  parses("5/1/2026", "%d/%m/%Y", "2026-01-05");
  parses("2026-1-5", "%Y-%m-%d", "2026-01-05");
  parses("5 jan 2026", "%d %b %Y", "2026-01-05");
  parses("5 JAN 2026", "%d %b %Y", "2026-01-05");
  parses("5 SEPT 2026", "%d %b %Y", "2026-09-05");
  parses("5 september 2026", "%d %B %Y", "2026-09-05");
  parses("  05/01/2026 ", "%d/%m/%Y", "2026-01-05");
  parses("\xc2\xa0"
         "05/01/2026\xc2\xa0",
         "%d/%m/%Y", "2026-01-05");
  parses("Jan  5, 2026", "%b %d, %Y", "2026-01-05");
  parses("Jan 5, 2026", "%b %e, %Y", "2026-01-05");
  fails("05/01/2026", "%d-%m-%Y", "does not match the date format");
  fails("05 Janu 2026", "%d %b %Y", "does not match the date format");
  fails("05 Jan 2026", "%d %B %Y", "does not match the date format");
}

Test(dates, trailing_time_is_ignored) {
  parses("2026-01-05 10:32:00", "%Y-%m-%d", "2026-01-05");
  parses("2026-01-05T10:32:00Z", "%Y-%m-%d", "2026-01-05");
  parses("2026-01-05T10:32:00.123+05:30", "%Y-%m-%d", "2026-01-05");
  parses("05/01/2026 10:32", "%d/%m/%Y", "2026-01-05");
  parses("05/01/2026 9:05 PM", "%d/%m/%Y", "2026-01-05");
  parses("05/01/2026 10:32 IST", "%d/%m/%Y", "2026-01-05");
  fails("05/01/2026 25:00", "%d/%m/%Y", "does not match the date format");
  fails("05/01/2026 garbage", "%d/%m/%Y", "does not match the date format");
  fails("05/01/2026 10:32 PM extra words", "%d/%m/%Y", NULL);
}

Test(dates, impossible_dates_are_rejected) {
  fails("31/02/2026", "%d/%m/%Y", "is not a real date");
  fails("29/02/2026", "%d/%m/%Y", "is not a real date");
  parses("29/02/2024", "%d/%m/%Y", "2024-02-29");
  fails("29/02/1900", "%d/%m/%Y", "is not a real date");
  parses("29/02/2000", "%d/%m/%Y", "2000-02-29");
  fails("31/04/2026", "%d/%m/%Y", "is not a real date");
  fails("00/01/2026", "%d/%m/%Y", "is not a real date");
  fails("13/13/2026", "%d/%m/%Y", "is not a real date");
  fails("2026-00-10", "%Y-%m-%d", "is not a real date");
  fails("01/01/0026", "%d/%m/%Y", "is not a real date");
  fails("", "%d/%m/%Y", "does not match the date format");
  fails("05/01/20261", "%d/%m/%Y", "does not match the date format");
  fails("05/01", "%d/%m/%Y", "does not match the date format");
  fails("05/01/26", "%d/%m/%Y", "does not match the date format");
  fails("05/01/2026", "%d/%m/%y", "does not match the date format");
}

Test(dates, two_digit_years_pivot_like_strptime) {
  parses("01/01/68", "%d/%m/%y", "2068-01-01");
  parses("01/01/69", "%d/%m/%y", "1969-01-01");
  parses("31/12/99", "%d/%m/%y", "1999-12-31");
  parses("31/12/00", "%d/%m/%y", "2000-12-31");
}

static int infer(const char *const *v, size_t n, char fmt[32], char c[INGEST_MAX_DATE_CANDIDATES][32], int *nc) {
  memset(c, 0, sizeof(char[INGEST_MAX_DATE_CANDIDATES][32]));
  return ingest_date_infer(v, n, fmt, c, nc);
}

Test(dates, infer_unique_over_the_whole_column) {
  char fmt[32], c[INGEST_MAX_DATE_CANDIDATES][32];
  int nc = -1;
  /* the 13th, late in the column, settles day-first */
  const char *dmy[] = {"01/02/2026", "03/02/2026", "05/02/2026", "07/02/2026", "13/02/2026"};
  cr_assert_eq(infer(dmy, 5, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%d/%m/%Y");
  const char *mdy[] = {"01/02/2026", "02/28/2026"};
  cr_assert_eq(infer(mdy, 2, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%m/%d/%Y");
  const char *iso[] = {"2026-01-05", "2026-01-06 10:00:00"};
  cr_assert_eq(infer(iso, 2, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%Y-%m-%d");
  const char *dmy2[] = {"05/01/26", "25/01/26"};
  cr_assert_eq(infer(dmy2, 2, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%d/%m/%y");
  const char *de[] = {"05.01.2026", "06.01.2026"};
  cr_assert_eq(infer(de, 2, fmt, c, &nc), 1, "dots are day-first only");
  cr_assert_str_eq(fmt, "%d.%m.%Y");
  const char *dash[] = {"05-01-2026", "06-01-2026"};
  cr_assert_eq(infer(dash, 2, fmt, c, &nc), 1, "dashes are day-first only");
  cr_assert_str_eq(fmt, "%d-%m-%Y");
  const char *mon[] = {"05 Jan 2026", "06 Feb 2026"};
  cr_assert_eq(infer(mon, 2, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%d %b %Y");
  const char *full[] = {"05 January 2026", "06 May 2026"};
  cr_assert_eq(infer(full, 2, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%d %B %Y");
  const char *us[] = {"Jan 5, 2026", "Feb 16, 2026"};
  cr_assert_eq(infer(us, 2, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%b %d, %Y");
  const char *dbY[] = {"05-Jan-2026", "06-Feb-2026"};
  cr_assert_eq(infer(dbY, 2, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%d-%b-%Y");
  const char *dby[] = {"05-Jan-26", "06-Feb-26"};
  cr_assert_eq(infer(dby, 2, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%d-%b-%y");
  const char *ymd[] = {"2026/01/05"};
  cr_assert_eq(infer(ymd, 1, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%Y/%m/%d");
  const char *compact[] = {"20260105", "20260131"};
  cr_assert_eq(infer(compact, 2, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%Y%m%d");
}

Test(dates, infer_ambiguous_lists_candidates) {
  char fmt[32], c[INGEST_MAX_DATE_CANDIDATES][32];
  int nc = -1;
  const char *v[] = {"01/02/2026", "03/04/2026", "12/11/2026", "05/06/2026"};
  cr_assert_eq(infer(v, 4, fmt, c, &nc), 0);
  cr_assert_eq(nc, 2);
  cr_assert_str_eq(c[0], "%d/%m/%Y");
  cr_assert_str_eq(c[1], "%m/%d/%Y");
  const char *v2[] = {"01/02/26", "03/04/26"};
  cr_assert_eq(infer(v2, 2, fmt, c, &nc), 0);
  cr_assert_eq(nc, 2);
  cr_assert_str_eq(c[0], "%d/%m/%y");
  cr_assert_str_eq(c[1], "%m/%d/%y");
}

Test(dates, infer_same_reading_is_not_ambiguous) {
  /* Every value has day == month: both orders give the same dates. */
  char fmt[32], c[INGEST_MAX_DATE_CANDIDATES][32];
  int nc = -1;
  const char *v[] = {"01/01/2026", "02/02/2026", "12/12/2026"};
  cr_assert_eq(infer(v, 3, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%d/%m/%Y");
  const char *may[] = {"05 May 2026"}; /* %b and %B both read "May" */
  cr_assert_eq(infer(may, 1, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%d %b %Y");
}

Test(dates, infer_skips_unreadable_values) {
  char fmt[32], c[INGEST_MAX_DATE_CANDIDATES][32];
  int nc = -1;
  const char *v[] = {"", "Total", "05/01/2026", "31/02/2026", "25/01/2026", "Closing balance"};
  cr_assert_eq(infer(v, 6, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%d/%m/%Y");
}

Test(dates, infer_none) {
  char fmt[32], c[INGEST_MAX_DATE_CANDIDATES][32];
  int nc = -1;
  const char *mixed[] = {"25/01/2026", "01/25/2026"};
  cr_assert_eq(infer(mixed, 2, fmt, c, &nc), -1, "day-first and month-first in one column");
  cr_assert_eq(nc, 0);
  const char *mixed2[] = {"2026-01-05", "05/01/2026"};
  cr_assert_eq(infer(mixed2, 2, fmt, c, &nc), -1);
  const char *none[] = {"hello", "42"};
  cr_assert_eq(infer(none, 2, fmt, c, &nc), -1);
  cr_assert_eq(infer(NULL, 0, fmt, c, &nc), -1);
}

Test(dates, streaming_matches_batch) {
  ingest_date_inferrer_t st;
  ingest_date_infer_init(&st);
  char fmt[32], c[INGEST_MAX_DATE_CANDIDATES][32];
  int nc = -1;
  for (int i = 0; i < 100000; i++) {
    char v[16];
    int d = i % 12 + 1;
    v[0] = (char)('0' + d / 10);
    v[1] = (char)('0' + d % 10);
    memcpy(v + 2, "/03/2026", 9);
    cr_assert_eq(ingest_date_infer_add(&st, v), 1);
  }
  cr_assert_eq(ingest_date_infer_finish(&st, fmt, c, &nc), 0, "all days <= 12: ambiguous");
  cr_assert_eq(ingest_date_infer_add(&st, "28/03/2026"), 1);
  cr_assert_eq(ingest_date_infer_finish(&st, fmt, c, &nc), 1);
  cr_assert_str_eq(fmt, "%d/%m/%Y");
  cr_assert_eq(ingest_date_infer_add(&st, "Total"), 0);
  cr_assert_eq(st.n_values, 100001u);
  cr_assert_eq(st.n_unread, 1u);
}

Test(dates, infer_tolerates_a_few_strays_not_a_mix) {
  ingest_date_inferrer_t st;
  char fmt[32], c[INGEST_MAX_DATE_CANDIDATES][32];
  int nc = -1;
  ingest_date_infer_init(&st);
  for (int d = 1; d <= 28; d++) {
    char v[16] = "00/02/2026";
    v[0] = (char)('0' + d / 10);
    v[1] = (char)('0' + d % 10);
    ingest_date_infer_add(&st, v);
  }
  cr_assert_eq(ingest_date_infer_add(&st, "2026-02-28"), 1, "read, by a format already ruled out");
  cr_assert_eq(st.n_odd, 1u);
  cr_assert_eq(ingest_date_infer_finish(&st, fmt, c, &nc), 1, "one stray in 29 is a bad row");
  cr_assert_str_eq(fmt, "%d/%m/%Y");
  ingest_date_infer_add(&st, "2026-02-27");
  cr_assert_eq(ingest_date_infer_finish(&st, fmt, c, &nc), -1, "two in 30 is a mixed column");
}

Test(dates, hints_with_weekdays_and_times) {
  parses("Mon, 05 Jan 2026", "%a, %d %b %Y", "2026-01-05");
  parses("Monday 05 January 2026", "%A %d %B %Y", "2026-01-05");
  parses("05/01/2026 10:32", "%d/%m/%Y %H:%M", "2026-01-05");
  parses("05/01/2026 10:32:07 PM", "%d/%m/%Y %I:%M:%S %p", "2026-01-05");
  fails("05/01/2026 24:32", "%d/%m/%Y %H:%M", "does not match the date format");
  fails("Funday, 05 Jan 2026", "%a, %d %b %Y", "does not match the date format");
}
