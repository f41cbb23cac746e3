// stats_workload.cpp - a program with known allocation patterns for the stats tests. It does not
// link cachealloc; stats_test.py runs it with LD_PRELOAD=libcachealloc.so and reads its segment
// with cachealloc-stats between steps.
//
// Protocol: the program writes one line to stdout at each step ("ready <pid>", "done <pid>") and
// waits for one line on stdin before going on; EOF on stdin means "exit now". Between the two
// flushes of the `pattern` mode it makes no other allocation (no stdio: read/write only), so the
// differences the driver sees are exactly the pattern below.
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>

namespace {

using FlushFn = int (*)();
using RefFn = int (*)(void*);
FlushFn g_flush;
RefFn g_retain, g_release;
using ResetFn = void (*)();
ResetFn g_reset_peak;

[[noreturn]] void fail(const char* what) {
  write(2, "FAIL: ", 6);
  write(2, what, strlen(what));
  write(2, "\n", 1);
  _exit(1);
}

void say(const char* word) {
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%s %d\n", word, static_cast<int>(getpid()));
  if (write(1, buf, static_cast<size_t>(n)) != n) fail("write to stdout");
}

// Waits for a line on stdin; false at EOF.
bool wait_line() {
  char c;
  for (;;) {
    ssize_t r = read(0, &c, 1);
    if (r <= 0) return false;
    if (c == '\n') return true;
  }
}

void flush() {
  if (g_flush() != 0) fail("ca_stats_flush failed");
}

// The pattern (stats_test.py `pattern` checks these numbers):
//   1000 x malloc(64), 300 x malloc(4096), 5 x malloc(1 MiB)      allocs  +1305
//   free 400 of the 64-byte blocks and 2 of the 1 MiB blocks       frees   +402
//   ca_retain twice and ca_release once on one live 64-byte block  retains +2, releases +1
constexpr int kSmall = 1000, kMedium = 300, kLarge = 5, kSmallFreed = 400, kLargeFreed = 2;
void* g_small[kSmall];
void* g_medium[kMedium];
void* g_large[kLarge];

int run_pattern() {
  flush();
  say("ready");
  if (!wait_line()) return 0;
  for (void*& p : g_small) p = malloc(64);
  for (void*& p : g_medium) p = malloc(4096);
  for (void*& p : g_large) p = malloc(size_t{1} << 20);
  for (int i = 0; i < kSmallFreed; ++i) free(g_small[i]);
  for (int i = 0; i < kLargeFreed; ++i) free(g_large[i]);
  void* shared = g_small[kSmall - 1];
  if (g_retain(shared) != 0 || g_retain(shared) != 0 || g_release(shared) != 0) fail("retain/release");
  flush();
  say("done");
  wait_line();
  return 0;
}

// 8 threads, each: 4000 allocations of mixed sizes (small and large), frees 3/4 of them, and
// leaves the rest for the main thread, which frees half of those after the join.
constexpr int kThreads = 8, kPerThread = 4000;
void* g_kept[kThreads][kPerThread / 4];

void* worker(void* arg) {
  int t = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  uint32_t x = 2463534242u + static_cast<uint32_t>(t);
  int kept = 0;
  for (int i = 0; i < kPerThread; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    size_t n = (i % 97 == 0) ? (300u << 10) + (x % 4096) : 1 + x % 2000;
    void* p = malloc(n);
    if (p == nullptr) fail("malloc in worker");
    memset(p, 1, n < 64 ? n : 64);
    if (i % 4 == 0) {
      g_kept[t][kept++] = p;
    } else {
      free(p);
    }
  }
  return nullptr;
}

int run_threads() {
  flush();
  say("ready");
  if (!wait_line()) return 0;
  pthread_t th[kThreads];
  for (int t = 0; t < kThreads; ++t) {
    if (pthread_create(&th[t], nullptr, worker, reinterpret_cast<void*>(static_cast<intptr_t>(t))) != 0) {
      fail("pthread_create");
    }
  }
  for (pthread_t& t : th) pthread_join(t, nullptr);
  for (auto& row : g_kept) {
    for (int i = 0; i < kPerThread / 4; i += 2) free(row[i]);
  }
  flush();
  say("done");
  wait_line();
  return 0;
}

// Idles until stdin closes (lifecycle tests). `fork`: a child that publishes its own segment.
int run_idle(bool do_fork) {
  void* keep = malloc(100);
  flush();
  if (do_fork) {
    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child == 0) {
      void* mine = malloc(200);
      flush();  // creates the child's own segment at once
      say("child");
      wait_line();
      free(mine);
      exit(0);  // exit(), not _exit(): the segment is removed by the exit handler
    }
    say("ready");
    wait_line();
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("child failed");
  } else {
    say("ready");
    wait_line();
  }
  free(keep);
  return 0;
}

