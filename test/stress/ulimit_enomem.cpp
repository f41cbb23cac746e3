// ulimit_enomem.cpp - run under `ulimit -v` (RLIMIT_AS) with the preload: threads allocate until the
// address space runs out (large blocks first, then small ones), every failure must be NULL with
// errno ENOMEM (std::bad_alloc for operator new), nothing already allocated may change, and after
// everything is freed the same amount can be allocated again. usage: ulimit_enomem
#include <cerrno>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "stress_common.h"

using namespace stress;

namespace {
struct Held {
  void* p;
  size_t n;
  uint64_t tag;
};

size_t fill_up(std::vector<Held>& out, int id, size_t large, size_t small) {
  size_t bytes = 0;
  uint64_t tag = uint64_t(id) << 32;
  out.reserve(200000);  // the list itself must not need memory once the address space is full
  for (size_t n : {large, small}) {
    for (int misses = 0; misses < 3 && out.size() < out.capacity();) {
      errno = 0;
      void* p = malloc(n);
      if (p == nullptr) {
        if (errno != ENOMEM) fail("malloc failed without ENOMEM");
        ++misses;
        continue;
      }
      pattern::fill_sparse(p, n, ++tag);
      out.push_back({p, n, tag});
      bytes += n;
    }
  }
  return bytes;
}
}  // namespace

int main() {
  require_preload("ulimit_enomem");
  std::vector<Held> all[4];
  size_t got[4] = {};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) ts.emplace_back([&, t] { got[t] = fill_up(all[t], t, (4 << 20) + t * 4096, 3000); });
  for (auto& t : ts) t.join();
  size_t total = got[0] + got[1] + got[2] + got[3];
  if (total < (32 << 20)) fail("less than 32 MiB before ENOMEM: is the limit too small?");

  // Out of memory: the other entry points fail cleanly too.
  errno = 0;
  if (calloc(1, 64 << 20) != nullptr || errno != ENOMEM) fail("calloc did not fail with ENOMEM");
  Held& some = all[0].front();
  errno = 0;
  if (realloc(some.p, 256 << 20) != nullptr || errno != ENOMEM) fail("realloc did not fail with ENOMEM");
  if (!pattern::sparse_intact(some.p, some.n, some.tag)) fail("a failed realloc changed the block");
  bool threw = false;
  try {
    char* volatile big = new char[512 << 20];  // volatile: the pair must not be elided
    big[0] = 1;
    delete[] big;
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  if (!threw) fail("operator new did not throw std::bad_alloc");

  for (auto& v : all) {
    for (const Held& h : v) {
      if (!pattern::sparse_intact(h.p, h.n, h.tag)) fail("a block changed while memory ran out");
      free(h.p);
    }
    v.clear();
  }
  // Memory is back: the same amount fits again (the caches gave their memory back as needed).
  size_t again = fill_up(all[0], 9, 4 << 20, 3000);
  if (again < total * 3 / 4) fail("could not allocate again after freeing everything");
  for (const Held& h : all[0]) free(h.p);
  printf("ulimit_enomem: %zu MiB before ENOMEM, %zu MiB again after freeing\n", total >> 20, again >> 20);
  return 0;
}
