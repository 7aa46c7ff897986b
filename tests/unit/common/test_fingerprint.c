/* scale-fp-v1 against every vector of shared/specs/fingerprint-vectors.json,
 * byte for byte (canonical bytes and digest). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "scale/fingerprint.h"

static const char *str(json_t *in, const char *key) {
  json_t *v = json_object_get(in, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static void to_hex(const uint8_t *p, size_t n, char *out) {
  static const char h[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = h[p[i] >> 4];
    out[2 * i + 1] = h[p[i] & 15];
  }
  out[2 * n] = '\0';
}

Test(fingerprint, reproduces_every_spec_vector) {
  json_error_t jerr;
  json_t *doc = json_load_file(SCALE_SHARED_DIR "/specs/fingerprint-vectors.json", 0, &jerr);
  cr_assert_not_null(doc, "cannot read the vectors: %s (line %d)", jerr.text, jerr.line);
  cr_assert_str_eq(json_string_value(json_object_get(doc, "spec")), "scale-fp-v1");
  json_t *vectors = json_object_get(doc, "vectors");
  cr_assert_gt(json_array_size(vectors), 10);
  sc_arena_t *a = sc_arena_new(0);
  size_t i;
  json_t *v;
  json_array_foreach(vectors, i, v) {
    json_t *in = json_object_get(v, "input");
    sc_fp_input_t fi = {
        .account_id = str(in, "account_id"),
        .bank_txn_id = str(in, "bank_txn_id"),
        .date = str(in, "date"),
        .amount_minor = (int64_t)json_integer_value(json_object_get(in, "amount_minor")),
        .currency = str(in, "currency"),
        .merchant = str(in, "merchant"),
        .description = str(in, "description"),
        .payment_method = str(in, "payment_method"),
        .reference = str(in, "reference"),
        .occurrence = (uint64_t)json_integer_value(json_object_get(in, "occurrence")),
    };
    sc_fp_t fp;
    const char *bad = NULL;
    const char *name = str(v, "name");
    cr_assert_eq(sc_fp_compute(&fi, a, &fp, &bad), SC_OK, "%s: rejected (%s)", name, bad ? bad : "");
    char *canon = sc_arena_alloc(a, fp.canonical_len * 2 + 1);
    to_hex(fp.canonical, fp.canonical_len, canon);
    cr_assert_str_eq(canon, str(v, "canonical_hex"), "%s: canonical bytes differ", name);
    cr_assert_str_eq(fp.hex, str(v, "fingerprint"), "%s: fingerprint differs", name);
  }
  sc_arena_free(a);
  json_decref(doc);
}

Test(fingerprint, repeats_share_a_key_and_differ_by_occurrence) {
  sc_arena_t *a = sc_arena_new(0);
  sc_fp_input_t in = {.date = "2026-02-01", .amount_minor = -350, .currency = "EUR", .merchant = "Cafe"};
  sc_fp_t first, second;
  cr_assert_eq(sc_fp_compute(&in, a, &first, NULL), SC_OK);
  in.occurrence = 1;
  cr_assert_eq(sc_fp_compute(&in, a, &second, NULL), SC_OK);
  cr_assert_str_neq(first.hex, second.hex);
  cr_assert_eq(first.key_len, second.key_len);
  cr_assert_eq(memcmp(first.canonical, second.canonical, first.key_len), 0);
  sc_arena_free(a);
}

Test(fingerprint, bad_input_names_the_field) {
  sc_arena_t *a = sc_arena_new(0);
  sc_fp_t fp;
  const char *bad;
  struct {
    sc_fp_input_t in;
    const char *field;
  } cases[] = {
      {{.date = "2026-02-30", .currency = "EUR"}, "date"},
      {{.date = "2026-2-01", .currency = "EUR"}, "date"},
      {{.date = "2025-02-29", .currency = "EUR"}, "date"},
      {{.date = NULL, .currency = "EUR"}, "date"},
      {{.date = "2026-02-01", .currency = "EURO"}, "currency"},
      {{.date = "2026-02-01", .currency = "E R"}, "currency"},
      {{.date = "2026-02-01", .currency = ""}, "currency"},
      {{.date = "2026-02-01", .currency = "EUR", .merchant = "bad \xff"}, "merchant"},
      {{.date = "2026-02-01", .currency = "EUR", .description = "\xc3"}, "description"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    bad = NULL;
    cr_assert_eq(sc_fp_compute(&cases[i].in, a, &fp, &bad), SC_INVALID_ARGUMENT, "case %zu accepted", i);
    cr_assert_str_eq(bad, cases[i].field, "case %zu", i);
  }
  sc_fp_input_t leap = {.date = "2024-02-29", .currency = "EUR"};
  cr_assert_eq(sc_fp_compute(&leap, a, &fp, NULL), SC_OK);
  sc_arena_free(a);
}

Test(fingerprint, norm_collapses_white_space_and_folds_ascii_only) {
  char out[64];
  cr_assert_eq(sc_fp_norm("  A\t\tB \xc2\xa0 C\r\n", out), 5);
  cr_assert_str_eq(out, "a b c");
  sc_fp_norm("\xc3\x89T\xc3\x89", out); /* ÉTÉ: only the ASCII T folds */
  cr_assert_str_eq(out, "\xc3\x89t\xc3\x89");
  cr_assert_eq(sc_fp_norm("", out), 0);
  cr_assert_eq(sc_fp_norm(" \xc2\xa0 ", out), 0);
}

Test(fingerprint, counter_numbers_repeats_in_file_order) {
  sc_arena_t *a = sc_arena_new(0);
  sc_fp_counter_t *c = sc_fp_counter_new();
  sc_fp_input_t coffee = {.date = "2026-02-01", .amount_minor = -350, .currency = "EUR", .merchant = "Cafe"};
  sc_fp_input_t tea = {.date = "2026-02-01", .amount_minor = -250, .currency = "EUR", .merchant = "Cafe"};
  sc_fp_t f1, f2, f3, f4;
  cr_assert_eq(sc_fp_compute_next(c, &coffee, a, &f1, NULL), SC_OK);
  cr_assert_eq(coffee.occurrence, 0);
  cr_assert_eq(sc_fp_compute_next(c, &tea, a, &f2, NULL), SC_OK);
  cr_assert_eq(tea.occurrence, 0);
  cr_assert_eq(sc_fp_compute_next(c, &coffee, a, &f3, NULL), SC_OK);
  cr_assert_eq(coffee.occurrence, 1, "the second identical coffee is occurrence 1");
  cr_assert_str_neq(f1.hex, f3.hex);
  /* The same as computing with the occurrence by hand. */
  sc_fp_input_t manual = coffee;
  manual.occurrence = 1;
  cr_assert_eq(sc_fp_compute(&manual, a, &f4, NULL), SC_OK);
  cr_assert_str_eq(f3.hex, f4.hex);
  /* Many distinct keys (growth) keep their own counts. */
  char merchant[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(merchant, sizeof(merchant), "m%d", i % 2500);
    sc_fp_input_t in = {.date = "2026-02-01", .amount_minor = -1, .currency = "EUR", .merchant = merchant};
    cr_assert_eq(sc_fp_compute_next(c, &in, a, &f1, NULL), SC_OK);
    cr_assert_eq(in.occurrence, (uint64_t)(i / 2500), "row %d", i);
    sc_arena_reset(a);
  }
  sc_fp_counter_free(c);
  sc_arena_free(a);
}
