// fields.h - every counter of the segment with its name, kind and meaning, in one place.
//
// JSON keys and Prometheus metric names come from these tables, so the two outputs and
// docs/stats.md (which lists the same names) cannot drift apart field by field.
#pragma once

#include <cstdint>

#include "cachealloc/stats_abi.h"

namespace castats {

enum class Kind { kCounter, kGauge };

template <typename Row>
struct Field {
  const char* name;  // JSON key; Prometheus: cachealloc_<prefix><name>[_total]
  uint64_t Row::*member;
  Kind kind;
  const char* help;
};

inline constexpr Field<ca_stats_totals> kTotalsFields[] = {
    {"allocs", &ca_stats_totals::allocs, Kind::kCounter, "Allocation calls that returned a block."},
    {"frees", &ca_stats_totals::frees, Kind::kCounter, "Blocks whose reference count reached 0."},
    {"adopts", &ca_stats_totals::adopts, Kind::kCounter, "Blocks adopted with ca_adopt."},
    {"blocks_live", &ca_stats_totals::blocks_live, Kind::kGauge, "Blocks handed out and not freed."},
    {"bytes_live", &ca_stats_totals::bytes_live, Kind::kGauge, "Bytes of live blocks (usable sizes)."},
    {"bytes_requested", &ca_stats_totals::bytes_requested, Kind::kCounter, "Bytes asked for by the allocation calls (before rounding)."},
    {"bytes_live_peak", &ca_stats_totals::bytes_live_peak, Kind::kGauge, "Largest bytes_live seen at a publication."},
    {"bytes_cached", &ca_stats_totals::bytes_cached, Kind::kGauge, "Budgeted cache: empty slabs plus freed large blocks."},
    {"bytes_thread_cached", &ca_stats_totals::bytes_thread_cached, Kind::kGauge, "Free small blocks held in thread caches."},
    {"bytes_transfer", &ca_stats_totals::bytes_transfer, Kind::kGauge, "Free small blocks in the central transfer slots."},
    {"bytes_os_mapped", &ca_stats_totals::bytes_os_mapped, Kind::kGauge, "Small-object segments mapped from the OS."},
    {"bytes_large_upstream", &ca_stats_totals::bytes_large_upstream, Kind::kGauge, "Large blocks held from the upstream allocator."},
    {"cache_limit", &ca_stats_totals::cache_limit, Kind::kGauge, "The cache budget in bytes."},
    {"threads", &ca_stats_totals::threads, Kind::kGauge, "Threads with a thread cache."},
    {"refills", &ca_stats_totals::refills, Kind::kCounter, "Thread-cache refills from the central pools."},
    {"flushes", &ca_stats_totals::flushes, Kind::kCounter, "Thread-cache flushes to the central pools."},
    {"retains", &ca_stats_totals::retains, Kind::kCounter, "References added with ca_retain."},
    {"releases", &ca_stats_totals::releases, Kind::kCounter, "References dropped on shared blocks."},
    {"hits", &ca_stats_totals::hits, Kind::kCounter, "Allocations served from a cache."},
    {"misses", &ca_stats_totals::misses, Kind::kCounter, "Allocations that went past the caches."},
    {"bytes_upstream_retained", &ca_stats_totals::bytes_upstream_retained, Kind::kGauge, "Memory the large-object upstream keeps committed beyond its live blocks."},
    {"large_declined", &ca_stats_totals::large_declined, Kind::kCounter, "Freed large blocks given back at once for want of reuse."},
    {"large_decayed", &ca_stats_totals::large_decayed, Kind::kCounter, "Cached large blocks given back after the decay time."},
    {"large_resizes", &ca_stats_totals::large_resizes, Kind::kCounter, "Large reallocs done by mremap, without a copy."},
};

inline constexpr Field<ca_stats_pool_row> kPoolFields[] = {
    {"allocs", &ca_stats_pool_row::allocs, Kind::kCounter, "Allocations from the pool."},
    {"frees", &ca_stats_pool_row::frees, Kind::kCounter, "Blocks freed to the pool."},
    {"hits", &ca_stats_pool_row::hits, Kind::kCounter, "Allocations served from the pool's cache."},
    {"misses", &ca_stats_pool_row::misses, Kind::kCounter, "Allocations that went further."},
    {"evictions", &ca_stats_pool_row::evictions, Kind::kCounter, "Cached units given back upstream."},
    {"upstream_allocs", &ca_stats_pool_row::upstream_allocs, Kind::kCounter, "Allocations from the pool's upstream."},
    {"upstream_frees", &ca_stats_pool_row::upstream_frees, Kind::kCounter, "Returns to the pool's upstream."},
    {"bytes_cached", &ca_stats_pool_row::bytes_cached, Kind::kGauge, "Budgeted cache bytes of the pool."},
    {"bytes_live", &ca_stats_pool_row::bytes_live, Kind::kGauge, "Live bytes of the pool."},
    {"blocks_live", &ca_stats_pool_row::blocks_live, Kind::kGauge, "Live blocks of the pool."},
    {"bytes_upstream", &ca_stats_pool_row::bytes_upstream, Kind::kGauge, "Bytes held from the pool's upstream."},
    {"bytes_live_peak", &ca_stats_pool_row::bytes_live_peak, Kind::kGauge, "Peak of the pool's live bytes since start or ca_reset_peak()."},
};

inline constexpr Field<ca_stats_layout_row> kLayoutFields[] = {
    {"blocks_live", &ca_stats_layout_row::blocks_live, Kind::kGauge, "Live blocks of the layout."},
    {"bytes_live", &ca_stats_layout_row::bytes_live, Kind::kGauge, "Live bytes of the layout."},
    {"blocks_thread_cached", &ca_stats_layout_row::blocks_thread_cached, Kind::kGauge, "Free blocks of the layout in thread caches."},
    {"blocks_transfer", &ca_stats_layout_row::blocks_transfer, Kind::kGauge, "Free blocks of the layout in transfer slots."},
    {"refills", &ca_stats_layout_row::refills, Kind::kCounter, "Batches taken by thread caches."},
    {"transfer_hits", &ca_stats_layout_row::transfer_hits, Kind::kCounter, "Refills served whole from transfer slots."},
    {"flushes", &ca_stats_layout_row::flushes, Kind::kCounter, "Batches given back by thread caches."},
    {"blocks_taken", &ca_stats_layout_row::blocks_taken, Kind::kCounter, "Blocks that left the central pool."},
    {"blocks_given", &ca_stats_layout_row::blocks_given, Kind::kCounter, "Blocks that came back to the central pool."},
    {"slabs_taken", &ca_stats_layout_row::slabs_taken, Kind::kCounter, "Slabs taken from the slab source."},
    {"slabs_released", &ca_stats_layout_row::slabs_released, Kind::kCounter, "Slabs that became empty."},
    {"blocks_cached", &ca_stats_layout_row::blocks_cached, Kind::kGauge, "Large layouts: freed blocks in the cache."},
    {"hits", &ca_stats_layout_row::hits, Kind::kCounter, "Large layouts: allocations served from the cache."},
};

inline const char* layout_kind_name(uint32_t kind) {
  return kind == CA_STATS_LAYOUT_SMALL ? "small" : kind == CA_STATS_LAYOUT_LARGE ? "large" : "other";
}

inline constexpr Field<ca_stats_device_row> kDeviceFields[] = {
    {"bytes_reserved", &ca_stats_device_row::bytes_reserved, Kind::kGauge, "Device bytes allocated from CUDA (live + cached)."},
    {"bytes_cached", &ca_stats_device_row::bytes_cached, Kind::kGauge, "Device bytes cached."},
    {"bytes_live", &ca_stats_device_row::bytes_live, Kind::kGauge, "Device bytes live."},
    {"hits", &ca_stats_device_row::hits, Kind::kCounter, "Device allocations served from the cache."},
    {"misses", &ca_stats_device_row::misses, Kind::kCounter, "Device allocations that went to CUDA."},
    {"syncs_forced", &ca_stats_device_row::syncs_forced, Kind::kCounter, "Fallback device synchronisations."},
    {"oom_retries", &ca_stats_device_row::oom_retries, Kind::kCounter, "CUDA out-of-memory errors retried."},
    {"evictions", &ca_stats_device_row::evictions, Kind::kCounter, "Cached device blocks really freed."},
    {"cache_limit", &ca_stats_device_row::cache_limit, Kind::kGauge, "Device cache budget in bytes."},
    {"bytes_live_peak", &ca_stats_device_row::bytes_live_peak, Kind::kGauge, "Peak of live bytes since start or ca_reset_peak()."},
};

}  // namespace castats
