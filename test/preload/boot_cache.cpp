// boot_cache.cpp - calls that reach malloc's fast path on a thread with no cache of its own (the
// shared boot cache, Note [Boot cache] in lib/core/allocator.cpp) must miss and take the slow path:
//   - malloc(0) as a new thread's first call (the sampling countdown does not fire for 0 bytes);
//   - small mallocs in a thread-specific-data destructor that runs after cachealloc's own, which
//     has already handed the thread's cache back.
// Each block must be usable and freeable; the program must not crash.
#include "preload_support.h"

#include <pthread.h>

#include <thread>
#include <vector>

using namespace preload_test;

namespace {

constexpr int kThreads = 64;
OwnsFn g_owns = nullptr;
pthread_key_t g_late_key;

// Allocates, writes, checks and frees a few small blocks; a block that is not ours or does not
// hold what was written fails the program.
void use_small_blocks(const char* where) {
  void* zero = malloc(0);
  if (zero == nullptr) fail("%s: malloc(0) returned NULL", where);
  free(zero);
  for (size_t size : {8, 16, 48, 200, 1000}) {
    auto* p = static_cast<unsigned char*>(malloc(size));
    if (p == nullptr) fail("%s: malloc(%zu) returned NULL", where, size);
    if (g_owns(p) != 1) fail("%s: malloc(%zu) = %p is not a cachealloc block", where, size, p);
    memset(p, 0xA5, size);
    for (size_t i = 0; i < size; ++i)
      if (p[i] != 0xA5) fail("%s: block %p of %zu bytes lost what was written", where, p, size);
    free(p);
  }
}

// Runs after cachealloc's destructor: the key was created after the library's (a higher index).
void late_destructor(void* value) {
  use_small_blocks("thread-specific-data destructor");
  free(value);
}

}  // namespace

int main() {
  g_owns = require_cachealloc("boot_cache");
  if (pthread_key_create(&g_late_key, late_destructor) != 0) fail("pthread_key_create failed");
  for (int i = 0; i < kThreads; ++i) {
    std::thread([] {
      void* first = malloc(0);  // this thread's first allocation
      if (first == nullptr) fail("malloc(0) as a thread's first call returned NULL");
      free(first);
      use_small_blocks("new thread");
      pthread_setspecific(g_late_key, malloc(64));
    }).join();
  }
  printf("boot_cache: %d threads: malloc(0) first, then small blocks after the thread's cache was "
         "handed back\n", kThreads);
  return 0;
}
