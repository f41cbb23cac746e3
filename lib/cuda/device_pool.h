// device_pool.h - one pool: the freed device (or pinned host) blocks of one CUDA context.
//
// A pool caches the blocks of one context: device memory, or pinned host memory allocated while
// that context was current. Ready blocks sit in buckets by size (Note [Device layouts] in
// layout.h) and in one LRU list across buckets; freed blocks whose work may still run are pending
// (Note [Reuse after pending work] in fence.cpp). Cached bytes are bounded per pool by its
// budget; past it the least recently freed ready blocks are really freed.
//
// Who may call: device_cache.cpp and fence.cpp (the pool operations are helpers of DeviceCache).
// SYNCHRONIZATION: Pool::lock guards everything in a Pool except `ctx` (atomic: read without the
// lock to find a context's pool) and the published snapshot (a sequence lock written at every
// unlock, read without any lock by the statistics: Note [Pool snapshots]). Block records of the
// pool's blocks are guarded by the same lock (block_table.h).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cuda/block_table.h"
#include "cuda/layout.h"
#include "platform/spin_lock.h"
#include "platform/cuda_api.h"
#include "platform/spin_lock.h"
#include "util/intrusive_list.h"

namespace cachealloc::cuda {

inline constexpr uint16_t kNoPool = 0xffff;

struct PoolCounters {
  uint64_t reserved;      // bytes really allocated and tracked (live + cached)
  uint64_t cached;        // bytes of freed blocks held (pending + ready)
  uint64_t live;          // bytes handed out and not yet freed
  uint64_t live_peak;     // the most `live` has been since the pool began or reset_peak()
  uint64_t hits;
  uint64_t misses;
  uint64_t syncs_forced;  // fallback synchronisations (budget, OOM, fence trouble, clear)
  uint64_t oom_retries;   // real allocations that ran short of memory and reclaimed the cache first
  uint64_t evictions;     // cached blocks really freed
};

inline constexpr size_t kFenceRing = 256;
inline constexpr size_t kEventCache = 256;
inline constexpr size_t kMaxVictims = 256;

// One context-wide event; nullptr when none could be recorded (drivers before CUDA 12.5: Note
// [Older drivers] in fence.cpp), and then only a synchronisation completes the fence.
struct Fence {
  cuda_api::Event ev;
};

// Note [Pool snapshots]
// The statistics publisher reads every pool's counters, and may run on a thread that holds a pool
// lock (CUDA can call malloc inside a pool operation, and malloc publishes). So it never takes a
// pool lock: each unlock copies the counters into `snap` under a sequence counter (odd while
// writing), and the reader retries until it sees an even, unchanged sequence. The copy is a few
// stores and calls nothing, so a reader never waits for it for long.
inline constexpr size_t kCounterWords = sizeof(PoolCounters) / sizeof(uint64_t);
struct PoolSnapshot {
  std::atomic<uint32_t> seq;
  std::atomic<int> device;
  std::atomic<uint64_t> budget;
  std::atomic<uint64_t> c[kCounterWords];
};

// The pool's lists of blocks, linked by id through the block records (util/intrusive_list.h):
// the pending and ready lists through prev/next, each bucket's ready list through bprev/bnext
// (head-only; the heads are Pool::buckets).
using BlockList = IndexList<BlockTable, Block, &BlockTable::block, &Block::next, &Block::prev,
                            ListEnds::kHeadAndTail, kNoBlock>;
using BucketList = IndexList<BlockTable, Block, &BlockTable::block, &Block::bnext, &Block::bprev,
                             ListEnds::kHead, kNoBlock>;

struct Pool {
  SpinLock lock;
  bool host;
  std::atomic<cuda_api::Context> ctx;  // learned at the first real allocation; null when dropped
  std::atomic<int> device;             // the ordinal of ctx, -1 while unknown (read unlocked)
  uint64_t budget;
  BlockList ready;    // ready blocks, oldest free first (the LRU order used for eviction)
  BlockList pending;  // freed blocks not yet known to be idle, in free order
  uint64_t next_fence;  // the sequence number the next fence gets (from 1)
  uint64_t done_fence;  // every fence <= this one has completed
  bool unfenced;        // some pending block has no fence yet
  uint32_t n_events;
  cuda_api::Event events[kEventCache];
  Fence fences[kFenceRing];
  uint32_t buckets[kNumBuckets];  // heads of the BucketLists: the newest ready block of each
  PoolCounters c;
  PoolSnapshot snap;
};

// What the pool operations run against: the CUDA driver and the block records.
struct PoolEnv {
  const cuda_api::Driver* driver;  // nullptr while no driver is loaded
  BlockTable& blocks;
};

// A block really freed after the pool lock is dropped.
struct Victim {
  uint64_t addr;
  Origin origin;
  uint8_t runtime;  // Block::runtime
};

// ---- Pool operations. Pre: p.lock held. -------------------------------------------------------
void pool_init(Pool& p, bool host) noexcept;
// A ready block for a request of `request` bytes (of layout `rounded`) made live (refcount 1), or
// kNoBlock.
uint32_t pool_take_ready(Pool& p, BlockTable& blocks, size_t request, size_t rounded,
                         unsigned host_flags) noexcept;
// Pending -> ready, ready list and buckets.
void pool_make_ready(Pool& p, BlockTable& blocks, uint32_t id) noexcept;
// Unlinks ready blocks, oldest first, while cached > target, into out[n..max). Returns the new n.
size_t pool_evict_ready(Pool& p, BlockTable& blocks, uint64_t target, Victim* out, size_t n,
                        size_t max) noexcept;
// A freed live block joins the pending list. Returns the victims the budget now needs freed;
// none unless `window_open` (the caller holds an open FenceWindow until it has freed them).
size_t pool_cache_block(Pool& p, const PoolEnv& env, uint32_t id, Victim* out,
                        bool window_open) noexcept;
// Unlinks a block in any state from the pool (and its counters) and erases its record.
void pool_forget_block(Pool& p, BlockTable& blocks, uint32_t id) noexcept;
// The context is gone (reset or destroyed) and took its blocks and events with it: forget them,
// free nothing. `index` is the pool's id.
void pool_drop(Pool& p, BlockTable& blocks, uint16_t index) noexcept;

// The statistics' lock-free view (Note [Pool snapshots]).
void pool_publish(Pool& p) noexcept;        // Pre: p.lock held
bool pool_read_snapshot(const Pool& p, int* device, uint64_t* budget, PoolCounters* out) noexcept;

// Locks the pool and unlocks it with a fresh snapshot.
class PoolGuard {
 public:
  explicit PoolGuard(Pool& p) noexcept : p_(p) { p_.lock.lock(); }
  ~PoolGuard() {
    pool_publish(p_);
    p_.lock.unlock();
  }
  PoolGuard(const PoolGuard&) = delete;
  PoolGuard& operator=(const PoolGuard&) = delete;

 private:
  Pool& p_;
};

}  // namespace cachealloc::cuda
