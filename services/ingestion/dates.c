/* Dates as statements print them, and the inference of a column's format.
 *
 * A format is a small strftime subset (%d %e %m %Y %y %b %B %%, literal
 * separators, a space matching any run of blanks; %a %A %H %I %M %S %p %z
 * %Z are read and ignored, for hints such as "%d/%m/%Y %H:%M"); a trailing time of day
 * ("10:32", "10:32:00", "T10:32:00Z", "10:32 PM") is accepted and ignored, as
 * the booking date is what a statement row is about. Inference tries every
 * known format on every value and keeps the ones that read them all,
 * streaming, so the whole column counts and not a sample.
 */
#include <string.h>

#include "statement.h"

/* Preference order: when formats read a whole column alike, the first wins. */
static const char *const k_formats[] = {
    "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%d.%m.%Y",  "%d/%m/%y",  "%m/%d/%y", "%d-%m-%y",
    "%d.%m.%y", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d",   "%d %b %Y",  "%d-%b-%Y",  "%d-%b-%y", "%d %b %y",
    "%d/%b/%Y", "%d %B %Y", "%d-%B-%Y", "%b %d %Y", "%b %d, %Y", "%B %d, %Y", "%B %d %Y",
};
#define N_FORMATS ((int)(sizeof k_formats / sizeof k_formats[0]))
_Static_assert(sizeof k_formats / sizeof k_formats[0] <= INGEST_DATE_MAX_FORMATS, "formats fit the bit sets");

static const char *const k_months[12] = {"january", "february", "march",     "april",   "may",      "june",
                                         "july",    "august",   "september", "october", "november", "december"};

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_blank(char c) { return c == ' ' || c == '\t'; }
static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

/* Reads 1-2 digits (exactly `fixed` when nonzero). */
static const char *read_num(const char *p, const char *e, int fixed, int *v) {
  if (p == e || !is_digit(*p)) return NULL;
  int x = *p++ - '0';
  if (fixed == 0) {
    if (p < e && is_digit(*p)) x = x * 10 + (*p++ - '0');
    *v = x;
    return p;
  }
  for (int n = 1; n < fixed; n++) {
    if (p == e || !is_digit(*p)) return NULL;
    x = x * 10 + (*p++ - '0');
  }
  *v = x;
  return p;
}

/* A month name: full (%B) or abbreviated to three letters, "Sept" too (%b). */
static const char *read_month(const char *p, const char *e, int full, int *m) {
  const char *w = p;
  while (p < e && is_alpha(*p))
    p++;
  size_t n = (size_t)(p - w);
  for (int i = 0; i < 12; i++) {
    const char *name = k_months[i];
    size_t len = strlen(name);
    size_t want = full ? len : 3;
    int ok = n == want || (!full && i == 8 && n == 4); /* Sept */
    if (!ok) continue;
    for (size_t k = 0; k < n && ok; k++)
      if (lower(w[k]) != name[k]) ok = 0;
    if (ok) {
      *m = i + 1;
      return p;
    }
  }
  return NULL;
}

static const char *const k_weekdays[7] = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};

/* A weekday name: full (%A) or its first three letters (%a). */
static const char *read_weekday(const char *p, const char *e, int full) {
  const char *w = p;
  while (p < e && is_alpha(*p))
    p++;
  size_t n = (size_t)(p - w);
  for (int i = 0; i < 7; i++) {
    size_t len = strlen(k_weekdays[i]);
    if (n != (full ? len : 3)) continue;
    size_t k = 0;
    while (k < n && lower(w[k]) == k_weekdays[i][k])
      k++;
    if (k == n) return p;
  }
  return NULL;
}

/* A time of day after the date, ignored: [T or blanks] H:MM[:SS[.fff]]
 * [AM|PM] [Z | +hh[:mm] | a zone abbreviation]. */
