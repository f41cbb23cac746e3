// allocator.h - the process-wide allocator: malloc-family semantics with inline fast paths.
//
// preload/ forwards every exported symbol to one function here. The fast paths are inline so that
// each exported malloc/free is a single function with no call on a thread-cache hit:
//   malloc: sampling countdown 3, size -> bin (a table by size) 4, thread cache 2 (Note [Thread
//           slots]), the bin's head 1, decode and check its link 5 (an empty bin fails the check:
//           Note [Chain end]), clear the key, new head, counts 5, return 2.
//                                                                         22 instructions to 1 KiB
//   free:   segment table 10, page descriptor 5, block-boundary test 4, bin and thread cache 4,
//           bin bound 2, double-free key 3, mangled push and count 7, return 1.
//                                                                         36 instructions
// (disassembled, each with its `ret`; malloc 30 and free 48 before Note [Size lookup], the flat
// segment table, the one-multiply boundary test, Note [Bin slack], Note [Shared pages] and the
// unshifted mask of Note [Free-list hardening] in free_list_keys.h, which says what the checks
// cost; the thread-local's offset, loaded once for both of malloc's thread-locals; the empty bin
// found by the link check, Note [Chain end].)
// Anything else (first call, empty or full bin, large sizes, shared blocks, errors) goes to the
// [[gnu::noinline]] slow paths in allocator.cpp, over the one global Heap.
#pragma once

#include <cstddef>

#include "core/heap.h"
#include "core/stats_tick.h"
#include "prof/sampler.h"

namespace cachealloc {

// Constant-initialised: usable before any constructor runs (Note [Boot cache], allocator.cpp).
// Hidden in the declaration too, not only by -fvisibility=hidden at the definition: GCC then
// addresses g_heap's fields relative to the instruction pointer, where it otherwise loads its
// address from the GOT first (which the linker turns into a `lea`: one more instruction on free).
[[gnu::visibility("hidden")]] extern constinit Heap g_heap;
extern constinit ThreadCache g_boot_cache;

[[gnu::noinline]] void* malloc_slow(size_t n, size_t align, bool zero) noexcept;
// The sampling countdown fired (Note [Heap profiling], prof/sampler.h): maybe a sampled block.
[[gnu::noinline, gnu::cold]] void* malloc_sample_slow(size_t n, size_t align, bool zero) noexcept;
// malloc_slow for the entries without a fast path (calloc, memalign, ...): counts n for sampling.
void* malloc_counted(size_t n, size_t align, bool zero) noexcept;
// `size`, `align`: what a sized free was given (0, 0: none); Note [Sized frees].
[[gnu::noinline]] void free_slow(void* p, const char* call, size_t size, size_t align) noexcept;
// A block start of seg of class cls that the thread's bin did not take (full, the boot cache, a
// second free, or a block of a page with shared blocks: Note [Shared pages]).
[[gnu::noinline]] void free_small_slow(void* p, SegmentMeta* seg, unsigned cls, const char* call,
                                       size_t size, size_t align) noexcept;

// The sampling countdown adds 3 instructions (the thread-local's offset, a subtract to it, a
// branch) to the fast path: Note [Heap profiling] in prof/sampler.h.
// Sizes up to 1 KiB test one bound, not two (the small-object bound, then the table's): the size
// tests are ordered so that the common case falls through.
[[gnu::always_inline]] inline void* api_malloc(size_t n) noexcept {
  if (prof::count_bytes(n)) return malloc_sample_slow(n, 0, false);
  size_t bin;  // the class's bin, as an offset: Note [Size lookup]
  if (__builtin_expect(n <= detail::kLookupMax, 1)) {
    bin = bin_of_small(n);
  } else if (n <= kMaxSmallSize) {
    bin = class_of_slow(n) * kBinBytes;
  } else {
    return malloc_slow(n, 0, false);
  }
  void* p = t_slots.cache->try_alloc_at(bin, n);
  if (__builtin_expect(p != nullptr, 1)) return p;
  return malloc_slow(n, 0, false);
}

// Note [Sized frees]: free_sized/free_aligned_sized (C23) and the sized operator delete forms pass
// `size`, and the aligned forms `align` (with size 0 when unsized); the block is freed as free()
// does. The size is not used to find the
// block's class: a free must validate the pointer anyway (segment, block boundary, bin key), and
// that lookup yields the class, so a trusted size would save one load and let a wrong size put a
// block into another class's bin (a too large size: the block is later handed out for requests
// bigger than it is). In check mode the size and alignment are checked against the block instead:
// a size larger than the block, or a pointer off the alignment, stops the program with "wrong size
// for <pointer>". Check mode sends every free to a slow path (thread-cache bins hold nothing), so
// the check lives there and the fast path only carries the two values to the slow calls.
[[gnu::always_inline]] inline void api_free(void* p, const char* call = "free", size_t size = 0,
                                            size_t align = 0) noexcept {
  SegmentMeta* seg = g_heap.table().lookup(p);
  if (__builtin_expect(seg != nullptr, 1)) {
    // Interior pointers and unused pages (they fail the boundary test) go to the slow path, which
    // validates; a valid block that misses the bin (full, boot cache, key match, or a shared
    // block: Note [Shared pages]) goes to the small slow path with what was found here.
    if (__builtin_expect(seg->is_block_start(p), 1)) {
      if (__builtin_expect(t_slots.cache->try_free_at(p, seg->bin_at(p)), 1)) return;
      return free_small_slow(p, seg, seg->class_at(p), call, size, align);
    }
  }
  free_slow(p, call, size, align);
}

void* api_calloc(size_t n, size_t size) noexcept;
void* api_realloc(void* p, size_t n) noexcept;
void* api_reallocarray(void* p, size_t n, size_t size) noexcept;
// 0 or EINVAL/ENOMEM, like posix_memalign; ENOMEM is also stored in errno (as glibc does).
int api_posix_memalign(void** out, size_t align, size_t n) noexcept;
void* api_aligned_alloc(size_t align, size_t n) noexcept;  // EINVAL for a bad alignment
// Lenient, as glibc: a non-power-of-two alignment is rounded up to the next power of two.
void* api_memalign(size_t align, size_t n) noexcept;
void* api_valloc(size_t n) noexcept;
void* api_pvalloc(size_t n) noexcept;
size_t api_usable_size(const void* p) noexcept;
int api_release(void* p) noexcept;  // ca_release: the last reference of a sampled block forgets it
int api_trim(size_t pad) noexcept;

// The current thread's cache (created on first use), or nullptr for exiting threads.
ThreadCache* current_cache() noexcept;
void ensure_init() noexcept;


}  // namespace cachealloc
