// counter.h - statistics counters that one writer at a time updates and anyone may read.
//
// Most counters here have an owner: a thread (its thread cache's counters) or a lock (a central
// pool's counters, written only under the pool lock). Such a counter needs no read-modify-write
// instruction (a fetch_add is a locked instruction on x86): the owner loads, adds and stores, all
// relaxed, which compiles to a plain add to memory. Readers (statistics) load it relaxed from any
// thread and see some recent value, never a torn one.
#pragma once

#include <atomic>
#include <type_traits>

namespace cachealloc {

// Adds `n` (wrapping) to a counter that only the caller writes now. Pre: no concurrent writer.
template <class T>
inline void owner_add(std::atomic<T>& c, std::type_identity_t<T> n) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace cachealloc
