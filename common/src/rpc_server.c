/* The RPC server runtime: registered methods on one completion queue per
 * worker, calls as small state machines driven synchronously on a per-call
 * pluck queue (the notification arrives on the worker's queue; every batch of
 * the call completes on the call's own queue, so a handler can wait for its
 * own sends and receives without holding up anyone else's). */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "rpc_int.h"
#include "scale/config.h"
#include "scale/log.h"
#include "scale/pbcheck.h"

#define MAX_PEM_BYTES ((size_t)1 << 20)
#define MAX_VIOLATIONS 64

typedef struct method_entry {
  char *path; /* "/pkg.Service/Method" */
  const sc_rpc_service_t *svc;
  const sc_rpc_method_t *m; /* NULL: not implemented */
  const ProtobufCMessageDescriptor *input, *output;
  sc_rpc_kind_t kind;
  void *reg; /* grpc registered-method handle */
} method_entry_t;

typedef struct worker {
  sc_rpc_server_t *srv;
  grpc_completion_queue *cq;
  pthread_t thread;
  struct sc_call *free_list; /* recycled unary contexts; this worker only */
  size_t n_free;
} worker_t;

typedef struct md_list {
  grpc_metadata *v;
  size_t n, cap;
} md_list_t;

struct sc_call {
  sc_rpc_server_t *srv;
  worker_t *w;
  method_entry_t *me;           /* registered method; NULL: generic request */
  const method_entry_t *target; /* what the path names, for generic requests */
  struct sc_call *next_free;

  grpc_call *call;
  grpc_completion_queue *ccq; /* pluck queue bound to the call */
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
  grpc_call_details details;
  int notify_tag, op_tag, close_tag; /* addresses used as tags */

  sc_arena_t *arena;
  sc_arena_t *recv_arena;
  int64_t start_ns;
  const char *method;
  const char *peer;
  const char *request_id;
  const char *user_id;
  const char *user_email;
  const char *message;
  md_list_t headers, trailers;
  Google__Rpc__BadRequest__FieldViolation **violations;
  size_t n_violations;

  int close_started, closed, close_cancelled;
  int sent_headers;
};

struct sc_rpc_server {
  char *addr, *name, *version, *tls_cert, *tls_key, *tls_ca;
  int n_workers;
  size_t max_message;
  int grace_ms;
  int max_streams;
  const sc_descpool_t *pool;

  grpc_server *server;
  grpc_completion_queue *shutdown_cq;
  worker_t *workers;
  method_entry_t *methods;
  size_t n_methods, cap_methods;
  const sc_rpc_service_t **services;
  size_t n_services, cap_services;
  sc_rpc_interceptor_t *ics;
  size_t n_ics;
  sc_health_t *health;
  sc_rpc_service_t health_svc, refl_v1_svc, refl_v1alpha_svc;
  int port;

  atomic_int started, stopping, stopped;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int active_streams;
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

/* The core's own diagnostics go through SCALE's log, so stderr stays one
 * JSON object per line. */
static void grpc_log_cb(gpr_log_func_args *args);
void sc__rpc_install_logging(void) { gpr_set_log_function(grpc_log_cb); }

static void grpc_log_cb(gpr_log_func_args *args) {
  sc_log_level_t level = args->severity == GPR_LOG_SEVERITY_ERROR  ? SC_LOG_WARN
                         : args->severity == GPR_LOG_SEVERITY_INFO ? SC_LOG_DEBUG
                                                                   : SC_LOG_DEBUG;
  const char *file = args->file ? strrchr(args->file, '/') : NULL;
  SC_LOG(level, NULL, "grpc core: %s (%s:%d)", args->message,
         file         ? file + 1
         : args->file ? args->file
                      : "?",
         args->line);
}

/* Why a listen address cannot be bound, for the start-up error: the core
 * only says that it failed. */
static const char *bind_problem(const char *addr, char *buf, size_t n) {
  char host[256];
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || (size_t)(colon - addr) >= sizeof(host)) return "not host:port";
  size_t hl = (size_t)(colon - addr);
  memcpy(host, addr, hl);
  host[hl] = '\0';
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = '\0';
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
  if (gai != 0) {
    snprintf(buf, n, "cannot resolve '%.64s': %s", host, gai_strerror(gai));
    return buf;
  }
  const char *why = "the gRPC core refused it";
  int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
      snprintf(buf, n, "%s", strerror(errno));
      why = buf;
    }
    close(fd);
  }
  freeaddrinfo(res);
  return why;
}

/* ---- contexts ------------------------------------------------------------ */

static size_t arena_cap(const sc_rpc_server_t *srv) {
  /* Decoded messages take about as much as their encoding, plus headroom for
   * the handler's own allocations. */
  return srv->max_message * 3 + ((size_t)16 << 20);
}

static struct sc_call *ctx_new(worker_t *w, method_entry_t *me) {
  struct sc_call *c = NULL;
  if (w->free_list != NULL) {
    c = w->free_list;
    w->free_list = c->next_free;
    w->n_free--;
  } else {
    c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    c->arena = sc_arena_new(arena_cap(w->srv));
    c->ccq = grpc_completion_queue_create_for_pluck(NULL);
    if (c->arena == NULL || c->ccq == NULL) {
      sc_arena_free(c->arena);
      if (c->ccq) grpc_completion_queue_destroy(c->ccq);
      free(c);
      return NULL;
    }
  }
  c->srv = w->srv;
  c->w = w;
  c->me = me;
  c->target = me;
  grpc_metadata_array_init(&c->md);
  grpc_call_details_init(&c->details);
  return c;
}

