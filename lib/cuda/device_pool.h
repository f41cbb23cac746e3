// device_pool.h - per-context caches of freed device (and pinned host) blocks.
//
// A pool caches the blocks of one CUDA context: device memory, or pinned host memory allocated
// while that context was current. Blocks are keyed by layout (the rounded size; pinned blocks also
// by their flags), kept in LRU order across layouts, and bounded in bytes per pool (the budget:
// CACHEALLOC_CUDA_CACHE_BYTES, or a quarter of the device's memory when that is 0).
//
// A freed block is *pending* until every piece of work queued before its free has finished, then
// *ready* to be handed out again. See Note [Reuse after pending work] in device_pool.cpp.
//
// Who may call: cuda_front.cpp only. The pool talks to CUDA only through cuda_api.h.
// SYNCHRONIZATION: one SpinLock per pool guards its lists, fences, events and counters; the pool
// table is append-only (a registry lock serialises creation, lookups read published entries).
// Real allocations and frees (which may take milliseconds) run with no lock held; event records,
// queries and the fallback synchronisation run under the pool lock.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/block_table.h"
#include "platform/cuda_api.h"

namespace cachealloc::cuda {

inline constexpr uint16_t kNoPool = 0xffff;

// ---- Layouts -------------------------------------------------------------------------------
// Note [Device layouts]
// Sizes up to 1 MiB round up to 512 B and a cached block serves only its own layout. Larger sizes
// round up to a 2 MiB granule (what PyTorch's allocator does), so a request near the free memory
// (cudaMalloc of 95% of what cudaMemGetInfo reports, JAX's 75% preallocation) asks CUDA for at
// most 2 MiB more than the program did. Blocks above 1 MiB sit in buckets of four per power of
// two by their size, and a request of n is served by a ready block of size in [n, n + n/4]
// (near-fit): varying sizes (Thrust/CUB temporaries) still hit, and no block is handed out for a
// request more than a quarter smaller. Requests past kMaxCachedSize are not cached.
inline constexpr size_t kSmallStep = 512;
inline constexpr size_t kSmallLimit = size_t{1} << 20;
inline constexpr size_t kLargeGranule = size_t{2} << 20;
inline constexpr size_t kMaxCachedSize = size_t{1} << 46;
inline constexpr unsigned kSmallBuckets = kSmallLimit / kSmallStep;  // 2048
inline constexpr unsigned kNumBuckets = kSmallBuckets + 4 * (46 - 20) + 1;

constexpr size_t round_size(size_t n) {
  if (n <= kSmallLimit) return (n + kSmallStep - 1) & ~(kSmallStep - 1);
  return (n + kLargeGranule - 1) & ~(kLargeGranule - 1);
}
// The bucket of a block of size n (a multiple of 512 up to 1 MiB, any size above).
// Pre: 0 < n <= kMaxCachedSize + kLargeGranule.
constexpr unsigned bucket_of(size_t n) {
  if (n <= kSmallLimit) return static_cast<unsigned>((n + kSmallStep - 1) / kSmallStep) - 1;
  unsigned k = 63 - static_cast<unsigned>(__builtin_clzll(n));  // n in [2^k, 2^(k+1))
  if (k >= 46) return kNumBuckets - 1;
  unsigned quarter = static_cast<unsigned>((n >> (k - 2)) & 3);
  return kSmallBuckets + (k - 20) * 4 + quarter;
}
// The largest block a request of rounded size n may be served with (near-fit).
constexpr size_t near_fit_limit(size_t n) { return n <= kSmallLimit ? n : n + n / 4; }
static_assert(round_size(1) == 512 && round_size(512) == 512 && round_size(513) == 1024);
static_assert(round_size((1 << 20) + 1) == (2 << 20) && round_size(3 << 20) == (4 << 20));
static_assert(bucket_of(512) == 0 && bucket_of(1 << 20) == kSmallBuckets - 1);
static_assert(bucket_of((1 << 20) + (1 << 18)) == kSmallBuckets + 1);
static_assert(bucket_of(size_t{2} << 20) == kSmallBuckets + 4);
static_assert(bucket_of(kMaxCachedSize) == kNumBuckets - 1);

// ---- Counters ------------------------------------------------------------------------------
struct PoolCounters {
  uint64_t reserved;      // bytes really allocated and tracked (live + cached)
  uint64_t cached;        // bytes of freed blocks held (pending + ready)
  uint64_t live;          // bytes handed out and not yet freed
  uint64_t hits;
  uint64_t misses;
  uint64_t syncs_forced;  // fallback synchronisations (budget, OOM, fence trouble, clear)
  uint64_t oom_retries;   // real allocations that failed and were retried after reclaiming
  uint64_t evictions;     // cached blocks really freed
};

// ---- Finding pools -------------------------------------------------------------------------
// The pool whose context is `ctx` (created on first use), or kNoPool. One pool per context and
// kind serves the runtime and the driver alike (one budget per context).
uint16_t pool_for_context(cuda_api::Context ctx, bool host) noexcept;

// ---- Allocation and free -------------------------------------------------------------------
// A ready block for a request of `rounded` bytes (Note [Device layouts]) made live (refcount
// 1), or kNoBlock. Records a fence and polls when nothing is ready and blocks are pending (never
// during a capture: then only blocks already ready are handed out).
uint32_t pool_take(uint16_t pool, size_t rounded, unsigned host_flags) noexcept;
// Registers a block of `size` bytes just allocated for real (a miss). A record already at that
// address belongs to memory that was freed behind our back (a context reset we did not see): it
// is forgotten first. False when the table is full: the caller then hands the block out
// untracked, and its free passes through.
bool pool_add_live(uint16_t pool, uint64_t addr, size_t size, Origin origin,
                   unsigned host_flags) noexcept;

enum class FreeResult { kNotOurs, kDoubleFree, kStillShared, kCached, kReleased };
// Drops one owner of the block at addr. `host` says which kind the caller's API frees; a block of
// the other kind is kNotOurs (the real function then reports the misuse as CUDA does).
FreeResult pool_free(uint64_t addr, bool host) noexcept;
// The block at addr, whatever its kind, for ca_cuda_release (host < 0: either kind).
FreeResult pool_release_any(uint64_t addr) noexcept;

// ---- Out of memory and clearing ------------------------------------------------------------
// OOM step 1: reclaim completed frees and really free every ready block of the pool.
size_t pool_trim(uint16_t pool) noexcept;
// OOM step 2 and ca_cuda_clear: synchronise and really free everything cached in the device's
// pools (device < 0: every pool). Returns the bytes freed.
size_t pool_clear_device(int device) noexcept;
void pool_count_oom_retry(uint16_t pool) noexcept;
int pool_device(uint16_t pool) noexcept;

// cudaDeviceReset: forget every block of the device without freeing (the reset frees them).
void pool_drop_device(int device) noexcept;
// cuCtxDestroy: the same for the pools of that context (a later context may get the same handle).
void pool_drop_context(cuda_api::Context ctx) noexcept;

// ---- Misc ----------------------------------------------------------------------------------
int pool_retain(uint64_t addr) noexcept;  // 0, or EINVAL when addr is not a live block
void pool_mark_ipc(uint64_t addr) noexcept;
bool pool_owns_live(uint64_t addr) noexcept;
// Bytes cached for device `device` (device blocks only), for cudaMemGetInfo.
uint64_t pool_cached_device_bytes(int device) noexcept;
// Sums the counters of the pools of `device` (< 0: all) and kind.
void pool_counters(int device, bool host, PoolCounters* out) noexcept;

// One (device, kind) row for the statistics segment: the pools of that device and kind summed.
struct DeviceReport {
  int device;
  bool host;
  uint64_t budget;  // the sum of those pools' budgets
  PoolCounters c;
};
// Fills up to `cap` reports, one per (device, kind) with a known device, in pool order; returns
// how many. Never waits for a pool lock: a pool busy at that moment (its lock may even be held by
// this very thread, when CUDA allocates host memory inside a pool operation and that malloc
// publishes) contributes the figures it had at its last report. Called by the stats publisher
// only, which serialises calls (Note [Publication] in stats/publisher.h).
size_t pool_reports(DeviceReport* out, size_t cap) noexcept;

}  // namespace cachealloc::cuda
