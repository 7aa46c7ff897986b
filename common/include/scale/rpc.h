/* RPC server runtime on the gRPC C core (1.51) for services described by
 * protobuf-c service descriptors.
 *
 * A server is a value: create it, add services (tables of handlers) and
 * interceptors, start it, shut it down. Two servers can run in one process.
 *
 * Threading: `threads` workers each block on their own completion queue, on
 * which every registered method keeps a request armed; a worker re-arms the
 * method before it runs the handler. Unary handlers run on the worker;
 * streaming handlers run on a thread of their own (they may last for hours,
 * and must not hold up the worker's queue). Handlers may block (database
 * calls); size `threads` for that.
 *
 * Every call gets an arena (released when the call ends): the decoded request
 * lives in it, the handler allocates its response from it.
 */
#ifndef SCALE_RPC_H
#define SCALE_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scale/arena.h"
#include "scale/descpool.h"
#include "scale/status.h"

typedef struct sc_rpc_server sc_rpc_server_t;
typedef struct sc_call sc_call_t;
typedef struct sc_health sc_health_t;

typedef enum sc_rpc_kind {
  SC_RPC_UNARY,
  SC_RPC_SERVER_STREAMING,
  SC_RPC_CLIENT_STREAMING,
  SC_RPC_BIDI_STREAMING,
} sc_rpc_kind_t;

/* Handlers. Each returns the call's status; on failure it says why with
 * sc_call_fail() (which returns the status, so `return sc_call_fail(...)`).
 * `svc` is the service's `data` pointer.
 *
 * unary:          *resp = a message allocated from sc_call_arena(call).
 * server stream:  send with sc_call_send(); return when done.
 * client stream:  read with sc_call_recv() until it yields NULL; set *resp.
 * bidi:           sc_call_recv() and sc_call_send(), from this thread only. */
typedef sc_status_t (*sc_rpc_unary_cb)(sc_call_t *call, const ProtobufCMessage *req, ProtobufCMessage **resp,
                                       void *svc);
typedef sc_status_t (*sc_rpc_server_stream_cb)(sc_call_t *call, const ProtobufCMessage *req, void *svc);
typedef sc_status_t (*sc_rpc_client_stream_cb)(sc_call_t *call, ProtobufCMessage **resp, void *svc);
typedef sc_status_t (*sc_rpc_bidi_cb)(sc_call_t *call, void *svc);

typedef struct sc_rpc_method {
  const char *name;   /* method name as in the proto: "Ping" */
  sc_rpc_kind_t kind; /* checked against the descriptor set */
  sc_rpc_unary_cb unary;
  sc_rpc_server_stream_cb server_stream;
  sc_rpc_client_stream_cb client_stream;
  sc_rpc_bidi_cb bidi;
  /* Optional: decode requests with / encode responses as these instead of the
   * service descriptor's (for wire-identical aliases such as reflection
   * v1alpha served by the v1 handler). */
  const ProtobufCMessageDescriptor *input;
  const ProtobufCMessageDescriptor *output;
} sc_rpc_method_t;

typedef struct sc_rpc_service {
  const ProtobufCServiceDescriptor *descriptor;
  /* Handlers by method name. Methods of the descriptor without one answer
   * UNIMPLEMENTED, naming the method. */
  const sc_rpc_method_t *methods;
  size_t n_methods;
  void *data; /* passed to every handler */
  bool open;  /* no authentication (health, reflection) */
} sc_rpc_service_t;

/* Interceptors run around every call, including calls to unknown methods:
 * `before` in the order added (a non-OK status ends the call with it, and the
 * later interceptors and the handler do not run), then the handler, then
 * `after` in reverse order for every interceptor whose `before` ran. */
typedef struct sc_rpc_interceptor {
  const char *name;
  sc_status_t (*before)(sc_call_t *call, void *data);
  void (*after)(sc_call_t *call, sc_status_t status, void *data);
  void *data;
} sc_rpc_interceptor_t;

