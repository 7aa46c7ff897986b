/* The metrics registry and its /metrics listener: the exposition format
 * (checked line by line), exact totals under concurrency, the cap on method
 * series, and the interceptor on a real server. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "scale/common/v1/ping.pb-c.h"
#include "scale/metrics.h"
#include "scale/metrics_http.h"
#include "scale/ping.h"
#include "scale/rpc.h"
#include "scale/rpc_client.h"

#define PING "/scale.common.v1.PingService/Ping"
#define MS 1000000LL /* nanoseconds */

static char *render(const sc_metrics_t *m) {
  char *out = NULL;
  size_t len = 0;
  cr_assert_eq(sc_metrics_render(m, &out, &len), 0);
  cr_assert_not_null(out);
  cr_assert_eq(strlen(out), len);
  return out;
}

/* True when `line` is a whole line of text. */
static bool has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
    if ((p == text || p[-1] == '\n') && p[n] == '\n') return true;
  }
  return false;
}

/* The value of the sample whose name and labels are exactly `series`; -1 when absent. */
static double value_of(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *p = text; (p = strstr(p, series)) != NULL; p++) {
    if ((p == text || p[-1] == '\n') && p[n] == ' ') return strtod(p + n + 1, NULL);
  }
  return -1;
}

/* ---- a strict reader of the text format, for our own output ---------------- */

static bool is_name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

static const char *parse_name(const char *p, char *name, size_t cap) {
  size_t n = 0;
  while (is_name_char(p[n], n == 0))
    n++;
  if (n == 0 || n >= cap) return NULL;
  memcpy(name, p, n);
  name[n] = '\0';
  return p + n;
}

/* {name="value",...}: only \\, \" and \n escapes; no raw newline. */
static const char *parse_labels(const char *p) {
  if (*p != '{') return p;
  p++;
  while (*p != '}') {
    char label[128];
    p = parse_name(p, label, sizeof(label));
    if (p == NULL || strchr(label, ':') || *p++ != '=' || *p++ != '"') return NULL;
    while (*p != '"') {
      if (*p == '\0' || *p == '\n') return NULL;
      if (*p == '\\') {
        p++;
        if (*p != '\\' && *p != '"' && *p != 'n') return NULL;
      }
      p++;
    }
    p++;
    if (*p == ',') {
      p++;
    } else if (*p != '}') {
      return NULL;
    }
  }
  return p + 1;
}

/* NULL when the text is well-formed, else the offending line. */
static char *check_exposition(const char *text) {
  static char bad[512];
  char family[128] = "", type[32] = "", helped[128] = "";
  char seen[64][128];
  size_t n_seen = 0;
  if (*text == '\0' || text[strlen(text) - 1] != '\n') return "(no final newline)";
  for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
    size_t len = (size_t)(strchr(line, '\n') - line);
    snprintf(bad, sizeof(bad), "%.*s", (int)len, line);
    char name[128];
    if (strncmp(line, "# HELP ", 7) == 0) {
      const char *p = parse_name(line + 7, name, sizeof(name));
      if (p == NULL || (*p != ' ' && *p != '\n')) return bad;
      for (; *p != '\n'; p++) {
        if (*p == '\\' && p[1] != '\\' && p[1] != 'n') return bad;
        if (*p == '\\') p++;
      }
      snprintf(helped, sizeof(helped), "%s", name);
    } else if (strncmp(line, "# TYPE ", 7) == 0) {
      const char *p = parse_name(line + 7, name, sizeof(name));
      if (p == NULL || *p != ' ' || strcmp(name, helped) != 0) return bad;
      for (size_t i = 0; i < n_seen; i++)
        if (strcmp(seen[i], name) == 0) return bad; /* a family appears once */
      if (n_seen < 64) snprintf(seen[n_seen++], sizeof(seen[0]), "%s", name);
      snprintf(family, sizeof(family), "%s", name);
      snprintf(type, sizeof(type), "%.*s", (int)(line + len - p - 1), p + 1);
      if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram")) return bad;
    } else {
      const char *p = parse_name(line, name, sizeof(name));
      if (p == NULL || family[0] == '\0') return bad;
      size_t fl = strlen(family);
      bool ok = strcmp(name, family) == 0;
      if (strcmp(type, "histogram") == 0) {
        ok = strncmp(name, family, fl) == 0 &&
             (!strcmp(name + fl, "_bucket") || !strcmp(name + fl, "_sum") || !strcmp(name + fl, "_count"));
      }
      if (!ok) return bad;
      p = parse_labels(p);
      if (p == NULL || *p != ' ') return bad;
      char *end;
      strtod(p + 1, &end);
      if (end == p + 1 || *end != '\n') return bad;
    }
  }
  return NULL;
}

