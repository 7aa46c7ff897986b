/* Against a real Redis: the binary runs under tests/with-stack.sh, which
 * exports SCALE_REDIS_URL and SCALE_TEST_STACK_DIR (so a test can stop and
 * restart the server). Criterion forks per test; keys carry the pid. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scale/redis.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#ifndef SCALE_SOURCE_DIR
#error "SCALE_SOURCE_DIR must name the repository root"
#endif

static const char *url(void) {
  const char *u = getenv("SCALE_REDIS_URL");
  cr_assert(u != NULL && *u != '\0', "SCALE_REDIS_URL is not set: run this binary under tests/with-stack.sh");
  return u;
}

/* The binaries ignore SIGPIPE (sc_process_block_signals); so must we, since
 * a write to a socket Redis closed would otherwise kill the test. */
static void setup(void) { signal(SIGPIPE, SIG_IGN); }

/* LeakSanitizer reports at the worker's exit, after Criterion has recorded a
 * pass, and assertions in .fini do not fail a test: a leak crashes the
 * worker instead, which Criterion does count. */
static void teardown(void) {
#if defined(__SANITIZE_ADDRESS__)
  if (__lsan_do_recoverable_leak_check() != 0) abort();
#endif
}

TestSuite(redis, .init = setup, .fini = teardown);

static sc_redis_t *client_opts(const char *u, int max_conns, int command_ms) {
  sc_redis_opts_t o = {.url = u, .max_conns = max_conns, .command_timeout_ms = command_ms};
  sc_err_t err = {{0}};
  sc_redis_t *r = sc_redis_new(&o, &err);
  cr_assert_not_null(r, "sc_redis_new: %s", err.msg);
  return r;
}

static sc_redis_t *client(void) { return client_opts(url(), 0, 0); }

static const char *key(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "test:%s:%d", name, (int)getpid());
  return buf;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static long long integer_cmd(sc_redis_t *r, int argc, const char **argv) {
  redisReply *rep = NULL;
  sc_err_t why = {{0}};
  cr_assert_eq(sc_redis_cmd(r, NULL, &rep, &why, argc, argv, NULL), SC_OK, "%s: %s", argv[0], why.msg);
  cr_assert_eq(rep->type, REDIS_REPLY_INTEGER, "%s did not answer an integer", argv[0]);
  long long v = rep->integer;
  freeReplyObject(rep);
  return v;
}

/* ---- commands ------------------------------------------------------------ */

Test(redis, binary_safe_set_get_with_arena_owned_reply) {
  sc_redis_t *r = client();
  sc_arena_t *a = sc_arena_new(0);
  char k[96];
  key(k, sizeof(k), "bin");
  static const char val[] = "a\0b\r\n\xff\x00z";
  const size_t vlen = sizeof(val) - 1;
  const char *set[3] = {"SET", k, val};
  size_t setlen[3] = {3, strlen(k), vlen};
  sc_err_t why = {{0}};
  cr_assert_eq(sc_redis_cmd(r, NULL, NULL, &why, 3, set, setlen), SC_OK, "%s", why.msg);

  const char *get[2] = {"GET", k};
  redisReply *rep = NULL;
  cr_assert_eq(sc_redis_cmd(r, a, &rep, &why, 2, get, NULL), SC_OK, "%s", why.msg);
  cr_assert_eq(rep->type, REDIS_REPLY_STRING);
  cr_assert_eq(rep->len, vlen);
  cr_assert_eq(memcmp(rep->str, val, vlen), 0);

  /* A reply without an arena is the caller's to free (ASan checks both). */
  redisReply *own = NULL;
  cr_assert_eq(sc_redis_cmd(r, NULL, &own, &why, 2, get, NULL), SC_OK, "%s", why.msg);
  cr_assert_eq(own->len, vlen);
  freeReplyObject(own);

  cr_assert_eq(sc_redis_ping(r, &why), SC_OK, "%s", why.msg);
  sc_arena_free(a);
  sc_redis_free(r);
}

