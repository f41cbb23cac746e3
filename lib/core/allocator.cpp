// allocator.cpp - the process-wide Heap, lazy initialisation and thread caches (fork: fork.cpp).
//
// Note [Boot cache]
// Under LD_PRELOAD, malloc runs before any constructor, maybe before libc has set up `environ`, and
// on threads whose cache does not exist yet. So no object here has a constructor: g_heap and
// g_boot_cache are constant-initialised (on_library_load, at the end, only re-reads the settings
// once libc is up), and every thread's t_slots.cache starts out pointing at g_boot_cache, whose
// bins are empty with max 0. The inline fast paths therefore need no "is there a cache" test: on
// the boot cache, malloc finds no block and free finds the bin full, and both fall into the slow
// path, which initialises the heap once and creates the thread's cache. When a thread exits, its
// cache is flushed to the central pools and t_slots.cache points at the boot cache again, with
// t_dead set so that late frees (other TLS destructors) go straight to the pools.
#include "core/allocator.h"

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "config/options.h"
#include "core/fork.h"
#include "core/large_source.h"
#include "core/segment_source.h"
#include "platform/os.h"
#include "prof/profiler.h"
#include "util/diagnostics.h"

namespace cachealloc {

constinit Heap g_heap;
constinit ThreadCache g_boot_cache;
constinit thread_local ThreadSlots t_slots = {.bytes_until_sample = 0, .cache = &g_boot_cache};

namespace {
constinit OsSegmentSource g_os_pages;
constinit SystemLargeSource g_large_source;
constinit std::atomic<int> g_init_state{0};  // 0 none, 1 running, 2 done
constinit os::ThreadKey g_cache_key = 0;
constinit thread_local bool t_dead = false;
constinit thread_local bool t_creating = false;
constinit std::atomic<StatsTick> g_stats_tick{nullptr};
constinit thread_local int t_tick_countdown = 0;

[[gnu::cold, gnu::noinline]] void stats_tick_slow() noexcept {
  t_tick_countdown = kStatsTickEvery;
  if (g_init_state.load(std::memory_order_relaxed) == 2) g_heap.decay_tick();
  StatsTick fn = g_stats_tick.load(std::memory_order_acquire);
  if (fn != nullptr) fn();
}

// Note [Stats tick] in allocator.h.
inline void stats_tick() noexcept {
  if (__builtin_expect(--t_tick_countdown < 0, 0)) stats_tick_slow();
}

HeapConfig config_from_options() {
  const Options& o = options();
  HeapConfig c;
  c.cache_limit = o.cache_bytes;
  c.large_threshold = o.large_threshold;
  c.check = o.check != 0;
  c.decay_ms = o.decay_ms;
  c.below_peak = o.cache_below_peak != 0;
  return c;
}

void on_thread_exit(void* value) {
  auto* tc = static_cast<ThreadCache*>(value);
  t_slots.cache = &g_boot_cache;
  t_dead = true;
  if (tc != nullptr) g_heap.destroy_thread_cache(tc);
  stats_tick_slow();
}

[[gnu::cold, gnu::noinline]] void init_slow() {
  int expected = 0;
  if (g_init_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    options_init();
    SystemLargeSource::init();
    g_large_source.set_huge_pages(options().thp != 0);
    g_heap.init(&g_os_pages, &g_large_source, config_from_options());
    if (!os::create_thread_key(&g_cache_key, &on_thread_exit)) {
      fatal_internal("pthread_key_create failed: thread caches cannot be flushed at exit");
    }
    g_init_state.store(2, std::memory_order_release);
  } else {
    while (g_init_state.load(std::memory_order_acquire) != 2) os::yield_thread();
  }
  // After the state is "done": pthread_atfork may itself call malloc. Note [Fork] in fork.cpp.
  install_fork_handlers();
}

bool is_power_of_two(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

}  // namespace

void ensure_init() noexcept {
  if (__builtin_expect(g_init_state.load(std::memory_order_acquire) != 2, 0)) init_slow();
}

ThreadCache* current_cache() noexcept {
  ThreadCache* tc = t_slots.cache;
  if (tc != &g_boot_cache) return tc;
  ensure_init();
  if (t_dead || t_creating) return nullptr;
  t_creating = true;
  tc = g_heap.create_thread_cache();
  if (tc != nullptr) {
    t_slots.cache = tc;  // before set_thread_value, which may allocate
    os::set_thread_value(g_cache_key, tc);
  }
  t_creating = false;
  return tc;
}

void set_stats_tick(StatsTick fn) noexcept {
  g_stats_tick.store(fn, std::memory_order_release);
  t_tick_countdown = 0;  // the installing thread's next slow call ticks
}

void stats_tick_now() noexcept {
  StatsTick fn = g_stats_tick.load(std::memory_order_acquire);
  if (fn != nullptr) fn();
}

void* malloc_slow(size_t n, size_t align, bool zero) noexcept {
  void* p = g_heap.alloc(current_cache(), n, align, zero);
  stats_tick();
  return p;
}

void* malloc_sample_slow(size_t n, size_t align, bool zero) noexcept {
  if (!prof::sample_slow(n)) return malloc_slow(n, align, zero);
  void* p = g_heap.alloc_sampled(current_cache(), n, align, zero);
  if (p != nullptr) prof::record_host(p, n);
  stats_tick();
  return p;
}

void* malloc_counted(size_t n, size_t align, bool zero) noexcept {
  if (prof::count_bytes(n)) return malloc_sample_slow(n, align, zero);
  return malloc_slow(n, align, zero);
}

namespace {
// Note [Sized frees] (allocator.h). A pointer that is no live block (usable size 0) is left to the
// free, which names what is wrong with it.
void check_free_size(void* p, size_t size, size_t align, const char* call) noexcept {
  if ((size | align) == 0 || !g_heap.config().check) return;
  size_t usable = api_usable_size(p);
  if (usable == 0) return;
  bool misaligned = align != 0 && (align & (align - 1)) == 0 && reinterpret_cast<uintptr_t>(p) % align != 0;
  if (size > usable || misaligned) fatal_pointer(call, "wrong size for", p);
}
}  // namespace

void free_slow(void* p, const char* call, size_t size, size_t align) noexcept {
  if (p == nullptr) return;
  ensure_init();
  check_free_size(p, size, align, call);
  prof::forget_host(p);  // sampled blocks are large ones: their frees all come here
  g_heap.free(current_cache(), p, call);
  stats_tick();
}

void free_small_slow(void* p, SegmentMeta* seg, unsigned cls, const char* call, size_t size,
                     size_t align) noexcept {
  ensure_init();
  check_free_size(p, size, align, call);
  g_heap.free_small(current_cache(), p, seg, cls, call);
  stats_tick();
}

void* api_calloc(size_t n, size_t size) noexcept {
  size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return malloc_counted(total, 0, true);
}

namespace {
// realloc of a sampled block: it always moves, so that its record goes with the free (a block
// kept in place would keep the old size, a moved one freed without the table knowing would
// leave a record whose address the next allocation may reuse).
[[gnu::cold, gnu::noinline]] void* realloc_moving(void* p, size_t n) noexcept {
  if (n == 0) {
    free_slow(p, "realloc", 0, 0);
    return nullptr;
  }
  size_t old = g_heap.usable_size(p);
  void* q = malloc_slow(n, 0, false);
  if (q == nullptr) return nullptr;
  memcpy(q, p, n < old ? n : old);
  free_slow(p, "realloc", 0, 0);
  return q;
}

// The countdown fired in realloc: the new block is a sampled one (Note [Heap profiling]).
[[gnu::cold, gnu::noinline]] void* realloc_sampled(void* p, size_t n) noexcept {
  if (!prof::sample_slow(n)) {
    if (prof::is_sampled(p)) return realloc_moving(p, n);
    void* q = g_heap.realloc(current_cache(), p, n, "realloc");
    stats_tick();
    return q;
  }
  size_t old = g_heap.usable_size(p);
  if (old == 0) {
    g_heap.free(current_cache(), p, "realloc");  // stops the program: not a live block of ours
    return nullptr;
  }
  void* q = g_heap.alloc_sampled(current_cache(), n, 0, false);
  if (q == nullptr) return nullptr;  // errno is ENOMEM; the old block is untouched
  prof::record_host(q, n);
  memcpy(q, p, n < old ? n : old);
  free_slow(p, "realloc", 0, 0);
  return q;
}
}  // namespace

void* api_realloc(void* p, size_t n) noexcept {
  ensure_init();
  if (__builtin_expect(prof::count_bytes(n), 0) && n != 0) {
    return p == nullptr ? malloc_sample_slow(n, 0, false) : realloc_sampled(p, n);
  }
  if (p != nullptr && prof::is_sampled(p)) return realloc_moving(p, n);
  void* q = g_heap.realloc(current_cache(), p, n, "realloc");
  stats_tick();
  return q;
}

void* api_reallocarray(void* p, size_t n, size_t size) noexcept {
  size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return api_realloc(p, total);
}

// As glibc: ENOMEM is also left in errno (programs read it); EINVAL and success leave errno alone.
int api_posix_memalign(void** out, size_t align, size_t n) noexcept {
  if (!is_power_of_two(align) || align % sizeof(void*) != 0) return EINVAL;
  int saved = errno;
  void* p = malloc_counted(n, align, false);
  if (p == nullptr) {
    errno = ENOMEM;
    return ENOMEM;
  }
  errno = saved;
  *out = p;
  return 0;
}

void* api_aligned_alloc(size_t align, size_t n) noexcept {
  if (!is_power_of_two(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return malloc_counted(n, align, false);
}

// As glibc (and tcmalloc), memalign is lenient where aligned_alloc and posix_memalign are strict:
// an alignment up to the default (0 included) is the default, one that is not a power of two is
// rounded up to the next power of two, and only one with no power of two above it is EINVAL.
void* api_memalign(size_t align, size_t n) noexcept {
  if (align <= kMinAlign) return malloc_counted(n, 0, false);
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return nullptr;
  }
  return malloc_counted(n, std::bit_ceil(align), false);
}

void* api_valloc(size_t n) noexcept { return malloc_counted(n, os::page_size(), false); }

void* api_pvalloc(size_t n) noexcept {
  size_t page = os::page_size();
  size_t rounded = n == 0 ? page : (n + page - 1) & ~(page - 1);
  if (rounded < n) {
    errno = ENOMEM;
    return nullptr;
  }
  return malloc_counted(rounded, page, false);
}

size_t api_usable_size(const void* p) noexcept {
  if (p == nullptr) return 0;
  ensure_init();
  return g_heap.usable_size(p);
}

int api_release(void* p) noexcept {
  ensure_init();
  if (p != nullptr && prof::is_sampled(p) && g_heap.refcount(p) == 1) prof::forget_host(p);
  return g_heap.release(current_cache(), p);
}

int api_trim(size_t pad) noexcept {
  (void)pad;
  ensure_init();
  return g_heap.clear(current_cache()) != 0 ? 1 : 0;
}

// Runs once libc is up: settings read before `environ` existed are read again.
[[gnu::constructor]] static void on_library_load() {
  ensure_init();
  options_reload();
  HeapConfig c = config_from_options();
  g_heap.set_cache_limit(c.cache_limit);
  g_large_source.set_huge_pages(options().thp != 0);
  prof::start();  // outside any lock; the unwinder is warmed up here (prof/stack_trace.h)
}

}  // namespace cachealloc
