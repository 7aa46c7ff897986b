/* The domain services scale-server can host, by the names --services takes. */
#ifndef SCALE_SERVER_DOMAINS_H
#define SCALE_SERVER_DOMAINS_H

#include <stddef.h>

#include "scale/rpc.h"

typedef struct domain {
  const char *name;          /* "ingestion" */
  sc_rpc_service_t service;  /* methods without a handler answer UNIMPLEMENTED */
} domain_t;

extern const domain_t server_domains[];
extern const size_t server_domain_count;

#endif
