/* JWT verification. The token's structure, header and claims are checked
 * here (jansson), so every rejection has a precise reason; signatures are
 * verified with OpenSSL for HS256 (constant-time comparison) and with libjwt
 * for RS256/ES256 (which also converts ES256's raw r||s signatures). */
#include "scale/auth.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_TOKEN 8192
#define MAX_KEY_FILE (64 * 1024)
#define MIN_SECRET 32

struct sc_auth {
  unsigned char *secret;
  size_t secret_len;
  char *pubkey_pem;
  size_t pubkey_len;
  jwt_alg_t pubkey_alg; /* JWT_ALG_RS256 or JWT_ALG_ES256; NONE when no key */
  char *audience;
  char *issuer;
  int leeway_s;
};

void sc_auth_free(sc_auth_t *a) {
  if (a == NULL) return;
  if (a->secret) OPENSSL_cleanse(a->secret, a->secret_len);
  free(a->secret);
  free(a->pubkey_pem);
  free(a->audience);
  free(a->issuer);
  free(a);
}

static char *read_small_file(const char *path, size_t *len, sc_err_t *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    sc_err_set(err, "SCALE_JWT_PUBLIC_KEY_FILE: cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(MAX_KEY_FILE + 1);
  size_t n = buf ? fread(buf, 1, MAX_KEY_FILE + 1, f) : 0;
  fclose(f);
  if (buf == NULL || n == 0 || n > MAX_KEY_FILE) {
    sc_err_set(err, "SCALE_JWT_PUBLIC_KEY_FILE: %s is empty or larger than 64 KiB", path);
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* Which algorithm the PEM public key serves. */
static jwt_alg_t key_alg(const char *pem, size_t len, sc_err_t *err) {
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  EVP_PKEY *k = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  if (k == NULL) {
    sc_err_set(err, "SCALE_JWT_PUBLIC_KEY_FILE: not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    return JWT_ALG_NONE;
  }
  jwt_alg_t alg = JWT_ALG_NONE;
  if (EVP_PKEY_base_id(k) == EVP_PKEY_RSA) {
    if (EVP_PKEY_bits(k) < 2048) {
      sc_err_set(err, "SCALE_JWT_PUBLIC_KEY_FILE: RSA key of %d bits; at least 2048 required", EVP_PKEY_bits(k));
    } else {
      alg = JWT_ALG_RS256;
    }
  } else if (EVP_PKEY_base_id(k) == EVP_PKEY_EC && EVP_PKEY_bits(k) == 256) {
    alg = JWT_ALG_ES256;
  } else {
    sc_err_set(err, "SCALE_JWT_PUBLIC_KEY_FILE: only RSA (RS256) and EC P-256 (ES256) keys are supported");
  }
  EVP_PKEY_free(k);
  return alg;
}

sc_auth_t *sc_auth_new(const sc_auth_opts_t *o, sc_err_t *err) {
  int has_secret = o->hs256_secret != NULL && o->hs256_secret[0] != '\0';
  int has_key = o->public_key_file != NULL && o->public_key_file[0] != '\0';
  if (!has_secret && !has_key) {
    sc_err_set(err, "no token key configured: set SCALE_JWT_SECRET (HS256) or SCALE_JWT_PUBLIC_KEY_FILE (RS256/ES256)");
    return NULL;
  }
  if (has_secret && strlen(o->hs256_secret) < MIN_SECRET) {
    sc_err_set(err, "SCALE_JWT_SECRET: shorter than %d bytes; use a long random secret", MIN_SECRET);
    return NULL;
  }
  sc_auth_t *a = calloc(1, sizeof(*a));
  if (a == NULL) goto oom;
  a->leeway_s = o->leeway_s >= 0 ? o->leeway_s : 30;
  a->audience = strdup(o->audience && *o->audience ? o->audience : "authenticated");
  if (a->audience == NULL) goto oom;
  if (o->issuer && *o->issuer && (a->issuer = strdup(o->issuer)) == NULL) goto oom;
  if (has_secret) {
    a->secret_len = strlen(o->hs256_secret);
    a->secret = malloc(a->secret_len);
    if (a->secret == NULL) goto oom;
    memcpy(a->secret, o->hs256_secret, a->secret_len);
  }
  if (has_key) {
    a->pubkey_pem = read_small_file(o->public_key_file, &a->pubkey_len, err);
    if (a->pubkey_pem == NULL) goto fail;
    a->pubkey_alg = key_alg(a->pubkey_pem, a->pubkey_len, err);
    if (a->pubkey_alg == JWT_ALG_NONE) goto fail;
  }
  return a;
oom:
  sc_err_set(err, "out of memory");
fail:
  sc_auth_free(a);
  return NULL;
}

/* Strict base64url (RFC 4648 §5), padding optional. Returns the decoded
 * length, or -1. out must hold 3 * (n / 4) + 3 bytes. */
static long b64url_decode(const char *in, size_t n, unsigned char *out) {
  while (n > 0 && in[n - 1] == '=')
    n--;
  if (n % 4 == 1) return -1;
  unsigned int acc = 0;
  int bits = 0;
  long o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '-')
      v = 62;
    else if (c == '_')
      v = 63;
    else
      return -1;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)((acc >> bits) & 0xff);
    }
  }
  return o;
}

