// render_text.cpp - the human-readable tables.
#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <sstream>

#include "fields.h"
#include "render.h"

namespace castats {
namespace {

// The hit rate of the allocations between the two publications a Rates compares ("-" when none):
// a cumulative rate hides the last minute behind hours of history.
std::string interval_hit_rate(const Rates& r) {
  double calls = r.hits + r.misses;
  if (calls <= 0) return "-";
  char buf[16];
  snprintf(buf, sizeof buf, "%.1f%%", 100.0 * r.hits / calls);
  return buf;
}

std::string pct(uint64_t num, uint64_t den) {
  if (den == 0) return "-";
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f%%", 100.0 * static_cast<double>(num) / static_cast<double>(den));
  return buf;
}

std::string per_second(double v) {
  char buf[32];
  if (v >= 1e6) {
    snprintf(buf, sizeof buf, "%.1fM/s", v / 1e6);
  } else if (v >= 1e3) {
    snprintf(buf, sizeof buf, "%.1fk/s", v / 1e3);
  } else {
    snprintf(buf, sizeof buf, "%.0f/s", v);
  }
  return buf;
}

}  // namespace

std::string human_bytes(uint64_t v) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double d = static_cast<double>(v);
  int u = 0;
  while (d >= 1024 && u < 6) {
    d /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(v));
  } else {
    snprintf(buf, sizeof buf, "%.1f %s", d, kUnits[u]);
  }
  return buf;
}

std::string human_duration(double s) {
  char buf[32];
  if (s < 60) {
    snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else if (s < 86400) {
    snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) / 60 % 60);
  } else {
    snprintf(buf, sizeof buf, "%dd%02dh", static_cast<int>(s / 86400), static_cast<int>(s) / 3600 % 24);
  }
  return buf;
}

void render_list_text(std::ostream& os, const std::vector<Entry>& entries,
                      const std::vector<Rates>* rates, const RenderOptions& opt) {
  os << std::left << std::setw(8) << "PID" << std::setw(18) << "PROGRAM" << std::setw(20) << "STATE"
     << std::right << std::setw(9) << "UPTIME" << std::setw(12) << "LIVE" << std::setw(12) << "CACHED"
     << std::setw(8) << "HIT%";
  if (rates != nullptr) os << std::setw(12) << "ALLOCS";
  os << '\n';
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    os << std::left << std::setw(8) << e.pid;
    if (e.ok()) {
      std::string prog = e.seg.exe.substr(0, 17);
      os << std::setw(18) << prog << std::setw(20) << e.state() << std::right << std::setw(9)
         << human_duration(e.uptime_seconds(opt.now_ns)) << std::setw(12)
         << human_bytes(e.seg.totals.bytes_live) << std::setw(12) << human_bytes(e.seg.totals.bytes_cached)
         << std::setw(8) << pct(e.seg.totals.hits, e.seg.totals.hits + e.seg.totals.misses);
      if (rates != nullptr) {
        const Rates& r = (*rates)[i];
        os << std::setw(12) << (r.valid ? per_second(r.allocs) : std::string("-"));
      }
    } else {
      os << std::setw(18) << "?" << std::setw(20) << e.state() << std::right << "  " << e.message;
    }
    os << '\n';
  }
  if (entries.empty()) os << "(no processes are publishing cachealloc statistics)\n";
}

