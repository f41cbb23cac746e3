// nvcc_runtime.cu - the real CUDA runtime (built by nvcc, statically or shared) under the preload.
//
// Built only where nvcc exists (meson option `cuda`). same_output.py runs it with and without
// LD_PRELOAD=libcachealloc.so and requires identical output: on a machine without a driver the
// runtime's own error codes (cudaErrorInsufficientDriver, cudaErrorNoDevice...) must come back
// unchanged and host allocation must keep working; with a GPU every call succeeds both ways.
// Nothing machine-specific (pointers, device names) is printed.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>
#include <vector>

int main() {
  int codes[4] = {0, 0, 0, 0};  // cudaMalloc, cudaFree, cudaMallocHost, cudaFreeHost
  for (int i = 0; i < 100; ++i) {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size_t{1} << (10 + i % 12));
    if (e != cudaSuccess) codes[0] = e;
    e = cudaFree(p);
    if (e != cudaSuccess) codes[1] = e;
  }
  void* h = nullptr;
  cudaError_t e = cudaMallocHost(&h, 4096);
  if (e != cudaSuccess) codes[2] = e;
  if (e == cudaSuccess) std::memset(h, 1, 4096);
  e = cudaFreeHost(h);
  if (e != cudaSuccess) codes[3] = e;
  std::printf("cudaMalloc %d (%s)\ncudaFree %d\ncudaMallocHost %d\ncudaFreeHost %d\n", codes[0],
              cudaGetErrorName(static_cast<cudaError_t>(codes[0])), codes[1], codes[2], codes[3]);
  std::printf("cudaFree(NULL) %d\n", static_cast<int>(cudaFree(nullptr)));

  std::vector<char*> blocks;
  for (int i = 0; i < 1000; ++i) {
    char* b = static_cast<char*>(std::malloc(16 + i * 37));
    std::memset(b, i & 0xff, 16 + i * 37);
    blocks.push_back(b);
  }
  long sum = 0;
  for (int i = 0; i < 1000; ++i) sum += blocks[i][15 + i * 37];
  for (char* b : blocks) std::free(b);
  std::printf("host allocations ok: %ld\n", sum);
  return 0;
}
