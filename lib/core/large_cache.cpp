// large_cache.cpp - see large_cache.h.
#include "core/large_cache.h"

#include "core/lru_clock.h"
#include "util/counter.h"

namespace cachealloc {
namespace {
constexpr size_t kGolden = 0x9E3779B97F4A7C15ull;
}

size_t LargeCache::ptr_bucket(const void* p) const noexcept {
  return ((reinterpret_cast<uintptr_t>(p) >> 12) * kGolden >> 20) & (nbuckets_ - 1);
}

size_t LargeCache::layout_bucket(size_t size, size_t align) const noexcept {
  return (((size >> 12) ^ (align * 0x100000001b3ull)) * kGolden >> 20) & (nbuckets_ - 1);
}

bool LargeCache::grow_locked() noexcept {
  size_t n = nbuckets_ == 0 ? 1024 : nbuckets_ * 2;
  auto** ptr = static_cast<LargeBlock**>(MetaArena::map_array(n * sizeof(LargeBlock*)));
  auto** lay = static_cast<LargeBlock**>(MetaArena::map_array(n * sizeof(LargeBlock*)));
  if (ptr == nullptr || lay == nullptr) {
    MetaArena::unmap_array(ptr, n * sizeof(LargeBlock*));
    MetaArena::unmap_array(lay, n * sizeof(LargeBlock*));
    return false;
  }
  LargeBlock** old_ptr = by_ptr_;
  LargeBlock** old_lay = by_layout_;
  size_t old_n = nbuckets_;
  by_ptr_ = ptr;
  by_layout_ = lay;
  nbuckets_ = n;
  for (size_t i = 0; i < old_n; ++i) {
    for (LargeBlock* b = old_ptr[i]; b != nullptr;) {
      LargeBlock* next = b->ptr_next;
      size_t k = ptr_bucket(b->p);
      b->ptr_next = by_ptr_[k];
      by_ptr_[k] = b;
      b = next;
    }
  }
  // Re-chain cached blocks by walking the LRU from oldest to newest, so each chain stays newest-first.
  for (LargeBlock* b = lru_.back(); b != nullptr; b = lru_.prev(b)) {
    LayoutChain::push_front_at(by_layout_[layout_bucket(b->size, b->align)], b);
  }
  MetaArena::unmap_array(old_ptr, old_n * sizeof(LargeBlock*));
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

LargeBlock* LargeCache::find_locked(const void* p) noexcept {
  if (nbuckets_ == 0) return nullptr;
  for (LargeBlock* b = by_ptr_[ptr_bucket(p)]; b != nullptr; b = b->ptr_next) {
    if (b->p == p) return b;
  }
  return nullptr;
}

bool LargeCache::insert_ptr_locked(LargeBlock* b) noexcept {
  if (records_in_ptr_ + 1 > nbuckets_ && !grow_locked() && nbuckets_ == 0) return false;
  size_t k = ptr_bucket(b->p);
  b->ptr_next = by_ptr_[k];
  by_ptr_[k] = b;
  ++records_in_ptr_;
  return true;
}

void LargeCache::erase_ptr_locked(LargeBlock* b) noexcept {
  LargeBlock** link = &by_ptr_[ptr_bucket(b->p)];
  while (*link != b) link = &(*link)->ptr_next;
  *link = b->ptr_next;
  b->ptr_next = nullptr;
  --records_in_ptr_;
}

void LargeCache::cache_locked(LargeBlock* b) noexcept {
  b->cached = true;
  b->stamp = next_lru_stamp();
  LayoutChain::push_front_at(by_layout_[layout_bucket(b->size, b->align)], b);
  lru_.push_front(b);
  cached_.fetch_add(b->size, std::memory_order_relaxed);
  count_layout_locked(&LargeLayoutCounters::cached, b->size, 1);
}

void LargeCache::uncache_locked(LargeBlock* b) noexcept {
  LayoutChain::remove_at(
      [&]() noexcept -> LargeBlock*& { return by_layout_[layout_bucket(b->size, b->align)]; }, b);
  lru_.remove(b);
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
  constexpr int kFitSteps = 8;
  LockGuard g(lock_);
  if (nbuckets_ != 0) {
    size_t want = usable_size;
    for (int step = 0; step <= kFitSteps && want != 0; ++step) {
      for (LargeBlock* b = by_layout_[layout_bucket(want, align)]; b != nullptr; b = b->lay_next) {
        if (b->size == want && b->align == align) {
          uncache_locked(b);
          b->refcount = 1;
          ++live_;
          live_bytes_.fetch_add(b->size, std::memory_order_relaxed);
          if (peak_ != nullptr) peak_->add(b->size);
          hits.fetch_add(1, std::memory_order_relaxed);
          count_layout_locked(&LargeLayoutCounters::live, b->size, 1);
          count_layout_locked(&LargeLayoutCounters::hits, usable_size, 1);
          return b->p;
        }
      }
      want = large_round(want + 1);
    }
  }
  misses.fetch_add(1, std::memory_order_relaxed);
  count_layout_locked(&LargeLayoutCounters::misses, usable_size, 1);
  return nullptr;
}

void* LargeCache::alloc_upstream(size_t usable_size, size_t align, bool zero) noexcept {
  LargeBlock* rec = records_.get();
  if (rec == nullptr) return nullptr;
  void* p = source_->alloc(usable_size, align, zero);
  if (p == nullptr) {
    records_.put(rec);
    return nullptr;
  }
  upstream_allocs.fetch_add(1, std::memory_order_relaxed);
  rec->p = p;
  rec->size = usable_size;
  rec->align = align;
  rec->refcount = 1;
  {
    LockGuard g(lock_);
    if (insert_ptr_locked(rec)) {
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

LargeCache::Release LargeCache::release(void* p, size_t limit, size_t threshold) noexcept {
  LargeBlock* drop = nullptr;
  {
    LockGuard g(lock_);
    LargeBlock* b = find_locked(p);
    if (b == nullptr) return Release::kNotOurs;
    if (b->cached) return Release::kDoubleFree;
    if (--b->refcount > 0) {
      shared_releases.fetch_add(1, std::memory_order_relaxed);
      return Release::kStillShared;
    }
    --live_;
    live_bytes_.fetch_sub(b->size, std::memory_order_relaxed);
    if (peak_ != nullptr) peak_->sub(b->size);
    frees.fetch_add(1, std::memory_order_relaxed);
    count_layout_locked(&LargeLayoutCounters::live, b->size, -1);
    bool adopted_small = b->upstream_free != nullptr && b->size <= threshold;
    if (b->size > limit || adopted_small) {
      erase_ptr_locked(b);
      drop = b;
    } else {
      cache_locked(b);
    }
  }
  if (drop != nullptr) give_upstream(drop);
  return Release::kFreed;
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

size_t LargeCache::evict_oldest() noexcept {
  LargeBlock* victim = nullptr;
  {
    LockGuard g(lock_);
    victim = lru_.back();
    if (victim == nullptr) return 0;
    uncache_locked(victim);
    erase_ptr_locked(victim);
  }
  size_t bytes = victim->size;
  evictions.fetch_add(1, std::memory_order_relaxed);
  give_upstream(victim);
  return bytes;
}

size_t LargeCache::release_all() noexcept {
  size_t total = 0;
  while (size_t n = evict_oldest()) total += n;
  return total;
}

}  // namespace cachealloc
