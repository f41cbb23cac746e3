// central_pool_test.cpp - per-class batches, transfer slots, blocks back to slabs
// (core/central_pool.h), and the invalid pointer checks on the way back.
#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <vector>

#include "core/central_pool.h"
#include "heap_fixture.h"

using namespace cachealloc;
using namespace cachealloc::test;

namespace {
struct Rig {
  FakeSegmentSource pages;
  std::unique_ptr<SegmentTable> table = std::make_unique<SegmentTable>();
  SlabSource slabs;
  CentralPool pool;
  explicit Rig(unsigned cls) {
    slabs.init(&pages, table.get());
    pool.init(cls, &slabs, table.get());
  }
  ~Rig() {
    pool.drain_slots();
    slabs.clear();
  }
};

std::vector<void*> chain_to_vector(void* head, uint32_t n) {
  std::vector<void*> v;
  for (uint32_t i = 0; i < n; ++i) {
    REQUIRE(head != nullptr);
    v.push_back(head);
    head = *static_cast<void**>(head);
  }
  REQUIRE(head == nullptr);
  return v;
}

void* vector_to_chain(const std::vector<void*>& v) {
  void* head = nullptr;
  for (auto it = v.rbegin(); it != v.rend(); ++it) {
    *static_cast<void**>(*it) = head;
    head = *it;
  }
  return head;
}
}  // namespace

TEST_CASE("central pool: take gives distinct blocks of the class from one slab", "[central_pool]") {
  unsigned cls = 2;  // 48 B
  Rig r(cls);
  uint32_t batch = batch_size(cls);
  void* head = nullptr;
  REQUIRE(r.pool.take(batch, &head) == batch);
  std::vector<void*> blocks = chain_to_vector(head, batch);
  std::set<void*> unique(blocks.begin(), blocks.end());
  REQUIRE(unique.size() == batch);
  for (void* b : blocks) {
    SegmentMeta* seg = r.table->lookup(b);
    REQUIRE(seg != nullptr);
    REQUIRE(seg->class_at(b) == cls);
    Slab* s = seg->slab_at(b);
    REQUIRE((reinterpret_cast<uintptr_t>(b) - s->start) % class_size(cls) == 0);
  }
  REQUIRE(r.pool.counters().blocks_taken == batch);
  r.pool.give(vector_to_chain(blocks), batch, "free");
}

TEST_CASE("central pool: a whole batch goes through a transfer slot untouched", "[central_pool]") {
  unsigned cls = 4;
  Rig r(cls);
  uint32_t batch = batch_size(cls);
  void* head = nullptr;
  REQUIRE(r.pool.take(batch, &head) == batch);
  std::vector<void*> first = chain_to_vector(head, batch);
  r.pool.give(vector_to_chain(first), batch, "free");
  REQUIRE(r.pool.counters().slot_blocks == batch);
  REQUIRE(r.slabs.cached_bytes() == 0);  // the slab did not see the blocks come back

  void* again = nullptr;
  REQUIRE(r.pool.take(batch, &again) == batch);
  REQUIRE(r.pool.counters().slot_takes == 1);
  REQUIRE(chain_to_vector(again, batch) == first);  // the same chain, in O(1)
  REQUIRE(r.pool.counters().slot_blocks == 0);
  r.pool.give(again, batch, "free");
}

TEST_CASE("central pool: blocks back one by one refill the slab, an all-free slab becomes cache",
          "[central_pool]") {
  unsigned cls = 0;
  Rig r(cls);
  void* head = nullptr;
  REQUIRE(r.pool.take(10, &head) == 10);
  std::vector<void*> blocks = chain_to_vector(head, 10);
  for (size_t i = 0; i < blocks.size(); ++i) {
    REQUIRE(r.slabs.cached_bytes() == 0);
    *static_cast<void**>(blocks[i]) = nullptr;
    r.pool.give(blocks[i], 1, "free");
  }
  REQUIRE(r.slabs.cached_bytes() == size_t{slab_pages(cls)} << kPageShift);
  REQUIRE(r.pool.counters().slabs_released == 1);
  // Freed blocks are no longer this class's: a stale pointer is now refused by free().
  REQUIRE(r.table->lookup(blocks[0])->class_at(blocks[0]) == kNoClass);
}

TEST_CASE("central pool: drain_slots returns slot batches to their slabs", "[central_pool]") {
  unsigned cls = 1;
  Rig r(cls);
  uint32_t batch = batch_size(cls);
  void* a = nullptr;
  void* b = nullptr;
  REQUIRE(r.pool.take(batch, &a) == batch);
  REQUIRE(r.pool.take(batch, &b) == batch);
  r.pool.give(a, batch, "free");
  r.pool.give(b, batch, "free");
  REQUIRE(r.pool.counters().slot_blocks == 2 * batch);
  r.pool.drain_slots();
  REQUIRE(r.pool.counters().slot_blocks == 0);
  REQUIRE(r.slabs.cached_bytes() > 0);
}

TEST_CASE("central pool: out of memory hands out what it has, then 0", "[central_pool][enomem]") {
  unsigned cls = kNumClasses - 1;  // 256 KiB blocks: 4 per 16-page slab
  Rig r(cls);
  r.pages.limit_bytes = kSegmentSize;  // one segment: 4 slabs of 1 MiB = 16 blocks
  std::vector<void*> all;
  for (;;) {
    void* head = nullptr;
    uint32_t n = r.pool.take(3, &head);
    if (n == 0) break;
    for (void* b : chain_to_vector(head, n)) all.push_back(b);
    REQUIRE(all.size() <= 16);
  }
  REQUIRE(all.size() == 16);
  r.pages.recover();
  void* more = nullptr;
  REQUIRE(r.pool.take(1, &more) == 1);
  all.push_back(more);
  for (void* b : all) {
    *static_cast<void**>(b) = nullptr;
    r.pool.give(b, 1, "free");
  }
}

TEST_CASE("central pool: a pointer that is not a block start stops the program", "[central_pool][death]") {
  unsigned cls = 3;
  DeathResult d = run_in_child([cls] {
    Rig r(cls);
    void* head = nullptr;
    r.pool.take(2, &head);
    void* interior = static_cast<char*>(head) + 16;
    *static_cast<void**>(interior) = nullptr;
    r.pool.give(interior, 1, "free");
  });
  REQUIRE(d.aborted);
  REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): invalid pointer 0x"));
}

TEST_CASE("central pool: a block of another class stops the program", "[central_pool][death]") {
  DeathResult d = run_in_child([] {
    FakeSegmentSource pages;
    auto table = std::make_unique<SegmentTable>();
    SlabSource slabs;
    slabs.init(&pages, table.get());
    CentralPool a, b;
    a.init(1, &slabs, table.get());
    b.init(2, &slabs, table.get());
    void* head = nullptr;
    a.take(1, &head);
    b.give(head, 1, "realloc");
  });
  REQUIRE(d.aborted);
  REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: realloc(): invalid pointer 0x"));
}
