// publisher.cpp - see publisher.h (Note [Publication]).
#include "stats/publisher.h"

#include <atomic>
#include <cerrno>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <cstring>

#include "config/options.h"
#include "core/allocator.h"
#include "core/fork.h"
#include "core/heap_stats.h"
#include "platform/os.h"
#include "platform/process.h"
#include "platform/shm.h"
#include "platform/spin_lock.h"
#include "prof/profiler.h"
#include "stats/stats_image.h"
#include "stats/stats_segment.h"
#include "stats/summary.h"
#include "util/format.h"

namespace cachealloc::stats {
namespace {

struct State {
  SpinLock lock;                       // one publication at a time; guards everything below
  std::atomic<bool> enabled{false};    // a segment is open or wanted (read by tick without lock)
  std::atomic<uint64_t> next_publish_ns{0};  // os::now_ns() before which tick() does nothing
  bool want_segment = false;           // create the segment at the next publication
  // Set by a fork child that could not take `lock` (Note [Fork]: a single-threaded parent forked
  // from a signal handler that interrupted a publication); the lock's next holder adopts the
  // child's identity (adopt_fork_child_locked) before anything else.
  std::atomic<bool> fork_pending{false};
  std::atomic<uint64_t> fork_time_ns{0};  // os::realtime_ns() in the child, for start_time_ns
  bool stopped = false;
  bool show_summary = false;
  char summary_path[kOptionPathMax] = {};  // CACHEALLOC_SHOW_STATS=/path: the summary goes there
  bool verbose = false;
  Identity id;
  StatsSegment segment;
  uint64_t publish_count = 0;
  uint64_t peak = 0;
  uint64_t last_hash = 0;  // of the last published image's body (image_hash)
  // Note [Profiles on request]: the last request answered, how, and where the profile went.
  uint64_t prof_dumps = 0;
  uint32_t prof_errno = 0;
  char prof_path[sizeof(ca_stats_totals::prof_dump_path)] = {};
  std::atomic<uint64_t> prof_wanted{0};  // a request seen in the segment, not yet answered
  bool prof_changed = false;  // an answer not yet published (the image hash skips the header)
};

// The publisher thread (Note [Publisher thread], publisher.h).
enum ThreadState : int { kNoThread = 0, kStarting = 1, kRunning = 2, kFailed = 3 };
constinit std::atomic<int> g_thread{kNoThread};
constinit std::atomic<uint64_t> g_thread_not_before_ns{0};  // a fork child's grace period
constinit std::atomic<uint32_t> g_starter_tid{0};  // the thread in start_thread (kStarting)
// Dekker pair with the fork helper: the thread sets busy, then checks paused; pause sets paused,
// then waits for busy to clear. Sequentially consistent, so one of them sees the other.
constinit std::atomic<bool> g_busy{false};
constinit std::atomic<bool> g_paused{false};

// In-process reports (report()): a copy of the image taken under g.lock, printed under
// g_report_lock only, so that the sink may call malloc (whose tick try-locks g.lock) or even
// ca_stats_flush. Reset in the child of a multi-threaded fork (fork_child).
constinit SpinLock g_report_lock;
constinit Image g_report;

// Static storage: both are too big for the stack of a thread inside malloc.
constinit State g;
constinit HeapSnapshot g_snapshot;
constinit Image g_image;
constinit cuda::DeviceReport g_devices[CA_STATS_DEVICE_CAPACITY];

void refresh_identity_locked() noexcept {
  g.id.pid = os::process_id();
  g.id.start_ticks = os::process_start_ticks();
  os::executable_name(g.id.exe, sizeof g.id.exe);
}

// The image from g_snapshot (already taken). `publishing`: the image is going to the segment
// (counts as a publication); otherwise it is built for an in-process reader (mallinfo2,
// ca_stats_print) and publish_count stays as it is.
void build_from_snapshot_locked(bool publishing) noexcept {
  if (publishing) ++g.publish_count;
  build_image(g.id, g_snapshot, g.publish_count, &g.peak, &g_image);
  g_image.header()->prof_dumps = g.prof_dumps;
  g_image.header()->prof_dump_errno = g.prof_errno;
  memcpy(g_image.totals()->prof_dump_path, g.prof_path, sizeof g.prof_path);
  size_t rows = cuda::process_cache().reports(g_devices, CA_STATS_DEVICE_CAPACITY);
  set_device_rows(g_devices, rows, &g_image);
}

void build_locked(bool publishing) noexcept {
  g_heap.snapshot(&g_snapshot);
  build_from_snapshot_locked(publishing);
}

// Note [Profiles on request]: `cachealloc-stats --prof-dump PID` adds 1 to the header's
// prof_requests, the one word of the segment a reader writes (StatsSegment::write leaves it). A
// publication that finds it ahead of the last one answered marks the request wanted; the next
// stats tick, on a thread of the program at the end of an allocator slow path with no lock held,
// writes the profile (prof::dump) to <CACHEALLOC_PROF_PREFIX, else /tmp/cachealloc>.<pid>.r<N>.heap
// and publishes prof_dumps = N with the path, or the error. Not from the publisher thread: a dump
// takes the profiler's locks and writes a file, and that thread must never wait (Note [Helper
// threads]). With profiling on, sampled allocations take the slow path every ~512 KiB allocated,
// so a process that allocates answers soon; one that does not allocate answers when it next does.
// With profiling off there is nothing to write: whichever thread publishes answers EINVAL at once.
void note_prof_request_locked() noexcept {
  uint64_t req = g.segment.prof_requests();
  if (req == g.prof_dumps) return;
  if (!prof::active()) {  // nothing to dump: answered at once, from any thread
    g.prof_dumps = req;
    g.prof_errno = EINVAL;
    g.prof_changed = true;
    g.next_publish_ns.store(0, std::memory_order_relaxed);
    return;
  }
  g.prof_wanted.store(req, std::memory_order_relaxed);
}

[[gnu::cold, gnu::noinline]] void serve_prof_request() noexcept {
  uint64_t req = g.prof_wanted.exchange(0, std::memory_order_acq_rel);
  if (req == 0) return;
  const Options& o = options();
  StackText<kOptionPathMax + 48> path;
  path.str(o.prof_prefix != 0 ? o.prefix_of : "/tmp/cachealloc");
  path.chr('.').dec(static_cast<uint64_t>(os::process_id())).str(".r").dec(req).str(".heap");
  int saved = errno;
  int e = prof::dump(path.data());
  errno = saved;
  g.lock.lock();
  g.prof_dumps = req;
  g.prof_errno = static_cast<uint32_t>(e);
  g.prof_changed = true;
  if (e == 0 && path.size() < sizeof g.prof_path) memcpy(g.prof_path, path.data(), path.size() + 1);
  g.next_publish_ns.store(0, std::memory_order_relaxed);  // tell the reader at the next tick
  g.lock.unlock();
}

// FNV-1a over everything after the header (the header changes at every publication).
uint64_t image_hash(const Image& image) noexcept {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(image.totals());
  const unsigned char* end = image.bytes + image.used_size();
  uint64_t h = 1469598103934665603ull;
  for (; p < end; ++p) h = (h ^ *p) * 1099511628211ull;
  return h;
}

bool open_segment_locked() noexcept {
  g.want_segment = false;
  refresh_identity_locked();
  int err = g.segment.create(g.id.pid, os::pid_namespace_id());
  if (err == 0) return true;
  g.enabled.store(false, std::memory_order_relaxed);
  if (g.verbose) {
    StackText<160> t;
    t.str("cachealloc: warning: statistics segment /dev/shm/" CA_STATS_NAME_PREFIX).dec(g.id.pid);
    t.chr('.').dec(os::pid_namespace_id());
    t.str(" not created (errno ").dec(static_cast<uint64_t>(err)).str("); statistics are off\n");
    os::write_stderr(t.data(), t.size());
  }
  return false;
}

// In a fork child: drop the parent's segment (not ours to write or remove) and become a new
// process. Async-signal-safe: it runs in the child handler when the lock is free there.
void adopt_fork_child_locked() noexcept {
  g.fork_pending.store(false, std::memory_order_relaxed);
  bool had = g.segment.is_open() || g.want_segment;
  g.segment.forget();
  g.want_segment = had;
  g.enabled.store(had, std::memory_order_relaxed);
  g.id.flags |= CA_STATS_FLAG_FORKED;
  g.id.pid = os::process_id();
  g.id.start_time_ns = g.fork_time_ns.load(std::memory_order_relaxed);
  g.publish_count = 0;
}

// Every holder of g.lock that reads or writes the state calls this first.
void settle_fork_locked() noexcept {
  if (g.fork_pending.load(std::memory_order_relaxed)) adopt_fork_child_locked();
}

// Publishes if a segment is (or can be) open. False when there is none.
bool publish_locked() noexcept {
  settle_fork_locked();
  if (g.stopped) return false;
  if (!g.segment.is_open() && !(g.want_segment && open_segment_locked())) return false;
  build_locked(true);
  g.prof_changed = false;
  g.last_hash = image_hash(g_image);
  g.segment.write(g_image);
  g.next_publish_ns.store(os::now_ns() + kPublishIntervalNs, std::memory_order_relaxed);
  note_prof_request_locked();
  return true;
}

// One round of the publisher thread: publishes if the picture changed since the last publication.
// Never waits for a lock (Note [Helper threads], core/fork.h): it tries them, and gives up the
// round when one is held.
void watch_once() noexcept {
  g_busy.store(true, std::memory_order_seq_cst);
  if (!g_paused.load(std::memory_order_seq_cst) && g.lock.try_lock()) {
    int saved = errno;
    settle_fork_locked();
    if (!g.stopped && g.enabled.load(std::memory_order_relaxed) &&
        os::now_ns() >= g.next_publish_ns.load(std::memory_order_relaxed) &&
        g_heap.try_snapshot(&g_snapshot)) {
      build_from_snapshot_locked(false);
      uint64_t h = image_hash(g_image);
      bool open = g.segment.is_open() || (g.want_segment && open_segment_locked());
      if (open && (h != g.last_hash || g.publish_count == 0 || g.prof_changed)) {
        g.prof_changed = false;
        g_image.header()->publish_count = ++g.publish_count;
        g.last_hash = h;
        g.segment.write(g_image);
        g.next_publish_ns.store(os::now_ns() + kPublishIntervalNs, std::memory_order_relaxed);
      }
      if (open) note_prof_request_locked();
    }
    errno = saved;
    g.lock.unlock();
  }
  g_busy.store(false, std::memory_order_seq_cst);
}

void* publisher_main(void*) {
  os::name_this_thread("cachealloc-stat");
  g_thread.store(kRunning, std::memory_order_release);
  // Note [Dead segments] (stats_segment.cpp): once, off the program's threads.
  remove_dead_segments(os::pid_namespace_id(), os::process_id(), kDeadScanEntries, kDeadScanRemovals);
  for (;;) {
    os::sleep_ns(kWatchIntervalNs);
    watch_once();
  }
  return nullptr;
}

// From tick(), so from an allocator slow path with no lock of ours held, after start(). The thread
// is created with every signal blocked (the program's handlers never run on it). pthread_create
// allocates (its TLS): those calls reach tick() again, and find the state kStarting.
//
// Note [No thread in a single-threaded process]
// Only once the program has a second thread of its own. A thread of ours would change what a
// single-threaded program sees: unshare(CLONE_NEWUSER) and setns into a user namespace refuse a
// multi-threaded caller (`unshare -U` failed with EINVAL under the preload), glibc's stdio and
// libstdc++'s shared_ptr switch to locked and atomic operations for good, and fork from a signal
// handler would have to take locks. So a single-threaded process is published from its slow
// paths only (at most every 5 ms while it allocates) and readers show the publication's age.
// CACHEALLOC_STATS_THREAD=always starts the thread in a single-threaded process too, for a
// single-threaded daemon whose owner wants its idle state seen and accepts the above; =0 never
// starts one.
[[gnu::cold, gnu::noinline]] void start_thread() noexcept {
  uint64_t want = options().stats_thread;
  if (want == 0 || (want != kOptionAlways && os::single_threaded())) return;
  if (os::now_ns() < g_thread_not_before_ns.load(std::memory_order_relaxed)) return;
  int expected = kNoThread;
  if (!g_thread.compare_exchange_strong(expected, kStarting, std::memory_order_acq_rel)) return;
  g_starter_tid.store(os::thread_id(), std::memory_order_relaxed);
  int saved = errno;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, kThreadStackBytes);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int rc = pthread_create(&t, &attr, &publisher_main, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) g_thread.store(kFailed, std::memory_order_relaxed);
  errno = saved;
}

// Note [Helper threads] (core/fork.h). Async-signal-safe. The other thread must be the publisher:
// running, or being created by the forking thread itself (a handler that interrupted
// start_thread); a thread of the program in start_thread does not count.
bool pause_for_fork() noexcept {
  int state = g_thread.load(std::memory_order_acquire);
  bool ours = state == kRunning ||
              (state == kStarting && g_starter_tid.load(std::memory_order_relaxed) == os::thread_id());
  if (!ours) return false;
  unsigned n = os::thread_count();
  if (n != 1 && n != 2) return false;  // other threads of the program exist (or unknown: 0)
  g_paused.store(true, std::memory_order_seq_cst);
  while (g_busy.load(std::memory_order_seq_cst)) sched_yield();  // it never waits while busy
  return true;
}
void resume_after_fork() noexcept { g_paused.store(false, std::memory_order_seq_cst); }
constinit const ForkHelper kForkHelper{&pause_for_fork, &resume_after_fork};

// Note [Stats tick] (core/allocator.h): called from slow paths, after their locks are released.
void tick() noexcept {
  if (!g.enabled.load(std::memory_order_relaxed)) return;
  if (__builtin_expect(g.prof_wanted.load(std::memory_order_relaxed) != 0, 0)) serve_prof_request();
  if (__builtin_expect(g_thread.load(std::memory_order_relaxed) == kNoThread, 0)) start_thread();
  if (os::now_ns() < g.next_publish_ns.load(std::memory_order_relaxed)) return;
  if (!g.lock.try_lock()) return;  // somebody else is publishing right now
  int saved = errno;
  publish_locked();
  errno = saved;
  g.lock.unlock();
}

// The stats layer's part of the one fork sequence (Note [Fork], core/fork.cpp): ForkLayer::kStats,
// in prepare after the CUDA cache's locks (ForkLayer::kCuda), before them in parent and child.
void fork_prepare() noexcept { g.lock.lock(); }
void fork_parent() noexcept { g.lock.unlock(); }
// Only async-signal-safe work here: the child may be the copy of a multithreaded parent, or of a
// single-threaded one that forked from a signal handler.
void fork_child(bool locked) noexcept {
  if (locked) {
    g.lock.reset_after_fork();  // prepare took it; otherwise it is not ours to reset
    // Not taken by prepare: another thread may have been printing a report. Without `locked`
    // only the interrupted code itself can hold it (the publisher never does), so it stays.
    g_report_lock.reset_after_fork();
  }
  // The publisher thread is not copied: the child starts its own at its first tick after the
  // grace period below.
  g_thread.store(kNoThread, std::memory_order_relaxed);
  g_busy.store(false, std::memory_order_relaxed);
  g_paused.store(false, std::memory_order_relaxed);
  g_thread_not_before_ns.store(os::now_ns() + kForkGraceNs, std::memory_order_relaxed);
  g.fork_time_ns.store(os::realtime_ns(), std::memory_order_relaxed);
  // The child's segment appears at its first publication after kForkGraceNs (or at
  // ca_stats_flush): short-lived children, which usually leave by exec() or _exit() and so would
  // leave their segment behind, never create one.
  g.next_publish_ns.store(os::now_ns() + kForkGraceNs, std::memory_order_relaxed);
  g.fork_pending.store(true, std::memory_order_relaxed);
  // Free unless a single-threaded parent forked from a handler that interrupted a publication:
  // then that publication, when the handler returns, leaves the adoption to the next holder.
  if (g.lock.try_lock()) {
    adopt_fork_child_locked();
    g.lock.unlock();
  }
}
constinit const ForkHooks kForkHooks{&fork_prepare, &fork_parent, &fork_child};

}  // namespace