void render_entry_text(std::ostream& os, const Entry& e, const Rates* rates, const RenderOptions& opt) {
  const ca_stats_header& h = e.seg.header;
  const ca_stats_totals& t = e.seg.totals;
  double since = opt.now_ns > h.publish_time_ns ? static_cast<double>(opt.now_ns - h.publish_time_ns) / 1e9 : 0;
  os << "process   " << e.seg.exe << " (pid " << e.pid << ")  " << e.state() << "  up "
     << human_duration(e.uptime_seconds(opt.now_ns)) << "  published " << human_duration(since)
     << " ago (#" << h.publish_count << ")";
  if (h.flags & CA_STATS_FLAG_FORKED) os << "  forked";
  if (h.flags & CA_STATS_FLAG_FINAL) os << "  exited";
  os << "\n";
  if (e.stale) os << "          the process is gone: this segment is stale (cachealloc-stats --gc removes it)\n";
  os << "memory    live " << human_bytes(t.bytes_live) << " in " << t.blocks_live << " blocks (peak "
     << human_bytes(t.bytes_live_peak) << ")   cached " << human_bytes(t.bytes_cached) << " / limit "
     << human_bytes(t.cache_limit) << "\n";
  os << "          thread caches " << human_bytes(t.bytes_thread_cached) << "   transfer "
     << human_bytes(t.bytes_transfer) << "   os mapped " << human_bytes(t.bytes_os_mapped)
     << "   large upstream " << human_bytes(t.bytes_large_upstream) << " (+"
     << human_bytes(t.bytes_upstream_retained) << " retained)\n";
  os << "activity  allocs " << t.allocs << "   frees " << t.frees << "   hit rate "
     << pct(t.hits, t.hits + t.misses) << "   refills " << t.refills << "   flushes " << t.flushes << "\n";
  os << "          retains " << t.retains << "   releases " << t.releases << "   adopts " << t.adopts
     << "   threads " << t.threads << "\n";
  os << "          large: declined " << t.large_declined << "   decayed " << t.large_decayed
     << "   resized in place " << t.large_resizes << "\n";
  if (rates != nullptr && rates->valid) {
    os << "rates     allocs " << per_second(rates->allocs) << "   frees " << per_second(rates->frees)
       << "   refills " << per_second(rates->refills) << "   flushes " << per_second(rates->flushes)
       << "   hit rate " << interval_hit_rate(*rates) << " (this interval)\n";
  }

  std::vector<ca_stats_pool_row> pools = e.seg.pools;
  std::stable_sort(pools.begin(), pools.end(), [](const auto& a, const auto& b) {
    return a.bytes_live + a.bytes_cached > b.bytes_live + b.bytes_cached;
  });
  os << "\n" << std::left << std::setw(8) << "POOL" << std::right << std::setw(12) << "LIVE"
     << std::setw(12) << "CACHED" << std::setw(12) << "UPSTREAM" << std::setw(12) << "ALLOCS"
     << std::setw(12) << "FREES" << std::setw(8) << "HIT%" << std::setw(10) << "EVICT"
     << std::setw(10) << "UP-ALLOC" << std::setw(10) << "UP-FREE";
  if (rates != nullptr && rates->valid) os << std::setw(12) << "ALLOCS/S";
  os << "\n";
  for (const ca_stats_pool_row& p : pools) {
    os << std::left << std::setw(8) << p.name << std::right << std::setw(12) << human_bytes(p.bytes_live)
       << std::setw(12) << human_bytes(p.bytes_cached) << std::setw(12) << human_bytes(p.bytes_upstream)
       << std::setw(12) << p.allocs << std::setw(12) << p.frees << std::setw(8)
       << pct(p.hits, p.hits + p.misses) << std::setw(10) << p.evictions << std::setw(10)
       << p.upstream_allocs << std::setw(10) << p.upstream_frees;
    if (rates != nullptr && rates->valid) {
      double v = p.id < rates->pool_allocs.size() ? rates->pool_allocs[p.id] : 0;
      os << std::setw(12) << per_second(v);
    }
    os << "\n";
  }

  std::vector<ca_stats_layout_row> layouts = e.seg.layouts;
  auto held = [](const ca_stats_layout_row& r) {
    return r.bytes_live + (r.blocks_thread_cached + r.blocks_transfer + r.blocks_cached) * r.block_size;
  };
  std::stable_sort(layouts.begin(), layouts.end(), [&](const auto& a, const auto& b) {
    if (a.bytes_live != b.bytes_live) return a.bytes_live > b.bytes_live;
    return held(a) > held(b);
  });
  size_t n = opt.top_layouts == 0 ? layouts.size() : std::min(layouts.size(), opt.top_layouts);
  // The chosen rows (top by live bytes) in two tables: small layouts, then large ones, each with
  // the columns that mean something for it.
  bool any_small = false, any_large = false;
  for (size_t i = 0; i < n; ++i) (layouts[i].kind == CA_STATS_LAYOUT_LARGE ? any_large : any_small) = true;
  if (any_small) {
    os << "\n" << std::left << std::setw(8) << "LAYOUT" << std::right << std::setw(9) << "SIZE"
       << std::setw(7) << "ALIGN" << std::setw(12) << "LIVE" << std::setw(10) << "BLOCKS"
       << std::setw(12) << "THREAD-C" << std::setw(10) << "TRANSFER" << std::setw(10) << "REFILLS"
       << std::setw(10) << "XFER-HIT" << std::setw(10) << "FLUSHES" << std::setw(8) << "SLABS" << "\n";
    for (size_t i = 0; i < n; ++i) {
      const ca_stats_layout_row& r = layouts[i];
      if (r.kind == CA_STATS_LAYOUT_LARGE) continue;
      os << std::left << std::setw(8) << layout_kind_name(r.kind) << std::right
         << std::setw(9) << r.block_size << std::setw(7) << r.alignment << std::setw(12)
         << human_bytes(r.bytes_live) << std::setw(10) << r.blocks_live << std::setw(12)
         << human_bytes(r.blocks_thread_cached * r.block_size) << std::setw(10)
         << human_bytes(r.blocks_transfer * r.block_size) << std::setw(10) << r.refills
         << std::setw(10) << r.transfer_hits << std::setw(10) << r.flushes << std::setw(8)
         << r.slabs_taken << "\n";
    }
  }
  if (any_large) {
    os << "\n" << std::left << std::setw(8) << "LARGE" << std::right << std::setw(12) << "SIZE"
       << std::setw(12) << "LIVE" << std::setw(10) << "BLOCKS" << std::setw(12) << "CACHED"
       << std::setw(10) << "C-BLOCKS" << std::setw(10) << "HITS" << std::setw(10) << "MISSES" << "\n";
    for (size_t i = 0; i < n; ++i) {
      const ca_stats_layout_row& r = layouts[i];
      if (r.kind != CA_STATS_LAYOUT_LARGE) continue;
      os << std::left << std::setw(8) << layout_kind_name(r.kind) << std::right << std::setw(12)
         << r.block_size << std::setw(12) << human_bytes(r.bytes_live) << std::setw(10)
         << r.blocks_live << std::setw(12) << human_bytes(r.blocks_cached * r.block_size)
         << std::setw(10) << r.blocks_cached << std::setw(10) << r.hits << std::setw(10)
         << r.refills << "\n";
    }
  }
  if (n < layouts.size()) os << "(" << layouts.size() - n << " more layouts; --top 0 shows all)\n";

  if (!e.seg.devices.empty()) {
    os << "\n" << std::left << std::setw(8) << "DEVICE" << std::setw(8) << "KIND" << std::right
       << std::setw(12) << "LIVE" << std::setw(12) << "CACHED" << std::setw(12) << "RESERVED"
       << std::setw(8) << "HIT%" << std::setw(10) << "EVICT" << std::setw(10) << "SYNCS" << "\n";
    for (const ca_stats_device_row& d : e.seg.devices) {
      os << std::left << std::setw(8) << d.device << std::setw(8) << (d.pinned ? "pinned" : "device")
         << std::right << std::setw(12) << human_bytes(d.bytes_live) << std::setw(12)
         << human_bytes(d.bytes_cached) << std::setw(12) << human_bytes(d.bytes_reserved) << std::setw(8)
         << pct(d.hits, d.hits + d.misses) << std::setw(10) << d.evictions << std::setw(10)
         << d.syncs_forced << "\n";
    }
  }
}

}  // namespace castats
