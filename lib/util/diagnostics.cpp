// diagnostics.cpp - message formatting for diagnostics.h.
#include "util/diagnostics.h"

#include "platform/os.h"
#include "util/format.h"

namespace cachealloc {

void fatal_pointer(const char* call, const char* what, const void* p) noexcept {
  StackText<256> t;
  t.str("cachealloc: ").str(call).str("(): ").str(what).chr(' ').ptr(p).chr('\n');
  os::die(t.data(), t.size());
}

void fatal_internal(const char* what) noexcept {
  StackText<256> t;
  t.str("cachealloc: internal error: ").str(what).chr('\n');
  os::die(t.data(), t.size());
}

void warn(const char* text) noexcept {
  StackText<512> t;
  t.str("cachealloc: warning: ").str(text).chr('\n');
  os::write_stderr(t.data(), t.size());
}

}  // namespace cachealloc