static void b64url_encode(const unsigned char *in, size_t n, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  unsigned int acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    acc = (acc << 8) | in[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out[o++] = tbl[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out[o++] = tbl[(acc << (6 - bits)) & 63];
  out[o] = '\0';
}

/* The signature decodes as strict base64url and re-encodes to the same
 * text; want_len (0: any) is the decoded length the algorithm implies. */
static int sig_canonical(const char *sig, size_t n, size_t want_len) {
  if (n == 0 || n > 1400) return 0; /* 1024 bytes: an RSA-8192 signature */
  unsigned char *raw = malloc(3 * (n / 4) + 4);
  char *again = malloc(n + 8);
  int ok = 0;
  if (raw && again) {
    long got = b64url_decode(sig, n, raw);
    if (got > 0 && (want_len == 0 || (size_t)got == want_len)) {
      b64url_encode(raw, (size_t)got, again);
      ok = strlen(again) == n && memcmp(again, sig, n) == 0;
    }
  }
  free(raw);
  free(again);
  return ok;
}

static json_t *decode_json_part(const char *p, size_t n) {
  unsigned char *buf = malloc(3 * (n / 4) + 4);
  if (buf == NULL) return NULL;
  long len = b64url_decode(p, n, buf);
  json_t *j = len < 0 ? NULL : json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
  free(buf);
  if (j != NULL && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static void fmt_time(int64_t t, char *buf, size_t n) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (gmtime_r(&tt, &tm) == NULL || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
    snprintf(buf, n, "%lld", (long long)t);
  }
}

static int hs256_ok(const sc_auth_t *a, const char *signing_input, size_t in_len, const char *sig, size_t sig_len) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), a->secret, (int)a->secret_len, (const unsigned char *)signing_input, in_len, mac, &mac_len) ==
      NULL) {
    return 0;
  }
  unsigned char got[64];
  if (sig_len > 86) return 0; /* 32 bytes encode to 43 characters */
  long n = b64url_decode(sig, sig_len, got);
  return n == (long)mac_len && CRYPTO_memcmp(got, mac, mac_len) == 0;
}

static sc_status_t reject(sc_err_t *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static sc_status_t reject(sc_err_t *why, const char *fmt, ...) {
  if (why != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
    va_end(ap);
  }
  return SC_UNAUTHENTICATED;
}

static int audience_ok(json_t *aud, const char *want) {
  if (json_is_string(aud)) return strcmp(json_string_value(aud), want) == 0;
  if (json_is_array(aud)) {
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) {
      if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) return 1;
    }
  }
  return 0;
}

/* A NumericDate claim: JSON number (integer or not); -1 when absent. */
static int numeric_claim(json_t *payload, const char *name, int64_t *out) {
  json_t *v = json_object_get(payload, name);
  if (v == NULL) return 0;
  if (json_is_integer(v)) {
    *out = (int64_t)json_integer_value(v);
    return 1;
  }
  if (json_is_real(v) && json_real_value(v) > -9e15 && json_real_value(v) < 9e15) {
    *out = (int64_t)json_real_value(v);
    return 1;
  }
  return -1;
}

static void copy_claim(json_t *payload, const char *name, char *dst, size_t n) {
  json_t *v = json_object_get(payload, name);
  dst[0] = '\0';
  if (json_is_string(v) && strlen(json_string_value(v)) < n) snprintf(dst, n, "%s", json_string_value(v));
}

