// driver_link_test.cpp - a program linked with -lcuda calls cachealloc's exported cuMemAlloc_v2.
#include "cuda_test_util.h"

int main() {
  CUcontext ctx = nullptr;
  CHECK_EQ(cuInit(0), CUDA_SUCCESS);
  CHECK_EQ(cuDevicePrimaryCtxRetain(&ctx, 0), CUDA_SUCCESS);
  CHECK_EQ(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
  CUdeviceptr a = 0, b = 0;
  CHECK_EQ(cuMemAlloc_v2(&a, 1 << 20), CUDA_SUCCESS);
  CHECK_EQ(cuMemFree_v2(a), CUDA_SUCCESS);
  CHECK_EQ(cuMemAlloc_v2(&b, (1 << 20) - 100), CUDA_SUCCESS);
  CHECK(a == b);
  CHECK_EQ(cuMemFree_v2(b), CUDA_SUCCESS);
  CHECK_EQ(cuMemFree_v2(b), CUDA_ERROR_INVALID_VALUE);
  void* h = nullptr;
  CHECK_EQ(cuMemAllocHost_v2(&h, 100), CUDA_SUCCESS);
  CHECK_EQ(cuMemFreeHost(h), CUDA_SUCCESS);
  CHECK_EQ(cuMemAllocHost_v2(&h, 200), CUDA_SUCCESS);
  CHECK_EQ(cuMemFreeHost(h), CUDA_SUCCESS);
  stubcu_counters c = stub_counters();
  CHECK_EQ(c.device_allocs, 1u);
  CHECK_EQ(c.host_allocs, 1u);
  CHECK_EQ(ca_stats().hits, 1u);
  CHECK_EQ(ca_stats(true).hits, 1u);
  return 0;
}
