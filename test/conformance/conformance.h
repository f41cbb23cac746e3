// conformance.h - what every conformance check sees: the ca_ API of the front under test, and
// small helpers that keep the compiler from folding allocations away.
//
// The suite is written once (front_checks.cpp, malloc_checks.cpp, capi_checks.cpp,
// new_delete_checks.cpp) and linked into one program per front:
//   conformance_linked     links libcachealloc.so (-lcachealloc); ca_ calls bind at link time.
//   conformance_preloaded  does not link it; runs under LD_PRELOAD and finds ca_ with dlsym.
// Each program defines ca() (front_linked.cpp / front_preloaded.cpp). operator new/delete are
// checked in both, as their own front (see allocator_fronts.h).
#pragma once

#include <cachealloc.h>

#include <cstddef>
#include <cstdint>

#include "../support/pattern.h"  // the fill pattern written into blocks and checked

namespace conformance {

// The public C API as a table of pointers, so the same checks run whether the symbols were bound
// by the linker or looked up in the preloaded library.
struct CaApi {
  int (*retain)(void*);
  int (*release)(void*);
  size_t (*refcount)(const void*);
  int (*adopt)(void*, size_t, size_t, ca_upstream_free_fn, void*);
  size_t (*clear)();
  size_t (*cached_bytes)();
  size_t (*cache_limit)();
  void (*set_cache_limit)(size_t);
  int (*owns)(const void*);
  void (*get_totals)(ca_totals*);
  const char* (*version)();
};

// Defined once per program.
const CaApi& ca();
const char* front_name();
// Runs the Catch2 session (catch_impl.cpp); each front's main() ends with it.
int run_catch(int argc, char** argv);

// Hides a value from the optimiser: the compiler can neither fold a size nor drop an allocation.
template <class T>
inline T opaque(T v) {
  asm volatile("" : "+r"(v));
  return v;
}
inline void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

inline bool aligned_to(const void* p, size_t alignment) {
  return (reinterpret_cast<uintptr_t>(p) & (alignment - 1)) == 0;
}

// True when n bytes at p are all zero.
bool all_zero(const void* p, size_t n);

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;
// Requests above this take the large-object path by default (CACHEALLOC_LARGE_THRESHOLD).
constexpr size_t kLargeThreshold = 256 * kKiB;

}  // namespace conformance
