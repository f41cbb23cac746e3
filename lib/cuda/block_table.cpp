// block_table.cpp - see block_table.h.
#include "cuda/block_table.h"

#include "platform/os.h"

namespace cachealloc::cuda {
namespace {

constexpr uint32_t kSlots = kMaxBlocks * 2;  // load factor <= 1/2
constexpr uint32_t kSlotMask = kSlots - 1;

uint32_t slot_of(uint64_t addr) noexcept {
  uint64_t h = addr * 0x9e3779b97f4a7c15ull;
  return static_cast<uint32_t>(h >> 40) & kSlotMask;
}

size_t blocks_bytes() noexcept {
  size_t page = os::page_size();
  return (sizeof(Block) * kMaxBlocks + page - 1) & ~(page - 1);
}
size_t index_bytes() noexcept {
  size_t page = os::page_size();
  return (sizeof(uint32_t) * kSlots + page - 1) & ~(page - 1);
}

}  // namespace

bool BlockTable::ensure_mapped() noexcept {
  if (blocks_ != nullptr) return true;
  if (map_failed_) return false;
  size_t page = os::page_size();
  void* b = os::map_aligned(blocks_bytes(), page);
  void* i = b != nullptr ? os::map_aligned(index_bytes(), page) : nullptr;
  if (i == nullptr) {
    if (b != nullptr) os::unmap(b, blocks_bytes());
    map_failed_ = true;
    return false;
  }
  blocks_ = static_cast<Block*>(b);
  index_ = static_cast<uint32_t*>(i);
  high_water_ = 1;  // id 0 is the index's empty slot
  return true;
}

uint32_t BlockTable::insert(uint64_t addr) noexcept {
  LockGuard guard(lock_);
  if (!ensure_mapped()) return kNoBlock;
  uint32_t id = free_head_;
  if (id != 0) {
    free_head_ = blocks_[id].next;
  } else if (high_water_ < kMaxBlocks) {
    id = high_water_++;
  } else {
    return kNoBlock;
  }
  blocks_[id] = Block{};
  blocks_[id].addr = addr;
  // No pool yet: a pool_drop scanning the table meanwhile never takes it for one of its own.
  blocks_[id].pool = 0xffff;
  uint32_t s = slot_of(addr);
  while (index_[s] != 0) s = (s + 1) & kSlotMask;
  index_[s] = id;
  return id;
}

uint32_t BlockTable::find(uint64_t addr) noexcept {
  LockGuard guard(lock_);
  if (blocks_ == nullptr) return kNoBlock;
  for (uint32_t s = slot_of(addr);; s = (s + 1) & kSlotMask) {
    uint32_t id = index_[s];
    if (id == 0) return kNoBlock;
    if (blocks_[id].addr == addr) return id;
  }
}

void BlockTable::erase(uint32_t id) noexcept {
  LockGuard guard(lock_);
  uint64_t addr = blocks_[id].addr;
  uint32_t s = slot_of(addr);
  while (index_[s] != id) s = (s + 1) & kSlotMask;
  // Backward-shift deletion keeps every probe chain unbroken without tombstones.
  uint32_t hole = s;
  for (uint32_t j = (hole + 1) & kSlotMask; index_[j] != 0; j = (j + 1) & kSlotMask) {
    uint32_t home = slot_of(blocks_[index_[j]].addr);
    // Move j into the hole unless its home lies cyclically in (hole, j].
    bool home_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!home_between) {
      index_[hole] = index_[j];
      hole = j;
    }
  }
  index_[hole] = 0;
  blocks_[id].state = BlockState::kFree;
  blocks_[id].addr = 0;
  blocks_[id].next = free_head_;
  free_head_ = id;
}

uint32_t BlockTable::limit() noexcept {
  LockGuard guard(lock_);
  return blocks_ == nullptr ? 1 : high_water_;
}

void BlockTable::unmap() noexcept {
  LockGuard guard(lock_);
  if (blocks_ != nullptr) {
    os::unmap(blocks_, blocks_bytes());
    os::unmap(index_, index_bytes());
  }
  blocks_ = nullptr;
  index_ = nullptr;
  free_head_ = 0;
  high_water_ = 0;
  map_failed_ = false;
}

}  // namespace cachealloc::cuda
