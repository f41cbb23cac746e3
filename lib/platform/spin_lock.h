// spin_lock.h - a small test-and-test-and-set lock for short critical sections.
//
// Used instead of std::mutex because it is constinit-constructible, never allocates, and can be
// taken inside malloc before libc is initialised. Contended waiters spin briefly, then yield
// (sched_yield: an OS call, which is why the lock lives in lib/platform, below every user).
#pragma once

#include <atomic>
#include <cstdint>
#include <sched.h>

#include "platform/os.h"

// Debug builds (no NDEBUG: -Db_ndebug=false, or -Dbuildtype=debug/debugoptimized, as the
// sanitizer builds) check lock ranks; release builds carry neither the rank nor the check.
#if !defined(NDEBUG) && !defined(CA_NO_LOCK_RANKS)
#define CA_LOCK_RANKS 1
#endif

namespace cachealloc {

// Note [Lock ranks]
// The core's locks have one order (lib/README.md; the order Heap::lock_all takes them for fork,
// Note [Fork] in core/fork.cpp). Each lock names its place in it; in debug builds a thread that
// takes a ranked lock while it holds one of a higher rank stops with a message, so an inversion
// shows up in the first test that runs the path instead of as a rare deadlock (jemalloc's
// "witness"). Locks of one rank (the central pools, the refcount shards, the metadata pools) are
// taken together only by Heap::lock_all, in index order, so equal ranks are not checked. kNone
// locks (the CUDA and stats layers') are not checked. try_lock records without checking: it
// cannot wait, so it cannot deadlock.
enum class LockRank : uint8_t {
  kNone = 0,
  kThreadRegistry,  // Heap: the thread-cache registry
  kCentralPool,     // CentralPool[0..95]
  kSlabSource,
  kLargeCache,
  kRefcountShard,   // RefcountTable shards
  kMetaPool,        // MetaPool<T> free lists (thread caches, large records, refcount nodes)
  kSegmentMeta,     // recycled SegmentMeta records
  kMetaArena,
  kProfTable,       // lib/prof: a ProfileTable (host samples, device blocks); a leaf
  kCount,
};

#ifdef CA_LOCK_RANKS
namespace lock_ranks {
// Per thread: how many locks of each rank it holds.
inline constinit thread_local uint16_t t_held[static_cast<unsigned>(LockRank::kCount)] = {};

[[gnu::cold, gnu::noinline]] inline void inverted(LockRank taking) noexcept {
  char msg[] = "cachealloc: internal error: lock order: taking a lock of rank ## while holding a "
               "higher one (Note [Lock ranks])\n";
  char* q = msg;
  while (*q != '#') ++q;
  unsigned r = static_cast<unsigned>(taking);
  q[0] = static_cast<char>('0' + r / 10);
  q[1] = static_cast<char>('0' + r % 10);
  os::die(msg, sizeof msg - 1);
}
inline void check(LockRank r) noexcept {
  for (unsigned i = static_cast<unsigned>(r) + 1; i < static_cast<unsigned>(LockRank::kCount); ++i) {
    if (t_held[i] != 0) inverted(r);
  }
}
inline void acquired(LockRank r) noexcept { ++t_held[static_cast<unsigned>(r)]; }
inline void released(LockRank r) noexcept { --t_held[static_cast<unsigned>(r)]; }
}  // namespace lock_ranks
#endif

// A hint to the core that this thread is spinning (x86 `pause`, Arm `yield`).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

class SpinLock {
 public:
  constexpr SpinLock() noexcept = default;
#ifdef CA_LOCK_RANKS
  constexpr explicit SpinLock(LockRank rank) noexcept : rank_(rank) {}
#else
  constexpr explicit SpinLock(LockRank) noexcept {}
#endif
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() noexcept {
#ifdef CA_LOCK_RANKS
    if (rank_ != LockRank::kNone) {
      lock_ranks::check(rank_);
      lock_ranks::acquired(rank_);
    }
#endif
    if (!locked_.exchange(true, std::memory_order_acquire)) return;  // uncontended: one xchg
    lock_slow();
  }
  bool try_lock() noexcept {
    bool got = !locked_.load(std::memory_order_relaxed) &&
               !locked_.exchange(true, std::memory_order_acquire);
#ifdef CA_LOCK_RANKS
    if (got && rank_ != LockRank::kNone) lock_ranks::acquired(rank_);
#endif
    return got;
  }
  void unlock() noexcept {
#ifdef CA_LOCK_RANKS
    if (rank_ != LockRank::kNone) lock_ranks::released(rank_);
#endif
    locked_.store(false, std::memory_order_release);
  }

  // After fork() in the child only the forking thread exists; its atfork handler re-creates locks
  // that the parent held at fork time.
  void reset_after_fork() noexcept { locked_.store(false, std::memory_order_relaxed); }

 private:
  [[gnu::noinline]] void lock_slow() noexcept {
    for (unsigned spins = 0;; ++spins) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins++ < 64) {
          cpu_relax();
        } else {
          sched_yield();
        }
      }
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }

  std::atomic<bool> locked_{false};
#ifdef CA_LOCK_RANKS
  LockRank rank_ = LockRank::kNone;
#endif
};

class LockGuard {
 public:
  explicit LockGuard(SpinLock& l) noexcept : l_(l) { l_.lock(); }
  ~LockGuard() { l_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  SpinLock& l_;
};

}  // namespace cachealloc
