// size_class.h - sizes to layouts: the constexpr tables every pool is keyed by.
//
// A layout is (size class, alignment). Small classes: 16..128 in steps of 16, then 8 classes per
// power of two up to kMaxSmallSize (so at most 12.5% internal waste above 128 B): 96 classes.
// Alignments up to 16 share the default layout. A larger alignment A (up to kPageSize) is served by
// the first class whose block stride is a multiple of A: slabs start on page boundaries, so every
// block of such a class is A-aligned by construction (see Note [Aligned layouts]). Bigger
// alignments, and sizes past the large threshold, are large layouts (large_cache.h).
//
// Note [Aligned layouts]
// Keeping separate pools per (class, alignment) would multiply slabs and thread-cache bins for a
// rare request. Instead the layout (class c, alignment A) resolves to the class c' >= c whose size is
// a multiple of A. The block then lies on an A boundary because slab start (page-aligned) plus
// k * size(c') is a multiple of A. The cost is bounded waste, which any aligned request pays anyway.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cachealloc {

inline constexpr size_t kMinAlign = 16;
inline constexpr size_t kPageShift = 16;  // 64 KiB slab pages
inline constexpr size_t kPageSize = size_t{1} << kPageShift;
inline constexpr size_t kSegmentShift = 22;  // 4 MiB segments mapped from the OS
inline constexpr size_t kSegmentSize = size_t{1} << kSegmentShift;
inline constexpr size_t kPagesPerSegment = kSegmentSize / kPageSize;  // 64
inline constexpr size_t kMaxSmallSize = size_t{256} << 10;
inline constexpr unsigned kNumClasses = 96;
inline constexpr uint8_t kNoClass = 0xff;
// The size of a thread cache's bin (ThreadCache::Bin): class c's bin is at byte c * kBinBytes,
// which the page descriptors hold so that free() needs no multiply (Note [Page descriptors]).
inline constexpr size_t kBinBytes = 16;
// The bin of blocks with a refcount-table entry (Note [Shared pages]): one past the classes'.
inline constexpr size_t kSharedBin = kNumClasses * kBinBytes;
// Page descriptors and the size table hold bin offsets in 16 bits.
static_assert(kSharedBin <= UINT16_MAX);

constexpr size_t class_size(unsigned c) {
  if (c < 8) return 16 * (c + 1);
  unsigned k = 7 + (c - 8) / 8;
  unsigned j = (c - 8) % 8;
  return (size_t{1} << k) + (j + 1) * (size_t{1} << (k - 3));
}

// Pre: 1 <= n <= kMaxSmallSize.
constexpr unsigned class_of_slow(size_t n) {
  if (n <= 128) return static_cast<unsigned>((n + 15) / 16 - 1);
  unsigned k = 63 - static_cast<unsigned>(__builtin_clzll(n - 1));
  unsigned j = static_cast<unsigned>(((n - 1) >> (k - 3)) - 8);
  return 8 + (k - 7) * 8 + j;
}

namespace detail {
inline constexpr size_t kLookupMax = 1024;
// Note [Size lookup]: the bin of every size up to 1 KiB, by the size itself, not by (n + 15) / 16:
// malloc then indexes the table with its argument (no add, no shift) and gets the offset of the
// class's bin in a ThreadCache (no shift to scale a class). 2 KiB, where the table by 16 bytes
// was 65; a program touches the lines of the sizes it uses. malloc's fast path: 30 -> 27
// instructions (disassembled).
struct BinLookup {
  uint16_t bin[kLookupMax + 1];  // class_of_slow(n) * kBinBytes; n == 0 gives class 0
};
constexpr BinLookup make_lookup() {
  BinLookup t{};
  for (size_t n = 0; n <= kLookupMax; ++n) {
    t.bin[n] = static_cast<uint16_t>(class_of_slow(n == 0 ? 1 : n) * kBinBytes);
  }
  return t;
}
inline constexpr BinLookup kLookup = make_lookup();
}  // namespace detail

// The offset of the bin of size n's class in a ThreadCache (class * kBinBytes): a load. Pre:
// n <= kLookupMax.
inline size_t bin_of_small(size_t n) { return detail::kLookup.bin[n]; }
// Size to class by table, about 3 instructions. Pre: n <= kLookupMax; n == 0 gives class 0.
inline unsigned class_of_small(size_t n) {
  return static_cast<unsigned>(bin_of_small(n) / kBinBytes);
}

