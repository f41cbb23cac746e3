// publisher.h - when the statistics segment is written, and its lifecycle in the process.
//
// Note [Publication]
// Counters are never published from the malloc/free fast paths. The core calls tick() from its
// slow paths (refill, flush, large blocks, calloc, realloc...) once every kStatsTickEvery slow calls
// of a thread, and at thread exit (Note [Stats tick], core/allocator.h). tick() publishes when
// kPublishIntervalNs has passed since the last publication and no other thread is publishing
// (try-lock: no thread ever waits for it). So while the program keeps calling into the allocator's
// slow paths, the segment lags by at most a few milliseconds; a thread that only ever hits its
// thread cache changes nothing but its own alloc/free counts and its cache's content (bounded by
// the cache's size) until some slow path or flush() publishes. flush() (ca_stats_flush) publishes
// at once, and the exit handler publishes a final, exact picture just before removing the segment.
//
// Note [Publisher thread]
// The ticks above publish only while the program calls into slow paths, so the last change before
// a quiet period (a daemon between requests) would never reach the segment. A publisher thread
// closes that gap in programs with threads of their own (Note [No thread in a single-threaded
// process], publisher.cpp): started by the first tick after start() once the program has a
// second thread (CACHEALLOC_STATS_THREAD=always: at the first tick; =0: never), so from an
// allocator slow path once the heap works, never from a constructor, it
// wakes every kWatchIntervalNs, builds the image without waiting for any lock (try-locks only:
// Heap::try_snapshot), and writes the segment only when the image's body differs from the last
// publication's (image_hash). So a reader sees an idle process's state within about 250 ms of its
// last change, and an idle process's segment stops changing. The thread never allocates (static
// storage, no thread cache), never exits, and has every signal blocked. CACHEALLOC_STATS=0 starts
// none. A fork child has none; it starts its own at its first tick after kForkGraceNs. fork with
// the thread as the only other thread stays a single-threaded fork (Note [Helper threads],
// core/fork.h), so fork from a signal handler keeps working. Cost: one extra thread per
// multi-threaded process.
//
// Lifecycle: start() (library constructor) creates "/cachealloc.<pid>.<ns>" (Note [Segment names],
// stats_segment.h) unless CACHEALLOC_STATS=0;
// a fork() child drops its view of the parent's segment and creates its own at its first
// publication, which tick() holds back for kForkGraceNs (fork + exec and fork + _exit children
// would otherwise leave stale segments behind: neither runs exit handlers); at normal exit the segment is removed, and with CACHEALLOC_SHOW_STATS=1 a summary is
// printed to stderr (even with CACHEALLOC_STATS=0).
//
// SYNCHRONIZATION: one SpinLock serialises publications (the publisher thread only try-locks it,
// and takes the heap's locks with try-locks too: it never waits). In-process reports (report())
// copy the image under it and print from the copy under a second lock, g_report_lock, so their
// sink may allocate. Around fork() it is taken in the one fork
// sequence (ForkLayer::kStats, Note [Fork] in core/fork.cpp) after the CUDA cache's locks, so the
// child never inherits it held by a lost thread. It is a leaf above the heap's locks: a
// publication takes the heap's registry lock (Heap::snapshot) while holding it, and the heap never
// calls back under its own locks (the tick runs after the slow path released them). The CUDA
// pools are read without their locks (DeviceCache::reports, Note [Pool snapshots]): CUDA may call
// malloc, and so publish, while one of them is held.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cachealloc/stats_abi.h"
#include "stats/summary.h"

namespace cachealloc::stats {

inline constexpr uint64_t kPublishIntervalNs = 5'000'000;  // 5 ms
inline constexpr uint64_t kForkGraceNs = 1'000'000'000;    // a fork child's first publication
inline constexpr uint64_t kWatchIntervalNs = 250'000'000;  // the publisher thread's period
inline constexpr size_t kThreadStackBytes = 128 * 1024;
// Note [Dead segments]: the publisher thread's one clean-up at its start.
inline constexpr size_t kDeadScanEntries = 4096;
inline constexpr size_t kDeadScanRemovals = 64;

// Library constructor: reads the options, creates the segment, installs the tick and fork hooks.
void start() noexcept;
// Publishes now (creating the segment in a fork child that has none yet). 0, or ENOENT when
// statistics are off or the segment could not be created.
int flush() noexcept;
// The totals as a publication now would write them, without publishing (mallinfo2). Works with
// statistics off. Takes the publication lock: not for use inside a sink of report().
void read_totals(ca_stats_totals* out) noexcept;
// The whole report, built now, one line per sink call (ca_stats_print, malloc_stats, malloc_info).
// The sink may allocate and may call ca_stats_flush; it must not call report() itself.
enum class ReportFormat { kText, kXml };
void report(ReportFormat format, LineSink out) noexcept;
// bytes_live_peak starts again from the live bytes now (ca_reset_peak, Note [Live peak]).
void reset_peak() noexcept;
// Exit: final publication, summary (CACHEALLOC_SHOW_STATS), removal.
void stop() noexcept;

}  // namespace cachealloc::stats
