// slab_source.h - carves slabs out of OS segments and keeps empty slabs in LRU order.
//
// Data structures:
//   SegmentMeta  one per 4 MiB segment (in the meta arena): which pages are free, the class of the
//                slab covering each page (read without a lock by free()), and the Slab records,
//                indexed by the slab's first page.
//   Slab         a run of 1..16 pages of one size class: its own free list, a bump index for blocks
//                never handed out, and the count of blocks handed out (`used`).
//   empty lists  slabs whose blocks all came back, one LRU list per slab size (1,2,4,8,16 pages),
//                most recent first. They are the small-object cache: a new slab of the same size
//                reuses one (warm memory, no page faults) before taking fresh pages. Their bytes
//                count against the cache budget; evict_oldest() decommits the least recently
//                emptied slab (madvise) and returns its pages to the segment.
//
// Who calls: CentralPool (take/give under its own lock, then ours), Heap (budget, clear).
// SYNCHRONIZATION: lock_ protects everything here except SegmentMeta::page_class and ::retained,
// which are written under lock_ (page_class) or atomically (retained) and read without it.
// Lock order: CentralPool::lock_ -> SlabSource::lock_ -> MetaArena::lock_.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/page_source.h"
#include "core/segment_table.h"
#include "core/size_class.h"
#include "platform/spin_lock.h"
#include "util/intrusive_list.h"

namespace cachealloc {

enum class SlabState : uint8_t { kFree, kActive, kEmpty };

struct Slab {
  void* free_list = nullptr;  // blocks given back to this slab
  uint32_t free_count = 0;
  uint32_t bump = 0;          // index of the next never-used block (relaxed atomic stores: read
                              // without a lock by Heap::live_small_block)
  uint32_t capacity = 0;      // blocks that fit
  uint32_t used = 0;          // blocks outside the slab (live, thread caches, transfer cache)
  uint32_t stride = 0;        // block size
  uint8_t cls = kNoClass;
  uint8_t npages = 0;
  uint8_t first_page = 0;
  SlabState state = SlabState::kFree;
  bool in_partial = false;    // on its central pool's partial list
  uintptr_t start = 0;
  Slab* next = nullptr;       // partial list (CentralPool) or empty list (SlabSource)
  Slab* prev = nullptr;
  uint64_t stamp = 0;         // LRU stamp of when it became empty
  struct SegmentMeta* seg = nullptr;

  bool has_free() const noexcept { return free_count != 0 || bump < capacity; }
  size_t bytes() const noexcept { return size_t{npages} << kPageShift; }
};

struct SegmentMeta {
  uintptr_t base = 0;
  std::atomic<uint32_t> retained{0};       // blocks here with a refcount-table entry
  uint8_t page_class[kPagesPerSegment];    // kNoClass when the page is in no active slab
  uint8_t page_head[kPagesPerSegment];     // first page of the slab covering a page
  uint64_t free_pages = ~uint64_t{0};      // bit i: page i belongs to no slab
  SegmentMeta* next = nullptr;
  // CACHEALLOC_CHECK only (Note [Live bits]): one bit per 16-byte granule, set while the block
  // starting there is handed out. nullptr outside check mode.
  std::atomic<uint64_t>* live_bits = nullptr;
  Slab slabs[kPagesPerSegment];

  static constexpr size_t kLiveWords = kSegmentSize / kMinAlign / 64;  // 4096 words: 32 KiB

  // Segments are kSegmentSize-aligned, so the page index needs no load of `base`.
  static size_t page_of(const void* p) noexcept {
    return (reinterpret_cast<uintptr_t>(p) >> kPageShift) & (kPagesPerSegment - 1);
  }
  Slab* slab_at(const void* p) noexcept { return &slabs[page_head[page_of(p)]]; }
  uint8_t class_at(const void* p) const noexcept { return page_class[page_of(p)]; }
  // Whether p is a block boundary of its slab of class cls (Note [Block boundary test]).
  bool is_block_start(const void* p, unsigned cls) const noexcept {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uint32_t off = static_cast<uint32_t>((a & (kSegmentSize - 1)) - (uintptr_t{page_head[page_of(p)]} << kPageShift));
    return is_block_offset(off, cls);
  }

