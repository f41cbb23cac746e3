// capi.cpp - the ca_ C API of include/cachealloc.h, forwarded into namespace cachealloc.
#include "cachealloc.h"

#include "core/allocator.h"
#include "export.h"
#include "prof/profiler.h"
#include "stats/publisher.h"

namespace ca = cachealloc;

namespace {
ca::Heap& heap() {
  ca::ensure_init();
  return ca::g_heap;
}
}  // namespace

CA_EXPORT int ca_retain(void* p) { return heap().retain(p); }
CA_EXPORT int ca_release(void* p) { return ca::api_release(p); }
CA_EXPORT size_t ca_refcount(const void* p) { return heap().refcount(p); }
CA_EXPORT int ca_adopt(void* p, size_t size, size_t alignment, ca_upstream_free_fn fn, void* ctx) {
  return heap().adopt(p, size, alignment, fn, ctx);
}
CA_EXPORT size_t ca_clear(void) { return heap().clear(ca::current_cache()); }
CA_EXPORT size_t ca_cached_bytes(void) { return heap().cached_bytes(); }
CA_EXPORT size_t ca_cache_limit(void) { return heap().cache_limit(); }
CA_EXPORT void ca_set_cache_limit(size_t bytes) { heap().set_cache_limit(bytes); }
CA_EXPORT int ca_owns(const void* p) { return heap().owns(p) ? 1 : 0; }
CA_EXPORT void ca_get_totals(ca_totals* out) {
  if (out != nullptr) heap().get_totals(out);
}
CA_EXPORT int ca_stats_flush(void) { return ca::stats::flush(); }
CA_EXPORT void ca_reset_peak(void) { ca::stats::reset_peak(); }
CA_EXPORT int ca_prof_dump(const char* path) { return ca::prof::dump(path); }
CA_EXPORT void ca_stats_print(void (*write)(void*, const char*), void* ctx) {
  ca::stats::report(ca::stats::ReportFormat::kText,
                    write != nullptr ? ca::stats::LineSink{write, ctx} : ca::stats::stderr_sink());
}
CA_EXPORT const char* ca_version(void) { return CACHEALLOC_VERSION_STRING; }
