// large_cache.cpp - see large_cache.h.
#include "core/large_cache.h"

#include <cstring>

#include "core/lru_clock.h"
#include "util/counter.h"

namespace cachealloc {
namespace {
constexpr size_t kGolden = 0x9E3779B97F4A7C15ull;

// Note [Reuse evidence]: the budget bounds the cache, but within it a cache that keeps every freed
// block fills up with sizes that never come back: the intermediate sizes of a growing buffer, the
// buffers of a phase that is over, a batch of one-off blocks freed together. So each layout may
// keep only as many cached blocks as its history justifies:
//   allowed = base + credit, base = max(1, kUnprovenBytes / size)
// A layout starts with `base`: one block (so allocate-free-allocate of one size always hits), or
// a few when the blocks are small. Evidence of reuse earns credit: +1 for every hit on one of its
// blocks, and +1 for a miss that follows a block of the layout given back for want of credit (a
// "ghost": the cache would have hit had it kept one more). Evidence of waste takes it away: a
// block that the decay pushes out, unused for that long, halves the allowance. (A block the budget
// pushes out says that the budget is small, not that the layout is useless; ca_clear and a lower
// ca_set_cache_limit say nothing about it: neither changes the allowance.)
// A free past the allowance gives the block back upstream at once and leaves a ghost. Recurring
// sizes so grow their allowance in a few rounds (doubling per round for a batch of N blocks);
// sizes that do not recur hold one block each until the decay or the budget takes it.
constexpr size_t kUnprovenBytes = size_t{4} << 20;
constexpr size_t kOsPage = 4096;  // split parts start on an OS page (mremap's unit)
constexpr int32_t kMaxCredit = int32_t{1} << 24;
constexpr uint16_t kMaxGhosts = 4096;
// The seams a block adds to seams_held_ (an unmovable block has more than it records).
int64_t counted_seams(const LargeBlock* b) noexcept {
  return b->unmovable ? LargeBlock::kMaxSeams + 1 : b->nseams;
}
}  // namespace

unsigned LargeCache::layout_of(size_t size) noexcept {
  size_t rounded = large_round(size);
  if (rounded == 0 || rounded > (size_t{1} << 47)) return kLargeLayouts;
  return large_layout_index(rounded);
}

size_t LargeCache::allowed_locked(unsigned index) const noexcept {
  size_t size = large_layout_size(index);
  int64_t base = size >= kUnprovenBytes ? 1 : static_cast<int64_t>(kUnprovenBytes / size);
  int64_t allowed = base + credit_[index];
  return allowed < 0 ? 0 : static_cast<size_t>(allowed);
}

size_t LargeCache::allowed_blocks(size_t usable_size) noexcept {
  unsigned index = layout_of(usable_size);
  if (index == kLargeLayouts) return 0;
  LockGuard g(lock_);
  return allowed_locked(index);
}

size_t LargeCache::layout_bucket(size_t size, size_t align) const noexcept {
  return (((size >> 12) ^ (align * 0x100000001b3ull)) * kGolden >> 20) & (by_ptr_.buckets() - 1);
}

bool LargeCache::grow_locked() noexcept {
  size_t old_n = by_ptr_.buckets();
  size_t n = old_n == 0 ? kFirstLargeBuckets : old_n * 2;  // what by_ptr_.grow() makes it
  auto** lay = static_cast<LargeBlock**>(MetaArena::map_array(n * sizeof(LargeBlock*)));
  if (lay == nullptr) return false;
  if (!by_ptr_.grow()) {
    MetaArena::unmap_array(lay, n * sizeof(LargeBlock*));
    return false;
  }
  LargeBlock** old_lay = by_layout_;
  by_layout_ = lay;
  // Re-chain cached blocks by walking the LRU from oldest to newest, so each chain stays newest-first.
  for (LargeBlock* b = lru_.back(); b != nullptr; b = lru_.prev(b)) {
    LayoutChain::push_front_at(by_layout_[layout_bucket(b->size, b->align)], b);
  }
  MetaArena::unmap_array(old_lay, old_n * sizeof(LargeBlock*));
  return true;
}

void LargeCache::count_layout_locked(std::atomic<uint64_t> LargeLayoutCounters::*which, size_t size,
                                     int64_t by) noexcept {
  size_t rounded = large_round(size);
  if (rounded == 0 || rounded > (size_t{1} << 47)) return;
  std::atomic<uint64_t>& c = layouts_[large_layout_index(rounded)].*which;
  owner_add(c, static_cast<uint64_t>(by));
}

LargeBlock* LargeCache::find_locked(const void* p) noexcept { return by_ptr_.find(p); }

bool LargeCache::insert_ptr_locked(LargeBlock* b) noexcept {
  // As ChainedIndex::make_room, growing by_layout_ too.
  if (by_ptr_.full() && !grow_locked() && by_ptr_.buckets() == 0) return false;
  by_ptr_.insert(b);
  return true;
}

void LargeCache::erase_ptr_locked(LargeBlock* b) noexcept {
  by_ptr_.erase(b);
}

void LargeCache::cache_locked(LargeBlock* b) noexcept {
  b->cached = true;
  b->stamp = next_lru_stamp();
  LayoutChain::push_front_at(by_layout_[layout_bucket(b->size, b->align)], b);
  lru_.push_front(b);
  if (b->size >= split_min_ && b->upstream_free == nullptr) extents_.push_front(b);
  cached_.fetch_add(b->size, std::memory_order_relaxed);
  count_layout_locked(&LargeLayoutCounters::cached, b->size, 1);
}

void LargeCache::uncache_locked(LargeBlock* b) noexcept {
  LayoutChain::remove_at(
      [&]() noexcept -> LargeBlock*& { return by_layout_[layout_bucket(b->size, b->align)]; }, b);
  lru_.remove(b);
  if (b->size >= split_min_ && b->upstream_free == nullptr) extents_.remove(b);
  b->cached = false;
  cached_.fetch_sub(b->size, std::memory_order_relaxed);
  count_layout_locked(&LargeLayoutCounters::cached, b->size, -1);
}

void* LargeCache::take_cached(size_t usable_size, size_t align) noexcept {
  // Note [Best fit among nearby layouts]: a request takes the newest cached block of its own
  // layout; failing that, the smallest cached block of one of the next kFitSteps layouts (at most
  // twice the size). Exact-layout-only reuse thrashes as soon as a program cycles through more
  // distinct sizes than the budget holds (each size evicts the one needed next); letting a slightly
  // larger block serve keeps the hit rate up, and the block keeps its own layout when freed.
  // Requests of split_min() and more look among the extents instead, which can be split.
  constexpr int kFitSteps = 8;
  LockGuard g(lock_);
  LargeBlock* found = nullptr;
  if (by_ptr_.buckets() != 0 && usable_size >= split_min_ && align <= kOsPage) {
    found = take_extent_locked(usable_size, align);
  } else if (by_ptr_.buckets() != 0) {
    size_t want = usable_size;
    for (int step = 0; step <= kFitSteps && want != 0 && found == nullptr; ++step) {
      for (LargeBlock* b = by_layout_[layout_bucket(want, align)]; b != nullptr; b = b->lay_next) {
        if (b->size == want && b->align == align) {
          uncache_locked(b);
          found = b;
          break;
        }
      }
      want = large_round(want + 1);
    }
  }
  if (found != nullptr) {
    found->refcount = 1;
    ++live_;
    live_bytes_.fetch_add(found->size, std::memory_order_relaxed);
    if (peak_ != nullptr) peak_->add(found->size);
    hits.fetch_add(1, std::memory_order_relaxed);
    unsigned index = layout_of(found->size);
    if (index != kLargeLayouts && credit_[index] < kMaxCredit) ++credit_[index];
    count_layout_locked(&LargeLayoutCounters::live, found->size, 1);
    count_layout_locked(&LargeLayoutCounters::hits, usable_size, 1);
    return found->p;
  }
  misses.fetch_add(1, std::memory_order_relaxed);
  count_layout_locked(&LargeLayoutCounters::misses, usable_size, 1);
  unsigned index = layout_of(usable_size);
  if (index != kLargeLayouts && ghosts_[index] > 0) {
    --ghosts_[index];
    if (credit_[index] < kMaxCredit) ++credit_[index];
  }
  return nullptr;
}

// Note [Splitting mapped blocks]: blocks from split_min() up are mappings of their own (Note
// [Large upstream]), and any OS-page-aligned part of a mapping can be unmapped alone. So a cached one
// need not wait for a request of its own size: a request takes the best fitting cached extent
// (an exact size first, else the smallest that is larger) and, when what is left is at least
// split_min(), splits it off as a cached block of its own. The parts of one mapping stay linked in
// address order (piece_prev/piece_next); a part that is freed merges with the cached parts next to
// it, so a big block that served smaller requests comes back whole. A part given back upstream
// (evicted, declined, resized) is unlinked first: its neighbours are then no longer adjacent to
// anything we hold. Without this, a program cycling through many big sizes one at a time (the
// `large` workload: 10 sizes of 1-64 MiB) kept one block of each size cached, 116 MiB of RSS where
// one 64 MiB block serves them all.
LargeBlock* LargeCache::take_extent_locked(size_t usable_size, size_t align) noexcept {
  LargeBlock* best = nullptr;
  for (LargeBlock* e = extents_.front(); e != nullptr; e = extents_.next(e)) {
    if (e->size < usable_size || (reinterpret_cast<uintptr_t>(e->p) & (align - 1)) != 0) continue;
    if (best == nullptr || e->size < best->size) best = e;
    if (e->size == usable_size) break;
  }
  if (best == nullptr) return nullptr;
  uncache_locked(best);
  if (best->size - usable_size >= split_min_) split_locked(best, usable_size);
  return best;
}

void LargeCache::split_locked(LargeBlock* b, size_t usable_size) noexcept {
  LargeBlock* rest = records_.get();
  if (rest == nullptr) return;  // no record: b serves whole
  rest->p = static_cast<char*>(b->p) + usable_size;
  rest->size = b->size - usable_size;
  rest->align = kOsPage;
  rest->refcount = 0;
  rest->upstream_free = nullptr;
  rest->upstream_ctx = nullptr;
  if (!insert_ptr_locked(rest)) {
    records_.put(rest);
    return;
  }
  split_seams(b, rest, usable_size);
  b->size = usable_size;
  rest->piece_prev = b;
  rest->piece_next = b->piece_next;
  if (b->piece_next != nullptr) b->piece_next->piece_prev = rest;
  b->piece_next = rest;
  cache_locked(rest);
  splits.fetch_add(1, std::memory_order_relaxed);
}

void LargeCache::absorb_next_locked(LargeBlock* keep) noexcept {
  LargeBlock* gone = keep->piece_next;
  if (gone->cached) uncache_locked(gone);
  erase_ptr_locked(gone);
  const size_t junction = keep->size;
  keep->size += gone->size;
  join_seams(keep, gone, junction);
  keep->piece_next = gone->piece_next;
  if (gone->piece_next != nullptr) gone->piece_next->piece_prev = keep;
  gone->piece_prev = gone->piece_next = nullptr;
  records_.put(gone);
  merges.fetch_add(1, std::memory_order_relaxed);
}

LargeBlock* LargeCache::merge_locked(LargeBlock* b) noexcept {
  if (b->piece_next != nullptr && b->piece_next->cached) absorb_next_locked(b);
  if (LargeBlock* prev = b->piece_prev; prev != nullptr && prev->cached) {
    uncache_locked(prev);  // it grows, and is cached again by the caller
    absorb_next_locked(prev);
    b = prev;
  }
  return b;
}

void LargeCache::detach_piece(LargeBlock* b) noexcept {
  if (b->piece_prev != nullptr) b->piece_prev->piece_next = nullptr;
  if (b->piece_next != nullptr) b->piece_next->piece_prev = nullptr;
  b->piece_prev = b->piece_next = nullptr;
}

void* LargeCache::alloc_upstream(size_t usable_size, size_t align, bool zero, bool reuse) noexcept {
  LargeBlock* rec = records_.get();
  if (rec == nullptr) return nullptr;
  void* p = source_->alloc(usable_size, align, zero);
  if (p == nullptr) {
    records_.put(rec);
    return nullptr;
  }
  clear_seams(rec);
  // Note [A miss reuses cached pages]. Not for zeroed requests: fresh pages read as zero without
  // being touched, where moved ones would have to be cleared (a sparse calloc would make them all
  // resident).
  if (reuse && !zero && usable_size >= split_min_ && usable_size <= kMaxPieced) {
    Hole lost;
    if (!reuse_cached_pages(p, usable_size, rec, &lost)) {
      // Not a byte of the hole is ours any more: another thread may have mapped it.
      if (lost.offset != 0) source_->free_part(p, lost.offset);
      const size_t end = lost.offset + lost.size;
      if (end < usable_size) source_->free_part(static_cast<char*>(p) + end, usable_size - end);
      records_.put(rec);
      return nullptr;
    }
  }
  upstream_allocs.fetch_add(1, std::memory_order_relaxed);
  rec->p = p;
  rec->size = usable_size;
  rec->align = align;
  rec->refcount = 1;
  {
    LockGuard g(lock_);
    if (insert_ptr_locked(rec)) {
      seams_held_ += counted_seams(rec);
      ++live_;
      live_bytes_.fetch_add(rec->size, std::memory_order_relaxed);
      if (peak_ != nullptr) peak_->add(rec->size);
      count_layout_locked(&LargeLayoutCounters::live, rec->size, 1);
      return p;
    }
  }
  source_->free(p, usable_size, align);
  records_.put(rec);
  return nullptr;
}

LargeCache::FreeResult LargeCache::free(void* p, size_t limit, size_t threshold) noexcept {
  LargeBlock* drop = nullptr;
  {
    LockGuard g(lock_);
    LargeBlock* b = find_locked(p);
    if (b == nullptr) return FreeResult::kNotOurs;
    if (b->cached) return FreeResult::kDoubleFree;
    if (--b->refcount > 0) {
      shared_releases.fetch_add(1, std::memory_order_relaxed);
      return FreeResult::kStillShared;
    }
    --live_;
    live_bytes_.fetch_sub(b->size, std::memory_order_relaxed);
    if (peak_ != nullptr) peak_->sub(b->size);
    frees.fetch_add(1, std::memory_order_relaxed);
    count_layout_locked(&LargeLayoutCounters::live, b->size, -1);
    bool adopted_small = b->upstream_free != nullptr && b->size <= threshold;
    unsigned index = layout_of(b->size);
    bool unearned = index != kLargeLayouts &&
                    layouts_[index].cached.load(std::memory_order_relaxed) >= allowed_locked(index);
    if (unearned && !adopted_small && b->size <= limit) {
      declined.fetch_add(1, std::memory_order_relaxed);
      if (ghosts_[index] < kMaxGhosts) ++ghosts_[index];
    }
    if (b->size <= limit && !adopted_small && !unearned) b = merge_locked(b);
    if (b->size > limit || adopted_small || unearned) {
      erase_ptr_locked(b);
      detach_piece(b);
      drop = b;
    } else {
      cache_locked(b);
    }
  }
  if (drop != nullptr) give_upstream(drop);
  return FreeResult::kFreed;
}

void* LargeCache::resize(void* p, size_t usable_size) noexcept {
  LargeBlock* b = nullptr;
  size_t old_size = 0;
  {
    LockGuard g(lock_);
    b = find_locked(p);
    if (b == nullptr || b->cached || b->refcount != 1 || b->upstream_free != nullptr) return nullptr;
    if (b->patched) return nullptr;  // several mappings: mremap moves one (Note [A miss reuses cached pages])
    old_size = b->size;
    // Out of the index while the source moves it: the caller owns the only reference, and any
    // other use of p meanwhile would be a use of a block being reallocated. Moved, it is no
    // longer a part of the mapping it was split from.
    erase_ptr_locked(b);
    detach_piece(b);
  }
  void* q = source_->resize(p, old_size, usable_size, b->align);
  LockGuard g(lock_);
  if (q != nullptr) {
    count_layout_locked(&LargeLayoutCounters::live, old_size, -1);
    count_layout_locked(&LargeLayoutCounters::live, usable_size, 1);
    if (usable_size > old_size) {
      live_bytes_.fetch_add(usable_size - old_size, std::memory_order_relaxed);
      if (peak_ != nullptr) peak_->add(usable_size - old_size);
    } else {
      live_bytes_.fetch_sub(old_size - usable_size, std::memory_order_relaxed);
      if (peak_ != nullptr) peak_->sub(old_size - usable_size);
    }
    b->p = q;
    b->size = usable_size;
    resizes.fetch_add(1, std::memory_order_relaxed);
  }
  insert_ptr_locked(b);  // cannot fail: the table had room for it a moment ago
  return q;
}

bool LargeCache::retain(void* p) noexcept {
  LockGuard g(lock_);
  LargeBlock* b = find_locked(p);
  if (b == nullptr || b->cached || b->refcount == UINT32_MAX) return false;
  ++b->refcount;
  retains.fetch_add(1, std::memory_order_relaxed);
  return true;
}

uint32_t LargeCache::refcount(const void* p) noexcept {
  LockGuard g(lock_);
  LargeBlock* b = find_locked(p);
  return (b == nullptr || b->cached) ? 0 : b->refcount;
}

size_t LargeCache::usable_size(const void* p) noexcept {
  LockGuard g(lock_);
  LargeBlock* b = find_locked(p);
  return (b == nullptr || b->cached) ? 0 : b->size;
}

bool LargeCache::owns(const void* p) noexcept {
  LockGuard g(lock_);
  return find_locked(p) != nullptr;
}

int LargeCache::adopt(void* p, size_t size, size_t align, ca_upstream_free_fn fn, void* ctx) noexcept {
  LargeBlock* rec = records_.get();
  if (rec == nullptr) return 12;  // ENOMEM
  rec->p = p;
  rec->size = size;
  rec->align = align;
  rec->refcount = 1;
  clear_seams(rec);
  rec->upstream_free = fn;
  rec->upstream_ctx = ctx;
  LockGuard g(lock_);
  if (find_locked(p) != nullptr) {
    records_.put(rec);
    return 22;  // EINVAL
  }
  if (!insert_ptr_locked(rec)) {
    records_.put(rec);
    return 12;
  }
  ++live_;
  live_bytes_.fetch_add(size, std::memory_order_relaxed);
  if (peak_ != nullptr) peak_->add(size);
  adopts.fetch_add(1, std::memory_order_relaxed);
  count_layout_locked(&LargeLayoutCounters::live, size, 1);
  return 0;
}

void LargeCache::give_upstream(LargeBlock* b) noexcept {
  drop_seams(b);
  if (b->upstream_free != nullptr) {
    b->upstream_free(b->upstream_ctx, b->p, b->size);
  } else {
    source_->free(b->p, b->size, b->align);
  }
  upstream_frees.fetch_add(1, std::memory_order_relaxed);
  records_.put(b);
}

uint64_t LargeCache::oldest_stamp() noexcept {
  LockGuard g(lock_);
  LargeBlock* oldest = lru_.back();
  return oldest == nullptr ? UINT64_MAX : oldest->stamp;
}

size_t LargeCache::evict_oldest(bool aged) noexcept {
  LargeBlock* victim = nullptr;
  {
    LockGuard g(lock_);
    victim = lru_.back();
    if (victim == nullptr) return 0;
    uncache_locked(victim);
    erase_ptr_locked(victim);
    detach_piece(victim);
    unsigned index = layout_of(victim->size);
    if (aged && index != kLargeLayouts) {  // unused for the whole decay: halve the allowance
      size_t allowed = allowed_locked(index);
      credit_[index] -= static_cast<int32_t>(allowed - allowed / 2);
    }
  }
  size_t bytes = victim->size;
  (aged ? decayed : evictions).fetch_add(1, std::memory_order_relaxed);
  give_upstream(victim);
  return bytes;
}

// Note [A miss reuses cached pages]: with a contiguous heap (glibc, jemalloc) the memory of a
// freed block is reused by the next request of any size once it coalesces with its neighbours; a
// growing buffer (1, 2, 4, ... MiB, each freed after the copy into the next) keeps reusing the
// same pages. Our big blocks are mappings of their own and a cached one serves only requests it
// can hold (splitting it: Note [Splitting mapped blocks]), so on a miss the cached extents are all
// smaller than the request. Mapping a new block beside them would hold both in RSS, and giving
// them back first (what this cache did before) makes the new block fault in every page again: 37k
// minor faults in bench-growth, whose later rounds need the same sizes again. Instead the new block
// takes their pages: the kernel moves each cached extent that fits, oldest first, into the fresh
// mapping (mremap with MREMAP_FIXED: page-table entries move, nothing is copied or faulted), and
// only the rest of the block is fresh. The process then holds what it held, as in a coalescing
// heap, and the block's moved part is resident already.
// The kernel keeps each moved range a mapping (VMA) of its own, and mremap moves or grows only a
// range inside one mapping. So a block records its seams (where mappings meet inside it); a split
// divides them, a merge joins them (with a seam at the junction once either part was patched,
// which costs at most one needless move), and an extent with seams moves one mapping at a time.
// A block with more than kMaxSeams is never moved again; a patched block is not resized by
// mremap (realloc copies it once, into a fresh block, which it can resize from then on). Each
// moved mapping is a VMA of the process's vm.max_map_count (65530 by default), so no block moves
// while the blocks we hold have kSeamBudget seams.
// A move the kernel refuses (out of mappings, or a range the program split with mprotect or
// madvise) gives that extent back instead. The kernel may have unmapped the destination before
// refusing; it is mapped again only where nothing else took the hole meanwhile
// (MAP_FIXED_NOREPLACE), else the new block is given back around the hole and the miss fails
// like a failed mapping (the caller empties the caches and tries again). At most kMaxMoved
// extents move per miss, and none for zeroed requests.
namespace {
constexpr int kMaxMoved = 6;
constexpr uint32_t kOsPageShift = 12;
static_assert(kOsPage == uint32_t{1} << kOsPageShift);

void add_seam(LargeBlock* b, size_t offset) noexcept {
  if (offset == 0 || offset >= b->size) return;  // an edge, not a seam
  const uint32_t page = static_cast<uint32_t>(offset >> kOsPageShift);
  b->patched = true;
  int i = 0;
  while (i < b->nseams && b->seams[i] < page) ++i;
  if (b->unmovable || (i < b->nseams && b->seams[i] == page)) return;
  if (b->nseams == LargeBlock::kMaxSeams) {
    b->unmovable = true;
    return;
  }
  for (int k = b->nseams; k > i; --k) b->seams[k] = b->seams[k - 1];
  b->seams[i] = page;
  ++b->nseams;
}
}  // namespace

void LargeCache::clear_seams(LargeBlock* b) noexcept {
  b->nseams = 0;
  b->patched = false;
  b->unmovable = false;
}

void LargeCache::drop_seams(LargeBlock* b) noexcept {
  seams_held_ -= counted_seams(b);
  clear_seams(b);
}

void LargeCache::split_seams(LargeBlock* b, LargeBlock* rest, size_t at) noexcept {
  const int64_t before = counted_seams(b);
  clear_seams(rest);
  rest->patched = b->patched;
  rest->unmovable = b->unmovable;
  const uint32_t page = static_cast<uint32_t>(at >> kOsPageShift);
  int keep = 0;
  for (int i = 0; i < b->nseams; ++i) {
    if (b->seams[i] < page) {
      b->seams[keep++] = b->seams[i];
    } else if (b->seams[i] > page) {
      rest->seams[rest->nseams++] = b->seams[i] - page;
    }
  }
  b->nseams = static_cast<uint8_t>(keep);
  seams_held_ += counted_seams(b) + counted_seams(rest) - before;
}

void LargeCache::join_seams(LargeBlock* keep, LargeBlock* gone, size_t junction) noexcept {
  const int64_t before = counted_seams(keep) + counted_seams(gone);
  const bool patched = keep->patched || gone->patched;
  keep->unmovable = keep->unmovable || gone->unmovable;
  if (patched) add_seam(keep, junction);
  for (int i = 0; i < gone->nseams; ++i) {
    add_seam(keep, junction + (size_t{gone->seams[i]} << kOsPageShift));
  }
  keep->patched = patched;
  clear_seams(gone);
  seams_held_ += counted_seams(keep) - before;
}

bool LargeCache::move_extent(LargeBlock* v, char* to, LargeBlock* rec, size_t at,
                             Hole* lost) noexcept {
  char* from = static_cast<char*>(v->p);
  bool intact = true, moved = false;
  size_t start = 0;
  for (int i = 0; i <= v->nseams; ++i) {
    size_t end = i < v->nseams ? size_t{v->seams[i]} << kOsPageShift : v->size;
    LargeSource::Move m = intact ? source_->move(from + start, end - start, to + start)
                                 : LargeSource::Move::kRefused;
    add_seam(rec, at + start);  // a refused move maps `to` again: a mapping of its own too
    add_seam(rec, at + end);
    if (m == LargeSource::Move::kMoved) {
      page_moves.fetch_add(1, std::memory_order_relaxed);
      moved = true;
    } else {
      if (m == LargeSource::Move::kLost && intact) {
        intact = false;
        *lost = Hole{at + start, end - start};
      }
      source_->free_part(from + start, end - start);
    }
    start = end;
  }
  (moved ? moved_blocks : evictions).fetch_add(1, std::memory_order_relaxed);
  return intact;
}

bool LargeCache::reuse_cached_pages(void* p, size_t size, LargeBlock* rec, Hole* lost) noexcept {
  LargeBlock* victims[kMaxMoved];
  int n = 0;
  {
    LockGuard g(lock_);
    size_t want = size;
    while (n < kMaxMoved && want >= split_min_ && seams_held_ < kSeamBudget) {
      LargeBlock* oldest = nullptr;
      for (LargeBlock* e = extents_.front(); e != nullptr; e = extents_.next(e)) {
        if (e->unmovable || e->size > want) continue;
        if (oldest == nullptr || e->stamp < oldest->stamp) oldest = e;
      }
      if (oldest == nullptr) break;
      uncache_locked(oldest);
      erase_ptr_locked(oldest);
      detach_piece(oldest);
      victims[n++] = oldest;
      want -= oldest->size;
    }
  }
  // Outside the lock: the victims are in no index, so nothing else can reach them.
  rec->size = size;  // add_seam takes offsets inside it
  bool intact = true;
  size_t at = 0;
  for (int i = 0; i < n; ++i) {
    LargeBlock* v = victims[i];
    if (intact) {
      intact = move_extent(v, static_cast<char*>(p) + at, rec, at, lost);
      at += v->size;
    } else {
      source_->free_part(v->p, v->size);
      evictions.fetch_add(1, std::memory_order_relaxed);
    }
    drop_seams(v);
    records_.put(v);
  }
  return intact;
}

size_t LargeCache::clear() noexcept {
  size_t total = 0;
  while (size_t n = evict_oldest()) total += n;
  return total;
}

}  // namespace cachealloc
