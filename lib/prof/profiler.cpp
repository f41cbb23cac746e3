// profiler.cpp - see profiler.h.
#include "prof/profiler.h"

#include <atomic>
#include <cerrno>

#include "config/options.h"
#include "platform/os.h"
#include "platform/process.h"
#include "prof/report.h"
#include "prof/sampler.h"
#include "prof/stack_trace.h"
#include "util/diagnostics.h"
#include "util/format.h"

namespace cachealloc::prof {

constinit ProfileTable g_host_table;

namespace {
constinit ProfileTable g_device_table;
constinit std::atomic<bool> g_active{false};
constinit std::atomic<bool> g_device_seen{false};

// Sizes of the tables: reserved address space, touched only as they fill.
constexpr size_t kHostSites = size_t{1} << 15;
constexpr size_t kHostBlocks = size_t{1} << 20;   // 768 Ki live samples: 384 GiB at 512 KiB
constexpr size_t kDeviceSites = size_t{1} << 13;
constexpr size_t kDeviceBlocks = size_t{1} << 18;
constexpr int kExitLeaked = 23;                   // as LeakSanitizer's exitcode

int write_profile(ProfileTable& t, const char* path) noexcept {
  int fd = os::open_truncate(path);
  if (fd < 0) return errno;
  bool ok = write_pprof(t, fd);
  int e = ok ? 0 : errno;
  os::close_fd(fd);
  return e;
}

void warn_dump_failed(const char* path, int e) noexcept {
  StackText<400> t;
  t.str("cannot write the heap profile to ").str(path).str(" (errno ").dec(static_cast<uint64_t>(e)).chr(')');
  warn(t.data());
}
}  // namespace

void start() noexcept {
  const Options& o = options();
  if (o.prof == 0 && o.leak_check == 0) return;
  if (g_active.load(std::memory_order_acquire)) return;
  if (!g_host_table.init(kHostSites, kHostBlocks, o.prof_sample) ||
      !g_device_table.init(kDeviceSites, kDeviceBlocks, 0)) {
    warn("heap profiling is off: its tables could not be mapped");
    return;
  }
  warm_up();
  g_active.store(true, std::memory_order_release);
  set_sample_rate(o.prof_sample);
}

bool active() noexcept { return g_active.load(std::memory_order_acquire); }

void record_host(void* p, size_t n) noexcept {
  ProfilerScope scope;
  uintptr_t pcs[kMaxFrames];
  int depth = capture_stack(pcs, kMaxFrames);
  g_host_table.insert(reinterpret_cast<uintptr_t>(p), n, pcs, depth);
}

void forget_host_slow(void* p) noexcept { g_host_table.erase(reinterpret_cast<uintptr_t>(p)); }

void record_device(uint64_t addr, size_t size) noexcept {
  if (!active() || addr == 0 || in_profiler()) return;
  ProfilerScope scope;
  uintptr_t pcs[kMaxFrames];
  int depth = capture_stack(pcs, kMaxFrames);
  g_device_table.insert(addr, size, pcs, depth);
  g_device_seen.store(true, std::memory_order_relaxed);
}

void forget_device(uint64_t addr) noexcept {
  if (!active() || addr == 0 || g_device_table.live_blocks() == 0) return;
  g_device_table.erase(addr);
}

int dump(const char* path) noexcept {
  if (!active() || path == nullptr || path[0] == '\0') return EINVAL;
  ProfilerScope scope;
  int e = write_profile(g_host_table, path);
  if (e == 0 && g_device_seen.load(std::memory_order_relaxed)) {
    StackText<kOptionPathMax + 64> device;
    device.str(path).str(".device");
    e = write_profile(g_device_table, device.data());
  }
  return e;
}

void lock_all() noexcept {
  g_host_table.lock().lock();
  g_device_table.lock().lock();
}

void unlock_all() noexcept {
  g_device_table.lock().unlock();
  g_host_table.lock().unlock();
}

// At exit (after the program's own destructors: this library is unloaded after it): the profile
// (CACHEALLOC_PROF_PREFIX), then the leak check. Sampling stops first, so that what the report
// itself allocates is neither sampled nor counted.
[[gnu::destructor]] static void on_prof_unload() {
  if (!active()) return;
  set_sample_rate(0);
  ProfilerScope scope;
  const Options& o = options();
  if (o.prof != 0 && o.prof_prefix != 0) {
    StackText<kOptionPathMax + 32> path;
    path.str(o.prefix_of).chr('.').dec(static_cast<uint64_t>(os::process_id())).str(".heap");
    int e = dump(path.data());
    if (e != 0) warn_dump_failed(path.data(), e);
  }
  if (o.leak_check == 0) return;
  uint64_t leaked = report_leaks(g_host_table, "host");
  leaked += report_leaks(g_device_table, "device");
  if (leaked != 0 && o.leak_check == kOptionFail) os::flush_and_exit(kExitLeaked);
}

}  // namespace cachealloc::prof
