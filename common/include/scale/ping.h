/* scale.common.v1.PingService: echo plus who answered. Hosted by every
 * SCALE gRPC process; the method `make bench` measures. */
#ifndef SCALE_PING_H
#define SCALE_PING_H

#include "scale/rpc.h"

#define SC_PING_MAX_MESSAGE 1024
#define SC_PING_MAX_PAYLOAD ((size_t)1 << 20)

/* The service table; handlers read the server's name and version. */
sc_rpc_service_t sc_ping_service(void);

#endif