#define assert_well_formed(text)                                                                                       \
  do {                                                                                                                 \
    char *why_ = check_exposition(text);                                                                               \
    cr_assert_null(why_, "malformed line: %s\nin:\n%s", why_, text);                                                   \
  } while (0)

Test(metrics, the_checker_refuses_malformed_text) {
  const char *bad[] = {
      "# HELP a A.\n# TYPE a counter\na 1",                             /* no final newline */
      "# HELP a A.\na 1\n",                                             /* no TYPE */
      "# TYPE a counter\na 1\n",                                        /* no HELP */
      "# HELP a A.\n# TYPE a counter\nb 1\n",                           /* sample of another family */
      "# HELP a A.\n# TYPE a counter\na{x=\"\\t\"} 1\n",                /* bad escape */
      "# HELP a A.\n# TYPE a counter\na{x=\"v} 1\n",                    /* unterminated value */
      "# HELP a A.\n# TYPE a counter\na one\n",                         /* not a number */
      "# HELP a A.\n# TYPE a counter\n# HELP a A.\n# TYPE a counter\n", /* family twice */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_assert_not_null(check_exposition(bad[i]), "accepted: %s", bad[i]);
  cr_assert_null(check_exposition("# HELP a A \\\\ \\n.\n# TYPE a counter\na{x=\"\\\"\\n\"} 1\n"));
}

/* ---- the registry ------------------------------------------------------------ */

Test(metrics, an_empty_registry_renders_every_family) {
  sc_metrics_t *m = sc_metrics_new();
  cr_assert_not_null(m);
  sc_metrics_set_version(m, "1.2.3");
  char *text = render(m);
  assert_well_formed(text);
  cr_assert(has_line(text, "# TYPE scale_rpc_requests_total counter"), "%s", text);
  cr_assert(has_line(text, "# TYPE scale_rpc_duration_seconds histogram"));
  cr_assert(has_line(text, "# TYPE scale_rpc_in_flight gauge"));
  cr_assert(has_line(text, "scale_rpc_in_flight 0"));
  cr_assert(has_line(text, "scale_build_info{version=\"1.2.3\"} 1"));
  /* Unused series are not exposed. */
  cr_assert_null(strstr(text, "scale_rpc_requests_total{"));
  double start = value_of(text, "process_start_time_seconds");
  time_t now = time(NULL);
  cr_assert(start > (double)now - 3600 && start <= (double)now + 1, "start %f, now %lld", start, (long long)now);
  free(text);
  sc_metrics_free(m);
  sc_metrics_free(NULL);
}

Test(metrics, calls_count_by_method_and_grpc_code) {
  sc_metrics_t *m = sc_metrics_new();
  for (int i = 0; i < 3; i++) {
    sc_metrics_rpc_begin(m);
    sc_metrics_rpc_end(m, PING, SC_OK, 2 * MS);
  }
  sc_metrics_rpc_begin(m);
  sc_metrics_rpc_end(m, PING, SC_INVALID_ARGUMENT, MS);
  /* Refinements count as the code the client saw. */
  sc_metrics_rpc_begin(m);
  sc_metrics_rpc_end(m, PING, SC_RATE_LIMITED, MS);
  sc_metrics_rpc_begin(m);
  sc_metrics_rpc_end(m, PING, SC_PAYLOAD_TOO_LARGE, MS);
  sc_metrics_rpc_begin(m); /* still running */
  char *text = render(m);
  assert_well_formed(text);
  cr_assert(has_line(text, "scale_rpc_requests_total{method=\"" PING "\",code=\"OK\"} 3"), "%s", text);
  cr_assert(has_line(text, "scale_rpc_requests_total{method=\"" PING "\",code=\"INVALID_ARGUMENT\"} 1"));
  cr_assert(has_line(text, "scale_rpc_requests_total{method=\"" PING "\",code=\"RESOURCE_EXHAUSTED\"} 2"));
  cr_assert_null(strstr(text, "RATE_LIMITED"));
  cr_assert(has_line(text, "scale_rpc_duration_seconds_count{method=\"" PING "\"} 6"));
  cr_assert(has_line(text, "scale_rpc_duration_seconds_sum{method=\"" PING "\"} 0.009000000"));
  cr_assert(has_line(text, "scale_rpc_in_flight 1"));
  free(text);
  sc_metrics_free(m);
}

Test(metrics, histogram_buckets_are_cumulative_with_inclusive_bounds) {
  sc_metrics_t *m = sc_metrics_new();
  /* 0.3 ms, exactly 0.5 ms (le is inclusive), 0.7 ms, 3 ms, 200 ms, 20 s. */
  const int64_t obs[] = {300000, 500000, 700000, 3 * MS, 200 * MS, 20000 * MS};
  for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
    sc_metrics_rpc_begin(m);
    sc_metrics_rpc_end(m, PING, SC_OK, obs[i]);
  }
  sc_metrics_rpc_begin(m);
  sc_metrics_rpc_end(m, PING, SC_OK, -5); /* a clock oddity counts as 0 */
  char *text = render(m);
  assert_well_formed(text);
  static const struct {
    const char *le;
    int count;
  } want[] = {{"0.0005", 3}, {"0.001", 4}, {"0.0025", 4}, {"0.005", 5}, {"0.01", 5},
              {"0.025", 5},  {"0.05", 5},  {"0.1", 5},    {"0.25", 6},  {"0.5", 6},
              {"1", 6},      {"2.5", 6},   {"5", 6},      {"10", 6},    {"+Inf", 7}};
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    char line[256];
    snprintf(line, sizeof(line), "scale_rpc_duration_seconds_bucket{method=\"%s\",le=\"%s\"} %d", PING, want[i].le,
             want[i].count);
    cr_assert(has_line(text, line), "missing %s in\n%s", line, text);
  }
  cr_assert(has_line(text, "scale_rpc_duration_seconds_count{method=\"" PING "\"} 7"));
  cr_assert(has_line(text, "scale_rpc_duration_seconds_sum{method=\"" PING "\"} 20.204500000"), "%s", text);
  /* Buckets come in order, +Inf last, then _sum and _count. */
  const char *inf = strstr(text, "le=\"+Inf\"");
  cr_assert(inf && strstr(text, "le=\"10\"") < inf && strstr(text, "_sum{") > inf);
  free(text);
  sc_metrics_free(m);
}

