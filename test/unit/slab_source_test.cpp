// slab_source_test.cpp - slabs from segments, the empty-slab LRU cache (core/slab_source.h).
#include <catch2/catch.hpp>

#include <memory>

#include "core/slab_source.h"
#include "fake_segment_source.h"

using namespace cachealloc;
using cachealloc::test::FakeSegmentSource;

namespace {
struct Rig {
  FakeSegmentSource pages;
  std::unique_ptr<SegmentTable> table = std::make_unique<SegmentTable>();
  SlabSource slabs;
  Rig() { slabs.init(&pages, table.get()); }
  ~Rig() { slabs.clear(); }
  // Takes a slab and gives it straight back, as the central pool does when its blocks are all back.
  void give(Slab* s) { slabs.give(s); }
};
}  // namespace

TEST_CASE("slab source: take maps a segment once and carves page runs from it", "[slab_source]") {
  Rig r;
  Slab* a = r.slabs.take(0);
  REQUIRE(a != nullptr);
  REQUIRE(r.pages.maps == 1);
  REQUIRE(r.slabs.mapped_bytes() == kSegmentSize);
  REQUIRE(a->state == SlabState::kActive);
  REQUIRE(a->stride == class_size(0));
  REQUIRE(a->capacity == (size_t{slab_pages(0)} << kPageShift) / class_size(0));
  REQUIRE(a->used == 0);
  REQUIRE(a->start % kPageSize == 0);
  REQUIRE(r.table->lookup(reinterpret_cast<void*>(a->start)) == a->seg);
  REQUIRE(a->seg->class_at(reinterpret_cast<void*>(a->start)) == 0);

  unsigned big = kNumClasses - 1;  // 16-page slabs
  Slab* b = r.slabs.take(big);
  REQUIRE(b != nullptr);
  REQUIRE(b->npages == slab_pages(big));
  REQUIRE(r.pages.maps == 1);  // same segment
  REQUIRE((b->start + b->bytes() <= a->start || a->start + a->bytes() <= b->start));
  for (unsigned i = 0; i < b->npages; ++i) {
    void* p = reinterpret_cast<void*>(b->start + (uintptr_t{i} << kPageShift) + 64);
    REQUIRE(b->seg->slab_at(p) == b);
    REQUIRE(b->seg->class_at(p) == big);
  }
  r.give(a);
  r.give(b);
}

TEST_CASE("slab source: a full segment makes the next take map another", "[slab_source]") {
  Rig r;
  unsigned big = kNumClasses - 1;
  std::vector<Slab*> taken;
  for (size_t i = 0; i < kPagesPerSegment / slab_pages(big); ++i) taken.push_back(r.slabs.take(big));
  REQUIRE(r.pages.maps == 1);
  Slab* extra = r.slabs.take(big);
  REQUIRE(extra != nullptr);
  REQUIRE(r.pages.maps == 2);
  taken.push_back(extra);
  for (Slab* s : taken) r.give(s);
  REQUIRE(r.slabs.cached_bytes() == taken.size() * taken[0]->bytes());
  r.slabs.clear();
  REQUIRE(r.slabs.cached_bytes() == 0);
  REQUIRE(r.pages.unmaps == 2);
  REQUIRE(r.pages.live_mappings() == 0);
  REQUIRE(r.slabs.mapped_bytes() == 0);
}

TEST_CASE("slab source: empty slabs are cache, reused most recent first", "[slab_source]") {
  Rig r;
  Slab* a = r.slabs.take(0);
  Slab* b = r.slabs.take(0);
  uintptr_t a_start = a->start, b_start = b->start;
  r.give(a);
  REQUIRE(r.slabs.cached_bytes() == a->bytes());
  REQUIRE(a->seg->class_at(reinterpret_cast<void*>(a_start)) == kNoClass);  // free() refuses it now
  r.give(b);
  REQUIRE(r.slabs.cached_bytes() == 2 * kPageSize);
  Slab* c = r.slabs.take(3);  // another class with the same slab size reuses the newest empty slab
  REQUIRE(c->start == b_start);
  REQUIRE(c->stride == class_size(3));
  REQUIRE(r.slabs.cached_bytes() == kPageSize);
  REQUIRE(r.pages.decommits == 0);  // reuse is warm: nothing decommitted
  Slab* d = r.slabs.take(0);
  REQUIRE(d->start == a_start);
  r.give(c);
  r.give(d);
}

