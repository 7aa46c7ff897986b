/* The RPC runtime end to end in one process: a server built with fake
 * handlers on real service descriptors, called through the runtime's own
 * client over loopback. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "scale/accounts/v1/accounts.pb-c.h"
#include "scale/common/v1/ping.pb-c.h"
#include "scale/ingestion/v1/ingestion.pb-c.h"
#include "scale/rpc.h"
#include "scale/rpc_client.h"
#include "scale/training/v1/training.pb-c.h"

#define PING "/scale.common.v1.PingService/Ping"

typedef struct fake {
  atomic_int handler_runs;
  atomic_int saw_cancel; /* a handler noticed its call ended */
  atomic_int stream_sent;
  atomic_int rows;
  char order[64]; /* interceptor trace */
  pthread_mutex_t mu;
} fake_t;

static fake_t F;
static sc_rpc_server_t *srv;
static sc_rpc_channel_t *ch;
static sc_arena_t *arena;

static void trace(char c) {
  pthread_mutex_lock(&F.mu);
  size_t n = strlen(F.order);
  if (n + 1 < sizeof(F.order)) {
    F.order[n] = c;
    F.order[n + 1] = '\0';
  }
  pthread_mutex_unlock(&F.mu);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* Ping, driven by its message: "echo", "slow:<ms>" (polls for cancellation),
 * "field" (a field violation), "header" (echoes metadata x-test back). */
static sc_status_t fake_ping(sc_call_t *call, const ProtobufCMessage *req_, ProtobufCMessage **resp_, void *svc) {
  fake_t *f = svc;
  const Scale__Common__V1__PingRequest *req = (const void *)req_;
  atomic_fetch_add(&f->handler_runs, 1);
  trace('H');
  Scale__Common__V1__PingResponse *resp = sc_arena_alloc(sc_call_arena(call), sizeof(*resp));
  scale__common__v1__ping_response__init(resp);
  resp->message = req->message;
  resp->payload = req->payload;
  if (strncmp(req->message, "slow:", 5) == 0) {
    int ms = (int)strtol(req->message + 5, NULL, 10);
    for (int waited = 0; waited < ms; waited += 5) {
      if (sc_call_cancelled(call)) {
        atomic_store(&f->saw_cancel, 1);
        return sc_call_fail(call, SC_CANCELLED, "stopped");
      }
      sleep_ms(5);
    }
  } else if (strcmp(req->message, "field") == 0) {
    sc_call_fail_field(call, "message", "must not be 'field'");
    return sc_call_fail_field(call, "payload", "also wrong");
  } else if (strcmp(req->message, "header") == 0) {
    const char *v = sc_call_metadata(call, "x-test");
    resp->message = (char *)(v ? v : "(none)");
    sc_call_add_header(call, "x-answer", "42");
  }
  *resp_ = &resp->base;
  return SC_OK;
}

/* WatchJob: one message every 10 ms until the client goes away (or 1000). */
static sc_status_t fake_watch(sc_call_t *call, const ProtobufCMessage *req, void *svc) {
  (void)req;
  fake_t *f = svc;
  for (int i = 0; i < 1000; i++) {
    Scale__Training__V1__WatchJobResponse resp = SCALE__TRAINING__V1__WATCH_JOB_RESPONSE__INIT;
    sc_status_t st = sc_call_send(call, &resp.base);
    if (st != SC_OK || sc_call_cancelled(call)) {
      atomic_store(&f->saw_cancel, 1);
      return st != SC_OK ? st : SC_CANCELLED;
    }
    atomic_fetch_add(&f->stream_sent, 1);
    sleep_ms(10);
  }
  return SC_OK;
}

/* ImportStatementStream: counts chunk bytes; answers inserted = bytes. */
static sc_status_t fake_import(sc_call_t *call, ProtobufCMessage **resp_, void *svc) {
  fake_t *f = svc;
  int bytes = 0, header = 0;
  for (;;) {
    ProtobufCMessage *m;
    sc_status_t st = sc_call_recv(call, &m);
    if (st != SC_OK) return st;
    if (m == NULL) break;
    const Scale__Ingestion__V1__ImportStatementStreamRequest *r = (const void *)m;
    if (r->part_case == SCALE__INGESTION__V1__IMPORT_STATEMENT_STREAM_REQUEST__PART_HEADER) header++;
    if (r->part_case == SCALE__INGESTION__V1__IMPORT_STATEMENT_STREAM_REQUEST__PART_CHUNK) {
      bytes += (int)r->chunk.len;
    }
  }
  if (header != 1) return sc_call_fail_field(call, "header", "expected exactly one header, got %d", header);
  atomic_store(&f->rows, bytes);
  Scale__Ingestion__V1__ImportStatementStreamResponse *resp = sc_arena_alloc(sc_call_arena(call), sizeof(*resp));
  scale__ingestion__v1__import_statement_stream_response__init(resp);
  resp->inserted = bytes;
  *resp_ = &resp->base;
  return SC_OK;
}

static const sc_rpc_method_t ping_methods[] = {{.name = "Ping", .kind = SC_RPC_UNARY, .unary = fake_ping}};
static const sc_rpc_method_t training_methods[] = {
    {.name = "WatchJob", .kind = SC_RPC_SERVER_STREAMING, .server_stream = fake_watch}};
static const sc_rpc_method_t ingest_methods[] = {
    {.name = "ImportStatementStream", .kind = SC_RPC_CLIENT_STREAMING, .client_stream = fake_import}};

static sc_status_t ic_a_before(sc_call_t *call, void *d) {
  (void)call;
  (void)d;
  trace('a');
  return SC_OK;
}
static void ic_a_after(sc_call_t *call, sc_status_t st, void *d) {
  (void)call;
  (void)st;
  (void)d;
  trace('A');
}
static sc_status_t ic_b_before(sc_call_t *call, void *d) {
  (void)d;
  trace('b');
  const char *deny = sc_call_metadata(call, "x-deny");
  if (deny != NULL) return sc_call_fail(call, SC_PERMISSION_DENIED, "denied by interceptor b");
  return SC_OK;
}
static void ic_b_after(sc_call_t *call, sc_status_t st, void *d) {
  (void)call;
  (void)st;
  (void)d;
  trace('B');
}

static sc_rpc_service_t ping_svc, training_svc, ingest_svc, accounts_svc;

static sc_rpc_server_t *make_server(int grace_ms, size_t max_msg, int max_streams) {
  sc_rpc_server_opts_t o = {.addr = "127.0.0.1:0",
                            .threads = 2,
                            .max_message_bytes = max_msg,
                            .shutdown_grace_ms = grace_ms,
                            .max_streams = max_streams,
                            .name = "test-server",
                            .version = "9.9.9"};
  sc_err_t err;
  sc_rpc_server_t *s = sc_rpc_server_new(&o, &err);
  cr_assert_not_null(s, "%s", err.msg);
  ping_svc = (sc_rpc_service_t){&scale__common__v1__ping_service__descriptor, ping_methods, 1, &F, false};
  training_svc = (sc_rpc_service_t){&scale__training__v1__training_service__descriptor, training_methods, 1, &F, false};
  ingest_svc = (sc_rpc_service_t){&scale__ingestion__v1__ingestion_service__descriptor, ingest_methods, 1, &F, false};
  accounts_svc = (sc_rpc_service_t){&scale__accounts__v1__accounts_service__descriptor, NULL, 0, &F, false};
  sc_rpc_interceptor_t a = {"a", ic_a_before, ic_a_after, NULL}, b = {"b", ic_b_before, ic_b_after, NULL};
  cr_assert_eq(sc_rpc_server_add_interceptor(s, &sc_rpc_request_id_interceptor, &err), 0);
  cr_assert_eq(sc_rpc_server_add_interceptor(s, &a, &err), 0);
  cr_assert_eq(sc_rpc_server_add_interceptor(s, &b, &err), 0);
  cr_assert_eq(sc_rpc_server_add_service(s, &ping_svc, &err), 0, "%s", err.msg);
  cr_assert_eq(sc_rpc_server_add_service(s, &training_svc, &err), 0, "%s", err.msg);
  cr_assert_eq(sc_rpc_server_add_service(s, &ingest_svc, &err), 0, "%s", err.msg);
  cr_assert_eq(sc_rpc_server_add_service(s, &accounts_svc, &err), 0, "%s", err.msg);
  cr_assert_eq(sc_rpc_server_start(s, &err), 0, "%s", err.msg);
  return s;
}

static sc_rpc_channel_t *connect_to(sc_rpc_server_t *s) {
  char target[64];
  snprintf(target, sizeof(target), "127.0.0.1:%d", sc_rpc_server_port(s));
  sc_err_t err;
  sc_rpc_channel_t *c = sc_rpc_channel_new(target, NULL, &err);
  cr_assert_not_null(c, "%s", err.msg);
  return c;
}

static void setup_with(int grace_ms, size_t max_msg, int max_streams) {
  memset(&F, 0, sizeof(F));
  pthread_mutex_init(&F.mu, NULL);
  srv = make_server(grace_ms, max_msg, max_streams);
  ch = connect_to(srv);
  arena = sc_arena_new(0);
}
static void setup(void) { setup_with(2000, 0, 0); }
static void teardown(void) {
  sc_rpc_channel_free(ch);
  sc_rpc_server_free(srv);
  sc_arena_free(arena);
}

static sc_status_t ping(const char *msg, const sc_rpc_md_t *md, size_t n_md, int64_t timeout_ms,
                        Scale__Common__V1__PingResponse **resp, sc_rpc_reply_t *reply) {
  Scale__Common__V1__PingRequest req = SCALE__COMMON__V1__PING_REQUEST__INIT;
  req.message = (char *)msg;
  ProtobufCMessage *r = NULL;
  sc_status_t st = sc_rpc_call_unary(ch, PING, &req.base, &scale__common__v1__ping_response__descriptor, md, n_md,
                                     timeout_ms, arena, &r, reply);
  if (resp) *resp = (Scale__Common__V1__PingResponse *)r;
  return st;
}

TestSuite(rpc, .init = setup, .fini = teardown, .timeout = 60);

Test(rpc, unary_round_trip_with_request_id) {
  Scale__Common__V1__PingResponse *resp;
  sc_rpc_reply_t reply;
  cr_assert_eq(ping("echo", NULL, 0, 5000, &resp, &reply), SC_OK, "%s", reply.message);
  cr_assert_str_eq(resp->message, "echo");
  cr_assert_not_null(reply.request_id, "a request id is always returned");
  cr_assert_eq(strlen(reply.request_id), 36);

  sc_rpc_md_t md[] = {{"x-request-id", "trace-me-123"}};
  cr_assert_eq(ping("echo", md, 1, 5000, &resp, &reply), SC_OK);
  cr_assert_str_eq(reply.request_id, "trace-me-123");
  /* An unusable id is replaced, not trusted. */
  sc_rpc_md_t bad[] = {{"x-request-id", "has spaces and {braces}"}};
  cr_assert_eq(ping("echo", bad, 1, 5000, &resp, &reply), SC_OK);
  cr_assert_eq(strlen(reply.request_id), 36);
}

Test(rpc, interceptors_wrap_the_handler_in_order) {
  F.order[0] = '\0';
  cr_assert_eq(ping("echo", NULL, 0, 5000, NULL, NULL), SC_OK);
  cr_assert_str_eq(F.order, "abHBA");
}

Test(rpc, a_failing_interceptor_stops_the_call) {
  F.order[0] = '\0';
  sc_rpc_md_t md[] = {{"x-deny", "1"}};
  sc_rpc_reply_t reply;
  cr_assert_eq(ping("echo", md, 1, 5000, NULL, &reply), SC_PERMISSION_DENIED);
  cr_assert_str_eq(reply.message, "denied by interceptor b");
  cr_assert_str_eq(F.order, "abBA", "the handler must not run; afters still do");
  cr_assert_eq(atomic_load(&F.handler_runs), 0);
}

Test(rpc, metadata_in_and_out) {
  Scale__Common__V1__PingResponse *resp;
  sc_rpc_md_t md[] = {{"x-test", "value-from-client"}};
  cr_assert_eq(ping("header", md, 1, 5000, &resp, NULL), SC_OK);
  cr_assert_str_eq(resp->message, "value-from-client");
}

Test(rpc, field_violations_become_invalid_argument) {
  sc_rpc_reply_t reply;
  cr_assert_eq(ping("field", NULL, 0, 5000, NULL, &reply), SC_INVALID_ARGUMENT);
  cr_assert_str_eq(reply.message, "message: must not be 'field'");
}

Test(rpc, unknown_and_unimplemented_methods) {
  Scale__Common__V1__PingRequest req = SCALE__COMMON__V1__PING_REQUEST__INIT;
  ProtobufCMessage *r;
  sc_rpc_reply_t reply;
  const ProtobufCMessageDescriptor *d = &scale__common__v1__ping_response__descriptor;
  cr_assert_eq(sc_rpc_call_unary(ch, "/no.Such/Method", &req.base, d, NULL, 0, 5000, arena, &r, &reply),
               SC_UNIMPLEMENTED);
  cr_assert_str_eq(reply.message, "unknown method /no.Such/Method");
  cr_assert_eq(sc_rpc_call_unary(ch, "/scale.accounts.v1.AccountsService/GetProfile", &req.base, d, NULL, 0, 5000,
                                 arena, &r, &reply),
               SC_UNIMPLEMENTED);
  cr_assert_str_eq(reply.message, "method scale.accounts.v1.AccountsService/GetProfile is not implemented yet");
  cr_assert_eq(
      sc_rpc_call_unary(ch, "/scale.common.v1.PingService/Pong", &req.base, d, NULL, 0, 5000, arena, &r, &reply),
      SC_UNIMPLEMENTED);
  cr_assert_str_eq(reply.message, "unknown method Pong of service scale.common.v1.PingService");
  cr_assert_eq(sc_rpc_call_unary(ch, "/scale.anomaly.v1.AnomalyService/ListAlerts", &req.base, d, NULL, 0, 5000, arena,
                                 &r, &reply),
               SC_UNIMPLEMENTED);
  cr_assert(strstr(reply.message, "not served by this process"), "%s", reply.message);
}

Test(rpc, undecodable_request_is_invalid_argument) {
  /* HealthCheckResponse{status: SERVING} puts a varint in field 1, where
   * PingRequest has a string: the wire types disagree. */
  Grpc__Health__V1__HealthCheckResponse wrong = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  wrong.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  ProtobufCMessage *r;
  sc_rpc_reply_t reply;
  cr_assert_eq(sc_rpc_call_unary(ch, PING, &wrong.base, &scale__common__v1__ping_response__descriptor, NULL, 0, 5000,
                                 arena, &r, &reply),
               SC_INVALID_ARGUMENT);
  cr_assert(strstr(reply.message, "not a valid scale.common.v1.PingRequest"), "%s", reply.message);
  cr_assert_eq(atomic_load(&F.handler_runs), 0);
}

Test(rpc, deadline_exceeded_and_the_handler_notices) {
  sc_rpc_reply_t reply;
  cr_assert_eq(ping("slow:5000", NULL, 0, 100, NULL, &reply), SC_DEADLINE_EXCEEDED);
  for (int i = 0; i < 200 && !atomic_load(&F.saw_cancel); i++)
    sleep_ms(10);
  cr_assert_eq(atomic_load(&F.saw_cancel), 1, "the handler kept working past the deadline");
}

Test(rpc, server_streaming_and_client_cancellation) {
  sc_err_t err;
  sc_rpc_stream_t *s =
      sc_rpc_stream_open(ch, "/scale.training.v1.TrainingService/WatchJob", NULL, 0, 10000, arena, &err);
  cr_assert_not_null(s, "%s", err.msg);
  Scale__Training__V1__WatchJobRequest req = SCALE__TRAINING__V1__WATCH_JOB_REQUEST__INIT;
  cr_assert_eq(sc_rpc_stream_send(s, &req.base), SC_OK);
  cr_assert_eq(sc_rpc_stream_close_send(s), SC_OK);
  for (int i = 0; i < 3; i++) {
    ProtobufCMessage *m;
    cr_assert_eq(sc_rpc_stream_recv(s, &scale__training__v1__watch_job_response__descriptor, &m), SC_OK);
    cr_assert_not_null(m);
  }
  sc_rpc_stream_cancel(s);
  cr_assert_eq(sc_rpc_stream_finish(s, NULL), SC_CANCELLED);
  for (int i = 0; i < 300 && !atomic_load(&F.saw_cancel); i++)
    sleep_ms(10);
  cr_assert_eq(atomic_load(&F.saw_cancel), 1, "the stream handler did not stop");
  int sent = atomic_load(&F.stream_sent);
  sleep_ms(100);
  cr_assert_eq(atomic_load(&F.stream_sent), sent, "the handler kept sending after cancellation");
}

Test(rpc, client_streaming) {
  sc_err_t err;
  sc_rpc_stream_t *s =
      sc_rpc_stream_open(ch, "/scale.ingestion.v1.IngestionService/ImportStatementStream", NULL, 0, 10000, arena, &err);
  cr_assert_not_null(s, "%s", err.msg);
  Scale__Ingestion__V1__ImportStatementHeader hdr = SCALE__INGESTION__V1__IMPORT_STATEMENT_HEADER__INIT;
  Scale__Ingestion__V1__ImportStatementStreamRequest m = SCALE__INGESTION__V1__IMPORT_STATEMENT_STREAM_REQUEST__INIT;
  m.part_case = SCALE__INGESTION__V1__IMPORT_STATEMENT_STREAM_REQUEST__PART_HEADER;
  m.header = &hdr;
  cr_assert_eq(sc_rpc_stream_send(s, &m.base), SC_OK);
  static uint8_t chunk[65536];
  int total = 0;
  for (int i = 0; i < 40; i++) {
    m.part_case = SCALE__INGESTION__V1__IMPORT_STATEMENT_STREAM_REQUEST__PART_CHUNK;
    m.chunk.data = chunk;
    m.chunk.len = sizeof(chunk) - (size_t)i;
    total += (int)m.chunk.len;
    cr_assert_eq(sc_rpc_stream_send(s, &m.base), SC_OK);
  }
  cr_assert_eq(sc_rpc_stream_close_send(s), SC_OK);
  ProtobufCMessage *r;
  cr_assert_eq(sc_rpc_stream_recv(s, &scale__ingestion__v1__import_statement_stream_response__descriptor, &r), SC_OK);
  cr_assert_not_null(r);
  cr_assert_eq(((Scale__Ingestion__V1__ImportStatementStreamResponse *)r)->inserted, total);
  sc_rpc_reply_t reply;
  cr_assert_eq(sc_rpc_stream_finish(s, &reply), SC_OK, "%s", reply.message);
}

Test(rpc, client_streaming_error_carries_the_field) {
  sc_err_t err;
  sc_rpc_stream_t *s =
      sc_rpc_stream_open(ch, "/scale.ingestion.v1.IngestionService/ImportStatementStream", NULL, 0, 10000, arena, &err);
  cr_assert_not_null(s);
  cr_assert_eq(sc_rpc_stream_close_send(s), SC_OK);
  sc_rpc_reply_t reply;
  cr_assert_eq(sc_rpc_stream_finish(s, &reply), SC_INVALID_ARGUMENT);
  cr_assert_str_eq(reply.message, "header: expected exactly one header, got 0");
}

Test(rpc, bidi_reflection_lists_the_services) {
  sc_err_t err;
  sc_rpc_stream_t *s =
      sc_rpc_stream_open(ch, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", NULL, 0, 10000, arena, &err);
  cr_assert_not_null(s);
  Grpc__Reflection__V1__ServerReflectionRequest req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
  req.list_services = "*";
  cr_assert_eq(sc_rpc_stream_send(s, &req.base), SC_OK);
  ProtobufCMessage *m;
  cr_assert_eq(sc_rpc_stream_recv(s, &grpc__reflection__v1__server_reflection_response__descriptor, &m), SC_OK);
  Grpc__Reflection__V1__ServerReflectionResponse *resp = (void *)m;
  cr_assert_eq(resp->message_response_case,
               GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
  int found_ping = 0, found_health = 0;
  for (size_t i = 0; i < resp->list_services_response->n_service; i++) {
    found_ping += strcmp(resp->list_services_response->service[i]->name, "scale.common.v1.PingService") == 0;
    found_health += strcmp(resp->list_services_response->service[i]->name, "grpc.health.v1.Health") == 0;
  }
  cr_assert_eq(found_ping, 1);
  cr_assert_eq(found_health, 1);

  /* Same stream: a symbol lookup, then an unknown file (error in-stream). */
  req.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  req.file_containing_symbol = "scale.common.v1.PingService";
  cr_assert_eq(sc_rpc_stream_send(s, &req.base), SC_OK);
  cr_assert_eq(sc_rpc_stream_recv(s, &grpc__reflection__v1__server_reflection_response__descriptor, &m), SC_OK);
  resp = (void *)m;
  cr_assert_eq(resp->message_response_case,
               GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
  cr_assert_eq(resp->file_descriptor_response->n_file_descriptor_proto, 5);
  req.message_request_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
  req.file_by_filename = "missing.proto";
  cr_assert_eq(sc_rpc_stream_send(s, &req.base), SC_OK);
  cr_assert_eq(sc_rpc_stream_recv(s, &grpc__reflection__v1__server_reflection_response__descriptor, &m), SC_OK);
  resp = (void *)m;
  cr_assert_eq(resp->message_response_case,
               GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
  cr_assert_eq(resp->error_response->error_code, 5);
  cr_assert_eq(sc_rpc_stream_close_send(s), SC_OK);
  cr_assert_eq(sc_rpc_stream_recv(s, &grpc__reflection__v1__server_reflection_response__descriptor, &m), SC_OK);
  cr_assert_null(m, "the stream ends after the client half-closes");
  cr_assert_eq(sc_rpc_stream_finish(s, NULL), SC_OK);
}

Test(rpc, health_check_reports_registered_services) {
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  ProtobufCMessage *r;
  const ProtobufCMessageDescriptor *d = &grpc__health__v1__health_check_response__descriptor;
  const char *check = "/grpc.health.v1.Health/Check";
  req.service = "";
  cr_assert_eq(sc_rpc_call_unary(ch, check, &req.base, d, NULL, 0, 5000, arena, &r, NULL), SC_OK);
  cr_assert_eq(((Grpc__Health__V1__HealthCheckResponse *)r)->status,
               GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
  req.service = "scale.accounts.v1.AccountsService";
  cr_assert_eq(sc_rpc_call_unary(ch, check, &req.base, d, NULL, 0, 5000, arena, &r, NULL), SC_OK);
  req.service = "no.such.Service";
  cr_assert_eq(sc_rpc_call_unary(ch, check, &req.base, d, NULL, 0, 5000, arena, &r, NULL), SC_NOT_FOUND);
  sc_health_set(sc_rpc_server_health(srv), "scale.accounts.v1.AccountsService", SC_HEALTH_NOT_SERVING);
  req.service = "scale.accounts.v1.AccountsService";
  cr_assert_eq(sc_rpc_call_unary(ch, check, &req.base, d, NULL, 0, 5000, arena, &r, NULL), SC_OK);
  cr_assert_eq(((Grpc__Health__V1__HealthCheckResponse *)r)->status,
               GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
}

typedef struct bg_call {
  sc_rpc_channel_t *ch;
  const char *msg;
  sc_status_t st;
  pthread_t t;
} bg_call_t;

static void *bg_ping(void *arg) {
  bg_call_t *b = arg;
  sc_arena_t *a = sc_arena_new(0);
  Scale__Common__V1__PingRequest req = SCALE__COMMON__V1__PING_REQUEST__INIT;
  req.message = (char *)b->msg;
  ProtobufCMessage *r;
  b->st = sc_rpc_call_unary(b->ch, PING, &req.base, &scale__common__v1__ping_response__descriptor, NULL, 0, 20000, a,
                            &r, NULL);
  sc_arena_free(a);
  return NULL;
}

Test(rpc, shutdown_lets_in_flight_calls_finish) {
  bg_call_t b = {.ch = ch, .msg = "slow:300"};
  pthread_create(&b.t, NULL, bg_ping, &b);
  while (atomic_load(&F.handler_runs) == 0)
    sleep_ms(2);
  sc_rpc_server_shutdown(srv);
  pthread_join(b.t, NULL);
  cr_assert_eq(b.st, SC_OK, "an in-flight call within the grace period must complete");
  cr_assert_eq(atomic_load(&F.saw_cancel), 0);
  cr_assert_eq(ping("echo", NULL, 0, 2000, NULL, NULL), SC_UNAVAILABLE, "no new calls after shutdown");
}

Test(rpc, shutdown_cancels_calls_that_outlast_the_grace) {
  teardown();
  setup_with(100, 0, 0);
  bg_call_t b = {.ch = ch, .msg = "slow:20000"};
  pthread_create(&b.t, NULL, bg_ping, &b);
  while (atomic_load(&F.handler_runs) == 0)
    sleep_ms(2);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  sc_rpc_server_shutdown(srv);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  pthread_join(b.t, NULL);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  cr_assert_lt(secs, 5.0, "shutdown took %.1f s", secs);
  cr_assert_neq(b.st, SC_OK);
  cr_assert_eq(atomic_load(&F.saw_cancel), 1, "the handler was not told to stop");
}

Test(rpc, oversized_messages_are_resource_exhausted) {
  teardown();
  setup_with(1000, 64 * 1024, 0);
  Scale__Common__V1__PingRequest req = SCALE__COMMON__V1__PING_REQUEST__INIT;
  static uint8_t big[100 * 1024];
  req.message = "echo";
  req.payload.data = big;
  req.payload.len = sizeof(big);
  ProtobufCMessage *r;
  sc_rpc_reply_t reply;
  cr_assert_eq(sc_rpc_call_unary(ch, PING, &req.base, &scale__common__v1__ping_response__descriptor, NULL, 0, 5000,
                                 arena, &r, &reply),
               SC_RESOURCE_EXHAUSTED);
  cr_assert_eq(atomic_load(&F.handler_runs), 0);
  req.payload.len = 60 * 1024;
  cr_assert_eq(sc_rpc_call_unary(ch, PING, &req.base, &scale__common__v1__ping_response__descriptor, NULL, 0, 5000,
                                 arena, &r, &reply),
               SC_OK, "%s", reply.message);
}

Test(rpc, stream_limit_is_resource_exhausted) {
  teardown();
  setup_with(1000, 0, 1);
  sc_err_t err;
  const char *m = "/scale.training.v1.TrainingService/WatchJob";
  Scale__Training__V1__WatchJobRequest req = SCALE__TRAINING__V1__WATCH_JOB_REQUEST__INIT;
  sc_rpc_stream_t *s1 = sc_rpc_stream_open(ch, m, NULL, 0, 10000, arena, &err);
  sc_rpc_stream_send(s1, &req.base);
  sc_rpc_stream_close_send(s1);
  ProtobufCMessage *msg;
  cr_assert_eq(sc_rpc_stream_recv(s1, &scale__training__v1__watch_job_response__descriptor, &msg), SC_OK);
  sc_rpc_stream_t *s2 = sc_rpc_stream_open(ch, m, NULL, 0, 10000, arena, &err);
  sc_rpc_stream_send(s2, &req.base);
  sc_rpc_stream_close_send(s2);
  sc_rpc_reply_t reply;
  cr_assert_eq(sc_rpc_stream_finish(s2, &reply), SC_RESOURCE_EXHAUSTED);
  cr_assert(strstr(reply.message, "too many concurrent streams"), "%s", reply.message);
  sc_rpc_stream_cancel(s1);
  sc_rpc_stream_finish(s1, NULL);
}

Test(rpc, two_servers_in_one_process) {
  sc_rpc_server_t *other = make_server(1000, 0, 0);
  cr_assert_neq(sc_rpc_server_port(other), sc_rpc_server_port(srv));
  sc_rpc_channel_t *c2 = connect_to(other);
  Scale__Common__V1__PingRequest req = SCALE__COMMON__V1__PING_REQUEST__INIT;
  req.message = "echo";
  ProtobufCMessage *r;
  cr_assert_eq(sc_rpc_call_unary(c2, PING, &req.base, &scale__common__v1__ping_response__descriptor, NULL, 0, 5000,
                                 arena, &r, NULL),
               SC_OK);
  sc_rpc_channel_free(c2);
  sc_rpc_server_free(other);
  cr_assert_eq(ping("echo", NULL, 0, 5000, NULL, NULL), SC_OK, "the first server is unaffected");
}

Test(rpc, registration_errors_are_explained) {
  sc_rpc_server_opts_t o = {.addr = "127.0.0.1:0", .threads = 1};
  sc_err_t err;
  sc_rpc_server_t *s = sc_rpc_server_new(&o, &err);
  cr_assert_not_null(s, "%s", err.msg);
  static const sc_rpc_method_t wrong_kind[] = {
      {.name = "Ping", .kind = SC_RPC_SERVER_STREAMING, .server_stream = fake_watch}};
  sc_rpc_service_t svc = {&scale__common__v1__ping_service__descriptor, wrong_kind, 1, NULL, false};
  cr_assert_eq(sc_rpc_server_add_service(s, &svc, &err), -1);
  cr_assert(strstr(err.msg, "is unary in the proto but its handler is server-streaming"), "%s", err.msg);
  static const sc_rpc_method_t no_such[] = {{.name = "Pong", .kind = SC_RPC_UNARY, .unary = fake_ping}};
  svc.methods = no_such;
  cr_assert_eq(sc_rpc_server_add_service(s, &svc, &err), -1);
  cr_assert(strstr(err.msg, "has no method Pong"), "%s", err.msg);
  sc_rpc_server_free(s);

  o.addr = "not an address";
  cr_assert_null(sc_rpc_server_new(&o, &err));
  o.addr = "127.0.0.1:0";
  o.tls_cert_file = "/nonexistent.pem";
  cr_assert_null(sc_rpc_server_new(&o, &err), "a cert without a key is refused");
}

Test(rpc, listening_on_a_taken_port_fails_cleanly) {
  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", sc_rpc_server_port(srv));
  sc_rpc_server_opts_t o = {.addr = addr, .threads = 1};
  sc_err_t err;
  sc_rpc_server_t *s = sc_rpc_server_new(&o, &err);
  cr_assert_not_null(s);
  cr_assert_eq(sc_rpc_server_start(s, &err), -1);
  cr_assert(strstr(err.msg, "cannot listen on"), "%s", err.msg);
  sc_rpc_server_free(s);
}

/* ---- TLS: the runtime's own client against its own server -------------------- */

static char tls_dir[64];

static void sh(const char *cmd) {
  char full[2048];
  snprintf(full, sizeof(full), "cd %s && %s >/dev/null 2>&1", tls_dir, cmd);
  cr_assert_eq(system(full), 0, "%s", cmd);
}

/* A CA, a server cert for 127.0.0.1, and a client cert from the same CA. */
static void make_certs(void) {
  snprintf(tls_dir, sizeof(tls_dir), "/tmp/scale-rpc-tls-XXXXXX");
  cr_assert_not_null(mkdtemp(tls_dir));
  sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca "
     "-keyout ca.key -out ca.pem");
  sh("printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext && printf 'extendedKeyUsage=clientAuth\\n' > client.ext");
  sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=server -keyout server.key -out s.csr"
     " && openssl x509 -req -in s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext"
     " -out server.pem");
  sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=client -keyout client.key -out c.csr"
     " && openssl x509 -req -in c.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext"
     " -out client.pem");
}

static void remove_certs(void) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", tls_dir);
  cr_assert_eq(system(cmd), 0);
}

static const char *tls_path(const char *name) {
  static char buf[8][128];
  static int i;
  i = (i + 1) % 8;
  snprintf(buf[i], sizeof(buf[i]), "%s/%s", tls_dir, name);
  return buf[i];
}

static sc_status_t tls_ping(int port, const sc_rpc_channel_opts_t *co) {
  char target[64];
  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  sc_err_t err;
  sc_rpc_channel_t *c = sc_rpc_channel_new(target, co, &err);
  cr_assert_not_null(c, "%s", err.msg);
  Scale__Common__V1__PingRequest req = SCALE__COMMON__V1__PING_REQUEST__INIT;
  req.message = "echo";
  ProtobufCMessage *r;
  sc_arena_t *a = sc_arena_new(0);
  sc_status_t st =
      sc_rpc_call_unary(c, PING, &req.base, &scale__common__v1__ping_response__descriptor, NULL, 0, 5000, a, &r, NULL);
  sc_arena_free(a);
  sc_rpc_channel_free(c);
  return st;
}

Test(rpc_tls, mutual_tls_between_client_and_server, .init = make_certs, .fini = remove_certs, .timeout = 60) {
  sc_rpc_server_opts_t o = {.addr = "127.0.0.1:0",
                            .threads = 2,
                            .tls_cert_file = tls_path("server.pem"),
                            .tls_key_file = tls_path("server.key"),
                            .tls_ca_file = tls_path("ca.pem")};
  sc_err_t err;
  sc_rpc_server_t *s = sc_rpc_server_new(&o, &err);
  cr_assert_not_null(s, "%s", err.msg);
  sc_rpc_service_t svc = {&scale__common__v1__ping_service__descriptor, ping_methods, 1, &F, true};
  cr_assert_eq(sc_rpc_server_add_service(s, &svc, &err), 0, "%s", err.msg);
  cr_assert_eq(sc_rpc_server_start(s, &err), 0, "%s", err.msg);
  int port = sc_rpc_server_port(s);

  sc_rpc_channel_opts_t full = {.tls_ca_file = tls_path("ca.pem"),
                                .tls_cert_file = tls_path("client.pem"),
                                .tls_key_file = tls_path("client.key")};
  cr_assert_eq(tls_ping(port, &full), SC_OK, "mTLS with a client certificate");
  sc_rpc_channel_opts_t no_cert = {.tls_ca_file = tls_path("ca.pem")};
  cr_assert_eq(tls_ping(port, &no_cert), SC_UNAVAILABLE, "a client without a certificate is refused");
  cr_assert_eq(tls_ping(port, NULL), SC_UNAVAILABLE, "plaintext is refused");
  sc_rpc_server_free(s);
}
