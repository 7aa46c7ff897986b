/* Internals shared by the RPC runtime's files (server, health, reflection,
 * ping). Not for use outside common/src. */
#ifndef SCALE_RPC_INT_H
#define SCALE_RPC_INT_H

#include "scale/rpc.h"

sc_health_t *sc__health_new(void);
void sc__health_free(sc_health_t *h);
/* Marks every registered service NOT_SERVING and wakes Watch streams. */
void sc__health_shutdown(sc_health_t *h);
/* The grpc.health.v1.Health service over h. */
sc_rpc_service_t sc__health_service(sc_health_t *h);

/* Reflection v1 and v1alpha services over the server's pool. */
sc_rpc_service_t sc__reflection_v1_service(sc_rpc_server_t *srv);
sc_rpc_service_t sc__reflection_v1alpha_service(sc_rpc_server_t *srv);

/* Full names of the services this server hosts (for list_services). */
size_t sc__rpc_server_service_count(const sc_rpc_server_t *srv);
const char *sc__rpc_server_service_name(const sc_rpc_server_t *srv, size_t i);
const sc_descpool_t *sc__rpc_server_pool(const sc_rpc_server_t *srv);

/* Routes the gRPC core's own log lines through scale/log.h. */
void sc__rpc_install_logging(void);

#endif
