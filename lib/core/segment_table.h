// segment_table.h - from any address to the metadata of the small-object segment holding it.
//
// Segments are kSegmentSize (4 MiB) aligned mappings. The table is one flat array with an entry
// per segment-sized slot of the 47-bit user address space (2^25 entries, 256 MiB of address
// space), reserved read-only on the first registration: it costs neither memory nor commit charge
// until a registration makes the OS page holding its entry writable (a 4 KiB OS page covers 2 GiB
// of addresses). Under an address-space limit (RLIMIT_AS) the table is a window of 2^21 entries
// or fewer around the first segment (Note [Segment table window]). lookup() is two dependent
// loads (the array's address, then its entry), 10 instructions, and never takes a lock; an
// address outside every segment gives nullptr, which is how free() tells small blocks from large
// or foreign ones in O(1) without a per-block header. The table is never unmapped: the process's
// Heap lives as long as the process (the Heaps of unit tests leak theirs, address space only).
//
// SYNCHRONIZATION: set() runs under the slab source's lock; lookup() races with it benignly: the
// window is published (release) before any entry, and an entry before any block of its segment
// is handed out.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/size_class.h"
#include "util/counter.h"

namespace cachealloc {

struct SegmentMeta;

// Note [Segment table window]
// The table covers the segment indices [first_, first_ + size_): the whole 47-bit space when the
// process has no address-space limit (or one of 4 GiB or more: the table then takes at most
// 1/16 of it) and the OS grants the 256 MiB, else the largest window of 2^21, 2^17 or 2^13
// entries that fits in 1/16 of the limit and that the OS grants (16 MiB, 1 MiB or 64 KiB of
// table for 8 TiB, 512 GiB or 32 GiB of addresses), centred on the first segment registered. The
// kernel places mappings close together, so a window holds the segments of a process whose
// address space is that tight; a segment outside it cannot be registered, and the slab source
// gives its memory back and reports ENOMEM as for any failed mapping. One subtract and one
// unsigned compare test both ends of the window (an index below it wraps past it); before the
// first registration the window is empty and every lookup gives nullptr.
class SegmentTable {
 public:
  static constexpr unsigned kAddressBits = 47;
  static constexpr size_t kSpan = size_t{1} << (kAddressBits - kSegmentShift);  // 2^25 entries

  constexpr SegmentTable() = default;

  // 10 instructions: a shift, the window test (a load of its size, a subtract and a compare with
  // memory), a load of the array's address, the entry's load and its null test.
  SegmentMeta* lookup(const void* p) const noexcept {
    uintptr_t i = reinterpret_cast<uintptr_t>(p) >> kSegmentShift;
    if (!rebase(i)) return nullptr;
    return entries_.load(std::memory_order_relaxed)[i].load(std::memory_order_acquire);
  }
  // Registers (or with nullptr, removes) the segment starting at `base`. False when the table or
  // the page of its entry could not be mapped, or base lies outside the window.
  bool set(uintptr_t base, SegmentMeta* meta) noexcept;

  // Segments the table can hold (0 before the first registration): Note [Segment table window].
  size_t window() const noexcept { return size_.load(std::memory_order_relaxed); }

 private:
  // i -= first_, and whether i then lies in the window. size_ is read first (acquire: it was
  // published after first_ and entries_), into a register. GCC loads every atomic into a register
  // before it uses it; on x86-64 the subtract takes first_ from memory instead (one instruction
  // fewer; Note [Counter adds] says why assembly, and why not under TSan), and the asm is a
  // compiler barrier, so entries_ is read after size_.
  [[gnu::always_inline]] bool rebase(uintptr_t& i) const noexcept {
#ifdef CA_COUNTER_ASM
    uintptr_t size;
    bool inside;
    asm volatile("mov %3, %1\n\tsub %4, %0\n\tcmp %1, %0"
                 : "+r"(i), "=&r"(size), "=@ccb"(inside)
                 : "m"(size_), "m"(first_)
                 : "memory");
    return inside;
#else
    const size_t size = size_.load(std::memory_order_acquire);
    i -= first_.load(std::memory_order_relaxed);
    return i < size;
#endif
  }
  bool reserve(uintptr_t index) noexcept;
  bool page_writable(size_t i) const noexcept;  // whether the OS page of entry i is writable
  bool writable(size_t i) noexcept;             // makes the OS page of entry i writable

  static constexpr size_t kMinWindow = size_t{1} << 13;
  // One bit per OS page of the table: at most its size over 4 KiB.
  static constexpr size_t kOsPageBits = kSpan * sizeof(void*) / 4096;

  std::atomic<std::atomic<SegmentMeta*>*> entries_{nullptr};  // set once, before size_
  std::atomic<uintptr_t> first_{0};                           // set once, before size_
  std::atomic<size_t> size_{0};
  uint64_t writable_pages_[kOsPageBits / 64] = {};  // bit k: OS page k of entries_ is writable
};

}  // namespace cachealloc
