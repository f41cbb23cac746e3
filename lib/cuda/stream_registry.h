// stream_registry.h - the streams an older fence must cover, and whether a graph capture is under
// way (with the gate that keeps fence work and capture starts apart). One per DeviceCache.
//
// Data structures: two fixed tables. Non-blocking streams (created with CU_STREAM_NON_BLOCKING)
// with the context they belong to, fed by the cuStreamCreate* / cuStreamDestroy_v2 hooks and
// purged when their context goes; and the streams currently capturing, fed by the
// cuStreamBeginCapture* / cuStreamEndCapture hooks, with an atomic count read on every
// allocation.
//
// Why only non-blocking streams: see Note [Which streams a fence covers] in fence.cpp (only
// drivers without cuCtxRecordEvent need them).
//
// Note [Capture gate]
// In the global capture mode, an event query, a synchronisation or cuCtxRecordEvent made by *any*
// thread while a capture is under way invalidates it. Checking capture_active() before such work
// is not enough: another thread may begin a capture between the check and the call. So fence work
// runs inside a FenceWindow (one atomic increment of the in-flight count, then the capture check),
// and the capture-begin hook first raises the capture count and then waits for the in-flight
// count to drain before it calls the real begin (PyTorch guards the same race with
// `pending_event_queries`). Both sides use sequentially consistent operations, so at least one of
// them sees the other: either the window stays closed or the capture waits.
//
// SYNCHRONIZATION: each table has its own lock; capture_active() is one relaxed atomic load.
// Lock order: a pool's lock -> the stream table lock (record_fence records under both). The
// stream-destroy hook holds the stream table lock across the real destroy, so no event is ever
// recorded on a stream being destroyed.
#pragma once

#include <atomic>
#include <cstddef>

#include "platform/cuda_api.h"
#include "platform/spin_lock.h"

namespace cachealloc::cuda {

class StreamRegistry {
 public:
  static constexpr size_t kMaxStreams = 4096;
  static constexpr size_t kMaxOverflowed = 64;
  static constexpr size_t kMaxCaptures = 256;

  constexpr StreamRegistry() noexcept = default;
  StreamRegistry(const StreamRegistry&) = delete;
  StreamRegistry& operator=(const StreamRegistry&) = delete;

  void note_created(cuda_api::Stream s, cuda_api::Context ctx, unsigned flags) noexcept;
  // Pre: the stream lock held (StreamsLock): the destroy hook holds it across the real destroy.
  void note_destroyed_locked(cuda_api::Stream s) noexcept;
  // Forgets every stream of ctx (its context was destroyed or reset: the streams went with it),
  // and ends the captures begun in it, which went too (Note [Captures of a dead context]).
  void forget_context(cuda_api::Context ctx) noexcept;
  // Pre: stream lock held. Copies up to `max` non-blocking streams of `ctx` into `out`. Returns
  // how many exist (may exceed `max`; max + 1 when the table lost some of that context's streams).
  size_t streams_of_locked(cuda_api::Context ctx, cuda_api::Stream* out, size_t max) noexcept;
  // Pre: stream lock held. How many streams (of any kind, any context) were destroyed so far: an
  // older fence that sees it change synchronises (Note [Destroyed streams] in fence.cpp).
  uint64_t destroyed_locked() const noexcept { return num_destroyed_; }

  // Capture begin, in three steps around the real call (Note [Capture gate]).
  void capture_enter() noexcept;                      // before: counts it, drains fence work
  // After a successful begin; ctx: the context current on the capturing thread.
  void capture_started(cuda_api::Stream s, cuda_api::Context ctx) noexcept;
  void capture_aborted() noexcept;                    // after a failed begin
  void capture_ended(cuda_api::Stream s) noexcept;
  // True while any stream of the process is capturing a graph (or is about to). Note [Capture]:
  // then no event is recorded or queried and no memory is really freed by the cache.
  bool capture_active() const noexcept {
    return capture_count_.load(std::memory_order_relaxed) > 0;
  }
  SpinLock& stream_lock_for_fork() noexcept { return stream_lock_; }
  SpinLock& capture_lock_for_fork() noexcept { return capture_lock_; }
  // The fork child of a multi-threaded parent: locks re-created, no capture or fence work left.
  void reset_after_fork() noexcept;

 private:
  friend class StreamsLock;
  friend class FenceWindow;
  struct Entry {
    cuda_api::Stream stream;
    cuda_api::Context ctx;
  };
  bool overflowed(cuda_api::Context ctx) const noexcept;

  SpinLock stream_lock_;
  Entry streams_[kMaxStreams] = {};
  size_t num_streams_ = 0;
  uint64_t num_destroyed_ = 0;
  // Contexts that had a stream the table could not hold: their older fences fall back to a device
  // synchronisation until the context goes. Past this table too, every context does (sticky).
  cuda_api::Context overflowed_[kMaxOverflowed] = {};
  size_t num_overflowed_ = 0;
  bool overflow_all_ = false;

  struct Capture {
    cuda_api::Stream stream;
    cuda_api::Context ctx;
  };
  void end_capture_locked(size_t i) noexcept;
  SpinLock capture_lock_;
  Capture capturing_[kMaxCaptures] = {};
  size_t num_capturing_ = 0;
  std::atomic<long> capture_count_{0};
  std::atomic<long> fence_ops_{0};  // open FenceWindows (Note [Capture gate])
};

class StreamsLock {
 public:
  explicit StreamsLock(StreamRegistry& r) noexcept : r_(r) { r_.stream_lock_.lock(); }
  ~StreamsLock() { r_.stream_lock_.unlock(); }
  StreamsLock(const StreamsLock&) = delete;
  StreamsLock& operator=(const StreamsLock&) = delete;

 private:
  StreamRegistry& r_;
};

// Fence work (event record/query, synchronisation, real frees of cached blocks) happens only while
// a window is open; a window does not open during a capture. Never nest two on one thread.
// `wanted` false: no window (and no atomic operation) at all, for callers that have no fence work
// to do this time (a cached free within the budget, the common case).
class FenceWindow {
 public:
  explicit FenceWindow(StreamRegistry& r, bool wanted = true) noexcept;
  ~FenceWindow();
  bool open() const noexcept { return open_; }
  FenceWindow(const FenceWindow&) = delete;
  FenceWindow& operator=(const FenceWindow&) = delete;

 private:
  StreamRegistry& r_;
  bool open_;
};

}  // namespace cachealloc::cuda
