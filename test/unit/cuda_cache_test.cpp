// cuda_cache_test.cpp - DeviceCache and CudaFront over the in-process fake device: reuse after
// pending work (both fences), budget, capture, stale records, contexts ending, out of memory,
// errors, the options, and threads.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "cuda_fixture.h"
#include "platform/os.h"

using namespace cachealloc;
using namespace cachealloc::cuda;
using namespace cachealloc::test;

namespace {
bool all_bytes(const void* p, int v, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != static_cast<unsigned char>(v)) return false;
  }
  return true;
}
}  // namespace

TEST_CASE("cache: a freed block waits for work on any stream of its context (context event)",
          "[cuda][cache]") {
  CudaFixture f;
  // A non-blocking stream the cache never saw created (as the runtime's may be).
  cuda_api::Stream s = f.dev.new_stream(cuda_api::kStreamNonBlocking);
  uint64_t a = f.alloc(4096);
  REQUIRE(a != 0);
  f.dev.launch(s, f.ptr(a), 0x5a, 4096);
  REQUIRE(f.free(a) == cuda_api::kCuSuccess);
  uint64_t b = f.alloc(4096);  // the kernel has not run: a must not come back
  REQUIRE(b != a);
  REQUIRE(f.dev.c.ctx_events >= 1);
  f.dev.complete(s);
  REQUIRE(all_bytes(f.ptr(a), 0x5a, 4096));
  uint64_t c = f.alloc(4096);
  REQUIRE(c == a);
  REQUIRE(f.counters().hits == 1);
  REQUIRE(f.counters().syncs_forced == 0);
  REQUIRE(f.dev.c.violations == 0);
}

TEST_CASE("cache: without context events a fence is one synchronisation (Note [Older drivers])",
          "[cuda][cache]") {
  CudaFixture f(/*ctx_events=*/false);
  // Non-blocking streams the cache never saw created (the runtime's were not all seen on a GPU).
  std::vector<cuda_api::Stream> st;
  for (int i = 0; i < 3; ++i) st.push_back(f.dev.new_stream(cuda_api::kStreamNonBlocking));
  uint64_t a = f.alloc(4096);
  f.dev.launch(st[2], f.ptr(a), 1, 4096);
  f.free(a);
  uint64_t syncs = f.dev.c.syncs;
  uint64_t b = f.alloc(4096);  // the fence, polled at once: one synchronisation
  REQUIRE(b == a);
  REQUIRE(all_bytes(f.ptr(a), 1, 4096));  // the synchronisation ran the kernel first
  REQUIRE(f.dev.c.syncs == syncs + 1);
  REQUIRE(f.counters().syncs_forced == 1);
  // One synchronisation serves a batch of frees.
  uint64_t x[4];
  for (uint64_t& p : x) p = f.alloc(8192);
  for (uint64_t p : x) {
    f.dev.launch(st[0], f.ptr(p), 7, 8192);
    f.free(p);
  }
  for (int i = 0; i < 4; ++i) REQUIRE(f.alloc(8192) != 0);
  REQUIRE(f.dev.c.syncs == syncs + 2);
  for (uint64_t p : x) REQUIRE(all_bytes(f.ptr(p), 7, 8192));
  REQUIRE(f.dev.c.violations == 0);
}

TEST_CASE("cache: past the budget the least recently freed blocks are really freed",
          "[cuda][cache]") {
  CudaFixture f(true, 1 * kMiB);
  uint64_t b[4];
  for (uint64_t& p : b) p = f.alloc(512 * 1024);
  for (uint64_t p : b) {
    f.free(p);
    REQUIRE(f.counters().cached <= kMiB);
  }
  REQUIRE(f.counters().evictions == 2);
  REQUIRE_FALSE(f.dev.owns_device(b[0]));
  REQUIRE_FALSE(f.dev.owns_device(b[1]));
  REQUIRE(f.dev.owns_device(b[2]));
  PoolCounters c = f.counters();
  REQUIRE(c.reserved == c.live + c.cached);
}

