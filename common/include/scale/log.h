/* Structured logs: one JSON object per line on stderr
 * (ts, level, service, request_id, user_id, method, status, duration_ms, msg),
 * or a compact text line for humans (SCALE_LOG_FORMAT=text).
 *
 * Configuration is process-wide on purpose: stderr is one per process. Lines
 * are written with a single write(2), so concurrent threads never interleave
 * within a line. Never pass tokens, passwords or file contents.
 */
#ifndef SCALE_LOG_H
#define SCALE_LOG_H

#include <stdbool.h>

typedef enum sc_log_level {
  SC_LOG_DEBUG = 0,
  SC_LOG_INFO = 1,
  SC_LOG_WARN = 2,
  SC_LOG_ERROR = 3,
  SC_LOG_OFF = 4,
} sc_log_level_t;

typedef enum sc_log_format { SC_LOG_JSON = 0, SC_LOG_TEXT = 1 } sc_log_format_t;

/* The per-call fields of a line; NULL members (and duration_ms < 0) are left out. */
typedef struct sc_log_fields {
  const char *request_id;
  const char *user_id;
  const char *method;
  const char *status;
  const char *peer;
  double duration_ms;
} sc_log_fields_t;

/* Sets the service name ("scale-server"), minimum level and format. Call once
 * at start, before threads; later calls are allowed but not synchronised. */
void sc_log_setup(const char *service, sc_log_level_t level, sc_log_format_t format);

/* Parses "debug", "info", "warn"/"warning", "error", "off". Returns 0 or -1. */
int sc_log_level_parse(const char *s, sc_log_level_t *out);

bool sc_log_enabled(sc_log_level_t level);

void sc_log_emit(sc_log_level_t level, const sc_log_fields_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Level-checked: arguments are not evaluated when the level is off. */
#define SC_LOG(level, fields, ...)                                                                                     \
  do {                                                                                                                 \
    if (sc_log_enabled(level)) sc_log_emit((level), (fields), __VA_ARGS__);                                            \
  } while (0)
#define SC_LOG_DEBUGF(fields, ...) SC_LOG(SC_LOG_DEBUG, fields, __VA_ARGS__)
#define SC_LOG_INFOF(fields, ...) SC_LOG(SC_LOG_INFO, fields, __VA_ARGS__)
#define SC_LOG_WARNF(fields, ...) SC_LOG(SC_LOG_WARN, fields, __VA_ARGS__)
#define SC_LOG_ERRORF(fields, ...) SC_LOG(SC_LOG_ERROR, fields, __VA_ARGS__)

#endif
