/* MS-OFFCRYPTO decryption of password-protected OOXML packages, and the
 * MS-CFB (compound file) reader it needs. See offcrypto.h for the contract.
 *
 * Input is hostile: every offset is checked against the file before it is
 * read, every sector chain is walked with a visited bitmap (a cycle is an
 * error, never a hang), and every length from the file is bounded before it
 * sizes an allocation.
 */
#include "offcrypto.h"

#include <expat.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

/* ---- Little-endian fields ------------------------------------------------ */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }
static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static sc_status_t oom(sc_err_t *err) {
  sc_err_set(err, "encrypted file: out of memory (request memory cap reached)");
  return SC_RESOURCE_EXHAUSTED;
}

/* ---- Compound file (MS-CFB) ------------------------------------------------ */

static const uint8_t cfb_signature[8] = {0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};

#define CFB_MAXREGSECT 0xFFFFFFFAu
#define CFB_DIFSECT 0xFFFFFFFCu
#define CFB_FATSECT 0xFFFFFFFDu
#define CFB_ENDOFCHAIN 0xFFFFFFFEu
#define CFB_FREESECT 0xFFFFFFFFu
#define CFB_NOSTREAM 0xFFFFFFFFu
#define CFB_HEADER_DIFAT 109
#define CFB_DIRENT 128
#define CFB_MINI_SECTOR 64
#define CFB_MINI_CUTOFF 4096

enum { CFB_TYPE_STORAGE = 1, CFB_TYPE_STREAM = 2, CFB_TYPE_ROOT = 5 };

struct offcrypto_cfb {
  const uint8_t *data;
  size_t len;
  int major;
  uint32_t ssz;       /* sector size */
  uint32_t n_sectors; /* sectors the file holds (the last may be partial) */
  uint32_t *fat;
  uint32_t n_fat;
  uint32_t *minifat;
  uint32_t n_minifat;
  uint8_t *dir;
  uint32_t n_dir;
  uint8_t *mini; /* the root entry's mini stream */
  size_t mini_len;
  uint32_t *streams; /* directory ids of the streams under the root storage */
  uint32_t n_streams;
};

int offcrypto_is_cfb(const uint8_t *data, size_t len) {
  return data != NULL && len >= sizeof cfb_signature && memcmp(data, cfb_signature, sizeof cfb_signature) == 0;
}

/* Sector `id`'s bytes in the file: *avail is the sector size, or less for a
 * file cut inside its last sector. NULL when the sector is not in the file. */
static const uint8_t *cfb_sector(const offcrypto_cfb_t *c, uint32_t id, size_t *avail) {
  if (id >= c->n_sectors) return NULL;
  size_t off = ((size_t)id + 1) * c->ssz;
  if (off >= c->len) return NULL;
  size_t left = c->len - off;
  *avail = left < c->ssz ? left : c->ssz;
  return c->data + off;
}

/* A unit of a chain: a sector of the file, or a mini sector of the mini stream. */
static const uint8_t *cfb_unit(const offcrypto_cfb_t *c, int mini, uint32_t id, size_t *avail) {
  if (!mini) return cfb_sector(c, id, avail);
  size_t off = (size_t)id * CFB_MINI_SECTOR;
  if (off >= c->mini_len) return NULL;
  size_t left = c->mini_len - off;
  *avail = left < CFB_MINI_SECTOR ? left : CFB_MINI_SECTOR;
  return c->mini + off;
}

static int bit_test_set(uint8_t *bits, uint32_t i) {
  uint8_t m = (uint8_t)(1u << (i & 7));
  if (bits[i >> 3] & m) return 1;
  bits[i >> 3] |= m;
  return 0;
}

/* Reads a sector chain into arena memory. With `want` == SIZE_MAX the chain
 * is followed to ENDOFCHAIN (directory, MiniFAT) and every unit is copied in
 * full; otherwise exactly `want` bytes are read and the chain must be long
 * enough for them. A unit visited twice is a cycle. */
static sc_status_t cfb_chain(const offcrypto_cfb_t *c, int mini, uint32_t start, size_t want, sc_arena_t *arena,
                             uint8_t **out, size_t *out_len, const char *what, sc_err_t *err) {
  const uint32_t *tab = mini ? c->minifat : c->fat;
  uint32_t n = mini ? c->n_minifat : c->n_fat;
  size_t unit = mini ? CFB_MINI_SECTOR : c->ssz;
  const char *kind = mini ? "mini sector" : "sector";
  uint8_t *bits = sc_arena_calloc(arena, (size_t)n / 8 + 1, 1);
  if (bits == NULL) return oom(err);

  size_t need; /* units to read */
  if (want == SIZE_MAX) {
    need = 0;
    for (uint32_t id = start; id != CFB_ENDOFCHAIN; id = tab[id]) {
      if (id >= n) {
        sc_err_set(err, "compound file: %s chain points to invalid %s %u", what, kind, id);
        return SC_INVALID_ARGUMENT;
      }
      if (bit_test_set(bits, id)) {
        sc_err_set(err, "compound file: %s chain has a cycle at %s %u", what, kind, id);
        return SC_INVALID_ARGUMENT;
      }
      need++;
    }
    if (need > SIZE_MAX / unit) return oom(err);
    want = need * unit;
    memset(bits, 0, (size_t)n / 8 + 1);
  } else {
    need = want / unit + (want % unit != 0);
  }

  uint8_t *buf = sc_arena_alloc(arena, want);
  if (buf == NULL) return oom(err);
  uint32_t id = start;
  size_t done = 0;
  for (size_t k = 0; k < need; k++) {
    if (id >= n) {
      if (id == CFB_ENDOFCHAIN)
        sc_err_set(err, "compound file: %s chain ends after %zu of %zu bytes (truncated or corrupt)", what, done, want);
      else
        sc_err_set(err, "compound file: %s chain points to invalid %s %u", what, kind, id);
      return SC_INVALID_ARGUMENT;
    }
    if (bit_test_set(bits, id)) {
      sc_err_set(err, "compound file: %s chain has a cycle at %s %u", what, kind, id);
      return SC_INVALID_ARGUMENT;
    }
    size_t take = want - done < unit ? want - done : unit;
    size_t avail = 0;
    const uint8_t *p = cfb_unit(c, mini, id, &avail);
    if (p == NULL || avail < take) {
      sc_err_set(err, "compound file: %s %u of the %s lies beyond the end of the %s (truncated file)", kind, id, what,
                 mini ? "mini stream" : "file");
      return SC_INVALID_ARGUMENT;
    }
    memcpy(buf + done, p, take);
    done += take;
    id = tab[id];
  }
  *out = buf;
  *out_len = want;
  return SC_OK;
}

