#include "scale/redis.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "scale/log.h"
#include "scale/uuid.h"

#define DEFAULT_PORT 6379
#define DEFAULT_MAX_CONNS 8
#define DEFAULT_TIMEOUT_MS 2000
#define MAX_URL_BYTES 4096
#define SHA_HEX_LEN 40
#define ENTRY_ID_CAP 48  /* sizeof(((sc_redis_entry_t *)0)->id); the header's id_out size */
#define MAX_ERR_TEXT 400 /* of a Redis error reply copied into a 512-byte sc_err_t */

struct sc_redis {
  char *host; /* TCP host, or NULL for a unix socket */
  char *path; /* unix socket path, or NULL */
  int port;
  char *user;     /* ACL user for AUTH, or NULL */
  char *password; /* or NULL; wiped on free, never logged */
  int db;
  char *where; /* "host:port" or the socket path, for log lines */
  int max_conns, connect_ms, command_ms;

  pthread_mutex_t mu;
  pthread_cond_t cv;              /* a connection went back to the pool or a slot freed */
  redisContext **idle;            /* max_conns slots; the last one is the warmest */
  int n_idle, n_open;             /* n_open counts idle and checked-out connections */
  bool down;                      /* the last connect or command failed on I/O: log the recovery */
  bool sync_ready;                /* mu and cv initialised */
  char rate_sha[SHA_HEX_LEN + 1]; /* "" until SCRIPT LOAD succeeds */

  char nonce_prefix[SC_UUID_STR_LEN + 1];
  atomic_uint_fast64_t nonce;
};

struct sc_redis_sub {
  sc_redis_t *r;   /* borrowed: connection settings for reconnects */
  redisContext *c; /* NULL after a lost connection, until the next sub_next */
  char *channel;
};

/* The sliding-window log. Scores are the server's clock in ms, so every
 * client agrees whatever its own clock says; members are made unique with a
 * per-client nonce because several requests can land in one millisecond.
 * Returns {allowed, remaining, reset_ms, retry_after_ms}.
 * replicate_commands() lets TIME precede writes on Redis < 5; it is a no-op
 * (or absent) on newer servers. */
static const char RATE_SCRIPT[] = "if redis.replicate_commands then redis.replicate_commands() end\n"
                                  "local key = KEYS[1]\n"
                                  "local limit = tonumber(ARGV[1])\n"
                                  "local window = tonumber(ARGV[2])\n"
                                  "local t = redis.call('TIME')\n"
                                  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
                                  "redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)\n"
                                  "local count = redis.call('ZCARD', key)\n"
                                  "local allowed = 0\n"
                                  "if count < limit then\n"
                                  "  redis.call('ZADD', key, now, now .. '-' .. ARGV[3])\n"
                                  "  redis.call('PEXPIRE', key, window)\n"
                                  "  count = count + 1\n"
                                  "  allowed = 1\n"
                                  "end\n"
                                  "local reset = window\n"
                                  "local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')\n"
                                  "if oldest[2] then reset = tonumber(oldest[2]) + window - now end\n"
                                  "if reset < 1 then reset = 1 end\n"
                                  "if allowed == 1 then return {1, limit - count, reset, 0} end\n"
                                  "return {0, 0, reset, reset}\n";

/* ---- URL ----------------------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape, an
 * encoded NUL or out of memory. */
static char *pct_decode(const char *s, size_t n) {
  char *out = malloc(n + 1);
  if (out == NULL) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      out[o++] = s[i];
      continue;
    }
    int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
    int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
      explicit_bzero(out, n + 1);
      free(out);
      return NULL;
    }
    out[o++] = (char)(hi * 16 + lo);
    i += 2;
  }
  out[o] = '\0';
  return out;
}

/* Decimal digits only, s[0..n), into 0..max. */
static bool parse_num(const char *s, size_t n, long max, long *out) {
  if (n == 0 || n > 10) return false;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d == NULL) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

/* Fills host/path, port, user, password and db from
 *   redis://[[user]:password@]host[:port][/db]
 *   unix://[[user]:password@]/path/to/socket[?db=N]
 * Messages never quote the URL: it may carry a password. */
