// segment_source.h - where small-object segments come from: the upstream of the slab layer.
//
// The library uses OsSegmentSource (mmap/madvise through os.h); unit tests inject a fake that counts
// calls and fails on demand (test/fakes/fake_segment_source.h).
#pragma once

#include <cstddef>

#include "platform/os.h"

namespace cachealloc {

class SegmentSource {
 public:
  // A zeroed, read-write, `align`-aligned mapping of `size` bytes (a segment: the slab layer asks
  // for kSegmentSize at kSegmentSize), or nullptr (out of memory).
  virtual void* map(size_t size, size_t align) noexcept = 0;
  virtual void unmap(void* p, size_t size) noexcept = 0;
  // Drop the physical memory (OS pages); the range stays mapped and reads as zero. False when
  // refused.
  virtual bool decommit(void* p, size_t size) noexcept = 0;

 protected:
  constexpr SegmentSource() = default;
  ~SegmentSource() = default;
};

class OsSegmentSource final : public SegmentSource {
 public:
  constexpr OsSegmentSource() = default;
  void* map(size_t size, size_t align) noexcept override { return os::map_aligned(size, align); }
  void unmap(void* p, size_t size) noexcept override { os::unmap(p, size); }
  bool decommit(void* p, size_t size) noexcept override { return os::decommit(p, size); }
};

}  // namespace cachealloc
