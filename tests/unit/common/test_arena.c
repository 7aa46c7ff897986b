#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "scale/arena.h"
#include "scale/common/v1/ping.pb-c.h"

Test(arena, allocations_are_aligned_and_distinct) {
  sc_arena_t *a = sc_arena_new(0);
  cr_assert_not_null(a);
  void *prev = NULL;
  for (size_t n = 0; n < 2000; n++) {
    void *p = sc_arena_alloc(a, n % 97);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % 16, 0, "allocation %zu misaligned", n);
    cr_assert_neq(p, prev);
    memset(p, 0xab, n % 97);
    prev = p;
  }
  sc_arena_free(a);
}

Test(arena, cap_is_enforced_and_failure_changes_nothing) {
  sc_arena_t *a = sc_arena_new(4096);
  cr_assert_not_null(sc_arena_alloc(a, 4000));
  size_t used = sc_arena_used(a);
  cr_assert_null(sc_arena_alloc(a, 200), "allocation past the cap must fail");
  cr_assert_eq(sc_arena_used(a), used, "a failed allocation must not count");
  cr_assert_not_null(sc_arena_alloc(a, 16), "what is left stays usable");
  sc_arena_free(a);
}

Test(arena, calloc_overflow_is_refused) {
  sc_arena_t *a = sc_arena_new(0);
  cr_assert_null(sc_arena_calloc(a, SIZE_MAX / 2, 4));
  cr_assert_null(sc_arena_alloc(a, SIZE_MAX - 3));
  unsigned char *z = sc_arena_calloc(a, 100, 3);
  cr_assert_not_null(z);
  for (int i = 0; i < 300; i++)
    cr_assert_eq(z[i], 0);
  sc_arena_free(a);
}

Test(arena, large_allocations_get_their_own_block) {
  sc_arena_t *a = sc_arena_new(0);
  char *small = sc_arena_alloc(a, 10);
  char *big = sc_arena_alloc(a, 3 << 20);
  char *small2 = sc_arena_alloc(a, 10);
  cr_assert(small && big && small2);
  memset(big, 1, 3 << 20);
  /* The small ones still share the first block. */
  cr_assert_eq(small2 - small, 16);
  sc_arena_free(a);
}

static int order[8];
static int n_order;
static void note(void *p) { order[n_order++] = (int)(intptr_t)p; }

Test(arena, cleanups_run_last_first_on_reset_and_free) {
  sc_arena_t *a = sc_arena_new(0);
  n_order = 0;
  cr_assert_eq(sc_arena_add_cleanup(a, note, (void *)1), 0);
  cr_assert_eq(sc_arena_add_cleanup(a, note, (void *)2), 0);
  sc_arena_reset(a);
  cr_assert_eq(n_order, 2);
  cr_assert_eq(order[0], 2);
  cr_assert_eq(order[1], 1);
  cr_assert_eq(sc_arena_used(a), 0);
  sc_arena_add_cleanup(a, note, (void *)3);
  sc_arena_free(a);
  cr_assert_eq(n_order, 3);
  cr_assert_eq(order[2], 3);
  sc_arena_free(NULL);
}

Test(arena, strings_and_printf) {
  sc_arena_t *a = sc_arena_new(0);
  cr_assert_str_eq(sc_arena_strdup(a, "hello"), "hello");
  cr_assert_str_eq(sc_arena_strndup(a, "hello", 3), "hel");
  cr_assert_null(sc_arena_strdup(a, NULL));
  cr_assert_str_eq(sc_arena_printf(a, "%s-%d", "x", 42), "x-42");
  char longer[5000];
  memset(longer, 'q', sizeof(longer) - 1);
  longer[sizeof(longer) - 1] = '\0';
  cr_assert_str_eq(sc_arena_printf(a, "%s", longer), longer);
  sc_arena_free(a);
}

Test(arena, protobuf_unpack_lives_in_the_arena) {
  Scale__Common__V1__PingRequest req = SCALE__COMMON__V1__PING_REQUEST__INIT;
  req.message = "through the arena";
  uint8_t payload[3000];
  memset(payload, 7, sizeof(payload));
  req.payload.data = payload;
  req.payload.len = sizeof(payload);
  uint8_t buf[4096];
  size_t n = scale__common__v1__ping_request__pack(&req, buf);

  sc_arena_t *a = sc_arena_new(0);
  ProtobufCAllocator al = sc_arena_pb_allocator(a);
  Scale__Common__V1__PingRequest *got = scale__common__v1__ping_request__unpack(&al, n, buf);
  cr_assert_not_null(got);
  cr_assert_str_eq(got->message, "through the arena");
  cr_assert_eq(got->payload.len, sizeof(payload));
  cr_assert(sc_arena_used(a) >= sizeof(payload));
  /* Garbage fails cleanly. */
  uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2};
  cr_assert_null(scale__common__v1__ping_request__unpack(&al, sizeof(junk), junk));
  sc_arena_free(a); /* leak checking proves nothing else holds the message */
}

Test(arena, unpack_fails_when_the_cap_is_reached) {
  Scale__Common__V1__PingRequest req = SCALE__COMMON__V1__PING_REQUEST__INIT;
  static uint8_t payload[100000];
  req.payload.data = payload;
  req.payload.len = sizeof(payload);
  static uint8_t buf[110000];
  size_t n = scale__common__v1__ping_request__pack(&req, buf);
  sc_arena_t *a = sc_arena_new(50000);
  ProtobufCAllocator al = sc_arena_pb_allocator(a);
  cr_assert_null(scale__common__v1__ping_request__unpack(&al, n, buf));
  cr_assert(sc_arena_exhausted(a), "the failure is reported as exhaustion, not bad input");
  sc_arena_reset(a);
  cr_assert_not(sc_arena_exhausted(a));
  sc_arena_free(a);
}
