/* Transaction fingerprints, scale-fp-v1 (shared/specs/fingerprint.md): the
 * one function every path that stores a transaction uses (statement import,
 * webhook delivery, device sync), so a re-import or an overlapping statement
 * never duplicates a row while genuine repeats (two identical coffees) are
 * both kept, told apart by their occurrence number. */
#ifndef SCALE_FINGERPRINT_H
#define SCALE_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scale/arena.h"
#include "scale/status.h"

#define SC_FP_HEX_LEN 64

typedef struct sc_fp_input {
  const char *account_id;                                          /* may be NULL or empty */
  const char *bank_txn_id;                                         /* OFX FITID and the like; may be NULL or empty */
  const char *date;                                                /* YYYY-MM-DD, the booking date */
  int64_t amount_minor;                                            /* money out negative */
  const char *currency;                                            /* ISO 4217; trimmed and upper-cased here */
  const char *merchant, *description, *payment_method, *reference; /* may be NULL */
  uint64_t occurrence;                                             /* earlier rows of the file with the same key */
} sc_fp_input_t;

typedef struct sc_fp {
  char hex[SC_FP_HEX_LEN + 1]; /* lowercase hex SHA-256 of the canonical bytes */
  const uint8_t *canonical;    /* in the arena */
  size_t canonical_len;
  /* The canonical bytes without the occurrence: rows of one file with equal
   * keys are repeats, numbered 0, 1, ... in file order. (For the bank-id form
   * the key is the whole canonical string.) */
  size_t key_len;
} sc_fp_t;

/* Computes the fingerprint. SC_INVALID_ARGUMENT when a text field is not
 * UTF-8, the date is not a real YYYY-MM-DD date or the currency is not three
 * letters; *bad_field (optional) then names the field. Nothing is written to
 * *out on failure. */
sc_status_t sc_fp_compute(const sc_fp_input_t *in, sc_arena_t *arena, sc_fp_t *out, const char **bad_field);

/* Occurrence numbering within one file (or one append): remembers each key
 * (a 128-bit digest of it, so a million rows cost tens of MB, not the rows'
 * text) and how often it was seen. Not thread-safe: one per file. */
typedef struct sc_fp_counter sc_fp_counter_t;

sc_fp_counter_t *sc_fp_counter_new(void);
void sc_fp_counter_free(sc_fp_counter_t *c);

/* Computes the fingerprint of a row of a file: in->occurrence is ignored and
 * set from the earlier rows with the same key. Same failures as
 * sc_fp_compute, plus SC_RESOURCE_EXHAUSTED when out of memory. */
sc_status_t sc_fp_compute_next(sc_fp_counter_t *c, sc_fp_input_t *in, sc_arena_t *arena, sc_fp_t *out,
                               const char **bad_field);

/* A real calendar date written YYYY-MM-DD. */
bool sc_fp_date_valid(const char *date);

/* norm() of the spec into dst (at least strlen(s) + 1 bytes); returns the
 * length. Exposed for tests and for matching. */
size_t sc_fp_norm(const char *s, char *dst);

#endif
