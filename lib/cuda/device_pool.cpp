// device_pool.cpp - see device_pool.h.
//
// Data structures, per pool (all in one mapping made on first use, kMaxPools pools):
//   buckets[layout] -> most recently freed ready block of that layout (list through bprev/bnext)
//   ready list      -> ready blocks, oldest free first (the LRU order used for eviction)
//   pending list    -> freed blocks not yet known to be idle, in free order
//   fences[ring]    -> events recorded on the context's streams; fence s covers every block
//                      freed before it was recorded
//   events[]        -> recycled CUevents (created with CU_EVENT_DISABLE_TIMING)
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
// (Only for drivers without cuCtxRecordEvent.) Work on the legacy default stream waits for all earlier work on blocking streams, and an event
// recorded on it completes only after that work too; per-thread default streams are blocking
// streams. So one event on CU_STREAM_LEGACY covers the default stream, every blocking stream and
// every per-thread default stream; non-blocking streams do not synchronise with it and each needs
// its own event (stream_registry.h tracks them). The legacy event is an implicit barrier for
// blocking streams, but strictly weaker than the device-wide synchronisation of the cudaFree it
// replaces. Work of *other* contexts (peer access) is not covered.
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

#include <atomic>
#include <cerrno>

#include "config/options.h"
#include "cuda/stream_registry.h"
#include "platform/os.h"
#include "util/spin_lock.h"

