// heap.h - one complete allocator instance: the layers composed, and malloc semantics over them.
//
//   ThreadCache --batch--> CentralPool[cls] --slabs--> SlabSource --segments--> SegmentSource (OS)
//        \                                                    (empty slabs: LRU cache)
//         `--large--> LargeCache (LRU cache, live index, refcounts) --> LargeSource (mimalloc)
//   RefcountTable: counts of retained small blocks.   Budget: SlabSource + LargeCache cached bytes.
//
// The library has one Heap (allocator.cpp, over the OS and mimalloc); unit tests build their own
// over fakes. Everything here is a slow path; the inline fast paths live in ThreadCache and in
// allocator.h. Functions taking `call` use it to name the API in error messages.
//
// SYNCHRONIZATION: registry_lock_ guards the list of thread caches; each layer has its own lock.
// Lock order (also the order lock_all() takes them for fork): registry -> CentralPool[0..95] ->
// SlabSource -> LargeCache -> RefcountTable -> MetaPools -> MetaArena.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cachealloc.h"
#include "core/central_pool.h"
#include "core/large_cache.h"
#include "core/lru_clock.h"
#include "core/refcount_table.h"
#include "core/segment_table.h"
#include "core/slab_source.h"
#include "core/thread_cache.h"
#include "util/intrusive_list.h"

namespace cachealloc {

struct HeapSnapshot;  // core/heap_stats.h

struct HeapConfig {
  size_t cache_limit = size_t{256} << 20;
  size_t large_threshold = size_t{64} << 10;
  bool check = false;  // CACHEALLOC_CHECK: every free validated, freed memory poisoned
  uint64_t decay_ms = 10000;  // Note [Decay] (core/lru_clock.h); 0: cached memory never ages out
  bool below_peak = true;     // Note [Cache below the peak] (heap.cpp)
};

class Heap {
 public:
  constexpr Heap() = default;
  void init(SegmentSource* pages, LargeSource* large, const HeapConfig& config) noexcept;

  // ---- allocation semantics (errno set on failure) ----
  // n bytes aligned to `align` (a power of two; <= 16 means the default). nullptr + ENOMEM.
  // Counts n as requested (stats' bytes_requested: in tc, or a shared counter without one).
  void* alloc(ThreadCache* tc, size_t n, size_t align, bool zero) noexcept;
  // The same from the large-object path whatever n: a sampled block (Note [Heap profiling]).
  void* alloc_sampled(ThreadCache* tc, size_t n, size_t align, bool zero) noexcept;
  // Drops one reference to p (nullptr is a no-op). Stops the program on a foreign or doubly
  // freed pointer.
  void free(ThreadCache* tc, void* p, const char* call) noexcept;
  void* realloc(ThreadCache* tc, void* p, size_t n, const char* call) noexcept;
  // Usable bytes of a live block; 0 for nullptr or a pointer that is not ours.
  size_t usable_size(const void* p) noexcept;

  // ---- reference counts and adoption (return 0 or an errno value) ----
  int retain(void* p) noexcept;
  int release(ThreadCache* tc, void* p) noexcept;
  size_t refcount(const void* p) noexcept;
  int adopt(void* p, size_t size, size_t align, ca_upstream_free_fn fn, void* ctx) noexcept;
  bool owns(const void* p) noexcept;

  // ---- caches ----
  size_t clear(ThreadCache* tc) noexcept;
  size_t cached_bytes() const noexcept { return slabs_.cached_bytes() + large_.cached_bytes(); }
  size_t cache_limit() const noexcept { return cache_limit_.load(std::memory_order_relaxed); }
  void set_cache_limit(size_t bytes) noexcept;
  // What the cache may hold now: the budget, and with below_peak no more than the room under the
  // high-water mark of live bytes plus a slack (Note [Cache below the peak]).
  size_t cache_allowance() const noexcept;
  bool over_budget() const noexcept { return cached_bytes() > cache_allowance(); }
  // Evicts least recently used memory until cached bytes fit the budget.
  void enforce_budget() noexcept;
  // Gives back what has been cached longer than the decay (Note [Decay]); cheap when nothing is
  // due (a clock read and a compare). Called from the slow paths' periodic tick.
  void decay_tick() noexcept;
  void decay_at(uint64_t now_ns) noexcept;  // the same at a given time (tests)
  // Bytes the large-object upstream keeps for us beyond our blocks (Note [Large upstream]).
  size_t upstream_retained_bytes() noexcept;
  void get_totals(ca_totals* out) noexcept;
  // Every counter, for lib/stats (heap_stats.cpp). Takes the registry lock (to walk the thread
  // caches), then the LargeCache lock (for the live block count), one at a time; every other
  // counter is read relaxed without a lock.
  void snapshot(HeapSnapshot* out) noexcept;
  // The peak of live bytes starts again from now (ca_reset_peak; Note [Live peak]).
  void reset_peak() noexcept {
    live_peak_.reset();
    small_peak_.reset();
    large_peak_.reset();
  }
  // The same without waiting: false (and `out` incomplete) when a lock it needs is held.
  bool try_snapshot(HeapSnapshot* out) noexcept;

