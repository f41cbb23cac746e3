// tools/bench/bench_util.h — what every workload program shares.
//
// The workload programs call only the standard malloc/free/realloc/new; which allocator serves them
// is chosen at run time with LD_PRELOAD (tools/bench/run.py does that). Each program:
//   - parses `--scale X` (multiplies the amount of work; run.py --callgrind uses a small one),
//     `--threads N` and `--seed S`;
//   - times only its measured section with steady_clock (Stopwatch);
//   - stamps every block it allocates with a tag and reads the tag back before freeing it, so the
//     compiler cannot remove the work and a corrupting allocator is caught (the "checksum");
//   - prints one machine-readable line, parsed by run.py:
//       BENCH workload=churn seconds=0.412345678 ops=12000000 checksum=0x1234abcd status=ok
//     and exits 0, or prints status=MISMATCH and exits 1.
// The checksum depends only on the seed and the scale, so it is the same under every allocator;
// run.py compares it across allocators as a second check.
//
// The measured section of each program is a function whose name starts with `bench_measured`
// (extern "C", noinline): `valgrind --tool=callgrind --toggle-collect='bench_measured*'` counts the
// instructions of exactly that section.
#pragma once

#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace bench {

struct Options {
  double scale = 1.0;    // multiplies the number of operations (or iterations)
  unsigned threads = 2;  // for the multi-threaded workloads
  uint64_t seed = 42;
};

inline Options parse_args(int argc, char** argv, const char* name, const char* what) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--scale" && v) {
      o.scale = std::strtod(v, nullptr);
      ++i;
    } else if (a == "--threads" && v) {
      o.threads = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
      ++i;
    } else if (a == "--seed" && v) {
      o.seed = std::strtoull(v, nullptr, 0);
      ++i;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--scale X] [--threads N] [--seed S]\n  %s\n"
                   "The allocator is the one in effect for the process (use LD_PRELOAD).\n",
                   name, what);
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  if (!(o.scale > 0) || o.threads == 0) {
    std::fprintf(stderr, "%s: --scale must be > 0 and --threads >= 1\n", name);
    std::exit(2);
  }
  return o;
}

// Scales a base count by --scale, never below 1.
inline uint64_t scaled(uint64_t base, double scale) {
  double n = std::floor(static_cast<double>(base) * scale);
  return n < 1 ? 1 : static_cast<uint64_t>(n);
}

// xoshiro256** seeded by splitmix64: fast, and the same sequence on every machine.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& s : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      s = z ^ (z >> 31);
    }
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n), n > 0 (Lemire's multiply-shift; the tiny bias does not matter here).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  // Uniform in [lo, hi].
  uint64_t between(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Log-uniform in [lo, hi]: every power of two in the range is equally likely.
  size_t log_uniform(size_t lo, size_t hi) {
    const double l = std::log(static_cast<double>(lo)), h = std::log(static_cast<double>(hi));
    size_t n = static_cast<size_t>(std::exp(l + (h - l) * unit()));
    return n < lo ? lo : (n > hi ? hi : n);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// Keeps a pointer (and what it points to) alive in the optimizer's eyes.
inline void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Block stamps: a 64-bit tag in the first 8 bytes and its low byte in the last byte. stamp()
// returns what unstamp() will return for an intact block; the workload adds the former to its
// "expected" sum when it allocates and the latter to its "checksum" when it frees.
inline uint64_t stamp(void* p, size_t size, uint64_t tag) {
  std::memcpy(p, &tag, sizeof tag);
  static_cast<unsigned char*>(p)[size - 1] = static_cast<unsigned char>(tag);
  return tag + (tag & 0xff);
}
inline uint64_t unstamp(const void* p, size_t size) {
  uint64_t tag;
  std::memcpy(&tag, p, sizeof tag);
  return tag + static_cast<const unsigned char*>(p)[size - 1];
}

// Prints the result line; returns the process exit status.
inline int report(const char* workload, double seconds, uint64_t ops, uint64_t checksum,
                  uint64_t expected) {
  const bool ok = checksum == expected;
  std::printf("BENCH workload=%s seconds=%.9f ops=%" PRIu64 " checksum=0x%016" PRIx64
              " status=%s\n",
              workload, seconds, ops, checksum, ok ? "ok" : "MISMATCH");
  if (!ok)
    std::fprintf(stderr, "%s: checksum 0x%016" PRIx64 " != expected 0x%016" PRIx64
                 " (memory was corrupted)\n", workload, checksum, expected);
  std::fflush(stdout);
  return ok ? 0 : 1;
}

// Writes one byte in every 4 KiB page of [p, p+size) — what makes the kernel fault pages in.
// escape() keeps the stores: without it they are dead stores before free() and may be removed.
inline void touch_pages(void* p, size_t size, unsigned char value) {
  auto* b = static_cast<unsigned char*>(p);
  for (size_t off = 0; off < size; off += 4096) b[off] = value;
  escape(p);
}

}  // namespace bench
