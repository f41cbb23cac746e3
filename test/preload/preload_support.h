// preload_support.h - what every preload test program shares. These programs do not link
// cachealloc; meson runs them with LD_PRELOAD=libcachealloc.so. Each one first proves that the
// preload took (require_cachealloc), so a missing or wrong preload fails instead of silently
// testing glibc. Failures print one line naming the check and exit 1.
#pragma once

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cstdint>

namespace preload_test {

[[noreturn, gnu::format(printf, 1, 2)]] inline void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  fflush(stderr);
  _exit(1);
}

#define PRELOAD_EXPECT(cond)                                                     \
  do {                                                                           \
    if (!(cond)) ::preload_test::fail("%s:%d: %s", __FILE__, __LINE__, #cond); \
  } while (0)

using OwnsFn = int (*)(const void*);

// ca_owns from the preloaded library, or nullptr when cachealloc is not loaded.
inline OwnsFn find_ca_owns() {
  return reinterpret_cast<OwnsFn>(dlsym(RTLD_DEFAULT, "ca_owns"));
}

// Exits 1 unless malloc is served by a preloaded cachealloc.
inline OwnsFn require_cachealloc(const char* program) {
  OwnsFn owns = find_ca_owns();
  if (owns == nullptr) fail("%s: ca_owns not found; is libcachealloc.so preloaded?", program);
  void* p = malloc(10);
  if (owns(p) != 1) fail("%s: malloc(10) is not a cachealloc block", program);
  free(p);
  return owns;
}

// Resident set size in bytes, from /proc/self/statm.
inline size_t rss_bytes() {
  FILE* f = fopen("/proc/self/statm", "r");
  if (f == nullptr) fail("cannot open /proc/self/statm");
  unsigned long size = 0, resident = 0;
  if (fscanf(f, "%lu %lu", &size, &resident) != 2) fail("cannot parse /proc/self/statm");
  fclose(f);
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Fills and checks a block with a pattern derived from a tag, so a block that was handed to two
// owners, or corrupted by a stale free, is caught. Checks every byte of small blocks, and a
// stride through big ones to keep the tests fast.
inline unsigned char tag_byte(uint64_t tag, size_t i) {
  return static_cast<unsigned char>((tag * 0x9E3779B97F4A7C15ull >> 56) ^ (i * 13));
}
inline size_t stride_for(size_t n) { return n <= 4096 ? 1 : 61; }
inline void stamp(void* p, size_t n, uint64_t tag) {
  auto* b = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < n; i += stride_for(n)) b[i] = tag_byte(tag, i);
  if (n) b[n - 1] = tag_byte(tag, n - 1);
}
inline bool stamp_intact(const void* p, size_t n, uint64_t tag) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i += stride_for(n))
    if (b[i] != tag_byte(tag, i)) return false;
  return n == 0 || b[n - 1] == tag_byte(tag, n - 1);
}

}  // namespace preload_test
