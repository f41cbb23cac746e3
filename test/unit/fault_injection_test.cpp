// fault_injection_test.cpp - every upstream failing on demand: the page source, the large source,
// and the OS calls themselves (os::inject_map_failures). The heap must release its caches and
// retry, then return nullptr with ENOMEM, keep its state intact, and work again once memory is back.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "core/segment_source.h"
#include "heap_fixture.h"
#include "platform/os.h"

using namespace cachealloc;
using namespace cachealloc::test;

TEST_CASE("enomem: page source fails -> caches released, retried, then nullptr + ENOMEM",
          "[enomem]") {
  TestHeap t;
  // Something in the caches: two cached large blocks.
  void* a = t.alloc(1 << 20);
  void* b = t.alloc(2 << 20);
  t.free(a);
  t.free(b);
  REQUIRE(t.heap.cached_bytes() == 3 << 20);

  t.pages.fail_maps(-1);
  errno = 0;
  REQUIRE(t.alloc(100) == nullptr);
  REQUIRE(errno == ENOMEM);
  REQUIRE(t.pages.map_calls >= 2);          // retried after releasing
  REQUIRE(t.heap.cached_bytes() == 0);      // the caches went back upstream first
  REQUIRE(t.large.frees == 2);

  t.pages.recover();
  void* p = t.alloc(100);
  REQUIRE(p != nullptr);
  memset(p, 1, 100);
  t.free(p);
}

TEST_CASE("enomem: one page source failure is absorbed by the retry", "[enomem]") {
  TestHeap t;
  void* a = t.alloc(1 << 20);
  t.free(a);
  t.pages.fail_maps(1);
  void* p = t.alloc(1000);
  REQUIRE(p != nullptr);
  REQUIRE(t.pages.map_failed == 1);
  REQUIRE(t.large.frees == 1);  // released before the successful retry
  t.free(p);
}

TEST_CASE("enomem: a full page source fails small classes without corrupting live blocks", "[enomem]") {
  TestHeap t;
  t.pages.limit_bytes = 2 * kSegmentSize;
  std::vector<std::pair<unsigned char*, size_t>> live;
  size_t fails = 0;
  size_t first_fail = 0;
  for (int i = 0; i < 4000 && fails < 5; ++i) {
    size_t n = 1000 + (i * 7919) % 200000;
    auto* p = static_cast<unsigned char*>(t.alloc(n));
    if (p == nullptr) {
      REQUIRE(errno == ENOMEM);
      if (fails++ == 0) first_fail = live.size();
      continue;
    }
    memset(p, i & 0xff, n);
    live.emplace_back(p, n);
  }
  REQUIRE(fails > 0);
  REQUIRE(t.pages.mapped_bytes <= 2 * kSegmentSize);
  for (size_t k = 0; k < live.size(); ++k) {
    auto [p, n] = live[k];
    REQUIRE(p[0] == p[n - 1]);
  }
  // Nothing leaked: with every block freed and the caches cleared, every segment is unmapped, and
  // the allocations that fitted before the first failure fit again.
  for (auto& [p, n] : live) t.free(p);
  t.heap.clear(t.tc);
  REQUIRE(t.pages.mapped_bytes == 0);
  REQUIRE(t.pages.live_mappings() == 0);
  live.resize(first_fail);
  for (auto& [p, n] : live) {
    p = static_cast<unsigned char*>(t.alloc(n));
    REQUIRE(p != nullptr);
  }
  for (auto& [p, n] : live) t.free(p);
  t.pages.recover();
}

