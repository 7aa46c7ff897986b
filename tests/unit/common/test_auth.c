/* JWT verification: tokens minted here with libjwt and OpenSSL keys (RS256,
 * ES256) and with the runtime's own HS256 minter; every rejection the
 * platform issue lists has a test and a reason a client can act on. */
#include <criterion/criterion.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scale/auth.h"

#define SECRET "0123456789abcdef0123456789abcdef-test-secret"
#define USER "6a319805-9ec5-4bcf-bd35-9aa98a2ab216"

static char *mint(jwt_alg_t alg, const unsigned char *key, int keylen, const char *claims_json) {
  jwt_t *jwt = NULL;
  cr_assert_eq(jwt_new(&jwt), 0);
  cr_assert_eq(jwt_add_grants_json(jwt, claims_json), 0, "%s", claims_json);
  cr_assert_eq(jwt_set_alg(jwt, alg, key, keylen), 0);
  char *t = jwt_encode_str(jwt);
  jwt_free(jwt);
  cr_assert_not_null(t);
  return t;
}

static char *claims(const char *extra) {
  static char buf[1024];
  long now = (long)time(NULL);
  snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"authenticated\",\"role\":\"authenticated\",\"exp\":%ld%s%s}",
           USER, now + 600, extra && *extra ? "," : "", extra ? extra : "");
  return buf;
}

static sc_auth_t *hs_verifier(void) {
  sc_auth_opts_t o = {.hs256_secret = SECRET, .leeway_s = 30};
  sc_err_t err;
  sc_auth_t *a = sc_auth_new(&o, &err);
  cr_assert_not_null(a, "%s", err.msg);
  return a;
}

static void expect_reject(const sc_auth_t *a, const char *token, const char *reason) {
  sc_err_t why = {{0}};
  cr_assert_eq(sc_auth_verify(a, token, 0, NULL, &why), SC_UNAUTHENTICATED, "accepted; wanted '%s'", reason);
  cr_assert(strstr(why.msg, reason) != NULL, "reason '%s' lacks '%s'", why.msg, reason);
  /* The reason never carries the token. */
  if (strlen(token) > 20) cr_assert_null(strstr(why.msg, token + strlen(token) - 20));
}

Test(auth, hs256_token_accepted_with_claims) {
  sc_auth_t *a = hs_verifier();
  char *t = mint(JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET), claims("\"email\":\"a@b.c\""));
  sc_auth_claims_t c;
  sc_err_t why;
  cr_assert_eq(sc_auth_verify(a, t, 0, &c, &why), SC_OK, "%s", why.msg);
  cr_assert_str_eq(c.sub, USER);
  cr_assert_str_eq(c.role, "authenticated");
  cr_assert_str_eq(c.email, "a@b.c");
  free(t);
  sc_auth_free(a);
}

Test(auth, own_minter_round_trips) {
  sc_auth_t *a = hs_verifier();
  sc_err_t err;
  char *t = sc_auth_mint_hs256(SECRET, USER, NULL, "dev@example.com", 60, &err);
  cr_assert_not_null(t, "%s", err.msg);
  sc_auth_claims_t c;
  cr_assert_eq(sc_auth_verify(a, t, 0, &c, &err), SC_OK, "%s", err.msg);
  cr_assert_str_eq(c.email, "dev@example.com");
  free(t);
  cr_assert_null(sc_auth_mint_hs256("short", USER, NULL, NULL, 60, &err));
  cr_assert_null(sc_auth_mint_hs256(SECRET, "not-a-uuid", NULL, NULL, 60, &err));
  sc_auth_free(a);
}

