// cuda_api.cpp - lazy binding of the CUDA runtime and driver (cuda_api.h).
//
// SYNCHRONIZATION: tables are bound with no lock held (dlopen/dlsym/dladdr take glibc's loader
// lock, whose holder may be a library constructor calling cudaMalloc), then published under
// g_bind_lock (g_callers_lock for the per-caller table) with a release store, first one wins;
// readers use an acquire load, so they never see a half-filled table.
#include "platform/cuda_api.h"

#include <atomic>
#include <dlfcn.h>
#include <link.h>

#include "platform/os.h"
#include "platform/spin_lock.h"

namespace cachealloc::cuda_api {
namespace {

constinit SpinLock g_bind_lock;
constinit Runtime g_runtime{};
constinit Driver g_driver{};
constinit std::atomic<const Runtime*> g_runtime_ptr{nullptr};
constinit std::atomic<const Driver*> g_driver_ptr{nullptr};

thread_local int t_runtime_depth = 0;

bool starts_with(const char* s, const char* prefix) noexcept {
  for (; *prefix != '\0'; ++s, ++prefix) {
    if (*s != *prefix) return false;
  }
  return true;
}

const char* base_name(const char* path) noexcept {
  const char* b = path;
  for (const char* p = path; *p != '\0'; ++p) {
    if (*p == '/') b = p + 1;
  }
  return b;
}

template <typename Fn>
bool bind(void* handle, const char* name, Fn* out) noexcept {
  void* f = os::real_dlsym()(handle, name);
  *out = reinterpret_cast<Fn>(f);
  return f != nullptr;
}

// dl_iterate_phdr callback: the path of the first loaded object named libcudart*.
int find_cudart(dl_phdr_info* info, size_t, void* out) noexcept {
  if (info->dlpi_name != nullptr && starts_with(base_name(info->dlpi_name), "libcudart")) {
    *static_cast<const char**>(out) = info->dlpi_name;
    return 1;
  }
  return 0;
}

void* runtime_handle() noexcept {
  const char* path = nullptr;
  void* f = os::real_dlsym()(RTLD_NEXT, "cudaMalloc");
  Dl_info info;
  if (f != nullptr && dladdr(f, &info) != 0 && info.dli_fname != nullptr) {
    path = info.dli_fname;
  } else {
    // A runtime loaded with RTLD_LOCAL (e.g. by an interpreter) is not in the global scope.
    dl_iterate_phdr(&find_cudart, &path);
  }
  if (path == nullptr) return nullptr;
  return dlopen(path, RTLD_NOLOAD | RTLD_LAZY);
}

// Binds every runtime function from `h` (a dlopen handle or RTLD_NEXT). False if one is missing.
bool bind_runtime(void* h, Runtime* t) noexcept {
  bool ok = bind(h, "cudaMalloc", &t->malloc) && bind(h, "cudaFree", &t->free) &&
            bind(h, "cudaMallocHost", &t->malloc_host) &&
            bind(h, "cudaHostAlloc", &t->host_alloc) && bind(h, "cudaFreeHost", &t->free_host) &&
            bind(h, "cudaMemGetInfo", &t->mem_get_info) &&
            bind(h, "cudaDeviceReset", &t->device_reset) &&
            bind(h, "cudaGetDevice", &t->get_device) &&
            bind(h, "cudaGetLastError", &t->get_last_error) &&
            bind(h, "cudaPeekAtLastError", &t->peek_at_last_error);
  if (ok) bind(h, "cudaDeviceSynchronize", &t->device_synchronize);  // optional
  return ok;
}

// Runtimes found per calling object (Note [Runtime per caller]); slot 0 is unused (runtime()).
// An entry is written once, under g_callers_lock, before g_num_callers publishes it. The object
// stays referenced (the dlopen handle is kept), so its address range never changes meaning.
struct CallerRuntime {
  uintptr_t lo, hi;  // the object's loaded segments
  Runtime table;
  bool own;          // the object resolves cudaMalloc to a runtime of its own
};
constinit CallerRuntime g_callers[kMaxRuntimes] = {};
constinit std::atomic<uint8_t> g_num_callers{1};
constinit SpinLock g_callers_lock;

const void* self_base() noexcept {
  Dl_info info;
  if (dladdr(reinterpret_cast<const void*>(&self_base), &info) == 0) return nullptr;
  return info.dli_fbase;
}

// Pre: entries [1, n) published. The entry whose object holds addr, or 0.
uint8_t lookup(uintptr_t addr, uint8_t n) noexcept {
  for (uint8_t i = 1; i < n; ++i) {
    if (addr >= g_callers[i].lo && addr < g_callers[i].hi) return i;
  }
  return 0;
}

}  // namespace

const Runtime* runtime_at(uint8_t index) noexcept {
  if (index == 0 || index >= g_num_callers.load(std::memory_order_acquire)) return runtime();
  return g_callers[index].own ? &g_callers[index].table : runtime();
}

const Runtime* runtime_for(const void* caller, uint8_t* index) noexcept {
  *index = 0;
  auto addr = reinterpret_cast<uintptr_t>(caller);
  uint8_t i = lookup(addr, g_num_callers.load(std::memory_order_acquire));
  if (i == 0) {
    // The loader queries run with no lock of ours held: they take glibc's loader lock, whose
    // holder (a library constructor inside dlopen) may itself be calling cudaMalloc.
    Dl_info info;
    CallerRuntime found{};
    if (caller == nullptr || dladdr(caller, &info) == 0 ||
        !os::object_range(caller, &found.lo, &found.hi)) {
      return runtime();  // an unknown caller
    }
    // Without cachealloc the call would bind to the first cudaMalloc of the global scope after
    // us (RTLD_NEXT: runtime()), and only failing that to one in the object's own local scope.
    const char* name = info.dli_fname;
    void* h = os::real_dlsym()(RTLD_NEXT, "cudaMalloc") != nullptr
                  ? nullptr
                  : dlopen(name != nullptr && name[0] != '\0' ? name : nullptr,
                           RTLD_NOLOAD | RTLD_LAZY);
    if (h != nullptr) {
      void* f = os::real_dlsym()(h, "cudaMalloc");
      Dl_info fi;
      if (f != nullptr && dladdr(f, &fi) != 0 && fi.dli_fbase != self_base()) {
        found.own = bind_runtime(h, &found.table);
      }
    }
    LockGuard guard(g_callers_lock);
    uint8_t n = g_num_callers.load(std::memory_order_relaxed);
    i = lookup(addr, n);  // another thread may have added it meanwhile
    if (i == 0) {
      if (n == kMaxRuntimes) return runtime();  // more objects than slots: the global one
      g_callers[n] = found;
      i = n;
      g_num_callers.store(static_cast<uint8_t>(n + 1), std::memory_order_release);
    }
  }
  if (!g_callers[i].own) {
    // A tail call leaves the caller's caller as the return address (`return cudaFree(p);` in a
    // wrapper). With no global runtime, the first object's own runtime is the best guess.
    if (const Runtime* r = runtime()) return r;
    uint8_t n = g_num_callers.load(std::memory_order_acquire);
    for (uint8_t k = 1; k < n; ++k) {
      if (g_callers[k].own) {
        *index = k;
        return &g_callers[k].table;
      }
    }
    return nullptr;
  }
  *index = i;
  return &g_callers[i].table;
}

const Runtime* runtime() noexcept {
  const Runtime* r = g_runtime_ptr.load(std::memory_order_acquire);
  if (r != nullptr) return r;
  // Bound with no lock held (the loader's lock may be held by a thread that waits for ours);
  // the first complete table wins.
  void* h = runtime_handle();
  if (h == nullptr) return nullptr;
  Runtime t{};
  if (!bind_runtime(h, &t)) return nullptr;
  LockGuard guard(g_bind_lock);
  r = g_runtime_ptr.load(std::memory_order_relaxed);
  if (r != nullptr) return r;
  g_runtime = t;
  g_runtime_ptr.store(&g_runtime, std::memory_order_release);
  return &g_runtime;
}

const Driver* driver() noexcept {
  const Driver* d = g_driver_ptr.load(std::memory_order_acquire);
  if (d != nullptr) return d;
  void* h = dlopen("libcuda.so.1", RTLD_NOLOAD | RTLD_LAZY);  // never loads a driver
  if (h == nullptr) return nullptr;
  Driver t{};
  bool ok = bind(h, "cuMemAlloc_v2", &t.mem_alloc) && bind(h, "cuMemFree_v2", &t.mem_free) &&
            bind(h, "cuMemAllocHost_v2", &t.mem_alloc_host) &&
            bind(h, "cuMemHostAlloc", &t.mem_host_alloc) &&
            bind(h, "cuMemFreeHost", &t.mem_free_host) &&
            bind(h, "cuMemGetInfo_v2", &t.mem_get_info) &&
            bind(h, "cuCtxGetCurrent", &t.ctx_get_current) &&
            bind(h, "cuCtxPushCurrent_v2", &t.ctx_push_current) &&
            bind(h, "cuCtxPopCurrent_v2", &t.ctx_pop_current) &&
            bind(h, "cuCtxGetDevice", &t.ctx_get_device) &&
            bind(h, "cuCtxSynchronize", &t.ctx_synchronize) &&
            bind(h, "cuDeviceTotalMem_v2", &t.device_total_mem) &&
            bind(h, "cuEventCreate", &t.event_create) &&
            bind(h, "cuEventQuery", &t.event_query) &&
            bind(h, "cuEventDestroy_v2", &t.event_destroy) &&
            bind(h, "cuDevicePrimaryCtxRetain", &t.primary_ctx_retain) &&
            bind(h, "cuDevicePrimaryCtxRelease_v2", &t.primary_ctx_release) &&
            bind(h, "cuDevicePrimaryCtxGetState", &t.primary_ctx_get_state);
  if (!ok) return nullptr;
  bind(h, "cuCtxRecordEvent", &t.ctx_record_event);  // optional
  bind(h, "cuMemsetD8_v2", &t.memset_d8);            // optional
  bind(h, "cuStreamIsCapturing", &t.stream_is_capturing);  // optional
  LockGuard guard(g_bind_lock);  // bound with no lock held, as runtime()
  d = g_driver_ptr.load(std::memory_order_relaxed);
  if (d != nullptr) return d;
  g_driver = t;
  g_driver_ptr.store(&g_driver, std::memory_order_release);
  return &g_driver;
}

bool in_driver_library(const void* addr) noexcept {
  Dl_info info;
  if (addr == nullptr || dladdr(addr, &info) == 0 || info.dli_fname == nullptr) return false;
  return starts_with(base_name(info.dli_fname), "libcuda.so");
}

void* driver_export(const char* name) noexcept {
  void* h = dlopen("libcuda.so.1", RTLD_NOLOAD | RTLD_LAZY);
  if (h == nullptr) return nullptr;
  return os::real_dlsym()(h, name);
}

bool object_exports_at(const void* addr, const char* const* names, size_t n) noexcept {
  Dl_info info;
  if (dladdr(addr, &info) == 0 || info.dli_fname == nullptr) return false;
  void* h = dlopen(info.dli_fname, RTLD_NOLOAD | RTLD_LAZY);
  if (h == nullptr) return false;
  bool found = false;
  for (size_t i = 0; i < n; ++i) {
    if (os::real_dlsym()(h, names[i]) == addr) found = true;
  }
  dlclose(h);
  return found;
}

bool in_runtime_call() noexcept { return t_runtime_depth > 0; }
RuntimeCallScope::RuntimeCallScope() noexcept { ++t_runtime_depth; }
RuntimeCallScope::~RuntimeCallScope() { --t_runtime_depth; }

}  // namespace cachealloc::cuda_api