// Two large allocations in quick succession, then silence (no flush, no other allocation): the
// publisher thread alone must bring them to the segment (Note [Publisher thread]).
// A second thread of the program's own, as daemons and servers have: it allocates once and then
// sleeps until the process exits. Only then may the publisher thread run (Note [No thread in a
// single-threaded process]).
// Returns once the thread has made its allocation, so that nothing changes after "ready".
void start_idle_thread() {
  static std::atomic<bool> allocated{false};
  std::thread([] {
    free(malloc(64));
    allocated.store(true, std::memory_order_release);
    for (;;) pause();
  }).detach();
  while (!allocated.load(std::memory_order_acquire)) sched_yield();
}

// A daemon between requests; `own_thread`: with a thread of its own (the usual case), else
// single-threaded (then only CACHEALLOC_STATS_THREAD=always brings a publisher thread).
int run_quiet(bool own_thread) {
  if (own_thread) start_idle_thread();
  constexpr size_t kSize = size_t{128} << 20;
  void* a = malloc(kSize);
  void* b = malloc(kSize);
  if (a == nullptr || b == nullptr) fail("malloc(128 MiB)");
  say("ready");
  wait_line();
  free(a);
  free(b);
  return 0;
}

// Single-threaded: allocates, then waits. The process must stay single-threaded.
int run_single() {
  for (int i = 0; i < 1000; ++i) free(malloc(size_t{1} << 20));
  say("ready");
  wait_line();
  return 0;
}

// 400 MiB live for an instant (4 large blocks, freed at once), then small work, all between two
// flushes: the peak must still show it. On the next line: ca_reset_peak, flush.
int run_spike() {
  flush();
  constexpr size_t kBlock = size_t{100} << 20;
  void* big[4];
  for (void*& p : big) {
    p = malloc(kBlock);
    if (p == nullptr) fail("malloc(100 MiB)");
  }
  for (void* p : big) free(p);
  for (int i = 0; i < 1000; ++i) free(malloc(4096));
  flush();
  say("ready");
  if (!wait_line()) return 0;
  g_reset_peak();
  flush();
  say("done");
  wait_line();
  return 0;
}

// Allocates and frees for about 3 s, so that --watch frames see activity in every interval: first
// 0.4 s of 1 MiB blocks (misses when run with CACHEALLOC_CACHE_BYTES=0), then 64-byte blocks (hits).
int run_busy() {
  start_idle_thread();
  say("ready");
  if (!wait_line()) return 0;
  timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  now = start;
  do {
    for (int i = 0; i < 4096; ++i) {
      bool first_half = (now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 400000000L;
      void* p = malloc(first_half ? (size_t{1} << 20) : 64);
      if (p == nullptr) fail("malloc");
      free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 3000000000L);
  say("done");
  wait_line();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  g_flush = reinterpret_cast<FlushFn>(dlsym(RTLD_DEFAULT, "ca_stats_flush"));
  g_retain = reinterpret_cast<RefFn>(dlsym(RTLD_DEFAULT, "ca_retain"));
  g_release = reinterpret_cast<RefFn>(dlsym(RTLD_DEFAULT, "ca_release"));
  g_reset_peak = reinterpret_cast<ResetFn>(dlsym(RTLD_DEFAULT, "ca_reset_peak"));
  if (g_flush == nullptr || g_retain == nullptr || g_release == nullptr || g_reset_peak == nullptr) {
    fail("ca_stats_flush not found; is libcachealloc.so preloaded?");
  }
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "pattern") == 0) return run_pattern();
  if (strcmp(mode, "threads") == 0) return run_threads();
  if (strcmp(mode, "idle") == 0) return run_idle(false);
  if (strcmp(mode, "fork") == 0) return run_idle(true);
  if (strcmp(mode, "quiet") == 0) return run_quiet(true);
  if (strcmp(mode, "quiet-single") == 0) return run_quiet(false);
  if (strcmp(mode, "single") == 0) return run_single();
  if (strcmp(mode, "spike") == 0) return run_spike();
  if (strcmp(mode, "busy") == 0) return run_busy();
  if (strcmp(mode, "noflush") == 0) {  // CACHEALLOC_STATS=0: flush must say ENOENT
    say(g_flush() == 0 ? "flushed" : "off");
    wait_line();
    return 0;
  }
  fail("usage: stats_workload pattern|threads|idle|fork|quiet|quiet-single|spike|busy|noflush");
}