TEST_CASE("slab source: eviction takes the least recently emptied slab, across slab sizes",
          "[slab_source]") {
  Rig r;
  Slab* small1 = r.slabs.take(0);
  Slab* big = r.slabs.take(kNumClasses - 1);
  Slab* small2 = r.slabs.take(0);
  uintptr_t s1 = small1->start, bg = big->start, s2 = small2->start;
  size_t big_bytes = big->bytes();
  r.give(small2);  // oldest
  r.give(big);
  r.give(small1);  // newest
  REQUIRE(r.slabs.oldest_stamp() != UINT64_MAX);

  REQUIRE(r.slabs.evict_oldest() == kPageSize);
  REQUIRE(r.pages.decommit_log.size() == 1);
  REQUIRE(r.pages.decommit_log[0] == s2);
  REQUIRE(r.slabs.evict_oldest() == big_bytes);
  REQUIRE(r.pages.decommit_log[1] == bg);
  REQUIRE(r.pages.decommitted_bytes == kPageSize + big_bytes);
  REQUIRE(r.slabs.evict_oldest() == kPageSize);
  REQUIRE(r.pages.decommit_log[2] == s1);
  REQUIRE(r.slabs.evict_oldest() == 0);
  REQUIRE(r.slabs.oldest_stamp() == UINT64_MAX);
  REQUIRE(r.slabs.cached_bytes() == 0);
  REQUIRE(r.slabs.evictions == 3);
  REQUIRE(r.pages.unmaps == 0);  // evicting decommits; only clear unmaps
  r.slabs.clear();
  REQUIRE(r.pages.unmaps == 1);
  REQUIRE(r.table->lookup(reinterpret_cast<void*>(s1)) == nullptr);
}

TEST_CASE("slab source: clear keeps segments that still have live slabs", "[slab_source]") {
  Rig r;
  Slab* live = r.slabs.take(5);
  Slab* dead = r.slabs.take(5);
  r.give(dead);
  REQUIRE(r.slabs.clear() == dead->bytes());
  REQUIRE(r.pages.unmaps == 0);
  REQUIRE(r.pages.decommits == 1);
  REQUIRE(r.table->lookup(reinterpret_cast<void*>(live->start)) != nullptr);
  r.give(live);
  r.slabs.clear();
  REQUIRE(r.pages.unmaps == 1);
  REQUIRE(r.pages.bad_unmaps == 0);
}

TEST_CASE("slab source: page source failure gives nullptr, recovery works", "[slab_source][enomem]") {
  Rig r;
  r.pages.fail_maps(-1);
  REQUIRE(r.slabs.take(0) == nullptr);
  REQUIRE(r.slabs.take(40) == nullptr);
  REQUIRE(r.slabs.mapped_bytes() == 0);
  r.pages.recover();
  Slab* s = r.slabs.take(0);
  REQUIRE(s != nullptr);
  r.give(s);
}

TEST_CASE("slab source: a refused decommit still evicts and counts", "[slab_source]") {
  Rig r;
  Slab* s = r.slabs.take(0);
  r.give(s);
  r.pages.fail_decommits(-1);
  REQUIRE(r.slabs.evict_oldest() == kPageSize);
  REQUIRE(r.pages.decommit_calls == 1);
  REQUIRE(r.slabs.cached_bytes() == 0);
  r.pages.recover();
  Slab* again = r.slabs.take(0);  // the pages are usable again
  REQUIRE(again != nullptr);
  r.give(again);
}

TEST_CASE("slab source: a slab carved from fresh pages first decommits empty slabs of other sizes",
          "[slab_source][room]") {
  // Note [A new slab makes room]
  Rig r;
  unsigned two = 0;  // a class of 2-page slabs
  while (slab_pages(two) != 2) ++two;
  Slab* a = r.slabs.take(0);
  Slab* b = r.slabs.take(0);
  Slab* c = r.slabs.take(0);
  uintptr_t a_start = a->start, b_start = b->start, c_start = c->start;
  r.give(a);
  r.give(b);
  r.give(c);
  REQUIRE(r.slabs.cached_bytes() == 3 * kPageSize);
  // No empty 2-page slab: the two oldest 1-page ones go first, and their pages serve the new slab.
  Slab* d = r.slabs.take(two);
  REQUIRE(d != nullptr);
  REQUIRE(r.pages.decommit_log == std::vector<uintptr_t>{a_start, b_start});
  REQUIRE(r.slabs.evictions == 2);
  REQUIRE(r.slabs.cached_bytes() == kPageSize);
  REQUIRE(d->start == a_start);
  // A slab size with an empty slab of its own reuses it and decommits nothing.
  Slab* e = r.slabs.take(0);
  REQUIRE(e->start == c_start);
  REQUIRE(r.pages.decommits == 2);
  REQUIRE(r.slabs.cached_bytes() == 0);
  r.give(d);
  r.give(e);
}
