// The fast path's block-boundary test (Note [Block boundary test]) against plain division, for
// every class and every 16-byte offset in a slab of that class.
#include <catch2/catch.hpp>

#include "core/size_class.h"

using namespace cachealloc;

TEST_CASE("is_block_offset agrees with division for every class and offset", "[size_class]") {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    uint32_t span = static_cast<uint32_t>(slab_pages(c) * kPageSize);
    uint32_t size = static_cast<uint32_t>(class_size(c));
    size_t wrong = 0;
    for (uint32_t off = 0; off < span; off += 16) {
      if (is_block_offset(off, c) != (off % size == 0)) ++wrong;
    }
    INFO("class " << c << " size " << size);
    REQUIRE(wrong == 0);
  }
}