void start() noexcept {
  ensure_init();
  options_reload();  // a no-op when the environment was already read
  const Options& o = options();
  LockGuard guard(g.lock);
  g.show_summary = o.show_stats != 0;
  if (o.show_stats == kOptionPath) memcpy(g.summary_path, o.path_of, sizeof g.summary_path);
  g.verbose = o.verbose != 0;
  g.id.start_time_ns = os::realtime_ns();
  g.id.publish_interval_ns = kPublishIntervalNs;
  refresh_identity_locked();
  if (o.stats != 0) {
    g.want_segment = true;
    g.enabled.store(true, std::memory_order_relaxed);
    publish_locked();
    set_fork_helper(&kForkHelper);
    set_stats_tick(&tick);
  }
  set_fork_hooks(ForkLayer::kStats, &kForkHooks);
}

int flush() noexcept {
  ensure_init();
  // A program call, outside every lock of ours: the publisher thread may start here too, so that
  // its start (pthread_create allocates) is behind the program's first flush.
  if (g.enabled.load(std::memory_order_relaxed) &&
      g_thread.load(std::memory_order_relaxed) == kNoThread) {
    start_thread();
  }
  LockGuard guard(g.lock);
  int saved = errno;
  bool ok = publish_locked();
  errno = saved;
  return ok ? 0 : ENOENT;
}

