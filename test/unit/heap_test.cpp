// heap_test.cpp - malloc semantics of one Heap over fakes (core/heap.h): alignment, usable size,
// calloc, realloc, and the fatal misuse messages.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "heap_fixture.h"

using namespace cachealloc;
using namespace cachealloc::test;

TEST_CASE("heap: alloc honours every alignment from 16 to 1 MiB", "[heap]") {
  TestHeap t;
  std::vector<void*> live;
  for (size_t align = 1; align <= (size_t{1} << 20); align *= 2) {
    for (size_t n : {size_t{1}, size_t{8}, size_t{24}, align / 2 + 1, align, align + 1, size_t{5000},
                     size_t{300000}}) {
      if (n == 0) continue;
      void* p = t.alloc(n, align);
      INFO("align " << align << " size " << n);
      REQUIRE(p != nullptr);
      REQUIRE(reinterpret_cast<uintptr_t>(p) % (align < 16 ? 16 : align) == 0);
      REQUIRE(t.heap.usable_size(p) >= n);
      memset(p, 0x5a, n);
      live.push_back(p);
    }
  }
  std::set<void*> unique(live.begin(), live.end());
  REQUIRE(unique.size() == live.size());
  for (void* p : live) t.free(p);
  REQUIRE(t.large.bad_frees == 0);
}

TEST_CASE("heap: the large threshold splits slabs from the large source", "[heap]") {
  TestHeap t(config_with(size_t{256} << 20, false, 64 << 10));
  void* s = t.alloc(64 << 10);
  REQUIRE(t.heap.table().lookup(s) != nullptr);
  REQUIRE(t.large.allocs == 0);
  void* l = t.alloc((64 << 10) + 1);
  REQUIRE(t.heap.table().lookup(l) == nullptr);
  REQUIRE(t.large.allocs == 1);
  REQUIRE(t.heap.usable_size(l) >= (64 << 10) + 1);
  // An aligned request whose aligned class would pass the threshold goes large too.
  void* a = t.alloc(40 << 10, 32 << 10);
  REQUIRE(reinterpret_cast<uintptr_t>(a) % (32 << 10) == 0);
  t.free(s);
  t.free(l);
  t.free(a);
}

TEST_CASE("heap: calloc reads zero even on reused memory", "[heap]") {
  TestHeap t;
  for (size_t n : {size_t{16}, size_t{100}, size_t{4000}, size_t{200000}, size_t{1} << 20, size_t{5000000}}) {
    INFO(n);
    void* p = t.alloc(n);
    memset(p, 0xff, t.heap.usable_size(p));
    t.free(p);
    auto* z = static_cast<unsigned char*>(t.calloc(n));
    REQUIRE(z == p);  // reused (thread cache bin or large cache hit)
    for (size_t i = 0; i < n; ++i) {
      if (z[i] != 0) FAIL("byte " << i << " is " << int(z[i]));
    }
    t.free(z);
  }
}

TEST_CASE("heap: usable size and foreign pointers", "[heap]") {
  TestHeap t;
  int local = 0;
  REQUIRE(t.heap.usable_size(nullptr) == 0);
  REQUIRE(t.heap.usable_size(&local) == 0);
  REQUIRE_FALSE(t.heap.owns(&local));
  REQUIRE_FALSE(t.heap.owns(nullptr));
  void* p = t.alloc(130);
  REQUIRE(t.heap.usable_size(p) == 144);
  REQUIRE(t.heap.owns(p));
  t.free(p);
  t.free(nullptr);  // a no-op
}

