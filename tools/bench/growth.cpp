// growth: buffers that grow once and are never needed at their old sizes again.
//
// Models a program that builds its output: 48 strings grown side by side by realloc on every
// append (C-style, 16-128 B per append, up to 64 KiB each), and one std::vector<uint64_t> that
// doubles (new, copy, delete: no realloc) up to 32 MiB, filled as the strings grow. At the end of a
// round everything is checked and freed; 3 rounds. A cache that keeps every freed size holds each
// intermediate string and vector size although the next round only needs them briefly; an
// allocator that returns them holds about one vector and a half (the old 16 MiB and the touched
// part of the new 32 MiB) plus the strings. One op = one append or push_back.
#include <vector>

#include "bench_util.h"

namespace {
constexpr size_t kStrings = 48;
constexpr size_t kStringBytes = 64 * 1024;
constexpr size_t kVectorWords = (size_t{32} << 20) / sizeof(uint64_t);
constexpr int kBaseRounds = 3;

struct Result {
  uint64_t checksum = 0, expected = 0, ops = 0;
};
}  // namespace

extern "C" [[gnu::noinline]] Result bench_measured_growth(uint64_t seed, int rounds) {
  bench::Rng rng(seed);
  Result r;
  for (int round = 0; round < rounds; ++round) {
    unsigned char* str[kStrings] = {};
    size_t len[kStrings] = {};
    std::vector<uint64_t> vec;
    bench::escape(&vec);
    bool growing = true;
    while (growing) {
      growing = false;
      for (size_t i = 0; i < kStrings; ++i) {
        if (len[i] >= kStringBytes) continue;
        growing = true;
        const size_t add = rng.between(16, 128);
        str[i] = static_cast<unsigned char*>(std::realloc(str[i], len[i] + add));
        if (!str[i]) std::abort();
        std::memset(str[i] + len[i], static_cast<int>(i + 1), add);
        bench::escape(str[i]);
        len[i] += add;
        ++r.ops;
      }
      // The vector reaches 32 MiB about when the strings reach 64 KiB.
      for (int k = 0; k < 24 && vec.size() < kVectorWords; ++k) {
        vec.push_back(vec.size() * 3 + 1);
        ++r.ops;
      }
    }
    while (vec.size() < kVectorWords) {
      vec.push_back(vec.size() * 3 + 1);
      ++r.ops;
    }
    for (size_t i = 0; i < kStrings; ++i) {
      for (size_t off = 0; off < len[i]; off += 509) {
        r.checksum += str[i][off];
        r.expected += i + 1;
      }
      std::free(str[i]);
    }
    for (size_t j = 0; j < vec.size(); j += 4099) {
      r.checksum += vec[j];
      r.expected += j * 3 + 1;
    }
  }
  return r;
}

int main(int argc, char** argv) {
  const auto o = bench::parse_args(argc, argv, "bench-growth",
                                   "48 strings (realloc per append) and a doubling vector growing "
                                   "to 32 MiB, 3 rounds");
  const int rounds = static_cast<int>(bench::scaled(kBaseRounds, o.scale));
  bench::Stopwatch sw;
  const auto r = bench_measured_growth(o.seed, rounds);
  const double t = sw.seconds();
  return bench::report("growth", t, r.ops, r.checksum, r.expected);
}