static bool parse_url(sc_redis_t *r, const char *url, sc_err_t *err) {
  if (url == NULL || *url == '\0') {
    sc_err_set(err, "redis URL is empty; expected redis://[:password@]host:port[/db]");
    return false;
  }
  size_t len = strnlen(url, MAX_URL_BYTES + 1);
  if (len > MAX_URL_BYTES) {
    sc_err_set(err, "redis URL is longer than %d bytes", MAX_URL_BYTES);
    return false;
  }
  bool is_unix;
  const char *p;
  if (strncasecmp(url, "redis://", 8) == 0) {
    is_unix = false;
    p = url + 8;
  } else if (strncasecmp(url, "unix://", 7) == 0) {
    is_unix = true;
    p = url + 7;
  } else if (strncasecmp(url, "rediss://", 9) == 0) {
    sc_err_set(err, "redis URL: TLS (rediss://) is not supported");
    return false;
  } else {
    sc_err_set(err, "redis URL must start with redis:// or unix://");
    return false;
  }
  const char *end = url + len;

  /* Credentials end at the last '@': a raw password may contain '/' or '@'. */
  const char *at = NULL;
  for (const char *q = p; q < end; q++)
    if (*q == '@') at = q;
  if (at != NULL) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon == NULL) {
      sc_err_set(err, "redis URL: credentials must be written :password@ or user:password@");
      return false;
    }
    if (colon > p && (r->user = pct_decode(p, (size_t)(colon - p))) == NULL) {
      sc_err_set(err, "redis URL: bad percent-encoding in the user name");
      return false;
    }
    if (at == colon + 1) {
      sc_err_set(err, "redis URL: empty password");
      return false;
    }
    if ((r->password = pct_decode(colon + 1, (size_t)(at - colon - 1))) == NULL) {
      sc_err_set(err, "redis URL: bad percent-encoding in the password");
      return false;
    }
    p = at + 1;
  }

  long num = 0;
  if (is_unix) {
    const char *qm = memchr(p, '?', (size_t)(end - p));
    const char *pend = qm ? qm : end;
    if (pend == p || *p != '/') {
      sc_err_set(err, "redis URL: unix:// needs an absolute socket path");
      return false;
    }
    if (qm != NULL) {
      if (strncmp(qm, "?db=", 4) != 0 || !parse_num(qm + 4, (size_t)(end - qm - 4), INT_MAX, &num)) {
        sc_err_set(err, "redis URL: the only query parameter is db=N");
        return false;
      }
    }
    r->db = (int)num;
    r->path = dup_n(p, (size_t)(pend - p));
    if (r->path == NULL) goto oom;
    return true;
  }

  const char *hs, *he;
  if (*p == '[') {
    hs = p + 1;
    he = memchr(hs, ']', (size_t)(end - hs));
    if (he == NULL) {
      sc_err_set(err, "redis URL: unterminated [IPv6] host");
      return false;
    }
    p = he + 1;
  } else {
    hs = p;
    while (p < end && *p != ':' && *p != '/')
      p++;
    he = p;
  }
  if (he == hs) {
    sc_err_set(err, "redis URL has no host");
    return false;
  }
  r->port = DEFAULT_PORT;
  if (p < end && *p == ':') {
    const char *ps = ++p;
    while (p < end && *p != '/')
      p++;
    if (!parse_num(ps, (size_t)(p - ps), 65535, &num) || num == 0) {
      sc_err_set(err, "redis URL: port must be 1..65535");
      return false;
    }
    r->port = (int)num;
  }
  r->db = 0;
  if (p < end) {
    if (*p != '/') {
      sc_err_set(err, "redis URL: unexpected text after the host");
      return false;
    }
    p++;
    if (p < end) {
      if (!parse_num(p, (size_t)(end - p), INT_MAX, &num)) {
        sc_err_set(err, "redis URL: the path must be a database number");
        return false;
      }
      r->db = (int)num;
    }
  }
  r->host = dup_n(hs, (size_t)(he - hs));
  if (r->host == NULL) goto oom;
  return true;
oom:
  sc_err_set(err, "out of memory");
  return false;
}

/* ---- Connections --------------------------------------------------------- */

static struct timeval tv_ms(int64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  return tv;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The message for a context hiredis marked failed. A blocking read that hits
 * SO_RCVTIMEO comes back as REDIS_ERR_IO with EAGAIN, which reads better as
 * a timeout. errno is still the read's: nothing ran since. */
static void set_io_error(const sc_redis_t *r, const redisContext *c, int saved_errno, int timeout_ms, sc_err_t *why) {
  if (c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))
    sc_err_set(why, "redis unreachable: no reply from %s within %d ms", r->where, timeout_ms);
  else
    sc_err_set(why, "redis unreachable: %s: %s", r->where, c->errstr[0] ? c->errstr : "connection error");
}

static void set_reply_error(const redisReply *rep, sc_err_t *why) {
  int n = rep->len > MAX_ERR_TEXT ? MAX_ERR_TEXT : (int)rep->len;
  sc_err_set(why, "redis: %.*s", n, rep->str ? rep->str : "");
}

static bool error_is(const redisReply *rep, const char *prefix) {
  size_t n = strlen(prefix);
  return rep->type == REDIS_REPLY_ERROR && rep->len >= n && strncmp(rep->str, prefix, n) == 0;
}

/* Connects, authenticates and selects the database. SC_UNAVAILABLE when the
 * server cannot be reached, SC_INTERNAL when it refuses AUTH or SELECT. */
static sc_status_t conn_open(sc_redis_t *r, redisContext **out, sc_err_t *why) {
  struct timeval ctv = tv_ms(r->connect_ms);
  redisContext *c =
      r->path ? redisConnectUnixWithTimeout(r->path, ctv) : redisConnectWithTimeout(r->host, r->port, ctv);
  if (c == NULL) {
    sc_err_set(why, "redis unreachable: out of memory");
    return SC_UNAVAILABLE;
  }
  sc_status_t st = SC_UNAVAILABLE;
  redisReply *rep = NULL;
  if (c->err) {
    sc_err_set(why, "redis unreachable: %s: %s", r->where, c->errstr);
    goto out;
  }
  if (redisSetTimeout(c, tv_ms(r->command_ms)) != REDIS_OK) {
    sc_err_set(why, "redis unreachable: %s: cannot set the socket timeout", r->where);
    goto out;
  }
  if (r->password != NULL) {
    const char *argv[3] = {"AUTH", r->user ? r->user : r->password, r->password};
    rep = redisCommandArgv(c, r->user ? 3 : 2, argv, NULL);
    if (rep == NULL) {
      set_io_error(r, c, errno, r->command_ms, why);
      goto out;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
      /* The server's text names no secret ("WRONGPASS invalid username-password pair"). */
      int n = rep->len > MAX_ERR_TEXT ? MAX_ERR_TEXT : (int)rep->len;
      sc_err_set(why, "redis: AUTH refused: %.*s", n, rep->str);
      st = SC_INTERNAL;
      goto out;
    }
    freeReplyObject(rep);
    rep = NULL;
  }
  if (r->db != 0) {
    char db[16];
    snprintf(db, sizeof(db), "%d", r->db);
    const char *argv[2] = {"SELECT", db};
    rep = redisCommandArgv(c, 2, argv, NULL);
    if (rep == NULL) {
      set_io_error(r, c, errno, r->command_ms, why);
      goto out;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
      int n = rep->len > MAX_ERR_TEXT ? MAX_ERR_TEXT : (int)rep->len;
      sc_err_set(why, "redis: SELECT %d refused: %.*s", r->db, n, rep->str);
      st = SC_INTERNAL;
      goto out;
    }
  }
  st = SC_OK;
  *out = c;
  c = NULL;
out:
  if (rep) freeReplyObject(rep);
  if (c) redisFree(c);
  return st;
}

