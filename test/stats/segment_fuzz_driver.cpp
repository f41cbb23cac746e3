// segment_fuzz_driver.cpp - runs the segment-reader fuzz target without libFuzzer: a fixed corpus
// (seed segments, plus any files named on the command line) and a deterministic stream of
// mutations of it. `meson test` runs a short pass; pass --iterations N for a longer one, or
// --write-corpus DIR to give libFuzzer (segment_libfuzzer DIR) a starting point.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "cachealloc/stats_abi.h"
#include "segment_fuzz.h"
#include "segment_reader.h"

namespace {

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
};

// Mutations aimed at what the reader must check: sizes, offsets, counts, names, the length.
void mutate(std::vector<unsigned char>& b, Rng& rng) {
  static const uint32_t kInteresting[] = {0, 1, 7, 8, 0x7f, 0x80, 0xff, 0x100, 128, 256, 4096,
                                          CA_STATS_SEGMENT_SIZE, CA_STATS_SEGMENT_SIZE + 8,
                                          0x7fffffff, 0x80000000, 0xfffffff8, 0xffffffff};
  int rounds = 1 + static_cast<int>(rng.below(4));
  for (int r = 0; r < rounds; ++r) {
    switch (rng.below(7)) {
      case 0:  // flip a bit anywhere
        if (!b.empty()) b[rng.below(b.size())] ^= static_cast<unsigned char>(1u << rng.below(8));
        break;
      case 1:  // an interesting 32-bit value over a header word
      case 2: {
        size_t off = 4 * rng.below(sizeof(ca_stats_header) / 4);
        uint32_t v = kInteresting[rng.below(sizeof kInteresting / sizeof kInteresting[0])];
        if (off + 4 <= b.size()) memcpy(b.data() + off, &v, 4);
        break;
      }
      case 3:  // truncate
        b.resize(rng.below(b.size() + 1));
        break;
      case 4:  // grow
        b.resize(b.size() + 1 + rng.below(64), static_cast<unsigned char>(rng.next()));
        break;
      case 5:  // fill the program name without a terminator
        if (b.size() >= 160) memset(b.data() + 80, 'A' + static_cast<int>(rng.below(26)), 64);
        break;
      case 6: {  // a random 64-bit value over a header word
        size_t off = 8 * rng.below(sizeof(ca_stats_header) / 8);
        uint64_t v = rng.next();
        if (off + 8 <= b.size()) memcpy(b.data() + off, &v, 8);
        break;
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = 20000;
  std::vector<std::vector<unsigned char>> corpus = {make_seed_segment(1234, 0),
                                                    make_seed_segment(1234, 7),
                                                    make_seed_segment(99, CA_STATS_LAYOUT_CAPACITY)};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--iterations" && i + 1 < argc) {
      iterations = std::strtol(argv[++i], nullptr, 10);
    } else if (a == "--write-corpus" && i + 1 < argc) {
      std::string dir = argv[++i];
      for (size_t k = 0; k < corpus.size(); ++k) {
        std::ofstream f(dir + "/seed" + std::to_string(k), std::ios::binary);
        f.write(reinterpret_cast<const char*>(corpus[k].data()), static_cast<std::streamsize>(corpus[k].size()));
      }
      return 0;
    } else {
      std::ifstream f(a, std::ios::binary);
      corpus.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
  }
  // The seeds must be accepted, or the mutations below test nothing.
  for (size_t k = 0; k < 3; ++k) {
    castats::Segment seg;
    castats::ParseError err;
    if (!castats::parse_segment(corpus[k].data(), corpus[k].size(), &seg, &err)) {
      fprintf(stderr, "FAIL: seed %zu rejected: %s\n", k, err.message.c_str());
      return 1;
    }
  }
  Rng rng{0x9e3779b97f4a7c15ull};
  long accepted = 0;
  for (long i = 0; i < iterations; ++i) {
    std::vector<unsigned char> b = corpus[rng.below(corpus.size())];
    mutate(b, rng);
    LLVMFuzzerTestOneInput(b.data(), b.size());
    castats::Segment seg;
    castats::ParseError err;
    accepted += castats::parse_segment(b.data(), b.size(), &seg, &err) ? 1 : 0;
  }
  printf("segment fuzz: %ld inputs (%zu corpus entries), %ld accepted, no crash\n", iterations,
         corpus.size(), accepted);
  return 0;
}
