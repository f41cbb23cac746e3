// central_pool.cpp - see central_pool.h.
#include "core/central_pool.h"

#include "util/counter.h"
#include "util/diagnostics.h"

namespace cachealloc {

void CentralPool::init(unsigned cls, SlabSource* slabs, SegmentTable* table, LivePeak* peak) noexcept {
  cls_ = cls;
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
  void* chain = nullptr;
  uint32_t got = 0;
  while (got < want) {
    Slab* s = partial_.front();
    if (s == nullptr) {
      s = slabs_->take(cls_);
      if (s == nullptr) break;  // out of memory: hand out what we have
      owner_add(counters_.slabs_taken, 1);
      push_partial_locked(s);
    }
    while (got < want && s->free_list != nullptr) {
      void* b = s->free_list;
      s->free_list = *static_cast<void**>(b);
      --s->free_count;
      *static_cast<void**>(b) = chain;
      chain = b;
      ++got;
      ++s->used;
    }
    while (got < want && s->bump < s->capacity) {
      void* b = reinterpret_cast<void*>(s->start + uintptr_t{s->bump} * s->stride);
      // Relaxed atomic: Heap::live_small_block reads bump without this lock (retain, refcount).
      __atomic_store_n(&s->bump, s->bump + 1, __ATOMIC_RELAXED);
      *static_cast<void**>(b) = chain;
      chain = b;
      ++got;
      ++s->used;
    }
    if (!s->has_free()) unlink_partial_locked(s);
  }
  *head = chain;
  owner_add(counters_.takes, 1);
  owner_add(counters_.blocks_taken, got);
  if (peak_ != nullptr && got != 0) peak_->add(uint64_t{got} * class_size(cls_));
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
    void* next = *static_cast<void**>(b);
    if (s == nullptr || reinterpret_cast<uintptr_t>(b) - s->start >= s->bytes()) {
      seg = table_->lookup(b);
      s = seg != nullptr ? seg->slab_at(b) : nullptr;
      if (s == nullptr || s->state != SlabState::kActive || s->cls != cls_) {
        fatal_pointer(call, "invalid pointer", b);
      }
    }
    if (!seg->is_block_start(b, cls_) || s->used == 0) fatal_pointer(call, "invalid pointer", b);
    *static_cast<void**>(b) = s->free_list;
    s->free_list = b;
    ++s->free_count;
    --s->used;
    if (s->used == 0) {
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
