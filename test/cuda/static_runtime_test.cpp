// static_runtime_test.cpp - the driver path a statically linked CUDA runtime takes.
//
// nvcc links libcudart_static by default: such a program exports no cudaMalloc for cachealloc to
// interpose. Its runtime dlopens libcuda.so.1, finds cuGetProcAddress with dlsym and fetches every
// driver entry point through it. This program does exactly that against the stub libcuda.so.1,
// linking nothing CUDA, and checks that the pointers it gets are cachealloc's wrappers and that
// allocation through them is cached. With argv[1] == "disabled" (CACHEALLOC_CUDA=0) it checks
// that nothing is wrapped.
#include <cstring>
#include <string>

#include "cuda_test_util.h"

namespace {

using GetProcV2 = CUresult (*)(const char*, void**, int, unsigned long long, int*);
using GetProcV1 = CUresult (*)(const char*, void**, int, unsigned long long);

bool in_object(const void* f, const char* name_part) {
  Dl_info info;
  return dladdr(f, &info) != 0 && info.dli_fname != nullptr &&
         std::strstr(info.dli_fname, name_part) != nullptr;
}

template <typename Fn>
Fn proc(GetProcV2 gpa, const char* name, int version = 12080) {
  void* p = nullptr;
  int status = -1;
  CHECK_EQ(gpa(name, &p, version, 0, &status), CUDA_SUCCESS);
  CHECK_EQ(status, 0);
  CHECK(p != nullptr);
  return reinterpret_cast<Fn>(p);
}

}  // namespace

