// entry.cpp - see entry.h.
#include "entry.h"

#include <sys/stat.h>

#include <ctime>
#include <sstream>

namespace castats {

uint64_t realtime_now_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

double Entry::uptime_seconds(uint64_t now) const {
  if (!ok()) return 0;
  uint64_t end = stale ? seg.header.publish_time_ns : now;
  return end > seg.header.start_time_ns ? static_cast<double>(end - seg.header.start_time_ns) / 1e9 : 0;
}

double Entry::hit_rate() const {
  if (!ok()) return 0;
  uint64_t n = seg.totals.hits + seg.totals.misses;
  return n == 0 ? 0 : static_cast<double>(seg.totals.hits) / static_cast<double>(n);
}

const char* Entry::state() const {
  if (!ok()) return status_word(status);
  return stale ? "stale" : "live";
}

Entry load_entry(const std::string& dir, uint32_t pid) {
  Entry e;
  e.pid = pid;
  e.path = segment_path(dir, pid);
  e.proc = probe_process(pid);
  ParseError err;
  bool parsed = read_segment_file(e.path, &e.seg, &e.file, &err);
  // Ownership first: a segment somebody else planted is refused whatever it contains.
  if (e.file.opened) {
    std::ostringstream m;
    if ((e.file.mode & 077) != 0) {
      m << "wrong owner: segment is accessible to other users (mode 0" << std::oct << e.file.mode
        << "), refusing it";
      e.status = Status::kWrongOwner;
      e.message = m.str();
      return e;
    }
    if (e.proc.exists && e.proc.uid_known && e.file.owner != e.proc.uid) {
      m << "wrong owner: segment belongs to uid " << e.file.owner << " but process " << pid
        << " runs as uid " << e.proc.uid << ", refusing it";
      e.status = Status::kWrongOwner;
      e.message = m.str();
      return e;
    }
  }
  if (!parsed) {
    e.status = err.status;
    e.message = err.message;
    if (e.status == Status::kNoSegment && !e.proc.exists) {
      e.status = Status::kNoProcess;
      e.message = "no such process";
    } else if (e.status == Status::kNoSegment) {
      e.message = "no statistics segment (" + e.path +
                  "): the process does not use cachealloc, or runs with CACHEALLOC_STATS=0";
    } else if (e.status == Status::kPermission) {
      e.message = "permission denied reading " + e.path;
      if (e.file.opened) e.message += " (owned by uid " + std::to_string(e.file.owner) + ")";
    }
    return e;
  }
  if (e.seg.header.pid != pid) {
    e.status = Status::kCorrupt;
    e.message = "corrupt: the header names pid " + std::to_string(e.seg.header.pid) +
                ", the file name pid " + std::to_string(pid);
    return e;
  }
  e.stale = !e.proc.exists || (e.seg.header.start_ticks != 0 && e.proc.start_ticks != 0 &&
                               e.seg.header.start_ticks != e.proc.start_ticks);
  return e;
}

Rates compute_rates(const Entry& a, const Entry& b) {
  Rates r;
  if (!a.ok() || !b.ok() || a.seg.header.start_time_ns != b.seg.header.start_time_ns) return r;
  uint64_t t0 = a.seg.header.publish_time_ns, t1 = b.seg.header.publish_time_ns;
  r.valid = true;
  if (t1 <= t0) return r;  // nothing new was published: every rate is 0
  r.seconds = static_cast<double>(t1 - t0) / 1e9;
  auto rate = [&](uint64_t x0, uint64_t x1) {
    return x1 >= x0 ? static_cast<double>(x1 - x0) / r.seconds : 0.0;
  };
  const ca_stats_totals &x = a.seg.totals, &y = b.seg.totals;
  r.allocs = rate(x.allocs, y.allocs);
  r.frees = rate(x.frees, y.frees);
  r.refills = rate(x.refills, y.refills);
  r.flushes = rate(x.flushes, y.flushes);
  r.hits = rate(x.hits, y.hits);
  r.misses = rate(x.misses, y.misses);
  for (const ca_stats_pool_row& p : b.seg.pools) {
    double v = 0;
    for (const ca_stats_pool_row& q : a.seg.pools) {
      if (q.id == p.id) v = rate(q.allocs, p.allocs);
    }
    if (r.pool_allocs.size() <= p.id && p.id < 64) r.pool_allocs.resize(p.id + 1, 0.0);
    if (p.id < 64) r.pool_allocs[p.id] = v;
  }
  return r;
}

}  // namespace castats
