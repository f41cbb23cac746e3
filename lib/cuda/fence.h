// fence.h - when a freed device block may be handed out again: fences, events, synchronisation.
//
// See Note [Reuse after pending work] in fence.cpp. Every function here records, queries or
// synchronises, so each runs only inside an open FenceWindow (Note [Capture gate]) with the
// pool's context current (ContextScope) and the pool lock held.
#pragma once

#include "cuda/device_pool.h"

namespace cachealloc::cuda {

// Makes a context current for the scope (events belong to a context). ok() is false when it
// could not be made current: then no event may be recorded (it would fence the wrong context).
class ContextScope {
 public:
  ContextScope(const cuda_api::Driver* d, cuda_api::Context ctx) noexcept;
  ~ContextScope();
  bool ok() const noexcept { return ok_; }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  const cuda_api::Driver* d_;
  bool pushed_ = false;
  bool ok_ = false;
};

// Records one fence covering every unfenced pending block.
void fence_record(Pool& p, const PoolEnv& env) noexcept;
// Completes fences in order while their events have, and makes the blocks they cover ready; a
// fence that could not be recorded is completed by one synchronisation.
void fence_poll(Pool& p, const PoolEnv& env) noexcept;
// One cuCtxSynchronize: every pending block becomes ready (counted in syncs_forced).
void fence_sync_all(Pool& p, const PoolEnv& env) noexcept;
// Records a fence for the recent frees and collects the blocks whose work has finished.
inline void fence_collect(Pool& p, const PoolEnv& env) noexcept {
  fence_record(p, env);
  fence_poll(p, env);
}

}  // namespace cachealloc::cuda
