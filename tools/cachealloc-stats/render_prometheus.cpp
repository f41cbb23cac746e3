// render_prometheus.cpp - Prometheus text exposition format 0.0.4 (node_exporter textfile
// collector). Every metric is named cachealloc_*, carries pid and program labels, and appears once
// with its HELP and TYPE lines followed by the samples of every process.
#include <string>

#include "fields.h"
#include "render.h"

namespace castats {
namespace {

std::string label_value(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '\\' || c == '"') {
      r.push_back('\\');
      r.push_back(c);
    } else if (c == '\n') {
      r += "\\n";
    } else {
      r.push_back(c);
    }
  }
  return r;
}

std::string labels(const Entry& e, const std::string& extra = "") {
  std::string r = "{pid=\"" + std::to_string(e.pid) + "\",program=\"" + label_value(e.seg.exe) + "\"";
  if (!extra.empty()) r += "," + extra;
  return r + "}";
}

std::string metric_name(const std::string& prefix, const char* name, Kind kind) {
  std::string n = "cachealloc_" + prefix + name;
  if (kind == Kind::kCounter) n += "_total";
  return n;
}

void head(std::ostream& os, const std::string& name, const char* help, const char* type) {
  os << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

}  // namespace

void render_prometheus(std::ostream& os, const std::vector<Entry>& all, const RenderOptions& opt) {
  std::vector<const Entry*> entries;
  for (const Entry& e : all) {
    if (e.ok()) entries.push_back(&e);
  }
  head(os, "cachealloc_info", "Processes publishing cachealloc statistics (value 1).", "gauge");
  for (const Entry* e : entries) {
    os << "cachealloc_info"
       << labels(*e, "version=\"" + label_value(e->seg.header.library_version) + "\",state=\"" +
                         e->state() + "\"")
       << " 1\n";
  }
  head(os, "cachealloc_uptime_seconds", "Seconds since the process started publishing.", "gauge");
  for (const Entry* e : entries) os << "cachealloc_uptime_seconds" << labels(*e) << " " << e->uptime_seconds(opt.now_ns) << "\n";
  for (const auto& f : kTotalsFields) {
    std::string n = metric_name("", f.name, f.kind);
    head(os, n, f.help, f.kind == Kind::kCounter ? "counter" : "gauge");
    for (const Entry* e : entries) os << n << labels(*e) << " " << e->seg.totals.*f.member << "\n";
  }
  for (const auto& f : kPoolFields) {
    std::string n = metric_name("pool_", f.name, f.kind);
    head(os, n, f.help, f.kind == Kind::kCounter ? "counter" : "gauge");
    for (const Entry* e : entries) {
      for (const ca_stats_pool_row& p : e->seg.pools) {
        os << n << labels(*e, "pool=\"" + label_value(p.name) + "\"") << " " << p.*f.member << "\n";
      }
    }
  }
  // Per-layout series only on request: each process has up to ~130 layouts, so by default the
  // series stay bounded by processes x pools x devices.
  for (const auto& f : kLayoutFields) {
    if (!opt.prometheus_layouts) break;
    std::string n = metric_name("layout_", f.name, f.kind);
    head(os, n, f.help, f.kind == Kind::kCounter ? "counter" : "gauge");
    for (const Entry* e : entries) {
      for (const ca_stats_layout_row& r : e->seg.layouts) {
        os << n
           << labels(*e, std::string("kind=\"") + layout_kind_name(r.kind) + "\",size=\"" +
                             std::to_string(r.block_size) + "\"")
           << " " << r.*f.member << "\n";
      }
    }
  }
  bool any_device = false;
  for (const Entry* e : entries) any_device = any_device || !e->seg.devices.empty();
  if (!any_device) return;
  for (const auto& f : kDeviceFields) {
    std::string n = metric_name("device_", f.name, f.kind);
    head(os, n, f.help, f.kind == Kind::kCounter ? "counter" : "gauge");
    for (const Entry* e : entries) {
      for (const ca_stats_device_row& d : e->seg.devices) {
        os << n
           << labels(*e, "device=\"" + std::to_string(d.device) + "\",kind=\"" +
                             (d.pinned ? "pinned" : "device") + "\"")
           << " " << d.*f.member << "\n";
      }
    }
  }
}

}  // namespace castats
