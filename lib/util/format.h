// format.h - building messages in a stack buffer, without allocating (no printf, no iostream).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cachealloc {

// Appends text to a fixed buffer, silently truncating. Always NUL-terminated.
template <size_t N>
class StackText {
 public:
  StackText& str(const char* s) noexcept {
    while (s != nullptr && *s != '\0') put(*s++);
    return *this;
  }
  StackText& chr(char c) noexcept {
    put(c);
    return *this;
  }
  StackText& dec(uint64_t v) noexcept {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) put(tmp[--n]);
    return *this;
  }
  StackText& hex(uint64_t v) noexcept {
    str("0x");
    bool started = false;
    for (int shift = 60; shift >= 0; shift -= 4) {
      unsigned d = (v >> shift) & 0xf;
      if (d != 0 || started || shift == 0) {
        put("0123456789abcdef"[d]);
        started = true;
      }
    }
    return *this;
  }
  StackText& ptr(const void* p) noexcept { return hex(reinterpret_cast<uintptr_t>(p)); }

  const char* data() const noexcept { return buf_; }
  size_t size() const noexcept { return len_; }

 private:
  void put(char c) noexcept {
    if (len_ + 1 < N) {
      buf_[len_++] = c;
      buf_[len_] = '\0';
    }
  }
  char buf_[N] = {};
  size_t len_ = 0;
};

}  // namespace cachealloc
