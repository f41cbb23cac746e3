// thread_slots.h - the thread-locals malloc's fast path reads, as one object.
#pragma once

#include <cstdint>

namespace cachealloc {

class ThreadCache;

// Note [Thread slots]
// The library is built with the initial-exec TLS model: a function reaches a thread-local through
// its offset from the thread pointer, which it first loads from the GOT, one load per variable.
// malloc's fast path reads two (the sampling countdown and the thread's cache); as two fields of
// one object they share that offset, which saves malloc one load. Each layer still owns its field:
// prof/sampler.h the countdown, core/allocator.cpp the cache (and the definition, since the cache
// starts out at its boot cache, Note [Boot cache]).
struct ThreadSlots {
  int64_t bytes_until_sample;  // Note [Heap profiling]
  ThreadCache* cache;
};
extern constinit thread_local ThreadSlots t_slots;

}  // namespace cachealloc
