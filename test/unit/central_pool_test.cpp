// central_pool_test.cpp - per-class batches, transfer slots, blocks back to slabs
// (core/central_pool.h), and the invalid pointer checks on the way back.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <set>
#include <vector>

#include "core/central_pool.h"
#include "heap_fixture.h"

using namespace cachealloc;
using namespace cachealloc::test;

namespace {
// The pools' chains are in the bins' encoded form (Note [Encoded batches]).
const FreeListKeys kKeys{.secret = 0x5eed5eed5eed5eedull | 1, .key = 0x0123456789abcdefull,
                         .bad_link_bits = FreeListKeys::kBadLinkBits};

struct Rig {
  FakeSegmentSource pages;
  std::unique_ptr<SegmentTable> table = std::make_unique<SegmentTable>();
  SlabSource slabs;
  CentralPool pool;
  explicit Rig(unsigned cls) {
    slabs.init(&pages, table.get());
    pool.init(cls, &slabs, table.get(), nullptr, &kKeys);
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
    head = reinterpret_cast<void*>(kKeys.link(head));
  }
  REQUIRE(head == nullptr);
  // The last link is to kChainEnd, not an encoded null, which link() would read as nullptr too:
  // a refill makes the chain a bin as it is (Note [Chain end]).
  if (n != 0) {
    void* last = v.back();
    const uintptr_t raw = *static_cast<uintptr_t*>(last) ^ kKeys.mask(last);
    REQUIRE(raw == reinterpret_cast<uintptr_t>(kChainEnd));
  }
  return v;
}

void* vector_to_chain(const std::vector<void*>& v) {
  void* head = nullptr;
  for (auto it = v.rbegin(); it != v.rend(); ++it) {
    kKeys.set_link(*it, head);
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
    kKeys.set_link(blocks[i], nullptr);
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
    kKeys.set_link(b, nullptr);
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
    kKeys.set_link(interior, nullptr);
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
    a.init(1, &slabs, table.get(), nullptr, &kKeys);
    b.init(2, &slabs, table.get(), nullptr, &kKeys);
    void* head = nullptr;
    a.take(1, &head);
    b.give(head, 1, "realloc");
  });
  REQUIRE(d.aborted);
  REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: realloc(): invalid pointer 0x"));
}

namespace {
// In a child: takes `out` blocks of a 48-byte class, then gives the block `k` strides past the
// chain's head back `times` times, one block at a time (not a batch: to its slab).
DeathResult give_back_block(uint32_t out, size_t k, int times) {
  return run_in_child([=] {
    const unsigned cls = 2;
    Rig r(cls);
    void* head = nullptr;
    REQUIRE(r.pool.take(out, &head) == out);
    void* b = static_cast<char*>(head) + k * class_size(cls);
    for (int i = 0; i < times; ++i) {
      kKeys.set_link(b, nullptr);
      r.pool.give(b, 1, "free");
    }
  });
}
}  // namespace

// Note [Slab free bits]: a block back in its slab is a set bit, so a second give of it is seen.
TEST_CASE("central pool: a block given back twice to its slab stops the program", "[central_pool][death]") {
  DeathResult d = give_back_block(2, 0, 2);  // two blocks out: the slab stays active
  REQUIRE(d.aborted);
  REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): double free 0x"));
}

TEST_CASE("central pool: a block boundary never handed out is refused", "[central_pool][death]") {
  DeathResult d = give_back_block(1, 5, 1);  // block 0 out; block 5 was never handed out
  REQUIRE(d.aborted);
  REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): invalid pointer 0x"));
}

