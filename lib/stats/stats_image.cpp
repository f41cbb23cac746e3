// stats_image.cpp - HeapSnapshot -> segment image (stats_abi.h, version 1).
#include "stats/stats_image.h"

#include <algorithm>

#include <cstring>

#include "cachealloc/version.h"
#include "platform/shm.h"

namespace cachealloc::stats {
namespace {

constexpr uint32_t kTotalsOffset = sizeof(ca_stats_header);
constexpr uint32_t kPoolsOffset = kTotalsOffset + sizeof(ca_stats_totals);
constexpr uint32_t kLayoutsOffset = kPoolsOffset + CA_STATS_POOL_CAPACITY * sizeof(ca_stats_pool_row);
constexpr uint32_t kDevicesOffset = kLayoutsOffset + CA_STATS_LAYOUT_CAPACITY * sizeof(ca_stats_layout_row);
constexpr uint32_t kEnd = kDevicesOffset + CA_STATS_DEVICE_CAPACITY * sizeof(ca_stats_device_row);
static_assert(kEnd <= CA_STATS_SEGMENT_SIZE);
static_assert(kNumClasses <= CA_STATS_LAYOUT_CAPACITY);

uint64_t sub_or_zero(uint64_t a, uint64_t b) noexcept { return a > b ? a - b : 0; }

// The largest power of two dividing the class size, capped at the slab page: every block of the
// class has this alignment (Note [Aligned layouts] in core/size_class.h).
uint64_t class_alignment(size_t size) noexcept {
  uint64_t a = size & (~size + 1);
  return a > kPageSize ? kPageSize : a;
}

void copy_text(char* dst, size_t cap, const char* src) noexcept {
  size_t i = 0;
  for (; src[i] != '\0' && i + 1 < cap; ++i) dst[i] = src[i];
  memset(dst + i, 0, cap - i);
}

void fill_header(const Identity& id, uint64_t publish_count, ca_stats_header* h) noexcept {
  h->magic = CA_STATS_MAGIC;
  h->version = CA_STATS_VERSION;
  h->header_size = sizeof(ca_stats_header);
  h->total_size = CA_STATS_SEGMENT_SIZE;
  h->seq = 0;  // owned by the segment writer
  h->pid = id.pid;
  h->flags = id.flags;
  h->start_time_ns = id.start_time_ns;
  h->start_ticks = id.start_ticks;
  h->publish_time_ns = os::realtime_ns();
  h->publish_count = publish_count;
  h->publish_interval_ns = id.publish_interval_ns;
  copy_text(h->exe, sizeof h->exe, id.exe);
  copy_text(h->library_version, sizeof h->library_version, CACHEALLOC_VERSION_STRING);
  h->totals_offset = kTotalsOffset;
  h->totals_size = sizeof(ca_stats_totals);
  h->pools_offset = kPoolsOffset;
  h->pool_row_size = sizeof(ca_stats_pool_row);
  h->pool_capacity = CA_STATS_POOL_CAPACITY;
  h->layouts_offset = kLayoutsOffset;
  h->layout_row_size = sizeof(ca_stats_layout_row);
  h->layout_capacity = CA_STATS_LAYOUT_CAPACITY;
  h->devices_offset = kDevicesOffset;
  h->device_row_size = sizeof(ca_stats_device_row);
  h->device_capacity = CA_STATS_DEVICE_CAPACITY;
  h->device_count = 0;  // set_device_rows
}

// The busiest large layouts (most bytes live plus cached; then most calls; then the smaller size)
// after the small rows, as many as the table has room for: one pass collects the layouts in use,
// a partial sort picks the busiest (std::partial_sort works in place: no allocation).
uint32_t add_large_layouts(const HeapSnapshot& s, ca_stats_layout_row* rows, uint32_t n) noexcept {
  struct Candidate {
    uint64_t bytes;
    uint64_t calls;
    unsigned index;
  };
  Candidate used[kLargeLayouts];
  unsigned m = 0;
  for (unsigned i = 0; i < kLargeLayouts; ++i) {
    const LargeLayoutSnapshot& l = s.large_layouts[i];
    uint64_t calls = l.hits + l.misses;
    if (calls == 0 && l.live == 0 && l.cached == 0) continue;
    used[m++] = Candidate{(l.live + l.cached) * large_layout_size(i), calls, i};
  }
  const unsigned room = n < CA_STATS_LAYOUT_CAPACITY ? CA_STATS_LAYOUT_CAPACITY - n : 0;
  const unsigned k = m < room ? m : room;
  std::partial_sort(used, used + k, used + m, [](const Candidate& a, const Candidate& b) {
    if (a.bytes != b.bytes) return a.bytes > b.bytes;
    if (a.calls != b.calls) return a.calls > b.calls;
    return a.index < b.index;
  });
  for (unsigned j = 0; j < k; ++j) {
    const unsigned best = used[j].index;
    const uint64_t block = large_layout_size(best);
    const LargeLayoutSnapshot& l = s.large_layouts[best];
    ca_stats_layout_row& r = rows[n++];
    r = ca_stats_layout_row{};
    r.kind = CA_STATS_LAYOUT_LARGE;
    r.size_class = best;
    r.block_size = block;
    r.alignment = kMinAlign;  // at least; the row sums every alignment of this size
    r.blocks_live = l.live;
    r.bytes_live = l.live * block;
    r.refills = l.misses;
    r.blocks_cached = l.cached;
    r.hits = l.hits;
  }
  return n;
}

}  // namespace

const ca_stats_totals* Image::totals() const noexcept {
  return reinterpret_cast<const ca_stats_totals*>(bytes + kTotalsOffset);
}
const ca_stats_pool_row* Image::pool(uint32_t i) const noexcept {
  return reinterpret_cast<const ca_stats_pool_row*>(bytes + kPoolsOffset) + i;
}
const ca_stats_layout_row* Image::layout(uint32_t i) const noexcept {
  return reinterpret_cast<const ca_stats_layout_row*>(bytes + kLayoutsOffset) + i;
}
const ca_stats_device_row* Image::device(uint32_t i) const noexcept {
  return reinterpret_cast<const ca_stats_device_row*>(bytes + kDevicesOffset) + i;
}
size_t Image::used_size() const noexcept {
  const ca_stats_header* h = header();
  if (h->device_count != 0) return kDevicesOffset + size_t{h->device_count} * sizeof(ca_stats_device_row);
  return kLayoutsOffset + size_t{h->layout_count} * sizeof(ca_stats_layout_row);
}

void build_image(const Identity& id, const HeapSnapshot& s, uint64_t publish_count, uint64_t* peak,
                 Image* image) noexcept {
  // Only the header, totals and pool rows are cleared: layout rows are written in full below, and
  // nothing past layout_count is published (used_size), so a publication copies a few KiB.
  memset(image->bytes, 0, kLayoutsOffset);
  ca_stats_header* h = image->header();
  fill_header(id, publish_count, h);

  // Per class, then the sums the totals and the small pool need.
  auto* layouts = reinterpret_cast<ca_stats_layout_row*>(image->bytes + kLayoutsOffset);
  uint32_t nlayouts = 0;
  uint64_t small_bytes_live = 0, thread_bytes = 0, transfer_bytes = 0;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    const ClassSnapshot& cs = s.classes[c];
    if (cs.takes == 0 && cs.gives == 0) continue;  // never used
    const uint64_t size = class_size(c);
    const uint64_t live = cs.blocks_live();
    small_bytes_live += live * size;
    thread_bytes += cs.blocks_thread_cached * size;
    transfer_bytes += cs.blocks_in_slots * size;
    ca_stats_layout_row& r = layouts[nlayouts++];
    r = ca_stats_layout_row{};
    r.kind = CA_STATS_LAYOUT_SMALL;
    r.size_class = c;
    r.block_size = size;
    r.alignment = class_alignment(size);
    r.blocks_live = live;
    r.bytes_live = live * size;
    r.blocks_thread_cached = cs.blocks_thread_cached;
    r.blocks_transfer = cs.blocks_in_slots;
    r.refills = cs.takes;
    r.transfer_hits = cs.slot_takes;
    r.flushes = cs.gives;
    r.blocks_taken = cs.blocks_taken;
    r.blocks_given = cs.blocks_given;
    r.slabs_taken = cs.slabs_taken;
    r.slabs_released = cs.slabs_released;
  }
  nlayouts = add_large_layouts(s, layouts, nlayouts);
  h->layout_count = nlayouts;

