// cuda_front.cpp - see cuda_front.h.
//
// The allocation path, for every API:  pass-through checks -> pool of the current device or
// context -> pool_take (hit) -> real allocation of the rounded size (miss) -> on out-of-memory,
// Note [OOM retry] -> register the block. Free: pool_free, else the real free.
//
// Note [OOM retry]
// When the real allocation fails for lack of memory the cache may be holding what is missing:
//   1. reclaim completed frees (fence + poll) and take a ready block of the layout if one appeared;
//   2. really free every ready block of the pool (LRU order) and retry;
//   3. synchronise, really free everything cached on the device, and retry;
//   4. above 1 MiB, ask for the exact size instead of the 2 MiB granule (Note [Device layouts]):
//      a request just below the free memory then fails only where it fails without the cache;
// and only then return the error. When a retry succeeds through the runtime, the runtime's last
// error (set by the failed attempt) is cleared, so cudaGetLastError() does not report an error
// the program never saw; but only when no error was pending before the first attempt, so an
// earlier kernel's error is never swallowed. During a capture steps 1-3 do nothing (Note [Capture]).
#include "cuda/cuda_front.h"

#include <atomic>
#include <cerrno>

#include "config/options.h"
#include "core/allocator.h"
#include "cuda/device_pool.h"
#include "cuda/stream_registry.h"

