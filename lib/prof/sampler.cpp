// sampler.cpp - see sampler.h (Note [Heap profiling]).
#include "prof/sampler.h"

#include <atomic>

#include "platform/os.h"
#include "prof/sample_math.h"
#include "prof/stack_trace.h"

namespace cachealloc::prof {

namespace {
constexpr int64_t kParked = INT64_MAX / 2;  // never reached: profiling is off
constinit std::atomic<uint64_t> g_rate{0};
constinit thread_local bool t_armed = false;
constinit thread_local uint64_t t_rng = 0;

// An exponential draw with mean `rate`, at least 1 (xorshift64*; the seed from getrandom).
int64_t next_interval(uint64_t rate) noexcept {
  if (t_rng == 0) t_rng = os::random_u64() | 1;
  t_rng ^= t_rng >> 12;
  t_rng ^= t_rng << 25;
  t_rng ^= t_rng >> 27;
  uint64_t bits = (t_rng * 0x2545F4914F6CDD1Dull) >> 11;  // 53 bits
  double u = (static_cast<double>(bits) + 1.0) * 0x1.0p-53;  // (0, 1]
  double d = -log_positive(u) * static_cast<double>(rate);
  if (d >= static_cast<double>(kParked)) return kParked;
  return static_cast<int64_t>(d) + 1;
}
}  // namespace

bool sample_slow(size_t n) noexcept {
  uint64_t rate = g_rate.load(std::memory_order_relaxed);
  if (rate == 0) {
    t_slots.bytes_until_sample = kParked;
    t_armed = false;
    return false;
  }
  if (!t_armed) {
    // First count since profiling started on this thread: draw a point and count n against it,
    // so the thread's first allocation is no likelier to be sampled than any other.
    t_armed = true;
    t_slots.bytes_until_sample = next_interval(rate) - static_cast<int64_t>(n);
    if (t_slots.bytes_until_sample >= 0) return false;
  }
  t_slots.bytes_until_sample = next_interval(rate);
  return !in_profiler();
}

void set_sample_rate(uint64_t rate) noexcept {
  g_rate.store(rate, std::memory_order_relaxed);
  t_armed = false;
  t_slots.bytes_until_sample = 0;
}

uint64_t sample_rate() noexcept { return g_rate.load(std::memory_order_relaxed); }

double sample_weight(uint64_t size, uint64_t rate) noexcept {
  if (rate == 0) return 1.0;
  double s = size == 0 ? 1.0 : static_cast<double>(size);
  return 1.0 / -expm1_nonpositive(-s / static_cast<double>(rate));
}

}  // namespace cachealloc::prof
