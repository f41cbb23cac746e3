// profiler.h - the process-wide heap profile: host samples, device allocations, dump, leak check.
//
// Host: the malloc family samples (sampler.h) and records the sampled blocks in one table; device:
// every cudaMalloc / cuMemAlloc / pinned allocation the program makes is recorded in a second one
// (the CUDA front calls record_device / forget_device). Profiles are written in pprof's legacy
// heap format (report.h) by ca_prof_dump and, with CACHEALLOC_PROF_PREFIX, at exit; with
// CACHEALLOC_LEAK_CHECK the live blocks are reported at exit. Note [Heap profiling] in sampler.h.
//
// Who calls: start() from the library constructor (allocator.cpp), after the options are read;
// record_host from the sampled allocation path with no lock held; forget_host from the free slow
// paths. SYNCHRONIZATION: profile_table.h (one leaf lock per table; lock_all for fork).
#pragma once

#include <cstddef>
#include <cstdint>

#include "prof/profile_table.h"

namespace cachealloc::prof {

extern constinit ProfileTable g_host_table;

// Reads CACHEALLOC_PROF / _SAMPLE / _LEAK_CHECK, maps the tables, warms the unwinder up and starts
// sampling. Idempotent.
void start() noexcept;
// Whether the tables exist (profiling or the leak check is on).
bool active() noexcept;

// Records the sampled block p of n bytes with the caller's stack.
void record_host(void* p, size_t n) noexcept;
// A block is being freed: forgets it if it was sampled. About 3 instructions while no sampled
// block is live (a load and a branch).
[[gnu::noinline]] void forget_host_slow(void* p) noexcept;
inline void forget_host(void* p) noexcept {
  if (__builtin_expect(g_host_table.live_blocks() != 0, 0)) forget_host_slow(p);
}

// Whether p is a live sampled block (a lookup under the table's lock while any is live).
inline bool is_sampled(const void* p) noexcept {
  return g_host_table.live_blocks() != 0 && g_host_table.contains(reinterpret_cast<uintptr_t>(p));
}

// Device and pinned host memory the program allocated and freed (every allocation, not sampled).
void record_device(uint64_t addr, size_t size) noexcept;
void forget_device(uint64_t addr) noexcept;

// Writes the host profile to `path` and, when any device allocation was recorded, the device
// profile to `path` + ".device". 0, EINVAL (profiling is off or path is empty) or an errno of
// open/write.
int dump(const char* path) noexcept;

// Fork (Note [Fork], core/fork.cpp): taken after Heap::lock_all, released before it.
void lock_all() noexcept;
void unlock_all() noexcept;

}  // namespace cachealloc::prof
