// runtime_cache_test.cpp - cudaMalloc/cudaFree caching through the stub runtime and driver.
//
// One program, one case per argv[1]; test/cuda/meson.build runs each case under
// LD_PRELOAD=libcachealloc.so with the environment the case needs.
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <thread>
#include <vector>

#include "cachealloc/stats_abi.h"
#include "cuda_test_util.h"

namespace {

void hit_miss() {
  void* a = dmalloc(1000);
  CHECK_EQ(cudaFree(a), cudaSuccess);
  void* b = dmalloc(900);  // same layout (1024 B): served from the cache
  CHECK(b == a);
  void* c = dmalloc(5000);  // another layout: a miss
  CHECK(c != a);
  ca_cuda_stats s = ca_stats();
  CHECK_EQ(s.hits, 1u);
  CHECK_EQ(s.misses, 2u);
  CHECK_EQ(s.live, 1024u + 5120u);
  // The runtime allocates through the driver, which cachealloc also wraps: counted once.
  CHECK_EQ(stub_counters().device_allocs, 2u);
  for (int i = 0; i < 100; ++i) {
    void* p = dmalloc(5000);
    CHECK_EQ(cudaFree(p), cudaSuccess);
  }
  CHECK_EQ(stub_counters().device_allocs, 3u);
  CHECK_EQ(ca_stats().hits, 100u);
  CHECK_EQ(cudaFree(b), cudaSuccess);
  CHECK_EQ(cudaFree(c), cudaSuccess);
  CHECK_EQ(cudaFree(nullptr), cudaSuccess);  // passes through
}

// Run with CACHEALLOC_CUDA_CACHE_BYTES=1M.
void lru_budget() {
  const size_t kBlock = 512 << 10;
  void* a = dmalloc(kBlock);
  void* b = dmalloc(kBlock);
  void* c = dmalloc(kBlock);
  void* d = dmalloc(kBlock);
  for (void* p : {a, b, c, d}) {
    CHECK_EQ(cudaFree(p), cudaSuccess);
    CHECK(ca_stats().cached <= (1u << 20));
  }
  ca_cuda_stats s = ca_stats();
  CHECK_EQ(s.cached, size_t{1} << 20);
  CHECK_EQ(s.evictions, 2u);
  CHECK_EQ(stub_counters().device_frees, 2u);  // a and b, the least recently freed
  void* e = dmalloc(kBlock);
  void* f = dmalloc(kBlock);
  CHECK((e == c && f == d) || (e == d && f == c));  // the two most recently freed were kept
  CHECK_EQ(stub_counters().device_allocs, 4u);
  // a was really freed: freeing it again is the runtime's business, with its own error.
  CHECK_EQ(cudaFree(a), cudaErrorInvalidValue);
  // A size too large for the budget is not kept.
  void* big = dmalloc(4u << 20);
  CHECK_EQ(cudaFree(big), cudaSuccess);
  CHECK(ca_stats().cached <= (1u << 20));
}

void pending_reuse() {
  cudaStream_t s = nullptr;
  CHECK_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  const size_t n = 4096;
  void* p = dmalloc(n);
  stub_launch(s, p, 0xAB, n);  // a kernel still writing p
  CHECK_EQ(cudaFree(p), cudaSuccess);
  void* q = dmalloc(n);
  CHECK(q != p);  // p's work has not finished: not handed out
  std::memset(q, 0x11, n);
  stub_complete(s);
  CHECK(all_bytes(p, 0xAB, n));
  CHECK(all_bytes(q, 0x11, n));  // the kernel did not touch the new owner's data
  void* r = dmalloc(n);
  CHECK(r == p);  // its work is done now
  CHECK_EQ(ca_stats().hits, 1u);

  // Blocking streams are covered by the event on the legacy stream.
  cudaStream_t b = nullptr;
  CHECK_EQ(cudaStreamCreate(&b), cudaSuccess);
  stub_launch(reinterpret_cast<CUstream>(b), r, 0xCD, n);
  CHECK_EQ(cudaFree(r), cudaSuccess);
  void* t = dmalloc(n);
  CHECK(t != r);
  stub_complete(reinterpret_cast<CUstream>(b));
  CHECK_EQ(cudaFree(t), cudaSuccess);
  void* u = dmalloc(n);
  CHECK(u == t || u == r);

  // The legacy default stream itself.
  stub_launch(nullptr, u, 0xEF, n);
  CHECK_EQ(cudaFree(u), cudaSuccess);
  void* v = dmalloc(n);
  CHECK(v != u);
  stub_complete(nullptr);
  CHECK(all_bytes(u, 0xEF, n));
  CHECK_EQ(cudaStreamDestroy(s), cudaSuccess);
  CHECK_EQ(cudaStreamDestroy(b), cudaSuccess);
  CHECK_EQ(ca_stats().syncs_forced, 0u);  // events did the work, no device synchronisation
}

// Run with STUBCU_CAPACITY=4M.
void oom_retry() {
  const size_t mib = 1 << 20;
  void* a = dmalloc(mib);
  void* b = dmalloc(mib);
  void* c = dmalloc(mib);
  CHECK_EQ(cudaFree(a), cudaSuccess);
  CHECK_EQ(cudaFree(b), cudaSuccess);
  CHECK_EQ(cudaFree(c), cudaSuccess);
  // 3 MiB cached, 4 MiB device: 2 MiB only fits once the cache lets go.
  void* d = nullptr;
  CHECK_EQ(cudaMalloc(&d, 2 * mib), cudaSuccess);
  CHECK_EQ(cudaGetLastError(), cudaSuccess);  // the failed first attempt left no error behind
  ca_cuda_stats s = ca_stats();
  CHECK_EQ(s.oom_retries, 1u);
  CHECK(s.evictions >= 1);

  // A block still in use by a kernel can only be reclaimed by synchronising.
  cudaStream_t st = nullptr;
  CHECK_EQ(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), cudaSuccess);
  void* e = dmalloc(mib);
  stub_launch(st, e, 1, mib);
  CHECK_EQ(cudaFree(e), cudaSuccess);
  CHECK_EQ(cudaFree(d), cudaSuccess);
  void* f = nullptr;
  CHECK_EQ(cudaMalloc(&f, 3 * mib + 512 * 1024), cudaSuccess);
  CHECK(all_bytes(e, 1, mib) || true);  // e was freed after the synchronisation ran the kernel
  CHECK(ca_stats().syncs_forced >= 1);
  CHECK_EQ(cudaGetLastError(), cudaSuccess);