Test(metrics, label_values_and_help_are_escaped) {
  sc_metrics_t *m = sc_metrics_new();
  sc_metrics_rpc_begin(m);
  sc_metrics_rpc_end(m, "/a\"b\\c/D", SC_OK, MS);
  sc_err_t err = {{0}};
  sc_metric_t *c = sc_metrics_counter(m, "scale_test_escapes_total", "back\\slash and\nnewline \"kept\"", "why",
                                      "quote\" slash\\ newline\n end", &err);
  cr_assert_not_null(c, "%s", err.msg);
  sc_metric_add(c, 2);
  sc_metrics_set_version(m, "v\"1\"");
  char *text = render(m);
  assert_well_formed(text);
  cr_assert(has_line(text, "scale_rpc_requests_total{method=\"/a\\\"b\\\\c/D\",code=\"OK\"} 1"), "%s", text);
  cr_assert(has_line(text, "# HELP scale_test_escapes_total back\\\\slash and\\nnewline \"kept\""), "%s", text);
  cr_assert(has_line(text, "scale_test_escapes_total{why=\"quote\\\" slash\\\\ newline\\n end\"} 2"), "%s", text);
  cr_assert(has_line(text, "scale_build_info{version=\"v\\\"1\\\"\"} 1"));
  free(text);
  sc_metrics_free(m);
}

