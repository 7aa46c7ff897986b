/* grpc.health.v1.Health: a registry of service -> status ("" is the whole
 * server), Check and Watch, with the semantics of grpc's
 * doc/health-checking.md: Check of an unknown service is NOT_FOUND; Watch
 * sends the current status at once and again on every change, and for an
 * unknown service sends SERVICE_UNKNOWN and stays open. On shutdown every
 * service turns NOT_SERVING, Watch streams get that, then end UNAVAILABLE. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "rpc_int.h"

#define WATCH_POLL_MS 200
#define MAX_SERVICES 1024

typedef struct entry {
  char *name;
  sc_health_status_t st;
} entry_t;

struct sc_health {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  entry_t *v;
  size_t n, cap;
  unsigned long version;
  int shutdown;
};

sc_health_t *sc__health_new(void) {
  sc_health_t *h = calloc(1, sizeof(*h));
  if (h == NULL) return NULL;
  pthread_mutex_init(&h->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->cv, &ca);
  pthread_condattr_destroy(&ca);
  return h;
}

void sc__health_free(sc_health_t *h) {
  if (h == NULL) return;
  for (size_t i = 0; i < h->n; i++)
    free(h->v[i].name);
  free(h->v);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h);
}

static entry_t *find(sc_health_t *h, const char *service) {
  for (size_t i = 0; i < h->n; i++) {
    if (strcmp(h->v[i].name, service) == 0) return &h->v[i];
  }
  return NULL;
}

int sc_health_set(sc_health_t *h, const char *service, sc_health_status_t st) {
  int rc = 0;
  pthread_mutex_lock(&h->mu);
  entry_t *e = find(h, service);
  if (e == NULL) {
    if (h->n == h->cap) {
      size_t cap = h->cap ? h->cap * 2 : 16;
      entry_t *v = cap <= MAX_SERVICES ? realloc(h->v, cap * sizeof(*v)) : NULL;
      if (v == NULL) {
        rc = -1;
        goto out;
      }
      h->v = v;
      h->cap = cap;
    }
    char *name = strdup(service);
    if (name == NULL) {
      rc = -1;
      goto out;
    }
    e = &h->v[h->n++];
    e->name = name;
    e->st = SC_HEALTH_UNKNOWN;
  }
  /* Once shutting down, nothing turns SERVING again. */
  if (h->shutdown && st == SC_HEALTH_SERVING) st = SC_HEALTH_NOT_SERVING;
  if (e->st != st) {
    e->st = st;
    h->version++;
    pthread_cond_broadcast(&h->cv);
  }
out:
  pthread_mutex_unlock(&h->mu);
  return rc;
}

int sc_health_get(sc_health_t *h, const char *service, sc_health_status_t *st) {
  pthread_mutex_lock(&h->mu);
  entry_t *e = find(h, service);
  if (e) *st = e->st;
  pthread_mutex_unlock(&h->mu);
  return e ? 0 : -1;
}

void sc__health_shutdown(sc_health_t *h) {
  pthread_mutex_lock(&h->mu);
  h->shutdown = 1;
  for (size_t i = 0; i < h->n; i++)
    h->v[i].st = SC_HEALTH_NOT_SERVING;
  h->version++;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

static Grpc__Health__V1__HealthCheckResponse__ServingStatus to_proto(sc_health_status_t st) {
  switch (st) {
  case SC_HEALTH_SERVING: return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  case SC_HEALTH_NOT_SERVING: return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
  default: return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__UNKNOWN;
  }
}

static sc_status_t check(sc_call_t *call, const ProtobufCMessage *req_, ProtobufCMessage **resp_, void *svc) {
  const Grpc__Health__V1__HealthCheckRequest *req = (const void *)req_;
  sc_health_status_t st;
  if (sc_health_get(svc, req->service, &st) != 0) {
    return sc_call_fail(call, SC_NOT_FOUND, "unknown service '%s'", req->service);
  }
  Grpc__Health__V1__HealthCheckResponse *resp = sc_arena_alloc(sc_call_arena(call), sizeof(*resp));
  if (resp == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  grpc__health__v1__health_check_response__init(resp);
  resp->status = to_proto(st);
  *resp_ = &resp->base;
  return SC_OK;
}

static sc_status_t watch(sc_call_t *call, const ProtobufCMessage *req_, void *svc) {
  const Grpc__Health__V1__HealthCheckRequest *req = (const void *)req_;
  sc_health_t *h = svc;
  int last = -1;
  for (;;) {
    pthread_mutex_lock(&h->mu);
    entry_t *e = find(h, req->service);
    int cur = e ? (int)to_proto(e->st) : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    unsigned long version = h->version;
    int stopping = h->shutdown;
    pthread_mutex_unlock(&h->mu);

    if (cur != last) {
      Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
      resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)cur;
      sc_status_t st = sc_call_send(call, &resp.base);
      if (st != SC_OK) return st;
      last = cur;
    }
    if (stopping) return sc_call_fail(call, SC_UNAVAILABLE, "the server is shutting down");
    if (sc_call_cancelled(call)) return sc_call_fail(call, SC_CANCELLED, "the client went away");

    /* Wait for a change, waking now and then to notice a vanished client. */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)WATCH_POLL_MS * 1000000;
    if (until.tv_nsec >= 1000000000) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&h->mu);
    if (h->version == version && !h->shutdown) pthread_cond_timedwait(&h->cv, &h->mu, &until);
    pthread_mutex_unlock(&h->mu);
  }
}

static const sc_rpc_method_t health_methods[] = {
    {.name = "Check", .kind = SC_RPC_UNARY, .unary = check},
    {.name = "Watch", .kind = SC_RPC_SERVER_STREAMING, .server_stream = watch},
};

sc_rpc_service_t sc__health_service(sc_health_t *h) {
  sc_rpc_service_t s = {
      .descriptor = &grpc__health__v1__health__descriptor,
      .methods = health_methods,
      .n_methods = 2,
      .data = h,
      .open = true,
  };
  return s;
}
