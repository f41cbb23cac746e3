// threads: N threads (default 2) each run the churn loop on a private working set, with no
// sharing between them. The total work equals `churn`'s, split evenly, so on N free cores an
// allocator that scales perfectly runs this in 1/N of its `churn` time; one with a contended lock
// or false sharing on its fast path does not.
#include <thread>
#include <vector>

#include "churn_kernel.h"

namespace {
constexpr size_t kWorkingSet = 10000;
constexpr uint64_t kBaseOps = 20'000'000;  // in total, over all threads
}  // namespace

extern "C" [[gnu::noinline]] void bench_measured_thread(uint64_t seed, uint64_t ops,
                                                        bench::ChurnResult* out) {
  *out = bench::churn_loop(seed, kWorkingSet, ops);
}

int main(int argc, char** argv) {
  const auto o = bench::parse_args(argc, argv, "bench-threads",
                                   "N threads (--threads, default 2), each churning");
  const uint64_t per_thread = bench::scaled(kBaseOps, o.scale) / o.threads + 1;
  std::vector<bench::ChurnResult> results(o.threads);
  std::vector<std::thread> workers;
  workers.reserve(o.threads);
  bench::Stopwatch sw;
  for (unsigned i = 0; i < o.threads; ++i)
    workers.emplace_back(bench_measured_thread, o.seed + i, per_thread, &results[i]);
  for (auto& w : workers) w.join();
  const double t = sw.seconds();
  uint64_t checksum = 0, expected = 0;
  for (const auto& r : results) {
    checksum += r.checksum;
    expected += r.expected;
  }
  return bench::report("threads", t, per_thread * o.threads, checksum, expected);
}
