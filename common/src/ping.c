#include "scale/ping.h"

#include <string.h>
#include <time.h>

#include "scale/common/v1/ping.pb-c.h"

static sc_status_t ping(sc_call_t *call, const ProtobufCMessage *req_, ProtobufCMessage **resp_, void *svc) {
  (void)svc;
  const Scale__Common__V1__PingRequest *req = (const void *)req_;
  if (strlen(req->message) > SC_PING_MAX_MESSAGE) {
    return sc_call_fail_field(call, "message", "longer than %d bytes", SC_PING_MAX_MESSAGE);
  }
  if (req->payload.len > SC_PING_MAX_PAYLOAD) {
    return sc_call_fail_field(call, "payload", "longer than %zu bytes", SC_PING_MAX_PAYLOAD);
  }
  sc_arena_t *a = sc_call_arena(call);
  Scale__Common__V1__PingResponse *resp = sc_arena_alloc(a, sizeof(*resp));
  Google__Protobuf__Timestamp *ts = sc_arena_alloc(a, sizeof(*ts));
  if (resp == NULL || ts == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  scale__common__v1__ping_response__init(resp);
  google__protobuf__timestamp__init(ts);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  ts->seconds = now.tv_sec;
  ts->nanos = (int32_t)now.tv_nsec;
  /* The request lives in the same arena as the response: share, not copy. */
  resp->message = req->message;
  resp->payload = req->payload;
  resp->server_time = ts;
  resp->request_id = (char *)(sc_call_request_id(call) ? sc_call_request_id(call) : "");
  resp->version = (char *)sc_rpc_server_version(sc_call_server(call));
  resp->server = (char *)sc_rpc_server_name(sc_call_server(call));
  *resp_ = &resp->base;
  return SC_OK;
}

static const sc_rpc_method_t ping_methods[] = {
    {.name = "Ping", .kind = SC_RPC_UNARY, .unary = ping},
};

sc_rpc_service_t sc_ping_service(void) {
  sc_rpc_service_t s = {
      .descriptor = &scale__common__v1__ping_service__descriptor,
      .methods = ping_methods,
      .n_methods = 1,
      .data = NULL,
      /* Open like health: it reveals only the version, and operators use it
       * before they have a token. */
      .open = true,
  };
  return s;
}
