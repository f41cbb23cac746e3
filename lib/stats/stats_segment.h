// stats_segment.h - the shared-memory object "/cachealloc.<pid>" that readers see.
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

  // Creates the object for `pid`. 0 or an errno value (the segment stays closed).
  int create(uint32_t pid) noexcept;
  bool is_open() const noexcept { return base_ != nullptr; }
  // Publishes `image` (its used part).
  void write(const Image& image) noexcept;
  // Unmaps and removes the object.
  void remove() noexcept;
  // In a fork() child: drops the view of the parent's object without touching it.
  void forget() noexcept;

 private:
  unsigned char* base_ = nullptr;
  char name_[32] = {};
};

}  // namespace cachealloc::stats
