// fence.cpp - see fence.h.
//
// Note [Reuse after pending work]
// cudaFree and cuMemFree synchronise the device, so an unmodified program may free a block that a
// kernel still reads or writes, and rely on the free waiting. A cache that handed the block out
// again at once would let the next owner race with that kernel. The guarantee kept here:
//   a freed block is handed out again only after all work queued, on every stream of its
//   context, before its free has finished.
// (Work of *other* contexts on the block, peer access from a second GPU, is not covered.)
// A free costs no CUDA call: the block joins the pending list unfenced. When an allocation finds
// no ready block of its layout (or the budget is exceeded) the pool records one *fence* covering
// every unfenced block: one event recorded with cuCtxRecordEvent (CUDA 12.5 drivers and later),
// which captures all the work of the context, on every stream, at the time of the call. Drivers
// without it get a fence that is one cuCtxSynchronize (Note [Older drivers]). A fence recorded
// after the free covers all work queued before the free, so late recording is safe, and one fence
// serves a whole batch of frees. Fences complete in order, so the pool polls only the oldest. When
// a fence cannot be recorded (no event) or the budget must be met, the pool falls back to one
// cuCtxSynchronize, which makes every pending block ready at once (counted in syncs_forced).
//
// Note [Older drivers]
// Before cuCtxRecordEvent (CUDA 12.5) no event covers a whole context. An earlier fence recorded
// one event on the legacy stream (which waits for blocking and per-thread default streams) and
// one on each non-blocking stream seen created through the cuStreamCreate* hooks. On a GPU
// (tools/gpu/validate.sh, H200, driver 580) that let PyTorch's tensors be reused while a kernel on
// one of its streams still read them: the runtime's streams did not all reach the hooks, and why
// was never found. A review (session 14) found a second hole: cudaStreamDestroy returns at once
// and the stream's queued work still runs, out of sight of every later event. A cache that cannot
// see every stream cannot be sure a block is idle, so on such drivers every fence is one
// cuCtxSynchronize when it is polled: a cached free still costs no CUDA call and a hit no
// cudaMalloc, and a batch of frees costs one synchronisation where CUDA's own frees cost one each.
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
  if (f.ev != nullptr) put_event(p, d, f.ev);
  f.ev = nullptr;
}

void ready_covered(Pool& p, BlockTable& blocks) noexcept {
  while (!p.pending.empty()) {
    Block& b = blocks.block(p.pending.front());
    if (b.fence == 0 || b.fence > p.done_fence) break;
    pool_make_ready(p, blocks, p.pending.front());
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
    if (f.ev == nullptr) {
      fence_sync_all(p, env);
      return;
    }
    if (env.driver->event_query(f.ev) != cuda_api::kCuSuccess) {
      ready_covered(p, env.blocks);
      return;
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
  Event ev = d->ctx_record_event != nullptr ? get_event(p, d) : nullptr;
  if (ev != nullptr && d->ctx_record_event(ctx, ev) != cuda_api::kCuSuccess) {
    put_event(p, d, ev);
    ev = nullptr;
  }
  // Note [Reuse after pending work]: the whole context in one event; without one, the fence is a
  // synchronisation when it is polled (Note [Older drivers]).
  f.ev = ev;
  uint64_t seq = p.next_fence++;
  for (uint32_t id = p.pending.back(); id != kNoBlock; id = BlockList::prev(env.blocks, id)) {
    Block& b = env.blocks.block(id);
    if (b.fence != 0) break;
    b.fence = seq;
  }
  p.unfenced = false;
}

}  // namespace cachealloc::cuda