Test(auth, rejections_say_why) {
  sc_auth_t *a = hs_verifier();
  const unsigned char *k = (const unsigned char *)SECRET;
  int kl = (int)strlen(SECRET);
  long now = (long)time(NULL);
  char buf[512];
  char *t;

  t = mint(JWT_ALG_HS256, (const unsigned char *)"another-secret-another-secret-xx", 32, claims(""));
  expect_reject(a, t, "signature invalid");
  free(t);

  snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"authenticated\",\"exp\":%ld}", USER, now - 3600);
  t = mint(JWT_ALG_HS256, k, kl, buf);
  expect_reject(a, t, "token expired at ");
  free(t);

  /* Within the leeway an expired token still passes. */
  snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"authenticated\",\"exp\":%ld}", USER, now - 10);
  t = mint(JWT_ALG_HS256, k, kl, buf);
  cr_assert_eq(sc_auth_verify(a, t, 0, NULL, NULL), SC_OK);
  free(t);

  snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"authenticated\",\"exp\":%ld,\"nbf\":%ld}", USER, now + 7200,
           now + 3600);
  t = mint(JWT_ALG_HS256, k, kl, buf);
  expect_reject(a, t, "token not valid before ");
  free(t);

  snprintf(buf, sizeof(buf), "{\"aud\":\"authenticated\",\"exp\":%ld}", now + 600);
  t = mint(JWT_ALG_HS256, k, kl, buf);
  expect_reject(a, t, "token has no sub");
  free(t);

  snprintf(buf, sizeof(buf), "{\"sub\":\"bob\",\"aud\":\"authenticated\",\"exp\":%ld}", now + 600);
  t = mint(JWT_ALG_HS256, k, kl, buf);
  expect_reject(a, t, "sub is not a UUID");
  free(t);

  snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"anon\",\"exp\":%ld}", USER, now + 600);
  t = mint(JWT_ALG_HS256, k, kl, buf);
  expect_reject(a, t, "audience (aud) does not include 'authenticated'");
  free(t);

  snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":[\"x\",\"authenticated\"],\"exp\":%ld}", USER, now + 600);
  t = mint(JWT_ALG_HS256, k, kl, buf);
  cr_assert_eq(sc_auth_verify(a, t, 0, NULL, NULL), SC_OK, "aud as an array");
  free(t);

  snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"authenticated\"}", USER);
  t = mint(JWT_ALG_HS256, k, kl, buf);
  expect_reject(a, t, "no exp");
  free(t);

  t = mint(JWT_ALG_HS512, k, kl, claims(""));
  expect_reject(a, t, "algorithm HS512 is not accepted (this server accepts HS256)");
  free(t);

  /* alg none: libjwt writes an unsigned token. */
  t = mint(JWT_ALG_NONE, NULL, 0, claims(""));
  expect_reject(a, t, "alg none");
  free(t);

  expect_reject(a, "", "empty token");
  expect_reject(a, "abc.def", "three dot-separated parts");
  expect_reject(a, "a.b.c.d", "three dot-separated parts");
  expect_reject(a, "!!!.e30.sig", "header is not base64url-encoded JSON");
  expect_reject(a, "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.sig", "payload is not base64url-encoded JSON");
  expect_reject(a, "e30.e30.sig", "the header has no alg");
  sc_auth_free(a);
}

Test(auth, tampered_payload_fails_the_signature) {
  sc_auth_t *a = hs_verifier();
  char *t = mint(JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET), claims(""));
  /* Re-encode the payload with another sub, keeping the old signature. */
  char *dot1 = strchr(t, '.'), *dot2 = strchr(dot1 + 1, '.');
  char forged[2048];
  snprintf(forged, sizeof(forged), "%.*s.%s%s", (int)(dot1 - t), t,
           "eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDAiLCJhdWQiOiJhdXRoZW50aWNhdGVkIiwiZXhwIjo0MTAyNDQ"
           "0ODAwfQ",
           dot2);
  expect_reject(a, forged, "signature invalid");
  free(t);
  sc_auth_free(a);
}

Test(auth, issuer_is_checked_when_configured) {
  sc_auth_opts_t o = {.hs256_secret = SECRET, .issuer = "https://project.supabase.co/auth/v1", .leeway_s = 0};
  sc_err_t err;
  sc_auth_t *a = sc_auth_new(&o, &err);
  cr_assert_not_null(a);
  char *t = mint(JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET), claims("\"iss\":\"evil\""));
  expect_reject(a, t, "issuer (iss) is not");
  free(t);
  t = mint(JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET),
           claims("\"iss\":\"https://project.supabase.co/auth/v1\""));
  cr_assert_eq(sc_auth_verify(a, t, 0, NULL, &err), SC_OK, "%s", err.msg);
  free(t);
  sc_auth_free(a);
}

/* Writes a fresh key pair; returns the private key PEM (malloc'd) and the
 * public key's path. */
static char *keypair(const char *type, char *pub_path, size_t n) {
  EVP_PKEY *k = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                                         : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  cr_assert_not_null(k);
  snprintf(pub_path, n, "/tmp/scale-test-pub-%s-%d.pem", type, (int)getpid());
  FILE *f = fopen(pub_path, "w");
  cr_assert_not_null(f);
  PEM_write_PUBKEY(f, k);
  fclose(f);
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  char *data;
  long len = BIO_get_mem_data(b, &data);
  char *priv = strndup(data, (size_t)len);
  BIO_free(b);
  EVP_PKEY_free(k);
  return priv;
}

