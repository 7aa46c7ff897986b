#include "scale/pbcheck.h"

#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64

bool sc_utf8_valid(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    unsigned int cp;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false; /* continuation byte, overlong lead (c0, c1) or > f4 */
    }
    if (len - i <= n) return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

typedef struct path {
  const char *names[MAX_DEPTH];
  long index[MAX_DEPTH]; /* -1: not a repeated element */
  int depth;
} path_t;

static const char *render(const path_t *p, sc_arena_t *a) {
  char buf[512];
  size_t used = 0;
  for (int i = 0; i < p->depth && used < sizeof(buf); i++) {
    int w = p->index[i] >= 0
                ? snprintf(buf + used, sizeof(buf) - used, "%s%s[%ld]", i ? "." : "", p->names[i], p->index[i])
                : snprintf(buf + used, sizeof(buf) - used, "%s%s", i ? "." : "", p->names[i]);
    if (w < 0) break;
    used += (size_t)w;
  }
  if (used >= sizeof(buf)) used = sizeof(buf) - 1;
  buf[used] = '\0';
  return sc_arena_strdup(a, buf);
}

static bool walk(const ProtobufCMessage *m, path_t *p);

static bool check_value(const ProtobufCFieldDescriptor *f, const void *member, path_t *p) {
  if (f->type == PROTOBUF_C_TYPE_STRING) {
    const char *s = *(char *const *)member;
    return s == NULL || sc_utf8_valid(s, strlen(s));
  }
  if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)member;
    return sub == NULL || walk(sub, p);
  }
  return true;
}

static bool walk(const ProtobufCMessage *m, path_t *p) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  /* protobuf-c does not limit nesting: past this depth a message is refused
   * rather than left unchecked. */
  if (p->depth >= MAX_DEPTH - 1) {
    p->names[p->depth] = "(nested too deeply)";
    p->index[p->depth] = -1;
    p->depth++;
    return false;
  }
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *base = (const char *)m;
    p->names[p->depth] = f->name;
    p->index[p->depth] = -1;
    p->depth++;
    bool ok = true;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      const char *arr = *(char *const *)(base + f->offset);
      for (size_t k = 0; ok && k < n; k++) {
        p->index[p->depth - 1] = (long)k;
        ok = check_value(f, arr + k * sizeof(void *), p);
      }
    } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
      if (which == f->id) ok = check_value(f, base + f->offset, p);
    } else {
      ok = check_value(f, base + f->offset, p);
    }
    if (!ok) return false; /* the path stays pointing at the culprit */
    p->depth--;
  }
  return true;
}

bool sc_pb_strings_valid(const ProtobufCMessage *msg, sc_arena_t *arena, const char **field) {
  path_t p = {.depth = 0};
  if (walk(msg, &p)) return true;
  if (field) *field = render(&p, arena);
  return false;
}
