// segment_table.h - from any address to the metadata of the small-object segment holding it.
//
// Segments are kSegmentSize (4 MiB) aligned mappings. The table is a two-level radix tree over the
// 47-bit user address space: a root of 4096 leaf pointers (32 KiB, in .bss) and leaves of 8192
// entries mapped on demand. lookup() is two dependent loads and never takes a lock; an address
// outside every segment gives nullptr, which is how free() tells small blocks from large or foreign
// ones in O(1) without a per-block header.
//
// SYNCHRONIZATION: set() runs under the slab source's lock; lookup() races with it benignly: an
// entry is published (release) before any block of its segment is handed out.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/size_class.h"

namespace cachealloc {

struct SegmentMeta;

class SegmentTable {
 public:
  static constexpr unsigned kAddressBits = 47;
  static constexpr unsigned kIndexBits = kAddressBits - kSegmentShift;  // 25
  static constexpr unsigned kLeafBits = 13;
  static constexpr unsigned kRootBits = kIndexBits - kLeafBits;  // 12

  constexpr SegmentTable() = default;

  // About 12 instructions: two shifts, one bound check (the root index of an address past the 47
  // bits is past the root), two dependent loads and their null tests.
  SegmentMeta* lookup(const void* p) const noexcept {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    const uintptr_t r = a >> (kSegmentShift + kLeafBits);
    if (r >= (uintptr_t{1} << kRootBits)) return nullptr;
    Leaf* leaf = root_[r].load(std::memory_order_acquire);
    if (leaf == nullptr) return nullptr;
    return leaf->entries[(a >> kSegmentShift) & ((1u << kLeafBits) - 1)].load(std::memory_order_acquire);
  }

  // Registers (or with nullptr, removes) the segment starting at `base`. False when a leaf could
  // not be mapped.
  bool set(uintptr_t base, SegmentMeta* meta) noexcept;

 private:
  struct Leaf {
    std::atomic<SegmentMeta*> entries[1u << kLeafBits];
  };
  std::atomic<Leaf*> root_[1u << kRootBits] = {};
};

}  // namespace cachealloc
