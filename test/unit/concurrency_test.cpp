// concurrency_test.cpp - the shared layers under threads: thread caches feeding central pools from
// several threads, cross-thread frees, retain/release races, concurrent clear and budget changes,
// and counter snapshots while threads run. Built into its own executable so the TSan build runs it.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "heap_fixture.h"
#include "stats/stats_image.h"

using namespace cachealloc;
using namespace cachealloc::test;

namespace {
constexpr int kThreads = 4;

uint64_t rng(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// A mailbox of blocks that one thread allocates and another frees.
struct Mailbox {
  std::mutex mu;
  std::vector<std::pair<unsigned char*, size_t>> items;
};

void stamp(unsigned char* p, size_t n, unsigned char v) {
  memset(p, v, n < 64 ? n : 64);
  p[n - 1] = v;
}
bool stamped(const unsigned char* p, size_t n, unsigned char v) {
  for (size_t i = 0; i < (n < 64 ? n : 64); ++i) {
    if (p[i] != v) return false;
  }
  return p[n - 1] == v;
}
}  // namespace

TEST_CASE("concurrency: producer/consumer cross-thread frees lose nothing", "[concurrency]") {
  TestHeap t(config_with(8 << 20), /*with_cache=*/false);
  Mailbox boxes[kThreads];
  std::atomic<int> bad{0};
  std::atomic<bool> stop{false};
  auto worker = [&](int id) {
    ThreadCache* tc = t.heap.create_thread_cache();
    uint64_t s = 0x9e3779b97f4a7c15ull * (id + 1);
    for (int i = 0; i < 20000; ++i) {
      size_t n = (rng(s) % 8 == 0) ? 300000 + rng(s) % 200000 : 1 + rng(s) % 3000;
      auto* p = static_cast<unsigned char*>(t.heap.alloc(tc, n, 0, false));
      if (p == nullptr) {
        bad.fetch_add(1);
        continue;
      }
      unsigned char v = static_cast<unsigned char>(id * 31 + i);
      stamp(p, n, v);
      Mailbox& out = boxes[(id + 1) % kThreads];
      {
        std::lock_guard<std::mutex> g(out.mu);
        out.items.emplace_back(p, n);
        // the value travels with the block: its first byte
      }
      Mailbox& in = boxes[id];
      std::vector<std::pair<unsigned char*, size_t>> got;
      {
        std::lock_guard<std::mutex> g(in.mu);
        got.swap(in.items);
      }
      for (auto [q, m] : got) {
        if (!stamped(q, m, q[0])) bad.fetch_add(1);
        t.heap.free(tc, q, "free");
      }
    }
    t.heap.destroy_thread_cache(tc);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto& th : threads) th.join();
  stop = true;
  for (Mailbox& b : boxes) {
    for (auto [q, m] : b.items) {
      if (!stamped(q, m, q[0])) bad.fetch_add(1);
      t.heap.free(nullptr, q, "free");
    }
  }
  REQUIRE(bad == 0);
  uint64_t taken = 0, given = 0;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    taken += t.heap.pool(c).counters().blocks_taken;
    given += t.heap.pool(c).counters().blocks_given;
  }
  REQUIRE(taken == given);  // every small block came back
  REQUIRE(t.heap.large().live_blocks() == 0);
  REQUIRE(t.large.bad_frees == 0);
}

