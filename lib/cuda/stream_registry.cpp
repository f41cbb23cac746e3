// stream_registry.cpp - see stream_registry.h.
#include "cuda/stream_registry.h"

#include "platform/os.h"

namespace cachealloc::cuda {

// Note [Captures of a dead context]
// cuCtxDestroy, cudaDeviceReset / cuDevicePrimaryCtxReset and the last primary release destroy
// the context's streams, and with them any capture still under way on one (a program that met an
// error during a capture and resets the device to recover, without cuStreamEndCapture). No end
// will ever come for such a capture, and a capture counted for ever keeps the cache quiet for
// ever: no fence, so no reuse of anything freed since, no budget, and nothing given back on out
// of memory. So the context's end ends the captures begun in it. The context recorded is the
// one current on the thread that began the capture (what the runtime makes current for its
// calls); a capture on a stream of another context would be ended early only if that current
// context went first.
void StreamRegistry::forget_context(cuda_api::Context ctx) noexcept {
  LockGuard guard(capture_lock_);
  for (size_t i = 0; i < num_capturing_;) {
    if (capturing_[i].ctx == ctx) {
      end_capture_locked(i);
    } else {
      ++i;
    }
  }
}

void StreamRegistry::capture_enter() noexcept {
  capture_count_.fetch_add(1, std::memory_order_seq_cst);
  // Wait for fence work that started before the count rose (Note [Capture gate]); it is short:
  // an event record or query, or at worst one synchronisation.
  for (unsigned spins = 0; fence_ops_.load(std::memory_order_seq_cst) != 0; ++spins) {
    if (spins < 64) {
      cpu_relax();
    } else {
      os::yield_thread();  // the fence work may be a synchronisation or a batch of real frees
    }
  }
}

void StreamRegistry::capture_started(cuda_api::Stream s, cuda_api::Context ctx) noexcept {
  LockGuard guard(capture_lock_);
  // Past the table the capture stays counted, so the cache stays quiet; it may then stay quiet
  // for longer than needed (a missed end), never shorter.
  if (num_capturing_ < kMaxCaptures) capturing_[num_capturing_++] = {s, ctx};
}

void StreamRegistry::capture_aborted() noexcept {
  capture_count_.fetch_sub(1, std::memory_order_seq_cst);
}

// Pre: capture_lock_ held. Removes entry i (the last one takes its place) and uncounts it.
void StreamRegistry::end_capture_locked(size_t i) noexcept {
  capturing_[i] = capturing_[--num_capturing_];
  capture_count_.fetch_sub(1, std::memory_order_seq_cst);
}

void StreamRegistry::capture_ended(cuda_api::Stream s) noexcept {
  LockGuard guard(capture_lock_);
  for (size_t i = 0; i < num_capturing_; ++i) {
    if (capturing_[i].stream == s) {
      end_capture_locked(i);
      return;
    }
  }
}

void StreamRegistry::reset_after_fork() noexcept {
  // Only the forking thread exists in the child: no fence work and no capture is under way.
  fence_ops_.store(0, std::memory_order_relaxed);
  capture_count_.store(0, std::memory_order_relaxed);
  num_capturing_ = 0;
  capture_lock_.reset_after_fork();
}

FenceWindow::FenceWindow(StreamRegistry& r, bool wanted) noexcept : r_(r), open_(false) {
  if (!wanted) return;
  r_.fence_ops_.fetch_add(1, std::memory_order_seq_cst);
  open_ = r_.capture_count_.load(std::memory_order_seq_cst) == 0;
  if (!open_) r_.fence_ops_.fetch_sub(1, std::memory_order_seq_cst);
}

FenceWindow::~FenceWindow() {
  if (open_) r_.fence_ops_.fetch_sub(1, std::memory_order_seq_cst);
}

}  // namespace cachealloc::cuda
