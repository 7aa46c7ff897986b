#include "scale/fingerprint.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale/pbcheck.h"

#define SEP '\x1f' /* U+001F UNIT SEPARATOR */
#define PREFIX "scale-fp-v1"

/* Length of the white-space character at s (space, \t \n \r \v \f, U+00A0),
 * or 0. */
static size_t ws_len(const unsigned char *s) {
  if (*s == ' ' || (*s >= '\t' && *s <= '\r')) return 1;
  if (s[0] == 0xc2 && s[1] == 0xa0) return 2;
  return 0;
}

size_t sc_fp_norm(const char *src, char *dst) {
  const unsigned char *s = (const unsigned char *)(src ? src : "");
  size_t o = 0;
  int pending_space = 0;
  while (*s) {
    size_t w = ws_len(s);
    if (w) {
      pending_space = o > 0; /* leading white space is dropped */
      s += w;
      continue;
    }
    if (pending_space) {
      dst[o++] = ' ';
      pending_space = 0;
    }
    unsigned char c = *s++;
    dst[o++] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  }
  dst[o] = '\0';
  return o;
}

bool sc_fp_date_valid(const char *d) {
  if (d == NULL || strlen(d) != 10 || d[4] != '-' || d[7] != '-') return 0;
  for (int i = 0; i < 10; i++) {
    if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9')) return 0;
  }
  int y = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
  int m = (d[5] - '0') * 10 + (d[6] - '0');
  int day = (d[8] - '0') * 10 + (d[9] - '0');
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1 || m < 1 || m > 12 || day < 1) return 0;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return day <= mdays[m - 1] + (m == 2 && leap);
}

typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf_t;

static void put(buf_t *b, const void *s, size_t n) {
  /* The capacity was computed from the inputs: this cannot overflow. */
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void put_sep(buf_t *b) { b->p[b->len++] = SEP; }

static void put_norm(buf_t *b, const char *s) { b->len += sc_fp_norm(s, (char *)b->p + b->len); }

static size_t slen(const char *s) { return s ? strlen(s) : 0; }

sc_status_t sc_fp_compute(const sc_fp_input_t *in, sc_arena_t *arena, sc_fp_t *out, const char **bad_field) {
  const struct {
    const char *name, *value;
  } texts[] = {{"account_id", in->account_id}, {"bank_txn_id", in->bank_txn_id}, {"currency", in->currency},
               {"merchant", in->merchant},     {"description", in->description}, {"payment_method", in->payment_method},
               {"reference", in->reference}};
  size_t total = sizeof(PREFIX) + 128; /* separators, date, two numbers, currency */
  for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
    size_t n = slen(texts[i].value);
    if (!sc_utf8_valid(texts[i].value ? texts[i].value : "", n)) {
      if (bad_field) *bad_field = texts[i].name;
      return SC_INVALID_ARGUMENT;
    }
    total += n + 1;
  }
  if (!sc_fp_date_valid(in->date)) {
    if (bad_field) *bad_field = "date";
    return SC_INVALID_ARGUMENT;
  }
  char cur[8];
  size_t cn = 0;
  {
    char tmp[64];
    const char *c = in->currency ? in->currency : "";
    if (strlen(c) >= sizeof(tmp)) {
      if (bad_field) *bad_field = "currency";
      return SC_INVALID_ARGUMENT;
    }
    /* Trimmed and upper-cased; inner white space is not a currency. */
    size_t n = sc_fp_norm(c, tmp);
    for (size_t i = 0; i < n && cn < sizeof(cur) - 1; i++) {
      char ch = tmp[i];
      cur[cn++] = (char)((ch >= 'a' && ch <= 'z') ? ch - 'a' + 'A' : ch);
    }
    cur[cn] = '\0';
    if (n != 3 || cn != 3 || cur[0] < 'A' || cur[0] > 'Z' || cur[1] < 'A' || cur[1] > 'Z' || cur[2] < 'A' ||
        cur[2] > 'Z') {
      if (bad_field) *bad_field = "currency";
      return SC_INVALID_ARGUMENT;
    }
  }

  buf_t b = {.p = sc_arena_alloc(arena, total), .cap = total};
  if (b.p == NULL) {
    if (bad_field) *bad_field = "";
    return SC_RESOURCE_EXHAUSTED;
  }
  put(&b, PREFIX, sizeof(PREFIX) - 1);
  put_sep(&b);
  char *bank = sc_arena_alloc(arena, slen(in->bank_txn_id) + 1);
  if (bank == NULL) return SC_RESOURCE_EXHAUSTED;
  size_t key_len;
  if (sc_fp_norm(in->bank_txn_id, bank) > 0) {
    put(&b, "id", 2);
    put_sep(&b);
    put_norm(&b, in->account_id);
    put_sep(&b);
    put(&b, bank, strlen(bank));
    key_len = b.len;
  } else {
    char num[32];
    put(&b, "tx", 2);
    put_sep(&b);
    put_norm(&b, in->account_id);
    put_sep(&b);
    put(&b, in->date, 10);
    put_sep(&b);
    int n = snprintf(num, sizeof(num), "%lld", (long long)in->amount_minor);
    put(&b, num, (size_t)n);
    put_sep(&b);
    put(&b, cur, 3);
    put_sep(&b);
    put_norm(&b, in->merchant);
    put_sep(&b);
    put_norm(&b, in->description);
    put_sep(&b);
    put_norm(&b, in->payment_method);
    put_sep(&b);
    put_norm(&b, in->reference);
    key_len = b.len;
    put_sep(&b);
    n = snprintf(num, sizeof(num), "%llu", (unsigned long long)in->occurrence);
    put(&b, num, (size_t)n);
  }

  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(b.p, b.len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) {
    if (bad_field) *bad_field = "";
    return SC_INTERNAL;
  }
  static const char hexd[] = "0123456789abcdef";
  for (unsigned i = 0; i < md_len; i++) {
    out->hex[2 * i] = hexd[md[i] >> 4];
    out->hex[2 * i + 1] = hexd[md[i] & 15];
  }
  out->hex[64] = '\0';
  out->canonical = b.p;
  out->canonical_len = b.len;
  out->key_len = key_len;
  return SC_OK;
}

