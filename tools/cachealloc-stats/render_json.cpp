// render_json.cpp - one JSON object per call (schema in docs/stats.md).
#include <cstdio>
#include <string>

#include "fields.h"
#include "render.h"

namespace castats {
namespace {

std::string quote(const std::string& s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      r.push_back('\\');
      r.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      r += buf;
    } else {
      r.push_back(static_cast<char>(c));
    }
  }
  return r + "\"";
}

std::string num(double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

template <typename Row, size_t N>
void fields(std::ostream& os, const Row& row, const Field<Row> (&table)[N], bool* first) {
  for (const Field<Row>& f : table) {
    if (!*first) os << ",";
    *first = false;
    os << quote(f.name) << ":" << row.*f.member;
  }
}

void rates_object(std::ostream& os, const Rates& r) {
  os << "{\"seconds\":" << num(r.seconds) << ",\"allocs\":" << num(r.allocs) << ",\"frees\":"
     << num(r.frees) << ",\"refills\":" << num(r.refills) << ",\"flushes\":" << num(r.flushes)
     << ",\"hits\":" << num(r.hits) << ",\"misses\":" << num(r.misses) << ",\"hit_rate\":";
  // The hit rate of this interval's allocations; null when there were none.
  if (r.hits + r.misses > 0) {
    os << num(r.hits / (r.hits + r.misses));
  } else {
    os << "null";
  }
  os << "}";
}

}  // namespace

void render_entry_json(std::ostream& os, const Entry& e, const Rates* rates, const RenderOptions& opt) {
  os << "{\"pid\":" << e.pid << ",\"state\":" << quote(e.state());
  if (!e.ok()) {
    os << ",\"error\":" << quote(e.message) << "}";
    return;
  }
  const ca_stats_header& h = e.seg.header;
  os << ",\"program\":" << quote(e.seg.exe) << ",\"segment_version\":" << h.version
     << ",\"library_version\":" << quote(std::string(h.library_version))
     << ",\"forked\":" << ((h.flags & CA_STATS_FLAG_FORKED) ? "true" : "false")
     << ",\"final\":" << ((h.flags & CA_STATS_FLAG_FINAL) ? "true" : "false")
     << ",\"start_time_ns\":" << h.start_time_ns << ",\"uptime_seconds\":" << num(e.uptime_seconds(opt.now_ns))
     << ",\"publish_time_ns\":" << h.publish_time_ns << ",\"publish_count\":" << h.publish_count
     << ",\"publish_interval_ns\":" << h.publish_interval_ns << ",\"hit_rate\":" << num(e.hit_rate());
  os << ",\"totals\":{";
  bool first = true;
  fields(os, e.seg.totals, kTotalsFields, &first);
  os << "},\"pools\":[";
  for (size_t i = 0; i < e.seg.pools.size(); ++i) {
    const ca_stats_pool_row& p = e.seg.pools[i];
    os << (i ? "," : "") << "{\"name\":" << quote(std::string(p.name)) << ",\"id\":" << p.id;
    first = false;
    fields(os, p, kPoolFields, &first);
    os << "}";
  }
  os << "],\"layouts\":[";
  for (size_t i = 0; i < e.seg.layouts.size(); ++i) {
    const ca_stats_layout_row& r = e.seg.layouts[i];
    os << (i ? "," : "") << "{\"kind\":" << quote(layout_kind_name(r.kind))
       << ",\"size_class\":" << r.size_class << ",\"block_size\":" << r.block_size
       << ",\"alignment\":" << r.alignment;
    first = false;
    fields(os, r, kLayoutFields, &first);
    os << "}";
  }
  os << "],\"devices\":[";
  for (size_t i = 0; i < e.seg.devices.size(); ++i) {
    const ca_stats_device_row& d = e.seg.devices[i];
    os << (i ? "," : "") << "{\"device\":" << d.device << ",\"pinned\":" << (d.pinned ? "true" : "false");
    first = false;
    fields(os, d, kDeviceFields, &first);
    os << "}";
  }
  os << "]";
  if (rates != nullptr && rates->valid) {
    os << ",\"rates\":";
    rates_object(os, *rates);
  }
  os << "}";
}

void render_list_json(std::ostream& os, const std::vector<Entry>& entries,
                      const std::vector<Rates>* rates, const RenderOptions& opt) {
  os << "{\"processes\":[";
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    os << (i ? "," : "") << "{\"pid\":" << e.pid << ",\"state\":" << quote(e.state());
    if (e.ok()) {
      const ca_stats_totals& t = e.seg.totals;
      os << ",\"program\":" << quote(e.seg.exe) << ",\"uptime_seconds\":" << num(e.uptime_seconds(opt.now_ns))
         << ",\"bytes_live\":" << t.bytes_live << ",\"bytes_cached\":" << t.bytes_cached
         << ",\"hit_rate\":" << num(e.hit_rate());
      if (rates != nullptr && (*rates)[i].valid) {
        os << ",\"rates\":";
        rates_object(os, (*rates)[i]);
      }
    } else {
      os << ",\"error\":" << quote(e.message);
    }
    os << "}";
  }
  os << "]}";
}

}  // namespace castats
