#include "scale/descpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "scale/arena.h"

extern unsigned char sc_api_descriptor_set[];
extern unsigned int sc_api_descriptor_set_len;

typedef enum { SYM_MESSAGE, SYM_ENUM, SYM_VALUE, SYM_FIELD, SYM_SERVICE, SYM_METHOD, SYM_EXT } sym_kind_t;

typedef struct sym {
  const char *name;
  const sc_descfile_t *file;
  sym_kind_t kind;
  const void *desc;
} sym_t;

struct sc_descpool {
  sc_arena_t *arena;
  sc_descfile_t *files;
  size_t n_files;
  sym_t *syms;
  size_t n_syms, cap_syms;
  int oom;
};

/* Reads a base-128 varint; returns bytes consumed, 0 when malformed. */
static size_t read_varint(const uint8_t *p, size_t len, uint64_t *out) {
  uint64_t v = 0;
  for (size_t i = 0; i < len && i < 10; i++) {
    v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if ((p[i] & 0x80) == 0) {
      *out = v;
      return i + 1;
    }
  }
  return 0;
}

static void add_sym(sc_descpool_t *pool, const char *name, const sc_descfile_t *f, sym_kind_t kind, const void *desc) {
  if (name == NULL || pool->oom) return;
  if (pool->n_syms == pool->cap_syms) {
    size_t cap = pool->cap_syms ? pool->cap_syms * 2 : 256;
    sym_t *s = realloc(pool->syms, cap * sizeof(*s));
    if (s == NULL) {
      pool->oom = 1;
      return;
    }
    pool->syms = s;
    pool->cap_syms = cap;
  }
  pool->syms[pool->n_syms++] = (sym_t){name, f, kind, desc};
}

static const char *join(sc_descpool_t *pool, const char *scope, const char *name) {
  if (name == NULL) return NULL;
  if (scope == NULL || scope[0] == '\0') return name;
  const char *s = sc_arena_printf(pool->arena, "%s.%s", scope, name);
  if (s == NULL) pool->oom = 1;
  return s;
}

static void index_enum(sc_descpool_t *pool, const sc_descfile_t *f, const char *scope,
                       const Google__Protobuf__EnumDescriptorProto *e) {
  add_sym(pool, join(pool, scope, e->name), f, SYM_ENUM, e);
  /* Enum values are siblings of their enum (C++ scoping rules). */
  for (size_t i = 0; i < e->n_value; i++) {
    add_sym(pool, join(pool, scope, e->value[i]->name), f, SYM_VALUE, e->value[i]);
  }
}

static void index_message(sc_descpool_t *pool, const sc_descfile_t *f, const char *scope,
                          const Google__Protobuf__DescriptorProto *m) {
  const char *full = join(pool, scope, m->name);
  add_sym(pool, full, f, SYM_MESSAGE, m);
  for (size_t i = 0; i < m->n_field; i++) {
    add_sym(pool, join(pool, full, m->field[i]->name), f, SYM_FIELD, m->field[i]);
  }
  for (size_t i = 0; i < m->n_extension; i++) {
    add_sym(pool, join(pool, full, m->extension[i]->name), f, SYM_EXT, m->extension[i]);
  }
  for (size_t i = 0; i < m->n_nested_type; i++)
    index_message(pool, f, full, m->nested_type[i]);
  for (size_t i = 0; i < m->n_enum_type; i++)
    index_enum(pool, f, full, m->enum_type[i]);
}

static void index_file(sc_descpool_t *pool, const sc_descfile_t *f) {
  const Google__Protobuf__FileDescriptorProto *fp = f->proto;
  const char *pkg = fp->package;
  for (size_t i = 0; i < fp->n_message_type; i++)
    index_message(pool, f, pkg, fp->message_type[i]);
  for (size_t i = 0; i < fp->n_enum_type; i++)
    index_enum(pool, f, pkg, fp->enum_type[i]);
  for (size_t i = 0; i < fp->n_extension; i++) {
    add_sym(pool, join(pool, pkg, fp->extension[i]->name), f, SYM_EXT, fp->extension[i]);
  }
  for (size_t i = 0; i < fp->n_service; i++) {
    const Google__Protobuf__ServiceDescriptorProto *s = fp->service[i];
    const char *full = join(pool, pkg, s->name);
    add_sym(pool, full, f, SYM_SERVICE, s);
    for (size_t j = 0; j < s->n_method; j++) {
      add_sym(pool, join(pool, full, s->method[j]->name), f, SYM_METHOD, s->method[j]);
    }
  }
}

static int sym_cmp(const void *a, const void *b) { return strcmp(((const sym_t *)a)->name, ((const sym_t *)b)->name); }

void sc_descpool_free(sc_descpool_t *pool) {
  if (pool == NULL) return;
  free(pool->syms);
  sc_arena_free(pool->arena);
  free(pool);
}

