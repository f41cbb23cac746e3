// cuda_front.cpp - see cuda_front.h.
//
// The allocation path, for every API:  pass-through checks -> the pool of the current context ->
// take (hit) -> real allocation (miss; Note [OOM retry]) -> register the block. Free: the cache's
// free, else the real free.
//
// Note [OOM retry]
// The cache may be holding what a real allocation needs:
//   0. before a real device allocation, when the device has less free memory than the request,
//      reclaim first (steps 2-3), so the real call does not fail (a failed runtime call would also
//      leave an error for cudaGetLastError);
//   1. when it fails all the same, reclaim completed frees (fence + poll) and take a ready block;
//   2. really free every ready block of the pool (LRU order) and retry;
//   3. synchronise, really free everything cached on the device, and retry;
//   4. above 1 MiB, ask for the exact size instead of the 2 MiB granule (Note [Device layouts]):
//      a request just below the free memory then fails only where it fails without the cache;
// and only then return the error. When a retry succeeds through the runtime, the runtime's last
// error (set by the failed attempt) is cleared, so cudaGetLastError() does not report an error
// the program never saw; but only when no error was pending before the first attempt, so an
// earlier kernel's error is never swallowed. During a capture steps 0-3 do nothing, and step 0
// asks CUDA nothing (Note [Capture] in device_pool.cpp).
#include "cuda/cuda_front.h"

#include <atomic>
#include <cerrno>
#include <cstring>

#include "config/options.h"
#include "core/stats_tick.h"
#include "prof/profiler.h"