Test(redis, error_reply_is_internal_with_its_text) {
  sc_redis_t *r = client();
  char k[96];
  key(k, sizeof(k), "err");
  const char *set[3] = {"SET", k, "not-a-number"};
  sc_err_t why = {{0}};
  cr_assert_eq(sc_redis_cmd(r, NULL, NULL, &why, 3, set, NULL), SC_OK, "%s", why.msg);
  const char *incr[2] = {"INCR", k};
  redisReply *rep = NULL;
  sc_arena_t *a = sc_arena_new(0);
  cr_assert_eq(sc_redis_cmd(r, a, &rep, &why, 2, incr, NULL), SC_INTERNAL);
  cr_assert_not_null(strstr(why.msg, "not an integer"), "why: %s", why.msg);
  cr_assert_null(rep, "a failed command must not hand out a reply");

  const char *bogus[1] = {"NOSUCHCOMMAND"};
  cr_assert_eq(sc_redis_cmd(r, NULL, NULL, NULL, 1, bogus, NULL), SC_INTERNAL, "why may be NULL");
  /* The connection is still good after error replies. */
  cr_assert_eq(sc_redis_ping(r, &why), SC_OK, "%s", why.msg);
  sc_arena_free(a);
  sc_redis_free(r);
}

Test(redis, command_timeout_is_unavailable_and_the_client_recovers) {
  /* BLPOP waits 5 s on the server; the client gives up after 300 ms. */
  sc_redis_t *r = client_opts(url(), 2, 300);
  char k[96];
  key(k, sizeof(k), "blpop");
  const char *blpop[3] = {"BLPOP", k, "5"};
  sc_err_t why = {{0}};
  double t0 = now_s();
  cr_assert_eq(sc_redis_cmd(r, NULL, NULL, &why, 3, blpop, NULL), SC_UNAVAILABLE);
  double dt = now_s() - t0;
  cr_assert(dt >= 0.25 && dt < 2.0, "took %.3f s", dt);
  cr_assert_not_null(strstr(why.msg, "redis unreachable"), "why: %s", why.msg);
  cr_assert_eq(sc_redis_ping(r, &why), SC_OK, "%s", why.msg);
  sc_redis_free(r);
}

struct incr_arg {
  sc_redis_t *r;
  const char *key;
  int n;
  int failures;
};

static void *incr_thread(void *p) {
  struct incr_arg *a = p;
  const char *argv[2] = {"INCR", a->key};
  for (int i = 0; i < a->n; i++)
    if (sc_redis_cmd(a->r, NULL, NULL, NULL, 2, argv, NULL) != SC_OK) a->failures++;
  return NULL;
}

Test(redis, pool_serves_more_threads_than_connections) {
  sc_redis_t *r = client_opts(url(), 2, 0);
  char k[96];
  key(k, sizeof(k), "pool");
  pthread_t t[6];
  struct incr_arg args[6];
  for (int i = 0; i < 6; i++) {
    args[i] = (struct incr_arg){r, k, 100, 0};
    pthread_create(&t[i], NULL, incr_thread, &args[i]);
  }
  for (int i = 0; i < 6; i++) {
    pthread_join(t[i], NULL);
    cr_assert_eq(args[i].failures, 0);
  }
  const char *get[2] = {"GET", k};
  redisReply *rep = NULL;
  cr_assert_eq(sc_redis_cmd(r, NULL, &rep, NULL, 2, get, NULL), SC_OK);
  cr_assert_str_eq(rep->str, "600");
  freeReplyObject(rep);
  sc_redis_free(r);
}