static uint64_t cfb_entry_size(const offcrypto_cfb_t *c, const uint8_t *e) {
  /* MS-CFB: version 3 writers may leave garbage in the upper half; readers
   * are told to ignore it. */
  return c->major == 3 ? rd32(e + 0x78) : rd64(e + 0x78);
}

static sc_status_t cfb_load_fat(offcrypto_cfb_t *c, const uint8_t *h, sc_arena_t *arena, sc_err_t *err) {
  uint32_t n_fat_sectors = rd32(h + 0x2C);
  if (n_fat_sectors == 0 || n_fat_sectors > c->n_sectors) {
    sc_err_set(err, "compound file: header declares %u FAT sectors, the file holds %u sectors (truncated or corrupt)",
               n_fat_sectors, c->n_sectors);
    return SC_INVALID_ARGUMENT;
  }
  uint32_t *ids = sc_arena_calloc(arena, n_fat_sectors, sizeof *ids);
  if (ids == NULL) return oom(err);
  uint32_t got = 0;
  for (; got < n_fat_sectors && got < CFB_HEADER_DIFAT; got++)
    ids[got] = rd32(h + 0x4C + 4 * got);

  /* The rest of the FAT's sector list lives in the DIFAT chain. */
  uint32_t per = c->ssz / 4 - 1;
  uint8_t *seen = sc_arena_calloc(arena, (size_t)c->n_sectors / 8 + 1, 1);
  if (seen == NULL) return oom(err);
  uint32_t difat = rd32(h + 0x44);
  while (got < n_fat_sectors) {
    size_t avail = 0;
    const uint8_t *s = difat < c->n_sectors ? cfb_sector(c, difat, &avail) : NULL;
    if (s == NULL || avail < c->ssz) {
      sc_err_set(err, "compound file: DIFAT chain ends after %u of %u FAT sectors (truncated or corrupt)", got,
                 n_fat_sectors);
      return SC_INVALID_ARGUMENT;
    }
    if (bit_test_set(seen, difat)) {
      sc_err_set(err, "compound file: DIFAT chain has a cycle at sector %u", difat);
      return SC_INVALID_ARGUMENT;
    }
    for (uint32_t i = 0; i < per && got < n_fat_sectors; i++)
      ids[got++] = rd32(s + 4 * i);
    difat = rd32(s + 4 * per);
  }

  uint32_t per_fat = c->ssz / 4;
  if (n_fat_sectors > UINT32_MAX / per_fat) return oom(err);
  c->n_fat = n_fat_sectors * per_fat;
  c->fat = sc_arena_alloc(arena, (size_t)c->n_fat * sizeof *c->fat);
  if (c->fat == NULL) return oom(err);
  memset(c->fat, 0xFF, (size_t)c->n_fat * sizeof *c->fat); /* FREESECT past a cut last sector */
  memset(seen, 0, (size_t)c->n_sectors / 8 + 1);
  for (uint32_t i = 0; i < n_fat_sectors; i++) {
    size_t avail = 0;
    const uint8_t *s = ids[i] < c->n_sectors ? cfb_sector(c, ids[i], &avail) : NULL;
    if (s == NULL) {
      sc_err_set(err, "compound file: FAT sector %u (%u) lies beyond the end of the file (truncated or corrupt)", i,
                 ids[i]);
      return SC_INVALID_ARGUMENT;
    }
    if (bit_test_set(seen, ids[i])) {
      sc_err_set(err, "compound file: sector %u is listed twice as a FAT sector", ids[i]);
      return SC_INVALID_ARGUMENT;
    }
    for (size_t j = 0; j + 4 <= avail; j += 4)
      c->fat[(size_t)i * per_fat + j / 4] = rd32(s + j);
  }
  return SC_OK;
}

static int cfb_name_eq(const uint8_t *e, const char *name) {
  uint16_t nlen = rd16(e + 0x40);
  if (nlen < 2 || nlen > 64 || nlen % 2) return 0;
  size_t chars = (size_t)nlen / 2 - 1;
  if (strlen(name) != chars) return 0;
  for (size_t i = 0; i < chars; i++) {
    uint16_t u = rd16(e + 2 * i);
    unsigned char ch = (unsigned char)name[i];
    if (u >= 128) return 0;
    unsigned a = u, b = ch;
    if (a >= 'a' && a <= 'z') a -= 32;
    if (b >= 'a' && b <= 'z') b -= 32;
    if (a != b) return 0;
  }
  return 1;
}

/* Collects the streams directly under the root storage: the root's child
 * and everything reachable through left/right siblings. */
static sc_status_t cfb_index_root(offcrypto_cfb_t *c, sc_arena_t *arena, sc_err_t *err) {
  uint32_t *stack = sc_arena_calloc(arena, (size_t)c->n_dir * 2 + 1, sizeof *stack);
  uint8_t *seen = sc_arena_calloc(arena, (size_t)c->n_dir / 8 + 1, 1);
  c->streams = sc_arena_calloc(arena, c->n_dir, sizeof *c->streams);
  if (stack == NULL || seen == NULL || c->streams == NULL) return oom(err);
  size_t top = 0;
  stack[top++] = rd32(c->dir + 0x4C);
  while (top > 0) {
    uint32_t id = stack[--top];
    if (id == CFB_NOSTREAM) continue;
    if (id >= c->n_dir || id == 0) {
      sc_err_set(err, "compound file: directory tree points to invalid entry %u", id);
      return SC_INVALID_ARGUMENT;
    }
    if (bit_test_set(seen, id)) {
      sc_err_set(err, "compound file: directory tree has a cycle at entry %u", id);
      return SC_INVALID_ARGUMENT;
    }
    const uint8_t *e = c->dir + (size_t)id * CFB_DIRENT;
    if (e[0x42] == CFB_TYPE_STREAM) c->streams[c->n_streams++] = id;
    stack[top++] = rd32(e + 0x44);
    stack[top++] = rd32(e + 0x48);
  }
  return SC_OK;
}

