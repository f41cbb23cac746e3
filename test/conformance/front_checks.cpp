// front_checks.cpp - the checks every allocation front must pass, instantiated for each type in
// allocator_fronts.h: size 0 gives unique blocks; every block is aligned, at least as big as asked,
// owned by cachealloc with count 1, and does not overlap any other live block.
#include "allocator_fronts.h"
#include "conformance.h"

#include <catch2/catch.hpp>
#include <malloc.h>

#include <algorithm>
#include <random>
#include <set>
#include <utility>
#include <vector>

using namespace conformance;

namespace {

// Sizes around every boundary a size-class allocator has: tiny, class edges, page edges, the
// small/large threshold (256 KiB) and well past it.
const std::vector<size_t>& boundary_sizes() {
  static const std::vector<size_t> sizes = {
      1,     7,     8,      15,         16,         17,         24,       31,      32,
      33,    48,    63,     64,         65,         100,        127,      128,     129,
      255,   256,   257,    500,        512,        513,        1000,     1024,    1025,
      2000,  2048,  3000,   4095,       4096,       4097,       8191,     8192,    8193,
      12345, 16384, 32768,  65535,      65536,      65537,      100000,   131072,  200000,
      kLargeThreshold - 1,  kLargeThreshold,        kLargeThreshold + 1,  300000,
      kMiB - 1,             kMiB,       kMiB + 1,   3 * kMiB + 5,         8 * kMiB};
  return sizes;
}

template <class Front>
void expect_good_block(void* p, size_t n) {
  INFO("front " << Front::kName << ", size " << n);
  REQUIRE(p != nullptr);
  CHECK(aligned_to(p, std::max<size_t>(16, Front::kAlignment)));
  CHECK(malloc_usable_size(p) >= n);
  CHECK(ca().owns(p) == 1);
  CHECK(ca().refcount(p) == 1);
}

}  // namespace

TEMPLATE_TEST_CASE("size 0 gives unique non-null blocks", "[front]", CONFORMANCE_ALL_FRONTS) {
  INFO("front " << TestType::kName);
  std::set<void*> seen;
  std::vector<void*> blocks;
  for (int i = 0; i < 200; ++i) {
    void* p = TestType::allocate(0);
    REQUIRE(p != nullptr);
    CHECK(aligned_to(p, std::max<size_t>(16, TestType::kAlignment)));
    CHECK(ca().owns(p) == 1);
    CHECK(seen.insert(p).second);
    blocks.push_back(p);
  }
  for (void* p : blocks) TestType::deallocate(p, 0);
}

TEMPLATE_TEST_CASE("every size is aligned, big enough, owned and writable", "[front]",
                   CONFORMANCE_ALL_FRONTS) {
  for (size_t n : boundary_sizes()) {
    void* p = TestType::allocate(n);
    expect_good_block<TestType>(p, n);
    pattern::fill(p, n, n);
    CHECK(pattern::first_mismatch(p, n, n) == n);
    // The whole usable size is ours to write, not only the request.
    size_t usable = malloc_usable_size(p);
    pattern::fill(p, usable, n + 1);
    CHECK(pattern::first_mismatch(p, usable, n + 1) == usable);
    TestType::deallocate(p, n);
  }
}

TEMPLATE_TEST_CASE("live blocks never overlap", "[front]", CONFORMANCE_ALL_FRONTS) {
  INFO("front " << TestType::kName);
  std::mt19937_64 rng(42);
  struct Live {
    unsigned char* p;
    size_t n;
  };
  std::vector<Live> live;
  size_t live_bytes = 0;
  for (int round = 0; round < 3000; ++round) {
    // Mostly small, some medium, a few large (log-uniform up to 1 MiB).
    size_t n = size_t{1} << (rng() % 20);
    n += rng() % n;
    if (live_bytes > 64 * kMiB || (!live.empty() && rng() % 3 == 0)) {
      size_t i = rng() % live.size();
      REQUIRE(pattern::first_mismatch(live[i].p, live[i].n, reinterpret_cast<uintptr_t>(live[i].p)) ==
              live[i].n);
      live_bytes -= live[i].n;
      TestType::deallocate(live[i].p, live[i].n);
      live[i] = live.back();
      live.pop_back();
      continue;
    }
    auto* p = static_cast<unsigned char*>(TestType::allocate(n));
    REQUIRE(p != nullptr);
    REQUIRE(aligned_to(p, std::max<size_t>(16, TestType::kAlignment)));
    pattern::fill(p, n, reinterpret_cast<uintptr_t>(p));
    live.push_back({p, n});
    live_bytes += n;
  }
  // Every block still holds its own pattern, and no two ranges intersect.
  std::sort(live.begin(), live.end(), [](const Live& a, const Live& b) { return a.p < b.p; });
  for (size_t i = 0; i < live.size(); ++i) {
    CHECK(pattern::first_mismatch(live[i].p, live[i].n, reinterpret_cast<uintptr_t>(live[i].p)) ==
          live[i].n);
    if (i + 1 < live.size()) CHECK(live[i].p + live[i].n <= live[i + 1].p);
  }
  for (auto& b : live) TestType::deallocate(b.p, b.n);
}

TEMPLATE_TEST_CASE("freed memory is reused and stays sound", "[front]", CONFORMANCE_ALL_FRONTS) {
  INFO("front " << TestType::kName);
  for (size_t n : {size_t{24}, size_t{4000}, size_t{70000}, 2 * kMiB}) {
    INFO("size " << n);
    for (int i = 0; i < 50; ++i) {
      void* p = TestType::allocate(n);
      REQUIRE(p != nullptr);
      CHECK(ca().refcount(p) == 1);
      pattern::fill(p, n, i);
      CHECK(pattern::first_mismatch(p, n, i) == n);
      TestType::deallocate(p, n);
    }
  }
}
