// thread_cache.h - per-thread free lists, one bin per size class.
//
// The fast paths below are the whole cost of most malloc/free calls: no lock, no atomic
// read-modify-write, no shared cache line written. A bin is a LIFO chain threaded through the free
// blocks' first word, ending at kChainEnd (Note [Chain end] in free_list_keys.h). An empty bin
// refills a batch from the class's CentralPool; a bin that reaches `max` flushes a batch back.
// Counters are owner-written relaxed atomics so that stats readers may sum them while the thread
// runs.
//
// Lifetime: created on a thread's first allocation (Heap::create_thread_cache), flushed and
// recycled at thread exit (a pthread key destructor, allocator.cpp). A thread with no cache uses a
// shared all-empty "boot" cache whose bins have max 0, so its fast paths always miss without a
// separate check (see Note [Boot cache] in allocator.cpp).
#pragma once

#include <atomic>
#include <cstdint>

#include "core/free_list_keys.h"
#include "core/size_class.h"
#include "util/counter.h"

namespace cachealloc {

class Heap;
struct SegmentMeta;

// Stops the program: a binned block lost its key or its link decodes to no block.
[[noreturn, gnu::cold, gnu::noinline]] void fatal_free_list(void* block) noexcept;

// Note [Derived free count]
// The free fast path bumps no counter: every block a thread frees lands in a bin, so
//   frees = blocks in bins + allocs - blocks refilled + blocks flushed + direct frees
// (a refill of n adds n - 1 to the bins and counts one alloc; a flush of n removes n). Only the
// malloc fast path counts. ThreadCache::frees() evaluates the sum; it is exact for a quiescent
// thread and off by at most a batch while the thread runs.
struct ThreadCounters {
  std::atomic<uint64_t> allocs{0};
  std::atomic<uint64_t> bytes_requested{0};  // the sizes asked for (stats' bytes_requested)
  std::atomic<uint64_t> frees{0};  // direct frees only (blocks that did not go through a bin)
  std::atomic<uint64_t> refills{0};
  std::atomic<uint64_t> flushes{0};
  std::atomic<uint64_t> blocks_refilled{0};
  std::atomic<uint64_t> blocks_flushed{0};
};

class ThreadCache {
 public:
  // Note [Bin slack]
  // A bin keeps `slack` = count - max (mod 2^32), not its count: free's bound test is then one
  // compare of slack with zero in memory (is the bin full?), where count < max loaded one of the
  // two into a register first (one instruction more). malloc subtracts one from it, free adds
  // one, as they did to the count. The count is slack + max (count()); a change of max keeps the
  // count (set_max). Stats read the two fields without a lock: a reader racing with a change of
  // max may be off by that change, as it may be off by a batch anyway (Note [Derived free count]).
  // A bin over its max (an outbox bin cut back to a batch, Note [Outbox bins]) has a small
  // positive slack and is full as well. slack first and bins_ first in the class:
  // &bins_[cls].slack is then the bin's own address, which the fast paths already hold. GCC
  // recomputes the address of an atomic access from scratch otherwise (three more instructions on
  // each of malloc and free).
  struct Bin {
    uint32_t slack = 0;
    uint32_t max = 0;
    void* head = const_cast<void*>(kChainEnd);  // Note [Chain end]: an empty bin
  };
  static_assert(sizeof(Bin) == kBinBytes);

  constexpr ThreadCache() = default;

 private:
  // The first member (see Bin). One more than the classes: the bin at kSharedBin, always full
  // (max 0, slack 0), which sends shared blocks to the slow path (Note [Shared pages]).
  Bin bins_[kNumClasses + 1] = {};
  FreeListKeys keys_;           // Note [Free-list hardening]; set by attach

 public:

  // 12 instructions on a hit: load the head, decode and check its link (an empty bin's head is
  // kChainEnd, whose link fails the check: Note [Chain end]), clear the key, store the new head,
  // the bin count and two counters. Bin counts and counters are written only by the owner, each
  // with one add to memory (Note [Counter adds]), because stats read them. `request` is the size
  // asked for (0 on slow paths, which count it in Heap::alloc). Note [Free-list hardening].
  [[gnu::always_inline]] void* try_alloc(unsigned cls, size_t request) noexcept {
    return try_alloc_at(cls * kBinBytes, request);
  }
  // The same, with the bin's offset (cls * kBinBytes) as malloc reads it from its size table.
  [[gnu::always_inline]] void* try_alloc_at(size_t bin_offset, size_t request) noexcept {
    Bin& b = bin_at(bin_offset);
    void* p = b.head;
    auto* w = static_cast<uintptr_t*>(p);
    const uintptr_t next = decode(w[0], p);
    if (__builtin_expect(any_bits(next, keys_.bad_link_bits), 0)) {
      if (p != kChainEnd) fatal_free_list(p);
      return nullptr;  // an empty bin: Note [Chain end]
    }
    w[1] = 0;
    b.head = reinterpret_cast<void*>(next);
    owner_add_raw(&b.slack, ~uint32_t{0});  // minus one: Note [Counter adds], Note [Bin slack]
    owner_add(counters_.allocs, 1);
    owner_add(counters_.bytes_requested, request);
    return p;
  }
  // False when the bin is full (or this is the boot cache) or p holds the bin key (a double free,
  // which the slow path reports): the caller takes the slow path.
  [[gnu::always_inline]] bool try_free(void* p, unsigned cls) noexcept {
    return try_free_at(p, cls * kBinBytes);
  }
  // The same, with the bin's offset (cls * kBinBytes) as free() reads it from the page descriptor.
  [[gnu::always_inline]] bool try_free_at(void* p, size_t bin_offset) noexcept {
    Bin& b = bin_at(bin_offset);
    if (__builtin_expect(!has_room(b) || static_cast<uintptr_t*>(p)[1] == keys_.key, 0)) {
      return false;
    }
    push(b, p);
    owner_add_raw(&b.slack, uint32_t{1});  // no counter: Note [Derived free count]
    return true;
  }

