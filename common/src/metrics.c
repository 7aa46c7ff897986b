/* The metrics registry: fixed open-addressing tables of series that are
 * updated with relaxed atomics and never removed, so lookups take no lock;
 * the registry's mutex only serialises first sightings. */
#include "scale/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_CODES 17 /* gRPC codes 0..16: the canonical rows of SC_STATUS_MAP */
#define N_BUCKETS 14
/* Powers of two, at least twice the caps: probe runs stay short and an empty
 * slot always ends them. */
#define METHOD_SLOTS 1024
#define SERIES_SLOTS 512
#define MAX_NAME_LEN 128
#define MAX_LABEL_VALUE_LEN 256
#define MAX_KEY_LEN (MAX_NAME_LEN + 64 + 2 * MAX_LABEL_VALUE_LEN + 8)
#define RENDER_CAP ((size_t)64 << 20)
#define VERSION_MAX 64

_Static_assert((METHOD_SLOTS & (METHOD_SLOTS - 1)) == 0 && METHOD_SLOTS >= 2 * SC_METRICS_MAX_METHODS, "method slots");
_Static_assert((SERIES_SLOTS & (SERIES_SLOTS - 1)) == 0 && SERIES_SLOTS >= 2 * SC_METRICS_MAX_SERIES, "series slots");
_Static_assert(SC_UNAUTHENTICATED == N_CODES - 1, "the canonical gRPC rows come first in SC_STATUS_MAP");

/* Upper bounds (inclusive, as Prometheus's le) in nanoseconds, and as the
 * label text, so the exposition shows exactly the configured bounds. */
static const int64_t bucket_ns[N_BUCKETS] = {500000,     1000000,    2500000,    5000000,    10000000,
                                             25000000,   50000000,   100000000,  250000000,  500000000,
                                             1000000000, 2500000000, 5000000000, 10000000000};
static const char *const bucket_le[N_BUCKETS] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                                                 "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};

typedef _Atomic int64_t counter_t;

typedef struct method_series {
  uint64_t hash;
  size_t len;
  counter_t calls[N_CODES];
  counter_t buckets[N_BUCKETS + 1]; /* per bucket, not cumulative; the last is above 10 s */
  counter_t sum_ns;
  char name[]; /* NUL-terminated, len bytes */
} method_series_t;

enum { KIND_COUNTER, KIND_GAUGE };

struct sc_metric {
  uint64_t hash;
  int kind;
  counter_t value;
  char *name; /* the family */
  char *help;
  char *key; /* the sample's name and labels as exposed: name or name{label="value"} */
  size_t key_len;
};

struct sc_metrics {
  uint64_t seed;
  _Atomic(method_series_t *) methods[METHOD_SLOTS];
  atomic_size_t n_methods;
  method_series_t *other;
  _Atomic(sc_metric_t *) series[SERIES_SLOTS];
  size_t n_series; /* under mu */
  counter_t in_flight;
  pthread_mutex_t mu; /* serialises insertions */
  double start_time;
  char version[VERSION_MAX];
};

/* ---- hashing and names ----------------------------------------------------- */

/* Word at a time: method paths are 30-60 bytes and hashed on every call. The
 * per-registry seed keeps probe runs unpredictable to clients. */
static uint64_t hash_bytes(uint64_t seed, const char *s, size_t n) {
  uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15u);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdu;
    h ^= h >> 32;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, s, n);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
  h ^= h >> 33;
  return h;
}

