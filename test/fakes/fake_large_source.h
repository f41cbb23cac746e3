// fake_large_source.h - a LargeSource for unit tests: real memory from aligned_alloc, every call
// counted with its size and alignment, failures on demand, and a check that each free matches a
// live allocation with the same size and alignment.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include <sys/mman.h>

#include "core/large_source.h"

namespace cachealloc::test {

class FakeLargeSource final : public LargeSource {
 public:
  struct Call {
    size_t size;
    size_t align;
  };

  void* alloc(size_t size, size_t align, bool zero) noexcept override {
    alloc_calls.fetch_add(1);
    if (take_failure()) {
      alloc_failed.fetch_add(1);
      return nullptr;
    }
    if (size >= split_min_bytes) {  // a mapping of its own, which may be freed in parts
      void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return nullptr;
      (void)zero;  // fresh mappings read as zero
      {
        std::lock_guard<std::mutex> g(mu_);
        erase_seams(reinterpret_cast<uintptr_t>(p), size);
      }
      allocs.fetch_add(1);
      live_bytes.fetch_add(size);
      mapped_bytes.fetch_add(size);
      return p;
    }
    if (limit_bytes != 0 && live_bytes.load() + size > limit_bytes) {
      alloc_failed.fetch_add(1);
      return nullptr;
    }
    size_t a = align < sizeof(void*) ? sizeof(void*) : align;
    void* p = aligned_alloc(a, (size + a - 1) / a * a);
    if (p == nullptr) return nullptr;
    if (zero) memset(p, 0, size);
    else memset(p, 0xa5, size);  // make "forgot to zero" visible
    allocs.fetch_add(1);
    live_bytes.fetch_add(size);
    std::lock_guard<std::mutex> g(mu_);
    alloc_log.push_back(Call{size, align});
    live_[p] = Call{size, align};
    return p;
  }
  void free(void* p, size_t size, size_t align) noexcept override {
    frees.fetch_add(1);
    if (size >= split_min_bytes) {
      if (reinterpret_cast<uintptr_t>(p) % 4096 != 0 || size % 4096 != 0) bad_frees.fetch_add(1);
      munmap(p, size);
      live_bytes.fetch_sub(size);
      mapped_bytes.fetch_sub(size);
      return;
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      free_log.push_back(Call{size, align});
      auto it = live_.find(p);
      if (it == live_.end() || it->second.size != size || it->second.align != align) {
        bad_frees.fetch_add(1);
        return;  // leak rather than crash: the test checks bad_frees
      }
      live_.erase(it);
    }
    live_bytes.fetch_sub(size);
    ::free(p);
  }

  // Off unless `resizable`: then a resize moves the block (new memory, contents copied, old freed),
  // as mremap may, or fails when `fail_resizes` says so.
  void* resize(void* p, size_t old_size, size_t new_size, size_t align) noexcept override {
    resize_calls.fetch_add(1);
    if (!resizable || fail_resizes) return nullptr;
    void* q = alloc(new_size, align, false);
    if (q == nullptr) return nullptr;
    memcpy(q, p, old_size < new_size ? old_size : new_size);
    free(p, old_size, align);
    resizes.fetch_add(1);
    return q;
  }
  // Moves pages with the kernel (its big blocks are real mappings), or refuses or loses them as
  // told: `refuse_moves` leaves both ranges as they were, `lose_moves` unmaps the destination and
  // says so (it is not the cache's to give back any more). Like kernels before 6.17 it
  // refuses a range that spans two mappings (it remembers where moves made them meet), which
  // newer kernels would move.
  Move move(void* from, size_t size, void* to) noexcept override {
    const auto a = reinterpret_cast<uintptr_t>(from), b = reinterpret_cast<uintptr_t>(to);
    if (a % 4096 != 0 || size % 4096 != 0) bad_frees.fetch_add(1);
    {
      std::lock_guard<std::mutex> g(mu_);
      auto seam = seams_.upper_bound(a);
      if (seam != seams_.end() && *seam < a + size) {
        move_failed.fetch_add(1);
        return Move::kRefused;
      }
    }
    if (refuse_moves > 0) {
      --refuse_moves;
      return Move::kRefused;
    }
    if (lose_moves > 0) {  // the kernel unmapped `to` and something else may have taken it
      --lose_moves;
      munmap(to, size);
      live_bytes.fetch_sub(size);
      mapped_bytes.fetch_sub(size);
      return Move::kLost;
    }
    if (Move m = os::move_pages(from, size, to); m != Move::kMoved) {
      move_failed.fetch_add(1);
      return m;
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      erase_seams(b, size);
      seams_.insert(b);
      seams_.insert(b + size);
    }
    live_bytes.fetch_sub(size);
    mapped_bytes.fetch_sub(size);
    return Move::kMoved;
  }
  void free_part(void* p, size_t size) noexcept override {
    part_frees.fetch_add(1);
    if (reinterpret_cast<uintptr_t>(p) % 4096 != 0 || size % 4096 != 0) bad_frees.fetch_add(1);
    munmap(p, size);
    live_bytes.fetch_sub(size);
    mapped_bytes.fetch_sub(size);
  }
  size_t retained_bytes() noexcept override { return retained; }
  size_t split_min() const noexcept override { return split_min_bytes; }

  void fail_allocs(long n) noexcept { failures_.store(n); }
  void recover() noexcept {
    failures_.store(0);
    limit_bytes = 0;
  }
  size_t live_blocks() {
    std::lock_guard<std::mutex> g(mu_);
    return live_.size();
  }
  std::vector<Call> allocs_logged() {
    std::lock_guard<std::mutex> g(mu_);
    return alloc_log;
  }

  std::atomic<uint64_t> alloc_calls{0}, allocs{0}, alloc_failed{0}, frees{0}, bad_frees{0};
  std::atomic<size_t> live_bytes{0};
  size_t limit_bytes = 0;  // when nonzero, alloc() fails past this many live bytes
  bool resizable = false, fail_resizes = false;
  std::atomic<uint64_t> resize_calls{0}, resizes{0};
  size_t retained = 0;  // what retained_bytes() reports
  // Blocks of at least this size are mmapped and may be freed in page-aligned parts.
  size_t split_min_bytes = SIZE_MAX;
  std::atomic<size_t> mapped_bytes{0};
  std::atomic<uint64_t> move_failed{0}, part_frees{0};
  int refuse_moves = 0, lose_moves = 0;  // the next moves to refuse or lose
  std::vector<Call> alloc_log, free_log;

 private:
  bool take_failure() noexcept {
    long n = failures_.load();
    while (n > 0 && !failures_.compare_exchange_weak(n, n - 1)) {
    }
    return n != 0;
  }
  void erase_seams(uintptr_t start, size_t size) {  // under mu_: those inside the range
    seams_.erase(seams_.upper_bound(start), seams_.lower_bound(start + size));
  }
  std::atomic<long> failures_{0};
  std::mutex mu_;
  std::set<uintptr_t> seams_;  // where moved mappings meet others
  std::map<void*, Call> live_;
};

}  // namespace cachealloc::test