Test(redis, url_with_acl_user_password_and_db) {
  sc_redis_t *admin = client();
  char user[64], pass[64];
  snprintf(user, sizeof(user), "scale-test-%d", (int)getpid());
  snprintf(pass, sizeof(pass), "p@ss/%d", (int)getpid()); /* raw '@' and '/' in the password */
  char grant[80];
  snprintf(grant, sizeof(grant), ">%s", pass);
  const char *setuser[7] = {"ACL", "SETUSER", user, "on", grant, "~*", "+@all"};
  sc_err_t why = {{0}};
  cr_assert_eq(sc_redis_cmd(admin, NULL, NULL, &why, 7, setuser, NULL), SC_OK, "%s", why.msg);

  const char *base = strstr(url(), "://") + 3; /* host:port/db */
  const char *slash = strchr(base, '/');
  int hostlen = slash ? (int)(slash - base) : (int)strlen(base);
  char u[256];
  snprintf(u, sizeof(u), "redis://%s:%s@%.*s/3", user, pass, hostlen, base);
  sc_redis_t *r = client_opts(u, 0, 0);
  char k[96];
  key(k, sizeof(k), "db3");
  const char *set[3] = {"SET", k, "x"};
  cr_assert_eq(sc_redis_cmd(r, NULL, NULL, &why, 3, set, NULL), SC_OK, "%s", why.msg);
  const char *exists[2] = {"EXISTS", k};
  cr_assert_eq(integer_cmd(r, 2, exists), 1);
  cr_assert_eq(integer_cmd(admin, 2, exists), 0, "the key went to db 3, not the admin's db");

  snprintf(u, sizeof(u), "redis://%s:wrong-secret@%.*s/3", user, hostlen, base);
  sc_redis_t *bad = client_opts(u, 0, 0);
  cr_assert_neq(sc_redis_ping(bad, &why), SC_OK);
  cr_assert_null(strstr(why.msg, "wrong-secret"), "why echoes the password: %s", why.msg);

  const char *deluser[3] = {"ACL", "DELUSER", user};
  cr_assert_eq(sc_redis_cmd(admin, NULL, NULL, &why, 3, deluser, NULL), SC_OK, "%s", why.msg);
  sc_redis_free(bad);
  sc_redis_free(r);
  sc_redis_free(admin);
}

Test(redis, bad_urls_fail_without_echoing_the_password) {
  static const char *const bad[] = {
      "",
      "http://:s3cret@127.0.0.1:6379",
      "rediss://:s3cret@127.0.0.1:6379",
      "redis://:s3cret@:6379",
      "redis://:s3cret@127.0.0.1:notaport",
      "redis://:s3cret@127.0.0.1:0",
      "redis://:s3cret@127.0.0.1:65536",
      "redis://:s3cret@127.0.0.1:6379/notadb",
      "redis://:s3cret@127.0.0.1:6379/0?x=1",
      "redis://s3cret@127.0.0.1:6379",
      "redis://:s3cret%zz@127.0.0.1:6379",
      "redis://:s3cret@[::1:6379",
      "unix://:s3cret@relative/path",
      "unix://:s3cret@/tmp/redis.sock?db=x",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    sc_redis_opts_t o = {.url = bad[i]};
    sc_err_t err = {{0}};
    sc_redis_t *r = sc_redis_new(&o, &err);
    cr_assert_null(r, "accepted %s", bad[i]);
    cr_assert_neq(err.msg[0], '\0', "no message for %s", bad[i]);
    cr_assert_null(strstr(err.msg, "s3cret"), "message echoes the password: %s", err.msg);
  }
  sc_redis_opts_t none = {.url = NULL};
  sc_err_t err = {{0}};
  cr_assert_null(sc_redis_new(&none, &err));

  static const char *const good[] = {
      "redis://127.0.0.1:6379",           "redis://localhost", "redis://:pw@localhost:1/2",
      "redis://user:p%40ss@[::1]:6379/0", "REDIS://host/",     "unix:///tmp/redis.sock",
      "unix://:pw@/tmp/redis.sock?db=4",
  };
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    sc_redis_opts_t o = {.url = good[i]};
    sc_redis_t *r = sc_redis_new(&o, &err);
    cr_assert_not_null(r, "rejected %s: %s", good[i], err.msg);
    sc_redis_free(r);
  }
  sc_redis_free(NULL);
}