  // Note [Live bits]
  // In check mode every small block is handed out and taken back one at a time through the heap's
  // slow paths, which set and clear its bit here. A free that finds the bit already clear is a
  // double free, whichever cache (transfer slot, slab free list) the block went to in between;
  // without the bits only a free of the thread-cache bin's head could be told apart. Pre: p is a
  // block start of this segment and live_bits != nullptr.
  bool mark_live(const void* p) noexcept {  // false: it was live already (an internal error)
    size_t g = (reinterpret_cast<uintptr_t>(p) - base) / kMinAlign;
    uint64_t bit = uint64_t{1} << (g % 64);
    return (live_bits[g / 64].fetch_or(bit, std::memory_order_relaxed) & bit) == 0;
  }
  bool clear_live(const void* p) noexcept {  // false: it was not live (a double free)
    size_t g = (reinterpret_cast<uintptr_t>(p) - base) / kMinAlign;
    uint64_t bit = uint64_t{1} << (g % 64);
    return (live_bits[g / 64].fetch_and(~bit, std::memory_order_relaxed) & bit) != 0;
  }
};

// Gives out a monotonically increasing LRU stamp shared by every cache (small and large), so
// eviction can pick the least recently used memory across both.
uint64_t next_lru_stamp() noexcept;

// Guards the recycled SegmentMeta records (a leaf lock; taken by Heap::lock_all for fork).
SpinLock& segment_meta_lock() noexcept;

class SlabSource {
 public:
  constexpr SlabSource() = default;
  void init(PageSource* pages, SegmentTable* table) noexcept {
    pages_ = pages;
    table_ = table;
  }
  // Check mode: every segment gets live bits (Note [Live bits]); set before the first take().
  void set_live_tracking(bool on) noexcept { track_live_ = on; }

  // A slab for class `cls`, in state kActive with no blocks handed out, or nullptr when the page
  // source is out of memory. Reuses the most recently emptied slab of the same size first.
  Slab* take(unsigned cls) noexcept;
  // The slab's blocks are all back (used == 0): keep it as cached memory.
  void give(Slab* s) noexcept;

  // Cache control, for the budget (heap.cpp). evict_oldest returns bytes released (0: none).
  uint64_t oldest_stamp() noexcept;  // UINT64_MAX when nothing is cached
  size_t evict_oldest() noexcept;
  size_t release_all() noexcept;     // every empty slab, and unmaps segments with no slab left

  size_t cached_bytes() const noexcept { return cached_.load(std::memory_order_relaxed); }
  size_t mapped_bytes() const noexcept { return mapped_.load(std::memory_order_relaxed); }

  // Counters for stats (written under lock_, read without it): segments mapped from / unmapped to
  // the page source, and empty slabs decommitted by the budget or a clear.
  std::atomic<uint64_t> segment_maps{0}, segment_unmaps{0}, evictions{0};
  SpinLock& lock() noexcept { return lock_; }

 private:
  static unsigned list_index(unsigned npages) noexcept { return static_cast<unsigned>(__builtin_ctz(npages)); }
  Slab* carve_locked(unsigned npages) noexcept;
  bool add_segment_locked() noexcept;
  void init_slab_locked(Slab* s, unsigned cls) noexcept;
  void unlink_empty_locked(Slab* s) noexcept;
  void free_pages_locked(Slab* s) noexcept;

  SpinLock lock_{LockRank::kSlabSource};
  PageSource* pages_ = nullptr;
  SegmentTable* table_ = nullptr;
  bool track_live_ = false;
  SegmentMeta* segments_ = nullptr;
  // One per slab size (list_index), most recently emptied first: the back is the oldest.
  IntrusiveList<Slab, &Slab::next, &Slab::prev> empty_[5];
  std::atomic<size_t> cached_{0};
  std::atomic<size_t> mapped_{0};
};

}  // namespace cachealloc
