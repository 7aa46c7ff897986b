/* Fuzz target: the server's request decoding path (rpc_server.c's
 * decode_request and sc_call_recv): protobuf_c_message_unpack through an
 * arena allocator with a cap, then sc_pb_strings_valid.
 *
 * Input: byte 0 picks the request type from the table below (every input
 * type of every method the API serves, in table order; run with
 * FUZZ_REQUEST_LIST=1 to print it), byte 1 picks the arena's cap (high bit
 * set: a tight cap of 64..8192 bytes, so allocation fails part-way through
 * unpacking; clear: the server's generous one), the rest is the wire-format
 * message.
 *
 * Checks: the arena never hands out more than its cap; a decoded message has
 * the type asked for; sc_pb_strings_valid agrees with an independent walk of
 * the message using a reference UTF-8 decoder, and names the bad field when
 * it says no; sc_utf8_valid agrees with the reference decoder on the raw
 * input (a differential check: the two are written differently, from
 * Unicode's table 3-7 and from code point arithmetic).
 */
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "scale/accounts/v1/accounts.pb-c.h"
#include "scale/anomaly/v1/anomaly.pb-c.h"
#include "scale/arena.h"
#include "scale/categorization/v1/categorization.pb-c.h"
#include "scale/common/v1/ping.pb-c.h"
#include "scale/fl/v1/federation.pb-c.h"
#include "scale/forecasting/v1/forecasting.pb-c.h"
#include "scale/ingestion/v1/ingestion.pb-c.h"
#include "scale/pbcheck.h"
#include "scale/training/v1/training.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                                    \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "fuzz_request: check failed: %s (line %d)\n", #cond, __LINE__);                                  \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

/* Every service a SCALE process serves. Append only: a seed's byte 0 is an
 * index into the request table built from this list. */
static const ProtobufCServiceDescriptor *const services[] = {
    &scale__common__v1__ping_service__descriptor,
    &scale__accounts__v1__accounts_service__descriptor,
    &scale__ingestion__v1__ingestion_service__descriptor,
    &scale__categorization__v1__categorization_service__descriptor,
    &scale__forecasting__v1__forecasting_service__descriptor,
    &scale__training__v1__training_service__descriptor,
    &scale__anomaly__v1__anomaly_service__descriptor,
    &scale__fl__v1__federation_service__descriptor,
    &grpc__health__v1__health__descriptor,
    &grpc__reflection__v1__server_reflection__descriptor,
    &grpc__reflection__v1alpha__server_reflection__descriptor,
};

#define MAX_REQUESTS 256
static const ProtobufCMessageDescriptor *requests[MAX_REQUESTS];
static size_t n_requests;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++) {
    for (unsigned m = 0; m < services[s]->n_methods; m++) {
      const ProtobufCMessageDescriptor *in = services[s]->methods[m].input;
      bool seen = false;
      for (size_t i = 0; i < n_requests && !seen; i++)
        seen = requests[i] == in;
      if (seen) continue;
      CHECK(n_requests < MAX_REQUESTS);
      requests[n_requests++] = in;
    }
  }
  if (getenv("FUZZ_REQUEST_LIST") != NULL) {
    for (size_t i = 0; i < n_requests; i++)
      printf("%zu %s\n", i, requests[i]->name);
  }
  return 0;
}

/* Well-formed UTF-8 by Unicode 15 table 3-7: each lead byte fixes the range
 * of the byte after it; the rest are plain continuation bytes. */
static bool ref_utf8(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t b = s[i];
    if (b <= 0x7f) {
      i++;
      continue;
    }
    uint8_t lo = 0x80, hi = 0xbf;
    size_t k;
    if (b >= 0xc2 && b <= 0xdf) {
      k = 1;
    } else if (b == 0xe0) {
      k = 2;
      lo = 0xa0;
    } else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) {
      k = 2;
    } else if (b == 0xed) {
      k = 2;
      hi = 0x9f;
    } else if (b == 0xf0) {
      k = 3;
      lo = 0x90;
    } else if (b >= 0xf1 && b <= 0xf3) {
      k = 3;
    } else if (b == 0xf4) {
      k = 3;
      hi = 0x8f;
    } else {
      return false;
    }
    if (n - i - 1 < k) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t j = 2; j <= k; j++) {
      if (s[i + j] < 0x80 || s[i + j] > 0xbf) return false;
    }
    i += k + 1;
  }
  return true;
}

static bool ref_strings_valid(const ProtobufCMessage *m);

static bool ref_value_valid(const ProtobufCFieldDescriptor *f, const void *slot) {
  if (f->type == PROTOBUF_C_TYPE_STRING) {
    const char *s = *(const char *const *)slot;
    return s == NULL || ref_utf8((const uint8_t *)s, strlen(s));
  }
  const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)slot;
  return sub == NULL || ref_strings_valid(sub);
}

static bool ref_strings_valid(const ProtobufCMessage *m) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *member = (const char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t count = *(const size_t *)((const char *)m + f->quantifier_offset);
      void *const *items = *(void *const *const *)member;
      for (size_t k = 0; k < count; k++) {
        if (!ref_value_valid(f, &items[k])) return false;
      }
      continue;
    }
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id) {
      continue; /* another member of the oneof is set */
    }
    if (!ref_value_valid(f, member)) return false;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  CHECK(sc_utf8_valid((const char *)data, size) == ref_utf8(data, size));
  if (size < 2) return 0;
  const uint8_t *wire = data + 2;
  size_t len = size - 2;
  CHECK(sc_utf8_valid((const char *)wire, len) == ref_utf8(wire, len));

  const ProtobufCMessageDescriptor *desc = requests[data[0] % n_requests];
  /* rpc_server.c sizes a request's arena at 3 x the message cap plus room;
   * here the input is the cap. */
  size_t cap = (data[1] & 0x80) ? (size_t)64 * ((data[1] & 0x7f) + 1) : len * 3 + ((size_t)1 << 20);
  sc_arena_t *arena = sc_arena_new(cap);
  CHECK(arena != NULL);
  ProtobufCAllocator al = sc_arena_pb_allocator(arena);
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &al, len, wire);
  CHECK(sc_arena_used(arena) <= cap);
  if (msg != NULL) {
    CHECK(msg->descriptor == desc);
    const char *field = NULL;
    bool ok = sc_pb_strings_valid(msg, arena, &field);
    CHECK(ok == ref_strings_valid(msg));
    /* The path is arena memory: only a full arena may leave it unset. */
    if (!ok && sc_arena_cap(arena) - sc_arena_used(arena) >= 1024) CHECK(field != NULL && field[0] != '\0');
    CHECK(sc_arena_used(arena) <= cap);
  }
  sc_arena_free(arena);
  return 0;
}
