/* Arena: request-scoped memory (nginx pools, h2o's pool-first arguments).
 *
 * Allocations come from a chain of blocks and are released all at once by
 * sc_arena_reset() or sc_arena_free(). Cleanups registered on the arena run
 * (last registered first) at the same moment, so foreign resources (gRPC byte
 * buffers, libpq results) can live exactly as long as the call.
 *
 * Every arena has a cap fixed at creation: the total bytes it may hand out.
 * An allocation that would pass the cap returns NULL and changes nothing.
 *
 * Not thread-safe: an arena belongs to one call, used by one thread at a time.
 */
#ifndef SCALE_ARENA_H
#define SCALE_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct sc_arena sc_arena_t;

typedef void (*sc_arena_cleanup_cb)(void *data);

/* Creates an arena that hands out at most `cap` bytes in all (0 means
 * SC_ARENA_DEFAULT_CAP). Returns NULL only when out of memory. */
#define SC_ARENA_DEFAULT_CAP ((size_t)64 << 20)
sc_arena_t *sc_arena_new(size_t cap);

/* Runs the cleanups and releases everything. Accepts NULL. */
void sc_arena_free(sc_arena_t *a);

/* Runs the cleanups and forgets every allocation, keeping the first block for
 * reuse (the hot path of a recycled call context). */
void sc_arena_reset(sc_arena_t *a);

/* Returns `n` bytes aligned for any type, or NULL (cap reached, out of
 * memory). n == 0 returns a valid unique pointer. */
void *sc_arena_alloc(sc_arena_t *a, size_t n);

/* Zeroed `count * size` bytes; NULL on overflow as on failure. */
void *sc_arena_calloc(sc_arena_t *a, size_t count, size_t size);

/* Copies of strings and memory; NULL on failure (or when s is NULL). */
char *sc_arena_strdup(sc_arena_t *a, const char *s);
char *sc_arena_strndup(sc_arena_t *a, const char *s, size_t n);
void *sc_arena_memdup(sc_arena_t *a, const void *p, size_t n);

/* Formats into arena memory; NULL on failure. */
char *sc_arena_printf(sc_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *sc_arena_vprintf(sc_arena_t *a, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Registers fn(data) to run at reset/free. Returns 0, or -1 (nothing
 * registered; the caller still owns data) when out of memory. */
int sc_arena_add_cleanup(sc_arena_t *a, sc_arena_cleanup_cb fn, void *data);

/* True when an allocation was refused (cap or memory) since creation or the
 * last reset: tells "too big to decode" from "not a valid message". */
bool sc_arena_exhausted(const sc_arena_t *a);

/* Bytes handed out since creation or the last reset. */
size_t sc_arena_used(const sc_arena_t *a);
size_t sc_arena_cap(const sc_arena_t *a);

/* A protobuf-c allocator over the arena: protobuf_c_message_unpack() through
 * it makes the message live as long as the arena; its free is a no-op.
 * Do not call protobuf_c_message_free_unpacked() on such messages. */
ProtobufCAllocator sc_arena_pb_allocator(sc_arena_t *a);

#endif
