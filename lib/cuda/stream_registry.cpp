// stream_registry.cpp - see stream_registry.h.
#include "cuda/stream_registry.h"

#include <atomic>

#include "util/spin_lock.h"

namespace cachealloc::cuda {
namespace {

constexpr size_t kMaxStreams = 4096;
constexpr size_t kMaxOverflowed = 64;
constexpr size_t kMaxCaptures = 256;

struct StreamEntry {
  cuda_api::Stream stream;
  cuda_api::Context ctx;
};

constinit SpinLock g_stream_lock;
constinit StreamEntry g_streams[kMaxStreams] = {};
constinit size_t g_num_streams = 0;
// Contexts that had a stream the table could not hold: their older fences fall back to a device
// synchronisation until the context goes. Past this table too, every context does (sticky).
constinit cuda_api::Context g_overflowed[kMaxOverflowed] = {};
constinit size_t g_num_overflowed = 0;
constinit bool g_overflow_all = false;

bool overflowed(cuda_api::Context ctx) noexcept {
  if (g_overflow_all) return true;
  for (size_t i = 0; i < g_num_overflowed; ++i) {
    if (g_overflowed[i] == ctx) return true;
  }
  return false;
}

constinit SpinLock g_capture_lock;
constinit cuda_api::Stream g_capturing[kMaxCaptures] = {};
constinit size_t g_num_capturing = 0;
constinit std::atomic<long> g_capture_count{0};
constinit std::atomic<long> g_fence_ops{0};  // open FenceWindows (Note [Capture gate])

}  // namespace

StreamsLock::StreamsLock() noexcept { g_stream_lock.lock(); }
StreamsLock::~StreamsLock() { g_stream_lock.unlock(); }

void note_stream_created(cuda_api::Stream s, unsigned flags) noexcept {
  if ((flags & cuda_api::kStreamNonBlocking) == 0 || s == nullptr) return;
  cuda_api::Context ctx = nullptr;
  if (const cuda_api::Driver* d = cuda_api::driver()) d->ctx_get_current(&ctx);
  LockGuard guard(g_stream_lock);
  if (g_num_streams == kMaxStreams) {
    if (overflowed(ctx)) return;
    if (g_num_overflowed == kMaxOverflowed) {
      g_overflow_all = true;
    } else {
      g_overflowed[g_num_overflowed++] = ctx;
    }
    return;
  }
  g_streams[g_num_streams++] = {s, ctx};
}

void note_stream_destroyed_locked(cuda_api::Stream s) noexcept {
  // Events already recorded on a destroyed stream stay valid: the fences that hold them complete
  // when the stream's work does.
  for (size_t i = 0; i < g_num_streams; ++i) {
    if (g_streams[i].stream == s) {
      g_streams[i] = g_streams[--g_num_streams];
      return;
    }
  }
}

void forget_streams_of(cuda_api::Context ctx) noexcept {
  LockGuard guard(g_stream_lock);
  for (size_t i = 0; i < g_num_overflowed; ++i) {
    if (g_overflowed[i] == ctx) {
      g_overflowed[i] = g_overflowed[--g_num_overflowed];
      break;
    }
  }
  for (size_t i = 0; i < g_num_streams;) {
    if (g_streams[i].ctx == ctx) {
      g_streams[i] = g_streams[--g_num_streams];
    } else {
      ++i;
    }
  }
}

size_t streams_of_locked(cuda_api::Context ctx, cuda_api::Stream* out, size_t max) noexcept {
  if (overflowed(ctx)) return max + 1;
  size_t n = 0;
  for (size_t i = 0; i < g_num_streams; ++i) {
    if (g_streams[i].ctx != ctx) continue;
    if (n < max) out[n] = g_streams[i].stream;
    ++n;
  }
  return n;
}

void capture_enter() noexcept {
  g_capture_count.fetch_add(1, std::memory_order_seq_cst);
  // Wait for fence work that started before the count rose (Note [Capture gate]); it is short:
  // an event record or query, or at worst one synchronisation.
  while (g_fence_ops.load(std::memory_order_seq_cst) != 0) cpu_relax();
}

void capture_started(cuda_api::Stream s) noexcept {
  LockGuard guard(g_capture_lock);
  // Past the table the capture stays counted, so the cache stays quiet; it may then stay quiet
  // for longer than needed (a missed end), never shorter.
  if (g_num_capturing < kMaxCaptures) g_capturing[g_num_capturing++] = s;
}

void capture_aborted() noexcept { g_capture_count.fetch_sub(1, std::memory_order_seq_cst); }

void note_capture_end(cuda_api::Stream s) noexcept {
  LockGuard guard(g_capture_lock);
  for (size_t i = 0; i < g_num_capturing; ++i) {
    if (g_capturing[i] == s) {
      g_capturing[i] = g_capturing[--g_num_capturing];
      g_capture_count.fetch_sub(1, std::memory_order_seq_cst);
      return;
    }
  }
}

bool capture_active() noexcept { return g_capture_count.load(std::memory_order_relaxed) > 0; }

FenceWindow::FenceWindow() noexcept {
  g_fence_ops.fetch_add(1, std::memory_order_seq_cst);
  open_ = g_capture_count.load(std::memory_order_seq_cst) == 0;
  if (!open_) g_fence_ops.fetch_sub(1, std::memory_order_seq_cst);
}

FenceWindow::~FenceWindow() {
  if (open_) g_fence_ops.fetch_sub(1, std::memory_order_seq_cst);
}

}  // namespace cachealloc::cuda
