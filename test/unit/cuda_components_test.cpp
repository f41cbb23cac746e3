// cuda_components_test.cpp - lib/cuda's pieces on their own: layouts (layout.h), the block table
// (block_table.h), the stream registry and the capture gate (stream_registry.h).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "cuda/block_table.h"
#include "cuda/layout.h"
#include "cuda/stream_registry.h"

using namespace cachealloc;
using namespace cachealloc::cuda;

namespace {
constexpr size_t kMiB = size_t{1} << 20;

template <typename T>
T from_int(uintptr_t v) {
  return reinterpret_cast<T>(v);
}
}  // namespace

TEST_CASE("layouts: small sizes round to 512 B, large ones to the 2 MiB granule", "[cuda][layout]") {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200000; ++i) {
    size_t n = 1 + rng() % (size_t{1} << (1 + rng() % 40));
    size_t r = round_size(n);
    REQUIRE(r >= n);
    if (n <= kSmallLimit) {
      REQUIRE(r % kSmallStep == 0);
      REQUIRE(r - n < kSmallStep);
    } else {
      REQUIRE(r % kLargeGranule == 0);
      REQUIRE(r - n < kLargeGranule);
    }
  }
}

TEST_CASE("layouts: buckets grow with size and a near fit lies in the buckets searched",
          "[cuda][layout]") {
  unsigned prev = 0;
  for (size_t n = kSmallStep; n <= kSmallLimit; n += kSmallStep) {
    REQUIRE(bucket_of(n) == prev + (n == kSmallStep ? 0 : 1));
    prev = bucket_of(n);
  }
  std::mt19937_64 rng(2);
  for (int i = 0; i < 100000; ++i) {
    size_t n = round_size(kSmallLimit + 1 + rng() % (size_t{1} << (21 + rng() % 24)));
    size_t limit = near_fit_limit(n);
    REQUIRE(limit == n + n / 4);
    size_t m = n + rng() % (limit - n + 1);  // a block a near fit may hand out
    REQUIRE(bucket_of(m) >= bucket_of(n));
    REQUIRE(bucket_of(m) <= bucket_of(limit));
    REQUIRE(bucket_of(m) < kNumBuckets);
    REQUIRE(bucket_of(n) <= bucket_of(n + kLargeGranule));
  }
  REQUIRE(near_fit_limit(4096) == 4096);  // small layouts: exact
}

TEST_CASE("block table: insert, find and erase agree with a set", "[cuda][block_table]") {
  auto t = std::make_unique<BlockTable>();
  std::mt19937_64 rng(3);
  std::vector<std::pair<uint64_t, uint32_t>> live;
  std::set<uint64_t> addrs;
  for (int i = 0; i < 60000; ++i) {
    if (live.empty() || rng() % 3 != 0) {
      uint64_t a = (rng() % (uint64_t{1} << 40)) & ~uint64_t{511};
      if (!addrs.insert(a).second) continue;
      uint32_t id = t->insert(a);
      REQUIRE(id != kNoBlock);
      REQUIRE(t->block(id).addr == a);
      live.emplace_back(a, id);
    } else {
      size_t k = rng() % live.size();
      REQUIRE(t->find(live[k].first) == live[k].second);
      t->erase(live[k].second);
      REQUIRE(t->find(live[k].first) == kNoBlock);
      addrs.erase(live[k].first);
      live[k] = live.back();
      live.pop_back();
    }
  }
  for (auto& [a, id] : live) REQUIRE(t->find(a) == id);
  REQUIRE(t->find(1) == kNoBlock);  // never a block address (not 512-aligned)
  t->unmap();
}

TEST_CASE("capture gate: no fence window opens while a capture begins or runs",
          "[cuda][stream_registry]") {
  auto r = std::make_unique<StreamRegistry>();
  auto s = from_int<cuda_api::Stream>(0x100);
  { REQUIRE(FenceWindow(*r).open()); }
  r->capture_enter();
  { REQUIRE_FALSE(FenceWindow(*r).open()); }
  r->capture_started(s, nullptr);
  REQUIRE(r->capture_active());
  { REQUIRE_FALSE(FenceWindow(*r).open()); }
  r->capture_ended(s);
  REQUIRE_FALSE(r->capture_active());
  { REQUIRE(FenceWindow(*r).open()); }
  r->capture_enter();
  r->capture_aborted();  // the real begin failed
  { REQUIRE(FenceWindow(*r).open()); }
  r->capture_ended(s);  // not capturing: nothing changes
  REQUIRE_FALSE(r->capture_active());
}

TEST_CASE("capture gate: a context's end ends the captures begun in it, and only those",
          "[cuda][stream_registry][capture]") {
  auto r = std::make_unique<StreamRegistry>();
  auto a = from_int<cuda_api::Context>(0x10);
  auto b = from_int<cuda_api::Context>(0x20);
  r->capture_enter();
  r->capture_started(from_int<cuda_api::Stream>(0x100), a);
  r->capture_enter();
  r->capture_started(from_int<cuda_api::Stream>(0x200), b);
  r->forget_context(a);  // cudaDeviceReset during a capture that was never ended
  REQUIRE(r->capture_active());  // b's capture still runs
  {
    FenceWindow w(*r);
    REQUIRE_FALSE(w.open());
  }
  r->capture_ended(from_int<cuda_api::Stream>(0x100));  // a late end changes nothing
  REQUIRE(r->capture_active());
  r->capture_ended(from_int<cuda_api::Stream>(0x200));
  REQUIRE_FALSE(r->capture_active());
  FenceWindow w(*r);
  REQUIRE(w.open());
}

TEST_CASE("capture gate: fence work and captures never overlap across threads",
          "[cuda][stream_registry][concurrency]") {
  auto r = std::make_unique<StreamRegistry>();
  std::atomic<int> in_fence{0};
  std::atomic<int> in_capture{0};
  std::atomic<bool> overlap{false};
  std::atomic<bool> stop{false};
  std::thread fencer([&] {
    while (!stop.load()) {
      FenceWindow w(*r);
      if (!w.open()) continue;
      in_fence.fetch_add(1);
      if (in_capture.load() != 0) overlap = true;
      for (int i = 0; i < 50; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
      in_fence.fetch_sub(1);
    }
  });
  auto s = from_int<cuda_api::Stream>(0x100);
  for (int i = 0; i < 20000; ++i) {
    r->capture_enter();
    in_capture.fetch_add(1);
    if (in_fence.load() != 0) overlap = true;
    r->capture_started(s, nullptr);
    in_capture.fetch_sub(1);
    r->capture_ended(s);
  }
  stop = true;
  fencer.join();
  REQUIRE_FALSE(overlap.load());
}
