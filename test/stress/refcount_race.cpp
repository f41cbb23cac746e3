// refcount_race.cpp - threads retain and release (ca_retain / ca_release / free) the same shared
// blocks concurrently, small and large, while other traffic would reuse any block whose count was
// lost. Every block must stay intact while any reference is held, and end with count 1.
// usage: refcount_race [seconds]
#include <thread>
#include <vector>

#include "stress_common.h"

using namespace stress;

int main(int argc, char** argv) {
  require_preload("refcount_race");
  auto ca_retain = api<int (*)(void*)>("ca_retain");
  auto ca_release = api<int (*)(void*)>("ca_release");
  auto ca_refcount = api<size_t (*)(const void*)>("ca_refcount");
  Deadline deadline(seconds_arg(argc, argv, 3.0));
  constexpr int kBlocks = 96;
  std::vector<void*> blocks;
  std::vector<size_t> sizes;
  for (int i = 0; i < kBlocks; ++i) {
    size_t n = i % 8 == 0 ? (300000 + i * 1000) : (16 + i * 40);
    void* p = malloc(n);
    pattern::fill_sparse(p, n, i);
    blocks.push_back(p);
    sizes.push_back(n);
  }
  std::atomic<uint64_t> ops{0};
  auto worker = [&](int id) {
    Rng rng(id + 99);
    while (!deadline.passed()) {
      int i = static_cast<int>(rng.below(kBlocks));
      int depth = 1 + static_cast<int>(rng.below(4));
      for (int d = 0; d < depth; ++d) {
        if (ca_retain(blocks[i]) != 0) fail("ca_retain failed on a live block");
      }
      if (ca_refcount(blocks[i]) < 2) fail("count below 2 while retained");
      // Traffic of the same sizes: would get blocks[i] if a reference were lost.
      void* other = malloc(sizes[i]);
      pattern::fill_sparse(other, sizes[i], 0xdead);
      if (!pattern::sparse_intact(blocks[i], sizes[i], i)) fail("shared block changed while retained");
      free(other);
      for (int d = 0; d < depth; ++d) {
        int rc = (d & 1) ? ca_release(blocks[i]) : (free(blocks[i]), 0);
        if (rc != 0) fail("ca_release failed");
      }
      ops.fetch_add(depth, std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) ts.emplace_back(worker, i);
  for (auto& t : ts) t.join();
  for (int i = 0; i < kBlocks; ++i) {
    if (ca_refcount(blocks[i]) != 1) fail("count is not back to 1");
    if (!pattern::sparse_intact(blocks[i], sizes[i], i)) fail("shared block changed");
    free(blocks[i]);
  }
  printf("refcount_race: %llu retain/release pairs on %d shared blocks by 8 threads\n",
         static_cast<unsigned long long>(ops.load()), kBlocks);
  return 0;
}
