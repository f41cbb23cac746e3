// large_cache.h - large blocks: live-block index, refcounts, and the byte-bounded LRU cache.
//
// Layout of a large request: (size rounded to 8 steps per power of two, at least 4 KiB; alignment).
// Data structures, all under lock_:
//   LargeBlock   one record per block we know (live or cached), from a MetaPool.
//   by_ptr_      chained hash index pointer -> record (core/chained_index.h), for free()/realloc()/
//                usable size and to tell a double free (record cached) from a foreign pointer (no
//                record).
//   by_layout_   chained hash index layout -> cached records, newest first in each chain, so a
//                request takes the most recently freed block of its layout (warm memory). It has
//                as many buckets as by_ptr_ and grows with it (grow_locked).
//   lru_         every cached record, newest first; the tail is what the budget evicts.
//   extents_     the cached records of at least the source's split_min(): requests of that size
//                take the best fit among them, split off what they do not need, and a freed part
//                merges with its cached neighbours (Note [Splitting mapped blocks]).
//   credit_, ghosts_  per layout: how many blocks it may keep cached (Note [Reuse evidence]).
//   seams        per record: where the kernel mappings that pages were moved from meet inside
//                the block (Note [A miss reuses cached pages]); seams_held_ counts them all.
// Upstream calls (LargeSource::alloc/free/move/free_part, adopted blocks' upstream_free) run
// outside the lock.
//
// Who calls: Heap. SYNCHRONIZATION: lock_, a leaf except for MetaArena/MetaPool locks under it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cachealloc.h"
#include "core/chained_index.h"
#include "core/live_peak.h"
#include "core/large_source.h"
#include "core/meta_arena.h"
#include "platform/spin_lock.h"
#include "util/intrusive_list.h"

namespace cachealloc {

// Usable size of a large layout; 0 when n is too big to round.
constexpr size_t large_round(size_t n) {
  if (n <= 4096) return 4096;
  unsigned k = 63 - static_cast<unsigned>(__builtin_clzll(n - 1));
  size_t step = size_t{1} << (k >= 3 ? k - 3 : 0);
  if (step < 4096) step = 4096;
  size_t r = (n + step - 1) & ~(step - 1);
  return r < n ? 0 : r;
}

// The index of a large layout (a large_round() result): 0..7 for 4..32 KiB, then eight per power
// of two. Sizes up to 2^47 give indices below kLargeLayouts.
inline constexpr unsigned kLargeLayouts = 8 + (47 - 15) * 8;
constexpr unsigned large_layout_index(size_t rounded) {
  if (rounded <= 32768) return static_cast<unsigned>(rounded / 4096) - 1;
  unsigned k = 63 - static_cast<unsigned>(__builtin_clzll(rounded - 1));
  return 8 + (k - 15) * 8 + static_cast<unsigned>(rounded >> (k - 3)) - 9;
}
// The rounded size of layout `index` (the inverse of large_layout_index).
constexpr size_t large_layout_size(unsigned index) {
  if (index < 8) return size_t{index + 1} * 4096;
  unsigned k = 15 + (index - 8) / 8;
  return size_t{9 + (index - 8) % 8} << (k - 3);
}
static_assert(large_layout_index(4096) == 0 && large_layout_index(32768) == 7);
static_assert(large_layout_size(0) == 4096 && large_layout_size(8) == 36864 &&
              large_layout_size(15) == 65536 && large_layout_size(16) == 73728 &&
              large_layout_size(kLargeLayouts - 1) == size_t{1} << 47);
static_assert(large_layout_index(36864) == 8 && large_layout_index(65536) == 15);
static_assert(large_layout_index(73728) == 16);
static_assert(large_layout_index(size_t{1} << 47) == kLargeLayouts - 1);

// Per-layout counters for statistics, written under the cache's lock, read without it.
struct LargeLayoutCounters {
  std::atomic<uint64_t> live{0}, cached{0}, hits{0}, misses{0};
};

namespace detail {
// by_ptr_'s bucket of a block address (its low bits after the mask): blocks are 4 KiB aligned.
inline size_t large_ptr_hash(const void* p) noexcept {
  return (reinterpret_cast<uintptr_t>(p) >> 12) * 0x9E3779B97F4A7C15ull >> 20;
}
}  // namespace detail

struct LargeBlock {
  void* p = nullptr;
  size_t size = 0;   // usable size (the layout's rounded size, or the adopted size)
  size_t align = 0;
  uint32_t refcount = 0;
  bool cached = false;
  // Note [A miss reuses cached pages]: where the kernel's mappings meet inside the block (OS-page
  // offsets, ascending) once pages of other blocks were moved into it. `patched`: it ever had
  // such a seam (a junction with a merged neighbour may be one too); `unmovable`: more seams than
  // fit, so its pages are never moved again.
  static constexpr int kMaxSeams = 8;
  uint8_t nseams = 0;
  bool patched = false;
  bool unmovable = false;
  uint32_t seams[kMaxSeams] = {};
  ca_upstream_free_fn upstream_free = nullptr;  // adopted blocks only
  void* upstream_ctx = nullptr;
  uint64_t stamp = 0;
  LargeBlock* ptr_next = nullptr;  // by_ptr_ chain
  LargeBlock* lay_next = nullptr;  // by_layout_ chain (cached only), doubly linked
  LargeBlock* lay_prev = nullptr;
  LargeBlock* lru_next = nullptr;  // lru_ list (cached only)
  LargeBlock* lru_prev = nullptr;
  LargeBlock* ext_next = nullptr;  // extents_ list (cached blocks that may be split)
  LargeBlock* ext_prev = nullptr;
  LargeBlock* piece_prev = nullptr;  // the parts of one split mapping, adjacent in address order
  LargeBlock* piece_next = nullptr;
};

class LargeCache {
  static constexpr size_t kFirstLargeBuckets = 1024;  // both indexes

