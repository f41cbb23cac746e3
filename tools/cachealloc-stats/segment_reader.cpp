// segment_reader.cpp - see segment_reader.h.
#include "segment_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace castats {
namespace {

bool fail(ParseError* err, Status s, std::string msg) {
  err->status = s;
  err->message = std::move(msg);
  return false;
}

// A table of `capacity` rows of `row_size` bytes at `offset`, `count` of them used.
bool check_table(const char* what, uint64_t offset, uint64_t row_size, uint64_t count,
                 uint64_t capacity, size_t min_row, uint64_t header_size, uint64_t total,
                 ParseError* err) {
  std::string w(what);
  if (count > capacity) {
    return fail(err, Status::kCorrupt, w + " count " + std::to_string(count) + " exceeds capacity " +
                                           std::to_string(capacity));
  }
  if (capacity == 0) return true;  // an empty table may sit anywhere
  if (row_size < min_row) {
    return fail(err, Status::kCorrupt, w + " row size " + std::to_string(row_size) + " is below " +
                                           std::to_string(min_row));
  }
  if (offset % 8 != 0 || offset < header_size) {
    return fail(err, Status::kCorrupt, w + " offset " + std::to_string(offset) + " is invalid");
  }
  // All three are below 2^32, so this cannot overflow 64 bits.
  uint64_t end = offset + row_size * capacity;
  if (end > total) {
    return fail(err, Status::kCorrupt, w + " table ends at " + std::to_string(end) +
                                           ", past the segment's " + std::to_string(total) + " bytes");
  }
  return true;
}

template <typename Row>
void copy_rows(const unsigned char* data, uint64_t offset, uint64_t row_size, uint64_t count,
               std::vector<Row>* out) {
  out->clear();
  out->reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    Row r{};
    memcpy(&r, data + offset + i * row_size, sizeof(Row));  // row_size >= sizeof(Row): checked
    out->push_back(r);
  }
}

std::string printable(const char* s, size_t cap) {
  std::string r;
  for (size_t i = 0; i < cap && s[i] != '\0'; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    r.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  return r;
}

uint64_t load_seq(const unsigned char* data) {
  uint64_t s;
  memcpy(&s, data + offsetof(ca_stats_header, seq), sizeof s);
  return s;
}

}  // namespace

int exit_code(Status s) {
  switch (s) {
    case Status::kOk: return 0;
    case Status::kNoProcess: return 3;
    case Status::kNoSegment: return 4;
    case Status::kPermission: return 5;
    case Status::kVersion: return 6;
    case Status::kTruncated: return 7;
    case Status::kCorrupt: return 7;
    case Status::kWrongOwner: return 8;
  }
  return 1;
}

const char* status_word(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kNoProcess: return "no-process";
    case Status::kNoSegment: return "no-segment";
    case Status::kPermission: return "permission-denied";
    case Status::kVersion: return "unsupported-version";
    case Status::kTruncated: return "truncated";
    case Status::kCorrupt: return "corrupt";
    case Status::kWrongOwner: return "wrong-owner";
  }
  return "unknown";
}

