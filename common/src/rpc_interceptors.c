/* The built-in interceptors: request ids and access logs. */
#include <stdio.h>
#include <string.h>

#include "rpc_int.h"
#include "scale/log.h"
#include "scale/uuid.h"

#define MAX_REQUEST_ID 128

static bool request_id_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_REQUEST_ID) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
             c == '.' || c == ':';
    if (!ok) return false;
  }
  return true;
}

static sc_status_t request_id_before(sc_call_t *call, void *data) {
  (void)data;
  const char *id = sc_call_metadata(call, "x-request-id");
  char gen[SC_UUID_STR_LEN + 1];
  /* An unusable id from the client is replaced rather than refused: the id
   * exists to trace the call, not to validate the client. */
  if (id == NULL || !request_id_ok(id)) {
    if (sc_uuid_v4(gen) != 0) return sc_call_fail(call, SC_INTERNAL, "no random source for the request id");
    id = gen;
  }
  sc_call_set_request_id(call, id);
  sc_call_add_header(call, "x-request-id", sc_call_request_id(call));
  return SC_OK;
}

const sc_rpc_interceptor_t sc_rpc_request_id_interceptor = {
    .name = "request-id",
    .before = request_id_before,
};

static void access_log_after(sc_call_t *call, sc_status_t st, void *data) {
  (void)data;
  /* Server faults are warnings; everything the client caused is routine. */
  int fault = st == SC_INTERNAL || st == SC_UNKNOWN || st == SC_DATA_LOSS || st == SC_UNAVAILABLE;
  sc_log_level_t level = fault ? SC_LOG_WARN : SC_LOG_INFO;
  if (!sc_log_enabled(level)) return;
  sc_log_fields_t f = {
      .request_id = sc_call_request_id(call),
      .user_id = sc_call_user_id(call),
      .method = sc_call_method(call),
      .status = sc_status_name(st),
      .peer = sc_call_peer(call),
      .duration_ms = (double)sc_call_elapsed_ns(call) / 1e6,
  };
  const char *msg = sc_call_status_message(call);
  if (st == SC_OK || msg == NULL) {
    sc_log_emit(level, &f, "rpc");
  } else {
    sc_log_emit(level, &f, "rpc: %s", msg);
  }
}

const sc_rpc_interceptor_t sc_rpc_access_log_interceptor = {
    .name = "access-log",
    .after = access_log_after,
};