namespace cachealloc::cuda {
namespace {

using cuda_api::Context;
using cuda_api::Event;

constexpr size_t kMaxPools = 64;
constexpr size_t kFenceRing = 256;
constexpr size_t kFenceEvents = 16;  // legacy stream + up to 15 non-blocking streams
constexpr size_t kEventCache = 256;
constexpr size_t kMaxVictims = 256;

struct Fence {
  uint32_t n;
  bool sync_needed;  // could not record events: only a synchronisation completes it
  Event ev[kFenceEvents];
};

struct Pool {
  SpinLock lock;
  std::atomic<bool> used;
  bool host;
  std::atomic<Context> ctx;    // learned at the first real allocation
  int device;                  // the ordinal of ctx, -1 while unknown
  uint64_t budget;
  uint32_t ready_head, ready_tail, pending_head, pending_tail;
  uint64_t next_fence;         // the sequence number the next fence gets (from 1)
  uint64_t done_fence;         // every fence <= this one has completed
  bool unfenced;               // some pending block has no fence yet
  uint32_t n_events;
  Event events[kEventCache];
  Fence fences[kFenceRing];
  uint32_t buckets[kNumBuckets];
  PoolCounters c;
  // What pool_reports last read of device, budget and c: written and read only by it.
  int reported_device;
  uint64_t reported_budget;
  PoolCounters reported;
};

struct Victim {
  uint64_t addr;
  Origin origin;
};

constinit SpinLock g_registry_lock;
constinit Pool* g_pools = nullptr;
constinit std::atomic<size_t> g_num_pools{0};

Pool& pool_ref(uint16_t id) noexcept { return g_pools[id]; }

// ---- Intrusive lists -------------------------------------------------------------------------

void list_push_back(uint32_t& head, uint32_t& tail, uint32_t id) noexcept {
  Block& b = table_block(id);
  b.prev = tail;
  b.next = kNoBlock;
  if (tail != kNoBlock) table_block(tail).next = id; else head = id;
  tail = id;
}

void list_remove(uint32_t& head, uint32_t& tail, uint32_t id) noexcept {
  Block& b = table_block(id);
  if (b.prev != kNoBlock) table_block(b.prev).next = b.next; else head = b.next;
  if (b.next != kNoBlock) table_block(b.next).prev = b.prev; else tail = b.prev;
  b.prev = b.next = kNoBlock;
}

void bucket_push(Pool& p, uint32_t id) noexcept {
  Block& b = table_block(id);
  uint32_t& head = p.buckets[b.bucket];
  b.bprev = kNoBlock;
  b.bnext = head;
  if (head != kNoBlock) table_block(head).bprev = id;
  head = id;
}

void bucket_remove(Pool& p, uint32_t id) noexcept {
  Block& b = table_block(id);
  if (b.bprev != kNoBlock) table_block(b.bprev).bnext = b.bnext; else p.buckets[b.bucket] = b.bnext;
  if (b.bnext != kNoBlock) table_block(b.bnext).bprev = b.bprev;
  b.bprev = b.bnext = kNoBlock;
}

void make_ready(Pool& p, uint32_t id) noexcept {
  list_remove(p.pending_head, p.pending_tail, id);
  table_block(id).state = BlockState::kReady;
  list_push_back(p.ready_head, p.ready_tail, id);
  bucket_push(p, id);
}

// ---- Context and events ----------------------------------------------------------------------

// Makes the pool's context current for the scope (events belong to a context).
class ContextScope {
 public:
  // ok() is false when the context could not be made current: then no event may be recorded
  // (it would belong to, and fence, the wrong context).
  ContextScope(const cuda_api::Driver* d, Context ctx) noexcept : d_(d) {
    Context cur = nullptr;
    if (d_->ctx_get_current(&cur) != cuda_api::kCuSuccess) return;
    if (cur == ctx) {
      ok_ = true;
    } else {
      pushed_ = d_->ctx_push_current(ctx) == cuda_api::kCuSuccess;
      ok_ = pushed_;
    }
  }
  bool ok() const noexcept { return ok_; }
  ~ContextScope() {
    if (pushed_) {
      Context popped;
      d_->ctx_pop_current(&popped);
    }
  }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  const cuda_api::Driver* d_;
  bool pushed_ = false;
  bool ok_ = false;
};

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

void ready_covered(Pool& p) noexcept {
  while (p.pending_head != kNoBlock) {
    Block& b = table_block(p.pending_head);
    if (b.fence == 0 || b.fence > p.done_fence) break;
    make_ready(p, p.pending_head);
  }
}

void sync_all(Pool& p, const cuda_api::Driver* d) noexcept;

// Pre: lock held, context current, inside a FenceWindow. Completes fences in order while their
// events have; a fence that could not be recorded is completed by one synchronisation.
void poll(Pool& p, const cuda_api::Driver* d) noexcept {
  while (p.done_fence + 1 < p.next_fence) {
    Fence& f = p.fences[(p.done_fence + 1) % kFenceRing];
    if (f.sync_needed) {
      sync_all(p, d);
      return;
    }
    for (uint32_t i = 0; i < f.n; ++i) {
      if (d->event_query(f.ev[i]) != cuda_api::kCuSuccess) {
        ready_covered(p);
        return;
      }
    }
    retire_fence(p, d, f);
    ++p.done_fence;
  }
  ready_covered(p);
}

// Pre: as poll. Every pending block becomes ready (Note [Reuse after pending work]).
void sync_all(Pool& p, const cuda_api::Driver* d) noexcept {
  if (p.pending_head == kNoBlock && p.done_fence + 1 == p.next_fence) return;
  d->ctx_synchronize();
  ++p.c.syncs_forced;
  while (p.done_fence + 1 < p.next_fence) {
    retire_fence(p, d, p.fences[(p.done_fence + 1) % kFenceRing]);
    ++p.done_fence;
  }
  while (p.pending_head != kNoBlock) make_ready(p, p.pending_head);
  p.unfenced = false;
}

// Pre: as poll, streams locked. The older fence: an event on the legacy stream and one on each
// registered non-blocking stream of ctx (Note [Which streams a fence covers]).
void record_on_streams(Pool& p, const cuda_api::Driver* d, Context ctx, Fence& f) noexcept {
  cuda_api::Stream streams[kFenceEvents];
  streams[0] = cuda_api::kLegacyStream;
  size_t k = streams_of_locked(ctx, streams + 1, kFenceEvents - 1);
  f.sync_needed = k > kFenceEvents - 1;
  for (size_t i = 0; !f.sync_needed && i < k + 1; ++i) {
    Event ev = get_event(p, d);
    if (ev == nullptr) {
      f.sync_needed = true;
      break;
    }
    f.ev[f.n++] = ev;
    if (d->event_record(ev, streams[i]) != cuda_api::kCuSuccess) f.sync_needed = true;
  }
}

// Pre: as poll. Records one fence covering every unfenced pending block.
void record_fence(Pool& p, const cuda_api::Driver* d) noexcept {
  if (!p.unfenced) return;
  if (p.next_fence - p.done_fence - 1 >= kFenceRing) {
    poll(p, d);
    if (p.next_fence - p.done_fence - 1 >= kFenceRing) {
      sync_all(p, d);
      return;
    }
  }
  Context ctx = p.ctx.load(std::memory_order_relaxed);
  Fence& f = p.fences[p.next_fence % kFenceRing];
  f.n = 0;
  f.sync_needed = false;
  Event ev = d->ctx_record_event != nullptr ? get_event(p, d) : nullptr;
  if (ev != nullptr && d->ctx_record_event(ctx, ev) == cuda_api::kCuSuccess) {
    f.ev[f.n++] = ev;  // Note [Reuse after pending work]: the whole context in one event
  } else {
    if (ev != nullptr) put_event(p, d, ev);
    StreamsLock streams;  // a stream cannot be destroyed while an event is recorded on it
    record_on_streams(p, d, ctx, f);
  }
  uint64_t seq = p.next_fence++;
  for (uint32_t id = p.pending_tail; id != kNoBlock; id = table_block(id).prev) {
    Block& b = table_block(id);
    if (b.fence != 0) break;
    b.fence = seq;
  }
  p.unfenced = false;
}

// ---- Eviction --------------------------------------------------------------------------------

// Pre: lock held. Unlinks ready blocks, oldest first, while cached > target.
size_t evict_ready(Pool& p, uint64_t target, Victim* out, size_t n, size_t max) noexcept {
  while (p.c.cached > target && p.ready_head != kNoBlock && n < max) {
    uint32_t id = p.ready_head;
    Block& b = table_block(id);
    list_remove(p.ready_head, p.ready_tail, id);
    bucket_remove(p, id);
    p.c.cached -= b.size;
    p.c.reserved -= b.size;
    ++p.c.evictions;
    out[n++] = {b.addr, b.origin};
    table_erase(id);
  }
  return n;
}

// The real free of each victim, with no lock held.
void release_victims(const Victim* v, size_t n) noexcept {
  const cuda_api::Runtime* rt = nullptr;
  const cuda_api::Driver* d = cuda_api::driver();
  for (size_t i = 0; i < n; ++i) {
    switch (v[i].origin) {
      case Origin::kRuntimeDevice:
      case Origin::kRuntimeHost: {
        if (rt == nullptr) rt = cuda_api::runtime();
        if (rt == nullptr) break;
        cuda_api::RuntimeCallScope scope;
        if (v[i].origin == Origin::kRuntimeDevice) {
          rt->free(reinterpret_cast<void*>(v[i].addr));
        } else {
          rt->free_host(reinterpret_cast<void*>(v[i].addr));
        }
        break;
      }
      case Origin::kDriverDevice:
        if (d != nullptr) d->mem_free(v[i].addr);
        break;
      case Origin::kDriverHost:
        if (d != nullptr) d->mem_free_host(reinterpret_cast<void*>(v[i].addr));
        break;
    }
  }
}

// Pre: lock held. Brings the pool within budget; returns the victims to free after unlocking.
size_t enforce_budget(Pool& p, Victim* out) noexcept {
  // Note [Capture]: a real free now would invalidate the capture; the budget waits for its end.
  if (p.c.cached <= p.budget || capture_active()) return 0;
  size_t n = evict_ready(p, p.budget, out, 0, kMaxVictims);
  if (p.c.cached <= p.budget) return n;
  const cuda_api::Driver* d = cuda_api::driver();
  Context ctx = p.ctx.load(std::memory_order_relaxed);
  if (d == nullptr || ctx == nullptr) return n;
  FenceWindow window;
  if (!window.open()) return n;
  ContextScope scope(d, ctx);
  if (!scope.ok()) return n;
  record_fence(p, d);
  poll(p, d);
  n = evict_ready(p, p.budget, out, n, kMaxVictims);
  if (p.c.cached > p.budget && p.pending_head != kNoBlock) {
    sync_all(p, d);
    n = evict_ready(p, p.budget, out, n, kMaxVictims);
  }
  return n;
}

bool ensure_pools() noexcept {
  if (g_pools != nullptr) return true;
  size_t page = os::page_size();
  size_t bytes = (sizeof(Pool) * kMaxPools + page - 1) & ~(page - 1);
  void* m = os::map_aligned(bytes, page);  // zeroed: every pool starts unused
  if (m == nullptr) return false;
  g_pools = static_cast<Pool*>(m);
  return true;
}

// Note [Pinned budget]: pinned host memory is page-locked RAM, not device memory, so its pools
// are bounded by host RAM: CACHEALLOC_CUDA_CACHE_BYTES when set, else 1/16 of physical memory.
uint64_t budget_for(int device, bool host) noexcept {
  uint64_t b = options().cuda_cache_bytes;
  if (b != 0) return b;
  if (host) {
    uint64_t ram = os::physical_memory();
    return ram != 0 ? ram / 16 : uint64_t{1} << 30;
  }
  size_t total = 0;
  const cuda_api::Driver* d = cuda_api::driver();
  if (d != nullptr && device >= 0 && d->device_total_mem(&total, device) == cuda_api::kCuSuccess &&
      total != 0) {
    return total / 4;  // Note [Default budget] in docs/cuda.md
  }
  return uint64_t{1} << 30;
}

void pool_learn_context(uint16_t id, Context ctx) noexcept;

uint16_t create_pool(bool host, Context ctx) noexcept {
  // Pre: g_registry_lock held.
  if (!ensure_pools()) return kNoPool;
  size_t n = g_num_pools.load(std::memory_order_relaxed);
  if (n == kMaxPools) return kNoPool;
  Pool& p = g_pools[n];
  p.host = host;
  p.device = -1;
  p.next_fence = 1;
  p.done_fence = 0;
  p.ctx.store(nullptr, std::memory_order_relaxed);
  p.budget = budget_for(-1, host);
  p.reported_device = -1;
  p.used.store(true, std::memory_order_release);
  g_num_pools.store(n + 1, std::memory_order_release);
  if (ctx != nullptr) pool_learn_context(static_cast<uint16_t>(n), ctx);
  return static_cast<uint16_t>(n);
}

// Finds the live block at addr and locks its pool. Returns nullptr (nothing locked) if none.
Pool* lock_block(uint64_t addr, uint32_t* id_out) noexcept {
  uint32_t id = table_find(addr);
  if (id == kNoBlock) return nullptr;
  Block& b = table_block(id);
  uint16_t pid = b.pool;
  if (pid >= g_num_pools.load(std::memory_order_acquire)) return nullptr;
  Pool& p = pool_ref(pid);
  p.lock.lock();
  if (b.addr != addr || b.state == BlockState::kFree || b.pool != pid) {
    p.lock.unlock();
    return nullptr;
  }
  *id_out = id;
  return &p;
}

FreeResult free_locked(Pool& p, uint32_t id) noexcept {
  Block& b = table_block(id);
  if (b.state != BlockState::kLive) {
    p.lock.unlock();
    return FreeResult::kDoubleFree;
  }
  if (--b.refcount > 0) {
    p.lock.unlock();
    return FreeResult::kStillShared;
  }
  p.c.live -= b.size;
  Victim victims[kMaxVictims];
  size_t n = 0;
  FreeResult r = FreeResult::kCached;
  if (b.ipc || options().cuda == 0) {
    // Note: blocks exported through IPC may be mapped by another process; never reuse them.
    p.c.reserved -= b.size;
    victims[n++] = {b.addr, b.origin};
    table_erase(id);
    r = FreeResult::kReleased;
  } else {
    b.state = BlockState::kPending;
    b.fence = 0;
    list_push_back(p.pending_head, p.pending_tail, id);
    p.c.cached += b.size;
    p.unfenced = true;
    n = enforce_budget(p, victims);
  }
  p.lock.unlock();
  release_victims(victims, n);
  return r;
}

}  // namespace

// ---- Finding pools ---------------------------------------------------------------------------

uint16_t pool_for_context(Context ctx, bool host) noexcept {
  size_t n = g_num_pools.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    Pool& p = g_pools[i];
    if (p.ctx.load(std::memory_order_acquire) == ctx && p.host == host) {
      return static_cast<uint16_t>(i);
    }
  }
  LockGuard guard(g_registry_lock);
  n = g_num_pools.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    Pool& p = g_pools[i];
    if (p.ctx.load(std::memory_order_relaxed) == ctx && p.host == host) {
      return static_cast<uint16_t>(i);
    }
  }
  // A pool without a context was dropped (pool_drop_context): reuse it, so programs that
  // create and destroy contexts in a loop do not run out of pools.
  for (size_t i = 0; i < n; ++i) {
    Pool& p = g_pools[i];
    if (p.host == host && p.ctx.load(std::memory_order_relaxed) == nullptr) {
      pool_learn_context(static_cast<uint16_t>(i), ctx);
      return static_cast<uint16_t>(i);
    }
  }
  return create_pool(host, ctx);
}

