/* ingest_parse_amount and ingest_currency_exponent: amounts as banks print
 * them, to exact minor units, and the reasons given for what is not one. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "statement.h"

static int64_t ok(const char *text, char decimal, int exponent) {
  int64_t v = 12345;
  const char *why = "unset";
  int r = ingest_parse_amount(text, decimal, exponent, &v, &why);
  cr_assert_eq(r, 0, "'%s' (decimal '%c', exponent %d) was rejected: %s", text, decimal ? decimal : '?', exponent,
               why ? why : "(null)");
  cr_assert_null(why, "'%s': reason set on success", text);
  return v;
}

static const char *bad(const char *text, char decimal, int exponent) {
  int64_t v = 777;
  const char *why = NULL;
  int r = ingest_parse_amount(text, decimal, exponent, &v, &why);
  cr_assert_eq(r, -1, "'%s' was accepted as %lld", text, (long long)v);
  cr_assert_eq(v, 777, "'%s': output written on failure", text);
  cr_assert_not_null(why, "'%s': no reason", text);
  return why;
}

Test(amounts, plain_and_signed) {
  cr_assert_eq(ok("0", 0, 2), 0);
  cr_assert_eq(ok("12", 0, 2), 1200);
  cr_assert_eq(ok("12.5", 0, 2), 1250);
  cr_assert_eq(ok("12.34", 0, 2), 1234);
  cr_assert_eq(ok("-12.34", 0, 2), -1234);
  cr_assert_eq(ok("+12.34", 0, 2), 1234);
  cr_assert_eq(ok("  -0.01 ", 0, 2), -1);
  cr_assert_eq(ok("-0.00", 0, 2), 0);
  cr_assert_eq(ok(".50", 0, 2), 50);
  cr_assert_eq(ok("12.", 0, 2), 1200);
  cr_assert_eq(ok("12.50-", 0, 2), -1250, "a trailing minus (SAP-style exports)");
  cr_assert_eq(ok("\xE2\x88\x92"
                  "7.25",
                  0, 2),
               -725, "U+2212 MINUS SIGN");
  cr_assert_eq(ok("0012.30", 0, 2), 1230);
}

Test(amounts, parentheses_are_negative) {
  cr_assert_eq(ok("(12.34)", 0, 2), -1234);
  cr_assert_eq(ok("(1,234.00)", 0, 2), -123400);
  cr_assert_eq(ok("($5.00)", 0, 2), -500);
  cr_assert_eq(ok("$(5.00)", 0, 2), -500);
  cr_assert_str_eq(bad("(12.34", 0, 2), "is not a number");
  cr_assert_str_eq(bad("12.34)", 0, 2), "is not a number");
}

Test(amounts, dr_cr_suffixes) {
  cr_assert_eq(ok("1,234.56 Dr", 0, 2), -123456);
  cr_assert_eq(ok("1,234.56 Cr", 0, 2), 123456);
  cr_assert_eq(ok("1,234.56DR", 0, 2), -123456);
  cr_assert_eq(ok("500.00 CR.", 0, 2), 50000);
  cr_assert_eq(ok("500.00 Dr.", 0, 2), -50000);
  cr_assert_eq(ok("Dr 500.00", 0, 2), -50000);
  cr_assert_eq(ok("INR 500.00 Cr", 0, 2), 50000);
  cr_assert_str_eq(bad("-500.00 Cr", 0, 2), "has conflicting signs");
  cr_assert_str_eq(bad("(500.00) Cr", 0, 2), "has conflicting signs");
  cr_assert_str_eq(bad("-(500.00)", 0, 2), "has conflicting signs");
  cr_assert_str_eq(bad("500.00 Dr Cr", 0, 2), "is not a number");
}

Test(amounts, currency_symbols_and_codes) {
  cr_assert_eq(ok("\xE2\x82\xB9"
                  "1,23,456.78",
                  0, 2),
               12345678, "₹ with Indian grouping");
  cr_assert_eq(ok("$1,234.56", 0, 2), 123456);
  cr_assert_eq(ok("-$1,234.56", 0, 2), -123456);
  cr_assert_eq(ok("$-1,234.56", 0, 2), -123456);
  cr_assert_eq(ok("\xE2\x82\xAC"
                  "12,50",
                  0, 2),
               1250, "€ with a decimal comma");
  cr_assert_eq(ok("12,50 \xE2\x82\xAC", 0, 2), 1250);
  cr_assert_eq(ok("-1.234,56\xC2\xA0\xE2\x82\xAC", 0, 2), -123456, "NBSP before €");
  cr_assert_eq(ok("\xC2\xA3"
                  "12.50",
                  0, 2),
               1250, "£");
  cr_assert_eq(ok("\xC2\xA5"
                  "1,200",
                  0, 0),
               1200, "¥ with exponent 0");
  cr_assert_eq(ok("INR 1,500.00", 0, 2), 150000);
  cr_assert_eq(ok("1,500.00 INR", 0, 2), 150000);
  cr_assert_eq(ok("Rs. 1,500.00", 0, 2), 150000);
  cr_assert_eq(ok("Rs.1,500", 0, 2), 150000);
  cr_assert_eq(ok("Rs 99", 0, 2), 9900);
  cr_assert_eq(ok("USD -42.10", 0, 2), -4210);
  cr_assert_eq(ok("-42.10 USD", 0, 2), -4210);
  cr_assert_eq(ok("US$42.10", 0, 2), 4210);
  cr_assert_eq(ok("EUR 1.234,56", 0, 2), 123456);
  cr_assert_str_eq(bad("abc 12", 0, 2), "is not a number");
  cr_assert_str_eq(bad("12 apples", 0, 2), "is not a number");
}

Test(amounts, thousands_separators) {
  cr_assert_eq(ok("1,234,567.89", 0, 2), 123456789);
  cr_assert_eq(ok("1,23,456.78", 0, 2), 12345678, "Indian lakh grouping");
  cr_assert_eq(ok("12,34,56,789.00", 0, 2), 12345678900, "Indian crore grouping");
  cr_assert_eq(ok("1.234.567,89", 0, 2), 123456789, "European");
  cr_assert_eq(ok("1 234 567,89", 0, 2), 123456789, "French, ASCII spaces");
  cr_assert_eq(ok("1\xC2\xA0"
                  "234\xC2\xA0"
                  "567,89",
                  0, 2),
               123456789, "NBSP grouping");
  cr_assert_eq(ok("1\xE2\x80\xAF"
                  "234,50",
                  0, 2),
               123450, "narrow NBSP grouping");
  cr_assert_eq(ok("1\xE2\x80\x89"
                  "234.50",
                  0, 2),
               123450, "thin space grouping");
  cr_assert_eq(ok("1'234'567.80", 0, 2), 123456780, "Swiss apostrophes");
  cr_assert_eq(ok("1\xE2\x80\x99"
                  "234.80",
                  0, 2),
               123480, "Swiss right single quote");
  cr_assert_eq(ok("1,234", 0, 2), 123400, "one comma and three digits: a thousand");
  cr_assert_eq(ok("1.234.567", 0, 2), 123456700);
  cr_assert_str_eq(bad("12,3,4", 0, 2), "is not a number");
  cr_assert_str_eq(bad("1,2345,678.00", 0, 2), "is not a number");
  cr_assert_str_eq(bad("1,234.567,89", 0, 2), "is not a number");
  cr_assert_str_eq(bad("1,,234", 0, 2), "is not a number");
  cr_assert_str_eq(bad("1234,567.00", 0, 2), "is not a number");
  cr_assert_str_eq(bad("12 34", 0, 2), "is not a number");
}

Test(amounts, decimal_comma) {
  cr_assert_eq(ok("12,50", 0, 2), 1250);
  cr_assert_eq(ok("-0,99", 0, 2), -99);
  cr_assert_eq(ok("0,500", 0, 2), 50, "a leading zero makes ,500 decimals");
  cr_assert_eq(ok("50,-", 0, 2), 5000, "\"50,-\" is fifty");
  /* A column's decimal separator, given: */
  cr_assert_eq(ok("1.234", ',', 2), 123400, "with ',' decimals, 1.234 is a thousand");
  cr_assert_eq(ok("1,234", ',', 3), 1234, "with ',' decimals and exponent 3");
  cr_assert_eq(ok("1234,5", ',', 2), 123450);
  cr_assert_eq(ok("1,234", '.', 2), 123400);
  cr_assert_str_eq(bad("12,50", '.', 2), "is not a number", "with '.' decimals, 12,50 is malformed");
  cr_assert_str_eq(bad("1,234.56", ',', 2), "is not a number");
  cr_assert_str_eq(bad("1234.56", ',', 2), "is not a number");
}

