// size_class_test.cpp - the size -> layout tables (core/size_class.h, core/large_cache.h).
#include <catch2/catch.hpp>

#include "core/large_cache.h"
#include "core/size_class.h"

using namespace cachealloc;

TEST_CASE("class sizes grow strictly and end at kMaxSmallSize", "[size_class]") {
  for (unsigned c = 1; c < kNumClasses; ++c) REQUIRE(class_size(c) > class_size(c - 1));
  REQUIRE(class_size(0) == 16);
  REQUIRE(class_size(kNumClasses - 1) == kMaxSmallSize);
  for (unsigned c = 0; c < kNumClasses; ++c) REQUIRE(class_size(c) % kMinAlign == 0);
}

TEST_CASE("class_of/class_size round trip", "[size_class]") {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    REQUIRE(class_of(class_size(c)) == c);
    REQUIRE(class_of_slow(class_size(c)) == c);
    if (c > 0) REQUIRE(class_of(class_size(c - 1) + 1) == c);
  }
}

TEST_CASE("every size up to kMaxSmallSize fits its class with at most 12.5% waste above 128 B",
          "[size_class]") {
  REQUIRE(class_of(0) == 0);
  for (size_t n = 1; n <= kMaxSmallSize; ++n) {
    unsigned c = class_of(n);
    REQUIRE(c < kNumClasses);
    size_t s = class_size(c);
    REQUIRE(s >= n);
    REQUIRE((c == 0 || class_size(c - 1) < n));  // the smallest class that fits
    if (n > 128) REQUIRE((s - n) * 8 <= n);       // waste <= 12.5% of the request
    REQUIRE(class_of(n) == class_of_slow(n));      // lookup table agrees with the formula
  }
}

TEST_CASE("aligned classes are really aligned", "[size_class]") {
  for (size_t align = 32; align <= kPageSize; align *= 2) {
    for (size_t n : {size_t{1}, size_t{17}, align - 1, align, align + 1, 3 * align, size_t{100000}}) {
      unsigned c = class_of_aligned(n, align);
      if (c == kNumClasses) {
        REQUIRE(n > kMaxSmallSize / 2);  // only very big requests fall out of the small classes
        continue;
      }
      REQUIRE(class_size(c) >= n);
      REQUIRE(class_size(c) % align == 0);
      // Blocks start at slab start (page aligned) + k * size: all aligned.
      REQUIRE((kPageSize % align == 0));
    }
  }
}

TEST_CASE("slab geometry and batches stay in bounds", "[size_class]") {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    unsigned pages = slab_pages(c);
    REQUIRE(pages >= 1);
    REQUIRE(pages <= 4);
    REQUIRE((pages & (pages - 1)) == 0);
    // Note [Slabs of big classes]: 8 blocks up to 16 KiB, at least 2 up to the default large
    // threshold (64 KiB), at least one always.
    size_t blocks = (size_t{pages} << kPageShift) / class_size(c);
    REQUIRE(blocks >= (class_size(c) <= 16384 ? 8u : class_size(c) <= 65536 ? 2u : 1u));
    REQUIRE(batch_size(c) >= 1);
    REQUIRE(batch_size(c) <= 64);
    REQUIRE(thread_cache_max(c) >= batch_size(c));
  }
}

TEST_CASE("large layouts round up with bounded waste", "[size_class]") {
  REQUIRE(large_round(1) == 4096);
  for (size_t n = 4097; n < (size_t{1} << 30); n = n * 3 / 2 + 7) {
    size_t r = large_round(n);
    REQUIRE(r >= n);
    REQUIRE(r % 4096 == 0);
    REQUIRE((r - n) * 8 <= n + 4096 * 8);
    REQUIRE(large_round(r) == r);
  }
  REQUIRE(large_round(SIZE_MAX - 10) == 0);
}

TEST_CASE("large layouts: index and size are inverse over every rounded size", "[large]") {
  size_t size = 4096;
  for (unsigned i = 0; i < cachealloc::kLargeLayouts; ++i, size = cachealloc::large_round(size + 1)) {
    INFO("index " << i << ", size " << size);
    REQUIRE(cachealloc::large_layout_index(size) == i);
    REQUIRE(cachealloc::large_layout_size(i) == size);
  }
}
