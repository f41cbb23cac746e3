// The fast path's block-boundary test (Note [Block boundary test]) against plain division, for
// every class and every 16-byte offset in a slab of that class.
#include <catch2/catch.hpp>

#include "core/size_class.h"

using namespace cachealloc;

TEST_CASE("is_block_offset agrees with division for every class and offset", "[size_class]") {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    uint32_t span = static_cast<uint32_t>(slab_pages(c) * kPageSize);
    uint32_t size = static_cast<uint32_t>(class_size(c));
    uint32_t capacity = span / size;
    size_t wrong = 0, wrong_index = 0;
    // Every 16-byte offset of the slab (the page descriptor puts a pointer on one of its pages).
    for (uint32_t off = 0; off < span; off += 16) {
      if (is_block_offset(off, c, capacity) != (off % size == 0 && off / size < capacity)) ++wrong;
      if (block_index(off, c) != off / size) ++wrong_index;
    }
    INFO("class " << c << " size " << size);
    REQUIRE(wrong == 0);
    REQUIRE(wrong_index == 0);
    // The bound alone refuses the blocks past a slab's capacity, where the size is not a power of
    // two (a power of two divides the slab: it has no tail).
    if (size & (size - 1)) {
      REQUIRE(span % size != 0);
      REQUIRE_FALSE(is_block_offset(capacity * size, c, capacity));
      REQUIRE_FALSE(is_block_offset((capacity - 1) * size, c, capacity - 1));
      if (capacity >= 2) REQUIRE(is_block_offset((capacity - 2) * size, c, capacity - 1));
    }
  }
}
