/* XLSX statements: the workbook's sheets as physical rows of cells for the
 * table engine (table.c).
 *
 * A password-protected workbook (an OLE compound file) is decrypted first
 * (offcrypto.c). The ZIP is read with libzip from memory, every entry in
 * bounded chunks that are counted as they come (declared sizes are not
 * trusted): at most XLSX_MAX_UNPACKED bytes in all and XLSX_MAX_RATIO:1 per
 * entry, else SC_RESOURCE_EXHAUSTED. The XML parts are streamed through
 * expat (DOCTYPEs refused, so no entity tricks). Each worksheet becomes a
 * compact store of its non-empty cells, so the engine's two passes rewind
 * for free; sheets are tried in order until the engine finds a transaction
 * table in one (mapping.sheet_name picks one instead).
 *
 * Numbers are handed on as exact decimal text ("-1234.5"), never through a
 * double: Excel keeps 15 significant digits, so longer values (a writer's
 * "%.17g", or a formula's 0.30000000000000004) are rounded to 15. Numbers in
 * a date format become YYYY-MM-DD from Excel serial dates, 1900 system (with
 * Lotus's phantom 1900-02-29, serial 60) or 1904 system.
 *
 * Memory: decryption, shared strings and styles live in a work arena, each
 * sheet's cells in one of their own that is dropped after the sheet is
 * tried; both are capped at what the caller's arena has left and freed on
 * return. What outlives the call (res->sheet, the engine's column names)
 * goes to the caller's arena.
 */
#include <expat.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zip.h>

#include "offcrypto.h"
#include "statement.h"

#define XLSX_MAX_UNPACKED ((uint64_t)256 << 20) /* bytes inflated from the whole archive */
#define XLSX_MAX_RATIO 200                      /* per entry, once past the grace below */
#define XLSX_RATIO_GRACE ((uint64_t)1 << 20)
#define XLSX_CHUNK 65536
#define XLSX_MAX_TEXT ((size_t)1 << 20) /* one string or cell value (Excel's own limit is 32,767 characters) */
#define XLSX_MAX_SHEETS 4096
#define XLSX_MAX_PATH 1024
#define XLSX_MAX_COLS INGEST_MAX_COLUMNS /* columns handed on; cells further right are dropped */
#define CELLS_PER_BLOCK 4096
#define ROWS_PER_CHUNK 1024
#define POOL_BLOCK 65536

enum { FMT_NUMBER = 0, FMT_DATE = 1, FMT_TIME = 2 };

/* ---- Small helpers ----------------------------------------------------------- */

static const char *local_name(const char *name) {
  const char *c = strrchr(name, ':');
  return c ? c + 1 : name;
}

static int lname_is(const char *name, const char *want) { return strcmp(local_name(name), want) == 0; }

static const char *attr(const char **attrs, const char *name) {
  for (size_t i = 0; attrs[i] != NULL; i += 2)
    if (strcmp(local_name(attrs[i]), name) == 0) return attrs[i + 1];
  return NULL;
}

static char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static int ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (lower_ascii(*a) != lower_ascii(*b)) return 0;
  return *a == *b;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
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

/* A growable text buffer with a fixed ceiling (malloc'd scratch). */
typedef struct tbuf {
  char *p;
  size_t n, cap;
} tbuf_t;

static int tbuf_add(tbuf_t *b, const char *s, size_t n) {
  if (n > XLSX_MAX_TEXT - b->n) return -1;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
  return 0;
}

/* Strings packed into arena blocks without per-string alignment. */
typedef struct pool {
  sc_arena_t *arena;
  char *cur;
  size_t left;
} pool_t;

static const char *pool_add(pool_t *pl, const char *s, size_t n) {
  if (n + 1 > pl->left) {
    size_t sz = n + 1 > POOL_BLOCK ? n + 1 : POOL_BLOCK;
    pl->cur = sc_arena_alloc(pl->arena, sz);
    if (pl->cur == NULL) return NULL;
    pl->left = sz;
  }
  char *r = pl->cur;
  memcpy(r, s, n);
  r[n] = '\0';
  pl->cur += n + 1;
  pl->left -= n + 1;
  return r;
}

/* OOXML escapes characters XML cannot carry as _xHHHH_ (Excel writes
 * _x000D_ for a carriage return, _x005F_ for a literal underscore). Decodes
 * them in place; the result is never longer. */
static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower_ascii(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static size_t unescape_x(char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (n - i >= 7 && s[i] == '_' && s[i + 1] == 'x' && s[i + 6] == '_') {
      int h0 = hexval(s[i + 2]), h1 = hexval(s[i + 3]), h2 = hexval(s[i + 4]), h3 = hexval(s[i + 5]);
      if (h0 >= 0 && h1 >= 0 && h2 >= 0 && h3 >= 0) {
        unsigned cp = (unsigned)(h0 << 12 | h1 << 8 | h2 << 4 | h3);
        if (cp != 0 && (cp < 0xD800 || cp > 0xDFFF)) {
          if (cp < 0x80)
            s[o++] = (char)cp;
          else if (cp < 0x800)
            s[o++] = (char)(0xC0 | cp >> 6), s[o++] = (char)(0x80 | (cp & 0x3F));
          else
            s[o++] = (char)(0xE0 | cp >> 12), s[o++] = (char)(0x80 | ((cp >> 6) & 0x3F)),
            s[o++] = (char)(0x80 | (cp & 0x3F));
          i += 7;
          continue;
        }
      }
    }
    s[o++] = s[i++];
  }
  return o;
}

/* ---- Numbers and dates --------------------------------------------------------- */

#define MAX_DIGITS 400

/* A decimal value as significant digits and the position of the decimal
 * point among them: digits "12345", point 2 is 12.345; point -1 is 0.012345. */
typedef struct decnum {
  int neg;
  char d[MAX_DIGITS + 2];
  int nd;
  int point;
} decnum_t;

static int decnum_parse(const char *s, decnum_t *v) {
  memset(v, 0, sizeof *v);
  while (*s == ' ')
    s++;
  if (*s == '-' || *s == '+') v->neg = *s++ == '-';
  int seen_digit = 0, seen_point = 0, point = 0;
  for (; (*s >= '0' && *s <= '9') || *s == '.'; s++) {
    if (*s == '.') {
      if (seen_point) return -1;
      seen_point = 1;
      continue;
    }
    seen_digit = 1;
    if (*s == '0' && v->nd == 0) { /* leading zero: only moves the point */
      if (seen_point) point--;
      continue;
    }
    if (v->nd == MAX_DIGITS) return -1;
    v->d[v->nd++] = *s;
    if (!seen_point) point++;
  }
  if (!seen_digit) return -1;
  if (*s == 'e' || *s == 'E') {
    s++;
    int eneg = 0;
    if (*s == '-' || *s == '+') eneg = *s++ == '-';
    if (*s < '0' || *s > '9') return -1;
    int e = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
      e = e * 10 + (*s - '0');
      if (e > 1000) return -1;
    }
    point += eneg ? -e : e;
  }
  while (*s == ' ')
    s++;
  if (*s != '\0') return -1;
  while (v->nd > 0 && v->d[v->nd - 1] == '0')
    v->nd--;
  v->point = v->nd == 0 ? 0 : point;
  if (v->nd == 0) v->neg = 0;
  return 0;
}

