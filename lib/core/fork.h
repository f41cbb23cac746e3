// fork.h - the one fork sequence: every lock cachealloc holds across fork(), in one written order.
//
// The core registers a single pthread_atfork handler triple (install_fork_handlers, from its lazy
// initialisation, through os::register_fork_handlers); nothing else in lib/ registers fork
// handlers. The layers above the core that own locks (stats, cuda) cannot be called from here
// (includes only go downward), so each gives the core its hooks with set_fork_hooks, into a slot
// whose position in ForkLayer is its place in the order. The whole sequence, and why it is in that order, is Note [Fork] in fork.cpp.
//
// SYNCHRONIZATION: the slots are atomics (a layer may register while another thread forks). The
// record of what prepare did is written and read only by the forking thread, between glibc's
// prepare and parent/child handlers; glibc's atfork lock keeps two forks from overlapping.
#pragma once

namespace cachealloc {

// The layers above the core whose locks are held across fork, in the order their prepare hooks
// run. Parent and child hooks run in the reverse order. All of them run before the stdio list lock
// and the heap's locks are taken in prepare (and after those are unlocked in parent and child).
enum class ForkLayer : unsigned {
  // lib/cuda: the DeviceCache's locks (registry, pools, block table, streams). First: a thread
  // holding a pool lock may call malloc, and so publish (the publication lock).
  kCuda = 0,
  kStats = 1,  // lib/stats: the publication lock (its holder reads the heap; device pools lock-free)
  kCount = 2,
};

struct ForkHooks {
  // Multi-threaded parent only: take the layer's locks (may not allocate while holding them).
  void (*prepare)() noexcept;
  // Multi-threaded parent only: unlock what prepare took.
  void (*parent)() noexcept;
  // Every child, async-signal-safe work only. `locked`: prepare ran, so the layer holds its locks
  // (re-create them). Otherwise the parent was single-threaded, possibly forking from a signal
  // handler that interrupted this very layer: leave the locks alone, they belong to that code.
  void (*child)(bool locked) noexcept;
};

// Registers (or, with nullptr, removes) a layer's hooks. `hooks` must outlive the process
// (a constinit object). The next fork uses them.
void set_fork_hooks(ForkLayer layer, const ForkHooks* hooks) noexcept;

// Note [Helper threads]
// A layer may run a thread of its own (the stats publisher, Note [Publisher thread] in
// stats/publisher.h). That thread makes glibc see a multi-threaded process, and so would make the
// sequence take every lock in prepare even in a program with one thread of its own, which breaks
// fork from a signal handler (the interrupted code may hold the lock). So prepare first asks the
// helper: pause() returns true when the helper's thread is the only other thread of the process
// and it is now paused outside all of our locks (it never waits for a lock, so this is bounded);
// the fork then proceeds as in a single-threaded process (nothing taken, child hooks run with
// locked = false) and the parent calls resume(). The child has no helper thread; its child hook
// resets the helper's state. pause() must be async-signal-safe.
struct ForkHelper {
  bool (*pause)() noexcept;
  void (*resume)() noexcept;
};
void set_fork_helper(const ForkHelper* helper) noexcept;

// Registers the sequence as atfork handlers (os::register_fork_handlers), once. Called by the
// core's lazy initialisation, after the heap works (registering may allocate).
void install_fork_handlers() noexcept;

}  // namespace cachealloc