typedef struct sc_rpc_server_opts {
  const char *addr;          /* "127.0.0.1:50051"; port 0 picks one */
  int threads;               /* worker threads/queues; <= 0: 2 x CPUs, at least 4 */
  size_t max_message_bytes;  /* larger requests: RESOURCE_EXHAUSTED; 0: 4 MiB */
  int shutdown_grace_ms;     /* in-flight calls get this long; < 0: 10 s */
  int max_streams;           /* concurrent streaming calls; <= 0: 1024 */
  const char *tls_cert_file; /* PEM chain; TLS when set (with key) */
  const char *tls_key_file;
  const char *tls_ca_file;   /* set: clients must present a cert it signed (mTLS) */
  const sc_descpool_t *pool; /* NULL: the embedded descriptor set */
  const char *name;          /* "scale-server", for logs and Ping */
  const char *version;
} sc_rpc_server_opts_t;

/* Creates a server serving grpc.health.v1.Health and server reflection (v1
 * and v1alpha). NULL (err) on bad options. */
sc_rpc_server_t *sc_rpc_server_new(const sc_rpc_server_opts_t *opts, sc_err_t *err);

/* Adds a service; the table must outlive the server. Before start only.
 * Fails when the descriptor set lacks the service, a handler names no method
 * of it, or a handler's kind disagrees with the proto. */
int sc_rpc_server_add_service(sc_rpc_server_t *srv, const sc_rpc_service_t *svc, sc_err_t *err);

/* Appends an interceptor (copied). Before start only. */
int sc_rpc_server_add_interceptor(sc_rpc_server_t *srv, const sc_rpc_interceptor_t *ic, sc_err_t *err);

/* Binds, starts the workers, marks every service SERVING. */
int sc_rpc_server_start(sc_rpc_server_t *srv, sc_err_t *err);

/* The bound port (after start). */
int sc_rpc_server_port(const sc_rpc_server_t *srv);

/* Graceful stop: health goes NOT_SERVING, no new calls are accepted,
 * in-flight calls get the grace period, then the rest are cancelled; returns
 * when every worker and stream has ended. Safe to call once from any thread
 * that is not a handler. */
void sc_rpc_server_shutdown(sc_rpc_server_t *srv);

/* Shuts down if needed, then frees. Accepts NULL. */
void sc_rpc_server_free(sc_rpc_server_t *srv);

/* The server's health registry (owned by the server). */
sc_health_t *sc_rpc_server_health(sc_rpc_server_t *srv);
const char *sc_rpc_server_name(const sc_rpc_server_t *srv);
const char *sc_rpc_server_version(const sc_rpc_server_t *srv);
bool sc_rpc_server_stopping(const sc_rpc_server_t *srv);

/* ---- The call, as handlers and interceptors see it -------------------- */

sc_arena_t *sc_call_arena(sc_call_t *call);
/* "/scale.common.v1.PingService/Ping" */
const char *sc_call_method(const sc_call_t *call);
/* The method's table entry; NULL for unknown or not-implemented methods. */
const sc_rpc_method_t *sc_call_method_entry(const sc_call_t *call);
/* True for methods of open services and for unknown methods. */
bool sc_call_is_open(const sc_call_t *call);
sc_rpc_server_t *sc_call_server(const sc_call_t *call);
/* "ipv4:127.0.0.1:53312" */
const char *sc_call_peer(sc_call_t *call);

/* First value of a request metadata key (lower case), copied NUL-terminated
 * into the call's arena; NULL when absent. Binary (-bin) values: use
 * sc_call_metadata_bin. */
const char *sc_call_metadata(sc_call_t *call, const char *key);
int sc_call_metadata_bin(sc_call_t *call, const char *key, const uint8_t **val, size_t *len);

/* Milliseconds left before the client's deadline (INT64_MAX: none; <= 0:
 * expired). */
