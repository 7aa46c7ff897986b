/* scale-bench-parse FILE: the statement parser's throughput on one core,
 * with no database: reads FILE into memory, parses it (detection, dates,
 * amounts, every row through the callback) several times, prints MB/s. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "statement.h"

static int count_row(void *ctx, int32_t line, const ingest_row_t *row, const char *reason) {
  (void)line, (void)reason;
  long long *n = ctx;
  if (row != NULL)
    n[0]++;
  else
    n[1]++;
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: scale-bench-parse FILE\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (f == NULL) {
    perror(argv[1]);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *data = malloc((size_t)size);
  if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
    fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  fclose(f);
  ingest_opts_t opts = {.default_currency = "INR"};
  double best = 1e9;
  long long counts[2] = {0, 0};
  for (int run = 0; run < 3; run++) {
    sc_arena_t *arena = sc_arena_new(0);
    ingest_result_t res = {0};
    sc_err_t err = {{0}};
    counts[0] = counts[1] = 0;
    double t0 = now_s();
    sc_status_t st = ingest_parse_csv(data, (size_t)size, &opts, arena, count_row, counts, &res, &err);
    double dt = now_s() - t0;
    sc_arena_free(arena);
    if (st != SC_OK) {
      fprintf(stderr, "parse failed: %s\n", err.msg);
      return 1;
    }
    if (dt < best) best = dt;
  }
  printf("parse only: %.1f MB in %.3f s = %.0f MB/s on one core (%lld rows, %lld rejected; target >= 200 MB/s)\n",
         (double)size / 1e6, best, (double)size / 1e6 / best, counts[0], counts[1]);
  free(data);
  return 0;
}
