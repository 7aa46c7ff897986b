/* Descriptor pool: the API's FileDescriptorSet (built with --include_imports
 * and embedded in every binary), indexed for server reflection, method kinds
 * (protobuf-c descriptors do not say which methods stream) and, later, the
 * gateway's routes and JSON names.
 *
 * The pool keeps pointers into the set's bytes: they must outlive it (the
 * embedded set is static). Read-only after creation, so any thread may use it.
 */
#ifndef SCALE_DESCPOOL_H
#define SCALE_DESCPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "scale/status.h"

typedef struct sc_descpool sc_descpool_t;

typedef struct sc_descfile {
  const char *name;     /* "scale/common/v1/ping.proto" */
  const uint8_t *bytes; /* serialized FileDescriptorProto */
  size_t len;
  const Google__Protobuf__FileDescriptorProto *proto;
  size_t index;                    /* position in the set */
  const struct sc_descfile **deps; /* direct dependencies */
  size_t n_deps;
} sc_descfile_t;

/* Parses and indexes a FileDescriptorSet. Fails (NULL, err) on malformed
 * bytes or a dependency missing from the set. */
sc_descpool_t *sc_descpool_new(const uint8_t *data, size_t len, sc_err_t *err);
void sc_descpool_free(sc_descpool_t *pool);

/* The pool over the descriptor set embedded in this binary. Built once,
 * on first use, and never freed; NULL (err) only if the embedded set is bad. */
const sc_descpool_t *sc_descpool_embedded(sc_err_t *err);

size_t sc_descpool_file_count(const sc_descpool_t *pool);
const sc_descfile_t *sc_descpool_file_at(const sc_descpool_t *pool, size_t i);
const sc_descfile_t *sc_descpool_find_file(const sc_descpool_t *pool, const char *name);

/* The file defining a fully-qualified symbol (no leading dot): a message or
 * enum (nested too), an enum value, a field, a service, a method
 * ("pkg.Service.Method") or an extension. NULL when unknown. */
const sc_descfile_t *sc_descpool_find_symbol(const sc_descpool_t *pool, const char *symbol);

/* The file first, then its transitive dependencies depth-first, each once.
 * Writes at most `max` files; returns how many there are in all. */
size_t sc_descpool_closure(const sc_descpool_t *pool, const sc_descfile_t *file, const sc_descfile_t **out, size_t max);

/* A service by full name ("scale.common.v1.PingService"), and its file. */
const Google__Protobuf__ServiceDescriptorProto *
sc_descpool_find_service(const sc_descpool_t *pool, const char *full_name, const sc_descfile_t **file);

/* A method of a service by full service name and method name. */
const Google__Protobuf__MethodDescriptorProto *sc_descpool_find_method(const sc_descpool_t *pool, const char *service,
                                                                       const char *method);

#endif
