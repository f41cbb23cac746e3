// entry.h - one process's segment as the CLI sees it: loaded, checked, and classified.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "process_info.h"
#include "segment_reader.h"

namespace castats {

struct Entry {
  uint32_t pid = 0;
  std::string path;
  Status status = Status::kOk;
  std::string message;  // set when status != kOk
  Segment seg;          // valid when status == kOk
  FileInfo file;
  ProcessInfo proc;
  bool stale = false;   // the process is gone (or the pid now belongs to another process)

  bool ok() const { return status == Status::kOk; }
  double uptime_seconds(uint64_t now_realtime_ns) const;
  double hit_rate() const;  // hits / (hits + misses), 0 when there were none
  const char* state() const;  // "live", "stale", or the status word
};

// Reads and checks the segment of `pid` in `dir`. Never throws.
Entry load_entry(const std::string& dir, uint32_t pid);

// Per-second rates between two loads of the same process (zero when not comparable).
struct Rates {
  bool valid = false;
  double seconds = 0;
  double allocs = 0, frees = 0, refills = 0, flushes = 0, hits = 0, misses = 0;
  std::vector<double> pool_allocs;  // by pool id
};
Rates compute_rates(const Entry& before, const Entry& after);

uint64_t realtime_now_ns();

}  // namespace castats