namespace {
void pool_learn_context(uint16_t id, Context ctx) noexcept {
  Pool& p = pool_ref(id);
  if (ctx == nullptr || p.ctx.load(std::memory_order_acquire) == ctx) return;
  const cuda_api::Driver* d = cuda_api::driver();
  int dev = -1;  // Pre: ctx is current (the callers allocate in it)
  if (d != nullptr) d->ctx_get_device(&dev);
  LockGuard guard(p.lock);
  if (p.ctx.load(std::memory_order_relaxed) != nullptr) return;
  p.device = dev;
  p.budget = budget_for(dev, p.host);
  p.ctx.store(ctx, std::memory_order_release);
}
}  // namespace

int pool_device(uint16_t id) noexcept { return pool_ref(id).device; }

// ---- Allocation and free ---------------------------------------------------------------------

namespace {
// Pre: p.lock held. A ready block for a request of `rounded` bytes (Note [Device layouts]).
uint32_t find_ready(Pool& p, size_t rounded, unsigned host_flags) noexcept {
  size_t limit = near_fit_limit(rounded);
  unsigned first = bucket_of(rounded);
  unsigned last = rounded <= kSmallLimit ? first : bucket_of(limit);
  for (unsigned bucket = first; bucket <= last && bucket < kNumBuckets; ++bucket) {
    for (uint32_t bid = p.buckets[bucket]; bid != kNoBlock; bid = table_block(bid).bnext) {
      Block& b = table_block(bid);
      if (b.host_flags == host_flags && b.size >= rounded && b.size <= limit) return bid;
    }
  }
  return kNoBlock;
}
}  // namespace

