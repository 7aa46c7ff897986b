#include "scale/status.h"

#include <stdarg.h>
#include <stdio.h>

typedef struct row {
  const char *name;
  int grpc;
  int http;
  const char *type;
  const char *title;
} row_t;

static const row_t rows[] = {
#define SC__STATUS_ROW(name, grpc, http, slug, title) {#name, grpc, http, "/problems/" slug, title},
    SC_STATUS_MAP(SC__STATUS_ROW)
#undef SC__STATUS_ROW
};

_Static_assert(sizeof(rows) / sizeof(rows[0]) == SC_STATUS_COUNT_, "status table size");

static const row_t *row_of(sc_status_t st) { return ((unsigned)st < SC_STATUS_COUNT_) ? &rows[st] : &rows[SC_UNKNOWN]; }

const char *sc_status_name(sc_status_t st) {
  return ((unsigned)st < SC_STATUS_COUNT_) ? rows[st].name : "UNKNOWN_STATUS";
}
int sc_status_grpc_code(sc_status_t st) { return row_of(st)->grpc; }
int sc_status_http(sc_status_t st) { return row_of(st)->http; }
const char *sc_status_problem_type(sc_status_t st) { return st == SC_OK ? "about:blank" : row_of(st)->type; }
const char *sc_status_title(sc_status_t st) { return row_of(st)->title; }

sc_status_t sc_status_from_grpc(int grpc_code) {
  /* The canonical rows come first, in code order (see SC_STATUS_MAP). */
  if (grpc_code < 0 || grpc_code > 16) return SC_UNKNOWN;
  return (sc_status_t)grpc_code;
}

void sc_err_set(sc_err_t *err, const char *fmt, ...) {
  if (err == NULL) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
}
