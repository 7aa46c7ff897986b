/* Fuzz target: the descriptor pool (descpool.h) on arbitrary bytes.
 *
 * A rejected set must say why. An accepted one is then used the way
 * reflection uses it, and what it returns is checked against the decoded
 * descriptors: every file is found by its name, every file's bytes lie inside
 * the input, every named definition is found by its full name (with and
 * without a leading dot), and a closure starts with its file, holds no file
 * twice and agrees with itself whatever room it is given.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scale/descpool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                                    \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "fuzz_descpool: check failed: %s (line %d)\n", #cond, __LINE__);                                 \
      abort();                                                                                                         \
    }                                                                                                                  \
  } while (0)

/* Bounds on the checking work per input, so a large accepted set does not
 * turn one input into seconds. */
#define MAX_LOOKUPS 4096
#define MAX_DEPTH 32

typedef struct walk {
  const sc_descpool_t *pool;
  size_t lookups;
} walk_t;

/* Expects `scope.name` (or `name` with no scope) to be known. */
static void expect_symbol(walk_t *w, const char *scope, const char *name) {
  if (name == NULL || w->lookups >= MAX_LOOKUPS) return;
  w->lookups++;
  size_t n = (scope && *scope ? strlen(scope) + 1 : 0) + strlen(name) + 2;
  char *full = malloc(n);
  CHECK(full != NULL);
  if (scope && *scope)
    snprintf(full, n, ".%s.%s", scope, name);
  else
    snprintf(full, n, ".%s", name);
  /* The lookup drops one leading dot: the dotted form always finds it, the
   * plain form too unless the name itself starts with a dot (a package
   * protoc would reject, but the bytes may hold anything). */
  const sc_descfile_t *a = sc_descpool_find_symbol(w->pool, full);
  if (a == NULL) fprintf(stderr, "fuzz_descpool: symbol not found: %s\n", full);
  CHECK(a != NULL);
  if (full[1] != '.') CHECK(sc_descpool_find_symbol(w->pool, full + 1) == a);
  free(full);
}

static char *join(const char *scope, const char *name) {
  size_t n = (scope ? strlen(scope) : 0) + strlen(name) + 2;
  char *s = malloc(n);
  CHECK(s != NULL);
  if (scope && *scope)
    snprintf(s, n, "%s.%s", scope, name);
  else
    snprintf(s, n, "%s", name);
  return s;
}

static void walk_enum(walk_t *w, const char *scope, const Google__Protobuf__EnumDescriptorProto *e) {
  expect_symbol(w, scope, e->name);
  for (size_t i = 0; i < e->n_value; i++)
    expect_symbol(w, scope, e->value[i]->name);
}

static void walk_message(walk_t *w, const char *scope, const Google__Protobuf__DescriptorProto *m, int depth) {
  /* A nameless message's members have no full name to look up. */
  if (m->name == NULL || depth > MAX_DEPTH) return;
  expect_symbol(w, scope, m->name);
  char *full = join(scope, m->name);
  for (size_t i = 0; i < m->n_field; i++)
    expect_symbol(w, full, m->field[i]->name);
  for (size_t i = 0; i < m->n_extension; i++)
    expect_symbol(w, full, m->extension[i]->name);
  for (size_t i = 0; i < m->n_nested_type; i++)
    walk_message(w, full, m->nested_type[i], depth + 1);
  for (size_t i = 0; i < m->n_enum_type; i++)
    walk_enum(w, full, m->enum_type[i]);
  free(full);
}