/* Records an I/O failure (connect or command) and logs the first of a run. */
static void mark_down(sc_redis_t *r, const sc_err_t *e) {
  pthread_mutex_lock(&r->mu);
  bool was_down = r->down;
  r->down = true;
  pthread_mutex_unlock(&r->mu);
  if (!was_down) SC_LOG_WARNF(NULL, "%s; reconnecting on the next command", e->msg);
}

/* A pooled connection whose socket is readable while no reply is owed was
 * closed by the server (a restart sends FIN to every client): using it would
 * fail a command that a fresh connection would have served. */
static bool conn_looks_alive(redisContext *c) {
  struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
  int n;
  do
    n = poll(&pfd, 1, 0);
  while (n < 0 && errno == EINTR);
  return n == 0;
}

/* Checks a connection out of the pool, opening one when there is room.
 * Waits for a free connection at most connect + command timeout. */
static sc_status_t pool_get(sc_redis_t *r, redisContext **out, sc_err_t *why) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  int64_t wait_ms = (int64_t)r->connect_ms + r->command_ms;
  deadline.tv_sec += (time_t)(wait_ms / 1000);
  deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  int n_stale = 0;
  redisContext *c = NULL;

  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (c == NULL && r->n_idle > 0) {
      c = r->idle[--r->n_idle];
      if (!conn_looks_alive(c)) {
        /* redisFree is a close(2) and a few frees: cheap enough under the lock. */
        redisFree(c);
        r->n_open--;
        n_stale++;
        c = NULL;
      }
    }
    if (c != NULL || r->n_open < r->max_conns) break;
    if (pthread_cond_timedwait(&r->cv, &r->mu, &deadline) == ETIMEDOUT && r->n_idle == 0 && r->n_open >= r->max_conns) {
      pthread_mutex_unlock(&r->mu);
      sc_err_set(why, "redis unreachable: all %d connections stayed busy for %lld ms", r->max_conns,
                 (long long)wait_ms);
      return SC_UNAVAILABLE;
    }
  }
  if (c == NULL) r->n_open++;
  pthread_mutex_unlock(&r->mu);
  if (n_stale > 0) SC_LOG_WARNF(NULL, "redis: dropped %d connection(s) closed by %s", n_stale, r->where);
  if (c != NULL) {
    *out = c;
    return SC_OK;
  }

  sc_err_t e = {{0}};
  sc_status_t st = conn_open(r, &c, &e);
  pthread_mutex_lock(&r->mu);
  bool recovered = false;
  if (st != SC_OK) {
    r->n_open--;
    pthread_cond_signal(&r->cv);
  } else {
    recovered = r->down;
    r->down = false;
  }
  pthread_mutex_unlock(&r->mu);
  if (st != SC_OK) {
    if (st == SC_UNAVAILABLE) mark_down(r, &e);
    if (why) *why = e;
    return st;
  }
  if (recovered) SC_LOG_WARNF(NULL, "redis: reconnected to %s", r->where);
  *out = c;
  return SC_OK;
}

