// driver_hooks.h - how driver calls reach cachealloc when the program never names them.
//
// Programs built with nvcc link the CUDA runtime statically. That runtime opens libcuda.so.1,
// looks up cuGetProcAddress with dlsym, and fetches every other driver entry point through it, so
// exporting cuMemAlloc_v2 alone would catch nothing. cachealloc therefore interposes dlsym (the
// asm trampoline in preload/cuda/dlsym.cpp) and wraps, for the driver only:
//   - dlsym results that point into libcuda.so* for the names in kDlsymNames;
//   - the function pointers cuGetProcAddress(_v2) returns for the names in kProcNames.
// Each wrapper ("thunk") calls the exact real pointer it replaced: a hook keeps up to kSlots real
// pointers (the driver may return variants, e.g. _ptsz), each with its own thunk.
//
// Note [dlsym interposition]
// glibc resolves dlsym(RTLD_NEXT, name) relative to the *return address* of the dlsym call. The
// exported dlsym is an asm trampoline that asks cachealloc_cuda_dlsym_target() where to go and
// then *jumps* there with the caller's arguments and return address untouched: to libc's dlsym
// for everything we do not wrap (every RTLD_NEXT lookup included), so RTLD_NEXT keeps its meaning
// for every caller; to dlsym_wrapped() for the few driver names. A thread-local flag stops
// recursion (libc's dlsym may allocate, and allocation may look symbols up).
//
// SYNCHRONIZATION: the slot tables are lock-free (compare-and-swap on an empty slot).
#pragma once

#include "platform/cuda_api.h"

extern "C" {
// Where the exported dlsym should jump for (handle, name): libc's dlsym or dlsym_wrapped.
// Called only by the trampoline; hidden.
void* cachealloc_cuda_dlsym_target(void* handle, const char* name) noexcept;
}

namespace cachealloc::cuda {

using cuda_api::CuResult;
using cuda_api::Stream;

// The allocation routes the cache does not serve, wrapped only to retry after an out-of-memory
// error (Note [Foreign out of memory] in driver_hooks.cpp). One line each, from which the hook
// enum, thunks, cuGetProcAddress and dlsym name tables, exported entry points (preload/cuda/
// driver.cpp) are generated; test/cuda/exports_check.py checks preload/exports.map against it.
//   X(exported name, cuGetProcAddress name, CUDA version of that signature, (parameters),
//     (arguments), parameter types...)   Opaque CUDA types are void* / unsigned long long.
#define CA_CUDA_OOM_ROUTES(X)                                                                      \
  X(cuMemAllocAsync, "cuMemAllocAsync", 11020, (DevicePtr * p, size_t n, Stream s), (p, n, s),     \
    DevicePtr*, size_t, Stream)                                                                    \
  X(cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", 11020,                                     \
    (DevicePtr * p, size_t n, void* pool, Stream s), (p, n, pool, s), DevicePtr*, size_t, void*,   \
    Stream)                                                                                        \
  X(cuMemCreate, "cuMemCreate", 10020,                                                             \
    (unsigned long long* h, size_t n, const void* prop, unsigned long long flags),                 \
    (h, n, prop, flags), unsigned long long*, size_t, const void*, unsigned long long)             \
  X(cuMemAllocManaged, "cuMemAllocManaged", 6000, (DevicePtr * p, size_t n, unsigned flags),       \
    (p, n, flags), DevicePtr*, size_t, unsigned)                                                   \
  X(cuMemAllocPitch_v2, "cuMemAllocPitch", 3020,                                                   \
    (DevicePtr * p, size_t * pitch, size_t w, size_t h, unsigned elem), (p, pitch, w, h, elem),    \
    DevicePtr*, size_t*, size_t, size_t, unsigned)                                                 \
  X(cuArrayCreate_v2, "cuArrayCreate", 3020, (void** a, const void* desc), (a, desc), void**,      \
    const void*)                                                                                   \
  X(cuArray3DCreate_v2, "cuArray3DCreate", 3020, (void** a, const void* desc), (a, desc), void**,  \
    const void*)
using cuda_api::DevicePtr;

// The exported driver entry points (preload/cuda/driver.cpp) for programs linked with -lcuda.
CuResult exported_mem_alloc(DevicePtr* p, size_t size) noexcept;
CuResult exported_mem_free(DevicePtr p) noexcept;
CuResult exported_mem_alloc_host(void** p, size_t size) noexcept;
CuResult exported_mem_host_alloc(void** p, size_t size, unsigned flags) noexcept;
CuResult exported_mem_free_host(void* p) noexcept;
CuResult exported_mem_get_info(size_t* free_bytes, size_t* total_bytes) noexcept;
CuResult exported_stream_create(Stream* s, unsigned flags) noexcept;
CuResult exported_stream_create_with_priority(Stream* s, unsigned flags, int priority) noexcept;
CuResult exported_stream_destroy(Stream s) noexcept;
CuResult exported_stream_begin_capture(Stream s, int mode) noexcept;
CuResult exported_stream_end_capture(Stream s, void** graph) noexcept;
CuResult exported_ipc_get_mem_handle(void* handle, DevicePtr p) noexcept;
CuResult exported_primary_ctx_reset(int dev) noexcept;
CuResult exported_ctx_destroy(cuda_api::Context ctx) noexcept;
CuResult exported_primary_ctx_release(int dev) noexcept;
#define CA_OOM_DECL(name, proc, since, params, args, ...) CuResult exported_##name params noexcept;
CA_CUDA_OOM_ROUTES(CA_OOM_DECL)
#undef CA_OOM_DECL
CuResult exported_get_proc_address(const char* symbol, void** pfn, int cuda_version,
                                   unsigned long long flags) noexcept;
CuResult exported_get_proc_address_v2(const char* symbol, void** pfn, int cuda_version,
                                      unsigned long long flags, int* status) noexcept;

}  // namespace cachealloc::cuda
