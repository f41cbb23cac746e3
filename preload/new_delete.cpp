// new_delete.cpp - every C++ operator new/delete form, forwarded into namespace cachealloc.
//
// Note [No libstdc++ dependency]
// A failed plain `new` calls the new-handler, retries, and throws std::bad_alloc when there is
// none; the nothrow forms return nullptr. Those pieces of the C++ runtime (std::get_new_handler,
// throwing std::bad_alloc, catching it for the nothrow forms) are looked up in libstdc++ when an
// allocation first fails, instead of being linked: so libcachealloc.so has no NEEDED entry on
// libstdc++ (and through it libm and libgcc_s), and a C program under the preload does not load
// 1.2 MiB of C++ runtime it never uses. Any program that calls operator new has a C++ runtime
// loaded already. This file is built without exceptions like the rest; a std::bad_alloc thrown by
// the runtime or a handler unwinds through these frames with their unwind tables
// (-funwind-tables), as nothing here needs cleaning up. The nothrow forms with a handler
// installed go to libstdc++'s own nothrow operator new (found with RTLD_NEXT), which calls our
// throwing form inside its try/catch, exactly as [new.delete.single] describes.
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <dlfcn.h>
#include <new>

#include "core/allocator.h"
#include "export.h"
#include "platform/os.h"

namespace ca = cachealloc;

namespace {

using GetHandlerFn = std::new_handler (*)();
using ThrowFn = void (*)();
using NothrowNewFn = void* (*)(size_t, const std::nothrow_t&);
using NothrowAlignedNewFn = void* (*)(size_t, std::align_val_t, const std::nothrow_t&);

constexpr std::nothrow_t kNothrow{};  // not std::nothrow: that object lives in libstdc++
constinit std::atomic<void*> g_get_handler{nullptr};
constinit std::atomic<void*> g_throw_bad_alloc{nullptr};
constinit std::atomic<void*> g_nothrow_new{nullptr};
constinit std::atomic<void*> g_nothrow_aligned_new{nullptr};

// The C++ runtime's `name` (RTLD_NEXT: the definition after cachealloc's own), or nullptr.
template <typename Fn>
Fn runtime_fn(std::atomic<void*>& cache, void* handle, const char* name) noexcept {
  void* f = cache.load(std::memory_order_acquire);
  if (f == nullptr) {
    ca::os::DlsymFn real = ca::os::real_dlsym();
    f = real != nullptr ? real(handle, name) : nullptr;
    if (f != nullptr) cache.store(f, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(f);
}

std::new_handler current_handler() noexcept {
  auto get = runtime_fn<GetHandlerFn>(g_get_handler, RTLD_DEFAULT, "_ZSt15get_new_handlerv");
  return get != nullptr ? get() : nullptr;
}

[[noreturn]] void throw_bad_alloc() {
  auto f = runtime_fn<ThrowFn>(g_throw_bad_alloc, RTLD_DEFAULT, "_ZSt17__throw_bad_allocv");
  if (f != nullptr) f();  // std::__throw_bad_alloc: does not return
  static const char kMsg[] =
      "cachealloc: operator new(): out of memory, and no C++ runtime is loaded to throw "
      "std::bad_alloc\n";
  ca::os::write_stderr(kMsg, sizeof kMsg - 1);
  std::abort();
}

// A nothrow form with a handler installed: the handler may throw, so the runtime's own nothrow
// operator new runs it (through our throwing form) inside a try/catch.
void* nothrow_with_handler(size_t n, size_t align) noexcept {
  if (align <= 16) {
    auto f = runtime_fn<NothrowNewFn>(g_nothrow_new, RTLD_NEXT, "_ZnwmRKSt9nothrow_t");
    if (f != nullptr) return f(n, kNothrow);
  } else {
    auto f = runtime_fn<NothrowAlignedNewFn>(g_nothrow_aligned_new, RTLD_NEXT,
                                             "_ZnwmSt11align_val_tRKSt9nothrow_t");
    if (f != nullptr) return f(n, std::align_val_t{align}, kNothrow);
  }
  return nullptr;  // no runtime to catch for us: fail rather than risk a throw through noexcept
}

[[gnu::noinline]] void* new_slow(size_t n, size_t align, bool nothrow) {
  for (;;) {
    void* p = align <= 16 ? ca::api_malloc(n) : ca::malloc_counted(n, align, false);
    if (p != nullptr) return p;
    std::new_handler handler = current_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw_bad_alloc();
    }
    if (nothrow) return nothrow_with_handler(n, align);
    handler();
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

CA_CXX_EXPORT void* operator new(size_t n) { return new_plain(n); }
CA_CXX_EXPORT void* operator new[](size_t n) { return new_plain(n); }
CA_CXX_EXPORT void* operator new(size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n); }
CA_CXX_EXPORT void* operator new[](size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n); }
CA_CXX_EXPORT void* operator new(size_t n, std::align_val_t a) { return new_aligned(n, a, false); }
CA_CXX_EXPORT void* operator new[](size_t n, std::align_val_t a) { return new_aligned(n, a, false); }
CA_CXX_EXPORT void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return new_aligned(n, a, true); }
CA_CXX_EXPORT void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept { return new_aligned(n, a, true); }

CA_CXX_EXPORT void operator delete(void* p) noexcept { ca::api_free(p, "operator delete"); }
CA_CXX_EXPORT void operator delete[](void* p) noexcept { ca::api_free(p, "operator delete[]"); }
CA_CXX_EXPORT void operator delete(void* p, size_t n) noexcept { ca::api_free(p, "operator delete", n, 0); }
CA_CXX_EXPORT void operator delete[](void* p, size_t n) noexcept { ca::api_free(p, "operator delete[]", n, 0); }
CA_CXX_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { ca::api_free(p, "operator delete"); }
CA_CXX_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { ca::api_free(p, "operator delete[]"); }
CA_CXX_EXPORT void operator delete(void* p, std::align_val_t a) noexcept {
  ca::api_free(p, "operator delete", 0, static_cast<size_t>(a));
}
CA_CXX_EXPORT void operator delete[](void* p, std::align_val_t a) noexcept {
  ca::api_free(p, "operator delete[]", 0, static_cast<size_t>(a));
}
CA_CXX_EXPORT void operator delete(void* p, size_t n, std::align_val_t a) noexcept {
  ca::api_free(p, "operator delete", n, static_cast<size_t>(a));
}
CA_CXX_EXPORT void operator delete[](void* p, size_t n, std::align_val_t a) noexcept {
  ca::api_free(p, "operator delete[]", n, static_cast<size_t>(a));
}
CA_CXX_EXPORT void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  ca::api_free(p, "operator delete", 0, static_cast<size_t>(a));
}
CA_CXX_EXPORT void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  ca::api_free(p, "operator delete[]", 0, static_cast<size_t>(a));
}
