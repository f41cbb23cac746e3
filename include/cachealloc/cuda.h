/* cachealloc/cuda.h - the CUDA part of the public C API of libcachealloc.
 *
 * Under libcachealloc, device memory from cudaMalloc/cuMemAlloc and pinned host memory from
 * cudaMallocHost/cudaHostAlloc/cuMemAllocHost/cuMemHostAlloc is cached: a freed block is kept per
 * device and layout and handed out again once all work queued before its free has finished (see
 * docs/cuda.md). Every such block carries a reference count that starts at 1; cudaFree/cuMemFree
 * and ca_cuda_release take one owner away.
 *
 * Errors: functions returning int give 0 on success or EINVAL; they never abort.
 */
#ifndef CACHEALLOC_CUDA_H
#define CACHEALLOC_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Adds one owner to a live device or pinned block handed out by cachealloc. 0, or EINVAL when p is
 * NULL, not a cachealloc CUDA block, or already freed. */
int ca_cuda_retain(void *p);

/* Drops one owner (like cudaFree/cudaFreeHost when the count is 1). 0, or EINVAL as above. */
int ca_cuda_release(void *p);

/* Synchronises and really frees every cached block of `device` (device pools and pinned pools of
 * that device's contexts); device < 0 means every device. Returns the bytes released. Does nothing
 * (returns 0) while a stream is capturing a graph. */
size_t ca_cuda_clear(int device);

/* 1 when p is a live device or pinned block handed out by cachealloc, else 0. */
int ca_cuda_owns(const void *p);

/* Counters of the device (pinned == 0) or pinned host (pinned != 0) pools of `device` (< 0: all).
 * Bytes are rounded sizes, as really allocated. */
typedef struct ca_cuda_stats {
  uint64_t reserved;     /* bytes really allocated and tracked (live + cached) */
  uint64_t cached;       /* bytes of freed blocks kept (pending + ready) */
  uint64_t live;         /* bytes handed out and not freed */
  uint64_t hits;         /* allocations served from the cache */
  uint64_t misses;       /* allocations that went to CUDA */
  uint64_t syncs_forced; /* fallback device synchronisations */
  uint64_t oom_retries;  /* allocations that ran short of device memory and reclaimed the cache */
  uint64_t evictions;    /* cached blocks really freed (budget, OOM, clear) */
  uint64_t passthrough;  /* process-wide: calls passed to CUDA untouched */
} ca_cuda_stats;
int ca_cuda_get_stats(int device, int pinned, ca_cuda_stats *out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CACHEALLOC_CUDA_H */
