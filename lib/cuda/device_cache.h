// device_cache.h - the device analogue of Heap: every pool of a process's CUDA contexts, over an
// injected CUDA driver and runtime.
//
// A DeviceCache owns its pools (one per context and kind: device or pinned host memory), the
// block table (address -> block), and the stream registry (captures, the capture gate).
// It talks to CUDA only through the tables its sources return: cuda_api::driver()/runtime() for
// the process-wide cache (process_cache()), a fake device's tables in the unit tests
// (test/fakes/fake_cuda_device.h). Real allocation is the caller's (cuda_front.cpp): the cache
// hands out ready blocks, registers new ones, caches freed ones and says which to free for real.
//
// Who may call: cuda_front.cpp and driver_hooks.cpp (process_cache()), the statistics publisher
// (reports), tests. SYNCHRONIZATION: each pool has its own lock (device_pool.h); the pool table
// is append-only, guarded by registry_lock_ for creation and read through num_pools_ (acquire).
// Real frees (which may take milliseconds) run with no lock held; event records, queries and the
// fallback synchronisation run under the pool lock, inside a FenceWindow.
// Lock order: a pool's lock -> the block table's lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "cuda/block_table.h"
#include "cuda/device_pool.h"
#include "cuda/stream_registry.h"
#include "platform/cuda_api.h"
#include "platform/spin_lock.h"

namespace cachealloc::cuda {

enum class FreeResult { kNotOurs, kDoubleFree, kStillShared, kCached, kReleased };

// One (device, kind) row for the statistics segment: the pools of that device and kind summed.
struct DeviceReport {
  int device;
  bool host;
  uint64_t budget;  // the sum of those pools' budgets
  PoolCounters c;
};

class DeviceCache {
 public:
  using DriverSource = const cuda_api::Driver* (*)() noexcept;
  // The runtime serving a calling object (Note [Runtime per caller] in cuda_api.h), and the
  // runtime of an index that gave.
  using RuntimeFor = const cuda_api::Runtime* (*)(const void* caller, uint8_t* index) noexcept;
  using RuntimeAt = const cuda_api::Runtime* (*)(uint8_t index) noexcept;
  static constexpr size_t kMaxPools = 64;

  // Over the real CUDA entry points (cuda_api.h). All zero, so that the process-wide cache is in
  // .bss and a program that never calls CUDA holds none of its 68 KiB (Note [Zero until init],
  // core/heap.h); function pointers here would be relocations, written by ld.so in every process.
  constexpr DeviceCache() noexcept = default;
  // Over injected entry points (tests).
  constexpr DeviceCache(DriverSource driver, RuntimeFor runtime_for, RuntimeAt runtime_at) noexcept
      : driver_source_(driver), runtime_for_(runtime_for), runtime_at_(runtime_at) {}
  DeviceCache(const DeviceCache&) = delete;
  DeviceCache& operator=(const DeviceCache&) = delete;

  // The CUDA tables (nullptr while the program has no driver / no shared runtime).
  const cuda_api::Driver* driver() const noexcept {
    return driver_source_ != nullptr ? driver_source_() : cuda_api::driver();
  }
  const cuda_api::Runtime* runtime_for(const void* caller, uint8_t* index) const noexcept {
    return runtime_for_ != nullptr ? runtime_for_(caller, index)
                                   : cuda_api::runtime_for(caller, index);
  }
  const cuda_api::Runtime* runtime_at(uint8_t index) const noexcept {
    return runtime_at_ != nullptr ? runtime_at_(index) : cuda_api::runtime_at(index);
  }
  StreamRegistry& streams() noexcept { return streams_; }

  // ---- Pools --------------------------------------------------------------------------------
  // The pool of `ctx` (current on this thread) and kind, created on first use, or kNoPool. One
  // pool per context and kind serves the runtime and the driver alike (one budget per context).
  uint16_t pool_for_context(cuda_api::Context ctx, bool host) noexcept;
  int device_of(uint16_t pool) noexcept;