static int time_ok(const char *p, const char *e) {
  if (p < e && (*p == 'T' || *p == 't')) p++;
  while (p < e && is_blank(*p))
    p++;
  int h, mi, s = 0;
  if ((p = read_num(p, e, 0, &h)) == NULL || p == e || *p != ':') return 0;
  if ((p = read_num(p + 1, e, 2, &mi)) == NULL) return 0;
  if (p < e && *p == ':') {
    if ((p = read_num(p + 1, e, 2, &s)) == NULL) return 0;
    if (p < e && (*p == '.' || *p == ',')) {
      p++;
      while (p < e && is_digit(*p))
        p++;
    }
  }
  if (h > 23 || mi > 59 || s > 60) return 0;
  while (p < e && is_blank(*p))
    p++;
  if (e - p >= 2 && (lower(p[0]) == 'a' || lower(p[0]) == 'p') && lower(p[1]) == 'm' &&
      (e - p == 2 || !is_alpha(p[2]))) {
    if (h == 0 || h > 12) return 0;
    p += 2;
    while (p < e && is_blank(*p))
      p++;
  }
  if (p < e && (*p == 'Z' || *p == 'z')) {
    p++;
  } else if (p < e && (*p == '+' || *p == '-')) {
    int zh, zm;
    if ((p = read_num(p + 1, e, 2, &zh)) == NULL) return 0;
    if (p < e && *p == ':') p++;
    if (p < e && (p = read_num(p, e, 2, &zm)) == NULL) return 0;
  } else {
    const char *w = p;
    while (p < e && is_alpha(*p))
      p++;
    if (p - w > 5) return 0;
  }
  while (p < e && is_blank(*p))
    p++;
  return p == e;
}

/* Reads the date's fields by the format. Returns 0, or -1 when the text does
 * not have the format's shape. */
static int read_fields(const char *p, const char *e, const char *f, int *y, int *m, int *d) {
  *y = *m = *d = -1;
  while (*f != '\0') {
    if (*f == '%' && f[1] != '\0' && f[1] != '%') {
      char dir = f[1];
      f += 2;
      int fixed = (*f == '%') ? 2 : 0; /* "%Y%m%d": no separator, so widths are fixed */
      int v;
      switch (dir) {
      case 'e':
        if (p < e && is_blank(*p)) p++;
        /* fallthrough */
      case 'd':
        if ((p = read_num(p, e, fixed, &v)) == NULL) return -1;
        *d = v;
        break;
      case 'm':
        if ((p = read_num(p, e, fixed, &v)) == NULL) return -1;
        *m = v;
        break;
      case 'Y':
        if ((p = read_num(p, e, 4, &v)) == NULL) return -1;
        *y = v;
        break;
      case 'y':
        if ((p = read_num(p, e, 2, &v)) == NULL) return -1;
        *y = v < 69 ? 2000 + v : 1900 + v; /* POSIX strptime's pivot */
        break;
      case 'b':
      case 'h':
        if ((p = read_month(p, e, 0, &v)) == NULL) return -1;
        *m = v;
        break;
      case 'B':
        if ((p = read_month(p, e, 1, &v)) == NULL) return -1;
        *m = v;
        break;
      /* read and ignored: the weekday, the time of day, a zone */
      case 'a':
      case 'A':
        if ((p = read_weekday(p, e, dir == 'A')) == NULL) return -1;
        break;
      case 'H':
      case 'I':
      case 'M':
      case 'S':
        if ((p = read_num(p, e, fixed, &v)) == NULL || v > (dir == 'H' ? 23 : dir == 'I' ? 12 : 60)) return -1;
        break;
      case 'p':
        if (e - p < 2 || (lower(p[0]) != 'a' && lower(p[0]) != 'p') || lower(p[1]) != 'm') return -1;
        p += 2;
        break;
      case 'z':
      case 'Z':
        while (p < e && !is_blank(*p))
          p++;
        break;
      default: return -1;
      }
      continue;
    }
    if (*f == '%') f++; /* "%%" */
    if (*f == ' ') {
      if (p == e || !is_blank(*p)) return -1;
      while (p < e && is_blank(*p))
        p++;
      f++;
      continue;
    }
    if (p == e || (*p != *f && lower(*p) != lower(*f))) return -1;
    p++;
    f++;
  }
  if (*y < 0 || *m < 0 || *d < 0) return -1;
  while (p < e && is_blank(*p))
    p++;
  if (p != e && !time_ok(p, e)) return -1;
  return 0;
}

