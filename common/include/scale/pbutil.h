/* Small conversions between database text and protobuf-c messages. */
#ifndef SCALE_PBUTIL_H
#define SCALE_PBUTIL_H

#include "google/protobuf/timestamp.pb-c.h"
#include "scale/arena.h"

/* A Timestamp in the arena from microseconds since the epoch written as
 * decimal text (what `(extract(epoch FROM t) * 1000000)::bigint` returns).
 * NULL for empty text or when out of memory. */
Google__Protobuf__Timestamp *sc_timestamp_from_us(sc_arena_t *arena, const char *us_text);

#endif
