// prof_device.cpp - device allocations through the stub runtime, for the device leak section
// (prof_test.py "device"): three blocks from device_leak_here stay live, two others are freed.
#include <cstdio>
#include <cstdlib>

#include "stub_cuda.h"

void* volatile g_sink;

__attribute__((noinline)) void device_leak_here() {
  for (int i = 0; i < 3; ++i) {
    void* p = nullptr;
    if (cudaMalloc(&p, size_t{1} << 20) != 0) std::exit(2);
    g_sink = p;
  }
}

__attribute__((noinline)) void device_freed() {
  for (int i = 0; i < 2; ++i) {
    void* p = nullptr;
    if (cudaMalloc(&p, size_t{4} << 20) != 0) std::exit(3);
    if (cudaFree(p) != 0) std::exit(4);
  }
}

int main() {
  device_freed();
  device_leak_here();
  std::puts("workload done");
  return 0;
}
