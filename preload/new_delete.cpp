// new_delete.cpp - every C++ operator new/delete form, forwarded into namespace cachealloc.
//
// Built with exceptions (unlike lib/): a failed plain `new` calls the new-handler, retries, and
// throws std::bad_alloc when there is none; the nothrow forms return nullptr.
#include <cstddef>
#include <new>

#include "core/allocator.h"

#define CA_NEW_EXPORT __attribute__((visibility("default")))

namespace ca = cachealloc;

namespace {

[[gnu::noinline]] void* new_slow(size_t n, size_t align, bool nothrow) {
  for (;;) {
    void* p = align <= 16 ? ca::api_malloc(n) : ca::malloc_slow(n, align, false);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    if (nothrow) {
      try {
        handler();
      } catch (...) {
        return nullptr;
      }
    } else {
      handler();
    }
  }
}

inline void* new_plain(size_t n) {
  void* p = ca::api_malloc(n);
  return p != nullptr ? p : new_slow(n, 0, false);
}

inline void* new_nothrow(size_t n) noexcept {
  void* p = ca::api_malloc(n);
  return p != nullptr ? p : new_slow(n, 0, true);
}

inline void* new_aligned(size_t n, std::align_val_t a, bool nothrow) {
  return new_slow(n, static_cast<size_t>(a), nothrow);
}

}  // namespace

CA_NEW_EXPORT void* operator new(size_t n) { return new_plain(n); }
CA_NEW_EXPORT void* operator new[](size_t n) { return new_plain(n); }
CA_NEW_EXPORT void* operator new(size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n); }
CA_NEW_EXPORT void* operator new[](size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n); }
CA_NEW_EXPORT void* operator new(size_t n, std::align_val_t a) { return new_aligned(n, a, false); }
CA_NEW_EXPORT void* operator new[](size_t n, std::align_val_t a) { return new_aligned(n, a, false); }
CA_NEW_EXPORT void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return new_aligned(n, a, true); }
CA_NEW_EXPORT void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return new_aligned(n, a, true); }

CA_NEW_EXPORT void operator delete(void* p) noexcept { ca::api_free(p, "operator delete"); }
CA_NEW_EXPORT void operator delete[](void* p) noexcept { ca::api_free(p, "operator delete[]"); }
CA_NEW_EXPORT void operator delete(void* p, size_t) noexcept { ca::api_free(p, "operator delete"); }
CA_NEW_EXPORT void operator delete[](void* p, size_t) noexcept { ca::api_free(p, "operator delete[]"); }
CA_NEW_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { ca::api_free(p, "operator delete"); }
CA_NEW_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { ca::api_free(p, "operator delete[]"); }
CA_NEW_EXPORT void operator delete(void* p, std::align_val_t) noexcept { ca::api_free(p, "operator delete"); }
CA_NEW_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { ca::api_free(p, "operator delete[]"); }
CA_NEW_EXPORT void operator delete(void* p, size_t, std::align_val_t) noexcept { ca::api_free(p, "operator delete"); }
CA_NEW_EXPORT void operator delete[](void* p, size_t, std::align_val_t) noexcept { ca::api_free(p, "operator delete[]"); }
CA_NEW_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { ca::api_free(p, "operator delete"); }
CA_NEW_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { ca::api_free(p, "operator delete[]"); }
