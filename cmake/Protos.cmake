# Generates protobuf-c code for SCALE's protos and the third-party protos they
# use (from Debian packages, never copied into the tree), and the descriptor
# set (--include_imports) that reflection and the gateway serve from.
#
# Outputs:
#   scale_proto      static library of all generated .pb-c.c, include dir ${SCALE_GEN_DIR}
#   scale_api_desc   static library exporting sc_api_descriptor_set[] / _len
#   ${SCALE_API_DESC} the descriptor set file itself (tests read it)

find_program(PROTOC protoc REQUIRED)
find_program(PROTOC_GEN_C protoc-gen-c REQUIRED)
find_program(XXD xxd REQUIRED)

set(SCALE_PROTO_ROOT ${CMAKE_SOURCE_DIR}/protos)
set(SCALE_PROTO_WKT_ROOT /usr/include CACHE PATH "google/protobuf/*.proto root (libprotobuf-dev)")
set(SCALE_PROTO_GRPC_ROOT /usr/share/grpc-proto CACHE PATH "grpc/health, grpc/reflection root (grpc-proto)")
set(SCALE_PROTO_GOOGLEAPIS_ROOT /usr/share/gocode/src/github.com/gogo/googleapis CACHE PATH
    "google/api, google/rpc root (golang-github-gogo-googleapis-dev)")
set(SCALE_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
set(SCALE_API_DESC ${CMAKE_BINARY_DIR}/api.desc)

file(GLOB_RECURSE _scale_protos RELATIVE ${SCALE_PROTO_ROOT} CONFIGURE_DEPENDS ${SCALE_PROTO_ROOT}/scale/*.proto)
list(SORT _scale_protos)
set(_third_party_protos
  google/protobuf/descriptor.proto google/protobuf/timestamp.proto google/protobuf/duration.proto
  google/protobuf/field_mask.proto google/protobuf/empty.proto google/protobuf/struct.proto
  google/protobuf/wrappers.proto google/protobuf/any.proto
  google/api/annotations.proto google/api/http.proto
  google/rpc/status.proto google/rpc/error_details.proto
  grpc/health/v1/health.proto grpc/reflection/v1/reflection.proto grpc/reflection/v1alpha/reflection.proto)
# What the descriptor set describes: everything a SCALE process may serve,
# plus google.rpc's error details, so clients can decode grpc-status-details-bin.
set(_served_protos ${_scale_protos} grpc/health/v1/health.proto google/rpc/status.proto google/rpc/error_details.proto
  grpc/reflection/v1/reflection.proto grpc/reflection/v1alpha/reflection.proto)

set(_all_protos ${_third_party_protos} ${_scale_protos})
set(_gen_c "")
set(_gen_h "")
set(_proto_deps "")
foreach(p IN LISTS _all_protos)
  string(REGEX REPLACE "\\.proto$" "" stem ${p})
  list(APPEND _gen_c ${SCALE_GEN_DIR}/${stem}.pb-c.c)
  list(APPEND _gen_h ${SCALE_GEN_DIR}/${stem}.pb-c.h)
endforeach()
foreach(p IN LISTS _scale_protos)
  list(APPEND _proto_deps ${SCALE_PROTO_ROOT}/${p})
endforeach()

set(_protoc_includes -I ${SCALE_PROTO_ROOT} -I ${SCALE_PROTO_WKT_ROOT} -I ${SCALE_PROTO_GRPC_ROOT}
    -I ${SCALE_PROTO_GOOGLEAPIS_ROOT})

add_custom_command(
  OUTPUT ${_gen_c} ${_gen_h}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${SCALE_GEN_DIR}
  COMMAND ${PROTOC} ${_protoc_includes} --plugin=protoc-gen-c=${PROTOC_GEN_C} --c_out=${SCALE_GEN_DIR} ${_all_protos}
  DEPENDS ${_proto_deps}
  COMMENT "protoc-c: generating C for ${CMAKE_PROJECT_NAME} protos"
  VERBATIM)

add_custom_command(
  OUTPUT ${SCALE_API_DESC}
  COMMAND ${PROTOC} ${_protoc_includes} --include_imports --include_source_info
          --descriptor_set_out=${SCALE_API_DESC} ${_served_protos}
  DEPENDS ${_proto_deps}
  COMMENT "protoc: building the API descriptor set"
  VERBATIM)

# Embed the descriptor set. xxd names the array after -n; the length is the
# companion *_len symbol.
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/api_desc.c
  COMMAND ${XXD} -i -n sc_api_descriptor_set ${SCALE_API_DESC} ${CMAKE_BINARY_DIR}/api_desc.c
  DEPENDS ${SCALE_API_DESC}
  VERBATIM)

add_library(scale_proto STATIC ${_gen_c})
target_include_directories(scale_proto PUBLIC ${SCALE_GEN_DIR})
target_link_libraries(scale_proto PUBLIC PkgConfig::PROTOBUFC)
set_target_properties(scale_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)

add_library(scale_api_desc STATIC ${CMAKE_BINARY_DIR}/api_desc.c)