int main(int argc, char** argv) {
  const bool disabled = argc > 1 && std::string(argv[1]) == "disabled";
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  CHECK(h != nullptr);
  auto gpa = reinterpret_cast<GetProcV2>(dlsym(h, "cuGetProcAddress_v2"));
  CHECK(gpa != nullptr);
  CHECK(in_object(reinterpret_cast<void*>(gpa), disabled ? "libcuda.so" : "libcachealloc"));
  // Names we do not wrap come back untouched.
  void* init_sym = dlsym(h, "cuInit");
  CHECK(init_sym != nullptr && in_object(init_sym, "libcuda.so"));
  CHECK(dlsym(h, "cuNoSuchFunction") == nullptr);
  CHECK(dlerror() != nullptr);  // dlerror still reports the failed lookup

  auto cu_init = proc<CUresult (*)(unsigned)>(gpa, "cuInit");
  auto retain = proc<CUresult (*)(CUcontext*, int)>(gpa, "cuDevicePrimaryCtxRetain");
  auto set_current = proc<CUresult (*)(CUcontext)>(gpa, "cuCtxSetCurrent");
  auto mem_alloc = proc<CUresult (*)(CUdeviceptr*, size_t)>(gpa, "cuMemAlloc");
  auto mem_free = proc<CUresult (*)(CUdeviceptr)>(gpa, "cuMemFree");
  auto alloc_host = proc<CUresult (*)(void**, size_t)>(gpa, "cuMemAllocHost");
  auto free_host = proc<CUresult (*)(void*)>(gpa, "cuMemFreeHost");
  auto get_info = proc<CUresult (*)(size_t*, size_t*)>(gpa, "cuMemGetInfo");
  auto reset = proc<CUresult (*)(int)>(gpa, "cuDevicePrimaryCtxReset");
  CHECK(in_object(reinterpret_cast<void*>(reset), disabled ? "libcuda.so" : "libcachealloc"));
  auto ctx_create = proc<CUresult (*)(CUcontext*, unsigned, int)>(gpa, "cuCtxCreate");
  auto ctx_destroy = proc<CUresult (*)(CUcontext)>(gpa, "cuCtxDestroy");
  CHECK(in_object(reinterpret_cast<void*>(ctx_destroy), disabled ? "libcuda.so" : "libcachealloc"));
  CHECK(in_object(reinterpret_cast<void*>(mem_alloc), disabled ? "libcuda.so" : "libcachealloc"));
  CHECK(in_object(reinterpret_cast<void*>(cu_init), "libcuda.so"));
  // An old ABI version of cuMemAlloc (before _v2) is never wrapped.
  void* old = nullptr;
  CHECK_EQ(gpa("cuMemAlloc", &old, 3000, 0, nullptr), CUDA_SUCCESS);
  CHECK(in_object(old, "libcuda.so"));
  // cuGetProcAddress fetched through itself is wrapped too (the runtime does this).
  auto gpa2 = proc<GetProcV2>(gpa, "cuGetProcAddress");
  CHECK(in_object(reinterpret_cast<void*>(gpa2), disabled ? "libcuda.so" : "libcachealloc"));
  auto gpa1 = reinterpret_cast<GetProcV1>(dlsym(h, "cuGetProcAddress"));
  void* via_v1 = nullptr;
  CHECK_EQ(gpa1("cuMemFree", &via_v1, 12080, 0), CUDA_SUCCESS);
  CHECK(via_v1 == reinterpret_cast<void*>(mem_free));

  CUcontext ctx = nullptr;
  CHECK_EQ(cu_init(0), CUDA_SUCCESS);
  CHECK_EQ(retain(&ctx, 0), CUDA_SUCCESS);
  CHECK_EQ(set_current(ctx), CUDA_SUCCESS);

  CUdeviceptr first = 0;
  for (int i = 0; i < 100; ++i) {
    CUdeviceptr p = 0;
    CHECK_EQ(mem_alloc(&p, 3000), CUDA_SUCCESS);
    if (i == 0) first = p;
    if (!disabled) CHECK(p == first);
    CHECK_EQ(mem_free(p), CUDA_SUCCESS);
  }
  void* hp = nullptr;
  CHECK_EQ(alloc_host(&hp, 64), CUDA_SUCCESS);
  CHECK_EQ(free_host(hp), CUDA_SUCCESS);
  size_t f = 0, t = 0;
  CHECK_EQ(get_info(&f, &t), CUDA_SUCCESS);
  stubcu_counters c = stub_counters();
  if (disabled) {
    CHECK_EQ(c.device_allocs, 100u);
    CHECK_EQ(mem_free(first), CUDA_ERROR_INVALID_VALUE);
    return 0;
  }
  CHECK_EQ(c.device_allocs, 1u);
  CHECK_EQ(c.device_frees, 0u);
  CHECK_EQ(f, t);  // the cached block counts as free
  ca_cuda_stats s = ca_stats();
  CHECK_EQ(s.hits, 99u);
  CHECK_EQ(s.misses, 1u);
  CHECK_EQ(mem_free(first), CUDA_ERROR_INVALID_VALUE);  // double free: an error, not a crash
  CHECK(ca_clear(-1) > 0);
  CHECK_EQ(stub_counters().device_frees, 1u);

  // cudaDeviceReset in a static runtime resets the primary context through the driver, which
  // frees every block: the cached one must be forgotten, not handed out again.
  CUdeviceptr q = 0;
  CHECK_EQ(mem_alloc(&q, 3000), CUDA_SUCCESS);
  CHECK_EQ(mem_free(q), CUDA_SUCCESS);
  CHECK_EQ(ca_stats().cached, 3072u);
  CHECK_EQ(reset(0), CUDA_SUCCESS);
  CHECK_EQ(ca_stats().cached, 0u);
  CUdeviceptr r = 0;
  CHECK_EQ(mem_alloc(&r, 3000), CUDA_SUCCESS);
  CHECK_EQ(stub_counters().device_allocs, 3u);  // a real allocation, not the forgotten block
  CHECK_EQ(mem_free(r), CUDA_SUCCESS);

  // The same for a destroyed context, whose handle the next created context reuses (as real
  // handles can be).
  CUcontext c2 = nullptr;
  CHECK_EQ(ctx_create(&c2, 0, 0), CUDA_SUCCESS);
  CHECK_EQ(mem_alloc(&q, 3000), CUDA_SUCCESS);
  CHECK(q == r);  // the cached block
  CHECK_EQ(mem_free(q), CUDA_SUCCESS);
  CHECK_EQ(ca_stats().cached, 3072u);
  CHECK_EQ(ctx_destroy(c2), CUDA_SUCCESS);
  CHECK_EQ(ca_stats().cached, 0u);
  CUcontext c3 = nullptr;
  CHECK_EQ(ctx_create(&c3, 0, 0), CUDA_SUCCESS);
  CHECK(c3 == c2);
  CHECK_EQ(mem_alloc(&r, 3000), CUDA_SUCCESS);
  CHECK_EQ(stub_counters().device_allocs, 4u);  // a real allocation again
  CHECK_EQ(mem_free(r), CUDA_SUCCESS);
  return 0;
}
