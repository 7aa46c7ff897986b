#include "scale/pbutil.h"

#include <stdlib.h>

Google__Protobuf__Timestamp *sc_timestamp_from_us(sc_arena_t *arena, const char *us_text) {
  if (us_text == NULL || *us_text == '\0') return NULL;
  long long us = strtoll(us_text, NULL, 10);
  Google__Protobuf__Timestamp *ts = sc_arena_alloc(arena, sizeof(*ts));
  if (ts == NULL) return NULL;
  google__protobuf__timestamp__init(ts);
  long long sec = us / 1000000, rem = us % 1000000;
  if (rem < 0) { /* before 1970: nanos stay non-negative, as the type requires */
    rem += 1000000;
    sec--;
  }
  ts->seconds = sec;
  ts->nanos = (int32_t)(rem * 1000);
  return ts;
}
