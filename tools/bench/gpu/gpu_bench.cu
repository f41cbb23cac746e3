// gpu_bench.cu - device-memory workloads for issue 4's benchmark: raw cudaMalloc/cudaFree,
// cudaMallocAsync (release threshold at maximum) and cachealloc (raw calls under the preload).
//
//   bench-gpu --alloc raw|async --workload loop|sizes|streams|thrust [--scale S]
//
// prints one line on stdout:
//   GPUBENCH workload=loop alloc=raw cachealloc=0 seconds=0.123 iters=20000 peak_live=... \
//            peak_reserved=... status=ok
// and exits 0; 77 when there is no usable device (the harness reports "skipped"), 1 when a
// checksum is wrong (a block was reused while work on it was still queued).
//
// "cachealloc=1" when libcachealloc.so is loaded (it is found with dlsym, so the same binary serves
// both raw configurations). peak_live is the largest sum of live requested bytes; peak_reserved is
// what the allocator held from the driver at its peak: used device memory (cudaMemGetInfo) for
// raw, the pool's cudaMemPoolAttrReservedMemHigh for async, and ca_cuda_get_stats().reserved for
// cachealloc (its cudaMemGetInfo reports cached bytes as free, by design).
//
// Workloads:
//   loop     one 4 MiB buffer: allocate, launch a kernel that writes it, free; repeated.
//   sizes    log-uniform sizes 512 B - 64 MiB, 16 live, each written by a kernel.
//   streams  8 non-blocking streams; each iteration allocates per stream, launches a long fill and
//            a checksum into a per-launch result slot, and frees at once while the kernels are
//            still queued. Every checksum is verified at the end.
//   thrust   thrust::sort of 1M ints per iteration into a fresh buffer; thrust's temporary storage
//            goes through the same allocator (custom temporary allocator).
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <thrust/execution_policy.h>
#include <thrust/sort.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

enum class Mode { kRaw, kAsync };

struct CaStats {  // ca_cuda_stats (include/cachealloc/cuda.h), copied to keep this file standalone
  uint64_t reserved, cached, live, hits, misses, syncs_forced, oom_retries, evictions, passthrough;
};
using CaGetStats = int (*)(int, int, CaStats*);

Mode g_mode = Mode::kRaw;
cudaStream_t g_alloc_stream = nullptr;  // async mode: the stream allocations are ordered on
CaGetStats g_ca = nullptr;
size_t g_live = 0, g_peak_live = 0, g_peak_reserved = 0, g_base_used = 0;

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
  std::exit(1);
}

size_t used_now() {
  size_t f = 0, t = 0;
  check(cudaMemGetInfo(&f, &t), "cudaMemGetInfo");
  return t - f;
}

void sample_reserved() {
  if (g_ca != nullptr) {
    CaStats s{};
    g_ca(-1, 0, &s);
    if (s.reserved > g_peak_reserved) g_peak_reserved = s.reserved;
  } else if (g_mode == Mode::kRaw) {
    size_t u = used_now();
    if (u > g_base_used && u - g_base_used > g_peak_reserved) g_peak_reserved = u - g_base_used;
  }
}

void* dev_alloc(size_t n, cudaStream_t s = nullptr) {
  void* p = nullptr;
  if (g_mode == Mode::kAsync) {
    check(cudaMallocAsync(&p, n, s != nullptr ? s : g_alloc_stream), "cudaMallocAsync");
  } else {
    check(cudaMalloc(&p, n), "cudaMalloc");
  }
  g_live += n;
  if (g_live > g_peak_live) g_peak_live = g_live;
  return p;
}

void dev_free(void* p, size_t n, cudaStream_t s = nullptr) {
  if (g_mode == Mode::kAsync) {
    check(cudaFreeAsync(p, s != nullptr ? s : g_alloc_stream), "cudaFreeAsync");
  } else {
    check(cudaFree(p), "cudaFree");
  }
  g_live -= n;
}

