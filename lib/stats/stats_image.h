// stats_image.h - the statistics segment's contents, built in memory from a HeapSnapshot.
//
// The publisher keeps one image (static storage: it is too big for a thread's stack inside malloc)
// and rebuilds it at every publication; the shared-memory segment (stats_segment.h) receives a
// copy, and the exit summary (summary.h) prints from it. The layout is the ABI of
// include/cachealloc/stats_abi.h, version 1.
//
// Who calls: publisher.cpp only, under its lock. Nothing here allocates or takes a lock.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cachealloc/stats_abi.h"
#include "core/heap_stats.h"
#include "cuda/device_cache.h"

namespace cachealloc::stats {

// Everything in the header that does not come from the heap.
struct Identity {
  uint32_t pid = 0;
  uint32_t flags = 0;
  uint64_t start_time_ns = 0;
  uint64_t start_ticks = 0;
  uint64_t publish_interval_ns = 0;
  char exe[CA_STATS_EXE_LEN] = {};
};

struct alignas(64) Image {
  unsigned char bytes[CA_STATS_SEGMENT_SIZE];

  ca_stats_header* header() noexcept { return reinterpret_cast<ca_stats_header*>(bytes); }
  const ca_stats_header* header() const noexcept { return reinterpret_cast<const ca_stats_header*>(bytes); }
  const ca_stats_totals* totals() const noexcept;
  ca_stats_totals* totals() noexcept {
    return const_cast<ca_stats_totals*>(static_cast<const Image*>(this)->totals());
  }
  const ca_stats_pool_row* pool(uint32_t i) const noexcept;
  const ca_stats_layout_row* layout(uint32_t i) const noexcept;
  const ca_stats_device_row* device(uint32_t i) const noexcept;
  // The prefix of the image that holds data: up to the last used layout row (or device row).
  // Rows past a table's count are never copied; readers ignore them.
  size_t used_size() const noexcept;
};

// Rebuilds `image` from `snap`. `peak` carries bytes_live_peak from one publication to the next.
// `publish_count` is the number of this publication (1 for the first).
void build_image(const Identity& id, const HeapSnapshot& snap, uint64_t publish_count,
                 uint64_t* peak, Image* image) noexcept;
// Writes the CUDA device rows (one per report, at most CA_STATS_DEVICE_CAPACITY) and their count.
void set_device_rows(const cuda::DeviceReport* reports, size_t n, Image* image) noexcept;

}  // namespace cachealloc::stats
