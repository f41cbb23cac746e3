// stack_trace.cpp - see stack_trace.h.
#include "prof/stack_trace.h"

#include <unwind.h>

#include <atomic>

#include "platform/os.h"

namespace cachealloc::prof {
namespace {
constinit thread_local int t_depth = 0;
// This library's code: leading frames in it (malloc, operator new, the profiler) are skipped.
constinit uintptr_t g_self_lo = 0;
constinit uintptr_t g_self_hi = 0;
// libgcc's unwinder, found by warm_up() (Note [Unwinder on demand]).
using BacktraceFn = _Unwind_Reason_Code (*)(_Unwind_Trace_Fn, void*);
using GetIpFn = _Unwind_Ptr (*)(struct _Unwind_Context*);
constinit std::atomic<BacktraceFn> g_backtrace{nullptr};  // set after g_get_ip (release)
constinit std::atomic<GetIpFn> g_get_ip{nullptr};

struct Walk {
  uintptr_t* pcs;
  int max;
  int n;
  bool skipping;
};

_Unwind_Reason_Code on_frame(struct _Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<Walk*>(arg);
  uintptr_t ip = g_get_ip.load(std::memory_order_relaxed)(ctx);
  if (ip == 0) return _URC_END_OF_STACK;
  if (w->skipping && ip >= g_self_lo && ip < g_self_hi) return _URC_NO_REASON;
  w->skipping = false;
  w->pcs[w->n++] = ip;
  return w->n == w->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}
}  // namespace

ProfilerScope::ProfilerScope() noexcept { ++t_depth; }
ProfilerScope::~ProfilerScope() { --t_depth; }
bool in_profiler() noexcept { return t_depth != 0; }

int capture_stack(uintptr_t* pcs, int max) noexcept {
  BacktraceFn backtrace = g_backtrace.load(std::memory_order_acquire);
  if (max <= 0 || backtrace == nullptr) return 0;
  Walk w{pcs, max, 0, true};
  backtrace(&on_frame, &w);
  return w.n;
}

// Note [Unwinder on demand]
// The unwinder is libgcc_s's, looked up when profiling starts rather than linked: a C program
// that never profiles would otherwise load libgcc_s (~100 KiB of resident pages) only for us.
// Without it (no libgcc_s on the system) stacks are empty and the profile says so by its sites.
void warm_up() noexcept {
  ProfilerScope scope;
  if (g_backtrace.load(std::memory_order_acquire) == nullptr) {
    auto get_ip = reinterpret_cast<GetIpFn>(os::library_symbol("libgcc_s.so.1", "_Unwind_GetIP"));
    auto backtrace = reinterpret_cast<BacktraceFn>(os::library_symbol("libgcc_s.so.1", "_Unwind_Backtrace"));
    if (get_ip != nullptr && backtrace != nullptr) {
      g_get_ip.store(get_ip, std::memory_order_relaxed);
      g_backtrace.store(backtrace, std::memory_order_release);
    }
  }
  uintptr_t lo = 0;
  uintptr_t hi = 0;
  if (os::object_range(reinterpret_cast<const void*>(&capture_stack), &lo, &hi)) {
    g_self_lo = lo;
    g_self_hi = hi;
  }
  uintptr_t pcs[4];
  capture_stack(pcs, 4);
}

}  // namespace cachealloc::prof
