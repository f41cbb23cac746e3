// rss.h - the resident memory of the test process itself, for tests that bound its growth.
#pragma once

#include <cstddef>
#include <cstdio>

#include <unistd.h>

namespace rss {

// Resident set size in bytes, from /proc/self/statm; 0 when it cannot be read.
inline size_t bytes() {
  FILE* f = fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  int got = fscanf(f, "%lu %lu", &size, &resident);
  fclose(f);
  return got == 2 ? resident * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace rss
