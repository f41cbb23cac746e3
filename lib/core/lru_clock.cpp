// lru_clock.cpp - see lru_clock.h.
#include "core/lru_clock.h"

#include <atomic>

namespace cachealloc {
namespace {
constinit std::atomic<uint64_t> g_lru_clock{1};
}  // namespace

uint64_t next_lru_stamp() noexcept { return g_lru_clock.fetch_add(1, std::memory_order_relaxed); }

uint64_t current_lru_stamp() noexcept { return g_lru_clock.load(std::memory_order_relaxed); }

uint64_t DecayClock::tick(uint64_t now_ns, uint64_t decay_ns) noexcept {
  if (decay_ns == 0) return 0;
  uint64_t last = last_.load(std::memory_order_relaxed);
  if (now_ns - last < decay_ns / 8) return 0;
  // One thread takes the checkpoint; the others go on at once.
  if (!last_.compare_exchange_strong(last, now_ns, std::memory_order_relaxed)) return 0;
  unsigned slot = next_.load(std::memory_order_relaxed);
  ring_[slot].time.store(now_ns, std::memory_order_relaxed);
  ring_[slot].stamp.store(current_lru_stamp(), std::memory_order_relaxed);
  next_.store((slot + 1) % kRing, std::memory_order_relaxed);
  uint64_t cutoff = 0;
  for (const Checkpoint& c : ring_) {
    uint64_t t = c.time.load(std::memory_order_relaxed);
    uint64_t stamp = c.stamp.load(std::memory_order_relaxed);
    if (t != 0 && now_ns - t >= decay_ns && stamp > cutoff) cutoff = stamp;
  }
  return cutoff;
}

}  // namespace cachealloc