Test(redis, unreachable_port_is_unavailable_promptly) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  socklen_t sl = sizeof(sa);
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  close(fd); /* nothing listens there now */
  char u[64];
  snprintf(u, sizeof(u), "redis://127.0.0.1:%d/0", ntohs(sa.sin_port));
  sc_redis_t *r = client_opts(u, 0, 0);
  sc_err_t why = {{0}};
  double t0 = now_s();
  cr_assert_eq(sc_redis_ping(r, &why), SC_UNAVAILABLE);
  cr_assert_lt(now_s() - t0, 3.0);
  cr_assert_eq(strncmp(why.msg, "redis unreachable", 17), 0, "why: %s", why.msg);
  cr_assert_eq(sc_redis_ping(r, &why), SC_UNAVAILABLE, "and again, no hang");
  sc_redis_free(r);
}

/* ---- streams ------------------------------------------------------------- */

static const char *field(const sc_redis_entry_t *e, const char *name) {
  for (size_t i = 0; i < e->n_fields; i++)
    if (strcmp(e->fields[i].name, name) == 0) return e->fields[i].value;
  return NULL;
}

Test(redis, stream_group_read_ack_and_autoclaim) {
  sc_redis_t *r = client();
  sc_arena_t *a = sc_arena_new(0);
  char s[96];
  key(s, sizeof(s), "jobs");
  sc_err_t why = {{0}};
  cr_assert_eq(sc_redis_group_create(r, s, "workers", &why), SC_OK, "%s", why.msg);
  cr_assert_eq(sc_redis_group_create(r, s, "workers", &why), SC_OK, "an existing group is success: %s", why.msg);

  char ids[3][48];
  static const char payload[] = {'b', 0, 'n'};
  for (int i = 0; i < 3; i++) {
    char num[8];
    snprintf(num, sizeof(num), "%d", i);
    sc_redis_field_t f[2] = {{"job", num, strlen(num)}, {"body", payload, sizeof(payload)}};
    cr_assert_eq(sc_redis_xadd(r, s, 1000, f, 2, ids[i], &why), SC_OK, "%s", why.msg);
    cr_assert(strchr(ids[i], '-') != NULL, "id %s", ids[i]);
  }

  sc_redis_entry_t *es = NULL;
  size_t n = 0;
  cr_assert_eq(sc_redis_xreadgroup(r, a, s, "workers", "A", 2, 0, &es, &n, &why), SC_OK, "%s", why.msg);
  cr_assert_eq(n, 2);
  for (size_t i = 0; i < 2; i++) {
    cr_assert_str_eq(es[i].id, ids[i]);
    cr_assert_eq(es[i].n_fields, 2);
    char num[8];
    snprintf(num, sizeof(num), "%zu", i);
    cr_assert_str_eq(field(&es[i], "job"), num);
    cr_assert_eq(es[i].fields[1].value_len, sizeof(payload));
    cr_assert_eq(memcmp(es[i].fields[1].value, payload, sizeof(payload)), 0);
  }
  cr_assert_eq(sc_redis_xack(r, s, "workers", es[0].id, &why), SC_OK, "%s", why.msg);

  /* A "crashed": B recovers the unacknowledged entry, fields intact. */
  sc_redis_entry_t *claimed = NULL;
  size_t nc = 0;
  cr_assert_eq(sc_redis_xautoclaim(r, a, s, "workers", "B", 0, 10, &claimed, &nc, &why), SC_OK, "%s", why.msg);
  cr_assert_eq(nc, 1);
  cr_assert_str_eq(claimed[0].id, ids[1]);
  cr_assert_str_eq(field(&claimed[0], "job"), "1");
  cr_assert_eq(claimed[0].fields[1].value_len, sizeof(payload));
  cr_assert_eq(claimed[0].deliveries, 2, "read by A, claimed by B");

  /* B's own new read gets the third; nothing idle long enough to claim. */
  cr_assert_eq(sc_redis_xreadgroup(r, a, s, "workers", "B", 10, 0, &es, &n, &why), SC_OK, "%s", why.msg);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(es[0].id, ids[2]);
  cr_assert_eq(sc_redis_xautoclaim(r, a, s, "workers", "C", 60000, 10, &claimed, &nc, &why), SC_OK, "%s", why.msg);
  cr_assert_eq(nc, 0);

  cr_assert_eq(sc_redis_xack(r, s, "workers", ids[1], &why), SC_OK);
  cr_assert_eq(sc_redis_xack(r, s, "workers", ids[2], &why), SC_OK);
  const char *pending[3] = {"XPENDING", s, "workers"};
  redisReply *rep = NULL;
  cr_assert_eq(sc_redis_cmd(r, a, &rep, &why, 3, pending, NULL), SC_OK, "%s", why.msg);
  cr_assert_eq(rep->element[0]->integer, 0, "everything acknowledged");

  cr_assert_eq(sc_redis_xreadgroup(r, a, "no-such-stream-ever", "workers", "A", 1, 0, &es, &n, &why), SC_INTERNAL);
  cr_assert_not_null(strstr(why.msg, "NOGROUP"), "why: %s", why.msg);
  sc_arena_free(a);
  sc_redis_free(r);
}

