// large: recurring large buffers. Each iteration allocates a buffer of one of a few recurring
// sizes between 1 and 64 MiB, writes all of it (memset), reads a sample back and frees it.
//
// Models the working buffers of image/video/ML/compression code: the same handful of big sizes,
// allocated and released every frame or batch. Allocators that return such blocks to the OS on
// free (munmap, or madvise past a trim threshold) pay a page fault per 4 KiB page on every
// iteration, which dominates the run; an allocator that caches the blocks does not.
#include "bench_util.h"

namespace {
constexpr size_t kMiB = size_t{1} << 20;
// The recurring sizes (MiB); the mean is ~14 MiB. Not all powers of two, as real frames are not.
constexpr size_t kSizesMiB[] = {1, 2, 3, 6, 8, 12, 16, 24, 32, 64};
constexpr size_t kNumSizes = sizeof kSizesMiB / sizeof kSizesMiB[0];
constexpr uint64_t kBaseIterations = 200;

struct Result {
  uint64_t checksum = 0, expected = 0;
};
}  // namespace

extern "C" [[gnu::noinline]] Result bench_measured_large(uint64_t seed, uint64_t iterations) {
  bench::Rng rng(seed);
  Result r;
  for (uint64_t i = 0; i < iterations; ++i) {
    const size_t size = kSizesMiB[rng.below(kNumSizes)] * kMiB;
    auto* p = static_cast<unsigned char*>(std::malloc(size));
    if (!p) std::abort();
    const auto fill = static_cast<unsigned char>(i * 7 + 1);
    std::memset(p, fill, size);
    bench::escape(p);
    // Read back one byte per 64 KiB: the whole buffer must hold the fill value.
    for (size_t off = 0; off < size; off += 65536) {
      r.checksum += p[off];
      r.expected += fill;
    }
    r.expected += bench::stamp(p, size, rng.next());
    r.checksum += bench::unstamp(p, size);
    std::free(p);
  }
  return r;
}

int main(int argc, char** argv) {
  const auto o = bench::parse_args(argc, argv, "bench-large",
                                   "recurring 1-64 MiB buffers, each written in full then freed");
  const uint64_t iterations = bench::scaled(kBaseIterations, o.scale);
  bench::Stopwatch sw;
  const auto r = bench_measured_large(o.seed, iterations);
  const double t = sw.seconds();
  return bench::report("large", t, iterations, r.checksum, r.expected);
}
