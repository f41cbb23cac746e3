// lru_clock.h - the one clock that orders every cache's entries by when they were last used.
//
// Empty slabs (SlabSource) and cached large blocks (LargeCache) are stamped from it when they
// enter their cache, so the budget (Heap::enforce_budget) can evict the least recently used
// memory across both: whichever cache's oldest stamp is smaller gives back first.
#pragma once

#include <cstdint>

namespace cachealloc {

// The next stamp: larger than every stamp given before (one relaxed atomic add).
uint64_t next_lru_stamp() noexcept;

}  // namespace cachealloc