TEST_CASE("enomem: large source fails -> caches released, retried, then nullptr + ENOMEM", "[enomem]") {
  TestHeap t;
  void* cached = t.alloc(8 << 20);
  void* small = t.alloc(16 << 10);
  t.free(cached);
  t.free(small);
  t.large.fail_allocs(-1);
  errno = 0;
  REQUIRE(t.alloc(1 << 20) == nullptr);  // other layout: the cached block cannot serve it
  REQUIRE(errno == ENOMEM);
  REQUIRE(t.large.alloc_calls == 3);     // first try, and one retry after releasing
  REQUIRE(t.heap.cached_bytes() == 0);
  REQUIRE(t.large.live_blocks() == 0);

  t.large.recover();
  void* p = t.alloc(1 << 20);
  REQUIRE(p != nullptr);
  t.free(p);

  // A single failure: the retry after releasing succeeds.
  void* again = t.alloc(4 << 20);
  t.free(again);
  t.large.fail_allocs(1);
  void* q = t.alloc(1 << 20);
  REQUIRE(q != nullptr);
  t.free(q);
}

TEST_CASE("enomem: realloc into the large path fails cleanly", "[enomem][realloc]") {
  TestHeap t;
  void* p = t.alloc(1000);
  pattern::fill(p, 1000, 5);
  t.large.fail_allocs(-1);
  errno = 0;
  REQUIRE(t.heap.realloc(t.tc, p, 1 << 20, "realloc") == nullptr);
  REQUIRE(errno == ENOMEM);
  REQUIRE(pattern::intact(p, 1000, 5));  // the old block is untouched and still live
  t.large.recover();
  void* q = t.heap.realloc(t.tc, p, 1 << 20, "realloc");
  REQUIRE(q != nullptr);
  REQUIRE(pattern::intact(q, 1000, 5));
  t.free(q);
}

TEST_CASE("enomem: a realloc whose quarter growth fails falls back to the exact size",
          "[enomem][realloc]") {
  TestHeap t;  // large threshold 64 KiB: 1.25 times a 56 KiB block is a large block
  void* p = t.alloc(56 << 10);
  const size_t old = t.heap.usable_size(p);
  REQUIRE(old + old / 4 > t.heap.config().large_threshold);
  pattern::fill(p, old, 6);
  t.large.fail_allocs(-1);
  errno = 0;
  void* q = t.heap.realloc(t.tc, p, old + 1, "realloc");
  REQUIRE(q != nullptr);
  REQUIRE(errno == 0);  // the failed first try leaves no trace
  REQUIRE(t.heap.usable_size(q) >= old + 1);
  REQUIRE(t.heap.usable_size(q) <= t.heap.config().large_threshold);
  REQUIRE(pattern::intact(q, old, 6));
  t.large.recover();
  t.free(q);
}

TEST_CASE("enomem: calloc on failure sets ENOMEM, zero after recovery", "[enomem]") {
  TestHeap t;
  t.large.fail_allocs(-1);
  errno = 0;
  REQUIRE(t.calloc(300000) == nullptr);
  REQUIRE(errno == ENOMEM);
  t.large.recover();
  auto* z = static_cast<unsigned char*>(t.calloc(300000));
  REQUIRE(z != nullptr);
  for (size_t i = 0; i < 300000; i += 997) REQUIRE(z[i] == 0);
  t.free(z);
}

TEST_CASE("enomem: the real OS page source under os::inject_map_failures", "[enomem][os]") {
  OsSegmentSource os_pages;
  FakeLargeSource large;
  auto heap = std::make_unique<Heap>();
  heap->init(&os_pages, &large, HeapConfig{});
  ThreadCache* tc = heap->create_thread_cache();
  REQUIRE(tc != nullptr);
  os::inject_map_failures(-1);
  errno = 0;
  void* p = heap->alloc(tc, 64, 0, false);
  int err = errno;
  os::inject_map_failures(0);
  REQUIRE(p == nullptr);
  REQUIRE(err == ENOMEM);
  p = heap->alloc(tc, 64, 0, false);
  REQUIRE(p != nullptr);
  // A refused madvise (decommit) while evicting: the slab is still evicted and reusable.
  std::vector<void*> v;
  for (int i = 0; i < 5000; ++i) v.push_back(heap->alloc(tc, 64, 0, false));
  for (void* q : v) heap->free(tc, q, "free");
  heap->free(tc, p, "free");
  tc->flush_all();
  os::inject_map_failures(-1);
  heap->set_cache_limit(0);
  os::inject_map_failures(0);
  REQUIRE(heap->cached_bytes() == 0);
  void* r = heap->alloc(tc, 64, 0, false);
  REQUIRE(r != nullptr);
  memset(r, 1, 64);
  heap->free(tc, r, "free");
  heap->destroy_thread_cache(tc);
  heap->clear(nullptr);
}