static int days_in_month(int y, int m) {
  static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dim[m - 1];
}

/* The common case at a fraction of read_fields' cost: a format of three
 * numeric fields (%d %m %Y %y) joined by single punctuation characters, and
 * a text of exactly that shape. Returns 1 with the fields read, 0 for
 * anything else, which read_fields then decides (it accepts all this does,
 * alike). */
static int read_numeric(const char *t, const char *f, int *y, int *m, int *d) {
  *y = *m = *d = -1;
  for (int i = 0; i < 3; i++) {
    if (f[0] != '%') return 0;
    char k = f[1];
    if (k != 'd' && k != 'm' && k != 'Y' && k != 'y') return 0;
    f += 2;
    if (!is_digit(*t)) return 0;
    int x = *t++ - '0', n = 1;
    while (is_digit(*t) && n < 4) {
      x = x * 10 + (*t++ - '0');
      n++;
    }
    if (k == 'Y' ? n != 4 : k == 'y' ? n != 2 : n > 2) return 0;
    if (k == 'd')
      *d = x;
    else if (k == 'm')
      *m = x;
    else
      *y = k == 'y' ? (x < 69 ? 2000 + x : 1900 + x) : x;
    if (i < 2) {
      if (*f == '\0' || *f == '%' || *f == ' ' || is_alpha(*f) || is_digit(*f) || *t != *f) return 0;
      t++;
      f++;
    }
  }
  return *f == '\0' && *t == '\0' && *y >= 0 && *m >= 0 && *d >= 0;
}

int ingest_date_parse_why(const char *text, const char *format, char out[11], const char **reason) {
  const char *why = "does not match the date format";
  int y, m, d;
  if (text == NULL || format == NULL || out == NULL) goto fail;
  if (read_numeric(text, format, &y, &m, &d)) goto check;
  const char *p = text, *e = text + strlen(text);
  for (;;) { /* blanks and no-break spaces around the date */
    if (p < e && is_blank(*p))
      p++;
    else if (e - p >= 2 && (unsigned char)p[0] == 0xC2 && (unsigned char)p[1] == 0xA0)
      p += 2;
    else
      break;
  }
  for (;;) {
    if (e > p && (is_blank(e[-1]) || e[-1] == '\r' || e[-1] == '\n'))
      e--;
    else if (e - p >= 2 && (unsigned char)e[-2] == 0xC2 && (unsigned char)e[-1] == 0xA0)
      e -= 2;
    else
      break;
  }
  if (read_fields(p, e, format, &y, &m, &d) != 0) goto fail;
check:
  /* Years outside 1900-2199 are not statement dates: they come from reading
   * the wrong format (or a typo) and must not make a format look right. */
  if (m < 1 || m > 12 || d < 1 || y < 1900 || y > 2199 || d > days_in_month(y, m)) {
    why = "is not a real date";
    goto fail;
  }
  out[0] = (char)('0' + y / 1000);
  out[1] = (char)('0' + y / 100 % 10);
  out[2] = (char)('0' + y / 10 % 10);
  out[3] = (char)('0' + y % 10);
  out[4] = '-';
  out[5] = (char)('0' + m / 10);
  out[6] = (char)('0' + m % 10);
  out[7] = '-';
  out[8] = (char)('0' + d / 10);
  out[9] = (char)('0' + d % 10);
  out[10] = '\0';
  if (reason != NULL) *reason = NULL;
  return 0;
fail:
  if (reason != NULL) *reason = why;
  return -1;
}

