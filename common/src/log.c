#include "scale/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192

static struct {
  char service[64];
  sc_log_level_t level;
  sc_log_format_t format;
} g = {"scale", SC_LOG_INFO, SC_LOG_JSON};

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void sc_log_setup(const char *service, sc_log_level_t level, sc_log_format_t format) {
  snprintf(g.service, sizeof(g.service), "%s", service ? service : "scale");
  g.level = level;
  g.format = format;
}

int sc_log_level_parse(const char *s, sc_log_level_t *out) {
  if (s == NULL) return -1;
  for (int i = 0; i <= SC_LOG_OFF; i++) {
    if (strcasecmp(s, level_names[i]) == 0) {
      *out = (sc_log_level_t)i;
      return 0;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *out = SC_LOG_WARN;
    return 0;
  }
  return -1;
}

bool sc_log_enabled(sc_log_level_t level) { return level >= g.level && level < SC_LOG_OFF; }

typedef struct buf {
  char *p;
  size_t len, cap;
  bool truncated;
} buf_t;

/* All or nothing, so an escape sequence is never cut in half; once something
 * did not fit, nothing more is added. */
static void put(buf_t *b, const char *s, size_t n) {
  if (b->truncated || n > b->cap - b->len) {
    b->truncated = true;
    return;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}
static void puts_(buf_t *b, const char *s) { put(b, s, strlen(s)); }

/* JSON string body escaping (RFC 8259): quotes, backslash, control bytes. */
static void put_json_str(buf_t *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    char esc[7];
    if (*c == '"' || *c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*c;
      put(b, esc, 2);
    } else if (*c == '\n') {
      put(b, "\\n", 2);
    } else if (*c == '\r') {
      put(b, "\\r", 2);
    } else if (*c == '\t') {
      put(b, "\\t", 2);
    } else if (*c < 0x20 || *c == 0x7f) {
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[*c >> 4];
      esc[5] = hex[*c & 15];
      put(b, esc, 6);
    } else {
      put(b, (const char *)c, 1);
    }
  }
}

static void put_field(buf_t *b, const char *key, const char *val) {
  if (val == NULL) return;
  puts_(b, ",\"");
  puts_(b, key);
  puts_(b, "\":\"");
  put_json_str(b, val);
  puts_(b, "\"");
}

static void put_text_field(buf_t *b, const char *key, const char *val) {
  if (val == NULL) return;
  puts_(b, " ");
  puts_(b, key);
  puts_(b, "=");
  puts_(b, val);
}

void sc_log_emit(sc_log_level_t level, const sc_log_fields_t *f, const char *fmt, ...) {
  char line[LINE_MAX_BYTES];
  char msg[LINE_MAX_BYTES / 2];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (n < 0) snprintf(msg, sizeof(msg), "(unformattable log message)");

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char tsbuf[64];
  snprintf(tsbuf, sizeof(tsbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
  char dur[32] = "";
  if (f != NULL && f->duration_ms >= 0) snprintf(dur, sizeof(dur), "%.3f", f->duration_ms);
  const char *lvl = level_names[level <= SC_LOG_ERROR ? level : SC_LOG_ERROR];

  /* Leave room for the closing characters whatever the fields' length. Every
   * field but msg is short and bounded, so only msg can be cut. */
  buf_t b = {line, 0, sizeof(line) - 8, false};
  if (g.format == SC_LOG_TEXT) {
    puts_(&b, tsbuf);
    puts_(&b, " ");
    puts_(&b, lvl);
    puts_(&b, " ");
    puts_(&b, g.service);
    puts_(&b, ": ");
    puts_(&b, msg);
    if (f != NULL) {
      put_text_field(&b, "method", f->method);
      put_text_field(&b, "status", f->status);
      put_text_field(&b, "duration_ms", dur[0] ? dur : NULL);
      put_text_field(&b, "request_id", f->request_id);
      put_text_field(&b, "user_id", f->user_id);
      put_text_field(&b, "peer", f->peer);
    }
  } else {
    puts_(&b, "{\"ts\":\"");
    puts_(&b, tsbuf);
    puts_(&b, "\"");
    put_field(&b, "level", lvl);
    put_field(&b, "service", g.service);
    if (f != NULL) {
      put_field(&b, "request_id", f->request_id);
      put_field(&b, "user_id", f->user_id);
      put_field(&b, "method", f->method);
      put_field(&b, "status", f->status);
      if (dur[0]) {
        puts_(&b, ",\"duration_ms\":");
        puts_(&b, dur);
      }
      put_field(&b, "peer", f->peer);
    }
    put_field(&b, "msg", msg);
    if (b.truncated) {
      b.truncated = false;
      b.cap = sizeof(line);
      puts_(&b, "\"");
    }
    b.cap = sizeof(line);
    puts_(&b, "}");
  }
  b.truncated = false;
  b.cap = sizeof(line);
  puts_(&b, "\n");
  ssize_t w = write(STDERR_FILENO, line, b.len);
  (void)w; /* nowhere to report a failed log write */
}
