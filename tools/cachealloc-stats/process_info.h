// process_info.h - what /proc says about a pid, and which segments a directory holds.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace castats {

struct ProcessInfo {
  bool exists = false;       // kill(pid, 0) found it (even without permission to signal it)
  bool uid_known = false;
  uid_t uid = 0;             // owner of /proc/<pid>: the process's effective uid
  uint64_t start_ticks = 0;  // field 22 of /proc/<pid>/stat (0 when unreadable)
};

ProcessInfo probe_process(uint32_t pid);

// This reader's pid namespace (the inode of /proc/self/ns/pid), 0 when unknown. Segments are named
// "cachealloc.<pid>.<namespace>" (Note [Segment names], lib/stats/stats_segment.h); older
// libraries, and a library that cannot read its namespace, write "cachealloc.<pid>".
uint64_t own_pid_namespace();

// The pids of every "cachealloc.<pid>.<our namespace>" and "cachealloc.<pid>" entry in `dir`,
// ascending, each once. Segments of other pid namespaces are not listed.
std::vector<uint32_t> list_segment_pids(const std::string& dir);

// The segment of `pid`: "cachealloc.<pid>.<our namespace>" when it exists, else "cachealloc.<pid>".
std::string segment_path(const std::string& dir, uint32_t pid);

// Parses a decimal pid (1..2^31-1). False on anything else.
bool parse_pid(const std::string& s, uint32_t* pid);

}  // namespace castats