uint32_t pool_take(uint16_t id, size_t rounded, unsigned host_flags) noexcept {
  Pool& p = pool_ref(id);
  LockGuard guard(p.lock);
  for (int attempt = 0; attempt < 2; ++attempt) {
    uint32_t bid = find_ready(p, rounded, host_flags);
    if (bid != kNoBlock) {
      Block& b = table_block(bid);
      bucket_remove(p, bid);
      list_remove(p.ready_head, p.ready_tail, bid);
      b.state = BlockState::kLive;
      b.refcount = 1;
      p.c.cached -= b.size;
      p.c.live += b.size;
      ++p.c.hits;
      return bid;
    }
    // Nothing ready: fence the recent frees and collect the ones whose work has finished.
    if (attempt == 1 || p.pending_head == kNoBlock) break;
    const cuda_api::Driver* d = cuda_api::driver();
    Context ctx = p.ctx.load(std::memory_order_relaxed);
    if (d == nullptr || ctx == nullptr) break;
    FenceWindow window;  // closed during a capture (Note [Capture])
    if (!window.open()) break;
    ContextScope scope(d, ctx);
    if (!scope.ok()) break;
    record_fence(p, d);
    poll(p, d);
  }
  return kNoBlock;
}

namespace {
// The block at addr is a record of memory CUDA has already freed (the address came back from a
// real allocation): unlink it from its pool and forget it, freeing nothing.
void forget_stale(uint64_t addr) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return;
  Block& b = table_block(id);
  switch (b.state) {
    case BlockState::kPending:
      list_remove(p->pending_head, p->pending_tail, id);
      p->c.cached -= b.size;
      break;
    case BlockState::kReady:
      list_remove(p->ready_head, p->ready_tail, id);
      bucket_remove(*p, id);
      p->c.cached -= b.size;
      break;
    case BlockState::kLive:
      p->c.live -= b.size;
      break;
    case BlockState::kFree:
      break;
  }
  p->c.reserved -= b.size;
  table_erase(id);
  p->lock.unlock();
}
}  // namespace

