// dl_paths.cpp - allocation before main and inside the dynamic loader. A constructor(101) (run
// before the C++ runtime's own initialisers) and dynamic initialisers allocate; then dlsym and
// dlopen paths that allocate inside libc and ld.so: dlerror messages, failed and repeated dlopen,
// dynamic TLS in a dlopen'ed module touched from several threads, and blocks crossing the module
// boundary. argv[1] is the path of dl_plugin's module.
#include "preload_support.h"

#include <string>
#include <thread>
#include <vector>

using namespace preload_test;

namespace {

void* g_early_small = nullptr;
void* g_early_large = nullptr;
char* g_early_dup = nullptr;
void* g_early_owns_sym = nullptr;
void* g_early_next_malloc = nullptr;

__attribute__((constructor(101))) void early() {
  g_early_small = malloc(100);
  if (g_early_small) memset(g_early_small, 0x42, 100);
  g_early_large = calloc(1, 3 << 20);
  g_early_dup = strdup("allocated in constructor(101)");
  void* tmp = realloc(nullptr, 50);
  tmp = realloc(tmp, 5000);
  free(tmp);
  // dlsym before main: cachealloc interposes dlsym too.
  g_early_owns_sym = dlsym(RTLD_DEFAULT, "ca_owns");
  g_early_next_malloc = dlsym(RTLD_NEXT, "malloc");
}

// Dynamic initialisation of a global, also before main.
std::vector<std::string> g_globals = {std::string(500, 'a'), std::string(70000, 'b')};

using MakeFn = void* (*)(size_t);
using TakeFn = int (*)(void*, size_t);

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) fail("usage: dl_paths <plugin.so>");
  OwnsFn owns = require_cachealloc("dl_paths");

  // What the constructor got is live cachealloc memory with its contents.
  TEST_EXPECT(g_early_owns_sym != nullptr);
  TEST_EXPECT(g_early_next_malloc != nullptr);
  TEST_EXPECT(g_early_small != nullptr && owns(g_early_small) == 1);
  TEST_EXPECT(static_cast<unsigned char*>(g_early_small)[99] == 0x42);
  TEST_EXPECT(g_early_large != nullptr && owns(g_early_large) == 1);
  for (size_t i = 0; i < (3u << 20); i += 4096)
    TEST_EXPECT(static_cast<unsigned char*>(g_early_large)[i] == 0);
  TEST_EXPECT(g_early_dup != nullptr && strcmp(g_early_dup, "allocated in constructor(101)") == 0);
  TEST_EXPECT(owns(g_early_dup) == 1);
  TEST_EXPECT(g_globals[1].size() == 70000 && owns(g_globals[1].data()) == 1);
  free(g_early_small);
  free(g_early_large);
  free(g_early_dup);

  // dlerror strings are malloc'ed inside libc.
  for (int i = 0; i < 50; ++i) {
    TEST_EXPECT(dlsym(RTLD_DEFAULT, "no_such_symbol_in_any_library") == nullptr);
    const char* e = dlerror();
    TEST_EXPECT(e != nullptr && strstr(e, "no_such_symbol_in_any_library") != nullptr);
    TEST_EXPECT(dlopen("/nonexistent/libcachealloc-test-none.so", RTLD_NOW) == nullptr);
    e = dlerror();
    TEST_EXPECT(e != nullptr && strstr(e, "libcachealloc-test-none") != nullptr);
  }

  // Repeated dlopen/dlclose of a module with constructors, dynamic TLS and cross-module frees.
  for (int round = 0; round < 20; ++round) {
    void* h = dlopen(argv[1], (round % 2 ? RTLD_LAZY : RTLD_NOW) | RTLD_LOCAL);
    if (h == nullptr) fail("dlopen(%s): %s", argv[1], dlerror());
    auto make = reinterpret_cast<MakeFn>(dlsym(h, "plugin_make"));
    auto take = reinterpret_cast<TakeFn>(dlsym(h, "plugin_take"));
    TEST_EXPECT(make != nullptr && take != nullptr);
    std::vector<std::thread> threads;
    std::vector<int> ok(4, 0);
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        int good = 1;
        for (int i = 0; i < 50; ++i) {
          size_t n = 16 + static_cast<size_t>(i * 997 + t * 13) % 300000;
          void* p = make(n);  // allocated in the module, freed here
          if (p == nullptr || owns(p) != 1 || static_cast<unsigned char*>(p)[n - 1] != 0x22)
            good = 0;
          free(p);
          void* q = malloc(n);  // allocated here, freed in the module
          memset(q, 0x33, n);
          good &= take(q, n);
        }
        ok[static_cast<size_t>(t)] = good;
      });
    for (auto& th : threads) th.join();
    for (int good : ok) TEST_EXPECT(good == 1);
    TEST_EXPECT(dlclose(h) == 0);
  }
  printf("dl_paths: constructor(101) blocks intact; 20 dlopen/dlclose rounds with dynamic TLS\n");
  return 0;
}
