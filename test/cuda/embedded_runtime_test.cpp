// embedded_runtime_test.cpp - a library with its own runtime (nvcc's static runtime, exported)
// loaded RTLD_LOCAL by a program that has none in its global scope (Note [Runtime per caller]).
// Its cudaMalloc calls reach cachealloc's export; the runtime must be the library's own (before
// the fix every call returned cudaErrorInitializationError: RTLD_NEXT finds nothing), and each
// block goes back through the runtime that allocated it.
#include <dlfcn.h>

#include "cuda_test_util.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  CHECK(h != nullptr);
  auto cycle = reinterpret_cast<int (*)(int, void**)>(dlsym(h, "embedded_cycle"));
  auto efree = reinterpret_cast<int (*)(void*)>(dlsym(h, "embedded_free"));
  CHECK(cycle != nullptr && efree != nullptr);
  void* last = nullptr;
  CHECK_EQ(cycle(50, &last), 0);
  CHECK(last != nullptr);
  ca_cuda_stats s = ca_stats();
  CHECK(s.hits >= 48);  // cached, through the library's own runtime
  CHECK_EQ(ca_owns(last), 1);
  CHECK_EQ(efree(last), cudaSuccess);
  // Everything cached goes back, each block to its own runtime: no error, nothing left.
  ca_clear(-1);
  CHECK_EQ(ca_stats().cached, 0u);
  CHECK_EQ(ca_stats().reserved, 0u);
  return 0;
}
