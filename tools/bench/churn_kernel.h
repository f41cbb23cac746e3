// tools/bench/churn_kernel.h — the small-object churn loop, shared by `churn` (one thread) and
// `threads` (N threads, each running it on its own working set).
//
// Models the steady state of most C and C++ programs: a working set of small objects (16–256 B)
// where a random one dies and a new one of a random size is born, over and over. Random free order
// defeats allocators that are only fast for LIFO patterns; the working set (~10k objects, ~1.3 MB)
// fits in L2/L3, so the allocator's own cost is what is measured, not cache misses on user data.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "bench_util.h"

namespace bench {

struct ChurnResult {
  uint64_t checksum = 0;  // sum of unstamp() over every freed block
  uint64_t expected = 0;  // sum of stamp() over every allocated block
};

// One op = one free of a random live object + one malloc of a new one, stamped.
inline ChurnResult churn_loop(uint64_t seed, size_t working_set, uint64_t ops) {
  struct Slot {
    void* p;
    size_t size;
  };
  Rng rng(seed);
  ChurnResult r;
  std::vector<Slot> slots(working_set);
  auto fresh = [&](Slot& s) {
    s.size = 16 + rng.below(241);  // 16..256 B
    s.p = std::malloc(s.size);
    if (!s.p) std::abort();
    r.expected += stamp(s.p, s.size, rng.next());
  };
  for (auto& s : slots) fresh(s);
  for (uint64_t i = 0; i < ops; ++i) {
    Slot& s = slots[rng.below(working_set)];
    r.checksum += unstamp(s.p, s.size);
    std::free(s.p);
    fresh(s);
  }
  for (auto& s : slots) {
    r.checksum += unstamp(s.p, s.size);
    std::free(s.p);
  }
  return r;
}

}  // namespace bench
