// layout.h - which cached device block serves which request (Note [Device layouts]).
//
// Pure functions, no state: the pool (device_pool.h) buckets its ready blocks with bucket_of and
// looks for a block in [rounded, near_fit_limit(rounded)].
#pragma once

#include <cstddef>

namespace cachealloc::cuda {

// ---- Layouts -------------------------------------------------------------------------------
// Note [Device layouts]
// Sizes up to 1 MiB round up to 512 B and a cached block serves only its own layout. Larger sizes
// round up to a 2 MiB granule (what PyTorch's allocator does), so a request near the free memory
// (cudaMalloc of 95% of what cudaMemGetInfo reports, JAX's 75% preallocation) asks CUDA for at
// most 2 MiB more than the program did. Blocks above 1 MiB sit in buckets of four per power of
// two by their size, and a request of n is served by a ready block of size in [n, n + n/4]
// (near-fit): varying sizes (Thrust/CUB temporaries) still hit, and no block is handed out for a
// request more than a quarter smaller. Requests past kMaxCachedSize are not cached. A block that
// had to be allocated at the exact size asked for (the rounded size did not fit in the free
// memory) is smaller than its layout and serves the requests it holds, its own size included.
inline constexpr size_t kSmallStep = 512;
inline constexpr size_t kSmallLimit = size_t{1} << 20;
inline constexpr size_t kLargeGranule = size_t{2} << 20;
inline constexpr size_t kMaxCachedSize = size_t{1} << 46;
inline constexpr unsigned kSmallBuckets = kSmallLimit / kSmallStep;  // 2048
inline constexpr unsigned kNumBuckets = kSmallBuckets + 4 * (46 - 20) + 1;

constexpr size_t round_size(size_t n) {
  if (n <= kSmallLimit) return (n + kSmallStep - 1) & ~(kSmallStep - 1);
  return (n + kLargeGranule - 1) & ~(kLargeGranule - 1);
}
// The bucket of a block or request of size n (up to 1 MiB, that of n rounded up to 512).
// Pre: 0 < n <= kMaxCachedSize + kLargeGranule.
constexpr unsigned bucket_of(size_t n) {
  if (n <= kSmallLimit) return static_cast<unsigned>((n + kSmallStep - 1) / kSmallStep) - 1;
  unsigned k = 63 - static_cast<unsigned>(__builtin_clzll(n));  // n in [2^k, 2^(k+1))
  if (k >= 46) return kNumBuckets - 1;
  unsigned quarter = static_cast<unsigned>((n >> (k - 2)) & 3);
  return kSmallBuckets + (k - 20) * 4 + quarter;
}
// The largest block a request of rounded size n may be served with (near-fit).
constexpr size_t near_fit_limit(size_t n) { return n <= kSmallLimit ? n : n + n / 4; }
static_assert(round_size(1) == 512 && round_size(512) == 512 && round_size(513) == 1024);
static_assert(round_size((1 << 20) + 1) == (2 << 20) && round_size(3 << 20) == (4 << 20));
static_assert(bucket_of(512) == 0 && bucket_of(1 << 20) == kSmallBuckets - 1);
static_assert(bucket_of((1 << 20) + (1 << 18)) == kSmallBuckets + 1);
static_assert(bucket_of(size_t{2} << 20) == kSmallBuckets + 4);
static_assert(bucket_of(kMaxCachedSize) == kNumBuckets - 1);

}  // namespace cachealloc::cuda
