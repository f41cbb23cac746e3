// device_cache.cpp - see device_cache.h.
#include "cuda/device_cache.h"

#include <cerrno>

#include "config/options.h"
#include "core/fork.h"
#include "cuda/fence.h"
#include "platform/os.h"

namespace cachealloc::cuda {

// ---- Pools ------------------------------------------------------------------------------------

bool DeviceCache::ensure_pools() noexcept {
  if (pools_ != nullptr) return true;
  size_t page = os::page_size();
  size_t bytes = (sizeof(Pool) * kMaxPools + page - 1) & ~(page - 1);
  void* m = os::map_aligned(bytes, page);  // zeroed: every pool starts unused
  if (m == nullptr) return false;
  pools_ = static_cast<Pool*>(m);
  return true;
}

// Note [Default budget] (docs/cuda.md): a quarter of the device's memory for device pools.
// Note [Pinned budget]: pinned host memory is page-locked RAM, not device memory, so its pools
// are bounded by host RAM: CACHEALLOC_CUDA_CACHE_BYTES when set, else 1/16 of physical memory.
uint64_t DeviceCache::budget_for(int device, bool host) noexcept {
  uint64_t b = options().cuda_cache_bytes;
  if (b != 0) return b;
  if (host) {
    uint64_t ram = os::physical_memory();
    return ram != 0 ? ram / 16 : uint64_t{1} << 30;
  }
  size_t total = 0;
  const cuda_api::Driver* d = driver();
  if (d != nullptr && device >= 0 && d->device_total_mem(&total, device) == cuda_api::kCuSuccess &&
      total != 0) {
    return total / 4;
  }
  return uint64_t{1} << 30;
}

uint16_t DeviceCache::create_pool(bool host, cuda_api::Context ctx) noexcept {
  // Pre: registry_lock_ held.
  if (!ensure_pools()) return kNoPool;
  size_t n = num_pools_.load(std::memory_order_relaxed);
  if (n == kMaxPools) return kNoPool;
  Pool& p = pools_[n];
  pool_init(p, host);
  p.budget = budget_for(-1, host);
  num_pools_.store(n + 1, std::memory_order_release);
  learn_context(static_cast<uint16_t>(n), ctx);
  return static_cast<uint16_t>(n);
}

// Pre: ctx is current on this thread (the callers allocate in it).
void DeviceCache::learn_context(uint16_t id, cuda_api::Context ctx) noexcept {
  Pool& p = pools_[id];
  const cuda_api::Driver* d = driver();
  int dev = -1;
  if (d != nullptr) d->ctx_get_device(&dev);
  PoolGuard guard(p);
  p.device.store(dev, std::memory_order_relaxed);
  p.budget = budget_for(dev, p.host);
  p.ctx.store(ctx, std::memory_order_release);
}

uint16_t DeviceCache::pool_for_context(cuda_api::Context ctx, bool host) noexcept {
  if (ctx == nullptr) return kNoPool;
  size_t n = num_pools_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    Pool& p = pools_[i];
    if (p.ctx.load(std::memory_order_acquire) == ctx && p.host == host) {
      return static_cast<uint16_t>(i);
    }
  }
  LockGuard guard(registry_lock_);
  n = num_pools_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    Pool& p = pools_[i];
    if (p.ctx.load(std::memory_order_relaxed) == ctx && p.host == host) {
      return static_cast<uint16_t>(i);
    }
  }
  // A pool without a context was dropped (drop_context): reuse it, so programs that create and
  // destroy contexts in a loop do not run out of pools.
  for (size_t i = 0; i < n; ++i) {
    Pool& p = pools_[i];
    if (p.host == host && p.ctx.load(std::memory_order_relaxed) == nullptr) {
      learn_context(static_cast<uint16_t>(i), ctx);
      return static_cast<uint16_t>(i);
    }
  }
  return create_pool(host, ctx);
}

int DeviceCache::device_of(uint16_t id) noexcept {
  return pools_[id].device.load(std::memory_order_relaxed);
}

// ---- Allocation and free ----------------------------------------------------------------------

