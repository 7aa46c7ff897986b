/* The /metrics endpoint: a small HTTP listener (libmicrohttpd, one internal
 * thread) that renders a registry in the Prometheus text format for every
 * GET /metrics. Any other path is 404; other methods on /metrics are 405.
 *
 * Every SCALE binary can run one next to its gRPC or HTTP server, usually on
 * a separate, non-public address (SCALE_METRICS_ADDR).
 */
#ifndef SCALE_METRICS_HTTP_H
#define SCALE_METRICS_HTTP_H

#include <stdbool.h>

#include "scale/metrics.h"
#include "scale/status.h"

typedef struct sc_metrics_http sc_metrics_http_t;

/* True for "off" (any case): the setting that disables the listener. */
bool sc_metrics_http_off(const char *addr);

/* Checks an address for the listener without binding it: "host:port" or
 * "[v6]:port" (port 0 picks one), or "off". 0, or -1 with err saying why.
 * For validating configuration at start. */
int sc_metrics_http_check_addr(const char *addr, sc_err_t *err);

/* Binds addr and serves m until _stop. m must outlive the listener. NULL
 * (err) when the address is bad, cannot be resolved or cannot be bound. */
sc_metrics_http_t *sc_metrics_http_start(const sc_metrics_t *m, const char *addr, sc_err_t *err);

/* The bound port (useful after asking for port 0). */
int sc_metrics_http_port(const sc_metrics_http_t *h);

/* Closes the listener, finishes the request in progress, frees. Accepts NULL. */
void sc_metrics_http_stop(sc_metrics_http_t *h);

#endif