/* Returns a connection to the pool; a broken one is closed and its slot freed. */
static void pool_put(sc_redis_t *r, redisContext *c, bool broken) {
  if (broken || c->err) {
    redisFree(c);
    c = NULL;
  }
  pthread_mutex_lock(&r->mu);
  if (c == NULL)
    r->n_open--;
  else
    r->idle[r->n_idle++] = c;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

/* One command on a checked-out connection. SC_OK with any reply, Redis
 * errors included (the caller owns it); SC_UNAVAILABLE when the connection
 * failed, which then must go back to the pool as broken. */
static sc_status_t conn_exec(sc_redis_t *r, redisContext *c, int timeout_ms, int argc, const char **argv,
                             const size_t *lens, redisReply **out, sc_err_t *why) {
  redisReply *rep = redisCommandArgv(c, argc, argv, lens);
  if (rep == NULL) {
    sc_err_t e = {{0}};
    set_io_error(r, c, errno, timeout_ms, &e);
    mark_down(r, &e);
    if (why) *why = e;
    return SC_UNAVAILABLE;
  }
  *out = rep;
  return SC_OK;
}

/* Runs one command on a pooled connection; SC_OK with any reply (errors
 * included) that the caller owns. block_ms > 0 widens the read timeout of
 * that connection for the command (blocking reads) and restores it. */
static sc_status_t exec_raw(sc_redis_t *r, int block_ms, int argc, const char **argv, const size_t *lens,
                            redisReply **out, sc_err_t *why) {
  redisContext *c = NULL;
  sc_status_t st = pool_get(r, &c, why);
  if (st != SC_OK) return st;
  int64_t timeout = r->command_ms;
  bool broken = false;
  if (block_ms > 0) {
    timeout += block_ms;
    if (timeout > INT_MAX) timeout = INT_MAX;
    if (redisSetTimeout(c, tv_ms(timeout)) != REDIS_OK) {
      sc_err_set(why, "redis unreachable: cannot set the socket timeout");
      pool_put(r, c, true);
      return SC_UNAVAILABLE;
    }
  }
  st = conn_exec(r, c, (int)timeout, argc, argv, lens, out, why);
  broken = st != SC_OK;
  if (!broken && block_ms > 0 && redisSetTimeout(c, tv_ms(r->command_ms)) != REDIS_OK) broken = true;
  pool_put(r, c, broken);
  return st;
}

/* exec_raw with a Redis error reply turned into SC_INTERNAL (the reply is
 * freed and its text goes to why). LOADING and MASTERDOWN are passing states
 * of a healthy deployment, so they are SC_UNAVAILABLE: worth a retry. */
static sc_status_t run(sc_redis_t *r, int block_ms, int argc, const char **argv, const size_t *lens, redisReply **out,
                       sc_err_t *why) {
  redisReply *rep = NULL;
  sc_status_t st = exec_raw(r, block_ms, argc, argv, lens, &rep, why);
  if (st != SC_OK) return st;
  if (rep->type == REDIS_REPLY_ERROR) {
    set_reply_error(rep, why);
    st = (error_is(rep, "LOADING") || error_is(rep, "MASTERDOWN")) ? SC_UNAVAILABLE : SC_INTERNAL;
    freeReplyObject(rep);
    return st;
  }
  *out = rep;
  return SC_OK;
}

/* Hands rep to the arena; on failure rep is freed. */
static sc_status_t attach(sc_arena_t *a, redisReply *rep, sc_err_t *why) {
  if (sc_arena_add_cleanup(a, freeReplyObject, rep) != 0) {
    freeReplyObject(rep);
    sc_err_set(why, "redis: the arena is full");
    return SC_RESOURCE_EXHAUSTED;
  }
  return SC_OK;
}

static sc_status_t unexpected(redisReply *rep, const char *cmd, sc_err_t *why) {
  if (rep) freeReplyObject(rep);
  sc_err_set(why, "redis: unexpected reply to %s", cmd);
  return SC_INTERNAL;
}

/* ---- Client -------------------------------------------------------------- */

sc_redis_t *sc_redis_new(const sc_redis_opts_t *opts, sc_err_t *err) {
  if (opts == NULL) {
    sc_err_set(err, "redis: no options");
    return NULL;
  }
  sc_redis_t *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    sc_err_set(err, "out of memory");
    return NULL;
  }
  if (!parse_url(r, opts->url, err)) {
    sc_redis_free(r);
    return NULL;
  }
  r->max_conns = opts->max_conns > 0 ? opts->max_conns : DEFAULT_MAX_CONNS;
  r->connect_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_TIMEOUT_MS;
  r->command_ms = opts->command_timeout_ms > 0 ? opts->command_timeout_ms : DEFAULT_TIMEOUT_MS;
  int n = r->path ? snprintf(NULL, 0, "%s", r->path) : snprintf(NULL, 0, "%s:%d", r->host, r->port);
  r->where = malloc((size_t)n + 1);
  r->idle = calloc((size_t)r->max_conns, sizeof(*r->idle));
  if (r->where == NULL || r->idle == NULL) {
    sc_err_set(err, "out of memory");
    sc_redis_free(r);
    return NULL;
  }
  if (r->path)
    snprintf(r->where, (size_t)n + 1, "%s", r->path);
  else
    snprintf(r->where, (size_t)n + 1, "%s:%d", r->host, r->port);
  /* Rate-limit members only need to differ between clients that share a
   * millisecond; a time-and-pid prefix does if the kernel has no randomness. */
  if (sc_uuid_v4(r->nonce_prefix) != 0)
    snprintf(r->nonce_prefix, sizeof(r->nonce_prefix), "%lld.%d", (long long)now_ms(), (int)getpid());
  atomic_init(&r->nonce, 0);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&r->mu, NULL);
  r->sync_ready = true;
  return r;
}

void sc_redis_free(sc_redis_t *r) {
  if (r == NULL) return;
  for (int i = 0; i < r->n_idle; i++)
    redisFree(r->idle[i]);
  if (r->sync_ready) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
  }
  if (r->password) explicit_bzero(r->password, strlen(r->password));
  free(r->password);
  free(r->user);
  free(r->host);
  free(r->path);
  free(r->where);
  free(r->idle);
  free(r);
}

sc_status_t sc_redis_cmd(sc_redis_t *r, sc_arena_t *arena, redisReply **reply, sc_err_t *why, int argc,
                         const char **argv, const size_t *argvlen) {
  if (r == NULL || argc <= 0 || argv == NULL) {
    sc_err_set(why, "redis: no command");
    return SC_INVALID_ARGUMENT;
  }
  redisReply *rep = NULL;
  sc_status_t st = run(r, 0, argc, argv, argvlen, &rep, why);
  if (st != SC_OK) return st;
  if (reply == NULL) {
    freeReplyObject(rep);
    return SC_OK;
  }
  if (arena != NULL && (st = attach(arena, rep, why)) != SC_OK) return st;
  *reply = rep;
  return SC_OK;
}

