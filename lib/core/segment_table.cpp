// segment_table.cpp - see segment_table.h.
#include "core/segment_table.h"

#include "core/meta_arena.h"

namespace cachealloc {

bool SegmentTable::set(uintptr_t base, SegmentMeta* meta) noexcept {
  uintptr_t idx = base >> kSegmentShift;
  if (idx >> kIndexBits) return false;
  std::atomic<Leaf*>& slot = root_[idx >> kLeafBits];
  Leaf* leaf = slot.load(std::memory_order_acquire);
  if (leaf == nullptr) {
    if (meta == nullptr) return true;
    leaf = static_cast<Leaf*>(MetaArena::map_array(sizeof(Leaf)));
    if (leaf == nullptr) return false;
    slot.store(leaf, std::memory_order_release);
  }
  leaf->entries[idx & ((1u << kLeafBits) - 1)].store(meta, std::memory_order_release);
  return true;
}

}  // namespace cachealloc
