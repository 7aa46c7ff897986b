/* RPC client side for service-to-service calls: a channel per backend, unary
 * and streaming calls with deadlines and metadata. Calls are synchronous (each
 * waits on a queue of its own), so any thread may make them, and many at a
 * time on one channel.
 */
#ifndef SCALE_RPC_CLIENT_H
#define SCALE_RPC_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "scale/arena.h"
#include "scale/status.h"

typedef struct sc_rpc_channel sc_rpc_channel_t;
typedef struct sc_rpc_stream sc_rpc_stream_t;

typedef struct sc_rpc_channel_opts {
  const char *tls_ca_file;   /* set: TLS, trusting this CA */
  const char *tls_cert_file; /* with key: client certificate (mTLS) */
  const char *tls_key_file;
  const char *tls_server_name; /* override the name checked in the server's cert */
  size_t max_message_bytes;    /* largest response accepted; 0: 4 MiB */
} sc_rpc_channel_opts_t;

typedef struct sc_rpc_md {
  const char *key; /* lower case */
  const char *value;
} sc_rpc_md_t;

/* What came back besides the message. Strings live in the call's arena. */
typedef struct sc_rpc_reply {
  int grpc_code;
  const char *message;    /* status message ("" on OK) */
  const char *request_id; /* x-request-id response header, or NULL */
} sc_rpc_reply_t;

/* target: "127.0.0.1:50051", "dns:///host:port", "unix:/path". opts NULL:
 * plaintext. NULL (err) on a bad target or unreadable TLS files. */
sc_rpc_channel_t *sc_rpc_channel_new(const char *target, const sc_rpc_channel_opts_t *opts, sc_err_t *err);
void sc_rpc_channel_free(sc_rpc_channel_t *ch);

/* One unary call. timeout_ms <= 0: no deadline. On SC_OK *resp is the decoded
 * response (in `arena`). Returns the call's status (canonical for its gRPC
 * code); reply (optional) gets the details. */
sc_status_t sc_rpc_call_unary(sc_rpc_channel_t *ch, const char *method, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc, const sc_rpc_md_t *md, size_t n_md,
                              int64_t timeout_ms, sc_arena_t *arena, ProtobufCMessage **resp, sc_rpc_reply_t *reply);

/* A streaming call (client-, server- or bidi-streaming). Opening sends the
 * request metadata. One thread at a time per stream. */
sc_rpc_stream_t *sc_rpc_stream_open(sc_rpc_channel_t *ch, const char *method, const sc_rpc_md_t *md, size_t n_md,
                                    int64_t timeout_ms, sc_arena_t *arena, sc_err_t *err);
/* Sends one message; SC_CANCELLED when the call already ended (finish tells why). */
sc_status_t sc_rpc_stream_send(sc_rpc_stream_t *s, const ProtobufCMessage *msg);
/* Half-closes: no more messages from this side. */
sc_status_t sc_rpc_stream_close_send(sc_rpc_stream_t *s);
/* Receives the next message into the arena; SC_OK with *msg NULL at the end
 * of the stream (finish gives the status). */
sc_status_t sc_rpc_stream_recv(sc_rpc_stream_t *s, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg);
/* Cancels the call; the server sees CANCELLED. */
void sc_rpc_stream_cancel(sc_rpc_stream_t *s);
/* Waits for the status, releases the stream, returns the status. */
sc_status_t sc_rpc_stream_finish(sc_rpc_stream_t *s, sc_rpc_reply_t *reply);

#endif
