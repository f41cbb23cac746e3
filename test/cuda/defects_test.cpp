// defects_test.cpp - the device-side defects found by review and on a GPU, each a case that
// failed before its fix, against the stub runtime and stub libcuda.so.1.
//
// One program, one case per argv[1]; test/cuda/meson.build runs each under
// LD_PRELOAD=libcachealloc.so with the environment the case needs (capacity, budget, a driver
// without cuCtxRecordEvent). tools/gpu/probe.cu tries the same scenarios on a real GPU.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <sys/wait.h>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

#include "cuda_test_util.h"

namespace {

constexpr size_t kMiB = size_t{1} << 20;

// Driver entry points as a program linked with -lcuda reaches them: cachealloc's exports where
// it has them, else the driver's own. The driver is loaded (as -lcuda would) first.
template <typename Fn>
Fn drv(const char* name) {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
  CHECK(h != nullptr);
  void* f = dlsym(RTLD_DEFAULT, name);
  if (f == nullptr) f = dlsym(h, name);
  CHECK(f != nullptr);
  return reinterpret_cast<Fn>(f);
}

// 1. Run with STUBCU_CAPACITY=35M, CACHEALLOC_CUDA_CACHE_BYTES=64M: a request of 95% of the free memory, and one just below the
// capacity, succeed as they do without the cache; sizes near one another share blocks.
void near_free() {
  size_t f = 0, t = 0;
  CHECK_EQ(cudaMemGetInfo(&f, &t), cudaSuccess);
  void* p = dmalloc(f / 100 * 95);  // 33.25 MiB: a quarter-step rounding would ask for 40
  CHECK_EQ(ca_owns(p), 1);
  CHECK_EQ(cudaFree(p), cudaSuccess);
  ca_clear(-1);
  void* q = dmalloc(34 * kMiB + 512 * 1024);  // the 2 MiB granule (36) does not fit: exact size
  CHECK_EQ(cudaFree(q), cudaSuccess);
  ca_clear(-1);
  uint64_t allocs = stub_counters().device_allocs;
  void* a = dmalloc(10 * kMiB);
  CHECK_EQ(cudaFree(a), cudaSuccess);
  void* b = dmalloc(9 * kMiB);  // the same 10 MiB layout
  CHECK(b == a);
  CHECK_EQ(cudaFree(b), cudaSuccess);
  void* c = dmalloc(7 * kMiB);  // 8 MiB: a 10 MiB block is within a quarter more (near-fit)
  CHECK(c == a);
  CHECK_EQ(cudaFree(c), cudaSuccess);
  void* d = dmalloc(5 * kMiB);  // 6 MiB: 10 MiB is too large to hand out
  CHECK(d != a);
  CHECK_EQ(stub_counters().device_allocs, allocs + 2);
  CHECK_EQ(cudaFree(d), cudaSuccess);
}

// 3. The last release of the primary context frees its memory (Numba's cuda.close()); the cache
// must forget its blocks and take the same addresses again when CUDA hands them out.
void primary_release() {
  auto init = drv<CUresult (*)(unsigned)>("cuInit");
  auto retain = drv<CUresult (*)(CUcontext*, int)>("cuDevicePrimaryCtxRetain");
  auto release = drv<CUresult (*)(int)>("cuDevicePrimaryCtxRelease_v2");
  auto set = drv<CUresult (*)(CUcontext)>("cuCtxSetCurrent");
  auto alloc = drv<CUresult (*)(CUdeviceptr*, size_t)>("cuMemAlloc_v2");
  auto free_ = drv<CUresult (*)(CUdeviceptr)>("cuMemFree_v2");
  CHECK_EQ(init(0), CUDA_SUCCESS);
  for (int round = 0; round < 3; ++round) {
    CUcontext ctx = nullptr;
    CHECK_EQ(retain(&ctx, 0), CUDA_SUCCESS);
    CHECK_EQ(set(ctx), CUDA_SUCCESS);
    uint64_t allocs = stub_counters().device_allocs;
    CUdeviceptr d = 0;
    CHECK_EQ(alloc(&d, 8 * kMiB), CUDA_SUCCESS);
    CHECK_EQ(stub_counters().device_allocs, allocs + 1);  // never a block of the dead context
    std::memset(reinterpret_cast<void*>(d), round, 8 * kMiB);
    CHECK_EQ(free_(d), CUDA_SUCCESS);  // cached
    CHECK_EQ(ca_owns(reinterpret_cast<void*>(d)), 0);
    CHECK_EQ(release(0), CUDA_SUCCESS);  // the last reference: the stub frees everything
    CHECK_EQ(ca_stats().cached, 0u);
  }
}

// 4. Run with CACHEALLOC_CUDA_CACHE_BYTES=1M: a free during a global capture that takes the cache
// over its budget must not free anything for real (that would invalidate the capture).
void capture_budget() {
  cudaStream_t s = nullptr;
  CHECK_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  void* a[3];
  for (void*& p : a) p = dmalloc(512 * 1024);
  for (void* p : a) CHECK_EQ(cudaFree(p), cudaSuccess);  // 1 MiB stays cached, ready
  void* d = dmalloc(256 * 1024);
  stubcu_counters before = stub_counters();
  CHECK_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  CHECK_EQ(cudaFree(d), cudaSuccess);  // over the budget
  void* g = nullptr;
  CHECK_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
  stubcu_counters after = stub_counters();
  CHECK_EQ(after.capture_violations, 0u);
  CHECK_EQ(after.device_frees, before.device_frees);
  // After the capture the budget holds again at the next free.
  void* e = dmalloc(256 * 1024);
  CHECK_EQ(cudaFree(e), cudaSuccess);
  CHECK(ca_stats().cached <= kMiB);
  CHECK_EQ(cudaStreamDestroy(s), cudaSuccess);
}

// 6. Twenty non-blocking streams (PyTorch creates 32 per priority): a block freed while one of
// them still has work on it waits for that work, and is reused once it is done.
void many_streams() {
  std::vector<cudaStream_t> st(20);
  for (cudaStream_t& s : st) CHECK_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  void* x = dmalloc(64 * 1024);
  stub_launch(st[17], x, 0x5a, 64 * 1024);
  CHECK_EQ(cudaFree(x), cudaSuccess);
  void* y = dmalloc(64 * 1024);
  if (y == x) CHECK(all_bytes(x, 0x5a, 64 * 1024));  // only after the stream's work ran
  CHECK_EQ(cudaFree(y), cudaSuccess);
  for (cudaStream_t s : st) stub_complete(s);
  stub_complete(nullptr);
  uint64_t hits = ca_stats().hits;
  void* z = dmalloc(64 * 1024);
  CHECK(z == x || z == y);
  CHECK_EQ(ca_stats().hits, hits + 1);
  CHECK_EQ(cudaFree(z), cudaSuccess);
  for (cudaStream_t s : st) CHECK_EQ(cudaStreamDestroy(s), cudaSuccess);
}

// 6b. A block freed while a non-blocking stream still has work on it, and the stream destroyed
// before the next allocation: cuStreamDestroy returns at once and the work still runs, so the
// block waits for it as for the work of a live stream. "_old_driver": a driver before CUDA 12.5,
// whose fence once recorded events on the streams it had seen created and so forgot a destroyed
// stream's work (review, session 14): it failed then; the fence is now a synchronisation (Note
// [Older drivers] in lib/cuda/fence.cpp).
void destroyed_stream() {
  cudaStream_t s = nullptr;
  CHECK_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  void* x = dmalloc(64 * 1024);
  stub_launch(s, x, 0x5a, 64 * 1024);
  CHECK_EQ(cudaFree(x), cudaSuccess);
  CHECK_EQ(cudaStreamDestroy(s), cudaSuccess);  // the fill is still queued
  void* y = dmalloc(64 * 1024);
  if (y == x) CHECK(all_bytes(x, 0x5a, 64 * 1024));  // only after the stream's work ran
  CHECK_EQ(cudaFree(y), cudaSuccess);
  stub_complete(s);  // the destroyed stream's work finishes
  stub_complete(nullptr);
  void* z = dmalloc(64 * 1024);  // and the cache serves the size again
  CHECK(z == x || z == y);
  CHECK_EQ(cudaFree(z), cudaSuccess);
}

// 13. Run with STUBCU_CAPACITY=8M, CACHEALLOC_CUDA_CACHE_BYTES=64M: a route the cache does not serve (cuMemAllocAsync) runs out
// of memory while the cache holds freed blocks: the cache gives them back and the call is retried,
// through the exported entry point and through cuGetProcAddress alike.
void foreign_oom() {
  using AllocAsync = CUresult (*)(CUdeviceptr*, size_t, CUstream);
  using FreeAsync = CUresult (*)(CUdeviceptr, CUstream);
  AllocAsync exported = drv<AllocAsync>("cuMemAllocAsync");
  auto gpa = drv<CUresult (*)(const char*, void**, int, unsigned long long, int*)>(
      "cuGetProcAddress_v2");
  void* f = nullptr;
  int status = 0;
  CHECK_EQ(gpa("cuMemAllocAsync", &f, 12000, 0, &status), CUDA_SUCCESS);
  AllocAsync fetched = reinterpret_cast<AllocAsync>(f);
  FreeAsync free_async = drv<FreeAsync>("cuMemFreeAsync");
  for (AllocAsync alloc_async : {exported, fetched}) {
    void* p = dmalloc(6 * kMiB);
    CHECK_EQ(cudaFree(p), cudaSuccess);
    CHECK(ca_stats().cached >= 6 * kMiB);
    CUdeviceptr d = 0;
    CHECK_EQ(alloc_async(&d, 4 * kMiB, nullptr), CUDA_SUCCESS);
    CHECK_EQ(ca_stats().cached, 0u);
    CHECK_EQ(free_async(d, nullptr), CUDA_SUCCESS);
  }
}

// 10. Run with STUBCU_CAPACITY=4M, CACHEALLOC_CUDA_CACHE_BYTES=64M: an allocation that needs the cache's memory must not clear an
// error the program has not read yet.
void sticky_error() {
  void* a = dmalloc(2 * kMiB);
  CHECK_EQ(cudaFree(a), cudaSuccess);  // cached
  int x = 0;
  CHECK_EQ(cudaFree(&x), cudaErrorInvalidValue);  // the runtime records the error
  void* b = dmalloc(3 * kMiB);                    // needs the cached 2 MiB back
  CHECK_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  CHECK_EQ(cudaGetLastError(), cudaSuccess);
  CHECK_EQ(cudaFree(b), cudaSuccess);
}

// 8. Run with CACHEALLOC_CUDA_CACHE_BYTES=8K. One thread begins and ends global captures while
// another keeps the cache fencing, polling and (over the budget) really freeing: none of that may
// land inside a capture (Note [Capture gate]). The worker's own real
// allocations during a capture fail as they would without the cache (cudaMalloc is unsafe in the
// global mode) and are tolerated; what is counted is fence work in the stub's capture window.
void capture_race() {
  cudaStream_t cs = nullptr;
  CHECK_EQ(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking), cudaSuccess);
  std::atomic<bool> stop{false};
  std::atomic<long> fenced{0};
  std::thread worker([&] {
    cudaStream_t ws = nullptr;
    CHECK_EQ(cudaStreamCreateWithFlags(&ws, cudaStreamNonBlocking), cudaSuccess);
    while (!stop.load()) {
      void* p = nullptr;
      if (cudaMalloc(&p, 4096) != cudaSuccess) {
        cudaGetLastError();
        continue;
      }
      stub_launch(ws, p, 3, 64);
      CHECK_EQ(cudaFree(p), cudaSuccess);
      stub_complete(ws);
      ++fenced;
    }
  });
  while (fenced.load() < 10) std::this_thread::yield();
  long before = fenced.load();
  for (int i = 0; i < 3000; ++i) {
    CHECK_EQ(cudaStreamBeginCapture(cs, cudaStreamCaptureModeGlobal), cudaSuccess);
    void* g = nullptr;
    cudaStreamEndCapture(cs, &g);  // invalidated by the worker's real allocations, as in CUDA
    if (i % 2 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  stop = true;
  worker.join();
  CHECK(fenced.load() > before);  // the worker fenced between the captures
  CHECK_EQ(stub_counters().fence_violations, 0u);
}

// 15. fork while other threads allocate and free device memory: the DeviceCache's locks are in
// the fork sequence (ForkLayer::kCuda), so the child never inherits a held pool or table lock.
void fork_with_pools() {
  std::signal(SIGALRM, [](int) {
    const char msg[] = "FAIL: fork_with_pools: a fork (parent or child) deadlocked for 30 s\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(1);
  });
  alarm(30);  // a deadlock fails the test instead of hanging CI
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; ++t) {
    workers.emplace_back([&] {
      while (!stop.load()) {
        void* p = dmalloc(4096 + 512 * (std::rand() % 8));
        CHECK_EQ(cudaFree(p), cudaSuccess);
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      void* m = std::malloc(100);
      std::free(m);
      ca_cuda_stats s{};
      cachealloc_fn<int (*)(int, int, ca_cuda_stats*)>("ca_cuda_get_stats")(-1, 0, &s);
      _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  stop = true;
  for (std::thread& w : workers) w.join();
}

// 15. cuGetProcAddress for a CUDA version newer than the hook table was checked against: a
// pointer that is not the driver's export of the known name (a future _v3 with a new signature)
// comes back unwrapped; the known signature of a checked version is wrapped.
void proc_versions() {
  auto gpa = drv<CUresult (*)(const char*, void**, int, unsigned long long, int*)>(
      "cuGetProcAddress_v2");
  CHECK_EQ(cudaFree(nullptr), cudaSuccess);  // a context
  void* now = nullptr;
  void* future = nullptr;
  int status = 0;
  CHECK_EQ(gpa("cuMemAlloc", &now, 13000, 0, &status), CUDA_SUCCESS);
  CHECK_EQ(gpa("cuMemAlloc", &future, 14000, 0, &status), CUDA_SUCCESS);
  void* stub = dlsym(dlopen("libcuda.so.1", RTLD_NOLOAD | RTLD_LAZY), "cuMemAlloc_v3_future");
  CHECK(future == stub);  // not wrapped
  CUdeviceptr a = 0;
  CHECK_EQ(reinterpret_cast<CUresult (*)(CUdeviceptr*, size_t)>(now)(&a, 4096), CUDA_SUCCESS);
  CHECK_EQ(ca_owns(reinterpret_cast<void*>(a)), 1);  // wrapped: the cache handed it out
  CUdeviceptr d = 0;
  auto v3 = reinterpret_cast<CUresult (*)(CUdeviceptr*, size_t, unsigned long long)>(future);
  CHECK_EQ(v3(&d, 4096, 0), CUDA_SUCCESS);
  CHECK_EQ(stub_counters().future_calls, 1u);
  CHECK_EQ(ca_owns(reinterpret_cast<void*>(d)), 0);
}

// 16. A capture abandoned by a device reset (an error during the capture, and the program resets
// the device to recover without ending it): the reset takes the capture with the context, so the
// cache must not stay quiet for ever (no fence, no reuse, no budget, no reclaim on OOM).
void reset_during_capture() {
  cudaStream_t s = nullptr;
  CHECK_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  CHECK_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  CHECK_EQ(cudaDeviceReset(), cudaSuccess);  // no cudaStreamEndCapture
  void* a = dmalloc(64 * 1024);
  CHECK_EQ(cudaFree(a), cudaSuccess);
  void* b = dmalloc(64 * 1024);  // a's free is fenced and a reused, as before any capture
  CHECK(b == a);
  CHECK_EQ(cudaFree(b), cudaSuccess);
  CHECK_EQ(stub_counters().fence_violations, 0u);
}

// 17. A release of the primary context that nobody retained is an error in plain CUDA
// (CUDA_ERROR_INVALID_CONTEXT), and leaves the context inactive. The hook, which retains it to learn
// its handle, activated it and then let the program's release succeed.
void release_unretained() {
  auto init = drv<CUresult (*)(unsigned)>("cuInit");
  auto release = drv<CUresult (*)(int)>("cuDevicePrimaryCtxRelease_v2");
  auto state = drv<CUresult (*)(int, unsigned*, int*)>("cuDevicePrimaryCtxGetState");
  CHECK_EQ(init(0), CUDA_SUCCESS);
  unsigned flags = 0;
  int active = 1;
  CHECK_EQ(state(0, &flags, &active), CUDA_SUCCESS);
  CHECK_EQ(active, 0);
  CHECK_EQ(release(0), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_EQ(state(0, &flags, &active), CUDA_SUCCESS);
  CHECK_EQ(active, 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string c = argv[1];
  if (c == "near_free") near_free();
  else if (c == "primary_release") primary_release();
  else if (c == "capture_budget") capture_budget();
  else if (c == "many_streams") many_streams();
  else if (c == "destroyed_stream") destroyed_stream();
  else if (c == "foreign_oom") foreign_oom();
  else if (c == "sticky_error") sticky_error();
  else if (c == "capture_race") capture_race();
  else if (c == "fork_with_pools") fork_with_pools();
  else if (c == "proc_versions") proc_versions();
  else if (c == "reset_during_capture") reset_during_capture();
  else if (c == "release_unretained") release_unretained();
  else return 2;
  return 0;
}
