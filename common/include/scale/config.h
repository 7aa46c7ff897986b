/* Configuration from SCALE_* environment variables.
 *
 * Each binary declares a table of the variables it reads; sc_config_load()
 * validates every one at start and reports the first bad value naming the
 * variable and what is wrong, and sc_config_help() prints the table for
 * --help. Defaults make the local stack work with no configuration.
 */
#ifndef SCALE_CONFIG_H
#define SCALE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scale/status.h"

typedef enum sc_config_type {
  SC_CFG_STRING, /* any text; dest: const char ** (NULL when unset and no default) */
  SC_CFG_INT,    /* decimal integer in [min, max]; dest: int64_t * */
  SC_CFG_BOOL,   /* 1/0, true/false, yes/no, on/off; dest: bool * */
  SC_CFG_ADDR,   /* host:port (port 0..65535; [v6]:port); dest: const char ** */
  SC_CFG_FILE,   /* path of a readable file; dest: const char ** */
  SC_CFG_ENUM,   /* one of `choices` (case-insensitive); dest: const char ** (the choice) */
  SC_CFG_BYTES,  /* size with optional K/M/G suffix (1024-based) in [min, max]; dest: int64_t * */
} sc_config_type_t;

typedef struct sc_config_var {
  const char *name; /* "SCALE_GRPC_ADDR" */
  sc_config_type_t type;
  const char *def;  /* default as text; NULL: unset by default */
  const char *help; /* one line */
  void *dest;
  int64_t min, max;           /* SC_CFG_INT, SC_CFG_BYTES */
  const char *const *choices; /* SC_CFG_ENUM: NULL-terminated */
} sc_config_var_t;

/* Reads and validates every variable of the table (the environment value,
 * else the default). Returns 0, or -1 with err naming the first bad variable:
 * "SCALE_GRPC_THREADS=abc: not an integer". */
int sc_config_load(const sc_config_var_t *vars, size_t n, sc_err_t *err);

/* Prints "  NAME  (default: X)  help" lines. */
void sc_config_help(FILE *out, const sc_config_var_t *vars, size_t n);

/* Validators, shared with flag parsing. Each returns 0 or -1 with err. */
int sc_config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, sc_err_t *err);
int sc_config_parse_bytes(const char *s, int64_t min, int64_t max, int64_t *out, sc_err_t *err);
int sc_config_parse_addr(const char *s, sc_err_t *err);

#endif
