/* scalectl: SCALE's command-line client.
 *
 *   scalectl token --user UUID [--ttl SECONDS] [--email ADDR]
 *       Mints an HS256 bearer token with SCALE_JWT_SECRET (local development:
 *       the token the servers of `make run` accept).
 *   scalectl ping [--addr HOST:PORT]
 *       Calls scale.common.v1.PingService/Ping and prints who answered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale/auth.h"
#include "scale/common/v1/ping.pb-c.h"
#include "scale/config.h"
#include "scale/rpc_client.h"
#include "scale/uuid.h"

#ifndef SCALE_VERSION
#define SCALE_VERSION "0.0.0"
#endif

static void usage(FILE *out) {
  fprintf(out, "usage: scalectl token --user UUID [--ttl SECONDS] [--email ADDR]\n"
               "       scalectl ping [--addr HOST:PORT]\n"
               "       scalectl --version\n"
               "\n"
               "token  mint an HS256 bearer token signed with SCALE_JWT_SECRET (for local\n"
               "       development; prints it on stdout). --user new: a random user id.\n"
               "ping   call scale.common.v1.PingService/Ping (default SCALE_GRPC_ADDR or\n"
               "       127.0.0.1:50051)\n"
               "\n"
               "Environment:\n"
               "  SCALE_JWT_SECRET     HS256 secret the servers verify with (token)\n"
               "  SCALE_JWT_AUDIENCE   aud claim (default: authenticated)\n"
               "  SCALE_GRPC_ADDR      scale-server address (ping)\n");
}

static const char *flag(int argc, char **argv, const char *name) {
  size_t n = strlen(name);
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], name) == 0 && i + 1 < argc) return argv[i + 1];
    if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') return argv[i] + n + 1;
  }
  return NULL;
}

static int cmd_token(int argc, char **argv) {
  const char *user = flag(argc, argv, "--user");
  const char *ttl_s = flag(argc, argv, "--ttl");
  const char *email = flag(argc, argv, "--email");
  const char *secret = getenv("SCALE_JWT_SECRET");
  const char *aud = getenv("SCALE_JWT_AUDIENCE");
  char fresh[SC_UUID_STR_LEN + 1];
  if (user == NULL) {
    fprintf(stderr, "scalectl token: --user UUID is required (or --user new)\n");
    return 2;
  }
  if (strcmp(user, "new") == 0) {
    if (sc_uuid_v4(fresh) != 0) return 1;
    user = fresh;
  }
  if (!sc_uuid_valid(user)) {
    fprintf(stderr, "scalectl token: --user: '%s' is not a UUID\n", user);
    return 2;
  }
  int64_t ttl = 3600;
  sc_err_t err;
  if (ttl_s != NULL && sc_config_parse_int(ttl_s, 1, 366LL * 24 * 3600, &ttl, &err) != 0) {
    fprintf(stderr, "scalectl token: --ttl: %s\n", err.msg);
    return 2;
  }
  if (secret == NULL || *secret == '\0') {
    fprintf(stderr, "scalectl token: SCALE_JWT_SECRET is not set (make run prints it; or .state/jwt-secret)\n");
    return 2;
  }
  char *tok = sc_auth_mint_hs256(secret, user, aud, email, ttl, &err);
  if (tok == NULL) {
    fprintf(stderr, "scalectl token: %s\n", err.msg);
    return 1;
  }
  printf("%s\n", tok);
  free(tok);
  return 0;
}

static int cmd_ping(int argc, char **argv) {
  const char *addr = flag(argc, argv, "--addr");
  if (addr == NULL) addr = getenv("SCALE_GRPC_ADDR");
  if (addr == NULL) addr = "127.0.0.1:50051";
  sc_err_t err;
  sc_rpc_channel_t *ch = sc_rpc_channel_new(addr, NULL, &err);
  if (ch == NULL) {
    fprintf(stderr, "scalectl ping: %s\n", err.msg);
    return 1;
  }
  sc_arena_t *arena = sc_arena_new(0);
  Scale__Common__V1__PingRequest req = SCALE__COMMON__V1__PING_REQUEST__INIT;
  req.message = "scalectl";
  ProtobufCMessage *resp = NULL;
  sc_rpc_reply_t reply = {0};
  sc_status_t st =
      sc_rpc_call_unary(ch, "/scale.common.v1.PingService/Ping", &req.base,
                        &scale__common__v1__ping_response__descriptor, NULL, 0, 5000, arena, &resp, &reply);
  int rc = 0;
  if (st == SC_OK) {
    const Scale__Common__V1__PingResponse *r = (const void *)resp;
    printf("%s %s at %s answered (request id %s)\n", r->server, r->version, addr, r->request_id);
  } else {
    fprintf(stderr, "scalectl ping: %s: %s\n", sc_status_name(st), reply.message ? reply.message : "");
    rc = 1;
  }
  sc_arena_free(arena);
  sc_rpc_channel_free(ch);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("scalectl %s\n", SCALE_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "token") == 0) return cmd_token(argc, argv);
  if (strcmp(argv[1], "ping") == 0) return cmd_ping(argc, argv);
  fprintf(stderr, "scalectl: unknown command '%s' (see --help)\n", argv[1]);
  return 2;
}
