// driver_hooks.h - how driver calls reach cachealloc when the program never names them.
//
// Programs built with nvcc link the CUDA runtime statically. That runtime opens libcuda.so.1,
// looks up cuGetProcAddress with dlsym, and fetches every other driver entry point through it, so
// exporting cuMemAlloc_v2 alone would catch nothing. cachealloc therefore interposes dlsym (the
// asm trampoline in preload/cuda/dlsym.cpp) and wraps, for the driver only:
//   - dlsym results that point into libcuda.so* for the names of CA_CUDA_DRIVER_HOOKS (and the
//     per-thread-stream aliases in driver_hooks.cpp);
//   - the function pointers cuGetProcAddress(_v2) returns for their base names.
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
// Note [cuGetProcAddress versions]
// cuGetProcAddress(name, version) returns the variant of `name` whose signature belongs to that
// CUDA version: below `since` an older signature (left alone), and a later CUDA may add a _v3
// with a new signature that our thunk must never be handed. So a pointer is wrapped only when
// the version is one this table was checked against (<= kCheckedCudaVersion), or when the pointer
// is the driver's export of exactly that name (or its _ptsz/_ptds variant); else it is returned
// unwrapped (the cache then simply does not see those calls).
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

using cuda_api::Context;
using cuda_api::CuResult;
using cuda_api::DevicePtr;
using cuda_api::Stream;

