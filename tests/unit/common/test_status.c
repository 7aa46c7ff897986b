#include <criterion/criterion.h>
#include <grpc/status.h>
#include <string.h>

#include "scale/status.h"

Test(status, canonical_rows_match_grpc_codes) {
  cr_assert_eq(sc_status_grpc_code(SC_OK), GRPC_STATUS_OK);
  cr_assert_eq(sc_status_grpc_code(SC_INVALID_ARGUMENT), GRPC_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(sc_status_grpc_code(SC_UNAUTHENTICATED), GRPC_STATUS_UNAUTHENTICATED);
  cr_assert_eq(sc_status_grpc_code(SC_UNIMPLEMENTED), GRPC_STATUS_UNIMPLEMENTED);
  for (int code = 0; code <= 16; code++) {
    sc_status_t st = sc_status_from_grpc(code);
    cr_assert_eq(sc_status_grpc_code(st), code, "code %d does not round-trip", code);
  }
  cr_assert_eq(sc_status_from_grpc(17), SC_UNKNOWN);
  cr_assert_eq(sc_status_from_grpc(-1), SC_UNKNOWN);
}

Test(status, http_mapping_follows_the_canonical_table) {
  struct {
    sc_status_t st;
    int http;
  } want[] = {
      {SC_OK, 200},
      {SC_CANCELLED, 499},
      {SC_UNKNOWN, 500},
      {SC_INVALID_ARGUMENT, 400},
      {SC_DEADLINE_EXCEEDED, 504},
      {SC_NOT_FOUND, 404},
      {SC_ALREADY_EXISTS, 409},
      {SC_PERMISSION_DENIED, 403},
      {SC_RESOURCE_EXHAUSTED, 429},
      {SC_FAILED_PRECONDITION, 400},
      {SC_ABORTED, 409},
      {SC_OUT_OF_RANGE, 400},
      {SC_UNIMPLEMENTED, 501},
      {SC_INTERNAL, 500},
      {SC_UNAVAILABLE, 503},
      {SC_DATA_LOSS, 500},
      {SC_UNAUTHENTICATED, 401},
      {SC_PAYLOAD_TOO_LARGE, 413},
      {SC_RATE_LIMITED, 429},
      {SC_METHOD_NOT_ALLOWED, 405},
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    cr_assert_eq(sc_status_http(want[i].st), want[i].http, "%s", sc_status_name(want[i].st));
  }
}

Test(status, every_row_has_a_name_type_and_title) {
  for (int st = 0; st < SC_STATUS_COUNT_; st++) {
    cr_assert_gt(strlen(sc_status_name((sc_status_t)st)), 0);
    cr_assert_gt(strlen(sc_status_title((sc_status_t)st)), 0);
    const char *type = sc_status_problem_type((sc_status_t)st);
    if (st == SC_OK) {
      cr_assert_str_eq(type, "about:blank");
    } else {
      cr_assert_eq(strncmp(type, "/problems/", 10), 0, "%s", type);
    }
  }
  cr_assert_str_eq(sc_status_name(SC_PAYLOAD_TOO_LARGE), "PAYLOAD_TOO_LARGE");
  cr_assert_str_eq(sc_status_name((sc_status_t)999), "UNKNOWN_STATUS");
  cr_assert_eq(sc_status_http((sc_status_t)999), 500);
}

Test(status, refinements_keep_their_grpc_code) {
  cr_assert_eq(sc_status_grpc_code(SC_PAYLOAD_TOO_LARGE), GRPC_STATUS_RESOURCE_EXHAUSTED);
  cr_assert_eq(sc_status_grpc_code(SC_RATE_LIMITED), GRPC_STATUS_RESOURCE_EXHAUSTED);
}

Test(status, err_set_truncates_safely) {
  sc_err_t e;
  char big[2000];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  sc_err_set(&e, "%s", big);
  cr_assert_eq(strlen(e.msg), sizeof(e.msg) - 1);
  sc_err_set(NULL, "ignored");
}