sc_status_t sc_redis_ping(sc_redis_t *r, sc_err_t *why) {
  const char *argv[1] = {"PING"};
  return sc_redis_cmd(r, NULL, NULL, why, 1, argv, NULL);
}

/* ---- Streams ------------------------------------------------------------- */

/* Fills entries from an array of [id, [field, value, ...]]. The fields point
 * into `list`, which must live as long as the arena. A nil field list (an
 * entry deleted while pending, Redis < 7) gives an entry with no fields. */
static bool parse_entries(sc_arena_t *a, const redisReply *list, sc_redis_entry_t **entries, size_t *n) {
  size_t count = list->type == REDIS_REPLY_ARRAY ? list->elements : 0;
  if (list->type != REDIS_REPLY_ARRAY && list->type != REDIS_REPLY_NIL) return false;
  sc_redis_entry_t *es = sc_arena_calloc(a, count, sizeof(*es));
  if (es == NULL) return false;
  for (size_t i = 0; i < count; i++) {
    const redisReply *e = list->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) return false;
    const redisReply *id = e->element[0], *kv = e->element[1];
    if (id->type != REDIS_REPLY_STRING || id->len >= sizeof(es[i].id)) return false;
    memcpy(es[i].id, id->str, id->len);
    es[i].id[id->len] = '\0';
    if (kv->type == REDIS_REPLY_NIL) continue;
    if (kv->type != REDIS_REPLY_ARRAY || kv->elements % 2 != 0) return false;
    size_t nf = kv->elements / 2;
    es[i].fields = sc_arena_calloc(a, nf, sizeof(*es[i].fields));
    if (es[i].fields == NULL) return false;
    for (size_t f = 0; f < nf; f++) {
      const redisReply *k = kv->element[2 * f], *v = kv->element[2 * f + 1];
      if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) return false;
      es[i].fields[f].name = k->str;
      es[i].fields[f].value = v->str; /* hiredis NUL-terminates strings */
      es[i].fields[f].value_len = v->len;
    }
    es[i].n_fields = nf;
  }
  *entries = es;
  *n = count;
  return true;
}

sc_status_t sc_redis_xadd(sc_redis_t *r, const char *stream, int64_t maxlen, const sc_redis_field_t *fields, size_t n,
                          char *id_out, sc_err_t *why) {
  if (r == NULL || stream == NULL || fields == NULL || n == 0 || n > (size_t)(INT_MAX - 6) / 2) {
    sc_err_set(why, "redis: XADD needs a stream and 1 or more fields");
    return SC_INVALID_ARGUMENT;
  }
  size_t argc = 0, cap = 6 + 2 * n;
  const char **argv = malloc(cap * sizeof(*argv));
  size_t *lens = malloc(cap * sizeof(*lens));
  char maxbuf[24];
  sc_status_t st = SC_RESOURCE_EXHAUSTED;
  redisReply *rep = NULL;
  if (argv == NULL || lens == NULL) {
    sc_err_set(why, "out of memory");
    goto out;
  }
#define ARG(s, l) (argv[argc] = (s), lens[argc] = (l), argc++)
  ARG("XADD", 4);
  ARG(stream, strlen(stream));
  if (maxlen > 0) {
    /* "~" lets Redis trim whole radix-tree nodes: far cheaper than exact. */
    int ml = snprintf(maxbuf, sizeof(maxbuf), "%lld", (long long)maxlen);
    ARG("MAXLEN", 6);
    ARG("~", 1);
    ARG(maxbuf, (size_t)ml);
  }
  ARG("*", 1);
  for (size_t i = 0; i < n; i++) {
    if (fields[i].name == NULL || (fields[i].value == NULL && fields[i].value_len > 0)) {
      sc_err_set(why, "redis: XADD field %zu has no name or value", i);
      st = SC_INVALID_ARGUMENT;
      goto out;
    }
    ARG(fields[i].name, strlen(fields[i].name));
    ARG(fields[i].value ? fields[i].value : "", fields[i].value_len);
  }
#undef ARG
  st = run(r, 0, (int)argc, argv, lens, &rep, why);
  if (st != SC_OK) goto out;
  if (rep->type != REDIS_REPLY_STRING || rep->len >= ENTRY_ID_CAP) {
    st = unexpected(rep, "XADD", why);
    rep = NULL;
    goto out;
  }
  if (id_out != NULL) {
    memcpy(id_out, rep->str, rep->len);
    id_out[rep->len] = '\0';
  }
out:
  if (rep) freeReplyObject(rep);
  free(argv);
  free(lens);
  return st;
}

sc_status_t sc_redis_group_create(sc_redis_t *r, const char *stream, const char *group, sc_err_t *why) {
  if (r == NULL || stream == NULL || group == NULL) {
    sc_err_set(why, "redis: XGROUP CREATE needs a stream and a group");
    return SC_INVALID_ARGUMENT;
  }
  const char *argv[6] = {"XGROUP", "CREATE", stream, group, "$", "MKSTREAM"};
  redisReply *rep = NULL;
  sc_status_t st = exec_raw(r, 0, 6, argv, NULL, &rep, why);
  if (st != SC_OK) return st;
  if (rep->type == REDIS_REPLY_ERROR && !error_is(rep, "BUSYGROUP")) {
    set_reply_error(rep, why);
    st = SC_INTERNAL;
  }
  freeReplyObject(rep);
  return st;
}

