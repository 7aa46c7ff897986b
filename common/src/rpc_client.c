#include "scale/rpc_client.h"

#include "rpc_int.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PEM_BYTES ((size_t)1 << 20)
#define MAX_MD 32

struct sc_rpc_channel {
  grpc_channel *ch;
};

struct sc_rpc_stream {
  grpc_call *call;
  grpc_completion_queue *cq;
  sc_arena_t *arena;
  grpc_metadata_array initial_md, trailing_md;
  grpc_status_code code;
  grpc_slice details;
  int status_tag, op_tag, hdr_tag;
  int got_headers, closed_send, status_started;
};

static char *read_file(const char *path, sc_err_t *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    sc_err_set(err, "cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(MAX_PEM_BYTES + 1);
  size_t n = buf ? fread(buf, 1, MAX_PEM_BYTES + 1, f) : 0;
  fclose(f);
  if (buf == NULL || n == 0 || n > MAX_PEM_BYTES) {
    sc_err_set(err, "%s: empty, unreadable or larger than 1 MiB", path);
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

sc_rpc_channel_t *sc_rpc_channel_new(const char *target, const sc_rpc_channel_opts_t *o, sc_err_t *err) {
  if (target == NULL || *target == '\0') {
    sc_err_set(err, "empty target");
    return NULL;
  }
  sc__rpc_install_logging();
  grpc_init();
  grpc_channel_credentials *creds = NULL;
  grpc_arg args[2];
  size_t nargs = 0;
  args[nargs].type = GRPC_ARG_INTEGER;
  args[nargs].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  size_t max = (o && o->max_message_bytes) ? o->max_message_bytes : ((size_t)4 << 20);
  args[nargs].value.integer = max > INT32_MAX ? INT32_MAX : (int)max;
  nargs++;
  if (o && o->tls_ca_file) {
    char *ca = read_file(o->tls_ca_file, err), *cert = NULL, *key = NULL;
    if (ca && o->tls_cert_file) {
      cert = read_file(o->tls_cert_file, err);
      key = cert ? read_file(o->tls_key_file ? o->tls_key_file : "", err) : NULL;
    }
    if (ca && (o->tls_cert_file == NULL || key != NULL)) {
      grpc_ssl_pem_key_cert_pair pair = {key, cert};
      creds = grpc_ssl_credentials_create(ca, key ? &pair : NULL, NULL, NULL);
    }
    if (key) memset(key, 0, strlen(key));
    free(ca);
    free(cert);
    free(key);
    if (creds == NULL) {
      grpc_shutdown();
      return NULL;
    }
    if (o->tls_server_name) {
      args[nargs].type = GRPC_ARG_STRING;
      args[nargs].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
      args[nargs].value.string = (char *)o->tls_server_name;
      nargs++;
    }
  } else {
    creds = grpc_insecure_credentials_create();
  }
  grpc_channel_args ch_args = {nargs, args};
  sc_rpc_channel_t *ch = calloc(1, sizeof(*ch));
  if (ch != NULL) ch->ch = grpc_channel_create(target, creds, &ch_args);
  grpc_channel_credentials_release(creds);
  if (ch == NULL || ch->ch == NULL) {
    sc_err_set(err, "cannot create a channel to %s", target);
    free(ch);
    grpc_shutdown();
    return NULL;
  }
  return ch;
}

void sc_rpc_channel_free(sc_rpc_channel_t *ch) {
  if (ch == NULL) return;
  grpc_channel_destroy(ch->ch);
  free(ch);
  grpc_shutdown();
}

static gpr_timespec deadline_of(int64_t timeout_ms) {
  if (timeout_ms <= 0) return gpr_inf_future(GPR_CLOCK_REALTIME);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

static grpc_metadata *to_md(const sc_rpc_md_t *md, size_t n, grpc_metadata *out) {
  for (size_t i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof(out[i]));
    out[i].key = grpc_slice_from_static_string(md[i].key);
    out[i].value = grpc_slice_from_static_string(md[i].value);
  }
  return out;
}

static grpc_byte_buffer *pack(const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

static ProtobufCMessage *unpack(sc_arena_t *arena, const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return NULL;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  ProtobufCAllocator al = sc_arena_pb_allocator(arena);
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, &al, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  return m;
}

static const char *md_value(sc_arena_t *a, const grpc_metadata_array *md, const char *key) {
  size_t kn = strlen(key);
  for (size_t i = 0; i < md->count; i++) {
    grpc_slice k = md->metadata[i].key;
    if (GRPC_SLICE_LENGTH(k) == kn && memcmp(GRPC_SLICE_START_PTR(k), key, kn) == 0) {
      grpc_slice v = md->metadata[i].value;
      return sc_arena_strndup(a, (const char *)GRPC_SLICE_START_PTR(v), GRPC_SLICE_LENGTH(v));
    }
  }
  return NULL;
}

static void fill_reply(sc_rpc_reply_t *r, sc_arena_t *a, grpc_status_code code, grpc_slice details,
                       const grpc_metadata_array *initial) {
  if (r == NULL) return;
  r->grpc_code = (int)code;
  r->message = sc_arena_strndup(a, (const char *)GRPC_SLICE_START_PTR(details), GRPC_SLICE_LENGTH(details));
  if (r->message == NULL) r->message = "";
  r->request_id = md_value(a, initial, "x-request-id");
}

static void drain_destroy(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
}

sc_status_t sc_rpc_call_unary(sc_rpc_channel_t *ch, const char *method, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc, const sc_rpc_md_t *md, size_t n_md,
                              int64_t timeout_ms, sc_arena_t *arena, ProtobufCMessage **resp, sc_rpc_reply_t *reply) {
  *resp = NULL;
  if (n_md > MAX_MD) return SC_INVALID_ARGUMENT;
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_call *call =
      grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, grpc_slice_from_static_string(method), NULL,
                               deadline_of(timeout_ms), NULL);
  grpc_metadata mds[MAX_MD];
  grpc_metadata_array initial, trailing;
  grpc_metadata_array_init(&initial);
  grpc_metadata_array_init(&trailing);
  grpc_byte_buffer *out = pack(req), *in = NULL;
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = n_md;
  ops[0].data.send_initial_metadata.metadata = to_md(md, n_md, mds);
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = out;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &in;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
  ops[5].data.recv_status_on_client.status = &code;
  ops[5].data.recv_status_on_client.status_details = &details;
  int tag;
  sc_status_t st;
  if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
    st = SC_INTERNAL;
    if (reply) {
      reply->grpc_code = GRPC_STATUS_INTERNAL;
      reply->message = "the call could not be started (bad metadata?)";
      reply->request_id = NULL;
    }
  } else {
    grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    st = sc_status_from_grpc((int)code);
    if (st == SC_OK) {
      *resp = in ? unpack(arena, resp_desc, in) : NULL;
      if (*resp == NULL) {
        st = SC_INTERNAL;
        code = GRPC_STATUS_INTERNAL;
        grpc_slice_unref(details);
        details = grpc_slice_from_static_string("the response could not be decoded");
      }
    }
    fill_reply(reply, arena, code, details, &initial);
  }
  if (in) grpc_byte_buffer_destroy(in);
  grpc_byte_buffer_destroy(out);
  grpc_slice_unref(details);
  grpc_call_unref(call);
  grpc_metadata_array_destroy(&initial);
  grpc_metadata_array_destroy(&trailing);
  drain_destroy(cq);
  return st;
}

sc_rpc_stream_t *sc_rpc_stream_open(sc_rpc_channel_t *ch, const char *method, const sc_rpc_md_t *md, size_t n_md,
                                    int64_t timeout_ms, sc_arena_t *arena, sc_err_t *err) {
  if (n_md > MAX_MD) {
    sc_err_set(err, "too much metadata");
    return NULL;
  }
  sc_rpc_stream_t *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    sc_err_set(err, "out of memory");
    return NULL;
  }
  s->arena = arena;
  s->cq = grpc_completion_queue_create_for_pluck(NULL);
  s->call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq,
                                     grpc_slice_from_static_string(method), NULL, deadline_of(timeout_ms), NULL);
  grpc_metadata_array_init(&s->initial_md);
  grpc_metadata_array_init(&s->trailing_md);
  s->details = grpc_empty_slice();
  s->code = GRPC_STATUS_UNKNOWN;
  grpc_metadata mds[MAX_MD];
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = n_md;
  ops[0].data.send_initial_metadata.metadata = to_md(md, n_md, mds);
  if (grpc_call_start_batch(s->call, ops, 1, &s->op_tag, NULL) != GRPC_CALL_OK) goto fail;
  grpc_completion_queue_pluck(s->cq, &s->op_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  /* The status op goes first and completes last: it is how the stream learns
   * that the call is over. */
  ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[0].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
  ops[0].data.recv_status_on_client.status = &s->code;
  ops[0].data.recv_status_on_client.status_details = &s->details;
  if (grpc_call_start_batch(s->call, ops, 1, &s->status_tag, NULL) != GRPC_CALL_OK) goto fail;
  s->status_started = 1;
  return s;
fail:
  sc_err_set(err, "the call could not be started");
  sc_rpc_stream_cancel(s);
  sc_rpc_stream_finish(s, NULL);
  return NULL;
}

static int batch(sc_rpc_stream_t *s, grpc_op *ops, size_t n) {
  if (grpc_call_start_batch(s->call, ops, n, &s->op_tag, NULL) != GRPC_CALL_OK) return 0;
  grpc_event ev = grpc_completion_queue_pluck(s->cq, &s->op_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.success;
}

sc_status_t sc_rpc_stream_send(sc_rpc_stream_t *s, const ProtobufCMessage *msg) {
  grpc_byte_buffer *bb = pack(msg);
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = bb;
  int ok = batch(s, &op, 1);
  grpc_byte_buffer_destroy(bb);
  return ok ? SC_OK : SC_CANCELLED;
}

sc_status_t sc_rpc_stream_close_send(sc_rpc_stream_t *s) {
  if (s->closed_send) return SC_OK;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  s->closed_send = 1;
  return batch(s, &op, 1) ? SC_OK : SC_CANCELLED;
}

sc_status_t sc_rpc_stream_recv(sc_rpc_stream_t *s, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg) {
  *msg = NULL;
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  size_t n = 0;
  if (!s->got_headers) {
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    n++;
    s->got_headers = 1;
  }
  grpc_byte_buffer *bb = NULL;
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n].data.recv_message.recv_message = &bb;
  n++;
  if (!batch(s, ops, n)) return SC_CANCELLED;
  if (bb == NULL) return SC_OK;
  *msg = unpack(s->arena, desc, bb);
  grpc_byte_buffer_destroy(bb);
  return *msg ? SC_OK : SC_INTERNAL;
}

void sc_rpc_stream_cancel(sc_rpc_stream_t *s) { grpc_call_cancel(s->call, NULL); }

sc_status_t sc_rpc_stream_finish(sc_rpc_stream_t *s, sc_rpc_reply_t *reply) {
  /* The core delivers the status only after the headers and every message
   * have been received: read (and drop) whatever the caller left unread. */
  while (s->status_started) {
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!s->got_headers) {
      ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
      ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
      n++;
      s->got_headers = 1;
    }
    grpc_byte_buffer *bb = NULL;
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &bb;
    n++;
    if (!batch(s, ops, n) || bb == NULL) break;
    grpc_byte_buffer_destroy(bb);
  }
  if (s->status_started) {
    grpc_completion_queue_pluck(s->cq, &s->status_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  }
  sc_status_t st = s->status_started ? sc_status_from_grpc((int)s->code) : SC_INTERNAL;
  fill_reply(reply, s->arena, s->code, s->details, &s->initial_md);
  grpc_slice_unref(s->details);
  grpc_call_unref(s->call);
  grpc_metadata_array_destroy(&s->initial_md);
  grpc_metadata_array_destroy(&s->trailing_md);
  drain_destroy(s->cq);
  free(s);
  return st;
}
