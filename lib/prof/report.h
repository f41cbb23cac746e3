// report.h - the two ways a ProfileTable is shown: pprof's legacy heap format and the leak report.
//
// pprof legacy heap profile (what gperftools' heap profiler writes, which google-pprof reads):
//   heap profile: <live n>: <live bytes> [<total n>: <total bytes>] @ heap_v2/<rate>
//   <n>: <bytes> [<n>: <bytes>] @ 0x<pc> 0x<pc> ...        one line per site
//   MAPPED_LIBRARIES:
//   <a copy of /proc/self/maps>
// Counts and bytes are the sampled ones; pprof scales each line by 1 / (1 - exp(-avg/rate)) with
// the line's average size (rate 1 for the device table, where every allocation is recorded).
// pprof subtracts 1 from every address but the first to find the call instruction, so the first
// is written already less 1.
//
// The leak report (stderr) lists the sites with live blocks, largest estimated bytes first, each
// with its first frames symbolized: addr2line (binutils) is run once per object file, with
// LD_PRELOAD and CACHEALLOC_* removed from its environment, for "function file:line"; without it
// (or for frames it cannot name), dladdr's nearest dynamic symbol, or object+offset.
// Both run at exit or on request, never inside malloc; both copy the sites out under the table's
// lock and work on the copy.
#pragma once

#include <cstdint>

#include "prof/profile_table.h"

namespace cachealloc::prof {

// Writes the profile of t to fd. False on a write error.
bool write_pprof(ProfileTable& t, int fd) noexcept;

// Prints the leak section `what` ("host" or "device") to stderr. Returns the number of live
// records (sampled blocks for the host table): 0 when nothing leaked.
uint64_t report_leaks(ProfileTable& t, const char* what) noexcept;

}  // namespace cachealloc::prof
