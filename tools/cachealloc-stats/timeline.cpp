// timeline.cpp - `cachealloc-stats record` and `cachealloc-stats plot` (see timeline.h).
#include "timeline.h"

#include <getopt.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "entry.h"

namespace castats {
namespace {

constexpr int kExitUsage = 2;

[[noreturn]] void usage_error(const char* cmd, const std::string& msg) {
  std::cerr << "cachealloc-stats " << cmd << ": " << msg << "\ntry 'cachealloc-stats --help'\n";
  std::exit(kExitUsage);
}

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// One sample: a line of the record file.
struct Sample {
  double t = 0;  // seconds since the first sample
  uint64_t live = 0, cached = 0, os_mapped = 0, large_upstream = 0, device = 0;
  uint64_t hits = 0, misses = 0;
};

constexpr char kMagic[] = "# cachealloc-stats record v1";

}  // namespace

// The record file, text, one line each:
//   # cachealloc-stats record v1 pid=<pid> program=<name>
//   s <seconds> <live> <cached> <os_mapped> <large_upstream> <device> <hits> <misses>
//   h <kind> <block_size> <bytes_live>        (the last sample's layouts, written at the end)
int record_main(int argc, char** argv) {
  double interval = 0.5;
  std::string out, dir;
  const char* env_dir = std::getenv("CACHEALLOC_STATS_DIR");
  dir = env_dir != nullptr && *env_dir != '\0' ? env_dir : "/dev/shm";
  static const option kLong[] = {{"interval", required_argument, nullptr, 'i'},
                                 {"output", required_argument, nullptr, 'o'},
                                 {"dir", required_argument, nullptr, 'd'},
                                 {nullptr, 0, nullptr, 0}};
  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, ":o:", kLong, nullptr)) != -1) {
    switch (c) {
      case 'i': {
        char* end = nullptr;
        interval = std::strtod(optarg, &end);
        if (*end != '\0' || !(interval >= 0.01) || interval > 3600) usage_error("record", "bad --interval");
        break;
      }
      case 'o': out = optarg; break;
      case 'd': dir = optarg; break;
      case ':': usage_error("record", std::string(argv[optind - 1]) + " needs a value");
      default: usage_error("record", "unknown option '" + std::string(argv[optind - 1]) + "'");
    }
  }
  uint32_t pid = 0;
  if (optind + 1 != argc || !parse_pid(argv[optind], &pid)) usage_error("record", "needs one PID");
  if (out.empty()) usage_error("record", "needs -o FILE");

  Entry first = load_entry(dir, pid);
  if (!first.ok()) {
    std::cerr << "cachealloc-stats: pid " << pid << ": " << first.message << "\n";
    return exit_code(first.status);
  }
  std::ofstream f(out);
  if (!f) {
    std::cerr << "cachealloc-stats: cannot write " << out << "\n";
    return 1;
  }
  f << kMagic << " pid=" << pid << " program=" << first.seg.exe << "\n";
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  auto t0 = std::chrono::steady_clock::now();
  Entry last = first;
  size_t n = 0;
  // Until the process's segment goes away (it exited) or the process is gone (stale), or Ctrl-C.
  for (Entry e = first; e.ok() && !e.stale && !g_stop; e = load_entry(dir, pid)) {
    const ca_stats_totals& t = e.seg.totals;
    uint64_t device = 0;
    for (const ca_stats_device_row& d : e.seg.devices) device += d.bytes_live + d.bytes_cached;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    f << "s " << secs << " " << t.bytes_live << " " << t.bytes_cached << " " << t.bytes_os_mapped
      << " " << t.bytes_large_upstream << " " << device << " " << t.hits << " " << t.misses << "\n";
    f.flush();
    last = e;
    ++n;
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval);
    while (!g_stop && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  for (const ca_stats_layout_row& r : last.seg.layouts) {
    if (r.bytes_live == 0) continue;
    f << "h " << (r.kind == CA_STATS_LAYOUT_LARGE ? "large" : "small") << " " << r.block_size << " "
      << r.bytes_live << "\n";
  }
  std::cout << n << " samples of pid " << pid << " written to " << out << "\n";
  return 0;
}