static void check_closure(const sc_descpool_t *pool, const sc_descfile_t *f, size_t n_files) {
  const sc_descfile_t **out = calloc(n_files, sizeof(*out));
  CHECK(out != NULL);
  size_t total = sc_descpool_closure(pool, f, out, n_files);
  CHECK(total >= 1 && total <= n_files);
  CHECK(out[0] == f);
  unsigned char *seen = calloc(n_files, 1);
  CHECK(seen != NULL);
  for (size_t i = 0; i < total; i++) {
    CHECK(out[i] != NULL && out[i]->index < n_files);
    CHECK(!seen[out[i]->index]);
    seen[out[i]->index] = 1;
    /* Every direct dependency of a file in the closure is in it. */
    for (size_t d = 0; d < out[i]->n_deps; d++)
      CHECK(out[i]->deps[d] != NULL);
  }
  for (size_t i = 0; i < total; i++) {
    for (size_t d = 0; d < out[i]->n_deps; d++)
      CHECK(seen[out[i]->deps[d]->index]);
  }
  /* Less room changes what is written, not the count. */
  const sc_descfile_t *one = NULL;
  CHECK(sc_descpool_closure(pool, f, NULL, 0) == total);
  CHECK(sc_descpool_closure(pool, f, &one, 1) == total);
  CHECK(one == f);
  free(seen);
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sc_err_t err = {{0}};
  sc_descpool_t *pool = sc_descpool_new(data, size, &err);
  if (pool == NULL) {
    CHECK(err.msg[0] != '\0');
    return 0;
  }
  size_t n = sc_descpool_file_count(pool);
  CHECK(sc_descpool_file_at(pool, n) == NULL);
  walk_t w = {.pool = pool, .lookups = 0};
  for (size_t i = 0; i < n; i++) {
    const sc_descfile_t *f = sc_descpool_file_at(pool, i);
    CHECK(f != NULL && f->index == i);
    CHECK(f->name != NULL && f->proto != NULL);
    CHECK(f->bytes >= data && f->len <= size && f->bytes + f->len <= data + size);
    const sc_descfile_t *byname = sc_descpool_find_file(pool, f->name);
    CHECK(byname != NULL && strcmp(byname->name, f->name) == 0 && byname->index <= i);
    CHECK(f->n_deps == f->proto->n_dependency);
    for (size_t d = 0; d < f->n_deps; d++)
      CHECK(f->deps[d] != NULL && strcmp(f->deps[d]->name, f->proto->dependency[d]) == 0);
    check_closure(pool, f, n);

    const Google__Protobuf__FileDescriptorProto *fp = f->proto;
    for (size_t k = 0; k < fp->n_message_type; k++)
      walk_message(&w, fp->package, fp->message_type[k], 0);
    for (size_t k = 0; k < fp->n_enum_type; k++)
      walk_enum(&w, fp->package, fp->enum_type[k]);
    for (size_t k = 0; k < fp->n_extension; k++)
      expect_symbol(&w, fp->package, fp->extension[k]->name);
    for (size_t k = 0; k < fp->n_service && w.lookups < MAX_LOOKUPS; k++) {
      const Google__Protobuf__ServiceDescriptorProto *s = fp->service[k];
      if (s->name == NULL) continue;
      expect_symbol(&w, fp->package, s->name);
      char *full = join(fp->package, s->name);
      /* The pool does not reject duplicate symbols (protoc does): a service
       * whose full name another definition shares may not be the one found,
       * so only a service that is found is checked further. */
      const sc_descfile_t *sf = NULL;
      const Google__Protobuf__ServiceDescriptorProto *found = sc_descpool_find_service(pool, full, &sf);
      CHECK(found == NULL || sf != NULL);
      for (size_t m = 0; m < s->n_method; m++) {
        expect_symbol(&w, full, s->method[m]->name);
        if (s->method[m]->name && found == s) {
          CHECK(sc_descpool_find_method(pool, full, s->method[m]->name) != NULL);
        }
      }
      free(full);
    }
  }
  /* Lookups of names taken from the input itself: no crash, any answer. */
  char probe[64];
  size_t pn = size < sizeof(probe) - 1 ? size : sizeof(probe) - 1;
  memcpy(probe, data + size - pn, pn);
  probe[pn] = '\0';
  (void)sc_descpool_find_symbol(pool, probe);
  (void)sc_descpool_find_file(pool, probe);
  (void)sc_descpool_find_method(pool, probe, probe);
  (void)sc_descpool_find_service(pool, probe, NULL);
  (void)sc_descpool_find_method(pool, probe, NULL);
  sc_descpool_free(pool);
  return 0;
}
