// summary.h - the readable summary CACHEALLOC_SHOW_STATS=1 prints to stderr at exit.
//
// Printed from the same image that is published, so it says exactly what the segment said last.
// Formats into stack buffers and writes with os::write_stderr: no allocation, no stdio.
#pragma once

#include "stats/stats_image.h"

namespace cachealloc::stats {

void print_summary(const Image& image) noexcept;

}  // namespace cachealloc::stats
