// stream_registry.h - whether a graph capture is under way, with the gate that keeps fence work
// and capture starts apart. One per DeviceCache.
//
// Data structures: one fixed table, the streams currently capturing (with the context current on
// the thread that began each), fed by the cuStreamBeginCapture* / cuStreamEndCapture hooks, with
// an atomic count read on every allocation. (It once also tracked non-blocking streams for the
// fence of drivers before CUDA 12.5; Note [Older drivers] in fence.cpp says why it does not.)
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
// SYNCHRONIZATION: the table has its own lock; capture_active() is one relaxed atomic load.
#pragma once

#include <atomic>
#include <cstddef>

#include "platform/cuda_api.h"
#include "platform/spin_lock.h"

namespace cachealloc::cuda {

class StreamRegistry {
 public:
  static constexpr size_t kMaxCaptures = 256;

  constexpr StreamRegistry() noexcept = default;
  StreamRegistry(const StreamRegistry&) = delete;
  StreamRegistry& operator=(const StreamRegistry&) = delete;

  // Ends the captures begun in ctx (its context was destroyed or reset: its streams went with it,
  // and their captures too: Note [Captures of a dead context]).
  void forget_context(cuda_api::Context ctx) noexcept;

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
  SpinLock& capture_lock_for_fork() noexcept { return capture_lock_; }
  // The fork child of a multi-threaded parent: locks re-created, no capture or fence work left.
  void reset_after_fork() noexcept;

 private:
  friend class FenceWindow;

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