/* Rounds half away from zero to `sig` significant digits. */
static void decnum_round(decnum_t *v, int sig) {
  if (v->nd <= sig) return;
  int up = v->d[sig] >= '5';
  v->nd = sig;
  for (int i = sig - 1; up && i >= 0; i--) {
    if (v->d[i] == '9') {
      v->d[i] = '0';
    } else {
      v->d[i]++;
      up = 0;
    }
  }
  if (up) { /* 999.. became 1000.. */
    memmove(v->d + 1, v->d, (size_t)v->nd);
    v->d[0] = '1';
    v->nd++;
    v->point++;
    if (v->nd > sig) v->nd = sig;
  }
  while (v->nd > 0 && v->d[v->nd - 1] == '0')
    v->nd--;
}

/* Plain decimal text ("-1234.5", "0.001", "1200"); -1 when it would not fit. */
static int decnum_format(const decnum_t *v, char *out, size_t cap) {
  size_t o = 0;
#define PUT(c)                                                                                                         \
  do {                                                                                                                 \
    if (o + 1 >= cap) return -1;                                                                                       \
    out[o++] = (c);                                                                                                    \
  } while (0)
  if (v->nd == 0) {
    PUT('0');
  } else {
    if (v->neg) PUT('-');
    if (v->point <= 0) {
      PUT('0');
      PUT('.');
      for (int i = 0; i < -v->point; i++)
        PUT('0');
      for (int i = 0; i < v->nd; i++)
        PUT(v->d[i]);
    } else {
      for (int i = 0; i < v->point; i++)
        PUT(i < v->nd ? v->d[i] : '0');
      if (v->point < v->nd) {
        PUT('.');
        for (int i = v->point; i < v->nd; i++)
          PUT(v->d[i]);
      }
    }
  }
  out[o] = '\0';
  return 0;
#undef PUT
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's algorithm). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

#define EXCEL_MAX_SERIAL 2958465 /* 9999-12-31 */

/* Splits a non-negative serial into whole days and milliseconds of the day,
 * rounded to the millisecond as Excel displays it. -1 when out of range. */
static int serial_split(const decnum_t *v, int64_t *days, int64_t *ms) {
  if (v->neg) return -1;
  if (v->point > 7) return -1;
  int64_t whole = 0;
  for (int i = 0; i < v->point; i++)
    whole = whole * 10 + (i < v->nd ? v->d[i] - '0' : 0);
  /* Fraction places 1..K, summed from the last so each step divides by 10. */
  double frac = 0;
  int k_max = v->nd - v->point > 20 ? 20 : v->nd - v->point;
  for (int k = k_max; k >= 1; k--) {
    int idx = v->point + k - 1;
    frac = (frac + (idx >= 0 && idx < v->nd ? v->d[idx] - '0' : 0)) / 10;
  }
  int64_t m = (int64_t)(frac * 86400000.0 + 0.5);
  if (m >= 86400000) whole++, m -= 86400000;
  if (whole > EXCEL_MAX_SERIAL) return -1;
  *days = whole;
  *ms = m;
  return 0;
}

/* An Excel serial date as YYYY-MM-DD. Serial 60 of the 1900 system is the
 * 29th of February 1900 Lotus 1-2-3 believed in and Excel still shows: it is
 * handed on as written, and the engine rejects it as not a real date. */
static int serial_to_date(const decnum_t *v, int date1904, char out[11]) {
  int64_t days, ms;
  if (serial_split(v, &days, &ms) != 0) return -1;
  int64_t epoch; /* days from 1970-01-01 to the system's day 0 */
  if (date1904) {
    epoch = -24107; /* 1904-01-01 */
  } else if (days < 1) {
    return -1; /* Excel shows "1900-01-00" */
  } else if (days == 60) {
    memcpy(out, "1900-02-29", 11);
    return 0;
  } else {
    epoch = days < 60 ? -25568 : -25569; /* 1899-12-31, or 1899-12-30 past the phantom day */
  }
  int64_t y;
  unsigned m, d;
  civil_from_days(epoch + days, &y, &m, &d);
  if (y < 1900 || y > 9999) return -1;
  char buf[16];
  int n = snprintf(buf, sizeof buf, "%04d-%02u-%02u", (int)y, m, d);
  if (n != 10) return -1;
  memcpy(out, buf, 11);
  return 0;
}

static int serial_to_time(const decnum_t *v, char out[16]) {
  int64_t days, ms;
  if (serial_split(v, &days, &ms) != 0) return -1;
  int64_t s = (ms + 500) / 1000;
  int n = snprintf(out, 16, "%02d:%02d:%02d", (int)(s / 3600 % 24), (int)(s / 60 % 60), (int)(s % 60));
  return n == 8 ? 0 : -1;
}

/* The kind of a built-in number format (ECMA-376 18.8.30; 27-36 and 50-58
 * are the East Asian locales' dates and times). */
static int builtin_fmt_kind(uint32_t id) {
  if ((id >= 14 && id <= 17) || id == 22 || (id >= 27 && id <= 31) || id == 36 || id == 50 || id == 51 || id == 54 ||
      id == 57 || id == 58)
    return FMT_DATE;
  if ((id >= 18 && id <= 21) || (id >= 45 && id <= 47) || (id >= 32 && id <= 35) || id == 52 || id == 53 || id == 55 ||
      id == 56)
    return FMT_TIME;
  return FMT_NUMBER;
}

/* The kind of a custom format code, from its first section: a date when it
 * has day or year tokens, or months without hours or seconds (then "m" is a
 * month, not minutes); a time when it has only time tokens. Quoted text,
 * escapes, [colours]/[$-locale], "General" and 0.00E+00 do not count. */
static int custom_fmt_kind(const char *code) {
  int d = 0, y = 0, m = 0, h = 0, s = 0;
  for (const char *p = code; *p && *p != ';'; p++) {
    char c = lower_ascii(*p);
    if (*p == '"') {
      while (p[1] && p[1] != '"')
        p++;
      if (p[1]) p++;
    } else if (*p == '\\' || *p == '_' || *p == '*') {
      if (p[1]) p++;
    } else if (*p == '[') {
      /* [h], [mm], [ss]: elapsed time; anything else ([Red], [$-409], [<100]) is not a token */
      const char *q = p + 1;
      char first = lower_ascii(*q);
      int same = first == 'h' || first == 'm' || first == 's';
      while (*q && *q != ']')
        same &= lower_ascii(*q++) == first;
      if (same) h += first == 'h', m += first == 'm', s += first == 's';
      p = *q ? q : q - 1;
    } else if (c == 'g' && strncasecmp(p, "general", 7) == 0) {
      p += 6;
    } else if (c == 'e' && (p[1] == '+' || p[1] == '-')) {
      p++; /* scientific notation */
    } else if (c == 'a' && (strncasecmp(p, "am/pm", 5) == 0 || strncasecmp(p, "a/p", 3) == 0)) {
      h++;
      p += p[1] == '/' ? 2 : 4;
    } else if (c == 'd') {
      d++;
    } else if (c == 'y' || c == 'e') {
      y++;
    } else if (c == 'm') {
      m++;
    } else if (c == 'h') {
      h++;
    } else if (c == 's') {
      s++;
    }
  }
  if (d || y) return FMT_DATE;
  if (m && !h && !s) return FMT_DATE;
  if (h || s || m) return FMT_TIME;
  return FMT_NUMBER;
}

/* ---- The archive ------------------------------------------------------------- */

typedef struct sheet {
  const char *name;
  const char *rid;
  const char *target; /* part name; NULL when not a worksheet (a chart sheet) */
  int hidden;
} sheet_t;

typedef struct xlsx {
  zip_t *za;
  sc_arena_t *work; /* workbook-wide data, freed on return */
  sc_err_t *err;
  uint64_t unpacked; /* bytes inflated so far, all entries */
  char *chunk;
  int date1904;
  sheet_t *sheets;
  size_t n_sheets, cap_sheets;
  const char **sst;
  size_t n_sst, cap_sst;
  pool_t pool;
  uint8_t *xf_kind; /* FMT_* per cellXfs index */
  size_t n_xf;
} xlsx_t;

/* What every part's parser shares: the parser, and the status a handler
 * stopped it with. */
typedef struct xctx {
  XML_Parser p;
  xlsx_t *x;
  const char *part;
  sc_status_t st;
} xctx_t;

static void xfail(xctx_t *c, sc_status_t st, const char *msg) {
  if (c->st != SC_OK) return;
  c->st = st;
  sc_err_set(c->x->err, "%s", msg);
  XML_StopParser(c->p, XML_FALSE);
}

static void xoom(xctx_t *c) {
  xfail(c, SC_RESOURCE_EXHAUSTED, "XLSX: the workbook is too large to import (memory limit reached)");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                               int has_internal_subset) {
  (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
  xfail(ud, SC_INVALID_ARGUMENT, "XLSX: a part declares a DOCTYPE, which workbooks never do: refusing it");
}

static void *grow(sc_arena_t *a, void *p, size_t n, size_t *cap, size_t elem) {
  if (n < *cap) return p;
  size_t nc = *cap ? *cap * 2 : 16;
  if (nc > SIZE_MAX / elem) return NULL;
  void *q = sc_arena_alloc(a, nc * elem);
  if (q == NULL) return NULL;
  if (n) memcpy(q, p, n * elem);
  *cap = nc;
  return q;
}

/* Streams one archive entry through c's parser in XLSX_CHUNK pieces,
 * counting what it inflates against the limits. SC_NOT_FOUND (err
 * untouched) when the archive has no such entry. */
static sc_status_t read_part(xlsx_t *x, const char *name, xctx_t *c) {
  zip_int64_t idx = zip_name_locate(x->za, name, ZIP_FL_NOCASE);
  if (idx < 0) return SC_NOT_FOUND;
  c->part = name;
  zip_stat_t zs;
  zip_stat_init(&zs);
  if (zip_stat_index(x->za, (zip_uint64_t)idx, 0, &zs) != 0) {
    sc_err_set(x->err, "XLSX: entry %s is unreadable: %s", name, zip_strerror(x->za));
    return SC_INVALID_ARGUMENT;
  }
  uint64_t comp = (zs.valid & ZIP_STAT_COMP_SIZE) ? zs.comp_size : 0;
  if ((zs.valid & ZIP_STAT_SIZE) && zs.size > XLSX_MAX_UNPACKED - x->unpacked) {
    sc_err_set(x->err,
               "XLSX: entry %s declares %llu bytes unpacked, past the 256 MiB limit for a whole workbook (a ZIP bomb, "
               "or a workbook too large to import)",
               name, (unsigned long long)zs.size);
    return SC_RESOURCE_EXHAUSTED;
  }
  zip_file_t *zf = zip_fopen_index(x->za, (zip_uint64_t)idx, 0);
  if (zf == NULL) {
    sc_err_set(x->err, "XLSX: entry %s cannot be opened: %s", name, zip_strerror(x->za));
    return SC_INVALID_ARGUMENT;
  }
  sc_status_t st = SC_OK;
  uint64_t got = 0;
  for (;;) {
    zip_int64_t n = zip_fread(zf, x->chunk, XLSX_CHUNK);
    if (n < 0) {
      sc_err_set(x->err, "XLSX: entry %s is damaged: %s", name, zip_file_strerror(zf));
      st = SC_INVALID_ARGUMENT;
      break;
    }
    got += (uint64_t)n;
    x->unpacked += (uint64_t)n;
    if (x->unpacked > XLSX_MAX_UNPACKED) {
      sc_err_set(x->err, "XLSX: the workbook unpacks to more than 256 MiB (a ZIP bomb, or a workbook too large to "
                         "import): refusing it");
      st = SC_RESOURCE_EXHAUSTED;
      break;
    }
    if (got > XLSX_RATIO_GRACE && got / (comp ? comp : 1) > XLSX_MAX_RATIO) {
      sc_err_set(x->err, "XLSX: entry %s unpacks to more than %d times its compressed size (a ZIP bomb): refusing it",
                 name, XLSX_MAX_RATIO);
      st = SC_RESOURCE_EXHAUSTED;
      break;
    }
    if (XML_Parse(c->p, x->chunk, (int)n, n == 0) != XML_STATUS_OK) {
      if (c->st != SC_OK) {
        st = c->st;
      } else {
        sc_err_set(x->err, "XLSX: %s is not well-formed XML: %s at line %lu", name,
                   XML_ErrorString(XML_GetErrorCode(c->p)), (unsigned long)XML_GetCurrentLineNumber(c->p));
        st = SC_INVALID_ARGUMENT;
      }
      break;
    }
    if (n == 0) break;
  }
  zip_fclose(zf);
  return st;
}

static XML_Parser xml_new(xctx_t *c, xlsx_t *x) {
  memset(c, 0, sizeof *c);
  c->x = x;
  c->st = SC_OK;
  c->p = XML_ParserCreate(NULL);
  if (c->p == NULL) return NULL;
  XML_SetUserData(c->p, c);
  XML_SetStartDoctypeDeclHandler(c->p, on_doctype);
  return c->p;
}

/* Joins a relationship target to the folder of its source part, resolving
 * "." and ".."; an absolute target ("/xl/...") starts at the package root.
 * NULL when too long or escaping the root. */
static const char *resolve_target(sc_arena_t *a, const char *dir, const char *target) {
  char buf[XLSX_MAX_PATH];
  size_t n = 0;
  if (target[0] == '/') {
    target++;
  } else if (dir[0] != '\0') {
    size_t l = strlen(dir);
    if (l + 1 >= sizeof buf) return NULL;
    memcpy(buf, dir, l);
    n = l;
  }
  const char *p = target;
  while (*p) {
    const char *e = strchr(p, '/');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == 0 || (l == 1 && p[0] == '.')) {
      /* nothing */
    } else if (l == 2 && p[0] == '.' && p[1] == '.') {
      if (n == 0) return NULL;
      while (n > 0 && buf[n - 1] != '/')
        n--;
      if (n > 0) n--;
    } else {
      if (n + l + 2 >= sizeof buf) return NULL;
      if (n > 0) buf[n++] = '/';
      memcpy(buf + n, p, l);
      n += l;
    }
    p += l;
    if (*p == '/') p++;
  }
  return sc_arena_strndup(a, buf, n);
}

/* ---- Relationships -------------------------------------------------------------- */

typedef struct rel {
  const char *id, *type, *target;
} rel_t;

typedef struct relsctx {
  xctx_t c;
  rel_t *rels;
  size_t n, cap;
} relsctx_t;

static void XMLCALL rels_start(void *ud, const char *name, const char **attrs) {
  relsctx_t *r = ud;
  if (!lname_is(name, "Relationship")) return;
  const char *id = attr(attrs, "Id"), *type = attr(attrs, "Type"), *target = attr(attrs, "Target"),
             *mode = attr(attrs, "TargetMode");
  if (id == NULL || type == NULL || target == NULL || (mode != NULL && strcmp(mode, "External") == 0)) return;
  if (r->n >= 100000) return;
  sc_arena_t *a = r->c.x->work;
  rel_t *rels = grow(a, r->rels, r->n, &r->cap, sizeof *rels);
  rel_t rel = {sc_arena_strdup(a, id), sc_arena_strdup(a, type), sc_arena_strdup(a, target)};
  if (rels == NULL || rel.id == NULL || rel.type == NULL || rel.target == NULL) return xoom(&r->c);
  r->rels = rels;
  r->rels[r->n++] = rel;
}

/* Reads a .rels part; a missing one is an empty list. */
static sc_status_t read_rels(xlsx_t *x, const char *path, rel_t **out, size_t *n_out) {
  relsctx_t r;
  memset(&r, 0, sizeof r);
  if (xml_new(&r.c, x) == NULL) return SC_RESOURCE_EXHAUSTED;
  XML_SetStartElementHandler(r.c.p, rels_start);
  sc_status_t st = read_part(x, path, &r.c);
  XML_ParserFree(r.c.p);
  if (st == SC_NOT_FOUND) st = SC_OK;
  *out = r.rels;
  *n_out = r.n;
  return st;
}

/* ---- workbook.xml --------------------------------------------------------------- */

typedef struct wbctx {
  xctx_t c;
  int depth;
} wbctx_t;

static void XMLCALL wb_start(void *ud, const char *name, const char **attrs) {
  wbctx_t *w = ud;
  xlsx_t *x = w->c.x;
  if (w->depth++ == 0 && !lname_is(name, "workbook")) {
    xfail(&w->c, SC_INVALID_ARGUMENT, "not a spreadsheet: no worksheet found");
    return;
  }
  if (lname_is(name, "workbookPr")) {
    const char *v = attr(attrs, "date1904");
    x->date1904 = v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
  } else if (lname_is(name, "sheet")) {
    const char *nm = attr(attrs, "name"), *rid = attr(attrs, "id"), *state = attr(attrs, "state");
    if (nm == NULL || x->n_sheets >= XLSX_MAX_SHEETS) return;
    sheet_t *s = grow(x->work, x->sheets, x->n_sheets, &x->cap_sheets, sizeof *s);
    if (s == NULL) return xoom(&w->c);
    x->sheets = s;
    sheet_t sh = {sc_arena_strdup(x->work, nm), rid ? sc_arena_strdup(x->work, rid) : NULL, NULL,
                  state != NULL && strcmp(state, "visible") != 0};
    if (sh.name == NULL || (rid != NULL && sh.rid == NULL)) return xoom(&w->c);
    x->sheets[x->n_sheets++] = sh;
  }
}

static void XMLCALL wb_end(void *ud, const char *name) {
  (void)name;
  ((wbctx_t *)ud)->depth--;
}

/* ---- styles.xml ------------------------------------------------------------------- */

#define MAX_STYLES 65536

typedef struct numfmt {
  uint32_t id;
  int kind;
} numfmt_t;

typedef struct stctx {
  xctx_t c;
  int in_cellxfs;
  numfmt_t *fmts;
  size_t n_fmts, cap_fmts;
  uint32_t *xf_fmt;
  size_t n_xf, cap_xf;
} stctx_t;

static void XMLCALL st_start(void *ud, const char *name, const char **attrs) {
  stctx_t *s = ud;
  sc_arena_t *a = s->c.x->work;
  if (lname_is(name, "cellXfs")) {
    s->in_cellxfs = 1;
  } else if (lname_is(name, "numFmt")) {
    uint32_t id;
    const char *code = attr(attrs, "formatCode");
    if (code == NULL || parse_u32(attr(attrs, "numFmtId"), UINT32_MAX, &id) != 0 || s->n_fmts >= MAX_STYLES) return;
    numfmt_t *f = grow(a, s->fmts, s->n_fmts, &s->cap_fmts, sizeof *f);
    if (f == NULL) return xoom(&s->c);
    s->fmts = f;
    s->fmts[s->n_fmts++] = (numfmt_t){id, custom_fmt_kind(code)};
  } else if (lname_is(name, "xf") && s->in_cellxfs) {
    uint32_t id = 0;
    if (s->n_xf >= MAX_STYLES) return;
    if (parse_u32(attr(attrs, "numFmtId"), UINT32_MAX, &id) != 0) id = 0;
    uint32_t *xf = grow(a, s->xf_fmt, s->n_xf, &s->cap_xf, sizeof *xf);
    if (xf == NULL) return xoom(&s->c);
    s->xf_fmt = xf;
    s->xf_fmt[s->n_xf++] = id;
  }
}

static void XMLCALL st_end(void *ud, const char *name) {
  if (lname_is(name, "cellXfs")) ((stctx_t *)ud)->in_cellxfs = 0;
}

static sc_status_t read_styles(xlsx_t *x, const char *path) {
  stctx_t s;
  memset(&s, 0, sizeof s);
  if (xml_new(&s.c, x) == NULL) return SC_RESOURCE_EXHAUSTED;
  XML_SetElementHandler(s.c.p, st_start, st_end);
  sc_status_t st = read_part(x, path, &s.c);
  XML_ParserFree(s.c.p);
  if (st == SC_NOT_FOUND) return SC_OK; /* no styles: every number is a number */
  if (st != SC_OK) return st;
  x->xf_kind = sc_arena_alloc(x->work, s.n_xf ? s.n_xf : 1);
  if (x->xf_kind == NULL) return SC_RESOURCE_EXHAUSTED;
  for (size_t i = 0; i < s.n_xf; i++) {
    int kind = builtin_fmt_kind(s.xf_fmt[i]);
    for (size_t f = 0; f < s.n_fmts; f++) /* a custom format can redefine a built-in id */
      if (s.fmts[f].id == s.xf_fmt[i]) kind = s.fmts[f].kind;
    x->xf_kind[i] = (uint8_t)kind;
  }
  x->n_xf = s.n_xf;
  return SC_OK;
}

/* ---- sharedStrings.xml ---------------------------------------------------------------- */

/* The text of a string item: its <t>, or the <t> of each rich-text run <r>,
 * but not the phonetic guide <rPh> (Japanese readings) that can follow. */
typedef struct strctx {
  int in_item, in_t, in_rph;
  tbuf_t text;
} strctx_t;

static void str_start(strctx_t *s, const char *ln) {
  if (strcmp(ln, "t") == 0 && s->in_item)
    s->in_t++;
  else if (strcmp(ln, "rPh") == 0)
    s->in_rph++;
}

static void str_end(strctx_t *s, const char *ln) {
  if (strcmp(ln, "t") == 0 && s->in_t > 0)
    s->in_t--;
  else if (strcmp(ln, "rPh") == 0 && s->in_rph > 0)
    s->in_rph--;
}

static int str_chars(strctx_t *s, const char *t, int len) {
  if (!s->in_item || s->in_t == 0 || s->in_rph > 0) return 0;
  return tbuf_add(&s->text, t, (size_t)len);
}

typedef struct sstctx {
  xctx_t c;
  strctx_t s;
} sstctx_t;

static void XMLCALL sst_start(void *ud, const char *name, const char **attrs) {
  (void)attrs;
  sstctx_t *s = ud;
  const char *ln = local_name(name);
  if (strcmp(ln, "si") == 0) {
    s->s.in_item = 1;
    s->s.text.n = 0;
  } else {
    str_start(&s->s, ln);
  }
}

static void XMLCALL sst_end(void *ud, const char *name) {
  sstctx_t *s = ud;
  xlsx_t *x = s->c.x;
  const char *ln = local_name(name);
  if (strcmp(ln, "si") != 0) {
    str_end(&s->s, ln);
    return;
  }
  s->s.in_item = 0;
  size_t n = s->s.text.p ? unescape_x(s->s.text.p, s->s.text.n) : 0;
  const char **sst = grow(x->work, x->sst, x->n_sst, &x->cap_sst, sizeof *sst);
  const char *str = pool_add(&x->pool, s->s.text.p ? s->s.text.p : "", n);
  if (sst == NULL || str == NULL) return xoom(&s->c);
  x->sst = sst;
  x->sst[x->n_sst++] = str;
}

static void XMLCALL sst_chars(void *ud, const XML_Char *t, int len) {
  sstctx_t *s = ud;
  if (str_chars(&s->s, t, len) != 0)
    xfail(&s->c, SC_RESOURCE_EXHAUSTED, "XLSX: a shared string is longer than 1 MiB: refusing the workbook");
}

static sc_status_t read_sst(xlsx_t *x, const char *path) {
  sstctx_t s;
  memset(&s, 0, sizeof s);
  if (xml_new(&s.c, x) == NULL) return SC_RESOURCE_EXHAUSTED;
  XML_SetElementHandler(s.c.p, sst_start, sst_end);
  XML_SetCharacterDataHandler(s.c.p, sst_chars);
  sc_status_t st = read_part(x, path, &s.c);
  XML_ParserFree(s.c.p);
  free(s.s.text.p);
  return st == SC_NOT_FOUND ? SC_OK : st;
}

/* ---- Worksheets: the cell store ------------------------------------------------------------ */

typedef struct xcell {
  const char *text;
  uint16_t col;
  uint8_t kind;
} xcell_t;

typedef struct xrow {
  int32_t line;
  int n;
  const xcell_t *cells;
} xrow_t;

typedef struct rowchunk {
  struct rowchunk *next;
  size_t n;
  xrow_t rows[ROWS_PER_CHUNK];
} rowchunk_t;

/* A sheet's non-empty cells, row by row, in its own arena. */
typedef struct store {
  sc_arena_t *arena;
  pool_t pool;
  rowchunk_t *head, *tail;
  xcell_t *cells; /* free cells of the current block */
  size_t cells_left;
  size_t n_rows;
  rowchunk_t *rd; /* reading position */
  size_t rd_i;
  ingest_cell_t scratch[XLSX_MAX_COLS];
} store_t;

static int src_next(void *impl, int32_t *line, const ingest_cell_t **cells, int *n_cells, sc_err_t *err) {
  (void)err;
  store_t *s = impl;
  while (s->rd != NULL && s->rd_i >= s->rd->n) {
    s->rd = s->rd->next;
    s->rd_i = 0;
  }
  if (s->rd == NULL) return 0;
  const xrow_t *r = &s->rd->rows[s->rd_i++];
  int width = 0;
  for (int i = 0; i < r->n; i++)
    if (r->cells[i].col + 1 > width) width = r->cells[i].col + 1;
  for (int c = 0; c < width; c++)
    s->scratch[c] = (ingest_cell_t){"", INGEST_CELL_TEXT};
  for (int i = 0; i < r->n; i++)
    s->scratch[r->cells[i].col] = (ingest_cell_t){r->cells[i].text, (ingest_cell_kind_t)r->cells[i].kind};
  *line = r->line;
  *cells = s->scratch;
  *n_cells = width;
  return 1;
}

static int src_rewind(void *impl, sc_err_t *err) {
  (void)err;
  store_t *s = impl;
  s->rd = s->head;
  s->rd_i = 0;
  return 0;
}

typedef struct wsctx {
  xctx_t c;
  store_t *s;
  int in_data, in_row, in_c, in_v, in_is;
  int32_t line, next_line;
  xcell_t *row_cells;
  int row_n;
  int col, next_col;
  char type[12];
  uint32_t style;
  strctx_t str; /* inline strings */
  tbuf_t v;
  const char *last[XLSX_MAX_COLS]; /* each column's last value: runs of one date share one copy */
} wsctx_t;

/* A pooled copy of s, or the column's previous value when it is the same. */
static const char *intern(wsctx_t *w, const char *s, size_t n) {
  const char **last = w->col < XLSX_MAX_COLS ? &w->last[w->col] : NULL;
  if (last != NULL && *last != NULL && strncmp(*last, s, n) == 0 && (*last)[n] == '\0') return *last;
  const char *r = pool_add(&w->s->pool, s, n);
  if (last != NULL && r != NULL) *last = r;
  return r;
}

/* "AB12" -> 27 (0-based column); -1 when not a cell reference. */
static int ref_col(const char *r) {
  int col = 0, k = 0;
  for (; (*r >= 'A' && *r <= 'Z') || (*r >= 'a' && *r <= 'z'); r++, k++) {
    if (k == 3) return -1;
    col = col * 26 + (lower_ascii(*r) - 'a' + 1);
  }
  if (k == 0 || col > 16384) return -1;
  return col - 1;
}

static void XMLCALL ws_start(void *ud, const char *name, const char **attrs) {
  wsctx_t *w = ud;
  store_t *s = w->s;
  const char *ln = local_name(name);
  if (strcmp(ln, "sheetData") == 0) {
    w->in_data = 1;
  } else if (!w->in_data) {
    return;
  } else if (strcmp(ln, "row") == 0) {
    uint32_t r;
    w->line = parse_u32(attr(attrs, "r"), INT32_MAX, &r) == 0 && r > 0 ? (int32_t)r : w->next_line;
    if (s->cells_left < XLSX_MAX_COLS) {
      s->cells = sc_arena_alloc(s->arena, CELLS_PER_BLOCK * sizeof *s->cells);
      if (s->cells == NULL) return xoom(&w->c);
      s->cells_left = CELLS_PER_BLOCK;
    }
    w->in_row = 1;
    w->row_cells = s->cells;
    w->row_n = 0;
    w->next_col = 0;
  } else if (strcmp(ln, "c") == 0 && w->in_row) {
    const char *r = attr(attrs, "r"), *t = attr(attrs, "t");
    int col = r != NULL ? ref_col(r) : -1;
    w->col = col >= 0 ? col : w->next_col;
    w->type[0] = '\0';
    if (t != NULL && strlen(t) < sizeof w->type) memcpy(w->type, t, strlen(t) + 1);
    if (parse_u32(attr(attrs, "s"), UINT32_MAX, &w->style) != 0) w->style = 0;
    w->in_c = 1;
    w->v.n = 0;
    w->str.text.n = 0;
  } else if (!w->in_c) {
    return;
  } else if (strcmp(ln, "v") == 0) {
    w->in_v = 1;
  } else if (strcmp(ln, "is") == 0) {
    w->in_is = 1;
    w->str.in_item = 1;
  } else if (w->in_is) {
    str_start(&w->str, ln);
  }
}

/* The value of the cell just closed: *text (NULL: empty) and *kind. */
static int cell_value(wsctx_t *w, const char **text, uint8_t *kind) {
  xlsx_t *x = w->c.x;
  const char *raw = w->v.p ? w->v.p : "";
  size_t n = w->v.n;
  const char *t = w->type;
  *text = NULL;
  *kind = INGEST_CELL_TEXT;
  if (strcmp(t, "s") == 0) {
    uint32_t i;
    if (parse_u32(raw, UINT32_MAX, &i) == 0 && i < x->n_sst) *text = x->sst[i];
    return 0;
  }
  if (strcmp(t, "inlineStr") == 0) {
    char *p = w->str.text.p;
    if (p == NULL) return 0;
    *text = intern(w, p, unescape_x(p, w->str.text.n));
    return *text ? 0 : -1;
  }
  if (n == 0) return 0;
  if (strcmp(t, "str") == 0 || strcmp(t, "e") == 0) {
    *text = intern(w, raw, unescape_x(w->v.p, n));
    return *text ? 0 : -1;
  }
  if (strcmp(t, "b") == 0) {
    *text = strcmp(raw, "1") == 0 ? "TRUE" : "FALSE";
    return 0;
  }
  if (strcmp(t, "d") == 0) { /* ISO 8601 (strict OOXML) */
    int iso = n >= 10 && raw[4] == '-' && raw[7] == '-';
    for (int i = 0; iso && i < 10; i++)
      iso = i == 4 || i == 7 || (raw[i] >= '0' && raw[i] <= '9');
    *kind = iso ? INGEST_CELL_DATE : INGEST_CELL_TEXT;
    *text = intern(w, raw, iso ? 10 : n);
    return *text ? 0 : -1;
  }
  decnum_t v;
  if (decnum_parse(raw, &v) != 0) { /* not a number after all: keep what is written */
    *text = intern(w, raw, n);
    return *text ? 0 : -1;
  }
  int fk = w->style < x->n_xf ? x->xf_kind[w->style] : FMT_NUMBER;
  char buf[MAX_DIGITS + 16];
  if (fk == FMT_DATE && serial_to_date(&v, x->date1904, buf) == 0) {
    *kind = INGEST_CELL_DATE;
  } else if (fk == FMT_TIME && serial_to_time(&v, buf) == 0) {
    *kind = INGEST_CELL_TEXT;
  } else {
    decnum_round(&v, 15);
    if (decnum_format(&v, buf, sizeof buf) != 0) {
      *text = intern(w, raw, n);
      return *text ? 0 : -1;
    }
    *kind = INGEST_CELL_NUMBER;
  }
  *text = intern(w, buf, strlen(buf));
  return *text ? 0 : -1;
}

static void XMLCALL ws_end(void *ud, const char *name) {
  wsctx_t *w = ud;
  store_t *s = w->s;
  if (!w->in_data) return;
  const char *ln = local_name(name);
  if (strcmp(ln, "sheetData") == 0) {
    w->in_data = 0;
  } else if (strcmp(ln, "row") == 0 && w->in_row) {
    w->in_row = 0;
    w->next_line = w->line < INT32_MAX ? w->line + 1 : w->line;
    if (w->row_n == 0) return;
    if (s->tail == NULL || s->tail->n == ROWS_PER_CHUNK) {
      rowchunk_t *rc = sc_arena_alloc(s->arena, sizeof *rc);
      if (rc == NULL) return xoom(&w->c);
      rc->next = NULL;
      rc->n = 0;
      if (s->tail)
        s->tail->next = rc;
      else
        s->head = rc;
      s->tail = rc;
    }
    s->tail->rows[s->tail->n++] = (xrow_t){w->line, w->row_n, w->row_cells};
    s->cells += w->row_n;
    s->cells_left -= (size_t)w->row_n;
    s->n_rows++;
  } else if (strcmp(ln, "c") == 0 && w->in_c) {
    w->in_c = w->in_v = w->in_is = 0;
    memset(&w->str, 0, offsetof(strctx_t, text));
    w->next_col = w->col + 1;
    const char *text;
    uint8_t kind;
    if (cell_value(w, &text, &kind) != 0) return xoom(&w->c);
    if (text == NULL || text[0] == '\0' || w->col >= XLSX_MAX_COLS || w->row_n >= XLSX_MAX_COLS) return;
    w->row_cells[w->row_n++] = (xcell_t){text, (uint16_t)w->col, kind};
  } else if (strcmp(ln, "v") == 0) {
    w->in_v = 0;
  } else if (strcmp(ln, "is") == 0) {
    w->in_is = 0;
    w->str.in_item = 0;
  } else if (w->in_is) {
    str_end(&w->str, ln);
  }
}

static void XMLCALL ws_chars(void *ud, const XML_Char *t, int len) {
  wsctx_t *w = ud;
  if (!w->in_c) return;
  int r = 0;
  if (w->in_v)
    r = tbuf_add(&w->v, t, (size_t)len);
  else if (w->in_is)
    r = str_chars(&w->str, t, len);
  if (r != 0) xfail(&w->c, SC_RESOURCE_EXHAUSTED, "XLSX: a cell holds more than 1 MiB of text: refusing the workbook");
}

static sc_status_t load_sheet(xlsx_t *x, const sheet_t *sh, store_t *s) {
  wsctx_t w;
  memset(&w, 0, sizeof w);
  w.s = s;
  w.next_line = 1;
  if (xml_new(&w.c, x) == NULL) return SC_RESOURCE_EXHAUSTED;
  XML_SetElementHandler(w.c.p, ws_start, ws_end);
  XML_SetCharacterDataHandler(w.c.p, ws_chars);
  sc_status_t st = read_part(x, sh->target, &w.c);
  XML_ParserFree(w.c.p);
  free(w.v.p);
  free(w.str.text.p);
  if (st == SC_NOT_FOUND) {
    sc_err_set(x->err, "XLSX: sheet '%.100s' (%.200s) is missing from the archive", sh->name, sh->target);
    st = SC_INVALID_ARGUMENT;
  }
  return st;
}

/* ---- The workbook's parts ------------------------------------------------------------------- */

static sc_status_t not_a_spreadsheet(sc_err_t *err) {
  sc_err_set(err, "not a spreadsheet: no worksheet found");
  return SC_INVALID_ARGUMENT;
}

/* Finds the workbook part, its sheets and their worksheet parts, the shared
 * strings and the styles. */
static sc_status_t read_workbook(xlsx_t *x) {
  rel_t *rels = NULL;
  size_t n_rels = 0;
  sc_status_t st = read_rels(x, "_rels/.rels", &rels, &n_rels);
  if (st != SC_OK) return st;
  const char *wb_path = "xl/workbook.xml";
  for (size_t i = 0; i < n_rels; i++) {
    if (!ends_with(rels[i].type, "/officeDocument")) continue;
    wb_path = resolve_target(x->work, "", rels[i].target);
    if (wb_path == NULL) return not_a_spreadsheet(x->err);
    break;
  }
  if (ends_with(wb_path, ".bin")) {
    sc_err_set(x->err, "a binary workbook (.xlsb) is not supported: save it as .xlsx and import that");
    return SC_INVALID_ARGUMENT;
  }

  wbctx_t w;
  memset(&w, 0, sizeof w);
  if (xml_new(&w.c, x) == NULL) return SC_RESOURCE_EXHAUSTED;
  XML_SetElementHandler(w.c.p, wb_start, wb_end);
  st = read_part(x, wb_path, &w.c);
  XML_ParserFree(w.c.p);
  if (st == SC_NOT_FOUND) return not_a_spreadsheet(x->err);
  if (st != SC_OK) return st;

  /* The workbook's relationships: "xl/workbook.xml" -> "xl/_rels/workbook.xml.rels". */
  const char *slash = strrchr(wb_path, '/');
  size_t dir_len = slash ? (size_t)(slash - wb_path) : 0;
  char *dir = sc_arena_strndup(x->work, wb_path, dir_len);
  char *rels_path =
      sc_arena_printf(x->work, "%s%s_rels/%s.rels", dir ? dir : "", dir_len ? "/" : "", slash ? slash + 1 : wb_path);
  if (dir == NULL || rels_path == NULL) return SC_RESOURCE_EXHAUSTED;
  if ((st = read_rels(x, rels_path, &rels, &n_rels)) != SC_OK) return st;
  const char *sst_path = NULL, *styles_path = NULL;
  for (size_t i = 0; i < n_rels; i++) {
    if (ends_with(rels[i].type, "/sharedStrings"))
      sst_path = resolve_target(x->work, dir, rels[i].target);
    else if (ends_with(rels[i].type, "/styles"))
      styles_path = resolve_target(x->work, dir, rels[i].target);
  }
  int have_sheet = 0;
  for (size_t s = 0; s < x->n_sheets; s++) {
    sheet_t *sh = &x->sheets[s];
    for (size_t i = 0; i < n_rels && sh->rid != NULL; i++)
      if (strcmp(rels[i].id, sh->rid) == 0 && ends_with(rels[i].type, "/worksheet"))
        sh->target = resolve_target(x->work, dir, rels[i].target);
    if (n_rels == 0) /* no relationships part: the conventional names */
      sh->target = sc_arena_printf(x->work, "%s%sworksheets/sheet%zu.xml", dir, dir_len ? "/" : "", s + 1);
    have_sheet |= sh->target != NULL;
  }
  if (!have_sheet) return not_a_spreadsheet(x->err);
  if (sst_path == NULL && n_rels == 0)
    sst_path = sc_arena_printf(x->work, "%s%ssharedStrings.xml", dir, dir_len ? "/" : "");
  if (styles_path == NULL && n_rels == 0)
    styles_path = sc_arena_printf(x->work, "%s%sstyles.xml", dir, dir_len ? "/" : "");
  if (styles_path != NULL && (st = read_styles(x, styles_path)) != SC_OK) return st;
  if (sst_path != NULL && (st = read_sst(x, sst_path)) != SC_OK) return st;
  return SC_OK;
}

/* ---- Sheets through the table engine ---------------------------------------------------------- */

typedef struct cbwrap {
  ingest_row_cb cb;
  void *ctx;
  int64_t calls;
} cbwrap_t;

static int wrap_cb(void *ctx, int32_t line, const ingest_row_t *row, const char *reason) {
  cbwrap_t *w = ctx;
  w->calls++;
  return w->cb != NULL ? w->cb(w->ctx, line, row, reason) : 0;
}

static size_t arena_left(const sc_arena_t *a) {
  size_t cap = sc_arena_cap(a), used = sc_arena_used(a);
  return cap > used ? cap - used : 1;
}

typedef enum { TRY_DONE, TRY_NO_TABLE, TRY_EMPTY } try_t;

/* Loads one sheet and runs the engine on it. TRY_NO_TABLE: the engine found
 * no header on it and delivered nothing, so the next sheet may be tried. */
static try_t try_sheet(xlsx_t *x, const sheet_t *sh, const ingest_opts_t *opts, sc_arena_t *arena, ingest_row_cb cb,
                       void *ctx, ingest_result_t *res, sc_status_t *st) {
  store_t s;
  memset(&s, 0, sizeof s);
  s.arena = sc_arena_new(arena_left(arena));
  if (s.arena == NULL) {
    sc_err_set(x->err, "XLSX: out of memory");
    *st = SC_RESOURCE_EXHAUSTED;
    return TRY_DONE;
  }
  s.pool.arena = s.arena;
  try_t out = TRY_DONE;
  *st = load_sheet(x, sh, &s);
  if (*st != SC_OK) goto out;
  if (s.n_rows == 0) {
    out = TRY_EMPTY;
    goto out;
  }
  res->n_columns = 0;
  res->sheet = sc_arena_strdup(arena, sh->name);
  ingest_table_src_t src = {&s, src_next, src_rewind};
  cbwrap_t w = {cb, ctx, 0};
  *st = ingest_table_parse(&src, opts, arena, wrap_cb, &w, res, x->err);
  if (*st == SC_INVALID_ARGUMENT && w.calls == 0 && !res->date_ambiguous && res->n_columns > 0) out = TRY_NO_TABLE;
out:
  sc_arena_free(s.arena);
  return out;
}

static sc_status_t run_sheets(xlsx_t *x, const ingest_opts_t *opts, sc_arena_t *arena, ingest_row_cb cb, void *ctx,
                              ingest_result_t *res) {
  const char *want = opts->mapping != NULL ? opts->mapping->sheet_name : NULL;
  sc_status_t st = SC_OK;
  if (want != NULL && want[0] != '\0') {
    const sheet_t *pick = NULL;
    for (size_t i = 0; i < x->n_sheets && pick == NULL; i++)
      if (strcmp(x->sheets[i].name, want) == 0) pick = &x->sheets[i];
    for (size_t i = 0; i < x->n_sheets && pick == NULL; i++)
      if (ieq(x->sheets[i].name, want)) pick = &x->sheets[i];
    if (pick == NULL || pick->target == NULL) {
      char list[300];
      size_t o = 0;
      list[0] = '\0';
      for (size_t i = 0; i < x->n_sheets && o + 4 < sizeof list; i++) {
        int n = snprintf(list + o, sizeof list - o, "%s'%s'", i ? ", " : "", x->sheets[i].name);
        if (n < 0) break;
        o += (size_t)n < sizeof list - o ? (size_t)n : sizeof list - o - 1;
      }
      sc_err_set(x->err, "mapping.sheetName '%.100s' is %s; the workbook's sheets: %s", want,
                 pick ? "a chart sheet, not a worksheet" : "not a sheet of this workbook", list);
      return SC_INVALID_ARGUMENT;
    }
    if (try_sheet(x, pick, opts, arena, cb, ctx, res, &st) == TRY_EMPTY) {
      sc_err_set(x->err, "sheet '%.100s' is empty", pick->name);
      res->sheet = sc_arena_strdup(arena, pick->name);
      return SC_INVALID_ARGUMENT;
    }
    return st;
  }

  /* Visible sheets first, in workbook order, then hidden ones. */
  ingest_result_t first_res;
  sc_err_t first_err;
  int have_first = 0, tried = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < x->n_sheets; i++) {
      const sheet_t *sh = &x->sheets[i];
      if (sh->target == NULL || sh->hidden != pass) continue;
      tried++;
      try_t t = try_sheet(x, sh, opts, arena, cb, ctx, res, &st);
      if (t == TRY_DONE) return st;
      if (t == TRY_NO_TABLE && !have_first) {
        first_res = *res;
        first_err = *x->err;
        have_first = 1;
      }
    }
  }
  if (!have_first) {
    sc_err_set(x->err, "no transaction table found: every worksheet is empty");
    return SC_INVALID_ARGUMENT;
  }
  /* No sheet holds a table: report the first non-empty one, as found. */
  *res = first_res;
  if (tried > 1)
    sc_err_set(x->err, "no sheet holds a transaction table (set mapping.sheetName to pick one); sheet '%.60s': %s",
               res->sheet ? res->sheet : "", first_err.msg);
  else
    *x->err = first_err;
  return SC_INVALID_ARGUMENT;
}

