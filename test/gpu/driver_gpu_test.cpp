// driver_gpu_test.cpp - cachealloc on a real GPU through the driver API (suite 'gpu').
//
// Plain C++: finds the real libcuda.so.1 the way a statically linked runtime does (dlopen, then
// cuGetProcAddress), so it builds without the CUDA toolkit. Exits 77 (skipped) when there is no
// driver or no device. Under LD_PRELOAD=libcachealloc.so it checks that a fixed-size
// alloc/free loop is served from the cache, that a double free is an error and not a crash, and
// prints the time per alloc/free pair.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>

namespace {
using CUresult = int;
using CUdeviceptr = unsigned long long;
using CUcontext = void*;
using GetProc = CUresult (*)(const char*, void**, int, unsigned long long, int*);

template <typename Fn>
Fn proc(GetProc gpa, const char* name) {
  void* p = nullptr;
  int status = 0;
  if (gpa(name, &p, 12000, 0, &status) != 0 || p == nullptr) {
    std::fprintf(stderr, "cuGetProcAddress(%s) failed\n", name);
    std::exit(1);
  }
  return reinterpret_cast<Fn>(p);
}
}  // namespace

int main() {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    std::puts("no CUDA driver: skipped");
    return 77;
  }
  auto gpa = reinterpret_cast<GetProc>(dlsym(h, "cuGetProcAddress_v2"));
  if (gpa == nullptr) return 77;
  auto cu_init = proc<CUresult (*)(unsigned)>(gpa, "cuInit");
  auto count = proc<CUresult (*)(int*)>(gpa, "cuDeviceGetCount");
  int n = 0;
  if (cu_init(0) != 0 || count(&n) != 0 || n == 0) {
    std::puts("no CUDA device: skipped");
    return 77;
  }
  auto retain = proc<CUresult (*)(CUcontext*, int)>(gpa, "cuDevicePrimaryCtxRetain");
  auto set_current = proc<CUresult (*)(CUcontext)>(gpa, "cuCtxSetCurrent");
  auto mem_alloc = proc<CUresult (*)(CUdeviceptr*, size_t)>(gpa, "cuMemAlloc");
  auto mem_free = proc<CUresult (*)(CUdeviceptr)>(gpa, "cuMemFree");
  CUcontext ctx = nullptr;
  if (retain(&ctx, 0) != 0 || set_current(ctx) != 0) return 1;

  const int kIters = 10000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kIters; ++i) {
    CUdeviceptr p = 0;
    if (mem_alloc(&p, 1 << 20) != 0) return 1;
    if (mem_free(p) != 0) return 1;
  }
  double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  std::printf("1 MiB cuMemAlloc+cuMemFree: %.0f ns per pair\n", ns / kIters);

  using Stats = int (*)(int, int, unsigned long long*);
  auto stats = reinterpret_cast<Stats>(dlsym(RTLD_DEFAULT, "ca_cuda_get_stats"));
  if (stats != nullptr) {
    unsigned long long s[9] = {};
    stats(-1, 0, s);
    std::printf("hits %llu misses %llu syncs %llu\n", s[3], s[4], s[5]);
    if (s[3] < kIters - 10) return 1;  // the loop must be served from the cache
    CUdeviceptr p = 0;
    if (mem_alloc(&p, 4096) != 0 || mem_free(p) != 0) return 1;
    if (mem_free(p) != 1) return 1;  // CUDA_ERROR_INVALID_VALUE, not a crash
  }
  return 0;
}
