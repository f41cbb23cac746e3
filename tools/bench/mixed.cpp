// mixed: sizes from 16 B to 1 MiB, log-uniform (every power of two equally likely), with a live
// set of 512 objects (~50 MB on average) and the memory of each new object touched.
//
// Models a general-purpose program (a compiler, a database, a document processor) whose objects
// span the small, medium and large paths of the allocator at once. Each new block gets one write
// per 4 KiB page, so allocators that hand back memory to the OS too eagerly pay page faults and
// allocators that fragment pay in RSS; both show up in the run.py table (time and peak RSS).
#include <vector>

#include "bench_util.h"

namespace {
constexpr size_t kLiveSet = 512;
constexpr size_t kMinSize = 16;
constexpr size_t kMaxSize = 1 << 20;
constexpr uint64_t kBaseOps = 1'000'000;

struct Slot {
  void* p;
  size_t size;
};

struct Result {
  uint64_t checksum = 0, expected = 0;
};
}  // namespace

extern "C" [[gnu::noinline]] Result bench_measured_mixed(uint64_t seed, uint64_t ops) {
  bench::Rng rng(seed);
  Result r;
  std::vector<Slot> slots(kLiveSet);
  auto fresh = [&](Slot& s) {
    s.size = rng.log_uniform(kMinSize, kMaxSize);
    s.p = std::malloc(s.size);
    if (!s.p) std::abort();
    bench::touch_pages(s.p, s.size, static_cast<unsigned char>(s.size));
    r.expected += bench::stamp(s.p, s.size, rng.next());
  };
  for (auto& s : slots) fresh(s);
  for (uint64_t i = 0; i < ops; ++i) {
    Slot& s = slots[rng.below(kLiveSet)];
    r.checksum += bench::unstamp(s.p, s.size);
    std::free(s.p);
    fresh(s);
  }
  for (auto& s : slots) {
    r.checksum += bench::unstamp(s.p, s.size);
    std::free(s.p);
  }
  return r;
}

int main(int argc, char** argv) {
  const auto o = bench::parse_args(argc, argv, "bench-mixed",
                                   "mixed sizes 16 B-1 MiB (log-uniform), 512 live, pages touched");
  const uint64_t ops = bench::scaled(kBaseOps, o.scale);
  bench::Stopwatch sw;
  const auto r = bench_measured_mixed(o.seed, ops);
  const double t = sw.seconds();
  return bench::report("mixed", t, ops, r.checksum, r.expected);
}