// Size to class. Pre: n <= kMaxSmallSize; n == 0 gives class 0.
inline unsigned class_of(size_t n) {
  if (n <= detail::kLookupMax) return class_of_small(n);
  return class_of_slow(n);
}

// The class serving (n, align) for 16 < align <= kPageSize, or kNumClasses when none is small.
constexpr unsigned class_of_aligned(size_t n, size_t align) {
  if (n < align) n = align;
  if (n > kMaxSmallSize) return kNumClasses;
  for (unsigned c = class_of_slow(n); c < kNumClasses; ++c) {
    if (class_size(c) % align == 0) return c;
  }
  return kNumClasses;
}

// Pages per slab: enough for 8 blocks, a power of two, but at most 2 pages (128 KiB) unless one
// block needs more (up to 4 pages for the biggest classes). Note [Slabs of big classes]
// A slab stays committed while any of its blocks is out, and a thread's bin and the transfer
// slots keep a block or two of every class the program used. With 8 blocks of up to 64 KiB per
// slab, a program that passes through the big classes once (strings grown by realloc,
// bench-growth) left two 512 KiB-1 MiB slabs of each pinned by those blocks: 10 MiB of RSS for
// 3 MiB of strings. At 128 KiB a pinned slab holds 2-3 big blocks (growth: 79.7 -> 66 MiB peak
// RSS, with Note [A miss reuses cached pages]); the tail a slab cannot use is never touched.
constexpr unsigned slab_pages(unsigned c) {
  size_t want = (8 * class_size(c) + kPageSize - 1) / kPageSize;
  size_t one = (class_size(c) + kPageSize - 1) / kPageSize;
  unsigned p = 1;
  while (p < want && p < 2) p *= 2;
  while (p < one) p *= 2;
  return p;
}

// Note [Block boundary test]
// free() must refuse a pointer into the middle of a block, or past a slab's last block, or the
// next malloc of that class would hand out memory overlapping a live block or the next slab. A
// division
// on the fast path costs ~25 cycles; instead each class keeps c = ceil(2^64 / size) (Lemire, Kaser
// and Kurz, "Faster remainder by direct computation", 2019). For an offset n = k * size + r from
// the slab start (n < 2^32, r < size) the 64-bit product n * c is
//   k * e         when r == 0, where e = c * size - 2^64 < size: below n, so below 2^32;
//   k * e + r * c otherwise, without wrapping, so at least c >= 2^46 (sizes are at most 2^18).
// So `n * c < capacity * e` holds exactly for the first `capacity` blocks: one multiply and one
// compare test the boundary and the slab's end together. A size that is a power of two has e = 0
// and bound 1: every multiple passes, and its slabs have no tail (they are whole pages: checked
// below). The tail a slab of another size cannot use (48-byte blocks leave 16 bytes of a 64 KiB
// slab) starts at a multiple of the size and is refused, which a test of divisibility alone (the
// one used before, a multiply and a rotate) accepted. Offsets are below 2^18 (a slab), and the
// page descriptor says which slab covers a page, so a pointer on the page is never before the
// slab's start nor past its end.
struct BlockDivisor {
  uint64_t magic;  // ceil(2^64 / size)
  uint64_t step;   // magic * size mod 2^64: the product of block k is k * step
};

constexpr BlockDivisor make_block_divisor(size_t size) {
  const uint64_t magic = UINT64_MAX / size + 1;
  return BlockDivisor{magic, magic * size};
}

// The bound of the product for a slab of `capacity` blocks (at least one).
constexpr uint64_t block_bound(const BlockDivisor& d, uint32_t capacity) {
  return d.step == 0 ? 1 : d.step * capacity;
}

namespace detail {
struct DivisorTable {
  BlockDivisor d[kNumClasses];
};
constexpr DivisorTable make_divisors() {
  DivisorTable t{};
  for (unsigned c = 0; c < kNumClasses; ++c) t.d[c] = make_block_divisor(class_size(c));
  return t;
}
inline constexpr DivisorTable kDivisors = make_divisors();
}  // namespace detail

