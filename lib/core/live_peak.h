// live_peak.h - the process's bytes in the program's hands, and their exact peak, kept on slow
// paths only.
//
// Note [Live peak]
// The published bytes_live is sampled, so a peak taken from publications misses a spike that
// comes and goes between two of them. LivePeak keeps a running total that the slow paths update
// and the largest value it ever reached:
//   + a large block becoming live (LargeCache: new, reused from the cache, adopted), - its free;
//   + small blocks leaving a CentralPool (a thread cache's refill, a cache-less allocation),
//   - small blocks given back to it (a flush, a cache-less free).
// So "live" here counts a small block from the moment its batch leaves the central pool until the
// batch returns: the live blocks plus the free blocks sitting in thread caches. The peak is exact
// for that total at every one of those events, never below the true peak of live bytes, and above
// it by at most what the thread caches held at that moment. The thread-cache fast paths never
// touch it (no shared write there); every update is one atomic add on a slow path, plus a
// compare-exchange when the total reaches a new peak.
//
// Who calls: CentralPool::take/give, LargeCache (under its lock), Heap::reset_peak; read by
// Heap::snapshot. Constant-initialised, no lock.
#pragma once

#include <atomic>
#include <cstdint>

namespace cachealloc {

class LivePeak {
 public:
  constexpr LivePeak() = default;
  // A part of a larger total (a pool of the process): every add and sub goes to `whole` as well.
  constexpr explicit LivePeak(LivePeak* whole) : whole_(whole) {}
  void set_whole(LivePeak* whole) noexcept { whole_ = whole; }  // before any add

  void add(uint64_t bytes) noexcept {
    if (whole_ != nullptr) whole_->add(bytes);
    uint64_t now = total_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    uint64_t p = peak_.load(std::memory_order_relaxed);
    while (now > p && !peak_.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
    }
    if (now > p) {  // a new peak; the high-water mark may move too
      uint64_t h = high_.load(std::memory_order_relaxed);
      while (now > h && !high_.compare_exchange_weak(h, now, std::memory_order_relaxed)) {
      }
    }
  }
  void sub(uint64_t bytes) noexcept {
    if (whole_ != nullptr) whole_->sub(bytes);
    total_.fetch_sub(bytes, std::memory_order_relaxed);
  }

  uint64_t total() const noexcept { return total_.load(std::memory_order_relaxed); }
  uint64_t peak() const noexcept { return peak_.load(std::memory_order_relaxed); }
  // The largest total since the start, which reset() leaves alone (the cache's headroom).
  uint64_t high_water() const noexcept { return high_.load(std::memory_order_relaxed); }
  // The peak starts again from the total now (ca_reset_peak).
  void reset() noexcept { peak_.store(total(), std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> peak_{0};
  std::atomic<uint64_t> high_{0};
  LivePeak* whole_ = nullptr;
};

}  // namespace cachealloc
