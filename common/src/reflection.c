/* Server reflection, grpc.reflection.v1 and v1alpha (wire-identical; one
 * handler serves both), from the descriptor set embedded in the binary.
 * Behaviour follows grpc's reference server: one response per request,
 * errors in-stream as error_response, files as the requested file followed
 * by its transitive dependencies. */
#include <string.h>

#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "rpc_int.h"

#define GRPC_NOT_FOUND 5
#define GRPC_UNIMPLEMENTED 12
#define GRPC_INVALID_ARGUMENT 3

typedef Grpc__Reflection__V1__ServerReflectionRequest req_t;
typedef Grpc__Reflection__V1__ServerReflectionResponse resp_t;

static int ext_matches(const Google__Protobuf__FieldDescriptorProto *f, const char *type, int32_t number,
                       int any_number) {
  if (f->extendee == NULL) return 0;
  const char *e = f->extendee[0] == '.' ? f->extendee + 1 : f->extendee;
  return strcmp(e, type) == 0 && (any_number || (f->has_number && f->number == number));
}

/* Calls fn for every extension of `type` (all numbers when any_number). */
typedef void (*ext_cb)(const sc_descfile_t *file, const Google__Protobuf__FieldDescriptorProto *f, void *arg);

static void scan_msg_exts(const sc_descfile_t *file, const Google__Protobuf__DescriptorProto *m, const char *type,
                          int32_t number, int any, ext_cb fn, void *arg) {
  for (size_t i = 0; i < m->n_extension; i++) {
    if (ext_matches(m->extension[i], type, number, any)) fn(file, m->extension[i], arg);
  }
  for (size_t i = 0; i < m->n_nested_type; i++)
    scan_msg_exts(file, m->nested_type[i], type, number, any, fn, arg);
}

static void scan_exts(const sc_descpool_t *pool, const char *type, int32_t number, int any, ext_cb fn, void *arg) {
  for (size_t i = 0; i < sc_descpool_file_count(pool); i++) {
    const sc_descfile_t *file = sc_descpool_file_at(pool, i);
    const Google__Protobuf__FileDescriptorProto *fp = file->proto;
    for (size_t e = 0; e < fp->n_extension; e++) {
      if (ext_matches(fp->extension[e], type, number, any)) fn(file, fp->extension[e], arg);
    }
    for (size_t m = 0; m < fp->n_message_type; m++)
      scan_msg_exts(file, fp->message_type[m], type, number, any, fn, arg);
  }
}

static void first_file(const sc_descfile_t *file, const Google__Protobuf__FieldDescriptorProto *f, void *arg) {
  (void)f;
  const sc_descfile_t **out = arg;
  if (*out == NULL) *out = file;
}

typedef struct numbers {
  sc_arena_t *arena;
  int32_t *v;
  size_t n, cap;
} numbers_t;

static void collect_number(const sc_descfile_t *file, const Google__Protobuf__FieldDescriptorProto *f, void *arg) {
  (void)file;
  numbers_t *ns = arg;
  if (ns->n == ns->cap) {
    size_t cap = ns->cap ? ns->cap * 2 : 16;
    int32_t *v = sc_arena_calloc(ns->arena, cap, sizeof(*v));
    if (v == NULL) return;
    if (ns->n) memcpy(v, ns->v, ns->n * sizeof(*v));
    ns->v = v;
    ns->cap = cap;
  }
  ns->v[ns->n++] = f->number;
}

static void set_error(sc_arena_t *a, resp_t *r, int32_t code, const char *msg) {
  Grpc__Reflection__V1__ErrorResponse *e = sc_arena_alloc(a, sizeof(*e));
  if (e == NULL) return;
  grpc__reflection__v1__error_response__init(e);
  e->error_code = code;
  e->error_message = (char *)msg;
  r->message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  r->error_response = e;
}

static void set_files(const sc_descpool_t *pool, sc_arena_t *a, resp_t *r, const sc_descfile_t *file,
                      const char *not_found) {
  if (file == NULL) {
    set_error(a, r, GRPC_NOT_FOUND, not_found);
    return;
  }
  size_t max = sc_descpool_file_count(pool);
  const sc_descfile_t **files = sc_arena_calloc(a, max, sizeof(*files));
  Grpc__Reflection__V1__FileDescriptorResponse *fdr = sc_arena_alloc(a, sizeof(*fdr));
  ProtobufCBinaryData *blobs = sc_arena_calloc(a, max, sizeof(*blobs));
  if (files == NULL || fdr == NULL || blobs == NULL) {
    set_error(a, r, 8 /* RESOURCE_EXHAUSTED */, "out of memory");
    return;
  }
  size_t n = sc_descpool_closure(pool, file, files, max);
  for (size_t i = 0; i < n && i < max; i++) {
    blobs[i].data = (uint8_t *)files[i]->bytes;
    blobs[i].len = files[i]->len;
  }
  grpc__reflection__v1__file_descriptor_response__init(fdr);
  fdr->n_file_descriptor_proto = n < max ? n : max;
  fdr->file_descriptor_proto = blobs;
  r->message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  r->file_descriptor_response = fdr;
}

