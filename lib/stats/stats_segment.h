// stats_segment.h - the shared-memory object "/cachealloc.<pid>.<pid namespace>" that readers see.
//
// Note [Segment names]
// The name carries the pid namespace's inode (/proc/self/ns/pid) after the pid, so two processes
// with the same pid in different namespaces that share /dev/shm (containers with --ipc=host, pods
// sharing IPC) get different segments. When the namespace cannot be read the name is the old
// "/cachealloc.<pid>". A reader finds a process's segment from its pid and the reader's own
// namespace (tools/cachealloc-stats/process_info.cpp); segments of other namespaces are not listed.
//
// Created exclusively with mode 0600 (platform/shm.h), sized CA_STATS_SEGMENT_SIZE, written only
// through write(): a sequence lock around a copy of the image, so a reader (cachealloc-stats) can
// tell a torn copy from a consistent one (see stats_abi.h). One writer at a time: the publisher's
// lock.
#pragma once

#include <cstddef>
#include <cstdint>

#include "stats/stats_image.h"

namespace cachealloc::stats {

class StatsSegment {
 public:
  constexpr StatsSegment() = default;

  // Creates the object for `pid` in pid namespace `ns` (0: unknown). 0 or an errno value (the
  // segment stays closed).
  int create(uint32_t pid, uint64_t ns) noexcept;
  const char* name() const noexcept { return name_; }
  bool is_open() const noexcept { return base_ != nullptr; }
  // Publishes `image` (its used part), leaving the header's prof_requests, which readers write.
  void write(const Image& image) noexcept;
  // The header's prof_requests as readers left it (0 when closed).
  uint64_t prof_requests() const noexcept;
  // Unmaps and removes the object.
  void remove() noexcept;
  // In a fork() child: drops the view of the parent's object without touching it.
  void forget() noexcept;

 private:
  unsigned char* base_ = nullptr;
  char name_[48] = {};
};

// Removes segments left by dead processes of our namespace `ns` and user (Note [Dead segments],
// stats_segment.cpp): at most `max_remove` of them, looking at at most `max_scan` entries of
// /dev/shm. Returns how many it removed.
inline constexpr uint64_t kDeadSegmentAgeNs = 10'000'000'000;  // 10 s since its last publication
size_t remove_dead_segments(uint64_t ns, uint32_t self_pid, size_t max_scan, size_t max_remove) noexcept;

}  // namespace cachealloc::stats