sc_status_t offcrypto_cfb_open(const uint8_t *data, size_t len, sc_arena_t *arena, offcrypto_cfb_t **out,
                               sc_err_t *err) {
  if (!offcrypto_is_cfb(data, len)) {
    sc_err_set(err, "not a compound file (no OLE signature)");
    return SC_INVALID_ARGUMENT;
  }
  if (len < 512) {
    sc_err_set(err, "compound file: %zu bytes, shorter than its 512-byte header (truncated)", len);
    return SC_INVALID_ARGUMENT;
  }
  const uint8_t *h = data;
  offcrypto_cfb_t *c = sc_arena_calloc(arena, 1, sizeof *c);
  if (c == NULL) return oom(err);
  c->data = data;
  c->len = len;
  c->major = rd16(h + 0x1A);
  uint16_t shift = rd16(h + 0x1E);
  if (rd16(h + 0x1C) != 0xFFFE) {
    sc_err_set(err, "compound file: bad byte-order mark");
    return SC_INVALID_ARGUMENT;
  }
  if (!((c->major == 3 && shift == 9) || (c->major == 4 && shift == 12))) {
    sc_err_set(err, "compound file: unsupported version %d with sector shift %u", c->major, shift);
    return SC_INVALID_ARGUMENT;
  }
  if (rd16(h + 0x20) != 6 || rd32(h + 0x38) != CFB_MINI_CUTOFF) {
    sc_err_set(err, "compound file: unsupported mini sector size or mini stream cutoff");
    return SC_INVALID_ARGUMENT;
  }
  c->ssz = 1u << shift;
  if (len < c->ssz) {
    sc_err_set(err, "compound file: %zu bytes, shorter than its header sector (truncated)", len);
    return SC_INVALID_ARGUMENT;
  }
  size_t body = len - c->ssz, n = body / c->ssz + (body % c->ssz != 0);
  c->n_sectors = n > CFB_MAXREGSECT ? CFB_MAXREGSECT : (uint32_t)n;

  sc_status_t st = cfb_load_fat(c, h, arena, err);
  if (st != SC_OK) return st;

  uint8_t *buf = NULL;
  size_t blen = 0;
  st = cfb_chain(c, 0, rd32(h + 0x30), SIZE_MAX, arena, &buf, &blen, "directory", err);
  if (st != SC_OK) return st;
  c->dir = buf;
  c->n_dir = (uint32_t)(blen / CFB_DIRENT);
  if (c->n_dir == 0 || c->dir[0x42] != CFB_TYPE_ROOT) {
    sc_err_set(err, "compound file: the directory has no root entry");
    return SC_INVALID_ARGUMENT;
  }

  uint32_t first_minifat = rd32(h + 0x3C);
  if (first_minifat != CFB_ENDOFCHAIN && first_minifat != CFB_FREESECT) {
    st = cfb_chain(c, 0, first_minifat, SIZE_MAX, arena, &buf, &blen, "MiniFAT", err);
    if (st != SC_OK) return st;
    c->n_minifat = (uint32_t)(blen / 4);
    c->minifat = sc_arena_calloc(arena, c->n_minifat ? c->n_minifat : 1, sizeof *c->minifat);
    if (c->minifat == NULL) return oom(err);
    for (uint32_t i = 0; i < c->n_minifat; i++)
      c->minifat[i] = rd32(buf + 4 * (size_t)i);
  }

  uint64_t mini_size = cfb_entry_size(c, c->dir);
  if (mini_size > 0) {
    if (mini_size > len) {
      sc_err_set(err, "compound file: mini stream of %llu bytes is larger than the file (corrupt)",
                 (unsigned long long)mini_size);
      return SC_INVALID_ARGUMENT;
    }
    st = cfb_chain(c, 0, rd32(c->dir + 0x74), (size_t)mini_size, arena, &c->mini, &c->mini_len, "mini stream", err);
    if (st != SC_OK) return st;
  }

  st = cfb_index_root(c, arena, err);
  if (st != SC_OK) return st;
  *out = c;
  return SC_OK;
}

static const uint8_t *cfb_find(const offcrypto_cfb_t *c, const char *name) {
  for (uint32_t i = 0; i < c->n_streams; i++) {
    const uint8_t *e = c->dir + (size_t)c->streams[i] * CFB_DIRENT;
    if (cfb_name_eq(e, name)) return e;
  }
  return NULL;
}

int offcrypto_cfb_has(const offcrypto_cfb_t *cfb, const char *name) { return cfb_find(cfb, name) != NULL; }

sc_status_t offcrypto_cfb_read(const offcrypto_cfb_t *cfb, const char *name, sc_arena_t *arena, uint8_t **out,
                               size_t *out_len, sc_err_t *err) {
  const uint8_t *e = cfb_find(cfb, name);
  if (e == NULL) {
    sc_err_set(err, "compound file: no stream named %s", name);
    return SC_NOT_FOUND;
  }
  uint64_t size = cfb_entry_size(cfb, e);
  if (size > cfb->len) {
    sc_err_set(err, "compound file: stream %s declares %llu bytes, more than the whole file (corrupt)", name,
               (unsigned long long)size);
    return SC_INVALID_ARGUMENT;
  }
  int mini = size < CFB_MINI_CUTOFF;
  if (mini && size > 0 && cfb->mini == NULL) {
    sc_err_set(err, "compound file: stream %s lives in a mini stream the file does not have", name);
    return SC_INVALID_ARGUMENT;
  }
  return cfb_chain(cfb, mini, rd32(e + 0x74), (size_t)size, arena, out, out_len, name, err);
}

/* ---- Hashes and ciphers ---------------------------------------------------- */

static const char *hash_name(offcrypto_hash_t h) {
  switch (h) {
  case OFFCRYPTO_SHA1: return "SHA1";
  case OFFCRYPTO_SHA256: return "SHA256";
  case OFFCRYPTO_SHA384: return "SHA384";
  case OFFCRYPTO_SHA512: return "SHA512";
  }
  return NULL;
}

static size_t hash_size(offcrypto_hash_t h) {
  switch (h) {
  case OFFCRYPTO_SHA1: return 20;
  case OFFCRYPTO_SHA256: return 32;
  case OFFCRYPTO_SHA384: return 48;
  case OFFCRYPTO_SHA512: return 64;
  }
  return 0;
}

/* out = H(a || b); returns 0 or -1. */
static int digest2(offcrypto_hash_t h, const uint8_t *a, size_t an, const uint8_t *b, size_t bn,
                   uint8_t out[OFFCRYPTO_MAX_HASH]) {
  EVP_MD *md = EVP_MD_fetch(NULL, hash_name(h), NULL);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = md != NULL && ctx != NULL && EVP_DigestInit_ex2(ctx, md, NULL) && EVP_DigestUpdate(ctx, a, an) &&
           EVP_DigestUpdate(ctx, b, bn) && EVP_DigestFinal_ex(ctx, out, NULL);
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md);
  return ok ? 0 : -1;
}

/* AES with a 16/24/32-byte key, no padding; n must be a multiple of 16. */
static int aes_decrypt(int cbc, const uint8_t *key, size_t key_len, const uint8_t *iv, const uint8_t *in, size_t n,
                       uint8_t *out) {
  const EVP_CIPHER *ciph = NULL;
  switch (key_len) {
  case 16: ciph = cbc ? EVP_aes_128_cbc() : EVP_aes_128_ecb(); break;
  case 24: ciph = cbc ? EVP_aes_192_cbc() : EVP_aes_192_ecb(); break;
  case 32: ciph = cbc ? EVP_aes_256_cbc() : EVP_aes_256_ecb(); break;
  default: return -1;
  }
  if (n % OFFCRYPTO_BLOCK != 0 || n > INT_MAX) return -1;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int outl = 0, fin = 0;
  int ok = ctx != NULL && EVP_DecryptInit_ex2(ctx, ciph, key, cbc ? iv : NULL, NULL) &&
           EVP_CIPHER_CTX_set_padding(ctx, 0) && EVP_DecryptUpdate(ctx, out, &outl, in, (int)n) &&
           EVP_DecryptFinal_ex(ctx, out + outl, &fin);
  EVP_CIPHER_CTX_free(ctx);
  return ok && (size_t)outl + (size_t)fin == n ? 0 : -1;
}

