// glibc.cpp - glibc's own names for the malloc family, and its introspection, answered by
// cachealloc: one-line forwarders (lib/stats/glibc_compat.h has the field mapping).
//
// Programs and libraries call __libc_malloc & co. to reach "the real malloc" (hooks, leak
// checkers); under the preload that must be ours, or its blocks reach our free() as foreign
// pointers. mimalloc and tcmalloc export the same names.
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <malloc.h>

#include "core/allocator.h"
#include "export.h"
#include "stats/glibc_compat.h"
#include "stats/publisher.h"

namespace ca = cachealloc;

CA_EXPORT void* __libc_malloc(size_t n) noexcept { return ca::api_malloc(n); }
CA_EXPORT void __libc_free(void* p) noexcept { ca::api_free(p); }
CA_EXPORT void* __libc_calloc(size_t n, size_t size) noexcept { return ca::api_calloc(n, size); }
CA_EXPORT void* __libc_realloc(void* p, size_t n) noexcept { return ca::api_realloc(p, n); }
CA_EXPORT void* __libc_memalign(size_t align, size_t n) noexcept { return ca::api_memalign(align, n); }
CA_EXPORT void* __libc_valloc(size_t n) noexcept { return ca::api_valloc(n); }
CA_EXPORT void* __libc_pvalloc(size_t n) noexcept { return ca::api_pvalloc(n); }
CA_EXPORT int __posix_memalign(void** out, size_t align, size_t n) noexcept { return ca::api_posix_memalign(out, align, n); }
CA_EXPORT void cfree(void* p) noexcept { ca::api_free(p); }

CA_EXPORT struct mallinfo2 mallinfo2(void) noexcept {
  struct mallinfo2 m;
  ca::stats::fill_mallinfo2(&m);
  return m;
}
CA_EXPORT struct mallinfo mallinfo(void) noexcept {
  struct mallinfo m;
  ca::stats::fill_mallinfo(&m);
  return m;
}
CA_EXPORT void malloc_stats(void) noexcept { ca::stats::print_malloc_stats(); }
CA_EXPORT int mallopt(int param, int value) noexcept { return ca::stats::answer_mallopt(param, value); }

// As glibc: options must be 0 (EINVAL otherwise); the XML goes to fp with stdio.
static void write_file(void* fp, const char* line) { fputs(line, static_cast<FILE*>(fp)); }
CA_EXPORT int malloc_info(int options, FILE* fp) noexcept {
  if (options != 0 || fp == nullptr) return EINVAL;
  ca::stats::report(ca::stats::ReportFormat::kXml, {&write_file, fp});
  return 0;
}
