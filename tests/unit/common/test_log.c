#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scale/log.h"

/* Runs fn with stderr sent to a temp file; returns what was written. */
static char *capture(void (*fn)(void)) {
  char path[] = "/tmp/scale-log-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  int saved = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  static char buf[65536];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  unlink(path);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

static void emit_fields(void) {
  sc_log_setup("scale-test", SC_LOG_INFO, SC_LOG_JSON);
  sc_log_fields_t f = {.request_id = "rid-1", .user_id = "u1", .method = "/a.B/C", .status = "OK", .duration_ms = 1.5};
  SC_LOG_INFOF(&f, "hello \"quoted\" \\ and\nnewline \x01");
  SC_LOG_DEBUGF(&f, "debug is below the level");
}

Test(log, json_line_has_the_contract_fields_and_escapes) {
  char *out = capture(emit_fields);
  cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "exactly one line: %s", out);
  cr_assert(strstr(out, "\"level\":\"info\""), "%s", out);
  cr_assert(strstr(out, "\"service\":\"scale-test\""), "%s", out);
  cr_assert(strstr(out, "\"request_id\":\"rid-1\""), "%s", out);
  cr_assert(strstr(out, "\"user_id\":\"u1\""), "%s", out);
  cr_assert(strstr(out, "\"method\":\"/a.B/C\""), "%s", out);
  cr_assert(strstr(out, "\"status\":\"OK\""), "%s", out);
  cr_assert(strstr(out, "\"duration_ms\":1.500"), "%s", out);
  cr_assert(strstr(out, "hello \\\"quoted\\\" \\\\ and\\nnewline \\u0001"), "%s", out);
  cr_assert(strncmp(out, "{\"ts\":\"", 7) == 0);
}

static void emit_long(void) {
  sc_log_setup("scale-test", SC_LOG_DEBUG, SC_LOG_JSON);
  char *big = malloc(20000);
  memset(big, '"', 19999);
  big[19999] = '\0';
  SC_LOG_WARNF(NULL, "%s", big);
  free(big);
}

Test(log, overlong_lines_stay_one_valid_line) {
  char *out = capture(emit_long);
  size_t n = strlen(out);
  cr_assert_eq(strchr(out, '\n'), out + n - 1);
  cr_assert_str_eq(out + n - 3, "\"}\n", "line must close the JSON: ...%s", out + n - 10);
  /* No escape is cut in half: the text before the closing quote ends in \" pairs. */
  cr_assert_neq(out[n - 4], '\\');
}

static void emit_text(void) {
  sc_log_setup("scale-test", SC_LOG_INFO, SC_LOG_TEXT);
  sc_log_fields_t f = {.method = "/a.B/C", .status = "NOT_FOUND", .duration_ms = -1};
  SC_LOG_ERRORF(&f, "plain");
}

Test(log, text_format_for_humans) {
  char *out = capture(emit_text);
  cr_assert(strstr(out, " error scale-test: plain method=/a.B/C status=NOT_FOUND"), "%s", out);
  cr_assert_null(strstr(out, "duration_ms"));
}

Test(log, level_parsing) {
  sc_log_level_t l;
  cr_assert_eq(sc_log_level_parse("WARN", &l), 0);
  cr_assert_eq(l, SC_LOG_WARN);
  cr_assert_eq(sc_log_level_parse("warning", &l), 0);
  cr_assert_eq(sc_log_level_parse("off", &l), 0);
  cr_assert_eq(l, SC_LOG_OFF);
  cr_assert_eq(sc_log_level_parse("loud", &l), -1);
  cr_assert_eq(sc_log_level_parse(NULL, &l), -1);
}