TEST_CASE("cache: during a global capture nothing is fenced, synchronised or really freed",
          "[cuda][cache][capture]") {
  CudaFixture f(true, 1 * kMiB);
  cuda_api::Stream s = f.dev.new_stream(cuda_api::kStreamNonBlocking);
  uint64_t a[3];
  for (uint64_t& p : a) p = f.alloc(512 * 1024);
  for (uint64_t p : a) f.free(p);  // 1 MiB cached, ready
  uint64_t d = f.alloc(256 * 1024);
  uint64_t frees = f.dev.c.device_frees;
  f.cache->streams().capture_enter();
  f.dev.begin_capture(s, 0);
  f.cache->streams().capture_started(s, f.ctx);
  REQUIRE(f.free(d) == cuda_api::kCuSuccess);  // over the budget
  uint64_t e = f.alloc(512 * 1024);            // a ready block: still served
  REQUIRE((e == a[1] || e == a[2]));
  uint64_t g = f.alloc(256 * 1024);  // d is pending: a real allocation, no fence
  REQUIRE(g != d);
  REQUIRE(f.front.clear(-1) == 0);
  REQUIRE(f.dev.c.device_frees == frees);
  REQUIRE(f.dev.c.violations == 0);
  f.dev.end_capture(s);
  f.cache->streams().capture_ended(s);
  f.free(e);
  f.free(g);
  REQUIRE(f.counters().cached <= kMiB);  // the budget holds again at the next free
}

TEST_CASE("cache: a real allocation at a recorded address retires the stale record",
          "[cuda][cache]") {
  CudaFixture f;
  uint64_t a = f.alloc(4096);
  f.free(a);  // cached
  uint16_t pool = f.cache->pool_for_context(f.ctx, false);
  // CUDA freed it behind our back (a reset we did not see) and hands the address out again.
  REQUIRE(f.cache->add_live(pool, a, 8192, Origin::kDriverDevice, 0));
  PoolCounters c = f.counters();
  REQUIRE(c.live == 8192);
  REQUIRE(c.cached == 0);
  REQUIRE(c.reserved == 8192);
  REQUIRE(f.cache->owns_live(a));
}

TEST_CASE("cache: a destroyed context's pool forgets its blocks and is reused",
          "[cuda][cache]") {
  CudaFixture f;
  uint64_t a = f.alloc(4096);
  uint64_t b = f.alloc(4096);
  f.free(a);
  uint16_t dropped = f.cache->pool_for_context(f.ctx, false);
  f.cache->drop_context(f.ctx);
  PoolCounters c = f.counters();
  REQUIRE(c.live == 0);
  REQUIRE(c.cached == 0);
  REQUIRE_FALSE(f.cache->owns_live(b));
  cuda_api::Context other = f.dev.new_context();
  uint64_t d = f.alloc(4096);
  REQUIRE(d != 0);
  REQUIRE(f.cache->pool_for_context(other, false) == dropped);  // the dropped pool, reused
  REQUIRE(f.counters().live == 4096);
}

TEST_CASE("cache: near-fit reuse above 1 MiB, never more than a quarter larger", "[cuda][cache]") {
  CudaFixture f;
  uint64_t a = f.alloc(10 * kMiB);
  f.free(a);
  f.dev.complete_all();
  REQUIRE(f.alloc(7 * kMiB) == a);  // 8 MiB rounded: 10 <= 8 + 2
  f.free(a);
  uint64_t b = f.alloc(5 * kMiB);  // 6 MiB: 10 > 7.5
  REQUIRE(b != a);
}

TEST_CASE("cache: reports agree with the counters and need no lock", "[cuda][cache][stats]") {
  CudaFixture f;
  uint64_t a = f.alloc(4096);
  f.alloc(8192);
  f.free(a);
  DeviceReport r[4];
  size_t n = f.cache->reports(r, 4);
  REQUIRE(n == 1);
  PoolCounters c = f.counters();
  REQUIRE(r[0].device == 0);
  REQUIRE(r[0].c.live == c.live);
  REQUIRE(r[0].c.cached == c.cached);
  REQUIRE(r[0].c.misses == 2);
  REQUIRE(r[0].budget == 64 * kMiB);
}

TEST_CASE("front: one pool per context, shared by the runtime and the driver",
          "[cuda][front]") {
  CudaFixture f;
  void* a = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &a, 4096, false, 0) == cuda_api::kRtSuccess);
  REQUIRE(f.front.rt_release(nullptr, a, false) == cuda_api::kRtSuccess);
  f.dev.complete_all();
  REQUIRE(f.alloc(4096) == reinterpret_cast<uint64_t>(a));  // the driver reuses the runtime's
  f.free(reinterpret_cast<uint64_t>(a));
  // Another context current on this thread: its own pool, never the first context's block.
  f.dev.new_context();
  void* b = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &b, 4096, false, 0) == cuda_api::kRtSuccess);
  REQUIRE(b != a);
  DeviceReport r[4];
  REQUIRE(f.cache->reports(r, 4) == 1);  // one device row over the two pools
  REQUIRE(r[0].budget == 2 * 64 * kMiB);
}

