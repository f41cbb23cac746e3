// diagnostics.h - the one way cachealloc reports misuse and internal faults.
//
// Messages are one line, start with "cachealloc: ", and name the call and the pointer. Fatal ones
// abort (like glibc's "free(): invalid pointer"); a warning is printed every time warn() is called,
// so a caller that could repeat one decides how often (options warn once, when they are parsed).
#pragma once

#include <cstddef>

namespace cachealloc {

// "cachealloc: <call>(): <what> <ptr>" then abort.
[[noreturn, gnu::cold, gnu::noinline]] void fatal_pointer(const char* call, const char* what,
                                                         const void* p) noexcept;
// "cachealloc: internal error: <what>" then abort.
[[noreturn, gnu::cold, gnu::noinline]] void fatal_internal(const char* what) noexcept;
// "cachealloc: warning: <text>" (no abort).
[[gnu::cold, gnu::noinline]] void warn(const char* text) noexcept;

#define CA_CHECK(cond, what)                                   \
  do {                                                         \
    if (__builtin_expect(!(cond), 0)) ::cachealloc::fatal_internal(what); \
  } while (0)

}  // namespace cachealloc