// The driver entry points cachealloc wraps, one line each. From this list come the hook enum,
// the thunks, the cuGetProcAddress and dlsym name tables, the exported_* functions below and the
// exported symbols of preload/cuda/driver.cpp; test/cuda/exports_check.py checks
// preload/exports.map and the built library against it.
//   X(exact export of libcuda.so.1, base name for cuGetProcAddress ("" when it is not fetched by
//     a name of its own), the CUDA version from which cuGetProcAddress returns this signature, what the hook does (called with the real pointer
//     and the arguments), (parameters), (arguments), parameter types...)
// Opaque CUDA types are void* / unsigned long long / int.
#define CA_CUDA_DRIVER_HOOKS(X)                                                                    \
  X(cuMemAlloc_v2, "cuMemAlloc", 3020, drv_mem_alloc, (DevicePtr * p, size_t n), (p, n),           \
    DevicePtr*, size_t)                                                                            \
  X(cuMemFree_v2, "cuMemFree", 3020, drv_mem_free, (DevicePtr p), (p), DevicePtr)                  \
  X(cuMemAllocHost_v2, "cuMemAllocHost", 3020, drv_mem_alloc_host, (void** p, size_t n), (p, n),   \
    void**, size_t)                                                                                \
  X(cuMemHostAlloc, "cuMemHostAlloc", 0, drv_mem_host_alloc, (void** p, size_t n, unsigned f),     \
    (p, n, f), void**, size_t, unsigned)                                                           \
  X(cuMemFreeHost, "cuMemFreeHost", 0, drv_mem_free_host, (void* p), (p), void*)                   \
  X(cuMemGetInfo_v2, "cuMemGetInfo", 3020, drv_mem_get_info, (size_t * f, size_t * t), (f, t),     \
    size_t*, size_t*)                                                                              \
  X(cuStreamBeginCapture_v2, "cuStreamBeginCapture", 10010, hook_begin_capture,                    \
    (Stream s, int mode), (s, mode), Stream, int)                                                  \
  X(cuStreamBeginCaptureToGraph, "cuStreamBeginCaptureToGraph", 12030, hook_begin_capture_to_graph,\
    (Stream s, void* g, const void* deps, const void* data, size_t n, int mode),                   \
    (s, g, deps, data, n, mode), Stream, void*, const void*, const void*, size_t, int)            \
  X(cuStreamEndCapture, "cuStreamEndCapture", 0, hook_end_capture, (Stream s, void** g), (s, g),   \
    Stream, void**)                                                                                \
  X(cuIpcGetMemHandle, "cuIpcGetMemHandle", 0, hook_ipc_get, (void* h, DevicePtr p), (h, p),       \
    void*, DevicePtr)                                                                              \
  X(cuDevicePrimaryCtxReset_v2, "cuDevicePrimaryCtxReset", 0, hook_primary_ctx_reset, (int dev),   \
    (dev), int)                                                                                    \
  X(cuDevicePrimaryCtxRelease_v2, "cuDevicePrimaryCtxRelease", 0, hook_primary_ctx_release,        \
    (int dev), (dev), int)                                                                         \
  X(cuCtxDestroy_v2, "cuCtxDestroy", 0, hook_ctx_destroy, (Context c), (c), Context)               \
  X(cuMemAllocAsync, "cuMemAllocAsync", 11020, hook_oom_retry, (DevicePtr * p, size_t n, Stream s),\
    (p, n, s), DevicePtr*, size_t, Stream)                                                         \
  X(cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", 11020, hook_oom_retry,                     \
    (DevicePtr * p, size_t n, void* pool, Stream s), (p, n, pool, s), DevicePtr*, size_t, void*,   \
    Stream)                                                                                        \
  X(cuMemCreate, "cuMemCreate", 10020, hook_oom_retry,                                             \
    (unsigned long long* h, size_t n, const void* prop, unsigned long long flags),                 \
    (h, n, prop, flags), unsigned long long*, size_t, const void*, unsigned long long)             \
  X(cuMemAllocManaged, "cuMemAllocManaged", 6000, hook_oom_retry,                                  \
    (DevicePtr * p, size_t n, unsigned flags), (p, n, flags), DevicePtr*, size_t, unsigned)        \
  X(cuMemAllocPitch_v2, "cuMemAllocPitch", 3020, hook_oom_retry,                                   \
    (DevicePtr * p, size_t * pitch, size_t w, size_t h, unsigned elem), (p, pitch, w, h, elem),    \
    DevicePtr*, size_t*, size_t, size_t, unsigned)                                                 \
  X(cuArrayCreate_v2, "cuArrayCreate", 3020, hook_oom_retry, (void** a, const void* desc),         \
    (a, desc), void**, const void*)                                                                \
  X(cuArray3DCreate_v2, "cuArray3DCreate", 3020, hook_oom_retry, (void** a, const void* desc),     \
    (a, desc), void**, const void*)                                                                \
  /* The per-thread-default-stream exports, for programs linked with -lcuda and built with     */ \
  /* --default-stream per-thread (cuGetProcAddress hands them out under the base names above). */ \
  X(cuStreamBeginCapture_v2_ptsz, "", 0, hook_begin_capture, (Stream s, int mode), (s, mode),      \
    Stream, int)                                                                                   \
  X(cuStreamBeginCaptureToGraph_ptsz, "", 0, hook_begin_capture_to_graph,                          \
    (Stream s, void* g, const void* deps, const void* data, size_t n, int mode),                   \
    (s, g, deps, data, n, mode), Stream, void*, const void*, const void*, size_t, int)            \
  X(cuStreamEndCapture_ptsz, "", 0, hook_end_capture, (Stream s, void** g), (s, g), Stream,        \
    void**)                                                                                        \
  X(cuMemAllocAsync_ptsz, "", 0, hook_oom_retry, (DevicePtr * p, size_t n, Stream s), (p, n, s),   \
    DevicePtr*, size_t, Stream)                                                                    \
  X(cuMemAllocFromPoolAsync_ptsz, "", 0, hook_oom_retry,                                           \
    (DevicePtr * p, size_t n, void* pool, Stream s), (p, n, pool, s), DevicePtr*, size_t, void*,   \
    Stream)                                                                                        \
  X(cuGetProcAddress, "", 0, hook_proc,                                                            \
    (const char* sym, void** pfn, int ver, unsigned long long flags), (sym, pfn, ver, flags),      \
    const char*, void**, int, unsigned long long)                                                  \
  X(cuGetProcAddress_v2, "", 0, hook_proc_v2,                                                      \
    (const char* sym, void** pfn, int ver, unsigned long long flags, int* status),                 \
    (sym, pfn, ver, flags, status), const char*, void**, int, unsigned long long, int*)

// The newest CUDA version whose signatures this table was checked against (Note
// [cuGetProcAddress versions]).
inline constexpr int kCheckedCudaVersion = 13000;

// The exported driver entry points (preload/cuda/driver.cpp) for programs linked with -lcuda:
// each calls the driver's own function of that name through its hook.
#define CA_HOOK_DECL(name, proc, since, impl, params, args, ...) \
  CuResult exported_##name params noexcept;
CA_CUDA_DRIVER_HOOKS(CA_HOOK_DECL)
#undef CA_HOOK_DECL

}  // namespace cachealloc::cuda
