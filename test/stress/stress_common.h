// stress_common.h - shared helpers of the stress programs (run with LD_PRELOAD=libcachealloc.so):
// a fast RNG, a deadline, and the check that the
// preload really took (so running a stress program without it fails instead of testing glibc).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <dlfcn.h>

#include "../support/check.h"    // fail()
#include "../support/pattern.h"  // the fill patterns written and verified

namespace stress {

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  // Mostly small, some medium, a few past the large threshold (256 KiB).
  size_t size() {
    uint64_t k = next() % 100;
    if (k < 70) return 1 + below(512);
    if (k < 92) return 513 + below(32 << 10);
    if (k < 98) return (32 << 10) + below(224 << 10);
    return (256 << 10) + below(3 << 20);
  }
};

using test_support::fail;  // test/support/check.h

// Exits 1 unless libcachealloc is loaded (its C API is found in the global scope).
inline void require_preload(const char* prog) {
  if (dlsym(RTLD_DEFAULT, "ca_version") == nullptr) {
    fprintf(stderr, "%s: libcachealloc is not loaded (run with LD_PRELOAD=libcachealloc.so)\n", prog);
    exit(1);
  }
}

template <class F>
F api(const char* name) {
  void* f = dlsym(RTLD_DEFAULT, name);
  if (f == nullptr) fail("%s not found: is libcachealloc.so preloaded?", name);
  return reinterpret_cast<F>(f);
}

struct Deadline {
  std::chrono::steady_clock::time_point end;
  explicit Deadline(double seconds)
      : end(std::chrono::steady_clock::now() +
            std::chrono::microseconds(static_cast<long long>(seconds * 1e6))) {}
  bool passed() const { return std::chrono::steady_clock::now() >= end; }
};

// Seconds to run, from argv[1] (default d), scaled down by STRESS_SCALE when set.
inline double seconds_arg(int argc, char** argv, double d) {
  double s = argc > 1 ? atof(argv[1]) : d;
  if (const char* e = getenv("STRESS_SCALE")) s *= atof(e);
  return s;
}

}  // namespace stress
