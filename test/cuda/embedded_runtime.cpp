// embedded_runtime.cpp - a library with its own copy of the CUDA runtime, as nvcc builds a shared
// library with the static runtime and no --exclude-libs: the stub runtime is compiled in and its
// cudaMalloc & co. are exported by this library (test/cuda/meson.build). A program loads it with
// dlopen(RTLD_LOCAL), so no runtime is in the global scope (Note [Runtime per caller]).
#include "stub_cuda.h"

extern "C" __attribute__((visibility("default"))) int embedded_cycle(int n, void** last) {
  int errors = 0;
  for (int i = 0; i < n; ++i) {
    void* p = nullptr;
    if (cudaMalloc(&p, 4096) != cudaSuccess) ++errors;
    if (i + 1 == n) {
      *last = p;  // kept: the caller frees it through its own runtime's name
    } else if (cudaFree(p) != cudaSuccess) {
      ++errors;
    }
  }
  return errors;
}

extern "C" __attribute__((visibility("default"))) int embedded_free(void* p) {
  return cudaFree(p);
}
