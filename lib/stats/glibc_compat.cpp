// glibc_compat.cpp - see glibc_compat.h.
#include "stats/glibc_compat.h"

#include <climits>
#include <cstdint>

#include "stats/publisher.h"

namespace cachealloc::stats {
namespace {

int saturate(uint64_t v) noexcept { return v > static_cast<uint64_t>(INT_MAX) ? INT_MAX : static_cast<int>(v); }

}  // namespace

void fill_mallinfo2(struct mallinfo2* out) noexcept {
  ca_stats_totals t;
  read_totals(&t);
  *out = {};
  out->arena = t.bytes_os_mapped + t.bytes_large_upstream;
  out->ordblks = t.blocks_live;
  out->usmblks = t.bytes_live_peak;
  out->fsmblks = t.bytes_thread_cached + t.bytes_transfer;
  out->uordblks = t.bytes_live;
  out->fordblks = t.bytes_cached;
}

void fill_mallinfo(struct mallinfo* out) noexcept {
  struct mallinfo2 m;
  fill_mallinfo2(&m);
  *out = {};
  out->arena = saturate(m.arena);
  out->ordblks = saturate(m.ordblks);
  out->usmblks = saturate(m.usmblks);
  out->fsmblks = saturate(m.fsmblks);
  out->uordblks = saturate(m.uordblks);
  out->fordblks = saturate(m.fordblks);
}

void print_malloc_stats() noexcept { report(ReportFormat::kText, stderr_sink()); }

int answer_mallopt(int param, int value) noexcept {
  (void)param;
  (void)value;
  return 0;
}

}  // namespace cachealloc::stats
