#include "scale/pagetoken.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#define VERSION 0x01
#define MAC_LEN 16
#define MAX_CURSOR 512

void sc_pagetoken_key_init(sc_pagetoken_key_t *key, const char *secret) {
  static const char label[] = "scale-page-token-v1";
  if (secret == NULL || *secret == '\0') {
    if (RAND_bytes(key->k, sizeof(key->k)) != 1) memset(key->k, 0x5c, sizeof(key->k));
    return;
  }
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)label, sizeof(label) - 1, key->k, &n);
}

static void mac(const sc_pagetoken_key_t *key, const char *filters, const unsigned char *cursor, size_t n,
                unsigned char out[32]) {
  unsigned char head[9];
  size_t fl = strlen(filters);
  head[0] = VERSION;
  for (int i = 0; i < 8; i++)
    head[1 + i] = (unsigned char)(fl >> (8 * (7 - i)));
  EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_construct_end()};
  size_t outl = 0;
  memset(out, 0, 32);
  if (ctx && EVP_MAC_init(ctx, key->k, sizeof(key->k), params) == 1) {
    EVP_MAC_update(ctx, head, sizeof(head));
    EVP_MAC_update(ctx, (const unsigned char *)filters, fl);
    EVP_MAC_update(ctx, cursor, n);
    EVP_MAC_final(ctx, out, &outl, 32);
  }
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(m);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *sc_pagetoken_encode(const sc_pagetoken_key_t *key, const char *filters, const char *cursor, sc_arena_t *arena) {
  size_t n = strlen(cursor);
  if (n > MAX_CURSOR) return NULL;
  unsigned char raw[1 + MAX_CURSOR + MAC_LEN];
  raw[0] = VERSION;
  memcpy(raw + 1, cursor, n);
  unsigned char m[32];
  mac(key, filters, (const unsigned char *)cursor, n, m);
  memcpy(raw + 1 + n, m, MAC_LEN);
  size_t rl = 1 + n + MAC_LEN;
  char *out = sc_arena_alloc(arena, (rl * 4) / 3 + 4);
  if (out == NULL) return NULL;
  size_t o = 0;
  unsigned int acc = 0;
  int bits = 0;
  for (size_t i = 0; i < rl; i++) {
    acc = (acc << 8) | raw[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out[o++] = b64[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out[o++] = b64[(acc << (6 - bits)) & 63];
  out[o] = '\0';
  return out;
}

char *sc_pagetoken_decode(const sc_pagetoken_key_t *key, const char *filters, const char *token, sc_arena_t *arena) {
  size_t tl = strlen(token);
  if (tl > ((1 + MAX_CURSOR + MAC_LEN) * 4) / 3 + 4) return NULL;
  unsigned char raw[1 + MAX_CURSOR + MAC_LEN + 4];
  size_t rl = 0;
  unsigned int acc = 0;
  int bits = 0;
  for (size_t i = 0; i < tl; i++) {
    const char *p = memchr(b64, token[i], 64);
    if (p == NULL || token[i] == '\0') return NULL;
    acc = (acc << 6) | (unsigned)(p - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (rl >= sizeof(raw)) return NULL;
      raw[rl++] = (unsigned char)((acc >> bits) & 0xff);
    }
  }
  if (rl < 1 + MAC_LEN || raw[0] != VERSION) return NULL;
  size_t n = rl - 1 - MAC_LEN;
  unsigned char m[32];
  mac(key, filters, raw + 1, n, m);
  if (CRYPTO_memcmp(m, raw + 1 + n, MAC_LEN) != 0) return NULL;
  /* Re-encoding must give the same text: no alternative spellings. */
  char *check = sc_pagetoken_encode(key, filters, sc_arena_strndup(arena, (const char *)raw + 1, n), arena);
  if (check == NULL || strcmp(check, token) != 0) return NULL;
  return sc_arena_strndup(arena, (const char *)raw + 1, n);
}
