// stack_trace.h - the call stack of an allocation, without allocating through us.
//
// The unwinder is libgcc's _Unwind_Backtrace (libgcc_s, which every C++ program loads; this library
// looks it up when profiling starts: Note [Unwinder on demand]): it reads .eh_frame, so frame pointers are not assumed. It finds a frame's
// unwind data through dl_iterate_phdr, which takes the loader's (recursive) write lock; it is
// never called while one of our locks is held, so a thread inside dlopen that calls malloc waits
// for nobody. A thread-local guard (in_profiler) makes any allocation the unwinder or the profiler
// makes on this thread an ordinary, unsampled one. warm_up() unwinds once at start-up, from the
// library constructor, outside any lock.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cachealloc::prof {

constexpr int kMaxFrames = 48;

// Return addresses of the calling thread's stack, innermost first, starting at the first frame
// outside this library (the program's call to malloc, cudaMalloc, operator new ...). Returns how
// many were stored (0..max). Pre: the caller holds a ProfilerScope.
int capture_stack(uintptr_t* pcs, int max) noexcept;

// Finds this library's address range and runs the unwinder once (its first use initialises it).
void warm_up() noexcept;

// True while the calling thread is inside the profiler (its allocations are not sampled).
bool in_profiler() noexcept;

class ProfilerScope {
 public:
  ProfilerScope() noexcept;
  ~ProfilerScope();
  ProfilerScope(const ProfilerScope&) = delete;
  ProfilerScope& operator=(const ProfilerScope&) = delete;
};

}  // namespace cachealloc::prof