Test(metrics, named_counters_and_gauges) {
  sc_metrics_t *m = sc_metrics_new();
  const char *help = "Calls answered while the database was down.";
  cr_assert_eq(sc_metrics_counter_add(m, "scale_db_unavailable_total", help, 1), 0);
  cr_assert_eq(sc_metrics_counter_add(m, "scale_db_unavailable_total", help, 4), 0);
  cr_assert_eq(sc_metrics_gauge_set(m, "scale_redis_fallback", "1 while Redis is bypassed.", 1), 0);
  cr_assert_eq(sc_metrics_gauge_add(m, "scale_queue_depth", "Jobs waiting.", 5), 0);
  cr_assert_eq(sc_metrics_gauge_add(m, "scale_queue_depth", "Jobs waiting.", -7), 0);
  sc_err_t err = {{0}};
  sc_metric_t *ip = sc_metrics_counter(m, "scale_rate_limited_total", "Requests refused.", "scope", "ip", &err);
  sc_metric_t *user =
      sc_metrics_counter(m, "scale_rate_limited_total", "Other help: the first wins.", "scope", "user", &err);
  cr_assert(ip && user && ip != user, "%s", err.msg);
  cr_assert_eq(sc_metrics_counter(m, "scale_rate_limited_total", NULL, "scope", "ip", &err), ip, "same handle");
  sc_metric_add(ip, 3);
  sc_metric_add(ip, -100); /* counters only go up */
  sc_metric_set(ip, 0);    /* nor can they be set */
  cr_assert_eq(sc_metric_value(ip), 3);
  sc_metric_add(NULL, 1); /* a failed registration is harmless to use */

  /* Refusals say why and change nothing. */
  cr_assert_null(sc_metrics_gauge(m, "scale_db_unavailable_total", "x", NULL, NULL, &err));
  cr_assert(strstr(err.msg, "is a counter"), "%s", err.msg);
  cr_assert_eq(sc_metrics_gauge_set(m, "scale_rate_limited_total", "x", 1), -1, "family type is fixed");
  cr_assert_null(sc_metrics_counter(m, "2bad", "x", NULL, NULL, &err));
  cr_assert_null(sc_metrics_counter(m, "bad-name", "x", NULL, NULL, &err));
  cr_assert_null(sc_metrics_counter(m, "scale_rpc_requests_total", "x", NULL, NULL, &err));
  cr_assert(strstr(err.msg, "reserved"), "%s", err.msg);
  cr_assert_null(sc_metrics_counter(m, "process_cpu_seconds_total", "x", NULL, NULL, &err));
  cr_assert_null(sc_metrics_counter(m, "scale_x_total", "x", "bad:label", "v", &err));
  cr_assert_null(sc_metrics_counter(m, "scale_x_total", "x", "__reserved", "v", &err));
  cr_assert_null(sc_metrics_counter(m, "scale_x_total", "x", "label", NULL, &err));

  char *text = render(m);
  assert_well_formed(text);
  cr_assert(has_line(text, "# TYPE scale_db_unavailable_total counter"));
  cr_assert(has_line(text, "scale_db_unavailable_total 5"), "%s", text);
  cr_assert(has_line(text, "# TYPE scale_redis_fallback gauge"));
  cr_assert(has_line(text, "scale_redis_fallback 1"));
  cr_assert(has_line(text, "scale_queue_depth -2"));
  cr_assert(has_line(text, "# HELP scale_rate_limited_total Requests refused."));
  cr_assert(has_line(text, "scale_rate_limited_total{scope=\"ip\"} 3"));
  cr_assert(has_line(text, "scale_rate_limited_total{scope=\"user\"} 0"));
  cr_assert_null(strstr(text, "scale_x_total"));
  free(text);

  /* The series cap holds. */
  int made = 0;
  for (int i = 0; i < 2 * SC_METRICS_MAX_SERIES; i++) {
    char name[64];
    snprintf(name, sizeof(name), "scale_many_%d", i);
    if (sc_metrics_counter_add(m, name, "many", 1) == 0) made++;
  }
  cr_assert_eq(made, SC_METRICS_MAX_SERIES - 5, "5 series existed before");
  text = render(m);
  assert_well_formed(text);
  free(text);
  sc_metrics_free(m);
}

