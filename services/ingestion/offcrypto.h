/* MS-OFFCRYPTO: password-protected OOXML packages (an .xlsx saved with
 * "Encrypt with Password" is not a ZIP but an OLE compound file holding
 * `EncryptionInfo` and `EncryptedPackage` streams).
 *
 * Supported: Agile encryption (Office 2010 and later: XML EncryptionInfo,
 * AES-CBC, SHA-1/256/384/512 key derivation, HMAC integrity) and Standard
 * encryption (Office 2007: binary EncryptionInfo, AES-ECB, SHA-1). Not
 * supported (an error says so): Extensible encryption, certificate key
 * encryptors, RC4 CryptoAPI (.xls/.doc binary formats).
 *
 * Everything reads a whole file from memory, bounds-checks every offset
 * against it, and allocates only from the caller's arena: on failure the
 * arena may hold partial work, nothing else changes. OpenSSL 3 does the
 * cryptography; verifiers and HMACs are compared in constant time.
 *
 * The steps are exposed (offcrypto_parse_info, offcrypto_unlock,
 * offcrypto_decrypt_package, ...) so known-answer tests can check each one;
 * callers that just want the plaintext use offcrypto_decrypt.
 */
#ifndef SCALE_INGESTION_OFFCRYPTO_H
#define SCALE_INGESTION_OFFCRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "scale/arena.h"
#include "scale/status.h"

/* 1 when `data` starts with the compound-file signature D0 CF 11 E0 A1 B1 1A E1. */
int offcrypto_is_cfb(const uint8_t *data, size_t len);

/* Decrypts a password-protected OOXML package into the ZIP it wraps.
 * `password` is UTF-8 (converted to UTF-16LE as the format requires); NULL
 * or "" means none was given. On SC_OK, *plain (in `arena`) holds *plain_len
 * bytes. Failures, with err set:
 *   SC_FAILED_PRECONDITION  "file is encrypted; password required" (no password)
 *                           "password incorrect"
 *   SC_DATA_LOSS            the package fails its HMAC integrity check
 *   SC_INVALID_ARGUMENT     not a compound file, no encrypted package in it
 *                           (e.g. a legacy .xls), malformed or unsupported
 *                           encryption; the message names what is wrong
 *   SC_RESOURCE_EXHAUSTED   the arena's cap was reached */
sc_status_t offcrypto_decrypt(const uint8_t *data, size_t len, const char *password, sc_arena_t *arena, uint8_t **plain,
                              size_t *plain_len, sc_err_t *err);

/* ---- Compound file (MS-CFB) ------------------------------------------------
 * Versions 3 (512-byte sectors) and 4 (4096-byte sectors); FAT with DIFAT,
 * directory, MiniFAT and the mini stream. Every sector chain is walked with
 * bounds checks and cycle detection. Only streams directly under the root
 * storage can be read (all MS-OFFCRYPTO needs). */

typedef struct offcrypto_cfb offcrypto_cfb_t;

/* Parses the header, FAT, directory, MiniFAT and mini stream. The result
 * (in `arena`) points into `data`, which must outlive it.
 * SC_INVALID_ARGUMENT when the file is not a well-formed compound file. */
sc_status_t offcrypto_cfb_open(const uint8_t *data, size_t len, sc_arena_t *arena, offcrypto_cfb_t **out,
                               sc_err_t *err);

/* 1 when the root storage holds a stream named `name` (ASCII, compared
 * case-insensitively as MS-CFB does), else 0. */
int offcrypto_cfb_has(const offcrypto_cfb_t *cfb, const char *name);

/* Copies the stream `name` of the root storage into `arena`. SC_NOT_FOUND
 * when there is none; SC_INVALID_ARGUMENT when its sector chain is broken. */
sc_status_t offcrypto_cfb_read(const offcrypto_cfb_t *cfb, const char *name, sc_arena_t *arena, uint8_t **out,
                               size_t *out_len, sc_err_t *err);

/* ---- EncryptionInfo -------------------------------------------------------- */

typedef enum offcrypto_kind {
  OFFCRYPTO_AGILE = 1,    /* version 4.4 */
  OFFCRYPTO_STANDARD = 2, /* versions 2.2, 3.2, 4.2 */
} offcrypto_kind_t;

typedef enum offcrypto_hash {
  OFFCRYPTO_SHA1 = 1,
  OFFCRYPTO_SHA256 = 2,
  OFFCRYPTO_SHA384 = 3,
  OFFCRYPTO_SHA512 = 4,
} offcrypto_hash_t;

#define OFFCRYPTO_MAX_HASH 64 /* SHA-512 */
#define OFFCRYPTO_MAX_KEY 32  /* AES-256 */
#define OFFCRYPTO_BLOCK 16    /* AES block */
#define OFFCRYPTO_SEGMENT 4096

