// driver_hooks.cpp - see driver_hooks.h.
#include "cuda/driver_hooks.h"

#include <atomic>
#include <dlfcn.h>

#include "config/options.h"
#include "cuda/cuda_front.h"
#include "cuda/device_pool.h"
#include "cuda/stream_registry.h"

namespace cachealloc::cuda {
namespace {

using cuda_api::Context;
using cuda_api::kCuSuccess;

enum Hook : int {
  kMemAlloc, kMemFree, kMemAllocHost, kMemHostAlloc, kMemFreeHost, kMemGetInfo,
  kStreamCreate, kStreamCreateWithPriority, kStreamDestroy, kBeginCapture, kEndCapture,
  kIpcGetMemHandle, kPrimaryCtxReset, kCtxDestroy, kGetProcAddress, kGetProcAddressV2,
  kPrimaryCtxRelease,
#define CA_HOOK_ENUM(name, proc, since, params, args, ...) k##name,
  CA_CUDA_OOM_ROUTES(CA_HOOK_ENUM)
#undef CA_HOOK_ENUM
  kNumHooks
};
constexpr int kSlots = 4;

constinit std::atomic<void*> g_real[kNumHooks][kSlots] = {};
constinit std::atomic<void*> g_export_real[kNumHooks] = {};
thread_local bool t_in_dlsym = false;

template <typename Fn>
Fn real_of(int hook, int slot) noexcept {
  return reinterpret_cast<Fn>(g_real[hook][slot].load(std::memory_order_acquire));
}

void* wrap(Hook hook, void* real) noexcept;
void* wrap_proc(const char* symbol, int cuda_version, void* real) noexcept;

// ---- Thunks: one per (hook, slot); each calls the real pointer of its slot. -------------------
using StreamCreateFn = CuResult (*)(Stream*, unsigned);
using StreamCreatePrioFn = CuResult (*)(Stream*, unsigned, int);
using StreamDestroyFn = CuResult (*)(Stream);
using BeginCaptureFn = CuResult (*)(Stream, int);
using EndCaptureFn = CuResult (*)(Stream, void**);
using IpcGetFn = CuResult (*)(void*, DevicePtr);
using CtxResetFn = CuResult (*)(int);
using CtxDestroyFn = CuResult (*)(Context);
using CtxReleaseFn = CuResult (*)(int);
using ProcFn = CuResult (*)(const char*, void**, int, unsigned long long);
using ProcV2Fn = CuResult (*)(const char*, void**, int, unsigned long long, int*);

CuResult stream_create(StreamCreateFn real, Stream* s, unsigned flags) noexcept {
  CuResult r = real(s, flags);
  if (r == kCuSuccess && s != nullptr) note_stream_created(*s, flags);
  return r;
}
CuResult stream_create_prio(StreamCreatePrioFn real, Stream* s, unsigned flags, int prio) noexcept {
  CuResult r = real(s, flags, prio);
  if (r == kCuSuccess && s != nullptr) note_stream_created(*s, flags);
  return r;
}
CuResult stream_destroy(StreamDestroyFn real, Stream s) noexcept {
  StreamsLock streams;  // no fence records on s while it is destroyed
  note_stream_destroyed_locked(s);
  return real(s);
}
CuResult begin_capture(BeginCaptureFn real, Stream s, int mode) noexcept {
  capture_enter();  // Note [Capture gate]
  CuResult r = real(s, mode);
  if (r == kCuSuccess) {
    capture_started(s);
  } else {
    capture_aborted();
  }
  return r;
}
CuResult end_capture(EndCaptureFn real, Stream s, void** graph) noexcept {
  CuResult r = real(s, graph);
  note_capture_end(s);  // the capture is over whatever the result (a no-op if s was not capturing)
  return r;
}
CuResult ipc_get(IpcGetFn real, void* handle, DevicePtr p) noexcept {
  CuResult r = real(handle, p);
  if (r == kCuSuccess) pool_mark_ipc(p);  // Note: exported blocks are never cached
  return r;
}
// The reset frees every allocation of the device's primary context: forget its blocks, or the
// cache would hand freed memory out again (cudaDeviceReset in a statically linked runtime ends
// here; the shared runtime's reaches rt_device_reset first, and dropping twice is harmless).
CuResult primary_ctx_reset(CtxResetFn real, int dev) noexcept {
  CuResult r = real(dev);
  if (r == kCuSuccess) pool_drop_device(dev);
  return r;
}
// Releasing the last reference of a primary context resets it (Numba's cuda.close(), PyCUDA's
// ctx.detach()): its memory is gone, so its pools must forget their blocks. The handle is learnt
// with a retain of our own taken before the caller's release and dropped after it; if that last
// drop ends the context, its pools are dropped.
CuResult primary_ctx_release(CtxReleaseFn real, int dev) noexcept {
  const cuda_api::Driver* d = cuda_api::driver();
  Context ctx = nullptr;
  if (d == nullptr || d->primary_ctx_retain(&ctx, dev) != kCuSuccess) return real(dev);
  CuResult r = real(dev);
  d->primary_ctx_release(dev);
  unsigned flags = 0;
  int active = 1;
  if (d->primary_ctx_get_state(dev, &flags, &active) == kCuSuccess && active == 0) {
    pool_drop_context(ctx);
    forget_streams_of(ctx);
  }
  return r;
}
// Destroying a context frees its allocations, and a later context may get the same handle.
CuResult ctx_destroy(CtxDestroyFn real, Context ctx) noexcept {
  CuResult r = real(ctx);
  if (r == kCuSuccess) {
    pool_drop_context(ctx);
    forget_streams_of(ctx);
  }
  return r;
}
CuResult proc(ProcFn real, const char* sym, void** pfn, int ver, unsigned long long flags) noexcept {
  CuResult r = real(sym, pfn, ver, flags);
  if (r == kCuSuccess && pfn != nullptr && *pfn != nullptr) *pfn = wrap_proc(sym, ver, *pfn);
  return r;
}
CuResult proc_v2(ProcV2Fn real, const char* sym, void** pfn, int ver, unsigned long long flags,
                 int* status) noexcept {
  CuResult r = real(sym, pfn, ver, flags, status);
  if (r == kCuSuccess && pfn != nullptr && *pfn != nullptr && (status == nullptr || *status == 0)) {
    *pfn = wrap_proc(sym, ver, *pfn);
  }
  return r;
}

template <int K>
CuResult t_ctx_release(int dev) noexcept {
  return primary_ctx_release(real_of<CtxReleaseFn>(kPrimaryCtxRelease, K), dev);
}

// Note [Foreign out of memory]
// Memory the cache does not serve (cudaMallocAsync pools, cuMemCreate, managed, pitched, arrays)
// comes from the same device: while the cache holds freed blocks, such a request may fail where
// the plain program would have succeeded. Each route is wrapped: on CUDA_ERROR_OUT_OF_MEMORY the
// cache of the current device is synchronised and given back, and the call is made once more.
template <Hook H, typename... A>
struct OomRoute {
  template <int K>
  static CuResult thunk(A... a) noexcept {
    auto real = real_of<CuResult (*)(A...)>(H, K);
    CuResult r = real(a...);
    if (r == cuda_api::kCuOutOfMemory && release_for_foreign_oom() != 0) r = real(a...);
    return r;
  }
  static CuResult exported(void* f, A... a) noexcept {
    auto real = reinterpret_cast<CuResult (*)(A...)>(f);
    CuResult r = real(a...);
    if (r == cuda_api::kCuOutOfMemory && release_for_foreign_oom() != 0) r = real(a...);
    return r;
  }
};

template <int K>
CuResult t_mem_alloc(DevicePtr* p, size_t n) noexcept {
  return drv_mem_alloc(real_of<MemAllocFn>(kMemAlloc, K), p, n);
}
template <int K>
CuResult t_mem_free(DevicePtr p) noexcept {
  return drv_mem_free(real_of<MemFreeFn>(kMemFree, K), p);
}
template <int K>
CuResult t_mem_alloc_host(void** p, size_t n) noexcept {
  return drv_mem_alloc_host(real_of<MemAllocHostFn>(kMemAllocHost, K), p, n);
}
template <int K>
CuResult t_mem_host_alloc(void** p, size_t n, unsigned flags) noexcept {
  return drv_mem_host_alloc(real_of<MemHostAllocFn>(kMemHostAlloc, K), p, n, flags);
}
template <int K>
CuResult t_mem_free_host(void* p) noexcept {
  return drv_mem_free_host(real_of<MemFreeHostFn>(kMemFreeHost, K), p);
}
template <int K>
CuResult t_mem_get_info(size_t* f, size_t* t) noexcept {
  return drv_mem_get_info(real_of<MemGetInfoFn>(kMemGetInfo, K), f, t);
}
template <int K>
CuResult t_stream_create(Stream* s, unsigned flags) noexcept {
  return stream_create(real_of<StreamCreateFn>(kStreamCreate, K), s, flags);
}
template <int K>
CuResult t_stream_create_prio(Stream* s, unsigned flags, int prio) noexcept {
  return stream_create_prio(real_of<StreamCreatePrioFn>(kStreamCreateWithPriority, K), s, flags,
                            prio);
}
template <int K>
CuResult t_stream_destroy(Stream s) noexcept {
  return stream_destroy(real_of<StreamDestroyFn>(kStreamDestroy, K), s);
}
template <int K>
CuResult t_begin_capture(Stream s, int mode) noexcept {
  return begin_capture(real_of<BeginCaptureFn>(kBeginCapture, K), s, mode);
}
template <int K>
CuResult t_end_capture(Stream s, void** graph) noexcept {
  return end_capture(real_of<EndCaptureFn>(kEndCapture, K), s, graph);
}
template <int K>
CuResult t_ipc_get(void* handle, DevicePtr p) noexcept {
  return ipc_get(real_of<IpcGetFn>(kIpcGetMemHandle, K), handle, p);
}
template <int K>
CuResult t_ctx_reset(int dev) noexcept {
  return primary_ctx_reset(real_of<CtxResetFn>(kPrimaryCtxReset, K), dev);
}
template <int K>
CuResult t_ctx_destroy(Context ctx) noexcept {
  return ctx_destroy(real_of<CtxDestroyFn>(kCtxDestroy, K), ctx);
}
template <int K>
CuResult t_proc(const char* sym, void** pfn, int ver, unsigned long long flags) noexcept {
  return proc(real_of<ProcFn>(kGetProcAddress, K), sym, pfn, ver, flags);
}
template <int K>
CuResult t_proc_v2(const char* sym, void** pfn, int ver, unsigned long long flags,
                   int* status) noexcept {
  return proc_v2(real_of<ProcV2Fn>(kGetProcAddressV2, K), sym, pfn, ver, flags, status);
}

#define CA_THUNKS(fn)                                                              \
  {                                                                                \
    reinterpret_cast<void*>(&fn<0>), reinterpret_cast<void*>(&fn<1>),              \
        reinterpret_cast<void*>(&fn<2>), reinterpret_cast<void*>(&fn<3>)           \
  }
void* const kThunks[kNumHooks][kSlots] = {
    CA_THUNKS(t_mem_alloc),      CA_THUNKS(t_mem_free),         CA_THUNKS(t_mem_alloc_host),
    CA_THUNKS(t_mem_host_alloc), CA_THUNKS(t_mem_free_host),    CA_THUNKS(t_mem_get_info),
    CA_THUNKS(t_stream_create),  CA_THUNKS(t_stream_create_prio), CA_THUNKS(t_stream_destroy),
    CA_THUNKS(t_begin_capture),  CA_THUNKS(t_end_capture),      CA_THUNKS(t_ipc_get),
    CA_THUNKS(t_ctx_reset),      CA_THUNKS(t_ctx_destroy),      CA_THUNKS(t_proc),
    CA_THUNKS(t_proc_v2),        CA_THUNKS(t_ctx_release),
#define CA_OOM_THUNKS(name, proc, since, params, args, ...)                  \
  {reinterpret_cast<void*>(&OomRoute<k##name, __VA_ARGS__>::template thunk<0>), \
   reinterpret_cast<void*>(&OomRoute<k##name, __VA_ARGS__>::template thunk<1>), \
   reinterpret_cast<void*>(&OomRoute<k##name, __VA_ARGS__>::template thunk<2>), \
   reinterpret_cast<void*>(&OomRoute<k##name, __VA_ARGS__>::template thunk<3>)},
    CA_CUDA_OOM_ROUTES(CA_OOM_THUNKS)
#undef CA_OOM_THUNKS
};
#undef CA_THUNKS

// ---- Name tables ----------------------------------------------------------------------------

struct ProcName {
  const char* name;   // the base name cuGetProcAddress is asked for
  Hook hook;
  int min_version;    // below it the driver returns an older signature: left alone
};
constexpr ProcName kProcNames[] = {
    {"cuMemAlloc", kMemAlloc, 3020},         {"cuMemFree", kMemFree, 3020},
    {"cuMemAllocHost", kMemAllocHost, 3020}, {"cuMemHostAlloc", kMemHostAlloc, 0},
    {"cuMemFreeHost", kMemFreeHost, 0},      {"cuMemGetInfo", kMemGetInfo, 3020},
    {"cuStreamCreate", kStreamCreate, 0},    {"cuStreamCreateWithPriority", kStreamCreateWithPriority, 0},
    {"cuStreamDestroy", kStreamDestroy, 4000}, {"cuStreamBeginCapture", kBeginCapture, 10010},
    {"cuStreamEndCapture", kEndCapture, 0},  {"cuIpcGetMemHandle", kIpcGetMemHandle, 0},
    {"cuDevicePrimaryCtxReset", kPrimaryCtxReset, 0},  // _v2 (11000) has the same signature
    {"cuCtxDestroy", kCtxDestroy, 0},                   // _v2 (4000) has the same signature
    {"cuDevicePrimaryCtxRelease", kPrimaryCtxRelease, 0},  // _v2 (11000): same signature
#define CA_OOM_PROC(name, proc, since, params, args, ...) {proc, k##name, since},
    CA_CUDA_OOM_ROUTES(CA_OOM_PROC)
#undef CA_OOM_PROC
};

struct DlsymName {
  const char* name;   // the exact (versioned) export of libcuda.so.1
  Hook hook;
};
constexpr DlsymName kDlsymNames[] = {
    {"cuMemAlloc_v2", kMemAlloc},
    {"cuMemFree_v2", kMemFree},
    {"cuMemAllocHost_v2", kMemAllocHost},
    {"cuMemHostAlloc", kMemHostAlloc},
    {"cuMemFreeHost", kMemFreeHost},
    {"cuMemGetInfo_v2", kMemGetInfo},
    {"cuStreamCreate", kStreamCreate},
    {"cuStreamCreateWithPriority", kStreamCreateWithPriority},
    {"cuStreamDestroy_v2", kStreamDestroy},
    {"cuStreamBeginCapture_v2", kBeginCapture},
    {"cuStreamBeginCapture_v2_ptsz", kBeginCapture},
    {"cuStreamEndCapture", kEndCapture},
    {"cuStreamEndCapture_ptsz", kEndCapture},
    {"cuIpcGetMemHandle", kIpcGetMemHandle},
    {"cuDevicePrimaryCtxReset", kPrimaryCtxReset},
    {"cuDevicePrimaryCtxReset_v2", kPrimaryCtxReset},
    {"cuCtxDestroy", kCtxDestroy},
    {"cuCtxDestroy_v2", kCtxDestroy},
    {"cuGetProcAddress", kGetProcAddress},
    {"cuGetProcAddress_v2", kGetProcAddressV2},
    {"cuDevicePrimaryCtxRelease", kPrimaryCtxRelease},
    {"cuDevicePrimaryCtxRelease_v2", kPrimaryCtxRelease},
#define CA_OOM_DLSYM(name, proc, since, params, args, ...) {#name, k##name},
    CA_CUDA_OOM_ROUTES(CA_OOM_DLSYM)
#undef CA_OOM_DLSYM
    {"cuMemAllocAsync_ptsz", kcuMemAllocAsync},  // the per-thread-stream variants: same types
    {"cuMemAllocFromPoolAsync_ptsz", kcuMemAllocFromPoolAsync},
};

bool same(const char* a, const char* b) noexcept {
  for (; *a != '\0' && *a == *b; ++a, ++b) {
  }
  return *a == *b;
}

int dlsym_hook_of(const char* name) noexcept {
  for (const DlsymName& n : kDlsymNames) {
    if (same(n.name, name)) return n.hook;
  }
  return -1;
}

void* wrap(Hook hook, void* real) noexcept {
  for (int k = 0; k < kSlots; ++k) {
    if (kThunks[hook][k] == real) return real;  // already ours
  }
  for (int k = 0; k < kSlots; ++k) {
    void* cur = g_real[hook][k].load(std::memory_order_acquire);
    if (cur == real) return kThunks[hook][k];
    if (cur == nullptr) {
      if (g_real[hook][k].compare_exchange_strong(cur, real, std::memory_order_acq_rel) ||
          cur == real) {
        return kThunks[hook][k];
      }
    }
  }
  return real;  // more variants than slots: leave this one unwrapped
}

void* wrap_proc(const char* symbol, int cuda_version, void* real) noexcept {
  if (symbol == nullptr || options().cuda == 0) return real;
  if (same(symbol, "cuGetProcAddress")) {
    return wrap(cuda_version >= 12000 ? kGetProcAddressV2 : kGetProcAddress, real);
  }
  for (const ProcName& n : kProcNames) {
    if (same(n.name, symbol)) return cuda_version >= n.min_version ? wrap(n.hook, real) : real;
  }
  return real;
}

void* dlsym_wrapped(void* handle, const char* name) noexcept {
  t_in_dlsym = true;
  void* r = cuda_api::real_dlsym()(handle, name);
  int hook = dlsym_hook_of(name);
  if (r != nullptr && hook >= 0 && cuda_api::in_driver_library(r)) {
    r = wrap(static_cast<Hook>(hook), r);
  }
  t_in_dlsym = false;
  return r;
}

void* dlsym_unavailable(void*, const char*) noexcept { return nullptr; }

// ---- Exported entry points ------------------------------------------------------------------

const char* const kExportNames[kNumHooks] = {
    "cuMemAlloc_v2",      "cuMemFree_v2",        "cuMemAllocHost_v2",
    "cuMemHostAlloc",     "cuMemFreeHost",       "cuMemGetInfo_v2",
    "cuStreamCreate",     "cuStreamCreateWithPriority", "cuStreamDestroy_v2",
    "cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuIpcGetMemHandle",
    "cuDevicePrimaryCtxReset_v2", "cuCtxDestroy_v2",
    "cuGetProcAddress",   "cuGetProcAddress_v2", "cuDevicePrimaryCtxRelease_v2",
#define CA_OOM_EXPORT(name, proc, since, params, args, ...) #name,
    CA_CUDA_OOM_ROUTES(CA_OOM_EXPORT)
#undef CA_OOM_EXPORT
};

// The driver's own entry point behind one of our exports (libcuda.so.1 is loaded: the program
// linked it). nullptr if it is not.
template <typename Fn>
Fn export_real(Hook hook) noexcept {
  void* f = g_export_real[hook].load(std::memory_order_acquire);
  if (f == nullptr) {
    void* h = dlopen("libcuda.so.1", RTLD_NOLOAD | RTLD_LAZY);
    if (h == nullptr) return nullptr;
    f = cuda_api::real_dlsym()(h, kExportNames[hook]);
    g_export_real[hook].store(f, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(f);
}

constexpr CuResult kNoDriver = cuda_api::kCuNotInitialized;

}  // namespace

CuResult exported_mem_alloc(DevicePtr* p, size_t size) noexcept {
  auto real = export_real<MemAllocFn>(kMemAlloc);
  return real != nullptr ? drv_mem_alloc(real, p, size) : kNoDriver;
}
CuResult exported_mem_free(DevicePtr p) noexcept {
  auto real = export_real<MemFreeFn>(kMemFree);
  return real != nullptr ? drv_mem_free(real, p) : kNoDriver;
}
CuResult exported_mem_alloc_host(void** p, size_t size) noexcept {
  auto real = export_real<MemAllocHostFn>(kMemAllocHost);
  return real != nullptr ? drv_mem_alloc_host(real, p, size) : kNoDriver;
}
CuResult exported_mem_host_alloc(void** p, size_t size, unsigned flags) noexcept {
  auto real = export_real<MemHostAllocFn>(kMemHostAlloc);
  return real != nullptr ? drv_mem_host_alloc(real, p, size, flags) : kNoDriver;
}
CuResult exported_mem_free_host(void* p) noexcept {
  auto real = export_real<MemFreeHostFn>(kMemFreeHost);
  return real != nullptr ? drv_mem_free_host(real, p) : kNoDriver;
}
CuResult exported_mem_get_info(size_t* free_bytes, size_t* total_bytes) noexcept {
  auto real = export_real<MemGetInfoFn>(kMemGetInfo);
  return real != nullptr ? drv_mem_get_info(real, free_bytes, total_bytes) : kNoDriver;
}
CuResult exported_stream_create(Stream* s, unsigned flags) noexcept {
  auto real = export_real<StreamCreateFn>(kStreamCreate);
  return real != nullptr ? stream_create(real, s, flags) : kNoDriver;
}
CuResult exported_stream_create_with_priority(Stream* s, unsigned flags, int priority) noexcept {
  auto real = export_real<StreamCreatePrioFn>(kStreamCreateWithPriority);
  return real != nullptr ? stream_create_prio(real, s, flags, priority) : kNoDriver;
}
CuResult exported_stream_destroy(Stream s) noexcept {
  auto real = export_real<StreamDestroyFn>(kStreamDestroy);
  return real != nullptr ? stream_destroy(real, s) : kNoDriver;
}
CuResult exported_stream_begin_capture(Stream s, int mode) noexcept {
  auto real = export_real<BeginCaptureFn>(kBeginCapture);
  return real != nullptr ? begin_capture(real, s, mode) : kNoDriver;
}
CuResult exported_stream_end_capture(Stream s, void** graph) noexcept {
  auto real = export_real<EndCaptureFn>(kEndCapture);
  return real != nullptr ? end_capture(real, s, graph) : kNoDriver;
}
CuResult exported_ipc_get_mem_handle(void* handle, DevicePtr p) noexcept {
  auto real = export_real<IpcGetFn>(kIpcGetMemHandle);
  return real != nullptr ? ipc_get(real, handle, p) : kNoDriver;
}
CuResult exported_primary_ctx_reset(int dev) noexcept {
  auto real = export_real<CtxResetFn>(kPrimaryCtxReset);
  return real != nullptr ? primary_ctx_reset(real, dev) : kNoDriver;
}
CuResult exported_primary_ctx_release(int dev) noexcept {
  auto real = export_real<CtxReleaseFn>(kPrimaryCtxRelease);
  return real != nullptr ? primary_ctx_release(real, dev) : kNoDriver;
}
#define CA_STRIP(...) __VA_ARGS__
#define CA_OOM_EXPORTED(name, proc, since, params, args, ...)                                 \
  CuResult exported_##name params noexcept {                                                  \
    void* f = export_real<void*>(k##name);                                                    \
    return f != nullptr ? OomRoute<k##name, __VA_ARGS__>::exported(f, CA_STRIP args)          \
                        : kNoDriver;                                                          \
  }
CA_CUDA_OOM_ROUTES(CA_OOM_EXPORTED)
#undef CA_OOM_EXPORTED
#undef CA_STRIP

CuResult exported_ctx_destroy(Context ctx) noexcept {
  auto real = export_real<CtxDestroyFn>(kCtxDestroy);
  return real != nullptr ? ctx_destroy(real, ctx) : kNoDriver;
}
CuResult exported_get_proc_address(const char* symbol, void** pfn, int cuda_version,
                                   unsigned long long flags) noexcept {
  auto real = export_real<ProcFn>(kGetProcAddress);
  return real != nullptr ? proc(real, symbol, pfn, cuda_version, flags) : kNoDriver;
}
CuResult exported_get_proc_address_v2(const char* symbol, void** pfn, int cuda_version,
                                      unsigned long long flags, int* status) noexcept {
  auto real = export_real<ProcV2Fn>(kGetProcAddressV2);
  return real != nullptr ? proc_v2(real, symbol, pfn, cuda_version, flags, status) : kNoDriver;
}

}  // namespace cachealloc::cuda

extern "C" void* cachealloc_cuda_dlsym_target(void* handle, const char* name) noexcept {
  using namespace cachealloc;
  cuda_api::DlsymFn real = cuda_api::real_dlsym();
  if (real == nullptr) return reinterpret_cast<void*>(&cuda::dlsym_unavailable);
  // Fast exit for almost every lookup: two character compares.
  if (name == nullptr || name[0] != 'c' || name[1] != 'u' || handle == RTLD_NEXT ||
      cuda::t_in_dlsym || options().cuda == 0 || cuda::dlsym_hook_of(name) < 0) {
    return reinterpret_cast<void*>(real);
  }
  return reinterpret_cast<void*>(&cuda::dlsym_wrapped);
}