Test(metrics, method_series_are_capped_and_the_rest_is_other) {
  sc_metrics_t *m = sc_metrics_new();
  const int extra = 88;
  for (int i = 0; i < SC_METRICS_MAX_METHODS + extra; i++) {
    char path[64];
    snprintf(path, sizeof(path), "/random.Service%d/M", i);
    sc_metrics_rpc_begin(m);
    sc_metrics_rpc_end(m, path, SC_UNIMPLEMENTED, MS);
  }
  /* Methods seen before the cap keep their own series. */
  sc_metrics_rpc_begin(m);
  sc_metrics_rpc_end(m, "/random.Service0/M", SC_UNIMPLEMENTED, MS);
  /* Unprintable, empty, missing and overlong methods are never stored. */
  char longpath[SC_METRICS_MAX_METHOD_LEN + 2];
  memset(longpath, 'a', sizeof(longpath) - 1);
  longpath[sizeof(longpath) - 1] = '\0';
  const char *odd[] = {"/with space/M", "/nl\n/M", "", NULL, longpath, "/\xc3\xa9/M"};
  for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
    sc_metrics_rpc_begin(m);
    sc_metrics_rpc_end(m, odd[i], SC_UNIMPLEMENTED, MS);
  }
  char *text = render(m);
  assert_well_formed(text);
  size_t series = 0;
  for (const char *p = text; (p = strstr(p, "\nscale_rpc_requests_total{")) != NULL; p++)
    series++;
  cr_assert_eq(series, SC_METRICS_MAX_METHODS + 1, "512 methods and other");
  char line[128];
  snprintf(line, sizeof(line), "scale_rpc_requests_total{method=\"other\",code=\"UNIMPLEMENTED\"} %d",
           extra + (int)(sizeof(odd) / sizeof(odd[0])));
  cr_assert(has_line(text, line), "missing %s", line);
  cr_assert(has_line(text, "scale_rpc_requests_total{method=\"/random.Service0/M\",code=\"UNIMPLEMENTED\"} 2"));
  cr_assert_null(strstr(text, "with space"));
  free(text);
  sc_metrics_free(m);
}

/* ---- concurrency ------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 10000

typedef struct worker_arg {
  sc_metrics_t *m;
  sc_metric_t *counter;
  int id;
} worker_arg_t;

static const char *const methods[] = {PING, "/scale.accounts.v1.AccountsService/GetProfile",
                                      "/scale.ingestion.v1.IngestionService/ImportStatement"};

static void *hammer(void *p) {
  worker_arg_t *a = p;
  for (int i = 0; i < PER_THREAD; i++) {
    sc_metrics_rpc_begin(a->m);
    /* Distinct per-thread paths race on first sight too. */
    char mine[64];
    const char *method = methods[i % 3];
    if (i % 100 == 0) {
      snprintf(mine, sizeof(mine), "/t%d.S/M%d", a->id, i % 7);
      method = mine;
    }
    sc_metrics_rpc_end(a->m, method, i % 2 ? SC_OK : SC_NOT_FOUND, (int64_t)(i % 50) * 100000);
    sc_metric_add(a->counter, 1);
    sc_metrics_gauge_add(a->m, "scale_test_gauge", "gauge", i % 2 ? 1 : -1);
  }
  return NULL;
}

Test(metrics, concurrent_observations_are_exact) {
  sc_metrics_t *m = sc_metrics_new();
  sc_metric_t *c = sc_metrics_counter(m, "scale_test_total", "test", NULL, NULL, NULL);
  pthread_t t[THREADS];
  worker_arg_t args[THREADS];
  for (int i = 0; i < THREADS; i++) {
    args[i] = (worker_arg_t){m, c, i};
    cr_assert_eq(pthread_create(&t[i], NULL, hammer, &args[i]), 0);
  }
  /* Scrapes while the workers run must stay well-formed. */
  for (int i = 0; i < 20; i++) {
    char *text = render(m);
    assert_well_formed(text);
    free(text);
  }
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);

  char *text = render(m);
  assert_well_formed(text);
  double total = 0, hist = 0;
  for (const char *p = text; (p = strstr(p, "\nscale_rpc_requests_total{")) != NULL; p++)
    total += strtod(strchr(p, '}') + 2, NULL);
  for (const char *p = text; (p = strstr(p, "\nscale_rpc_duration_seconds_count{")) != NULL; p++)
    hist += strtod(strchr(p, '}') + 2, NULL);
  cr_assert_eq((long)total, THREADS * PER_THREAD, "%f", total);
  cr_assert_eq((long)hist, THREADS * PER_THREAD);
  cr_assert(has_line(text, "scale_rpc_in_flight 0"));
  cr_assert(has_line(text, "scale_test_total 80000"));
  cr_assert(has_line(text, "scale_test_gauge 0"));
  /* Per method: Ping gets i%3==0, less the i%100==0 that went to per-thread paths. */
  int ping_ok = 0, ping_nf = 0;
  for (int i = 0; i < PER_THREAD; i++) {
    if (i % 3 != 0 || i % 100 == 0) continue;
    if (i % 2) {
      ping_ok++;
    } else {
      ping_nf++;
    }
  }
  char line[160];
  snprintf(line, sizeof(line), "scale_rpc_requests_total{method=\"%s\",code=\"OK\"} %d", PING, THREADS * ping_ok);
  cr_assert(has_line(text, line), "missing %s", line);
  snprintf(line, sizeof(line), "scale_rpc_requests_total{method=\"%s\",code=\"NOT_FOUND\"} %d", PING,
           THREADS * ping_nf);
  cr_assert(has_line(text, line), "missing %s", line);
  /* Each thread's 7 distinct paths each got a series of their own. */
  cr_assert(has_line(text, "scale_rpc_requests_total{method=\"/t3.S/M6\",code=\"NOT_FOUND\"} 14"), "%s", text);
  free(text);
  sc_metrics_free(m);
}

