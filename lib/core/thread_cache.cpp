// thread_cache.cpp - the slow paths of thread_cache.h.
#include "core/thread_cache.h"

#include "core/central_pool.h"
#include "core/heap.h"
#include "core/slab_source.h"
#include "util/diagnostics.h"

namespace cachealloc {
namespace {
constexpr uint32_t kFirstRefill = 8;  // Note [Refill slow start]
}  // namespace

void ThreadCache::attach(Heap* heap, bool checking) noexcept {
  static constinit std::atomic<uint32_t> next_shard{0};
  heap_ = heap;
  keys_ = heap->free_list_keys();
  shard_ = next_shard.fetch_add(1, std::memory_order_relaxed) % CentralPool::kShards;
  size_t threshold = heap->config().large_threshold;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    bins_[c].head = const_cast<void*>(kChainEnd);
    // Classes past the large threshold are never used; in checking mode every call is slow.
    // A class starts as an outbox (Note [Outbox bins]): its first refill gives it the full bin.
    const uint32_t batch = batch_size(c);
    const uint32_t max = (checking || class_size(c) > threshold) ? 0 : batch;
    __atomic_store_n(&bins_[c].max, max, __ATOMIC_RELAXED);
    __atomic_store_n(&bins_[c].slack, 0 - max, __ATOMIC_RELAXED);  // count 0: Note [Bin slack]
    refill_want_[c] = static_cast<uint16_t>(batch < kFirstRefill ? batch : kFirstRefill);
    flushed_since_refill_[c] = false;
  }
  bins_[kNumClasses] = Bin{};  // Note [Shared pages]: never pushed, never popped
  clear_epoch = heap->clear_epoch();
}

void* ThreadCache::refill(unsigned cls) noexcept {
  if (clear_epoch != heap_->clear_epoch()) {  // somebody called ca_clear: give back what we hold
    flush_all();
    clear_epoch = heap_->clear_epoch();
  }
  // Note [Refill slow start]
  // A thread that makes three blocks of each of 50 classes and exits would take 50 batches and
  // walk all of them back at exit: for short-lived threads (a thread per request, per parallel
  // batch) that walk was half of their allocator cost when batches were 64 blocks
  // (bench-thread_churn: 605 M instructions -> 349 M under callgrind), and idle threads hold what
  // they took. So a thread's first refill of a class asks for kFirstRefill blocks, each further
  // one for twice as many, up to the batch (16 blocks now: one doubling); only full batches use
  // the transfer slots.
  const uint32_t want = refill_want_[cls];
  if (want < batch_size(cls)) {
    refill_want_[cls] = static_cast<uint16_t>(2 * want < batch_size(cls) ? 2 * want : batch_size(cls));
  }
  void* chain = nullptr;
  uint32_t n = heap_->pool(cls).take(want, &chain, shard_);
  if (n == 0) return nullptr;
  if (heap_->over_budget()) heap_->enforce_budget();  // Note [Cache below the peak]
  owner_add(counters_.refills, 1);
  owner_add(counters_.allocs, 1);
  owner_add(counters_.blocks_refilled, n);
  Bin& b = bins_[cls];
  // Note [Outbox bins]: this thread does allocate this class, so it gets its full bin.
  flushed_since_refill_[cls] = false;
  if (b.max != 0) __atomic_store_n(&b.max, thread_cache_max(cls), __ATOMIC_RELAXED);
  // The bin was empty (that is why we refill; its count is set below, from the new max), and the
  // chain is in the bin's form (Note [Encoded batches]): the rest of it becomes the bin as it is,
  // kChainEnd when the chain was one block (Note [Chain end]).
  void* p = chain;
  const uintptr_t rest = decode(*static_cast<uintptr_t*>(p), p);
  if (any_bits(rest, keys_.bad_link_bits)) fatal_free_list(p);
  b.head = reinterpret_cast<void*>(rest);
  set_count(b, n - 1);
  FreeListKeys::unmark(p);
  return p;
}

void fatal_free_list(void* block) noexcept {
  fatal_pointer("malloc", "write after free: corrupted free-list link in", block);
}