  // Slow paths.
  void* refill(unsigned cls) noexcept;  // a block, or nullptr when out of memory
  void count_request(size_t n) noexcept { owner_add(counters_.bytes_requested, n); }
  void free_slow(void* p, unsigned cls, const char* call) noexcept;  // full bin or double free
  void flush(unsigned cls, uint32_t n, const char* call) noexcept;
  size_t flush_all() noexcept;  // returns bytes flushed

  void attach(Heap* heap, bool checking) noexcept;
  const ThreadCounters& counters() const noexcept { return counters_; }
  // Blocks freed by this thread (Note [Derived free count]); callable from any thread.
  uint64_t frees() const noexcept;
  // From any thread (stats): slack and max are two loads, and a reader on a weakly ordered CPU may
  // pair a new slack with an old max; a sum below zero reads as an empty bin.
  uint32_t bin_count(unsigned cls) const noexcept {
    const int32_t n = static_cast<int32_t>(count(bins_[cls]));
    return n < 0 ? 0 : static_cast<uint32_t>(n);
  }
  // Note [Bin slack]: a bin's count and bound, for the slow paths and the stats.
  static uint32_t count(const Bin& b) noexcept {
    return __atomic_load_n(&b.slack, __ATOMIC_RELAXED) + __atomic_load_n(&b.max, __ATOMIC_RELAXED);
  }
  static void set_count(Bin& b, uint32_t v) noexcept {
    __atomic_store_n(&b.slack, v - b.max, __ATOMIC_RELAXED);
  }
  static void set_max(Bin& b, uint32_t m) noexcept {
    const uint32_t n = count(b);
    __atomic_store_n(&b.max, m, __ATOMIC_RELAXED);
    set_count(b, n);
  }

  ThreadCache* next = nullptr;  // Heap's registry, under its registry lock
  ThreadCache* prev = nullptr;
  uint64_t clear_epoch = 0;

 private:
  [[gnu::always_inline]] uintptr_t encode(const void* next, const void* slot) const noexcept {
    return reinterpret_cast<uintptr_t>(next) ^ keys_.mask(slot);
  }
  [[gnu::always_inline]] uintptr_t decode(uintptr_t stored, const void* slot) const noexcept {
    return stored ^ keys_.mask(slot);
  }
  // (v & mask) != 0 as one `test` with the mask in memory, where GCC copies v and ands (two).
  [[gnu::always_inline]] static bool any_bits(uintptr_t v, const uintptr_t& mask) noexcept {
#if defined(__x86_64__)
    bool any;
    asm("testq %1, %2" : "=@ccnz"(any) : "r"(v), "m"(mask));
    return any;
#else
    return (v & mask) != 0;
#endif
  }
  // Whether the bin is below its max: the sign of slack, tested in memory (Note [Bin slack]).
  [[gnu::always_inline]] static bool has_room(const Bin& b) noexcept {
    return sign_bit_set(b.slack);
  }
  [[gnu::always_inline]] Bin& bin_at(size_t offset) noexcept {
    return *reinterpret_cast<Bin*>(reinterpret_cast<char*>(bins_) + offset);
  }
  // Links p in front of the bin and tags it with the key; the caller sets the count.
  [[gnu::always_inline]] void push(Bin& b, void* p) noexcept {
    auto* w = static_cast<uintptr_t*>(p);
    const uintptr_t key = keys_.key;  // read before the stores, which might alias it
    w[0] = encode(b.head, p);
    // A relaxed atomic store is a plain `mov`; written so, GCC does not merge the two stores into
    // an SSE pair (four instructions instead of two).
    __atomic_store_n(&w[1], key, __ATOMIC_RELAXED);
    b.head = p;
  }
  // The link of p, decoded and checked (slow paths). `seg` caches the segment of the previous
  // link checked, so a walk through one segment looks it up once.
  void* next_in_bin(unsigned cls, void* p, SegmentMeta** seg) const noexcept;

  ThreadCounters counters_;
  // Note [Refill slow start]: blocks the next refill of each class asks for.
  uint16_t refill_want_[kNumClasses] = {};
  // Note [Outbox bins]: whether each class flushed since its last refill.
  bool flushed_since_refill_[kNumClasses] = {};
  Heap* heap_ = nullptr;
  unsigned shard_ = 0;  // this thread's transfer-slot shard (Note [Sharded transfer slots])
};

}  // namespace cachealloc