// Thrust's temporary storage through the benchmarked allocator.
struct TempAllocator {
  using value_type = char;
  std::vector<std::pair<char*, size_t>> sizes;
  char* allocate(std::ptrdiff_t n) {
    char* p = static_cast<char*>(dev_alloc(static_cast<size_t>(n)));
    sizes.emplace_back(p, static_cast<size_t>(n));
    return p;
  }
  void deallocate(char* p, size_t) {
    for (auto& [q, n] : sizes) {
      if (q == p) {
        dev_free(p, n);
        q = nullptr;
        return;
      }
    }
  }
};

__global__ void fill_kernel(uint32_t* p, size_t n, uint32_t v, int passes) {
  for (int pass = 0; pass < passes; ++pass) {
    for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x) {
      p[i] = v;  // every pass writes the same: the passes only make the kernel long
    }
  }
}

__global__ void sum_kernel(const uint32_t* p, size_t n, unsigned long long* out) {
  unsigned long long local = 0;
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x) {
    local += p[i];
  }
  atomicAdd(out, local);
}

__global__ void iota_desc_kernel(int* p, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x) {
    p[i] = static_cast<int>(n - i);
  }
}

uint64_t rng_state = 0x9e3779b97f4a7c15ull;
uint64_t rng() {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

size_t log_uniform(size_t lo, size_t hi) {
  double u = static_cast<double>(rng() >> 11) / 9007199254740992.0;
  double v = std::exp(std::log(static_cast<double>(lo)) + u * (std::log(hi) - std::log(lo)));
  return static_cast<size_t>(v) & ~size_t{3};
}

bool run_loop(long iters) {
  const size_t n = size_t{4} << 20;
  for (long i = 0; i < iters; ++i) {
    auto* p = static_cast<uint32_t*>(dev_alloc(n));
    fill_kernel<<<64, 256, 0, g_alloc_stream>>>(p, n / 4, static_cast<uint32_t>(i), 1);
    dev_free(p, n);
    if (i % 64 == 0) sample_reserved();
  }
  return true;
}

bool run_sizes(long iters) {
  struct Live {
    uint32_t* p;
    size_t n;
  };
  std::vector<Live> live(16, Live{nullptr, 0});
  for (long i = 0; i < iters; ++i) {
    Live& l = live[rng() % live.size()];
    if (l.p != nullptr) dev_free(l.p, l.n);
    l.n = log_uniform(512, size_t{64} << 20);
    l.p = static_cast<uint32_t*>(dev_alloc(l.n));
    fill_kernel<<<64, 256, 0, g_alloc_stream>>>(l.p, l.n / 4, static_cast<uint32_t>(i), 1);
    if (i % 16 == 0) sample_reserved();
  }
  for (Live& l : live) {
    if (l.p != nullptr) dev_free(l.p, l.n);
  }
  return true;
}

bool run_streams(long iters) {
  constexpr int kStreams = 8;
  cudaStream_t streams[kStreams];
  for (cudaStream_t& s : streams) check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  unsigned long long* sums = nullptr;  // one slot per launch
  const long launches = iters * kStreams;
  check(cudaMallocHost(&sums, sizeof(unsigned long long) * launches), "cudaMallocHost");
  std::memset(sums, 0, sizeof(unsigned long long) * launches);
  std::vector<unsigned long long> expect(launches);
  for (long i = 0; i < iters; ++i) {
    for (int k = 0; k < kStreams; ++k) {
      const long slot = i * kStreams + k;
      const size_t n = (size_t{1} << 20) + 4096 * (rng() % 64);
      const uint32_t tag = static_cast<uint32_t>(slot % 1000 + 1);
      auto* p = static_cast<uint32_t*>(dev_alloc(n, streams[k]));
      fill_kernel<<<32, 256, 0, streams[k]>>>(p, n / 4, tag, 8);  // long enough to still run
      sum_kernel<<<32, 256, 0, streams[k]>>>(p, n / 4, sums + slot);
      expect[slot] = static_cast<unsigned long long>(tag) * (n / 4);
      dev_free(p, n, streams[k]);  // while both kernels are queued
    }
    if (i % 8 == 0) sample_reserved();
  }
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  long bad = 0;
  for (long s = 0; s < launches; ++s) bad += sums[s] != expect[s];
  check(cudaFreeHost(sums), "cudaFreeHost");
  for (cudaStream_t s : streams) check(cudaStreamDestroy(s), "stream destroy");
  if (bad != 0) std::fprintf(stderr, "streams: %ld of %ld checksums wrong\n", bad, launches);
  return bad == 0;
}

bool run_thrust(long iters) {
  const size_t n = size_t{1} << 20;
  TempAllocator temp;
  for (long i = 0; i < iters; ++i) {
    int* d = static_cast<int*>(dev_alloc(n * sizeof(int)));
    iota_desc_kernel<<<64, 256, 0, g_alloc_stream>>>(d, n);
    thrust::sort(thrust::cuda::par(temp).on(g_alloc_stream), d, d + n);
    int first = 0, last = 0;
    check(cudaMemcpyAsync(&first, d, sizeof first, cudaMemcpyDeviceToHost, g_alloc_stream), "copy");
    check(cudaMemcpyAsync(&last, d + n - 1, sizeof last, cudaMemcpyDeviceToHost, g_alloc_stream), "copy");
    check(cudaStreamSynchronize(g_alloc_stream), "sync");
    dev_free(d, n * sizeof(int));
    temp.sizes.clear();
    if (first != 1 || last != static_cast<int>(n)) {
      std::fprintf(stderr, "thrust: sorted range is [%d, %d]\n", first, last);
      return false;
    }
    if (i % 8 == 0) sample_reserved();
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string alloc = "raw", workload = "loop";
  double scale = 1.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--alloc") alloc = argv[i + 1];
    else if (k == "--workload") workload = argv[i + 1];
    else if (k == "--scale") scale = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: bench-gpu --alloc raw|async --workload loop|sizes|streams|thrust [--scale S]\n");
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "bench-gpu: no CUDA device: skipped\n");
    return 77;
  }
  g_mode = alloc == "async" ? Mode::kAsync : Mode::kRaw;
  g_ca = reinterpret_cast<CaGetStats>(dlsym(RTLD_DEFAULT, "ca_cuda_get_stats"));
  check(cudaFree(nullptr), "context");
  check(cudaStreamCreateWithFlags(&g_alloc_stream, cudaStreamNonBlocking), "stream");
  cudaMemPool_t pool = nullptr;
  if (g_mode == Mode::kAsync) {
    check(cudaDeviceGetDefaultMemPool(&pool, 0), "default pool");
    uint64_t threshold = UINT64_MAX;  // keep everything: the pool's best case
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold), "threshold");
  }
  g_base_used = used_now();

  long iters = 0;
  bool ok = false;
  auto t0 = std::chrono::steady_clock::now();
  if (workload == "loop") ok = run_loop(iters = static_cast<long>(20000 * scale));
  else if (workload == "sizes") ok = run_sizes(iters = static_cast<long>(4000 * scale));
  else if (workload == "streams") ok = run_streams(iters = static_cast<long>(500 * scale));
  else if (workload == "thrust") ok = run_thrust(iters = static_cast<long>(500 * scale));
  else {
    std::fprintf(stderr, "bench-gpu: unknown workload %s\n", workload.c_str());
    return 2;
  }
  check(cudaDeviceSynchronize(), "final synchronize");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sample_reserved();
  if (g_mode == Mode::kAsync) {
    uint64_t high = 0;
    check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &high), "reserved high");
    g_peak_reserved = high;
  }
  std::printf("GPUBENCH workload=%s alloc=%s cachealloc=%d seconds=%.6f iters=%ld peak_live=%zu "
              "peak_reserved=%zu status=%s\n",
              workload.c_str(), alloc.c_str(), g_ca != nullptr ? 1 : 0, secs, iters, g_peak_live,
              g_peak_reserved, ok ? "ok" : "bad");
  return ok ? 0 : 1;
}
