// fence.cpp - see fence.h.
//
// Note [Reuse after pending work]
// cudaFree and cuMemFree synchronise the device, so an unmodified program may free a block that a
// kernel still reads or writes, and rely on the free waiting. A cache that handed the block out
// again at once would let the next owner race with that kernel. The guarantee kept here:
//   a freed block is handed out again only after all work queued, on every stream of its
//   context, before its free has finished.
// A free costs no CUDA call: the block joins the pending list unfenced. When an allocation finds
// no ready block of its layout (or the budget is exceeded) the pool records one *fence* covering
// every unfenced block: one event recorded with cuCtxRecordEvent (CUDA 12.5 drivers and later),
// which captures all the work of the context, on every stream, at the time of the call. Drivers
// without it get the older fence of Note [Which streams a fence covers]. A fence recorded after
// the free covers all work queued before the free, so late recording is safe, and one fence
// serves a whole batch of frees. Fences complete in order, so the pool polls only the oldest. When
// a fence cannot be recorded (no events, too many streams for the older fence) or the budget must
// be met, the pool falls back to one cuCtxSynchronize, which makes every pending block ready at
// once (counted in syncs_forced).
//
// On a GPU (tools/gpu/validate.sh, H200, driver 580) the older fence let PyTorch's tensors be
// reused while a kernel on one of its streams still read them: the runtime's streams did not all
// reach the registry. The context-wide event does not depend on seeing stream creation.
//
// Note [Which streams a fence covers]
// (Only for drivers without cuCtxRecordEvent.) Work on the legacy default stream waits for all
// earlier work on blocking streams, and an event recorded on it completes only after that work
// too; per-thread default streams are blocking streams. So one event on CU_STREAM_LEGACY covers
// the default stream, every blocking stream and every per-thread default stream; non-blocking
// streams do not synchronise with it and each needs its own event (stream_registry.h tracks them).
// More than kFenceEvents - 1 of them, or streams the registry lost, make the fence one
// synchronisation. Work of *other* contexts (peer access) is not covered.
//
// Note [Destroyed streams]
// (Also only for the older fence.) cuStreamDestroy returns at once, and work still queued on the
// stream runs to its end; the stream leaves the registry, so a later older fence records no event
// that waits for that work, and a block freed before the destroy (its fence not yet recorded)
// could be handed out while the work still uses it. So the first older fence of each pool after
// any stream was destroyed is a synchronisation (cuCtxSynchronize waits for that work too).
// Events recorded before the destroy stay valid and need nothing. The cost: one synchronisation
// per pool per batch of destroys, on drivers before CUDA 12.5 only, where a plain cudaFree would
// have synchronised at every free. (Found by review, session 14; test cuda_defect_destroyed_stream.)
#include "cuda/fence.h"