sc_status_t sc_redis_xreadgroup(sc_redis_t *r, sc_arena_t *arena, const char *stream, const char *group,
                                const char *consumer, size_t count, int block_ms, sc_redis_entry_t **entries, size_t *n,
                                sc_err_t *why) {
  if (r == NULL || arena == NULL || stream == NULL || group == NULL || consumer == NULL || entries == NULL ||
      n == NULL || count == 0) {
    sc_err_set(why, "redis: XREADGROUP needs an arena, stream, group, consumer and a count >= 1");
    return SC_INVALID_ARGUMENT;
  }
  char countbuf[24], blockbuf[24];
  snprintf(countbuf, sizeof(countbuf), "%zu", count);
  const char *argv[12] = {"XREADGROUP", "GROUP", group, consumer, "COUNT", countbuf};
  int argc = 6;
  if (block_ms > 0) {
    snprintf(blockbuf, sizeof(blockbuf), "%d", block_ms);
    argv[argc++] = "BLOCK";
    argv[argc++] = blockbuf;
  }
  argv[argc++] = "STREAMS";
  argv[argc++] = stream;
  argv[argc++] = ">";
  redisReply *rep = NULL;
  sc_status_t st = run(r, block_ms > 0 ? block_ms : 0, argc, argv, NULL, &rep, why);
  if (st != SC_OK) return st;
  if (rep->type == REDIS_REPLY_NIL) { /* BLOCK timed out, or nothing new */
    freeReplyObject(rep);
    sc_redis_entry_t *none = sc_arena_calloc(arena, 0, sizeof(*none));
    if (none == NULL) {
      sc_err_set(why, "redis: the arena is full");
      return SC_RESOURCE_EXHAUSTED;
    }
    *entries = none;
    *n = 0;
    return SC_OK;
  }
  /* [[stream, [entries...]]]: one stream was asked for. */
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 || rep->element[0]->type != REDIS_REPLY_ARRAY ||
      rep->element[0]->elements != 2)
    return unexpected(rep, "XREADGROUP", why);
  sc_redis_entry_t *es = NULL;
  size_t got = 0;
  if (!parse_entries(arena, rep->element[0]->element[1], &es, &got)) return unexpected(rep, "XREADGROUP", why);
  if ((st = attach(arena, rep, why)) != SC_OK) return st;
  *entries = es;
  *n = got;
  return SC_OK;
}

sc_status_t sc_redis_xack(sc_redis_t *r, const char *stream, const char *group, const char *id, sc_err_t *why) {
  if (r == NULL || stream == NULL || group == NULL || id == NULL) {
    sc_err_set(why, "redis: XACK needs a stream, a group and an id");
    return SC_INVALID_ARGUMENT;
  }
  const char *argv[4] = {"XACK", stream, group, id};
  redisReply *rep = NULL;
  sc_status_t st = run(r, 0, 4, argv, NULL, &rep, why);
  if (st != SC_OK) return st;
  if (rep->type != REDIS_REPLY_INTEGER) return unexpected(rep, "XACK", why);
  freeReplyObject(rep);
  return SC_OK;
}

/* Fills deliveries with one pipelined XPENDING per entry (XAUTOCLAIM does
 * not report counts; workers need them to dead-letter poison jobs). Best
 * effort: an entry whose count cannot be read keeps 0. Returns false when
 * the connection failed. */
static bool fill_deliveries(redisContext *c, const char *stream, const char *group, sc_redis_entry_t *es, size_t n) {
  size_t appended = 0;
  for (; appended < n; appended++) {
    const char *argv[6] = {"XPENDING", stream, group, es[appended].id, es[appended].id, "1"};
    if (redisAppendCommandArgv(c, 6, argv, NULL) != REDIS_OK) break;
  }
  for (size_t i = 0; i < appended; i++) {
    void *v = NULL;
    if (redisGetReply(c, &v) != REDIS_OK) return false;
    redisReply *rep = v;
    /* [[id, consumer, idle-ms, deliveries]] */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 && rep->element[0]->type == REDIS_REPLY_ARRAY &&
        rep->element[0]->elements == 4 && rep->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
      es[i].deliveries = rep->element[0]->element[3]->integer;
    freeReplyObject(rep);
  }
  return appended == n;
}

