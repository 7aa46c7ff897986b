/* scale-server: the modular monolith hosting SCALE's domain services.
 *
 *   scale-server [--services=LIST]      serve (all domains by default)
 *   scale-server migrate                apply the database migrations and exit
 *   scale-server --help | --version
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "domains.h"
#include "scale/auth.h"
#include "scale/config.h"
#include "scale/log.h"
#include "scale/metrics.h"
#include "scale/metrics_http.h"
#include "scale/migrate.h"
#include "scale/ping.h"
#include "scale/process.h"
#include "scale/rpc.h"

#ifndef SCALE_VERSION
#define SCALE_VERSION "0.0.0"
#endif

#define READY_POLL_MS 2000

static const char *const log_formats[] = {"json", "text", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", "off", NULL};

static struct {
  const char *grpc_addr, *services, *log_level, *log_format, *tls_cert, *tls_key, *tls_ca;
  const char *db_url, *redis_url, *jwt_secret, *jwt_key_file, *jwt_audience, *jwt_issuer, *page_secret;
  int64_t threads, max_message, max_streams, grace_ms, db_pool, db_timeout_ms, jwt_leeway, migrate_wait_s;
  const char *metrics_addr;
  bool migrate;
} cfg;

static const sc_config_var_t vars[] = {
    {"SCALE_GRPC_ADDR", SC_CFG_ADDR, "127.0.0.1:50051", "gRPC listen address (port 0: any free port)", &cfg.grpc_addr},
    {"SCALE_SERVICES", SC_CFG_STRING, NULL, "domains to serve, comma-separated (same as --services)", &cfg.services},
    {"SCALE_DATABASE_URL", SC_CFG_STRING, "postgresql://postgres@127.0.0.1:55432/scale", "PostgreSQL URL", &cfg.db_url},
    {"SCALE_DB_POOL_SIZE", SC_CFG_INT, "16", "database connections", &cfg.db_pool, 1, 1000},
    {"SCALE_DB_STATEMENT_TIMEOUT_MS", SC_CFG_INT, "30000", "longest a statement may run", &cfg.db_timeout_ms, 100,
     3600000},
    {"SCALE_MIGRATE", SC_CFG_BOOL, "on", "apply database migrations at start (off: run `scale-server migrate`)",
     &cfg.migrate},
    {"SCALE_MIGRATE_WAIT_S", SC_CFG_INT, "30", "at start, how long to wait for the database to come up",
     &cfg.migrate_wait_s, 0, 3600},
    {"SCALE_REDIS_URL", SC_CFG_STRING, "redis://127.0.0.1:56379/0", "Redis URL", &cfg.redis_url},
    {"SCALE_JWT_SECRET", SC_CFG_STRING, NULL, "HS256 secret for bearer tokens (at least 32 bytes)", &cfg.jwt_secret},
    {"SCALE_JWT_PUBLIC_KEY_FILE", SC_CFG_FILE, NULL, "PEM public key for RS256/ES256 bearer tokens", &cfg.jwt_key_file},
    {"SCALE_JWT_AUDIENCE", SC_CFG_STRING, "authenticated", "required aud claim", &cfg.jwt_audience},
    {"SCALE_JWT_ISSUER", SC_CFG_STRING, NULL, "required iss claim (unset: not checked)", &cfg.jwt_issuer},
    {"SCALE_PAGE_TOKEN_SECRET", SC_CFG_STRING, NULL,
     "key page tokens are signed with; unset: derived from SCALE_JWT_SECRET", &cfg.page_secret},
    {"SCALE_JWT_LEEWAY_S", SC_CFG_INT, "30", "clock skew allowed on exp/nbf, seconds", &cfg.jwt_leeway, 0, 300},
    {"SCALE_GRPC_THREADS", SC_CFG_INT, "0", "worker threads; 0: 2 x CPUs, at least 4", &cfg.threads, 0, 1024},
    {"SCALE_GRPC_MAX_MESSAGE_BYTES", SC_CFG_BYTES, "20M", "largest request message accepted", &cfg.max_message, 1024,
     (int64_t)1 << 30},
    {"SCALE_GRPC_MAX_STREAMS", SC_CFG_INT, "1024", "concurrent streaming calls", &cfg.max_streams, 1, 1000000},
    {"SCALE_METRICS_ADDR", SC_CFG_STRING, "127.0.0.1:9464", "Prometheus /metrics listen address (off: no listener)",
     &cfg.metrics_addr},
    {"SCALE_SHUTDOWN_GRACE_MS", SC_CFG_INT, "10000", "time in-flight calls get on SIGTERM before cancellation",
     &cfg.grace_ms, 0, 3600000},
    {"SCALE_LOG_LEVEL", SC_CFG_ENUM, "info", "debug, info, warn, error or off", &cfg.log_level, 0, 0, log_levels},
    {"SCALE_LOG_FORMAT", SC_CFG_ENUM, "json", "json (one object per line) or text", &cfg.log_format, 0, 0, log_formats},
    {"SCALE_TLS_CERT_FILE", SC_CFG_FILE, NULL, "PEM certificate chain; with the key, serve TLS", &cfg.tls_cert},
    {"SCALE_TLS_KEY_FILE", SC_CFG_FILE, NULL, "PEM private key", &cfg.tls_key},
    {"SCALE_TLS_CA_FILE", SC_CFG_FILE, NULL, "PEM CA; set: require client certificates it signed (mTLS)", &cfg.tls_ca},
};
#define N_VARS (sizeof(vars) / sizeof(vars[0]))

static void usage(FILE *out) {
  fprintf(out, "usage: scale-server [--services=LIST]\n"
               "       scale-server migrate\n"
               "       scale-server --help | --version\n"
               "\n"
               "Hosts SCALE's domain services over gRPC, with grpc.health.v1 and server\n"
               "reflection. LIST is a comma-separated subset of:");
  for (size_t i = 0; i < server_domain_count; i++)
    fprintf(out, "%s %s", i ? "," : "", server_domains[i].name);
  fprintf(out, "\n(default: all). scale.common.v1.PingService is always served.\n"
               "`migrate` applies the database migrations embedded in this binary and exits.\n"
               "\nHealth: \"\" (readiness: database and Redis reachable) and \"liveness\" (the\n"
               "process answers) besides each hosted service.\n\nEnvironment:\n");
  sc_config_help(out, vars, N_VARS);
}

/* Marks the domains named in `list` in `on`; returns -1 naming an unknown one. */
static int select_domains(const char *list, bool *on, sc_err_t *err) {
  if (list == NULL || *list == '\0' || strcmp(list, "all") == 0) {
    for (size_t i = 0; i < server_domain_count; i++)
      on[i] = true;
    return 0;
  }
  const char *p = list;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    bool found = false;
    for (size_t i = 0; i < server_domain_count; i++) {
      if (strlen(server_domains[i].name) == n && strncmp(server_domains[i].name, p, n) == 0) {
        on[i] = found = true;
      }
    }
    if (!found) {
      sc_err_set(err,
                 "--services: unknown domain '%.*s' (known: ingestion, accounts, categorization, "
                 "forecasting, training, anomaly)",
                 (int)n, p);
      return -1;
    }
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* Applies migrations, waiting up to SCALE_MIGRATE_WAIT_S for the database to
 * come up (containers often start before it). */
static int migrate(sc_pg_pool_t *pg, bool wait) {
  sc_err_t err = {{0}};
  for (int waited = 0;; waited++) {
    int applied = 0;
    sc_status_t st = sc_migrate_run(pg, sc_migrations, sc_migration_count, &applied, &err);
    if (st == SC_OK) {
      SC_LOG(SC_LOG_INFO, NULL, "migrations: %d applied, %zu known", applied, sc_migration_count);
      return 0;
    }
    if (st != SC_UNAVAILABLE || !wait || waited >= cfg.migrate_wait_s) {
      SC_LOG(SC_LOG_ERROR, NULL, "migrations failed: %s", err.msg);
      return -1;
    }
    if (waited == 0) SC_LOG(SC_LOG_WARN, NULL, "waiting for the database: %s", err.msg);
    sleep_ms(1000);
  }
}

/* Readiness: "" and every hosted service are SERVING while PostgreSQL and
 * Redis answer; "liveness" stays SERVING while the process does. */
typedef struct ready {
  sc_rpc_server_t *srv;
  server_deps_t *deps;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  const char *services[32];
  size_t n_services;
} ready_t;

static void set_all(ready_t *r, sc_health_status_t st) {
  sc_health_t *h = sc_rpc_server_health(r->srv);
  sc_health_set(h, "", st);
  for (size_t i = 0; i < r->n_services; i++)
    sc_health_set(h, r->services[i], st);
}

static void *ready_main(void *arg) {
  ready_t *r = arg;
  int last = -1;
  pthread_mutex_lock(&r->mu);
  while (!r->stop) {
    pthread_mutex_unlock(&r->mu);
    sc_err_t pg_why = {{0}}, redis_why = {{0}};
    sc_status_t pg = sc_pg_ping(r->deps->pg, &pg_why);
    sc_status_t rd = sc_redis_ping(r->deps->redis, &redis_why);
    int ok = pg == SC_OK && rd == SC_OK;
    if (ok != last) {
      if (ok) {
        SC_LOG(SC_LOG_INFO, NULL, "ready: database and Redis reachable");
      } else {
        SC_LOG(SC_LOG_WARN, NULL, "not ready:%s%s%s%s", pg == SC_OK ? "" : " database: ", pg == SC_OK ? "" : pg_why.msg,
               rd == SC_OK ? "" : " redis: ", rd == SC_OK ? "" : redis_why.msg);
      }
      last = ok;
    }
    pthread_mutex_lock(&r->mu);
    if (!r->stop) set_all(r, ok ? SC_HEALTH_SERVING : SC_HEALTH_NOT_SERVING);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += READY_POLL_MS / 1000;
    if (!r->stop) pthread_cond_timedwait(&r->cv, &r->mu, &until);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

int main(int argc, char **argv) {
  sc_process_block_signals();
  const char *services_flag = NULL;
  bool migrate_only = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("scale-server %s\n", SCALE_VERSION);
      return 0;
    } else if (strncmp(argv[i], "--services=", 11) == 0) {
      services_flag = argv[i] + 11;
    } else if (strcmp(argv[i], "migrate") == 0 && i == 1) {
      migrate_only = true;
    } else {
      fprintf(stderr, "scale-server: unknown argument '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }

  sc_err_t err = {{0}};
  if (sc_config_load(vars, N_VARS, &err) != 0) {
    fprintf(stderr, "scale-server: %s\n", err.msg);
    return 2;
  }
  sc_log_level_t level = SC_LOG_INFO;
  sc_log_level_parse(cfg.log_level, &level);
  sc_log_setup("scale-server", level, strcmp(cfg.log_format, "text") == 0 ? SC_LOG_TEXT : SC_LOG_JSON);
  if (sc_metrics_http_check_addr(cfg.metrics_addr, &err) != 0) {
    fprintf(stderr, "scale-server: SCALE_METRICS_ADDR=%s: %s\n", cfg.metrics_addr, err.msg);
    return 2;
  }

  bool on[16] = {false};
  if (select_domains(services_flag ? services_flag : cfg.services, on, &err) != 0) {
    fprintf(stderr, "scale-server: %s\n", err.msg);
    return 2;
  }

  int rc = 1;
  sc_auth_t *auth = NULL;
  sc_metrics_t *metrics = NULL;
  sc_metrics_http_t *metrics_http = NULL;
  sc_rpc_server_t *srv = NULL;
  server_deps_t deps = {0};
  ready_t ready = {.deps = &deps};
  pthread_t ready_thread;
  bool ready_started = false;

  sc_pg_opts_t pg_opts = {.url = cfg.db_url,
                          .max_conns = (int)cfg.db_pool,
                          .statement_timeout_ms = (int)cfg.db_timeout_ms,
                          .application_name = "scale-server"};
  deps.pg = sc_pg_pool_new(&pg_opts, &err);
  if (deps.pg == NULL) {
    fprintf(stderr, "scale-server: SCALE_DATABASE_URL: %s\n", err.msg);
    return 2;
  }
  if (migrate_only) {
    rc = migrate(deps.pg, false) == 0 ? 0 : 1;
    sc_pg_pool_free(deps.pg);
    return rc;
  }
  sc_redis_opts_t redis_opts = {.url = cfg.redis_url};
  deps.redis = sc_redis_new(&redis_opts, &err);
  if (deps.redis == NULL) {
    fprintf(stderr, "scale-server: SCALE_REDIS_URL: %s\n", err.msg);
    sc_pg_pool_free(deps.pg);
    return 2;
  }
  sc_auth_opts_t auth_opts = {.hs256_secret = cfg.jwt_secret,
                              .public_key_file = cfg.jwt_key_file,
                              .audience = cfg.jwt_audience,
                              .issuer = cfg.jwt_issuer,
                              .leeway_s = (int)cfg.jwt_leeway};
  auth = sc_auth_new(&auth_opts, &err);
  if (auth == NULL) {
    fprintf(stderr, "scale-server: %s\n", err.msg);
    rc = 2;
    goto out;
  }
  if (cfg.migrate && migrate(deps.pg, true) != 0) goto out;
  /* Replicas must agree on the page-token key, or a page fetched from one
   * cannot be continued on another. */
  deps.page_token_secret = cfg.page_secret && *cfg.page_secret ? cfg.page_secret : cfg.jwt_secret;
  if (deps.page_token_secret == NULL || *deps.page_token_secret == '\0') {
    deps.page_token_secret = NULL;
    SC_LOG(SC_LOG_WARN, NULL,
           "page tokens use a random per-process key (set SCALE_PAGE_TOKEN_SECRET when running replicas)");
  }

  sc_rpc_server_opts_t opts = {
      .addr = cfg.grpc_addr,
      .threads = (int)cfg.threads,
      .max_message_bytes = (size_t)cfg.max_message,
      .shutdown_grace_ms = (int)cfg.grace_ms,
      .max_streams = (int)cfg.max_streams,
      .tls_cert_file = cfg.tls_cert,
      .tls_key_file = cfg.tls_key,
      .tls_ca_file = cfg.tls_ca,
      .name = "scale-server",
      .version = SCALE_VERSION,
  };
  srv = sc_rpc_server_new(&opts, &err);
  if (srv == NULL) goto fail;
  metrics = sc_metrics_new();
  if (metrics == NULL) {
    sc_err_set(&err, "out of memory");
    goto fail;
  }
  sc_metrics_set_version(metrics, SCALE_VERSION);
  sc_rpc_service_t ping = sc_ping_service();
  sc_rpc_interceptor_t auth_ic = sc_auth_interceptor(auth), metrics_ic = sc_metrics_interceptor(metrics);
  /* Request ids first, so every later line and rejection carries one. */
  if (sc_rpc_server_add_interceptor(srv, &sc_rpc_request_id_interceptor, &err) != 0 ||
      sc_rpc_server_add_interceptor(srv, &sc_rpc_access_log_interceptor, &err) != 0 ||
      sc_rpc_server_add_interceptor(srv, &metrics_ic, &err) != 0 ||
      sc_rpc_server_add_interceptor(srv, &auth_ic, &err) != 0 || sc_rpc_server_add_service(srv, &ping, &err) != 0) {
    goto fail;
  }
  static sc_rpc_service_t domain_services[16];
  char served[256] = "";
  size_t used = 0;
  ready.srv = srv;
  for (size_t i = 0; i < server_domain_count; i++) {
    if (!on[i]) continue;
    domain_services[i] = server_domain_service(i, &deps);
    if (sc_rpc_server_add_service(srv, &domain_services[i], &err) != 0) goto fail;
    ready.services[ready.n_services++] = server_domains[i].descriptor->name;
    int w = snprintf(served + used, sizeof(served) - used, "%s%s", used ? "," : "", server_domains[i].name);
    if (w > 0 && (size_t)w < sizeof(served) - used) used += (size_t)w;
  }
  if (sc_rpc_server_start(srv, &err) != 0) goto fail;
  /* Before the "listening on" line, so whoever waits for it can scrape. */
  if (!sc_metrics_http_off(cfg.metrics_addr)) {
    metrics_http = sc_metrics_http_start(metrics, cfg.metrics_addr, &err);
    if (metrics_http == NULL) {
      fprintf(stderr, "scale-server: SCALE_METRICS_ADDR: %s\n", err.msg);
      goto out;
    }
    const char *mcolon = strrchr(cfg.metrics_addr, ':');
    SC_LOG(SC_LOG_INFO, NULL, "metrics on http://%.*s:%d/metrics", (int)(mcolon - cfg.metrics_addr), cfg.metrics_addr,
           sc_metrics_http_port(metrics_http));
  }
  sc_health_set(sc_rpc_server_health(srv), "liveness", SC_HEALTH_SERVING);
  pthread_mutex_init(&ready.mu, NULL);
  pthread_cond_init(&ready.cv, NULL);
  ready_started = pthread_create(&ready_thread, NULL, ready_main, &ready) == 0;

  /* Report the bound port (the address may have asked for port 0). */
  const char *colon = strrchr(cfg.grpc_addr, ':');
  int hostlen = colon ? (int)(colon - cfg.grpc_addr) : 0;
  SC_LOG(SC_LOG_INFO, NULL, "listening on %.*s:%d (gRPC%s), services: %s", hostlen, cfg.grpc_addr,
         sc_rpc_server_port(srv), cfg.tls_cert ? (cfg.tls_ca ? ", mutual TLS" : ", TLS") : ", plaintext", served);

  int sig = sc_process_wait_signal();
  SC_LOG(SC_LOG_INFO, NULL, "signal %d: shutting down (grace %lld ms)", sig, (long long)cfg.grace_ms);
  if (ready_started) {
    pthread_mutex_lock(&ready.mu);
    ready.stop = true;
    pthread_cond_broadcast(&ready.cv);
    pthread_mutex_unlock(&ready.mu);
    pthread_join(ready_thread, NULL);
  }
  sc_metrics_http_stop(metrics_http);
  metrics_http = NULL;
  sc_rpc_server_free(srv);
  srv = NULL;
  SC_LOG(SC_LOG_INFO, NULL, "stopped");
  rc = 0;
  goto out;

fail:
  fprintf(stderr, "scale-server: %s\n", err.msg);
out:
  sc_metrics_http_stop(metrics_http);
  sc_rpc_server_free(srv);
  sc_metrics_free(metrics);
  sc_auth_free(auth);
  sc_redis_free(deps.redis);
  sc_pg_pool_free(deps.pg);
  if (ready_started) {
    pthread_mutex_destroy(&ready.mu);
    pthread_cond_destroy(&ready.cv);
  }
  return rc;
}
