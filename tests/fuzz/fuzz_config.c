/* Fuzz target: the configuration validators (config.h).
 *
 * Input: byte 0 picks the validator (low 2 bits) and the bounds (the rest);
 * the remaining bytes, NUL-terminated, are the value. Each validator is
 * checked against a reference parser written from its documented contract,
 * in both directions: what the reference accepts must be accepted with the
 * same value, what it rejects must be rejected with a reason and with *out
 * left alone. Every accepted value lies within [min, max].
 *
 * The reference grammar is today's (strtoll's): optional leading white
 * space and sign are part of it, so a change there shows up here as a
 * finding to decide on, not silently.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                                    \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "fuzz_config: check failed: %s (line %d)\n", #cond, __LINE__);                                   \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

static const struct {
  int64_t min, max;
} bounds[] = {
    {0, INT64_MAX},     {INT64_MIN, INT64_MAX},     {1, 65535}, {-5, 5}, {4096, (int64_t)1 << 30}, {0, 0},
    {5, 3} /* empty */, {INT64_MAX - 1, INT64_MAX},
};
#define N_BOUNDS (sizeof(bounds) / sizeof(bounds[0]))

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* [space*][+-]digit+ as an int64; *end points past the digits. false when
 * there are no digits or the value does not fit. */
static bool ref_int_prefix(const char *s, int64_t *out, const char **end) {
  while (is_space(*s))
    s++;
  bool neg = false;
  if (*s == '+' || *s == '-') neg = *s++ == '-';
  if (*s < '0' || *s > '9') return false;
  /* Accumulate negatively: INT64_MIN has no positive counterpart. */
  int64_t v = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    int d = *s - '0';
    if (v < (INT64_MIN + d) / 10) return false;
    v = v * 10 - d;
  }
  if (!neg) {
    if (v == INT64_MIN) return false;
    v = -v;
  }
  *out = v;
  *end = s;
  return true;
}

static bool ref_int(const char *s, int64_t min, int64_t max, int64_t *out) {
  const char *end;
  int64_t v;
  if (!ref_int_prefix(s, &v, &end) || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

static bool ref_bytes(const char *s, int64_t min, int64_t max, int64_t *out) {
  const char *end;
  int64_t v;
  if (!ref_int_prefix(s, &v, &end) || v < 0) return false;
  int shift = 0;
  if (*end != '\0') {
    switch (*end) {
    case 'k':
    case 'K': shift = 10; break;
    case 'm':
    case 'M': shift = 20; break;
    case 'g':
    case 'G': shift = 30; break;
    default: return false;
    }
    const char *rest = end + 1;
    if (strcmp(rest, "") != 0 && strcmp(rest, "b") != 0 && strcmp(rest, "B") != 0 && strcmp(rest, "iB") != 0) {
      return false;
    }
  }
  if (v > (INT64_MAX >> shift)) return false;
  v *= (int64_t)1 << shift;
  if (v < min || v > max) return false;
  *out = v;
  return true;
}

static bool ref_addr(const char *s) {
  if (*s == '\0') return false;
  if (strncmp(s, "unix:", 5) == 0) return s[5] != '\0';
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s) return false;
  if (s[0] == '[' && colon[-1] != ']') return false;
  for (const char *h = s; h < colon; h++) {
    if (*h == ' ' || *h == '/' || *h == '\t') return false;
  }
  int64_t port;
  return ref_int(colon + 1, 0, 65535, &port);
}

/* sc_config_load over one variable of each type, the value coming from the
 * environment: exercises the messages it builds (which echo the value). */
static void load_all(const char *s) {
  static const char *const choices[] = {"debug", "info", "warn", "error", NULL};
  int64_t i = 0, b = 0;
  bool flag = false;
  const char *str = NULL, *addr = NULL, *choice = NULL;
  const sc_config_var_t vars[] = {
      {"SCALE_FUZZ_STRING", SC_CFG_STRING, NULL, "", &str, 0, 0, NULL},
      {"SCALE_FUZZ_INT", SC_CFG_INT, NULL, "", &i, -10, 1000, NULL},
      {"SCALE_FUZZ_BYTES", SC_CFG_BYTES, NULL, "", &b, 0, (int64_t)1 << 40, NULL},
      {"SCALE_FUZZ_BOOL", SC_CFG_BOOL, NULL, "", &flag, 0, 0, NULL},
      {"SCALE_FUZZ_ADDR", SC_CFG_ADDR, NULL, "", &addr, 0, 0, NULL},
      {"SCALE_FUZZ_ENUM", SC_CFG_ENUM, NULL, "", &choice, 0, 0, choices},
      {"SCALE_FUZZ_SECRET", SC_CFG_INT, NULL, "", &i, 0, 1, NULL},
  };
  for (size_t k = 0; k < sizeof(vars) / sizeof(vars[0]); k++) {
    if (setenv(vars[k].name, s, 1) != 0) return;
    sc_err_t err = {{0}};
    int rc = sc_config_load(&vars[k], 1, &err);
    CHECK(rc == 0 || rc == -1);
    if (rc != 0) {
      CHECK(err.msg[0] != '\0');
      /* Secrets are never echoed (the variable's value may be one). */
      if (k == 6 && strlen(s) >= 8) CHECK(strstr(err.msg, s) == NULL);
    }
    unsetenv(vars[k].name);
  }
  if (choice != NULL)
    CHECK(choice == choices[0] || choice == choices[1] || choice == choices[2] || choice == choices[3]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  int which = data[0] & 3;
  int64_t min = bounds[(data[0] >> 2) % N_BOUNDS].min, max = bounds[(data[0] >> 2) % N_BOUNDS].max;
  char *s = malloc(size);
  if (s == NULL) return 0;
  memcpy(s, data + 1, size - 1);
  s[size - 1] = '\0';

  const int64_t untouched = 0x5ca1ab1e;
  int64_t out = untouched, want = 0;
  sc_err_t err = {{0}};
  bool ok;
  int rc;
  switch (which) {
  case 0:
    rc = sc_config_parse_int(s, min, max, &out, &err);
    ok = ref_int(s, min, max, &want);
    break;
  case 1:
    rc = sc_config_parse_bytes(s, min, max, &out, &err);
    ok = ref_bytes(s, min, max, &want);
    break;
  case 2:
    rc = sc_config_parse_addr(s, &err);
    ok = ref_addr(s);
    out = want = 0;
    break;
  default:
    load_all(s);
    free(s);
    return 0;
  }
  CHECK(rc == 0 || rc == -1);
  if (rc == 0) {
    CHECK(ok); /* accepted what the contract rejects */
    if (which != 2) {
      CHECK(out >= min && out <= max);
      CHECK(out == want);
    }
  } else {
    CHECK(!ok); /* rejected what the contract accepts */
    CHECK(err.msg[0] != '\0');
    if (which != 2) CHECK(out == untouched);
  }
  free(s);
  return 0;
}