void* ThreadCache::next_in_bin(unsigned cls, void* p, SegmentMeta** seg) const noexcept {
  auto* w = static_cast<uintptr_t*>(p);
  uintptr_t next = decode(w[0], p);
  if (w[1] != keys_.key || (next & keys_.bad_link_bits) != 0) fatal_free_list(p);
  if (next != reinterpret_cast<uintptr_t>(kChainEnd)) {
    // The link must land on a block start of this class (Note [Free-list hardening]).
    void* q = reinterpret_cast<void*>(next);
    if (*seg == nullptr || (next ^ (*seg)->base) >= kSegmentSize) *seg = heap_->table().lookup(q);
    if (*seg == nullptr || !(*seg)->is_block_start(q, cls)) fatal_free_list(p);
  }
  return reinterpret_cast<void*>(next);
}

void ThreadCache::free_slow(void* p, unsigned cls, const char* call) noexcept {
  Bin& b = bins_[cls];
  // The key in word 1: p waits in a bin, a transfer slot or its slab (only free blocks hold it:
  // every path that hands a block out clears it), so this is a second free. A live block holds the
  // key only if the program wrote the secret value there itself, which it cannot know without
  // reading freed memory. Note [Free-list hardening].
  if (keys_.marks(p)) fatal_pointer(call, "double free", p);
  if (!has_room(b) && b.max != 0) {
    // Note [Outbox bins]
    // A thread that frees blocks of a class it does not allocate (the consumer of a queue) uses
    // its bin only as an outbox: what it keeps there serves nobody, and the allocating side
    // carves that much more memory. So a bin holds one batch until the thread's first refill of
    // the class, and again once it fills up twice with no refill between; a refill gives it the
    // full bin (up to 256 blocks, 64 KiB). Slow paths only: the fast paths read the bin's slack
    // as before (Note [Bin slack]). bench-prodcons peak RSS: 5.46 -> 4.80 MiB (medians of 4
    // alternating runs); callgrind instructions per op unchanged on churn, threads, prodcons,
    // thread_churn, +1% on mixed.
    if (flushed_since_refill_[cls]) set_max(b, batch_size(cls));
    flushed_since_refill_[cls] = true;
    flush(cls, batch_size(cls), call);  // or fewer, as the bin holds
  }
  if (has_room(b)) {
    push(b, p);
    owner_add_raw(&b.slack, uint32_t{1});  // counted through the bin: Note [Derived free count]
    return;
  }
  // max == 0 (this class is not cached per thread), or a bin still over a max just cut to a
  // batch: hand the block straight back, with the key.
  keys_.mark(p);
  keys_.set_link(p, nullptr);  // a chain of one (Note [Encoded batches])
  owner_add(counters_.frees, 1);
  heap_->pool(cls).give(p, 1, call);
  heap_->enforce_budget();
}

void ThreadCache::flush(unsigned cls, uint32_t n, const char* call) noexcept {
  Bin& b = bins_[cls];
  if (n > count(b)) n = count(b);
  if (n == 0) return;
  // The first n blocks go to the central pool as they are (Note [Encoded batches]), each link
  // checked on the way; the n-th ends the chain. The blocks keep their key (Note [Free-list
  // hardening]): a second free of one that waits in a transfer slot or its slab is caught by it.
  void* head = b.head;
  void* tail = head;
  SegmentMeta* seg = nullptr;
  for (uint32_t i = 1;; ++i) {
    void* next = next_in_bin(cls, tail, &seg);
    if (i == n) {
      b.head = next;
      keys_.set_link(tail, nullptr);
      break;
    }
    tail = next;
  }
  owner_add_raw(&b.slack, uint32_t{0} - n);
  owner_add(counters_.flushes, 1);
  owner_add(counters_.blocks_flushed, n);
  heap_->pool(cls).give(head, n, call, shard_);
  if (heap_->over_budget()) heap_->enforce_budget();
}

uint64_t ThreadCache::frees() const noexcept {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  uint64_t in_bins = 0;
  for (unsigned c = 0; c < kNumClasses; ++c) in_bins += bin_count(c);
  return in_bins + get(counters_.allocs) - get(counters_.blocks_refilled) +
         get(counters_.blocks_flushed) + get(counters_.frees);
}

size_t ThreadCache::flush_all() noexcept {
  size_t bytes = 0;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    const uint32_t n = count(bins_[c]);
    if (n == 0) continue;
    bytes += size_t{n} * class_size(c);
    flush(c, n, "thread exit");
  }
  return bytes;
}

}  // namespace cachealloc