TEST_CASE("fence: when the pool's context cannot be made current, nothing is recorded",
          "[cuda][fence]") {
  CudaFixture f(true, 1 * kMiB);
  uint64_t a[3];
  for (uint64_t& p : a) p = f.alloc(512 * 1024);
  f.free(a[0]);
  f.free(a[1]);  // 1 MiB pending, unfenced
  f.dev.new_context();  // this thread now runs another context...
  f.dev.fail_push = true;  // ...and the first one cannot be pushed
  uint64_t events = f.dev.c.ctx_events;
  REQUIRE(f.free(a[2]) == cuda_api::kCuSuccess);  // over the budget: the pool would fence
  REQUIRE(f.dev.c.ctx_events == events);  // not in the wrong context
  REQUIRE(f.dev.c.device_frees == 0);  // and nothing pending was freed
  f.dev.fail_push = false;
}

TEST_CASE("front: out of memory gives the cache back first, then falls back to the exact size",
          "[cuda][front][oom]") {
  CudaFixture f(true, 1024 * kMiB);
  f.dev.capacity = 35 * kMiB;
  uint64_t a = f.alloc(20 * kMiB);
  f.free(a);  // cached: only 15 MiB free for real
  uint64_t b = f.alloc(30 * kMiB);
  REQUIRE(b != 0);
  REQUIRE(f.counters().oom_retries >= 1);
  REQUIRE(f.counters().evictions == 1);
  f.free(b);
  f.front.clear(-1);
  // 34.5 MiB rounds to 36, which does not exist: the exact size does.
  uint64_t c = f.alloc(34 * kMiB + 512 * 1024);
  REQUIRE(c != 0);
  REQUIRE(f.dev.device[c] == 34 * kMiB + 512 * 1024);
  f.dev.fail_next = 1000;
  REQUIRE(f.alloc(4096) == 0);  // nothing helps: CUDA's error comes back
  f.dev.fail_next = 0;
}

TEST_CASE("front: an allocation that needs the cache's memory keeps an earlier runtime error",
          "[cuda][front][oom]") {
  CudaFixture f(true, 1024 * kMiB);
  f.dev.capacity = 4 * kMiB;
  void* a = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &a, 2 * kMiB, false, 0) == cuda_api::kRtSuccess);
  REQUIRE(f.front.rt_release(nullptr, a, false) == cuda_api::kRtSuccess);
  f.dev.last_error = cuda_api::kRtInvalidValue;  // an earlier failure the program has not read
  void* b = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &b, 3 * kMiB, false, 0) == cuda_api::kRtSuccess);
  REQUIRE(f.dev.last_error == cuda_api::kRtInvalidValue);
}

TEST_CASE("front: a retry after a real out-of-memory error clears that error only",
          "[cuda][front][oom]") {
  CudaFixture f(true, 1024 * kMiB);
  void* x = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &x, 2 * kMiB, false, 0) == cuda_api::kRtSuccess);
  REQUIRE(f.front.rt_release(nullptr, x, false) == cuda_api::kRtSuccess);  // cached: what the retry frees
  f.dev.fail_next = 1;
  void* c = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &c, 1 * kMiB, false, 0) == cuda_api::kRtSuccess);
  REQUIRE(f.dev.last_error == 0);
  REQUIRE(f.counters().oom_retries == 1);
}

TEST_CASE("front: double free and foreign pointers", "[cuda][front]") {
  CudaFixture f;
  uint64_t a = f.alloc(4096);
  REQUIRE(f.free(a) == cuda_api::kCuSuccess);
  REQUIRE(f.free(a) == cuda_api::kCuInvalidValue);
  cuda_api::DevicePtr raw = 0;
  REQUIRE(FakeDevice::driver_table()->mem_alloc(&raw, 4096) == cuda_api::kCuSuccess);
  REQUIRE(f.free(raw) == cuda_api::kCuSuccess);  // not ours: the real free
  REQUIRE_FALSE(f.dev.owns_device(raw));
  REQUIRE(f.front.retain(f.ptr(a)) == EINVAL);
}