/* MS-OFFCRYPTO: a value cut to `want` bytes, or padded with 0x36 up to it. */
static void fit(const uint8_t *src, size_t n, size_t want, uint8_t *dst) {
  size_t k = n < want ? n : want;
  memcpy(dst, src, k);
  if (k < want) memset(dst + k, 0x36, want - k);
}

/* UTF-8 to UTF-16LE; -1 on invalid UTF-8 or more than `max_chars` characters. */
static int utf8_to_utf16le(const char *s, uint8_t *out, size_t cap, size_t *out_len, size_t max_chars) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = 0, chars = 0;
  while (*p) {
    uint32_t cp;
    int extra;
    if (*p < 0x80)
      cp = *p, extra = 0;
    else if ((*p & 0xE0) == 0xC0)
      cp = *p & 0x1Fu, extra = 1;
    else if ((*p & 0xF0) == 0xE0)
      cp = *p & 0x0Fu, extra = 2;
    else if ((*p & 0xF8) == 0xF0)
      cp = *p & 0x07u, extra = 3;
    else
      return -1;
    p++;
    for (int i = 0; i < extra; i++, p++) {
      if ((*p & 0xC0) != 0x80) return -1;
      cp = (cp << 6) | (*p & 0x3Fu);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return -1;
    if (++chars > max_chars) return -1;
    if (cp >= 0x10000) {
      if (cap - n < 4) return -1;
      cp -= 0x10000;
      uint32_t hi = 0xD800 + (cp >> 10), lo = 0xDC00 + (cp & 0x3FF);
      out[n++] = (uint8_t)hi, out[n++] = (uint8_t)(hi >> 8), out[n++] = (uint8_t)lo, out[n++] = (uint8_t)(lo >> 8);
    } else {
      if (cap - n < 2) return -1;
      out[n++] = (uint8_t)cp, out[n++] = (uint8_t)(cp >> 8);
    }
  }
  *out_len = n;
  return 0;
}

#define MAX_PASSWORD_CHARS 255

sc_status_t offcrypto_hash_password(offcrypto_hash_t hash, const uint8_t *salt, size_t salt_len, const char *password,
                                    uint32_t spin_count, uint8_t out[OFFCRYPTO_MAX_HASH], size_t *out_len,
                                    sc_err_t *err) {
  uint8_t pw[MAX_PASSWORD_CHARS * 4];
  size_t pw_len = 0;
  if (password == NULL || utf8_to_utf16le(password, pw, sizeof pw, &pw_len, MAX_PASSWORD_CHARS) != 0) {
    sc_err_set(err, "password is not valid UTF-8 or longer than %d characters", MAX_PASSWORD_CHARS);
    return SC_INVALID_ARGUMENT;
  }
  size_t hl = hash_size(hash);
  EVP_MD *md = hl ? EVP_MD_fetch(NULL, hash_name(hash), NULL) : NULL;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  uint8_t h[OFFCRYPTO_MAX_HASH];
  int ok = md != NULL && ctx != NULL && EVP_DigestInit_ex2(ctx, md, NULL) && EVP_DigestUpdate(ctx, salt, salt_len) &&
           EVP_DigestUpdate(ctx, pw, pw_len) && EVP_DigestFinal_ex(ctx, h, NULL);
  for (uint32_t i = 0; ok && i < spin_count; i++) {
    uint8_t le[4];
    wr32(le, i);
    ok = EVP_DigestInit_ex2(ctx, md, NULL) && EVP_DigestUpdate(ctx, le, 4) && EVP_DigestUpdate(ctx, h, hl) &&
         EVP_DigestFinal_ex(ctx, h, NULL);
  }
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md);
  OPENSSL_cleanse(pw, sizeof pw);
  if (!ok) {
    OPENSSL_cleanse(h, sizeof h);
    sc_err_set(err, "encrypted file: hashing the password failed");
    return SC_INTERNAL;
  }
  memcpy(out, h, hl);
  *out_len = hl;
  OPENSSL_cleanse(h, sizeof h);
  return SC_OK;
}

/* ---- EncryptionInfo -------------------------------------------------------- */

/* The spec allows 10,000,000 (MS-OFFCRYPTO 2.3.4.11); Excel writes 100,000.
 * Ten times that bounds the CPU one upload can demand (about a second). */
#define MAX_SPIN_COUNT 1000000u
#define MAX_ENC_FIELD 256 /* bytes of an encrypted verifier, key or HMAC field */
#define PASSWORD_URI "http://schemas.microsoft.com/office/2006/keyEncryptor/password"

typedef struct axml {
  XML_Parser p;
  sc_arena_t *arena;
  offcrypto_info_t *info;
  int in_password_encryptor;
  int have_key_data, have_password_key, have_integrity, have_encryptor;
  sc_status_t st;
  sc_err_t *err;
} axml_t;

static void axml_fail(axml_t *x, sc_status_t st, const char *what, const char *detail) {
  if (x->st != SC_OK) return;
  x->st = st;
  sc_err_set(x->err, "encrypted file: EncryptionInfo: %s%s%.64s", what, detail ? ": " : "", detail ? detail : "");
  XML_StopParser(x->p, XML_FALSE);
}

static const char *local_name(const char *name) {
  const char *c = strrchr(name, ':');
  return c ? c + 1 : name;
}

static const char *attr(const char **attrs, const char *name) {
  for (size_t i = 0; attrs[i] != NULL; i += 2)
    if (strcmp(local_name(attrs[i]), name) == 0) return attrs[i + 1];
  return NULL;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out) {
  if (s == NULL || *s == '\0') return -1;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (uint64_t)(*s - '0');
    if (v > max) return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Strict base64 (whitespace ignored, '=' only at the end) into arena memory. */
static int b64_decode(sc_arena_t *arena, const char *s, size_t max, offcrypto_bytes_t *out) {
  size_t slen = strlen(s);
  uint8_t *buf = sc_arena_alloc(arena, slen / 4 * 3 + 3);
  if (buf == NULL) return -1;
  size_t n = 0, pad = 0, chars = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') continue;
    chars++;
    if (*p == '=') {
      pad++;
      continue;
    }
    int v = b64_value(*p);
    if (v < 0 || pad) return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[n++] = (uint8_t)(acc >> bits);
    }
  }
  if (chars % 4 != 0 || pad > 2 || (acc & ((1u << bits) - 1)) != 0 || n == 0 || n > max) return -1;
  out->p = buf;
  out->n = n;
  return 0;
}

