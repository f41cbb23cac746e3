// stub_runtime.cpp - a stand-in CUDA runtime (libcudart_stub.so) for tests without a GPU.
//
// Like the real runtime it implements everything with the driver, which it finds the way the
// real (static or shared) runtime does: dlopen("libcuda.so.1"), dlsym("cuGetProcAddress_v2"),
// then every entry point through cuGetProcAddress. So under libcachealloc.so the driver calls it
// makes go through cachealloc's dlsym and cuGetProcAddress wrappers, which is how the re-entry
// guard (one runtime allocation counted once) gets tested.
// Without a driver (dlopen fails; STUB_CUDA_DRIVER names the path to try) every call returns
// cudaErrorInsufficientDriver, as the real runtime does.
#include <cstdlib>
#include <dlfcn.h>
#include <mutex>

#include "stub_cuda.h"

#define STUB_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using GetProcFn = CUresult (*)(const char*, void**, int, unsigned long long, int*);

struct Driver {
  CUresult (*init)(unsigned);
  CUresult (*primary_retain)(CUcontext*, int);
  CUresult (*primary_reset)(int);
  CUresult (*ctx_set)(CUcontext);
  CUresult (*ctx_get)(CUcontext*);
  CUresult (*ctx_sync)();
  CUresult (*mem_alloc)(CUdeviceptr*, size_t);
  CUresult (*mem_free)(CUdeviceptr);
  CUresult (*mem_alloc_host)(void**, size_t);
  CUresult (*mem_host_alloc)(void**, size_t, unsigned);
  CUresult (*mem_free_host)(void*);
  CUresult (*mem_get_info)(size_t*, size_t*);
  CUresult (*stream_create)(CUstream*, unsigned);
  CUresult (*stream_destroy)(CUstream);
  CUresult (*stream_sync)(CUstream);
  CUresult (*begin_capture)(CUstream, int);
  CUresult (*end_capture)(CUstream, void**);
  CUresult (*ipc_get)(void*, CUdeviceptr);
};

Driver g_d;
cudaError_t g_init_error = cudaSuccess;
CUcontext g_primary = nullptr;
std::once_flag g_once;
thread_local cudaError_t t_last_error = cudaSuccess;

template <typename Fn>
bool fetch(GetProcFn gpa, const char* name, Fn* out) {
  void* p = nullptr;
  int status = 0;
  if (gpa(name, &p, 12080, 0, &status) != CUDA_SUCCESS || p == nullptr) return false;
  *out = reinterpret_cast<Fn>(p);
  return true;
}

void load() {
  const char* path = std::getenv("STUB_CUDA_DRIVER");
  void* h = dlopen(path != nullptr ? path : "libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    g_init_error = cudaErrorInsufficientDriver;
    return;
  }
  auto gpa = reinterpret_cast<GetProcFn>(dlsym(h, "cuGetProcAddress_v2"));
  bool ok = gpa != nullptr && fetch(gpa, "cuInit", &g_d.init) &&
            fetch(gpa, "cuDevicePrimaryCtxRetain", &g_d.primary_retain) &&
            fetch(gpa, "cuDevicePrimaryCtxReset", &g_d.primary_reset) &&
            fetch(gpa, "cuCtxSetCurrent", &g_d.ctx_set) && fetch(gpa, "cuCtxGetCurrent", &g_d.ctx_get) &&
            fetch(gpa, "cuCtxSynchronize", &g_d.ctx_sync) && fetch(gpa, "cuMemAlloc", &g_d.mem_alloc) &&
            fetch(gpa, "cuMemFree", &g_d.mem_free) &&
            fetch(gpa, "cuMemAllocHost", &g_d.mem_alloc_host) &&
            fetch(gpa, "cuMemHostAlloc", &g_d.mem_host_alloc) &&
            fetch(gpa, "cuMemFreeHost", &g_d.mem_free_host) &&
            fetch(gpa, "cuMemGetInfo", &g_d.mem_get_info) &&
            fetch(gpa, "cuStreamCreate", &g_d.stream_create) &&
            fetch(gpa, "cuStreamDestroy", &g_d.stream_destroy) &&
            fetch(gpa, "cuStreamSynchronize", &g_d.stream_sync) &&
            fetch(gpa, "cuStreamBeginCapture", &g_d.begin_capture) &&
            fetch(gpa, "cuStreamEndCapture", &g_d.end_capture) &&
            fetch(gpa, "cuIpcGetMemHandle", &g_d.ipc_get);
  if (!ok || g_d.init(0) != CUDA_SUCCESS || g_d.primary_retain(&g_primary, 0) != CUDA_SUCCESS) {
    g_init_error = cudaErrorInitializationError;
  }
}