 public:
  enum class FreeResult { kFreed, kStillShared, kNotOurs, kDoubleFree };

  constexpr LargeCache() = default;
  void init(LargeSource* source) noexcept {
    source_ = source;
    split_min_ = source->split_min();
  }
  // Live large bytes are also counted there (Note [Live peak]); null: not counted.
  void set_live_peak(LivePeak* peak) noexcept { peak_ = peak; }

  // A cached block of the layout, or nullptr on a miss. *usable gets the block's size.
  void* take_cached(size_t usable_size, size_t align) noexcept;
  // Allocates from upstream and registers the block. nullptr when upstream fails. With `reuse`,
  // a block of the source's split_min() or more takes the pages of cached extents that fit in it
  // (Note [A miss reuses cached pages]); realloc asks for fresh pages, which it can resize later.
  void* alloc_upstream(size_t usable_size, size_t align, bool zero, bool reuse = true) noexcept;

  // The program frees p: drops one reference; at zero the block is cached, or given upstream when
  // it may not be cached: bigger than `limit`, an adopted block below the large threshold, or a
  // block of a layout that holds as many cached blocks as its reuse allows (Note [Reuse evidence]).
  FreeResult free(void* p, size_t limit, size_t threshold) noexcept;
  // Resizes a live, unshared block we allocated (not adopted) to `usable_size` through the
  // source's resize (no copy); the block's new start, or nullptr when it cannot be done so (the
  // block is then untouched).
  void* resize(void* p, size_t usable_size) noexcept;
  bool retain(void* p) noexcept;
  uint32_t refcount(const void* p) noexcept;  // 0 when not a live large block
  size_t usable_size(const void* p) noexcept; // 0 when not a live large block
  bool owns(const void* p) noexcept;          // live or cached
  int adopt(void* p, size_t size, size_t align, ca_upstream_free_fn fn, void* ctx) noexcept;

  uint64_t oldest_stamp() noexcept;  // UINT64_MAX when empty
  // Bytes given back upstream (0: nothing cached). `aged`: it aged out (Note [Decay]), rather
  // than being pushed out by the budget.
  size_t evict_oldest(bool aged = false) noexcept;
  // Blocks a layout may keep cached now (Note [Reuse evidence]); for tests and statistics.
  size_t allowed_blocks(size_t usable_size) noexcept;
  size_t clear() noexcept;
  size_t cached_bytes() const noexcept { return cached_.load(std::memory_order_relaxed); }
  int64_t seams_held() const noexcept { return seams_held_.load(std::memory_order_relaxed); }
  size_t live_blocks() const noexcept { return live_; }
  size_t live_bytes() const noexcept { return live_bytes_.load(std::memory_order_relaxed); }

  // Counters (relaxed, read by stats).
  // evictions: given back by the budget, or by a miss that could not move their pages.
  std::atomic<uint64_t> hits{0}, misses{0}, evictions{0}, upstream_allocs{0}, upstream_frees{0}, frees{0};
  // Note [A miss reuses cached pages]: cached blocks whose pages moved into a new block, and the
  // moves (one per mapping inside them). A cached block that could not move at all counts as an
  // eviction.
  std::atomic<uint64_t> moved_blocks{0}, page_moves{0};
  std::atomic<uint64_t> adopts{0}, retains{0}, shared_releases{0};  // shared: count was >= 2
  // declined: freed blocks given back because their layout had no reuse to show for more;
  // decayed: cached blocks given back because they aged out; resizes: reallocs without a copy.
  std::atomic<uint64_t> declined{0}, decayed{0}, resizes{0};
  std::atomic<uint64_t> splits{0}, merges{0};  // Note [Splitting mapped blocks]
  const LargeLayoutCounters& layout_counters(unsigned index) const noexcept { return layouts_[index]; }