sc_status_t sc_auth_verify(const sc_auth_t *a, const char *token, int64_t now, sc_auth_claims_t *claims,
                           sc_err_t *why) {
  json_t *header = NULL, *payload = NULL;
  sc_status_t st = SC_UNAUTHENTICATED;
  if (token == NULL || *token == '\0') return reject(why, "empty token");
  size_t len = strnlen(token, MAX_TOKEN + 1);
  if (len > MAX_TOKEN) return reject(why, "token longer than %d bytes", MAX_TOKEN);
  const char *dot1 = memchr(token, '.', len);
  const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
  if (dot1 == NULL || dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
    return reject(why, "malformed token: expected three dot-separated parts (header.payload.signature)");
  }
  header = decode_json_part(token, (size_t)(dot1 - token));
  if (header == NULL) {
    st = reject(why, "malformed token: the header is not base64url-encoded JSON");
    goto out;
  }
  payload = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
  if (payload == NULL) {
    st = reject(why, "malformed token: the payload is not base64url-encoded JSON");
    goto out;
  }
  json_t *algv = json_object_get(header, "alg");
  const char *alg = json_is_string(algv) ? json_string_value(algv) : NULL;
  if (alg == NULL) {
    st = reject(why, "malformed token: the header has no alg");
    goto out;
  }
  if (strcasecmp(alg, "none") == 0) {
    st = reject(why, "unsigned tokens (alg none) are not accepted");
    goto out;
  }
  const char *expected = a->secret && a->pubkey_pem
                             ? (a->pubkey_alg == JWT_ALG_RS256 ? "HS256 or RS256" : "HS256 or ES256")
                         : a->secret ? "HS256"
                                     : jwt_alg_str(a->pubkey_alg);

  /* Signature first: nothing in an unverified payload is worth reporting.
   * Its encoding must be canonical base64url (no padding, no stray or
   * ignored characters), so one credential has exactly one spelling. */
  const char *sig = dot2 + 1;
  size_t sig_len = len - (size_t)(dot2 + 1 - token);
  if (!sig_canonical(sig, sig_len, strcmp(alg, "ES256") == 0 ? 64 : 0)) {
    st = reject(why, "signature invalid");
    goto out;
  }
  if (strcmp(alg, "HS256") == 0 && a->secret != NULL) {
    if (!hs256_ok(a, token, (size_t)(dot2 - token), dot2 + 1, len - (size_t)(dot2 + 1 - token))) {
      st = reject(why, "signature invalid");
      goto out;
    }
  } else if (a->pubkey_pem != NULL && strcmp(alg, jwt_alg_str(a->pubkey_alg)) == 0) {
    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, token, (const unsigned char *)a->pubkey_pem, (int)a->pubkey_len);
    jwt_free(jwt);
    if (rc != 0) {
      st = reject(why, "signature invalid");
      goto out;
    }
  } else {
    st = reject(why, "algorithm %.16s is not accepted (this server accepts %s)", alg, expected);
    goto out;
  }

  if (now == 0) now = (int64_t)time(NULL);
  int64_t exp = 0, nbf = 0;
  int has = numeric_claim(payload, "exp", &exp);
  char when[40];
  if (has == 0) {
    st = reject(why, "token has no exp (expiry) claim");
    goto out;
  }
  if (has < 0) {
    st = reject(why, "exp is not a number");
    goto out;
  }
  /* now is small, so this cannot overflow whatever exp is. */
  if (exp < now - a->leeway_s) {
    fmt_time(exp, when, sizeof(when));
    st = reject(why, "token expired at %s", when);
    goto out;
  }
  has = numeric_claim(payload, "nbf", &nbf);
  if (has < 0) {
    st = reject(why, "nbf is not a number");
    goto out;
  }
  if (has > 0 && now + a->leeway_s < nbf) {
    fmt_time(nbf, when, sizeof(when));
    st = reject(why, "token not valid before %s", when);
    goto out;
  }
  if (!audience_ok(json_object_get(payload, "aud"), a->audience)) {
    st = reject(why, "audience (aud) does not include '%s'", a->audience);
    goto out;
  }
  if (a->issuer != NULL) {
    json_t *iss = json_object_get(payload, "iss");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), a->issuer) != 0) {
      st = reject(why, "issuer (iss) is not '%s'", a->issuer);
      goto out;
    }
  }
  json_t *sub = json_object_get(payload, "sub");
  if (!json_is_string(sub) || json_string_length(sub) == 0) {
    st = reject(why, "token has no sub (user id) claim");
    goto out;
  }
  if (!sc_uuid_valid(json_string_value(sub))) {
    st = reject(why, "sub is not a UUID");
    goto out;
  }
  if (claims != NULL) {
    snprintf(claims->sub, sizeof(claims->sub), "%s", json_string_value(sub));
    /* User ids are compared as text everywhere: one case. */
    for (char *c = claims->sub; *c; c++) {
      if (*c >= 'A' && *c <= 'F') *c = (char)(*c - 'A' + 'a');
    }
    copy_claim(payload, "role", claims->role, sizeof(claims->role));
    copy_claim(payload, "email", claims->email, sizeof(claims->email));
    claims->exp = exp;
  }
  st = SC_OK;
