// large_source.h - where large blocks come from: the upstream of the large-object cache.
//
// The library uses SystemLargeSource (large_source.cpp is the only file that includes mimalloc.h);
// unit tests inject a fake that counts calls and fails on demand (test/fakes/fake_large_source.h).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "platform/os.h"

namespace cachealloc {

class LargeSource {
 public:
  // `size` bytes aligned to `align` (a power of two >= 16), or nullptr.
  virtual void* alloc(size_t size, size_t align, bool zero) noexcept = 0;
  virtual void free(void* p, size_t size, size_t align) noexcept = 0;
  // Resizes a block without copying it, moving it if need be: the new start (the contents up to
  // the smaller size kept), or nullptr when this block cannot be resized so (p is then untouched).
  virtual void* resize(void* p, size_t old_size, size_t new_size, size_t align) noexcept {
    (void)p, (void)old_size, (void)new_size, (void)align;
    return nullptr;
  }
  // Moves the pages of part of a block of split_min() or more (one the kernel sees as one mapping)
  // onto part of another such block without copying them: `to` then holds what `from` held, and
  // `from` is no longer ours (Note [A miss reuses cached pages], large_cache.cpp). kRefused: both
  // as they were (`to` fresh); kLost: `from` as it was, but the range at `to` is no longer ours
  // (os::move_pages), so the block around it is given back without it.
  using Move = os::MoveResult;
  virtual Move move(void* from, size_t size, void* to) noexcept {
    (void)from, (void)size, (void)to;
    return Move::kRefused;
  }
  // Gives back an OS-page-aligned part, of any size, of a block of split_min() or more.
  virtual void free_part(void* p, size_t size) noexcept = 0;
  // Bytes the upstream holds in memory for us beyond the blocks it has handed out and not been
  // given back (its own free lists and caches): part of what the process holds because of us.
  virtual size_t retained_bytes() noexcept { return 0; }
  // Blocks of at least this size are mappings of their own: any OS-page-aligned part of one may be
  // given to free() on its own, so the cache may split a cached block and merge adjacent parts again
  // (Note [Splitting mapped blocks], large_cache.cpp). SIZE_MAX: no block is.
  virtual size_t split_min() const noexcept { return SIZE_MAX; }

 protected:
  constexpr LargeSource() = default;
  ~LargeSource() = default;
};

// Note [Large upstream]: blocks below kDirectMapMin come from mimalloc, told at init to decommit
// freed memory at once (mi_option_decommit_delay and mi_option_segment_decommit_delay = 0): by
// default it keeps freed memory committed for 25 ms, and whole freed segments in a segment cache
// until some later call, so a block the cache evicted stayed in RSS and the budget was not what
// the process held. Blocks from kDirectMapMin are mapped straight from the OS and unmapped when
// freed (exact, like glibc's mmapped chunks), and resize() moves them with mremap, so a realloc
// that grows one copies nothing. What mimalloc still holds is measured, not assumed:
// retained_bytes() is its committed memory less the bytes of the blocks it has live for us. With
// eager commit on (mimalloc's default) it commits whole 32 MiB segments up front and one 100 KB
// block showed 31.8 MiB "retained" that was never touched; so eager commit is turned off and the
// count follows what is touched (920 KiB for that block). It is still an upper bound on what
// mimalloc keeps resident (a committed OS page may never have been touched), never below it.
class SystemLargeSource final : public LargeSource {
 public:
  static constexpr size_t kDirectMapMin = size_t{1} << 20;

  constexpr SystemLargeSource() = default;
  // Sets mimalloc's options; call once before the first alloc.
  static void init() noexcept;  // a static call: no vptr check under UBSan
  void* alloc(size_t size, size_t align, bool zero) noexcept override;
  void free(void* p, size_t size, size_t align) noexcept override;
  void* resize(void* p, size_t old_size, size_t new_size, size_t align) noexcept override;
  Move move(void* from, size_t size, void* to) noexcept override;
  void free_part(void* p, size_t size) noexcept override { os::unmap(p, size); }
  size_t retained_bytes() noexcept override;
  size_t split_min() const noexcept override { return kDirectMapMin; }

  // Note [Huge pages]: with CACHEALLOC_THP=1, a block of kHugePage or more mapped from the OS is
  // aligned to kHugePage and advised MADV_HUGEPAGE, so that the kernel (THP "madvise" or
  // "always") may back it with 2 MiB pages: one fault per 2 MiB instead of per 4 KiB. mimalloc 3
  // does this by default for its arenas; bench-growth took 15,926 minor faults with 4 KiB pages
  // (36,940 before a miss reused cached pages) against mimalloc 3.4's 294. With the option: 4,173
  // faults, growth 0.27 -> 0.12 s, large 0.28 -> 0.12 s, peak RSS the same (three alternating
  // runs; those workloads write every byte they allocate). Off by default: a
  // block the program touches sparsely then holds up to 2 MiB per touch, and after fork() a write
  // copies 2 MiB (docs/configuration.md). The cache's accounting is unchanged: a block never holds
  // more than its mapping. A block that realloc grows past kHugePage (mremap) is advised too;
  // mremap may move it off a 2 MiB boundary, and then only its aligned 2 MiB ranges can be huge.
  // kHugePage is x86-64's PMD size.
  static constexpr size_t kHugePage = size_t{2} << 20;
  void set_huge_pages(bool on) noexcept { huge_pages_.store(on, std::memory_order_relaxed); }

 private:
  std::atomic<size_t> mimalloc_live_{0};  // bytes of blocks mimalloc has live for us
  std::atomic<bool> huge_pages_{false};  // set at init and again once environ is read
};

}  // namespace cachealloc
