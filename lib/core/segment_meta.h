// segment_meta.h - the metadata of one 4 MiB segment of small objects, and of its slabs.
//
// Data structures:
//   SegmentMeta  one per segment (in the meta arena): which pages are free, a descriptor of each
//                page (its slab's class and start, read without a lock by free(): Note [Page
//                descriptors]), and the Slab records, indexed by the slab's first page.
//   Slab         a run of 1, 2 or 4 pages of one size class: which of its blocks are back (free bits),
//                a bump index for blocks never handed out, and the count of blocks handed out (`used`).
//
// Who writes: SlabSource (pages, slab records, page classes, under its lock), CentralPool (a
// slab's free bits, bump index and `used`, under the pool lock), Heap (a page's retained count
// and bin by compare-and-swap: Note [Shared pages]; live bits).
// Who reads without a lock: the free fast path (pages: allocator.h) and
// Heap::handed_out_block (bump) and Heap::live_small_block (live bits, with is_live).
// SYNCHRONIZATION: slab_source.h.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "core/size_class.h"
#include "util/counter.h"

namespace cachealloc {

enum class SlabState : uint8_t { kFree, kActive, kEmpty };

struct Slab {
  uint32_t free_count = 0;    // blocks given back to this slab: set bits (Note [Slab free bits])
  uint32_t free_scan = 0;     // no free bit lies in a word of the slab's bits before this one
  uint32_t bump = 0;          // index of the next never-used block (relaxed atomic stores: read
                              // without a lock by Heap::handed_out_block)
  uint32_t capacity = 0;      // blocks that fit
  uint32_t used = 0;          // blocks outside the slab (live, thread caches, transfer cache)
  uint32_t stride = 0;        // block size
  uint8_t cls = kNoClass;
  uint8_t npages = 0;
  uint8_t first_page = 0;
  SlabState state = SlabState::kFree;
  bool in_partial = false;    // on its central pool's partial list
  uintptr_t start = 0;
  Slab* next = nullptr;       // partial list (CentralPool) or empty list (SlabSource)
  Slab* prev = nullptr;
  uint64_t stamp = 0;         // LRU stamp of when it became empty
  struct SegmentMeta* seg = nullptr;

  bool has_free() const noexcept { return free_count != 0 || bump < capacity; }
  size_t bytes() const noexcept { return size_t{npages} << kPageShift; }
};

// Note [Page descriptors]
// What free() needs to know about the 64 KiB page a pointer lies in, in one 32-byte record read
// without a lock: where the slab covering it starts and its class's divisor and bound (for the
// block-boundary test: Note [Block boundary test]), and which thread-cache bin takes its blocks.
// A page in no active slab has cls kNoClass and bound 0, so the test refuses every pointer into
// it. Written under the slab source's lock with relaxed atomic stores: a class is set with `bound`
// last and cleared with `bound` first, so a reader racing with a change sees either the old
// slab's record or a refusal, except for a pointer into a page being handed to a new slab, which
// no correct program frees. `bin` and `retained` also change outside that lock: Note [Shared
// pages].
struct alignas(32) PageDesc {
  // Zero however the record is made (the count of shared blocks above all: set_page_class keeps
  // it).
  uint64_t magic = 0;    // the class's BlockDivisor::magic
  uint64_t bound = 0;    // block_bound() of the slab; 0 when the page is in no active slab
  // The low 32 bits of the covering slab's first address. Within the 4 MiB segment, p minus the
  // slab start is the same modulo 2^32 from these bits as from the full addresses, and the test
  // needs no mask of p's segment offset.
  uint32_t slab_low = 0;
  uint8_t cls = 0;       // kNoClass when the page is in no active slab
  uint8_t head = 0;      // first page of the slab covering the page
  uint16_t unused = 0;
  // One 8-byte word (Note [Shared pages]): the bin free() pushes this page's blocks to (cls *
  // kBinBytes: its offset in a ThreadCache), or kSharedBin while `retained` is not zero.
  uint16_t bin = 0;
  uint16_t unused2 = 0;  // zero: the compare-and-swap of the word writes it so
  uint32_t retained = 0; // blocks starting on this page that have a refcount-table entry
};
static_assert(sizeof(PageDesc) == 32);
static_assert(offsetof(PageDesc, bin) % 8 == 0 && std::endian::native == std::endian::little);
static_assert(offsetof(PageDesc, retained) == offsetof(PageDesc, bin) + 4);

// Note [Shared pages]
// A block with a refcount-table entry (ca_retain) must not be freed by the fast path: its free
// drops a count instead (Heap::free_small). The page the block starts on counts such blocks
// (`retained`), and while it counts any, its `bin` is kSharedBin: a bin past the classes' that
// every ThreadCache has and that is always full (max 0), so free's bin test sends the block to
// the slow path, which consults the table. The fast path thus tests nothing for shared blocks;
// before, it tested a per-segment count (2 instructions and a cache line). retain and release
// change the count and the bin together, with one compare-and-swap of the 8-byte word that holds
// both, so two transitions on one page (one block retained while another's last entry goes)
// cannot leave the bin and the count disagreeing. The bin changes before the entry exists
// (retain) and after it is gone (release), so a free that races with neither misses nothing. A
// slab's pages get their class's bin when it becomes active, when no block of it is live, so
// none is retained. The free fast path reads the bin while another thread's retain or release of
// another block of the page may write it: a relaxed 16-bit load (relaxed_load16).

// Note [Slab free bits]
// A block given back to its slab is a bit in the segment's free bits, not a link written into the
// block. Taking blocks then reads only metadata: the addresses come from the bit positions, and the
// stores that chain the blocks for a thread cache miss in parallel. A linked free list made every
// block of a refill a load that waited for the previous one, from memory the program had freed
// long before: perf put 10% of python's cycles in CentralPool::take, 91% of them on that load.
// Bits also make the slab hand out its lowest blocks first (as jemalloc's slabs do), and let a
// second give of a block that is back already be caught (a double free), and a block boundary
// past the bump index be refused (never handed out).
// Layout: bit k of a slab's bits is its block k; a slab's bits start at word first_page *
// kFreeWordsPerPage, so a 1-page slab of 16-byte blocks (4096) uses its own 64 words and a bigger
// slab, of bigger blocks, fewer than its pages' words. Outside an active slab every bit is zero:
// a slab that empties clears the words it used (all its blocks below the bump index are back).
// The 32 KiB array is mapped with the segment's record and kept when the record is recycled; only
// the words that slabs use are ever written, so its pages are committed in proportion to blocks.
struct SegmentMeta {
  // Note [Page descriptors]. First: a descriptor's address is then the segment's record plus the
  // page index times 32, the base of every field free() reads from it, bin's asm load included.
  PageDesc pages[kPagesPerSegment];
  uintptr_t base = 0;
  uint64_t free_pages = ~uint64_t{0};      // bit i: page i belongs to no slab
  SegmentMeta* next = nullptr;
  // CACHEALLOC_CHECK only (Note [Live bits]): one bit per 16-byte granule, set while the block
  // starting there is handed out. nullptr outside check mode.
  std::atomic<uint64_t>* live_bits = nullptr;
  Slab slabs[kPagesPerSegment];
  uint64_t* free_bits = nullptr;           // kFreeWords words: Note [Slab free bits]