TEST_CASE("concurrency: retain/release races on shared blocks", "[concurrency][refcount]") {
  TestHeap t;
  constexpr int kBlocks = 64;
  constexpr int kRounds = 2000;
  std::vector<unsigned char*> shared;
  for (int i = 0; i < kBlocks; ++i) {
    size_t n = i % 4 == 0 ? (1 << 20) : 64 + i * 16;
    auto* p = static_cast<unsigned char*>(t.alloc(n));
    memset(p, i, 64);
    shared.push_back(p);
  }
  std::atomic<int> bad{0};
  auto worker = [&](int id) {
    ThreadCache* tc = t.heap.create_thread_cache();
    for (int r = 0; r < kRounds; ++r) {
      int i = (r * 7 + id) % kBlocks;
      unsigned char* p = shared[i];
      if (t.heap.retain(p) != 0) bad.fetch_add(1);
      if (p[0] != static_cast<unsigned char>(i) || p[63] != static_cast<unsigned char>(i)) bad.fetch_add(1);
      // Unrelated traffic that would reuse p if a count were lost.
      void* q = t.heap.alloc(tc, 64 + (r % 64) * 16, 0, false);
      memset(q, 0xee, 64);
      t.heap.free(tc, q, "free");
      if (r % 2 == 0) {
        t.heap.free(tc, p, "free");
      } else if (t.heap.release(tc, p) != 0) {
        bad.fetch_add(1);
      }
    }
    t.heap.destroy_thread_cache(tc);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto& th : threads) th.join();
  REQUIRE(bad == 0);
  for (int i = 0; i < kBlocks; ++i) {
    REQUIRE(t.heap.refcount(shared[i]) == 1);
    REQUIRE(shared[i][0] == static_cast<unsigned char>(i));
    t.free(shared[i]);
  }
  REQUIRE(t.heap.refs().entries() == 0);
}

TEST_CASE("concurrency: retains and releases of different blocks of one page keep its bin right",
          "[concurrency][refcount]") {
  // Note [Shared pages]: every thread shares and unshares the same page through blocks of its
  // own; the page's count and bin change together by compare-and-swap, so when all is released
  // the page names its class's bin again, and while any block is retained it names the shared one.
  TestHeap t;
  constexpr int kPerThread = 8;
  constexpr int kRounds = 5000;
  std::vector<void*> blocks;
  for (int i = 0; i < kThreads * kPerThread; ++i) blocks.push_back(t.alloc(48));
  SegmentMeta* seg = t.heap.table().lookup(blocks[0]);
  for (void* p : blocks) REQUIRE(SegmentMeta::page_of(p) == SegmentMeta::page_of(blocks[0]));
  std::atomic<int> bad{0};
  auto worker = [&](int id) {
    for (int r = 0; r < kRounds; ++r) {
      void* p = blocks[id * kPerThread + r % kPerThread];
      if (t.heap.retain(p) != 0) bad.fetch_add(1);
      if (seg->bin_at(p) != kSharedBin) bad.fetch_add(1);
      if (t.heap.release(nullptr, p) != 0) bad.fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto& th : threads) th.join();
  REQUIRE(bad == 0);
  REQUIRE_FALSE(seg->page_shared(blocks[0]));
  REQUIRE(seg->bin_at(blocks[0]) == class_of(48) * kBinBytes);
  REQUIRE(t.heap.refs().entries() == 0);
  for (void* p : blocks) t.free(p);
}

TEST_CASE("concurrency: an owner writes a shared block while others retain and count it",
          "[concurrency][refcount]") {
  // retain and refcount read word 1 of the block (its key, Note [Free-list hardening]) while the
  // program writes its data there: a race the allocator must tolerate (under TSan: not report).
  TestHeap t;
  auto* p = static_cast<uint64_t*>(t.alloc(64));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) p[1] = i;  // plain stores
  });
  int bad = 0;
  for (int r = 0; r < 20000; ++r) {
    if (t.heap.retain(p) != 0) ++bad;
    if (t.heap.refcount(p) != 2) ++bad;
    if (t.heap.release(t.tc, p) != 0) ++bad;
  }
  stop = true;
  writer.join();
  CHECK(bad == 0);
  CHECK(t.heap.refcount(p) == 1);
  t.free(p);
}

