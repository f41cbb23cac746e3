// probe.cu - the device-side defects of issue 10, tried on a real GPU, one scenario per process.
//
//   cachealloc-gpu-probe SCENARIO
//
// prints one line `SCENARIO ok <result>` or `SCENARIO FAIL <why>` and exits 0 / 1 (77: no device).
// tools/gpu/validate.sh runs every scenario twice, plain and under LD_PRELOAD=libcachealloc.so, and
// requires the same line from both: `<result>` holds only what the program itself computed (error
// codes, checksums), never addresses or timings. Scenarios marked "cachealloc only" test a promise
// that raw CUDA does not make (a free during a capture, say); without the preload they print
// `SCENARIO ok n/a` and validate.sh checks only the preloaded line.
//
// Built by nvcc with the static runtime (nvcc's default, the case unmodified binaries are in) and
// -lcuda, so both interception routes are used: dlsym/cuGetProcAddress for the runtime's driver
// calls, the exported cuMemAlloc_v2... for the probe's own driver calls.
#include <cuda.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct CaStats {  // ca_cuda_stats (include/cachealloc/cuda.h), copied to keep this file standalone
  uint64_t reserved, cached, live, hits, misses, syncs_forced, oom_retries, evictions, passthrough;
};
using CaGetStats = int (*)(int, int, CaStats*);
CaGetStats g_ca = nullptr;

[[noreturn]] void fail(const std::string& name, const std::string& why) {
  std::printf("%s FAIL %s\n", name.c_str(), why.c_str());
  std::fflush(stdout);
  std::_Exit(1);
}

int ok(const std::string& name, const std::string& result) {
  std::printf("%s ok %s\n", name.c_str(), result.c_str());
  return 0;
}

