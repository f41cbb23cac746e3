// rtld_next_test.cpp - dlsym(RTLD_NEXT, ...) keeps its meaning for callers under cachealloc.
//
// Run with LD_PRELOAD=libcachealloc.so:librtld_next_interposer.so (see Note [dlsym
// interposition]). The interposer's puts must reach libc's puts exactly once per call.
#include <cstdio>
#include <cstring>
#include <dlfcn.h>

#define CHECK(c)                                                            \
  do {                                                                      \
    if (!(c)) {                                                             \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
      return 1;                                                             \
    }                                                                       \
  } while (0)

int main() {
  CHECK(dlsym(RTLD_DEFAULT, "ca_cuda_get_stats") != nullptr);  // cachealloc is preloaded
  auto calls = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "interposer_calls"));
  auto real = reinterpret_cast<void* (*)()>(dlsym(RTLD_DEFAULT, "interposer_real"));
  CHECK(calls != nullptr && real != nullptr);
  puts("hello from main");
  std::fflush(stdout);
  CHECK(calls() == 1);
  Dl_info info;
  CHECK(dladdr(real(), &info) != 0 && std::strstr(info.dli_fname, "libc.so") != nullptr);
  puts("second call");
  CHECK(calls() == 2);
  // From the executable, RTLD_NEXT skips the executable itself: the first preloaded puts.
  void* next = dlsym(RTLD_NEXT, "puts");
  CHECK(next != nullptr);
  CHECK(dladdr(next, &info) != 0 && std::strstr(info.dli_fname, "rtld_next_interposer") != nullptr);
  // dlvsym is not interposed and agrees with libc.
  CHECK(dlsym(RTLD_DEFAULT, "no_such_symbol_anywhere") == nullptr);
  CHECK(dlerror() != nullptr);
  return 0;
}
