/* scale-server: the modular monolith hosting SCALE's domain services.
 *
 *   scale-server [--services=LIST]      serve (all domains by default)
 *   scale-server --help | --version
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domains.h"
#include "scale/config.h"
#include "scale/log.h"
#include "scale/ping.h"
#include "scale/process.h"
#include "scale/rpc.h"

#ifndef SCALE_VERSION
#define SCALE_VERSION "0.0.0"
#endif

static const char *const log_formats[] = {"json", "text", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", "off", NULL};

static struct {
  const char *grpc_addr, *services, *log_level, *log_format, *tls_cert, *tls_key, *tls_ca;
  int64_t threads, max_message, max_streams, grace_ms;
} cfg;

static const sc_config_var_t vars[] = {
    {"SCALE_GRPC_ADDR", SC_CFG_ADDR, "127.0.0.1:50051", "gRPC listen address (port 0: any free port)",
     &cfg.grpc_addr},
    {"SCALE_SERVICES", SC_CFG_STRING, NULL, "domains to serve, comma-separated (same as --services)",
     &cfg.services},
    {"SCALE_GRPC_THREADS", SC_CFG_INT, "0", "worker threads; 0: 2 x CPUs, at least 4", &cfg.threads, 0, 1024},
    {"SCALE_GRPC_MAX_MESSAGE_BYTES", SC_CFG_BYTES, "20M", "largest request message accepted", &cfg.max_message,
     1024, (int64_t)1 << 30},
    {"SCALE_GRPC_MAX_STREAMS", SC_CFG_INT, "1024", "concurrent streaming calls", &cfg.max_streams, 1, 1000000},
    {"SCALE_SHUTDOWN_GRACE_MS", SC_CFG_INT, "10000", "time in-flight calls get on SIGTERM before cancellation",
     &cfg.grace_ms, 0, 3600000},
    {"SCALE_LOG_LEVEL", SC_CFG_ENUM, "info", "debug, info, warn, error or off", &cfg.log_level, 0, 0, log_levels},
    {"SCALE_LOG_FORMAT", SC_CFG_ENUM, "json", "json (one object per line) or text", &cfg.log_format, 0, 0,
     log_formats},
    {"SCALE_TLS_CERT_FILE", SC_CFG_FILE, NULL, "PEM certificate chain; with the key, serve TLS", &cfg.tls_cert},
    {"SCALE_TLS_KEY_FILE", SC_CFG_FILE, NULL, "PEM private key", &cfg.tls_key},
    {"SCALE_TLS_CA_FILE", SC_CFG_FILE, NULL, "PEM CA; set: require client certificates it signed (mTLS)",
     &cfg.tls_ca},
};
#define N_VARS (sizeof(vars) / sizeof(vars[0]))

static void usage(FILE *out) {
  fprintf(out,
          "usage: scale-server [--services=LIST] [--help] [--version]\n"
          "\n"
          "Hosts SCALE's domain services over gRPC, with grpc.health.v1 and server\n"
          "reflection. LIST is a comma-separated subset of:");
  for (size_t i = 0; i < server_domain_count; i++) fprintf(out, "%s %s", i ? "," : "", server_domains[i].name);
  fprintf(out, "\n(default: all). scale.common.v1.PingService is always served.\n\nEnvironment:\n");
  sc_config_help(out, vars, N_VARS);
}

/* Marks the domains named in `list` in `on`; returns -1 naming an unknown one. */
static int select_domains(const char *list, bool *on, sc_err_t *err) {
  if (list == NULL || *list == '\0' || strcmp(list, "all") == 0) {
    for (size_t i = 0; i < server_domain_count; i++) on[i] = true;
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
      sc_err_set(err, "--services: unknown domain '%.*s' (known: ingestion, accounts, categorization, "
                      "forecasting, training, anomaly)", (int)n, p);
      return -1;
    }
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

int main(int argc, char **argv) {
  sc_process_block_signals();
  const char *services_flag = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("scale-server %s\n", SCALE_VERSION);
      return 0;
    } else if (strncmp(argv[i], "--services=", 11) == 0) {
      services_flag = argv[i] + 11;
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

  bool on[16] = {false};
  if (select_domains(services_flag ? services_flag : cfg.services, on, &err) != 0) {
    fprintf(stderr, "scale-server: %s\n", err.msg);
    return 2;
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
  int rc = 1;
  sc_rpc_server_t *srv = sc_rpc_server_new(&opts, &err);
  if (srv == NULL) goto fail;
  sc_rpc_service_t ping = sc_ping_service();
  if (sc_rpc_server_add_interceptor(srv, &sc_rpc_request_id_interceptor, &err) != 0 ||
      sc_rpc_server_add_interceptor(srv, &sc_rpc_access_log_interceptor, &err) != 0 ||
      sc_rpc_server_add_service(srv, &ping, &err) != 0) {
    goto fail;
  }
  char served[256] = "";
  size_t used = 0;
  for (size_t i = 0; i < server_domain_count; i++) {
    if (!on[i]) continue;
    if (sc_rpc_server_add_service(srv, &server_domains[i].service, &err) != 0) goto fail;
    int w = snprintf(served + used, sizeof(served) - used, "%s%s", used ? "," : "", server_domains[i].name);
    if (w > 0 && (size_t)w < sizeof(served) - used) used += (size_t)w;
  }
  if (sc_rpc_server_start(srv, &err) != 0) goto fail;

  /* Report the bound port (the address may have asked for port 0). */
  const char *colon = strrchr(cfg.grpc_addr, ':');
  int hostlen = colon ? (int)(colon - cfg.grpc_addr) : 0;
  SC_LOG(SC_LOG_INFO, NULL, "listening on %.*s:%d (gRPC%s), services: %s", hostlen, cfg.grpc_addr,
         sc_rpc_server_port(srv), cfg.tls_cert ? (cfg.tls_ca ? ", mutual TLS" : ", TLS") : ", plaintext", served);

  int sig = sc_process_wait_signal();
  SC_LOG(SC_LOG_INFO, NULL, "signal %d: shutting down (grace %lld ms)", sig, (long long)cfg.grace_ms);
  sc_rpc_server_free(srv);
  SC_LOG(SC_LOG_INFO, NULL, "stopped");
  return 0;

fail:
  fprintf(stderr, "scale-server: %s\n", err.msg);
  sc_rpc_server_free(srv);
  return rc;
}