namespace cachealloc::cuda {
namespace {

using cuda_api::Event;

Event get_event(Pool& p, const cuda_api::Driver* d) noexcept {
  if (p.n_events > 0) return p.events[--p.n_events];
  Event ev = nullptr;
  if (d->event_create(&ev, cuda_api::kEventDisableTiming) != cuda_api::kCuSuccess) return nullptr;
  return ev;
}

void put_event(Pool& p, const cuda_api::Driver* d, Event ev) noexcept {
  if (p.n_events < kEventCache) {
    p.events[p.n_events++] = ev;
  } else {
    d->event_destroy(ev);
  }
}

void retire_fence(Pool& p, const cuda_api::Driver* d, Fence& f) noexcept {
  for (uint32_t i = 0; i < f.n; ++i) put_event(p, d, f.ev[i]);
  f.n = 0;
}

void ready_covered(Pool& p, BlockTable& blocks) noexcept {
  while (!p.pending.empty()) {
    Block& b = blocks.block(p.pending.front());
    if (b.fence == 0 || b.fence > p.done_fence) break;
    pool_make_ready(p, blocks, p.pending.front());
  }
}

// Pre: as fence_record, the stream lock held. The older fence (Note [Which streams a fence
// covers]).
void record_on_streams(Pool& p, const PoolEnv& env, cuda_api::Context ctx, Fence& f) noexcept {
  cuda_api::Stream streams[kFenceEvents];
  streams[0] = cuda_api::kLegacyStream;
  size_t k = env.streams.streams_of_locked(ctx, streams + 1, kFenceEvents - 1);
  const uint64_t destroyed = env.streams.destroyed_locked();  // Note [Destroyed streams]
  f.sync_needed = k > kFenceEvents - 1 || destroyed != p.streams_destroyed;
  p.streams_destroyed = destroyed;
  for (size_t i = 0; !f.sync_needed && i < k + 1; ++i) {
    Event ev = get_event(p, env.driver);
    if (ev == nullptr) {
      f.sync_needed = true;
      break;
    }
    f.ev[f.n++] = ev;
    if (env.driver->event_record(ev, streams[i]) != cuda_api::kCuSuccess) f.sync_needed = true;
  }
}

}  // namespace

ContextScope::ContextScope(const cuda_api::Driver* d, cuda_api::Context ctx) noexcept : d_(d) {
  cuda_api::Context cur = nullptr;
  if (d_ == nullptr || ctx == nullptr || d_->ctx_get_current(&cur) != cuda_api::kCuSuccess) return;
  if (cur == ctx) {
    ok_ = true;
  } else {
    pushed_ = d_->ctx_push_current(ctx) == cuda_api::kCuSuccess;
    ok_ = pushed_;
  }
}

ContextScope::~ContextScope() {
  if (pushed_) {
    cuda_api::Context popped;
    d_->ctx_pop_current(&popped);
  }
}

void fence_poll(Pool& p, const PoolEnv& env) noexcept {
  while (p.done_fence + 1 < p.next_fence) {
    Fence& f = p.fences[(p.done_fence + 1) % kFenceRing];
    if (f.sync_needed) {
      fence_sync_all(p, env);
      return;
    }
    for (uint32_t i = 0; i < f.n; ++i) {
      if (env.driver->event_query(f.ev[i]) != cuda_api::kCuSuccess) {
        ready_covered(p, env.blocks);
        return;
      }
    }
    retire_fence(p, env.driver, f);
    ++p.done_fence;
  }
  ready_covered(p, env.blocks);
}

void fence_sync_all(Pool& p, const PoolEnv& env) noexcept {
  if (p.pending.empty() && p.done_fence + 1 == p.next_fence) return;
  ++p.c.syncs_forced;
  // A synchronisation that failed did not wait (a capture we did not see, a context that is
  // going): nothing is known to be idle.
  if (env.driver->ctx_synchronize() != cuda_api::kCuSuccess) return;
  while (p.done_fence + 1 < p.next_fence) {
    retire_fence(p, env.driver, p.fences[(p.done_fence + 1) % kFenceRing]);
    ++p.done_fence;
  }
  while (!p.pending.empty()) pool_make_ready(p, env.blocks, p.pending.front());
  p.unfenced = false;
}

void fence_record(Pool& p, const PoolEnv& env) noexcept {
  if (!p.unfenced) return;
  if (p.next_fence - p.done_fence - 1 >= kFenceRing) {
    fence_poll(p, env);
    if (p.next_fence - p.done_fence - 1 >= kFenceRing) {
      fence_sync_all(p, env);
      return;
    }
  }
  const cuda_api::Driver* d = env.driver;
  cuda_api::Context ctx = p.ctx.load(std::memory_order_relaxed);
  Fence& f = p.fences[p.next_fence % kFenceRing];
  f.n = 0;
  f.sync_needed = false;
  Event ev = d->ctx_record_event != nullptr ? get_event(p, d) : nullptr;
  if (ev != nullptr && d->ctx_record_event(ctx, ev) == cuda_api::kCuSuccess) {
    f.ev[f.n++] = ev;  // Note [Reuse after pending work]: the whole context in one event
  } else {
    if (ev != nullptr) put_event(p, d, ev);
    StreamsLock streams(env.streams);  // a stream cannot be destroyed while an event is recorded
    record_on_streams(p, env, ctx, f);
  }
  uint64_t seq = p.next_fence++;
  for (uint32_t id = p.pending.back(); id != kNoBlock; id = BlockList::prev(env.blocks, id)) {
    Block& b = env.blocks.block(id);
    if (b.fence != 0) break;
    b.fence = seq;
  }
  p.unfenced = false;
}

}  // namespace cachealloc::cuda