sc_descpool_t *sc_descpool_new(const uint8_t *data, size_t len, sc_err_t *err) {
  sc_descpool_t *pool = calloc(1, sizeof(*pool));
  if (pool == NULL || (pool->arena = sc_arena_new((size_t)256 << 20)) == NULL) {
    sc_err_set(err, "out of memory");
    free(pool);
    return NULL;
  }
  ProtobufCAllocator al = sc_arena_pb_allocator(pool->arena);

  /* Pass 1: count the FileDescriptorSet.file entries (field 1, bytes). */
  size_t n = 0;
  for (size_t off = 0; off < len;) {
    uint64_t tag, flen;
    size_t k = read_varint(data + off, len - off, &tag);
    if (k == 0 || tag != 0x0a) goto malformed;
    off += k;
    k = read_varint(data + off, len - off, &flen);
    if (k == 0 || flen > len - off - k) goto malformed;
    off += k + (size_t)flen;
    n++;
  }
  pool->files = sc_arena_calloc(pool->arena, n ? n : 1, sizeof(sc_descfile_t));
  if (pool->files == NULL) goto oom;

  /* Pass 2: keep each file's original bytes (reflection serves them as they
   * are) and its decoded form. */
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t tag = 0, flen = 0; /* pass 1 proved these reads succeed */
    off += read_varint(data + off, len - off, &tag);
    off += read_varint(data + off, len - off, &flen);
    sc_descfile_t *f = &pool->files[i];
    f->bytes = data + off;
    f->len = (size_t)flen;
    f->index = i;
    f->proto = google__protobuf__file_descriptor_proto__unpack(&al, f->len, f->bytes);
    if (f->proto == NULL || f->proto->name == NULL) goto malformed;
    f->name = f->proto->name;
    off += (size_t)flen;
  }
  pool->n_files = n;

  for (size_t i = 0; i < n; i++) {
    sc_descfile_t *f = &pool->files[i];
    f->n_deps = f->proto->n_dependency;
    f->deps = sc_arena_calloc(pool->arena, f->n_deps ? f->n_deps : 1, sizeof(*f->deps));
    if (f->deps == NULL) goto oom;
    for (size_t d = 0; d < f->n_deps; d++) {
      f->deps[d] = sc_descpool_find_file(pool, f->proto->dependency[d]);
      if (f->deps[d] == NULL) {
        sc_err_set(err, "descriptor set: %s imports %s, which the set lacks (build it with --include_imports)", f->name,
                   f->proto->dependency[d]);
        sc_descpool_free(pool);
        return NULL;
      }
    }
    index_file(pool, f);
  }
  if (pool->oom) goto oom;
  if (pool->n_syms > 0) qsort(pool->syms, pool->n_syms, sizeof(sym_t), sym_cmp);
  return pool;

malformed:
  sc_err_set(err, "descriptor set: not a valid FileDescriptorSet");
  sc_descpool_free(pool);
  return NULL;
oom:
  sc_err_set(err, "descriptor set: out of memory");
  sc_descpool_free(pool);
  return NULL;
}

static sc_descpool_t *embedded;
static sc_err_t embedded_err;
static pthread_once_t embedded_once = PTHREAD_ONCE_INIT;

static void build_embedded(void) {
  embedded = sc_descpool_new(sc_api_descriptor_set, sc_api_descriptor_set_len, &embedded_err);
}

const sc_descpool_t *sc_descpool_embedded(sc_err_t *err) {
  pthread_once(&embedded_once, build_embedded);
  if (embedded == NULL && err != NULL) *err = embedded_err;
  return embedded;
}

size_t sc_descpool_file_count(const sc_descpool_t *pool) { return pool->n_files; }

const sc_descfile_t *sc_descpool_file_at(const sc_descpool_t *pool, size_t i) {
  return i < pool->n_files ? &pool->files[i] : NULL;
}

const sc_descfile_t *sc_descpool_find_file(const sc_descpool_t *pool, const char *name) {
  if (name == NULL) return NULL;
  for (size_t i = 0; i < pool->n_files; i++) {
    if (strcmp(pool->files[i].name, name) == 0) return &pool->files[i];
  }
  return NULL;
}

static const sym_t *find_sym(const sc_descpool_t *pool, const char *symbol) {
  if (symbol == NULL || pool->n_syms == 0) return NULL;
  if (symbol[0] == '.') symbol++;
  sym_t key = {.name = symbol};
  return bsearch(&key, pool->syms, pool->n_syms, sizeof(sym_t), sym_cmp);
}

const sc_descfile_t *sc_descpool_find_symbol(const sc_descpool_t *pool, const char *symbol) {
  const sym_t *s = find_sym(pool, symbol);
  return s ? s->file : NULL;
}

static void closure_walk(const sc_descfile_t *f, unsigned char *seen, const sc_descfile_t **out, size_t max,
                         size_t *count) {
  if (seen[f->index]) return;
  seen[f->index] = 1;
  if (*count < max) out[*count] = f;
  (*count)++;
  for (size_t i = 0; i < f->n_deps; i++)
    closure_walk(f->deps[i], seen, out, max, count);
}

size_t sc_descpool_closure(const sc_descpool_t *pool, const sc_descfile_t *file, const sc_descfile_t **out,
                           size_t max) {
  unsigned char *seen = calloc(pool->n_files ? pool->n_files : 1, 1);
  if (seen == NULL) return 0;
  size_t count = 0;
  closure_walk(file, seen, out, max, &count);
  free(seen);
  return count;
}

const Google__Protobuf__ServiceDescriptorProto *
sc_descpool_find_service(const sc_descpool_t *pool, const char *full_name, const sc_descfile_t **file) {
  const sym_t *s = find_sym(pool, full_name);
  if (s == NULL || s->kind != SYM_SERVICE) return NULL;
  if (file) *file = s->file;
  return s->desc;
}

const Google__Protobuf__MethodDescriptorProto *sc_descpool_find_method(const sc_descpool_t *pool, const char *service,
                                                                       const char *method) {
  const Google__Protobuf__ServiceDescriptorProto *s = sc_descpool_find_service(pool, service, NULL);
  if (s == NULL || method == NULL) return NULL;
  for (size_t i = 0; i < s->n_method; i++) {
    if (s->method[i]->name && strcmp(s->method[i]->name, method) == 0) return s->method[i];
  }
  return NULL;
}