  SpinLock& lock() noexcept { return lock_; }
  SpinLock& records_lock() noexcept { return records_.lock(); }

 private:
  LargeBlock* find_locked(const void* p) noexcept;
  bool insert_ptr_locked(LargeBlock* b) noexcept;
  void erase_ptr_locked(LargeBlock* b) noexcept;
  void cache_locked(LargeBlock* b) noexcept;
  void uncache_locked(LargeBlock* b) noexcept;
  bool grow_locked() noexcept;
  void give_upstream(LargeBlock* b) noexcept;  // outside the lock; recycles the record
  size_t layout_bucket(size_t size, size_t align) const noexcept;

  SpinLock lock_{LockRank::kLargeCache};
  LargeSource* source_ = nullptr;
  MetaPool<LargeBlock> records_;
  ChainedIndex<LargeBlock, &LargeBlock::ptr_next, &LargeBlock::p, const void*,
               &detail::large_ptr_hash, kFirstLargeBuckets>
      by_ptr_;
  LargeBlock** by_layout_ = nullptr;  // by_ptr_.buckets() heads
  size_t live_ = 0;
  std::atomic<size_t> live_bytes_{0};  // written under lock_, read by stats without it
  LivePeak* peak_ = nullptr;
  using LayoutChain = IntrusiveList<LargeBlock, &LargeBlock::lay_next, &LargeBlock::lay_prev,
                                    ListEnds::kHead>;  // the lists of by_layout_'s buckets
  IntrusiveList<LargeBlock, &LargeBlock::lru_next, &LargeBlock::lru_prev> lru_;  // newest first
  IntrusiveList<LargeBlock, &LargeBlock::ext_next, &LargeBlock::ext_prev, ListEnds::kHead> extents_;
  size_t split_min_ = 0;  // set by init(): Note [Zero until init] (heap.h)
  LargeBlock* take_extent_locked(size_t usable_size, size_t align) noexcept;
  void split_locked(LargeBlock* b, size_t usable_size) noexcept;
  LargeBlock* merge_locked(LargeBlock* b) noexcept;  // b, or the cached part before it, grown
  void absorb_next_locked(LargeBlock* keep) noexcept;  // keep grows over the part after it
  static void detach_piece(LargeBlock* b) noexcept;   // b stops being adjacent to anything
  // Note [A miss reuses cached pages]: moves cached extents' pages into the new block at p; false
  // when the block lost the pages of `lost` on the way (not ours any more) and must be given back
  // around them.
  struct Hole {
    size_t offset = 0, size = 0;
  };
  static constexpr size_t kMaxPieced = size_t{1} << 43;  // seams are 32-bit page numbers
 public:
  // No cached pages move while the blocks we hold have this many seams: each is a mapping of the
  // process's vm.max_map_count (Note [A miss reuses cached pages]).
  static constexpr int64_t kSeamBudget = 4096;

 private:
  bool reuse_cached_pages(void* p, size_t size, LargeBlock* rec, Hole* lost) noexcept;
  // Moves v's pages (one kernel mapping at a time) to `to`, recording the seams in rec at offset
  // `at`; gives back what did not move. False: the block lost the pages of *lost.
  bool move_extent(LargeBlock* v, char* to, LargeBlock* rec, size_t at, Hole* lost) noexcept;
  static void clear_seams(LargeBlock* b) noexcept;
  void drop_seams(LargeBlock* b) noexcept;  // b's seams leave seams_held_
  void split_seams(LargeBlock* b, LargeBlock* rest, size_t at) noexcept;  // rest starts at `at`
  // gone followed keep, which has grown over it from `junction` on.
  void join_seams(LargeBlock* keep, LargeBlock* gone, size_t junction) noexcept;
  // Seams of all the blocks we hold: moved mappings, each a VMA (Note [A miss reuses cached
  // pages]). Under lock_, except give_upstream's, which is atomic.
  std::atomic<int64_t> seams_held_{0};
  std::atomic<size_t> cached_{0};
  LargeLayoutCounters layouts_[kLargeLayouts];
  // Note [Reuse evidence], under lock_: a layout may keep base + credit_ blocks cached; ghosts_
  // counts its recent frees that were given back for want of credit.
  int32_t credit_[kLargeLayouts] = {};
  uint16_t ghosts_[kLargeLayouts] = {};
  static unsigned layout_of(size_t size) noexcept;  // kLargeLayouts: no layout
  size_t allowed_locked(unsigned index) const noexcept;
  // Under lock_: adds `by` to the counter of the layout of `size` (sizes no layout covers, such as
  // huge adopted blocks, are not counted per layout).
  void count_layout_locked(std::atomic<uint64_t> LargeLayoutCounters::*which, size_t size,
                           int64_t by) noexcept;
};

}  // namespace cachealloc