  // ---- Allocation and free --------------------------------------------------------------------
  // A ready block for a request of `request` bytes (`rounded`: its layout) made live, or kNoBlock;
  // *addr and *size describe it. Records a fence and polls when nothing is ready and blocks are
  // pending (never during a capture: then only blocks already ready are handed out).
  uint32_t take(uint16_t pool, size_t request, size_t rounded, unsigned host_flags, uint64_t* addr,
                size_t* size) noexcept;
  // Registers a block of `size` bytes just allocated for real (a miss). A record already at that
  // address belongs to memory freed behind our back (a context reset we did not see): it is
  // forgotten first. False when the table is full: the block is then handed out untracked, and
  // its free passes through.
  bool add_live(uint16_t pool, uint64_t addr, size_t size, Origin origin, unsigned host_flags,
                uint8_t runtime = 0) noexcept;
  // Drops one owner of the block at addr. `host` says which kind the caller's API frees; a block
  // of the other kind is kNotOurs (the real function then reports the misuse as CUDA does).
  FreeResult free(uint64_t addr, bool host) noexcept;
  // The same for either kind (ca_cuda_release).
  FreeResult release_any(uint64_t addr) noexcept;

  // ---- Out of memory, clearing, contexts ending ---------------------------------------------------
  // Reclaims completed frees and really frees every ready block of the pool. Returns bytes.
  size_t trim(uint16_t pool) noexcept;
  // Synchronises and really frees everything cached in the device's pools (device < 0: every
  // pool). Returns bytes; 0 during a capture (Note [Capture]).
  size_t clear_device(int device) noexcept;
  void count_oom_retry(uint16_t pool) noexcept;
  // cudaDeviceReset / cuDevicePrimaryCtxReset: the device's primary context, asked *before* the
  // reset (nullptr when it is not active); after the reset, drop_context(it) forgets its blocks
  // (the reset freed them). Other contexts of the device are untouched.
  cuda_api::Context active_primary(int device) noexcept;
  // cuCtxDestroy, last primary release: the same for the pools (and streams) of that context.
  void drop_context(cuda_api::Context ctx) noexcept;

  // ---- Misc ---------------------------------------------------------------------------------------
  int retain(uint64_t addr) noexcept;  // 0, or EINVAL when addr is not a live block
  void mark_ipc(uint64_t addr) noexcept;
  bool owns_live(uint64_t addr) noexcept;
  // Every pool's live_peak starts again from its live bytes (ca_reset_peak).
  void reset_peaks() noexcept;
  // Bytes cached for device `device` (device blocks only), for cudaMemGetInfo.
  uint64_t cached_device_bytes(int device) noexcept;
  // Sums the counters of the pools of `device` (< 0: all) and kind.
  void counters(int device, bool host, PoolCounters* out) noexcept;
  // Fills up to `cap` reports, one per (device, kind) with a known device, in pool order; returns
  // how many. Takes no lock (Note [Pool snapshots]): safe from a thread inside a pool operation.
  size_t reports(DeviceReport* out, size_t cap) const noexcept;

  // Tests: gives every mapping back. Nothing may use the cache afterwards.
  void unmap_for_testing() noexcept;

  // fork (Note [Fork] in core/fork.cpp, slot ForkLayer::kCuda): every lock of the cache, in the
  // lock order (registry -> pools in index order -> block table -> captures).
  void lock_all() noexcept;
  void unlock_all() noexcept;
  void reset_locks_after_fork() noexcept;

 private:
  bool ensure_pools() noexcept;
  uint16_t create_pool(bool host, cuda_api::Context ctx) noexcept;
  void learn_context(uint16_t id, cuda_api::Context ctx) noexcept;
  uint64_t budget_for(int device, bool host) noexcept;
  PoolEnv env() noexcept { return PoolEnv{driver(), blocks_}; }
  // Finds the live (or cached) block at addr and locks its pool; nullptr (nothing locked) if none.
  Pool* lock_block(uint64_t addr, uint32_t* id_out) noexcept;
  void unlock(Pool& p) noexcept;
  FreeResult free_locked(Pool& p, uint32_t id) noexcept;
  size_t empty_pool(Pool& p, bool synchronise) noexcept;
  void forget_stale(uint64_t addr) noexcept;
  void release_victims(const Victim* v, size_t n) noexcept;

  DriverSource driver_source_ = nullptr;  // nullptr: the real one
  RuntimeFor runtime_for_ = nullptr;
  RuntimeAt runtime_at_ = nullptr;
  SpinLock registry_lock_;
  Pool* pools_ = nullptr;
  std::atomic<size_t> num_pools_{0};
  BlockTable blocks_;
  StreamRegistry streams_;
};

// The process-wide cache, over the real CUDA entry points (cuda_api.h).
DeviceCache& process_cache() noexcept;

}  // namespace cachealloc::cuda