namespace cachealloc::cuda {
namespace {

using cuda_api::RuntimeCallScope;

constinit std::atomic<uint64_t> g_passthrough{0};

bool enabled() noexcept { return options().cuda != 0; }

// During a capture the cache still serves ready blocks and registers real allocations (which
// CUDA allows during a capture); it only does no fence work (Note [Capture]).
bool cacheable(size_t size) noexcept { return enabled() && size != 0 && size <= kMaxCachedSize; }

void count_passthrough() noexcept { g_passthrough.fetch_add(1, std::memory_order_relaxed); }

// Every intercepted allocation or free is a slow call: the statistics publisher gets its chance
// (it publishes at most every few milliseconds), so device counters reach the segment even in a
// program that rarely calls malloc's slow paths.
template <typename R>
R ticked(R result) noexcept {
  stats_tick_now();
  return result;
}

}  // namespace

cuda_api::Context CudaFront::current_context() noexcept {
  const cuda_api::Driver* d = c_.driver();
  cuda_api::Context ctx = nullptr;
  if (d == nullptr || d->ctx_get_current(&ctx) != cuda_api::kCuSuccess) return nullptr;
  return ctx;
}

// Note [Runtime context]
// A runtime allocation is served from the pool of the context current on the thread. Runtimes
// before CUDA 12.0 bind a context lazily: after cudaSetDevice(1) the context of the previous device
// stays current until the next runtime call that needs one, so the current context would be
// device 0's and a cached device-0 block would be handed to a program that asked for memory on
// device 1 (and device 1's fresh block filed under device 0, to be handed out there later). So
// when the runtime's device (cudaGetDevice) is not the current context's, the runtime is made to
// bind its context first (cudaFree(NULL)); if they still differ (a context the program made
// current with the driver API), the call passes through, as it does during a capture (no runtime
// call of ours there: the real cudaMalloc binds the context itself). Two thread-local reads in
// the common case.
bool CudaFront::runtime_device_bound(const cuda_api::Runtime* rt) noexcept {
  const cuda_api::Driver* d = c_.driver();
  int rt_dev = -1;
  int ctx_dev = -1;
  if (d == nullptr || rt->get_device(&rt_dev) != cuda_api::kRtSuccess) return true;  // unknown
  return d->ctx_get_device(&ctx_dev) == cuda_api::kCuSuccess && ctx_dev == rt_dev;
}

// Step 0 of Note [OOM retry]. During a capture it could reclaim nothing (Note [Capture]), so it
// does not even ask: cuMemGetInfo would be one more driver call inside the capture's time.
void CudaFront::make_room(uint16_t pool, size_t n) noexcept {
  const cuda_api::Driver* d = c_.driver();
  size_t free_bytes = 0, total = 0;
  if (d == nullptr || c_.streams().capture_active() ||
      d->mem_get_info(&free_bytes, &total) != cuda_api::kCuSuccess ||
      free_bytes >= n) {
    return;
  }
  c_.count_oom_retry(pool);
  if (c_.trim(pool) != 0 && d->mem_get_info(&free_bytes, &total) == cuda_api::kCuSuccess &&
      free_bytes >= n) {
    return;
  }
  int dev = c_.device_of(pool);
  if (dev >= 0) c_.clear_device(dev);
}

// CACHEALLOC_CUDA_SCRUB: a reused block is filled with 0xcb, so a program that reads memory it
// never wrote sees a value fresh memory would not hold (a debugging aid, off by default). The
// device fill is queued on the legacy stream, which a non-blocking stream's work does not wait
// for, so it is waited for here: it must not land on what the new owner writes.
void CudaFront::scrub(uint64_t addr, size_t size, bool host) noexcept {
  FenceWindow window(c_.streams());  // a memset and a synchronisation: not during a capture
  if (!window.open()) return;
  if (host) {
    std::memset(reinterpret_cast<void*>(addr), 0xcb, size);
    return;
  }
  const cuda_api::Driver* d = c_.driver();
  if (d == nullptr || d->memset_d8 == nullptr) return;
  if (d->memset_d8(addr, 0xcb, size) == cuda_api::kCuSuccess) d->ctx_synchronize();
}

// CACHEALLOC_CUDA_FREE_SYNC: a cached free waits for the device as CUDA's own free does, and
// reports what the synchronisation reports (an earlier kernel's error).
CuResult CudaFront::free_sync() noexcept {
  const cuda_api::Driver* d = c_.driver();
  FenceWindow window(c_.streams());
  if (d == nullptr || !window.open()) return cuda_api::kCuSuccess;
  return d->ctx_synchronize();
}

// `*size` is the rounded size on entry and the size really allocated (or of the block reused) on
// return.
template <typename Real>
int CudaFront::cached_alloc(uint16_t pool, bool host, size_t* size, size_t exact, unsigned flags,
                            int oom, uint64_t* addr, bool* from_cache, bool* retried,
                            Real real) noexcept {
  *retried = false;
  size_t rounded = *size;
  *from_cache = c_.take(pool, exact, rounded, flags, addr, size) != kNoBlock;
  if (*from_cache) return 0;
  if (!host) make_room(pool, rounded);
  int e = real(addr, rounded);
  if (e != oom) return e;
  *retried = true;
  c_.count_oom_retry(pool);
  *from_cache = c_.take(pool, exact, rounded, flags, addr, size) != kNoBlock;
  if (*from_cache) return 0;
  if (c_.trim(pool) != 0) {
    e = real(addr, rounded);
    if (e != oom) return e;
  }
  int dev = c_.device_of(pool);
  if (dev >= 0 && c_.clear_device(dev) != 0) {
    e = real(addr, rounded);
    if (e != oom) return e;
  }
  if (exact != rounded) {
    e = real(addr, exact);
    if (e != oom) *size = exact;
  }
  return e;
}

// ---- Runtime API ------------------------------------------------------------------------------

// The pool is the current context's (a non-primary context current on this thread gets its own),
// shared with the driver.
RtError CudaFront::rt_alloc(const void* caller, void** p, size_t size, bool host,
                            unsigned flags) noexcept {
  uint8_t rt_index = 0;
  const cuda_api::Runtime* rt = c_.runtime_for(caller, &rt_index);
  if (rt == nullptr) return cuda_api::kRtInitializationError;  // no runtime to forward to
  auto real_once = [&](void** out, size_t n) {
    RuntimeCallScope scope;
    return host ? rt->host_alloc(out, n, flags) : rt->malloc(out, n);
  };
  if (p == nullptr || !cacheable(size)) {
    count_passthrough();
    return real_once(p, size);
  }
  // Note [Runtime context]: the context this cudaMalloc will allocate in.
  cuda_api::Context ctx = current_context();
  if (ctx == nullptr || !runtime_device_bound(rt)) {
    if (c_.streams().capture_active()) {
      ctx = nullptr;  // no extra runtime call during a capture: the real cudaMalloc binds it
    } else {
      // The runtime makes its device's context current on its first call that needs a
      // context: cudaFree(NULL) is such a call.
      {
        RuntimeCallScope scope;
        rt->free(nullptr);
      }
      ctx = current_context();
      if (!runtime_device_bound(rt)) ctx = nullptr;  // still another device's: pass through
    }
  }
  uint16_t pool = c_.pool_for_context(ctx, host);
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
  RtError e = cached_alloc(pool, host, &rounded, size, flags, cuda_api::kRtMemoryAllocation,
                           &addr, &from_cache, &retried, [&](uint64_t* out, size_t n) {
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
  if (from_cache) {
    if (options().cuda_scrub != 0) scrub(addr, rounded, host);
    return e;
  }
  c_.add_live(pool, addr, rounded, host ? Origin::kRuntimeHost : Origin::kRuntimeDevice, flags,
              rt_index);
  return e;
}

RtError CudaFront::rt_release(const void* caller, void* p, bool host) noexcept {
  uint8_t rt_index = 0;
  const cuda_api::Runtime* rt = c_.runtime_for(caller, &rt_index);
  if (rt == nullptr) return cuda_api::kRtInitializationError;
  if (p != nullptr && enabled()) {
    switch (c_.free(reinterpret_cast<uint64_t>(p), host)) {
      case FreeResult::kNotOurs: break;
      case FreeResult::kDoubleFree: return cuda_api::kRtInvalidValue;
      default:
        if (options().cuda_free_sync != 0 && rt->device_synchronize != nullptr) {
          FenceWindow window(c_.streams());
          if (!window.open()) return cuda_api::kRtSuccess;
          RuntimeCallScope scope;
          return rt->device_synchronize();
        }
        return cuda_api::kRtSuccess;
    }
  }
  count_passthrough();
  RuntimeCallScope scope;
  return host ? rt->free_host(p) : rt->free(p);
}

RtError CudaFront::rt_mem_get_info(const void* caller, size_t* free_bytes,
                                   size_t* total_bytes) noexcept {
  uint8_t rt_index = 0;
  const cuda_api::Runtime* rt = c_.runtime_for(caller, &rt_index);
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
  *free_bytes += c_.cached_device_bytes(dev);
  if (total_bytes != nullptr && *free_bytes > *total_bytes) *free_bytes = *total_bytes;
  return e;
}

// The reset destroys the device's primary context (not contexts made with cuCtxCreate): forget
// that context's blocks, which the reset frees.
RtError CudaFront::rt_device_reset(const void* caller) noexcept {
  uint8_t rt_index = 0;
  const cuda_api::Runtime* rt = c_.runtime_for(caller, &rt_index);
  if (rt == nullptr) return cuda_api::kRtInitializationError;
  int dev = 0;
  cuda_api::Context primary = nullptr;
  if (rt->get_device(&dev) == cuda_api::kRtSuccess) primary = c_.active_primary(dev);
  RtError e;
  {
    RuntimeCallScope scope;
    e = rt->device_reset();
  }
  if (e == cuda_api::kRtSuccess) c_.drop_context(primary);
  return e;
}

// ---- Driver API -------------------------------------------------------------------------------

template <typename Real>
CuResult CudaFront::drv_alloc(uint64_t* addr, size_t size, bool host, unsigned flags,
                              Real real) noexcept {
  if (cuda_api::in_runtime_call() || !cacheable(size)) {
    if (!cuda_api::in_runtime_call()) count_passthrough();
    return real(addr, size);
  }
  uint16_t pool = c_.pool_for_context(current_context(), host);
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
  if (r == cuda_api::kCuSuccess) {
    if (!from_cache) {
      c_.add_live(pool, *addr, rounded, host ? Origin::kDriverHost : Origin::kDriverDevice, flags);
    } else if (options().cuda_scrub != 0) {
      scrub(*addr, rounded, host);
    }
  }
  return r;
}

// Driver free: false means the real function decides.
bool CudaFront::drv_release(uint64_t addr, bool host, CuResult* out) noexcept {
  if (cuda_api::in_runtime_call() || addr == 0 || !enabled()) return false;
  switch (c_.free(addr, host)) {
    case FreeResult::kNotOurs: count_passthrough(); return false;
    case FreeResult::kDoubleFree: *out = cuda_api::kCuInvalidValue; return true;
    default:
      *out = options().cuda_free_sync != 0 ? free_sync() : cuda_api::kCuSuccess;
      return true;
  }
}

CuResult CudaFront::mem_alloc(MemAllocFn real, DevicePtr* p, size_t size) noexcept {
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

CuResult CudaFront::mem_free(MemFreeFn real, DevicePtr p) noexcept {
  CuResult r;
  if (drv_release(p, false, &r)) return r;
  return real(p);
}

CuResult CudaFront::mem_alloc_host(MemAllocHostFn real, void** p, size_t size) noexcept {
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

CuResult CudaFront::mem_host_alloc(MemHostAllocFn real, void** p, size_t size,
                                   unsigned flags) noexcept {
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

CuResult CudaFront::mem_free_host(MemFreeHostFn real, void* p) noexcept {
  CuResult r;
  if (drv_release(reinterpret_cast<uint64_t>(p), true, &r)) return r;
  return real(p);
}

CuResult CudaFront::mem_get_info(MemGetInfoFn real, size_t* free_bytes,
                                 size_t* total_bytes) noexcept {
  CuResult r = real(free_bytes, total_bytes);
  if (r != cuda_api::kCuSuccess || free_bytes == nullptr || cuda_api::in_runtime_call() ||
      !enabled()) {
    return r;
  }
  const cuda_api::Driver* d = c_.driver();
  int dev = -1;
  if (d == nullptr || d->ctx_get_device(&dev) != cuda_api::kCuSuccess) return r;
  *free_bytes += c_.cached_device_bytes(dev);
  if (total_bytes != nullptr && *free_bytes > *total_bytes) *free_bytes = *total_bytes;
  return r;
}

// ---- C API ------------------------------------------------------------------------------------

int CudaFront::retain(void* p) noexcept {
  if (p == nullptr) return EINVAL;
  return c_.retain(reinterpret_cast<uint64_t>(p));
}

int CudaFront::release(void* p) noexcept {
  if (p == nullptr) return EINVAL;
  switch (c_.release_any(reinterpret_cast<uint64_t>(p))) {
    case FreeResult::kNotOurs:
    case FreeResult::kDoubleFree: return EINVAL;
    default: return 0;
  }
}

size_t CudaFront::clear(int device) noexcept { return c_.clear_device(device); }

int CudaFront::owns(const void* p) noexcept {
  return p != nullptr && c_.owns_live(reinterpret_cast<uint64_t>(p)) ? 1 : 0;
}

size_t CudaFront::release_for_foreign_oom() noexcept {
  if (!enabled()) return 0;
  const cuda_api::Driver* d = c_.driver();
  int dev = -1;
  if (d == nullptr || d->ctx_get_device(&dev) != cuda_api::kCuSuccess) return 0;
  return c_.clear_device(dev);
}

// ---- The process-wide front -------------------------------------------------------------------

namespace {
CudaFront front() noexcept { return CudaFront(process_cache()); }
}  // namespace

// Every allocation the program makes, cached or not, is recorded for the heap profile (device
// table, lib/prof/profiler.h): the program's view, whatever the cache did underneath. A runtime
// call's own driver calls are skipped (the runtime's cudaMalloc records once).
namespace {
template <typename E>
E recorded(E e, E ok, const void* p, size_t size) noexcept {
  if (e == ok && p != nullptr) prof::record_device(reinterpret_cast<uint64_t>(p), size);
  return e;
}
RtError rt_recorded(RtError e, void** p, size_t size) noexcept {
  return recorded(e, cuda_api::kRtSuccess, e == cuda_api::kRtSuccess && p != nullptr ? *p : nullptr, size);
}
CuResult drv_recorded(CuResult r, const void* p, size_t size) noexcept {
  if (cuda_api::in_runtime_call()) return r;
  return recorded(r, cuda_api::kCuSuccess, r == cuda_api::kCuSuccess ? p : nullptr, size);
}
void forget(const void* p) noexcept { prof::forget_device(reinterpret_cast<uint64_t>(p)); }
}  // namespace

RtError rt_malloc(const void* caller, void** p, size_t size) noexcept {
  return rt_recorded(ticked(front().rt_alloc(caller, p, size, false, 0)), p, size);
}
RtError rt_free(const void* caller, void* p) noexcept {
  forget(p);
  return ticked(front().rt_release(caller, p, false));
}
RtError rt_malloc_host(const void* caller, void** p, size_t size) noexcept {
  return rt_recorded(ticked(front().rt_alloc(caller, p, size, true, 0)), p, size);
}
RtError rt_host_alloc(const void* caller, void** p, size_t size, unsigned flags) noexcept {
  return rt_recorded(ticked(front().rt_alloc(caller, p, size, true, flags)), p, size);
}
RtError rt_free_host(const void* caller, void* p) noexcept {
  forget(p);
  return ticked(front().rt_release(caller, p, true));
}
RtError rt_mem_get_info(const void* caller, size_t* free_bytes, size_t* total_bytes) noexcept {
  return front().rt_mem_get_info(caller, free_bytes, total_bytes);
}
RtError rt_device_reset(const void* caller) noexcept { return front().rt_device_reset(caller); }

CuResult drv_mem_alloc(MemAllocFn real, DevicePtr* p, size_t size) noexcept {
  CuResult r = ticked(front().mem_alloc(real, p, size));
  return drv_recorded(r, p != nullptr ? reinterpret_cast<const void*>(*p) : nullptr, size);
}
CuResult drv_mem_free(MemFreeFn real, DevicePtr p) noexcept {
  if (!cuda_api::in_runtime_call()) forget(reinterpret_cast<const void*>(p));
  return ticked(front().mem_free(real, p));
}
CuResult drv_mem_alloc_host(MemAllocHostFn real, void** p, size_t size) noexcept {
  CuResult r = ticked(front().mem_alloc_host(real, p, size));
  return drv_recorded(r, p != nullptr ? *p : nullptr, size);
}
CuResult drv_mem_host_alloc(MemHostAllocFn real, void** p, size_t size, unsigned flags) noexcept {
  CuResult r = ticked(front().mem_host_alloc(real, p, size, flags));
  return drv_recorded(r, p != nullptr ? *p : nullptr, size);
}
CuResult drv_mem_free_host(MemFreeHostFn real, void* p) noexcept {
  if (!cuda_api::in_runtime_call()) forget(p);
  return ticked(front().mem_free_host(real, p));
}
CuResult drv_mem_get_info(MemGetInfoFn real, size_t* free_bytes, size_t* total_bytes) noexcept {
  return front().mem_get_info(real, free_bytes, total_bytes);
}

int retain(void* p) noexcept { return front().retain(p); }
int release(void* p) noexcept { return front().release(p); }
size_t clear(int device) noexcept { return front().clear(device); }
int owns(const void* p) noexcept { return front().owns(p); }
size_t release_for_foreign_oom() noexcept { return front().release_for_foreign_oom(); }
void counters(int device, bool host, PoolCounters* out) noexcept {
  process_cache().counters(device, host, out);
}
uint64_t passthrough_count() noexcept { return g_passthrough.load(std::memory_order_relaxed); }

}  // namespace cachealloc::cuda