sc_status_t sc_redis_xautoclaim(sc_redis_t *r, sc_arena_t *arena, const char *stream, const char *group,
                                const char *consumer, int64_t min_idle_ms, size_t count, sc_redis_entry_t **entries,
                                size_t *n, sc_err_t *why) {
  if (r == NULL || arena == NULL || stream == NULL || group == NULL || consumer == NULL || entries == NULL ||
      n == NULL || count == 0 || min_idle_ms < 0) {
    sc_err_set(why, "redis: XAUTOCLAIM needs an arena, stream, group, consumer, min idle >= 0 and count >= 1");
    return SC_INVALID_ARGUMENT;
  }
  char idlebuf[24], countbuf[24];
  snprintf(idlebuf, sizeof(idlebuf), "%lld", (long long)min_idle_ms);
  snprintf(countbuf, sizeof(countbuf), "%zu", count);
  /* Always from 0-0: recovery wants the oldest stuck entries first, and a
   * caller that claims and processes them sees the next ones next time. */
  const char *argv[8] = {"XAUTOCLAIM", stream, group, consumer, idlebuf, "0-0", "COUNT", countbuf};
  redisContext *c = NULL;
  sc_status_t st = pool_get(r, &c, why);
  if (st != SC_OK) return st;
  redisReply *rep = NULL;
  st = conn_exec(r, c, r->command_ms, 8, argv, NULL, &rep, why);
  if (st != SC_OK) {
    pool_put(r, c, true);
    return st;
  }
  if (rep->type == REDIS_REPLY_ERROR) {
    set_reply_error(rep, why);
    freeReplyObject(rep);
    pool_put(r, c, false);
    return SC_INTERNAL;
  }
  /* Redis 7: [next-id, entries, deleted-ids]; 6.2: [next-id, entries]. */
  sc_redis_entry_t *es = NULL;
  size_t got = 0;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 || !parse_entries(arena, rep->element[1], &es, &got)) {
    pool_put(r, c, false);
    return unexpected(rep, "XAUTOCLAIM", why);
  }
  if ((st = attach(arena, rep, why)) != SC_OK) {
    pool_put(r, c, false);
    return st;
  }
  bool ok = fill_deliveries(c, stream, group, es, got);
  pool_put(r, c, !ok);
  *entries = es;
  *n = got;
  return SC_OK;
}

/* ---- Pub/sub ------------------------------------------------------------- */

sc_status_t sc_redis_publish(sc_redis_t *r, const char *channel, const char *msg, size_t len, sc_err_t *why) {
  if (r == NULL || channel == NULL || (msg == NULL && len > 0)) {
    sc_err_set(why, "redis: PUBLISH needs a channel and a message");
    return SC_INVALID_ARGUMENT;
  }
  const char *argv[3] = {"PUBLISH", channel, msg ? msg : ""};
  size_t lens[3] = {7, strlen(channel), len};
  redisReply *rep = NULL;
  sc_status_t st = run(r, 0, 3, argv, lens, &rep, why);
  if (st != SC_OK) return st;
  freeReplyObject(rep);
  return SC_OK;
}

/* Opens the subscription's connection and waits for SUBSCRIBE's
 * confirmation, so a message published after this returns is delivered. */
static sc_status_t sub_connect(sc_redis_sub_t *s, sc_err_t *why) {
  redisContext *c = NULL;
  sc_status_t st = conn_open(s->r, &c, why);
  if (st != SC_OK) return st;
  const char *argv[2] = {"SUBSCRIBE", s->channel};
  redisReply *rep = redisCommandArgv(c, 2, argv, NULL);
  if (rep == NULL) {
    set_io_error(s->r, c, errno, s->r->command_ms, why);
    redisFree(c);
    return SC_UNAVAILABLE;
  }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_STRING ||
      strcmp(rep->element[0]->str, "subscribe") != 0) {
    if (rep->type == REDIS_REPLY_ERROR)
      set_reply_error(rep, why);
    else
      sc_err_set(why, "redis: unexpected reply to SUBSCRIBE");
    freeReplyObject(rep);
    redisFree(c);
    return SC_INTERNAL;
  }
  freeReplyObject(rep);
  s->c = c;
  return SC_OK;
}

sc_redis_sub_t *sc_redis_subscribe(sc_redis_t *r, const char *channel, sc_err_t *err) {
  if (r == NULL || channel == NULL || *channel == '\0') {
    sc_err_set(err, "redis: SUBSCRIBE needs a channel");
    return NULL;
  }
  sc_redis_sub_t *s = calloc(1, sizeof(*s));
  if (s == NULL || (s->channel = strdup(channel)) == NULL) {
    free(s);
    sc_err_set(err, "out of memory");
    return NULL;
  }
  s->r = r;
  if (sub_connect(s, err) != SC_OK) {
    sc_redis_sub_free(s);
    return NULL;
  }
  return s;
}

static sc_status_t sub_lost(sc_redis_sub_t *s, int saved_errno, sc_err_t *why) {
  sc_err_t e = {{0}};
  set_io_error(s->r, s->c, saved_errno, s->r->command_ms, &e);
  SC_LOG_WARNF(NULL, "%s; resubscribing on the next read", e.msg);
  if (why) *why = e;
  redisFree(s->c);
  s->c = NULL;
  return SC_UNAVAILABLE;
}

