// lru_clock.h - the one clock that orders every cache's entries by when they were last used.
//
// Empty slabs (SlabSource) and cached large blocks (LargeCache) are stamped from it when they
// enter their cache, so the budget (Heap::enforce_budget) can evict the least recently used
// memory across both: whichever cache's oldest stamp is smaller gives back first.
#pragma once

#include <atomic>
#include <cstdint>

namespace cachealloc {

// The next stamp: larger than every stamp given before (one relaxed atomic add).
uint64_t next_lru_stamp() noexcept;
// The stamp next_lru_stamp() would give now.
uint64_t current_lru_stamp() noexcept;

// Note [Decay]: cached memory that nobody took for `decay` nanoseconds goes back upstream, as
// jemalloc's dirty_decay_ms does. Entries carry an LRU stamp, not a time; DecayClock ties the two
// together with a ring of checkpoints (time, stamp), one taken per decay/8 at most. An entry whose
// stamp is below the stamp of a checkpoint at least `decay` old has been cached at least that long.
// So memory goes back between decay and 9/8 decay after it was cached, with no clock read on any
// path that caches. The clock only advances when the heap calls tick(), from its slow paths (large
// allocations and frees, thread-cache flushes): a process that stops allocating keeps its cache
// until it allocates again (a multi-threaded one also ticks from the stats publisher thread).
class DecayClock {
 public:
  // Records a checkpoint when one is due. Returns the stamp below which entries have aged out,
  // or 0 when none can have (too early, decay 0 = never, or another thread is ticking).
  uint64_t tick(uint64_t now_ns, uint64_t decay_ns) noexcept;

 private:
  static constexpr unsigned kRing = 16;  // covers decay with 8 checkpoints to spare
  struct Checkpoint {
    std::atomic<uint64_t> time{0}, stamp{0};
  };
  Checkpoint ring_[kRing];
  std::atomic<unsigned> next_{0};
  std::atomic<uint64_t> last_{0};  // time of the newest checkpoint
};

}  // namespace cachealloc
