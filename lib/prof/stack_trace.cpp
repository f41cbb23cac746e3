// stack_trace.cpp - see stack_trace.h.
#include "prof/stack_trace.h"

#include <unwind.h>

#include "platform/os.h"

namespace cachealloc::prof {
namespace {
constinit thread_local int t_depth = 0;
// This library's code: leading frames in it (malloc, operator new, the profiler) are skipped.
constinit uintptr_t g_self_lo = 0;
constinit uintptr_t g_self_hi = 0;

struct Walk {
  uintptr_t* pcs;
  int max;
  int n;
  bool skipping;
};

_Unwind_Reason_Code on_frame(struct _Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<Walk*>(arg);
  uintptr_t ip = _Unwind_GetIP(ctx);
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
  if (max <= 0) return 0;
  Walk w{pcs, max, 0, true};
  _Unwind_Backtrace(&on_frame, &w);
  return w.n;
}

void warm_up() noexcept {
  ProfilerScope scope;
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
