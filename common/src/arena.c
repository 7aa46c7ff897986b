#include "scale/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN ((size_t)16)
#define FIRST_BLOCK ((size_t)8192)
#define MAX_BLOCK ((size_t)1 << 20)

typedef struct block {
  struct block *next;
  size_t size; /* usable bytes after the header */
  size_t used;
  _Alignas(16) unsigned char data[];
} block_t;

typedef struct cleanup {
  struct cleanup *next;
  sc_arena_cleanup_cb fn;
  void *data;
} cleanup_t;

struct sc_arena {
  block_t *head;  /* current block; older ones follow */
  block_t *first; /* kept across resets */
  cleanup_t *cleanups;
  size_t cap;
  size_t handed_out;
  size_t next_block; /* size of the next growth block */
  bool exhausted;    /* an allocation was refused since the last reset */
};

static size_t round_up(size_t n) { return (n + ALIGN - 1) & ~(ALIGN - 1); }

static block_t *block_new(size_t size) {
  if (size > SIZE_MAX - sizeof(block_t)) return NULL;
  block_t *b = malloc(sizeof(block_t) + size);
  if (b == NULL) return NULL;
  b->next = NULL;
  b->size = size;
  b->used = 0;
  return b;
}

sc_arena_t *sc_arena_new(size_t cap) {
  sc_arena_t *a = calloc(1, sizeof(*a));
  if (a == NULL) return NULL;
  a->first = block_new(FIRST_BLOCK);
  if (a->first == NULL) {
    free(a);
    return NULL;
  }
  a->head = a->first;
  a->cap = cap ? cap : SC_ARENA_DEFAULT_CAP;
  a->next_block = FIRST_BLOCK * 2;
  return a;
}

static void run_cleanups(sc_arena_t *a) {
  /* Each cleanup is unlinked before it runs, so none can run twice. */
  while (a->cleanups != NULL) {
    cleanup_t *c = a->cleanups;
    a->cleanups = c->next;
    c->fn(c->data);
    free(c);
  }
}

static void release_blocks(sc_arena_t *a, int keep_first) {
  block_t *b = a->head;
  while (b != NULL) {
    block_t *next = b->next;
    if (!(keep_first && b == a->first)) free(b);
    b = next;
  }
}

void sc_arena_free(sc_arena_t *a) {
  if (a == NULL) return;
  run_cleanups(a);
  release_blocks(a, 0);
  free(a);
}

void sc_arena_reset(sc_arena_t *a) {
  run_cleanups(a);
  release_blocks(a, 1);
  a->first->next = NULL;
  a->first->used = 0;
  a->head = a->first;
  a->handed_out = 0;
  a->next_block = FIRST_BLOCK * 2;
  a->exhausted = false;
}

void *sc_arena_alloc(sc_arena_t *a, size_t n) {
  size_t need = round_up(n ? n : 1);
  if (need < n || need > a->cap - a->handed_out) {
    a->exhausted = true;
    return NULL;
  }
  block_t *b = a->head;
  if (b->size - b->used < need) {
    if (need > MAX_BLOCK / 4) {
      /* Large allocations get a block of their own behind the current one,
       * so the current block's free space is not wasted. */
      block_t *big = block_new(need);
      if (big == NULL) {
        a->exhausted = true;
        return NULL;
      }
      big->used = need;
      big->next = b->next;
      b->next = big;
      a->handed_out += need;
      return big->data;
    }
    size_t size = a->next_block;
    while (size < need)
      size *= 2;
    block_t *nb = block_new(size);
    if (nb == NULL) {
      a->exhausted = true;
      return NULL;
    }
    nb->next = b;
    a->head = nb;
    if (a->next_block < MAX_BLOCK) a->next_block *= 2;
    b = nb;
  }
  void *p = b->data + b->used;
  b->used += need;
  a->handed_out += need;
  return p;
}

void *sc_arena_calloc(sc_arena_t *a, size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size) return NULL;
  void *p = sc_arena_alloc(a, count * size);
  if (p != NULL) memset(p, 0, count * size);
  return p;
}

void *sc_arena_memdup(sc_arena_t *a, const void *p, size_t n) {
  void *q = sc_arena_alloc(a, n);
  if (q != NULL && n > 0) memcpy(q, p, n);
  return q;
}

char *sc_arena_strndup(sc_arena_t *a, const char *s, size_t n) {
  if (s == NULL || n == SIZE_MAX) return NULL;
  char *q = sc_arena_alloc(a, n + 1);
  if (q == NULL) return NULL;
  memcpy(q, s, n);
  q[n] = '\0';
  return q;
}

char *sc_arena_strdup(sc_arena_t *a, const char *s) { return s ? sc_arena_strndup(a, s, strlen(s)) : NULL; }

char *sc_arena_vprintf(sc_arena_t *a, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) return NULL;
  char *s = sc_arena_alloc(a, (size_t)n + 1);
  if (s == NULL) return NULL;
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

char *sc_arena_printf(sc_arena_t *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = sc_arena_vprintf(a, fmt, ap);
  va_end(ap);
  return s;
}

int sc_arena_add_cleanup(sc_arena_t *a, sc_arena_cleanup_cb fn, void *data) {
  /* Cleanup records are malloc'd, not arena memory, so registering one never
   * fails because the arena's cap is reached. */
  cleanup_t *c = malloc(sizeof(*c));
  if (c == NULL) return -1;
  c->fn = fn;
  c->data = data;
  c->next = a->cleanups;
  a->cleanups = c;
  return 0;
}

size_t sc_arena_used(const sc_arena_t *a) { return a->handed_out; }
bool sc_arena_exhausted(const sc_arena_t *a) { return a->exhausted; }
size_t sc_arena_cap(const sc_arena_t *a) { return a->cap; }

static void *pb_alloc(void *data, size_t size) { return sc_arena_alloc(data, size); }
static void pb_free(void *data, void *p) {
  (void)data;
  (void)p;
}

ProtobufCAllocator sc_arena_pb_allocator(sc_arena_t *a) {
  ProtobufCAllocator al = {.alloc = pb_alloc, .free = pb_free, .allocator_data = a};
  return al;
}
