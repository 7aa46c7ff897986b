/* Replays fuzz inputs without libFuzzer: `replay_<name> FILE|DIR...` runs
 * every file through the target's LLVMFuzzerTestOneInput once. The test
 * build (gcc, ASan, UBSan) runs each target over its committed corpus and
 * its regressions, so every crash a fuzzer ever found stays fixed; `make
 * fuzz` (clang, libFuzzer) explores further. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    return -1;
  }
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap * 2);
      if (nb == NULL) break;
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  if (buf == NULL) return -1;
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 1;
}

static int run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return 0; /* no regressions yet: nothing to replay */
  if (!S_ISDIR(st.st_mode)) return run_file(path);
  DIR *d = opendir(path);
  if (d == NULL) return -1;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char child[4096];
    snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
    int r = run_path(child);
    if (r < 0) {
      closedir(d);
      return -1;
    }
    count += r;
  }
  closedir(d);
  return count;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int total = 0;
  for (int i = 1; i < argc; i++) {
    int r = run_path(argv[i]);
    if (r < 0) return 1;
    total += r;
  }
  printf("replayed %d inputs\n", total);
  return total > 0 ? 0 : 1;
}
