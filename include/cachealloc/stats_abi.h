/* cachealloc/stats_abi.h - the layout of the live statistics segment (ABI version 1).
 *
 * Every process running under libcachealloc (unless CACHEALLOC_STATS=0) publishes its counters in
 * a POSIX shared-memory object named "/cachealloc.<pid>" (the file /dev/shm/cachealloc.<pid>),
 * created with O_EXCL|O_NOFOLLOW and mode 0600, and removed at normal exit. The library writes it;
 * cachealloc-stats (and anything else) reads it. This header is the whole contract between them.
 *
 *   offset 0                 ca_stats_header          (header_size bytes)
 *   totals_offset            ca_stats_totals          (totals_size bytes)
 *   pools_offset             pool_capacity  rows of pool_row_size bytes,   pool_count used
 *   layouts_offset           layout_capacity rows of layout_row_size bytes, layout_count used
 *   devices_offset           device_capacity rows of device_row_size bytes, device_count used
 *   ... reserved room up to total_size
 *
 * Rules for readers (see docs/stats.md):
 *  - Copy the segment first, then validate the copy; never read a field from the live mapping after
 *    validating it (the writer, or another user, may change it meanwhile).
 *  - Accept only magic == CA_STATS_MAGIC and version == CA_STATS_VERSION. A version bump means the
 *    meaning of an existing field changed; new fields are added in reserved room without one, and
 *    readers ignore what they do not know.
 *  - Check every offset/size/count against total_size and total_size against the object's real
 *    size before using it. A row size larger than the struct below is allowed (rows grew); smaller
 *    is corrupt.
 *  - Consistency: `seq` is a sequence lock. The writer makes it odd, writes, then makes it even
 *    again. A copy is consistent when seq was even and unchanged across the copy.
 *
 * All integers are native-endian, fixed width, naturally aligned. Counters only grow ("_total" in
 * Prometheus terms) unless their comment says "now". Byte counts of small blocks are the blocks'
 * usable sizes (their size class), which is what the program holds.
 */
#ifndef CACHEALLOC_STATS_ABI_H
#define CACHEALLOC_STATS_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CA_STATS_MAGIC 0x3153544154534143ull /* "CASTATS1" read as little-endian bytes */
#define CA_STATS_VERSION 1u
/* Object "/cachealloc.<pid>.<ns>", file /dev/shm/cachealloc.<pid>.<ns>, where <ns> is the inode of
 * the process's pid namespace (/proc/self/ns/pid); "/cachealloc.<pid>" when that is unknown (and
 * from libraries before the namespace was added). */
#define CA_STATS_NAME_PREFIX "cachealloc."
#define CA_STATS_EXE_LEN 64
#define CA_STATS_POOL_NAME_LEN 16

/* Header flags. */
#define CA_STATS_FLAG_FINAL 1u   /* the last publication (written at exit, just before removal) */
#define CA_STATS_FLAG_FORKED 2u  /* the process is a fork() child of another cachealloc process */

typedef struct ca_stats_header {
  uint64_t magic;            /* CA_STATS_MAGIC */
  uint32_t version;          /* CA_STATS_VERSION */
  uint32_t header_size;      /* sizeof(ca_stats_header) when written */
  uint64_t total_size;       /* bytes of the whole segment */
  uint64_t seq;              /* sequence lock: odd while a publication is being written */
  uint32_t pid;              /* the publishing process; equals the <pid> of the name */
  uint32_t flags;            /* CA_STATS_FLAG_* */
  uint64_t start_time_ns;    /* CLOCK_REALTIME when the segment was created */
  uint64_t start_ticks;      /* the process's start time in clock ticks since boot, field 22 of
                                /proc/<pid>/stat (0 when unknown): tells a recycled pid apart */
  uint64_t publish_time_ns;  /* CLOCK_REALTIME of the last publication */
  uint64_t publish_count;    /* publications so far */
  uint64_t publish_interval_ns; /* the most time the library lets pass between publications
                                   while the program calls into its slow paths */
  char exe[CA_STATS_EXE_LEN];   /* executable's base name, NUL-terminated */
  char library_version[16];     /* "0.1.0", NUL-terminated */
  uint32_t totals_offset, totals_size;
  uint32_t pools_offset, pool_row_size, pool_count, pool_capacity;
  uint32_t layouts_offset, layout_row_size, layout_count, layout_capacity;
  uint32_t devices_offset, device_row_size, device_count, device_capacity;
  uint64_t prof_requests;    /* the one field readers write: `cachealloc-stats --prof-dump PID`
                                adds 1 (atomically) to ask the process for a heap profile; the
                                library never overwrites it when it publishes */
  uint64_t prof_dumps;       /* the value of prof_requests the library last answered: it wrote
                                the profile to totals.prof_dump_path, or failed with
                                prof_dump_errno */
  uint32_t prof_dump_errno;  /* 0, or why the last requested profile was not written (EINVAL:
                                the process runs without CACHEALLOC_PROF=1) */
  uint8_t reserved[20];
} ca_stats_header;

