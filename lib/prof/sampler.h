// sampler.h - which allocations record their call stack: a per-thread countdown of bytes.
//
// Note [Heap profiling]
// What a heap profile must answer is "which code holds this memory", cheaply enough to leave on.
// We follow tcmalloc and jemalloc: allocations are sampled as a Poisson process over the bytes
// allocated, with mean interval R = CACHEALLOC_PROF_SAMPLE. Each thread counts down the bytes
// until its next sample point; an allocation of s bytes that crosses one is sampled, so it is
// sampled with probability 1 - exp(-s/R) whatever the sizes around it, and weighting each sample
// by 1 / (1 - exp(-s/R)) makes the sums of sizes and counts unbiased estimates of the truth
// (pprof's heap_v2 does the same per stack). A countdown decremented only on slow paths (refills,
// large blocks) would be biased toward whatever follows a refill; the honest place is the entry of
// every allocation, at a cost of one subtract and one branch on a thread-local: 3 instructions on
// the malloc fast path (the thread-local's offset from the GOT, `sub %rdi,%fs:(..)`, `js`);
// callgrind, churn: 161 -> 164 instructions per malloc+free (docs/profiling.md).
//
// The parts, all below core (so that core calls them directly and the fork sequence takes their
// locks in Heap's order):
//   sampler.h        the countdown (inline) and the draw of the next interval
//   stack_trace      the unwinder: libgcc's _Unwind_Backtrace, guarded against reentrancy
//   profile_table    sites (deduplicated stacks) and the live sampled blocks, one lock
//   profiler         the process-wide host and device tables, dump, leak check at exit
//   report           the pprof legacy heap format and the symbolized leak report
// Profiling off (the default), every thread's countdown sits near INT64_MAX after its first
// allocation and never fires again: the cost is the subtract and the untaken branch.
//
// Sampled blocks come from the large-object path whatever their size (Heap::alloc_sampled):
// their free then never takes the small-object fast path, which stays free of any profiling test,
// and the free slow path looks the pointer up in the table only while the table holds blocks
// (profiler.h, forget_host). A sampled small block occupies a 4 KiB large layout: at most 4 KiB
// per R bytes allocated (under 1% at the default 512 KiB). Memory for the tables is mapped from
// the OS (os::map_aligned) when profiling starts, not from the MetaArena: the prof layer sits below
// core, and the tables are reserved once, at a fixed size, and touched only as they fill.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/thread_slots.h"

namespace cachealloc::prof {

// t_slots.bytes_until_sample (Note [Thread slots]): bytes the calling thread may still allocate
// before its next sample point. Starts at 0, so a thread's first allocation takes the slow path
// once, which arms it (or parks it near INT64_MAX when profiling is off).

// True when this allocation of n bytes crossed a sample point (the caller then calls
// sample_slow). One subtract on a thread-local and one branch (3 instructions with the load
// of the thread-local's offset).
[[gnu::always_inline]] inline bool count_bytes(size_t n) noexcept {
  return __builtin_expect((t_slots.bytes_until_sample -= static_cast<int64_t>(n)) < 0, 0);
}

// The countdown fired for n bytes: re-arms it, and says whether to record this allocation
// (false when profiling is off, the thread is inside the profiler, or n did not really cross a
// point because the thread was only being armed).
[[gnu::noinline, gnu::cold]] bool sample_slow(size_t n) noexcept;

// Starts sampling with mean interval `rate` bytes (0 stops it). Threads re-arm on their next
// countdown; the calling thread re-arms now.
void set_sample_rate(uint64_t rate) noexcept;
uint64_t sample_rate() noexcept;

// The weight of one sampled block of `size` bytes: 1 / (1 - exp(-size / rate)); 1 for rate 0
// (every block recorded: device allocations).
double sample_weight(uint64_t size, uint64_t rate) noexcept;

}  // namespace cachealloc::prof
