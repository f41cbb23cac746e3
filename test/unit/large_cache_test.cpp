// large_cache_test.cpp - the large-block index and byte-bounded LRU cache (core/large_cache.h),
// alone over the fake large source and inside a Heap (budget shared with empty slabs).
#include <catch2/catch.hpp>

#include <vector>

#include "core/heap_stats.h"
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
  // split_min: blocks of that size and more are mappings the cache may split (Note [Splitting
  // mapped blocks]).
  explicit Rig(size_t split_min = SIZE_MAX) {
    source.split_min_bytes = split_min;
    cache.init(&source);
  }
  ~Rig() { cache.clear(); }
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
  REQUIRE(r.cache.free(p, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
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
  REQUIRE(r.cache.free(p, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  // A slightly smaller layout may take it (best fit among the next layouts), keeping its size.
  void* q = r.cache.take_cached(large_round(60 << 10), 16);
  REQUIRE(q == p);
  REQUIRE(r.cache.usable_size(q) == 64 << 10);
  REQUIRE(r.cache.free(q, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  REQUIRE(r.source.allocs == 1);
}

TEST_CASE("large cache: the newest block of a layout is taken first", "[large_cache]") {
  Rig r;
  void* a = r.cache.alloc_upstream(1 << 20, 16, false);
  void* b = r.cache.alloc_upstream(1 << 20, 16, false);
  r.cache.free(a, kNoLimit, kThreshold);
  r.cache.free(b, kNoLimit, kThreshold);
  REQUIRE(r.cache.take_cached(1 << 20, 16) == b);
  REQUIRE(r.cache.take_cached(1 << 20, 16) == a);
  r.cache.free(a, kNoLimit, kThreshold);
  r.cache.free(b, kNoLimit, kThreshold);
}

TEST_CASE("large cache: eviction goes oldest first and frees upstream with the right layout",
          "[large_cache]") {
  Rig r;
  std::vector<void*> v;
  for (size_t i = 0; i < 4; ++i) v.push_back(r.cache.alloc_upstream((i + 1) << 20, 4096, false));
  for (void* p : v) r.cache.free(p, kNoLimit, kThreshold);
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
  REQUIRE(r.cache.free(p, 1 << 20, kThreshold) == LargeCache::FreeResult::kFreed);
  REQUIRE(r.cache.cached_bytes() == 0);
  REQUIRE(r.source.frees == 1);
  REQUIRE_FALSE(r.cache.owns(p));
}

TEST_CASE("large cache: release reports foreign pointers and double frees", "[large_cache]") {
  Rig r;
  int local = 0;
  REQUIRE(r.cache.free(&local, kNoLimit, kThreshold) == LargeCache::FreeResult::kNotOurs);
  void* p = r.cache.alloc_upstream(1 << 20, 16, false);
  REQUIRE(r.cache.free(p, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  REQUIRE(r.cache.free(p, kNoLimit, kThreshold) == LargeCache::FreeResult::kDoubleFree);
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
  REQUIRE(r.cache.free(big, kNoLimit, kThreshold) == LargeCache::FreeResult::kStillShared);
  REQUIRE(log.calls == 0);
  REQUIRE(r.cache.free(big, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  REQUIRE(log.calls == 0);
  REQUIRE(r.cache.clear() == 1 << 20);
  REQUIRE(log.calls == 1);
  REQUIRE(log.last == big);
  REQUIRE(log.last_size == 1 << 20);
  REQUIRE(r.cache.clear() == 0);
  REQUIRE(log.calls == 1);

  // At or below the threshold: handed back at once (never served to a large request).
  void* small = aligned_alloc(64, 4096);
  REQUIRE(r.cache.adopt(small, 4096, 64, &adopt_free, &log) == 0);
  REQUIRE(r.cache.free(small, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
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
  r.cache.free(p, kNoLimit, kThreshold);
}

TEST_CASE("heap budget: LRU eviction by bytes across empty slabs and large blocks", "[large_cache][budget]") {
  TestHeap t(config_with(1 << 20), /*with_cache=*/false);
  void* a = t.alloc(512 << 10);
  void* b = t.alloc(512 << 10);
  // Alone in its slab; a batch is more than one block, so its free goes to the slab, not a slot.
  void* small = t.alloc(4 << 10);
  REQUIRE(batch_size(class_of(4 << 10)) > 1);
  REQUIRE(t.large.allocs == 2);
  size_t slab_bytes = size_t{slab_pages(class_of(4 << 10))} << kPageShift;

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
  t.heap.set_cache_limit((512 << 10) + slab_bytes / 2);
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

// Note [Reuse evidence] (large_cache.cpp).
TEST_CASE("large cache: a layout keeps only the blocks its reuse has earned", "[large_cache][reuse]") {
  Rig r;
  constexpr size_t kSize = 8 << 20;  // base allowance: one block
  REQUIRE(r.cache.allowed_blocks(kSize) == 1);
  void* b[4];
  for (void*& p : b) p = r.cache.alloc_upstream(kSize, 16, false);
  // A batch of four freed together: one is kept, three go back and leave ghosts.
  for (void* p : b) REQUIRE(r.cache.free(p, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  REQUIRE(r.cache.cached_bytes() == kSize);
  REQUIRE(r.source.frees == 3);
  REQUIRE(r.cache.declined == 3);
  // The batch comes back: one hit (+1), three misses that find a ghost (+1 each).
  void* again[4];
  for (void*& p : again) {
    p = r.cache.take_cached(kSize, 16);
    if (p == nullptr) p = r.cache.alloc_upstream(kSize, 16, false);
  }
  REQUIRE(r.cache.hits == 1);
  REQUIRE(r.cache.allowed_blocks(kSize) == 5);
  for (void* p : again) r.cache.free(p, kNoLimit, kThreshold);
  REQUIRE(r.cache.cached_bytes() == 4 * kSize);  // the whole batch is kept now
  REQUIRE(r.cache.declined == 3);
  // The budget pushing blocks out says nothing about the layout; the decay halves the allowance.
  r.cache.evict_oldest();
  REQUIRE(r.cache.allowed_blocks(kSize) == 5);
  r.cache.evict_oldest(true);
  REQUIRE(r.cache.allowed_blocks(kSize) == 2);
  r.cache.evict_oldest(true);
  REQUIRE(r.cache.allowed_blocks(kSize) == 1);
  REQUIRE(r.cache.decayed == 2);
  REQUIRE(r.cache.evictions == 1);
}

TEST_CASE("large cache: small layouts may keep a few blocks unproven; a growth leaves one per size",
          "[large_cache][reuse]") {
  Rig r;
  REQUIRE(r.cache.allowed_blocks(256 << 10) == 16);  // 4 MiB worth
  REQUIRE(r.cache.allowed_blocks(4 << 20) == 1);
  // A buffer doubling from 1 to 64 MiB, eight times over in parallel: each size is freed eight
  // times and never needed again; the cache keeps one block of each size.
  size_t kept = 0;
  for (size_t size = 1 << 20; size <= size_t{64} << 20; size *= 2) {
    void* p[8];
    for (void*& q : p) q = r.cache.alloc_upstream(size, 16, false);
    for (void* q : p) r.cache.free(q, kNoLimit, kThreshold);
    kept += (size < (size_t{4} << 20) ? (size_t{4} << 20) / size : 1) * size;
  }
  REQUIRE(r.cache.cached_bytes() == kept);
  REQUIRE(r.cache.cached_bytes() < 2 * (size_t{128} << 20));
}

TEST_CASE("large cache: resize moves a live block through the source and re-indexes it",
          "[large_cache][resize]") {
  Rig r;
  void* p = r.cache.alloc_upstream(2 << 20, 16, false);
  memset(p, 7, 2 << 20);
  REQUIRE(r.cache.resize(p, 4 << 20) == nullptr);  // the source cannot: untouched
  REQUIRE(r.cache.usable_size(p) == 2 << 20);
  r.source.resizable = true;
  void* q = r.cache.resize(p, 4 << 20);
  REQUIRE(q != nullptr);
  REQUIRE(q != p);
  REQUIRE(!r.cache.owns(p));
  REQUIRE(r.cache.usable_size(q) == 4 << 20);
  REQUIRE(r.cache.live_bytes() == 4 << 20);
  REQUIRE(static_cast<unsigned char*>(q)[(2 << 20) - 1] == 7);
  REQUIRE(r.cache.resizes == 1);
  // Shared and adopted blocks are never resized; a failing source leaves the block as it was.
  REQUIRE(r.cache.retain(q));
  REQUIRE(r.cache.resize(q, 8 << 20) == nullptr);
  REQUIRE(r.cache.free(q, kNoLimit, kThreshold) == LargeCache::FreeResult::kStillShared);
  r.source.fail_resizes = true;
  REQUIRE(r.cache.resize(q, 8 << 20) == nullptr);
  REQUIRE(r.cache.usable_size(q) == 4 << 20);
  void* adopted = aligned_alloc(4096, 2 << 20);
  AdoptLog log;
  REQUIRE(r.cache.adopt(adopted, 2 << 20, 4096, &adopt_free, &log) == 0);
  r.source.fail_resizes = false;
  REQUIRE(r.cache.resize(adopted, 4 << 20) == nullptr);
  REQUIRE(r.cache.free(adopted, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  REQUIRE(r.cache.free(q, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  REQUIRE(r.cache.live_bytes() == 0);
}

TEST_CASE("heap: realloc of a large block takes a cached block first, else resizes, else copies",
          "[large_cache][resize]") {
  TestHeap t(config_with(size_t{1} << 30, false, 64 << 10));
  t.large.resizable = true;
  void* cached = t.alloc(4 << 20);
  t.free(cached);
  void* p = t.alloc(2 << 20);
  memset(p, 3, 2 << 20);
  void* q = t.heap.realloc(t.tc, p, 4 << 20, "realloc");
  REQUIRE(q == cached);  // resident pages: a copy is cheaper than faulting new ones in
  REQUIRE(t.large.resize_calls == 0);
  REQUIRE(static_cast<unsigned char*>(q)[(2 << 20) - 1] == 3);
  void* big = t.heap.realloc(t.tc, q, 16 << 20, "realloc");  // nothing cached that size
  REQUIRE(t.large.resizes == 1);
  REQUIRE(static_cast<unsigned char*>(big)[(2 << 20) - 1] == 3);
  REQUIRE(t.heap.usable_size(big) == 16 << 20);
  t.large.fail_resizes = true;
  void* bigger = t.heap.realloc(t.tc, big, 32 << 20, "realloc");  // copied
  REQUIRE(bigger != nullptr);
  REQUIRE(static_cast<unsigned char*>(bigger)[(2 << 20) - 1] == 3);
  REQUIRE((!t.heap.owns(big) || t.heap.usable_size(big) == 0));
  t.free(bigger);
}

TEST_CASE("heap: realloc copies a pieced block once, into fresh pages it can resize later",
          "[large_cache][resize][room]") {
  // Note [A miss reuses cached pages]
  TestHeap t(config_with(size_t{1} << 30, false, 64 << 10), true, 1 << 20);
  t.large.resizable = true;
  void* one = t.alloc(1 << 20);
  void* two = t.alloc(2 << 20);
  t.free(one);
  t.free(two);
  auto* p = static_cast<unsigned char*>(t.alloc(4 << 20));  // the two cached blocks' pages
  REQUIRE(t.heap.large().page_moves == 2);
  REQUIRE(t.heap.large().cached_bytes() == 0);
  memset(p, 7, 4 << 20);
  void* cached = t.alloc(1 << 20);  // cached, to be taken by nothing: realloc wants fresh pages
  t.free(cached);
  auto* q = static_cast<unsigned char*>(t.heap.realloc(t.tc, p, 8 << 20, "realloc"));
  CHECK(t.large.resize_calls == 0);  // pieced: copied, not resized
  CHECK(t.heap.large().page_moves == 2);
  CHECK(t.heap.large().cached_bytes() == (1 << 20) + (4 << 20));
  CHECK((q[0] == 7 && q[(4 << 20) - 1] == 7));
  auto* r = static_cast<unsigned char*>(t.heap.realloc(t.tc, q, 16 << 20, "realloc"));
  CHECK(t.large.resizes == 1);  // the copy was fresh: it resizes
  CHECK((r[0] == 7 && r[(4 << 20) - 1] == 7));
  t.free(r);
}

// Note [Decay] (core/lru_clock.h).
TEST_CASE("heap: cached memory older than the decay goes back, newer memory stays",
          "[large_cache][decay]") {
  HeapConfig c = config_with(size_t{1} << 30, false, 64 << 10);
  c.decay_ms = 1000;
  TestHeap t(c);
  constexpr uint64_t kMs = 1000000;
  const uint64_t t0 = uint64_t{1} << 40;
  void* old_block = t.alloc(2 << 20);
  t.heap.decay_at(t0);  // first checkpoint
  t.free(old_block);
  t.heap.decay_at(t0 + 200 * kMs);  // checkpoint after the old block was cached
  void* new_block = t.alloc(4 << 20);
  t.free(new_block);
  t.heap.decay_at(t0 + 900 * kMs);
  REQUIRE(t.heap.large().cached_bytes() == 6 << 20);  // nothing is a decay old yet
  t.heap.decay_at(t0 + 1250 * kMs);  // the t0 + 200 ms checkpoint is now 1050 ms old
  REQUIRE(t.heap.large().cached_bytes() == 4 << 20);
  REQUIRE(t.heap.large().decayed == 1);
  t.heap.decay_at(t0 + 1260 * kMs);  // within decay/8 of the last checkpoint: nothing to do
  REQUIRE(t.heap.large().cached_bytes() == 4 << 20);
  t.heap.decay_at(t0 + 2500 * kMs);
  REQUIRE(t.heap.large().cached_bytes() == 0);
}

TEST_CASE("heap: decay 0 keeps cached memory however old", "[large_cache][decay]") {
  HeapConfig c = config_with(size_t{1} << 30, false, 64 << 10);
  c.decay_ms = 0;
  TestHeap t(c);
  void* p = t.alloc(2 << 20);
  t.free(p);
  for (uint64_t s = 1; s < 100; ++s) t.heap.decay_at(s * 1000000000ull);
  REQUIRE(t.heap.large().cached_bytes() == 2 << 20);
}

// Note [Cache below the peak] (heap.cpp).
TEST_CASE("heap: the cache gives back what live memory grows past its peak", "[large_cache][peak]") {
  for (bool below_peak : {true, false}) {
    HeapConfig c = config_with(size_t{1} << 30, false, 64 << 10);
    c.below_peak = below_peak;
    TestHeap t(c);
    constexpr size_t kMiB = size_t{1} << 20;
    void* a = t.alloc(40 * kMiB);
    t.free(a);  // under the peak it made: cached either way
    REQUIRE(t.heap.large().cached_bytes() == 40 * kMiB);
    REQUIRE(t.alloc(40 * kMiB) == a);  // a recurring buffer keeps hitting
    t.free(a);
    // Live memory grows elsewhere (16 MiB blocks cannot use the 40 MiB one): past the room under
    // the peak plus the slack (a quarter of the peak, 10 MiB), the cached block goes back.
    void* b[3];
    for (void*& p : b) p = t.alloc(16 * kMiB);
    if (below_peak) {
      REQUIRE(t.heap.large().cached_bytes() == 0);
      REQUIRE(t.heap.large().evictions == 1);
      REQUIRE(t.heap.cache_allowance() == 12 * kMiB);  // at the 48 MiB peak: the slack only
    } else {
      REQUIRE(t.heap.large().cached_bytes() == 40 * kMiB);
      REQUIRE(t.heap.cache_allowance() == size_t{1} << 30);
    }
    for (void* p : b) t.free(p);
    // Freed below the new peak, one of them stays cached (a 16 MiB layout has earned one block:
    // Note [Reuse evidence]).
    REQUIRE(t.heap.large().cached_bytes() == (below_peak ? 16 : 56) * kMiB);
  }
}

// Note [Splitting mapped blocks] (large_cache.cpp).
TEST_CASE("large cache: one cached mapping serves smaller requests and comes back whole",
          "[large_cache][split]") {
  Rig r(1 << 20);
  constexpr size_t kMiB = size_t{1} << 20;
  void* big = r.cache.alloc_upstream(64 * kMiB, 16, false);
  REQUIRE(r.cache.free(big, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  // The `large` workload's sizes, one at a time: all served by the one mapping.
  for (size_t mib : {1, 2, 3, 6, 8, 12, 16, 24, 32, 64, 12, 1}) {
    void* p = r.cache.take_cached(mib * kMiB, 16);
    REQUIRE(p == big);  // the front part of the mapping
    REQUIRE(r.cache.usable_size(p) == mib * kMiB);
    REQUIRE(r.cache.cached_bytes() == (64 - mib) * kMiB);
    memset(p, 1, mib * kMiB);
    REQUIRE(r.cache.free(p, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
    REQUIRE(r.cache.cached_bytes() == 64 * kMiB);  // merged back
  }
  REQUIRE(r.source.allocs == 1);
  REQUIRE(r.cache.splits == 11);  // the 64 MiB request took it whole
  REQUIRE(r.cache.merges == 11);

  // Two parts live at once; freeing them in either order merges all three parts back.
  void* a = r.cache.take_cached(8 * kMiB, 16);
  void* b = r.cache.take_cached(8 * kMiB, 16);
  REQUIRE(b == static_cast<char*>(a) + 8 * kMiB);
  REQUIRE(r.cache.cached_bytes() == 48 * kMiB);
  REQUIRE(r.cache.free(a, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  REQUIRE(r.cache.free(b, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  REQUIRE(r.cache.cached_bytes() == 64 * kMiB);
  REQUIRE(r.cache.take_cached(64 * kMiB, 16) == big);
  REQUIRE(r.cache.free(big, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);

  // A part evicted while its neighbour is live is unmapped alone; the neighbour, freed later,
  // does not merge into memory that is gone.
  a = r.cache.take_cached(16 * kMiB, 16);
  REQUIRE(r.cache.evict_oldest() == 48 * kMiB);  // the cached rest
  REQUIRE(r.source.mapped_bytes == 16 * kMiB);
  REQUIRE(r.cache.free(a, kNoLimit, kThreshold) == LargeCache::FreeResult::kFreed);
  REQUIRE(r.cache.cached_bytes() == 16 * kMiB);
  REQUIRE(r.cache.clear() == 16 * kMiB);
  REQUIRE(r.source.mapped_bytes == 0);
  REQUIRE(r.source.bad_frees == 0);
}

TEST_CASE("large cache: the best fitting extent is split, a small leftover is not",
          "[large_cache][split]") {
  Rig r(1 << 20);
  constexpr size_t kMiB = size_t{1} << 20;
  void* x = r.cache.alloc_upstream(20 * kMiB, 16, false);
  void* y = r.cache.alloc_upstream(10 * kMiB, 16, false);
  void* z = r.cache.alloc_upstream(5 * kMiB + 512 * 1024, 16, false);  // another layout than y
  r.cache.free(x, kNoLimit, kThreshold);
  r.cache.free(y, kNoLimit, kThreshold);
  r.cache.free(z, kNoLimit, kThreshold);
  REQUIRE(r.cache.take_cached(10 * kMiB, 16) == y);  // exact size first
  void* p = r.cache.take_cached(5 * kMiB, 16);       // smallest that fits: z, leftover < 1 MiB
  REQUIRE(p == z);
  REQUIRE(r.cache.usable_size(p) == 5 * kMiB + 512 * 1024);
  REQUIRE(r.cache.splits == 0);
  void* q = r.cache.take_cached(4 * kMiB, 4096);     // from x, split
  REQUIRE(q == x);
  REQUIRE(r.cache.splits == 1);
  REQUIRE(r.cache.cached_bytes() == 16 * kMiB);
  for (void* v : {y, p, q}) r.cache.free(v, kNoLimit, kThreshold);
  r.cache.clear();
  REQUIRE(r.source.mapped_bytes == 0);
  REQUIRE(r.source.bad_frees == 0);
}

namespace {
constexpr size_t kMiB = size_t{1} << 20;
bool all_bytes(const void* p, size_t n, unsigned char v) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i += 512) {
    if (b[i] != v) return false;
  }
  return b[n - 1] == v;
}

// After the last block is freed: clear() gives every mapping back, whole and page-aligned, with
// its seams.
void check_all_given_back(Rig& r) {
  r.cache.clear();
  CHECK(r.cache.seams_held() == 0);
  CHECK(r.source.mapped_bytes == 0);
  CHECK(r.source.bad_frees == 0);
}

// A block of `size` from upstream (fresh pages), filled with `v`, freed into the cache.
void* cached_block(Rig& r, size_t size, unsigned char v) {
  void* p = r.cache.alloc_upstream(size, 16, false, /*reuse=*/false);
  REQUIRE(p != nullptr);
  memset(p, v, size);
  r.cache.free(p, kNoLimit, kThreshold);
  return p;
}
}  // namespace

TEST_CASE("large cache: a miss takes the pages of cached extents that fit and maps only the rest",
          "[large_cache][room]") {
  // Note [A miss reuses cached pages]: a buffer doubling 1, 2, 4 MiB, each freed after the copy.
  Rig r(kMiB);
  cached_block(r, kMiB, 0x11);
  cached_block(r, 2 * kMiB, 0x22);
  REQUIRE(r.cache.cached_bytes() == 3 * kMiB);
  REQUIRE(r.cache.take_cached(4 * kMiB, 16) == nullptr);  // a miss: nothing cached is big enough
  char* four = static_cast<char*>(r.cache.alloc_upstream(4 * kMiB, 16, false));
  REQUIRE(four != nullptr);
  CHECK(r.cache.cached_bytes() == 0);
  CHECK(r.source.mapped_bytes == 4 * kMiB);  // the process holds the new block only
  CHECK(r.cache.moved_blocks == 2);
  CHECK(r.cache.page_moves == 2);
  // Oldest first, in order, moved rather than copied; the rest is fresh.
  CHECK(all_bytes(four, kMiB, 0x11));
  CHECK(all_bytes(four + kMiB, 2 * kMiB, 0x22));
  CHECK(all_bytes(four + 3 * kMiB, kMiB, 0));
  // The pieced block is not resized by the source (mremap moves one mapping): realloc copies it.
  r.source.resizable = true;
  CHECK(r.cache.resize(four, 8 * kMiB) == nullptr);
  CHECK(r.source.resize_calls == 0);
  r.cache.free(four, kNoLimit, kThreshold);

  // Cached again, it moves one mapping at a time (its seams at 1 and 3 MiB: three moves).
  char* eight = static_cast<char*>(r.cache.alloc_upstream(8 * kMiB, 16, false));
  REQUIRE(eight != nullptr);
  CHECK(r.cache.page_moves == 5);
  CHECK(r.source.move_failed == 0);
  CHECK(r.cache.seams_held() == 3);  // 1, 3 and 4 MiB (where the fresh rest begins)
  CHECK(all_bytes(eight, kMiB, 0x11));
  CHECK(all_bytes(eight + kMiB, 2 * kMiB, 0x22));
  CHECK(r.source.mapped_bytes == 8 * kMiB);
  r.cache.free(eight, kNoLimit, kThreshold);

  // A zeroed request (fresh pages read as zero untouched), realloc's fresh request and a block
  // below split_min take nothing.
  uint64_t moves = r.cache.page_moves;
  char* zeroed = static_cast<char*>(r.cache.alloc_upstream(16 * kMiB, 16, true));
  REQUIRE(zeroed != nullptr);
  CHECK(all_bytes(zeroed, 16 * kMiB, 0));
  void* fresh = r.cache.alloc_upstream(32 * kMiB, 16, false, /*reuse=*/false);
  void* small = r.cache.alloc_upstream(512 << 10, 16, false);
  CHECK(r.cache.page_moves == moves);
  CHECK(r.cache.cached_bytes() == 8 * kMiB);
  r.cache.free(zeroed, kNoLimit, kThreshold);
  r.cache.free(fresh, kNoLimit, kThreshold);
  r.cache.free(small, kNoLimit, kThreshold);
  check_all_given_back(r);
  CHECK(r.source.live_bytes == 0);
}

TEST_CASE("large cache: seams survive a split and a merge", "[large_cache][room]") {
  Rig r(kMiB);
  cached_block(r, kMiB, 0x11);
  cached_block(r, 2 * kMiB, 0x22);
  void* four = r.cache.alloc_upstream(4 * kMiB, 16, false);  // seams at 1 and 3 MiB
  r.cache.free(four, kNoLimit, kThreshold);
  // A 1 MiB request splits it at its first seam, which neither part keeps; the parts merge when
  // freed, and the junction is a seam again.
  char* head = static_cast<char*>(r.cache.take_cached(kMiB, 16));
  REQUIRE(head == four);
  memset(head, 0x44, kMiB);
  r.cache.free(head, kNoLimit, kThreshold);
  REQUIRE(r.cache.merges == 1);
  REQUIRE(r.cache.cached_bytes() == 4 * kMiB);
  // Moved one mapping at a time: 0-1, 1-3 and 3-4 MiB. The fake, like kernels before 6.17,
  // refuses a range across two mappings, so a lost seam shows as a failed move.
  uint64_t moves = r.cache.page_moves;
  char* eight = static_cast<char*>(r.cache.alloc_upstream(8 * kMiB, 16, false));
  REQUIRE(eight != nullptr);
  CHECK(r.cache.page_moves == moves + 3);
  CHECK(r.source.move_failed == 0);
  CHECK(all_bytes(eight, kMiB, 0x44));
  CHECK(all_bytes(eight + kMiB, 2 * kMiB, 0x22));
  CHECK(r.source.mapped_bytes == 8 * kMiB);
  r.cache.free(eight, kNoLimit, kThreshold);
  check_all_given_back(r);
}

TEST_CASE("large cache: no pages move while the blocks held have kSeamBudget seams",
          "[large_cache][room]") {
  // Blocks of 4 KiB and more are mappings here, so that thousands of moves stay small.
  Rig r(4096);
  std::vector<void*> pieced;
  uint64_t moves = 0;
  while (r.cache.seams_held() < LargeCache::kSeamBudget) {
    for (int i = 0; i < 6; ++i) cached_block(r, 4096, 0x11);
    pieced.push_back(r.cache.alloc_upstream(32768, 16, false));  // six moves, live
    REQUIRE(r.cache.page_moves > moves);
    moves = r.cache.page_moves;
  }
  CHECK(r.cache.seams_held() < LargeCache::kSeamBudget + 2 * LargeBlock::kMaxSeams);
  for (int i = 0; i < 6; ++i) cached_block(r, 4096, 0x11);
  void* fresh = r.cache.alloc_upstream(32768, 16, false);
  CHECK(r.cache.page_moves == moves);  // cached extents that fit, but no room for more seams
  CHECK(r.cache.cached_bytes() == 6 * 4096);
  r.cache.free(fresh, kNoLimit, kThreshold);
  for (void* p : pieced) r.cache.free(p, kNoLimit, kThreshold);
  check_all_given_back(r);
}

TEST_CASE("large cache: a refused move gives the extent back; lost pages give the block back",
          "[large_cache][room]") {
  Rig r(kMiB);
  cached_block(r, kMiB, 0x11);
  cached_block(r, 2 * kMiB, 0x22);
  r.source.refuse_moves = 1;  // the 1 MiB extent's
  char* four = static_cast<char*>(r.cache.alloc_upstream(4 * kMiB, 16, false));
  REQUIRE(four != nullptr);
  CHECK(r.source.part_frees == 1);
  CHECK(r.cache.cached_bytes() == 0);
  CHECK(r.source.mapped_bytes == 4 * kMiB);
  CHECK(all_bytes(four, kMiB, 0));  // fresh where the refused extent would have gone
  CHECK(all_bytes(four + kMiB, 2 * kMiB, 0x22));
  r.cache.free(four, kNoLimit, kThreshold);
  cached_block(r, 2 * kMiB, 0x55);

  // The kernel unmapped the destination and could not map it again: nothing the miss touched
  // stays, and the miss fails (the heap then empties the caches and maps afresh).
  r.source.lose_moves = 1;
  uint64_t allocs = r.cache.upstream_allocs;
  CHECK(r.cache.alloc_upstream(8 * kMiB, 16, false) == nullptr);
  CHECK(r.cache.upstream_allocs == allocs);
  CHECK(r.cache.cached_bytes() == 0);
  CHECK(r.source.mapped_bytes == 0);
  CHECK(r.source.live_bytes == 0);
  CHECK(r.source.bad_frees == 0);
  CHECK(r.cache.live_blocks() == 0);
  CHECK(r.cache.seams_held() == 0);
}

TEST_CASE("heap: each pool keeps its own exact peak, and the process's is their sum's",
          "[large_cache][peak]") {
  TestHeap t(config_with(size_t{1} << 30, false, 64 << 10));
  constexpr size_t kMiB = size_t{1} << 20;
  HeapSnapshot* s = new HeapSnapshot;
  void* big = t.alloc(32 * kMiB);
  t.free(big);
  void* small[100];
  for (void*& p : small) p = t.alloc(1000);
  t.heap.snapshot(s);
  CHECK(s->large_live_peak == 32 * kMiB);
  CHECK(s->small_live_peak >= 100 * 1024);  // whole batches count from refill to flush
  CHECK(s->small_live_peak < 32 * kMiB);
  CHECK(s->live_peak >= 32 * kMiB);
  t.heap.reset_peak();
  t.heap.snapshot(s);
  CHECK(s->large_live_peak == 0);  // nothing large is live now
  CHECK(s->small_live_peak == s->live_total);
  for (void* p : small) t.free(p);
  delete s;
}
