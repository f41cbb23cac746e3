// central_pool.cpp - see central_pool.h.
#include "core/central_pool.h"

#include <bit>

#include "util/counter.h"
#include "util/diagnostics.h"

namespace cachealloc {

void CentralPool::init(unsigned cls, SlabSource* slabs, SegmentTable* table, LivePeak* peak,
                       const FreeListKeys* keys) noexcept {
  cls_ = cls;
  keys_ = keys;
  peak_ = peak;
  batch_ = batch_size(cls);
  size_t per_batch = size_t{batch_} * class_size(cls);
  // At most 64 KiB of blocks per shard (at least one batch). Blocks in a slot keep their slabs
  // committed; with 256 KiB per shard, a program that passes through many classes once (strings
  // grown by realloc) left each class's slabs pinned by the slots: bench-growth 68.8 -> 66.0 MiB
  // peak RSS at 64 KiB, bench-prodcons the same (its batches still meet in the slots).
  size_t slots = (64 * 1024) / per_batch;
  max_slots_ = static_cast<uint32_t>(slots < 1 ? 1 : (slots > kMaxSlots ? kMaxSlots : slots));
  slabs_ = slabs;
  table_ = table;
}

void CentralPool::push_partial_locked(Slab* s) noexcept {
  s->in_partial = true;
  partial_.push_front(s);
}

void CentralPool::unlink_partial_locked(Slab* s) noexcept {
  partial_.remove(s);
  s->in_partial = false;
}

uint32_t CentralPool::take(uint32_t want, void** head, unsigned shard) noexcept {
  if (batch_ == 1) shard = 0;  // one block per batch: no cache lines to share, keep one stack
  LockGuard g(lock_);
  unsigned from = kShards;
  if (want == batch_) {
    for (unsigned i = 0; i < kShards; ++i) {
      unsigned k = (shard + i) % kShards;  // own shard first
      if (nslots_[k] > 0) {
        from = k;
        break;
      }
    }
  }
  if (from != kShards) {
    Slot& s = slots_[from][--nslots_[from]];
    *head = s.head;
    owner_add(counters_.takes, 1);
    owner_add(counters_.slot_takes, 1);
    owner_add(counters_.blocks_taken, s.count);
    owner_add(counters_.slot_blocks, -uint64_t{s.count});
    if (peak_ != nullptr) peak_->add(uint64_t{s.count} * class_size(cls_));
    return s.count;
  }
  // Built ending at kChainEnd, so that the loops below link each block without a test; the
  // caller gets nullptr for no block, as from every pool call (Note [Chain end]).
  uintptr_t chain = reinterpret_cast<uintptr_t>(kChainEnd);
  uint32_t got = 0;
  while (got < want) {
    Slab* s = partial_.front();
    if (s == nullptr) {
      s = slabs_->take(cls_);
      if (s == nullptr) break;  // out of memory: hand out what we have
      owner_add(counters_.slabs_taken, 1);
      push_partial_locked(s);
    }
    if (s->free_count != 0) got += take_free_locked(s, want - got, &chain);
    while (got < want && s->bump < s->capacity) {
      void* b = reinterpret_cast<void*>(s->start + uintptr_t{s->bump} * s->stride);
      // Relaxed atomic: Heap::handed_out_block reads bump without this lock (retain, refcount).
      __atomic_store_n(&s->bump, s->bump + 1, __ATOMIC_RELAXED);
      keys_->set_link_or_end(b, chain);
      keys_->mark(b);  // a fresh block: the key every free block holds
      chain = reinterpret_cast<uintptr_t>(b);
      ++got;
      ++s->used;
    }
    if (!s->has_free()) unlink_partial_locked(s);
  }
  *head = got != 0 ? reinterpret_cast<void*>(chain) : nullptr;
  owner_add(counters_.takes, 1);
  owner_add(counters_.blocks_taken, got);
  if (peak_ != nullptr && got != 0) peak_->add(uint64_t{got} * class_size(cls_));
  return got;
}

// Note [Slab free bits]: the lowest blocks that are back, found in the metadata; the blocks
// themselves are only written (the chain's links).
uint32_t CentralPool::take_free_locked(Slab* s, uint32_t want, uintptr_t* chain) noexcept {
  uint64_t* words = s->seg->free_words(*s);
  uint32_t w = s->free_scan;
  uint32_t got = 0;
  uintptr_t head = *chain;
  while (got < want && got < s->free_count) {
    uint64_t bits = words[w];
    while (bits != 0 && got < want) {
      uintptr_t b = s->start + uintptr_t{w * 64 + static_cast<uint32_t>(std::countr_zero(bits))} * s->stride;
      bits &= bits - 1;
      keys_->set_link_or_end(reinterpret_cast<void*>(b), head);
      // A free block keeps the key, unless a write after free wiped it: the bin it goes to
      // catches a second free only by the key (Note [Encoded batches]).
      keys_->mark(reinterpret_cast<void*>(b));
      head = b;
      ++got;
    }
    words[w] = bits;
    if (bits == 0) ++w;
  }
  s->free_scan = w;
  s->free_count -= got;
  s->used += got;
  *chain = head;
  return got;
}

void CentralPool::give(void* head, uint32_t count, const char* call, unsigned shard) noexcept {
  LockGuard g(lock_);
  owner_add(counters_.gives, 1);
  owner_add(counters_.blocks_given, count);
  if (peak_ != nullptr) peak_->sub(uint64_t{count} * class_size(cls_));
  shard = batch_ == 1 ? 0 : shard % kShards;
  if (count == batch_ && nslots_[shard] < max_slots_) {
    slots_[shard][nslots_[shard]++] = Slot{head, count};
    owner_add(counters_.slot_blocks, count);
    return;
  }
  give_to_slabs_locked(head, count, call);
}

void CentralPool::give_to_slabs_locked(void* head, uint32_t count, const char* call) noexcept {
  void* b = head;
  // Blocks of one batch mostly share a slab: while they do, the slab found (and checked: active,
  // this class) for the previous block serves, without another segment-table lookup. It cannot
  // change under our lock unless it empties, which ends the run (s = nullptr below).
  SegmentMeta* seg = nullptr;
  Slab* s = nullptr;
  for (uint32_t i = 0; i < count; ++i) {
    CA_CHECK(b != nullptr, "thread cache chain shorter than its count");
    if (s == nullptr || reinterpret_cast<uintptr_t>(b) - s->start >= s->bytes()) {
      seg = table_->lookup(b);
      s = seg != nullptr ? seg->slab_at(b) : nullptr;
      if (s == nullptr || s->state != SlabState::kActive || s->cls != cls_) {
        fatal_pointer(call, "invalid pointer", b);
      }
    }
    // Note [Slab free bits]: a boundary past the bump index was never handed out, and a block
    // whose bit is set is back already.
    if (!seg->is_block_start(b, cls_)) fatal_pointer(call, "invalid pointer", b);
    uint32_t k = seg->block_number(b);
    if (k >= s->bump) fatal_pointer(call, "invalid pointer", b);
    // Followed only now that b is known to be a block (a planted link decodes to any address),
    // and before its slab may be given back below.
    void* next = reinterpret_cast<void*>(keys_->link(b));
    uint64_t* word = seg->free_words(*s) + k / 64;
    uint64_t bit = uint64_t{1} << (k % 64);
    if ((*word & bit) != 0) fatal_pointer(call, "double free", b);
    *word |= bit;
    if (k / 64 < s->free_scan) s->free_scan = k / 64;
    ++s->free_count;
    --s->used;
    if (s->used == 0) {
      // Every block below the bump index is back: clear their bits for the slab's next use.
      uint64_t* words = seg->free_words(*s);
      for (uint32_t i = 0, n = (s->bump + 63) / 64; i < n; ++i) words[i] = 0;
      if (s->in_partial) unlink_partial_locked(s);
      owner_add(counters_.slabs_released, 1);
      slabs_->give(s);
      s = nullptr;  // no longer active: the next block looks its slab up again
    } else if (!s->in_partial) {
      push_partial_locked(s);
    }
    b = next;
  }
}

void CentralPool::drain_slots() noexcept {
  LockGuard g(lock_);
  for (unsigned k = 0; k < kShards; ++k) {
    while (nslots_[k] > 0) {
      Slot s = slots_[k][--nslots_[k]];
      owner_add(counters_.slot_blocks, -uint64_t{s.count});
      give_to_slabs_locked(s.head, s.count, "ca_clear");
    }
  }
}

}  // namespace cachealloc
