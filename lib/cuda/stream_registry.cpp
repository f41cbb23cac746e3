// stream_registry.cpp - see stream_registry.h.
#include "cuda/stream_registry.h"

#include <atomic>

#include "util/spin_lock.h"

namespace cachealloc::cuda {
namespace {

constexpr size_t kMaxStreams = 1024;
constexpr size_t kMaxCaptures = 256;

struct StreamEntry {
  cuda_api::Stream stream;
  cuda_api::Context ctx;
};

constinit SpinLock g_stream_lock;
constinit StreamEntry g_streams[kMaxStreams] = {};
constinit size_t g_num_streams = 0;
constinit bool g_stream_overflow = false;  // sticky: fences then fall back to a device sync

constinit SpinLock g_capture_lock;
constinit cuda_api::Stream g_capturing[kMaxCaptures] = {};
constinit size_t g_num_capturing = 0;
constinit std::atomic<long> g_capture_count{0};

}  // namespace

void note_stream_created(cuda_api::Stream s, unsigned flags) noexcept {
  if ((flags & cuda_api::kStreamNonBlocking) == 0 || s == nullptr) return;
  cuda_api::Context ctx = nullptr;
  if (const cuda_api::Driver* d = cuda_api::driver()) d->ctx_get_current(&ctx);
  LockGuard guard(g_stream_lock);
  if (g_num_streams == kMaxStreams) {
    g_stream_overflow = true;
    return;
  }
  g_streams[g_num_streams++] = {s, ctx};
}

void note_stream_destroyed(cuda_api::Stream s) noexcept {
  // Events already recorded on a destroyed stream stay valid: the fences that hold them complete
  // when the stream's work does.
  LockGuard guard(g_stream_lock);
  for (size_t i = 0; i < g_num_streams; ++i) {
    if (g_streams[i].stream == s) {
      g_streams[i] = g_streams[--g_num_streams];
      return;
    }
  }
}

size_t streams_of(cuda_api::Context ctx, cuda_api::Stream* out, size_t max) noexcept {
  LockGuard guard(g_stream_lock);
  if (g_stream_overflow) return max + 1;
  size_t n = 0;
  for (size_t i = 0; i < g_num_streams; ++i) {
    if (g_streams[i].ctx != ctx) continue;
    if (n < max) out[n] = g_streams[i].stream;
    ++n;
  }
  return n;
}

void note_capture_begin(cuda_api::Stream s) noexcept {
  LockGuard guard(g_capture_lock);
  if (g_num_capturing < kMaxCaptures) g_capturing[g_num_capturing++] = s;
  // Past the table we still count the capture, so the cache stays quiet; it may then stay quiet
  // for longer than needed (a missed end), never shorter.
  g_capture_count.fetch_add(1, std::memory_order_relaxed);
}

void note_capture_end(cuda_api::Stream s) noexcept {
  LockGuard guard(g_capture_lock);
  for (size_t i = 0; i < g_num_capturing; ++i) {
    if (g_capturing[i] == s) {
      g_capturing[i] = g_capturing[--g_num_capturing];
      g_capture_count.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
  }
}

bool capture_active() noexcept { return g_capture_count.load(std::memory_order_relaxed) > 0; }

}  // namespace cachealloc::cuda