  // When nothing helps the runtime's own error comes back, and stays the last error.
  stub_fail_allocs(1000);
  void* g = nullptr;
  CHECK_EQ(cudaMalloc(&g, 100), cudaErrorMemoryAllocation);
  CHECK_EQ(cudaGetLastError(), cudaErrorMemoryAllocation);
  stub_fail_allocs(0);
}

void double_free() {
  void* p = dmalloc(256);
  CHECK_EQ(cudaFree(p), cudaSuccess);
  CHECK_EQ(cudaFree(p), cudaErrorInvalidValue);
  CHECK_EQ(cudaFree(p), cudaErrorInvalidValue);
  void* q = nullptr;
  CHECK_EQ(cudaMallocHost(&q, 100), cudaSuccess);
  CHECK_EQ(cudaFreeHost(q), cudaSuccess);
  CHECK_EQ(cudaFreeHost(q), cudaErrorInvalidValue);
}

void foreign() {
  CHECK_EQ(cudaFree(nullptr), cudaSuccess);  // the usual way to initialise the runtime
  void* raw = stub_raw_alloc(8192);  // made by someone else
  CHECK(raw != nullptr);
  CHECK_EQ(ca_owns(raw), 0);
  uint64_t frees = stub_counters().device_frees;
  CHECK_EQ(cudaFree(raw), cudaSuccess);  // passed to the runtime, really freed
  CHECK_EQ(stub_counters().device_frees, frees + 1);
  int on_stack = 0;
  CHECK_EQ(cudaFree(&on_stack), cudaErrorInvalidValue);  // the runtime's verdict, unchanged
  CHECK(ca_stats().passthrough >= 2);
}

