// thread_cache.cpp - the slow paths of thread_cache.h.
#include "core/thread_cache.h"

#include "core/central_pool.h"
#include "core/heap.h"
#include "util/diagnostics.h"

namespace cachealloc {

void ThreadCache::attach(Heap* heap, bool checking) noexcept {
  static constinit std::atomic<uint32_t> next_shard{0};
  heap_ = heap;
  shard_ = next_shard.fetch_add(1, std::memory_order_relaxed) % CentralPool::kShards;
  size_t threshold = heap->config().large_threshold;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    bins_[c].head = nullptr;
    set_count(bins_[c], 0);
    // Classes past the large threshold are never used; in checking mode every call is slow.
    bins_[c].max = (checking || class_size(c) > threshold) ? 0 : thread_cache_max(c);
  }
  clear_epoch = heap->clear_epoch();
}

void* ThreadCache::refill(unsigned cls) noexcept {
  if (clear_epoch != heap_->clear_epoch()) {  // somebody called ca_clear: give back what we hold
    flush_all();
    clear_epoch = heap_->clear_epoch();
  }
  void* chain = nullptr;
  uint32_t n = heap_->pool(cls).take(batch_size(cls), &chain, shard_);
  if (n == 0) return nullptr;
  ThreadCounters::bump(counters_.refills);
  ThreadCounters::bump(counters_.allocs);
  ThreadCounters::bump(counters_.blocks_refilled, n);
  Bin& b = bins_[cls];
  void* p = chain;
  // The bin was empty (that is why we refill), so the rest of the chain becomes the bin.
  b.head = *static_cast<void**>(p);
  set_count(b, n - 1);
  return p;
}

void ThreadCache::free_slow(void* p, unsigned cls, const char* call) noexcept {
  Bin& b = bins_[cls];
  if (p == b.head && p != nullptr) fatal_pointer(call, "double free", p);
  if (b.count >= b.max && b.max != 0) flush(cls, batch_size(cls), call);
  if (b.count < b.max) {
    *static_cast<void**>(p) = b.head;
    b.head = p;
    set_count(b, b.count + 1);  // counted through the bin: Note [Derived free count]
    return;
  }
  // max == 0: this class is not cached per thread; hand the block straight back.
  *static_cast<void**>(p) = nullptr;
  ThreadCounters::bump(counters_.frees);
  heap_->pool(cls).give(p, 1, call);
  heap_->enforce_budget();
}

void ThreadCache::flush(unsigned cls, uint32_t n, const char* call) noexcept {
  Bin& b = bins_[cls];
  if (n > b.count) n = b.count;
  if (n == 0) return;
  void* head = b.head;
  void* tail = head;
  for (uint32_t i = 1; i < n; ++i) tail = *static_cast<void**>(tail);
  b.head = *static_cast<void**>(tail);
  *static_cast<void**>(tail) = nullptr;
  set_count(b, b.count - n);
  ThreadCounters::bump(counters_.flushes);
  ThreadCounters::bump(counters_.blocks_flushed, n);
  heap_->pool(cls).give(head, n, call, shard_);
  if (heap_->cached_bytes() > heap_->cache_limit()) heap_->enforce_budget();
}

uint64_t ThreadCache::frees() const noexcept {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  uint64_t in_bins = 0;
  for (unsigned c = 0; c < kNumClasses; ++c) in_bins += bin_count(c);
  return in_bins + get(counters_.allocs) - get(counters_.blocks_refilled) +
         get(counters_.blocks_flushed) + get(counters_.frees);
}

size_t ThreadCache::flush_all() noexcept {
  size_t bytes = 0;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    if (bins_[c].count == 0) continue;
    bytes += size_t{bins_[c].count} * class_size(c);
    flush(c, bins_[c].count, "thread exit");
  }
  return bytes;
}

}  // namespace cachealloc