Test(redis, blocking_read_times_out_with_no_entries) {
  /* The block (800 ms) is longer than the command timeout (300 ms): the
   * read timeout must be widened for the call. */
  sc_redis_t *r = client_opts(url(), 0, 300);
  sc_arena_t *a = sc_arena_new(0);
  char s[96];
  key(s, sizeof(s), "idle");
  sc_err_t why = {{0}};
  cr_assert_eq(sc_redis_group_create(r, s, "g", &why), SC_OK, "%s", why.msg);
  sc_redis_entry_t *es = NULL;
  size_t n = 99;
  double t0 = now_s();
  cr_assert_eq(sc_redis_xreadgroup(r, a, s, "g", "c", 10, 800, &es, &n, &why), SC_OK, "%s", why.msg);
  double dt = now_s() - t0;
  cr_assert_eq(n, 0);
  cr_assert_not_null(es);
  cr_assert(dt >= 0.75 && dt < 2.5, "blocked %.3f s", dt);
  /* The connection went back with the normal timeout: a plain command works. */
  cr_assert_eq(sc_redis_ping(r, &why), SC_OK, "%s", why.msg);
  sc_arena_free(a);
  sc_redis_free(r);
}

struct late_add {
  sc_redis_t *r;
  const char *stream;
};

static void *add_later(void *p) {
  struct late_add *l = p;
  sleep_ms(200);
  sc_redis_field_t f = {"k", "v", 1};
  sc_redis_xadd(l->r, l->stream, 0, &f, 1, NULL, NULL);
  return NULL;
}

Test(redis, blocking_read_wakes_on_a_new_entry) {
  sc_redis_t *r = client();
  sc_arena_t *a = sc_arena_new(0);
  char s[96];
  key(s, sizeof(s), "wake");
  sc_err_t why = {{0}};
  cr_assert_eq(sc_redis_group_create(r, s, "g", &why), SC_OK, "%s", why.msg);
  struct late_add l = {r, s};
  pthread_t t;
  pthread_create(&t, NULL, add_later, &l);
  sc_redis_entry_t *es = NULL;
  size_t n = 0;
  double t0 = now_s();
  cr_assert_eq(sc_redis_xreadgroup(r, a, s, "g", "c", 10, 5000, &es, &n, &why), SC_OK, "%s", why.msg);
  pthread_join(t, NULL);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(field(&es[0], "k"), "v");
  cr_assert_lt(now_s() - t0, 3.0);
  sc_arena_free(a);
  sc_redis_free(r);
}

Test(redis, xadd_maxlen_trims_approximately) {
  sc_redis_t *r = client();
  char s[96];
  key(s, sizeof(s), "trim");
  sc_err_t why = {{0}};
  for (int i = 0; i < 600; i++) {
    sc_redis_field_t f = {"i", "x", 1};
    cr_assert_eq(sc_redis_xadd(r, s, 10, &f, 1, NULL, &why), SC_OK, "%s", why.msg);
  }
  const char *xlen[2] = {"XLEN", s};
  long long len = integer_cmd(r, 2, xlen);
  /* "~" trims whole nodes (stream-node-max-entries, 100 by default). */
  cr_assert(len >= 10 && len <= 110, "XLEN %lld after 600 adds with MAXLEN ~ 10", len);
  sc_redis_free(r);
}