TEST_CASE("concurrency: clear, budget changes and totals while threads allocate", "[concurrency]") {
  TestHeap t(config_with(4 << 20));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  auto worker = [&](int id) {
    ThreadCache* tc = t.heap.create_thread_cache();
    uint64_t s = 12345 + id;
    std::vector<std::pair<unsigned char*, size_t>> mine;
    for (int i = 0; i < 15000; ++i) {
      if (mine.size() < 200 && rng(s) % 3 != 0) {
        size_t n = rng(s) % 16 == 0 ? 270000 + rng(s) % 1000000 : 1 + rng(s) % 20000;
        auto* p = static_cast<unsigned char*>(t.heap.alloc(tc, n, 0, rng(s) % 4 == 0));
        if (p == nullptr) {
          bad.fetch_add(1);
          continue;
        }
        stamp(p, n, static_cast<unsigned char>(i));
        mine.emplace_back(p, n);
      } else if (!mine.empty()) {
        size_t k = rng(s) % mine.size();
        auto [p, n] = mine[k];
        if (!stamped(p, n, p[0])) bad.fetch_add(1);
        t.heap.free(tc, p, "free");
        mine[k] = mine.back();
        mine.pop_back();
      }
    }
    for (auto [p, n] : mine) t.heap.free(tc, p, "free");
    t.heap.destroy_thread_cache(tc);
  };
  std::thread control([&] {
    size_t limits[] = {0, 1 << 20, 8 << 20, 64 << 20};
    int k = 0;
    while (!stop.load()) {
      t.heap.clear(nullptr);
      t.heap.set_cache_limit(limits[k++ % 4]);
      ca_totals tot{};
      t.heap.get_totals(&tot);
      if (tot.frees > tot.allocs) bad.fetch_add(1);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto& th : threads) th.join();
  stop = true;
  control.join();
  REQUIRE(bad == 0);
  t.heap.clear(t.tc);
  REQUIRE(t.heap.large().live_blocks() == 0);
  REQUIRE(t.large.live_blocks() == 0);
}

// The statistics path (Heap::snapshot, then the segment image) reads every thread's counters and
// bin counts while the threads run; at quiescence the figures must be exact.
TEST_CASE("concurrency: statistics snapshots while threads allocate are exact at quiescence",
          "[concurrency][stats]") {
  TestHeap t(config_with(64 << 20));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> requested{0}, calls{0};
  auto worker = [&](int id) {
    ThreadCache* tc = t.heap.create_thread_cache();
    uint64_t s = 777 + id;
    std::vector<void*> mine;
    uint64_t bytes = 0, n_calls = 0;
    for (int i = 0; i < 20000; ++i) {
      if (mine.size() < 300 && rng(s) % 3 != 0) {
        size_t n = rng(s) % 32 == 0 ? 70000 + rng(s) % 300000 : 1 + rng(s) % 3000;
        void* p = t.heap.alloc(tc, n, 0, false);
        if (p == nullptr) continue;
        bytes += n;
        ++n_calls;
        mine.push_back(p);
      } else if (!mine.empty()) {
        size_t k = rng(s) % mine.size();
        t.heap.free(tc, mine[k], "free");
        mine[k] = mine.back();
        mine.pop_back();
      }
    }
    for (void* p : mine) t.heap.free(tc, p, "free");
    requested.fetch_add(bytes);
    calls.fetch_add(n_calls);
    t.heap.destroy_thread_cache(tc);
  };
  static HeapSnapshot snap;  // about 18 KiB: not on the stack of the reader thread
  static stats::Image image;
  int bad = 0;
  std::thread reader([&] {
    stats::Identity id;
    uint64_t peak = 0, count = 0;
    while (!stop.load()) {
      t.heap.snapshot(&snap);
      stats::build_image(id, snap, ++count, &peak, &image);
      const ca_stats_totals* tot = image.totals();
      if (tot->bytes_live_peak < tot->bytes_live) ++bad;  // the reader's own invariant
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto& th : threads) th.join();
  stop = true;
  reader.join();
  REQUIRE(bad == 0);

  t.heap.snapshot(&snap);
  uint64_t peak = 0;
  stats::build_image(stats::Identity{}, snap, 1, &peak, &image);
  const ca_stats_totals* tot = image.totals();
  // The fixture's own thread cache made no allocation; every worker freed everything.
  REQUIRE(tot->bytes_requested == requested.load());
  REQUIRE(tot->allocs == calls.load());
  REQUIRE(tot->frees == calls.load());
  REQUIRE(tot->blocks_live == 0);
  REQUIRE(tot->bytes_live == 0);
}
