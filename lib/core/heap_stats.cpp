// heap_stats.cpp - Heap::snapshot: every counter of the layers, copied for lib/stats.
// See heap_stats.h for what is exact when.
#include "core/heap_stats.h"

#include <cstring>
#include <type_traits>

#include "core/heap.h"

namespace cachealloc {
namespace {
uint64_t get(const std::atomic<uint64_t>& c) noexcept { return c.load(std::memory_order_relaxed); }
}  // namespace

void Heap::snapshot(HeapSnapshot* out) noexcept { snapshot_impl(out, false); }

bool Heap::try_snapshot(HeapSnapshot* out) noexcept { return snapshot_impl(out, true); }

// `try_only`: the two locks are only tried, and false comes back (out half-filled) when either is
// held, so that the caller never waits (the stats publisher thread, Note [Publisher thread]).
bool Heap::snapshot_impl(HeapSnapshot* out, bool try_only) noexcept {
  // Cleared in place: a HeapSnapshot (~18 KiB) must never be a temporary on the stack of the
  // thread that publishes from inside malloc.
  static_assert(std::is_trivially_copyable_v<HeapSnapshot>);
  std::memset(static_cast<void*>(out), 0, sizeof *out);
  HeapSnapshot& s = *out;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    const CentralPool::Counters& pc = pools_[c].counters();
    ClassSnapshot& cs = s.classes[c];
    cs.takes = get(pc.takes);
    cs.slot_takes = get(pc.slot_takes);
    cs.gives = get(pc.gives);
    cs.blocks_taken = get(pc.blocks_taken);
    cs.blocks_given = get(pc.blocks_given);
    cs.blocks_in_slots = get(pc.slot_blocks);
    cs.slabs_taken = get(pc.slabs_taken);
    cs.slabs_released = get(pc.slabs_released);
  }
  // Pool counters first, thread caches second: a block moving from a pool into a cache meanwhile
  // is then seen in both places rather than in neither, so live counts err low, not high.
  s.small_allocs = get(retired_.allocs);
  s.bytes_requested = get(retired_.bytes_requested) + get(direct_bytes_requested_);
  s.small_frees = get(retired_.frees);
  s.refills = get(retired_.refills);
  s.flushes = get(retired_.flushes);
  {
    if (try_only) {
      if (!registry_lock_.try_lock()) return false;
    } else {
      registry_lock_.lock();
    }
    for (ThreadCache* t = threads_.front(); t != nullptr; t = t->next) {
      const ThreadCounters& tc = t->counters();
      s.small_allocs += get(tc.allocs);
      s.bytes_requested += get(tc.bytes_requested);
      s.small_frees += t->frees();
      s.refills += get(tc.refills);
      s.flushes += get(tc.flushes);
      ++s.threads;
      for (unsigned c = 0; c < kNumClasses; ++c) s.classes[c].blocks_thread_cached += t->bin_count(c);
    }
    registry_lock_.unlock();
  }
  s.direct_allocs = direct_allocs_.load(std::memory_order_relaxed);
  s.small_allocs += s.direct_allocs;
  s.small_frees += direct_frees_.load(std::memory_order_relaxed);

  s.slab_bytes_cached = slabs_.cached_bytes();
  s.os_bytes_mapped = slabs_.mapped_bytes();
  s.segment_maps = get(slabs_.segment_maps);
  s.segment_unmaps = get(slabs_.segment_unmaps);
  s.slab_evictions = get(slabs_.evictions);

  s.large_hits = get(large_.hits);
  s.large_misses = get(large_.misses);
  s.large_frees = get(large_.frees);
  s.large_adopts = get(large_.adopts);
  s.large_evictions = get(large_.evictions);
  s.large_declined = get(large_.declined);
  s.large_decayed = get(large_.decayed);
  s.large_resizes = get(large_.resizes);
  s.upstream_retained = upstream_retained_bytes();
  s.large_upstream_allocs = get(large_.upstream_allocs);
  s.large_upstream_frees = get(large_.upstream_frees);
  {
    if (try_only) {
      if (!large_.lock().try_lock()) return false;
    } else {
      large_.lock().lock();
    }
    s.large_blocks_live = large_.live_blocks();
    large_.lock().unlock();
  }
  s.large_bytes_live = large_.live_bytes();
  s.large_bytes_cached = large_.cached_bytes();
  for (unsigned i = 0; i < kLargeLayouts; ++i) {
    const LargeLayoutCounters& c = large_.layout_counters(i);
    s.large_layouts[i] = LargeLayoutSnapshot{get(c.live), get(c.cached), get(c.hits), get(c.misses)};
  }

  refs_.counts(&s.retains, &s.releases);
  s.retains += get(large_.retains);
  s.releases += get(large_.shared_releases);
  s.cache_limit = cache_limit();
  s.live_total = live_peak_.total();
  s.live_peak = live_peak_.peak();
  s.small_live_peak = small_peak_.peak();
  s.large_live_peak = large_peak_.peak();
  return true;
}

}  // namespace cachealloc