namespace {

std::string fmt_bytes(double v) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[u]);
  return buf;
}

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// A chart panel: x from 0..tmax, y from 0..ymax, at (x0, y0) with size w x h.
struct Panel {
  double x0, y0, w, h, tmax, ymax;
  double x(double t) const { return x0 + (tmax > 0 ? t / tmax : 0) * w; }
  double y(double v) const { return y0 + h - (ymax > 0 ? v / ymax : 0) * h; }
};

void axes(std::ostream& os, const Panel& p, const std::string& title, const std::string& ytop) {
  os << "<rect x=\"" << p.x0 << "\" y=\"" << p.y0 << "\" width=\"" << p.w << "\" height=\"" << p.h
     << "\" fill=\"none\" stroke=\"#888\"/>\n";
  os << "<text x=\"" << p.x0 << "\" y=\"" << p.y0 - 8 << "\" font-size=\"14\" font-weight=\"bold\">"
     << esc(title) << "</text>\n";
  os << "<text x=\"" << p.x0 - 6 << "\" y=\"" << p.y0 + 10 << "\" font-size=\"11\" text-anchor=\"end\">"
     << esc(ytop) << "</text>\n";
  os << "<text x=\"" << p.x0 - 6 << "\" y=\"" << p.y0 + p.h << "\" font-size=\"11\" text-anchor=\"end\">0</text>\n";
}

}  // namespace

