/* Fuzz target: JWT verification (auth.h) on arbitrary tokens.
 *
 * Input: byte 0 picks how the token is made (mod 3):
 *   0  the rest of the input, NUL-terminated, is the token as sent;
 *   1  the rest is "<header JSON>\n<payload JSON>": the target base64url-
 *      encodes both and signs them HS256 with the fuzzing secret, so the
 *      fuzzer reaches the claim checks behind the signature;
 *   2  the same, signed ES256 with the fuzzing key.
 *
 * Three verifiers, made once: HS256 only, ES256 only (the public key written
 * to a temporary file), and both with an issuer. For each, verification must
 * never crash, leak or read out of bounds; a rejection is UNAUTHENTICATED
 * with a non-empty reason that does not echo the token; an acceptance must
 * carry a signature that an independent OpenSSL check accepts under a key
 * the verifier holds, a lower-case UUID subject and an unexpired exp.
 * `now` is fixed, so a run is reproducible. FUZZ_VERBOSE=1 prints each
 * verifier's answer (for checking seeds: `fuzz_jwt corpus/jwt/<file>`).
 *
 * The key and secret below exist only for fuzzing.
 */
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scale/auth.h"
#include "scale/uuid.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                                    \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "fuzz_jwt: check failed: %s (line %d)\n", #cond, __LINE__);                                      \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

#define FUZZ_NOW ((int64_t)1700000000) /* 2023-11-14T22:13:20Z */
#define LEEWAY 30
#define FUZZ_MAX_INPUT 16384

static const char fuzz_secret[] = "scale-fuzz-hs256-secret-0123456789abcdef";
static const char fuzz_issuer[] = "https://auth.scale.test/v1";
static const char fuzz_ec_key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgg8+ox+tozfdRo36+\n"
                                      "C6sjw0NUqRG/tgXFoD9P2lyVJ1yhRANCAAQmgseyinOBcdY2CgVO0LQgg1O/r3Sc\n"
                                      "SN5wc2TxB5JtEMsFzECe+EbK8RtVU7sflZ6brNLkAlGNb0I7KjXx7YZA\n"
                                      "-----END PRIVATE KEY-----\n";

static EVP_PKEY *ec_key;
static bool verbose; /* FUZZ_VERBOSE=1: print each verifier's answer */
static struct {
  sc_auth_t *auth;
  bool hs256, es256;
} verifiers[3];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  verbose = getenv("FUZZ_VERBOSE") != NULL;
  BIO *bio = BIO_new_mem_buf(fuzz_ec_key_pem, -1);
  ec_key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  CHECK(ec_key != NULL);

  char path[] = "/tmp/scale-fuzz-jwt-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  FILE *f = fdopen(fd, "w");
  CHECK(f != NULL && PEM_write_PUBKEY(f, ec_key) == 1);
  CHECK(fclose(f) == 0);

  sc_err_t err = {{0}};
  sc_auth_opts_t hs = {.hs256_secret = fuzz_secret, .leeway_s = LEEWAY};
  sc_auth_opts_t es = {.public_key_file = path, .leeway_s = LEEWAY};
  sc_auth_opts_t both = {
      .hs256_secret = fuzz_secret, .public_key_file = path, .issuer = fuzz_issuer, .leeway_s = LEEWAY};
  verifiers[0].auth = sc_auth_new(&hs, &err);
  verifiers[0].hs256 = true;
  verifiers[1].auth = sc_auth_new(&es, &err);
  verifiers[1].es256 = true;
  verifiers[2].auth = sc_auth_new(&both, &err);
  verifiers[2].hs256 = verifiers[2].es256 = true;
  unlink(path); /* read at creation; not needed after */
  for (size_t i = 0; i < 3; i++) {
    if (verifiers[i].auth == NULL) fprintf(stderr, "fuzz_jwt: sc_auth_new: %s\n", err.msg);
    CHECK(verifiers[i].auth != NULL);
  }
  return 0;
}

/* ---- independent encoding and signature checks --------------------------- */

static size_t b64url_encode(const unsigned char *in, size_t n, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = tbl[(v >> 18) & 63];
    out[o++] = tbl[(v >> 12) & 63];
    if (i + 1 < n) out[o++] = tbl[(v >> 6) & 63];
    if (i + 2 < n) out[o++] = tbl[v & 63];
  }
  out[o] = '\0';
  return o;
}

