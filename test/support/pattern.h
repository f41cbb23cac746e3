// pattern.h - the fill pattern every test writes into the blocks it allocates and checks later.
//
// The byte at position i of a block depends on the block's tag and on i, so a block handed to two
// owners, copied short by realloc, overwritten through a stale pointer or shifted shows up. Two
// forms over the same bytes:
//   fill / first_mismatch / intact: every byte (unit and conformance tests);
//   fill_sparse / sparse_intact / sparse_prefix_intact: every byte of a block up to 4 KiB; of a
//     bigger one the first and last 256 bytes and every 61st byte between, so programs that churn
//     through many megabyte blocks (stress, preload) stay fast.
// Header-only, no dependency: included by relative path from every test folder.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pattern {

inline unsigned char byte(uint64_t tag, size_t i) {
  return static_cast<unsigned char>((tag * 0x9E3779B97F4A7C15ull >> 56) ^ (i * 251) ^ (i >> 9));
}

inline void fill(void* p, size_t n, uint64_t tag) {
  auto* b = static_cast<unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) b[i] = byte(tag, i);
}
// The index of the first byte that differs from the pattern, or n when all match.
inline size_t first_mismatch(const void* p, size_t n, uint64_t tag) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != byte(tag, i)) return i;
  }
  return n;
}
inline bool intact(const void* p, size_t n, uint64_t tag) { return first_mismatch(p, n, tag) == n; }

namespace detail {
constexpr size_t kDense = 4096;  // blocks up to this size: every byte
constexpr size_t kEnds = 256;    // bigger ones: this many bytes at each end...
constexpr size_t kStride = 61;   // ...and every kStride-th byte between
// Calls f(i) for each position the sparse form covers in a block of n bytes, below `limit`.
template <class F>
bool each_sparse(size_t n, size_t limit, F&& f) {
  if (n <= kDense) {
    for (size_t i = 0; i < n && i < limit; ++i) {
      if (!f(i)) return false;
    }
    return true;
  }
  for (size_t i = 0; i < kEnds && i < limit; ++i) {
    if (!f(i)) return false;
  }
  for (size_t i = kEnds; i < n - kEnds && i < limit; i += kStride) {
    if (!f(i)) return false;
  }
  for (size_t i = n - kEnds; i < n && i < limit; ++i) {
    if (!f(i)) return false;
  }
  return true;
}
}  // namespace detail

inline void fill_sparse(void* p, size_t n, uint64_t tag) {
  auto* b = static_cast<unsigned char*>(p);
  detail::each_sparse(n, n, [&](size_t i) {
    b[i] = byte(tag, i);
    return true;
  });
}
inline bool sparse_intact(const void* p, size_t n, uint64_t tag) {
  auto* b = static_cast<const unsigned char*>(p);
  return detail::each_sparse(n, n, [&](size_t i) { return b[i] == byte(tag, i); });
}
// After a realloc from old_n bytes to a block that keeps `keep` of them: the sparse pattern of
// (tag, old_n) below keep is still there.
inline bool sparse_prefix_intact(const void* p, size_t old_n, size_t keep, uint64_t tag) {
  auto* b = static_cast<const unsigned char*>(p);
  return detail::each_sparse(old_n, keep, [&](size_t i) { return b[i] == byte(tag, i); });
}

}  // namespace pattern