sc_status_t sc_redis_sub_next(sc_redis_sub_t *s, sc_arena_t *arena, int timeout_ms, char **msg, size_t *len,
                              sc_err_t *why) {
  if (s == NULL || arena == NULL || msg == NULL || len == NULL) {
    sc_err_set(why, "redis: sub_next needs a subscription, an arena and outputs");
    return SC_INVALID_ARGUMENT;
  }
  if (s->c == NULL) {
    sc_status_t st = sub_connect(s, why);
    if (st != SC_OK) return st;
    SC_LOG_WARNF(NULL, "redis: resubscribed to a channel on %s", s->r->where);
  }
  int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  for (;;) {
    /* A read may have buffered several messages: serve those first, since
     * poll() cannot see them. */
    void *v = NULL;
    if (redisGetReplyFromReader(s->c, &v) != REDIS_OK) return sub_lost(s, 0, why);
    if (v == NULL) {
      /* Waiting in poll() rather than in a timed-out read: hiredis 0.14 marks
       * the context failed when a read times out. */
      int64_t left = deadline - now_ms();
      struct pollfd pfd = {.fd = s->c->fd, .events = POLLIN};
      int pr = poll(&pfd, 1, left > 0 ? (int)left : 0);
      if (pr < 0 && errno == EINTR) continue;
      if (pr < 0) return sub_lost(s, errno, why);
      if (pr == 0) {
        *msg = NULL;
        *len = 0;
        return SC_OK;
      }
      /* Readable: one read, bounded by the command timeout should a
       * message arrive in pieces. */
      if (redisGetReply(s->c, &v) != REDIS_OK) return sub_lost(s, errno, why);
      if (v == NULL) continue;
    }
    redisReply *rep = v;
    /* ["message", channel, payload]; other pushes (confirmations) are skipped. */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 && rep->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(rep->element[0]->str, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING) {
      const redisReply *p = rep->element[2];
      char *copy = p->len < SIZE_MAX ? sc_arena_alloc(arena, p->len + 1) : NULL;
      if (copy == NULL) {
        freeReplyObject(rep);
        sc_err_set(why, "redis: the arena is full");
        return SC_RESOURCE_EXHAUSTED;
      }
      memcpy(copy, p->str, p->len);
      copy[p->len] = '\0';
      *msg = copy;
      *len = p->len;
      freeReplyObject(rep);
      return SC_OK;
    }
    freeReplyObject(rep);
  }
}

void sc_redis_sub_free(sc_redis_sub_t *s) {
  if (s == NULL) return;
  if (s->c) redisFree(s->c);
  free(s->channel);
  free(s);
}

/* ---- Rate limiting ------------------------------------------------------- */

sc_status_t sc_redis_rate_limit(sc_redis_t *r, const char *key, int64_t limit, int64_t window_ms, sc_rate_result_t *out,
                                sc_err_t *why) {
  if (r == NULL || key == NULL || *key == '\0' || out == NULL || limit < 1 || window_ms < 1) {
    sc_err_set(why, "redis: rate limit needs a key, limit >= 1 and window >= 1 ms");
    return SC_INVALID_ARGUMENT;
  }
  char limitbuf[24], windowbuf[24], noncebuf[64], sha[SHA_HEX_LEN + 1];
  snprintf(limitbuf, sizeof(limitbuf), "%lld", (long long)limit);
  snprintf(windowbuf, sizeof(windowbuf), "%lld", (long long)window_ms);
  snprintf(noncebuf, sizeof(noncebuf), "%s.%llu", r->nonce_prefix, (unsigned long long)atomic_fetch_add(&r->nonce, 1));
  pthread_mutex_lock(&r->mu);
  memcpy(sha, r->rate_sha, sizeof(sha));
  pthread_mutex_unlock(&r->mu);

  redisContext *c = NULL;
  sc_status_t st = pool_get(r, &c, why);
  if (st != SC_OK) return st;
  redisReply *rep = NULL;
  bool broken = false;
  if (sha[0] == '\0') {
    const char *argv[3] = {"SCRIPT", "LOAD", RATE_SCRIPT};
    if ((st = conn_exec(r, c, r->command_ms, 3, argv, NULL, &rep, why)) != SC_OK) {
      broken = true;
      goto out;
    }
    if (rep->type == REDIS_REPLY_STRING && rep->len == SHA_HEX_LEN) {
      memcpy(sha, rep->str, SHA_HEX_LEN);
      sha[SHA_HEX_LEN] = '\0';
      pthread_mutex_lock(&r->mu);
      memcpy(r->rate_sha, sha, sizeof(sha));
      pthread_mutex_unlock(&r->mu);
    }
    /* Otherwise EVAL below still works, and says why if it does not. */
    freeReplyObject(rep);
    rep = NULL;
  }
  /* argv[1] is the SHA for EVALSHA or the body for EVAL. */
  const char *argv[7] = {"EVALSHA", sha, "1", key, limitbuf, windowbuf, noncebuf};
  if (sha[0] != '\0') {
    if ((st = conn_exec(r, c, r->command_ms, 7, argv, NULL, &rep, why)) != SC_OK) {
      broken = true;
      goto out;
    }
    /* The server forgets scripts on restart and SCRIPT FLUSH. EVAL caches
     * the same body under the same SHA, so later calls hit again. */
    if (error_is(rep, "NOSCRIPT")) {
      freeReplyObject(rep);
      rep = NULL;
    }
  }
  if (rep == NULL) {
    argv[0] = "EVAL";
    argv[1] = RATE_SCRIPT;
    if ((st = conn_exec(r, c, r->command_ms, 7, argv, NULL, &rep, why)) != SC_OK) {
      broken = true;
      goto out;
    }
  }
  if (rep->type == REDIS_REPLY_ERROR) {
    set_reply_error(rep, why);
    st = SC_INTERNAL;
    goto out;
  }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
    st = unexpected(rep, "the rate-limit script", why);
    rep = NULL;
    goto out;
  }
  for (size_t i = 0; i < 4; i++) {
    if (rep->element[i]->type != REDIS_REPLY_INTEGER) {
      st = unexpected(rep, "the rate-limit script", why);
      rep = NULL;
      goto out;
    }
  }
  out->allowed = rep->element[0]->integer == 1;
  out->limit = limit;
  out->remaining = rep->element[1]->integer;
  out->reset_ms = rep->element[2]->integer;
  out->retry_after_ms = rep->element[3]->integer;
  st = SC_OK;
out:
  if (rep) freeReplyObject(rep);
  pool_put(r, c, broken);
  return st;
}
