// cross_thread_stress.cpp - 8 threads in a ring: each allocates blocks of random sizes (8 B to
// 1 MiB, log-uniform), stamps them, and hands them to the next thread, which checks the stamp
// and frees (or reallocs, then frees) them. Most frees are therefore cross-thread. Runs for a
// fixed time (argv[1] seconds, default 2) and fails on any corrupted, foreign or lost block.
#include "preload_support.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

using namespace preload_test;

namespace {

constexpr int kThreads = 8;
constexpr size_t kQueueCapacity = 48;  // bounds the memory in flight (~8 * 48 * 90 KB on average)

struct Block {
  void* p;
  size_t n;
  uint64_t tag;
};

struct Mailbox {
  std::mutex mu;
  std::deque<Block> q;
};

Mailbox g_boxes[kThreads];
std::atomic<bool> g_stop{false};
std::atomic<uint64_t> g_handed{0}, g_received{0};
OwnsFn g_owns;

size_t random_size(std::mt19937_64& rng) {
  size_t bits = 3 + rng() % 18;  // 8 B .. 1 MiB
  size_t n = size_t{1} << bits;
  n += rng() % n;
  return n > (size_t{1} << 20) ? (size_t{1} << 20) : n;
}

void check_and_free(const Block& b, std::mt19937_64& rng) {
  if (g_owns(b.p) != 1) fail("received block %p (%zu B) is not a cachealloc block", b.p, b.n);
  if (!pattern::sparse_intact(b.p, b.n, b.tag)) fail("block %p (%zu B) was corrupted in flight", b.p, b.n);
  if (rng() % 8 == 0) {
    // Resize someone else's block before freeing it: realloc across threads.
    size_t m = random_size(rng);
    void* q = realloc(b.p, m);
    if (q == nullptr) fail("realloc(%p, %zu) failed", b.p, m);
    size_t keep = m < b.n ? m : b.n;
    // The pattern's bytes below `keep` survive the move.
    if (!pattern::sparse_prefix_intact(q, b.n, keep, b.tag))
      fail("realloc(%p, %zu) lost bytes of a %zu-byte block", b.p, m, b.n);
    free(q);
  } else {
    free(b.p);
  }
}

void worker(int id) {
  std::mt19937_64 rng(1234 + static_cast<uint64_t>(id));
  Mailbox& out = g_boxes[(id + 1) % kThreads];
  Mailbox& in = g_boxes[id];
  std::vector<Block> mine;  // some blocks stay local and are freed by their owner
  while (!g_stop.load(std::memory_order_relaxed)) {
    Block b{nullptr, random_size(rng), rng()};
    b.p = malloc(b.n);
    if (b.p == nullptr) fail("malloc(%zu) returned NULL", b.n);
    pattern::fill_sparse(b.p, b.n, b.tag);
    bool handed = false;
    if (rng() % 4 != 0) {
      std::lock_guard<std::mutex> lock(out.mu);
      if (out.q.size() < kQueueCapacity) {
        out.q.push_back(b);
        handed = true;
      }
    }
    if (handed) {
      g_handed.fetch_add(1, std::memory_order_relaxed);
    } else {
      mine.push_back(b);
      if (mine.size() > 16) {
        size_t i = rng() % mine.size();
        check_and_free(mine[i], rng);
        mine[i] = mine.back();
        mine.pop_back();
      }
    }
    std::deque<Block> got;
    {
      std::lock_guard<std::mutex> lock(in.mu);
      got.swap(in.q);
    }
    for (const Block& r : got) {
      check_and_free(r, rng);
      g_received.fetch_add(1, std::memory_order_relaxed);
    }
  }
  for (const Block& b : mine) check_and_free(b, rng);
}

}  // namespace

int main(int argc, char** argv) {
  g_owns = require_cachealloc("cross_thread_stress");
  double seconds = argc > 1 ? atof(argv[1]) : 2.0;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  g_stop = true;
  for (auto& t : threads) t.join();
  // Whatever is still in a mailbox was handed over but never received: check and free it here.
  std::mt19937_64 rng(99);
  for (auto& box : g_boxes)
    for (const Block& b : box.q) {
      check_and_free(b, rng);
      g_received.fetch_add(1);
    }
  if (g_handed.load() != g_received.load())
    fail("handed %llu blocks, received %llu", static_cast<unsigned long long>(g_handed.load()),
         static_cast<unsigned long long>(g_received.load()));
  if (g_handed.load() < 1000) fail("only %llu cross-thread frees in %.1f s", static_cast<unsigned long long>(g_handed.load()), seconds);
  printf("cross_thread_stress: %llu blocks handed between %d threads in %.1f s\n",
         static_cast<unsigned long long>(g_handed.load()), kThreads, seconds);
  return 0;
}