namespace cachealloc::cuda {
namespace {

using cuda_api::RuntimeCallScope;

constinit std::atomic<uint64_t> g_passthrough{0};

bool enabled() noexcept { return options().cuda != 0; }

// During a capture the cache still serves ready blocks and registers real allocations (which
// CUDA allows during a capture); it only does no fence work (Note [Capture]).
bool cacheable(size_t size) noexcept { return enabled() && size != 0 && size <= kMaxCachedSize; }

void count_passthrough() noexcept { g_passthrough.fetch_add(1, std::memory_order_relaxed); }

// Allocates `rounded` bytes for `pool`: cache, then `real(&addr)` with Note [OOM retry].
// `oom` is the out-of-memory code of the API; `ok` its success code.
// Before a real device allocation: when the device has less free memory than the request, give
// cached blocks back first (Note [OOM retry]), so the real call does not fail for memory the cache
// holds (a failed runtime call would also leave an error for cudaGetLastError).
void make_room(uint16_t pool, size_t n) noexcept {
  const cuda_api::Driver* d = cuda_api::driver();
  size_t free_bytes = 0, total = 0;
  if (d == nullptr || d->mem_get_info(&free_bytes, &total) != cuda_api::kCuSuccess ||
      free_bytes >= n) {
    return;
  }
  pool_count_oom_retry(pool);
  if (pool_trim(pool) != 0 && d->mem_get_info(&free_bytes, &total) == cuda_api::kCuSuccess &&
      free_bytes >= n) {
    return;
  }
  int dev = pool_device(pool);
  if (dev >= 0) pool_clear_device(dev);
}

// `*size` is the rounded size on entry and the size really allocated on return.
template <typename Real>
int cached_alloc(uint16_t pool, bool host, size_t* size, size_t exact, unsigned flags, int oom,
                 uint64_t* addr, bool* from_cache, bool* retried, Real real) noexcept {
  *retried = false;
  size_t rounded = *size;
  uint32_t id = pool_take(pool, rounded, flags);
  if (id != kNoBlock) {
    *addr = table_block(id).addr;
    *size = table_block(id).size;
    *from_cache = true;
    return 0;
  }
  *from_cache = false;
  if (!host) make_room(pool, rounded);
  int e = real(addr, rounded);
  if (e != oom) return e;
  *retried = true;
  pool_count_oom_retry(pool);
  id = pool_take(pool, rounded, flags);
  if (id != kNoBlock) {
    *addr = table_block(id).addr;
    *size = table_block(id).size;
    *from_cache = true;
    return 0;
  }
  if (pool_trim(pool) != 0) {
    e = real(addr, rounded);
    if (e != oom) return e;
  }
  int dev = pool_device(pool);
  if (dev >= 0 && pool_clear_device(dev) != 0) {
    e = real(addr, rounded);
    if (e != oom) return e;
  }
  if (exact != rounded) {
    e = real(addr, exact);
    if (e != oom) *size = exact;
  }
  return e;
}

cuda_api::Context current_context() noexcept {
  const cuda_api::Driver* d = cuda_api::driver();
  cuda_api::Context ctx = nullptr;
  if (d == nullptr || d->ctx_get_current(&ctx) != cuda_api::kCuSuccess) return nullptr;
  return ctx;
}

// Runtime allocation of device (host == false) or pinned host memory. The pool is the current
// context's (a non-primary context current on this thread gets its own), shared with the driver.
RtError rt_alloc(void** p, size_t size, bool host, unsigned flags) noexcept {
  const cuda_api::Runtime* rt = cuda_api::runtime();
  if (rt == nullptr) return cuda_api::kRtInitializationError;  // no runtime to forward to
  auto real_once = [&](void** out, size_t n) {
    RuntimeCallScope scope;
    return host ? rt->host_alloc(out, n, flags) : rt->malloc(out, n);
  };
  if (p == nullptr || !cacheable(size)) {
    count_passthrough();
    return real_once(p, size);
  }
  cuda_api::Context ctx = current_context();
  if (ctx == nullptr) {
    // The runtime makes its context current on its first real call: cudaFree(NULL) is that call.
    RuntimeCallScope scope;
    rt->free(nullptr);
    ctx = current_context();
  }
  uint16_t pool = ctx != nullptr ? pool_for_context(ctx, host) : kNoPool;
  if (pool == kNoPool) {  // no context (no device), or no pool left
    count_passthrough();
    return real_once(p, size);
  }
  size_t rounded = round_size(size);
  uint64_t addr = 0;
  bool from_cache = false;
  bool retried = false;
  bool error_pending = false;
  {
    RuntimeCallScope scope;
    error_pending = rt->peek_at_last_error() != cuda_api::kRtSuccess;
  }
  RtError e = cached_alloc(pool, host, &rounded, size, flags, cuda_api::kRtMemoryAllocation, &addr,
                           &from_cache, &retried, [&](uint64_t* out, size_t n) {
                             void* q = nullptr;
                             RtError r = real_once(&q, n);
                             *out = reinterpret_cast<uint64_t>(q);
                             return r;
                           });
  if (e != cuda_api::kRtSuccess) return e;
  *p = reinterpret_cast<void*>(addr);
  if (retried && !error_pending) {
    // A retry after an out-of-memory error succeeded: clear the error the runtime recorded.
    RuntimeCallScope scope;
    rt->get_last_error();
  }
  if (from_cache) return e;
  pool_add_live(pool, addr, rounded, host ? Origin::kRuntimeHost : Origin::kRuntimeDevice, flags);
  return e;
}

RtError rt_release(void* p, bool host) noexcept {
  const cuda_api::Runtime* rt = cuda_api::runtime();
  if (rt == nullptr) return cuda_api::kRtInitializationError;
  if (p != nullptr && enabled()) {
    switch (pool_free(reinterpret_cast<uint64_t>(p), host)) {
      case FreeResult::kNotOurs: break;
      case FreeResult::kDoubleFree: return cuda_api::kRtInvalidValue;
      default: return cuda_api::kRtSuccess;
    }
  }
  count_passthrough();
  RuntimeCallScope scope;
  return host ? rt->free_host(p) : rt->free(p);
}

template <typename Real>
CuResult drv_alloc(uint64_t* addr, size_t size, bool host, unsigned flags, Real real) noexcept {
  if (cuda_api::in_runtime_call() || !cacheable(size)) {
    if (!cuda_api::in_runtime_call()) count_passthrough();
    return real(addr, size);
  }
  cuda_api::Context ctx = current_context();
  uint16_t pool = ctx != nullptr ? pool_for_context(ctx, host) : kNoPool;
  if (pool == kNoPool) {
    count_passthrough();
    return real(addr, size);
  }
  size_t rounded = round_size(size);
  bool from_cache = false;
  bool retried = false;
  CuResult r = cached_alloc(pool, host, &rounded, size, flags, cuda_api::kCuOutOfMemory, addr,
                            &from_cache, &retried,
                            [&](uint64_t* out, size_t n) { return real(out, n); });
  if (r == cuda_api::kCuSuccess && !from_cache) {
    pool_add_live(pool, *addr, rounded, host ? Origin::kDriverHost : Origin::kDriverDevice, flags);
  }
  stats_tick_now();
  return r;
}

// Driver free: kNotOurs means the real function decides.
bool drv_release(uint64_t addr, bool host, CuResult* out) noexcept {
  if (cuda_api::in_runtime_call() || addr == 0 || !enabled()) return false;
  switch (pool_free(addr, host)) {
    case FreeResult::kNotOurs: count_passthrough(); return false;
    case FreeResult::kDoubleFree: *out = cuda_api::kCuInvalidValue; return true;
    default: *out = cuda_api::kCuSuccess; stats_tick_now(); return true;
  }
}

// Every intercepted allocation or free is a slow call: the statistics publisher gets its chance
// (it publishes at most every few milliseconds), so device counters reach the segment even in a
// program that rarely calls malloc's slow paths.
template <typename R>
R ticked(R result) noexcept {
  stats_tick_now();
  return result;
}

}  // namespace

// ---- Runtime API ------------------------------------------------------------------------------

RtError rt_malloc(void** p, size_t size) noexcept { return ticked(rt_alloc(p, size, false, 0)); }
RtError rt_free(void* p) noexcept { return ticked(rt_release(p, false)); }
RtError rt_malloc_host(void** p, size_t size) noexcept { return ticked(rt_alloc(p, size, true, 0)); }
RtError rt_host_alloc(void** p, size_t size, unsigned flags) noexcept {
  return ticked(rt_alloc(p, size, true, flags));
}
RtError rt_free_host(void* p) noexcept { return ticked(rt_release(p, true)); }

RtError rt_mem_get_info(size_t* free_bytes, size_t* total_bytes) noexcept {
  const cuda_api::Runtime* rt = cuda_api::runtime();
  if (rt == nullptr) return cuda_api::kRtInitializationError;
  RtError e;
  {
    RuntimeCallScope scope;
    e = rt->mem_get_info(free_bytes, total_bytes);
  }
  int dev = 0;
  if (e != cuda_api::kRtSuccess || free_bytes == nullptr || !enabled() ||
      rt->get_device(&dev) != cuda_api::kRtSuccess) {
    return e;
  }
  // Cached bytes are free for the program: the next allocation reuses or releases them.
  *free_bytes += pool_cached_device_bytes(dev);
  if (total_bytes != nullptr && *free_bytes > *total_bytes) *free_bytes = *total_bytes;
  return e;
}

RtError rt_device_reset() noexcept {
  const cuda_api::Runtime* rt = cuda_api::runtime();
  if (rt == nullptr) return cuda_api::kRtInitializationError;
  int dev = 0;
  if (rt->get_device(&dev) == cuda_api::kRtSuccess) pool_drop_device(dev);
  RuntimeCallScope scope;
  return rt->device_reset();
}

// ---- Driver API -------------------------------------------------------------------------------

CuResult drv_mem_alloc(MemAllocFn real, DevicePtr* p, size_t size) noexcept {
  if (p == nullptr) return real(p, size);
  uint64_t addr = 0;
  CuResult r = drv_alloc(&addr, size, false, 0, [&](uint64_t* out, size_t n) {
    DevicePtr d = 0;
    CuResult e = real(&d, n);
    *out = d;
    return e;
  });
  if (r == cuda_api::kCuSuccess) *p = addr;
  return r;
}

CuResult drv_mem_free(MemFreeFn real, DevicePtr p) noexcept {
  CuResult r;
  if (drv_release(p, false, &r)) return r;
  return real(p);
}

CuResult drv_mem_alloc_host(MemAllocHostFn real, void** p, size_t size) noexcept {
  if (p == nullptr) return real(p, size);
  uint64_t addr = 0;
  CuResult r = drv_alloc(&addr, size, true, 0, [&](uint64_t* out, size_t n) {
    void* q = nullptr;
    CuResult e = real(&q, n);
    *out = reinterpret_cast<uint64_t>(q);
    return e;
  });
  if (r == cuda_api::kCuSuccess) *p = reinterpret_cast<void*>(addr);
  return r;
}

CuResult drv_mem_host_alloc(MemHostAllocFn real, void** p, size_t size, unsigned flags) noexcept {
  if (p == nullptr) return real(p, size, flags);
  uint64_t addr = 0;
  CuResult r = drv_alloc(&addr, size, true, flags, [&](uint64_t* out, size_t n) {
    void* q = nullptr;
    CuResult e = real(&q, n, flags);
    *out = reinterpret_cast<uint64_t>(q);
    return e;
  });
  if (r == cuda_api::kCuSuccess) *p = reinterpret_cast<void*>(addr);
  return r;
}

CuResult drv_mem_free_host(MemFreeHostFn real, void* p) noexcept {
  CuResult r;
  if (drv_release(reinterpret_cast<uint64_t>(p), true, &r)) return r;
  return real(p);
}

CuResult drv_mem_get_info(MemGetInfoFn real, size_t* free_bytes, size_t* total_bytes) noexcept {
  CuResult r = real(free_bytes, total_bytes);
  if (r != cuda_api::kCuSuccess || free_bytes == nullptr || cuda_api::in_runtime_call() ||
      !enabled()) {
    return r;
  }
  const cuda_api::Driver* d = cuda_api::driver();
  int dev = -1;
  if (d == nullptr || d->ctx_get_device(&dev) != cuda_api::kCuSuccess) return r;
  *free_bytes += pool_cached_device_bytes(dev);
  if (total_bytes != nullptr && *free_bytes > *total_bytes) *free_bytes = *total_bytes;
  return r;
}

// ---- C API ------------------------------------------------------------------------------------

int retain(void* p) noexcept {
  if (p == nullptr) return EINVAL;
  return pool_retain(reinterpret_cast<uint64_t>(p));
}

int release(void* p) noexcept {
  if (p == nullptr) return EINVAL;
  switch (pool_release_any(reinterpret_cast<uint64_t>(p))) {
    case FreeResult::kNotOurs:
    case FreeResult::kDoubleFree: return EINVAL;
    default: return 0;
  }
}

size_t clear(int device) noexcept { return pool_clear_device(device); }

size_t release_for_foreign_oom() noexcept {
  if (!enabled()) return 0;
  const cuda_api::Driver* d = cuda_api::driver();
  int dev = -1;
  if (d == nullptr || d->ctx_get_device(&dev) != cuda_api::kCuSuccess) return 0;
  return pool_clear_device(dev);
}

int owns(const void* p) noexcept {
  return p != nullptr && pool_owns_live(reinterpret_cast<uint64_t>(p)) ? 1 : 0;
}

uint64_t passthrough_count() noexcept { return g_passthrough.load(std::memory_order_relaxed); }

}  // namespace cachealloc::cuda