/* ---- pub/sub ------------------------------------------------------------- */

struct sub_arg {
  sc_redis_sub_t *sub;
  sc_status_t st;
  char got[64];
  size_t len;
};

static void *sub_thread(void *p) {
  struct sub_arg *s = p;
  sc_arena_t *a = sc_arena_new(0);
  char *msg = NULL;
  s->st = sc_redis_sub_next(s->sub, a, 5000, &msg, &s->len, NULL);
  if (msg != NULL && s->len < sizeof(s->got)) memcpy(s->got, msg, s->len + 1);
  sc_arena_free(a);
  return NULL;
}

Test(redis, subscriber_thread_receives_a_message) {
  sc_redis_t *r = client();
  char ch[96];
  key(ch, sizeof(ch), "events");
  sc_err_t why = {{0}};
  sc_redis_sub_t *sub = sc_redis_subscribe(r, ch, &why);
  cr_assert_not_null(sub, "%s", why.msg);
  struct sub_arg arg = {sub, SC_UNKNOWN, {0}, 0};
  pthread_t t;
  pthread_create(&t, NULL, sub_thread, &arg);
  static const char m[] = "hello\0world";
  cr_assert_eq(sc_redis_publish(r, ch, m, sizeof(m) - 1, &why), SC_OK, "%s", why.msg);
  pthread_join(t, NULL);
  cr_assert_eq(arg.st, SC_OK);
  cr_assert_eq(arg.len, sizeof(m) - 1);
  cr_assert_eq(memcmp(arg.got, m, sizeof(m)), 0, "payload and its NUL terminator");
  sc_redis_sub_free(sub);
  sc_redis_free(r);
}

Test(redis, sub_next_timeout_leaves_the_subscription_working) {
  sc_redis_t *r = client();
  sc_arena_t *a = sc_arena_new(0);
  char ch[96];
  key(ch, sizeof(ch), "quiet");
  sc_err_t why = {{0}};
  sc_redis_sub_t *sub = sc_redis_subscribe(r, ch, &why);
  cr_assert_not_null(sub, "%s", why.msg);
  char *msg = (char *)"sentinel";
  size_t len = 99;
  double t0 = now_s();
  cr_assert_eq(sc_redis_sub_next(sub, a, 300, &msg, &len, &why), SC_OK, "%s", why.msg);
  double dt = now_s() - t0;
  cr_assert_null(msg);
  cr_assert(dt >= 0.25 && dt < 2.0, "waited %.3f s", dt);
  cr_assert_eq(sc_redis_sub_next(sub, a, 0, &msg, &len, &why), SC_OK, "a zero wait polls");
  cr_assert_null(msg);

  /* Two messages at once: the second may already sit in hiredis's buffer. */
  cr_assert_eq(sc_redis_publish(r, ch, "one", 3, &why), SC_OK, "%s", why.msg);
  cr_assert_eq(sc_redis_publish(r, ch, "two", 3, &why), SC_OK, "%s", why.msg);
  cr_assert_eq(sc_redis_sub_next(sub, a, 2000, &msg, &len, &why), SC_OK, "%s", why.msg);
  cr_assert_str_eq(msg, "one");
  cr_assert_eq(sc_redis_sub_next(sub, a, 2000, &msg, &len, &why), SC_OK, "%s", why.msg);
  cr_assert_str_eq(msg, "two");
  cr_assert_eq(len, 3);
  sc_redis_sub_free(sub);
  sc_arena_free(a);
  sc_redis_free(r);
}

/* ---- rate limit ---------------------------------------------------------- */