typedef struct ca_stats_totals {
  uint64_t allocs;             /* allocation calls that returned a block (small + large) */
  uint64_t frees;              /* blocks whose reference count reached 0 (small + large) */
  uint64_t adopts;             /* blocks adopted with ca_adopt */
  uint64_t blocks_live;        /* now: blocks handed out and not yet freed */
  uint64_t bytes_live;         /* now: bytes of those blocks */
  uint64_t bytes_live_peak;    /* the largest bytes_live seen at any publication */
  uint64_t bytes_cached;       /* now: the budgeted cache: empty slabs + freed large blocks */
  uint64_t bytes_thread_cached;/* now: free small blocks held in thread caches */
  uint64_t bytes_transfer;     /* now: free small blocks in the central pools' transfer slots */
  uint64_t bytes_os_mapped;    /* now: small-object segments mapped from the OS */
  uint64_t bytes_large_upstream; /* now: large blocks held from the upstream allocator (live + cached) */
  uint64_t cache_limit;        /* now: the cache budget (CACHEALLOC_CACHE_BYTES / ca_set_cache_limit) */
  uint64_t threads;            /* now: threads with a thread cache */
  uint64_t refills;            /* thread-cache refills from the central pools */
  uint64_t flushes;            /* thread-cache flushes to the central pools */
  uint64_t retains;            /* references added (ca_retain on a live block) */
  uint64_t releases;           /* references dropped on shared blocks (count >= 2 before) */
  uint64_t hits;               /* allocations served from a cache (thread cache or large cache) */
  uint64_t misses;             /* allocations that had to go further */
  uint64_t bytes_requested;    /* bytes the program asked for in the calls counted in allocs (its
                                  sizes before rounding; a realloc counts its new size) */
  uint64_t bytes_upstream_retained; /* now: memory the large-object upstream (mimalloc) keeps
                                  committed for us beyond the blocks it has live for us: its free
                                  pages not yet decommitted, metadata (directly mapped blocks of
                                  1 MiB and more keep nothing). An upper bound on what it keeps
                                  resident: a committed page may never have been touched */
  uint64_t large_declined;     /* freed large blocks given back at once: their layout had not
                                  earned more cached blocks (Note [Reuse evidence]) */
  uint64_t large_decayed;      /* cached large blocks given back after CACHEALLOC_DECAY_MS unused */
  uint64_t large_resizes;      /* reallocs of large blocks done by mremap, without a copy */
  char prof_dump_path[128];    /* the heap profile last written on request (NUL-terminated; "" when
                                none): <CACHEALLOC_PROF_PREFIX, else /tmp/cachealloc>.<pid>.r<N>.heap */
  uint64_t reserved[24];
} ca_stats_totals;             /* 512 bytes */

#define CA_STATS_POOL_SMALL 0u
#define CA_STATS_POOL_LARGE 1u

typedef struct ca_stats_pool_row {
  uint32_t id;                 /* CA_STATS_POOL_* */
  uint32_t reserved0;
  char name[CA_STATS_POOL_NAME_LEN]; /* "small", "large" */
  uint64_t allocs;             /* allocations from this pool */
  uint64_t frees;              /* blocks freed back to it */
  uint64_t hits;               /* allocations served from cached memory (small: the thread cache;
                                  large: a cached block of the same layout) */
  uint64_t misses;             /* allocations that went further (small: a refill; large: upstream) */
  uint64_t evictions;          /* cached units given back upstream by the budget or ca_clear
                                  (small: empty slabs decommitted; large: blocks) */
  uint64_t upstream_allocs;    /* small: 4 MiB segments mapped; large: blocks from mimalloc */
  uint64_t upstream_frees;     /* small: segments unmapped;   large: blocks returned upstream */
  uint64_t bytes_cached;       /* now: budgeted cache bytes of this pool */
  uint64_t bytes_live;         /* now */
  uint64_t blocks_live;        /* now */
  uint64_t bytes_upstream;     /* now: bytes held from upstream (mapped segments / large blocks) */
  uint64_t bytes_live_peak;    /* the peak of this pool's live bytes since start or
                                  ca_reset_peak(), exact as the process's (Note [Live peak]) */
  uint64_t reserved[1];
} ca_stats_pool_row;           /* 128 bytes */

