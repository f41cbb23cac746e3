// stats_cost: what one publication of the statistics segment costs, under the preloaded cachealloc.
//
// Statistics cost a program three things (docs/stats.md, "Overhead"): the owner-written counters
// on the fast paths (always there, also with CACHEALLOC_STATS=0), a clock read every 32 slow calls
// of a thread, and publications: at most one per kPublishIntervalNs (5 ms) from the program's slow
// paths, plus one round of the publisher thread every 250 ms (a build of the picture; a write only
// when it changed). This program measures the last: it fills many layouts (small classes, large
// blocks live and cached, other threads with their own caches), then times ca_stats_flush(), which
// builds and writes the whole picture as a tick's publication does. The bound on a program's CPU
// time is then publish_ns / 5 ms from ticks plus publish_ns / 250 ms from the thread.
//
//   LD_PRELOAD=build/preload/libcachealloc.so build/tools/bench/bench-stats_cost
//   BENCH workload=stats_cost seconds=... ops=2000 publish_ns=... bound_pct=... status=ok
#include <dlfcn.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "bench_util.h"

namespace {
using FlushFn = int (*)();

// Live and cached blocks over every small size class and a spread of large sizes.
std::vector<void*> fill_layouts() {
  std::vector<void*> live;
  for (size_t size = 16; size <= (size_t{64} << 10); size += size / 8 + 8) {
    for (int i = 0; i < 48; ++i) {
      auto* p = static_cast<unsigned char*>(std::malloc(size));
      p[0] = static_cast<unsigned char>(i);
      live.push_back(p);
    }
  }
  for (size_t size = size_t{100} << 10; size <= (size_t{8} << 20); size += size / 2) {
    for (int i = 0; i < 3; ++i) {
      auto* p = static_cast<unsigned char*>(std::malloc(size));
      p[size - 1] = 1;
      live.push_back(p);
    }
  }
  for (size_t i = 0; i < live.size(); i += 2) {  // every other one freed: cached layouts too
    std::free(live[i]);
    live[i] = nullptr;
  }
  return live;
}
}  // namespace

extern "C" [[gnu::noinline]] double bench_measured_stats_cost(FlushFn flush, uint64_t n) {
  bench::Stopwatch sw;
  for (uint64_t i = 0; i < n; ++i) flush();
  return sw.seconds();
}

int main(int argc, char** argv) {
  const auto o = bench::parse_args(argc, argv, "bench-stats_cost",
                                   "the cost of one statistics publication (needs cachealloc)");
  auto flush = reinterpret_cast<FlushFn>(dlsym(RTLD_DEFAULT, "ca_stats_flush"));
  if (flush == nullptr) {
    std::fprintf(stderr, "bench-stats_cost: no ca_stats_flush: run it under the cachealloc preload\n");
    return 2;
  }
  if (flush() != 0) {
    std::fprintf(stderr, "bench-stats_cost: ca_stats_flush failed (CACHEALLOC_STATS=0?)\n");
    return 2;
  }
  std::vector<void*> live = fill_layouts();
  // Other threads (--threads N: N - 1 of them) with blocks in their own caches, alive while we
  // measure: a publication visits every thread's cache.
  std::mutex m;
  std::condition_variable cv;
  unsigned ready = 0;
  bool done = false;
  const unsigned others = o.threads > 1 ? o.threads - 1 : 0;
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < others; ++t) {
    threads.emplace_back([&] {
      std::vector<void*> mine = fill_layouts();
      std::unique_lock<std::mutex> lock(m);
      ++ready;
      cv.notify_all();
      cv.wait(lock, [&] { return done; });
      lock.unlock();
      for (void* p : mine) std::free(p);
    });
  }
  {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return ready == others; });
  }
  const uint64_t per_batch = bench::scaled(400, o.scale);
  std::vector<double> batches;
  double total = 0;
  for (int b = 0; b < 5; ++b) {
    double s = bench_measured_stats_cost(flush, per_batch);
    batches.push_back(s / static_cast<double>(per_batch));
    total += s;
  }
  std::sort(batches.begin(), batches.end());
  const double publish_ns = batches[batches.size() / 2] * 1e9;
  {
    std::lock_guard<std::mutex> lock(m);
    done = true;
  }
  cv.notify_all();
  for (std::thread& t : threads) t.join();
  uint64_t sum = 0;
  for (void* p : live) {
    if (p != nullptr) sum += static_cast<unsigned char*>(p)[0];
    std::free(p);
  }
  const double bound_pct = 100.0 * (publish_ns / 5e6 + publish_ns / 250e6);
  std::printf("BENCH workload=stats_cost seconds=%.9f ops=%" PRIu64 " publish_ns=%.0f "
              "bound_pct=%.3f threads=%u checksum=0x%" PRIx64 " status=ok\n",
              total, per_batch * 5, publish_ns, bound_pct, others + 1, sum);
  return 0;
}
