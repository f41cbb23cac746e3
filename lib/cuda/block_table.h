// block_table.h - every device and pinned block a DeviceCache handed out, indexed by address.
//
// Data structures: a fixed array of Block records (kMaxBlocks, mapped on first insert with
// os::map_aligned, touched lazily) with a free list through `next`, and an open-addressing hash
// index (address -> block id, linear probing, backward-shift deletion) of twice that many slots.
// Block id 0 is never used, so 0 means "none". Unlike the core's indexes (core/chained_index.h)
// this one never grows: the records are one fixed array named by 32-bit ids (the pool lists link
// those ids), so the index is fixed at twice the records and needs no chain link in a Block.
//
// Who may call: the DeviceCache that owns the table (device_cache.cpp, device_pool.cpp,
// fence.cpp). SYNCHRONIZATION: the index and the free list are protected by the table's own lock,
// taken inside insert/find/erase only. The fields of a Block other than `addr` belong to its pool
// and are read and written under that pool's lock. A lookup therefore re-checks `addr` and
// `state` once it holds the pool lock.
#pragma once

#include <cstddef>
#include <cstdint>

#include "platform/spin_lock.h"

namespace cachealloc::cuda {

enum class BlockState : uint8_t { kFree, kLive, kPending, kReady };

// Which real function gives the block back (the API that allocated it).
enum class Origin : uint8_t { kRuntimeDevice, kDriverDevice, kRuntimeHost, kDriverHost };

struct Block {
  uint64_t addr;
  uint64_t size;        // the size really allocated
  uint64_t fence;       // pending: the fence that covers its free (0: none recorded yet)
  uint32_t prev, next;  // the pool's pending or ready list (free list when kFree)
  uint32_t bprev, bnext;  // the pool's per-bucket ready list
  uint32_t refcount;
  uint32_t host_flags;  // cudaHostAlloc / cuMemHostAlloc flags of pinned blocks
  uint16_t pool;
  uint16_t bucket;
  BlockState state;
  Origin origin;
  bool ipc;             // exported with cuIpcGetMemHandle: never cached
  uint8_t runtime;      // runtime-allocated blocks: the runtime's index (cuda_api::runtime_at)
};
static_assert(sizeof(Block) == 56);

inline constexpr uint32_t kNoBlock = 0;
inline constexpr uint32_t kMaxBlocks = uint32_t{1} << 18;

class BlockTable {
 public:
  constexpr BlockTable() noexcept = default;
  BlockTable(const BlockTable&) = delete;
  BlockTable& operator=(const BlockTable&) = delete;

  // A new block record for `addr` (state kFree, other fields zero), or kNoBlock when the table is
  // full or its memory could not be mapped (the caller then passes the allocation through).
  uint32_t insert(uint64_t addr) noexcept;
  // The id of the block at `addr`, or kNoBlock.
  uint32_t find(uint64_t addr) noexcept;
  // Removes `id` from the index and recycles the record.
  void erase(uint32_t id) noexcept;
  Block& block(uint32_t id) noexcept { return blocks_[id]; }
  // One past the highest id ever handed out (ids below it may be scanned with block()).
  uint32_t limit() noexcept;
  // Gives the mappings back (tests; the process-wide table lives as long as the process).
  void unmap() noexcept;
  SpinLock& lock_for_fork() noexcept { return lock_; }

 private:
  bool ensure_mapped() noexcept;

  SpinLock lock_;
  Block* blocks_ = nullptr;
  uint32_t* index_ = nullptr;  // block ids; 0 = empty
  // All zero until first use, so that the process-wide table takes no file-backed page
  // (Note [Zero until init], core/heap.h).
  uint32_t free_head_ = 0;     // the free list through Block::next, ended by 0 (no block has id 0)
  uint32_t high_water_ = 0;    // ids below this have been handed out at least once (1 once mapped)
  bool map_failed_ = false;
};

}  // namespace cachealloc::cuda