static void asymmetric(const char *type, jwt_alg_t alg) {
  char pub[256];
  char *priv = keypair(type, pub, sizeof(pub));
  sc_auth_opts_t o = {.public_key_file = pub, .leeway_s = 30};
  sc_err_t err;
  sc_auth_t *a = sc_auth_new(&o, &err);
  cr_assert_not_null(a, "%s", err.msg);
  char *t = mint(alg, (const unsigned char *)priv, (int)strlen(priv), claims(""));
  sc_auth_claims_t c;
  cr_assert_eq(sc_auth_verify(a, t, 0, &c, &err), SC_OK, "%s: %s", type, err.msg);
  cr_assert_str_eq(c.sub, USER);
  /* A token signed by another key of the same type fails. */
  char pub2[256];
  char *priv2 = keypair(type, pub2, sizeof(pub2));
  char *t2 = mint(alg, (const unsigned char *)priv2, (int)strlen(priv2), claims(""));
  expect_reject(a, t2, "signature invalid");
  /* HS256 is refused when only a public key is configured: the classic
   * confusion (HMAC keyed with the public key) gets nowhere. */
  FILE *f = fopen(pub, "r");
  char pem[4096];
  size_t pl = fread(pem, 1, sizeof(pem), f);
  fclose(f);
  char *t3 = mint(JWT_ALG_HS256, (const unsigned char *)pem, (int)pl, claims(""));
  expect_reject(a, t3, "algorithm HS256 is not accepted");
  free(t);
  free(t2);
  free(t3);
  free(priv);
  free(priv2);
  unlink(pub);
  unlink(pub2);
  sc_auth_free(a);
}

Test(auth, rs256_with_a_public_key_file) { asymmetric("RSA", JWT_ALG_RS256); }
Test(auth, es256_with_a_public_key_file) { asymmetric("EC", JWT_ALG_ES256); }

Test(auth, configuration_errors) {
  sc_err_t err;
  sc_auth_opts_t none = {0};
  cr_assert_null(sc_auth_new(&none, &err));
  cr_assert(strstr(err.msg, "SCALE_JWT_SECRET"), "%s", err.msg);
  sc_auth_opts_t weak = {.hs256_secret = "too-short"};
  cr_assert_null(sc_auth_new(&weak, &err));
  cr_assert(strstr(err.msg, "shorter than 32 bytes"), "%s", err.msg);
  sc_auth_opts_t missing = {.public_key_file = "/nonexistent.pem"};
  cr_assert_null(sc_auth_new(&missing, &err));
  cr_assert(strstr(err.msg, "SCALE_JWT_PUBLIC_KEY_FILE"), "%s", err.msg);
  sc_auth_opts_t notkey = {.public_key_file = "/etc/hostname"};
  cr_assert_null(sc_auth_new(&notkey, &err));
  cr_assert(strstr(err.msg, "not a PEM public key"), "%s", err.msg);
}

Test(auth, one_credential_has_one_spelling) {
  sc_auth_t *a = hs_verifier();
  char *t = mint(JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET), claims(""));
  cr_assert_eq(sc_auth_verify(a, t, 0, NULL, NULL), SC_OK);
  char variant[2048];
  /* Padding, a stray character, or changed unused low bits of the last
   * character would decode to the same signature: all refused. */
  snprintf(variant, sizeof(variant), "%s=", t);
  expect_reject(a, variant, "signature invalid");
  char *sig = strrchr(t, '.') + 1;
  snprintf(variant, sizeof(variant), "%.*s!%s", (int)(sig - t), t, sig);
  expect_reject(a, variant, "signature invalid");
  snprintf(variant, sizeof(variant), "%s", t);
  char *last = variant + strlen(variant) - 1;
  *last = *last == 'A' ? 'B' : (char)(*last ^ 1); /* 43 chars encode 32 bytes: 2 spare bits */
  expect_reject(a, variant, "signature invalid");
  free(t);
  sc_auth_free(a);
}

Test(auth, far_future_expiry_does_not_overflow) {
  sc_auth_t *a = hs_verifier();
  char buf[256];
  snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"aud\":\"authenticated\",\"exp\":9223372036854775807}", USER);
  char *t = mint(JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET), buf);
  cr_assert_eq(sc_auth_verify(a, t, 0, NULL, NULL), SC_OK);
  free(t);
  sc_auth_free(a);
}
