// realloc: buffers that grow by appends, through realloc.
//
// Models string builders, growing arrays and I/O buffers. 16 buffers grow side by side (so a
// buffer is rarely the last block on its heap and cannot always grow in place):
//   - half are "strings": C-style code that calls realloc(p, len + n) on every append of
//     1–256 B, up to a final length between 1 KiB and 64 KiB (log-uniform);
//   - half are "vectors": capacity doubles from 16 B when full, appends of 1–4 KiB, up to a
//     final length between 64 KiB and 4 MiB (log-uniform).
// Each appended byte range is written. When a buffer reaches its final length it is checked,
// freed and replaced by a new one. One op = one append (one realloc for strings).
#include <algorithm>
#include <vector>

#include "bench_util.h"

namespace {
constexpr size_t kBuffers = 16;
constexpr uint64_t kBaseAppends = 2'000'000;

struct Buffer {
  unsigned char* p = nullptr;
  size_t len = 0, cap = 0, target = 0;
  bool exact = false;  // string (realloc on every append) or vector (doubling)
  unsigned char fill = 0;
};

struct Result {
  uint64_t checksum = 0, expected = 0;
};
}  // namespace

extern "C" [[gnu::noinline]] Result bench_measured_realloc(uint64_t seed, uint64_t appends) {
  bench::Rng rng(seed);
  Result r;
  std::vector<Buffer> bufs(kBuffers);
  uint64_t generation = 0;
  auto start = [&](Buffer& b, size_t i) {
    b = Buffer{};
    b.exact = i % 2 == 0;
    b.target = b.exact ? rng.log_uniform(1024, 64 * 1024) : rng.log_uniform(64 * 1024, 4 << 20);
    b.fill = static_cast<unsigned char>(++generation);
  };
  // Verifies a finished buffer (every written byte must still hold the fill) and frees it.
  auto finish = [&](Buffer& b) {
    for (size_t off = 0; off < b.len; off += 251) r.checksum += b.p[off];
    for (size_t off = 0; off < b.len; off += 251) r.expected += b.fill;
    r.checksum += b.p[b.len - 1];
    r.expected += b.fill;
    std::free(b.p);
  };
  for (size_t i = 0; i < kBuffers; ++i) start(bufs[i], i);
  for (uint64_t n = 0; n < appends; ++n) {
    const size_t i = rng.below(kBuffers);
    Buffer& b = bufs[i];
    const size_t add = b.exact ? rng.between(1, 256) : rng.between(1, 4096);
    const size_t len = b.len + add;
    if (len > b.cap) {
      size_t cap = b.exact ? len : std::max<size_t>(b.cap, 16);
      while (cap < len) cap *= 2;
      b.p = static_cast<unsigned char*>(std::realloc(b.p, cap));
      if (!b.p) std::abort();
      b.cap = cap;
    }
    std::memset(b.p + b.len, b.fill, add);
    bench::escape(b.p);
    b.len = len;
    if (b.len >= b.target) {
      finish(b);
      start(b, i);
    }
  }
  for (auto& b : bufs)
    if (b.p) finish(b);
  return r;
}

int main(int argc, char** argv) {
  const auto o = bench::parse_args(argc, argv, "bench-realloc",
                                   "strings (realloc per append) and vectors (doubling) growing");
  const uint64_t appends = bench::scaled(kBaseAppends, o.scale);
  bench::Stopwatch sw;
  const auto r = bench_measured_realloc(o.seed, appends);
  const double t = sw.seconds();
  return bench::report("realloc", t, appends, r.checksum, r.expected);
}
