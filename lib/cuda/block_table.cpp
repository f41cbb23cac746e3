// block_table.cpp - see block_table.h.
#include "cuda/block_table.h"

#include <atomic>

#include "platform/os.h"
#include "util/spin_lock.h"

namespace cachealloc::cuda {
namespace {

constexpr uint32_t kSlots = kMaxBlocks * 2;  // load factor <= 1/2
constexpr uint32_t kSlotMask = kSlots - 1;

constinit SpinLock g_lock;
constinit Block* g_blocks = nullptr;
constinit uint32_t* g_index = nullptr;  // block ids; 0 = empty
constinit uint32_t g_free_head = kNoBlock;
constinit uint32_t g_high_water = 1;     // ids below this have been handed out at least once
constinit bool g_map_failed = false;

uint32_t slot_of(uint64_t addr) noexcept {
  uint64_t h = addr * 0x9e3779b97f4a7c15ull;
  return static_cast<uint32_t>(h >> 40) & kSlotMask;
}

bool ensure_mapped() noexcept {
  if (g_blocks != nullptr) return true;
  if (g_map_failed) return false;
  size_t page = os::page_size();
  size_t blocks_bytes = (sizeof(Block) * kMaxBlocks + page - 1) & ~(page - 1);
  size_t index_bytes = (sizeof(uint32_t) * kSlots + page - 1) & ~(page - 1);
  void* b = os::map_aligned(blocks_bytes, page);
  void* i = b != nullptr ? os::map_aligned(index_bytes, page) : nullptr;
  if (i == nullptr) {
    if (b != nullptr) os::unmap(b, blocks_bytes);
    g_map_failed = true;
    return false;
  }
  g_blocks = static_cast<Block*>(b);
  g_index = static_cast<uint32_t*>(i);
  return true;
}

}  // namespace

uint32_t table_insert(uint64_t addr) noexcept {
  LockGuard guard(g_lock);
  if (!ensure_mapped()) return kNoBlock;
  uint32_t id = g_free_head;
  if (id != kNoBlock) {
    g_free_head = g_blocks[id].next;
  } else if (g_high_water < kMaxBlocks) {
    id = g_high_water++;
  } else {
    return kNoBlock;
  }
  g_blocks[id] = Block{};
  g_blocks[id].addr = addr;
  uint32_t s = slot_of(addr);
  while (g_index[s] != 0) s = (s + 1) & kSlotMask;
  g_index[s] = id;
  return id;
}

uint32_t table_find(uint64_t addr) noexcept {
  LockGuard guard(g_lock);
  if (g_blocks == nullptr) return kNoBlock;
  for (uint32_t s = slot_of(addr);; s = (s + 1) & kSlotMask) {
    uint32_t id = g_index[s];
    if (id == 0) return kNoBlock;
    if (g_blocks[id].addr == addr) return id;
  }
}

void table_erase(uint32_t id) noexcept {
  LockGuard guard(g_lock);
  uint64_t addr = g_blocks[id].addr;
  uint32_t s = slot_of(addr);
  while (g_index[s] != id) s = (s + 1) & kSlotMask;
  // Backward-shift deletion keeps every probe chain unbroken without tombstones.
  uint32_t hole = s;
  for (uint32_t j = (hole + 1) & kSlotMask; g_index[j] != 0; j = (j + 1) & kSlotMask) {
    uint32_t home = slot_of(g_blocks[g_index[j]].addr);
    // Move j into the hole unless its home lies cyclically in (hole, j].
    bool home_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!home_between) {
      g_index[hole] = g_index[j];
      hole = j;
    }
  }
  g_index[hole] = 0;
  g_blocks[id].state = BlockState::kFree;
  g_blocks[id].addr = 0;
  g_blocks[id].next = g_free_head;
  g_free_head = id;
}

Block& table_block(uint32_t id) noexcept { return g_blocks[id]; }

uint32_t table_limit() noexcept {
  LockGuard guard(g_lock);
  return g_blocks == nullptr ? 1 : g_high_water;
}

}  // namespace cachealloc::cuda
