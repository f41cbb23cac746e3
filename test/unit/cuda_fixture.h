// cuda_fixture.h - a DeviceCache over the in-process fake device (test/fakes/fake_cuda_device.h),
// for the cuda_unit suite.
#pragma once

#include <memory>

#include "config/options.h"
#include "cuda/cuda_front.h"
#include "cuda/device_cache.h"
#include "fake_cuda_device.h"

namespace cachealloc::test {

inline constexpr size_t kMiB = size_t{1} << 20;

struct CudaFixture {
  explicit CudaFixture(bool ctx_events = true, uint64_t budget = 64 * kMiB)
      : dev(FakeDevice::instance()),
        cache(std::make_unique<cuda::DeviceCache>(ctx_events ? &FakeDevice::driver_table
                                                             : &FakeDevice::driver_table_before_12_5,
                                                  &FakeDevice::runtime_for,
                                                  &FakeDevice::runtime_at)),
        front(*cache) {
    dev.reset(ctx_events);
    saved = options();
    mutable_options().cuda = 1;
    mutable_options().cuda_cache_bytes = budget;
    ctx = dev.new_context();
  }
  ~CudaFixture() {
    cache->unmap_for_testing();
    dev.reset();  // the device memory and events the dropped cache still held
    mutable_options() = saved;
    FakeDevice::t_current = nullptr;
    FakeDevice::t_rt_device = -1;
  }
  CudaFixture(const CudaFixture&) = delete;
  CudaFixture& operator=(const CudaFixture&) = delete;

  // Allocation and free as a program linked with -lcuda makes them.
  uint64_t alloc(size_t n) {
    cuda_api::DevicePtr p = 0;
    cuda_api::CuResult r = front.mem_alloc(FakeDevice::driver_table()->mem_alloc, &p, n);
    return r == cuda_api::kCuSuccess ? p : 0;
  }
  cuda_api::CuResult free(uint64_t p) {
    return front.mem_free(FakeDevice::driver_table()->mem_free, p);
  }
  cuda::PoolCounters counters(bool host = false) {
    cuda::PoolCounters c{};
    cache->counters(-1, host, &c);
    return c;
  }
  void* ptr(uint64_t p) { return reinterpret_cast<void*>(p); }

  FakeDevice& dev;
  std::unique_ptr<cuda::DeviceCache> cache;
  cuda::CudaFront front;
  cuda_api::Context ctx = nullptr;
  Options saved;
};

}  // namespace cachealloc::test
