// preload_support.h - what every preload test program shares. These programs do not link
// cachealloc; meson runs them with LD_PRELOAD=libcachealloc.so. Each one first proves that the
// preload took (require_cachealloc), so a missing or wrong preload fails instead of silently
// testing glibc. Failures print one line naming the check and exit 1.
#pragma once

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cstdint>

#include "../support/check.h"    // fail() and TEST_EXPECT
#include "../support/pattern.h"  // the fill patterns written and verified
#include "../support/rss.h"

namespace preload_test {

using test_support::fail;  // test/support/check.h

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

// Resident set size in bytes (test/support/rss.h).
inline size_t rss_bytes() {
  size_t n = rss::bytes();
  if (n == 0) fail("cannot read /proc/self/statm");
  return n;
}

}  // namespace preload_test
