// capi_checks.cpp - the ca_ API from include/cachealloc.h (the contract): reference counts,
// adopting foreign blocks, cache control, introspection.
#include "conformance.h"

#include <catch2/catch.hpp>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <string>
#include <thread>
#include <vector>

using namespace conformance;

TEST_CASE("the front under test is cachealloc", "[capi]") {
  INFO("front " << front_name());
  void* owns = dlsym(RTLD_DEFAULT, "ca_owns");
  REQUIRE(owns != nullptr);
  REQUIRE(reinterpret_cast<void*>(ca().owns) == owns);
  void* p = malloc(10);
  CHECK(ca().owns(p) == 1);
  free(p);
  void* q = ::operator new(10);
  CHECK(ca().owns(q) == 1);
  ::operator delete(q);
  CHECK(std::string(ca().version()) ==
        std::to_string(CACHEALLOC_VERSION_MAJOR) + "." + std::to_string(CACHEALLOC_VERSION_MINOR) +
            "." + std::to_string(CACHEALLOC_VERSION_PATCH));
}

TEST_CASE("ca_owns, ca_refcount and ca_retain refuse what cachealloc did not hand out", "[capi]") {
  int on_stack = 0;
  static int in_data = 0;
  CHECK(ca().owns(nullptr) == 0);
  CHECK(ca().owns(&on_stack) == 0);
  CHECK(ca().owns(&in_data) == 0);
  CHECK(ca().refcount(nullptr) == 0);
  CHECK(ca().refcount(&on_stack) == 0);
  CHECK(ca().refcount(&in_data) == 0);
  CHECK(ca().retain(nullptr) == EINVAL);
  CHECK(ca().retain(&on_stack) == EINVAL);
  CHECK(ca().retain(&in_data) == EINVAL);
  CHECK(ca().release(nullptr) == EINVAL);
}

TEST_CASE("retain and release share a block between owners", "[capi][refcount]") {
  for (size_t n : {size_t{24}, size_t{3000}, size_t{100000}, 2 * kMiB}) {
    INFO("size " << n);
    auto* p = static_cast<unsigned char*>(malloc(n));
    REQUIRE(p != nullptr);
    CHECK(ca().refcount(p) == 1);
    REQUIRE(ca().retain(p) == 0);
    CHECK(ca().refcount(p) == 2);
    REQUIRE(ca().retain(p) == 0);
    CHECK(ca().refcount(p) == 3);
    REQUIRE(ca().release(p) == 0);
    CHECK(ca().refcount(p) == 2);

    // free drops one owner; the other still has a live, intact block.
    pattern::fill(p, n, n);
    free(p);
    CHECK(ca().refcount(p) == 1);
    CHECK(ca().owns(p) == 1);
    CHECK(pattern::first_mismatch(p, n, n) == n);
    // Nothing else may be handed this memory while the second owner holds it.
    void* other = malloc(n);
    REQUIRE(other != nullptr);
    CHECK(other != p);
    pattern::fill(other, n, n + 1);
    pattern::fill(p, n, n + 2);
    CHECK(pattern::first_mismatch(p, n, n + 2) == n);
    CHECK(pattern::first_mismatch(other, n, n + 1) == n);
    free(other);

    // The last release frees it. Freed large blocks are no longer live (count 0); freed small
    // blocks may read 1 without CACHEALLOC_CHECK, so only the large ones are checked.
    REQUIRE(ca().release(p) == 0);
    if (n > kLargeThreshold) CHECK(ca().refcount(p) == 0);
  }
}

TEST_CASE("a block can have a thousand owners", "[capi][refcount]") {
  void* p = malloc(128);
  REQUIRE(p != nullptr);
  for (int i = 0; i < 1000; ++i) REQUIRE(ca().retain(p) == 0);
  CHECK(ca().refcount(p) == 1001);
  for (int i = 0; i < 1000; ++i) free(p);
  CHECK(ca().refcount(p) == 1);
  memset(p, 0x33, 128);
  REQUIRE(ca().release(p) == 0);
}