TEST_CASE("heap: realloc semantics", "[heap][realloc]") {
  TestHeap t;
  SECTION("nullptr is malloc, size 0 frees") {
    void* p = t.heap.realloc(t.tc, nullptr, 100, "realloc");
    REQUIRE(p != nullptr);
    REQUIRE(t.heap.usable_size(p) >= 100);
    REQUIRE(t.heap.realloc(t.tc, p, 0, "realloc") == nullptr);
  }
  SECTION("growing and shrinking across classes and into the large path keeps the contents") {
    size_t sizes[] = {1, 17, 100, 129, 1000, 4096, 50000, 262144, 262145, 1 << 20, 3000000, 70000, 33, 5};
    void* p = t.alloc(1);
    pattern::fill(p, 1, 9);
    size_t have = 1;
    for (size_t n : sizes) {
      INFO("to " << n);
      void* q = t.heap.realloc(t.tc, p, n, "realloc");
      REQUIRE(q != nullptr);
      REQUIRE(t.heap.usable_size(q) >= n);
      REQUIRE(pattern::intact(q, have < n ? have : n, 9));
      pattern::fill(q, n, 9);
      have = n;
      p = q;
    }
    t.free(p);
  }
  SECTION("a small shrink stays in place, a big one moves") {
    void* p = t.alloc(1000);
    REQUIRE(t.heap.realloc(t.tc, p, 900, "realloc") == p);
    void* q = t.heap.realloc(t.tc, p, 100, "realloc");
    REQUIRE(q != p);
    t.free(q);
    void* l = t.alloc(2 << 20);
    REQUIRE(t.heap.realloc(t.tc, l, (2 << 20) - 4096, "realloc") == l);
    t.free(l);
  }
  SECTION("a small block that must grow grows by a quarter; a large one grows exactly") {
    void* p = t.alloc(1000);
    const size_t old = t.heap.usable_size(p);
    pattern::fill(p, old, 4);
    void* q = t.heap.realloc(t.tc, p, old + 1, "realloc");
    REQUIRE(q != p);
    REQUIRE(t.heap.usable_size(q) >= old + old / 4);  // Note [Realloc growth]
    REQUIRE(pattern::intact(q, old, 4));
    t.free(q);
    void* l = t.alloc(1 << 20);
    void* m = t.heap.realloc(t.tc, l, (1 << 20) + 1, "realloc");
    REQUIRE(t.heap.usable_size(m) == large_round((1 << 20) + 1));
    t.free(m);
  }
  SECTION("an impossible size fails with ENOMEM and leaves the block alone") {
    void* p = t.alloc(64);
    pattern::fill(p, 64, 3);
    errno = 0;
    REQUIRE(t.heap.realloc(t.tc, p, SIZE_MAX - 100, "realloc") == nullptr);
    REQUIRE(errno == ENOMEM);
    REQUIRE(pattern::intact(p, 64, 3));
    t.free(p);
  }
}

TEST_CASE("heap: impossible sizes fail with ENOMEM", "[heap][enomem]") {
  TestHeap t;
  errno = 0;
  REQUIRE(t.alloc(SIZE_MAX) == nullptr);
  REQUIRE(errno == ENOMEM);
  errno = 0;
  REQUIRE(t.alloc(size_t{PTRDIFF_MAX} + 1) == nullptr);
  REQUIRE(errno == ENOMEM);
  REQUIRE(t.alloc(10) != nullptr);  // and the heap still works
}