TEST_CASE("central pool: blocks back in a slab are taken lowest address first, each once",
          "[central_pool]") {
  unsigned cls = 0;  // 16 B: 4096 blocks, 64 words of free bits
  Rig r(cls);
  const uint32_t n = 300;
  std::vector<void*> out;
  while (out.size() < n) {
    void* head = nullptr;
    uint32_t got = r.pool.take(n - static_cast<uint32_t>(out.size()), &head);
    REQUIRE(got > 0);
    for (void* b : chain_to_vector(head, got)) out.push_back(b);
  }
  std::sort(out.begin(), out.end());
  // Every third block goes back one at a time (not a batch: to the slab), in a scrambled order.
  std::vector<void*> back;
  for (size_t i = 0; i < n; i += 3) back.push_back(out[i]);
  std::vector<void*> order = back;
  std::reverse(order.begin() + 20, order.end());
  std::rotate(order.begin(), order.begin() + 37, order.end());
  for (void* b : order) {
    kKeys.set_link(b, nullptr);
    r.pool.give(b, 1, "free");
  }
  void* head = nullptr;
  REQUIRE(r.pool.take(16, &head) == 16);
  std::vector<void*> again = chain_to_vector(head, 16);
  std::sort(again.begin(), again.end());
  REQUIRE(again == std::vector<void*>(back.begin(), back.begin() + 16));
  // All back, in any order: the slab becomes cache, and a slab made from it hands out every block
  // once (its free bits were cleared).
  for (void* b : again) {
    kKeys.set_link(b, nullptr);
    r.pool.give(b, 1, "free");
  }
  for (void* b : out) {
    if (std::find(back.begin(), back.end(), b) != back.end()) continue;
    kKeys.set_link(b, nullptr);
    r.pool.give(b, 1, "free");
  }
  REQUIRE(r.pool.counters().slabs_released == 1);
  const uint32_t capacity = static_cast<uint32_t>((size_t{slab_pages(cls)} << kPageShift) / class_size(cls));
  std::set<void*> unique;
  std::vector<void*> all;
  while (all.size() < capacity) {
    void* h = nullptr;
    uint32_t got = r.pool.take(64, &h);
    REQUIRE(got > 0);
    for (void* b : chain_to_vector(h, got)) {
      all.push_back(b);
      unique.insert(b);
    }
  }
  REQUIRE(unique.size() == capacity);
  REQUIRE(r.pool.counters().slabs_taken == 2);  // the same slab, reused from the cache
  REQUIRE(r.slabs.cached_bytes() == 0);
  for (void* b : all) REQUIRE(r.table->lookup(b)->slab_at(b) == r.table->lookup(out[0])->slab_at(out[0]));
  for (void* b : all) {
    kKeys.set_link(b, nullptr);
    r.pool.give(b, 1, "free");
  }
}

TEST_CASE("central pool: a block back below the scan point is found again", "[central_pool]") {
  // free_scan moves past words with no bit left; a block given back below it must move it back.
  unsigned cls = 0;  // 16 B: 64 blocks per word of free bits
  Rig r(cls);
  std::vector<void*> out;
  while (out.size() < 200) {
    void* head = nullptr;
    uint32_t got = r.pool.take(200 - static_cast<uint32_t>(out.size()), &head);
    REQUIRE(got > 0);
    for (void* b : chain_to_vector(head, got)) out.push_back(b);
  }
  std::sort(out.begin(), out.end());
  auto give_one = [&](void* b) {
    kKeys.set_link(b, nullptr);
    r.pool.give(b, 1, "free");
  };
  give_one(out[150]);  // word 2
  void* head = nullptr;
  REQUIRE(r.pool.take(1, &head) == 1);
  REQUIRE(head == out[150]);  // the scan point is now past words 0 and 1
  give_one(out[3]);           // word 0
  REQUIRE(r.pool.take(1, &head) == 1);
  REQUIRE(head == out[3]);
  for (void* b : out) give_one(b);
}

TEST_CASE("central pool: slabs of two classes in one segment keep their own bits", "[central_pool]") {
  // The second slab starts at a page past the first: its bits start at that page's words.
  FakeSegmentSource pages;
  auto table = std::make_unique<SegmentTable>();
  SlabSource slabs;
  slabs.init(&pages, table.get());
  CentralPool a, b;
  a.init(0, &slabs, table.get(), nullptr, &kKeys);   // 16 B
  b.init(1, &slabs, table.get(), nullptr, &kKeys);   // 32 B
  std::vector<void*> from_a, from_b;
  for (CentralPool* pool : {&a, &b}) {
    void* head = nullptr;
    REQUIRE(pool->take(8, &head) == 8);
    for (void* blk : chain_to_vector(head, 8)) (pool == &a ? from_a : from_b).push_back(blk);
  }
  REQUIRE(table->lookup(from_a[0]) == table->lookup(from_b[0]));
  REQUIRE(table->lookup(from_a[0])->slab_at(from_a[0]) != table->lookup(from_b[0])->slab_at(from_b[0]));
  std::sort(from_a.begin(), from_a.end());
  std::sort(from_b.begin(), from_b.end());
  for (void* blk : {from_a[5], from_a[2]}) {
    kKeys.set_link(blk, nullptr);
    a.give(blk, 1, "free");
  }
  kKeys.set_link(from_b[6], nullptr);
  b.give(from_b[6], 1, "free");
  void* head = nullptr;
  REQUIRE(b.take(1, &head) == 1);
  REQUIRE(head == from_b[6]);
  REQUIRE(a.take(2, &head) == 2);
  std::vector<void*> got = chain_to_vector(head, 2);
  std::sort(got.begin(), got.end());
  REQUIRE(got == std::vector<void*>{from_a[2], from_a[5]});
  for (auto [pool, list] : {std::pair{&a, &from_a}, std::pair{&b, &from_b}}) {
    for (void* blk : *list) {
      kKeys.set_link(blk, nullptr);
      pool->give(blk, 1, "free");
    }
  }
  slabs.clear();
}