TEST_CASE("enomem: metadata mapping fails (thread cache records)", "[enomem][os]") {
  // Thread cache records come from the meta arena; when its chunk is exhausted and the OS refuses,
  // create_thread_cache returns nullptr and the heap still serves the thread through the pools.
  TestHeap t;
  os::inject_map_failures(-1);
  std::vector<ThreadCache*> made;
  ThreadCache* tc = nullptr;
  for (int i = 0; i < 10000; ++i) {
    tc = t.heap.create_thread_cache();
    if (tc == nullptr) break;
    made.push_back(tc);
  }
  os::inject_map_failures(0);
  REQUIRE(tc == nullptr);
  void* p = t.heap.alloc(nullptr, 100, 0, false);  // no cache: direct path
  REQUIRE(p != nullptr);
  t.heap.free(nullptr, p, "free");
  for (ThreadCache* c : made) t.heap.destroy_thread_cache(c);
}

TEST_CASE("os: move_pages moves pages without a copy; a refused move keeps both sides usable",
          "[os][room]") {
  // Note [A miss reuses cached pages] relies on both: what mremap moves, and that a refusal
  // leaves the source as it was and the destination mapped and fresh.
  const size_t page = os::page_size();
  auto* from = static_cast<unsigned char*>(os::map_aligned(4 * page, page));
  auto* to = static_cast<unsigned char*>(os::map_aligned(8 * page, page));
  REQUIRE((from != nullptr && to != nullptr));
  memset(from, 0x5a, 4 * page);
  memset(to, 0x11, 8 * page);
  REQUIRE(os::move_pages(from + 2 * page, 2 * page, to + page) == os::MoveResult::kMoved);
  CHECK(to[page] == 0x5a);
  CHECK(to[3 * page - 1] == 0x5a);
  CHECK(to[0] == 0x11);
  CHECK(to[3 * page] == 0x11);
  // Pages that are not mapped (those just moved away) cannot move; an older kernel unmaps the
  // destination first, and then it is mapped again, fresh; a newer one leaves it as it was.
  int saved = errno = 1234;
  CHECK(os::move_pages(from + 2 * page, 2 * page, to + 4 * page) == os::MoveResult::kRefused);
  CHECK(errno == saved);
  CHECK(from[2 * page - 1] == 0x5a);  // the rest of the source as it was
  CHECK((to[4 * page] == 0 || to[4 * page] == 0x11));
  // Where the hole was taken meanwhile (here: the kernel moved another mapping into part of it
  // after unmapping), the destination is not remapped over it: reported lost, the other mapping
  // intact. Simulated: unmap a page of the destination and map a page of ours there.
  os::unmap(to + 4 * page, 4 * page);
  auto* stranger = static_cast<unsigned char*>(os::map_aligned(page, page));
  REQUIRE(stranger != nullptr);
  stranger[0] = 0x77;
  REQUIRE(os::move_pages(stranger, page, to + 5 * page) == os::MoveResult::kMoved);
  CHECK(os::move_pages(from + 2 * page, 2 * page, to + 4 * page) == os::MoveResult::kLost);
  CHECK(to[5 * page] == 0x77);
  os::unmap(to + 5 * page, page);
  os::inject_map_failures(1);
  CHECK(os::move_pages(from, page, to) == os::MoveResult::kRefused);
  CHECK(from[0] == 0x5a);
  CHECK(to[0] == 0x11);
  os::unmap(from, 4 * page);
  os::unmap(to, 4 * page);
}