void capture() {
  cudaStream_t s = nullptr;
  CHECK_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  void* p = dmalloc(4096);
  void* q = dmalloc(4096);
  CHECK_EQ(cudaFree(p), cudaSuccess);  // cached
  stubcu_counters before = stub_counters();

  // Relaxed capture: p is pending and no fence may be recorded now, so the allocation is a real
  // one (CUDA allows that during a capture), registered like any other.
  CHECK_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
  void* r = nullptr;
  CHECK_EQ(cudaMalloc(&r, 4096), cudaSuccess);
  CHECK(r != p);
  CHECK_EQ(ca_owns(r), 1);
  void* g = nullptr;
  CHECK_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
  CHECK_EQ(cudaFree(r), cudaSuccess);

  // Global capture: freeing a cached block must not query, record or synchronise anything.
  CHECK_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  CHECK_EQ(cudaFree(q), cudaSuccess);
  CHECK_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);  // not invalidated
  stubcu_counters after = stub_counters();
  CHECK_EQ(after.capture_violations, 0u);
  CHECK_EQ(after.event_records, before.event_records);
  CHECK_EQ(after.event_queries, before.event_queries);
  // After the capture the cache works again.
  void* t = dmalloc(4096);
  CHECK(t == p || t == q || t == r);
  CHECK_EQ(cudaStreamDestroy(s), cudaSuccess);
}

void pinned() {
  void* a = nullptr;
  CHECK_EQ(cudaMallocHost(&a, 1000), cudaSuccess);
  std::memset(a, 7, 1000);
  CHECK_EQ(cudaFreeHost(a), cudaSuccess);
  void* b = nullptr;
  CHECK_EQ(cudaHostAlloc(&b, 1000, 0), cudaSuccess);
  CHECK(b == a);
  void* c = nullptr;
  CHECK_EQ(cudaHostAlloc(&c, 1000, cudaHostAllocPortable), cudaSuccess);
  CHECK(c != a);  // other flags: another layout
  ca_cuda_stats s = ca_stats(true);
  CHECK_EQ(s.hits, 1u);
  CHECK_EQ(s.misses, 2u);
  CHECK_EQ(stub_counters().host_allocs, 2u);
  CHECK_EQ(ca_stats(false).misses, 0u);
  CHECK_EQ(cudaFree(b), cudaErrorInvalidValue);  // not device memory: the runtime says so
  CHECK_EQ(ca_owns(b), 1);
  CHECK_EQ(cudaFreeHost(b), cudaSuccess);
  CHECK_EQ(cudaFreeHost(c), cudaSuccess);
}

void refcount() {
  void* p = dmalloc(2048);
  CHECK_EQ(ca_retain(p), 0);
  CHECK_EQ(cudaFree(p), cudaSuccess);
  CHECK_EQ(ca_owns(p), 1);  // one owner left
  CHECK_EQ(ca_release(p), 0);
  CHECK_EQ(ca_owns(p), 0);
  CHECK_EQ(ca_release(p), 22);  // EINVAL
  CHECK_EQ(ca_retain(p), 22);
  int x;
  CHECK_EQ(ca_retain(&x), 22);
  CHECK(ca_clear(-1) >= 2048);
  CHECK_EQ(ca_stats().cached, 0u);
}

void mem_get_info() {
  size_t free0 = 0, total = 0;
  CHECK_EQ(cudaMemGetInfo(&free0, &total), cudaSuccess);
  void* p = dmalloc(1 << 20);
  size_t free1 = 0;
  CHECK_EQ(cudaMemGetInfo(&free1, &total), cudaSuccess);
  CHECK_EQ(free1, free0 - (1 << 20));
  CHECK_EQ(cudaFree(p), cudaSuccess);
  size_t free2 = 0;
  CHECK_EQ(cudaMemGetInfo(&free2, &total), cudaSuccess);
  CHECK_EQ(free2, free0);  // cached bytes count as free
  CHECK_EQ(ca_stats().cached, size_t{1} << 20);
}