static int field(axml_t *x, const char **attrs, const char *name, size_t max, offcrypto_bytes_t *out) {
  const char *v = attr(attrs, name);
  if (v == NULL) {
    axml_fail(x, SC_INVALID_ARGUMENT, "missing attribute", name);
    return -1;
  }
  if (b64_decode(x->arena, v, max, out) != 0) {
    axml_fail(x, SC_INVALID_ARGUMENT, "bad base64 or length in attribute", name);
    return -1;
  }
  return 0;
}

/* The attributes keyData and encryptedKey share (CT_KeyData, CT_PasswordKeyEncryptor). */
static int parse_params(axml_t *x, const char **attrs, offcrypto_params_t *pr) {
  uint32_t salt_size = 0;
  if (parse_u32(attr(attrs, "saltSize"), 65536, &salt_size) != 0 ||
      parse_u32(attr(attrs, "blockSize"), 4096, &pr->block_size) != 0 ||
      parse_u32(attr(attrs, "keyBits"), 65536, &pr->key_bits) != 0 ||
      parse_u32(attr(attrs, "hashSize"), 4096, &pr->hash_size) != 0) {
    axml_fail(x, SC_INVALID_ARGUMENT, "missing or bad saltSize/blockSize/keyBits/hashSize", NULL);
    return -1;
  }
  const char *alg = attr(attrs, "cipherAlgorithm"), *chain = attr(attrs, "cipherChaining"),
             *hash = attr(attrs, "hashAlgorithm");
  if (alg == NULL || chain == NULL || hash == NULL) {
    axml_fail(x, SC_INVALID_ARGUMENT, "missing cipherAlgorithm/cipherChaining/hashAlgorithm", NULL);
    return -1;
  }
  if (strcmp(alg, "AES") != 0) return axml_fail(x, SC_INVALID_ARGUMENT, "unsupported cipher", alg), -1;
  if (strcmp(chain, "ChainingModeCBC") != 0)
    return axml_fail(x, SC_INVALID_ARGUMENT, "unsupported cipher chaining", chain), -1;
  if (strcmp(hash, "SHA1") == 0 || strcmp(hash, "SHA-1") == 0)
    pr->hash = OFFCRYPTO_SHA1;
  else if (strcmp(hash, "SHA256") == 0)
    pr->hash = OFFCRYPTO_SHA256;
  else if (strcmp(hash, "SHA384") == 0)
    pr->hash = OFFCRYPTO_SHA384;
  else if (strcmp(hash, "SHA512") == 0)
    pr->hash = OFFCRYPTO_SHA512;
  else
    return axml_fail(x, SC_INVALID_ARGUMENT, "unsupported hash algorithm", hash), -1;
  if (pr->block_size != OFFCRYPTO_BLOCK) return axml_fail(x, SC_INVALID_ARGUMENT, "AES needs blockSize 16", NULL), -1;
  if (pr->key_bits != 128 && pr->key_bits != 192 && pr->key_bits != 256)
    return axml_fail(x, SC_INVALID_ARGUMENT, "AES needs keyBits 128, 192 or 256", NULL), -1;
  if (pr->hash_size != hash_size(pr->hash))
    return axml_fail(x, SC_INVALID_ARGUMENT, "hashSize does not match hashAlgorithm", hash), -1;
  if (field(x, attrs, "saltValue", MAX_ENC_FIELD, &pr->salt) != 0) return -1;
  if (pr->salt.n != salt_size) return axml_fail(x, SC_INVALID_ARGUMENT, "saltValue is not saltSize bytes", NULL), -1;
  return 0;
}

/* An encrypted field: whole cipher blocks, at least `min` bytes. */
static int enc_field(axml_t *x, const char **attrs, const char *name, size_t min, offcrypto_bytes_t *out) {
  if (field(x, attrs, name, MAX_ENC_FIELD, out) != 0) return -1;
  if (out->n % OFFCRYPTO_BLOCK != 0 || out->n < min) {
    axml_fail(x, SC_INVALID_ARGUMENT, "encrypted value has a bad length", name);
    return -1;
  }
  return 0;
}

static void XMLCALL axml_start(void *ud, const char *name, const char **attrs) {
  axml_t *x = ud;
  offcrypto_info_t *in = x->info;
  const char *ln = local_name(name);
  if (strcmp(ln, "keyData") == 0 && !x->have_key_data) {
    if (parse_params(x, attrs, &in->key_data) == 0) x->have_key_data = 1;
  } else if (strcmp(ln, "dataIntegrity") == 0 && !x->have_integrity) {
    /* Lengths are checked against keyData's hash size once it is known. */
    if (field(x, attrs, "encryptedHmacKey", MAX_ENC_FIELD, &in->enc_hmac_key) == 0 &&
        field(x, attrs, "encryptedHmacValue", MAX_ENC_FIELD, &in->enc_hmac_value) == 0)
      x->have_integrity = 1;
  } else if (strcmp(ln, "keyEncryptor") == 0) {
    const char *uri = attr(attrs, "uri");
    x->have_encryptor = 1;
    x->in_password_encryptor = uri != NULL && strcmp(uri, PASSWORD_URI) == 0;
  } else if (strcmp(ln, "encryptedKey") == 0 && x->in_password_encryptor && !x->have_password_key) {
    offcrypto_params_t *pk = &in->password_key;
    if (parse_params(x, attrs, pk) != 0) return;
    if (parse_u32(attr(attrs, "spinCount"), MAX_SPIN_COUNT, &in->spin_count) != 0) {
      axml_fail(x, SC_INVALID_ARGUMENT, "missing or bad spinCount (at most 10,000,000)", NULL);
      return;
    }
    if (enc_field(x, attrs, "encryptedVerifierHashInput", pk->salt.n, &in->enc_verifier_hash_input) != 0 ||
        enc_field(x, attrs, "encryptedVerifierHashValue", pk->hash_size, &in->enc_verifier_hash_value) != 0 ||
        enc_field(x, attrs, "encryptedKeyValue", pk->key_bits / 8, &in->enc_key_value) != 0)
      return;
    x->have_password_key = 1;
  }
}

static void XMLCALL axml_end(void *ud, const char *name) {
  axml_t *x = ud;
  if (strcmp(local_name(name), "keyEncryptor") == 0) x->in_password_encryptor = 0;
}

