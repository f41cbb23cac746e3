// fork_alloc.cpp - fork while other threads allocate and free (and hold allocator locks at random
// moments). The child allocates, frees and reallocs with pattern checks, including blocks the
// parent's threads had allocated, and exits 0 only if everything checks out; a deadlock in the
// child shows up as the test's timeout (the child also arms an alarm). usage: fork_alloc [seconds]
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <mutex>
#include <thread>
#include <vector>

#include "stress_common.h"

using namespace stress;

namespace {
struct Held {
  void* p;
  size_t n;
  uint64_t tag;
};
std::mutex g_mu;
std::vector<Held> g_shared;  // blocks the parent's main thread made before forking

int child_work() {
  alarm(20);  // a deadlocked child dies instead of hanging the test
  // Blocks inherited from the parent are intact and can be freed here.
  for (const Held& h : g_shared) {
    if (!pattern::sparse_intact(h.p, h.n, h.tag)) return 2;
  }
  Rng rng(static_cast<uint64_t>(getpid()));
  std::vector<Held> mine;
  for (int i = 0; i < 3000; ++i) {
    size_t n = rng.size();
    void* p = malloc(n);
    if (p == nullptr) return 3;
    pattern::fill_sparse(p, n, i);
    mine.push_back({p, n, static_cast<uint64_t>(i)});
  }
  // A thread in the child too: thread caches work after fork.
  std::thread t([&] {
    for (int i = 0; i < 2000; ++i) {
      void* p = malloc(1 + i % 3000);
      memset(p, 1, 1 + i % 3000);
      free(p);
    }
  });
  t.join();
  for (Held& h : mine) {
    if (!pattern::sparse_intact(h.p, h.n, h.tag)) return 4;
    void* q = realloc(h.p, h.n * 2 + 1);
    if (q == nullptr || !pattern::sparse_prefix_intact(q, h.n, h.n, h.tag)) return 5;
    free(q);
  }
  for (const Held& h : g_shared) free(h.p);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  require_preload("fork_alloc");
  Deadline deadline(seconds_arg(argc, argv, 4.0));
  for (int i = 0; i < 50; ++i) {
    size_t n = 1 + i * 5000;
    void* p = malloc(n);
    pattern::fill_sparse(p, n, 1000 + i);
    g_shared.push_back({p, n, static_cast<uint64_t>(1000 + i)});
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  for (int t = 0; t < 4; ++t) {
    busy.emplace_back([&stop, t] {
      Rng rng(t + 77);
      std::vector<Held> v;
      uint64_t tag = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        size_t n = rng.size();
        void* p = malloc(n);
        pattern::fill_sparse(p, n, tag);
        v.push_back({p, n, tag++});
        if (v.size() > 300 || (rng.next() & 1)) {
          size_t k = rng.below(v.size());
          if (!pattern::sparse_intact(v[k].p, v[k].n, v[k].tag)) fail("parent thread block changed");
          free(v[k].p);
          v[k] = v.back();
          v.pop_back();
        }
      }
      for (auto& h : v) free(h.p);
    });
  }
  int forks = 0;
  while (!deadline.passed()) {
    pid_t pid = fork();
    if (pid < 0) fail("fork failed");
    if (pid == 0) _exit(child_work());
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) fail("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "child %d: %s %d\n", forks, WIFEXITED(status) ? "exit" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      fail("a forked child failed");
    }
    ++forks;
  }
  stop = true;
  for (auto& t : busy) t.join();
  for (const Held& h : g_shared) {
    if (!pattern::sparse_intact(h.p, h.n, h.tag)) fail("parent block changed");
    free(h.p);
  }
  printf("fork_alloc: %d forks while 4 threads allocated; every child passed\n", forks);
  return 0;
}
