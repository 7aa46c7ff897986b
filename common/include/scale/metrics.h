/* Metrics: a Prometheus registry for one process (or one test).
 *
 * A registry is a value: create it, hand it to the RPC server as an
 * interceptor and to the /metrics listener (scale/metrics_http.h), free it
 * after both have stopped. Two registries never share anything.
 *
 * What it records:
 *   scale_rpc_requests_total{method,code}   counter; code is the gRPC status
 *                                           name the client saw (OK,
 *                                           INVALID_ARGUMENT, ...)
 *   scale_rpc_duration_seconds{method}      histogram (0.5 ms .. 10 s)
 *   scale_rpc_in_flight                     gauge: calls between the metrics
 *                                           interceptor's before and after
 *                                           (streams included)
 *   counters and gauges the process registers by name (sc_metrics_counter)
 *   process_start_time_seconds, scale_build_info{version}
 *
 * Threading: every function may be called from any thread at any time,
 * except sc_metrics_free (after every user has stopped) and
 * sc_metrics_set_version (before the registry is shared). Recording is
 * lock-free (relaxed atomics per series); only the first sight of a method or
 * a named series takes the registry's lock.
 *
 * Bounded memory: at most SC_METRICS_MAX_METHODS distinct method labels;
 * later methods, and method strings that are not 1..SC_METRICS_MAX_METHOD_LEN
 * printable ASCII characters, are counted under method="other", so a client
 * sending random paths cannot grow the registry or the exposition.
 */
#ifndef SCALE_METRICS_H
#define SCALE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "scale/rpc.h"
#include "scale/status.h"

#define SC_METRICS_MAX_METHODS 512
#define SC_METRICS_MAX_METHOD_LEN 256
#define SC_METRICS_MAX_SERIES 256 /* counters and gauges registered by name */
#define SC_METRICS_OTHER_METHOD "other"

typedef struct sc_metrics sc_metrics_t;
/* One series of a counter or gauge registered by name; owned by its registry. */
typedef struct sc_metric sc_metric_t;

/* NULL only when out of memory. */
sc_metrics_t *sc_metrics_new(void);
/* Frees the registry and every series handle it gave out. Accepts NULL. */
void sc_metrics_free(sc_metrics_t *m);

/* The version label of scale_build_info (copied; "unknown" until set).
 * Call before the registry is shared. */
void sc_metrics_set_version(sc_metrics_t *m, const char *version);

/* ---- RPC metrics ---------------------------------------------------------- */

/* An interceptor recording the three scale_rpc_* families for every call it
 * wraps. Add it early (right after request id and access log) so calls that a
 * later interceptor rejects (UNAUTHENTICATED) are counted. m must outlive the
 * server. */
sc_rpc_interceptor_t sc_metrics_interceptor(sc_metrics_t *m);

/* What the interceptor does, for callers that are not sc_rpc servers:
 * begin raises in_flight; end lowers it and counts one call of `method`
 * (NULL counts as "other") ending with `st` after `elapsed_ns`. */
void sc_metrics_rpc_begin(sc_metrics_t *m);
void sc_metrics_rpc_end(sc_metrics_t *m, const char *method, sc_status_t st, int64_t elapsed_ns);

/* ---- counters and gauges by name ------------------------------------------ */

/* Returns the series `name` (with the optional single label `label`="value";
 * both NULL for none), registering it on first use with `help` (the family's
 * first help text wins). Fails (NULL, err) when a name is not a valid
 * Prometheus name, the family is reserved (scale_rpc_*, process_*,
 * scale_build_info) or exists with the other type, or SC_METRICS_MAX_SERIES
 * series exist. Later calls with the same arguments return the same handle. */
sc_metric_t *sc_metrics_counter(sc_metrics_t *m, const char *name, const char *help, const char *label,
                                const char *value, sc_err_t *err);
sc_metric_t *sc_metrics_gauge(sc_metrics_t *m, const char *name, const char *help, const char *label, const char *value,
                              sc_err_t *err);

/* Counters: adds delta (negative deltas are ignored: counters only go up).
 * Gauges: adds delta (either sign). Accepts NULL (does nothing), so a failed
 * registration never needs a check on the hot path. */
void sc_metric_add(sc_metric_t *s, int64_t delta);
/* Gauges only (does nothing to a counter, or to NULL). */
void sc_metric_set(sc_metric_t *s, int64_t value);
int64_t sc_metric_value(const sc_metric_t *s);

/* Conveniences for unlabelled series: look up (registering on first use) and
 * update. Return 0, or -1 when registration failed (see sc_metrics_counter). */
int sc_metrics_counter_add(sc_metrics_t *m, const char *name, const char *help, uint64_t delta);
int sc_metrics_gauge_set(sc_metrics_t *m, const char *name, const char *help, int64_t value);
int sc_metrics_gauge_add(sc_metrics_t *m, const char *name, const char *help, int64_t delta);

/* ---- exposition ----------------------------------------------------------- */

/* The Prometheus text exposition format 0.0.4 of everything recorded so far:
 * the scale_rpc_* families, then the named ones sorted by name, then the
 * process ones; HELP and TYPE before each family's samples, label values
 * escaped, cumulative histogram buckets. *out is malloc'd and NUL-terminated (the
 * caller frees it), *len excludes the NUL. Returns 0, or -1 when out of
 * memory (leaving *out and *len alone). Series are read one by one while
 * calls go on, so a scrape is not a snapshot across series; a histogram's
 * +Inf bucket always equals its _count. */
int sc_metrics_render(const sc_metrics_t *m, char **out, size_t *len);

#endif