typedef struct offcrypto_bytes {
  const uint8_t *p;
  size_t n;
} offcrypto_bytes_t;

/* The cipher and hash parameters of an Agile keyData or key encryptor. */
typedef struct offcrypto_params {
  uint32_t block_size; /* bytes; 16 for AES */
  uint32_t key_bits;   /* 128, 192, 256 */
  uint32_t hash_size;  /* bytes, matching `hash` */
  offcrypto_hash_t hash;
  offcrypto_bytes_t salt;
} offcrypto_params_t;

typedef struct offcrypto_info {
  offcrypto_kind_t kind;
  uint16_t major, minor;
  uint32_t flags;
  uint32_t spin_count; /* Agile: from the password key encryptor; Standard: 50,000 */
  /* Agile */
  offcrypto_params_t key_data;     /* the package's cipher */
  offcrypto_params_t password_key; /* the password key encryptor's */
  offcrypto_bytes_t enc_verifier_hash_input, enc_verifier_hash_value, enc_key_value;
  offcrypto_bytes_t enc_hmac_key, enc_hmac_value; /* n == 0: no dataIntegrity element */
  /* Standard */
  uint32_t alg_id, alg_id_hash, key_bits, provider_type;
  uint8_t salt[16];
  uint8_t enc_verifier[16];
  uint8_t enc_verifier_hash[32];
} offcrypto_info_t;

/* Parses an EncryptionInfo stream (byte strings point into `data` or the
 * arena). SC_INVALID_ARGUMENT for malformed or unsupported encryption. */
sc_status_t offcrypto_parse_info(const uint8_t *data, size_t len, sc_arena_t *arena, offcrypto_info_t *info,
                                 sc_err_t *err);

/* ---- Key derivation and verification --------------------------------------- */

/* The iterated password hash both methods share: H0 = H(salt || UTF-16LE(pw)),
 * H(i+1) = H(LE32(i) || H(i)) for i < spin_count; spin_count 0 gives H0.
 * *out_len is the digest size. SC_INVALID_ARGUMENT when the password is not
 * valid UTF-8 or longer than 255 characters (Office's limit). */
sc_status_t offcrypto_hash_password(offcrypto_hash_t hash, const uint8_t *salt, size_t salt_len, const char *password,
                                    uint32_t spin_count, uint8_t out[OFFCRYPTO_MAX_HASH], size_t *out_len,
                                    sc_err_t *err);

/* What unlocking with a password produced, step by step. */
typedef struct offcrypto_keys {
  uint8_t hn[OFFCRYPTO_MAX_HASH]; /* the iterated password hash H(n) */
  size_t hn_len;
  /* Agile: the keys derived from H(n) with the three block keys */
  uint8_t key_verifier_input[OFFCRYPTO_MAX_KEY], key_verifier_value[OFFCRYPTO_MAX_KEY],
      key_key_value[OFFCRYPTO_MAX_KEY];
  size_t key_len;
  /* Agile: decrypted encryptedVerifierHashInput; Standard: decrypted verifier */
  uint8_t verifier[OFFCRYPTO_MAX_HASH];
  size_t verifier_len;
  /* The package key: Agile, the intermediate (secret) key decrypted from
   * encryptedKeyValue; Standard, the key derived from the password. */
  uint8_t secret[OFFCRYPTO_MAX_KEY];
  size_t secret_len;
} offcrypto_keys_t;

/* Derives the keys from `password` and checks it against the verifier.
 * SC_FAILED_PRECONDITION "password incorrect" when it does not match (keys
 * then hold the steps up to the check, for tests). */
sc_status_t offcrypto_unlock(const offcrypto_info_t *info, const char *password, offcrypto_keys_t *keys, sc_err_t *err);

/* Agile: the IV of package segment `segment`: H(keyData.salt || LE32(segment))
 * cut (or padded with 0x36) to the block size. Returns its length, 0 for a
 * Standard info. */
size_t offcrypto_agile_segment_iv(const offcrypto_info_t *info, uint32_t segment, uint8_t iv[OFFCRYPTO_MAX_HASH]);

/* Decrypts the EncryptedPackage stream with unlocked keys. Agile packages
 * with dataIntegrity are HMAC-checked first: SC_DATA_LOSS on mismatch. */
sc_status_t offcrypto_decrypt_package(const offcrypto_info_t *info, const offcrypto_keys_t *keys, const uint8_t *pkg,
                                      size_t pkg_len, sc_arena_t *arena, uint8_t **plain, size_t *plain_len,
                                      sc_err_t *err);

#endif
