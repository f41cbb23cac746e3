// glibc_compat.h - glibc's malloc introspection answered with cachealloc's numbers.
//
// preload/glibc.cpp exports mallinfo, mallinfo2, malloc_stats, malloc_info and mallopt as one-line
// forwarders to these. The figures come from the same image a publication builds (read_totals,
// publisher.h), so they agree with cachealloc-stats and work with CACHEALLOC_STATS=0.
//
// Field mapping (docs/stats.md, "glibc's introspection"); glibc's arenas, fastbins and mmapped
// chunks do not exist here, so fields with no counterpart are 0:
//   arena    bytes held from upstreams: small-object segments + large blocks (live or cached)
//   ordblks  live blocks (small + large)
//   smblks   0
//   hblks    0            hblkhd  0   (large blocks are counted in uordblks, not apart)
//   usmblks  peak of live bytes (bytes_live_peak)
//   fsmblks  free small blocks in thread caches and transfer slots (bytes)
//   uordblks live bytes: small blocks at their class size + large blocks
//   fordblks the budgeted cache: empty slabs + freed large blocks (bytes)
//   keepcost 0
// mallinfo (int fields) saturates each value at INT_MAX instead of wrapping as glibc does.
//
// Who calls: preload/ only, from the program's threads; never from inside malloc.
#pragma once

#include <malloc.h>

namespace cachealloc::stats {

void fill_mallinfo2(struct mallinfo2* out) noexcept;
void fill_mallinfo(struct mallinfo* out) noexcept;
// malloc_stats(): the text report on fd 2.
void print_malloc_stats() noexcept;
// mallopt(): cachealloc has none of glibc's tunables; 0 ("not done") for every parameter.
int answer_mallopt(int param, int value) noexcept;

}  // namespace cachealloc::stats