TEST_CASE("front: CACHEALLOC_CUDA_FREE_SYNC and CACHEALLOC_CUDA_SCRUB", "[cuda][front][options]") {
  CudaFixture f;
  mutable_options().cuda_free_sync = 1;
  mutable_options().cuda_scrub = 1;
  cuda_api::Stream s = f.dev.new_stream(cuda_api::kStreamNonBlocking);
  uint64_t a = f.alloc(4096);
  f.dev.launch(s, f.ptr(a), 0x11, 4096);
  uint64_t syncs = f.dev.c.syncs;
  REQUIRE(f.free(a) == cuda_api::kCuSuccess);
  REQUIRE(f.dev.c.syncs == syncs + 1);  // the free waited, as CUDA's does
  REQUIRE(all_bytes(f.ptr(a), 0x11, 4096));
  uint64_t b = f.alloc(4096);
  REQUIRE(b == a);
  REQUIRE(all_bytes(f.ptr(b), 0xcb, 4096));  // scrubbed on reuse, before the block is returned
  // The new owner's kernel on a non-blocking stream runs after the scrub, never under it (the
  // memset is queued on the legacy stream, which a non-blocking stream does not wait for).
  mutable_options().cuda_free_sync = 0;
  f.free(b);
  f.dev.complete_all();
  uint64_t c = f.alloc(4096);
  REQUIRE(c == a);
  f.dev.launch(s, f.ptr(c), 0x22, 4096);
  f.dev.complete(s);
  f.dev.complete_all();
  REQUIRE(all_bytes(f.ptr(c), 0x22, 4096));
}

TEST_CASE("front: pinned blocks by flags, a pool of their own, budget from host RAM",
          "[cuda][front][pinned]") {
  CudaFixture f(true, 0);  // budgets from the defaults
  void* a = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &a, 1000, true, 0) == cuda_api::kRtSuccess);
  REQUIRE(f.front.rt_release(nullptr, a, true) == cuda_api::kRtSuccess);
  void* b = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &b, 1000, true, 1) == cuda_api::kRtSuccess);  // other flags
  REQUIRE(b != a);
  f.dev.complete_all();
  void* c = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &c, 900, true, 0) == cuda_api::kRtSuccess);
  REQUIRE(c == a);
  DeviceReport r[4];
  size_t n = f.cache->reports(r, 4);
  REQUIRE(n == 1);
  REQUIRE(r[0].host);
  REQUIRE(r[0].budget == os::physical_memory() / 16);
  REQUIRE(f.counters(true).hits == 1);
  REQUIRE(f.counters(false).misses == 0);
}

TEST_CASE("front: threads allocate and free while another begins and ends captures",
          "[cuda][front][concurrency]") {
  CudaFixture f;
  cuda_api::Stream cs = f.dev.new_stream(cuda_api::kStreamNonBlocking);
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};  // Catch's REQUIRE is not for other threads
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&, t] {
      f.dev.set_current(f.ctx);
      cuda_api::Stream s = f.dev.new_stream(cuda_api::kStreamNonBlocking);
      std::vector<uint64_t> mine;
      for (int i = 0; !stop.load() || i < 2000; ++i) {
        if (mine.size() < 8) {
          uint64_t p = f.alloc(4096 * (1 + (i + t) % 4));
          if (p != 0) {
            f.dev.launch(s, f.ptr(p), t, 64);
            mine.push_back(p);
          }
        } else {
          if (f.free(mine.back()) != cuda_api::kCuSuccess) ++errors;
          mine.pop_back();
        }
        if (i % 16 == 0) f.dev.complete(s);
        if (i > 20000) break;
      }
      for (uint64_t p : mine) {
        if (f.free(p) != cuda_api::kCuSuccess) ++errors;
      }
    });
  }
  for (int i = 0; i < 500; ++i) {
    f.cache->streams().capture_enter();
    f.dev.begin_capture(cs, 0);
    f.cache->streams().capture_started(cs, f.ctx);
    f.dev.end_capture(cs);
    f.cache->streams().capture_ended(cs);
  }
  stop = true;
  for (std::thread& w : workers) w.join();
  REQUIRE(errors.load() == 0);
  PoolCounters c = f.counters();
  REQUIRE(c.live == 0);
  REQUIRE(c.reserved == c.cached);
  REQUIRE(f.dev.c.violations == 0);
}

