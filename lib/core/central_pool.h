// central_pool.h - the per-size-class pool that thread caches refill from and flush to.
//
// Note [Encoded batches]: the chains that pass between the thread caches and the pools are in
// the bins' own form (Note [Free-list hardening], free_list_keys.h): each link encoded with the
// block's address and the secret, each block holding the key. A flush cuts a batch off its bin
// without rewriting it, and a refill makes the chain it gets its bin at once, where both used to
// rewrite every block: on a producer/consumer pair the refill walked the batch one cache miss
// after another (each block last written by the other core), and the links were plain while the
// batch waited in a transfer slot, so a write after free could plant an address there that the
// next refill handed out. Every chain ends with an encoded link to kChainEnd (Note [Chain end]),
// a chain of one block (a direct free's give) like any other; the pool sees it as nullptr.
//
// Data structures:
//   transfer slots  up to kMaxSlots whole batches (linked chains of exactly batch_size(cls) blocks),
//                   moved in O(1): a producer thread's flush and a consumer thread's refill meet
//                   here without touching slab metadata (this is what makes cross-thread frees
//                   cheap).
//   partial list    active slabs of this class that still have free blocks (blocks that are back,
//                   or never-used blocks past the bump index).
// A batch that does not fit in the slots goes back block by block to its slab, as a bit (Note [Slab
// free bits]; validated: the pointer must be a block boundary of an active slab of this class that
// was handed out and is not back already, else the program is stopped with a message naming it).
// A slab whose blocks are all back goes to the SlabSource as cached memory.
//
// SYNCHRONIZATION: lock_ protects everything here and the Slab records of this class.
// Lock order: CentralPool::lock_ -> SlabSource::lock_.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/free_list_keys.h"
#include "core/live_peak.h"
#include "core/slab_source.h"
#include "platform/spin_lock.h"
#include "util/intrusive_list.h"

namespace cachealloc {

class CentralPool {
 public:
  // Slots per shard. Four batches of the smallest classes are 1 KiB; bigger classes are bounded by
  // 64 KiB per shard (init()). Every pool is part of g_heap and is written by init(), so each
  // process holds all of them: 16 slots made them 108 KiB, 4 make them 36 KiB.
  static constexpr unsigned kMaxSlots = 4;
  // Note [Sharded transfer slots]: threads flush whole batches into their own shard and refill
  // from it first, so a thread mostly gets its own blocks back. With one shared stack, batches
  // flushed by one thread were refilled by another, and after a while both threads' blocks were
  // interleaved in the same cache lines (false sharing: 2.5x slower on 2 independent threads).
  // A refill that finds its shard empty takes from the others before carving slabs, so
  // producer/consumer hand-offs stay O(1).
  static constexpr unsigned kShards = 4;

  constexpr CentralPool() = default;
  // `peak` (may be null): counts the blocks that leave and return (Note [Live peak]). `keys`:
  // the form of the chains (Note [Encoded batches]).
  void init(unsigned cls, SlabSource* slabs, SegmentTable* table, LivePeak* peak,
            const FreeListKeys* keys) noexcept;

  // Up to `want` blocks as a chain (each block's first word links the next, the last none), every
  // block holding the key. Returns how many; 0 means out of memory.
  uint32_t take(uint32_t want, void** head, unsigned shard = 0) noexcept;
  // A chain of `count` blocks of this class. `call` names the API for error messages.
  void give(void* head, uint32_t count, const char* call, unsigned shard = 0) noexcept;
  // Moves every slot back to its slabs, so empty slabs become cache (ca_clear, before fork-free).
  void drain_slots() noexcept;

  SpinLock& lock() noexcept { return lock_; }

  // Counters for stats: written under lock_ (one writer at a time), read without it.
  struct Counters {
    std::atomic<uint64_t> takes{0}, slot_takes{0}, gives{0};  // calls (slot_takes: served by a slot)
    std::atomic<uint64_t> blocks_taken{0}, blocks_given{0};   // blocks out = taken - given
    std::atomic<uint64_t> slot_blocks{0};                     // now: blocks in the transfer slots
    std::atomic<uint64_t> slabs_taken{0}, slabs_released{0};  // from / back to the SlabSource
  };
  const Counters& counters() const noexcept { return counters_; }

 private:
  struct Slot {
    void* head;
    uint32_t count;
  };
  // Up to `want` of s's blocks that are back, pushed onto *chain (a block or kChainEnd: Note
  // [Chain end]); how many (s->free_count != 0).
  uint32_t take_free_locked(Slab* s, uint32_t want, uintptr_t* chain) noexcept;
  void give_to_slabs_locked(void* head, uint32_t count, const char* call) noexcept;
  void unlink_partial_locked(Slab* s) noexcept;
  void push_partial_locked(Slab* s) noexcept;

  SpinLock lock_{LockRank::kCentralPool};
  unsigned cls_ = 0;
  uint32_t batch_ = 0;      // set by init(), as all here: Note [Zero until init] (heap.h)
  uint32_t max_slots_ = 0;
  uint32_t nslots_[kShards] = {};
  Slot slots_[kShards][kMaxSlots] = {};
  IntrusiveList<Slab, &Slab::next, &Slab::prev, ListEnds::kHead> partial_;
  SlabSource* slabs_ = nullptr;
  LivePeak* peak_ = nullptr;
  SegmentTable* table_ = nullptr;
  const FreeListKeys* keys_ = nullptr;
  Counters counters_;
};

}  // namespace cachealloc
