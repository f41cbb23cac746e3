// large_source.cpp - large blocks from mimalloc.
#include "core/large_source.h"

#include <mimalloc.h>

namespace cachealloc {

void* MimallocSource::alloc(size_t size, size_t align, bool zero) noexcept {
  return zero ? mi_zalloc_aligned(size, align) : mi_malloc_aligned(size, align);
}

void MimallocSource::free(void* p, size_t size, size_t align) noexcept {
  (void)size;
  (void)align;
  mi_free(p);
}

}  // namespace cachealloc