TEST_CASE("cache: a pool's live peak is exact, and reset_peaks starts it again from live",
          "[cuda][cache][peak]") {
  CudaFixture f;
  uint64_t a = f.alloc(4 << 20);
  uint64_t b = f.alloc(2 << 20);
  REQUIRE(f.counters().live_peak == f.counters().live);
  const uint64_t both = f.counters().live;
  REQUIRE(f.free(a) == cuda_api::kCuSuccess);
  REQUIRE(f.free(b) == cuda_api::kCuSuccess);
  uint64_t c = f.alloc(1 << 20);  // a hit or a miss: the peak stays
  REQUIRE(f.counters().live_peak == both);
  f.cache->reset_peaks();
  REQUIRE(f.counters().live_peak == f.counters().live);
  REQUIRE(f.counters().live_peak < both);
  REQUIRE(f.free(c) == cuda_api::kCuSuccess);
}

TEST_CASE("front: cudaMalloc after cudaSetDevice gets the new device's memory, not a cached block "
          "of the old one (runtimes that bind the context lazily)", "[cuda][front]") {
  CudaFixture f;
  f.dev.set_current(nullptr);  // a runtime program: no context until its first call
  void* a = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &a, 4096, false, 0) == cuda_api::kRtSuccess);
  REQUIRE(f.dev.device_of_ptr(a) == 0);
  REQUIRE(f.front.rt_release(nullptr, a, false) == cuda_api::kRtSuccess);  // cached, device 0
  // cudaSetDevice(1) of a CUDA 11 runtime: device 0's context stays current until the next
  // runtime call that needs a context.
  FakeDevice::t_rt_device = 1;
  void* b = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &b, 4096, false, 0) == cuda_api::kRtSuccess);
  REQUIRE(b != a);
  REQUIRE(f.dev.device_of_ptr(b) == 1);
  REQUIRE(f.front.rt_release(nullptr, b, false) == cuda_api::kRtSuccess);
  // Back on device 0, its cached block is reused; device 1's is not handed out there.
  FakeDevice::t_rt_device = 0;
  void* c = nullptr;
  REQUIRE(f.front.rt_alloc(nullptr, &c, 4096, false, 0) == cuda_api::kRtSuccess);
  REQUIRE(c == a);
  REQUIRE(f.front.rt_release(nullptr, c, false) == cuda_api::kRtSuccess);
}

TEST_CASE("front: a miss during a capture makes no CUDA call but the allocation",
          "[cuda][front][capture]") {
  CudaFixture f;
  cuda_api::Stream s = f.dev.new_stream(cuda_api::kStreamNonBlocking);
  f.dev.capacity = 8 * kMiB;
  uint64_t a = f.alloc(6 * kMiB);  // 6 MiB cached: less free memory than the next request
  REQUIRE(a != 0);
  f.free(a);
  f.cache->streams().capture_enter();
  f.dev.begin_capture(s, 0);
  f.cache->streams().capture_started(s, f.ctx);
  uint64_t infos = f.dev.c.mem_infos;
  uint64_t b = f.alloc(512 * 1024);  // a miss: the real allocation, and nothing else
  REQUIRE(b != 0);
  REQUIRE(f.dev.c.mem_infos == infos);  // Note [Capture]: no query (Note [OOM retry] step 0)
  REQUIRE(f.counters().oom_retries == 0);
  REQUIRE(f.dev.c.violations == 0);
  f.dev.end_capture(s);
  f.cache->streams().capture_ended(s);
  f.free(b);
}

TEST_CASE("cache: a block allocated at the exact size near the free memory serves its size again",
          "[cuda][cache]") {
  CudaFixture f(true, 256 * kMiB);
  // 5 MiB + 4 KiB rounds up to 6 MiB, which does not fit: the last resort asks for the exact size.
  const size_t n = 5 * kMiB + 4096;
  f.dev.capacity = n + kMiB / 2;
  uint64_t a = f.alloc(n);
  REQUIRE(a != 0);
  REQUIRE(f.counters().reserved == n);
  f.free(a);
  uint64_t syncs = f.dev.c.syncs;
  uint64_t b = f.alloc(n);  // the same request: the cached block, no synchronisation, no free
  REQUIRE(b == a);
  REQUIRE(f.counters().hits == 1);
  REQUIRE(f.dev.c.syncs == syncs);
  f.free(b);
  uint64_t c = f.alloc(n + 4096);  // a larger request of the same layout never gets it
  REQUIRE(c != 0);
  REQUIRE(f.counters().hits == 1);  // a miss (the address may come back from CUDA)
  REQUIRE(f.counters().live == n + 4096);
}