Test(amounts, exponents_and_extra_decimals) {
  cr_assert_eq(ok("1234", 0, 0), 1234, "JPY");
  cr_assert_eq(ok("1,234.00", 0, 0), 1234, "zeros past the exponent are fine");
  cr_assert_str_eq(bad("1,234.5", 0, 0), "has more decimal places than the currency allows");
  cr_assert_eq(ok("1.234", 0, 3), 1234, "KWD: 1.234 is one dinar and 234 fils");
  cr_assert_eq(ok("12.5", 0, 3), 12500);
  cr_assert_eq(ok("0.001", 0, 3), 1);
  cr_assert_str_eq(bad("12.345", 0, 2), "has more decimal places than the currency allows");
  cr_assert_eq(ok("12.3400", 0, 2), 1234);
  cr_assert_eq(ok("12.3456", 0, 4), 123456, "CLF");
  cr_assert_str_eq(bad("1", 0, 5), "is not a number", "exponents past 4 are refused");
}

Test(amounts, overflow_is_detected) {
  cr_assert_eq(ok("92233720368547758.07", 0, 2), INT64_MAX);
  cr_assert_eq(ok("-92233720368547758.07", 0, 2), -INT64_MAX);
  cr_assert_str_eq(bad("92233720368547758.08", 0, 2), "is too large");
  cr_assert_str_eq(bad("92,233,720,368,547,759", 0, 2), "is too large");
  cr_assert_str_eq(bad("99999999999999999999999999", 0, 0), "is too large");
  cr_assert_str_eq(bad("9223372036854775808", 0, 0), "is too large");
  cr_assert_eq(ok("9223372036854775807", 0, 0), INT64_MAX);
}

