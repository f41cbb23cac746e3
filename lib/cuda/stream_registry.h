// stream_registry.h - the streams a fence must cover, and whether a graph capture is under way.
//
// Data structures: two fixed tables. Non-blocking streams (created with CU_STREAM_NON_BLOCKING)
// with the context they belong to, fed by the cuStreamCreate* / cuStreamDestroy_v2 wrappers; and
// the streams currently capturing, fed by the cuStreamBeginCapture_v2 / cuStreamEndCapture
// wrappers, with an atomic count read on every allocation.
//
// Why only non-blocking streams: see Note [Which streams a fence covers] in device_pool.cpp.
//
// SYNCHRONIZATION: each table has its own lock; capture_active() is one relaxed atomic load.
#pragma once

#include <cstddef>

#include "platform/cuda_api.h"

namespace cachealloc::cuda {

void note_stream_created(cuda_api::Stream s, unsigned flags) noexcept;
void note_stream_destroyed(cuda_api::Stream s) noexcept;

// Copies up to `max` non-blocking streams of `ctx` into `out`. Returns how many exist (may exceed
// `max`, or be "too many" when the registry itself overflowed: then returns max + 1).
size_t streams_of(cuda_api::Context ctx, cuda_api::Stream* out, size_t max) noexcept;

void note_capture_begin(cuda_api::Stream s) noexcept;
void note_capture_end(cuda_api::Stream s) noexcept;
// True while any stream of the process is capturing a graph. Note [Capture]: then no event is
// recorded or queried and no memory is really allocated or freed by the cache.
bool capture_active() noexcept;

}  // namespace cachealloc::cuda
