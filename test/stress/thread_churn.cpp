// thread_churn.cpp - short-lived threads, in two phases: lifetimes, then waves.
//
// Waves (for the given seconds): 16 threads at a time; each allocates, frees part of its blocks,
// and leaves the rest to be verified and freed by the main thread after it exited (its thread
// cache must have been flushed without losing or double-handing any block). Some threads exit
// while holding nothing; some never allocate.
//
// Lifetimes (3,000 threads, one after the other): each frees the blocks the previous thread left
// (cross-thread frees of blocks whose owner has exited), allocates and frees a mix of sizes and
// leaves a few blocks for the next one. Whatever a thread caches must go back when it exits:
// resident memory after the last thread may exceed what it was after the first 300 by at most
// kMaxGrowth.
//
// Every block is checked to be cachealloc's (ca_owns) and carries a pattern that is verified
// before it is freed. usage: thread_churn [seconds] [lifetime threads]
#include <algorithm>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "../support/rss.h"
#include "stress_common.h"

using namespace stress;

namespace {

using OwnsFn = int (*)(const void*);
OwnsFn g_owns = nullptr;

void* checked_malloc(size_t n) {
  void* p = malloc(n);
  if (p == nullptr) fail("malloc failed");
  if (g_owns(p) != 1) fail("malloc returned a block cachealloc does not own");
  return p;
}

// ---- waves ----------------------------------------------------------------------------------

struct Left {
  void* p;
  size_t n;
  uint64_t tag;
};
std::mutex g_mu;
std::vector<Left> g_left;

void wave_thread(uint64_t id) {
  if (id % 7 == 3) return;  // never allocates
  Rng rng(id + 11);
  std::vector<Left> mine;
  int count = 50 + static_cast<int>(rng.below(300));
  for (int k = 0; k < count; ++k) {
    size_t n = rng.size();
    void* p = checked_malloc(n);
    uint64_t tag = id * 100000 + k;
    pattern::fill_sparse(p, n, tag);
    mine.push_back({p, n, tag});
  }
  std::vector<Left> keep;
  for (auto& l : mine) {
    if (!pattern::sparse_intact(l.p, l.n, l.tag)) fail("block changed inside its thread");
    if (rng.next() & 1) free(l.p); else keep.push_back(l);
  }
  std::lock_guard<std::mutex> g(g_mu);
  for (auto& l : keep) g_left.push_back(l);
}

void waves(const Deadline& deadline) {
  uint64_t threads_run = 0, wave = 0;
  while (!deadline.passed()) {
    std::vector<std::thread> ts;
    for (int i = 0; i < 16; ++i) ts.emplace_back(wave_thread, wave * 16 + i);
    for (auto& t : ts) t.join();
    threads_run += ts.size();
    ++wave;
    std::lock_guard<std::mutex> g(g_mu);
    // Blocks of exited threads: verify, and reuse the memory from this thread.
    for (auto& l : g_left) {
      if (!pattern::sparse_intact(l.p, l.n, l.tag)) fail("block of an exited thread changed");
      free(l.p);
    }
    g_left.clear();
  }
  printf("thread_churn: %llu threads in %llu waves\n", static_cast<unsigned long long>(threads_run),
         static_cast<unsigned long long>(wave));
}

// ---- lifetimes ------------------------------------------------------------------------------

constexpr int kLifetimes = 3000;
constexpr int kWarmup = 300;
constexpr size_t kMaxGrowth = size_t{24} << 20;

size_t rss_bytes() {
  size_t n = rss::bytes();
  if (n == 0) fail("cannot read /proc/self/statm");
  return n;
}

using Handoff = std::vector<std::pair<void*, size_t>>;  // tag: the size

void lifetime_thread(int id, Handoff& handoff) {
  std::mt19937_64 rng(static_cast<uint64_t>(id));
  for (auto& [p, n] : handoff) {
    if (!pattern::sparse_intact(p, n, n)) fail("inherited block corrupted");
    free(p);
  }
  handoff.clear();
  Handoff mine;
  for (int i = 0; i < 300; ++i) {
    size_t n = (i % 50 == 0) ? (size_t{300} << 10) : 8 + rng() % 4000;
    void* p = checked_malloc(n);
    pattern::fill_sparse(p, n, n);
    mine.emplace_back(p, n);
  }
  // Free most in a shuffled order; hand the last few to the next thread.
  std::shuffle(mine.begin(), mine.end(), rng);
  for (size_t i = 0; i < mine.size(); ++i) {
    if (i < 20) {
      handoff.push_back(mine[i]);
    } else {
      if (!pattern::sparse_intact(mine[i].first, mine[i].second, mine[i].second))
        fail("block corrupted");
      free(mine[i].first);
    }
  }
}

void lifetimes(int threads) {
  Handoff handoff;
  size_t rss_warm = 0;
  for (int i = 0; i < threads; ++i) {
    std::thread t(lifetime_thread, i, std::ref(handoff));
    t.join();
    if (i + 1 == kWarmup) rss_warm = rss_bytes();
  }
  for (auto& [p, n] : handoff) free(p);
  size_t rss_end = rss_bytes();
  printf("thread_churn: %d threads one after the other; RSS after %d: %.1f MiB, at the end: "
         "%.1f MiB\n", threads, kWarmup, rss_warm / 1048576.0, rss_end / 1048576.0);
  if (threads >= kWarmup && rss_end > rss_warm + kMaxGrowth) {
    fprintf(stderr, "RSS grew by %.1f MiB over %d thread lifetimes (limit %.0f MiB)\n",
            (rss_end - rss_warm) / 1048576.0, threads - kWarmup, kMaxGrowth / 1048576.0);
    fail("resident memory grew over the thread lifetimes");
  }
}

}  // namespace

int main(int argc, char** argv) {
  require_preload("thread_churn");
  g_owns = api<OwnsFn>("ca_owns");
  lifetimes(argc > 2 ? atoi(argv[2]) : kLifetimes);  // first: its baseline is a fresh heap
  waves(Deadline(seconds_arg(argc, argv, 4.0)));
  return 0;
}
