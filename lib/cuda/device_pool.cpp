// device_pool.cpp - see device_pool.h.
//
// Data structures, per pool:
//   buckets[bucket] -> most recently freed ready block of that bucket (list through bprev/bnext)
//   ready list      -> ready blocks, oldest free first (the LRU order used for eviction)
//   pending list    -> freed blocks not yet known to be idle, in free order
//   fences[ring]    -> fence.cpp: fence s covers every block freed before it was recorded
//   events[]        -> recycled CUevents (created with CU_EVENT_DISABLE_TIMING)
//
// Note [Capture]
// While a stream captures a graph, recording an event on it adds a node to the graph and, in the
// global capture mode, querying or synchronising (or cuCtxRecordEvent on its context) invalidates
// the capture. So during any capture the pool records, queries and synchronises nothing, and frees
// nothing for real, not even past the budget: frees only join the pending list, and allocations
// take blocks that are already ready or allocate for real (cudaMalloc is allowed during a
// capture). Every piece of fence work runs inside a FenceWindow (Note [Capture gate] in
// stream_registry.h), so a capture cannot begin while another thread is half-way through one.
#include "cuda/device_pool.h"

#include <cstring>

#include "cuda/fence.h"

namespace cachealloc::cuda {
namespace {

void bucket_push(Pool& p, BlockTable& t, uint32_t id) noexcept {
  BucketList::push_front_at(t, p.buckets[t.block(id).bucket], id);
}

void bucket_remove(Pool& p, BlockTable& t, uint32_t id) noexcept {
  BucketList::remove_at(t, [&]() -> uint32_t& { return p.buckets[t.block(id).bucket]; }, id);
}

// A ready block for a request of `request` bytes, `rounded` its layout (Note [Device layouts]);
// never an IPC block. Blocks are at least their layout's size, except those allocated at the
// exact size near the free memory (CudaFront::cached_alloc's last resort): such a block serves any
// request it holds, its own size again included.
uint32_t find_ready(Pool& p, BlockTable& t, size_t request, size_t rounded,
                    unsigned host_flags) noexcept {
  size_t limit = near_fit_limit(rounded);
  unsigned first = bucket_of(request);
  unsigned last = rounded <= kSmallLimit ? bucket_of(rounded) : bucket_of(limit);
  for (unsigned bucket = first; bucket <= last && bucket < kNumBuckets; ++bucket) {
    for (uint32_t bid = p.buckets[bucket]; bid != kNoBlock; bid = BucketList::next(t, bid)) {
      Block& b = t.block(bid);
      if (b.host_flags == host_flags && b.size >= request && b.size <= limit && !b.ipc) return bid;
    }
  }
  return kNoBlock;
}

}  // namespace

void pool_init(Pool& p, bool host) noexcept {
  p.host = host;
  p.device.store(-1, std::memory_order_relaxed);
  p.ready.clear();
  p.pending.clear();
  p.next_fence = 1;
  p.done_fence = 0;
  p.unfenced = false;
  p.n_events = 0;
  for (uint32_t& h : p.buckets) h = kNoBlock;
  p.c = PoolCounters{};
  p.ctx.store(nullptr, std::memory_order_relaxed);
  p.snap.device.store(-1, std::memory_order_relaxed);
}

void pool_make_ready(Pool& p, BlockTable& t, uint32_t id) noexcept {
  p.pending.remove(t, id);
  t.block(id).state = BlockState::kReady;
  p.ready.push_back(t, id);
  bucket_push(p, t, id);
}

uint32_t pool_take_ready(Pool& p, BlockTable& t, size_t request, size_t rounded,
                         unsigned host_flags) noexcept {
  uint32_t bid = find_ready(p, t, request, rounded, host_flags);
  if (bid == kNoBlock) return kNoBlock;
  Block& b = t.block(bid);
  bucket_remove(p, t, bid);
  p.ready.remove(t, bid);
  b.state = BlockState::kLive;
  b.refcount = 1;
  p.c.cached -= b.size;
  p.c.live += b.size;
  if (p.c.live > p.c.live_peak) p.c.live_peak = p.c.live;
  ++p.c.hits;
  return bid;
}

size_t pool_evict_ready(Pool& p, BlockTable& t, uint64_t target, Victim* out, size_t n,
                        size_t max) noexcept {
  while (p.c.cached > target && !p.ready.empty() && n < max) {
    uint32_t id = p.ready.front();
    Block& b = t.block(id);
    p.ready.remove(t, id);
    bucket_remove(p, t, id);
    p.c.cached -= b.size;
    p.c.reserved -= b.size;
    ++p.c.evictions;
    out[n++] = {b.addr, b.origin, b.runtime};
    t.erase(id);
  }
  return n;
}

namespace {
// Brings the pool within budget; returns the victims to free after unlocking. Pre: the caller
// holds an open FenceWindow until those frees are done (Note [Capture]: a real free during a
// capture would invalidate it; the budget then waits for the capture's end).
size_t enforce_budget(Pool& p, const PoolEnv& env, Victim* out) noexcept {
  if (p.c.cached <= p.budget) return 0;
  size_t n = pool_evict_ready(p, env.blocks, p.budget, out, 0, kMaxVictims);
  if (p.c.cached <= p.budget || env.driver == nullptr) return n;
  ContextScope scope(env.driver, p.ctx.load(std::memory_order_relaxed));
  if (!scope.ok()) return n;
  fence_collect(p, env);
  n = pool_evict_ready(p, env.blocks, p.budget, out, n, kMaxVictims);
  if (p.c.cached > p.budget && !p.pending.empty()) {
    fence_sync_all(p, env);
    n = pool_evict_ready(p, env.blocks, p.budget, out, n, kMaxVictims);
  }
  return n;
}
}  // namespace

size_t pool_cache_block(Pool& p, const PoolEnv& env, uint32_t id, Victim* out,
                        bool window_open) noexcept {
  Block& b = env.blocks.block(id);
  b.state = BlockState::kPending;
  b.fence = 0;
  p.pending.push_back(env.blocks, id);
  p.c.live -= b.size;
  p.c.cached += b.size;
  p.unfenced = true;
  return window_open ? enforce_budget(p, env, out) : 0;
}

void pool_forget_block(Pool& p, BlockTable& t, uint32_t id) noexcept {
  Block& b = t.block(id);
  switch (b.state) {
    case BlockState::kPending:
      p.pending.remove(t, id);
      p.c.cached -= b.size;
      break;
    case BlockState::kReady:
      p.ready.remove(t, id);
      bucket_remove(p, t, id);
      p.c.cached -= b.size;
      break;
    case BlockState::kLive:
      p.c.live -= b.size;
      break;
    case BlockState::kFree:
      break;
  }
  p.c.reserved -= b.size;
  t.erase(id);
}

void pool_drop(Pool& p, BlockTable& t, uint16_t index) noexcept {
  uint32_t limit = t.limit();
  for (uint32_t id = 1; id < limit; ++id) {
    Block& b = t.block(id);
    if (b.state != BlockState::kFree && b.pool == index) t.erase(id);
  }
  for (uint32_t& h : p.buckets) h = kNoBlock;
  p.ready.clear();
  p.pending.clear();
  p.done_fence = p.next_fence - 1;
  for (Fence& f : p.fences) f.ev = nullptr;
  p.n_events = 0;
  p.unfenced = false;
  p.c.reserved = p.c.cached = p.c.live = p.c.live_peak = 0;
  p.ctx.store(nullptr, std::memory_order_release);
}

void pool_publish(Pool& p) noexcept {
  uint32_t s = p.snap.seq.load(std::memory_order_relaxed);
  p.snap.seq.store(s + 1, std::memory_order_relaxed);  // odd: being written
  std::atomic_thread_fence(std::memory_order_release);
  p.snap.device.store(p.device.load(std::memory_order_relaxed), std::memory_order_relaxed);
  p.snap.budget.store(p.budget, std::memory_order_relaxed);
  uint64_t src[kCounterWords];
  std::memcpy(src, &p.c, sizeof src);
  for (size_t i = 0; i < kCounterWords; ++i) p.snap.c[i].store(src[i], std::memory_order_relaxed);
  p.snap.seq.store(s + 2, std::memory_order_release);
}

bool pool_read_snapshot(const Pool& p, int* device, uint64_t* budget, PoolCounters* out) noexcept {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    uint32_t s1 = p.snap.seq.load(std::memory_order_acquire);
    if ((s1 & 1) != 0) {
      cpu_relax();
      continue;
    }
    *device = p.snap.device.load(std::memory_order_relaxed);
    *budget = p.snap.budget.load(std::memory_order_relaxed);
    uint64_t dst[kCounterWords];
    for (size_t i = 0; i < kCounterWords; ++i) dst[i] = p.snap.c[i].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (p.snap.seq.load(std::memory_order_relaxed) == s1) {
      std::memcpy(out, dst, sizeof dst);
      return true;
    }
  }
  return false;  // a writer never finished (it was interrupted on this very thread): skip it
}

}  // namespace cachealloc::cuda