void device_reset() {
  void* p = dmalloc(4096);
  void* q = dmalloc(8192);
  CHECK_EQ(cudaFree(p), cudaSuccess);
  CHECK_EQ(cudaDeviceReset(), cudaSuccess);
  ca_cuda_stats s = ca_stats();
  CHECK_EQ(s.cached, 0u);
  CHECK_EQ(s.live, 0u);
  CHECK_EQ(s.reserved, 0u);
  CHECK_EQ(ca_owns(q), 0);
  void* r = dmalloc(4096);  // works again after the reset
  CHECK_EQ(cudaFree(r), cudaSuccess);
  void* t = dmalloc(4096);
  CHECK(t == r);
}

void ipc() {
  void* p = dmalloc(4096);
  char handle[64];
  CHECK_EQ(cudaIpcGetMemHandle(handle, p), cudaSuccess);
  uint64_t frees = stub_counters().device_frees;
  CHECK_EQ(cudaFree(p), cudaSuccess);
  CHECK_EQ(stub_counters().device_frees, frees + 1);  // really freed, never cached
  CHECK_EQ(ca_stats().cached, 0u);
}

// Run with CACHEALLOC_CUDA=0.
void disabled() {
  void* a = dmalloc(1000);
  CHECK_EQ(cudaFree(a), cudaSuccess);
  void* b = dmalloc(1000);
  CHECK_EQ(cudaFree(b), cudaSuccess);
  CHECK_EQ(cudaFree(b), cudaErrorInvalidValue);  // the runtime's own answer
  stubcu_counters c = stub_counters();
  CHECK_EQ(c.device_allocs, 2u);
  CHECK_EQ(c.device_frees, 2u);
  CHECK_EQ(c.event_records, 0u);
  ca_cuda_stats s = ca_stats();
  CHECK_EQ(s.hits + s.misses, 0u);
}

// Run with STUB_CUDA_DRIVER pointing nowhere: the runtime finds no driver.
void no_driver() {
  void* p = nullptr;
  CHECK_EQ(cudaMalloc(&p, 1000), cudaErrorInsufficientDriver);
  CHECK_EQ(cudaGetLastError(), cudaErrorInsufficientDriver);
  CHECK_EQ(cudaFree(nullptr), cudaErrorInsufficientDriver);
  CHECK_EQ(cudaMallocHost(&p, 1000), cudaErrorInsufficientDriver);
  CHECK_EQ(cudaFreeHost(p), cudaErrorInsufficientDriver);
  size_t f = 0, t = 0;
  CHECK_EQ(cudaMemGetInfo(&f, &t), cudaErrorInsufficientDriver);
  // Host allocation keeps working.
  std::vector<std::string> v;
  for (int i = 0; i < 1000; ++i) v.emplace_back(std::string(100 + i, 'x'));
  void* m = std::malloc(1 << 20);
  CHECK(m != nullptr);
  std::free(m);
  CHECK(dlopen("libcuda.so.1", RTLD_NOLOAD | RTLD_LAZY) == nullptr);  // nobody loaded a driver
}

void threads() {
  cudaStream_t s = nullptr;
  CHECK_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([t, s] {
      unsigned x = 12345u + t;
      std::vector<void*> mine;
      for (int i = 0; i < 2000; ++i) {
        x = x * 1103515245u + 12345u;
        size_t n = 256u << ((x >> 16) % 10);
        if (mine.size() < 8 && (x & 1)) {
          void* p = nullptr;
          CHECK_EQ(cudaMalloc(&p, n), cudaSuccess);
          if (x & 2) stub_launch(s, p, 0, 64);
          mine.push_back(p);
        } else if (!mine.empty()) {
          CHECK_EQ(cudaFree(mine.back()), cudaSuccess);
          mine.pop_back();
        }
        if (i % 97 == 0) stub_complete(s);
      }
      for (void* p : mine) CHECK_EQ(cudaFree(p), cudaSuccess);
    });
  }
  for (auto& t : ts) t.join();
  stub_complete(s);
  ca_cuda_stats st = ca_stats();
  CHECK_EQ(st.live, 0u);
  CHECK(st.hits > 1000);
  CHECK(ca_clear(-1) == st.cached);
  CHECK_EQ(stub_counters().used_bytes, 0u);  // everything went back
}

}  // namespace