uint32_t DeviceCache::take(uint16_t id, size_t request, size_t rounded, unsigned host_flags,
                           uint64_t* addr, size_t* size) noexcept {
  Pool& p = pools_[id];
  PoolEnv e = env();
  PoolGuard guard(p);
  uint32_t bid = pool_take_ready(p, blocks_, request, rounded, host_flags);
  if (bid == kNoBlock && !p.pending.empty() && e.driver != nullptr) {
    // Nothing ready: fence the recent frees and collect the ones whose work has finished.
    FenceWindow window(streams_);  // closed during a capture (Note [Capture])
    ContextScope scope(window.open() ? e.driver : nullptr, p.ctx.load(std::memory_order_relaxed));
    if (scope.ok()) {
      fence_collect(p, e);
      bid = pool_take_ready(p, blocks_, request, rounded, host_flags);
    }
  }
  if (bid != kNoBlock) {
    *addr = blocks_.block(bid).addr;
    *size = blocks_.block(bid).size;
  }
  return bid;
}

void DeviceCache::forget_stale(uint64_t addr) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return;
  pool_forget_block(*p, blocks_, id);
  unlock(*p);
}

bool DeviceCache::add_live(uint16_t id, uint64_t addr, size_t size, Origin origin,
                           unsigned host_flags, uint8_t runtime) noexcept {
  Pool& p = pools_[id];
  if (blocks_.find(addr) != kNoBlock) forget_stale(addr);
  uint32_t bid = blocks_.insert(addr);
  PoolGuard guard(p);
  ++p.c.misses;
  if (bid == kNoBlock) return false;
  Block& b = blocks_.block(bid);
  b.size = size;
  b.refcount = 1;
  b.host_flags = host_flags;
  b.pool = id;
  b.bucket = static_cast<uint16_t>(bucket_of(size));
  b.origin = origin;
  b.runtime = runtime;
  b.state = BlockState::kLive;
  p.c.live += size;
  if (p.c.live > p.c.live_peak) p.c.live_peak = p.c.live;
  p.c.reserved += size;
  return true;
}

Pool* DeviceCache::lock_block(uint64_t addr, uint32_t* id_out) noexcept {
  uint32_t id = blocks_.find(addr);
  if (id == kNoBlock) return nullptr;
  Block& b = blocks_.block(id);
  uint16_t pid = b.pool;
  if (pid >= num_pools_.load(std::memory_order_acquire)) return nullptr;
  Pool& p = pools_[pid];
  p.lock.lock();
  if (b.addr != addr || b.state == BlockState::kFree || b.pool != pid) {
    p.lock.unlock();
    return nullptr;
  }
  *id_out = id;
  return &p;
}

void DeviceCache::unlock(Pool& p) noexcept {
  pool_publish(p);
  p.lock.unlock();
}

FreeResult DeviceCache::free_locked(Pool& p, uint32_t id) noexcept {
  Block& b = blocks_.block(id);
  if (b.state != BlockState::kLive) {
    unlock(p);
    return FreeResult::kDoubleFree;
  }
  if (--b.refcount > 0) {
    unlock(p);
    return FreeResult::kStillShared;
  }
  // A window only when this free may really free something (an IPC block, the cache turned off,
  // or the budget passed): open before anything is chosen, closed after the frees (Note
  // [Capture]). A free within the budget touches no shared line of the gate.
  bool release = b.ipc || options().cuda == 0;
  FenceWindow window(streams_, release || p.c.cached + b.size > p.budget);
  Victim victims[kMaxVictims];
  size_t n = 0;
  FreeResult r = FreeResult::kCached;
  if (release && window.open()) {
    // Blocks exported through IPC may be mapped by another process: never reuse them. (During a
    // capture they wait in the pending list, and find_ready never hands them out.)
    victims[n++] = {b.addr, b.origin, b.runtime};
    pool_forget_block(p, blocks_, id);
    r = FreeResult::kReleased;
  } else {
    n = pool_cache_block(p, env(), id, victims, window.open());
  }
  unlock(p);
  release_victims(victims, n);
  return r;
}

FreeResult DeviceCache::free(uint64_t addr, bool host) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return FreeResult::kNotOurs;
  if (p->host != host) {
    unlock(*p);
    return FreeResult::kNotOurs;
  }
  return free_locked(*p, id);
}

FreeResult DeviceCache::release_any(uint64_t addr) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return FreeResult::kNotOurs;
  return free_locked(*p, id);
}