bool pool_add_live(uint16_t id, uint64_t addr, size_t rounded, Origin origin,
                   unsigned host_flags) noexcept {
  Pool& p = pool_ref(id);
  if (table_find(addr) != kNoBlock) forget_stale(addr);
  uint32_t bid = table_insert(addr);
  LockGuard guard(p.lock);
  ++p.c.misses;
  if (bid == kNoBlock) return false;
  Block& b = table_block(bid);
  b.size = rounded;
  b.refcount = 1;
  b.host_flags = host_flags;
  b.pool = id;
  b.bucket = static_cast<uint16_t>(bucket_of(rounded));
  b.origin = origin;
  b.state = BlockState::kLive;
  p.c.live += rounded;
  p.c.reserved += rounded;
  return true;
}

FreeResult pool_free(uint64_t addr, bool host) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return FreeResult::kNotOurs;
  if (p->host != host) {
    p->lock.unlock();
    return FreeResult::kNotOurs;
  }
  return free_locked(*p, id);
}

FreeResult pool_release_any(uint64_t addr) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return FreeResult::kNotOurs;
  return free_locked(*p, id);
}

// ---- Out of memory and clearing --------------------------------------------------------------

size_t pool_trim(uint16_t id) noexcept {
  Pool& p = pool_ref(id);
  size_t freed = 0;
  for (;;) {
    Victim victims[kMaxVictims];
    size_t n;
    {
      LockGuard guard(p.lock);
      const cuda_api::Driver* d = cuda_api::driver();
      Context ctx = p.ctx.load(std::memory_order_relaxed);
      FenceWindow window;
      if (d != nullptr && ctx != nullptr && window.open()) {
        ContextScope scope(d, ctx);
        if (scope.ok()) {
          record_fence(p, d);
          poll(p, d);
        }
      }
      uint64_t before = p.c.cached;
      n = evict_ready(p, 0, victims, 0, kMaxVictims);
      freed += before - p.c.cached;
    }
    release_victims(victims, n);
    if (n < kMaxVictims) return freed;
  }
}

