// fork_with_threads.cpp - worker threads allocate and free in a loop while the main thread forks
// again and again. Each child (which may have been forked while a worker held an allocator lock)
// must be able to allocate and free small and large blocks, free blocks inherited from the
// parent, start a thread of its own, and exit 0. A child that deadlocks is killed by its own
// alarm (SIGALRM), so a hang shows up as a failure rather than a timeout.
#include "preload_support.h"

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

using namespace preload_test;

namespace {

constexpr int kWorkers = 4;
constexpr int kForks = 80;
std::atomic<bool> g_stop{false};

void worker(int id) {
  std::mt19937_64 rng(static_cast<uint64_t>(id) * 7 + 1);
  std::vector<std::pair<void*, size_t>> live;
  while (!g_stop.load(std::memory_order_relaxed)) {
    size_t n = (rng() % 16 == 0) ? (size_t{256} << 10) + rng() % (2u << 20) : 8 + rng() % 2048;
    void* p = malloc(n);
    if (p == nullptr) fail("worker malloc(%zu) failed", n);
    pattern::fill_sparse(p, n, n);
    live.emplace_back(p, n);
    if (live.size() > 64) {
      size_t i = rng() % live.size();
      if (!pattern::sparse_intact(live[i].first, live[i].second, live[i].second)) fail("worker block corrupted");
      free(live[i].first);
      live[i] = live.back();
      live.pop_back();
    }
  }
  for (auto& [p, n] : live) free(p);
}

[[noreturn]] void child(std::vector<std::pair<void*, size_t>>& inherited) {
  alarm(5);
  OwnsFn owns = find_ca_owns();
  for (auto& [p, n] : inherited) {
    if (!pattern::sparse_intact(p, n, n)) _exit(3);
    free(p);
  }
  std::vector<void*> blocks;
  for (int i = 0; i < 200; ++i) {
    size_t n = (i % 20 == 0) ? (size_t{1} << 20) + static_cast<size_t>(i) : 16 + 31 * static_cast<size_t>(i);
    void* p = malloc(n);
    if (p == nullptr || owns == nullptr || owns(p) != 1) _exit(4);
    memset(p, i, n);
    blocks.push_back(p);
  }
  for (void* p : blocks) free(p);
  std::thread t([] {
    for (int i = 0; i < 100; ++i) {
      void* p = malloc(static_cast<size_t>(i) * 100 + 1);
      if (p == nullptr) _exit(5);
      free(p);
    }
    void* big = malloc(4 << 20);
    if (big == nullptr) _exit(5);
    free(big);
  });
  t.join();
  _exit(0);
}

}  // namespace

int main() {
  require_cachealloc("fork_with_threads");
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; ++i) workers.emplace_back(worker, i);

  int bad = 0;
  for (int f = 0; f < kForks; ++f) {
    // Blocks the child inherits and frees; the parent frees its own copies.
    std::vector<std::pair<void*, size_t>> inherited;
    for (size_t n : {size_t{40}, size_t{5000}, size_t{3} << 20}) {
      void* p = malloc(n);
      if (p == nullptr) fail("malloc before fork failed");
      pattern::fill_sparse(p, n, n);
      inherited.emplace_back(p, n);
    }
    fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) fail("fork failed");
    if (pid == 0) child(inherited);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) fail("waitpid failed");
    if (WIFSIGNALED(status)) {
      fprintf(stderr, "fork %d: child killed by signal %d (%s)\n", f, WTERMSIG(status),
              WTERMSIG(status) == SIGALRM ? "deadlock: alarm fired" : strsignal(WTERMSIG(status)));
      ++bad;
    } else if (WEXITSTATUS(status) != 0) {
      fprintf(stderr, "fork %d: child exited with %d\n", f, WEXITSTATUS(status));
      ++bad;
    }
    for (auto& [p, n] : inherited) free(p);
    if (bad >= 3) break;  // enough evidence; do not wait out every child's alarm
  }
  g_stop = true;
  for (auto& t : workers) t.join();
  if (bad) fail("%d forked children failed (stopped after 3)", bad);
  printf("fork_with_threads: %d children forked under %d busy threads, all exited 0\n", kForks,
         kWorkers);
  return 0;
}
