// producer_consumer.cpp - 8+ threads in a ring: each allocates blocks of random sizes, writes a
// pattern, and hands them to the next thread, which verifies and frees them (cross-thread frees on
// every block); some blocks stay with their producer for a while. Runs for a bounded time, then
// checks that every block was verified and freed. usage: producer_consumer [seconds] [threads]
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "stress_common.h"

using namespace stress;

namespace {
struct Item {
  void* p;
  size_t n;
  uint64_t tag;
};
struct Queue {
  std::mutex mu;
  std::deque<Item> items;
};
}  // namespace

int main(int argc, char** argv) {
  require_preload("producer_consumer");
  double secs = seconds_arg(argc, argv, 4.0);
  int nthreads = argc > 2 ? atoi(argv[2]) : 8;
  std::vector<Queue> queues(nthreads);
  std::atomic<uint64_t> produced{0}, consumed{0};
  Deadline deadline(secs);
  auto worker = [&](int id) {
    Rng rng(id + 1);
    std::vector<Item> own;
    uint64_t seq = 0;
    while (!deadline.passed()) {
      for (int k = 0; k < 64; ++k) {
        size_t n = rng.size();
        void* p = (rng.next() & 7) == 0 ? calloc(1, n) : malloc(n);
        if (p == nullptr) fail("allocation failed");
        uint64_t tag = (uint64_t(id) << 40) | seq++;
        pattern::fill_sparse(p, n, tag);
        produced.fetch_add(1, std::memory_order_relaxed);
        if ((rng.next() & 3) == 0) {
          own.push_back({p, n, tag});
        } else {
          Queue& q = queues[(id + 1 + rng.below(nthreads - 1)) % nthreads];
          std::lock_guard<std::mutex> g(q.mu);
          q.items.push_back({p, n, tag});
        }
      }
      std::deque<Item> in;
      {
        std::lock_guard<std::mutex> g(queues[id].mu);
        in.swap(queues[id].items);
      }
      for (const Item& it : in) {
        if (!pattern::sparse_intact(it.p, it.n, it.tag)) fail("a block changed between producer and consumer");
        free(it.p);
        consumed.fetch_add(1, std::memory_order_relaxed);
      }
      while (own.size() > 200) {
        size_t i = rng.below(own.size());
        if (!pattern::sparse_intact(own[i].p, own[i].n, own[i].tag)) fail("a block kept by its producer changed");
        free(own[i].p);
        consumed.fetch_add(1, std::memory_order_relaxed);
        own[i] = own.back();
        own.pop_back();
      }
    }
    for (const Item& it : own) {
      if (!pattern::sparse_intact(it.p, it.n, it.tag)) fail("a block kept by its producer changed");
      free(it.p);
      consumed.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < nthreads; ++i) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();
  for (Queue& q : queues) {
    for (const Item& it : q.items) {
      if (!pattern::sparse_intact(it.p, it.n, it.tag)) fail("a queued block changed");
      free(it.p);
      consumed.fetch_add(1);
    }
  }
  if (produced.load() != consumed.load()) fail("blocks lost");
  printf("producer_consumer: %d threads, %llu blocks produced and verified\n", nthreads,
         static_cast<unsigned long long>(produced.load()));
  return 0;
}
