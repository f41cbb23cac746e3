/* cachealloc.h - the public C API of libcachealloc.
 *
 * libcachealloc.so replaces the libc malloc family and C++ operator new/delete (use it with
 * LD_PRELOAD or link with -lcachealloc). Every block it hands out carries a reference count that
 * starts at 1. The functions below share blocks between owners, adopt blocks made by other
 * allocators, and return cached memory upstream.
 *
 * Errors: functions returning int give 0 on success or an errno value (EINVAL, ENOMEM) on failure;
 * they never abort on a bad argument. free() or realloc() of a pointer cachealloc did not hand out
 * (or a second free of a large block) stops the program with one line on stderr naming the call and
 * the pointer, as glibc does; the ca_ functions return EINVAL for such pointers instead.
 */
#ifndef CACHEALLOC_H
#define CACHEALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "cachealloc/version.h" /* CACHEALLOC_VERSION_MAJOR/MINOR/PATCH/STRING */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Reference counting --------------------------------------------------------------------
 * A block's count is 1 when malloc (or any allocation function) returns it. free(p) and
 * ca_release(p) take one away; the block is recycled when the count reaches 0. Blocks that are
 * never retained pay nothing for the table on the malloc/free fast path, unless another block
 * starting on the same 64 KiB page is retained: their frees then take a slower path that looks
 * in the table too. p must be the start of a
 * live block returned by cachealloc (or adopted); anything else gets EINVAL. */

/* Adds one owner. 0, or EINVAL when p is NULL or not a live cachealloc block. */
int ca_retain(void *p);

/* Drops one owner (same as free(p) when the count is 1). 0, or EINVAL as for ca_retain. */
int ca_release(void *p);

/* The current count of a live block; 0 when p is NULL, freed, or not a cachealloc block (a freed
 * small block whose first 16 bytes a write after free overwrote may read 1 by default). */
size_t ca_refcount(const void *p);

/* ---- Adopting foreign blocks ---------------------------------------------------------------
 * ca_adopt(p, size, alignment, upstream_free, ctx) hands cachealloc a block of `size` bytes
 * (aligned to `alignment`, a power of two, 0 meaning 16) that some other allocator made. From then
 * on it is a live cachealloc block with count 1: ca_retain/ca_release/free/realloc/
 * malloc_usable_size all work on it. When its count reaches 0 it is cached like a large block of
 * its layout and may be handed out again by malloc; when the cache lets it go (budget, ca_clear),
 * cachealloc calls upstream_free(ctx, p, size) exactly once. Blocks smaller than the large
 * threshold are not cached: upstream_free runs as soon as the count reaches 0.
 * Returns 0, EINVAL (NULL p or upstream_free, size 0, bad alignment, p misaligned, p already a
 * cachealloc block) or ENOMEM (the table could not grow). */
typedef void (*ca_upstream_free_fn)(void *ctx, void *p, size_t size);
int ca_adopt(void *p, size_t size, size_t alignment, ca_upstream_free_fn upstream_free, void *ctx);

/* ---- Cache control -------------------------------------------------------------------------- */

/* Returns every cached byte upstream: cached large blocks to mimalloc (adopted ones to their
 * upstream_free), empty slabs to the OS, and the calling thread's cache to the central pools.
 * Other threads flush their caches at their next refill. Returns the number of bytes released. */
size_t ca_clear(void);

/* Bytes held in caches right now (large-block cache plus empty slabs still committed). Never more
 * than ca_cache_limit(). */
size_t ca_cached_bytes(void);

/* The cache budget in bytes (CACHEALLOC_CACHE_BYTES). ca_set_cache_limit changes it at run time
 * and evicts at once down to the new value. */
size_t ca_cache_limit(void);
void ca_set_cache_limit(size_t bytes);

/* ---- Introspection -------------------------------------------------------------------------- */

/* 1 when p lies in memory cachealloc manages (live or cached), else 0. Never aborts. */
int ca_owns(const void *p);

/* Totals since start-up, summed over threads (exact once threads have flushed). */
typedef struct ca_totals {
  uint64_t allocs;         /* allocation calls that returned a block */
  uint64_t frees;          /* blocks whose count reached 0 */
  uint64_t large_hits;     /* large requests served from the cache */
  uint64_t large_misses;   /* large requests that went to mimalloc */
  uint64_t large_evictions;/* cached large blocks given back to mimalloc */
  uint64_t os_mapped;      /* bytes of small-object segments mapped from the OS right now */
  uint64_t cached;         /* same as ca_cached_bytes() */
  uint64_t cache_limit;    /* same as ca_cache_limit() */
} ca_totals;
void ca_get_totals(ca_totals *out);

/* Publishes this process's counters to its statistics segment (/dev/shm/cachealloc.<pid>, read by
 * cachealloc-stats; see docs/stats.md) right now, instead of at the next publication point (the
 * segment otherwise lags by a few milliseconds). Counters of the calling thread are exact; other
 * threads' are exact when they are idle. Returns 0, or ENOENT when statistics are off
 * (CACHEALLOC_STATS=0) or the segment could not be created. */
int ca_stats_flush(void);

/* bytes_live_peak (the segment's, mallinfo2's usmblks, the reports') starts again from the bytes
 * live now. The peak is exact at slow-path granularity: it counts a small block as live from the
 * moment its batch leaves the central pool for a thread cache until the batch comes back, so it is
 * never below the true peak and above it by at most what thread caches held then; large blocks are
 * counted exactly (docs/stats.md, "Peak"). */
void ca_reset_peak(void);

/* The full statistics report, built now, in-process, without allocating: `write` is called once
 * per line with (ctx, NUL-terminated line ending in '\n'), like jemalloc's malloc_stats_print.
 * With write == NULL the lines go to fd 2, one write(2) each. `write` may allocate; it must not
 * call ca_stats_print itself. Works with CACHEALLOC_STATS=0. */
void ca_stats_print(void (*write)(void *ctx, const char *line), void *ctx);

/* Writes the heap profile (CACHEALLOC_PROF=1 or CACHEALLOC_LEAK_CHECK set) to `path` in pprof's
 * legacy heap format (read it with google-pprof --text PROGRAM PATH), and, when the program made
 * any CUDA device or pinned allocation, the device profile to PATH.device. Returns 0, EINVAL when
 * profiling is off or path is NULL/empty, or the errno of the failed open/write. docs/profiling.md */
int ca_prof_dump(const char *path);

/* The library's version string, CACHEALLOC_VERSION_STRING (e.g. "0.1.0"). */
const char *ca_version(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CACHEALLOC_H */
