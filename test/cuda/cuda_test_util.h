// cuda_test_util.h - checks and access to cachealloc's and the stub's controls for CUDA tests.
//
// Test programs run under LD_PRELOAD=libcachealloc.so and do not link it, so its C API is looked
// up with dlsym(RTLD_DEFAULT); the stub driver's controls come from the already loaded
// libcuda.so.1 (RTLD_NOLOAD).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>

#include "cachealloc/cuda.h"
#include "stub_cuda.h"

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                          \
    }                                                                        \
  } while (0)
#define CHECK_EQ(a, b)                                                                        \
  do {                                                                                        \
    auto va_ = (a);                                                                           \
    auto vb_ = (b);                                                                           \
    if (!(va_ == vb_)) {                                                                      \
      std::fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%llu vs %llu)\n", __FILE__,     \
                   __LINE__, #a, #b, (unsigned long long)va_, (unsigned long long)vb_);        \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)

template <typename Fn>
Fn cachealloc_fn(const char* name) {
  void* f = dlsym(RTLD_DEFAULT, name);
  if (f == nullptr) {
    std::fprintf(stderr, "%s not found: run this test with LD_PRELOAD=libcachealloc.so\n", name);
    std::exit(1);
  }
  return reinterpret_cast<Fn>(f);
}

inline ca_cuda_stats ca_stats(bool pinned = false) {
  ca_cuda_stats s{};
  cachealloc_fn<int (*)(int, int, ca_cuda_stats*)>("ca_cuda_get_stats")(-1, pinned ? 1 : 0, &s);
  return s;
}
inline int ca_owns(const void* p) { return cachealloc_fn<int (*)(const void*)>("ca_cuda_owns")(p); }
inline int ca_retain(void* p) { return cachealloc_fn<int (*)(void*)>("ca_cuda_retain")(p); }
inline int ca_release(void* p) { return cachealloc_fn<int (*)(void*)>("ca_cuda_release")(p); }
inline size_t ca_clear(int dev) { return cachealloc_fn<size_t (*)(int)>("ca_cuda_clear")(dev); }

template <typename Fn>
Fn stub_fn(const char* name) {
  void* h = dlopen("libcuda.so.1", RTLD_NOLOAD | RTLD_LAZY);
  void* f = h != nullptr ? dlsym(h, name) : nullptr;
  if (f == nullptr) {
    std::fprintf(stderr, "stub driver control %s not found\n", name);
    std::exit(1);
  }
  return reinterpret_cast<Fn>(f);
}
inline stubcu_counters stub_counters() {
  stubcu_counters c{};
  stub_fn<void (*)(stubcu_counters*)>("stubcu_get_counters")(&c);
  return c;
}
inline void stub_launch(CUstream s, void* dst, int value, size_t n) {
  stub_fn<void (*)(CUstream, void*, int, size_t)>("stubcu_launch")(s, dst, value, n);
}
inline void stub_complete(CUstream s) { stub_fn<void (*)(CUstream)>("stubcu_complete")(s); }
inline void stub_fail_allocs(int n) { stub_fn<void (*)(int)>("stubcu_fail_allocs")(n); }
inline void* stub_raw_alloc(size_t n) { return stub_fn<void* (*)(size_t)>("stubcu_raw_alloc")(n); }

// A runtime allocation that must succeed (programs linked with the stub runtime).
inline void* dmalloc(size_t n) {
  void* p = nullptr;
  CHECK_EQ(cudaMalloc(&p, n), cudaSuccess);
  CHECK(p != nullptr);
  return p;
}

inline bool all_bytes(const void* p, int value, size_t n) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != static_cast<unsigned char>(value)) return false;
  }
  return true;
}
