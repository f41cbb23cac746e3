// slab_source.cpp - see slab_source.h.
#include "core/slab_source.h"

#include <new>

#include "core/lru_clock.h"
#include "core/meta_arena.h"
#include "util/diagnostics.h"

namespace cachealloc {
namespace {
constinit SpinLock g_spare_lock{LockRank::kSegmentMeta};
constinit SegmentMeta* g_spare_meta = nullptr;  // SegmentMeta records of unmapped segments

SegmentMeta* new_segment_meta() {
  {
    LockGuard g(g_spare_lock);
    if (g_spare_meta != nullptr) {
      SegmentMeta* m = g_spare_meta;
      g_spare_meta = m->next;
      std::atomic<uint64_t>* bits = m->live_bits;  // a recycled record keeps its live bits
      uint64_t* free_bits = m->free_bits;          // and its free bits, all zero (no active slab)
      m = new (m) SegmentMeta();
      if (bits != nullptr) {
        for (size_t i = 0; i < SegmentMeta::kLiveWords; ++i) bits[i].store(0, std::memory_order_relaxed);
      }
      m->live_bits = bits;
      m->free_bits = free_bits;
      return m;
    }
  }
  void* p = meta_arena().alloc(sizeof(SegmentMeta));
  return p == nullptr ? nullptr : new (p) SegmentMeta();
}

void recycle_segment_meta(SegmentMeta* m) {
  LockGuard g(g_spare_lock);
  m->next = g_spare_meta;
  g_spare_meta = m;
}

uint64_t run_mask(unsigned npages, unsigned first) {
  uint64_t bits = npages >= 64 ? ~uint64_t{0} : ((uint64_t{1} << npages) - 1);
  return bits << first;
}
}  // namespace

SpinLock& segment_meta_lock() noexcept { return g_spare_lock; }

bool SlabSource::add_segment_locked() noexcept {
  void* mem = source_->map(kSegmentSize, kSegmentSize);
  if (mem == nullptr) return false;
  SegmentMeta* m = new_segment_meta();
  if (m == nullptr) {
    source_->unmap(mem, kSegmentSize);
    return false;
  }
  if (m->free_bits == nullptr) {  // Note [Slab free bits]: fresh from the arena, so zero
    m->free_bits = static_cast<uint64_t*>(meta_arena().alloc(SegmentMeta::kFreeWords * sizeof(uint64_t)));
    if (m->free_bits == nullptr) {
      source_->unmap(mem, kSegmentSize);
      recycle_segment_meta(m);
      return false;
    }
  }
  if (track_live_ && m->live_bits == nullptr) {
    m->live_bits = static_cast<std::atomic<uint64_t>*>(
        MetaArena::map_array(SegmentMeta::kLiveWords * sizeof(uint64_t)));
    if (m->live_bits == nullptr) {
      source_->unmap(mem, kSegmentSize);
      recycle_segment_meta(m);
      return false;
    }
  }
  m->base = reinterpret_cast<uintptr_t>(mem);
  for (unsigned i = 0; i < kPagesPerSegment; ++i) {
    m->clear_page_class(i);
    m->set_page_head(i, i);
  }
  if (!table_->set(m->base, m)) {
    source_->unmap(mem, kSegmentSize);
    recycle_segment_meta(m);
    return false;
  }
  m->next = segments_;
  segments_ = m;
  mapped_.fetch_add(kSegmentSize, std::memory_order_relaxed);
  segment_maps.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// Note [Page descriptors]: relaxed atomic stores, `bound` last when a class is set and first
// when it is cleared.
void SegmentMeta::set_page_head(unsigned i, unsigned head) noexcept {
  PageDesc& d = pages[i];
  __atomic_store_n(&d.head, static_cast<uint8_t>(head), __ATOMIC_RELAXED);
  const uintptr_t start = base + (uintptr_t{head} << kPageShift);
  __atomic_store_n(&d.slab_low, static_cast<uint32_t>(start), __ATOMIC_RELAXED);
}

// Note [Shared pages]: the count (high half) and the bin (low 16 bits) of one 8-byte word. `bin`
// is what the page's blocks should go to for `count`.
namespace {
// Sets d's word to what `next` makes of it, by compare-and-swap.
template <class Next>
void update_shared_word(PageDesc& d, Next next) {
  using Word = uint64_t __attribute__((may_alias));
  Word* word = reinterpret_cast<Word*>(&d.bin);
  uint64_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(word, &old, next(old), false, __ATOMIC_ACQ_REL,
                                      __ATOMIC_RELAXED)) {
  }
}
uint32_t shared_count(uint64_t word) { return static_cast<uint32_t>(word >> 32); }
uint64_t shared_word(uint32_t count, uint64_t class_bin) {
  return uint64_t{count} << 32 | (count != 0 ? kSharedBin : class_bin);
}
}  // namespace

void SegmentMeta::add_shared(const void* p, int delta) noexcept {
  PageDesc& d = pages[page_of(p)];
  // A page in no active slab keeps the bin it has (only a program's misuse, a retain racing the
  // block's last free, lets a count outlive its slab); the count is kept exact either way.
  const uint8_t cls = __atomic_load_n(&d.cls, __ATOMIC_RELAXED);
  update_shared_word(d, [&](uint64_t old) {
    const uint32_t count = shared_count(old) + static_cast<uint32_t>(delta);
    return cls < kNumClasses ? shared_word(count, uint64_t{cls} * kBinBytes)
                             : (uint64_t{count} << 32 | (old & 0xffff));
  });
}

void SegmentMeta::set_page_class(unsigned i, unsigned cls, uint32_t capacity) noexcept {
  PageDesc& d = pages[i];
  const BlockDivisor& div = detail::kDivisors.d[cls];
  __atomic_store_n(&d.magic, div.magic, __ATOMIC_RELAXED);
  __atomic_store_n(&d.cls, static_cast<uint8_t>(cls), __ATOMIC_RELAXED);
  // The bin with the page's count of shared blocks, which is 0 for a correct program (no block of
  // the slab is live yet): Note [Shared pages].
  update_shared_word(d, [&](uint64_t old) {
    return shared_word(shared_count(old), cls * kBinBytes);
  });
  __atomic_store_n(&d.bound, block_bound(div, capacity), __ATOMIC_RELEASE);
}

void SegmentMeta::clear_page_class(unsigned i) noexcept {
  PageDesc& d = pages[i];
  __atomic_store_n(&d.bound, uint64_t{0}, __ATOMIC_RELAXED);
  __atomic_store_n(&d.cls, kNoClass, __ATOMIC_RELAXED);
}

Slab* SlabSource::carve_locked(unsigned npages) noexcept {
  for (SegmentMeta* m = segments_; m != nullptr; m = m->next) {
    if (m->free_pages == 0) continue;
    for (unsigned first = 0; first + npages <= kPagesPerSegment; first += npages) {
      uint64_t mask = run_mask(npages, first);
      if ((m->free_pages & mask) != mask) continue;
      m->free_pages &= ~mask;
      for (unsigned i = first; i < first + npages; ++i) m->set_page_head(i, first);
      Slab* s = &m->slabs[first];
      *s = Slab{};
      s->npages = static_cast<uint8_t>(npages);
      s->first_page = static_cast<uint8_t>(first);
      s->start = m->base + (uintptr_t{first} << kPageShift);
      s->seg = m;
      return s;
    }
  }
  return nullptr;
}

void SlabSource::init_slab_locked(Slab* s, unsigned cls) noexcept {
  s->free_count = 0;
  s->free_scan = 0;
  __atomic_store_n(&s->bump, 0u, __ATOMIC_RELAXED);  // read without a lock: Heap::handed_out_block
  s->used = 0;
  s->stride = static_cast<uint32_t>(class_size(cls));
  s->capacity = static_cast<uint32_t>(s->bytes() / s->stride);
  s->cls = static_cast<uint8_t>(cls);
  s->state = SlabState::kActive;
  s->in_partial = false;
  s->next = s->prev = nullptr;
  for (unsigned i = s->first_page; i < s->first_page + s->npages; ++i) {
    s->seg->set_page_class(i, cls, s->capacity);
  }
}

Slab* SlabSource::take(unsigned cls) noexcept {
  unsigned npages = slab_pages(cls);
  unsigned li = list_index(npages);
  LockGuard g(lock_);
  Slab* s = empty_[li].front();
  if (s != nullptr) {
    unlink_empty_locked(s);
    cached_.fetch_sub(s->bytes(), std::memory_order_relaxed);
  } else {
    // Note [A new slab makes room]
    for (size_t room = 0; room < (size_t{npages} << kPageShift);) {
      size_t got = evict_oldest_locked(li);
      if (got == 0) break;
      room += got;
    }
    s = carve_locked(npages);
    if (s == nullptr) {
      if (!add_segment_locked()) return nullptr;
      s = carve_locked(npages);
      if (s == nullptr) return nullptr;
    }
  }
  init_slab_locked(s, cls);
  return s;
}

void SlabSource::give(Slab* s) noexcept {
  CA_CHECK(s->used == 0 && s->state == SlabState::kActive, "slab given back while in use");
  unsigned li = list_index(s->npages);
  LockGuard g(lock_);
  for (unsigned i = s->first_page; i < s->first_page + s->npages; ++i) s->seg->clear_page_class(i);
  s->state = SlabState::kEmpty;
  s->stamp = next_lru_stamp();
  empty_[li].push_front(s);
  cached_.fetch_add(s->bytes(), std::memory_order_relaxed);
}

void SlabSource::unlink_empty_locked(Slab* s) noexcept {
  empty_[list_index(s->npages)].remove(s);
}

void SlabSource::free_pages_locked(Slab* s) noexcept {
  s->state = SlabState::kFree;
  s->seg->free_pages |= run_mask(s->npages, s->first_page);
}

uint64_t SlabSource::oldest_stamp() noexcept {
  LockGuard g(lock_);
  uint64_t best = UINT64_MAX;
  for (const auto& list : empty_) {
    Slab* t = list.back();
    if (t != nullptr && t->stamp < best) best = t->stamp;
  }
  return best;
}

size_t SlabSource::evict_oldest() noexcept {
  LockGuard g(lock_);
  return evict_oldest_locked(kSlabSizes);
}

// Note [A new slab makes room]: empty slabs are reused only by slabs of their own size. A program
// whose blocks move up through the classes (strings grown by realloc, bench-growth) empties the
// slabs of the classes it leaves while it needs slabs of a bigger size for the classes it enters:
// the emptied ones stayed committed beside the new ones until the budget or the decay took them.
// So a slab carved from fresh pages first decommits as many bytes of empty slabs of other sizes,
// oldest first, and their pages go back to their segments for carving: the new slab's page faults were due anyway, and RSS stays
// what the program uses (bench-growth: 71.6 -> 70.0 MiB peak RSS). A slab size that has an empty
// slab of its own never gets here.
size_t SlabSource::evict_oldest_locked(unsigned except) noexcept {
  Slab* victim = nullptr;
  for (unsigned li = 0; li < kSlabSizes; ++li) {
    Slab* t = li == except ? nullptr : empty_[li].back();
    if (t != nullptr && (victim == nullptr || t->stamp < victim->stamp)) victim = t;
  }
  if (victim == nullptr) return 0;
  unlink_empty_locked(victim);
  size_t bytes = victim->bytes();
  source_->decommit(reinterpret_cast<void*>(victim->start), bytes);
  free_pages_locked(victim);
  cached_.fetch_sub(bytes, std::memory_order_relaxed);
  evictions.fetch_add(1, std::memory_order_relaxed);
  return bytes;
}

size_t SlabSource::clear() noexcept {
  size_t evicted = 0;
  while (size_t n = evict_oldest()) evicted += n;
  LockGuard g(lock_);
  SegmentMeta** link = &segments_;
  while (SegmentMeta* m = *link) {
    if (m->free_pages == ~uint64_t{0}) {
      *link = m->next;
      table_->set(m->base, nullptr);
      source_->unmap(reinterpret_cast<void*>(m->base), kSegmentSize);
      mapped_.fetch_sub(kSegmentSize, std::memory_order_relaxed);
      segment_unmaps.fetch_add(1, std::memory_order_relaxed);
      recycle_segment_meta(m);
    } else {
      link = &m->next;
    }
  }
  return evicted;
}

}  // namespace cachealloc
