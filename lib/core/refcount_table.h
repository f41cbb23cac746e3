// refcount_table.h - reference counts of shared small blocks.
//
// Every block starts with count 1, and that 1 is never stored: the table holds only blocks that
// were retained (count >= 2). free() learns whether it must look here from the page the block
// starts on: while the page counts blocks with entries, its bin is one that is always full, so
// their frees take the slow path (Note [Shared pages], segment_meta.h), and other blocks pay
// nothing. Large blocks keep their count in their LargeBlock record instead (large_cache.h).
//
// Data structures: kShards chained hash indexes keyed by address (core/chained_index.h), nodes
// from a MetaPool.
// SYNCHRONIZATION: one SpinLock per shard; a leaf under which only MetaArena locks are taken.
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>

#include "core/chained_index.h"
#include "core/meta_arena.h"
#include "platform/spin_lock.h"

namespace cachealloc {

namespace detail {
// A shard's bucket of a block address (its low bits after the mask): blocks are 16-byte aligned.
inline size_t refcount_hash(const void* p) noexcept {
  return (reinterpret_cast<uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull >> 24;
}
}  // namespace detail

class RefcountTable {
 public:
  static constexpr unsigned kShards = 16;
  constexpr RefcountTable() = default;

  // Count after adding one (>= 2), or 0 when the table could not grow.
  uint32_t retain(const void* p, bool* inserted) noexcept;
  // Drops one. Returns the count left (>= 1), with *erased when the entry went away (count 1),
  // or 0 when p has no entry (count was 1: the caller frees the block).
  uint32_t release(const void* p, bool* erased) noexcept;
  uint32_t count(const void* p) noexcept;  // 0 when absent
  size_t entries() noexcept;
  // References added / dropped (while the count was >= 2), summed over shards, for stats.
  void counts(uint64_t* retains, uint64_t* releases) const noexcept;

  void lock_all() noexcept;
  void unlock_all() noexcept;

 private:
  struct Node {
    const void* key;
    uint32_t count;
    Node* next;
  };
  struct Shard {
    SpinLock lock{LockRank::kRefcountShard};
    ChainedIndex<Node, &Node::next, &Node::key, const void*, &detail::refcount_hash, 256> index;
    std::atomic<uint64_t> retains{0}, releases{0};  // written under lock, read without it
  };
  static Shard& shard_for(Shard* shards, const void* p) noexcept;

  Shard shards_[kShards];
  MetaPool<Node> nodes_;
};

}  // namespace cachealloc