Test(amounts, not_numbers) {
  cr_assert_str_eq(bad("", 0, 2), "is empty");
  cr_assert_str_eq(bad("   ", 0, 2), "is empty");
  cr_assert_str_eq(bad("-", 0, 2), "is not a number");
  cr_assert_str_eq(bad("$", 0, 2), "is not a number");
  cr_assert_str_eq(bad(".", 0, 2), "is not a number");
  cr_assert_str_eq(bad("1e5", 0, 2), "is not a number");
  cr_assert_str_eq(bad("0x10", 0, 2), "is not a number");
  cr_assert_str_eq(bad("12..5", 0, 2), "is not a number");
  cr_assert_str_eq(bad("--5", 0, 2), "is not a number");
  cr_assert_str_eq(bad("N/A", 0, 2), "is not a number");
  cr_assert_str_eq(bad("1 2 3", 0, 2), "is not a number");
  cr_assert_str_eq(bad("12.50.", 0, 2), "is not a number");
  int64_t v;
  const char *why;
  cr_assert_eq(ingest_parse_amount(NULL, 0, 2, &v, &why), -1);
}

Test(amounts, currency_exponents) {
  cr_assert_eq(ingest_currency_exponent("INR"), 2);
  cr_assert_eq(ingest_currency_exponent("EUR"), 2);
  cr_assert_eq(ingest_currency_exponent("usd"), 2);
  cr_assert_eq(ingest_currency_exponent("JPY"), 0);
  cr_assert_eq(ingest_currency_exponent("KRW"), 0);
  cr_assert_eq(ingest_currency_exponent("KWD"), 3);
  cr_assert_eq(ingest_currency_exponent("BHD"), 3);
  cr_assert_eq(ingest_currency_exponent("OMR"), 3);
  cr_assert_eq(ingest_currency_exponent("JOD"), 3);
  cr_assert_eq(ingest_currency_exponent("TND"), 3);
  cr_assert_eq(ingest_currency_exponent("CLF"), 4);
  cr_assert_eq(ingest_currency_exponent("ZZZ"), 2, "unknown codes have 2");
  cr_assert_eq(ingest_currency_exponent("JPYX"), 2);
  cr_assert_eq(ingest_currency_exponent(""), 2);
  cr_assert_eq(ingest_currency_exponent(NULL), 2);
}