  static constexpr size_t kLiveWords = kSegmentSize / kMinAlign / 64;  // 4096 words: 32 KiB
  static constexpr size_t kFreeWordsPerPage = kPageSize / kMinAlign / 64;  // 64
  static constexpr size_t kFreeWords = kFreeWordsPerPage * kPagesPerSegment;
  uint64_t* free_words(const Slab& s) noexcept { return free_bits + s.first_page * kFreeWordsPerPage; }

  // Segments are kSegmentSize-aligned, so the page index needs no load of `base`.
  static size_t page_of(const void* p) noexcept {
    return (reinterpret_cast<uintptr_t>(p) >> kPageShift) & (kPagesPerSegment - 1);
  }
  const PageDesc& page_at(const void* p) const noexcept { return pages[page_of(p)]; }
  Slab* slab_at(const void* p) noexcept { return &slabs[page_at(p).head]; }
  uint8_t class_at(const void* p) const noexcept { return page_at(p).cls; }
  // class_at * kBinBytes, or kSharedBin: Note [Shared pages].
  size_t bin_at(const void* p) const noexcept {
    return relaxed_load16_at<offsetof(PageDesc, bin)>(page_at(p));
  }
  // Note [Shared pages]: whether blocks starting on p's page have refcount-table entries, and a
  // change of their count by +1 or -1 (the page's bin with it).
  bool page_shared(const void* p) const noexcept {
    return __atomic_load_n(&page_at(p).retained, __ATOMIC_RELAXED) != 0;
  }
  void add_shared(const void* p, int delta) noexcept;
  // Whether p is the start of a block of the active slab covering it (Note [Block boundary
  // test]). 5 instructions with the descriptor's address: a subtract, a multiply, a compare.
  bool is_block_start(const void* p) const noexcept {
    const PageDesc& d = page_at(p);
    const uint32_t off = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p)) - d.slab_low;
    return uint64_t{off} * d.magic < d.bound;
  }
  // The same, for a slab of class cls only.
  bool is_block_start(const void* p, unsigned cls) const noexcept {
    return class_at(p) == cls && is_block_start(p);
  }
  // The index of p's block in its slab. Pre: is_block_start(p).
  uint32_t block_number(const void* p) const noexcept {
    const PageDesc& d = page_at(p);
    return block_index(static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p)) - d.slab_low, d.cls);
  }
  // Page i belongs to the slab whose first page is `head` (no class yet), or, with cls, is part
  // of an active slab of that class; clear_class makes it refuse every pointer again.
  void set_page_head(unsigned i, unsigned head) noexcept;
  void set_page_class(unsigned i, unsigned cls, uint32_t capacity) noexcept;
  void clear_page_class(unsigned i) noexcept;

  // Note [Live bits]
  // In check mode every small block is handed out and taken back one at a time through the heap's
  // slow paths, which set and clear its bit here. A free that finds the bit already clear is a
  // double free, whichever cache (transfer slot, its slab) the block went to in between. By
  // default the key tells a block that waits in a bin, a transfer slot or its slab, and the slab's
  // bits one whose key a write after free wiped once it is back there (Note [Slab free bits]).
  // Pre: p is a block start of this segment and live_bits != nullptr.
  bool mark_live(const void* p) noexcept {  // false: it was live already (an internal error)
    size_t g = (reinterpret_cast<uintptr_t>(p) - base) / kMinAlign;
    uint64_t bit = uint64_t{1} << (g % 64);
    return (live_bits[g / 64].fetch_or(bit, std::memory_order_relaxed) & bit) == 0;
  }
  bool is_live(const void* p) const noexcept {
    size_t g = (reinterpret_cast<uintptr_t>(p) - base) / kMinAlign;
    return (live_bits[g / 64].load(std::memory_order_relaxed) >> (g % 64) & 1) != 0;
  }
  bool clear_live(const void* p) noexcept {  // false: it was not live (a double free)
    size_t g = (reinterpret_cast<uintptr_t>(p) - base) / kMinAlign;
    uint64_t bit = uint64_t{1} << (g % 64);
    return (live_bits[g / 64].fetch_and(~bit, std::memory_order_relaxed) & bit) != 0;
  }
};

}  // namespace cachealloc
