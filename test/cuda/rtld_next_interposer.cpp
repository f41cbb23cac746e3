// rtld_next_interposer.cpp - a typical preloaded interposer: wraps puts with dlsym(RTLD_NEXT).
//
// Loaded after libcachealloc.so (LD_PRELOAD=libcachealloc.so:this.so). If cachealloc's dlsym
// resolved RTLD_NEXT relative to itself instead of to this library, "next" would be this very
// library, puts would call itself, and the test would crash.
#include <cstdio>
#include <dlfcn.h>

namespace {
int g_calls = 0;
void* g_real = nullptr;
}  // namespace

extern "C" __attribute__((visibility("default"))) int puts(const char* s) {
  if (g_real == nullptr) g_real = dlsym(RTLD_NEXT, "puts");
  ++g_calls;
  if (g_calls > 10) return -1;  // recursion: stop before the stack overflows; the test fails
  fputs("[wrapped] ", stdout);
  return reinterpret_cast<int (*)(const char*)>(g_real)(s);
}
extern "C" __attribute__((visibility("default"))) int interposer_calls() { return g_calls; }
extern "C" __attribute__((visibility("default"))) void* interposer_real() { return g_real; }