#define CA_STATS_LAYOUT_SMALL 0u
#define CA_STATS_LAYOUT_LARGE 1u  /* a large layout (its rounded size; all alignments together) */

typedef struct ca_stats_layout_row {
  uint32_t kind;               /* CA_STATS_LAYOUT_SMALL: a size class of the small pool;
                                  CA_STATS_LAYOUT_LARGE: one of the busiest large layouts */
  uint32_t size_class;         /* the class index (large: the layout's index) */
  uint64_t block_size;         /* usable bytes of each block */
  uint64_t alignment;          /* alignment every block has */
  uint64_t blocks_live;        /* now */
  uint64_t bytes_live;         /* now */
  uint64_t blocks_thread_cached; /* now: free blocks of this class in thread caches */
  uint64_t blocks_transfer;    /* now: free blocks in the central pool's transfer slots */
  uint64_t refills;            /* batches taken by thread caches (misses of the thread caches);
                                  large: allocations of this size that missed the cache */
  uint64_t transfer_hits;      /* of those, served whole from the transfer slots */
  uint64_t flushes;            /* batches given back by thread caches */
  uint64_t blocks_taken;       /* blocks that left the central pool */
  uint64_t blocks_given;       /* blocks that came back to it */
  uint64_t slabs_taken;        /* slabs this class took from the slab source (reused or fresh) */
  uint64_t slabs_released;     /* slabs that became empty and went back as cache */
  uint64_t blocks_cached;      /* large: now: freed blocks of this layout in the cache */
  uint64_t hits;               /* large: allocations of this size served from the cache */
} ca_stats_layout_row;         /* 128 bytes */

/* Filled by the CUDA layer: one row per (device, pinned) pool with activity. */
typedef struct ca_stats_device_row {
  int32_t device;              /* CUDA device ordinal */
  uint32_t pinned;             /* 0: device memory; 1: pinned host memory of that device */
  uint64_t bytes_reserved;     /* now: really allocated from CUDA and tracked (live + cached) */
  uint64_t bytes_cached;       /* now */
  uint64_t bytes_live;         /* now */
  uint64_t hits;
  uint64_t misses;
  uint64_t syncs_forced;
  uint64_t oom_retries;
  uint64_t evictions;
  uint64_t cache_limit;        /* now */
  uint64_t bytes_live_peak;    /* the peak of bytes_live since start or ca_reset_peak(): exact for
                                  one context on the device; with several, the sum of each
                                  context's peak (an upper bound) */
  uint64_t reserved[5];
} ca_stats_device_row;         /* 128 bytes */

/* The capacities written by version 1 of the library (a reader takes them from the header). */
#define CA_STATS_POOL_CAPACITY 8u
#define CA_STATS_LAYOUT_CAPACITY 128u
#define CA_STATS_DEVICE_CAPACITY 32u
#define CA_STATS_SEGMENT_SIZE 32768u

#ifdef __cplusplus
} /* extern "C" */
#endif

#if defined(__cplusplus)
#define CA_STATS_ASSERT_(c, m) static_assert(c, m)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define CA_STATS_ASSERT_(c, m) _Static_assert(c, m)
#endif
#ifdef CA_STATS_ASSERT_
CA_STATS_ASSERT_(sizeof(ca_stats_header) == 256, "stats ABI: header size");
CA_STATS_ASSERT_(sizeof(ca_stats_totals) == 512, "stats ABI: totals size");
CA_STATS_ASSERT_(sizeof(ca_stats_pool_row) == 128, "stats ABI: pool row size");
CA_STATS_ASSERT_(sizeof(ca_stats_layout_row) == 128, "stats ABI: layout row size");
CA_STATS_ASSERT_(sizeof(ca_stats_device_row) == 128, "stats ABI: device row size");
CA_STATS_ASSERT_(256 + 512 + CA_STATS_POOL_CAPACITY * 128 + CA_STATS_LAYOUT_CAPACITY * 128 +
                      CA_STATS_DEVICE_CAPACITY * 128 <= CA_STATS_SEGMENT_SIZE,
              "stats ABI: segment too small for its tables");
#undef CA_STATS_ASSERT_
#endif

#endif /* CACHEALLOC_STATS_ABI_H */
