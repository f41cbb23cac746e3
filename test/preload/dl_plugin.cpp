// dl_plugin.cpp - a module that dl_paths dlopens and dlcloses repeatedly. Its constructor and
// destructor allocate, it has dynamic TLS (which ld.so allocates with malloc on first use in each
// thread), and it hands blocks across the module boundary in both directions.
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

namespace {

thread_local std::vector<int> t_scratch;  // dynamic TLS with a non-trivial destructor
thread_local char t_buffer[4096];
void* g_ctor_block = nullptr;
std::string g_name = std::string(200, 'p');  // dynamic initialisation allocates

__attribute__((constructor)) void plugin_ctor() {
  g_ctor_block = malloc(5000);
  memset(g_ctor_block, 0x11, 5000);
}

__attribute__((destructor)) void plugin_dtor() {
  free(g_ctor_block);
  void* p = malloc(100);  // allocating while being unloaded
  free(p);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) void* plugin_make(size_t n) {
  t_scratch.resize(t_scratch.size() + 100, 7);
  t_buffer[n % sizeof t_buffer] = 1;
  void* p = malloc(n);
  if (p != nullptr) memset(p, 0x22, n);
  return p;
}

extern "C" __attribute__((visibility("default"))) int plugin_take(void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != 0x33) return 0;
  free(p);
  return g_name.size() == 200 && static_cast<unsigned char*>(g_ctor_block)[4999] == 0x11;
}