Test(redis, rate_limit_counts_down_refuses_and_recovers) {
  sc_redis_t *r = client();
  char k[96];
  key(k, sizeof(k), "rl");
  sc_err_t why = {{0}};
  sc_rate_result_t res;
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(sc_redis_rate_limit(r, k, 5, 1000, &res, &why), SC_OK, "%s", why.msg);
    cr_assert(res.allowed, "request %d refused", i + 1);
    cr_assert_eq(res.limit, 5);
    cr_assert_eq(res.remaining, 4 - i);
    cr_assert_eq(res.retry_after_ms, 0);
    cr_assert(res.reset_ms > 0 && res.reset_ms <= 1000, "reset %lld", (long long)res.reset_ms);
  }
  cr_assert_eq(sc_redis_rate_limit(r, k, 5, 1000, &res, &why), SC_OK, "%s", why.msg);
  cr_assert_not(res.allowed, "the 6th request in the window was allowed");
  cr_assert_eq(res.remaining, 0);
  cr_assert(res.retry_after_ms > 0 && res.retry_after_ms <= 1000, "retry after %lld", (long long)res.retry_after_ms);

  sleep_ms(1100);
  cr_assert_eq(sc_redis_rate_limit(r, k, 5, 1000, &res, &why), SC_OK, "%s", why.msg);
  cr_assert(res.allowed, "still refused after the window passed");
  cr_assert_eq(res.remaining, 4, "refused requests do not use up the window");
  const char *pttl[2] = {"PTTL", k};
  long long ttl = integer_cmd(r, 2, pttl);
  cr_assert(ttl > 0 && ttl <= 1000, "the key expires with the window (PTTL %lld)", ttl);

  cr_assert_eq(sc_redis_rate_limit(r, k, 0, 1000, &res, &why), SC_INVALID_ARGUMENT);
  sc_redis_free(r);
}

struct rl_arg {
  sc_redis_t *r;
  const char *key;
  int allowed, errors;
};

static void *hammer(void *p) {
  struct rl_arg *a = p;
  for (int i = 0; i < 150; i++) {
    sc_rate_result_t res;
    if (sc_redis_rate_limit(a->r, a->key, 40, 60000, &res, NULL) != SC_OK)
      a->errors++;
    else if (res.allowed)
      a->allowed++;
  }
  return NULL;
}

Test(redis, rate_limit_is_atomic_across_threads_and_clients) {
  /* Two clients stand for two processes; two threads each. */
  sc_redis_t *r1 = client(), *r2 = client();
  char k[96];
  key(k, sizeof(k), "rl-race");
  struct rl_arg args[4] = {{r1, k, 0, 0}, {r1, k, 0, 0}, {r2, k, 0, 0}, {r2, k, 0, 0}};
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, hammer, &args[i]);
  int total = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    cr_assert_eq(args[i].errors, 0);
    total += args[i].allowed;
  }
  cr_assert_eq(total, 40, "%d of 600 requests allowed with a limit of 40", total);
  const char *zcard[2] = {"ZCARD", k};
  cr_assert_eq(integer_cmd(r1, 2, zcard), 40, "one member per allowed request");
  sc_redis_free(r1);
  sc_redis_free(r2);
}

Test(redis, rate_limit_survives_script_flush) {
  sc_redis_t *r = client();
  char k[96];
  key(k, sizeof(k), "rl-flush");
  sc_err_t why = {{0}};
  sc_rate_result_t res;
  cr_assert_eq(sc_redis_rate_limit(r, k, 3, 10000, &res, &why), SC_OK, "%s", why.msg);
  cr_assert(res.allowed);
  const char *flush[2] = {"SCRIPT", "FLUSH"};
  cr_assert_eq(sc_redis_cmd(r, NULL, NULL, &why, 2, flush, NULL), SC_OK, "%s", why.msg);
  cr_assert_eq(sc_redis_rate_limit(r, k, 3, 10000, &res, &why), SC_OK, "NOSCRIPT fallback: %s", why.msg);
  cr_assert(res.allowed);
  cr_assert_eq(res.remaining, 1, "the window kept counting across the flush");
  cr_assert_eq(sc_redis_rate_limit(r, k, 3, 10000, &res, &why), SC_OK, "%s", why.msg);
  cr_assert_eq(res.remaining, 0);
  sc_redis_free(r);
}

