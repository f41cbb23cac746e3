// cuda_front.h - what the intercepted CUDA calls mean under cachealloc.
//
// CudaFront gives each intercepted runtime or driver call its meaning over one DeviceCache: the
// process-wide one for the exported symbols (the free functions below, which preload/cuda/*.cpp
// and the hooks of driver_hooks.cpp call), a test's own over a fake device in the unit tests.
// Driver functions take the real entry point the caller would have reached (`real`), so each
// wrapper calls exactly the variant the driver returned.
//
// Pass-through (the real function, untouched result): CACHEALLOC_CUDA=0, size 0 or huge requests,
// NULL pointers, pointers cachealloc did not hand out, and driver calls the shared runtime makes
// on behalf of a runtime call we already handled (Note [Runtime re-entry] in cuda_api.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/device_cache.h"
#include "platform/cuda_api.h"

namespace cachealloc::cuda {

using cuda_api::CuResult;
using cuda_api::DevicePtr;
using cuda_api::RtError;

using MemAllocFn = CuResult (*)(DevicePtr*, size_t);
using MemFreeFn = CuResult (*)(DevicePtr);
using MemAllocHostFn = CuResult (*)(void**, size_t);
using MemHostAllocFn = CuResult (*)(void**, size_t, unsigned);
using MemFreeHostFn = CuResult (*)(void*);
using MemGetInfoFn = CuResult (*)(size_t*, size_t*);

class CudaFront {
 public:
  explicit CudaFront(DeviceCache& cache) noexcept : c_(cache) {}

  // ---- Runtime API (host: pinned memory; flags: cudaHostAlloc's) ----------------------------
  // `caller`: the return address of the exported function, which picks the runtime (Note
  // [Runtime per caller] in cuda_api.h).
  RtError rt_alloc(const void* caller, void** p, size_t size, bool host, unsigned flags) noexcept;
  RtError rt_release(const void* caller, void* p, bool host) noexcept;
  RtError rt_mem_get_info(const void* caller, size_t* free_bytes, size_t* total_bytes) noexcept;
  RtError rt_device_reset(const void* caller) noexcept;

  // ---- Driver API -----------------------------------------------------------------------------
  CuResult mem_alloc(MemAllocFn real, DevicePtr* p, size_t size) noexcept;
  CuResult mem_free(MemFreeFn real, DevicePtr p) noexcept;
  CuResult mem_alloc_host(MemAllocHostFn real, void** p, size_t size) noexcept;
  CuResult mem_host_alloc(MemHostAllocFn real, void** p, size_t size, unsigned flags) noexcept;
  CuResult mem_free_host(MemFreeHostFn real, void* p) noexcept;
  CuResult mem_get_info(MemGetInfoFn real, size_t* free_bytes, size_t* total_bytes) noexcept;

  // ---- C API (include/cachealloc/cuda.h) ------------------------------------------------------
  int retain(void* p) noexcept;
  int release(void* p) noexcept;
  size_t clear(int device) noexcept;
  int owns(const void* p) noexcept;
  // Note [Foreign out of memory] (driver_hooks.cpp): gives back everything cached on the current
  // context's device after a route the cache does not serve ran out of memory. Returns bytes.
  size_t release_for_foreign_oom() noexcept;

 private:
  template <typename Real>
  int cached_alloc(uint16_t pool, bool host, size_t* size, size_t exact, unsigned flags, int oom,
                   uint64_t* addr, bool* from_cache, bool* retried, Real real) noexcept;
  template <typename Real>
  CuResult drv_alloc(uint64_t* addr, size_t size, bool host, unsigned flags, Real real) noexcept;
  bool drv_release(uint64_t addr, bool host, CuResult* out) noexcept;
  void make_room(uint16_t pool, size_t n) noexcept;
  void scrub(uint64_t addr, size_t size, bool host) noexcept;
  CuResult free_sync() noexcept;
  cuda_api::Context current_context() noexcept;
  bool runtime_device_bound(const cuda_api::Runtime* rt) noexcept;

  DeviceCache& c_;
};

// ---- The process-wide front (the exported symbols and hooks) ---------------------------------
// `caller`: __builtin_return_address(0) of the exported function.
RtError rt_malloc(const void* caller, void** p, size_t size) noexcept;
RtError rt_free(const void* caller, void* p) noexcept;
RtError rt_malloc_host(const void* caller, void** p, size_t size) noexcept;
RtError rt_host_alloc(const void* caller, void** p, size_t size, unsigned flags) noexcept;
RtError rt_free_host(const void* caller, void* p) noexcept;
RtError rt_mem_get_info(const void* caller, size_t* free_bytes, size_t* total_bytes) noexcept;
RtError rt_device_reset(const void* caller) noexcept;

CuResult drv_mem_alloc(MemAllocFn real, DevicePtr* p, size_t size) noexcept;
CuResult drv_mem_free(MemFreeFn real, DevicePtr p) noexcept;
CuResult drv_mem_alloc_host(MemAllocHostFn real, void** p, size_t size) noexcept;
CuResult drv_mem_host_alloc(MemHostAllocFn real, void** p, size_t size, unsigned flags) noexcept;
CuResult drv_mem_free_host(MemFreeHostFn real, void* p) noexcept;
CuResult drv_mem_get_info(MemGetInfoFn real, size_t* free_bytes, size_t* total_bytes) noexcept;

int retain(void* p) noexcept;
int release(void* p) noexcept;
size_t clear(int device) noexcept;
int owns(const void* p) noexcept;
size_t release_for_foreign_oom() noexcept;
void counters(int device, bool host, PoolCounters* out) noexcept;
uint64_t passthrough_count() noexcept;

}  // namespace cachealloc::cuda
