// stress_common.h - shared helpers of the stress programs (run with LD_PRELOAD=libcachealloc.so):
// a fast RNG, fill patterns that are written and verified, a deadline, and the check that the
// preload really took (so running a stress program without it fails instead of testing glibc).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <dlfcn.h>

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

// The pattern of a block depends on its tag and size, so a block handed out twice, or copied
// short by realloc, shows up.
inline unsigned char pat(uint64_t tag, size_t i) {
  return static_cast<unsigned char>((tag * 0x45d9f3b) ^ (i * 251) ^ (i >> 9));
}
// Blocks up to 4 KiB are filled completely; bigger ones at the ends and every 4 KiB page.
inline void fill(void* p, size_t n, uint64_t tag) {
  auto* b = static_cast<unsigned char*>(p);
  if (n <= 4096) {
    for (size_t i = 0; i < n; ++i) b[i] = pat(tag, i);
    return;
  }
  for (size_t i = 0; i < 256; ++i) b[i] = pat(tag, i), b[n - 1 - i] = pat(tag, n - 1 - i);
  for (size_t i = 256; i < n - 256; i += 4096) b[i] = pat(tag, i);
}
inline bool verify(const void* p, size_t n, uint64_t tag) {
  auto* b = static_cast<const unsigned char*>(p);
  if (n <= 4096) {
    for (size_t i = 0; i < n; ++i) {
      if (b[i] != pat(tag, i)) return false;
    }
    return true;
  }
  for (size_t i = 0; i < 256; ++i) {
    if (b[i] != pat(tag, i) || b[n - 1 - i] != pat(tag, n - 1 - i)) return false;
  }
  for (size_t i = 256; i < n - 256; i += 4096) {
    if (b[i] != pat(tag, i)) return false;
  }
  return true;
}
// Prefix of the pattern of (tag, old size) that must survive a realloc to `keep` bytes.
inline bool verify_prefix(const void* p, size_t old_n, size_t keep, uint64_t tag) {
  auto* b = static_cast<const unsigned char*>(p);
  if (old_n <= 4096) {
    for (size_t i = 0; i < keep; ++i) {
      if (b[i] != pat(tag, i)) return false;
    }
    return true;
  }
  for (size_t i = 0; i < 256 && i < keep; ++i) {
    if (b[i] != pat(tag, i)) return false;
  }
  for (size_t i = 256; i < old_n - 256 && i < keep; i += 4096) {
    if (b[i] != pat(tag, i)) return false;
  }
  for (size_t i = old_n - 256; i < old_n && i < keep; ++i) {
    if (b[i] != pat(tag, i)) return false;
  }
  return true;
}

[[noreturn]] inline void die(const char* what) {
  fprintf(stderr, "STRESS FAILURE: %s\n", what);
  fflush(stderr);
  abort();
}

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
  if (f == nullptr) die(name);
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