  const uint64_t small_misses = s.refills + s.direct_allocs;
  const uint64_t small_hits = sub_or_zero(s.small_allocs, small_misses);
  const uint64_t large_allocs = s.large_hits + s.large_upstream_allocs;

  auto* pools = reinterpret_cast<ca_stats_pool_row*>(image->bytes + kPoolsOffset);
  ca_stats_pool_row& sp = pools[0];
  sp.id = CA_STATS_POOL_SMALL;
  copy_text(sp.name, sizeof sp.name, "small");
  sp.allocs = s.small_allocs;
  sp.frees = s.small_frees;
  sp.hits = small_hits;
  sp.misses = small_misses;
  sp.evictions = s.slab_evictions;
  sp.upstream_allocs = s.segment_maps;
  sp.upstream_frees = s.segment_unmaps;
  sp.bytes_cached = s.slab_bytes_cached;
  sp.bytes_live = small_bytes_live;
  sp.blocks_live = sub_or_zero(s.small_allocs, s.small_frees);
  sp.bytes_upstream = s.os_bytes_mapped;
  sp.bytes_live_peak = s.small_live_peak;

  ca_stats_pool_row& lp = pools[1];
  lp.id = CA_STATS_POOL_LARGE;
  copy_text(lp.name, sizeof lp.name, "large");
  lp.allocs = large_allocs;
  lp.frees = s.large_frees;
  lp.hits = s.large_hits;
  lp.misses = s.large_misses;
  lp.evictions = s.large_evictions;
  lp.upstream_allocs = s.large_upstream_allocs;
  lp.upstream_frees = s.large_upstream_frees;
  lp.bytes_cached = s.large_bytes_cached;
  lp.bytes_live = s.large_bytes_live;
  lp.blocks_live = s.large_blocks_live;
  lp.bytes_upstream = s.large_bytes_live + s.large_bytes_cached;
  lp.bytes_live_peak = s.large_live_peak;
  h->pool_count = 2;