// The real free of each victim, with no lock held.
void DeviceCache::release_victims(const Victim* v, size_t n) noexcept {
  if (n == 0) return;
  const cuda_api::Driver* d = driver();
  for (size_t i = 0; i < n; ++i) {
    switch (v[i].origin) {
      case Origin::kRuntimeDevice:
      case Origin::kRuntimeHost: {
        const cuda_api::Runtime* rt = runtime_at(v[i].runtime);  // the one that allocated it
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

// ---- Out of memory and clearing -----------------------------------------------------------------

// Pre: an open FenceWindow (held across the real frees, Note [Capture]). Collects the completed
// frees (or, with `synchronise`, waits for all of them) and really frees every ready block.
size_t DeviceCache::empty_pool(Pool& p, bool synchronise) noexcept {
  size_t freed = 0;
  for (;;) {
    Victim victims[kMaxVictims];
    size_t n;
    {
      PoolEnv e = env();
      PoolGuard guard(p);
      ContextScope scope(e.driver, p.ctx.load(std::memory_order_relaxed));
      if (scope.ok()) {
        if (synchronise) {
          fence_sync_all(p, e);
        } else {
          fence_collect(p, e);
        }
      }
      uint64_t before = p.c.cached;
      n = pool_evict_ready(p, blocks_, 0, victims, 0, kMaxVictims);
      freed += before - p.c.cached;
    }
    release_victims(victims, n);
    if (n < kMaxVictims) return freed;
  }
}

size_t DeviceCache::trim(uint16_t id) noexcept {
  FenceWindow window(streams_);
  return window.open() ? empty_pool(pools_[id], false) : 0;
}

size_t DeviceCache::clear_device(int device) noexcept {
  FenceWindow window(streams_);  // Note [Capture]: nothing is synchronised or freed during one
  if (!window.open()) return 0;
  size_t freed = 0;
  size_t np = num_pools_.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    Pool& p = pools_[i];
    if (device >= 0 && p.device.load(std::memory_order_relaxed) != device) continue;
    freed += empty_pool(p, true);
  }
  return freed;
}

void DeviceCache::count_oom_retry(uint16_t id) noexcept {
  Pool& p = pools_[id];
  PoolGuard guard(p);
  ++p.c.oom_retries;
}

cuda_api::Context DeviceCache::active_primary(int device) noexcept {
  // Only an active context is retained (a retain would create an inactive one), and our own
  // reference is given back at once.
  const cuda_api::Driver* d = driver();
  unsigned flags = 0;
  int active = 0;
  cuda_api::Context ctx = nullptr;
  if (d == nullptr || d->primary_ctx_get_state(device, &flags, &active) != cuda_api::kCuSuccess ||
      active == 0 || d->primary_ctx_retain(&ctx, device) != cuda_api::kCuSuccess) {
    return nullptr;
  }
  d->primary_ctx_release(device);
  return ctx;
}

void DeviceCache::drop_context(cuda_api::Context ctx) noexcept {
  if (ctx == nullptr) return;
  size_t np = num_pools_.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    Pool& p = pools_[i];
    if (p.ctx.load(std::memory_order_acquire) != ctx) continue;
    PoolGuard guard(p);
    if (p.ctx.load(std::memory_order_relaxed) == ctx) {
      pool_drop(p, blocks_, static_cast<uint16_t>(i));
    }
  }
  streams_.forget_context(ctx);
}

// ---- Misc ---------------------------------------------------------------------------------------

int DeviceCache::retain(uint64_t addr) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return EINVAL;
  Block& b = blocks_.block(id);
  int r = EINVAL;
  if (b.state == BlockState::kLive) {
    ++b.refcount;
    r = 0;
  }
  unlock(*p);
  return r;
}

void DeviceCache::mark_ipc(uint64_t addr) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return;
  blocks_.block(id).ipc = true;
  unlock(*p);
}

bool DeviceCache::owns_live(uint64_t addr) noexcept {
  uint32_t id;
  Pool* p = lock_block(addr, &id);
  if (p == nullptr) return false;
  bool live = blocks_.block(id).state == BlockState::kLive;
  unlock(*p);
  return live;
}

void DeviceCache::reset_peaks() noexcept {
  size_t np = num_pools_.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    Pool& p = pools_[i];
    PoolGuard guard(p);
    p.c.live_peak = p.c.live;
  }
}