sc_status_t ingest_parse_xlsx(const uint8_t *data, size_t len, const ingest_opts_t *opts, sc_arena_t *arena,
                              ingest_row_cb cb, void *ctx, ingest_result_t *res, sc_err_t *err) {
  static const ingest_opts_t no_opts;
  ingest_result_t local_res;
  if (opts == NULL) opts = &no_opts;
  if (res == NULL) res = &local_res;
  memset(res, 0, sizeof *res);
  res->format = INGEST_FORMAT_XLSX;
  ingest_mapping_init(&res->mapping);
  if (arena == NULL) {
    sc_err_set(err, "internal: no arena");
    return SC_INTERNAL;
  }
  if (data == NULL || len == 0) {
    sc_err_set(err, "the file is empty");
    return SC_INVALID_ARGUMENT;
  }

  xlsx_t x;
  memset(&x, 0, sizeof x);
  x.err = err;
  x.work = sc_arena_new(arena_left(arena));
  x.chunk = malloc(XLSX_CHUNK);
  sc_status_t st = SC_OK;
  if (x.work == NULL || x.chunk == NULL) {
    sc_err_set(err, "XLSX: out of memory");
    st = SC_RESOURCE_EXHAUSTED;
    goto out;
  }
  x.pool.arena = x.work;

  if (offcrypto_is_cfb(data, len)) {
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    st = offcrypto_decrypt(data, len, opts->password, x.work, &plain, &plain_len, err);
    if (st == SC_OK || st == SC_FAILED_PRECONDITION || st == SC_DATA_LOSS) res->encrypted = 1;
    if (st != SC_OK) goto out;
    data = plain;
    len = plain_len;
  }

  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t *zs = zip_source_buffer_create(data, len, 0, &ze);
  if (zs != NULL) {
    x.za = zip_open_from_source(zs, ZIP_RDONLY, &ze);
    if (x.za == NULL) zip_source_free(zs);
  }
  if (x.za == NULL) {
    sc_err_set(err, "not a readable XLSX file: %s (the file is truncated, damaged, or not an Excel workbook)",
               zip_error_strerror(&ze));
    zip_error_fini(&ze);
    st = SC_INVALID_ARGUMENT;
    goto out;
  }
  zip_error_fini(&ze);

  if ((st = read_workbook(&x)) != SC_OK) goto out;
  st = run_sheets(&x, opts, arena, cb, ctx, res);
out:
  if (x.za != NULL) zip_discard(x.za);
  free(x.chunk);
  sc_arena_free(x.work);
  return st;
}
