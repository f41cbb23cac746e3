// heap.cpp - see heap.h.
#include "core/heap.h"

#include <cerrno>
#include <cstring>

#include "core/meta_arena.h"
#include "platform/os.h"
#include "util/counter.h"
#include "util/diagnostics.h"

namespace cachealloc {
namespace {
constexpr size_t kMaxRequest = size_t{PTRDIFF_MAX};
constexpr unsigned char kPoison = 0xdf;

void* fail_enomem() {
  errno = ENOMEM;
  return nullptr;
}

// For a pointer into a segment page that no active slab covers (an error path): a block start of
// a slab that went back to the cache was handed out and freed already, so it is a double free;
// anything else is an invalid pointer.
const char* stale_pointer_kind(const void* p, SegmentMeta* seg) noexcept {
  const Slab* s = seg->slab_at(p);
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (s->state == SlabState::kEmpty && s->stride != 0 && a >= s->start) {
    uintptr_t off = a - s->start;
    uint32_t bump = __atomic_load_n(&s->bump, __ATOMIC_RELAXED);
    if (off % s->stride == 0 && off / s->stride < bump) return "double free";
  }
  return "invalid pointer";
}
}  // namespace

void Heap::init(SegmentSource* pages, LargeSource* large, const HeapConfig& config) noexcept {
  config_ = config;
  // Never 0: a zero key would match every zeroed block. Note [Free-list hardening].
  keys_.secret = os::random_u64() | 1;
  keys_.key = os::random_u64() | 1;
  keys_.bad_link_bits = FreeListKeys::kBadLinkBits;
  small_peak_.set_whole(&live_peak_);
  large_peak_.set_whole(&live_peak_);
  cache_limit_.store(config.cache_limit, std::memory_order_relaxed);
  slabs_.init(pages, &table_);
  slabs_.set_live_tracking(config.check);
  for (unsigned c = 0; c < kNumClasses; ++c) pools_[c].init(c, &slabs_, &table_, &small_peak_, &keys_);
  large_.init(large);
  large_.set_live_peak(&large_peak_);
  large_source_ = large;
}

// ---- allocation ----------------------------------------------------------------------------

void* Heap::alloc(ThreadCache* tc, size_t n, size_t align, bool zero) noexcept {
  void* p = alloc_uncounted(tc, n, align, zero);
  if (p != nullptr) count_request(tc, n);
  return p;
}

void* Heap::alloc_sampled(ThreadCache* tc, size_t n, size_t align, bool zero) noexcept {
  if (n > kMaxRequest || align > kMaxRequest) return fail_enomem();
  void* p = alloc_large(n, align, zero);
  if (p != nullptr) count_request(tc, n);
  return p;
}

void Heap::count_request(ThreadCache* tc, size_t n) noexcept {
  if (tc != nullptr) {
    tc->count_request(n);
  } else {
    direct_bytes_requested_.fetch_add(n, std::memory_order_relaxed);
  }
}

void* Heap::alloc_uncounted(ThreadCache* tc, size_t n, size_t align, bool zero) noexcept {
  if (n > kMaxRequest || align > kMaxRequest) return fail_enomem();
  size_t threshold = config_.large_threshold;
  unsigned cls = kNumClasses;
  if (n <= threshold) {
    if (align <= kMinAlign) {
      cls = class_of(n);
    } else if (align <= kPageSize) {
      cls = class_of_aligned(n, align);
      if (cls < kNumClasses && class_size(cls) > threshold) cls = kNumClasses;
    }
  }
  if (cls == kNumClasses) return alloc_large(n, align, zero);
  void* p = alloc_small(tc, cls);
  if (p == nullptr) return fail_enomem();
  if (zero) memset(p, 0, n);
  return p;
}

void* Heap::alloc_small(ThreadCache* tc, unsigned cls) noexcept {
  for (int attempt = 0; attempt < 2; ++attempt) {
    void* p = nullptr;
    if (tc != nullptr && !config_.check) {
      p = tc->try_alloc(cls, 0);
      if (p == nullptr) p = tc->refill(cls);
    } else if (pools_[cls].take(1, &p) == 1) {
      FreeListKeys::unmark(p);  // a block handed out holds no key (Note [Free-list hardening])
      direct_allocs_.fetch_add(1, std::memory_order_relaxed);
      if (config_.check) CA_CHECK(table_.lookup(p)->mark_live(p), "block handed out twice");
    } else {
      p = nullptr;
    }
    if (p != nullptr) return p;
    // Give back what is cached and try again; also when nothing was (another thread may have
    // freed meanwhile).
    clear_caches();
  }
  return nullptr;
}

void* Heap::alloc_large(size_t n, size_t align, bool zero, bool reuse) noexcept {
  size_t a = align < kMinAlign ? kMinAlign : align;
  size_t usable = large_round(n);
  if (usable == 0 || usable > kMaxRequest) return fail_enomem();
  void* p = large_.take_cached(usable, a);
  if (p != nullptr) {
    if (zero) memset(p, 0, n);
    return p;
  }
  p = large_.alloc_upstream(usable, a, zero, reuse);  // Note [A miss reuses cached pages]
  if (p == nullptr && clear_caches() != 0) p = large_.alloc_upstream(usable, a, zero, reuse);
  if (p == nullptr) return fail_enomem();
  if (over_budget()) enforce_budget();  // Note [Cache below the peak]
  return p;
}

// ---- free ----------------------------------------------------------------------------------

void Heap::free(ThreadCache* tc, void* p, const char* call) noexcept {
  if (p == nullptr) return;
  SegmentMeta* seg = table_.lookup(p);
  if (seg != nullptr) {
    unsigned cls = seg->class_at(p);
    if (cls == kNoClass) fatal_pointer(call, stale_pointer_kind(p, seg), p);
    free_small(tc, p, seg, cls, call);
    return;
  }
  switch (large_.free(p, cache_limit(), config_.large_threshold)) {
    case LargeCache::FreeResult::kFreed:
      if (over_budget()) enforce_budget();
      return;
    case LargeCache::FreeResult::kStillShared:
      return;
    case LargeCache::FreeResult::kDoubleFree:
      fatal_pointer(call, "double free", p);
    case LargeCache::FreeResult::kNotOurs:
      fatal_pointer(call, "invalid pointer", p);
  }
}

bool Heap::handed_out_block(const void* p, SegmentMeta* seg) noexcept {
  Slab* s = seg->slab_at(p);
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (s->state != SlabState::kActive || s->stride == 0 || a < s->start) return false;
  uintptr_t off = a - s->start;
  // bump grows under the pool lock while we read it without: a relaxed atomic load (a block
  // handed out is below any value we can see).
  uint32_t bump = __atomic_load_n(&s->bump, __ATOMIC_RELAXED);
  return off % s->stride == 0 && off / s->stride < bump;
}

// A block handed out and not freed since: a free one holds the key wherever it waits (Note
// [Free-list hardening]), unless a write after free wiped it; in check mode its live bit is clear
// (Note [Live bits]). A freed p the program passes while another thread empties its slab and
// ca_clear unmaps the segment may fault here: a use after free racing with the cache's release.
bool Heap::live_small_block(const void* p, SegmentMeta* seg) noexcept {
  if (!handed_out_block(p, seg)) return false;
  return config_.check ? seg->is_live(p) : !keys_.marks_live(p);
}

bool Heap::release_small_ref(void* p, SegmentMeta* seg) noexcept {
  bool erased = false;
  uint32_t left = refs_.release(p, &erased);
  if (left == 0) return false;  // count was 1: the caller frees the block
  if (erased) seg->add_shared(p, -1);  // Note [Shared pages]
  return true;
}

void Heap::free_small(ThreadCache* tc, void* p, SegmentMeta* seg, unsigned cls, const char* call) noexcept {
  // Frees that skipped the fast path (shared blocks, a full bin, no thread cache) were not checked
  // yet. A slab's pages and class never change while any of its blocks is live: no lock needed.
  if (!seg->is_block_start(p, cls)) fatal_pointer(call, "invalid pointer", p);
  if (seg->page_shared(p) && release_small_ref(p, seg)) return;
  if (config_.check) {
    if (!handed_out_block(p, seg)) fatal_pointer(call, "invalid pointer", p);
    if (!seg->clear_live(p)) fatal_pointer(call, "double free", p);  // Note [Live bits]
    memset(p, kPoison, class_size(cls));
  } else if (tc != nullptr) {
    if (!tc->try_free(p, cls)) tc->free_slow(p, cls, call);
    return;
  } else {
    // No thread cache (a thread past its cache's teardown): the key tells a block that waits
    // somewhere already, and the block carries it on (Note [Free-list hardening]).
    if (keys_.marks(p)) fatal_pointer(call, "double free", p);
    keys_.mark(p);
  }
  keys_.set_link(p, nullptr);  // a chain of one (Note [Encoded batches])
  direct_frees_.fetch_add(1, std::memory_order_relaxed);
  pools_[cls].give(p, 1, call);
  if (over_budget()) enforce_budget();
}

void* Heap::realloc(ThreadCache* tc, void* p, size_t n, const char* call) noexcept {
  if (p == nullptr) return alloc(tc, n, 0, false);
  if (n == 0) {
    free(tc, p, call);
    return nullptr;
  }
  size_t old = 0;
  SegmentMeta* seg = table_.lookup(p);
  if (seg != nullptr) {
    unsigned cls = seg->class_at(p);
    if (cls == kNoClass) fatal_pointer(call, stale_pointer_kind(p, seg), p);
    old = class_size(cls);
  } else {
    old = large_.usable_size(p);
    if (old == 0) fatal_pointer(call, large_.owns(p) ? "double free" : "invalid pointer", p);
  }
  if (n > kMaxRequest) return fail_enomem();
  // Stay in place when the block still fits and would not waste more than half of itself.
  if (n <= old && (n > old / 2 || old <= kMinAlign)) return p;
  // Note [Realloc growth]: a block that must grow grows by at least a quarter, so a buffer that
  // grows by small appends moves (and is copied) every 25% rather than at every 12.5% size class.
  // Sizes above the large threshold are left exact: they are rounded coarsely already, and
  // programs that double their buffers gain nothing from it.
  // Note [Large realloc]: a large block that stays large moves to a cached block of the new size
  // when there is one (its pages are resident: copying is cheaper than faulting pages in), else
  // the source resizes it (mremap: no copy, no second block alive meanwhile), else it is copied
  // (a block pieced from cached pages, once: Note [A miss reuses cached pages]).
  if (size_t usable = large_round(n); seg == nullptr && n > config_.large_threshold && usable != 0) {
    if (void* q = large_.take_cached(usable, kMinAlign)) {
      count_request(tc, n);
      memcpy(q, p, n < old ? n : old);
      free(tc, p, call);
      return q;
    }
    if (void* q = large_.resize(p, usable)) {
      count_request(tc, n);
      return q;
    }
  }
  size_t want = n;
  if (n > old && old < config_.large_threshold) {
    size_t grown = old + old / 4;
    if (grown > n) want = grown;
  }
  int saved = errno;
  // A large block made here is fresh, not pieced from cached pages, so that it can be resized
  // later (Note [A miss reuses cached pages]).
  auto alloc = [&](size_t size) noexcept {
    return size > config_.large_threshold ? alloc_large(size, 0, false, /*reuse=*/false)
                                          : alloc_uncounted(tc, size, 0, false);
  };
  void* q = alloc(want);
  if (q == nullptr && want != n) q = alloc(n);
  if (q == nullptr) return nullptr;  // errno is ENOMEM; the old block is untouched
  errno = saved;
  count_request(tc, n);
  memcpy(q, p, n < old ? n : old);
  free(tc, p, call);
  return q;
}

size_t Heap::usable_size(const void* p) noexcept {
  if (p == nullptr) return 0;
  SegmentMeta* seg = table_.lookup(p);
  if (seg != nullptr) {
    unsigned cls = seg->class_at(p);
    return cls == kNoClass ? 0 : class_size(cls);
  }
  return large_.usable_size(p);
}

// ---- reference counts ----------------------------------------------------------------------

int Heap::retain(void* p) noexcept {
  if (p == nullptr) return EINVAL;
  SegmentMeta* seg = table_.lookup(p);
  if (seg == nullptr) return large_.retain(p) ? 0 : EINVAL;
  if (!live_small_block(p, seg)) return EINVAL;
  // Share the page before the entry exists, so a concurrent free never misses it (Note [Shared
  // pages]).
  seg->add_shared(p, 1);
  bool inserted = false;
  uint32_t count = refs_.retain(p, &inserted);
  if (!inserted) seg->add_shared(p, -1);
  return count == 0 ? ENOMEM : 0;
}

int Heap::release(ThreadCache* tc, void* p) noexcept {
  if (p == nullptr) return EINVAL;
  SegmentMeta* seg = table_.lookup(p);
  if (seg != nullptr) {
    if (!live_small_block(p, seg)) return EINVAL;
    free_small(tc, p, seg, seg->class_at(p), "ca_release");
    return 0;
  }
  switch (large_.free(p, cache_limit(), config_.large_threshold)) {
    case LargeCache::FreeResult::kFreed:
      if (over_budget()) enforce_budget();
      return 0;
    case LargeCache::FreeResult::kStillShared:
      return 0;
    default:
      return EINVAL;
  }
}

size_t Heap::refcount(const void* p) noexcept {
  if (p == nullptr) return 0;
  SegmentMeta* seg = table_.lookup(p);
  if (seg == nullptr) return large_.refcount(p);
  if (!live_small_block(p, seg)) return 0;
  uint32_t c = refs_.count(p);
  return c == 0 ? 1 : c;
}

int Heap::adopt(void* p, size_t size, size_t align, ca_upstream_free_fn fn, void* ctx) noexcept {
  if (align == 0) align = kMinAlign;
  if (p == nullptr || fn == nullptr || size == 0 || size > kMaxRequest ||
      (align & (align - 1)) != 0 || (reinterpret_cast<uintptr_t>(p) & (align - 1)) != 0 ||
      table_.lookup(p) != nullptr) {
    return EINVAL;
  }
  return large_.adopt(p, size, align, fn, ctx);
}

bool Heap::owns(const void* p) noexcept {
  if (p == nullptr) return false;
  if (table_.lookup(p) != nullptr) return true;
  return large_.owns(p);
}

// ---- caches --------------------------------------------------------------------------------

size_t Heap::clear(ThreadCache* tc) noexcept {
  if (tc != nullptr) tc->flush_all();
  clear_epoch_.fetch_add(1, std::memory_order_relaxed);
  for (CentralPool& pool : pools_) pool.drain_slots();
  size_t bytes = slabs_.clear();
  bytes += large_.clear();
  return bytes;
}

size_t Heap::clear_caches() noexcept { return clear(nullptr); }

void Heap::set_cache_limit(size_t bytes) noexcept {
  cache_limit_.store(bytes, std::memory_order_relaxed);
  enforce_budget();
}

// Note [Cache below the peak]: the budget is a fixed number, so a program whose live memory is
// far below it can hold up to the whole budget in cached blocks on top of its live ones: a
// buffer's intermediate sizes, the big blocks of a phase that is over, kept while the program's
// live memory grows elsewhere. So the cache also fits under the program's own high-water mark:
// it may hold what the program freed below its peak of live bytes, plus a slack of 1/4 of that
// peak (at least 8 MiB):
//   allowance = min(budget, high_water - live + max(high_water / 4, 8 MiB))
// A program that allocates the same big buffers in a loop keeps them cached (they fit under the
// peak they made), while a program whose live memory grows pushes out the cached memory it grows
// past instead of adding to it: live plus cached memory stays within 1.25 times the peak of live
// memory (or the peak + 8 MiB). The slack was measured (best of 3, time and peak RSS; without the
// rule: mixed 0.51 s 98 MiB, growth 0.14 s 85 MiB, large 0.48 s 85 MiB, realloc 0.80 s 47 MiB):
//   peak/8, >= 8 MiB:  mixed 0.60 s 96 MiB, growth 0.19 s 75, large 0.42 s 67, realloc 0.81 s 39
//   peak/4, >= 8 MiB:  mixed 0.48 s 98 MiB, growth 0.18 s 80, large 0.45 s 83, realloc 0.79 s 39
//   peak/4, >= 16 MiB: mixed 0.41 s 98 MiB, growth 0.16 s 84, large 0.40 s 83, realloc 0.86 s 46
// 1/8 cost `mixed` (16 B-1 MiB, 512 live) 20% in misses; 1/4 keeps its time and still holds
// realloc near glibc's RSS. The high-water mark counts free blocks in thread caches as live (Note
// [Live peak]) and is never reset. The check runs where live memory grows (large blocks from
// upstream, thread-cache refills) and where the cache grows (frees).
size_t Heap::cache_allowance() const noexcept {
  size_t limit = cache_limit();
  if (!config_.below_peak) return limit;
  constexpr uint64_t kMinSlack = uint64_t{8} << 20;
  uint64_t high = live_peak_.high_water();
  uint64_t live = live_peak_.total();
  uint64_t room = (high > live ? high - live : 0) + (high / 4 > kMinSlack ? high / 4 : kMinSlack);
  return room < limit ? static_cast<size_t>(room) : limit;
}

void Heap::decay_tick() noexcept { decay_at(os::now_ns()); }

void Heap::decay_at(uint64_t now_ns) noexcept {
  uint64_t cutoff = decay_.tick(now_ns, config_.decay_ms * 1000000);
  if (cutoff == 0) return;
  for (;;) {
    uint64_t small = slabs_.oldest_stamp();
    uint64_t large = large_.oldest_stamp();
    if ((small < large ? small : large) >= cutoff) return;  // both UINT64_MAX when empty
    if ((small < large ? slabs_.evict_oldest() : large_.evict_oldest(true)) == 0) return;
  }
}

size_t Heap::upstream_retained_bytes() noexcept {
  return large_source_ == nullptr ? 0 : large_source_->retained_bytes();
}

void Heap::enforce_budget() noexcept {
  // Evict whichever cache holds the least recently used memory, until both fit together.
  for (;;) {
    if (!over_budget()) return;
    uint64_t small = slabs_.oldest_stamp();
    uint64_t large = large_.oldest_stamp();
    if (small == UINT64_MAX && large == UINT64_MAX) return;
    size_t freed = small < large ? slabs_.evict_oldest() : large_.evict_oldest();
    if (freed == 0 && (small < large ? large_.evict_oldest() : slabs_.evict_oldest()) == 0) return;
  }
}

void Heap::get_totals(ca_totals* out) noexcept {
  uint64_t allocs = retired_.allocs.load(std::memory_order_relaxed) + direct_allocs_.load();
  uint64_t frees = retired_.frees.load(std::memory_order_relaxed) + direct_frees_.load();
  {
    LockGuard g(registry_lock_);
    for (ThreadCache* t = threads_.front(); t != nullptr; t = t->next) {
      allocs += t->counters().allocs.load(std::memory_order_relaxed);
      frees += t->frees();
    }
  }
  out->large_hits = large_.hits.load(std::memory_order_relaxed);
  out->large_misses = large_.misses.load(std::memory_order_relaxed);
  out->large_evictions = large_.evictions.load(std::memory_order_relaxed);
  out->allocs = allocs + out->large_hits + out->large_misses;
  out->frees = frees + large_.frees.load(std::memory_order_relaxed);
  out->os_mapped = slabs_.mapped_bytes();
  out->cached = cached_bytes();
  out->cache_limit = cache_limit();
}

// ---- thread caches -------------------------------------------------------------------------

ThreadCache* Heap::create_thread_cache() noexcept {
  ThreadCache* tc = cache_records_.get();
  if (tc == nullptr) return nullptr;
  tc->attach(this, config_.check);
  LockGuard g(registry_lock_);
  threads_.push_front(tc);
  return tc;
}

void Heap::destroy_thread_cache(ThreadCache* tc) noexcept {
  tc->flush_all();
  {
    LockGuard g(registry_lock_);
    threads_.remove(tc);
    // retired_ is written only under the registry lock (util/counter.h).
    const ThreadCounters& c = tc->counters();
    auto add = [](std::atomic<uint64_t>& to, const std::atomic<uint64_t>& from) {
      owner_add(to, from.load(std::memory_order_relaxed));
    };
    add(retired_.allocs, c.allocs);
    add(retired_.bytes_requested, c.bytes_requested);
    owner_add(retired_.frees, tc->frees());
    add(retired_.refills, c.refills);
    add(retired_.flushes, c.flushes);
  }
  cache_records_.put(tc);
}

// ---- fork ----------------------------------------------------------------------------------

void Heap::lock_all() noexcept {
  registry_lock_.lock();
  for (CentralPool& pool : pools_) pool.lock().lock();
  slabs_.lock().lock();
  large_.lock().lock();
  refs_.lock_all();
  cache_records_.lock().lock();
  large_.records_lock().lock();
  segment_meta_lock().lock();
  meta_arena().lock().lock();
}

void Heap::unlock_all() noexcept {
  meta_arena().lock().unlock();
  segment_meta_lock().unlock();
  large_.records_lock().unlock();
  cache_records_.lock().unlock();
  refs_.unlock_all();
  large_.lock().unlock();
  slabs_.lock().unlock();
  for (CentralPool& pool : pools_) pool.lock().unlock();
  registry_lock_.unlock();
}

}  // namespace cachealloc
