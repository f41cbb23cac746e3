// thread_exit_cache.cpp - a thread that allocates, frees everything and exits leaves its blocks
// in its thread cache; they must go back to the shared pools, not be lost. Each cycle a thread
// allocates and frees 16,384 blocks of 256 B (4 MiB) and exits; then the next thread (or the main
// thread) allocates the same and must get at least a quarter of those addresses back. Over 60
// cycles resident memory may not grow by more than 16 MiB (lost caches would add 4 MiB a cycle).
#include "preload_support.h"

#include <thread>
#include <unordered_set>
#include <vector>

using namespace preload_test;

namespace {

constexpr int kCycles = 60;
constexpr size_t kBlocks = 16384;
constexpr size_t kSize = 256;
constexpr size_t kMaxGrowth = size_t{16} << 20;

// Allocates kBlocks blocks, writes them, frees them all; returns their addresses.
std::vector<void*> churn() {
  std::vector<void*> blocks(kBlocks);
  for (auto& p : blocks) {
    p = malloc(kSize);
    if (p == nullptr) fail("malloc(%zu) failed", kSize);
    memset(p, 0x5C, kSize);
  }
  for (void* p : blocks) free(p);
  return blocks;
}

}  // namespace

int main() {
  require_cachealloc("thread_exit_cache");
  std::vector<void*> previous;
  std::thread([&] { previous = churn(); }).join();
  size_t rss_start = rss_bytes();
  size_t min_reused = kBlocks;
  bool previous_exited = true;  // only blocks of an exited thread are promised back
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    std::unordered_set<void*> before(previous.begin(), previous.end());
    std::vector<void*> now;
    if (cycle % 3 == 2)
      now = churn();  // the main thread picks up what the exited thread left
    else
      std::thread([&] { now = churn(); }).join();
    if (previous_exited) {
      size_t reused = 0;
      for (void* p : now) reused += before.count(p);
      if (reused < min_reused) min_reused = reused;
      if (reused < kBlocks / 4)
        fail("cycle %d: only %zu of %zu blocks freed by an exited thread were reused", cycle,
             reused, kBlocks);
    }
    previous_exited = cycle % 3 != 2;
    previous = std::move(now);
  }
  size_t rss_end = rss_bytes();
  printf("thread_exit_cache: %d cycles, at least %zu of %zu blocks reused per cycle; RSS %.1f -> "
         "%.1f MiB\n",
         kCycles, min_reused, kBlocks, rss_start / 1048576.0, rss_end / 1048576.0);
  if (rss_end > rss_start + kMaxGrowth)
    fail("RSS grew by %.1f MiB over %d thread exits", (rss_end - rss_start) / 1048576.0, kCycles);
  return 0;
}