  // ---- thread caches ----
  ThreadCache* create_thread_cache() noexcept;  // nullptr when metadata cannot be mapped
  void destroy_thread_cache(ThreadCache* tc) noexcept;
  uint64_t clear_epoch() const noexcept { return clear_epoch_.load(std::memory_order_relaxed); }

  // ---- fork ----
  void lock_all() noexcept;
  void unlock_all() noexcept;

  // ---- layers, for the fast paths and tests ----
  const SegmentTable& table() const noexcept { return table_; }
  CentralPool& pool(unsigned cls) noexcept { return pools_[cls]; }
  SlabSource& slabs() noexcept { return slabs_; }
  LargeCache& large() noexcept { return large_; }
  RefcountTable& refs() noexcept { return refs_; }
  const HeapConfig& config() const noexcept { return config_; }
  const FreeListKeys& free_list_keys() const noexcept { return keys_; }
  bool checking() const noexcept { return config_.check; }
  // free() of a small block whose segment and class the caller looked up already (validates).
  void free_small(ThreadCache* tc, void* p, SegmentMeta* seg, unsigned cls, const char* call) noexcept;

 private:
  void* alloc_uncounted(ThreadCache* tc, size_t n, size_t align, bool zero) noexcept;
  void count_request(ThreadCache* tc, size_t n) noexcept;
  void* alloc_small(ThreadCache* tc, unsigned cls) noexcept;
  void* alloc_large(size_t n, size_t align, bool zero, bool reuse = true) noexcept;
  bool release_small_ref(void* p, SegmentMeta* seg) noexcept;  // true: still shared
  // Whether p is a block start below its slab's bump index (handed out at some time).
  bool handed_out_block(const void* p, SegmentMeta* seg) noexcept;
  bool live_small_block(const void* p, SegmentMeta* seg) noexcept;  // handed out and not free
  size_t clear_caches() noexcept;  // everything cached, for out-of-memory retries
  bool snapshot_impl(HeapSnapshot* out, bool try_only) noexcept;

  // First: the free fast path reads three of its words (the window and the array's address).
  SegmentTable table_;
  // Note [Zero until init]: every member is zero until init() (no default of HeapConfig or
  // FreeListKeys applies here), so that g_heap lands in .bss, where only the pages the process
  // writes become resident. With non-zero defaults it was in .data, whose pages ld.so and
  // fault-around map in whole. Release builds only: debug builds store lock ranks (Note [Lock
  // ranks]), which are not zero, so there g_heap is in .data again.
  HeapConfig config_{.cache_limit = 0, .large_threshold = 0, .check = false, .decay_ms = 0,
                     .below_peak = false};
  // Per process, drawn at init; every thread cache copies them (after init: until then they are
  // zero, which keeps g_heap in .bss, and no cache has copied them).
  FreeListKeys keys_{.secret = 0, .key = 0, .bad_link_bits = 0};
  SlabSource slabs_;
  CentralPool pools_[kNumClasses];
  LargeCache large_;
  RefcountTable refs_;
  LivePeak live_peak_;  // Note [Live peak] (core/live_peak.h)
  LivePeak small_peak_;  // the small pool's part of live_peak_ (central pools); linked by init
  LivePeak large_peak_;  // the large pool's part (LargeCache)
  std::atomic<size_t> cache_limit_{0};
  DecayClock decay_;
  LargeSource* large_source_ = nullptr;
  std::atomic<uint64_t> clear_epoch_{0};
  SpinLock registry_lock_{LockRank::kThreadRegistry};
  // The live thread caches (through ThreadCache::next/prev), under registry_lock_.
  IntrusiveList<ThreadCache, &ThreadCache::next, &ThreadCache::prev, ListEnds::kHead> threads_;
  MetaPool<ThreadCache> cache_records_;
  ThreadCounters retired_;  // counters of exited threads
  std::atomic<uint64_t> direct_allocs_{0}, direct_frees_{0};  // threads without a cache
  std::atomic<uint64_t> direct_bytes_requested_{0};
};

}  // namespace cachealloc