out:
  json_decref(header);
  json_decref(payload);
  return st;
}

static sc_status_t auth_before(sc_call_t *call, void *data) {
  const sc_auth_t *a = data;
  if (sc_call_is_open(call)) return SC_OK;
  const char *h = sc_call_metadata(call, "authorization");
  if (h == NULL) {
    return sc_call_fail(call, SC_UNAUTHENTICATED, "missing bearer token: send 'authorization: Bearer <JWT>'");
  }
  if (strncasecmp(h, "Bearer ", 7) != 0) {
    return sc_call_fail(call, SC_UNAUTHENTICATED, "authorization must be 'Bearer <JWT>'");
  }
  const char *token = h + 7;
  while (*token == ' ')
    token++;
  sc_auth_claims_t claims;
  sc_err_t why;
  if (sc_auth_verify(a, token, 0, &claims, &why) != SC_OK) {
    return sc_call_fail(call, SC_UNAUTHENTICATED, "invalid token: %s", why.msg);
  }
  sc_call_set_user_id(call, claims.sub);
  if (claims.email[0]) sc_call_set_user_email(call, claims.email);
  return SC_OK;
}

sc_rpc_interceptor_t sc_auth_interceptor(const sc_auth_t *a) {
  sc_rpc_interceptor_t ic = {.name = "auth", .before = auth_before, .data = (void *)a};
  return ic;
}

char *sc_auth_mint_hs256(const char *secret, const char *sub, const char *audience, const char *email, int64_t ttl_s,
                         sc_err_t *err) {
  if (secret == NULL || strlen(secret) < MIN_SECRET) {
    sc_err_set(err, "the secret must be at least %d bytes", MIN_SECRET);
    return NULL;
  }
  if (!sc_uuid_valid(sub)) {
    sc_err_set(err, "the user id must be a UUID");
    return NULL;
  }
  json_t *h = json_pack("{s:s, s:s}", "alg", "HS256", "typ", "JWT");
  int64_t now = (int64_t)time(NULL);
  json_t *p = json_pack("{s:s, s:s, s:s, s:I, s:I}", "sub", sub, "aud", audience ? audience : "authenticated", "role",
                        "authenticated", "iat", (json_int_t)now, "exp", (json_int_t)(now + ttl_s));
  if (p != NULL && email != NULL && *email) json_object_set_new(p, "email", json_string(email));
  char *hs = h ? json_dumps(h, JSON_COMPACT) : NULL;
  char *ps = p ? json_dumps(p, JSON_COMPACT) : NULL;
  json_decref(h);
  json_decref(p);
  char *out = NULL;
  if (hs != NULL && ps != NULL) {
    size_t hn = strlen(hs), pn = strlen(ps);
    size_t cap = (hn + pn) * 2 + 64 + 2;
    out = malloc(cap);
    if (out != NULL) {
      b64url_encode((const unsigned char *)hs, hn, out);
      size_t o = strlen(out);
      out[o++] = '.';
      b64url_encode((const unsigned char *)ps, pn, out + o);
      o += strlen(out + o);
      unsigned char mac[EVP_MAX_MD_SIZE];
      unsigned int mac_len = 0;
      HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)out, o, mac, &mac_len);
      out[o++] = '.';
      b64url_encode(mac, mac_len, out + o);
    }
  }
  free(hs);
  free(ps);
  if (out == NULL) sc_err_set(err, "out of memory");
  return out;
}
