/* The domain services scale-server can host, by the names --services takes. */
#ifndef SCALE_SERVER_DOMAINS_H
#define SCALE_SERVER_DOMAINS_H

#include <stddef.h>

#include "scale/pg.h"
#include "scale/redis.h"
#include "scale/rpc.h"

/* What domains are given: shared clients, owned by main(). */
typedef struct server_deps {
  sc_pg_pool_t *pg;
  sc_redis_t *redis;
  const char *page_token_secret; /* NULL: page tokens are signed with a random per-process key */
} server_deps_t;

typedef struct domain {
  const char *name; /* "ingestion" */
  const ProtobufCServiceDescriptor *descriptor;
  /* Builds the service table; NULL: nothing is built yet, every method
   * answers UNIMPLEMENTED. */
  sc_rpc_service_t (*make)(const server_deps_t *deps);
} domain_t;

extern const domain_t server_domains[];
extern const size_t server_domain_count;

/* The service table of domain i (its handlers, or none). */
sc_rpc_service_t server_domain_service(size_t i, const server_deps_t *deps);

#endif
