// segment_meta.h - the metadata of one 4 MiB segment of small objects, and of its slabs.
//
// Data structures:
//   SegmentMeta  one per segment (in the meta arena): which pages are free, the class of the slab
//                covering each page (read without a lock by free()), and the Slab records, indexed
//                by the slab's first page.
//   Slab         a run of 1..16 pages of one size class: its own free list, a bump index for blocks
//                never handed out, and the count of blocks handed out (`used`).
//
// Who writes: SlabSource (pages, slab records, page classes, under its lock), CentralPool (a
// slab's free list, bump index and `used`, under the pool lock), Heap (retained, live bits).
// Who reads without a lock: the free fast path (page_class, page_head, retained: allocator.h) and
// Heap::live_small_block (bump). SYNCHRONIZATION: slab_source.h.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/size_class.h"

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

}  // namespace cachealloc