/* ---- reconnect ----------------------------------------------------------- */

static void stack(const char *verb) {
  const char *dir = getenv("SCALE_TEST_STACK_DIR");
  cr_assert_not_null(dir, "SCALE_TEST_STACK_DIR is not set: run this binary under tests/with-stack.sh");
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    if (strcmp(verb, "start") == 0)
      execl(SCALE_SOURCE_DIR "/scripts/stack.sh", "stack.sh", "start", dir, "--ephemeral", (char *)NULL);
    else
      execl(SCALE_SOURCE_DIR "/scripts/stack.sh", "stack.sh", verb, dir, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "scripts/stack.sh %s failed", verb);
}

Test(redis, stopped_redis_is_unavailable_promptly_and_the_client_recovers, .timeout = 240) {
  sc_redis_t *r = client();
  sc_arena_t *a = sc_arena_new(0);
  char ch[96], s[96], rl[96];
  key(ch, sizeof(ch), "restart");
  key(s, sizeof(s), "restart-stream");
  key(rl, sizeof(rl), "restart-rl");
  sc_err_t why = {{0}};
  cr_assert_eq(sc_redis_ping(r, &why), SC_OK, "%s", why.msg);
  sc_redis_sub_t *sub = sc_redis_subscribe(r, ch, &why);
  cr_assert_not_null(sub, "%s", why.msg);

  stack("stop");
  double t0 = now_s();
  cr_assert_eq(sc_redis_ping(r, &why), SC_UNAVAILABLE, "ping with Redis stopped");
  cr_assert_not_null(strstr(why.msg, "redis unreachable"), "why: %s", why.msg);
  sc_redis_field_t f = {"k", "v", 1};
  cr_assert_eq(sc_redis_xadd(r, s, 0, &f, 1, NULL, &why), SC_UNAVAILABLE);
  sc_rate_result_t res;
  cr_assert_eq(sc_redis_rate_limit(r, rl, 1, 1000, &res, &why), SC_UNAVAILABLE);
  cr_assert_eq(sc_redis_publish(r, ch, "x", 1, &why), SC_UNAVAILABLE);
  cr_assert_lt(now_s() - t0, 3.0, "commands hung with Redis down");
  char *msg = NULL;
  size_t len = 0;
  cr_assert_eq(sc_redis_sub_next(sub, a, 1000, &msg, &len, &why), SC_UNAVAILABLE, "the subscription noticed");
  cr_assert_eq(sc_redis_sub_next(sub, a, 1000, &msg, &len, &why), SC_UNAVAILABLE, "still down");

  stack("start");
  cr_assert_eq(sc_redis_ping(r, &why), SC_OK, "the same client after a restart: %s", why.msg);
  /* The script cache is gone with the restart: EVALSHA falls back to EVAL. */
  cr_assert_eq(sc_redis_rate_limit(r, rl, 1, 1000, &res, &why), SC_OK, "%s", why.msg);
  cr_assert(res.allowed);
  cr_assert_eq(sc_redis_sub_next(sub, a, 200, &msg, &len, &why), SC_OK, "resubscribed: %s", why.msg);
  cr_assert_null(msg);
  cr_assert_eq(sc_redis_publish(r, ch, "back", 4, &why), SC_OK, "%s", why.msg);
  cr_assert_eq(sc_redis_sub_next(sub, a, 2000, &msg, &len, &why), SC_OK, "%s", why.msg);
  cr_assert_str_eq(msg, "back");

  /* Restarted while idle: pooled connections the server closed are not
   * handed out, so the first command afterwards already succeeds. */
  stack("stop");
  stack("start");
  cr_assert_eq(sc_redis_ping(r, &why), SC_OK, "first command after an idle restart: %s", why.msg);
  cr_assert_eq(sc_redis_xadd(r, s, 0, &f, 1, NULL, &why), SC_OK, "%s", why.msg);

  sc_redis_sub_free(sub);
  sc_arena_free(a);
  sc_redis_free(r);
}