uint64_t DeviceCache::cached_device_bytes(int device) noexcept {
  uint64_t total = 0;
  size_t np = num_pools_.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    Pool& p = pools_[i];
    if (p.host || p.device.load(std::memory_order_relaxed) != device) continue;
    PoolGuard guard(p);
    total += p.c.cached;
  }
  return total;
}

namespace {
void add_counters(PoolCounters* into, const PoolCounters& c) noexcept {
  into->reserved += c.reserved;
  into->cached += c.cached;
  into->live += c.live;
  into->live_peak += c.live_peak;
  into->hits += c.hits;
  into->misses += c.misses;
  into->syncs_forced += c.syncs_forced;
  into->oom_retries += c.oom_retries;
  into->evictions += c.evictions;
}
}  // namespace

void DeviceCache::counters(int device, bool host, PoolCounters* out) noexcept {
  *out = PoolCounters{};
  size_t np = num_pools_.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    Pool& p = pools_[i];
    if (p.host != host) continue;
    PoolGuard guard(p);
    if (device >= 0 && p.device.load(std::memory_order_relaxed) != device) continue;
    add_counters(out, p.c);
  }
}

// Hot, as process_cache(): every stats publication asks (Note [Cold code last] in lib/meson.build).
[[gnu::hot]] size_t DeviceCache::reports(DeviceReport* out, size_t cap) const noexcept {
  size_t n = 0;
  size_t np = num_pools_.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) {
    const Pool& p = pools_[i];
    int device;
    uint64_t budget;
    PoolCounters c;
    if (!pool_read_snapshot(p, &device, &budget, &c) || device < 0) continue;
    size_t r = 0;
    while (r < n && (out[r].device != device || out[r].host != p.host)) ++r;
    if (r == n) {
      if (n == cap) continue;
      out[n++] = DeviceReport{device, p.host, 0, PoolCounters{}};
    }
    out[r].budget += budget;
    add_counters(&out[r].c, c);
  }
  return n;
}

void DeviceCache::unmap_for_testing() noexcept {
  if (pools_ != nullptr) {
    size_t page = os::page_size();
    os::unmap(pools_, (sizeof(Pool) * kMaxPools + page - 1) & ~(page - 1));
  }
  pools_ = nullptr;
  num_pools_.store(0, std::memory_order_relaxed);
  blocks_.unmap();
}

void DeviceCache::lock_all() noexcept {
  registry_lock_.lock();
  size_t np = num_pools_.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) pools_[i].lock.lock();
  blocks_.lock_for_fork().lock();
  streams_.capture_lock_for_fork().lock();
}

void DeviceCache::unlock_all() noexcept {
  streams_.capture_lock_for_fork().unlock();
  blocks_.lock_for_fork().unlock();
  size_t np = num_pools_.load(std::memory_order_acquire);
  for (size_t i = np; i-- > 0;) pools_[i].lock.unlock();
  registry_lock_.unlock();
}

void DeviceCache::reset_locks_after_fork() noexcept {
  streams_.reset_after_fork();
  blocks_.lock_for_fork().reset_after_fork();
  size_t np = num_pools_.load(std::memory_order_acquire);
  for (size_t i = 0; i < np; ++i) pools_[i].lock.reset_after_fork();
  registry_lock_.reset_after_fork();
}

namespace {
constinit DeviceCache g_process_cache;

void fork_prepare() noexcept { g_process_cache.lock_all(); }
void fork_parent() noexcept { g_process_cache.unlock_all(); }
// A child of a multi-threaded parent re-creates the locks prepare took. A single-threaded
// parent's child leaves them alone (a signal handler may have interrupted a pool operation).
// CUDA itself cannot be used in a child, but the child's statistics and frees still reach here.
void fork_child(bool locked) noexcept {
  if (locked) g_process_cache.reset_locks_after_fork();
}
constinit const ForkHooks kForkHooks{&fork_prepare, &fork_parent, &fork_child};
constinit std::atomic<bool> g_fork_hooks_set{false};
}  // namespace

[[gnu::hot]] DeviceCache& process_cache() noexcept {
  // The cache joins the fork sequence the first time it is used.
  if (!g_fork_hooks_set.load(std::memory_order_acquire) &&
      !g_fork_hooks_set.exchange(true, std::memory_order_acq_rel)) {
    set_fork_hooks(ForkLayer::kCuda, &kForkHooks);
  }
  return g_process_cache;
}

}  // namespace cachealloc::cuda
