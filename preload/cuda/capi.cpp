// capi.cpp - the exported ca_cuda_* functions (include/cachealloc/cuda.h).
#include "cachealloc/cuda.h"

#include "cuda/cuda_front.h"
#include "../export.h"

namespace cf = cachealloc::cuda;

CA_EXPORT int ca_cuda_retain(void* p) { return cf::retain(p); }
CA_EXPORT int ca_cuda_release(void* p) { return cf::release(p); }
CA_EXPORT size_t ca_cuda_clear(int device) { return cf::clear(device); }
CA_EXPORT int ca_cuda_owns(const void* p) { return cf::owns(p); }
CA_EXPORT int ca_cuda_get_stats(int device, int pinned, ca_cuda_stats* out) {
  if (out == nullptr) return 22;  // EINVAL
  cf::PoolCounters c;
  cf::counters(device, pinned != 0, &c);
  *out = {c.reserved, c.cached, c.live, c.hits, c.misses, c.syncs_forced, c.oom_retries,
          c.evictions, cf::passthrough_count()};
  return 0;
}
