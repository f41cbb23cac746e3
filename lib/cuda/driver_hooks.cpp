// driver_hooks.cpp - see driver_hooks.h. Everything here is generated from CA_CUDA_DRIVER_HOOKS
// except what each hook does (the hook_* functions below and the drv_* ones of cuda_front.h).
#include "cuda/driver_hooks.h"

#include <atomic>
#include <dlfcn.h>  // RTLD_NEXT only: the loader calls are in lib/platform (os.h, cuda_api.h)
#include <type_traits>

#include "config/options.h"
#include "cuda/cuda_front.h"
#include "cuda/device_cache.h"
#include "platform/os.h"

#define CA_STRIP(...) __VA_ARGS__

namespace cachealloc::cuda {
namespace {

using cuda_api::kCuSuccess;

enum Hook : int {
#define CA_HOOK_ENUM(name, proc, since, impl, params, args, ...) k##name,
  CA_CUDA_DRIVER_HOOKS(CA_HOOK_ENUM)
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

void* wrap_proc(const char* symbol, int cuda_version, void* real) noexcept;

// ---- What the hooks do (the memory hooks are drv_* in cuda_front.h) -------------------------

template <typename T>
using Same = std::type_identity_t<T>;

StreamRegistry& streams() noexcept { return process_cache().streams(); }

// Note [Capture gate] in stream_registry.h: the capture is counted (and fence work drained)
// before it really begins.
template <typename... A>
CuResult hook_begin_capture_any(CuResult (*real)(Stream, A...), Stream s, Same<A>... a) noexcept {
  // The context the capture dies with (Note [Captures of a dead context]): a thread-local read,
  // made before the capture exists.
  Context ctx = nullptr;
  if (const cuda_api::Driver* d = cuda_api::driver()) d->ctx_get_current(&ctx);
  streams().capture_enter();
  CuResult r = real(s, a...);
  if (r == kCuSuccess) {
    streams().capture_started(s, ctx);
  } else {
    streams().capture_aborted();
  }
  return r;
}
CuResult hook_begin_capture(CuResult (*real)(Stream, int), Stream s, int mode) noexcept {
  return hook_begin_capture_any(real, s, mode);
}
CuResult hook_begin_capture_to_graph(
    CuResult (*real)(Stream, void*, const void*, const void*, size_t, int), Stream s, void* g,
    const void* deps, const void* data, size_t n, int mode) noexcept {
  return hook_begin_capture_any(real, s, g, deps, data, n, mode);
}
CuResult hook_end_capture(CuResult (*real)(Stream, void**), Stream s, void** graph) noexcept {
  CuResult r = real(s, graph);
  // An invalidated capture ends here too, with an error; one ended from the wrong thread does not.
  const cuda_api::Driver* d = cuda_api::driver();
  int status = 0;
  if (r != kCuSuccess && d != nullptr && d->stream_is_capturing != nullptr &&
      d->stream_is_capturing(s, &status) == kCuSuccess && status != 0) {
    return r;  // still capturing: the cache stays quiet
  }
  streams().capture_ended(s);  // a no-op if s was not capturing
  return r;
}
CuResult hook_ipc_get(CuResult (*real)(void*, DevicePtr), void* handle, DevicePtr p) noexcept {
  CuResult r = real(handle, p);
  if (r == kCuSuccess) process_cache().mark_ipc(p);  // Note: exported blocks are never cached
  return r;
}
// The reset frees every allocation of the device's primary context: forget its blocks, or the
// cache would hand freed memory out again (cudaDeviceReset in a statically linked runtime ends
// here; the shared runtime's reaches rt_device_reset first, and dropping twice is harmless).
CuResult hook_primary_ctx_reset(CuResult (*real)(int), int dev) noexcept {
  Context primary = process_cache().active_primary(dev);
  CuResult r = real(dev);
  if (r == kCuSuccess) process_cache().drop_context(primary);
  return r;
}
// Releasing the last reference of a primary context resets it (Numba's cuda.close(), PyCUDA's
// ctx.detach()): its memory is gone, so its pools must forget their blocks. The handle is learnt
// with a retain of our own taken before the caller's release and dropped after it; if that last
// drop ends the context, its pools are dropped.
CuResult hook_primary_ctx_release(CuResult (*real)(int), int dev) noexcept {
  const cuda_api::Driver* d = cuda_api::driver();
  Context ctx = nullptr;
  // The handle comes from a retain of our own, which would activate an inactive context and turn
  // the program's erroneous release (CUDA_ERROR_INVALID_CONTEXT) into a success: an inactive
  // context has nothing cached, so its release passes through untouched.
  unsigned flags = 0;
  int active = 0;
  if (d == nullptr || d->primary_ctx_get_state(dev, &flags, &active) != kCuSuccess || active == 0 ||
      d->primary_ctx_retain(&ctx, dev) != kCuSuccess) {
    return real(dev);
  }
  CuResult r = real(dev);
  d->primary_ctx_release(dev);
  active = 1;
  if (d->primary_ctx_get_state(dev, &flags, &active) == kCuSuccess && active == 0) {
    process_cache().drop_context(ctx);
  }
  return r;
}
// Destroying a context frees its allocations and streams, and a later context may get the same
// handle.
CuResult hook_ctx_destroy(CuResult (*real)(Context), Context ctx) noexcept {
  CuResult r = real(ctx);
  if (r == kCuSuccess) process_cache().drop_context(ctx);
  return r;
}

// Note [Foreign out of memory]
// Memory the cache does not serve (cudaMallocAsync pools, cuMemCreate, managed, pitched, arrays)
// comes from the same device: while the cache holds freed blocks, such a request may fail where
// the plain program would have succeeded. Each route is wrapped: on CUDA_ERROR_OUT_OF_MEMORY the
// cache of the current device is synchronised and given back, and the call is made once more.
template <typename... A>
CuResult hook_oom_retry(CuResult (*real)(A...), Same<A>... a) noexcept {
  CuResult r = real(a...);
  if (r == cuda_api::kCuOutOfMemory && release_for_foreign_oom() != 0) r = real(a...);
  return r;
}

CuResult hook_proc(CuResult (*real)(const char*, void**, int, unsigned long long), const char* sym,
                   void** pfn, int ver, unsigned long long flags) noexcept {
  CuResult r = real(sym, pfn, ver, flags);
  if (r == kCuSuccess && pfn != nullptr && *pfn != nullptr) *pfn = wrap_proc(sym, ver, *pfn);
  return r;
}
CuResult hook_proc_v2(CuResult (*real)(const char*, void**, int, unsigned long long, int*),
                      const char* sym, void** pfn, int ver, unsigned long long flags,
                      int* status) noexcept {
  CuResult r = real(sym, pfn, ver, flags, status);
  if (r == kCuSuccess && pfn != nullptr && *pfn != nullptr && (status == nullptr || *status == 0)) {
    *pfn = wrap_proc(sym, ver, *pfn);
  }
  return r;
}

// ---- Thunks: one per (hook, slot); each calls the real pointer of its slot. -------------------

#define CA_HOOK_THUNK(name, proc, since, impl, params, args, ...)          \
  template <int K>                                                        \
  CuResult thunk_##name params noexcept {                                 \
    return impl(real_of<CuResult (*)(__VA_ARGS__)>(k##name, K), CA_STRIP args); \
  }
CA_CUDA_DRIVER_HOOKS(CA_HOOK_THUNK)
#undef CA_HOOK_THUNK

void* const kThunks[kNumHooks][kSlots] = {
#define CA_HOOK_THUNKS(name, proc, since, impl, params, args, ...)                      \
  {reinterpret_cast<void*>(&thunk_##name<0>), reinterpret_cast<void*>(&thunk_##name<1>), \
   reinterpret_cast<void*>(&thunk_##name<2>), reinterpret_cast<void*>(&thunk_##name<3>)},
    CA_CUDA_DRIVER_HOOKS(CA_HOOK_THUNKS)
#undef CA_HOOK_THUNKS
};

// ---- Name tables ----------------------------------------------------------------------------

struct HookName {
  const char* exact;  // the export of libcuda.so.1
  const char* proc;   // the base name cuGetProcAddress is asked for ("" for itself)
  int since;          // below it cuGetProcAddress returns an older signature: left alone
};
constexpr HookName kHookNames[kNumHooks] = {
#define CA_HOOK_NAME(name, proc, since, impl, params, args, ...) {#name, proc, since},
    CA_CUDA_DRIVER_HOOKS(CA_HOOK_NAME)
#undef CA_HOOK_NAME
};

// Other exports of libcuda.so.1 with the signature of a hook: unversioned names whose signature
// did not change.
struct Alias {
  const char* name;
  Hook hook;
};
constexpr Alias kDlsymAliases[] = {
    {"cuDevicePrimaryCtxReset", kcuDevicePrimaryCtxReset_v2},
    {"cuDevicePrimaryCtxRelease", kcuDevicePrimaryCtxRelease_v2},
    {"cuCtxDestroy", kcuCtxDestroy_v2},
};

bool same(const char* a, const char* b) noexcept {
  for (; *a != '\0' && *a == *b; ++a, ++b) {
  }
  return *a == *b;
}

int dlsym_hook_of(const char* name) noexcept {
  for (int h = 0; h < kNumHooks; ++h) {
    if (same(kHookNames[h].exact, name)) return h;
  }
  for (const Alias& a : kDlsymAliases) {
    if (same(a.name, name)) return a.hook;
  }
  return -1;
}

void* wrap(int hook, void* real) noexcept {
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

// True when `real` is the driver's own export of the hook's exact name or its per-thread
// variants (Note [cuGetProcAddress versions]).
bool is_known_export(int hook, void* real) noexcept {
  constexpr size_t kLen = 96;
  char names[3][kLen];
  const char* exact = kHookNames[hook].exact;
  const char* const suffixes[3] = {"", "_ptsz", "_ptds"};
  for (int i = 0; i < 3; ++i) {
    size_t n = 0;
    for (const char* c = exact; *c != '\0' && n + 1 < kLen; ++c) names[i][n++] = *c;
    for (const char* c = suffixes[i]; *c != '\0' && n + 1 < kLen; ++c) names[i][n++] = *c;
    names[i][n] = '\0';
  }
  const char* const list[3] = {names[0], names[1], names[2]};
  return cuda_api::object_exports_at(real, list, 3);
}

void* wrap_proc(const char* symbol, int cuda_version, void* real) noexcept {
  if (symbol == nullptr || options().cuda == 0) return real;
  if (same(symbol, "cuGetProcAddress")) {
    int h = cuda_version >= 12000 ? kcuGetProcAddress_v2 : kcuGetProcAddress;
    if (cuda_version > kCheckedCudaVersion && !is_known_export(h, real)) return real;
    return wrap(h, real);
  }
  for (int h = 0; h < kNumHooks; ++h) {
    const HookName& n = kHookNames[h];
    if (n.proc[0] == '\0' || !same(n.proc, symbol)) continue;
    if (cuda_version < n.since) return real;
    if (cuda_version > kCheckedCudaVersion && !is_known_export(h, real)) return real;
    return wrap(h, real);
  }
  return real;
}

void* dlsym_wrapped(void* handle, const char* name) noexcept {
  t_in_dlsym = true;
  void* r = os::real_dlsym()(handle, name);
  int hook = dlsym_hook_of(name);
  if (r != nullptr && hook >= 0 && cuda_api::in_driver_library(r)) r = wrap(hook, r);
  t_in_dlsym = false;
  return r;
}

void* dlsym_unavailable(void*, const char*) noexcept { return nullptr; }

// ---- Exported entry points ------------------------------------------------------------------

// The driver's own entry point behind one of our exports (libcuda.so.1 is loaded: the program
// linked it). nullptr if it is not.
template <typename Fn>
Fn export_real(Hook hook) noexcept {
  void* f = g_export_real[hook].load(std::memory_order_acquire);
  if (f == nullptr) {
    f = cuda_api::driver_export(kHookNames[hook].exact);
    if (f == nullptr) return nullptr;
    g_export_real[hook].store(f, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(f);
}

constexpr CuResult kNoDriver = cuda_api::kCuNotInitialized;

}  // namespace

#define CA_HOOK_EXPORTED(name, proc, since, impl, params, args, ...)       \
  CuResult exported_##name params noexcept {                              \
    auto real = export_real<CuResult (*)(__VA_ARGS__)>(k##name);          \
    return real != nullptr ? impl(real, CA_STRIP args) : kNoDriver;       \
  }
CA_CUDA_DRIVER_HOOKS(CA_HOOK_EXPORTED)
#undef CA_HOOK_EXPORTED

}  // namespace cachealloc::cuda

// Hot: every dlsym of the process comes here (Note [Cold code last] in lib/meson.build).
extern "C" [[gnu::hot]] void* cachealloc_cuda_dlsym_target(void* handle, const char* name) noexcept {
  using namespace cachealloc;
  os::DlsymFn real = os::real_dlsym();
  if (real == nullptr) return reinterpret_cast<void*>(&cuda::dlsym_unavailable);
  // Fast exit for almost every lookup: two character compares.
  if (name == nullptr || name[0] != 'c' || name[1] != 'u' || handle == RTLD_NEXT ||
      cuda::t_in_dlsym || options().cuda == 0 || cuda::dlsym_hook_of(name) < 0) {
    return reinterpret_cast<void*>(real);
  }
  return reinterpret_cast<void*>(&cuda::dlsym_wrapped);
}
