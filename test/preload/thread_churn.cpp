// thread_churn.cpp - 3,000 short-lived threads, each allocating and freeing a mix of sizes,
// including blocks left behind by the previous thread (freed here, on another thread) and blocks
// it leaves for the next one. Whatever a thread caches must go back when it exits: resident memory
// after the last thread may exceed what it was after the first 300 by at most kMaxGrowth.
#include "preload_support.h"

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

using namespace preload_test;

namespace {

constexpr int kThreads = 3000;
constexpr int kWarmup = 300;
constexpr size_t kMaxGrowth = size_t{24} << 20;

struct Handoff {
  std::vector<std::pair<void*, size_t>> blocks;
};

void one_thread(int id, Handoff& handoff) {
  std::mt19937_64 rng(static_cast<uint64_t>(id));
  OwnsFn owns = find_ca_owns();
  // Free what the previous thread left: cross-thread frees of blocks whose owner has exited.
  for (auto& [p, n] : handoff.blocks) {
    if (!stamp_intact(p, n, n)) fail("thread %d: inherited block corrupted", id);
    free(p);
  }
  handoff.blocks.clear();
  std::vector<std::pair<void*, size_t>> mine;
  for (int i = 0; i < 300; ++i) {
    size_t n = (i % 50 == 0) ? (size_t{300} << 10) : 8 + rng() % 4000;
    void* p = malloc(n);
    if (p == nullptr || owns(p) != 1) fail("thread %d: malloc(%zu) failed", id, n);
    stamp(p, n, n);
    mine.emplace_back(p, n);
  }
  // Free most in a shuffled order; hand the last few to the next thread.
  std::shuffle(mine.begin(), mine.end(), rng);
  for (size_t i = 0; i < mine.size(); ++i) {
    if (i < 20) {
      handoff.blocks.push_back(mine[i]);
    } else {
      if (!stamp_intact(mine[i].first, mine[i].second, mine[i].second)) fail("block corrupted");
      free(mine[i].first);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  require_cachealloc("thread_churn");
  int threads = argc > 1 ? atoi(argv[1]) : kThreads;
  Handoff handoff;
  size_t rss_warm = 0;
  for (int i = 0; i < threads; ++i) {
    std::thread t(one_thread, i, std::ref(handoff));
    t.join();
    if (i + 1 == kWarmup) rss_warm = rss_bytes();
  }
  for (auto& [p, n] : handoff.blocks) free(p);
  size_t rss_end = rss_bytes();
  printf("thread_churn: %d threads; RSS after %d: %.1f MiB, at the end: %.1f MiB\n", threads,
         kWarmup, rss_warm / 1048576.0, rss_end / 1048576.0);
  if (rss_end > rss_warm + kMaxGrowth)
    fail("RSS grew by %.1f MiB over %d thread lifetimes (limit %.0f MiB)",
         (rss_end - rss_warm) / 1048576.0, threads - kWarmup, kMaxGrowth / 1048576.0);
  return 0;
}