// True when `offset` (from the slab start) is the start of one of the `capacity` blocks of a slab
// of class cls. Pre: cls < kNumClasses, offset below the slab's bytes (a whole number of pages).
constexpr bool is_block_offset(uint32_t offset, unsigned cls, uint32_t capacity) {
  const BlockDivisor& d = detail::kDivisors.d[cls];
  return uint64_t{offset} * d.magic < block_bound(d, capacity);
}
// offset / class_size(cls), by a multiply (the high half of the 128-bit product). Pre: cls <
// kNumClasses.
constexpr uint32_t block_index(uint32_t offset, unsigned cls) {
  const uint64_t magic = detail::kDivisors.d[cls].magic;
  return static_cast<uint32_t>((static_cast<unsigned __int128>(offset) * magic) >> 64);
}

// The bound 1 of a power-of-two size relies on its slabs holding no tail.
constexpr bool powers_of_two_fill_their_slabs() {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    const size_t size = class_size(c);
    if ((size & (size - 1)) == 0 && slab_pages(c) * kPageSize % size != 0) return false;
  }
  return true;
}
static_assert(powers_of_two_fill_their_slabs());
static_assert(is_block_offset(0, 8, 455) && is_block_offset(144 * 7, 8, 455));
static_assert(!is_block_offset(16, 8, 455) && !is_block_offset(144 * 455, 8, 455));
static_assert(block_index(144 * 7 + 16, 8) == 7);
static_assert(is_block_offset(288 * 3, 16, 227) && !is_block_offset(288 * 3 + 32, 16, 227));
static_assert(is_block_offset(64 * 1023, 3, 1024) && !is_block_offset(64 * 1023 + 16, 3, 1024));

// Blocks moved between a thread cache and the central pool at once: at most 16 blocks and 16 KiB.
// Note [Batch size]: a batch is also what a thread holds of a class between two refills, and what
// the consumer of a queue collects before the producer sees it again, so the memory in flight is
// about two batches per class in use. bench-prodcons (24 classes of 16-512 B crossing threads;
// glibc 3.4 MiB) peaked at 4.83 MiB with batches of 64 blocks and 32 KiB, 4.58 with 64 and
// 16 KiB, 4.35 with 32 and 16 KiB, 4.21 with 16 and 16 KiB; espresso 3.96, 3.75, -, 3.68
// (medians of 3-7 alternating runs, /usr/bin/time). The bound of a thread's bin does not shrink
// with the batch (bin_unit below): when it did (4 batches of 32), churn had looked 10-40% slower.
// With 16 blocks, callgrind counts the same instructions per op on churn and mixed (172, 618),
// +2-3% on threads and thread_churn, and +12% on prodcons (251 -> 280: twice the hand-offs).
// Blocks of class c in `bytes`, at least one and at most `most`.
constexpr uint32_t blocks_within(unsigned c, size_t bytes, size_t most) {
  size_t b = bytes / class_size(c);
  if (b < 1) b = 1;
  if (b > most) b = most;
  return static_cast<uint32_t>(b);
}
constexpr uint32_t batch_size(unsigned c) { return blocks_within(c, 16 * 1024, 16); }
// The unit of a thread's bin bound: 64 blocks and 16 KiB at most.
constexpr uint32_t bin_unit(unsigned c) { return blocks_within(c, 16 * 1024, 64); }

// Most blocks a thread keeps per class before flushing: up to 4 bin units, so that a thread whose
// working set hovers around a bin boundary rarely flushes (a random walk bounded by M reaches a
// bound after ~M^2 steps), which keeps blocks thread-local (Note [Sharded transfer slots]); but
// at most 64 KiB of memory per bin (at least one batch), so big classes do not park megabytes of
// free memory per thread outside the cache budget.
inline constexpr size_t kThreadBinBytes = 64 * 1024;
constexpr uint32_t thread_cache_max(unsigned c) {
  uint32_t b = batch_size(c);
  size_t by_bytes = kThreadBinBytes / class_size(c);
  size_t m = 4 * size_t{bin_unit(c)};
  if (m > by_bytes) m = by_bytes;
  if (m < b) m = b;
  if (m < 2 && 2 * class_size(c) <= 2 * kThreadBinBytes) m = 2;
  return static_cast<uint32_t>(m);
}
static_assert(class_size(kNumClasses - 1) == kMaxSmallSize);
static_assert(class_of_slow(kMaxSmallSize) == kNumClasses - 1);
static_assert(class_of_slow(129) == 8 && class_size(8) == 144);
static_assert(class_of_slow(257) == 16 && class_size(16) == 288);

}  // namespace cachealloc
