// stream_registry.h - the streams an older fence must cover, and whether a graph capture is under
// way (with the gate that keeps fence work and capture starts apart).
//
// Data structures: two fixed tables. Non-blocking streams (created with CU_STREAM_NON_BLOCKING)
// with the context they belong to, fed by the cuStreamCreate* / cuStreamDestroy_v2 wrappers and
// purged when their context goes; and the streams currently capturing, fed by the
// cuStreamBeginCapture_v2 / cuStreamEndCapture wrappers, with an atomic count read on every
// allocation.
//
// Why only non-blocking streams: see Note [Which streams a fence covers] in device_pool.cpp (only
// drivers without cuCtxRecordEvent need them).
//
// Note [Capture gate]
// In the global capture mode, an event query, a synchronisation or cuCtxRecordEvent made by *any*
// thread while a capture is under way invalidates it. Checking capture_active() before such work
// is not enough: another thread may begin a capture between the check and the call. So fence work
// runs inside a FenceWindow (one atomic increment of the in-flight count, then the capture check),
// and the capture-begin wrapper first raises the capture count and then waits for the in-flight
// count to drain before it calls the real begin (PyTorch guards the same race with
// `pending_event_queries`). Both sides use sequentially consistent operations, so at least one of
// them sees the other: either the window stays closed or the capture waits.
//
// SYNCHRONIZATION: each table has its own lock; capture_active() is one relaxed atomic load.
// Lock order: a pool's lock -> the stream table lock (record_fence records under both). The
// stream-destroy wrapper holds the stream table lock across the real destroy, so no event is ever
// recorded on a stream being destroyed.
#pragma once

#include <cstddef>

#include "platform/cuda_api.h"

namespace cachealloc::cuda {

void note_stream_created(cuda_api::Stream s, unsigned flags) noexcept;
// Pre: StreamsLock held (the destroy wrapper holds it across the real destroy).
void note_stream_destroyed_locked(cuda_api::Stream s) noexcept;
// Forgets every stream of ctx (its context was destroyed or reset: the streams went with it).
void forget_streams_of(cuda_api::Context ctx) noexcept;

class StreamsLock {
 public:
  StreamsLock() noexcept;
  ~StreamsLock();
  StreamsLock(const StreamsLock&) = delete;
  StreamsLock& operator=(const StreamsLock&) = delete;
};
// Pre: StreamsLock held. Copies up to `max` non-blocking streams of `ctx` into `out`. Returns how
// many exist (may exceed `max`; max + 1 when the registry itself overflowed).
size_t streams_of_locked(cuda_api::Context ctx, cuda_api::Stream* out, size_t max) noexcept;

// Capture begin, in three steps around the real call (Note [Capture gate]).
void capture_enter() noexcept;                      // before: counts the capture, drains fences
void capture_started(cuda_api::Stream s) noexcept;  // after a successful begin
void capture_aborted() noexcept;                    // after a failed begin
void note_capture_end(cuda_api::Stream s) noexcept;
// True while any stream of the process is capturing a graph (or is about to). Note [Capture]:
// then no event is recorded or queried and no memory is really freed by the cache.
bool capture_active() noexcept;

// Fence work (event record/query, synchronisation, real frees of cached blocks) happens only while
// a window is open; a window does not open during a capture. Never nest two on one thread.
class FenceWindow {
 public:
  FenceWindow() noexcept;
  ~FenceWindow();
  bool open() const noexcept { return open_; }
  FenceWindow(const FenceWindow&) = delete;
  FenceWindow& operator=(const FenceWindow&) = delete;

 private:
  bool open_;
};

}  // namespace cachealloc::cuda
