// segment_table.cpp - see segment_table.h.
#include "core/segment_table.h"

#include <cerrno>

#include "platform/os.h"

namespace cachealloc {

bool SegmentTable::reserve(uintptr_t index) noexcept {
  // Note [Segment table window]: the whole table only where it takes at most 1/16 of the
  // address-space limit. A refused size leaves ENOMEM in errno; the allocation that goes on
  // with a smaller one succeeds, and must not change errno.
  const int saved_errno = errno;
  size_t n = kSpan;
  while (n > kMinWindow && n * sizeof(void*) > os::address_space_limit() / 16) n >>= 4;
  for (; n >= kMinWindow; n >>= 4) {
    void* p = os::reserve_zeros(n * sizeof(void*));
    if (p == nullptr) continue;
    errno = saved_errno;
    uintptr_t first = 0;
    if (n < kSpan) {  // Note [Segment table window]
      first = index > n / 2 ? index - n / 2 : 0;
      if (first > kSpan - n) first = kSpan - n;
    }
    entries_.store(static_cast<std::atomic<SegmentMeta*>*>(p), std::memory_order_relaxed);
    first_.store(first, std::memory_order_relaxed);
    size_.store(n, std::memory_order_release);
    return true;
  }
  return false;
}

bool SegmentTable::page_writable(size_t i) const noexcept {
  const size_t k = i * sizeof(void*) / os::page_size();
  return (writable_pages_[k / 64] >> (k % 64) & 1) != 0;
}

bool SegmentTable::writable(size_t i) noexcept {
  if (page_writable(i)) return true;
  const size_t os_page = os::page_size();
  const size_t k = i * sizeof(void*) / os_page;
  char* page = reinterpret_cast<char*>(entries_.load(std::memory_order_relaxed)) + k * os_page;
  if (!os::make_writable(page, os_page)) return false;
  writable_pages_[k / 64] |= uint64_t{1} << (k % 64);
  return true;
}

bool SegmentTable::set(uintptr_t base, SegmentMeta* meta) noexcept {
  const uintptr_t index = base >> kSegmentShift;
  if (index >= kSpan) return false;
  if (window() == 0) {
    if (meta == nullptr) return true;
    if (!reserve(index)) return false;
  }
  const uintptr_t i = index - first_.load(std::memory_order_relaxed);
  if (i >= window()) return meta == nullptr;
  if (meta == nullptr) {
    if (!page_writable(i)) return true;  // never set: reads as zero
  } else if (!writable(i)) {
    return false;
  }
  entries_.load(std::memory_order_relaxed)[i].store(meta, std::memory_order_release);
  return true;
}

}  // namespace cachealloc
