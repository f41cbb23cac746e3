// summary.h - the readable report: the exit summary (CACHEALLOC_SHOW_STATS=1), malloc_stats(),
// ca_stats_print() and malloc_info()'s XML.
//
// Printed from an image built like the published one, so it says what the segment says. Formats
// into stack buffers and hands each finished line (with its '\n', NUL-terminated) to a LineSink in
// one call: no allocation, no stdio, and on fd 2 one write(2) per line, so lines of processes
// sharing a terminal or log do not interleave inside a line.
#pragma once

#include "stats/stats_image.h"

namespace cachealloc::stats {

struct LineSink {
  void (*write)(void* ctx, const char* line) = nullptr;
  void* ctx = nullptr;
};

// A sink that writes each line to fd 2 with one write(2).
LineSink stderr_sink() noexcept;
// The same to another descriptor; `fd` points at an int that outlives the sink's use.
LineSink fd_sink(int* fd) noexcept;

void print_summary(const Image& image, LineSink out) noexcept;
// malloc_info()'s XML (docs/stats.md, "glibc's introspection").
void print_xml(const Image& image, LineSink out) noexcept;

}  // namespace cachealloc::stats