/* Not a test of speed (nothing is asserted on time): prints what one
 * before+after pair costs, the interceptor's whole work per call. */
Test(metrics, bench_interceptor_pair) {
  sc_metrics_t *m = sc_metrics_new();
  const int n = 1000000;
  struct timespec a, b;
  sc_metrics_rpc_begin(m);
  sc_metrics_rpc_end(m, PING, SC_OK, MS); /* first sight outside the timing */
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < n; i++) {
    sc_metrics_rpc_begin(m);
    sc_metrics_rpc_end(m, PING, SC_OK, (int64_t)i);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
  fprintf(stderr, "metrics: %.1f ns per before+after pair (%s build, one thread)\n", ns,
#if defined(__SANITIZE_ADDRESS__)
          "sanitizer"
#else
          "plain"
#endif
  );
  sc_metrics_free(m);
}

/* ---- the interceptor on a real server, and the listener ------------------------ */

static sc_status_t deny_before(sc_call_t *call, void *d) {
  (void)d;
  if (sc_call_metadata(call, "x-deny") != NULL) return sc_call_fail(call, SC_UNAUTHENTICATED, "denied");
  return SC_OK;
}

/* One HTTP/1.0 exchange with the listener; the whole response, malloc'd. */
static char *http(int port, const char *request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  size_t n = strlen(request);
  cr_assert_eq(write(fd, request, n), (ssize_t)n);
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r <= 0) break;
    len += (size_t)r;
  }
  buf[len] = '\0';
  close(fd);
  return buf;
}

