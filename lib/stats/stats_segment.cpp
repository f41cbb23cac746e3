// stats_segment.cpp - see stats_segment.h.
#include "stats/stats_segment.h"

#include <atomic>
#include <cstddef>
#include <cstring>

#include "platform/shm.h"
#include "util/format.h"

namespace cachealloc::stats {
namespace {
constexpr size_t kSeqOffset = offsetof(ca_stats_header, seq);
static_assert(kSeqOffset % 8 == 0);
}  // namespace

int StatsSegment::create(uint32_t pid) noexcept {
  StackText<sizeof name_> n;
  n.chr('/').str(CA_STATS_NAME_PREFIX).dec(pid);
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
  memcpy(base_ + kSeqOffset + 8, image.bytes + kSeqOffset + 8, used - kSeqOffset - 8);
  seq.store(s + 2, std::memory_order_release);
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

}  // namespace cachealloc::stats
