// large_source.cpp - large blocks from mimalloc and, from 1 MiB, from the OS (Note [Large upstream]).
#include "core/large_source.h"

#include <mimalloc.h>

#include "platform/os.h"

namespace cachealloc {

void SystemLargeSource::init() noexcept {
  mi_option_set(mi_option_eager_commit, 0);  // commit per slice, so its commit count is tight
  mi_option_set(mi_option_decommit_delay, 0);
  mi_option_set(mi_option_segment_decommit_delay, 0);
}

void* SystemLargeSource::alloc(size_t size, size_t align, bool zero) noexcept {
  if (size >= kDirectMapMin) {
    const size_t os_page = os::page_size();
    size_t at = align < os_page ? os_page : align;
    const bool huge = size >= kHugePage && huge_pages_.load(std::memory_order_relaxed);
    // Note [Huge pages]
    if (huge && at < kHugePage) at = kHugePage;
    void* p = os::map_aligned(size, at);  // fresh mappings read as zero
    if (p != nullptr && huge) os::advise_huge_pages(p, size);
    return p;
  }
  void* p = zero ? mi_zalloc_aligned(size, align) : mi_malloc_aligned(size, align);
  if (p != nullptr) mimalloc_live_.fetch_add(size, std::memory_order_relaxed);
  return p;
}

void SystemLargeSource::free(void* p, size_t size, size_t align) noexcept {
  (void)align;
  if (size >= kDirectMapMin) {
    os::unmap(p, size);
    return;
  }
  mi_free(p);
  mimalloc_live_.fetch_sub(size, std::memory_order_relaxed);
}

void* SystemLargeSource::resize(void* p, size_t old_size, size_t new_size, size_t align) noexcept {
  // mremap keeps page alignment only; both sizes must stay on the direct-mapped side so that
  // free() still finds the block's origin from its size.
  if (old_size < kDirectMapMin || new_size < kDirectMapMin || align > os::page_size()) {
    return nullptr;
  }
  void* q = os::remap(p, old_size, new_size);
  if (q != nullptr && new_size >= kHugePage && huge_pages_.load(std::memory_order_relaxed)) {
    os::advise_huge_pages(q, new_size);  // Note [Huge pages]
  }
  return q;
}

LargeSource::Move SystemLargeSource::move(void* from, size_t size, void* to) noexcept {
  return os::move_pages(from, size, to);
}

size_t SystemLargeSource::retained_bytes() noexcept {
  size_t elapsed, user, sys, rss, peak_rss, commit, peak_commit, faults;
  mi_process_info(&elapsed, &user, &sys, &rss, &peak_rss, &commit, &peak_commit, &faults);
  size_t live = mimalloc_live_.load(std::memory_order_relaxed);
  return commit > live ? commit - live : 0;
}

}  // namespace cachealloc