// The device rows of this process's statistics segment after ca_stats_flush(), keyed by kind.
// Run with CACHEALLOC_CUDA_CACHE_BYTES=8M.
void stats_segment() {
  void* a = dmalloc(1000);
  CHECK_EQ(cudaFree(a), cudaSuccess);
  void* b = dmalloc(900);   // hit
  void* c = dmalloc(5000);  // miss
  void* h = nullptr;
  CHECK_EQ(cudaMallocHost(&h, 1000), cudaSuccess);
  CHECK_EQ(cudaFreeHost(h), cudaSuccess);
  CHECK_EQ(cachealloc_fn<int (*)()>("ca_stats_flush")(), 0);

  static unsigned char seg[CA_STATS_SEGMENT_SIZE];
  // "cachealloc.<pid>.<pid namespace inode>" (Note [Segment names], lib/stats/stats_segment.h).
  char ns_link[64] = {};
  CHECK(readlink("/proc/self/ns/pid", ns_link, sizeof ns_link - 1) > 0);
  std::string ns = ns_link;  // "pid:[4026531836]"
  ns = ns.substr(ns.find('[') + 1, ns.find(']') - ns.find('[') - 1);
  std::string path = "/dev/shm/" CA_STATS_NAME_PREFIX + std::to_string(getpid()) + "." + ns;
  int fd = open(path.c_str(), O_RDONLY);
  CHECK(fd >= 0);
  CHECK_EQ(read(fd, seg, sizeof seg), static_cast<ssize_t>(sizeof seg));
  close(fd);
  ca_stats_header hdr;
  std::memcpy(&hdr, seg, sizeof hdr);
  CHECK_EQ(hdr.magic, CA_STATS_MAGIC);
  CHECK_EQ(hdr.device_count, 2u);
  CHECK_EQ(hdr.device_row_size, sizeof(ca_stats_device_row));
  bool seen[2] = {false, false};
  for (uint32_t i = 0; i < hdr.device_count; ++i) {
    ca_stats_device_row r;
    std::memcpy(&r, seg + hdr.devices_offset + i * hdr.device_row_size, sizeof r);
    CHECK_EQ(r.device, 0);
    CHECK(r.pinned <= 1 && !seen[r.pinned]);
    seen[r.pinned] = true;
    CHECK_EQ(r.cache_limit, 8u << 20);
    if (r.pinned == 0) {
      CHECK_EQ(r.hits, 1u);
      CHECK_EQ(r.misses, 2u);
      CHECK_EQ(r.bytes_live, 1024u + 5120u);
      CHECK_EQ(r.bytes_cached, 0u);
      CHECK_EQ(r.bytes_reserved, 1024u + 5120u);
    } else {
      CHECK_EQ(r.hits, 0u);
      CHECK_EQ(r.misses, 1u);
      CHECK_EQ(r.bytes_live, 0u);
      CHECK_EQ(r.bytes_cached, 1024u);
      CHECK_EQ(r.bytes_reserved, 1024u);
    }
  }
  CHECK_EQ(cudaFree(b), cudaSuccess);
  CHECK_EQ(cudaFree(c), cudaSuccess);
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string c = argv[1];
  if (c == "hit_miss") hit_miss();
  else if (c == "lru_budget") lru_budget();
  else if (c == "pending_reuse") pending_reuse();
  else if (c == "oom_retry") oom_retry();
  else if (c == "double_free") double_free();
  else if (c == "foreign") foreign();
  else if (c == "capture") capture();
  else if (c == "pinned") pinned();
  else if (c == "refcount") refcount();
  else if (c == "mem_get_info") mem_get_info();
  else if (c == "device_reset") device_reset();
  else if (c == "ipc") ipc();
  else if (c == "disabled") disabled();
  else if (c == "no_driver") no_driver();
  else if (c == "threads") threads();
  else if (c == "stats_segment") stats_segment();
  else return 2;
  return 0;
}