TEST_CASE("heap: misuse stops the program with one message naming cachealloc", "[heap][death]") {
  SECTION("foreign pointer") {
    DeathResult d = run_in_child([] {
      TestHeap t;
      static int not_heap[4];
      t.free(&not_heap[0]);
    });
    REQUIRE(d.aborted);
    REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): invalid pointer 0x"));
  }
  SECTION("interior pointer of a small block") {
    DeathResult d = run_in_child([] {
      TestHeap t;
      char* p = static_cast<char*>(t.alloc(100));
      t.heap.free(t.tc, p + 16, "realloc");
    });
    REQUIRE(d.aborted);
    REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: realloc(): invalid pointer 0x"));
  }
  SECTION("realloc of a freed large block") {
    DeathResult d = run_in_child([] {
      TestHeap t;
      void* p = t.alloc(1 << 20);
      t.free(p);
      t.heap.realloc(t.tc, p, 10, "realloc");
    });
    REQUIRE(d.aborted);
    REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: realloc(): double free 0x"));
  }
  SECTION("the tail of a slab, past its last block") {
    // A 64 KiB slab of 48-byte blocks holds 1365 of them and 16 bytes no block covers. Their
    // start is a multiple of 48 from the slab's: a bin that took it would hand out a block that
    // runs into the next slab.
    DeathResult d = run_in_child([] {
      TestHeap t;
      void* p = t.alloc(48);
      SegmentMeta* seg = t.heap.table().lookup(p);
      const Slab* s = seg->slab_at(p);
      if (s->stride != 48 || uintptr_t{s->capacity} * s->stride >= s->bytes()) _exit(3);
      t.free(reinterpret_cast<void*>(s->start + uintptr_t{s->capacity} * s->stride));
      _exit(0);  // no flush at exit: the free itself must refuse it
    });
    INFO("child status " << d.status);  // 3 << 8: the slab is not what the test expects
    REQUIRE(d.aborted);
    REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): invalid pointer 0x"));
  }
  SECTION("a block of a page no slab owns") {
    DeathResult d = run_in_child([] {
      TestHeap t;
      char* p = static_cast<char*>(t.alloc(100));
      // Well inside the segment, on a page no slab covers.
      t.free(p + 40 * kPageSize);
    });
    REQUIRE(d.aborted);
    REQUIRE_THAT(d.stderr_text, Catch::Contains("invalid pointer 0x"));
  }
}

TEST_CASE("heap (CACHEALLOC_CHECK): freed small blocks are poisoned", "[heap][check]") {
  TestHeap t(config_with(size_t{256} << 20, /*check=*/true));
  auto* p = static_cast<unsigned char*>(t.alloc(200));
  memset(p, 0, 200);
  t.free(p);
  for (size_t i = 16; i < 200; ++i) REQUIRE(p[i] == 0xdf);  // word 0 holds the chain's link
}

TEST_CASE("heap (CACHEALLOC_CHECK): a double free of a small block stops the program",
          "[heap][check][death]") {
  for (size_t n : {size_t{16}, size_t{200}, size_t{40000}, size_t{256} << 10}) {
    INFO(n);
    DeathResult d = run_in_child([n] {
      TestHeap t(config_with(size_t{256} << 20, /*check=*/true));
      void* keep = t.alloc(n);  // so the slab stays active after the first free
      void* p = t.alloc(n);
      void* other = t.alloc(n);
      t.free(p);
      t.free(other);  // p is no longer the most recent free
      t.free(p);
      (void)keep;
    });
    REQUIRE(d.aborted);
    REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): double free 0x"));
  }
}

TEST_CASE("heap (CACHEALLOC_CHECK): check mode keeps working across reuse", "[heap][check]") {
  TestHeap t(config_with(size_t{256} << 20, /*check=*/true));
  std::vector<void*> v;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 3000; ++i) v.push_back(t.alloc(16 + (i * 37) % 5000));
    for (void* p : v) t.free(p);
    v.clear();
    t.heap.clear(t.tc);
  }
  void* p = t.alloc(64);
  REQUIRE(t.heap.retain(p) == 0);
  t.free(p);
  t.free(p);  // two references: not a double free
}

TEST_CASE("heap: a second free of a block whose slab went back to the cache is a double free",
          "[heap][death]") {
  for (bool check : {false, true}) {
    INFO("check " << check);
    DeathResult d = run_in_child([check] {
      TestHeap t(config_with(size_t{256} << 20, check), /*with_cache=*/false);
      void* p = t.alloc(64);  // alone in its slab: the free empties it
      t.free(p);
      t.free(p);
    });
    REQUIRE(d.aborted);
    REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): double free 0x"));
  }
}