/* Base64url, trailing padding allowed; -1 on any other character. */
static long b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap) {
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  while (n > 0 && in[n - 1] == '=')
    n--;
  for (size_t i = 0; i < n; i++) {
    const char *p = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", in[i]);
    if (in[i] == '\0' || p == NULL) return -1;
    acc = (acc << 6) | (uint32_t)(p - "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o == cap) return -1;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  return (long)o;
}

static bool hs256_valid(const char *token, size_t signed_len, const char *sig, size_t sig_len) {
  unsigned char mac[EVP_MAX_MD_SIZE], got[128];
  unsigned int mac_len = 0;
  CHECK(HMAC(EVP_sha256(), fuzz_secret, (int)strlen(fuzz_secret), (const unsigned char *)token, signed_len, mac,
             &mac_len) != NULL);
  long n = b64url_decode(sig, sig_len, got, sizeof(got));
  return n == (long)mac_len && CRYPTO_memcmp(got, mac, mac_len) == 0;
}

static bool es256_valid(const char *token, size_t signed_len, const char *sig, size_t sig_len) {
  unsigned char raw[128], *der = NULL;
  if (b64url_decode(sig, sig_len, raw, sizeof(raw)) != 64) return false;
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
  CHECK(es != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(es, r, s) == 1);
  int der_len = i2d_ECDSA_SIG(es, &der);
  ECDSA_SIG_free(es);
  CHECK(der_len > 0);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  CHECK(ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, ec_key) == 1);
  int rc = EVP_DigestVerify(ctx, der, (size_t)der_len, (const unsigned char *)token, signed_len);
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  return rc == 1;
}

/* Appends ".<signature>" to "header.payload" (buf has room). */
static void sign(char *buf, size_t len, bool es256) {
  unsigned char raw[64];
  if (!es256) {
    unsigned int mac_len = 0;
    CHECK(HMAC(EVP_sha256(), fuzz_secret, (int)strlen(fuzz_secret), (const unsigned char *)buf, len, raw, &mac_len) !=
          NULL);
    buf[len] = '.';
    b64url_encode(raw, mac_len, buf + len + 1);
    return;
  }
  unsigned char der[128];
  size_t der_len = sizeof(der);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  CHECK(ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, ec_key) == 1);
  CHECK(EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)buf, len) == 1);
  EVP_MD_CTX_free(ctx);
  const unsigned char *p = der;
  ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
  CHECK(es != NULL);
  CHECK(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32) == 32 && BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32) == 32);
  ECDSA_SIG_free(es);
  buf[len] = '.';
  b64url_encode(raw, sizeof(raw), buf + len + 1);
}

/* ---- the target ------------------------------------------------------------ */

static void check_one(size_t v, const char *token) {
  const sc_auth_t *a = verifiers[v].auth;
  sc_auth_claims_t claims;
  memset(&claims, 0x5a, sizeof(claims));
  sc_err_t why;
  why.msg[0] = '\0';
  sc_status_t st = sc_auth_verify(a, token, FUZZ_NOW, &claims, &why);
  /* Neither out-parameter is required. */
  CHECK(sc_auth_verify(a, token, FUZZ_NOW, NULL, NULL) == st);
  if (verbose) fprintf(stderr, "verifier %zu: %s %s\n", v, sc_status_name(st), st == SC_OK ? claims.sub : why.msg);

  size_t len = strlen(token);
  const char *dot1 = strchr(token, '.');
  const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
  if (st != SC_OK) {
    CHECK(st == SC_UNAUTHENTICATED);
    CHECK(why.msg[0] != '\0');
    CHECK(strnlen(why.msg, sizeof(why.msg)) < sizeof(why.msg));
    /* The reason never echoes the token: no run of 20 characters of it
     * without a dot or a space is in it (no fixed message holds one). */
    for (const char *run = token; *run;) {
      size_t n = strcspn(run, ". ");
      if (n >= 20) {
        char *copy = strndup(run, n);
        CHECK(copy != NULL);
        CHECK(strstr(why.msg, copy) == NULL);
        free(copy);
      }
      run += n;
      if (*run) run++;
    }
    return;
  }
  /* Accepted: the token has exactly three parts and a signature made with a
   * key this verifier holds. */
  CHECK(dot1 != NULL && dot2 != NULL && strchr(dot2 + 1, '.') == NULL);
  size_t signed_len = (size_t)(dot2 - token);
  const char *sig = dot2 + 1;
  size_t sig_len = len - signed_len - 1;
  bool hs = verifiers[v].hs256 && hs256_valid(token, signed_len, sig, sig_len);
  bool es = verifiers[v].es256 && es256_valid(token, signed_len, sig, sig_len);
  CHECK(hs || es);
  CHECK(sc_uuid_valid(claims.sub));
  for (const char *c = claims.sub; *c; c++)
    CHECK(!(*c >= 'A' && *c <= 'Z'));
  CHECK(claims.exp >= FUZZ_NOW - LEEWAY);
  CHECK(memchr(claims.role, '\0', sizeof(claims.role)) != NULL);
  CHECK(memchr(claims.email, '\0', sizeof(claims.email)) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || size > FUZZ_MAX_INPUT) return 0;
  const char *rest = (const char *)data + 1;
  size_t n = size - 1;
  int mode = data[0] % 3;
  /* Room for base64 (4/3) of the whole input, two dots, a signature, NUL. */
  size_t cap = n * 2 + 128;
  char *token = malloc(cap);
  CHECK(token != NULL);
  if (mode == 0) {
    memcpy(token, rest, n);
    token[n] = '\0';
  } else {
    const char *nl = memchr(rest, '\n', n);
    size_t hn = nl ? (size_t)(nl - rest) : n;
    size_t pn = nl ? n - hn - 1 : 0;
    size_t o = b64url_encode((const unsigned char *)rest, hn, token);
    token[o++] = '.';
    o += b64url_encode((const unsigned char *)(nl ? nl + 1 : rest + n), pn, token + o);
    sign(token, o, mode == 2);
  }
  for (size_t v = 0; v < 3; v++)
    check_one(v, token);
  free(token);
  return 0;
}
