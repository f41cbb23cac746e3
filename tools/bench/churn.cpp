// churn: single-threaded small-object churn (16–256 B, random free order, ~10k live objects).
// See churn_kernel.h for what it models.
#include "churn_kernel.h"

namespace {
constexpr size_t kWorkingSet = 10000;
constexpr uint64_t kBaseOps = 20'000'000;
}  // namespace

extern "C" [[gnu::noinline]] bench::ChurnResult bench_measured_churn(uint64_t seed, uint64_t ops) {
  return bench::churn_loop(seed, kWorkingSet, ops);
}

int main(int argc, char** argv) {
  const auto o = bench::parse_args(argc, argv, "bench-churn",
                                   "small-object churn, 16-256 B, random free order, 10k live");
  const uint64_t ops = bench::scaled(kBaseOps, o.scale);
  bench::Stopwatch sw;
  const auto r = bench_measured_churn(o.seed, ops);
  const double t = sw.seconds();
  return bench::report("churn", t, ops, r.checksum, r.expected);
}
