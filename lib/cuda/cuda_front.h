// cuda_front.h - what the intercepted CUDA calls mean under cachealloc.
//
// One function per intercepted runtime or driver call; preload/cuda/*.cpp forward to them and
// driver_hooks.cpp calls them from the wrappers it hands out through dlsym and cuGetProcAddress.
// Driver functions take the real entry point the caller would have reached (`real`), so each
// wrapper calls exactly the variant the driver returned.
//
// Pass-through (the real function, untouched result): CACHEALLOC_CUDA=0, size 0 or huge requests,
// NULL pointers, pointers cachealloc did not hand out, calls made while a graph capture is under
// way (Note [Capture]), and driver calls the shared runtime makes on behalf of a runtime call we
// already handled (Note [Runtime re-entry] in cuda_api.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "platform/cuda_api.h"

namespace cachealloc::cuda {

using cuda_api::CuResult;
using cuda_api::DevicePtr;
using cuda_api::RtError;

// ---- Runtime API ----------------------------------------------------------------------------
RtError rt_malloc(void** p, size_t size) noexcept;
RtError rt_free(void* p) noexcept;
RtError rt_malloc_host(void** p, size_t size) noexcept;
RtError rt_host_alloc(void** p, size_t size, unsigned flags) noexcept;
RtError rt_free_host(void* p) noexcept;
RtError rt_mem_get_info(size_t* free_bytes, size_t* total_bytes) noexcept;
RtError rt_device_reset() noexcept;

// ---- Driver API -----------------------------------------------------------------------------
using MemAllocFn = CuResult (*)(DevicePtr*, size_t);
using MemFreeFn = CuResult (*)(DevicePtr);
using MemAllocHostFn = CuResult (*)(void**, size_t);
using MemHostAllocFn = CuResult (*)(void**, size_t, unsigned);
using MemFreeHostFn = CuResult (*)(void*);
using MemGetInfoFn = CuResult (*)(size_t*, size_t*);

CuResult drv_mem_alloc(MemAllocFn real, DevicePtr* p, size_t size) noexcept;
CuResult drv_mem_free(MemFreeFn real, DevicePtr p) noexcept;
CuResult drv_mem_alloc_host(MemAllocHostFn real, void** p, size_t size) noexcept;
CuResult drv_mem_host_alloc(MemHostAllocFn real, void** p, size_t size, unsigned flags) noexcept;
CuResult drv_mem_free_host(MemFreeHostFn real, void* p) noexcept;
CuResult drv_mem_get_info(MemGetInfoFn real, size_t* free_bytes, size_t* total_bytes) noexcept;

// ---- C API (include/cachealloc/cuda.h) ------------------------------------------------------
int retain(void* p) noexcept;
int release(void* p) noexcept;
size_t clear(int device) noexcept;
int owns(const void* p) noexcept;
uint64_t passthrough_count() noexcept;

// Note [Foreign out of memory] (driver_hooks.cpp): gives back everything cached on the current
// context's device after a route the cache does not serve ran out of memory. Returns the bytes.
size_t release_for_foreign_oom() noexcept;

}  // namespace cachealloc::cuda
