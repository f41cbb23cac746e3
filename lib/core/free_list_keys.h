// free_list_keys.h - how a free small block's first two words are protected (Note [Free-list
// hardening]): shared by the thread caches and the central pools, which pass batches to each
// other in that form (Note [Encoded batches], central_pool.h).
#pragma once

#include <cstdint>

namespace cachealloc {

// Note [Free-list hardening]
// A block in a bin is free memory the program may still write through a dangling pointer. Two
// classic attacks go through that write: freeing a block twice (it is then handed out twice) and
// planting an address in its first word (tcache poisoning: a later malloc returns the planted
// address). Every binned block therefore carries, with default settings:
//   word 0: the link to the next block, stored as  next ^ block ^ secret
//   word 1: `key`, a per-process random value; malloc clears it when it hands the block out.
// malloc decodes the link of the block it pops and stops the program unless the decoded link is a
// plausible block address (16-byte aligned, in the 47-bit user address space). A planted link
// decodes to a random address, which passes that test with probability 2^-21 (2^-20 for a value
// chosen knowing that the secret is odd; glibc's alignment test: 1/16), and a planted aligned
// address never does: the secret is odd, blocks are 16-byte aligned, so it decodes to an odd one. A
// forged link would need the secret. free stops on a block whose word 1 holds the key: only free
// blocks hold it (every path that hands a block out clears it: malloc, refill, the heap's direct
// take), so that block is in a thread's bin, a transfer slot or its slab, a second free wherever it
// waits (glibc's tcache key idea; glibc confirms it against its own bin only, so a second free from
// another thread passes there). Blocks keep the key when a flush sends them on; a block never
// handed out may hold a stale one (a slab reused by another class), which is cleared when it is.
// ca_retain, ca_release and ca_refcount read the key too (Heap::live_small_block): a block that
// holds it is free, and they refuse it.
// flush (slow path) also checks every link it follows lands on a block start of the same class,
// so a corrupted chain never reaches the central pools. Cost: 5 instructions on malloc (two
// xors, the test and its branch, clearing the key) and 6 on free (the key's load, compare and
// branch, two xors, storing the key); docs/reliability.md.
// Note [Chain end]
// A chain of free blocks (a thread's bin, a batch in a transfer slot) ends with a link to
// kChainEnd, not a null link: a static, read-only pair of zero words, which an empty bin holds as
// its head. So malloc pops without asking whether the bin is empty: it decodes the head's word 0 as
// it decodes any link, and the end's word 0 decodes to the end's own address xor the secret, which
// the link test always refuses (every secret is odd, a never-attached cache's too, and the end is
// 16-byte aligned). The test's cold branch then tells the end (an empty bin: refill) from a
// corrupted link (stop). That is malloc's null test and its branch, 2 instructions of 24. The last
// block of a chain decodes to kChainEnd, a plausible block address, and becomes the bin's head like
// any other link. The slow paths keep seeing nullptr as the end: set_link and link translate.
struct alignas(16) ChainEndBlock {
  uintptr_t words[2];
};
inline constexpr ChainEndBlock kChainEndBlock{};
inline constexpr const void* kChainEnd = &kChainEndBlock;

struct FreeListKeys {
  // Odd, as every secret must be for Note [Chain end], before a cache is attached too: the boot
  // cache (Note [Boot cache] in allocator.cpp) is never attached and keeps this one, and its
  // empty bins must fail malloc's link test like any other.
  uintptr_t secret = 1;
  uintptr_t key = 0;
  // Bits a decoded link may not have: below 16-byte alignment or above the 47-bit address space.
  // A member rather than a constant: `test` takes it from memory, where a 64-bit immediate
  // would need a `movabs` first.
  uintptr_t bad_link_bits = kBadLinkBits;
  static constexpr uintptr_t kBadLinkBits = ~((uintptr_t{1} << 47) - 1) | 15;

  // Word 1 of a block, for the slow paths (the fast paths inline the same tests): whether it holds
  // the key (a free block), set it (the block is freed), clear it (the block is handed out).
  bool marks(const void* p) const noexcept { return static_cast<const uintptr_t*>(p)[1] == key; }
  void mark(void* p) const noexcept { static_cast<uintptr_t*>(p)[1] = key; }
  static void unmark(void* p) noexcept { static_cast<uintptr_t*>(p)[1] = 0; }
  // `marks` for a block that may be live (ca_retain, ca_refcount): word 1 is then the program's
  // data, which another of its threads may be writing. The value is only compared with the key
  // and an aligned 8-byte load is never torn, so the race is harmless; TSan is told so.
  __attribute__((no_sanitize("thread"))) bool marks_live(const void* p) const noexcept {
    return __atomic_load_n(static_cast<const uintptr_t*>(p) + 1, __ATOMIC_RELAXED) == key;
  }
  // Word 0 of a free block: the encoded link to `next` (nullptr ends a chain: stored as a link to
  // kChainEnd, Note [Chain end]), and its decoding (nullptr again for the end).
  void set_link(void* p, const void* next) const noexcept {
    set_link_or_end(p, reinterpret_cast<uintptr_t>(next != nullptr ? next : kChainEnd));
  }
  // The same for loops that build a chain and carry its end as kChainEnd: no test per block.
  void set_link_or_end(void* p, uintptr_t next) const noexcept {
    static_cast<uintptr_t*>(p)[0] = next ^ mask(p);
  }
  uintptr_t link(const void* p) const noexcept {
    const uintptr_t next = static_cast<const uintptr_t*>(p)[0] ^ mask(p);
    return next == reinterpret_cast<uintptr_t>(kChainEnd) ? 0 : next;
  }
  // The block's own address, unshifted: glibc shifts it (by 12) because its addresses' random
  // bits are its only secret and the shift lays them over the alignment bits it tests; here the
  // secret is random in every bit, and without the shift decoding is two xors, where the shift
  // added a copy and a shift on malloc and a shift on free (Note [Free-list hardening]).
  [[gnu::always_inline]] uintptr_t mask(const void* p) const noexcept {
    return reinterpret_cast<uintptr_t>(p) ^ secret;
  }
};

}  // namespace cachealloc
