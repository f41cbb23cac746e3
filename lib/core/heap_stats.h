// heap_stats.h - a point-in-time copy of a Heap's counters, for lib/stats and tests.
//
// Heap::snapshot (heap_stats.cpp) fills it from counters the layers keep anyway: the owner-written
// ThreadCounters of every thread cache, the per-class CentralPool counters, the SlabSource,
// LargeCache and RefcountTable counters. It takes only the thread-registry lock (to walk the
// caches); everything else is read with relaxed loads, so the figures of a running program are a
// slightly smeared picture, and exact once the threads are quiescent. Nothing here is on a fast
// path and nothing allocates.
//
// Exactness: small blocks live = allocs - frees, counted per thread. Per class, the blocks that
// left the central pool (taken - given) are either live or sitting in a thread cache; the thread
// cache bin counts are owner-written and read here without synchronisation (the number read may be
// one step stale for a thread that is running), which is why byte figures are exact only at
// quiescence or for the calling thread's own cache.
#pragma once

#include <cstdint>

#include "core/large_cache.h"
#include "core/size_class.h"

namespace cachealloc {

struct ClassSnapshot {
  uint64_t takes = 0, slot_takes = 0, gives = 0;  // central pool calls
  uint64_t blocks_taken = 0, blocks_given = 0;
  uint64_t blocks_in_slots = 0;                   // now
  uint64_t blocks_thread_cached = 0;              // now, summed over thread caches
  uint64_t slabs_taken = 0, slabs_released = 0;

  // Live blocks of this class (never negative, even in a smeared read).
  uint64_t blocks_live() const noexcept {
    uint64_t out = blocks_taken - blocks_given;
    if (blocks_taken < blocks_given || out < blocks_thread_cached) return 0;
    return out - blocks_thread_cached;
  }
};

struct LargeLayoutSnapshot {
  uint64_t live = 0, cached = 0, hits = 0, misses = 0;  // blocks now, blocks now, calls, calls
};

struct HeapSnapshot {
  // Small objects (thread caches, including exited threads and threads without a cache).
  uint64_t small_allocs = 0, small_frees = 0;
  uint64_t refills = 0, flushes = 0;      // thread-cache slow paths
  uint64_t direct_allocs = 0;             // small blocks taken from a pool with no thread cache
  uint64_t threads = 0;                   // now: registered thread caches
  uint64_t slab_bytes_cached = 0;         // now: empty slabs kept committed (budgeted)
  uint64_t os_bytes_mapped = 0;           // now: small-object segments
  uint64_t segment_maps = 0, segment_unmaps = 0, slab_evictions = 0;

  // Large objects.
  uint64_t large_hits = 0, large_misses = 0, large_frees = 0, large_adopts = 0;
  uint64_t large_evictions = 0, large_upstream_allocs = 0, large_upstream_frees = 0;
  uint64_t large_blocks_live = 0, large_bytes_live = 0, large_bytes_cached = 0;
  uint64_t large_declined = 0, large_decayed = 0, large_resizes = 0;
  uint64_t upstream_retained = 0;  // now: Heap::upstream_retained_bytes()

  // Sizes asked for by every allocation call (small and large), before rounding.
  uint64_t bytes_requested = 0;

  // Reference counts (small and large).
  uint64_t retains = 0, releases = 0;

  uint64_t cache_limit = 0;
  // Note [Live peak]: live bytes counting thread-cached small blocks as live, now and at most.
  uint64_t live_total = 0, live_peak = 0;
  uint64_t small_live_peak = 0, large_live_peak = 0;  // the pools' parts, peaks of their own
  ClassSnapshot classes[kNumClasses];
  LargeLayoutSnapshot large_layouts[kLargeLayouts];  // by large_layout_index
};

}  // namespace cachealloc
