#include <criterion/criterion.h>
#include <string.h>

#include "scale/descpool.h"

static const sc_descpool_t *pool(void) {
  sc_err_t err;
  const sc_descpool_t *p = sc_descpool_embedded(&err);
  cr_assert_not_null(p, "%s", err.msg);
  return p;
}

Test(descpool, embedded_set_has_the_served_files) {
  const sc_descpool_t *p = pool();
  cr_assert_not_null(sc_descpool_find_file(p, "scale/common/v1/ping.proto"));
  cr_assert_not_null(sc_descpool_find_file(p, "grpc/health/v1/health.proto"));
  cr_assert_not_null(sc_descpool_find_file(p, "grpc/reflection/v1alpha/reflection.proto"));
  cr_assert_not_null(sc_descpool_find_file(p, "google/api/annotations.proto"));
  cr_assert_null(sc_descpool_find_file(p, "nope.proto"));
}

Test(descpool, symbols_of_every_kind) {
  const sc_descpool_t *p = pool();
  const char *file = "scale/common/v1/ping.proto";
  cr_assert_str_eq(sc_descpool_find_symbol(p, "scale.common.v1.PingService")->name, file);
  cr_assert_str_eq(sc_descpool_find_symbol(p, "scale.common.v1.PingService.Ping")->name, file);
  cr_assert_str_eq(sc_descpool_find_symbol(p, "scale.common.v1.PingRequest")->name, file);
  cr_assert_str_eq(sc_descpool_find_symbol(p, ".scale.common.v1.PingRequest")->name, file);
  cr_assert_str_eq(sc_descpool_find_symbol(p, "scale.common.v1.PingRequest.payload")->name, file);
  /* Nested enum and its value (values are siblings of the enum). */
  const char *h = "grpc/health/v1/health.proto";
  cr_assert_str_eq(sc_descpool_find_symbol(p, "grpc.health.v1.HealthCheckResponse.ServingStatus")->name, h);
  cr_assert_str_eq(sc_descpool_find_symbol(p, "grpc.health.v1.HealthCheckResponse.SERVING")->name, h);
  cr_assert_str_eq(sc_descpool_find_symbol(p, "google.api.http")->name, "google/api/annotations.proto");
  cr_assert_null(sc_descpool_find_symbol(p, "scale.common.v1.Nope"));
  cr_assert_null(sc_descpool_find_symbol(p, ""));
}

Test(descpool, closure_is_file_first_then_transitive_deps_once) {
  const sc_descpool_t *p = pool();
  const sc_descfile_t *f = sc_descpool_find_file(p, "scale/common/v1/ping.proto");
  const sc_descfile_t *out[64];
  size_t n = sc_descpool_closure(p, f, out, 64);
  cr_assert_eq(out[0], f);
  const char *want[] = {"google/api/annotations.proto", "google/api/http.proto", "google/protobuf/descriptor.proto",
                        "google/protobuf/timestamp.proto"};
  cr_assert_eq(n, 5);
  for (size_t w = 0; w < 4; w++) {
    int found = 0;
    for (size_t i = 1; i < n; i++)
      found += strcmp(out[i]->name, want[w]) == 0;
    cr_assert_eq(found, 1, "%s should appear once", want[w]);
  }
  /* A short buffer still reports the full count. */
  cr_assert_eq(sc_descpool_closure(p, f, out, 2), 5);
}

Test(descpool, method_kinds_come_from_the_protos) {
  const sc_descpool_t *p = pool();
  const Google__Protobuf__MethodDescriptorProto *m = sc_descpool_find_method(p, "grpc.health.v1.Health", "Watch");
  cr_assert_not_null(m);
  cr_assert(m->server_streaming);
  cr_assert_not(m->has_client_streaming && m->client_streaming);
  m = sc_descpool_find_method(p, "grpc.reflection.v1.ServerReflection", "ServerReflectionInfo");
  cr_assert(m->client_streaming && m->server_streaming);
  cr_assert_null(sc_descpool_find_method(p, "grpc.health.v1.Health", "Nope"));
  cr_assert_null(sc_descpool_find_method(p, "grpc.health.v1.HealthCheckRequest", "Check"));
}

Test(descpool, malformed_sets_are_refused) {
  sc_err_t err;
  const uint8_t junk[] = {0x0a, 0x05, 1, 2};
  cr_assert_null(sc_descpool_new(junk, sizeof(junk), &err));
  cr_assert(strstr(err.msg, "not a valid FileDescriptorSet"), "%s", err.msg);
  const uint8_t wrong_field[] = {0x12, 0x00};
  cr_assert_null(sc_descpool_new(wrong_field, sizeof(wrong_field), &err));
  /* A file importing one the set lacks. */
  const uint8_t orphan[] = {0x0a, 0x0b, 0x0a, 0x03, 'a', '.', 'p', 0x1a, 0x04, 'b', '.', 'p', 'r'};
  cr_assert_null(sc_descpool_new(orphan, sizeof(orphan), &err));
  cr_assert(strstr(err.msg, "imports b.pr"), "%s", err.msg);
  /* The empty set is valid. */
  sc_descpool_t *empty = sc_descpool_new((const uint8_t *)"", 0, &err);
  cr_assert_not_null(empty);
  cr_assert_eq(sc_descpool_file_count(empty), 0);
  sc_descpool_free(empty);
}
