#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "scale/config.h"

static const char *addr, *name, *mode, *file;
static int64_t threads, bytes;
static bool flag;
static const char *const modes[] = {"json", "text", NULL};

static const sc_config_var_t vars[] = {
    {"SCALE_T_ADDR", SC_CFG_ADDR, "127.0.0.1:50051", "address", &addr},
    {"SCALE_T_THREADS", SC_CFG_INT, "4", "threads", &threads, 1, 64},
    {"SCALE_T_BYTES", SC_CFG_BYTES, "16M", "bytes", &bytes, 1024, (int64_t)1 << 30},
    {"SCALE_T_FLAG", SC_CFG_BOOL, "false", "flag", &flag},
    {"SCALE_T_NAME", SC_CFG_STRING, NULL, "name", &name},
    {"SCALE_T_MODE", SC_CFG_ENUM, "json", "mode", &mode, 0, 0, modes},
    {"SCALE_T_FILE", SC_CFG_FILE, NULL, "file", &file},
};
#define N (sizeof(vars) / sizeof(vars[0]))

static void clear(void) {
  for (size_t i = 0; i < N; i++)
    unsetenv(vars[i].name);
}

Test(config, defaults_apply_when_unset, .init = clear) {
  sc_err_t err;
  cr_assert_eq(sc_config_load(vars, N, &err), 0, "%s", err.msg);
  cr_assert_str_eq(addr, "127.0.0.1:50051");
  cr_assert_eq(threads, 4);
  cr_assert_eq(bytes, 16 << 20);
  cr_assert_eq(flag, false);
  cr_assert_null(name);
  cr_assert_str_eq(mode, "json");
  cr_assert_null(file);
}

Test(config, values_from_the_environment, .init = clear) {
  setenv("SCALE_T_ADDR", "[::1]:0", 1);
  setenv("SCALE_T_THREADS", "64", 1);
  setenv("SCALE_T_BYTES", "64KiB", 1);
  setenv("SCALE_T_FLAG", "on", 1);
  setenv("SCALE_T_NAME", "x", 1);
  setenv("SCALE_T_MODE", "TEXT", 1);
  setenv("SCALE_T_FILE", "/etc/hostname", 1);
  sc_err_t err;
  cr_assert_eq(sc_config_load(vars, N, &err), 0, "%s", err.msg);
  cr_assert_str_eq(addr, "[::1]:0");
  cr_assert_eq(threads, 64);
  cr_assert_eq(bytes, 64 << 10);
  cr_assert_eq(flag, true);
  cr_assert_str_eq(mode, "text");
}

static void expect_error(const char *var, const char *value, const char *needle) {
  clear();
  setenv(var, value, 1);
  sc_err_t err = {{0}};
  cr_assert_eq(sc_config_load(vars, N, &err), -1, "%s=%s was accepted", var, value);
  cr_assert(strstr(err.msg, var) != NULL, "error does not name the variable: %s", err.msg);
  cr_assert(strstr(err.msg, needle) != NULL, "error '%s' lacks '%s'", err.msg, needle);
}

Test(config, bad_values_name_the_variable) {
  expect_error("SCALE_T_ADDR", "nonsense", "host:port");
  expect_error("SCALE_T_ADDR", "127.0.0.1:99999", "port");
  expect_error("SCALE_T_ADDR", "127.0.0.1:http", "port");
  expect_error("SCALE_T_THREADS", "abc", "not an integer");
  expect_error("SCALE_T_THREADS", "0", "out of range");
  expect_error("SCALE_T_THREADS", "99999999999999999999", "not an integer");
  expect_error("SCALE_T_THREADS", "4x", "not an integer");
  expect_error("SCALE_T_BYTES", "12Q", "size");
  expect_error("SCALE_T_BYTES", "2G", "out of range");
  expect_error("SCALE_T_BYTES", "-5", "size");
  expect_error("SCALE_T_FLAG", "maybe", "true or false");
  expect_error("SCALE_T_MODE", "xml", "json, text");
  expect_error("SCALE_T_FILE", "/nonexistent/file", "cannot read");
}

Test(config, secrets_are_not_echoed) {
  const char *secret;
  sc_config_var_t v[] = {{"SCALE_T_SECRET", SC_CFG_ADDR, NULL, "secret", &secret}};
  setenv("SCALE_T_SECRET", "hunter2-not-an-address", 1);
  sc_err_t err;
  cr_assert_eq(sc_config_load(v, 1, &err), -1);
  cr_assert_null(strstr(err.msg, "hunter2"), "%s", err.msg);
  unsetenv("SCALE_T_SECRET");
}

Test(config, help_lists_every_variable) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  sc_config_help(f, vars, N);
  fclose(f);
  for (size_t i = 0; i < N; i++)
    cr_assert(strstr(text, vars[i].name), "%s missing", vars[i].name);
  cr_assert(strstr(text, "default: 127.0.0.1:50051"));
  free(text);
}