static void XMLCALL axml_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                                 int has_internal_subset) {
  (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
  axml_fail(ud, SC_INVALID_ARGUMENT, "DOCTYPE is not allowed", NULL);
}

static sc_status_t parse_agile(const uint8_t *xml, size_t len, sc_arena_t *arena, offcrypto_info_t *in, sc_err_t *err) {
  if (len > INT_MAX) {
    sc_err_set(err, "encrypted file: EncryptionInfo is too large");
    return SC_INVALID_ARGUMENT;
  }
  axml_t x = {.arena = arena, .info = in, .st = SC_OK, .err = err};
  x.p = XML_ParserCreate(NULL);
  if (x.p == NULL) return oom(err);
  XML_SetUserData(x.p, &x);
  XML_SetElementHandler(x.p, axml_start, axml_end);
  XML_SetStartDoctypeDeclHandler(x.p, axml_doctype);
  enum XML_Status xs = XML_Parse(x.p, (const char *)xml, (int)len, 1);
  if (xs != XML_STATUS_OK && x.st == SC_OK) {
    sc_err_set(err, "encrypted file: EncryptionInfo XML is malformed: %s at line %lu",
               XML_ErrorString(XML_GetErrorCode(x.p)), (unsigned long)XML_GetCurrentLineNumber(x.p));
    x.st = SC_INVALID_ARGUMENT;
  }
  XML_ParserFree(x.p);
  if (x.st != SC_OK) return x.st;
  if (!x.have_key_data) {
    sc_err_set(err, "encrypted file: EncryptionInfo has no keyData");
    return SC_INVALID_ARGUMENT;
  }
  if (!x.have_password_key) {
    sc_err_set(err, x.have_encryptor ? "encrypted file: encrypted for a certificate, not a password: not supported"
                                     : "encrypted file: EncryptionInfo has no password key encryptor");
    return SC_INVALID_ARGUMENT;
  }
  if (x.have_integrity) {
    size_t hs = in->key_data.hash_size;
    if (in->enc_hmac_key.n % OFFCRYPTO_BLOCK || in->enc_hmac_key.n < hs || in->enc_hmac_value.n % OFFCRYPTO_BLOCK ||
        in->enc_hmac_value.n < hs) {
      sc_err_set(err, "encrypted file: EncryptionInfo: dataIntegrity values have bad lengths");
      return SC_INVALID_ARGUMENT;
    }
  } else {
    /* Optional in the schema: without it there is nothing to check the
     * package against, and decryption goes on as Office does. */
    in->enc_hmac_key.n = in->enc_hmac_value.n = 0;
  }
  if (in->enc_key_value.n < in->key_data.key_bits / 8) {
    sc_err_set(err, "encrypted file: EncryptionInfo: encryptedKeyValue is shorter than keyData's key");
    return SC_INVALID_ARGUMENT;
  }
  return SC_OK;
}

static sc_status_t parse_standard(const uint8_t *d, size_t len, offcrypto_info_t *in, sc_err_t *err) {
  const uint32_t f_cryptoapi = 0x04, f_external = 0x10, f_aes = 0x20;
  if (len < 12) goto short_;
  uint32_t header_size = rd32(d + 8);
  if (header_size < 32 || header_size > len - 12) goto short_;
  const uint8_t *hd = d + 12;
  in->alg_id = rd32(hd + 8);
  in->alg_id_hash = rd32(hd + 12);
  in->key_bits = rd32(hd + 16);
  in->provider_type = rd32(hd + 20);
  const uint8_t *v = hd + header_size;
  size_t vlen = len - 12 - header_size;
  if (vlen < 4 + 16 + 16 + 4 + 32) goto short_;
  if ((in->flags & f_external) || !(in->flags & f_cryptoapi)) {
    sc_err_set(err, "encrypted file: Standard encryption with external or non-CryptoAPI keys is not supported");
    return SC_INVALID_ARGUMENT;
  }
  if (!(in->flags & f_aes)) {
    sc_err_set(err, "encrypted file: RC4 encryption is not supported (only AES)");
    return SC_INVALID_ARGUMENT;
  }
  uint32_t bits;
  switch (in->alg_id) {
  case 0:
  case 0x660E: bits = 128; break;
  case 0x660F: bits = 192; break;
  case 0x6610: bits = 256; break;
  default: sc_err_set(err, "encrypted file: unsupported cipher algorithm 0x%x", in->alg_id); return SC_INVALID_ARGUMENT;
  }
  if (in->key_bits == 0) in->key_bits = bits;
  if (in->key_bits != bits || (in->alg_id_hash != 0 && in->alg_id_hash != 0x8004)) {
    sc_err_set(err, "encrypted file: unsupported key size %u or hash algorithm 0x%x", in->key_bits, in->alg_id_hash);
    return SC_INVALID_ARGUMENT;
  }
  if (rd32(v) != 16 || rd32(v + 36) != 20) {
    sc_err_set(err, "encrypted file: EncryptionVerifier has a salt or hash size other than 16/20");
    return SC_INVALID_ARGUMENT;
  }
  memcpy(in->salt, v + 4, 16);
  memcpy(in->enc_verifier, v + 20, 16);
  memcpy(in->enc_verifier_hash, v + 40, 32);
  in->spin_count = 50000;
  return SC_OK;
short_:
  sc_err_set(err, "encrypted file: EncryptionInfo is truncated (%zu bytes)", len);
  return SC_INVALID_ARGUMENT;
}

sc_status_t offcrypto_parse_info(const uint8_t *data, size_t len, sc_arena_t *arena, offcrypto_info_t *info,
                                 sc_err_t *err) {
  memset(info, 0, sizeof *info);
  if (len < 8) {
    sc_err_set(err, "encrypted file: EncryptionInfo is truncated (%zu bytes)", len);
    return SC_INVALID_ARGUMENT;
  }
  info->major = rd16(data);
  info->minor = rd16(data + 2);
  info->flags = rd32(data + 4);
  if (info->major == 4 && info->minor == 4) {
    info->kind = OFFCRYPTO_AGILE;
    return parse_agile(data + 8, len - 8, arena, info, err);
  }
  if (info->minor == 2 && info->major >= 2 && info->major <= 4) {
    info->kind = OFFCRYPTO_STANDARD;
    return parse_standard(data, len, info, err);
  }
  if (info->minor == 3 && (info->major == 3 || info->major == 4))
    sc_err_set(err, "encrypted file: Extensible encryption is not supported");
  else
    sc_err_set(err, "encrypted file: unknown EncryptionInfo version %u.%u", info->major, info->minor);
  return SC_INVALID_ARGUMENT;
}

/* ---- Unlocking ------------------------------------------------------------- */

static const uint8_t bk_verifier_input[8] = {0xFE, 0xA7, 0xD2, 0x76, 0x3B, 0x4B, 0x9E, 0x79};
static const uint8_t bk_verifier_value[8] = {0xD7, 0xAA, 0x0F, 0x6D, 0x30, 0x61, 0x34, 0x4E};
static const uint8_t bk_key_value[8] = {0x14, 0x6E, 0x0B, 0xE7, 0xAB, 0xAC, 0xD0, 0xD6};
static const uint8_t bk_hmac_key[8] = {0x5F, 0xB2, 0xAD, 0x01, 0x0C, 0xB9, 0xE1, 0xF6};
static const uint8_t bk_hmac_value[8] = {0xA0, 0x67, 0x7F, 0x02, 0xB2, 0x2C, 0x84, 0x33};

static sc_status_t password_incorrect(sc_err_t *err) {
  sc_err_set(err, "password incorrect");
  return SC_FAILED_PRECONDITION;
}

static sc_status_t crypto_failed(sc_err_t *err) {
  sc_err_set(err, "encrypted file: decryption failed inside the crypto library");
  return SC_INTERNAL;
}

/* Agile key for a block key: H(H(n) || block key), cut or padded to key_len. */
static int agile_key(offcrypto_hash_t h, const uint8_t *hn, size_t hn_len, const uint8_t bk[8], size_t key_len,
                     uint8_t *out) {
  uint8_t d[OFFCRYPTO_MAX_HASH];
  if (digest2(h, hn, hn_len, bk, 8, d) != 0) return -1;
  fit(d, hash_size(h), key_len, out);
  OPENSSL_cleanse(d, sizeof d);
  return 0;
}

static sc_status_t unlock_agile(const offcrypto_info_t *in, const char *password, offcrypto_keys_t *k, sc_err_t *err) {
  const offcrypto_params_t *pk = &in->password_key;
  sc_status_t st =
      offcrypto_hash_password(pk->hash, pk->salt.p, pk->salt.n, password, in->spin_count, k->hn, &k->hn_len, err);
  if (st != SC_OK) return st;
  k->key_len = pk->key_bits / 8;
  uint8_t iv[OFFCRYPTO_BLOCK], buf[MAX_ENC_FIELD], want[OFFCRYPTO_MAX_HASH];
  fit(pk->salt.p, pk->salt.n, OFFCRYPTO_BLOCK, iv);
  if (agile_key(pk->hash, k->hn, k->hn_len, bk_verifier_input, k->key_len, k->key_verifier_input) != 0 ||
      agile_key(pk->hash, k->hn, k->hn_len, bk_verifier_value, k->key_len, k->key_verifier_value) != 0 ||
      agile_key(pk->hash, k->hn, k->hn_len, bk_key_value, k->key_len, k->key_key_value) != 0)
    return crypto_failed(err);

  /* The verifier: decrypt the random input and check it against its hash. */
  const offcrypto_bytes_t *vi = &in->enc_verifier_hash_input, *vv = &in->enc_verifier_hash_value;
  if (aes_decrypt(1, k->key_verifier_input, k->key_len, iv, vi->p, vi->n, buf) != 0) return crypto_failed(err);
  k->verifier_len = pk->salt.n < OFFCRYPTO_MAX_HASH ? pk->salt.n : OFFCRYPTO_MAX_HASH;
  memcpy(k->verifier, buf, k->verifier_len);
  if (digest2(pk->hash, buf, pk->salt.n, NULL, 0, want) != 0) return crypto_failed(err);
  if (aes_decrypt(1, k->key_verifier_value, k->key_len, iv, vv->p, vv->n, buf) != 0) return crypto_failed(err);
  int match = CRYPTO_memcmp(buf, want, pk->hash_size) == 0;
  OPENSSL_cleanse(buf, sizeof buf);
  if (!match) return password_incorrect(err);

  const offcrypto_bytes_t *kv = &in->enc_key_value;
  if (aes_decrypt(1, k->key_key_value, k->key_len, iv, kv->p, kv->n, buf) != 0) return crypto_failed(err);
  k->secret_len = in->key_data.key_bits / 8;
  memcpy(k->secret, buf, k->secret_len);
  OPENSSL_cleanse(buf, sizeof buf);
  return SC_OK;
}

static sc_status_t unlock_standard(const offcrypto_info_t *in, const char *password, offcrypto_keys_t *k,
                                   sc_err_t *err) {
  sc_status_t st = offcrypto_hash_password(OFFCRYPTO_SHA1, in->salt, sizeof in->salt, password, in->spin_count, k->hn,
                                           &k->hn_len, err);
  if (st != SC_OK) return st;
  /* hfinal = SHA1(H(n) || LE32(block 0)), then CryptDeriveKey's ipad/opad. */
  uint8_t zero[4] = {0}, hfinal[OFFCRYPTO_MAX_HASH], pad[64], x[2 * OFFCRYPTO_MAX_HASH];
  if (digest2(OFFCRYPTO_SHA1, k->hn, k->hn_len, zero, 4, hfinal) != 0) return crypto_failed(err);
  for (int round = 0; round < 2; round++) {
    memset(pad, round == 0 ? 0x36 : 0x5C, sizeof pad);
    for (size_t i = 0; i < 20; i++)
      pad[i] ^= hfinal[i];
    if (digest2(OFFCRYPTO_SHA1, pad, sizeof pad, NULL, 0, x + 20 * round) != 0) return crypto_failed(err);
  }
  k->secret_len = in->key_bits / 8;
  memcpy(k->secret, x, k->secret_len);
  OPENSSL_cleanse(hfinal, sizeof hfinal);
  OPENSSL_cleanse(pad, sizeof pad);
  OPENSSL_cleanse(x, sizeof x);

  uint8_t vh[32], want[OFFCRYPTO_MAX_HASH];
  if (aes_decrypt(0, k->secret, k->secret_len, NULL, in->enc_verifier, 16, k->verifier) != 0 ||
      aes_decrypt(0, k->secret, k->secret_len, NULL, in->enc_verifier_hash, 32, vh) != 0)
    return crypto_failed(err);
  k->verifier_len = 16;
  if (digest2(OFFCRYPTO_SHA1, k->verifier, 16, NULL, 0, want) != 0) return crypto_failed(err);
  if (CRYPTO_memcmp(vh, want, 20) != 0) return password_incorrect(err);
  return SC_OK;
}

sc_status_t offcrypto_unlock(const offcrypto_info_t *info, const char *password, offcrypto_keys_t *keys,
                             sc_err_t *err) {
  memset(keys, 0, sizeof *keys);
  if (password == NULL || *password == '\0') {
    sc_err_set(err, "file is encrypted; password required");
    return SC_FAILED_PRECONDITION;
  }
  if (info->kind == OFFCRYPTO_AGILE) return unlock_agile(info, password, keys, err);
  if (info->kind == OFFCRYPTO_STANDARD) return unlock_standard(info, password, keys, err);
  sc_err_set(err, "encrypted file: unknown encryption");
  return SC_INVALID_ARGUMENT;
}

/* H(keyData.salt || suffix) fitted to the block size: segment IVs and the
 * IVs of the HMAC key and value. */
static size_t agile_iv(const offcrypto_info_t *in, const uint8_t *suffix, size_t suffix_len,
                       uint8_t iv[OFFCRYPTO_MAX_HASH]) {
  uint8_t d[OFFCRYPTO_MAX_HASH];
  const offcrypto_params_t *kd = &in->key_data;
  if (digest2(kd->hash, kd->salt.p, kd->salt.n, suffix, suffix_len, d) != 0) return 0;
  fit(d, kd->hash_size, kd->block_size, iv);
  return kd->block_size;
}

size_t offcrypto_agile_segment_iv(const offcrypto_info_t *info, uint32_t segment, uint8_t iv[OFFCRYPTO_MAX_HASH]) {
  if (info->kind != OFFCRYPTO_AGILE) return 0;
  uint8_t le[4];
  wr32(le, segment);
  return agile_iv(info, le, 4, iv);
}

static sc_status_t check_hmac(const offcrypto_info_t *in, const offcrypto_keys_t *k, const uint8_t *pkg, size_t pkg_len,
                              sc_err_t *err) {
  const offcrypto_params_t *kd = &in->key_data;
  uint8_t iv[OFFCRYPTO_MAX_HASH], key[MAX_ENC_FIELD], want[MAX_ENC_FIELD], mac[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  if (agile_iv(in, bk_hmac_key, 8, iv) == 0 ||
      aes_decrypt(1, k->secret, k->secret_len, iv, in->enc_hmac_key.p, in->enc_hmac_key.n, key) != 0 ||
      agile_iv(in, bk_hmac_value, 8, iv) == 0 ||
      aes_decrypt(1, k->secret, k->secret_len, iv, in->enc_hmac_value.p, in->enc_hmac_value.n, want) != 0 ||
      EVP_Q_mac(NULL, "HMAC", NULL, hash_name(kd->hash), NULL, key, kd->hash_size, pkg, pkg_len, mac, sizeof mac,
                &mac_len) == NULL ||
      mac_len != kd->hash_size) {
    OPENSSL_cleanse(key, sizeof key);
    return crypto_failed(err);
  }
  int match = CRYPTO_memcmp(mac, want, kd->hash_size) == 0;
  OPENSSL_cleanse(key, sizeof key);
  if (!match) {
    sc_err_set(err, "encrypted package failed its integrity check (tampered or corrupt)");
    return SC_DATA_LOSS;
  }
  return SC_OK;
}

sc_status_t offcrypto_decrypt_package(const offcrypto_info_t *info, const offcrypto_keys_t *keys, const uint8_t *pkg,
                                      size_t pkg_len, sc_arena_t *arena, uint8_t **plain, size_t *plain_len,
                                      sc_err_t *err) {
  if (pkg_len < 8) {
    sc_err_set(err, "encrypted file: EncryptedPackage is shorter than its size field (truncated)");
    return SC_INVALID_ARGUMENT;
  }
  if (info->kind == OFFCRYPTO_AGILE && info->enc_hmac_key.n > 0) {
    sc_status_t st = check_hmac(info, keys, pkg, pkg_len, err);
    if (st != SC_OK) return st;
  }
  /* StreamSize is 8 bytes, but writers treat the upper half as reserved
   * (some fill it with garbage) and readers use the lower 32 bits. */
  size_t size = rd32(pkg);
  size_t body = pkg_len - 8, usable = body - body % OFFCRYPTO_BLOCK;
  if (size > usable) {
    sc_err_set(err, "encrypted file: EncryptedPackage declares %zu bytes but holds %zu (truncated or corrupt)", size,
               usable);
    return SC_INVALID_ARGUMENT;
  }
  size_t need = (size + OFFCRYPTO_BLOCK - 1) / OFFCRYPTO_BLOCK * OFFCRYPTO_BLOCK;
  uint8_t *out = sc_arena_alloc(arena, need ? need : 1);
  if (out == NULL) return oom(err);
  if (info->kind == OFFCRYPTO_AGILE) {
    for (size_t off = 0, seg = 0; off < need; off += OFFCRYPTO_SEGMENT, seg++) {
      uint8_t iv[OFFCRYPTO_MAX_HASH];
      size_t n = need - off < OFFCRYPTO_SEGMENT ? need - off : OFFCRYPTO_SEGMENT;
      if (seg > UINT32_MAX || offcrypto_agile_segment_iv(info, (uint32_t)seg, iv) == 0 ||
          aes_decrypt(1, keys->secret, keys->secret_len, iv, pkg + 8 + off, n, out + off) != 0)
        return crypto_failed(err);
    }
  } else if (need > 0 && aes_decrypt(0, keys->secret, keys->secret_len, NULL, pkg + 8, need, out) != 0) {
    return crypto_failed(err);
  }
  *plain = out;
  *plain_len = size;
  return SC_OK;
}

/* ---- The whole file ---------------------------------------------------------- */

sc_status_t offcrypto_decrypt(const uint8_t *data, size_t len, const char *password, sc_arena_t *arena, uint8_t **plain,
                              size_t *plain_len, sc_err_t *err) {
  offcrypto_cfb_t *cfb = NULL;
  sc_status_t st = offcrypto_cfb_open(data, len, arena, &cfb, err);
  if (st != SC_OK) return st;
  if (!offcrypto_cfb_has(cfb, "EncryptionInfo") || !offcrypto_cfb_has(cfb, "EncryptedPackage")) {
    if (offcrypto_cfb_has(cfb, "Workbook") || offcrypto_cfb_has(cfb, "Book"))
      sc_err_set(err, "a legacy Excel 97-2003 workbook (.xls) is not supported: save it as .xlsx and import that");
    else if (offcrypto_cfb_has(cfb, "WordDocument"))
      sc_err_set(err, "a Word document, not a spreadsheet");
    else
      sc_err_set(err, "compound file holds no encrypted package (no EncryptionInfo/EncryptedPackage streams)");
    return SC_INVALID_ARGUMENT;
  }
  uint8_t *info_buf = NULL, *pkg = NULL;
  size_t info_len = 0, pkg_len = 0;
  offcrypto_info_t info;
  offcrypto_keys_t keys;
  if ((st = offcrypto_cfb_read(cfb, "EncryptionInfo", arena, &info_buf, &info_len, err)) != SC_OK ||
      (st = offcrypto_cfb_read(cfb, "EncryptedPackage", arena, &pkg, &pkg_len, err)) != SC_OK ||
      (st = offcrypto_parse_info(info_buf, info_len, arena, &info, err)) != SC_OK)
    return st;
  st = offcrypto_unlock(&info, password, &keys, err);
  if (st == SC_OK) st = offcrypto_decrypt_package(&info, &keys, pkg, pkg_len, arena, plain, plain_len, err);
  OPENSSL_cleanse(&keys, sizeof keys);
  return st;
}
