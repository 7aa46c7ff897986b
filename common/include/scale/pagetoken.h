/* Page tokens: opaque and tamper-evident. A token carries a keyset cursor
 * and a MAC over it and over the request's filters, so a modified token, or
 * one reused with different filters, is refused (INVALID_ARGUMENT) instead of
 * silently returning the wrong page.
 *
 *   token = base64url(0x01 | cursor | mac[16])
 *   mac   = HMAC-SHA256(key, 0x01 | len(filters) | filters | cursor)[0..16)
 */
#ifndef SCALE_PAGETOKEN_H
#define SCALE_PAGETOKEN_H

#include <stddef.h>

#include "scale/arena.h"

typedef struct sc_pagetoken_key {
  unsigned char k[32];
} sc_pagetoken_key_t;

/* Derives the key from a secret (HMAC with a fixed label), or makes a random
 * one when secret is NULL (tokens then die with the process). */
void sc_pagetoken_key_init(sc_pagetoken_key_t *key, const char *secret);

/* The token for cursor (at most 512 bytes) under filters, in the arena; NULL
 * when out of memory or the cursor is too long. */
char *sc_pagetoken_encode(const sc_pagetoken_key_t *key, const char *filters, const char *cursor, sc_arena_t *arena);

/* The cursor (NUL-terminated, in the arena) of a token made under the same
 * key and filters; NULL when the token is malformed, modified or was made
 * for other filters. */
char *sc_pagetoken_decode(const sc_pagetoken_key_t *key, const char *filters, const char *token, sc_arena_t *arena);

#endif
