// refcount_table_test.cpp - counts of retained blocks (core/refcount_table.h) and retain/release
// through the Heap, where free() is a release.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "core/refcount_table.h"
#include "heap_fixture.h"

using namespace cachealloc;
using namespace cachealloc::test;

TEST_CASE("refcount table: retain, release, count", "[refcount]") {
  static RefcountTable table;
  int x = 0;
  const void* p = &x;
  bool inserted = false, erased = false;
  REQUIRE(table.count(p) == 0);
  REQUIRE(table.retain(p, &inserted) == 2);
  REQUIRE(inserted);
  REQUIRE(table.retain(p, &inserted) == 3);
  REQUIRE_FALSE(inserted);
  REQUIRE(table.count(p) == 3);
  REQUIRE(table.release(p, &erased) == 2);
  REQUIRE_FALSE(erased);
  REQUIRE(table.release(p, &erased) == 1);
  REQUIRE(erased);
  REQUIRE(table.count(p) == 0);
  REQUIRE(table.release(p, &erased) == 0);  // count 1 is not stored: the caller frees
  REQUIRE(table.entries() == 0);
}

TEST_CASE("refcount table: many keys across shards and growth", "[refcount]") {
  static RefcountTable table;
  std::vector<uintptr_t> keys;
  for (uintptr_t i = 0; i < 20000; ++i) keys.push_back(0x100000 + i * 48);
  bool flag = false;
  for (uintptr_t k : keys) REQUIRE(table.retain(reinterpret_cast<void*>(k), &flag) == 2);
  for (size_t i = 0; i < keys.size(); i += 2) table.retain(reinterpret_cast<void*>(keys[i]), &flag);
  REQUIRE(table.entries() == keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    REQUIRE(table.count(reinterpret_cast<void*>(keys[i])) == (i % 2 == 0 ? 3u : 2u));
  }
  for (uintptr_t k : keys) {
    while (table.release(reinterpret_cast<void*>(k), &flag) != 1) {
    }
  }
  REQUIRE(table.entries() == 0);
}

TEST_CASE("heap: free of a retained small block is a release", "[refcount]") {
  TestHeap t;
  char* p = static_cast<char*>(t.alloc(200));
  memset(p, 'x', 200);
  REQUIRE(t.heap.refcount(p) == 1);
  REQUIRE(t.heap.retain(p) == 0);
  REQUIRE(t.heap.retain(p) == 0);
  REQUIRE(t.heap.refcount(p) == 3);
  t.free(p);
  REQUIRE(t.heap.refcount(p) == 2);
  REQUIRE(t.heap.release(t.tc, p) == 0);
  REQUIRE(t.heap.refcount(p) == 1);
  // Still live and intact: other allocations do not get it.
  for (int i = 0; i < 100; ++i) {
    void* q = t.alloc(200);
    REQUIRE(q != p);
    t.free(q);
  }
  for (int i = 0; i < 200; ++i) REQUIRE(p[i] == 'x');
  t.free(p);  // the last reference: now really freed
  REQUIRE(t.heap.refcount(p) <= 1);
  REQUIRE(t.heap.refs().entries() == 0);
}

TEST_CASE("heap: retain/release of large blocks and bad pointers", "[refcount]") {
  TestHeap t;
  void* p = t.alloc(3 << 20);
  REQUIRE(t.heap.retain(p) == 0);
  REQUIRE(t.heap.refcount(p) == 2);
  REQUIRE(t.heap.release(t.tc, p) == 0);
  REQUIRE(t.heap.refcount(p) == 1);
  REQUIRE(t.heap.release(t.tc, p) == 0);
  REQUIRE(t.heap.refcount(p) == 0);
  REQUIRE(t.heap.retain(p) == EINVAL);       // freed (cached): cannot be retained
  REQUIRE(t.heap.release(t.tc, p) == EINVAL);
  int local = 0;
  REQUIRE(t.heap.retain(&local) == EINVAL);
  REQUIRE(t.heap.release(t.tc, &local) == EINVAL);
  REQUIRE(t.heap.retain(nullptr) == EINVAL);
  REQUIRE(t.heap.refcount(nullptr) == 0);
  void* s = t.alloc(64);
  REQUIRE(t.heap.retain(static_cast<char*>(s) + 16) == EINVAL);  // interior pointer
  t.free(s);
}

TEST_CASE("heap: a freed small block cannot be retained, released or counted", "[refcount]") {
  // Like a freed large block above. A free small block holds the key (Note [Free-list hardening])
  // wherever it waits; in check mode its live bit is clear.
  auto expect_freed = [](TestHeap& t, void* p) {
    CHECK(t.heap.refcount(p) == 0);
    CHECK(t.heap.retain(p) == EINVAL);
    CHECK(t.heap.release(t.tc, p) == EINVAL);
    CHECK(t.heap.refs().entries() == 0);
  };
  for (bool check : {false, true}) {
    TestHeap t(config_with(256 << 20, check));
    void* p = t.alloc(200);
    void* live = t.alloc(200);
    t.free(p);
    expect_freed(t, p);  // in the thread's bin (check mode: back in its slab)
    t.tc->flush_all();
    expect_freed(t, p);  // in a transfer slot or its slab
    CHECK(t.heap.refcount(live) == 1);  // a live neighbour still counts
    CHECK(t.heap.retain(live) == 0);
    CHECK(t.heap.release(t.tc, live) == 0);
    t.free(live);
  }
  TestHeap t;
  void* p = t.alloc(64);
  t.free(p);
  void* q = t.alloc(64);  // the same block, handed out again: live
  REQUIRE(q == p);
  CHECK(t.heap.refcount(q) == 1);
  CHECK(t.heap.retain(q) == 0);
  t.free(q);
  t.free(q);
}

TEST_CASE("heap: a page with retained blocks sends every free of its blocks to the slow path",
          "[refcount]") {
  // Note [Shared pages]: the free fast path pushes to the bin its page descriptor names; while
  // blocks starting on the page have entries, that is the always-full shared bin.
  TestHeap t;
  char* a = static_cast<char*>(t.alloc(64));
  char* b = static_cast<char*>(t.alloc(64));
  SegmentMeta* seg = t.heap.table().lookup(a);
  REQUIRE(SegmentMeta::page_of(a) == SegmentMeta::page_of(b));
  const size_t class_bin = class_of(64) * kBinBytes;
  REQUIRE(seg->bin_at(a) == class_bin);
  REQUIRE_FALSE(seg->page_shared(a));
  REQUIRE(t.heap.retain(a) == 0);
  REQUIRE(t.heap.retain(b) == 0);
  REQUIRE(t.heap.retain(b) == 0);  // b's second retain adds no entry, so no count
  REQUIRE(seg->page_shared(b));
  REQUIRE(seg->bin_at(b) == kSharedBin);
  t.free(a);  // a's entry goes (count 2 -> 1); b's keeps the page shared
  REQUIRE(seg->bin_at(a) == kSharedBin);
  t.free(b);  // 3 -> 2
  REQUIRE(t.heap.release(t.tc, b) == 0);  // 2 -> 1: the entry goes, the page is not shared now
  REQUIRE_FALSE(seg->page_shared(a));
  REQUIRE(seg->bin_at(a) == class_bin);
  REQUIRE(t.heap.refs().entries() == 0);
  t.free(a);
  t.free(b);
  // A retain that cannot add an entry (refused: a freed block) leaves the page as it was.
  REQUIRE(t.heap.retain(a) == EINVAL);
  REQUIRE(seg->bin_at(a) == class_bin);
}
