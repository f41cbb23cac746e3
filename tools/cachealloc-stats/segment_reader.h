// segment_reader.h - reads and validates a statistics segment (include/cachealloc/stats_abi.h).
//
// The reader never trusts the segment: it works on a private copy (taken under the segment's
// sequence lock), and checks every size, offset and count against the copy's real length before
// using it. Anything it does not accept is reported with a Status and a one-line message; the CLI
// maps each Status to its exit code. parse_segment() is what the fuzz target exercises.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cachealloc/stats_abi.h"

namespace castats {

enum class Status {
  kOk = 0,
  kNoProcess,    // no such pid, and no segment for it
  kNoSegment,    // the process exists but has no segment
  kPermission,   // the segment exists but we may not read it
  kVersion,      // a segment of another ABI version
  kTruncated,    // shorter than its header says
  kCorrupt,      // bad magic, inconsistent header, torn for good, not a regular file, ...
  kWrongOwner,   // owned by somebody other than the process, or writable by others
};

// The CLI's exit code for a status (docs/stats.md).
int exit_code(Status s);
const char* status_word(Status s);  // "ok", "no-process", ..., for listings and JSON

struct Segment {
  ca_stats_header header{};
  ca_stats_totals totals{};
  std::vector<ca_stats_pool_row> pools;
  std::vector<ca_stats_layout_row> layouts;
  std::vector<ca_stats_device_row> devices;
  std::string exe;  // printable ASCII only
};

struct ParseError {
  Status status = Status::kOk;
  std::string message;
};

// Validates `size` bytes at `data` (a private copy) and decodes them into *out.
bool parse_segment(const unsigned char* data, size_t size, Segment* out, ParseError* err);

// Largest segment the reader accepts (a version-1 library writes CA_STATS_SEGMENT_SIZE).
inline constexpr size_t kMaxSegmentSize = size_t{16} << 20;

struct FileInfo {
  bool opened = false;  // the fields below are valid
  uid_t owner = 0;
  mode_t mode = 0;
  size_t size = 0;
};

// Opens `path` (O_NOFOLLOW), copies it consistently (retrying while the writer is mid-update) and
// parses it. *info gets the file's owner and mode when it could be opened.
bool read_segment_file(const std::string& path, Segment* out, FileInfo* info, ParseError* err);

}  // namespace castats