int ingest_date_parse(const char *text, const char *format, char out[11]) {
  return ingest_date_parse_why(text, format, out, NULL);
}

void ingest_date_infer_init(ingest_date_inferrer_t *st) {
  memset(st, 0, sizeof *st);
  st->alive = N_FORMATS == 32 ? 0xFFFFFFFFu : ((1u << N_FORMATS) - 1u);
}

int ingest_date_infer_add(ingest_date_inferrer_t *st, const char *value) {
  char out[INGEST_DATE_MAX_FORMATS][11];
  uint32_t ok = 0;
  for (uint32_t a = st->alive; a != 0; a &= a - 1u) {
    int i = __builtin_ctz(a);
    if (ingest_date_parse(value, k_formats[i], out[i]) == 0) ok |= 1u << i;
  }
  if (ok == 0) {
    for (int i = 0; i < N_FORMATS; i++) {
      if (!(st->alive >> i & 1u) && ingest_date_parse(value, k_formats[i], out[0]) == 0) {
        st->n_odd++; /* only a format an earlier value ruled out reads it */
        st->n_values++;
        return 1;
      }
    }
    st->n_unread++;
    return 0;
  }
  if (ok & (ok - 1u)) { /* several read it: remember which disagree */
    for (uint32_t a = ok; a != 0; a &= a - 1u) {
      int i = __builtin_ctz(a);
      for (uint32_t b = a & (a - 1u); b != 0; b &= b - 1u) {
        int j = __builtin_ctz(b);
        if (memcmp(out[i], out[j], 10) != 0) {
          st->differ[i] |= 1u << j;
          st->differ[j] |= 1u << i;
        }
      }
    }
  }
  st->alive &= ok;
  st->n_values++;
  return 1;
}

static void copy_fmt(char dst[32], const char *src) {
  size_t n = strlen(src);
  if (n > 31) n = 31;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

int ingest_date_infer_finish(const ingest_date_inferrer_t *st, char format[32],
                             char candidates[INGEST_MAX_DATE_CANDIDATES][32], int *n_candidates) {
  if (n_candidates != NULL) *n_candidates = 0;
  if (format != NULL) format[0] = '\0';
  if (st->alive == 0 || st->n_values == 0 || st->n_odd * 20 > st->n_values) return -1;
  /* Formats that read every value as the same date are one candidate:
   * "same dates on every value" is an equivalence, so one pass of
   * representatives (the preferred format of each class) suffices. */
  uint32_t seen = 0;
  int reps[INGEST_DATE_MAX_FORMATS];
  int n_reps = 0;
  for (int i = 0; i < N_FORMATS; i++) {
    if (!(st->alive >> i & 1u) || (seen >> i & 1u)) continue;
    reps[n_reps++] = i;
    for (int j = i; j < N_FORMATS; j++)
      if ((st->alive >> j & 1u) && !(st->differ[i] >> j & 1u)) seen |= 1u << j;
  }
  if (n_reps == 1) {
    if (format != NULL) copy_fmt(format, k_formats[reps[0]]);
    return 1;
  }
  int n = 0;
  for (int k = 0; k < n_reps && n < INGEST_MAX_DATE_CANDIDATES; k++)
    if (candidates != NULL) copy_fmt(candidates[n++], k_formats[reps[k]]);
  if (n_candidates != NULL) *n_candidates = n;
  return 0;
}

int ingest_date_infer(const char *const *values, size_t n, char format[32],
                      char candidates[INGEST_MAX_DATE_CANDIDATES][32], int *n_candidates) {
  ingest_date_inferrer_t st;
  ingest_date_infer_init(&st);
  for (size_t i = 0; i < n; i++)
    if (values[i] != NULL) ingest_date_infer_add(&st, values[i]);
  return ingest_date_infer_finish(&st, format, candidates, n_candidates);
}
