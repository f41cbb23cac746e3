// spin_lock.h - a small test-and-test-and-set lock for short critical sections.
//
// Used instead of std::mutex because it is constinit-constructible, never allocates, and can be
// taken inside malloc before libc is initialised. Contended waiters spin briefly, then yield
// (sched_yield: an OS call, which is why the lock lives in lib/platform, below every user).
#pragma once

#include <atomic>
#include <sched.h>

namespace cachealloc {

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
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() noexcept {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;  // uncontended: one xchg
    lock_slow();
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

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