// Lazily initialises and makes the primary context current on this thread.
cudaError_t ready() {
  std::call_once(g_once, load);
  if (g_init_error != cudaSuccess) return g_init_error;
  CUcontext cur = nullptr;
  g_d.ctx_get(&cur);
  if (cur == nullptr) g_d.ctx_set(g_primary);
  return cudaSuccess;
}

cudaError_t result(CUresult r) {
  cudaError_t e = r == CUDA_ERROR_NOT_INITIALIZED ? cudaErrorInitializationError : r;
  if (e != cudaSuccess) t_last_error = e;
  return e;
}

#define STUB_READY()                  \
  do {                                \
    cudaError_t e_ = ready();         \
    if (e_ != cudaSuccess) {          \
      t_last_error = e_;              \
      return e_;                      \
    }                                 \
  } while (0)

}  // namespace

STUB_EXPORT cudaError_t cudaMalloc(void** p, size_t n) {
  STUB_READY();
  if (n == 0) {
    *p = nullptr;
    return cudaSuccess;
  }
  return result(g_d.mem_alloc(reinterpret_cast<CUdeviceptr*>(p), n));
}
STUB_EXPORT cudaError_t cudaFree(void* p) {
  STUB_READY();
  return result(g_d.mem_free(reinterpret_cast<CUdeviceptr>(p)));
}
STUB_EXPORT cudaError_t cudaMallocHost(void** p, size_t n) {
  STUB_READY();
  return result(g_d.mem_alloc_host(p, n));
}
STUB_EXPORT cudaError_t cudaHostAlloc(void** p, size_t n, unsigned flags) {
  STUB_READY();
  return result(g_d.mem_host_alloc(p, n, flags));
}
STUB_EXPORT cudaError_t cudaFreeHost(void* p) {
  STUB_READY();
  return result(g_d.mem_free_host(p));
}
STUB_EXPORT cudaError_t cudaMemGetInfo(size_t* f, size_t* t) {
  STUB_READY();
  return result(g_d.mem_get_info(f, t));
}
STUB_EXPORT cudaError_t cudaDeviceReset() {
  STUB_READY();
  return result(g_d.primary_reset(0));
}
STUB_EXPORT cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
STUB_EXPORT cudaError_t cudaGetDeviceCount(int* n) {
  STUB_READY();
  *n = 1;
  return cudaSuccess;
}
STUB_EXPORT cudaError_t cudaDeviceSynchronize() {
  STUB_READY();
  return result(g_d.ctx_sync());
}
STUB_EXPORT cudaError_t cudaGetLastError() {
  cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
STUB_EXPORT cudaError_t cudaPeekAtLastError() { return t_last_error; }
STUB_EXPORT cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  STUB_READY();
  return result(g_d.stream_create(s, flags));
}
STUB_EXPORT cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
STUB_EXPORT cudaError_t cudaStreamDestroy(cudaStream_t s) {
  STUB_READY();
  return result(g_d.stream_destroy(s));
}
STUB_EXPORT cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  STUB_READY();
  return result(g_d.stream_sync(s));
}
STUB_EXPORT cudaError_t cudaStreamBeginCapture(cudaStream_t s, int mode) {
  STUB_READY();
  return result(g_d.begin_capture(s, mode));
}
STUB_EXPORT cudaError_t cudaStreamEndCapture(cudaStream_t s, void** graph) {
  STUB_READY();
  return result(g_d.end_capture(s, graph));
}
STUB_EXPORT cudaError_t cudaIpcGetMemHandle(void* handle, void* p) {
  STUB_READY();
  return result(g_d.ipc_get(handle, reinterpret_cast<CUdeviceptr>(p)));
}