static bool printable(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

static bool name_char(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; no ':' in label names. */
static bool valid_name(const char *s, bool colon, size_t max) {
  size_t n = strnlen(s, max + 1);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++) {
    if (!name_char(s[i], i == 0, colon)) return false;
  }
  return true;
}

/* Families this file exposes itself (and a histogram's derived names). */
static bool reserved_name(const char *name) {
  return strncmp(name, "scale_rpc_", 10) == 0 || strncmp(name, "process_", 8) == 0 ||
         strcmp(name, "scale_build_info") == 0;
}

/* Escapes a label value (quote set) or a HELP text into dst (cap bytes,
 * NUL-terminated). Returns the length, or -1 when it does not fit. */
static long escape_into(char *dst, size_t cap, const char *s, bool quote) {
  size_t n = 0;
  for (; *s; s++) {
    const char *rep = NULL;
    if (*s == '\\') rep = "\\\\";
    if (*s == '\n') rep = "\\n";
    if (quote && *s == '"') rep = "\\\"";
    size_t k = rep ? 2 : 1;
    if (n + k >= cap) return -1;
    if (rep) {
      memcpy(dst + n, rep, 2);
    } else {
      dst[n] = *s;
    }
    n += k;
  }
  dst[n] = '\0';
  return (long)n;
}

/* ---- the registry ------------------------------------------------------------ */

static method_series_t *method_series_new(const char *name, size_t len, uint64_t hash) {
  method_series_t *s = calloc(1, sizeof(*s) + len + 1);
  if (s == NULL) return NULL;
  s->hash = hash;
  s->len = len;
  memcpy(s->name, name, len);
  s->name[len] = '\0';
  return s;
}

/* The wall-clock time the process started: /proc's start time in ticks after
 * boot plus the boot time; now when /proc cannot tell. */
static double process_start_time(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  double fallback = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
  char buf[1024];
  FILE *f = fopen("/proc/self/stat", "r");
  if (f == NULL) return fallback;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* Fields after the command name, which is in parentheses and may hold
   * spaces; starttime is field 22, the 20th after it. */
  const char *p = strrchr(buf, ')');
  if (p == NULL) return fallback;
  p++;
  unsigned long long ticks = 0;
  for (int field = 3; field <= 22; field++) {
    while (*p == ' ')
      p++;
    if (field == 22) {
      char *end;
      ticks = strtoull(p, &end, 10);
      if (end == p) return fallback;
      break;
    }
    while (*p && *p != ' ')
      p++;
  }
  unsigned long long btime = 0;
  f = fopen("/proc/stat", "r");
  if (f == NULL) return fallback;
  char line[256];
  bool at_start = true;
  /* Some lines (intr) are longer than the buffer: only a chunk that starts a
   * line can be the btime line. */
  while (fgets(line, sizeof(line), f) != NULL) {
    if (at_start && strncmp(line, "btime ", 6) == 0) {
      char *end;
      btime = strtoull(line + 6, &end, 10);
      if (end == line + 6) btime = 0;
      break;
    }
    at_start = strchr(line, '\n') != NULL;
  }
  fclose(f);
  long hz = sysconf(_SC_CLK_TCK);
  if (btime == 0 || hz <= 0) return fallback;
  return (double)btime + (double)ticks / (double)hz;
}

sc_metrics_t *sc_metrics_new(void) {
  sc_metrics_t *m = calloc(1, sizeof(*m));
  if (m == NULL) return NULL;
  m->other = method_series_new(SC_METRICS_OTHER_METHOD, strlen(SC_METRICS_OTHER_METHOD), 0);
  if (m->other == NULL) {
    free(m);
    return NULL;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  m->seed = hash_bytes((uint64_t)(uintptr_t)m, (const char *)&ts, sizeof(ts));
  pthread_mutex_init(&m->mu, NULL);
  m->start_time = process_start_time();
  snprintf(m->version, sizeof(m->version), "unknown");
  return m;
}

void sc_metrics_free(sc_metrics_t *m) {
  if (m == NULL) return;
  for (size_t i = 0; i < METHOD_SLOTS; i++)
    free(atomic_load_explicit(&m->methods[i], memory_order_relaxed));
  for (size_t i = 0; i < SERIES_SLOTS; i++) {
    sc_metric_t *s = atomic_load_explicit(&m->series[i], memory_order_relaxed);
    if (s == NULL) continue;
    free(s->name);
    free(s->help);
    free(s->key);
    free(s);
  }
  free(m->other);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

void sc_metrics_set_version(sc_metrics_t *m, const char *version) {
  snprintf(m->version, sizeof(m->version), "%s", version && *version ? version : "unknown");
}

/* ---- RPC metrics --------------------------------------------------------------- */

/* The series of (method, len, hash), or NULL; *slot gets the empty slot that
 * ended the search (where it would be inserted). */
static method_series_t *method_find(sc_metrics_t *m, uint64_t h, const char *method, size_t n, size_t *slot) {
  for (size_t i = h & (METHOD_SLOTS - 1);; i = (i + 1) & (METHOD_SLOTS - 1)) {
    method_series_t *s = atomic_load_explicit(&m->methods[i], memory_order_acquire);
    if (s == NULL) {
      if (slot) *slot = i;
      return NULL;
    }
    if (s->hash == h && s->len == n && memcmp(s->name, method, n) == 0) return s;
  }
}

static method_series_t *method_series(sc_metrics_t *m, const char *method) {
  if (method == NULL) return m->other;
  size_t n = strnlen(method, SC_METRICS_MAX_METHOD_LEN + 1);
  if (n == 0 || n > SC_METRICS_MAX_METHOD_LEN) return m->other;
  uint64_t h = hash_bytes(m->seed, method, n);
  method_series_t *s = method_find(m, h, method, n, NULL);
  if (s != NULL) return s;
  /* First sight. Once the cap is reached, new methods never take the lock. */
  if (atomic_load_explicit(&m->n_methods, memory_order_relaxed) >= SC_METRICS_MAX_METHODS || !printable(method, n)) {
    return m->other;
  }
  size_t slot;
  pthread_mutex_lock(&m->mu);
  s = method_find(m, h, method, n, &slot); /* another thread may have added it */
  if (s == NULL && atomic_load_explicit(&m->n_methods, memory_order_relaxed) < SC_METRICS_MAX_METHODS) {
    s = method_series_new(method, n, h);
    if (s != NULL) {
      atomic_store_explicit(&m->methods[slot], s, memory_order_release);
      atomic_fetch_add_explicit(&m->n_methods, 1, memory_order_relaxed);
    }
  }
  pthread_mutex_unlock(&m->mu);
  return s ? s : m->other;
}

void sc_metrics_rpc_begin(sc_metrics_t *m) { atomic_fetch_add_explicit(&m->in_flight, 1, memory_order_relaxed); }

void sc_metrics_rpc_end(sc_metrics_t *m, const char *method, sc_status_t st, int64_t elapsed_ns) {
  atomic_fetch_sub_explicit(&m->in_flight, 1, memory_order_relaxed);
  method_series_t *s = method_series(m, method);
  /* The code the client saw: refinements such as RATE_LIMITED count as their
   * gRPC code (RESOURCE_EXHAUSTED). */
  int code = sc_status_grpc_code(st);
  if (code < 0 || code >= N_CODES) code = SC_UNKNOWN;
  atomic_fetch_add_explicit(&s->calls[code], 1, memory_order_relaxed);
  if (elapsed_ns < 0) elapsed_ns = 0;
  size_t b = 0;
  while (b < N_BUCKETS && elapsed_ns > bucket_ns[b])
    b++;
  atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->sum_ns, elapsed_ns, memory_order_relaxed);
}

static sc_status_t metrics_before(sc_call_t *call, void *data) {
  (void)call;
  sc_metrics_rpc_begin(data);
  return SC_OK;
}

static void metrics_after(sc_call_t *call, sc_status_t st, void *data) {
  sc_metrics_rpc_end(data, sc_call_method(call), st, sc_call_elapsed_ns(call));
}

sc_rpc_interceptor_t sc_metrics_interceptor(sc_metrics_t *m) {
  return (sc_rpc_interceptor_t){.name = "metrics", .before = metrics_before, .after = metrics_after, .data = m};
}

/* ---- counters and gauges by name ---------------------------------------------- */

static sc_metric_t *series_find(sc_metrics_t *m, uint64_t h, const char *key, size_t n, size_t *slot) {
  for (size_t i = h & (SERIES_SLOTS - 1);; i = (i + 1) & (SERIES_SLOTS - 1)) {
    sc_metric_t *s = atomic_load_explicit(&m->series[i], memory_order_acquire);
    if (s == NULL) {
      if (slot) *slot = i;
      return NULL;
    }
    if (s->hash == h && s->key_len == n && memcmp(s->key, key, n) == 0) return s;
  }
}

static const char *kind_name(int kind) { return kind == KIND_COUNTER ? "counter" : "gauge"; }

/* Registers the series under the lock; NULL (err) as sc_metrics_counter says. */
static sc_metric_t *series_insert(sc_metrics_t *m, int kind, const char *name, const char *help, const char *key,
                                  size_t n, uint64_t h, sc_err_t *err) {
  sc_metric_t *s = NULL;
  pthread_mutex_lock(&m->mu);
  size_t slot;
  s = series_find(m, h, key, n, &slot);
  if (s != NULL) goto out;
  const char *family_help = NULL;
  for (size_t i = 0; i < SERIES_SLOTS; i++) {
    sc_metric_t *o = atomic_load_explicit(&m->series[i], memory_order_relaxed);
    if (o == NULL || strcmp(o->name, name) != 0) continue;
    if (o->kind != kind) {
      sc_err_set(err, "metric %s is a %s, not a %s", name, kind_name(o->kind), kind_name(kind));
      goto out;
    }
    family_help = o->help;
    break;
  }
  if (m->n_series >= SC_METRICS_MAX_SERIES) {
    sc_err_set(err, "metric %s: the registry is full (%d series)", name, SC_METRICS_MAX_SERIES);
    goto out;
  }
  sc_metric_t *fresh = calloc(1, sizeof(*fresh));
  if (fresh == NULL) goto oom;
  fresh->hash = h;
  fresh->kind = kind;
  fresh->key_len = n;
  fresh->name = strdup(name);
  fresh->help = strdup(family_help ? family_help : help ? help : "");
  fresh->key = strndup(key, n);
  if (fresh->name == NULL || fresh->help == NULL || fresh->key == NULL) {
    free(fresh->name);
    free(fresh->help);
    free(fresh->key);
    free(fresh);
    goto oom;
  }
  atomic_store_explicit(&m->series[slot], fresh, memory_order_release);
  m->n_series++;
  s = fresh;
  goto out;
oom:
  sc_err_set(err, "metric %s: out of memory", name);
out:
  pthread_mutex_unlock(&m->mu);
  if (s != NULL && s->kind != kind) {
    sc_err_set(err, "metric %s is a %s, not a %s", name, kind_name(s->kind), kind_name(kind));
    return NULL;
  }
  return s;
}

static sc_metric_t *series_get(sc_metrics_t *m, int kind, const char *name, const char *help, const char *label,
                               const char *value, sc_err_t *err) {
  if (name == NULL || !valid_name(name, true, MAX_NAME_LEN)) {
    sc_err_set(err, "metric name '%s' is not [a-zA-Z_:][a-zA-Z0-9_:]* (at most %d)", name ? name : "(null)",
               MAX_NAME_LEN);
    return NULL;
  }
  if (reserved_name(name)) {
    sc_err_set(err, "metric name %s is reserved (scale_rpc_*, process_*, scale_build_info)", name);
    return NULL;
  }
  char keybuf[MAX_KEY_LEN];
  const char *key = name;
  size_t n = strlen(name);
  if (label != NULL || value != NULL) {
    if (label == NULL || value == NULL || !valid_name(label, false, 64) || strncmp(label, "__", 2) == 0) {
      sc_err_set(err, "metric %s: label name '%s' is not [a-zA-Z_][a-zA-Z0-9_]* with a value", name,
                 label ? label : "(null)");
      return NULL;
    }
    if (strlen(value) > MAX_LABEL_VALUE_LEN) {
      sc_err_set(err, "metric %s: label value longer than %d bytes", name, MAX_LABEL_VALUE_LEN);
      return NULL;
    }
    char esc[2 * MAX_LABEL_VALUE_LEN + 1];
    if (escape_into(esc, sizeof(esc), value, true) < 0) return NULL; /* cannot happen: sized for the worst case */
    int w = snprintf(keybuf, sizeof(keybuf), "%s{%s=\"%s\"}", name, label, esc);
    if (w < 0 || (size_t)w >= sizeof(keybuf)) return NULL; /* cannot happen: sized for the worst case */
    key = keybuf;
    n = (size_t)w;
  }
  uint64_t h = hash_bytes(m->seed, key, n);
  sc_metric_t *s = series_find(m, h, key, n, NULL);
  if (s == NULL) return series_insert(m, kind, name, help, key, n, h, err);
  if (s->kind != kind) {
    sc_err_set(err, "metric %s is a %s, not a %s", name, kind_name(s->kind), kind_name(kind));
    return NULL;
  }
  return s;
}

sc_metric_t *sc_metrics_counter(sc_metrics_t *m, const char *name, const char *help, const char *label,
                                const char *value, sc_err_t *err) {
  return series_get(m, KIND_COUNTER, name, help, label, value, err);
}

sc_metric_t *sc_metrics_gauge(sc_metrics_t *m, const char *name, const char *help, const char *label, const char *value,
                              sc_err_t *err) {
  return series_get(m, KIND_GAUGE, name, help, label, value, err);
}

void sc_metric_add(sc_metric_t *s, int64_t delta) {
  if (s == NULL || (s->kind == KIND_COUNTER && delta < 0)) return;
  atomic_fetch_add_explicit(&s->value, delta, memory_order_relaxed);
}

void sc_metric_set(sc_metric_t *s, int64_t value) {
  if (s == NULL || s->kind != KIND_GAUGE) return;
  atomic_store_explicit(&s->value, value, memory_order_relaxed);
}

int64_t sc_metric_value(const sc_metric_t *s) {
  return s ? atomic_load_explicit(&((sc_metric_t *)s)->value, memory_order_relaxed) : 0;
}

int sc_metrics_counter_add(sc_metrics_t *m, const char *name, const char *help, uint64_t delta) {
  sc_metric_t *s = series_get(m, KIND_COUNTER, name, help, NULL, NULL, NULL);
  if (s == NULL) return -1;
  sc_metric_add(s, delta > INT64_MAX ? INT64_MAX : (int64_t)delta);
  return 0;
}

int sc_metrics_gauge_set(sc_metrics_t *m, const char *name, const char *help, int64_t value) {
  sc_metric_t *s = series_get(m, KIND_GAUGE, name, help, NULL, NULL, NULL);
  if (s == NULL) return -1;
  sc_metric_set(s, value);
  return 0;
}

int sc_metrics_gauge_add(sc_metrics_t *m, const char *name, const char *help, int64_t delta) {
  sc_metric_t *s = series_get(m, KIND_GAUGE, name, help, NULL, NULL, NULL);
  if (s == NULL) return -1;
  sc_metric_add(s, delta);
  return 0;
}

/* ---- exposition ------------------------------------------------------------------ */

typedef struct out {
  char *p;
  size_t len, cap;
  bool failed;
} out_t;

/* Appends n bytes keeping a NUL after them; once anything failed, nothing
 * more is added. */
static void put(out_t *o, const char *s, size_t n) {
  if (o->failed) return;
  if (n >= RENDER_CAP - o->len) {
    o->failed = true;
    return;
  }
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 16384;
    while (cap < o->len + n + 1)
      cap *= 2;
    char *p = realloc(o->p, cap);
    if (p == NULL) {
      o->failed = true;
      return;
    }
    o->p = p;
    o->cap = cap;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
  o->p[o->len] = '\0';
}

static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }

static void putf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(out_t *o, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (w < 0 || (size_t)w >= sizeof(tmp)) {
    o->failed = true;
    return;
  }
  put(o, tmp, (size_t)w);
}

/* Label values: backslash, double quote and newline escaped; HELP texts:
 * backslash and newline (the 0.0.4 text format). */
static void put_escaped(out_t *o, const char *s, bool quote) {
  while (*s) {
    size_t run = strcspn(s, quote ? "\\\"\n" : "\\\n");
    put(o, s, run);
    s += run;
    if (*s == '\0') break;
    puts_(o, *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : "\\\"");
    s++;
  }
}

static void put_family(out_t *o, const char *name, const char *help, const char *type) {
  putf(o, "# HELP %s%s", name, *help ? " " : "");
  put_escaped(o, help, false);
  putf(o, "\n# TYPE %s %s\n", name, type);
}

static void put_method_label(out_t *o, const method_series_t *s) {
  puts_(o, "method=\"");
  put_escaped(o, s->name, true);
  puts_(o, "\"");
}

static int64_t load(const counter_t *c) { return atomic_load_explicit((counter_t *)c, memory_order_relaxed); }

static int cmp_methods(const void *a, const void *b) {
  return strcmp((*(const method_series_t *const *)a)->name, (*(const method_series_t *const *)b)->name);
}

static int cmp_series(const void *a, const void *b) {
  const sc_metric_t *x = *(const sc_metric_t *const *)a, *y = *(const sc_metric_t *const *)b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->key, y->key);
}

