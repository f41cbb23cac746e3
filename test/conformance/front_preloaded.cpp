// front_preloaded.cpp - the conformance suite as a program that does not link cachealloc. It runs
// with LD_PRELOAD=libcachealloc.so, so the libc malloc family and operator new are interposed, and
// it finds the ca_ API with dlsym. Without the preload it stops at once with status 1.
#include "conformance.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace {

conformance::CaApi g_api;
bool g_missing = false;

template <class Fn>
void bind(Fn& slot, const char* name) {
  slot = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
  if (slot == nullptr) {
    std::fprintf(stderr, "conformance_preloaded: %s not found; is libcachealloc.so preloaded?\n",
                 name);
    g_missing = true;
  }
}

}  // namespace

const conformance::CaApi& conformance::ca() { return g_api; }

const char* conformance::front_name() { return "preloaded (LD_PRELOAD)"; }

int main(int argc, char** argv) {
  bind(g_api.retain, "ca_retain");
  bind(g_api.release, "ca_release");
  bind(g_api.refcount, "ca_refcount");
  bind(g_api.adopt, "ca_adopt");
  bind(g_api.clear, "ca_clear");
  bind(g_api.cached_bytes, "ca_cached_bytes");
  bind(g_api.cache_limit, "ca_cache_limit");
  bind(g_api.set_cache_limit, "ca_set_cache_limit");
  bind(g_api.owns, "ca_owns");
  bind(g_api.get_totals, "ca_get_totals");
  bind(g_api.version, "ca_version");
  if (g_missing) return 1;
  // malloc must be the preloaded one, not glibc's.
  void* probe = std::malloc(10);
  if (g_api.owns(probe) != 1) {
    std::fprintf(stderr, "conformance_preloaded: malloc is not served by cachealloc\n");
    return 1;
  }
  std::free(probe);
  return conformance::run_catch(argc, argv);
}
