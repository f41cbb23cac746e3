// profile_table.h - the sampled blocks still live, and the call stacks (sites) they came from.
//
// Data structures (mapped once by init(), fixed capacity, never freed):
//   Site       one distinct call stack: its frames and, for the blocks from it, live and total
//              counts and bytes (as sampled) and the unbiased estimates of the live ones
//              (Note [Heap profiling], sampler.h). Stored densely; an open-addressing index of
//              site numbers keyed by the stack's hash finds them.
//   LiveBlock  address -> (size, site): open addressing with linear probing and backward-shift
//              deletion, so free finds a block in one probe sequence and no tombstones build up.
// A table that is full drops new blocks (and counts them) rather than allocate.
//
// Who calls: the profiler (insert from the sampled malloc path and the CUDA front, erase from the
// free slow paths, walks from dump and the leak report). SYNCHRONIZATION: one SpinLock per table,
// rank kProfTable, a leaf: nothing is called while it is held (the stack is captured before);
// the fork sequence takes it last (Heap::lock_all's caller, core/fork.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "platform/spin_lock.h"
#include "prof/stack_trace.h"

namespace cachealloc::prof {

struct Site {
  uint64_t hash;
  uint32_t depth;
  uint32_t unused;
  uint64_t live_count;   // sampled blocks from here still live
  uint64_t live_bytes;   // their sizes
  uint64_t total_count;  // sampled blocks from here since the start
  uint64_t total_bytes;
  double est_count;      // sum of the live blocks' weights
  double est_bytes;      // sum of size * weight
  uintptr_t pcs[kMaxFrames];
};

struct LiveBlock {
  uintptr_t addr;  // 0: empty slot
  uint64_t size;
  uint32_t site;
  uint32_t unused;
};

class ProfileTable {
 public:
  constexpr ProfileTable() = default;
  // Maps room for max_sites sites and max_blocks live blocks (powers of two). `rate` is the
  // sampling interval the weights use (0: every block recorded). False when mapping failed.
  bool init(size_t max_sites, size_t max_blocks, uint64_t rate) noexcept;
  bool ready() const noexcept { return blocks_ != nullptr; }

  void insert(uintptr_t addr, uint64_t size, const uintptr_t* pcs, int depth) noexcept;
  // Forgets addr; false when it is not in the table.
  bool erase(uintptr_t addr) noexcept;
  bool contains(uintptr_t addr) noexcept;
  // Live blocks now, read without the lock (free's test whether to look at all).
  uint64_t live_blocks() const noexcept { return __atomic_load_n(&block_count_, __ATOMIC_RELAXED); }

  // For the readers (dump, leak report): hold lock() while reading sites.
  SpinLock& lock() noexcept { return lock_; }
  size_t site_count() const noexcept { return site_count_; }
  const Site& site(size_t i) const noexcept { return sites_[i]; }
  uint64_t rate() const noexcept { return rate_; }
  uint64_t dropped() const noexcept { return dropped_; }

 private:
  uint32_t find_or_add_site(const uintptr_t* pcs, int depth) noexcept;  // UINT32_MAX: full
  size_t slot_of(uintptr_t addr) const noexcept;

  SpinLock lock_{LockRank::kProfTable};
  Site* sites_ = nullptr;
  uint32_t* site_index_ = nullptr;  // site number + 1, 0 empty; 2 * max_sites slots
  size_t max_sites_ = 0;
  size_t site_count_ = 0;
  LiveBlock* blocks_ = nullptr;
  size_t block_mask_ = 0;
  uint64_t block_count_ = 0;
  uint64_t dropped_ = 0;
  uint64_t rate_ = 0;
};

}  // namespace cachealloc::prof
