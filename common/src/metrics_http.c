/* The /metrics listener on libmicrohttpd. */
#include "scale/metrics_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "scale/config.h"
#include "scale/log.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* Scrapers hold one connection each; a few are plenty, and a cap keeps a
 * misbehaving client from tying up descriptors. */
#define MAX_CONNECTIONS 32
#define CONNECTION_TIMEOUT_S 10

struct sc_metrics_http {
  const sc_metrics_t *m;
  struct MHD_Daemon *daemon;
  int port;
  atomic_bool started;
  char start_error[256]; /* the last libmicrohttpd message while starting */
};

bool sc_metrics_http_off(const char *addr) { return addr != NULL && strcasecmp(addr, "off") == 0; }

int sc_metrics_http_check_addr(const char *addr, sc_err_t *err) {
  if (sc_metrics_http_off(addr)) return 0;
  if (addr != NULL && strncmp(addr, "unix:", 5) == 0) {
    sc_err_set(err, "unix sockets are not supported here; expected host:port or off");
    return -1;
  }
  return sc_config_parse_addr(addr, err);
}

/* libmicrohttpd's messages: kept while starting (to say why a bind failed),
 * logged at debug afterwards (they are about single clients). */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  sc_metrics_http_t *h = cls;
  char msg[256];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  if (!atomic_load(&h->started)) {
    snprintf(h->start_error, sizeof(h->start_error), "%s", msg);
    return;
  }
  SC_LOG(SC_LOG_DEBUG, NULL, "metrics http: %s", msg);
}

static enum MHD_Result reply_static(struct MHD_Connection *conn, unsigned int code, const char *body,
                                    const char *allow) {
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
  if (r == NULL) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
  if (allow != NULL) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
  enum MHD_Result ret = MHD_queue_response(conn, code, r);
  MHD_destroy_response(r);
  return ret;
}

/* Answers on the first call for the request: nothing here reads a body. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)req_cls;
  sc_metrics_http_t *h = cls;
  if (strcmp(url, "/metrics") != 0) return reply_static(conn, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
    return reply_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", "GET, HEAD");
  }
  char *body = NULL;
  size_t len = 0;
  if (sc_metrics_render(h->m, &body, &len) != 0) {
    return reply_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", NULL);
  }
  /* The response owns body from here on, and frees it with free(). */
  struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, body, free);
  if (r == NULL) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

sc_metrics_http_t *sc_metrics_http_start(const sc_metrics_t *m, const char *addr, sc_err_t *err) {
  sc_metrics_http_t *h = NULL;
  struct addrinfo *ai = NULL;
  if (sc_metrics_http_off(addr)) {
    sc_err_set(err, "the metrics listener is off");
    return NULL;
  }
  if (sc_metrics_http_check_addr(addr, err) != 0) return NULL;

  /* host:port, the host possibly in brackets (IPv6). */
  const char *colon = strrchr(addr, ':');
  char host[256];
  const char *hs = addr;
  size_t hl = (size_t)(colon - addr);
  if (hl >= 2 && addr[0] == '[' && colon[-1] == ']') {
    hs = addr + 1;
    hl -= 2;
  }
  if (hl >= sizeof(host)) {
    sc_err_set(err, "host name too long");
    return NULL;
  }
  memcpy(host, hs, hl);
  host[hl] = '\0';
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  int gai = getaddrinfo(host, colon + 1, &hints, &ai);
  if (gai != 0) {
    sc_err_set(err, "cannot resolve '%s': %s", host, gai_strerror(gai));
    return NULL;
  }
  unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
  /* The port goes to libmicrohttpd separately only for its messages. */
  uint16_t port = ntohs(((const struct sockaddr_in *)ai->ai_addr)->sin_port);
  if (ai->ai_family == AF_INET6) {
    flags |= MHD_USE_IPv6;
    port = ntohs(((const struct sockaddr_in6 *)ai->ai_addr)->sin6_port);
  }

  h = calloc(1, sizeof(*h));
  if (h == NULL) {
    sc_err_set(err, "out of memory");
    goto out;
  }
  h->m = m;
  h->daemon =
      MHD_start_daemon(flags, port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
                       MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S, MHD_OPTION_END);
  if (h->daemon == NULL) {
    sc_err_set(err, "cannot listen on %s: %s", addr, h->start_error[0] ? h->start_error : "libmicrohttpd failed");
    free(h);
    h = NULL;
    goto out;
  }
  atomic_store(&h->started, true);
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
  h->port = info ? info->port : 0;
out:
  freeaddrinfo(ai);
  return h;
}

int sc_metrics_http_port(const sc_metrics_http_t *h) { return h->port; }

void sc_metrics_http_stop(sc_metrics_http_t *h) {
  if (h == NULL) return;
  MHD_stop_daemon(h->daemon);
  free(h);
}