TEST_CASE("retain and release from many threads at once keep an exact count", "[capi][refcount]") {
  for (size_t n : {size_t{64}, 2 * kMiB}) {
    INFO("size " << n);
    void* p = malloc(n);
    REQUIRE(p != nullptr);
    std::vector<std::thread> threads;
    std::vector<int> errors(8, 0);
    for (size_t t = 0; t < 8; ++t)
      threads.emplace_back([&, t] {
        for (int k = 0; k < 20000; ++k) errors[t] += ca().retain(p) != 0;
        for (int k = 0; k < 20000; ++k) errors[t] += ca().release(p) != 0;
      });
    for (auto& th : threads) th.join();
    for (int e : errors) CHECK(e == 0);
    CHECK(ca().refcount(p) == 1);
    free(p);
  }
}

namespace {

struct UpstreamRecord {
  int calls = 0;
  void* ctx = nullptr;
  void* p = nullptr;
  size_t size = 0;
};

void record_and_unmap(void* ctx, void* p, size_t size) {
  auto* r = static_cast<UpstreamRecord*>(ctx);
  r->calls++;
  r->ctx = ctx;
  r->p = p;
  r->size = size;
  munmap(p, size);
}

void* map_bytes(size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

TEST_CASE("ca_adopt takes a large mmap block; ca_clear gives it back exactly once", "[capi][adopt]") {
  const size_t n = 2 * kMiB;
  auto* p = static_cast<unsigned char*>(map_bytes(n));
  REQUIRE(p != nullptr);
  pattern::fill(p, n, 11);
  UpstreamRecord rec;
  REQUIRE(ca().adopt(p, n, 4096, record_and_unmap, &rec) == 0);
  CHECK(ca().owns(p) == 1);
  CHECK(ca().refcount(p) == 1);
  CHECK(malloc_usable_size(p) >= n);
  CHECK(pattern::first_mismatch(p, n, 11) == n);  // adopting does not touch the contents

  REQUIRE(ca().retain(p) == 0);
  CHECK(ca().refcount(p) == 2);
  REQUIRE(ca().release(p) == 0);
  CHECK(ca().refcount(p) == 1);
  CHECK(rec.calls == 0);

  // Count 0: cached like a large block, not yet given back (the cache is emptied first so that no
  // other block of its layout stands in its way: Note [Reuse evidence]).
  ca().clear();
  free(p);
  CHECK(rec.calls == 0);
  CHECK(ca().cached_bytes() >= n);

  ca().clear();
  CHECK(rec.calls == 1);
  CHECK(rec.ctx == &rec);
  CHECK(rec.p == p);
  CHECK(rec.size == n);
  ca().clear();
  CHECK(rec.calls == 1);
}

TEST_CASE("ca_adopt of a block below the large threshold gives it back at count 0",
          "[capi][adopt]") {
  // 2 KiB is below every allowed CACHEALLOC_LARGE_THRESHOLD (at least 4 KiB).
  const size_t n = 2048;
  void* p = map_bytes(4096);
  REQUIRE(p != nullptr);
  UpstreamRecord rec;
  REQUIRE(ca().adopt(p, n, 0, record_and_unmap, &rec) == 0);
  CHECK(ca().refcount(p) == 1);
  memset(p, 0x44, n);
  REQUIRE(ca().retain(p) == 0);
  free(p);
  CHECK(rec.calls == 0);
  REQUIRE(ca().release(p) == 0);
  CHECK(rec.calls == 1);
  CHECK(rec.p == p);
  CHECK(rec.size == n);
  ca().clear();
  CHECK(rec.calls == 1);
}

TEST_CASE("an adopted block can be realloc'd and freed like any other", "[capi][adopt]") {
  const size_t n = kMiB;
  void* p = map_bytes(n);
  REQUIRE(p != nullptr);
  pattern::fill(p, n, 5);
  UpstreamRecord rec;
  REQUIRE(ca().adopt(p, n, 4096, record_and_unmap, &rec) == 0);
  void* q = realloc(p, 3 * kMiB);
  REQUIRE(q != nullptr);
  CHECK(pattern::first_mismatch(q, n, 5) == n);
  CHECK(ca().refcount(q) == 1);
  free(q);
  ca().clear();
  CHECK(rec.calls == 1);
  CHECK(rec.p == p);
}

TEST_CASE("calloc zeroes memory even when it recycles a dirty adopted block", "[capi][adopt]") {
  const size_t n = 2 * kMiB;
  void* p = map_bytes(n);
  REQUIRE(p != nullptr);
  memset(p, 0xFF, n);
  UpstreamRecord rec;
  REQUIRE(ca().adopt(p, n, 4096, record_and_unmap, &rec) == 0);
  free(p);  // now cached, and may be handed out again
  std::vector<void*> blocks;
  for (int i = 0; i < 4; ++i) {
    void* q = calloc(1, n);
    REQUIRE(q != nullptr);
    INFO("calloc returned " << (q == p ? "the adopted block" : "another block"));
    CHECK(all_zero(q, n));
    blocks.push_back(q);
  }
  for (void* q : blocks) free(q);
  ca().clear();
  CHECK(rec.calls == 1);
}

TEST_CASE("ca_adopt rejects bad arguments with EINVAL", "[capi][adopt]") {
  const size_t n = 64 * 1024;
  auto* m = static_cast<unsigned char*>(map_bytes(n));
  REQUIRE(m != nullptr);
  UpstreamRecord rec;
  CHECK(ca().adopt(nullptr, n, 0, record_and_unmap, &rec) == EINVAL);
  CHECK(ca().adopt(m, n, 0, nullptr, &rec) == EINVAL);
  CHECK(ca().adopt(m, 0, 0, record_and_unmap, &rec) == EINVAL);
  CHECK(ca().adopt(m, n, 3, record_and_unmap, &rec) == EINVAL);
  CHECK(ca().adopt(m, n, 48, record_and_unmap, &rec) == EINVAL);
  CHECK(ca().adopt(m + 8, n - 8, 16, record_and_unmap, &rec) == EINVAL);
  CHECK(ca().owns(m) == 0);
  void* mine = malloc(1000);
  CHECK(ca().adopt(mine, 1000, 0, record_and_unmap, &rec) == EINVAL);
  CHECK(ca().refcount(mine) == 1);
  free(mine);
  void* big = malloc(kMiB);
  CHECK(ca().adopt(big, kMiB, 0, record_and_unmap, &rec) == EINVAL);
  free(big);
  CHECK(rec.calls == 0);
  munmap(m, n);
}

TEST_CASE("ca_clear returns cached memory", "[capi][cache]") {
  void* blocks[4];
  for (auto& b : blocks) {
    b = malloc(kMiB);
    REQUIRE(b != nullptr);
    memset(b, 1, kMiB);
  }
  for (auto& b : blocks) free(b);
  CHECK(ca().cached_bytes() >= 4 * kMiB);
  CHECK(ca().cached_bytes() <= ca().cache_limit());
  size_t released = ca().clear();
  CHECK(released >= 4 * kMiB);
  CHECK(ca().cached_bytes() == 0);
  // Memory still works after a clear.
  void* p = malloc(kMiB);
  REQUIRE(p != nullptr);
  memset(p, 2, kMiB);
  free(p);
}

TEST_CASE("ca_set_cache_limit(0) empties the cache and keeps it empty", "[capi][cache]") {
  const size_t old = ca().cache_limit();
  CHECK(old > 0);
  void* p = malloc(kMiB);
  REQUIRE(p != nullptr);
  free(p);
  ca().set_cache_limit(0);
  CHECK(ca().cache_limit() == 0);
  CHECK(ca().cached_bytes() == 0);
  for (int i = 0; i < 8; ++i) {
    void* q = malloc(kMiB + static_cast<size_t>(i) * 4096);
    REQUIRE(q != nullptr);
    memset(q, 3, kMiB);
    free(q);
    CHECK(ca().cached_bytes() == 0);
  }
  ca_totals t{};
  ca().get_totals(&t);
  CHECK(t.cache_limit == 0);
  CHECK(t.cached == 0);

  ca().set_cache_limit(old);
  CHECK(ca().cache_limit() == old);
  p = malloc(kMiB);
  REQUIRE(p != nullptr);
  free(p);
  CHECK(ca().cached_bytes() >= kMiB);
  CHECK(ca().cached_bytes() <= old);
}

TEST_CASE("ca_get_totals reports the settings and counts allocations", "[capi][stats]") {
  ca_totals before{};
  ca().get_totals(&before);
  CHECK(before.cache_limit == ca().cache_limit());
  CHECK(before.allocs > 0);
  void* blocks[100];
  for (auto& b : blocks) b = malloc(4 * kMiB);
  for (auto& b : blocks) free(b);
  ca_totals after{};
  ca().get_totals(&after);
  CHECK(after.allocs >= before.allocs);
  CHECK(after.large_hits + after.large_misses >= before.large_hits + before.large_misses);
  CHECK(after.cached == ca().cached_bytes());
}
