/* Authentication: Supabase-style JWT bearer tokens.
 *
 * HS256 with a shared secret (SCALE_JWT_SECRET, Supabase's default) and/or
 * RS256/ES256 with a PEM public key (SCALE_JWT_PUBLIC_KEY_FILE). A token is
 * accepted when its algorithm is one the configured keys serve (each key only
 * verifies its own family, so "alg" cannot swap one for the other; "none" is
 * never accepted), its signature verifies, `exp` is in the future and `nbf`
 * in the past (both with a small leeway), `aud` names the configured audience
 * (default "authenticated"), `iss` matches when configured, and `sub` is a
 * UUID: the user id. Every rejection says why in words a client can act on,
 * and never echoes the token.
 *
 * A verifier is immutable after creation: any thread may use it.
 */
#ifndef SCALE_AUTH_H
#define SCALE_AUTH_H

#include <stdint.h>

#include "scale/rpc.h"
#include "scale/status.h"
#include "scale/uuid.h"

typedef struct sc_auth sc_auth_t;

typedef struct sc_auth_opts {
  const char *hs256_secret;    /* at least 32 bytes */
  const char *public_key_file; /* PEM RSA (RS256) or EC P-256 (ES256) public key */
  const char *audience;        /* NULL: "authenticated" */
  const char *issuer;          /* NULL: not checked */
  int leeway_s;                /* clock skew allowed on exp/nbf; < 0: 30 */
} sc_auth_opts_t;

typedef struct sc_auth_claims {
  char sub[SC_UUID_STR_LEN + 1]; /* the user id */
  char role[64];                 /* "authenticated", or "" */
  char email[256];               /* or "" */
  int64_t exp;                   /* seconds since the epoch */
} sc_auth_claims_t;

/* NULL (err) when no key is configured, the secret is too short, or the key
 * file is not a usable public key. */
sc_auth_t *sc_auth_new(const sc_auth_opts_t *opts, sc_err_t *err);
void sc_auth_free(sc_auth_t *a);

/* SC_OK and the claims, or SC_UNAUTHENTICATED with the reason in why. `now`
 * is seconds since the epoch (0: the current time). */
sc_status_t sc_auth_verify(const sc_auth_t *a, const char *token, int64_t now, sc_auth_claims_t *claims, sc_err_t *why);

/* The gRPC interceptor: every method of a service that is not open requires
 * `authorization: Bearer <JWT>`; the user id goes on the call. */
sc_rpc_interceptor_t sc_auth_interceptor(const sc_auth_t *a);

/* Mints an HS256 token for local development and tests: sub, aud, role
 * "authenticated", iat, exp = now + ttl_s. Returns a malloc'd string (free()),
 * or NULL (err). */
char *sc_auth_mint_hs256(const char *secret, const char *sub, const char *audience, const char *email, int64_t ttl_s,
                         sc_err_t *err);

#endif
