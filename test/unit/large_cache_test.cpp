// large_cache_test.cpp - the large-block index and byte-bounded LRU cache (core/large_cache.h),
// alone over the fake large source and inside a Heap (budget shared with empty slabs).
#include <catch2/catch.hpp>

#include <vector>

#include "core/large_cache.h"
#include "heap_fixture.h"

using namespace cachealloc;
using namespace cachealloc::test;

namespace {
constexpr size_t kNoLimit = size_t{1} << 40;
constexpr size_t kThreshold = 256 << 10;

struct Rig {
  FakeLargeSource source;
  LargeCache cache;
  Rig() { cache.init(&source); }
  ~Rig() { cache.release_all(); }
};

struct AdoptLog {
  int calls = 0;
  void* last = nullptr;
  size_t last_size = 0;
};
void adopt_free(void* ctx, void* p, size_t size) {
  auto* log = static_cast<AdoptLog*>(ctx);
  ++log->calls;
  log->last = p;
  log->last_size = size;
  ::free(p);
}
}  // namespace

TEST_CASE("large cache: a freed block is reused by the same layout, not by another alignment",
          "[large_cache]") {
  Rig r;
  void* p = r.cache.alloc_upstream(64 << 10, 16, false);
  REQUIRE(p != nullptr);
  REQUIRE(r.source.allocs == 1);
  REQUIRE(r.cache.usable_size(p) == 64 << 10);
  REQUIRE(r.cache.release(p, kNoLimit, kThreshold) == LargeCache::Release::kFreed);
  REQUIRE(r.cache.cached_bytes() == 64 << 10);
  REQUIRE(r.source.frees == 0);
  REQUIRE(r.cache.usable_size(p) == 0);  // not live any more
  REQUIRE(r.cache.owns(p));              // but known: a second free is a double free

  REQUIRE(r.cache.take_cached(64 << 10, 4096) == nullptr);  // other alignment: miss
  REQUIRE(r.cache.misses == 1);
  REQUIRE(r.cache.take_cached(16 << 10, 16) == nullptr);    // far smaller: miss (no 4x waste)
  REQUIRE(r.cache.take_cached(64 << 10, 16) == p);          // same layout: hit
  REQUIRE(r.cache.hits == 1);
  REQUIRE(r.cache.cached_bytes() == 0);
  REQUIRE(r.cache.refcount(p) == 1);
  REQUIRE(r.cache.release(p, kNoLimit, kThreshold) == LargeCache::Release::kFreed);
  // A slightly smaller layout may take it (best fit among the next layouts), keeping its size.
  void* q = r.cache.take_cached(large_round(60 << 10), 16);
  REQUIRE(q == p);
  REQUIRE(r.cache.usable_size(q) == 64 << 10);
  REQUIRE(r.cache.release(q, kNoLimit, kThreshold) == LargeCache::Release::kFreed);
  REQUIRE(r.source.allocs == 1);
}

TEST_CASE("large cache: the newest block of a layout is taken first", "[large_cache]") {
  Rig r;
  void* a = r.cache.alloc_upstream(1 << 20, 16, false);
  void* b = r.cache.alloc_upstream(1 << 20, 16, false);
  r.cache.release(a, kNoLimit, kThreshold);
  r.cache.release(b, kNoLimit, kThreshold);
  REQUIRE(r.cache.take_cached(1 << 20, 16) == b);
  REQUIRE(r.cache.take_cached(1 << 20, 16) == a);
  r.cache.release(a, kNoLimit, kThreshold);
  r.cache.release(b, kNoLimit, kThreshold);
}

TEST_CASE("large cache: eviction goes oldest first and frees upstream with the right layout",
          "[large_cache]") {
  Rig r;
  std::vector<void*> v;
  for (size_t i = 0; i < 4; ++i) v.push_back(r.cache.alloc_upstream((i + 1) << 20, 4096, false));
  for (void* p : v) r.cache.release(p, kNoLimit, kThreshold);
  REQUIRE(r.cache.cached_bytes() == (1 + 2 + 3 + 4) << 20);
  for (size_t i = 0; i < 4; ++i) {
    REQUIRE(r.cache.evict_oldest() == (i + 1) << 20);
    REQUIRE_FALSE(r.cache.owns(v[i]));
    REQUIRE(r.source.free_log.back().size == (i + 1) << 20);
    REQUIRE(r.source.free_log.back().align == 4096);
  }
  REQUIRE(r.cache.evict_oldest() == 0);
  REQUIRE(r.cache.oldest_stamp() == UINT64_MAX);
  REQUIRE(r.source.bad_frees == 0);
  REQUIRE(r.source.live_blocks() == 0);
}

TEST_CASE("large cache: a block bigger than the budget is not cached", "[large_cache]") {
  Rig r;
  void* p = r.cache.alloc_upstream(4 << 20, 16, false);
  REQUIRE(r.cache.release(p, 1 << 20, kThreshold) == LargeCache::Release::kFreed);
  REQUIRE(r.cache.cached_bytes() == 0);
  REQUIRE(r.source.frees == 1);
  REQUIRE_FALSE(r.cache.owns(p));
}

TEST_CASE("large cache: release reports foreign pointers and double frees", "[large_cache]") {
  Rig r;
  int local = 0;
  REQUIRE(r.cache.release(&local, kNoLimit, kThreshold) == LargeCache::Release::kNotOurs);
  void* p = r.cache.alloc_upstream(1 << 20, 16, false);
  REQUIRE(r.cache.release(p, kNoLimit, kThreshold) == LargeCache::Release::kFreed);
  REQUIRE(r.cache.release(p, kNoLimit, kThreshold) == LargeCache::Release::kDoubleFree);
  REQUIRE_FALSE(r.cache.retain(p));  // a cached block cannot be retained
}

