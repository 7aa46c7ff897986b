/* Statuses: the one table that maps every internal status to its gRPC code,
 * HTTP status and RFC 7807 problem type and title (libuv's UV_ERRNO_MAP).
 * The gRPC -> HTTP mapping lives here and nowhere else.
 */
#ifndef SCALE_STATUS_H
#define SCALE_STATUS_H

#include <stddef.h>

/* X(NAME, grpc_code, http_status, problem_slug, title)
 * The first 17 rows are the canonical gRPC codes, in code order, with the
 * HTTP statuses of the canonical mapping (google.rpc.Code / grpc-gateway);
 * the rows after them refine a canonical code for HTTP. */
#define SC_STATUS_MAP(X)                                                                                               \
  X(OK, 0, 200, "ok", "OK")                                                                                            \
  X(CANCELLED, 1, 499, "cancelled", "Request cancelled")                                                               \
  X(UNKNOWN, 2, 500, "unknown", "Unknown error")                                                                       \
  X(INVALID_ARGUMENT, 3, 400, "invalid-argument", "Invalid argument")                                                  \
  X(DEADLINE_EXCEEDED, 4, 504, "deadline-exceeded", "Deadline exceeded")                                               \
  X(NOT_FOUND, 5, 404, "not-found", "Not found")                                                                       \
  X(ALREADY_EXISTS, 6, 409, "already-exists", "Already exists")                                                        \
  X(PERMISSION_DENIED, 7, 403, "permission-denied", "Permission denied")                                               \
  X(RESOURCE_EXHAUSTED, 8, 429, "resource-exhausted", "Resource exhausted")                                            \
  X(FAILED_PRECONDITION, 9, 400, "failed-precondition", "Failed precondition")                                         \
  X(ABORTED, 10, 409, "aborted", "Aborted")                                                                            \
  X(OUT_OF_RANGE, 11, 400, "out-of-range", "Out of range")                                                             \
  X(UNIMPLEMENTED, 12, 501, "unimplemented", "Not implemented")                                                        \
  X(INTERNAL, 13, 500, "internal", "Internal error")                                                                   \
  X(UNAVAILABLE, 14, 503, "unavailable", "Service unavailable")                                                        \
  X(DATA_LOSS, 15, 500, "data-loss", "Data loss")                                                                      \
  X(UNAUTHENTICATED, 16, 401, "unauthenticated", "Unauthenticated")                                                    \
  X(PAYLOAD_TOO_LARGE, 8, 413, "payload-too-large", "Payload too large")                                               \
  X(RATE_LIMITED, 8, 429, "rate-limited", "Too many requests")                                                         \
  X(METHOD_NOT_ALLOWED, 12, 405, "method-not-allowed", "Method not allowed")                                           \
  X(UNSUPPORTED_MEDIA_TYPE, 3, 415, "unsupported-media-type", "Unsupported media type")                                \
  X(NOT_ACCEPTABLE, 3, 406, "not-acceptable", "Not acceptable")

typedef enum sc_status {
#define SC__STATUS_ENUM(name, grpc, http, slug, title) SC_##name,
  SC_STATUS_MAP(SC__STATUS_ENUM)
#undef SC__STATUS_ENUM
      SC_STATUS_COUNT_
} sc_status_t;

/* "INVALID_ARGUMENT"; "UNKNOWN_STATUS" for a value outside the table. */
const char *sc_status_name(sc_status_t st);
/* The gRPC status code (grpc_status_code values). */
int sc_status_grpc_code(sc_status_t st);
/* The HTTP status a REST client sees. */
int sc_status_http(sc_status_t st);
/* RFC 7807 `type`: a URI reference, "/problems/<slug>" ("about:blank" for OK). */
const char *sc_status_problem_type(sc_status_t st);
/* RFC 7807 `title`. */
const char *sc_status_title(sc_status_t st);
/* The canonical status of a gRPC code (what a gateway maps an upstream code
 * to); codes outside 0..16 map to SC_UNKNOWN. */
sc_status_t sc_status_from_grpc(int grpc_code);

/* A setup-time error message (config, startup, registration). Functions that
 * take a `sc_err_t *` fill it when they fail and leave it alone otherwise. */
typedef struct sc_err {
  char msg[512];
} sc_err_t;

void sc_err_set(sc_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