static void render_rpc(out_t *o, method_series_t **ms, size_t n, int64_t in_flight) {
  put_family(o, "scale_rpc_requests_total", "RPCs completed, by method and gRPC status code.", "counter");
  for (size_t i = 0; i < n; i++) {
    for (int code = 0; code < N_CODES; code++) {
      int64_t v = load(&ms[i]->calls[code]);
      if (v == 0) continue;
      puts_(o, "scale_rpc_requests_total{");
      put_method_label(o, ms[i]);
      putf(o, ",code=\"%s\"} %lld\n", sc_status_name((sc_status_t)code), (long long)v);
    }
  }
  put_family(o, "scale_rpc_duration_seconds", "RPC latency from arrival to status, by method.", "histogram");
  for (size_t i = 0; i < n; i++) {
    int64_t counts[N_BUCKETS + 1], total = 0;
    for (size_t b = 0; b <= N_BUCKETS; b++)
      total += counts[b] = load(&ms[i]->buckets[b]);
    if (total == 0) continue;
    int64_t cum = 0;
    for (size_t b = 0; b <= N_BUCKETS; b++) {
      cum += counts[b];
      puts_(o, "scale_rpc_duration_seconds_bucket{");
      put_method_label(o, ms[i]);
      putf(o, ",le=\"%s\"} %lld\n", b < N_BUCKETS ? bucket_le[b] : "+Inf", (long long)cum);
    }
    int64_t sum = load(&ms[i]->sum_ns);
    puts_(o, "scale_rpc_duration_seconds_sum{");
    put_method_label(o, ms[i]);
    putf(o, "} %lld.%09lld\n", (long long)(sum / 1000000000), (long long)(sum % 1000000000));
    puts_(o, "scale_rpc_duration_seconds_count{");
    put_method_label(o, ms[i]);
    putf(o, "} %lld\n", (long long)total);
  }
  put_family(o, "scale_rpc_in_flight", "RPCs in progress (streams included).", "gauge");
  putf(o, "scale_rpc_in_flight %lld\n", (long long)in_flight);
}