bool parse_segment(const unsigned char* data, size_t size, Segment* out, ParseError* err) {
  constexpr size_t kPrefix = offsetof(ca_stats_header, total_size);  // magic + version + header_size
  if (size < kPrefix) {
    return fail(err, Status::kTruncated, "truncated: " + std::to_string(size) +
                                             " bytes, too short for a header");
  }
  ca_stats_header h{};
  memcpy(&h, data, size < sizeof h ? size : sizeof h);
  if (h.magic != CA_STATS_MAGIC) {
    return fail(err, Status::kCorrupt, "corrupt: bad magic (not a cachealloc statistics segment)");
  }
  if (h.version != CA_STATS_VERSION) {
    return fail(err, Status::kVersion, "unsupported segment version " + std::to_string(h.version) +
                                           " (this cachealloc-stats reads version " +
                                           std::to_string(CA_STATS_VERSION) + ")");
  }
  if (size < sizeof h) {
    return fail(err, Status::kTruncated, "truncated: " + std::to_string(size) +
                                             " bytes, shorter than the " +
                                             std::to_string(sizeof h) + "-byte header");
  }
  if (h.header_size < sizeof h || h.header_size > h.total_size) {
    return fail(err, Status::kCorrupt, "corrupt: header size " + std::to_string(h.header_size) +
                                           " is invalid");
  }
  if (h.total_size > size) {
    return fail(err, Status::kTruncated, "truncated: the header says " +
                                             std::to_string(h.total_size) + " bytes, the segment has " +
                                             std::to_string(size));
  }
  if (h.total_size != size || h.total_size > kMaxSegmentSize) {
    return fail(err, Status::kCorrupt, "corrupt: the header says " + std::to_string(h.total_size) +
                                           " bytes, the segment has " + std::to_string(size));
  }
  if (h.seq & 1) return fail(err, Status::kCorrupt, "corrupt: torn (the writer stopped mid-update)");
  if (memchr(h.exe, '\0', sizeof h.exe) == nullptr ||
      memchr(h.library_version, '\0', sizeof h.library_version) == nullptr) {
    return fail(err, Status::kCorrupt, "corrupt: unterminated name in the header");
  }
  if (h.pid == 0) return fail(err, Status::kCorrupt, "corrupt: pid 0 in the header");
  const uint64_t total = h.total_size;
  if (h.totals_size < sizeof(ca_stats_totals) || h.totals_offset % 8 != 0 ||
      h.totals_offset < h.header_size || uint64_t{h.totals_offset} + h.totals_size > total) {
    return fail(err, Status::kCorrupt, "corrupt: totals block out of bounds");
  }
  if (!check_table("corrupt: pool", h.pools_offset, h.pool_row_size, h.pool_count, h.pool_capacity,
                   sizeof(ca_stats_pool_row), h.header_size, total, err) ||
      !check_table("corrupt: layout", h.layouts_offset, h.layout_row_size, h.layout_count,
                   h.layout_capacity, sizeof(ca_stats_layout_row), h.header_size, total, err) ||
      !check_table("corrupt: device", h.devices_offset, h.device_row_size, h.device_count,
                   h.device_capacity, sizeof(ca_stats_device_row), h.header_size, total, err)) {
    return false;
  }
  out->header = h;
  memcpy(&out->totals, data + h.totals_offset, sizeof out->totals);
  copy_rows(data, h.pools_offset, h.pool_row_size, h.pool_count, &out->pools);
  copy_rows(data, h.layouts_offset, h.layout_row_size, h.layout_count, &out->layouts);
  copy_rows(data, h.devices_offset, h.device_row_size, h.device_count, &out->devices);
  for (ca_stats_pool_row& p : out->pools) p.name[sizeof p.name - 1] = '\0';
  out->exe = printable(h.exe, sizeof h.exe);
  return true;
}

bool read_segment_file(const std::string& path, Segment* out, FileInfo* info, ParseError* err) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return fail(err, Status::kNoSegment, "no statistics segment");
    if (e == EACCES || e == EPERM) return fail(err, Status::kPermission, "permission denied");
    if (e == ELOOP) return fail(err, Status::kCorrupt, "corrupt: a symbolic link, not a segment");
    return fail(err, Status::kCorrupt, std::string("cannot open: ") + strerror(e));
  }
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return fail(err, Status::kCorrupt, "corrupt: not a regular file");
  }
  info->opened = true;
  info->owner = st.st_uid;
  info->mode = st.st_mode & 07777;
  info->size = static_cast<size_t>(st.st_size);
  if (static_cast<uint64_t>(st.st_size) > kMaxSegmentSize) {
    return fail(err, Status::kCorrupt, "corrupt: " + std::to_string(st.st_size) +
                                           " bytes, larger than any segment");
  }
  // Copy under the sequence lock: seq even and unchanged across the copy (stats_abi.h).
  std::vector<unsigned char> buf;
  for (int attempt = 0;; ++attempt) {
    buf.assign(static_cast<size_t>(st.st_size), 0);
    ssize_t got = pread(fd, buf.data(), buf.size(), 0);
    if (got < 0) return fail(err, Status::kCorrupt, std::string("cannot read: ") + strerror(errno));
    buf.resize(static_cast<size_t>(got));  // the object may have shrunk meanwhile
    if (buf.size() < sizeof(ca_stats_header)) break;
    uint64_t s1 = load_seq(buf.data());
    unsigned char again[8];
    bool stable = pread(fd, again, 8, offsetof(ca_stats_header, seq)) == 8 &&
                  memcmp(again, buf.data() + offsetof(ca_stats_header, seq), 8) == 0;
    if ((s1 & 1) == 0 && stable) break;
    if (attempt == 200) break;  // still moving after ~200 ms: parse reports it as torn
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return parse_segment(buf.data(), buf.size(), out, err);
}

}  // namespace castats