int64_t sc_call_deadline_left_ms(const sc_call_t *call);
/* True once the client cancelled, the deadline passed, or the server
 * cancelled calls at the end of a shutdown. Long handlers poll it. */
bool sc_call_cancelled(sc_call_t *call);

/* Request id (set by the request-id interceptor) and authenticated user
 * (set by the auth interceptor). Strings are copied into the call's arena. */
const char *sc_call_request_id(const sc_call_t *call);
void sc_call_set_request_id(sc_call_t *call, const char *id);
const char *sc_call_user_id(const sc_call_t *call);
void sc_call_set_user_id(sc_call_t *call, const char *user_id);
/* The authenticated user's email when the token carried one, else NULL. */
const char *sc_call_user_email(const sc_call_t *call);
void sc_call_set_user_email(sc_call_t *call, const char *email);

/* Sets the status message (a printf format; shown to clients: no internals)
 * and returns `st`. */
sc_status_t sc_call_fail(sc_call_t *call, sc_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records a field violation ({field, reason}: sent as google.rpc.BadRequest in
 * grpc-status-details-bin) and returns SC_INVALID_ARGUMENT. The first one
 * also becomes the status message when none is set. */
sc_status_t sc_call_fail_field(sc_call_t *call, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* For server-side faults: logs `detail` (which may hold internals such as
 * SQL errors) at warn with the call's request id, and fails the call with
 * `public_msg` only. Returns `st`. */
sc_status_t sc_call_fail_internal(sc_call_t *call, sc_status_t st, const char *public_msg, const char *detail);
const char *sc_call_status_message(const sc_call_t *call);
size_t sc_call_violation_count(const sc_call_t *call);

/* Adds response metadata (sent with the first response message, or with the
 * status). Copied. Returns 0, or -1 for an illegal key/value or once the
 * initial metadata has been sent. */
int sc_call_add_header(sc_call_t *call, const char *key, const char *value);
/* Adds trailing metadata (sent with the status). */
int sc_call_add_trailer(sc_call_t *call, const char *key, const char *value);

/* Streaming: sends one message and waits until the transport took it (flow
 * control). SC_CANCELLED when the client is gone or the deadline passed. */
sc_status_t sc_call_send(sc_call_t *call, const ProtobufCMessage *msg);
/* Streaming: receives the next message into a scratch arena that is reset by
 * the next sc_call_recv (copy what must live longer into sc_call_arena).
 * SC_OK with *msg NULL at the end of the stream; SC_INVALID_ARGUMENT for an
 * undecodable message; SC_CANCELLED when the call died. */
sc_status_t sc_call_recv(sc_call_t *call, ProtobufCMessage **msg);

/* Nanoseconds since the call arrived (CLOCK_MONOTONIC). */
int64_t sc_call_elapsed_ns(const sc_call_t *call);

/* ---- Built-in interceptors --------------------------------------------- */

/* Accepts `x-request-id` (1-128 chars of [A-Za-z0-9._:-]) or generates a
 * UUIDv4, sets it on the call and returns it in response metadata. */
extern const sc_rpc_interceptor_t sc_rpc_request_id_interceptor;
/* One log line per call: method, status, duration_ms, request_id, user_id,
 * peer (info; warn for server faults). */
extern const sc_rpc_interceptor_t sc_rpc_access_log_interceptor;

/* ---- Health ------------------------------------------------------------ */

typedef enum sc_health_status {
  SC_HEALTH_UNKNOWN = 0,
  SC_HEALTH_SERVING = 1,
  SC_HEALTH_NOT_SERVING = 2,
} sc_health_status_t;

/* Sets a service's status ("" is the whole server); Watch streams see it.
 * Thread-safe. Returns -1 when out of memory. */
int sc_health_set(sc_health_t *h, const char *service, sc_health_status_t st);
/* -1 when the service is unknown. */
int sc_health_get(sc_health_t *h, const char *service, sc_health_status_t *st);

#endif
