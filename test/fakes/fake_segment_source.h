// fake_segment_source.h - a SegmentSource for unit tests: real aligned mappings (so blocks can be written
// and read), every call counted, and failures on demand.
//
//   FakeSegmentSource pages;
//   pages.fail_maps(2);    // the next two map() calls return nullptr
//   pages.fail_maps(-1);   // every map() fails until recover()
//   pages.fail_decommits(-1);
//
// Mappings come from os::map_aligned directly, so os::inject_map_failures does not affect the fake
// (tests of the real OS path use OsSegmentSource). Counters are atomics: the fake may be shared by
// threads in the concurrency tests.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <vector>

#include <sys/mman.h>

#include "core/segment_source.h"

namespace cachealloc::test {

class FakeSegmentSource final : public SegmentSource {
 public:
  void* map(size_t size, size_t align) noexcept override {
    map_calls.fetch_add(1);
    if (take_failure(map_failures_)) {
      map_failed.fetch_add(1);
      return nullptr;
    }
    if (limit_bytes != 0 && mapped_bytes.load() + size > limit_bytes) {
      map_failed.fetch_add(1);
      return nullptr;
    }
    void* p = raw_map(size, align);
    if (p == nullptr) {
      map_failed.fetch_add(1);
      return nullptr;
    }
    maps.fetch_add(1);
    mapped_bytes.fetch_add(size);
    std::lock_guard<std::mutex> g(mu_);
    live_.insert(reinterpret_cast<uintptr_t>(p));
    return p;
  }
  void unmap(void* p, size_t size) noexcept override {
    unmaps.fetch_add(1);
    mapped_bytes.fetch_sub(size);
    {
      std::lock_guard<std::mutex> g(mu_);
      if (live_.erase(reinterpret_cast<uintptr_t>(p)) == 0) bad_unmaps.fetch_add(1);
    }
    munmap(p, size);
  }
  bool decommit(void* p, size_t size) noexcept override {
    decommit_calls.fetch_add(1);
    if (take_failure(decommit_failures_)) return false;
    decommits.fetch_add(1);
    decommitted_bytes.fetch_add(size);
    {
      std::lock_guard<std::mutex> g(mu_);
      decommit_log.push_back(reinterpret_cast<uintptr_t>(p));
    }
    madvise(p, size, MADV_DONTNEED);
    return true;
  }

  // n > 0: the next n calls fail; n < 0: every call fails; 0: none fail.
  void fail_maps(long n) noexcept { map_failures_.store(n); }
  void fail_decommits(long n) noexcept { decommit_failures_.store(n); }
  void recover() noexcept {
    map_failures_.store(0);
    decommit_failures_.store(0);
    limit_bytes = 0;
  }
  size_t live_mappings() {
    std::lock_guard<std::mutex> g(mu_);
    return live_.size();
  }
  bool is_mapped_segment(const void* p) {
    std::lock_guard<std::mutex> g(mu_);
    return live_.count(reinterpret_cast<uintptr_t>(p)) != 0;
  }

  std::atomic<uint64_t> map_calls{0}, maps{0}, map_failed{0}, unmaps{0}, bad_unmaps{0};
  std::atomic<uint64_t> decommit_calls{0}, decommits{0}, decommitted_bytes{0};
  std::atomic<size_t> mapped_bytes{0};
  size_t limit_bytes = 0;  // when nonzero, map() fails past this many mapped bytes
  std::vector<uintptr_t> decommit_log;  // start of each decommitted range, in call order

 private:
  static bool take_failure(std::atomic<long>& f) noexcept {
    long n = f.load();
    while (n > 0 && !f.compare_exchange_weak(n, n - 1)) {
    }
    return n != 0;
  }
  static void* raw_map(size_t size, size_t align) noexcept {
    size_t over = size + align;
    void* p = mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) return nullptr;
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uintptr_t start = (a + align - 1) & ~(uintptr_t{align} - 1);
    if (start > a) munmap(p, start - a);
    uintptr_t end = a + over;
    if (end > start + size) munmap(reinterpret_cast<void*>(start + size), end - (start + size));
    return reinterpret_cast<void*>(start);
  }

  std::atomic<long> map_failures_{0};
  std::atomic<long> decommit_failures_{0};
  std::mutex mu_;
  std::set<uintptr_t> live_;
};

}  // namespace cachealloc::test