Test(metrics, interceptor_and_listener_on_a_real_server, .timeout = 60) {
  sc_metrics_t *m = sc_metrics_new();
  sc_err_t err = {{0}};
  sc_rpc_server_opts_t o = {.addr = "127.0.0.1:0", .threads = 2, .name = "test-server", .version = "9.9.9"};
  sc_rpc_server_t *srv = sc_rpc_server_new(&o, &err);
  cr_assert_not_null(srv, "%s", err.msg);
  sc_rpc_service_t ping = sc_ping_service();
  sc_rpc_interceptor_t mic = sc_metrics_interceptor(m), deny = {"deny", deny_before, NULL, NULL};
  cr_assert_eq(sc_rpc_server_add_interceptor(srv, &sc_rpc_request_id_interceptor, &err), 0);
  cr_assert_eq(sc_rpc_server_add_interceptor(srv, &mic, &err), 0);
  cr_assert_eq(sc_rpc_server_add_interceptor(srv, &deny, &err), 0);
  cr_assert_eq(sc_rpc_server_add_service(srv, &ping, &err), 0, "%s", err.msg);
  cr_assert_eq(sc_rpc_server_start(srv, &err), 0, "%s", err.msg);
  sc_metrics_http_t *h = sc_metrics_http_start(m, "127.0.0.1:0", &err);
  cr_assert_not_null(h, "%s", err.msg);
  int port = sc_metrics_http_port(h);
  cr_assert_gt(port, 0);

  char target[64];
  snprintf(target, sizeof(target), "127.0.0.1:%d", sc_rpc_server_port(srv));
  sc_rpc_channel_t *ch = sc_rpc_channel_new(target, NULL, &err);
  cr_assert_not_null(ch, "%s", err.msg);
  sc_arena_t *arena = sc_arena_new(0);
  Scale__Common__V1__PingRequest req = SCALE__COMMON__V1__PING_REQUEST__INIT;
  req.message = "hi";
  ProtobufCMessage *r;
  const ProtobufCMessageDescriptor *d = &scale__common__v1__ping_response__descriptor;
  for (int i = 0; i < 3; i++)
    cr_assert_eq(sc_rpc_call_unary(ch, PING, &req.base, d, NULL, 0, 5000, arena, &r, NULL), SC_OK);
  sc_rpc_md_t md[] = {{"x-deny", "1"}};
  cr_assert_eq(sc_rpc_call_unary(ch, PING, &req.base, d, md, 1, 5000, arena, &r, NULL), SC_UNAUTHENTICATED);
  cr_assert_eq(sc_rpc_call_unary(ch, "/no.Such/Method", &req.base, d, NULL, 0, 5000, arena, &r, NULL),
               SC_UNIMPLEMENTED);

  char *resp = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
  cr_assert(strncmp(resp, "HTTP/1.", 7) == 0 && strncmp(resp + 8, " 200", 4) == 0, "%s", resp);
  cr_assert(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "%s", resp);
  char *body = strstr(resp, "\r\n\r\n");
  cr_assert_not_null(body);
  body += 4;
  assert_well_formed(body);
  cr_assert(has_line(body, "scale_rpc_requests_total{method=\"" PING "\",code=\"OK\"} 3"), "%s", body);
  cr_assert(has_line(body, "scale_rpc_requests_total{method=\"" PING "\",code=\"UNAUTHENTICATED\"} 1"));
  cr_assert(has_line(body, "scale_rpc_requests_total{method=\"/no.Such/Method\",code=\"UNIMPLEMENTED\"} 1"));
  cr_assert(has_line(body, "scale_rpc_duration_seconds_count{method=\"" PING "\"} 4"));
  cr_assert(has_line(body, "scale_rpc_in_flight 0"));
  free(resp);

  resp = http(port, "GET /other HTTP/1.0\r\n\r\n");
  cr_assert(strncmp(resp + 8, " 404", 4) == 0, "%s", resp);
  free(resp);
  resp = http(port, "GET /metrics/x HTTP/1.0\r\n\r\n");
  cr_assert(strncmp(resp + 8, " 404", 4) == 0, "%s", resp);
  free(resp);
  resp = http(port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
  cr_assert(strncmp(resp + 8, " 405", 4) == 0, "%s", resp);
  cr_assert(strstr(resp, "\r\nAllow: GET, HEAD\r\n"), "%s", resp);
  free(resp);
  resp = http(port, "HEAD /metrics HTTP/1.0\r\n\r\n");
  cr_assert(strncmp(resp + 8, " 200", 4) == 0, "%s", resp);
  cr_assert(strstr(resp, "scale_rpc") == NULL, "HEAD has no body");
  free(resp);

  sc_metrics_http_stop(h);
  sc_rpc_channel_free(ch);
  sc_rpc_server_free(srv);
  sc_arena_free(arena);
  sc_metrics_free(m);
}

Test(metrics, listener_addresses_are_checked) {
  sc_metrics_t *m = sc_metrics_new();
  sc_err_t err = {{0}};
  cr_assert(sc_metrics_http_off("off") && sc_metrics_http_off("OFF") && !sc_metrics_http_off("127.0.0.1:1"));
  cr_assert_eq(sc_metrics_http_check_addr("off", &err), 0);
  cr_assert_eq(sc_metrics_http_check_addr("[::1]:9464", &err), 0);
  cr_assert_eq(sc_metrics_http_check_addr("nonsense", &err), -1);
  cr_assert_eq(sc_metrics_http_check_addr("127.0.0.1:99999", &err), -1);
  cr_assert_eq(sc_metrics_http_check_addr("unix:/tmp/x", &err), -1);
  cr_assert_null(sc_metrics_http_start(m, "off", &err));
  cr_assert_null(sc_metrics_http_start(m, "nonsense", &err));

  /* A port someone else holds: refused, saying so. */
  sc_metrics_http_t *a = sc_metrics_http_start(m, "127.0.0.1:0", &err);
  cr_assert_not_null(a, "%s", err.msg);
  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", sc_metrics_http_port(a));
  err.msg[0] = '\0';
  cr_assert_null(sc_metrics_http_start(m, addr, &err));
  cr_assert(strstr(err.msg, "cannot listen on") && strstr(err.msg, addr), "%s", err.msg);
  sc_metrics_http_stop(a);
  sc_metrics_http_stop(NULL);

  /* IPv6 loopback, where the machine has it. */
  sc_metrics_http_t *v6 = sc_metrics_http_start(m, "[::1]:0", &err);
  if (v6 != NULL) {
    cr_assert_gt(sc_metrics_http_port(v6), 0);
    sc_metrics_http_stop(v6);
  }
  sc_metrics_free(m);
}