size_t pool_clear_device(int device) noexcept {
  FenceWindow window;  // Note [Capture]: nothing is synchronised or freed during a capture
  if (!window.open()) return 0;
  size_t freed = 0;
  size_t np = g_num_pools.load(std::memory_order_acquire);
  const cuda_api::Driver* d = cuda_api::driver();
  for (size_t i = 0; i < np; ++i) {
    Pool& p = g_pools[i];
    if (device >= 0 && p.device != device) continue;
    for (;;) {
      Victim victims[kMaxVictims];
      size_t n;
      {
        LockGuard guard(p.lock);
        Context ctx = p.ctx.load(std::memory_order_relaxed);
        if (d != nullptr && ctx != nullptr) {
          ContextScope scope(d, ctx);
          if (scope.ok()) sync_all(p, d);
        }
        uint64_t before = p.c.cached;
        n = evict_ready(p, 0, victims, 0, kMaxVictims);
        freed += before - p.c.cached;
      }
      release_victims(victims, n);
      if (n < kMaxVictims) break;
    }
  }
  return freed;
}

void pool_count_oom_retry(uint16_t id) noexcept {
  Pool& p = pool_ref(id);
  LockGuard guard(p.lock);
  ++p.c.oom_retries;
}

namespace {
// Pre: p.lock held. The context is gone (reset or destroyed) and took its blocks and events with
// it: forget them, free nothing.
void drop_pool_locked(Pool& p, size_t index) noexcept {
  uint32_t limit = table_limit();
  for (uint32_t id = 1; id < limit; ++id) {
    Block& b = table_block(id);
    if (b.state != BlockState::kFree && b.pool == index) table_erase(id);
  }
  for (uint32_t& h : p.buckets) h = kNoBlock;
  p.ready_head = p.ready_tail = p.pending_head = p.pending_tail = kNoBlock;
  p.done_fence = p.next_fence - 1;
  for (Fence& f : p.fences) f.n = 0;
  p.n_events = 0;
  p.unfenced = false;
  p.c.reserved = p.c.cached = p.c.live = 0;
  p.ctx.store(nullptr, std::memory_order_release);
}
}  // namespace