static void list_services(sc_rpc_server_t *srv, sc_arena_t *a, resp_t *r) {
  size_t n = sc__rpc_server_service_count(srv);
  Grpc__Reflection__V1__ListServiceResponse *ls = sc_arena_alloc(a, sizeof(*ls));
  Grpc__Reflection__V1__ServiceResponse **v = sc_arena_calloc(a, n ? n : 1, sizeof(*v));
  if (ls == NULL || v == NULL) {
    set_error(a, r, 8, "out of memory");
    return;
  }
  grpc__reflection__v1__list_service_response__init(ls);
  for (size_t i = 0; i < n; i++) {
    v[i] = sc_arena_alloc(a, sizeof(**v));
    if (v[i] == NULL) {
      set_error(a, r, 8, "out of memory");
      return;
    }
    grpc__reflection__v1__service_response__init(v[i]);
    v[i]->name = (char *)sc__rpc_server_service_name(srv, i);
  }
  ls->n_service = n;
  ls->service = v;
  r->message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
  r->list_services_response = ls;
}

static void answer(sc_rpc_server_t *srv, sc_arena_t *a, const req_t *req, resp_t *r) {
  const sc_descpool_t *pool = sc__rpc_server_pool(srv);
  switch (req->message_request_case) {
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
    set_files(pool, a, r, sc_descpool_find_file(pool, req->file_by_filename), "File not found.");
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
    set_files(pool, a, r, sc_descpool_find_symbol(pool, req->file_containing_symbol), "Symbol not found.");
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
    const Grpc__Reflection__V1__ExtensionRequest *er = req->file_containing_extension;
    const sc_descfile_t *file = NULL;
    if (er != NULL && er->containing_type != NULL) {
      scan_exts(pool, er->containing_type, er->extension_number, 0, first_file, &file);
    }
    set_files(pool, a, r, file, "Extension not found.");
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
    const char *type = req->all_extension_numbers_of_type;
    if (type && type[0] == '.') type++;
    if (type == NULL || sc_descpool_find_symbol(pool, type) == NULL) {
      set_error(a, r, GRPC_NOT_FOUND, "Type not found.");
      break;
    }
    numbers_t ns = {.arena = a};
    scan_exts(pool, type, 0, 1, collect_number, &ns);
    Grpc__Reflection__V1__ExtensionNumberResponse *en = sc_arena_alloc(a, sizeof(*en));
    if (en == NULL) {
      set_error(a, r, 8, "out of memory");
      break;
    }
    grpc__reflection__v1__extension_number_response__init(en);
    en->base_type_name = (char *)type;
    en->n_extension_number = ns.n;
    en->extension_number = ns.v;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    r->all_extension_numbers_response = en;
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: list_services(srv, a, r); break;
  default: set_error(a, r, GRPC_UNIMPLEMENTED, "Unsupported reflection request."); break;
  }
}

static sc_status_t reflect(sc_call_t *call, void *svc) {
  sc_rpc_server_t *srv = svc;
  /* Responses are built in a scratch arena reset per request, so a long
   * stream uses constant memory. */
  sc_arena_t *scratch = sc_arena_new((size_t)16 << 20);
  if (scratch == NULL) return sc_call_fail(call, SC_RESOURCE_EXHAUSTED, "out of memory");
  sc_status_t st;
  for (;;) {
    ProtobufCMessage *m = NULL;
    st = sc_call_recv(call, &m);
    if (st != SC_OK || m == NULL) break;
    const req_t *req = (const req_t *)m;
    resp_t resp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    resp.valid_host = req->host;
    resp.original_request = (req_t *)req;
    answer(srv, scratch, req, &resp);
    st = sc_call_send(call, &resp.base);
    sc_arena_reset(scratch);
    if (st != SC_OK) break;
  }
  sc_arena_free(scratch);
  return st;
}

static const sc_rpc_method_t v1_methods[] = {
    {.name = "ServerReflectionInfo", .kind = SC_RPC_BIDI_STREAMING, .bidi = reflect},
};

/* v1alpha carries the same messages under another package: decode and encode
 * with the v1 types. */
static const sc_rpc_method_t v1alpha_methods[] = {
    {.name = "ServerReflectionInfo",
     .kind = SC_RPC_BIDI_STREAMING,
     .bidi = reflect,
     .input = &grpc__reflection__v1__server_reflection_request__descriptor,
     .output = &grpc__reflection__v1__server_reflection_response__descriptor},
};

sc_rpc_service_t sc__reflection_v1_service(sc_rpc_server_t *srv) {
  sc_rpc_service_t s = {.descriptor = &grpc__reflection__v1__server_reflection__descriptor,
                        .methods = v1_methods,
                        .n_methods = 1,
                        .data = srv,
                        .open = true};
  return s;
}

sc_rpc_service_t sc__reflection_v1alpha_service(sc_rpc_server_t *srv) {
  sc_rpc_service_t s = {.descriptor = &grpc__reflection__v1alpha__server_reflection__descriptor,
                        .methods = v1alpha_methods,
                        .n_methods = 1,
                        .data = srv,
                        .open = true};
  return s;
}