static void render_named(out_t *o, sc_metric_t **ss, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (i == 0 || strcmp(ss[i]->name, ss[i - 1]->name) != 0) {
      put_family(o, ss[i]->name, ss[i]->help, kind_name(ss[i]->kind));
    }
    put(o, ss[i]->key, ss[i]->key_len);
    putf(o, " %lld\n", (long long)load(&ss[i]->value));
  }
}

int sc_metrics_render(const sc_metrics_t *m_, char **out, size_t *len) {
  /* Rendering only loads atomics; the casts let it use the same loads as the
   * writers. */
  sc_metrics_t *m = (sc_metrics_t *)m_;
  int rc = -1;
  out_t o = {0};
  method_series_t **ms = malloc((METHOD_SLOTS + 1) * sizeof(*ms));
  sc_metric_t **ss = malloc(SERIES_SLOTS * sizeof(*ss));
  if (ms == NULL || ss == NULL) goto out;
  size_t n_ms = 0, n_ss = 0;
  for (size_t i = 0; i < METHOD_SLOTS; i++) {
    method_series_t *s = atomic_load_explicit(&m->methods[i], memory_order_acquire);
    if (s != NULL) ms[n_ms++] = s;
  }
  ms[n_ms++] = m->other;
  qsort(ms, n_ms, sizeof(*ms), cmp_methods);
  for (size_t i = 0; i < SERIES_SLOTS; i++) {
    sc_metric_t *s = atomic_load_explicit(&m->series[i], memory_order_acquire);
    if (s != NULL) ss[n_ss++] = s;
  }
  qsort(ss, n_ss, sizeof(*ss), cmp_series);

  render_rpc(&o, ms, n_ms, load(&m->in_flight));
  render_named(&o, ss, n_ss);
  put_family(&o, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge");
  putf(&o, "process_start_time_seconds %.2f\n", m->start_time);
  put_family(&o, "scale_build_info", "The running build (the value is always 1).", "gauge");
  puts_(&o, "scale_build_info{version=\"");
  put_escaped(&o, m->version, true);
  puts_(&o, "\"} 1\n");
  if (o.failed) goto out;
  *out = o.p;
  *len = o.len;
  o.p = NULL;
  rc = 0;
out:
  free(o.p);
  free(ms);
  free(ss);
  return rc;
}