void read_totals(ca_stats_totals* out) noexcept {
  ensure_init();
  int saved = errno;
  LockGuard guard(g.lock);
  settle_fork_locked();
  build_locked(false);
  memcpy(out, g_image.totals(), sizeof *out);
  errno = saved;
}

void report(ReportFormat format, LineSink out) noexcept {
  ensure_init();
  int saved = errno;
  LockGuard report_guard(g_report_lock);
  {
    LockGuard guard(g.lock);
    settle_fork_locked();
    if (g.id.pid == 0) refresh_identity_locked();
    build_locked(false);
    memcpy(g_report.bytes, g_image.bytes, g_image.used_size());
  }
  errno = saved;
  if (format == ReportFormat::kXml) {
    print_xml(g_report, out);
  } else {
    print_summary(g_report, out);
  }
}

void reset_peak() noexcept {
  ensure_init();
  LockGuard guard(g.lock);
  settle_fork_locked();
  g.peak = 0;
  g_heap.reset_peak();
  cuda::process_cache().reset_peaks();
}

void stop() noexcept {
  int saved = errno;
  {
    LockGuard guard(g.lock);
    settle_fork_locked();
    if (g.stopped) return;  // nothing here has touched errno yet
    g.enabled.store(false, std::memory_order_relaxed);
    if (g.segment.is_open() || g.show_summary) build_locked(g.segment.is_open());
    if (g.segment.is_open()) {
      g_image.header()->flags |= CA_STATS_FLAG_FINAL;
      g.segment.write(g_image);
      g.segment.remove();
    }
    g.stopped = true;
  }
  if (g.show_summary) {
    // To the file when one was named (appended: one write per line, so the summaries of several
    // processes do not mix inside a line); to fd 2 otherwise, or when the file cannot be opened.
    int fd = g.summary_path[0] != '\0' ? os::open_append(g.summary_path) : -1;
    print_summary(g_image, fd >= 0 ? fd_sink(&fd) : stderr_sink());
    if (fd >= 0) os::close_fd(fd);
  }
  errno = saved;
}

// The library's own constructor and destructor (the core's runs first: it is linked first).
[[gnu::constructor]] static void on_stats_load() { start(); }
[[gnu::destructor]] static void on_stats_unload() { stop(); }

}  // namespace cachealloc::stats