void pool_drop_device(int device) noexcept {
  size_t np = g_num_pools.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    Pool& p = g_pools[i];
    if (p.device != device) continue;
    LockGuard guard(p.lock);
    drop_pool_locked(p, i);
  }
}

void pool_drop_context(Context ctx) noexcept {
  if (ctx == nullptr) return;
  size_t np = g_num_pools.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    Pool& p = g_pools[i];
    if (p.ctx.load(std::memory_order_acquire) != ctx) continue;
    LockGuard guard(p.lock);
    if (p.ctx.load(std::memory_order_relaxed) == ctx) drop_pool_locked(p, i);
  }
}

// ---- Misc ------------------------------------------------------------------------------------

int pool_retain(uint64_t addr) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return EINVAL;
  Block& b = table_block(id);
  int r = EINVAL;
  if (b.state == BlockState::kLive) {
    ++b.refcount;
    r = 0;
  }
  p->lock.unlock();
  return r;
}

void pool_mark_ipc(uint64_t addr) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return;
  table_block(id).ipc = true;
  p->lock.unlock();
}

bool pool_owns_live(uint64_t addr) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return false;
  bool live = table_block(id).state == BlockState::kLive;
  p->lock.unlock();
  return live;
}

uint64_t pool_cached_device_bytes(int device) noexcept {
  uint64_t total = 0;
  size_t np = g_num_pools.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    Pool& p = g_pools[i];
    if (p.host || p.device != device) continue;
    LockGuard guard(p.lock);
    total += p.c.cached;
  }
  return total;
}

namespace {
void add_counters(PoolCounters* into, const PoolCounters& c) noexcept {
  into->reserved += c.reserved;
  into->cached += c.cached;
  into->live += c.live;
  into->hits += c.hits;
  into->misses += c.misses;
  into->syncs_forced += c.syncs_forced;
  into->oom_retries += c.oom_retries;
  into->evictions += c.evictions;
}
}  // namespace

void pool_counters(int device, bool host, PoolCounters* out) noexcept {
  *out = PoolCounters{};
  size_t np = g_num_pools.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    Pool& p = g_pools[i];
    if (p.host != host || (device >= 0 && p.device != device)) continue;
    LockGuard guard(p.lock);
    add_counters(out, p.c);
  }
}

size_t pool_reports(DeviceReport* out, size_t cap) noexcept {
  size_t n = 0;
  size_t np = g_num_pools.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    Pool& p = g_pools[i];
    if (p.lock.try_lock()) {
      p.reported_device = p.device;
      p.reported_budget = p.budget;
      p.reported = p.c;
      p.lock.unlock();
    }
    // reported_device is -1 until a report found the pool's device known and its lock free.
    if (p.reported_device < 0) continue;
    size_t r = 0;
    while (r < n && (out[r].device != p.reported_device || out[r].host != p.host)) ++r;
    if (r == n) {
      if (n == cap) continue;
      out[n++] = DeviceReport{p.reported_device, p.host, 0, PoolCounters{}};
    }
    out[r].budget += p.reported_budget;
    add_counters(&out[r].c, p.reported);
  }
  return n;
}

}  // namespace cachealloc::cuda