  auto* t = reinterpret_cast<ca_stats_totals*>(image->bytes + kTotalsOffset);
  t->allocs = s.small_allocs + large_allocs;
  t->frees = s.small_frees + s.large_frees;
  t->adopts = s.large_adopts;
  t->blocks_live = sub_or_zero(t->allocs + t->adopts, t->frees);
  t->bytes_live = small_bytes_live + s.large_bytes_live;
  // Note [Live peak]: the exact slow-path peak, and the publications' own samples (which it
  // covers, but a publication may see bytes_live a moment before the counters it adds up).
  if (s.live_peak > *peak) *peak = s.live_peak;
  if (t->bytes_live > *peak) *peak = t->bytes_live;
  t->bytes_live_peak = *peak;
  t->bytes_cached = s.slab_bytes_cached + s.large_bytes_cached;
  t->bytes_thread_cached = thread_bytes;
  t->bytes_transfer = transfer_bytes;
  t->bytes_os_mapped = s.os_bytes_mapped;
  t->bytes_large_upstream = s.large_bytes_live + s.large_bytes_cached;
  t->bytes_upstream_retained = s.upstream_retained;
  t->large_declined = s.large_declined;
  t->large_decayed = s.large_decayed;
  t->large_resizes = s.large_resizes;
  t->cache_limit = s.cache_limit;
  t->threads = s.threads;
  t->refills = s.refills;
  t->flushes = s.flushes;
  t->retains = s.retains;
  t->releases = s.releases;
  t->hits = small_hits + s.large_hits;
  t->misses = small_misses + s.large_misses;
  t->bytes_requested = s.bytes_requested;
}

void set_device_rows(const cuda::DeviceReport* reports, size_t n, Image* image) noexcept {
  if (n > CA_STATS_DEVICE_CAPACITY) n = CA_STATS_DEVICE_CAPACITY;
  auto* rows = reinterpret_cast<ca_stats_device_row*>(image->bytes + kDevicesOffset);
  for (size_t i = 0; i < n; ++i) {
    const cuda::DeviceReport& d = reports[i];
    ca_stats_device_row& r = rows[i];
    r = ca_stats_device_row{};
    r.device = d.device;
    r.pinned = d.host ? 1 : 0;
    r.bytes_reserved = d.c.reserved;
    r.bytes_cached = d.c.cached;
    r.bytes_live = d.c.live;
    r.hits = d.c.hits;
    r.misses = d.c.misses;
    r.syncs_forced = d.c.syncs_forced;
    r.oom_retries = d.c.oom_retries;
    r.evictions = d.c.evictions;
    r.cache_limit = d.budget;
    r.bytes_live_peak = d.c.live_peak;
  }
  image->header()->device_count = static_cast<uint32_t>(n);
}

}  // namespace cachealloc::stats
