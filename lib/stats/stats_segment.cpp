// stats_segment.cpp - see stats_segment.h.
#include "stats/stats_segment.h"

#include <atomic>
#include <cstddef>
#include <cstring>

#include "platform/process.h"
#include "platform/shm.h"
#include "util/format.h"

namespace cachealloc::stats {
namespace {
constexpr size_t kSeqOffset = offsetof(ca_stats_header, seq);
constexpr size_t kRequestOffset = offsetof(ca_stats_header, prof_requests);
static_assert(kSeqOffset % 8 == 0 && kRequestOffset % 8 == 0 && kSeqOffset < kRequestOffset);
}  // namespace

int StatsSegment::create(uint32_t pid, uint64_t ns) noexcept {
  StackText<sizeof name_> n;
  n.chr('/').str(CA_STATS_NAME_PREFIX).dec(pid);
  if (ns != 0) n.chr('.').dec(ns);
  memcpy(name_, n.data(), n.size() + 1);
  void* p = nullptr;
  int err = os::shm_create(name_, CA_STATS_SEGMENT_SIZE, &p);
  if (err != 0) return err;
  base_ = static_cast<unsigned char*>(p);
  return 0;
}

void StatsSegment::write(const Image& image) noexcept {
  if (base_ == nullptr) return;
  // Sequence lock, writer side: odd, fence, data, even (release). Readers copy, then check that
  // seq was even and did not change (stats_abi.h).
  std::atomic_ref<uint64_t> seq(*reinterpret_cast<uint64_t*>(base_ + kSeqOffset));
  uint64_t s = seq.load(std::memory_order_relaxed);
  if (s & 1) ++s;  // never happens with one writer; keeps the protocol sane if it did
  seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  size_t used = image.used_size();
  memcpy(base_, image.bytes, kSeqOffset);
  memcpy(base_ + kSeqOffset + 8, image.bytes + kSeqOffset + 8, kRequestOffset - kSeqOffset - 8);
  memcpy(base_ + kRequestOffset + 8, image.bytes + kRequestOffset + 8, used - kRequestOffset - 8);
  seq.store(s + 2, std::memory_order_release);
}

uint64_t StatsSegment::prof_requests() const noexcept {
  if (base_ == nullptr) return 0;
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(base_ + kRequestOffset))
      .load(std::memory_order_acquire);
}

void StatsSegment::remove() noexcept {
  if (base_ == nullptr) return;
  os::shm_unmap(base_, CA_STATS_SEGMENT_SIZE);
  base_ = nullptr;
  os::shm_remove(name_);
}

void StatsSegment::forget() noexcept {
  if (base_ == nullptr) return;
  os::shm_unmap(base_, CA_STATS_SEGMENT_SIZE);
  base_ = nullptr;
}

// Note [Dead segments]
// A process that dies without running exit handlers (SIGKILL, abort, _exit) leaves its segment in
// /dev/shm. The publisher thread removes such leftovers once, when it starts: a segment whose name
// is "cachealloc.<pid>.<ns>" with our namespace, whose pid no longer exists (kill(pid, 0): ESRCH),
// which is a regular file owned by our effective uid with a valid header naming that pid, and whose
// last publication is more than kDeadSegmentAgeNs old (so a process that just died stays visible as
// "stale" to a reader for a while). Bounded: a scan of at most max_scan directory entries and at
// most max_remove removals, a few system calls each. `cachealloc-stats --gc` stays for the rest
// (other namespaces cannot be judged from here: their pids mean nothing to us).
namespace {

struct DeadScan {
  uint64_t ns;
  uint32_t self_pid;
  size_t max_remove;
  size_t removed;
  uint64_t now_ns;
};

// "cachealloc.<pid>.<ns>" -> pid and ns; false for anything else.
bool parse_name(const char* name, uint32_t* pid, uint64_t* ns) noexcept {
  const char* prefix = CA_STATS_NAME_PREFIX;
  while (*prefix != '\0' && *name == *prefix) {
    ++prefix;
    ++name;
  }
  if (*prefix != '\0') return false;
  uint64_t p = 0, n = 0;
  const char* s = name;
  for (; *s >= '0' && *s <= '9' && p <= 0xFFFFFFFFull; ++s) p = p * 10 + static_cast<uint64_t>(*s - '0');
  if (s == name || *s != '.' || p == 0 || p > 0xFFFFFFFFull) return false;
  const char* t = ++s;
  for (; *s >= '0' && *s <= '9' && n < (uint64_t{1} << 60); ++s) n = n * 10 + static_cast<uint64_t>(*s - '0');
  if (s == t || *s != '\0') return false;
  *pid = static_cast<uint32_t>(p);
  *ns = n;
  return true;
}

bool consider(void* ctx, const char* name) noexcept {
  auto* d = static_cast<DeadScan*>(ctx);
  uint32_t pid = 0;
  uint64_t ns = 0;
  if (!parse_name(name, &pid, &ns) || ns != d->ns || pid == d->self_pid) return true;
  if (os::process_may_exist(pid)) return true;
  StackText<64> full;
  full.chr('/').str(name);
  ca_stats_header h;
  if (!os::shm_read_own(full.data(), &h, sizeof h)) return true;
  if (h.magic != CA_STATS_MAGIC || h.pid != pid) return true;
  if (h.publish_time_ns + kDeadSegmentAgeNs > d->now_ns) return true;  // died just now: keep a while
  if (os::shm_remove(full.data()) == 0) ++d->removed;
  return d->removed < d->max_remove;
}

}  // namespace

size_t remove_dead_segments(uint64_t ns, uint32_t self_pid, size_t max_scan, size_t max_remove) noexcept {
  if (ns == 0 || max_remove == 0) return 0;
  DeadScan d{ns, self_pid, max_remove, 0, os::realtime_ns()};
  os::shm_list(&consider, &d, max_scan);
  return d.removed;
}

}  // namespace cachealloc::stats
