// malloc.cpp - the libc malloc family: one-line forwarders into namespace cachealloc.
#include <cstddef>

#include "core/allocator.h"
#include "export.h"

namespace ca = cachealloc;

CA_EXPORT void* malloc(size_t n) noexcept { return ca::api_malloc(n); }
CA_EXPORT void free(void* p) noexcept { ca::api_free(p); }
// C23; glibc declares them from 2.39 on. Note [Sized frees] in core/allocator.h.
extern "C" void free_sized(void* p, size_t size) noexcept;
extern "C" void free_aligned_sized(void* p, size_t align, size_t size) noexcept;
CA_EXPORT void free_sized(void* p, size_t size) noexcept { ca::api_free(p, "free_sized", size, 0); }
CA_EXPORT void free_aligned_sized(void* p, size_t align, size_t size) noexcept {
  ca::api_free(p, "free_aligned_sized", size, align);
}
CA_EXPORT void* calloc(size_t n, size_t size) noexcept { return ca::api_calloc(n, size); }
CA_EXPORT void* realloc(void* p, size_t n) noexcept { return ca::api_realloc(p, n); }
CA_EXPORT void* reallocarray(void* p, size_t n, size_t size) noexcept { return ca::api_reallocarray(p, n, size); }
CA_EXPORT int posix_memalign(void** out, size_t align, size_t n) noexcept { return ca::api_posix_memalign(out, align, n); }
CA_EXPORT void* aligned_alloc(size_t align, size_t n) noexcept { return ca::api_aligned_alloc(align, n); }
CA_EXPORT void* memalign(size_t align, size_t n) noexcept { return ca::api_memalign(align, n); }
CA_EXPORT void* valloc(size_t n) noexcept { return ca::api_valloc(n); }
CA_EXPORT void* pvalloc(size_t n) noexcept { return ca::api_pvalloc(n); }
CA_EXPORT size_t malloc_usable_size(void* p) noexcept { return ca::api_usable_size(p); }
CA_EXPORT int malloc_trim(size_t pad) noexcept { return ca::api_trim(pad); }
