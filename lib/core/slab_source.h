// slab_source.h - carves slabs out of OS segments and keeps empty slabs in LRU order.
//
// Data structures (SegmentMeta and Slab themselves: segment_meta.h):
//   segments     every SegmentMeta, one per 4 MiB segment mapped from the SegmentSource.
//   empty lists  slabs whose blocks all came back, one LRU list per slab size (1, 2, 4 pages),
//                most recent first. They are the small-object cache: a new slab of the same size
//                reuses one (warm memory, no page faults) before taking fresh pages. Their bytes
//                count against the cache budget; evict_oldest() decommits the least recently
//                emptied slab (madvise) and returns its pages to the segment.
//
// Who calls: CentralPool (take/give under its own lock, then ours), Heap (budget, clear).
// SYNCHRONIZATION: lock_ protects everything here except SegmentMeta::pages, which are written
// under lock_ (Note [Page descriptors]), or by compare-and-swap for a page's retained count and
// bin (Note [Shared pages]), and read without it.
// Lock order: CentralPool::lock_ -> SlabSource::lock_ -> MetaArena::lock_.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "core/segment_source.h"
#include "core/segment_meta.h"
#include "core/segment_table.h"
#include "core/size_class.h"
#include "platform/spin_lock.h"
#include "util/intrusive_list.h"

namespace cachealloc {

// Guards the recycled SegmentMeta records (a leaf lock; taken by Heap::lock_all for fork).
SpinLock& segment_meta_lock() noexcept;

class SlabSource {
 public:
  constexpr SlabSource() = default;
  void init(SegmentSource* source, SegmentTable* table) noexcept {
    source_ = source;
    table_ = table;
  }
  // Check mode: every segment gets live bits (Note [Live bits]); set before the first take().
  void set_live_tracking(bool on) noexcept { track_live_ = on; }

  // A slab for class `cls`, in state kActive with no blocks handed out, or nullptr when the SegmentSource
  // source is out of memory. Reuses the most recently emptied slab of the same size first.
  Slab* take(unsigned cls) noexcept;
  // The slab's blocks are all back (used == 0): keep it as cached memory.
  void give(Slab* s) noexcept;

  // Cache control, for the budget (heap.cpp). evict_oldest returns the bytes evicted (0: none).
  uint64_t oldest_stamp() noexcept;  // UINT64_MAX when nothing is cached
  size_t evict_oldest() noexcept;
  size_t clear() noexcept;  // every empty slab, and unmaps segments with no slab left

  size_t cached_bytes() const noexcept { return cached_.load(std::memory_order_relaxed); }
  size_t mapped_bytes() const noexcept { return mapped_.load(std::memory_order_relaxed); }

  // Counters for stats (written under lock_, read without it): segments mapped from / unmapped to
  // the SegmentSource, and empty slabs decommitted by the budget, a clear or a new slab (Note [A new
  // slab makes room]).
  std::atomic<uint64_t> segment_maps{0}, segment_unmaps{0}, evictions{0};
  SpinLock& lock() noexcept { return lock_; }

 private:
  static unsigned list_index(unsigned npages) noexcept { return static_cast<unsigned>(__builtin_ctz(npages)); }
  Slab* carve_locked(unsigned npages) noexcept;
  bool add_segment_locked() noexcept;
  void init_slab_locked(Slab* s, unsigned cls) noexcept;
  void unlink_empty_locked(Slab* s) noexcept;
  void free_pages_locked(Slab* s) noexcept;
  // Decommits the oldest empty slab not of list `except` (kSlabSizes: any); its bytes, or 0.
  size_t evict_oldest_locked(unsigned except) noexcept;

  SpinLock lock_{LockRank::kSlabSource};
  SegmentSource* source_ = nullptr;  // gives segments
  SegmentTable* table_ = nullptr;
  bool track_live_ = false;
  SegmentMeta* segments_ = nullptr;
  // One per slab size (list_index), most recently emptied first: the back is the oldest.
  static constexpr unsigned kSlabSizes = 3;  // 1, 2 and 4 pages: slab_pages()
  static_assert(slab_pages(kNumClasses - 1) == 1u << (kSlabSizes - 1), "one list per slab size");
  IntrusiveList<Slab, &Slab::next, &Slab::prev> empty_[kSlabSizes];
  std::atomic<size_t> cached_{0};
  std::atomic<size_t> mapped_{0};
};

}  // namespace cachealloc