int plot_main(int argc, char** argv) {
  std::string out;
  static const option kLong[] = {{"output", required_argument, nullptr, 'o'}, {nullptr, 0, nullptr, 0}};
  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, ":o:", kLong, nullptr)) != -1) {
    switch (c) {
      case 'o': out = optarg; break;
      case ':': usage_error("plot", std::string(argv[optind - 1]) + " needs a value");
      default: usage_error("plot", "unknown option '" + std::string(argv[optind - 1]) + "'");
    }
  }
  if (optind + 1 != argc) usage_error("plot", "needs one record FILE");
  if (out.empty()) usage_error("plot", "needs -o FILE.svg");
  std::ifstream in(argv[optind]);
  std::string line, header;
  if (!std::getline(in, header) || header.rfind(kMagic, 0) != 0) {
    std::cerr << "cachealloc-stats plot: " << argv[optind] << " is not a record file\n";
    return 1;
  }
  std::vector<Sample> samples;
  struct Bar {
    std::string kind;
    uint64_t size, bytes;
  };
  std::vector<Bar> bars;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string tag;
    ls >> tag;
    if (tag == "s") {
      Sample s;
      ls >> s.t >> s.live >> s.cached >> s.os_mapped >> s.large_upstream >> s.device >> s.hits >> s.misses;
      if (ls) samples.push_back(s);
    } else if (tag == "h") {
      Bar b;
      ls >> b.kind >> b.size >> b.bytes;
      if (ls) bars.push_back(b);
    }
  }
  if (samples.empty()) {
    std::cerr << "cachealloc-stats plot: no samples in " << argv[optind] << "\n";
    return 1;
  }

  const double W = 900, left = 90, pw = 760;
  double tmax = samples.back().t;
  double ymax = 1;
  for (const Sample& s : samples) {
    ymax = std::max({ymax, double(s.live), double(s.cached), double(s.os_mapped),
                     double(s.large_upstream), double(s.device)});
  }
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"820\" "
     << "font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"" << left << "\" y=\"24\" font-size=\"16\">" << esc(header.substr(sizeof kMagic))
     << ", " << samples.size() << " samples over " << std::lround(tmax * 10) / 10.0 << " s</text>\n";

  // 1. Memory over time.
  Panel m{left, 60, pw, 260, tmax, ymax};
  axes(os, m, "memory", fmt_bytes(ymax));
  struct Series {
    const char* name;
    const char* color;
    uint64_t Sample::*field;
  };
  const Series series[] = {{"live", "#1f77b4", &Sample::live},
                           {"cached", "#2ca02c", &Sample::cached},
                           {"os mapped (small)", "#ff7f0e", &Sample::os_mapped},
                           {"large upstream", "#9467bd", &Sample::large_upstream},
                           {"device", "#d62728", &Sample::device}};
  int k = 0;
  for (const Series& s : series) {
    os << "<polyline class=\"series\" fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2\" points=\"";
    for (const Sample& x : samples) os << m.x(x.t) << "," << m.y(double(x.*s.field)) << " ";
    os << "\"/>\n<text x=\"" << left + 10 + k * 150 << "\" y=\"" << m.y0 + m.h + 20
       << "\" font-size=\"12\" fill=\"" << s.color << "\">" << s.name << "</text>\n";
    ++k;
  }

  // 2. Hit rate per interval.
  Panel h{left, 380, pw, 140, tmax, 1.0};
  axes(os, h, "hit rate per interval", "100%");
  os << "<polyline class=\"series\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"";
  for (size_t i = 1; i < samples.size(); ++i) {
    double dh = double(samples[i].hits - std::min(samples[i].hits, samples[i - 1].hits));
    double dm = double(samples[i].misses - std::min(samples[i].misses, samples[i - 1].misses));
    if (dh + dm <= 0) continue;
    os << h.x(samples[i].t) << "," << h.y(dh / (dh + dm)) << " ";
  }
  os << "\"/>\n";
  os << "<text x=\"" << left + pw << "\" y=\"" << h.y0 + h.h + 18
     << "\" font-size=\"11\" text-anchor=\"end\">" << std::lround(tmax * 10) / 10.0 << " s</text>\n";

  // 3. Live bytes by size class at the last sample.
  std::sort(bars.begin(), bars.end(), [](const Bar& a, const Bar& b) {
    return a.kind != b.kind ? a.kind > b.kind : a.size < b.size;  // small first, by size
  });
  uint64_t bmax = 1;
  for (const Bar& b : bars) bmax = std::max(bmax, b.bytes);
  Panel g{left, 580, pw, 160, 1, double(bmax)};
  axes(os, g, "live bytes by size class (last sample)", fmt_bytes(double(bmax)));
  double bw = bars.empty() ? 0 : pw / double(bars.size());
  for (size_t i = 0; i < bars.size(); ++i) {
    double x = left + i * bw, y = g.y(double(bars[i].bytes));
    os << "<rect class=\"bar\" x=\"" << x + 1 << "\" y=\"" << y << "\" width=\"" << std::max(1.0, bw - 2)
       << "\" height=\"" << g.y0 + g.h - y << "\" fill=\"" << (bars[i].kind == "large" ? "#9467bd" : "#1f77b4")
       << "\"><title>" << bars[i].kind << " " << bars[i].size << " B: " << fmt_bytes(double(bars[i].bytes))
       << "</title></rect>\n";
    if (bars.size() <= 24) {
      os << "<text x=\"" << x + bw / 2 << "\" y=\"" << g.y0 + g.h + 14
         << "\" font-size=\"10\" text-anchor=\"middle\">" << fmt_bytes(double(bars[i].size)) << "</text>\n";
    }
  }
  os << "</svg>\n";
  std::ofstream f(out);
  f << os.str();
  if (!f.flush()) {
    std::cerr << "cachealloc-stats plot: cannot write " << out << "\n";
    return 1;
  }
  std::cout << "wrote " << out << " (" << samples.size() << " samples, " << bars.size() << " size classes)\n";
  return 0;
}

}  // namespace castats