/* ---- occurrence counter ------------------------------------------------------ */

typedef struct slot {
  uint8_t digest[16]; /* truncated SHA-256 of the key; all-zero marks an empty slot */
  uint64_t seen;
} slot_t;

struct sc_fp_counter {
  slot_t *slots;
  size_t cap, used; /* cap is a power of two; kept at most half full */
};

sc_fp_counter_t *sc_fp_counter_new(void) {
  sc_fp_counter_t *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  c->cap = 1024;
  c->slots = calloc(c->cap, sizeof(slot_t));
  if (c->slots == NULL) {
    free(c);
    return NULL;
  }
  return c;
}

void sc_fp_counter_free(sc_fp_counter_t *c) {
  if (c == NULL) return;
  free(c->slots);
  free(c);
}

static int is_empty(const uint8_t d[16]) {
  static const uint8_t zero[16];
  return memcmp(d, zero, 16) == 0;
}

static slot_t *find_slot(slot_t *slots, size_t cap, const uint8_t d[16]) {
  uint64_t h;
  memcpy(&h, d, sizeof(h));
  size_t i = (size_t)h & (cap - 1);
  while (!is_empty(slots[i].digest) && memcmp(slots[i].digest, d, 16) != 0)
    i = (i + 1) & (cap - 1);
  return &slots[i];
}

static int grow(sc_fp_counter_t *c) {
  if (c->cap > SIZE_MAX / 2 / sizeof(slot_t)) return -1;
  size_t cap = c->cap * 2;
  slot_t *n = calloc(cap, sizeof(slot_t));
  if (n == NULL) return -1;
  for (size_t i = 0; i < c->cap; i++) {
    if (!is_empty(c->slots[i].digest)) *find_slot(n, cap, c->slots[i].digest) = c->slots[i];
  }
  free(c->slots);
  c->slots = n;
  c->cap = cap;
  return 0;
}

sc_status_t sc_fp_compute_next(sc_fp_counter_t *c, sc_fp_input_t *in, sc_arena_t *arena, sc_fp_t *out,
                               const char **bad_field) {
  in->occurrence = 0;
  sc_fp_t first;
  sc_status_t st = sc_fp_compute(in, arena, &first, bad_field);
  if (st != SC_OK) return st;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(first.canonical, first.key_len, md, &md_len, EVP_sha256(), NULL) != 1) return SC_INTERNAL;
  if (is_empty(md)) md[0] = 1; /* keep all-zero free as the empty mark */
  if ((c->used + 1) * 2 > c->cap && grow(c) != 0) return SC_RESOURCE_EXHAUSTED;
  slot_t *slot = find_slot(c->slots, c->cap, md);
  if (is_empty(slot->digest)) {
    memcpy(slot->digest, md, 16);
    slot->seen = 0;
    c->used++;
  }
  in->occurrence = slot->seen++;
  if (in->occurrence == 0) {
    *out = first;
    return SC_OK;
  }
  return sc_fp_compute(in, arena, out, bad_field);
}