TEST_CASE("large cache: adopted blocks go back through their upstream_free exactly once",
          "[large_cache][adopt]") {
  Rig r;
  AdoptLog log;
  // Above the threshold: cached on free like any large block, upstream_free at eviction.
  void* big = aligned_alloc(4096, 1 << 20);
  REQUIRE(r.cache.adopt(big, 1 << 20, 4096, &adopt_free, &log) == 0);
  REQUIRE(r.cache.adopt(big, 1 << 20, 4096, &adopt_free, &log) == 22);  // EINVAL: already known
  REQUIRE(r.cache.retain(big));
  REQUIRE(r.cache.release(big, kNoLimit, kThreshold) == LargeCache::Release::kStillShared);
  REQUIRE(log.calls == 0);
  REQUIRE(r.cache.release(big, kNoLimit, kThreshold) == LargeCache::Release::kFreed);
  REQUIRE(log.calls == 0);
  REQUIRE(r.cache.release_all() == 1 << 20);
  REQUIRE(log.calls == 1);
  REQUIRE(log.last == big);
  REQUIRE(log.last_size == 1 << 20);
  REQUIRE(r.cache.release_all() == 0);
  REQUIRE(log.calls == 1);

  // At or below the threshold: handed back at once (never served to a large request).
  void* small = aligned_alloc(64, 4096);
  REQUIRE(r.cache.adopt(small, 4096, 64, &adopt_free, &log) == 0);
  REQUIRE(r.cache.release(small, kNoLimit, kThreshold) == LargeCache::Release::kFreed);
  REQUIRE(log.calls == 2);
  REQUIRE(log.last == small);
  REQUIRE(r.source.frees == 0);  // the fake source never saw adopted blocks
}

TEST_CASE("large cache: upstream failure registers nothing", "[large_cache][enomem]") {
  Rig r;
  r.source.fail_allocs(1);
  REQUIRE(r.cache.alloc_upstream(1 << 20, 16, false) == nullptr);
  REQUIRE(r.cache.live_blocks() == 0);
  void* p = r.cache.alloc_upstream(1 << 20, 16, false);
  REQUIRE(p != nullptr);
  REQUIRE(r.cache.live_blocks() == 1);
  r.cache.release(p, kNoLimit, kThreshold);
}

TEST_CASE("heap budget: LRU eviction by bytes across empty slabs and large blocks", "[large_cache][budget]") {
  TestHeap t(config_with(1 << 20), /*with_cache=*/false);
  void* a = t.alloc(512 << 10);
  void* b = t.alloc(512 << 10);
  void* small = t.alloc(16 << 10);  // alone in a 2-page slab
  REQUIRE(t.large.allocs == 2);
  size_t slab_bytes = size_t{slab_pages(class_of(16 << 10))} << kPageShift;

  t.free(a);  // oldest
  REQUIRE(t.heap.cached_bytes() == 512 << 10);
  t.free(small);
  REQUIRE(t.heap.slabs().cached_bytes() == slab_bytes);
  t.free(b);  // over budget: the oldest (a) goes
  REQUIRE(t.heap.cached_bytes() <= 1 << 20);
  REQUIRE_FALSE(t.heap.owns(a));
  REQUIRE(t.heap.large().cached_bytes() == 512 << 10);
  REQUIRE(t.heap.slabs().cached_bytes() == slab_bytes);
  REQUIRE(t.large.frees == 1);

  // Now the slab is the oldest: a smaller budget decommits it and keeps b.
  t.heap.set_cache_limit(600 << 10);
  REQUIRE(t.heap.slabs().cached_bytes() == 0);
  REQUIRE(t.pages.decommits == 1);
  REQUIRE(t.heap.large().cached_bytes() == 512 << 10);
  REQUIRE(t.large.frees == 1);

  // Budget 0: nothing stays.
  t.heap.set_cache_limit(0);
  REQUIRE(t.heap.cached_bytes() == 0);
  REQUIRE(t.large.frees == 2);
  REQUIRE(t.large.live_blocks() == 0);
}

TEST_CASE("heap: free of a large block twice stops the program", "[large_cache][death]") {
  DeathResult d = run_in_child([] {
    TestHeap t;
    void* p = t.alloc(1 << 20);
    t.free(p);
    t.free(p);
  });
  REQUIRE(d.aborted);
  REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): double free 0x"));
}

TEST_CASE("heap: adopt through the heap, free calls upstream_free once", "[large_cache][adopt]") {
  TestHeap t(config_with(0));  // no caching: the free hands it back at once
  AdoptLog log;
  void* p = aligned_alloc(4096, 2 << 20);
  REQUIRE(t.heap.adopt(p, 2 << 20, 4096, &adopt_free, &log) == 0);
  REQUIRE(t.heap.owns(p));
  REQUIRE(t.heap.usable_size(p) == 2 << 20);
  REQUIRE(t.heap.adopt(nullptr, 10, 16, &adopt_free, &log) == EINVAL);
  REQUIRE(t.heap.adopt(p, 2 << 20, 3, &adopt_free, &log) == EINVAL);  // bad alignment
  void* mine = t.alloc(100);
  REQUIRE(t.heap.adopt(mine, 100, 16, &adopt_free, &log) == EINVAL);  // already a heap block
  t.free(mine);
  t.free(p);
  REQUIRE(log.calls == 1);
  t.heap.clear(t.tc);
  REQUIRE(log.calls == 1);
}
