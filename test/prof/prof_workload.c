/* prof_workload.c - programs for the heap profiling tests (prof_test.py), run under
 * LD_PRELOAD=libcachealloc.so. Built with -fno-builtin -g: every malloc is a real call, and
 * addr2line can name leak_here. Usage: prof_workload CASE [ARG]. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void* volatile g_sink;
static void** g_keep;

/* 100 MiB in 10,000 blocks of 10,486 bytes (sizes between 10,000 and 10,972). */
__attribute__((noinline)) void leak_here(void) {
  for (int i = 0; i < 10000; ++i) g_sink = malloc(10000 + (size_t)(i % 973));
}
__attribute__((noinline)) void leak_middle(void) { leak_here(); g_sink = 0; }
__attribute__((noinline)) void leak_outer(void) { leak_middle(); g_sink = 0; }

/* Traffic that is freed: it must not be reported. */
__attribute__((noinline)) void churn(int n) {
  for (int i = 0; i < n; ++i) {
    void* p = malloc(16 + (size_t)(i * 7919) % 4000);
    g_sink = p;
    free(p);
    char* q = calloc(1, 300);
    q = realloc(q, 70000);  /* moves to the large path */
    free(q);
  }
}

/* 1 GiB live of mixed sizes (16 B .. 256 KiB, log-uniform): prints the true total. */
static void mixed_1g(void) {
  uint64_t x = 88172645463325252ull, total = 0;
  size_t n = 0, cap = 1 << 20;
  g_keep = malloc(cap * sizeof(void*));
  while (total < (1ull << 30)) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    size_t size = (size_t)1 << (4 + x % 15);              /* 16 B .. 256 KiB */
    size += (size_t)((x >> 20) % size);
    g_keep[n++] = malloc(size);
    total += size;
    if (n == cap) break;
  }
  printf("allocated %llu bytes in %zu blocks\n", (unsigned long long)total, n);
}

/* Leaks made through libc functions whose result the caller owns: reported as the caller's. */
__attribute__((noinline)) void leak_libc_here(void) {
  for (int i = 0; i < 3; ++i) g_sink = strdup("a string the caller owns");
  g_sink = fopen("/dev/null", "r");
}

static void* thread_main(void* arg) {
  (void)arg;
  churn(20000);
  leak_here();
  return NULL;
}

int main(int argc, char** argv) {
  const char* c = argc > 1 ? argv[1] : "";
  if (strcmp(c, "leak") == 0) {
    leak_outer();
    churn(50000);
  } else if (strcmp(c, "none") == 0) {
    churn(argc > 2 ? atoi(argv[2]) : 200000);
  } else if (strcmp(c, "libc") == 0) {
    leak_libc_here();
  } else if (strcmp(c, "mixed") == 0) {
    mixed_1g();
  } else if (strcmp(c, "dump") == 0) {
    leak_outer();
    int (*dump)(const char*) = (int (*)(const char*))dlsym(RTLD_DEFAULT, "ca_prof_dump");
    if (dump == NULL || dump(argv[2]) != 0) return 2;
    /* A second dump over the first (truncates). */
    if (dump(argv[2]) != 0) return 3;
  } else if (strcmp(c, "serve") == 0) {
    /* Holds the leak and keeps allocating for ARG seconds: cachealloc-stats prof-dump asks it
     * for a profile meanwhile (Note [Profiles on request]). */
    leak_outer();
    int seconds = argc > 2 ? atoi(argv[2]) : 10;
    for (int i = 0; i < seconds * 50; ++i) {
      churn(2000);
      usleep(20000);
    }
  } else if (strcmp(c, "threads") == 0) {
    pthread_t t[8];
    for (int i = 0; i < 8; ++i) pthread_create(&t[i], NULL, thread_main, NULL);
    for (int i = 0; i < 8; ++i) pthread_join(t[i], NULL);
  } else if (strcmp(c, "fork") == 0) {
    pthread_t t[4];
    for (int i = 0; i < 4; ++i) pthread_create(&t[i], NULL, thread_main, NULL);
    for (int i = 0; i < 20; ++i) {
      pid_t pid = fork();
      if (pid == 0) {
        churn(2000);
        _exit(0);
      }
      int status = 0;
      if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 4;
    }
    for (int i = 0; i < 4; ++i) pthread_join(t[i], NULL);
  } else if (strcmp(c, "dlopen") == 0) {
    pthread_t t[4];
    for (int i = 0; i < 4; ++i) pthread_create(&t[i], NULL, thread_main, NULL);
    for (int i = 0; i < 50; ++i) {
      void* h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
      if (h == NULL) return 5;
      churn(100);
      dlclose(h);
    }
    for (int i = 0; i < 4; ++i) pthread_join(t[i], NULL);
  } else {
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
  }
  puts("workload done");
  return 0;
}
