#include "scale/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int sc_config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, sc_err_t *err) {
  if (s == NULL || *s == '\0') {
    sc_err_set(err, "empty; expected an integer");
    return -1;
  }
  errno = 0;
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  if (errno == ERANGE || *end != '\0' || end == s) {
    sc_err_set(err, "not an integer");
    return -1;
  }
  if (v < min || v > max) {
    sc_err_set(err, "out of range; expected %lld..%lld", (long long)min, (long long)max);
    return -1;
  }
  *out = v;
  return 0;
}

int sc_config_parse_bytes(const char *s, int64_t min, int64_t max, int64_t *out, sc_err_t *err) {
  if (s == NULL || *s == '\0') {
    sc_err_set(err, "empty; expected a size such as 4096, 64K, 16M or 1G");
    return -1;
  }
  errno = 0;
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  if (errno == ERANGE || end == s || v < 0) {
    sc_err_set(err, "not a size; expected a size such as 4096, 64K, 16M or 1G");
    return -1;
  }
  int shift = 0;
  if (*end != '\0') {
    switch (*end) {
    case 'k':
    case 'K': shift = 10; break;
    case 'm':
    case 'M': shift = 20; break;
    case 'g':
    case 'G': shift = 30; break;
    default: shift = -1;
    }
    if (shift > 0 && (end[1] == 'b' || end[1] == 'B' || (end[1] == 'i' && (end[2] == 'B')))) {
      end += (end[1] == 'i') ? 2 : 1;
    }
    if (shift < 0 || end[1] != '\0') {
      sc_err_set(err, "not a size; expected a size such as 4096, 64K, 16M or 1G");
      return -1;
    }
  }
  if (shift > 0 && v > (INT64_MAX >> shift)) {
    sc_err_set(err, "too large");
    return -1;
  }
  int64_t bytes = (int64_t)v << shift;
  if (bytes < min || bytes > max) {
    sc_err_set(err, "out of range; expected %lld..%lld bytes", (long long)min, (long long)max);
    return -1;
  }
  *out = bytes;
  return 0;
}

int sc_config_parse_addr(const char *s, sc_err_t *err) {
  if (s == NULL || *s == '\0') {
    sc_err_set(err, "empty; expected host:port");
    return -1;
  }
  if (strncmp(s, "unix:", 5) == 0) {
    if (s[5] == '\0') {
      sc_err_set(err, "unix: address without a path");
      return -1;
    }
    return 0;
  }
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s) {
    sc_err_set(err, "expected host:port (e.g. 127.0.0.1:50051)");
    return -1;
  }
  if (s[0] == '[' && colon[-1] != ']') {
    sc_err_set(err, "expected [ipv6]:port");
    return -1;
  }
  for (const char *h = s; h < colon; h++) {
    if (*h == ' ' || *h == '/' || *h == '\t') {
      sc_err_set(err, "host contains '%c'; expected host:port", *h);
      return -1;
    }
  }
  int64_t port;
  sc_err_t perr;
  if (sc_config_parse_int(colon + 1, 0, 65535, &port, &perr) != 0) {
    sc_err_set(err, "port '%s' is not a number in 0..65535", colon + 1);
    return -1;
  }
  return 0;
}

static int parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return -1;
}

static int load_one(const sc_config_var_t *v, const char *val, sc_err_t *why) {
  switch (v->type) {
  case SC_CFG_STRING: *(const char **)v->dest = val; return 0;
  case SC_CFG_INT: return val ? sc_config_parse_int(val, v->min, v->max, v->dest, why) : 0;
  case SC_CFG_BYTES: return val ? sc_config_parse_bytes(val, v->min, v->max, v->dest, why) : 0;
  case SC_CFG_BOOL:
    if (val && parse_bool(val, v->dest) != 0) {
      sc_err_set(why, "expected true or false (1/0, yes/no, on/off)");
      return -1;
    }
    return 0;
  case SC_CFG_ADDR:
    if (val && sc_config_parse_addr(val, why) != 0) return -1;
    *(const char **)v->dest = val;
    return 0;
  case SC_CFG_FILE:
    if (val && access(val, R_OK) != 0) {
      sc_err_set(why, "cannot read file: %s", strerror(errno));
      return -1;
    }
    *(const char **)v->dest = val;
    return 0;
  case SC_CFG_ENUM:
    if (val == NULL) {
      *(const char **)v->dest = NULL;
      return 0;
    }
    for (const char *const *c = v->choices; c && *c; c++) {
      if (strcasecmp(val, *c) == 0) {
        *(const char **)v->dest = *c;
        return 0;
      }
    }
    {
      char list[256] = "";
      size_t used = 0;
      for (const char *const *c = v->choices; c && *c; c++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", *c);
        if (w < 0 || (size_t)w >= sizeof(list) - used) break;
        used += (size_t)w;
      }
      sc_err_set(why, "expected one of: %s", list);
    }
    return -1;
  }
  sc_err_set(why, "unsupported variable type");
  return -1;
}

int sc_config_load(const sc_config_var_t *vars, size_t n, sc_err_t *err) {
  for (size_t i = 0; i < n; i++) {
    const sc_config_var_t *v = &vars[i];
    const char *env = getenv(v->name);
    const char *val = env ? env : v->def;
    sc_err_t why = {{0}};
    if (load_one(v, val, &why) != 0) {
      /* Values of secrets are never echoed. */
      int secret = strstr(v->name, "SECRET") || strstr(v->name, "PASSWORD") || strstr(v->name, "URL");
      if (secret || val == NULL || strlen(val) > 200) {
        sc_err_set(err, "%s: %s", v->name, why.msg);
      } else {
        sc_err_set(err, "%s=%s: %s", v->name, val, why.msg);
      }
      return -1;
    }
  }
  return 0;
}

void sc_config_help(FILE *out, const sc_config_var_t *vars, size_t n) {
  for (size_t i = 0; i < n; i++) {
    fprintf(out, "  %-30s %s", vars[i].name, vars[i].help ? vars[i].help : "");
    if (vars[i].def) fprintf(out, " (default: %s)", vars[i].def);
    fputc('\n', out);
  }
}
