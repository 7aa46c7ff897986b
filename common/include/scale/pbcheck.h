/* Checks protobuf-c does not make on decoded messages. */
#ifndef SCALE_PBCHECK_H
#define SCALE_PBCHECK_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#include "scale/arena.h"

/* Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
bool sc_utf8_valid(const char *s, size_t len);

/* proto3 requires every string field to hold UTF-8; protobuf-c does not
 * check. Walks the message (nested, repeated, oneof, map entries) and returns
 * true when all strings are valid; otherwise false with *field set to the
 * path of the first bad one ("accounts[2].name", in the arena). */
bool sc_pb_strings_valid(const ProtobufCMessage *msg, sc_arena_t *arena, const char **field);

#endif
