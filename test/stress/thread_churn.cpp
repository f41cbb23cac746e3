// thread_churn.cpp - waves of short-lived threads: each allocates, frees part of its blocks, and
// leaves the rest to be verified and freed by the main thread after it exited (its thread cache
// must have been flushed without losing or double-handing any block). Some threads exit while
// holding nothing; some never allocate. usage: thread_churn [seconds]
#include <mutex>
#include <thread>
#include <vector>

#include "stress_common.h"

using namespace stress;

namespace {
struct Left {
  void* p;
  size_t n;
  uint64_t tag;
};
std::mutex g_mu;
std::vector<Left> g_left;
}  // namespace

int main(int argc, char** argv) {
  require_preload("thread_churn");
  Deadline deadline(seconds_arg(argc, argv, 4.0));
  uint64_t threads_run = 0, wave = 0;
  while (!deadline.passed()) {
    std::vector<std::thread> ts;
    for (int i = 0; i < 16; ++i) {
      uint64_t id = wave * 16 + i;
      ts.emplace_back([id] {
        if (id % 7 == 3) return;  // never allocates
        Rng rng(id + 11);
        std::vector<Left> mine;
        int count = 50 + static_cast<int>(rng.below(300));
        for (int k = 0; k < count; ++k) {
          size_t n = rng.size();
          void* p = malloc(n);
          if (p == nullptr) die("malloc failed");
          uint64_t tag = id * 100000 + k;
          fill(p, n, tag);
          mine.push_back({p, n, tag});
        }
        std::vector<Left> keep;
        for (auto& l : mine) {
          if (!verify(l.p, l.n, l.tag)) die("block changed inside its thread");
          if (rng.next() & 1) free(l.p); else keep.push_back(l);
        }
        std::lock_guard<std::mutex> g(g_mu);
        for (auto& l : keep) g_left.push_back(l);
      });
    }
    for (auto& t : ts) t.join();
    threads_run += ts.size();
    ++wave;
    std::lock_guard<std::mutex> g(g_mu);
    // Blocks of exited threads: verify, and reuse the memory from this thread.
    for (auto& l : g_left) {
      if (!verify(l.p, l.n, l.tag)) die("block of an exited thread changed");
      free(l.p);
    }
    g_left.clear();
  }
  printf("thread_churn: %llu threads in %llu waves\n", static_cast<unsigned long long>(threads_run),
         static_cast<unsigned long long>(wave));
  return 0;
}
