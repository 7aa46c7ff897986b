/* MS-OFFCRYPTO and MS-CFB: the msoffcrypto-tool vectors in
 * shared/data/offcrypto (decrypted bytes and every intermediate value of the
 * .kat.txt files), wrong and missing passwords, a tampered package, truncated
 * files, and compound files built here to reach DIFAT, the mini stream and
 * broken chains. */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offcrypto.h"

#define DATA SCALE_SHARED_DIR "/data/offcrypto/"
#define PASSWORD "Password1234_"

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  cr_assert_eq(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  cr_assert_geq(n, 0);
  rewind(f);
  uint8_t *buf = malloc((size_t)n + 1);
  cr_assert_not_null(buf);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static void unhex(const char *hex, uint8_t *out, size_t n) {
  cr_assert_eq(strlen(hex), 2 * n, "hex length of %s", hex);
  for (size_t i = 0; i < n; i++) {
    unsigned v = 0;
    cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
}

static void assert_hex(const uint8_t *got, size_t got_len, const char *hex, const char *what) {
  uint8_t want[128];
  size_t n = strlen(hex) / 2;
  cr_assert_leq(n, sizeof want);
  unhex(hex, want, n);
  cr_assert_eq(got_len, n, "%s: %zu bytes, want %zu", what, got_len, n);
  cr_assert_eq(memcmp(got, want, n), 0, "%s differs from the known answer", what);
}

/* Reads and parses a fixture's EncryptionInfo. */
static void load_info(const uint8_t *file, size_t len, sc_arena_t *a, offcrypto_info_t *info, uint8_t **pkg,
                      size_t *pkg_len) {
  offcrypto_cfb_t *cfb = NULL;
  sc_err_t err = {{0}};
  cr_assert_eq(offcrypto_cfb_open(file, len, a, &cfb, &err), SC_OK, "%s", err.msg);
  uint8_t *ei = NULL;
  size_t ei_len = 0;
  cr_assert_eq(offcrypto_cfb_read(cfb, "EncryptionInfo", a, &ei, &ei_len, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(offcrypto_parse_info(ei, ei_len, a, info, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(offcrypto_cfb_read(cfb, "EncryptedPackage", a, pkg, pkg_len, &err), SC_OK, "%s", err.msg);
}

/* ---- Agile (example_password.xlsx) ------------------------------------------ */

Test(offcrypto, agile_known_answers) {
  size_t len = 0;
  uint8_t *file = slurp(DATA "example_password.xlsx", &len);
  sc_arena_t *a = sc_arena_new(0);
  offcrypto_info_t info;
  uint8_t *pkg = NULL;
  size_t pkg_len = 0;
  load_info(file, len, a, &info, &pkg, &pkg_len);
  cr_assert_eq(info.kind, OFFCRYPTO_AGILE);
  cr_assert_eq(info.major, 4);
  cr_assert_eq(info.minor, 4);
  cr_assert_eq(info.flags, 0x40);
  cr_assert_eq(info.spin_count, 100000);
  cr_assert_eq(info.key_data.key_bits, 256);
  cr_assert_eq(info.key_data.hash, OFFCRYPTO_SHA512);
  cr_assert_eq(pkg_len, 8392, "EncryptedPackage stream length");
  cr_assert_eq(pkg[0] | pkg[1] << 8 | pkg[2] << 16, 8369, "StreamSize");

  sc_err_t err = {{0}};
  uint8_t h0[OFFCRYPTO_MAX_HASH];
  size_t h0_len = 0;
  cr_assert_eq(offcrypto_hash_password(info.password_key.hash, info.password_key.salt.p, info.password_key.salt.n,
                                       PASSWORD, 0, h0, &h0_len, &err),
               SC_OK, "%s", err.msg);
  assert_hex(h0, h0_len,
             "f0bc7757b1836a5b79dd13fcfa19cd64b7cce508fe9c13e03f2398dc9acc800bc0168f04d5107b5e126c8776a586a3f1de7f40e2b"
             "451444154d2980681a6319a",
             "H0");

  offcrypto_keys_t k;
  cr_assert_eq(offcrypto_unlock(&info, PASSWORD, &k, &err), SC_OK, "%s", err.msg);
  assert_hex(k.hn, k.hn_len,
             "c075f3d16727bcc4fff372f9f605154f079be7405c5405d8a02949b0c8554707f05b468404887a1ea6f38830e712e85c6f78320b0"
             "9993b4311efd5651e9bca38",
             "Hn");
  assert_hex(k.key_verifier_input, k.key_len, "2cacb1cccc0cb41589b059d04f4af63f8ca0328b747252acb97b0072b2196345",
             "key_verifierHashInput");
  assert_hex(k.key_verifier_value, k.key_len, "b9258fb7a3f1af8adfafa756fbf45d908e1865e9aa161df8c932be8b72d5f154",
             "key_verifierHashValue");
  assert_hex(k.key_key_value, k.key_len, "5b934f6a8785e8dec47e351798f627724d491f05fd3f16615650172bfa949572",
             "key_keyValue");
  assert_hex(k.verifier, k.verifier_len, "25beb9ba849a6c9d420adc61f3fd1874", "verifierHashInput (decrypted)");
  assert_hex(k.secret, k.secret_len, "314545481dbf9f4fc46a240a037cbfd25674ce09a15e2171a8aafdd99af587d7", "secretKey");

  uint8_t iv[OFFCRYPTO_MAX_HASH];
  size_t iv_len = offcrypto_agile_segment_iv(&info, 0, iv);
  assert_hex(iv, iv_len, "b493fdb8407c3d9cc9f6a819fead2c05", "IV of segment 0");

  uint8_t *plain = NULL;
  size_t plain_len = 0;
  cr_assert_eq(offcrypto_decrypt_package(&info, &k, pkg, pkg_len, a, &plain, &plain_len, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(plain_len, 8369);
  cr_assert_eq(memcmp(plain, "PK\x03\x04", 4), 0, "segment 0 starts a ZIP");
  sc_arena_free(a);
  free(file);
}

Test(offcrypto, agile_decrypts_to_the_reference_byte_for_byte) {
  size_t len = 0, ref_len = 0;
  uint8_t *file = slurp(DATA "example_password.xlsx", &len);
  uint8_t *ref = slurp(DATA "example.xlsx", &ref_len);
  cr_assert(offcrypto_is_cfb(file, len));
  cr_assert_not(offcrypto_is_cfb(ref, ref_len));
  sc_arena_t *a = sc_arena_new(0);
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  sc_err_t err = {{0}};
  cr_assert_eq(offcrypto_decrypt(file, len, PASSWORD, a, &plain, &plain_len, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(plain_len, ref_len);
  cr_assert_eq(memcmp(plain, ref, ref_len), 0, "decrypted package differs from example.xlsx");
  sc_arena_free(a);
  free(ref);
  free(file);
}

/* ---- Standard (ecma376standard_password.docx) ------------------------------- */

Test(offcrypto, standard_known_answers_and_plaintext) {
  size_t len = 0, ref_len = 0;
  uint8_t *file = slurp(DATA "ecma376standard_password.docx", &len);
  uint8_t *ref = slurp(DATA "ecma376standard_password_plain.docx", &ref_len);
  sc_arena_t *a = sc_arena_new(0);
  offcrypto_info_t info;
  uint8_t *pkg = NULL;
  size_t pkg_len = 0;
  load_info(file, len, a, &info, &pkg, &pkg_len);
  cr_assert_eq(info.kind, OFFCRYPTO_STANDARD);
  cr_assert_eq(info.flags, 0x24);
  cr_assert_eq(info.alg_id, 0x660e);
  cr_assert_eq(info.alg_id_hash, 0x8004);
  cr_assert_eq(info.key_bits, 128);
  cr_assert_eq(info.provider_type, 0x18);
  assert_hex(info.salt, sizeof info.salt, "e88266490c5bd1eebd2b4394e3f830ef", "salt");

  sc_err_t err = {{0}};
  offcrypto_keys_t k;
  cr_assert_eq(offcrypto_unlock(&info, PASSWORD, &k, &err), SC_OK, "%s", err.msg);
  assert_hex(k.secret, k.secret_len, "40b13a71f90b966e375408f2d181a1aa", "derived AES-128 key");

  uint8_t *plain = NULL;
  size_t plain_len = 0;
  cr_assert_eq(offcrypto_decrypt(file, len, PASSWORD, a, &plain, &plain_len, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(plain_len, ref_len);
  cr_assert_eq(memcmp(plain, ref, ref_len), 0, "decrypted package differs from the _plain reference");
  sc_arena_free(a);
  free(ref);
  free(file);
}

/* ---- Passwords ----------------------------------------------------------------- */

static sc_status_t decrypt_file(const char *path, const char *password, sc_err_t *err) {
  size_t len = 0;
  uint8_t *file = slurp(path, &len);
  sc_arena_t *a = sc_arena_new(0);
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  sc_status_t st = offcrypto_decrypt(file, len, password, a, &plain, &plain_len, err);
  sc_arena_free(a);
  free(file);
  return st;
}

Test(offcrypto, wrong_password_is_reported_as_such) {
  const char *files[] = {DATA "example_password.xlsx", DATA "ecma376standard_password.docx"};
  const char *wrong[] = {"password1234_", "Password1234", "Pässwörd"};
  for (size_t f = 0; f < 2; f++)
    for (size_t w = 0; w < 3; w++) {
      sc_err_t err = {{0}};
      cr_assert_eq(decrypt_file(files[f], wrong[w], &err), SC_FAILED_PRECONDITION, "%s with %s", files[f], wrong[w]);
      cr_assert_str_eq(err.msg, "password incorrect");
    }
}

Test(offcrypto, missing_password_is_asked_for) {
  const char *files[] = {DATA "example_password.xlsx", DATA "ecma376standard_password.docx"};
  for (size_t f = 0; f < 2; f++) {
    sc_err_t err = {{0}};
    cr_assert_eq(decrypt_file(files[f], NULL, &err), SC_FAILED_PRECONDITION);
    cr_assert_str_eq(err.msg, "file is encrypted; password required");
    cr_assert_eq(decrypt_file(files[f], "", &err), SC_FAILED_PRECONDITION);
    cr_assert_str_eq(err.msg, "file is encrypted; password required");
  }
}

Test(offcrypto, password_is_utf16le_of_its_utf8) {
  /* H0 = SHA-1(salt || UTF-16LE(pw)) with the UTF-16LE spelled out by hand,
   * including a character outside the BMP (a surrogate pair). */
  const char *pw = "P\xC3\xA4\xF0\x9F\x94\x91"; /* "Pä🔑" */
  const uint8_t utf16[] = {'P', 0, 0xE4, 0, 0x3D, 0xD8, 0x11, 0xDD};
  const uint8_t salt[4] = {1, 2, 3, 4};
  uint8_t msg[sizeof salt + sizeof utf16], want[EVP_MAX_MD_SIZE], got[OFFCRYPTO_MAX_HASH];
  memcpy(msg, salt, sizeof salt);
  memcpy(msg + sizeof salt, utf16, sizeof utf16);
  unsigned int want_len = 0;
  cr_assert(EVP_Digest(msg, sizeof msg, want, &want_len, EVP_sha1(), NULL));
  size_t got_len = 0;
  sc_err_t err = {{0}};
  cr_assert_eq(offcrypto_hash_password(OFFCRYPTO_SHA1, salt, sizeof salt, pw, 0, got, &got_len, &err), SC_OK);
  cr_assert_eq(got_len, want_len);
  cr_assert_eq(memcmp(got, want, got_len), 0);

  cr_assert_eq(offcrypto_hash_password(OFFCRYPTO_SHA1, salt, sizeof salt, "bad \xC3(", 0, got, &got_len, &err),
               SC_INVALID_ARGUMENT);
  cr_assert_eq(offcrypto_hash_password(OFFCRYPTO_SHA1, salt, sizeof salt, "\xED\xA0\x80", 0, got, &got_len, &err),
               SC_INVALID_ARGUMENT, "an encoded surrogate is not UTF-8");
  char long_pw[300];
  memset(long_pw, 'x', sizeof long_pw - 1);
  long_pw[sizeof long_pw - 1] = '\0';
  cr_assert_eq(offcrypto_hash_password(OFFCRYPTO_SHA1, salt, sizeof salt, long_pw, 0, got, &got_len, &err),
               SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "255") != NULL, "%s", err.msg);
}

/* ---- Damaged files ------------------------------------------------------------- */

Test(offcrypto, tampered_package_fails_the_integrity_check) {
  size_t len = 0;
  uint8_t *file = slurp(DATA "example_password.xlsx", &len);
  sc_arena_t *a = sc_arena_new(0);
  offcrypto_info_t info;
  uint8_t *pkg = NULL;
  size_t pkg_len = 0;
  load_info(file, len, a, &info, &pkg, &pkg_len);
  /* Find a run of the package's bytes in the file and flip one of them. */
  const uint8_t *at = memmem(file, len, pkg + 5000, 32);
  cr_assert_not_null(at);
  cr_assert_null(memmem(at + 1, len - (size_t)(at + 1 - file), pkg + 5000, 32), "the run must be unique");
  file[at - file + 7] ^= 0x01;
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  sc_err_t err = {{0}};
  cr_assert_eq(offcrypto_decrypt(file, len, PASSWORD, a, &plain, &plain_len, &err), SC_DATA_LOSS);
  cr_assert_str_eq(err.msg, "encrypted package failed its integrity check (tampered or corrupt)");
  /* A changed size field is covered by the HMAC too. */
  uint8_t *copy = sc_arena_memdup(a, pkg, pkg_len);
  copy[0] ^= 0x10;
  offcrypto_keys_t k;
  cr_assert_eq(offcrypto_unlock(&info, PASSWORD, &k, &err), SC_OK);
  cr_assert_eq(offcrypto_decrypt_package(&info, &k, copy, pkg_len, a, &plain, &plain_len, &err), SC_DATA_LOSS);
  sc_arena_free(a);
  free(file);
}

Test(offcrypto, truncated_files_fail_cleanly) {
  const char *files[] = {DATA "example_password.xlsx", DATA "ecma376standard_password.docx"};
  for (size_t f = 0; f < 2; f++) {
    size_t len = 0;
    uint8_t *file = slurp(files[f], &len);
    size_t cuts[] = {0, 4, 8, 100, 511, 512, 600, 1024, 1536, len / 3, len / 2, len - 1024, len - 512};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
      /* A copy of exactly the cut length, so ASan sees any read past it. */
      uint8_t *cut = malloc(cuts[i] ? cuts[i] : 1);
      memcpy(cut, file, cuts[i]);
      sc_arena_t *a = sc_arena_new(0);
      uint8_t *plain = NULL;
      size_t plain_len = 0;
      sc_err_t err = {{0}};
      sc_status_t st = offcrypto_decrypt(cut, cuts[i], PASSWORD, a, &plain, &plain_len, &err);
      cr_assert_eq(st, SC_INVALID_ARGUMENT, "%s cut at %zu: %s (%s)", files[f], cuts[i], sc_status_name(st), err.msg);
      cr_assert_neq(err.msg[0], '\0');
      sc_arena_free(a);
      free(cut);
    }
    free(file);
  }
}

Test(offcrypto, not_a_compound_file) {
  const uint8_t zip[] = "PK\x03\x04 not encrypted";
  sc_arena_t *a = sc_arena_new(0);
  uint8_t *plain = NULL;
  size_t plain_len = 0;
  sc_err_t err = {{0}};
  cr_assert_not(offcrypto_is_cfb(zip, sizeof zip));
  cr_assert_not(offcrypto_is_cfb(NULL, 0));
  cr_assert_eq(offcrypto_decrypt(zip, sizeof zip, PASSWORD, a, &plain, &plain_len, &err), SC_INVALID_ARGUMENT);
  sc_arena_free(a);
}

/* ---- EncryptionInfo parsing ------------------------------------------------------ */

static sc_status_t parse_agile_xml(const char *xml, sc_err_t *err) {
  size_t n = strlen(xml);
  uint8_t *buf = malloc(8 + n);
  const uint8_t head[8] = {4, 0, 4, 0, 0x40, 0, 0, 0};
  memcpy(buf, head, 8);
  memcpy(buf + 8, xml, n);
  sc_arena_t *a = sc_arena_new(0);
  offcrypto_info_t info;
  sc_status_t st = offcrypto_parse_info(buf, 8 + n, a, &info, err);
  sc_arena_free(a);
  free(buf);
  return st;
}

#define KEYDATA                                                                                                        \
  "<keyData saltSize=\"16\" blockSize=\"16\" keyBits=\"256\" hashSize=\"64\" cipherAlgorithm=\"AES\" "                 \
  "cipherChaining=\"ChainingModeCBC\" hashAlgorithm=\"SHA512\" saltValue=\"AAAAAAAAAAAAAAAAAAAAAA==\"/>"
#define ENCKEY(spin, cipher)                                                                                           \
  "<keyEncryptors><keyEncryptor uri=\"http://schemas.microsoft.com/office/2006/keyEncryptor/password\">"               \
  "<p:encryptedKey spinCount=\"" spin "\" saltSize=\"16\" blockSize=\"16\" keyBits=\"256\" hashSize=\"64\" "           \
  "cipherAlgorithm=\"" cipher "\" cipherChaining=\"ChainingModeCBC\" hashAlgorithm=\"SHA512\" "                        \
  "saltValue=\"AAAAAAAAAAAAAAAAAAAAAA==\" encryptedVerifierHashInput=\"AAAAAAAAAAAAAAAAAAAAAA==\" "                    \
  "encryptedVerifierHashValue="                                                                                        \
  "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\""                       \
  " encryptedKeyValue=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"/></keyEncryptor></keyEncryptors>"
#define ENC(body) "<?xml version=\"1.0\"?><encryption xmlns:p=\"urn:p\">" body "</encryption>"

Test(offcrypto, encryption_info_is_validated) {
  sc_err_t err = {{0}};
  cr_assert_eq(parse_agile_xml(ENC(KEYDATA ENCKEY("100000", "AES")), &err), SC_OK, "%s", err.msg);
  cr_assert_eq(parse_agile_xml(ENC(KEYDATA ENCKEY("99999999", "AES")), &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "spinCount") != NULL, "%s", err.msg);
  cr_assert_eq(parse_agile_xml(ENC(KEYDATA ENCKEY("100000", "DES")), &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "unsupported cipher") != NULL, "%s", err.msg);
  cr_assert_eq(parse_agile_xml(ENC(ENCKEY("100000", "AES")), &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "keyData") != NULL, "%s", err.msg);
  cr_assert_eq(parse_agile_xml(ENC(KEYDATA), &err), SC_INVALID_ARGUMENT);
  cr_assert_eq(parse_agile_xml(ENC(KEYDATA ENCKEY("100000", "AES")) "<unclosed", &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "malformed") != NULL, "%s", err.msg);
  cr_assert_eq(parse_agile_xml("<!DOCTYPE e [<!ENTITY x \"y\">]>" ENC(KEYDATA ENCKEY("1", "AES")), &err),
               SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "DOCTYPE") != NULL, "%s", err.msg);

  const uint8_t extensible[8] = {4, 0, 3, 0, 0, 0, 0, 0};
  sc_arena_t *a = sc_arena_new(0);
  offcrypto_info_t info;
  cr_assert_eq(offcrypto_parse_info(extensible, sizeof extensible, a, &info, &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "Extensible") != NULL, "%s", err.msg);
  const uint8_t standard_short[12] = {3, 0, 2, 0, 0x24, 0, 0, 0, 0xFF, 0xFF, 0, 0};
  cr_assert_eq(offcrypto_parse_info(standard_short, sizeof standard_short, a, &info, &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "truncated") != NULL, "%s", err.msg);
  sc_arena_free(a);
}

/* ---- Compound files built here --------------------------------------------------- */

#define SS 512
#define ENDOFCHAIN 0xFFFFFFFEu
#define FREESECT 0xFFFFFFFFu

typedef struct tstream {
  const char *name;
  const uint8_t *data;
  size_t len;
} tstream_t;

typedef struct tcfb {
  uint8_t *buf;
  size_t len;
  size_t ss; /* sector size: 512 (version 3) or 4096 (version 4) */
  uint32_t n_fat, n_difat, first_difat, dir_start;
  uint32_t start[8]; /* first sector (or mini sector) of each stream */
} tcfb_t;

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static size_t units(size_t len, size_t unit) { return (len + unit - 1) / unit; }

/* A version 3 compound file: streams under 4096 bytes go to the mini stream,
 * the rest to FAT chains; sectors are laid out FAT, DIFAT, directory,
 * MiniFAT, mini stream, then the big streams in order. */
static tcfb_t cfb_build_ss(const tstream_t *s, size_t n, size_t ss) {
  cr_assert_leq(n, 8);
  tcfb_t t = {0};
  size_t mini_units = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i].len < 4096) mini_units += units(s[i].len, 64);
  size_t dir_secs = units((n + 1) * 128, ss), minifat_secs = units(mini_units * 4, ss),
         mini_secs = units(mini_units * 64, ss), data_secs = dir_secs + minifat_secs + mini_secs;
  for (size_t i = 0; i < n; i++)
    if (s[i].len >= 4096) data_secs += units(s[i].len, ss);
  size_t nfat = 1, ndifat = 0;
  for (;;) {
    size_t nd = nfat > 109 ? units(nfat - 109, ss / 4 - 1) : 0;
    size_t nf = units(data_secs + nfat + nd, ss / 4);
    if (nf == nfat && nd == ndifat) break;
    nfat = nf, ndifat = nd;
  }
  size_t total = nfat + ndifat + data_secs;
  t.len = (total + 1) * ss;
  t.buf = calloc(1, t.len);
  uint32_t *fat = malloc(nfat * (ss / 4) * 4);
  memset(fat, 0xFF, nfat * (ss / 4) * 4);
  uint32_t next = 0;
  uint32_t fat_first = next;
  for (size_t i = 0; i < nfat; i++)
    fat[next++] = 0xFFFFFFFDu;
  uint32_t difat_first = next;
  for (size_t i = 0; i < ndifat; i++)
    fat[next++] = 0xFFFFFFFCu;
#define CHAIN(first, count)                                                                                            \
  do {                                                                                                                 \
    first = next;                                                                                                      \
    for (size_t k_ = 0; k_ < (count); k_++, next++)                                                                    \
      fat[next] = k_ + 1 < (count) ? next + 1 : ENDOFCHAIN;                                                            \
  } while (0)
  uint32_t dir_first, minifat_first = ENDOFCHAIN, mini_first = ENDOFCHAIN;
  CHAIN(dir_first, dir_secs);
  if (minifat_secs) CHAIN(minifat_first, minifat_secs);
  if (mini_secs) CHAIN(mini_first, mini_secs);
  uint8_t *sec0 = t.buf + ss;
#define SECTOR(id) (sec0 + (size_t)(id)*ss)
  /* Streams. */
  uint32_t mini_next = 0;
  uint8_t *minifat = minifat_secs ? SECTOR(minifat_first) : NULL, *mini = mini_secs ? SECTOR(mini_first) : NULL;
  for (size_t i = 0; i < n; i++) {
    if (s[i].len < 4096) {
      size_t u = units(s[i].len, 64);
      t.start[i] = u ? mini_next : ENDOFCHAIN;
      for (size_t k = 0; k < u; k++, mini_next++)
        put32(minifat + 4 * mini_next, k + 1 < u ? mini_next + 1 : ENDOFCHAIN);
      if (u) memcpy(mini + (size_t)t.start[i] * 64, s[i].data, s[i].len);
    } else {
      uint32_t first;
      CHAIN(first, units(s[i].len, ss));
      t.start[i] = first;
      memcpy(SECTOR(first), s[i].data, s[i].len);
    }
  }
  for (size_t k = mini_next; minifat && k < minifat_secs * (ss / 4); k++)
    put32(minifat + 4 * k, FREESECT);
  /* Directory: the root, then each stream as the right sibling of the one before. */
  uint8_t *dir = SECTOR(dir_first);
  for (size_t e = 0; e < dir_secs * (ss / 128); e++) {
    uint8_t *d = dir + e * 128;
    put32(d + 0x44, FREESECT), put32(d + 0x48, FREESECT), put32(d + 0x4C, FREESECT);
    if (e > n) continue;
    const char *name = e == 0 ? "Root Entry" : s[e - 1].name;
    size_t nl = strlen(name);
    for (size_t c = 0; c < nl; c++)
      d[2 * c] = (uint8_t)name[c];
    d[0x40] = (uint8_t)(2 * (nl + 1));
    d[0x42] = e == 0 ? 5 : 2;
    d[0x43] = 1;
    if (e == 0) {
      put32(d + 0x4C, n ? 1 : FREESECT);
      put32(d + 0x74, mini_first);
      put32(d + 0x78, (uint32_t)(mini_units * 64));
    } else {
      put32(d + 0x48, e < n ? (uint32_t)e + 1 : FREESECT);
      put32(d + 0x74, t.start[e - 1]);
      put32(d + 0x78, (uint32_t)s[e - 1].len);
    }
  }
  /* FAT sectors, DIFAT, header. */
  for (size_t i = 0; i < nfat; i++)
    for (size_t k = 0; k < ss / 4; k++)
      put32(SECTOR(fat_first + i) + 4 * k, fat[i * (ss / 4) + k]);
  uint8_t *h = t.buf;
  memset(h + 0x4C, 0xFF, 109 * 4);
  for (size_t i = 0; i < nfat && i < 109; i++)
    put32(h + 0x4C + 4 * i, fat_first + (uint32_t)i);
  for (size_t d = 0; d < ndifat; d++) {
    uint8_t *ds = SECTOR(difat_first + d);
    memset(ds, 0xFF, ss);
    for (size_t k = 0; k < ss / 4 - 1; k++) {
      size_t fi = 109 + d * (ss / 4 - 1) + k;
      if (fi < nfat) put32(ds + 4 * k, fat_first + (uint32_t)fi);
    }
    put32(ds + ss - 4, d + 1 < ndifat ? difat_first + (uint32_t)d + 1 : ENDOFCHAIN);
  }
  const uint8_t sig[8] = {0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};
  memcpy(h, sig, 8);
  h[0x18] = 0x3E, h[0x1A] = ss == 512 ? 3 : 4, h[0x1C] = 0xFE, h[0x1D] = 0xFF, h[0x1E] = ss == 512 ? 9 : 12;
  h[0x20] = 6;
  if (ss != 512) put32(h + 0x28, (uint32_t)dir_secs);
  put32(h + 0x2C, (uint32_t)nfat);
  put32(h + 0x30, dir_first);
  put32(h + 0x38, 4096);
  put32(h + 0x3C, minifat_first);
  put32(h + 0x40, (uint32_t)minifat_secs);
  put32(h + 0x44, ndifat ? difat_first : ENDOFCHAIN);
  put32(h + 0x48, (uint32_t)ndifat);
  t.ss = ss;
  t.n_fat = (uint32_t)nfat, t.n_difat = (uint32_t)ndifat, t.first_difat = difat_first, t.dir_start = dir_first;
  free(fat);
  return t;
#undef CHAIN
#undef SECTOR
}

static tcfb_t cfb_build(const tstream_t *s, size_t n) { return cfb_build_ss(s, n, SS); }

static uint8_t *pattern(size_t n, uint32_t seed) {
  uint8_t *p = malloc(n);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t)(seed >> 16);
  }
  return p;
}

static sc_status_t read_stream(const tcfb_t *t, const char *name, sc_arena_t *a, uint8_t **out, size_t *out_len,
                               sc_err_t *err) {
  offcrypto_cfb_t *cfb = NULL;
  sc_status_t st = offcrypto_cfb_open(t->buf, t->len, a, &cfb, err);
  if (st != SC_OK) return st;
  return offcrypto_cfb_read(cfb, name, a, out, out_len, err);
}

Test(offcrypto, cfb_reads_fat_and_mini_streams) {
  uint8_t *big = pattern(10000, 1), *small = pattern(700, 2);
  tstream_t s[] = {{"Big", big, 10000}, {"small", small, 700}, {"Empty", NULL, 0}};
  tcfb_t t = cfb_build(s, 3);
  sc_arena_t *a = sc_arena_new(0);
  sc_err_t err = {{0}};
  uint8_t *out = NULL;
  size_t out_len = 0;
  cr_assert_eq(read_stream(&t, "BIG", a, &out, &out_len, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(out_len, 10000);
  cr_assert_eq(memcmp(out, big, 10000), 0);
  cr_assert_eq(read_stream(&t, "Small", a, &out, &out_len, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(out_len, 700);
  cr_assert_eq(memcmp(out, small, 700), 0);
  cr_assert_eq(read_stream(&t, "Empty", a, &out, &out_len, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(out_len, 0);
  cr_assert_eq(read_stream(&t, "Missing", a, &out, &out_len, &err), SC_NOT_FOUND);
  sc_arena_free(a);
  free(t.buf);
  free(big);
  free(small);
}

Test(offcrypto, cfb_version_4_sectors) {
  uint8_t *big = pattern(70000, 8), *small = pattern(3000, 9);
  tstream_t s[] = {{"EncryptedPackage", big, 70000}, {"EncryptionInfo", small, 3000}};
  tcfb_t t = cfb_build_ss(s, 2, 4096);
  sc_arena_t *a = sc_arena_new(0);
  sc_err_t err = {{0}};
  uint8_t *out = NULL;
  size_t out_len = 0;
  cr_assert_eq(read_stream(&t, "EncryptedPackage", a, &out, &out_len, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(out_len, 70000);
  cr_assert_eq(memcmp(out, big, 70000), 0);
  cr_assert_eq(read_stream(&t, "EncryptionInfo", a, &out, &out_len, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(out_len, 3000);
  cr_assert_eq(memcmp(out, small, 3000), 0);
  /* A version 4 header with version 3's sector size is refused. */
  t.buf[0x1E] = 9;
  offcrypto_cfb_t *cfb = NULL;
  cr_assert_eq(offcrypto_cfb_open(t.buf, t.len, a, &cfb, &err), SC_INVALID_ARGUMENT);
  sc_arena_free(a);
  free(t.buf);
  free(big);
  free(small);
}

Test(offcrypto, cfb_large_file_uses_difat) {
  size_t n = (size_t)8 << 20; /* 16384 sectors: 129 FAT sectors, 20 of them listed in a DIFAT sector */
  uint8_t *big = pattern(n, 3);
  tstream_t s[] = {{"EncryptedPackage", big, n}};
  tcfb_t t = cfb_build(s, 1);
  cr_assert_gt(t.n_fat, 109);
  cr_assert_eq(t.n_difat, 1);
  sc_arena_t *a = sc_arena_new(0);
  sc_err_t err = {{0}};
  uint8_t *out = NULL;
  size_t out_len = 0;
  cr_assert_eq(read_stream(&t, "EncryptedPackage", a, &out, &out_len, &err), SC_OK, "%s", err.msg);
  cr_assert_eq(out_len, n);
  cr_assert_eq(memcmp(out, big, n), 0);

  /* The DIFAT sector pointing at itself, with more FAT sectors declared than
   * it lists: a cycle, not a hang. */
  uint8_t *ds = t.buf + SS + (size_t)t.first_difat * SS;
  put32(ds + SS - 4, t.first_difat);
  put32(t.buf + 0x2C, t.n_fat + 200);
  offcrypto_cfb_t *cfb = NULL;
  cr_assert_eq(offcrypto_cfb_open(t.buf, t.len, a, &cfb, &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "cycle") != NULL, "%s", err.msg);
  /* A DIFAT that ends early. */
  put32(ds + SS - 4, ENDOFCHAIN);
  cr_assert_eq(offcrypto_cfb_open(t.buf, t.len, a, &cfb, &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "DIFAT") != NULL, "%s", err.msg);
  sc_arena_free(a);
  free(t.buf);
  free(big);
}

Test(offcrypto, cfb_fat_cycle_is_an_error) {
  uint8_t *big = pattern(20000, 4);
  tstream_t s[] = {{"EncryptedPackage", big, 20000}};
  tcfb_t t = cfb_build(s, 1);
  /* The stream's third sector points back to its first. */
  uint32_t first = t.start[0];
  put32(t.buf + SS + 4 * (first + 2), first);
  sc_arena_t *a = sc_arena_new(0);
  sc_err_t err = {{0}};
  uint8_t *out = NULL;
  size_t out_len = 0;
  cr_assert_eq(read_stream(&t, "EncryptedPackage", a, &out, &out_len, &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "cycle") != NULL, "%s", err.msg);
  /* The directory chain pointing at itself. */
  put32(t.buf + SS + 4 * t.dir_start, t.dir_start);
  offcrypto_cfb_t *cfb = NULL;
  cr_assert_eq(offcrypto_cfb_open(t.buf, t.len, a, &cfb, &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "cycle") != NULL, "%s", err.msg);
  sc_arena_free(a);
  free(t.buf);
  free(big);
}

Test(offcrypto, cfb_broken_chains_and_trees) {
  uint8_t *big = pattern(9000, 5), *small = pattern(1000, 6);
  tstream_t s[] = {{"A", big, 9000}, {"B", small, 1000}};
  sc_arena_t *a = sc_arena_new(0);
  sc_err_t err = {{0}};
  uint8_t *out = NULL;
  size_t out_len = 0;

  tcfb_t t = cfb_build(s, 2);
  put32(t.buf + SS + 4 * (t.start[0] + 1), ENDOFCHAIN); /* chain shorter than the stream */
  cr_assert_eq(read_stream(&t, "A", a, &out, &out_len, &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "ends after") != NULL, "%s", err.msg);
  put32(t.buf + SS + 4 * (t.start[0] + 1), 0x00FFFFFF); /* points outside the FAT */
  cr_assert_eq(read_stream(&t, "A", a, &out, &out_len, &err), SC_INVALID_ARGUMENT);
  free(t.buf);

  t = cfb_build(s, 2);
  uint8_t *dir = t.buf + SS + (size_t)t.dir_start * SS;
  put32(dir + 2 * 128 + 0x48, 1); /* B's right sibling is A: a cycle in the tree */
  offcrypto_cfb_t *cfb = NULL;
  cr_assert_eq(offcrypto_cfb_open(t.buf, t.len, a, &cfb, &err), SC_INVALID_ARGUMENT);
  cr_assert(strstr(err.msg, "directory tree") != NULL, "%s", err.msg);
  put32(dir + 2 * 128 + 0x48, 4000); /* a sibling id past the directory */
  cr_assert_eq(offcrypto_cfb_open(t.buf, t.len, a, &cfb, &err), SC_INVALID_ARGUMENT);
  put32(dir + 2 * 128 + 0x48, FREESECT);
  put32(dir + 1 * 128 + 0x78, 0x7FFFFFFF); /* A claims more bytes than the file has */
  cr_assert_eq(read_stream(&t, "A", a, &out, &out_len, &err), SC_INVALID_ARGUMENT);
  put32(dir + 2 * 128 + 0x74, 5000); /* B's mini chain starts past the mini stream */
  cr_assert_eq(read_stream(&t, "B", a, &out, &out_len, &err), SC_INVALID_ARGUMENT);
  free(t.buf);
  sc_arena_free(a);
  free(big);
  free(small);
}

Test(offcrypto, compound_files_that_are_not_encrypted_packages) {
  uint8_t *body = pattern(5000, 7);
  struct {
    const char *stream, *says;
  } cases[] = {{"Workbook", ".xls"}, {"WordDocument", "Word"}, {"Other", "no encrypted package"}};
  for (size_t i = 0; i < 3; i++) {
    tstream_t s[] = {{cases[i].stream, body, 5000}};
    tcfb_t t = cfb_build(s, 1);
    sc_arena_t *a = sc_arena_new(0);
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    sc_err_t err = {{0}};
    cr_assert_eq(offcrypto_decrypt(t.buf, t.len, PASSWORD, a, &plain, &plain_len, &err), SC_INVALID_ARGUMENT);
    cr_assert(strstr(err.msg, cases[i].says) != NULL, "%s", err.msg);
    sc_arena_free(a);
    free(t.buf);
  }
  free(body);
}