#define RT(name, call)                                                                     \
  do {                                                                                     \
    cudaError_t e_ = (call);                                                               \
    if (e_ != cudaSuccess) fail(name, std::string(#call) + " -> " + cudaGetErrorName(e_)); \
  } while (0)
#define CU(name, call)                                                         \
  do {                                                                         \
    CUresult r_ = (call);                                                      \
    if (r_ != CUDA_SUCCESS) {                                                  \
      const char* s_ = nullptr;                                                \
      cuGetErrorName(r_, &s_);                                                 \
      fail(name, std::string(#call) + " -> " + (s_ != nullptr ? s_ : "?"));    \
    }                                                                          \
  } while (0)

CaStats ca_stats(int pinned = 0) {
  CaStats s{};
  if (g_ca != nullptr) g_ca(-1, pinned, &s);
  return s;
}

__global__ void fill(uint32_t* p, size_t n, uint32_t v, int passes) {
  for (int pass = 0; pass < passes; ++pass) {
    for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x) {
      p[i] = v + static_cast<uint32_t>(i);
    }
  }
}

__global__ void sum(const uint32_t* p, size_t n, unsigned long long* out) {
  unsigned long long local = 0;
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x) {
    local += p[i];
  }
  atomicAdd(out, local);
}

unsigned long long expected_sum(size_t n, uint32_t v) {
  unsigned long long s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<uint32_t>(v + static_cast<uint32_t>(i));
  return s;
}

// ---- 1: a request near the free memory, and a driver preallocation ---------------------------
int near_free(const char* name) {
  size_t f = 0, t = 0;
  RT(name, cudaMemGetInfo(&f, &t));
  // gpu-burn, HPC codes: 95% of what is free. Rounding this up by a quarter asks for more than
  // exists.
  size_t n = (f / 100 * 95) & ~size_t{(1 << 20) - 1};
  void* p = nullptr;
  RT(name, cudaMalloc(&p, n));
  RT(name, cudaMemset(p, 0x5a, n));
  unsigned char last = 0;
  RT(name, cudaMemcpy(&last, static_cast<char*>(p) + n - 1, 1, cudaMemcpyDeviceToHost));
  RT(name, cudaFree(p));
  // JAX/XLA: 75% of the device through cuMemAlloc.
  RT(name, cudaMemGetInfo(&f, &t));
  size_t m = (t / 100 * 75) & ~size_t{(1 << 20) - 1};
  if (m > f) m = (f / 100 * 90) & ~size_t{(1 << 20) - 1};
  CUdeviceptr d = 0;
  CU(name, cuMemAlloc(&d, m));
  CU(name, cuMemsetD8(d, 0x21, m));
  unsigned char first = 0;
  CU(name, cuMemcpyDtoH(&first, d, 1));
  CU(name, cuMemFree(d));
  // Varying sizes near one another (Thrust/CUB temporaries) should still be served.
  for (int i = 0; i < 64; ++i) {
    void* q = nullptr;
    RT(name, cudaMalloc(&q, (size_t{48} << 20) + size_t(i) * 4096 * 7));
    RT(name, cudaFree(q));
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "bytes=%02x%02x", last, first);
  return ok(name, buf);
}

// ---- 3: the last release of the primary context frees everything -----------------------------
int primary_release(const char* name) {
  CU(name, cuInit(0));
  CUdevice dev = 0;
  CU(name, cuDeviceGet(&dev, 0));
  unsigned long long total = 0;
  const size_t n = size_t{8} << 20;
  for (int round = 0; round < 3; ++round) {
    CUcontext ctx = nullptr;
    CU(name, cuDevicePrimaryCtxRetain(&ctx, dev));
    CU(name, cuCtxSetCurrent(ctx));
    for (int k = 0; k < 4; ++k) {
      CUdeviceptr d = 0;
      CU(name, cuMemAlloc(&d, n));
      CU(name, cuMemsetD32(d, 0x01010101u * (round + 1), n / 4));
      unsigned v = 0;
      CU(name, cuMemcpyDtoH(&v, d + n - 4, 4));
      total += v;
      CU(name, cuMemFree(d));  // cached: its memory dies with the context below
    }
    CU(name, cuCtxSetCurrent(nullptr));
    CU(name, cuDevicePrimaryCtxRelease(dev));  // the last reference: the context is reset
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "sum=%llu", total);
  return ok(name, buf);
}

// ---- 4: a free during a global capture never frees for real (cachealloc only) -----------------
int capture_free(const char* name) {
  if (g_ca == nullptr) return ok(name, "n/a");
  // Run with CACHEALLOC_CUDA_CACHE_BYTES=64M: the frees below leave 64 MiB ready in the cache.
  cudaStream_t s;
  RT(name, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const size_t n = size_t{32} << 20;
  void* a[3];
  for (void*& p : a) RT(name, cudaMalloc(&p, n));
  for (void* p : a) RT(name, cudaFree(p));
  RT(name, cudaDeviceSynchronize());
  void* d = nullptr;
  RT(name, cudaMalloc(&d, size_t{16} << 20));
  void* spare = nullptr;
  RT(name, cudaMalloc(&spare, n));  // a hit: the cache holds one ready block of this size less
  RT(name, cudaFree(spare));        // and gets it back
  cudaGraph_t g = nullptr;
  RT(name, cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  fill<<<16, 128, 0, s>>>(static_cast<uint32_t*>(d), 1024, 1, 1);
  cudaError_t fe = cudaFree(d);  // over the budget: the cache must not free for real now
  cudaError_t ee = cudaStreamEndCapture(s, &g);
  if (fe != cudaSuccess) fail(name, std::string("cudaFree during capture -> ") + cudaGetErrorName(fe));
  if (ee != cudaSuccess) fail(name, std::string("capture invalidated: ") + cudaGetErrorName(ee));
  cudaGraphExec_t x = nullptr;
  RT(name, cudaGraphInstantiate(&x, g, 0));
  RT(name, cudaGraphExecDestroy(x));
  RT(name, cudaGraphDestroy(g));
  RT(name, cudaDeviceSynchronize());
  return ok(name, "capture-valid");
}

// ---- 5: contexts (and their streams) created and destroyed in a loop --------------------------
int dead_contexts(const char* name) {
  CU(name, cuInit(0));
  CUdevice dev = 0;
  CU(name, cuDeviceGet(&dev, 0));
  const int kContexts = 36, kStreams = 30;  // 1,080 streams die with their contexts
  for (int c = 0; c < kContexts; ++c) {
    CUcontext ctx = nullptr;
    CU(name, cuCtxCreate(&ctx, nullptr, 0, dev));
    CUstream st[kStreams];
    for (CUstream& s : st) CU(name, cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    for (int k = 0; k < 4; ++k) {
      CUdeviceptr d = 0;
      CU(name, cuMemAlloc(&d, size_t{1} << 20));
      CU(name, cuMemsetD8Async(d, 1, size_t{1} << 20, st[k]));
      CU(name, cuMemFree(d));
    }
    CU(name, cuCtxDestroy(ctx));  // its streams are destroyed with it
  }
  // Now ordinary work in the primary context: fences must still work without synchronising
  // (with cuCtxRecordEvent, CUDA 12.5 drivers and later; before, every fence is a
  // synchronisation: Note [Older drivers] in lib/cuda/fence.cpp).
  RT(name, cudaSetDevice(0));
  cudaStream_t s[4];
  for (cudaStream_t& x : s) RT(name, cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking));
  unsigned long long* sums = nullptr;
  const int kIters = 400;
  RT(name, cudaMallocHost(&sums, sizeof(unsigned long long) * kIters));
  std::memset(sums, 0, sizeof(unsigned long long) * kIters);
  const size_t n = size_t{1} << 18;
  CaStats before = ca_stats();
  for (int i = 0; i < kIters; ++i) {
    uint32_t* p = nullptr;
    RT(name, cudaMalloc(&p, n * 4));
    fill<<<32, 256, 0, s[i % 4]>>>(p, n, i, 1);
    sum<<<32, 256, 0, s[i % 4]>>>(p, n, sums + i);
    RT(name, cudaFree(p));
  }
  RT(name, cudaDeviceSynchronize());
  int bad = 0;
  for (int i = 0; i < kIters; ++i) bad += sums[i] != expected_sum(n, i);
  if (bad != 0) fail(name, std::to_string(bad) + " checksums wrong");
  CaStats after = ca_stats();
  int driver = 0;
  CU(name, cuDriverGetVersion(&driver));
  if (g_ca != nullptr && driver >= 12050 &&
      after.syncs_forced - before.syncs_forced > kIters / 10) {
    fail(name, "fences fell back to synchronisation " +
                   std::to_string(after.syncs_forced - before.syncs_forced) + " times");
  }
  RT(name, cudaFreeHost(sums));
  return ok(name, "checksums=" + std::to_string(kIters));
}

// ---- 6: 32 non-blocking streams (PyTorch creates 32 per priority) ----------------------------
int many_streams(const char* name) {
  const int kStreams = 32, kIters = 64;
  std::vector<cudaStream_t> st(kStreams);
  for (cudaStream_t& s : st) RT(name, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const size_t n = size_t{1} << 18;
  const int launches = kStreams * kIters;
  unsigned long long* sums = nullptr;
  RT(name, cudaMallocHost(&sums, sizeof(unsigned long long) * launches));
  std::memset(sums, 0, sizeof(unsigned long long) * launches);
  CaStats before = ca_stats();
  for (int i = 0; i < kIters; ++i) {
    for (int k = 0; k < kStreams; ++k) {
      int slot = i * kStreams + k;
      uint32_t* p = nullptr;
      RT(name, cudaMalloc(&p, n * 4));
      fill<<<16, 256, 0, st[k]>>>(p, n, slot, 4);
      sum<<<16, 256, 0, st[k]>>>(p, n, sums + slot);
      RT(name, cudaFree(p));  // while both kernels are queued
    }
  }
  RT(name, cudaDeviceSynchronize());
  int bad = 0;
  for (int s = 0; s < launches; ++s) bad += sums[s] != expected_sum(n, s);
  if (bad != 0) fail(name, std::to_string(bad) + " of " + std::to_string(launches) + " checksums wrong");
  CaStats after = ca_stats();
  if (g_ca != nullptr) {
    uint64_t hits = after.hits - before.hits, misses = after.misses - before.misses;
    if (hits < (hits + misses) / 2) {
      fail(name, "hits " + std::to_string(hits) + " misses " + std::to_string(misses));
    }
  }
  RT(name, cudaFreeHost(sums));
  return ok(name, "checksums=" + std::to_string(launches));
}

// ---- 6b: a stream destroyed while its kernels still use a freed block -------------------------
// cudaStreamDestroy returns at once and the queued kernels still run; the block freed before it
// must not be handed to the next cudaMalloc (whose kernel on another stream would overwrite it)
// until they are done (Note [Reuse after pending work] in lib/cuda/fence.cpp). Each round writes
// its block, holds its stream for about a millisecond, then sums the block: an early reuse lands
// the other stream's fill between the write and the sum. A pause every 8 rounds lets earlier
// blocks finish, so the cache does reuse (checked under the preload).
__global__ void spin(long long cycles) {
  long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}

int destroyed_stream(const char* name) {
  const int kIters = 64;
  const size_t n = size_t{1} << 20;
  unsigned long long* sums = nullptr;
  RT(name, cudaMallocHost(&sums, sizeof(unsigned long long) * kIters));
  std::memset(sums, 0, sizeof(unsigned long long) * kIters);
  cudaStream_t other = nullptr;
  RT(name, cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking));
  std::vector<uint32_t*> next(kIters, nullptr);
  CaStats before = ca_stats();
  for (int i = 0; i < kIters; ++i) {
    if (i % 8 == 7) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cudaStream_t s = nullptr;
    RT(name, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    uint32_t* p = nullptr;
    RT(name, cudaMalloc(&p, n * 4));
    fill<<<16, 256, 0, s>>>(p, n, i, 1);
    spin<<<1, 1, 0, s>>>(2000000);  // about a millisecond
    sum<<<16, 256, 0, s>>>(p, n, sums + i);
    RT(name, cudaFree(p));
    RT(name, cudaStreamDestroy(s));  // all three kernels may still be queued
    RT(name, cudaMalloc(&next[i], n * 4));
    fill<<<16, 256, 0, other>>>(next[i], n, 0xdead0000u + i, 1);
  }
  RT(name, cudaDeviceSynchronize());
  CaStats after = ca_stats();
  int bad = 0;
  for (int i = 0; i < kIters; ++i) bad += sums[i] != expected_sum(n, i);
  for (uint32_t* q : next) RT(name, cudaFree(q));
  RT(name, cudaStreamDestroy(other));
  RT(name, cudaFreeHost(sums));
  if (bad != 0) fail(name, std::to_string(bad) + " of " + std::to_string(kIters) + " checksums wrong");
  if (g_ca != nullptr && after.hits == before.hits) fail(name, "the cache never reused a block");
  return ok(name, "checksums=" + std::to_string(kIters));
}

// ---- 7: the runtime with a non-primary context current ----------------------------------------
int nonprimary_ctx(const char* name) {
  RT(name, cudaFree(nullptr));  // the primary context
  CUcontext primary = nullptr;
  CU(name, cuCtxGetCurrent(&primary));
  const size_t n = size_t{1} << 20;
  unsigned long long* sums = nullptr;
  RT(name, cudaMallocHost(&sums, sizeof(unsigned long long) * 2));
  sums[0] = sums[1] = 0;
  for (int k = 0; k < 4; ++k) {  // blocks of the primary context, cached
    void* p = nullptr;
    RT(name, cudaMalloc(&p, n * 4));
    RT(name, cudaFree(p));
  }
  RT(name, cudaDeviceSynchronize());
  CUcontext other = nullptr;
  CUdevice dev = 0;
  CU(name, cuDeviceGet(&dev, 0));
  CU(name, cuCtxCreate(&other, nullptr, 0, dev));  // now current: the runtime uses it
  uint32_t* p = nullptr;
  RT(name, cudaMalloc(&p, n * 4));
  fill<<<32, 256>>>(p, n, 7, 1);
  sum<<<32, 256>>>(p, n, sums);
  RT(name, cudaDeviceSynchronize());
  RT(name, cudaFree(p));
  CU(name, cuCtxDestroy(other));
  CU(name, cuCtxSetCurrent(primary));
  if (sums[0] != expected_sum(n, 7)) fail(name, "checksum wrong");
  RT(name, cudaFreeHost(sums));
  return ok(name, "checksum=1");
}

// ---- 8: another thread's cache work while a global capture begins (cachealloc only) ----------
// Run with CACHEALLOC_CUDA_CACHE_BYTES=64M. The worker only frees (a real cudaMalloc from a
// global-mode thread during a capture is prohibited with or without the cache): each free takes
// the cache over its budget, so the cache fences, polls and really frees, and must never do so
// while the other thread's global capture runs (Note [Capture gate]).
int capture_race(const char* name) {
  if (g_ca == nullptr) return ok(name, "n/a");
  cudaStream_t cs, ws;
  RT(name, cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking));
  RT(name, cudaStreamCreateWithFlags(&ws, cudaStreamNonBlocking));
  uint32_t* target = nullptr;
  RT(name, cudaMalloc(&target, 4096));
  const int kBlocks = 3000;
  std::vector<uint32_t*> blocks(kBlocks);
  for (uint32_t*& p : blocks) RT(name, cudaMalloc(&p, size_t{1} << 20));
  std::atomic<bool> go{false};
  std::atomic<long> worker_errors{0};
  std::thread worker([&] {
    while (!go.load()) {
    }
    for (uint32_t* p : blocks) {
      fill<<<8, 128, 0, ws>>>(p, 1024, 3, 1);
      if (cudaFree(p) != cudaSuccess) ++worker_errors;
    }
  });
  go = true;
  int invalid = 0, captures = 0;
  for (; captures < 300; ++captures) {
    cudaGraph_t g = nullptr;
    if (cudaStreamBeginCapture(cs, cudaStreamCaptureModeGlobal) != cudaSuccess) {
      ++invalid;
      continue;
    }
    fill<<<8, 128, 0, cs>>>(target, 1024, captures, 1);
    if (cudaStreamEndCapture(cs, &g) != cudaSuccess) ++invalid;
    if (g != nullptr) cudaGraphDestroy(g);
    cudaGetLastError();
  }
  worker.join();
  RT(name, cudaDeviceSynchronize());
  if (worker_errors != 0) fail(name, std::to_string(worker_errors.load()) + " worker frees failed");
  if (invalid != 0) fail(name, std::to_string(invalid) + " of 300 captures invalidated");
  return ok(name, "captures=300");
}

// ---- 13: memory through routes the cache does not serve --------------------------------------
int foreign_oom(const char* name) {
  size_t f = 0, t = 0;
  RT(name, cudaMemGetInfo(&f, &t));
  // The cache keeps about a fifth of the device (its default budget is a quarter)...
  const size_t block = (t / 50) & ~size_t{(1 << 20) - 1};
  std::vector<void*> v(10);
  for (void*& p : v) RT(name, cudaMalloc(&p, block));
  for (void* p : v) RT(name, cudaFree(p));
  RT(name, cudaDeviceSynchronize());
  // ...while the program asks cudaMallocAsync (and cuMemCreate) for most of the device.
  RT(name, cudaMemGetInfo(&f, &t));
  size_t n = (f / 100 * 85) & ~size_t{(2 << 20) - 1};
  cudaStream_t s;
  RT(name, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  void* a = nullptr;
  RT(name, cudaMallocAsync(&a, n, s));
  RT(name, cudaMemsetAsync(a, 1, n, s));
  RT(name, cudaFreeAsync(a, s));
  RT(name, cudaStreamSynchronize(s));
  cudaMemPool_t pool;
  RT(name, cudaDeviceGetDefaultMemPool(&pool, 0));
  RT(name, cudaMemPoolTrimTo(pool, 0));
  // cuMemCreate (the virtual memory management API).
  for (int k = 0; k < 10; ++k) {
    void* p = nullptr;
    RT(name, cudaMalloc(&p, block));
    RT(name, cudaFree(p));
  }
  RT(name, cudaMemGetInfo(&f, &t));
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  size_t gran = 0;
  CU(name, cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
  size_t m = (f / 100 * 85) / gran * gran;
  CUmemGenericAllocationHandle h;
  CU(name, cuMemCreate(&h, m, &prop, 0));
  CU(name, cuMemRelease(h));
  return ok(name, "async-and-vmm");
}

// ---- 10: an error of an earlier kernel survives an allocation that needed a retry ------------
int sticky_error(const char* name) {
  // A launch with an invalid configuration records an error; the program reads it later.
  fill<<<1, 4096>>>(nullptr, 0, 0, 1);  // 4096 threads per block: cudaErrorInvalidConfiguration
  size_t f = 0, t = 0;
  cudaMemGetInfo(&f, &t);
  std::vector<void*> v;
  for (int k = 0; k < 4; ++k) {  // the cache keeps a fifth of what is free
    void* p = nullptr;
    if (cudaMalloc(&p, f / 20) == cudaSuccess) v.push_back(p);
  }
  for (void* p : v) cudaFree(p);
  void* big = nullptr;
  cudaError_t a = cudaMalloc(&big, (f / 100 * 85) & ~size_t{(1 << 20) - 1});
  if (a == cudaSuccess) cudaFree(big);
  cudaError_t last = cudaGetLastError();
  return ok(name, std::string("alloc=") + cudaGetErrorName(a) + " last=" + cudaGetErrorName(last));
}

// ---- 14: a cache miss during a capture, relaxed and global ------------------------------------
// Whatever CUDA does with a cudaMalloc during a capture, the cache's own work around a real
// allocation (Note [OOM retry] step 0 asks cuMemGetInfo first) must not change it: the allocation
// and the capture end the same way with and without the preload.
int capture_miss(const char* name) {
  cudaStream_t s;
  RT(name, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  uint32_t* target = nullptr;
  RT(name, cudaMalloc(&target, 4096));
  const cudaStreamCaptureMode modes[2] = {cudaStreamCaptureModeRelaxed,
                                          cudaStreamCaptureModeGlobal};
  const char* mode_names[2] = {"relaxed", "global"};
  std::string out;
  for (int k = 0; k < 2; ++k) {
    cudaGraph_t g = nullptr;
    RT(name, cudaStreamBeginCapture(s, modes[k]));
    fill<<<8, 128, 0, s>>>(target, 1024, k, 1);
    void* p = nullptr;
    // Sizes this process never asked for: a miss under the preload (4 MiB, then 8 MiB layouts).
    cudaError_t a = cudaMalloc(&p, (size_t{3} << 20) + k * (size_t{4} << 20) + 4096);
    cudaError_t e = cudaStreamEndCapture(s, &g);
    if (g != nullptr) cudaGraphDestroy(g);
    if (a == cudaSuccess) cudaFree(p);
    cudaGetLastError();
    out += std::string(k == 0 ? "" : " ") + mode_names[k] + ":alloc=" + cudaGetErrorName(a) +
           ",end=" + cudaGetErrorName(e);
  }
  RT(name, cudaDeviceSynchronize());
  return ok(name, out);
}

// Allocates, uses and frees 1 MiB a few times (synchronising in between) and returns the first
// error; under the preload a clean run must have reused a block (the cache is not left quiet).
std::string reuse_after(const char* name) {
  uint64_t hits = ca_stats().hits;
  for (int k = 0; k < 20; ++k) {
    uint32_t* p = nullptr;
    cudaError_t a = cudaMalloc(&p, size_t{1} << 20);
    if (a != cudaSuccess) {
      cudaGetLastError();
      return std::string("alloc=") + cudaGetErrorName(a);
    }
    fill<<<8, 128>>>(p, 1024, k, 1);
    cudaFree(p);
    cudaDeviceSynchronize();
  }
  if (g_ca != nullptr && ca_stats().hits == hits) {
    fail(name, "no block reused: the cache stayed quiet");
  }
  return "reuse=ok";
}

// ---- 15: a capture abandoned by cudaDeviceReset (Note [Captures of a dead context]) -----------
int reset_in_capture(const char* name) {
  cudaStream_t s;
  RT(name, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  RT(name, cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  cudaError_t r = cudaDeviceReset();  // no cudaStreamEndCapture: an error path that resets
  cudaGetLastError();
  if (r != cudaSuccess) {  // CUDA refused: the capture still runs, end it as a program would
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(s, &g);
    if (g != nullptr) cudaGraphDestroy(g);
    cudaGetLastError();
  }
  return ok(name, std::string("reset=") + cudaGetErrorName(r) + " " + reuse_after(name));
}

// ---- 16: a stream destroyed while it captures (not handled by cachealloc: does its capture
// end, and is the cache left quiet for ever?) -------------------------------------------------
int destroy_in_capture(const char* name) {
  cudaStream_t s;
  RT(name, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  RT(name, cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  cudaError_t d = cudaStreamDestroy(s);
  cudaGetLastError();
  if (d != cudaSuccess) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(s, &g);
    if (g != nullptr) cudaGraphDestroy(g);
    cudaGetLastError();
  }
  return ok(name, std::string("destroy=") + cudaGetErrorName(d) + " " + reuse_after(name));
}

struct Scenario {
  const char* name;
  int (*run)(const char*);
};
constexpr Scenario kScenarios[] = {
    {"near_free", near_free},         {"primary_release", primary_release},
    {"capture_free", capture_free},   {"dead_contexts", dead_contexts},
    {"many_streams", many_streams},   {"nonprimary_ctx", nonprimary_ctx},
    {"destroyed_stream", destroyed_stream},
    {"capture_race", capture_race},   {"foreign_oom", foreign_oom},
    {"sticky_error", sticky_error},   {"capture_miss", capture_miss},
    {"reset_in_capture", reset_in_capture}, {"destroy_in_capture", destroy_in_capture},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: cachealloc-gpu-probe SCENARIO|--list\n");
    return 2;
  }
  if (std::strcmp(argv[1], "--list") == 0) {
    for (const Scenario& s : kScenarios) std::printf("%s\n", s.name);
    return 0;
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("%s skipped: no CUDA device\n", argv[1]);
    return 77;
  }
  g_ca = reinterpret_cast<CaGetStats>(dlsym(RTLD_DEFAULT, "ca_cuda_get_stats"));
  for (const Scenario& s : kScenarios) {
    if (std::strcmp(argv[1], s.name) == 0) return s.run(s.name);
  }
  std::fprintf(stderr, "unknown scenario %s\n", argv[1]);
  return 2;
}
