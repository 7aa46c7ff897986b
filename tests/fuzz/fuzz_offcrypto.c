/* libFuzzer target for MS-OFFCRYPTO and the compound-file reader
 * (services/ingestion/offcrypto.h). Besides the sanitizers' findings it
 * checks that a failure always says why, that a stream read back is no
 * larger than the file, that a stream the reader says is there can be read
 * (or fails with a reason), and that decrypted output is never longer than
 * the package it came from.
 *
 * Input: byte 0 picks what the rest is (low 2 bits):
 *   0  a compound file: offcrypto_decrypt without a password, then the steps
 *      with the password "fuzz" (key derivation only when the spin count is
 *      at most 1000, so one input stays fast)
 *   1  an EncryptionInfo stream: offcrypto_parse_info
 *   2  a compound file: offcrypto_cfb_open and reads of its streams
 *   3  LE16 n, n bytes of EncryptionInfo, then an EncryptedPackage stream:
 *      decrypted with a fixed key (bit 2 of byte 0 skips the HMAC check, so
 *      the segment decryption is reached)
 * Seeds: tests/fuzz/corpus/offcrypto/ (written by
 * tests/unit/ingestion/fixtures/make_xlsx_fixtures.py).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "offcrypto.h"

#define FUZZ_MAX_SPIN 1000

static void check_fail(sc_status_t st, const sc_err_t *err) {
  if (st != SC_OK && err->msg[0] == '\0') abort();
}

static void fuzz_steps(const uint8_t *data, size_t size, sc_arena_t *a) {
  sc_err_t err = {{0}};
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  sc_status_t st = offcrypto_decrypt(data, size, NULL, a, &plain, &plain_len, &err);
  check_fail(st, &err);
  if (st == SC_OK) abort(); /* nothing decrypts without a password */

  offcrypto_cfb_t *cfb = NULL;
  if (offcrypto_cfb_open(data, size, a, &cfb, &err) != SC_OK) return;
  uint8_t *info_buf = NULL, *pkg = NULL;
  size_t info_len = 0, pkg_len = 0;
  offcrypto_info_t info;
  if (offcrypto_cfb_read(cfb, "EncryptionInfo", a, &info_buf, &info_len, &err) != SC_OK ||
      offcrypto_cfb_read(cfb, "EncryptedPackage", a, &pkg, &pkg_len, &err) != SC_OK ||
      offcrypto_parse_info(info_buf, info_len, a, &info, &err) != SC_OK)
    return;
  if (info.kind == OFFCRYPTO_AGILE && info.spin_count > FUZZ_MAX_SPIN) return;
  offcrypto_keys_t keys;
  st = offcrypto_unlock(&info, "fuzz", &keys, &err);
  check_fail(st, &err);
  if (st != SC_OK) return;
  st = offcrypto_decrypt_package(&info, &keys, pkg, pkg_len, a, &plain, &plain_len, &err);
  check_fail(st, &err);
  if (st == SC_OK && plain_len + 8 > pkg_len) abort();
}

static void fuzz_info(const uint8_t *data, size_t size, sc_arena_t *a) {
  sc_err_t err = {{0}};
  offcrypto_info_t info;
  sc_status_t st = offcrypto_parse_info(data, size, a, &info, &err);
  check_fail(st, &err);
  if (st != SC_OK) return;
  if (info.kind != OFFCRYPTO_AGILE && info.kind != OFFCRYPTO_STANDARD) abort();
  if (info.kind == OFFCRYPTO_AGILE) {
    uint8_t iv[OFFCRYPTO_MAX_HASH];
    if (offcrypto_agile_segment_iv(&info, 7, iv) != info.key_data.block_size) abort();
    if (info.spin_count > 10000000) abort();
  }
}

static void fuzz_cfb(const uint8_t *data, size_t size, sc_arena_t *a) {
  sc_err_t err = {{0}};
  offcrypto_cfb_t *cfb = NULL;
  sc_status_t st = offcrypto_cfb_open(data, size, a, &cfb, &err);
  check_fail(st, &err);
  if (st != SC_OK) return;
  static const char *const names[] = {"EncryptionInfo", "EncryptedPackage", "Workbook", "WordDocument", "x"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    uint8_t *out = NULL;
    size_t out_len = 0;
    err.msg[0] = '\0';
    st = offcrypto_cfb_read(cfb, names[i], a, &out, &out_len, &err);
    check_fail(st, &err);
    if ((st == SC_NOT_FOUND) == offcrypto_cfb_has(cfb, names[i])) abort();
    if (st == SC_OK && (out == NULL || out_len > size)) abort();
  }
}

static void fuzz_package(uint8_t mode, const uint8_t *data, size_t size, sc_arena_t *a) {
  if (size < 2) return;
  size_t n = (size_t)data[0] | (size_t)data[1] << 8;
  if (n > size - 2) return;
  sc_err_t err = {{0}};
  offcrypto_info_t info;
  if (offcrypto_parse_info(data + 2, n, a, &info, &err) != SC_OK) return;
  if (mode & 4) info.enc_hmac_key.n = info.enc_hmac_value.n = 0;
  offcrypto_keys_t keys;
  memset(&keys, 0, sizeof keys);
  keys.secret_len = (info.kind == OFFCRYPTO_AGILE ? info.key_data.key_bits : info.key_bits) / 8;
  memset(keys.secret, 0x5A, sizeof keys.secret);
  const uint8_t *pkg = data + 2 + n;
  size_t pkg_len = size - 2 - n;
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  sc_status_t st = offcrypto_decrypt_package(&info, &keys, pkg, pkg_len, a, &plain, &plain_len, &err);
  check_fail(st, &err);
  if (st == SC_OK && plain_len + 8 > pkg_len) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  sc_arena_t *a = sc_arena_new(64 << 20);
  if (a == NULL) return 0;
  uint8_t mode = data[0];
  /* A copy of exactly the input, so reading one byte past it is caught. */
  size_t n = size - 1;
  uint8_t *copy = malloc(n ? n : 1);
  if (copy == NULL) {
    sc_arena_free(a);
    return 0;
  }
  memcpy(copy, data + 1, n);
  switch (mode & 3) {
  case 0: fuzz_steps(copy, n, a); break;
  case 1: fuzz_info(copy, n, a); break;
  case 2: fuzz_cfb(copy, n, a); break;
  default: fuzz_package(mode, copy, n, a); break;
  }
  free(copy);
  sc_arena_free(a);
  return 0;
}
