// stats_tick.h - how the layers above the core get called from the allocator's slow paths.
//
// A header of its own so that a layer that only needs the tick (the CUDA front) does not include
// the allocator's fast paths. Defined in allocator.cpp.
#pragma once

namespace cachealloc {

// Note [Stats tick]
// lib/stats sits above the core, so the core cannot call it; instead it installs a function here
// that the malloc/free/realloc slow paths call once every kStatsTickEvery slow calls of a thread,
// and at thread exit. The cost on a slow path is one thread-local decrement and branch; the fast
// paths never see it. `fn` must not allocate and must leave errno alone. nullptr removes it.
inline constexpr int kStatsTickEvery = 32;
using StatsTick = void (*)() noexcept;
void set_stats_tick(StatsTick fn) noexcept;
// Calls the installed tick now (it publishes only if its interval has passed). For layers whose
// every call is slow anyway (the CUDA front), so that their counters reach the segment even in a
// program that makes few host allocations.
void stats_tick_now() noexcept;

}  // namespace cachealloc