/* Forgets the finished call, keeping the arena's first block and the queue. */
static void ctx_clear(struct sc_call *c) {
  if (c->call) grpc_call_unref(c->call);
  if (c->payload) grpc_byte_buffer_destroy(c->payload);
  grpc_metadata_array_destroy(&c->md);
  grpc_call_details_destroy(&c->details);
  sc_arena_reset(c->arena);
  if (c->recv_arena) sc_arena_reset(c->recv_arena);
  sc_arena_t *arena = c->arena, *recv_arena = c->recv_arena;
  grpc_completion_queue *ccq = c->ccq;
  memset(c, 0, sizeof(*c));
  c->arena = arena;
  c->recv_arena = recv_arena;
  c->ccq = ccq;
}

static void ctx_destroy(struct sc_call *c) {
  ctx_clear(c);
  grpc_completion_queue_shutdown(c->ccq);
  for (;;) {
    grpc_event ev = grpc_completion_queue_pluck(c->ccq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
  }
  grpc_completion_queue_destroy(c->ccq);
  sc_arena_free(c->arena);
  sc_arena_free(c->recv_arena);
  free(c);
}

/* Keeps a handful of contexts per worker for reuse; frees the rest. */
static void ctx_recycle(worker_t *w, struct sc_call *c) {
  if (w->n_free >= 64 || atomic_load(&w->srv->stopping)) {
    ctx_destroy(c);
    return;
  }
  ctx_clear(c);
  c->next_free = w->free_list;
  w->free_list = c;
  w->n_free++;
}

static int arm(worker_t *w, method_entry_t *me) {
  struct sc_call *c = ctx_new(w, me);
  if (c == NULL) return -1;
  grpc_call_error e;
  if (me != NULL) {
    int with_payload = me->kind == SC_RPC_UNARY || me->kind == SC_RPC_SERVER_STREAMING;
    e = grpc_server_request_registered_call(w->srv->server, me->reg, &c->call, &c->deadline, &c->md,
                                            with_payload ? &c->payload : NULL, c->ccq, w->cq, c);
  } else {
    e = grpc_server_request_call(w->srv->server, &c->call, &c->details, &c->md, c->ccq, w->cq, c);
  }
  if (e != GRPC_CALL_OK) {
    ctx_destroy(c);
    return -1;
  }
  return 0;
}

/* ---- the call API --------------------------------------------------------- */

sc_arena_t *sc_call_arena(sc_call_t *c) { return c->arena; }
const char *sc_call_method(const sc_call_t *c) { return c->method; }
const sc_rpc_method_t *sc_call_method_entry(const sc_call_t *c) { return c->target ? c->target->m : NULL; }
bool sc_call_is_open(const sc_call_t *c) { return c->target == NULL || c->target->svc->open; }
sc_rpc_server_t *sc_call_server(const sc_call_t *c) { return c->srv; }
const char *sc_call_request_id(const sc_call_t *c) { return c->request_id; }
const char *sc_call_user_id(const sc_call_t *c) { return c->user_id; }
const char *sc_call_status_message(const sc_call_t *c) { return c->message; }
size_t sc_call_violation_count(const sc_call_t *c) { return c->n_violations; }
int64_t sc_call_elapsed_ns(const sc_call_t *c) { return now_ns() - c->start_ns; }

void sc_call_set_request_id(sc_call_t *c, const char *id) { c->request_id = sc_arena_strdup(c->arena, id); }
void sc_call_set_user_id(sc_call_t *c, const char *uid) { c->user_id = sc_arena_strdup(c->arena, uid); }
const char *sc_call_user_email(const sc_call_t *c) { return c->user_email; }
void sc_call_set_user_email(sc_call_t *c, const char *email) { c->user_email = sc_arena_strdup(c->arena, email); }

const char *sc_call_peer(sc_call_t *c) {
  if (c->peer == NULL && c->call != NULL) {
    char *p = grpc_call_get_peer(c->call);
    if (p != NULL) {
      c->peer = sc_arena_strdup(c->arena, p);
      gpr_free(p);
    }
  }
  return c->peer;
}

static int slice_eq(grpc_slice s, const char *str) {
  size_t n = strlen(str);
  return GRPC_SLICE_LENGTH(s) == n && memcmp(GRPC_SLICE_START_PTR(s), str, n) == 0;
}

const char *sc_call_metadata(sc_call_t *c, const char *key) {
  for (size_t i = 0; i < c->md.count; i++) {
    if (slice_eq(c->md.metadata[i].key, key)) {
      grpc_slice v = c->md.metadata[i].value;
      return sc_arena_strndup(c->arena, (const char *)GRPC_SLICE_START_PTR(v), GRPC_SLICE_LENGTH(v));
    }
  }
  return NULL;
}

int sc_call_metadata_bin(sc_call_t *c, const char *key, const uint8_t **val, size_t *len) {
  for (size_t i = 0; i < c->md.count; i++) {
    if (slice_eq(c->md.metadata[i].key, key)) {
      *val = GRPC_SLICE_START_PTR(c->md.metadata[i].value);
      *len = GRPC_SLICE_LENGTH(c->md.metadata[i].value);
      return 0;
    }
  }
  return -1;
}

int64_t sc_call_deadline_left_ms(const sc_call_t *c) {
  if (gpr_time_cmp(c->deadline, gpr_inf_future(c->deadline.clock_type)) == 0) return INT64_MAX;
  gpr_timespec left = gpr_time_sub(c->deadline, gpr_now(c->deadline.clock_type));
  return (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
}

static int start_close_watch(struct sc_call *c) {
  if (c->close_started) return 0;
  grpc_op op = {0};
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->close_cancelled;
  if (grpc_call_start_batch(c->call, &op, 1, &c->close_tag, NULL) != GRPC_CALL_OK) return -1;
  c->close_started = 1;
  return 0;
}

bool sc_call_cancelled(sc_call_t *c) {
  if (c->closed) return c->close_cancelled != 0;
  if (sc_call_deadline_left_ms(c) <= 0) return true;
  /* The close watch starts on first use, so calls that never ask pay nothing. */
  if (start_close_watch(c) != 0) return true;
  grpc_event ev = grpc_completion_queue_pluck(c->ccq, &c->close_tag, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
  if (ev.type == GRPC_OP_COMPLETE) {
    c->closed = 1;
    return c->close_cancelled != 0;
  }
  return false;
}

__attribute__((format(printf, 3, 0))) static sc_status_t vfail(sc_call_t *c, sc_status_t st, const char *fmt,
                                                               va_list ap) {
  c->message = sc_arena_vprintf(c->arena, fmt, ap);
  return st;
}

sc_status_t sc_call_fail(sc_call_t *c, sc_status_t st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(c, st, fmt, ap);
  va_end(ap);
  return st;
}

sc_status_t sc_call_fail_internal(sc_call_t *c, sc_status_t st, const char *public_msg, const char *detail) {
  sc_log_fields_t f = {.request_id = c->request_id,
                       .user_id = c->user_id,
                       .method = c->method,
                       .status = sc_status_name(st),
                       .duration_ms = -1};
  SC_LOG(SC_LOG_WARN, &f, "%s: %s", public_msg, detail ? detail : "");
  return sc_call_fail(c, st, "%s", public_msg);
}

sc_status_t sc_call_fail_field(sc_call_t *c, const char *field, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *reason = sc_arena_vprintf(c->arena, fmt, ap);
  va_end(ap);
  if (c->violations == NULL) {
    c->violations = sc_arena_calloc(c->arena, MAX_VIOLATIONS, sizeof(*c->violations));
  }
  if (c->violations != NULL && c->n_violations < MAX_VIOLATIONS && reason != NULL) {
    Google__Rpc__BadRequest__FieldViolation *v = sc_arena_alloc(c->arena, sizeof(*v));
    if (v != NULL) {
      google__rpc__bad_request__field_violation__init(v);
      v->field = sc_arena_strdup(c->arena, field ? field : "");
      v->description = reason;
      if (v->field != NULL) c->violations[c->n_violations++] = v;
    }
  }
  if (c->message == NULL && reason != NULL) {
    c->message = field && *field ? sc_arena_printf(c->arena, "%s: %s", field, reason) : reason;
  }
  return SC_INVALID_ARGUMENT;
}

static int md_add(sc_call_t *c, md_list_t *l, const char *key, const char *value) {
  if (!grpc_header_key_is_legal(grpc_slice_from_static_string(key))) return -1;
  if (!grpc_is_binary_header(grpc_slice_from_static_string(key)) &&
      !grpc_header_nonbin_value_is_legal(grpc_slice_from_static_string(value))) {
    return -1;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    grpc_metadata *v = sc_arena_calloc(c->arena, cap, sizeof(*v));
    if (v == NULL) return -1;
    if (l->n) memcpy(v, l->v, l->n * sizeof(*v));
    l->v = v;
    l->cap = cap;
  }
  const char *k = sc_arena_strdup(c->arena, key), *val = sc_arena_strdup(c->arena, value);
  if (k == NULL || val == NULL) return -1;
  /* Arena strings outlive every batch of the call: static slices suffice. */
  l->v[l->n].key = grpc_slice_from_static_string(k);
  l->v[l->n].value = grpc_slice_from_static_string(val);
  l->n++;
  return 0;
}

int sc_call_add_header(sc_call_t *c, const char *key, const char *value) {
  if (c->sent_headers) return -1;
  return md_add(c, &c->headers, key, value);
}

int sc_call_add_trailer(sc_call_t *c, const char *key, const char *value) {
  return md_add(c, &c->trailers, key, value);
}

static void init_headers_op(struct sc_call *c, grpc_op *op) {
  op->op = GRPC_OP_SEND_INITIAL_METADATA;
  op->data.send_initial_metadata.count = c->headers.n;
  op->data.send_initial_metadata.metadata = c->headers.v;
  c->sent_headers = 1;
}

static grpc_byte_buffer *pack(const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* Runs a batch and waits for it on the call's own queue. Returns success. */
static int run_batch(struct sc_call *c, const grpc_op *ops, size_t n) {
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->op_tag, NULL);
  if (e != GRPC_CALL_OK) {
    sc_log_fields_t f = {.request_id = c->request_id, .method = c->method, .duration_ms = -1};
    SC_LOG_ERRORF(&f, "grpc_call_start_batch: %s", grpc_call_error_to_string(e));
    return 0;
  }
  grpc_event ev = grpc_completion_queue_pluck(c->ccq, &c->op_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success;
}

static ProtobufCMessage *unpack_bb(sc_arena_t *arena, const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return NULL;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  ProtobufCAllocator al = sc_arena_pb_allocator(arena);
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, &al, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  return m;
}

sc_status_t sc_call_send(sc_call_t *c, const ProtobufCMessage *msg) {
  if (c->closed && c->close_cancelled) return SC_CANCELLED;
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  size_t n = 0;
  if (!c->sent_headers) init_headers_op(c, &ops[n++]);
  grpc_byte_buffer *bb = pack(msg);
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n].data.send_message.send_message = bb;
  n++;
  int ok = run_batch(c, ops, n);
  grpc_byte_buffer_destroy(bb);
  return ok ? SC_OK : sc_call_fail(c, SC_CANCELLED, "the client went away");
}

sc_status_t sc_call_recv(sc_call_t *c, ProtobufCMessage **msg) {
  *msg = NULL;
  const ProtobufCMessageDescriptor *desc = c->target ? c->target->input : NULL;
  if (desc == NULL) return sc_call_fail(c, SC_INTERNAL, "no input type for this method");
  if (c->recv_arena == NULL) {
    c->recv_arena = sc_arena_new(c->srv->max_message * 3 + ((size_t)1 << 20));
    if (c->recv_arena == NULL) return sc_call_fail(c, SC_RESOURCE_EXHAUSTED, "out of memory");
  } else {
    sc_arena_reset(c->recv_arena);
  }
  grpc_byte_buffer *bb = NULL;
  grpc_op op = {0};
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &bb;
  if (!run_batch(c, &op, 1)) return sc_call_fail(c, SC_CANCELLED, "the client went away");
  if (bb == NULL) {
    if (grpc_call_failed_before_recv_message(c->call)) {
      return sc_call_fail(c, SC_CANCELLED, "the call ended before the stream did");
    }
    return SC_OK; /* end of stream */
  }
  *msg = unpack_bb(c->recv_arena, desc, bb);
  grpc_byte_buffer_destroy(bb);
  if (*msg == NULL && sc_arena_exhausted(c->recv_arena)) {
    return sc_call_fail(c, SC_RESOURCE_EXHAUSTED, "a message needs more memory to decode than one call may use");
  }
  if (*msg == NULL) {
    return sc_call_fail(c, SC_INVALID_ARGUMENT, "message is not a valid %s", desc->name);
  }
  const char *bad = NULL;
  if (!sc_pb_strings_valid(*msg, c->recv_arena, &bad)) {
    *msg = NULL;
    return sc_call_fail_field(c, bad ? bad : "", "not valid UTF-8");
  }
  return SC_OK;
}

/* ---- running a call -------------------------------------------------------- */

static grpc_slice status_details_bin(struct sc_call *c, sc_status_t st, int *ok) {
  /* google.rpc.Status{code, message, details: [Any(google.rpc.BadRequest)]} */
  *ok = 0;
  Google__Rpc__BadRequest br = GOOGLE__RPC__BAD_REQUEST__INIT;
  br.n_field_violations = c->n_violations;
  br.field_violations = c->violations;
  size_t bn = google__rpc__bad_request__get_packed_size(&br);
  uint8_t *bbytes = sc_arena_alloc(c->arena, bn);
  if (bbytes == NULL) return grpc_empty_slice();
  google__rpc__bad_request__pack(&br, bbytes);
  Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
  any.type_url = "type.googleapis.com/google.rpc.BadRequest";
  any.value.data = bbytes;
  any.value.len = bn;
  Google__Protobuf__Any *anys[1] = {&any};
  Google__Rpc__Status s = GOOGLE__RPC__STATUS__INIT;
  s.code = sc_status_grpc_code(st);
  s.message = (char *)(c->message ? c->message : "");
  s.n_details = 1;
  s.details = anys;
  size_t sn = google__rpc__status__get_packed_size(&s);
  uint8_t *sbytes = sc_arena_alloc(c->arena, sn);
  if (sbytes == NULL) return grpc_empty_slice();
  google__rpc__status__pack(&s, sbytes);
  *ok = 1;
  return grpc_slice_from_static_buffer(sbytes, sn);
}

static void finish(struct sc_call *c, sc_status_t st, const ProtobufCMessage *resp) {
  grpc_op ops[4];
  memset(ops, 0, sizeof(ops));
  size_t n = 0;
  if (st != SC_OK && c->message == NULL) c->message = sc_status_title(st);
  if (st != SC_OK && c->n_violations > 0) {
    int ok;
    grpc_slice v = status_details_bin(c, st, &ok);
    if (ok && md_add(c, &c->trailers, "grpc-status-details-bin", "") == 0) {
      c->trailers.v[c->trailers.n - 1].value = v;
    }
  }
  if (!c->sent_headers) init_headers_op(c, &ops[n++]);
  grpc_byte_buffer *bb = NULL;
  if (st == SC_OK && resp != NULL) {
    bb = pack(resp);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
  }
  grpc_slice details = grpc_slice_from_static_string(st == SC_OK ? "" : c->message);
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = (grpc_status_code)sc_status_grpc_code(st);
  ops[n].data.send_status_from_server.status_details = &details;
  ops[n].data.send_status_from_server.trailing_metadata_count = c->trailers.n;
  ops[n].data.send_status_from_server.trailing_metadata = c->trailers.v;
  n++;
  if (!c->close_started) {
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->close_cancelled;
    n++;
  }
  run_batch(c, ops, n);
  if (bb) grpc_byte_buffer_destroy(bb);
  if (c->close_started && !c->closed) {
    grpc_completion_queue_pluck(c->ccq, &c->close_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  }
  c->closed = 1;
}

static sc_status_t decode_request(struct sc_call *c, const ProtobufCMessage **req) {
  if (c->payload == NULL) {
    return sc_call_fail(c, SC_INVALID_ARGUMENT, "the request carried no message");
  }
  *req = unpack_bb(c->arena, c->target->input, c->payload);
  if (*req == NULL && sc_arena_exhausted(c->arena)) {
    return sc_call_fail(c, SC_RESOURCE_EXHAUSTED, "the request needs more memory to decode than one call may use");
  }
  if (*req == NULL) {
    return sc_call_fail(c, SC_INVALID_ARGUMENT, "the request is not a valid %s message", c->target->input->name);
  }
  const char *bad = NULL;
  if (!sc_pb_strings_valid(*req, c->arena, &bad)) {
    return sc_call_fail_field(c, bad ? bad : "", "not valid UTF-8");
  }
  return SC_OK;
}

static const method_entry_t *find_method(const sc_rpc_server_t *srv, const char *path) {
  for (size_t i = 0; i < srv->n_methods; i++) {
    if (strcmp(srv->methods[i].path, path) == 0) return &srv->methods[i];
  }
  return NULL;
}

static sc_status_t unimplemented(struct sc_call *c) {
  const char *path = c->method;
  if (c->target != NULL) {
    return sc_call_fail(c, SC_UNIMPLEMENTED, "method %s is not implemented yet", path + 1);
  }
  /* Tell "no such service here" from "no such method". */
  const char *slash = strrchr(path, '/');
  if (slash != NULL && slash != path) {
    char *svc = sc_arena_strndup(c->arena, path + 1, (size_t)(slash - path - 1));
    for (size_t i = 0; svc && i < c->srv->n_services; i++) {
      if (strcmp(c->srv->services[i]->descriptor->name, svc) == 0) {
        return sc_call_fail(c, SC_UNIMPLEMENTED, "unknown method %s of service %s", slash + 1, svc);
      }
    }
    if (svc && sc_descpool_find_service(c->srv->pool, svc, NULL) != NULL) {
      return sc_call_fail(c, SC_UNIMPLEMENTED, "service %s is not served by this process (%s)", svc, c->srv->name);
    }
  }
  return sc_call_fail(c, SC_UNIMPLEMENTED, "unknown method %s", path);
}

static void run_call(struct sc_call *c) {
  sc_rpc_server_t *srv = c->srv;
  sc_status_t st = SC_OK;
  ProtobufCMessage *resp = NULL;
  size_t ran = 0;

  if (c->me == NULL) {
    c->method = sc_arena_strndup(c->arena, (const char *)GRPC_SLICE_START_PTR(c->details.method),
                                 GRPC_SLICE_LENGTH(c->details.method));
    c->deadline = c->details.deadline;
    if (c->method == NULL) c->method = "";
    c->target = find_method(srv, c->method);
  } else {
    c->method = c->me->path;
  }

  for (; ran < srv->n_ics && st == SC_OK; ran++) {
    if (srv->ics[ran].before) st = srv->ics[ran].before(c, srv->ics[ran].data);
  }
  if (st == SC_OK) {
    const method_entry_t *t = c->target;
    void *svc = t ? t->svc->data : NULL;
    if (c->me == NULL || t == NULL || t->m == NULL) {
      st = unimplemented(c);
    } else if (sc_call_deadline_left_ms(c) <= 0) {
      st = sc_call_fail(c, SC_DEADLINE_EXCEEDED, "the deadline expired before the method ran");
    } else {
      const ProtobufCMessage *req = NULL;
      switch (t->kind) {
      case SC_RPC_UNARY:
        st = decode_request(c, &req);
        if (st == SC_OK) st = t->m->unary(c, req, &resp, svc);
        if (st == SC_OK && resp == NULL) st = sc_call_fail(c, SC_INTERNAL, "the method produced no response");
        break;
      case SC_RPC_SERVER_STREAMING:
        st = decode_request(c, &req);
        if (st == SC_OK) st = t->m->server_stream(c, req, svc);
        break;
      case SC_RPC_CLIENT_STREAMING:
        st = t->m->client_stream(c, &resp, svc);
        if (st == SC_OK && resp == NULL) st = sc_call_fail(c, SC_INTERNAL, "the method produced no response");
        break;
      case SC_RPC_BIDI_STREAMING: st = t->m->bidi(c, svc); break;
      }
      /* A handler that stopped because its call ended reports why it ended:
       * the deadline, or the client. */
      if (st != SC_OK && (st == SC_CANCELLED || (c->closed && c->close_cancelled))) {
        if (sc_call_deadline_left_ms(c) <= 0) {
          st = sc_call_fail(c, SC_DEADLINE_EXCEEDED, "the deadline expired");
        } else if (st != SC_CANCELLED) {
          st = sc_call_fail(c, SC_CANCELLED, "the client went away");
        }
      }
    }
  }
  while (ran > 0) {
    ran--;
    if (srv->ics[ran].after) srv->ics[ran].after(c, st, srv->ics[ran].data);
  }
  finish(c, st, resp);
}

static void *stream_main(void *arg) {
  struct sc_call *c = arg;
  sc_rpc_server_t *srv = c->srv;
  run_call(c);
  ctx_destroy(c);
  pthread_mutex_lock(&srv->mu);
  srv->active_streams--;
  pthread_cond_broadcast(&srv->cv);
  pthread_mutex_unlock(&srv->mu);
  return NULL;
}

static void dispatch(worker_t *w, struct sc_call *c) {
  sc_rpc_server_t *srv = w->srv;
  c->start_ns = now_ns();
  if (c->me == NULL || c->me->kind == SC_RPC_UNARY || c->me->m == NULL) {
    run_call(c);
    ctx_recycle(w, c);
    return;
  }
  pthread_mutex_lock(&srv->mu);
  int room = srv->active_streams < srv->max_streams;
  if (room) srv->active_streams++;
  pthread_mutex_unlock(&srv->mu);
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (room && pthread_create(&t, &attr, stream_main, c) == 0) {
    pthread_attr_destroy(&attr);
    return;
  }
  pthread_attr_destroy(&attr);
  if (room) {
    pthread_mutex_lock(&srv->mu);
    srv->active_streams--;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
  }
  c->method = c->me->path;
  finish(
      c,
      sc_call_fail(c, SC_RESOURCE_EXHAUSTED, "too many concurrent streams (limit %d); retry later", srv->max_streams),
      NULL);
  ctx_recycle(w, c);
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    struct sc_call *c = ev.tag;
    if (!ev.success) {
      /* The server is shutting down: this armed request will never match. */
      ctx_destroy(c);
      continue;
    }
    /* Re-arm before the handler runs, so the method never stops accepting. */
    if (!atomic_load(&w->srv->stopping)) arm(w, c->me);
    dispatch(w, c);
  }
  while (w->free_list != NULL) {
    struct sc_call *c = w->free_list;
    w->free_list = c->next_free;
    ctx_destroy(c);
  }
  return NULL;
}

/* ---- server lifecycle --------------------------------------------------------- */

static int cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

sc_rpc_server_t *sc_rpc_server_new(const sc_rpc_server_opts_t *o, sc_err_t *err) {
  sc_err_t perr;
  if (o->addr == NULL || sc_config_parse_addr(o->addr, &perr) != 0) {
    sc_err_set(err, "listen address '%s': %s", o->addr ? o->addr : "", o->addr ? perr.msg : "missing");
    return NULL;
  }
  if ((o->tls_cert_file == NULL) != (o->tls_key_file == NULL)) {
    sc_err_set(err, "TLS needs both a certificate and a key file");
    return NULL;
  }
  if (o->tls_ca_file != NULL && o->tls_cert_file == NULL) {
    sc_err_set(err, "a client CA file (mutual TLS) needs a server certificate and key");
    return NULL;
  }
  const sc_descpool_t *pool = o->pool ? o->pool : sc_descpool_embedded(err);
  if (pool == NULL) return NULL;

  sc_rpc_server_t *srv = calloc(1, sizeof(*srv));
  if (srv == NULL) {
    sc_err_set(err, "out of memory");
    return NULL;
  }
  srv->addr = xstrdup(o->addr);
  srv->name = xstrdup(o->name ? o->name : "scale");
  srv->version = xstrdup(o->version ? o->version : "0.0.0");
  srv->tls_cert = xstrdup(o->tls_cert_file);
  srv->tls_key = xstrdup(o->tls_key_file);
  srv->tls_ca = xstrdup(o->tls_ca_file);
  srv->n_workers = o->threads > 0 ? o->threads : (2 * cpu_count() < 4 ? 4 : 2 * cpu_count());
  srv->max_message = o->max_message_bytes ? o->max_message_bytes : ((size_t)4 << 20);
  srv->grace_ms = o->shutdown_grace_ms >= 0 ? o->shutdown_grace_ms : 10000;
  srv->max_streams = o->max_streams > 0 ? o->max_streams : 1024;
  srv->pool = pool;
  pthread_mutex_init(&srv->mu, NULL);
  pthread_cond_init(&srv->cv, NULL);

  sc__rpc_install_logging();
  grpc_init();
  grpc_arg args[3];
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = srv->max_message > INT32_MAX ? INT32_MAX : (int)srv->max_message;
  /* Two servers must never share a port silently. */
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = GRPC_ARG_ALLOW_REUSEPORT;
  args[1].value.integer = 0;
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[2].value.integer = -1;
  grpc_channel_args ch_args = {3, args};
  srv->server = grpc_server_create(&ch_args, NULL);
  srv->shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
  srv->health = sc__health_new();
  srv->workers = calloc((size_t)srv->n_workers, sizeof(worker_t));
  if (srv->server == NULL || srv->health == NULL || srv->workers == NULL || srv->addr == NULL) {
    sc_err_set(err, "out of memory");
    sc_rpc_server_free(srv);
    return NULL;
  }
  for (int i = 0; i < srv->n_workers; i++) {
    srv->workers[i].srv = srv;
    srv->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->workers[i].cq, NULL);
  }

  srv->health_svc = sc__health_service(srv->health);
  srv->refl_v1_svc = sc__reflection_v1_service(srv);
  srv->refl_v1alpha_svc = sc__reflection_v1alpha_service(srv);
  if (sc_rpc_server_add_service(srv, &srv->health_svc, err) != 0 ||
      sc_rpc_server_add_service(srv, &srv->refl_v1_svc, err) != 0 ||
      sc_rpc_server_add_service(srv, &srv->refl_v1alpha_svc, err) != 0) {
    sc_rpc_server_free(srv);
    return NULL;
  }
  return srv;
}

static sc_rpc_kind_t kind_of(const Google__Protobuf__MethodDescriptorProto *m) {
  int cs = m->has_client_streaming && m->client_streaming;
  int ss = m->has_server_streaming && m->server_streaming;
  if (cs && ss) return SC_RPC_BIDI_STREAMING;
  if (cs) return SC_RPC_CLIENT_STREAMING;
  if (ss) return SC_RPC_SERVER_STREAMING;
  return SC_RPC_UNARY;
}

static const char *kind_name(sc_rpc_kind_t k) {
  static const char *const names[] = {"unary", "server-streaming", "client-streaming", "bidi-streaming"};
  return names[k];
}

int sc_rpc_server_add_service(sc_rpc_server_t *srv, const sc_rpc_service_t *svc, sc_err_t *err) {
  if (atomic_load(&srv->started)) {
    sc_err_set(err, "services must be added before the server starts");
    return -1;
  }
  const ProtobufCServiceDescriptor *d = svc->descriptor;
  for (size_t i = 0; i < srv->n_services; i++) {
    if (strcmp(srv->services[i]->descriptor->name, d->name) == 0) {
      sc_err_set(err, "service %s added twice", d->name);
      return -1;
    }
  }
  const Google__Protobuf__ServiceDescriptorProto *sp = sc_descpool_find_service(srv->pool, d->name, NULL);
  if (sp == NULL) {
    sc_err_set(err, "service %s is not in the descriptor set", d->name);
    return -1;
  }
  /* Every handler must name a method of the service, with the right kind. */
  for (size_t h = 0; h < svc->n_methods; h++) {
    const sc_rpc_method_t *m = &svc->methods[h];
    const Google__Protobuf__MethodDescriptorProto *mp = sc_descpool_find_method(srv->pool, d->name, m->name);
    if (mp == NULL) {
      sc_err_set(err, "%s has no method %s", d->name, m->name);
      return -1;
    }
    if (kind_of(mp) != m->kind) {
      sc_err_set(err, "%s.%s is %s in the proto but its handler is %s", d->name, m->name, kind_name(kind_of(mp)),
                 kind_name(m->kind));
      return -1;
    }
    int has = (m->kind == SC_RPC_UNARY && m->unary) || (m->kind == SC_RPC_SERVER_STREAMING && m->server_stream) ||
              (m->kind == SC_RPC_CLIENT_STREAMING && m->client_stream) || (m->kind == SC_RPC_BIDI_STREAMING && m->bidi);
    if (!has) {
      sc_err_set(err, "%s.%s: the handler for its kind (%s) is NULL", d->name, m->name, kind_name(m->kind));
      return -1;
    }
  }
  if (srv->n_services == srv->cap_services) {
    size_t cap = srv->cap_services ? srv->cap_services * 2 : 16;
    const sc_rpc_service_t **v = realloc(srv->services, cap * sizeof(*v));
    if (v == NULL) goto oom;
    srv->services = v;
    srv->cap_services = cap;
  }
  if (srv->n_methods + d->n_methods > srv->cap_methods) {
    size_t cap = (srv->cap_methods ? srv->cap_methods * 2 : 64) + d->n_methods;
    method_entry_t *v = realloc(srv->methods, cap * sizeof(*v));
    if (v == NULL) goto oom;
    srv->methods = v;
    srv->cap_methods = cap;
  }
  for (unsigned i = 0; i < d->n_methods; i++) {
    const ProtobufCMethodDescriptor *md = &d->methods[i];
    const Google__Protobuf__MethodDescriptorProto *mp = sc_descpool_find_method(srv->pool, d->name, md->name);
    const sc_rpc_method_t *m = NULL;
    for (size_t h = 0; h < svc->n_methods; h++) {
      if (strcmp(svc->methods[h].name, md->name) == 0) m = &svc->methods[h];
    }
    method_entry_t *e = &srv->methods[srv->n_methods];
    memset(e, 0, sizeof(*e));
    size_t plen = strlen(d->name) + strlen(md->name) + 3;
    e->path = malloc(plen);
    if (e->path == NULL) goto oom;
    snprintf(e->path, plen, "/%s/%s", d->name, md->name);
    e->svc = svc;
    e->m = m;
    e->kind = mp ? kind_of(mp) : SC_RPC_UNARY;
    e->input = (m && m->input) ? m->input : md->input;
    e->output = (m && m->output) ? m->output : md->output;
    if (m != NULL) {
      grpc_server_register_method_payload_handling ph = (e->kind == SC_RPC_UNARY || e->kind == SC_RPC_SERVER_STREAMING)
                                                            ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
                                                            : GRPC_SRM_PAYLOAD_NONE;
      e->reg = grpc_server_register_method(srv->server, e->path, NULL, ph, 0);
      if (e->reg == NULL) {
        free(e->path);
        sc_err_set(err, "gRPC refused to register %s", e->path);
        return -1;
      }
    }
    srv->n_methods++;
  }
  srv->services[srv->n_services++] = svc;
  return 0;
oom:
  sc_err_set(err, "out of memory");
  return -1;
}

int sc_rpc_server_add_interceptor(sc_rpc_server_t *srv, const sc_rpc_interceptor_t *ic, sc_err_t *err) {
  if (atomic_load(&srv->started)) {
    sc_err_set(err, "interceptors must be added before the server starts");
    return -1;
  }
  sc_rpc_interceptor_t *v = realloc(srv->ics, (srv->n_ics + 1) * sizeof(*v));
  if (v == NULL) {
    sc_err_set(err, "out of memory");
    return -1;
  }
  srv->ics = v;
  srv->ics[srv->n_ics++] = *ic;
  return 0;
}

static char *read_pem(const char *path, sc_err_t *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    sc_err_set(err, "cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(MAX_PEM_BYTES + 1);
  size_t n = buf ? fread(buf, 1, MAX_PEM_BYTES + 1, f) : 0;
  fclose(f);
  if (buf == NULL || n == 0 || n > MAX_PEM_BYTES) {
    sc_err_set(err, "%s: %s", path, buf == NULL ? "out of memory" : n == 0 ? "empty" : "larger than 1 MiB");
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

/* The core only logs why it rejects TLS material and then fails to listen;
 * check it here first so the start-up error says which file is wrong. */
static int tls_material_ok(const char *cert, const char *key, const char *ca, sc_err_t *err) {
  int ok = 0;
  BIO *b = BIO_new_mem_buf(cert, -1);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  b = BIO_new_mem_buf(key, -1);
  EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (x == NULL) {
    sc_err_set(err, "TLS certificate (SCALE_TLS_CERT_FILE) is not a PEM certificate");
  } else if (k == NULL) {
    sc_err_set(err, "TLS key (SCALE_TLS_KEY_FILE) is not an unencrypted PEM private key");
  } else if (X509_check_private_key(x, k) != 1) {
    sc_err_set(err, "TLS key (SCALE_TLS_KEY_FILE) does not match the certificate (SCALE_TLS_CERT_FILE)");
  } else {
    ok = 1;
  }
  if (ok && ca != NULL) {
    b = BIO_new_mem_buf(ca, -1);
    X509 *c = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (c == NULL) {
      sc_err_set(err, "TLS client CA (SCALE_TLS_CA_FILE) is not a PEM certificate");
      ok = 0;
    }
    X509_free(c);
  }
  X509_free(x);
  EVP_PKEY_free(k);
  ERR_clear_error();
  return ok;
}

static grpc_server_credentials *server_creds(sc_rpc_server_t *srv, sc_err_t *err) {
  if (srv->tls_cert == NULL) return grpc_insecure_server_credentials_create();
  char *cert = read_pem(srv->tls_cert, err);
  char *key = cert ? read_pem(srv->tls_key, err) : NULL;
  char *ca = (key && srv->tls_ca) ? read_pem(srv->tls_ca, err) : NULL;
  grpc_server_credentials *creds = NULL;
  if (key != NULL && (srv->tls_ca == NULL || ca != NULL) && tls_material_ok(cert, key, ca, err)) {
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    creds = grpc_ssl_server_credentials_create_ex(ca, &pair, 1,
                                                  ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                     : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
                                                  NULL);
    if (creds == NULL) sc_err_set(err, "TLS: the certificate or key could not be used");
  }
  if (key) memset(key, 0, strlen(key));
  free(cert);
  free(key);
  free(ca);
  return creds;
}

int sc_rpc_server_start(sc_rpc_server_t *srv, sc_err_t *err) {
  if (atomic_load(&srv->started)) {
    sc_err_set(err, "server already started");
    return -1;
  }
  grpc_server_credentials *creds = server_creds(srv, err);
  if (creds == NULL) return -1;
  srv->port = grpc_server_add_http2_port(srv->server, srv->addr, creds);
  grpc_server_credentials_release(creds);
  if (srv->port == 0) {
    char why[128];
    sc_err_set(err, "cannot listen on %s: %s", srv->addr, bind_problem(srv->addr, why, sizeof(why)));
    return -1;
  }
  grpc_server_start(srv->server);
  atomic_store(&srv->started, 1);
  for (int i = 0; i < srv->n_workers; i++) {
    worker_t *w = &srv->workers[i];
    for (size_t m = 0; m < srv->n_methods; m++) {
      if (srv->methods[m].reg != NULL) arm(w, &srv->methods[m]);
    }
    arm(w, NULL);
  }
  for (int i = 0; i < srv->n_workers; i++) {
    if (pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]) != 0) {
      sc_err_set(err, "cannot start worker thread %d", i);
      /* The workers already started drain and exit through shutdown. */
      for (int j = i; j < srv->n_workers; j++)
        srv->workers[j].thread = 0;
      srv->n_workers = i;
      sc_rpc_server_shutdown(srv);
      return -1;
    }
  }
  sc_health_set(srv->health, "", SC_HEALTH_SERVING);
  for (size_t i = 0; i < srv->n_services; i++) {
    sc_health_set(srv->health, srv->services[i]->descriptor->name, SC_HEALTH_SERVING);
  }
  return 0;
}

int sc_rpc_server_port(const sc_rpc_server_t *srv) { return srv->port; }
sc_health_t *sc_rpc_server_health(sc_rpc_server_t *srv) { return srv->health; }
const char *sc_rpc_server_name(const sc_rpc_server_t *srv) { return srv->name; }
const char *sc_rpc_server_version(const sc_rpc_server_t *srv) { return srv->version; }
bool sc_rpc_server_stopping(const sc_rpc_server_t *srv) { return atomic_load(&srv->stopping) != 0; }
size_t sc__rpc_server_service_count(const sc_rpc_server_t *srv) { return srv->n_services; }
const char *sc__rpc_server_service_name(const sc_rpc_server_t *srv, size_t i) {
  return i < srv->n_services ? srv->services[i]->descriptor->name : NULL;
}
const sc_descpool_t *sc__rpc_server_pool(const sc_rpc_server_t *srv) { return srv->pool; }

void sc_rpc_server_shutdown(sc_rpc_server_t *srv) {
  if (!atomic_load(&srv->started) || atomic_exchange(&srv->stopping, 1)) return;
  sc__health_shutdown(srv->health);
  grpc_server_shutdown_and_notify(srv->server, srv->shutdown_cq, srv);
  gpr_timespec grace = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(srv->grace_ms, GPR_TIMESPAN));
  grpc_event ev = grpc_completion_queue_pluck(srv->shutdown_cq, srv, grace, NULL);
  if (ev.type == GRPC_QUEUE_TIMEOUT) {
    SC_LOG_WARNF(NULL, "shutdown: calls still running after %d ms; cancelling them", srv->grace_ms);
    grpc_server_cancel_all_calls(srv->server);
    grpc_completion_queue_pluck(srv->shutdown_cq, srv, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  }
  pthread_mutex_lock(&srv->mu);
  while (srv->active_streams > 0)
    pthread_cond_wait(&srv->cv, &srv->mu);
  pthread_mutex_unlock(&srv->mu);
  for (int i = 0; i < srv->n_workers; i++)
    grpc_completion_queue_shutdown(srv->workers[i].cq);
  for (int i = 0; i < srv->n_workers; i++) {
    if (srv->workers[i].thread) pthread_join(srv->workers[i].thread, NULL);
  }
  atomic_store(&srv->stopped, 1);
}

void sc_rpc_server_free(sc_rpc_server_t *srv) {
  if (srv == NULL) return;
  if (atomic_load(&srv->started)) sc_rpc_server_shutdown(srv);
  if (srv->server) {
    if (!atomic_load(&srv->started)) {
      /* Never started: the core still wants a shutdown before destroy. */
      grpc_server_shutdown_and_notify(srv->server, srv->shutdown_cq, srv);
      grpc_completion_queue_pluck(srv->shutdown_cq, srv, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    grpc_server_destroy(srv->server);
  }
  for (int i = 0; srv->workers && i < srv->n_workers; i++) {
    if (srv->workers[i].cq == NULL) continue;
    if (!atomic_load(&srv->started)) grpc_completion_queue_shutdown(srv->workers[i].cq);
    while (grpc_completion_queue_next(srv->workers[i].cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(srv->workers[i].cq);
  }
  if (srv->shutdown_cq) {
    grpc_completion_queue_shutdown(srv->shutdown_cq);
    while (grpc_completion_queue_pluck(srv->shutdown_cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(srv->shutdown_cq);
  }
  for (size_t i = 0; i < srv->n_methods; i++)
    free(srv->methods[i].path);
  free(srv->methods);
  free(srv->services);
  free(srv->ics);
  free(srv->workers);
  sc__health_free(srv->health);
  free(srv->addr);
  free(srv->name);
  free(srv->version);
  free(srv->tls_cert);
  free(srv->tls_key);
  free(srv->tls_ca);
  pthread_mutex_destroy(&srv->mu);
  pthread_cond_destroy(&srv->cv);
  free(srv);
  grpc_shutdown_blocking();
}
