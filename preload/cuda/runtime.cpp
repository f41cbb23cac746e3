// runtime.cpp - the exported CUDA runtime functions: one-line forwarders into cuda_front.h.
#include "cuda/cuda_front.h"
#include "../export.h"

using cachealloc::cuda_api::RtError;
namespace cf = cachealloc::cuda;

// The caller's return address picks the runtime (Note [Runtime per caller] in cuda_api.h).
#define CA_CALLER __builtin_return_address(0)

CA_EXPORT RtError cudaMalloc(void** p, size_t size) { return cf::rt_malloc(CA_CALLER, p, size); }
CA_EXPORT RtError cudaFree(void* p) { return cf::rt_free(CA_CALLER, p); }
CA_EXPORT RtError cudaMallocHost(void** p, size_t size) {
  return cf::rt_malloc_host(CA_CALLER, p, size);
}
CA_EXPORT RtError cudaHostAlloc(void** p, size_t size, unsigned flags) {
  return cf::rt_host_alloc(CA_CALLER, p, size, flags);
}
CA_EXPORT RtError cudaFreeHost(void* p) { return cf::rt_free_host(CA_CALLER, p); }
CA_EXPORT RtError cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  return cf::rt_mem_get_info(CA_CALLER, free_bytes, total_bytes);
}
CA_EXPORT RtError cudaDeviceReset() { return cf::rt_device_reset(CA_CALLER); }
