// fork.cpp - see fork.h.
//
// Note [Fork]
// fork() copies one thread. Every lock another thread held at that moment stays held in the child
// forever, over data it was halfway through changing, so the forking thread takes all of them
// first (prepare), and unlocks them in both processes afterwards. The order matters as much as
// the set: glibc's own rule (posix/fork.c) is that a lock a thread may hold while it calls malloc
// must be taken before the allocator's locks. glibc takes its malloc locks last, after the stdio
// list lock, because getline/getdelim reallocate while holding a FILE's lock and fflush(NULL)
// holds the list lock while it waits for each FILE's lock. An allocator whose pthread_atfork
// prepare handler takes its locks runs *before* glibc takes the list lock, so it must take the
// list lock itself, first; otherwise: the forking thread holds our locks and waits for the list
// lock, fflush(NULL) holds the list lock and waits for a FILE, and getline holds that FILE and
// waits in realloc for our lock. The list lock is recursive, so glibc's own acquisition nests.
//
// The sequence, in a multi-threaded process (glibc 2.34 and later; 2.36 here):
//   glibc       atfork lock; prepare handlers, last registered first: the application's (they
//               were registered after our first malloc, so they may allocate and use stdio)
//   prepare     1. ForkLayer hooks in order: kCuda (the DeviceCache: registry -> pools ->
//                  block table -> streams -> captures; a thread under a pool lock may call malloc,
//                  which publishes, and CUDA may use stdio, so before the publication lock and the
//                  list lock), kStats (publication lock)
//               2. glibc's stdio list lock, level 1 (os::stdio_list_lock)
//               3. Heap::lock_all: thread registry -> CentralPool[0..95] -> SlabSource ->
//                  LargeCache -> RefcountTable shards -> MetaPool<ThreadCache> -> large records ->
//                  SegmentMeta records -> MetaArena
//               4. prof::lock_all: the heap profile's tables (host, device), leaf locks taken
//                  inside malloc and by the CUDA front with nothing else held
//   glibc       prepare handlers registered before ours (none in practice); the NSS database lock
//               (locked and unlocked); the stdio list lock, level 2; its own malloc locks; _Fork
//   parent      glibc unlocks its malloc locks and list level 2; then, first of the parent
//               handlers: prof and Heap unlock_all, list lock level 1, ForkLayer hooks in reverse order
//   child       glibc re-creates its malloc locks, every FILE lock and the list lock; then, first
//               of the child handlers: prof and Heap unlock_all (this thread holds them), the list lock
//               reset (idempotent), ForkLayer child hooks in reverse order (stats: forget the
//               parent's segment)
// Nothing in lib/ uses stdio while holding its locks (only write(2)), so no holder of a heap lock
// ever waits for the list lock.
//
// In a single-threaded process nothing is taken, by glibc or by us (os::single_threaded, the test
// glibc's fork makes; or our own helper thread is the only other one and is paused, Note [Helper
// threads] in fork.h). The only code that can hold one of our locks then is the code a signal
// handler interrupted to call fork, which POSIX allows; taking the lock would spin forever, and in
// both processes the lock belongs to that code, which unlocks it when the handler returns. The
// decision is made once in prepare and recorded, so parent and child undo exactly what prepare did
// (the child hooks still run, with locked = false, to reset per-process state).
//
// Not covered: glibc 2.33+ takes and drops its NSS database lock after our prepare; a thread that
// holds it while (re)loading /etc/nsswitch.conf allocates, and if that allocation waits for a lock
// the forking thread holds, both wait forever (only a process's first NSS lookup, or the first
// after nsswitch.conf changes, racing a fork). Closing that needs our locks taken inside glibc's
// fork, i.e. interposing fork() itself. Also, a prepare handler registered before our first malloc
// runs after ours, with our locks held, and must not allocate.
#include "core/fork.h"

#include <atomic>

#include "core/allocator.h"
#include "platform/os.h"
#include "prof/profiler.h"

namespace cachealloc {
namespace {

constexpr unsigned kLayers = static_cast<unsigned>(ForkLayer::kCount);

constinit std::atomic<const ForkHooks*> g_hooks[kLayers] = {};
constinit std::atomic<bool> g_installed{false};
constinit std::atomic<const ForkHelper*> g_helper{nullptr};

// What prepare did, for parent and child (the forking thread only; see fork.h).
constinit bool g_locked = false;
constinit const ForkHooks* g_taken[kLayers] = {};
constinit const ForkHelper* g_paused = nullptr;  // a helper paused by prepare, resumed by parent

void fork_prepare() noexcept {
  for (unsigned i = 0; i < kLayers; ++i) g_taken[i] = g_hooks[i].load(std::memory_order_acquire);
  g_locked = !os::single_threaded();
  g_paused = nullptr;
  if (g_locked) {
    const ForkHelper* helper = g_helper.load(std::memory_order_acquire);
    if (helper != nullptr && helper->pause()) {
      g_paused = helper;
      g_locked = false;
    }
  }
  if (!g_locked) return;
  for (const ForkHooks* h : g_taken) {
    if (h != nullptr && h->prepare != nullptr) h->prepare();
  }
  os::stdio_list_lock();
  g_heap.lock_all();
  prof::lock_all();  // leaf locks, taken inside malloc (lib/prof/profile_table.h)
}

void fork_parent() noexcept {
  if (!g_locked) {
    if (g_paused != nullptr) g_paused->resume();
    return;
  }
  prof::unlock_all();
  g_heap.unlock_all();
  os::stdio_list_unlock();
  for (unsigned i = kLayers; i-- > 0;) {
    if (g_taken[i] != nullptr && g_taken[i]->parent != nullptr) g_taken[i]->parent();
  }
}

void fork_child() noexcept {
  if (g_locked) {
    prof::unlock_all();
    g_heap.unlock_all();
    os::stdio_list_reset();
  }
  for (unsigned i = kLayers; i-- > 0;) {
    if (g_taken[i] != nullptr && g_taken[i]->child != nullptr) g_taken[i]->child(g_locked);
  }
}

}  // namespace

void set_fork_hooks(ForkLayer layer, const ForkHooks* hooks) noexcept {
  g_hooks[static_cast<unsigned>(layer)].store(hooks, std::memory_order_release);
}

void set_fork_helper(const ForkHelper* helper) noexcept {
  g_helper.store(helper, std::memory_order_release);
}

void install_fork_handlers() noexcept {
  bool expected = false;
  if (g_installed.compare_exchange_strong(expected, true)) {
    os::register_fork_handlers(&fork_prepare, &fork_parent, &fork_child);
  }
}

}  // namespace cachealloc
