// cachealloc-stats - shows the live statistics that processes under libcachealloc publish in
// /dev/shm/cachealloc.<pid> (include/cachealloc/stats_abi.h). See docs/stats.md.
//
//   cachealloc-stats                 one row per process (stale segments marked)
//   cachealloc-stats PID             the full table of one process
//   --watch SECONDS                  refresh in place, with rates per second
//   --json | --prometheus            machine-readable output
//   --gc                             remove the caller's stale segments
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cachealloc/version.h"
#include "entry.h"
#include "render.h"
#include "timeline.h"

namespace {

using namespace castats;

constexpr int kExitUsage = 2;

struct Args {
  bool json = false, prometheus = false, gc = false, has_pid = false;
  double watch = 0;
  long count = 0;  // refreshes in --watch mode; 0: until interrupted
  uint32_t pid = 0;
  RenderOptions render;
  std::string dir;
  std::string output;  // -o: write there atomically (temporary file + rename)
};

const char kUsage[] =
    "usage: cachealloc-stats [options] [PID]\n"
    "  (no PID)           list every process publishing statistics: pid, program, state,\n"
    "                     uptime, live bytes, cached bytes, hit rate\n"
    "  PID                full table of one process: totals, pools, layouts (by bytes)\n"
    "  --watch SECONDS    refresh every SECONDS with rates per second, until interrupted\n"
    "  --count N          with --watch: stop after N refreshes\n"
    "  --json             one JSON object (one per refresh with --watch); see docs/stats.md\n"
    "  --prometheus       Prometheus text format (metrics cachealloc_*, labels pid, program)\n"
    "  --layouts          with --prometheus: also per-layout series (many per process)\n"
    "  -o, --output FILE  write the output to FILE atomically (temporary file + rename),\n"
    "                     e.g. into node_exporter's textfile directory; not with --watch\n"
    "  --top N            layouts shown in the table (default 20; 0: all)\n"
    "  --gc               remove stale segments (their process is gone) that you own\n"
    "  --dir DIR          where segments live (default $CACHEALLOC_STATS_DIR, else /dev/shm)\n"
    "  --version, --help\n"
    "\n"
    "cachealloc-stats record PID -o FILE [--interval SECONDS]   sample PID (default every 0.5 s)\n"
    "                     until it exits or Ctrl-C\n"
    "cachealloc-stats plot FILE -o CHART.svg   memory over time, hit rate per interval, live\n"
    "                     bytes by size class\n"
    "cachealloc-stats prof-dump PID [--timeout SECONDS]   ask PID (run with CACHEALLOC_PROF=1)\n"
    "                     for a heap profile and print where it was written (default wait 10 s;\n"
    "                     the process answers at its next allocator call; docs/profiling.md)\n"
    "  options take their value as --opt VALUE or --opt=VALUE\n"
    "exit status: 0 ok, 2 usage, 3 no such process, 4 no segment, 5 permission denied,\n"
    "             6 unsupported segment version, 7 truncated or corrupt segment, 8 wrong owner\n";

// A usage error: one line and a hint on stderr, exit 2 (the usage itself goes to stdout on --help).
[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "cachealloc-stats: " << msg << "\ntry 'cachealloc-stats --help'\n";
  std::exit(kExitUsage);
}

bool parse_number(const std::string& s, double* out) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno != 0 || !(v >= 0) || v > 1e6) return false;
  *out = v;
  return true;
}

// getopt_long: --opt VALUE and --opt=VALUE, options anywhere on the line.
Args parse_args(int argc, char** argv) {
  Args a;
  const char* env_dir = std::getenv("CACHEALLOC_STATS_DIR");
  a.dir = env_dir != nullptr && *env_dir != '\0' ? env_dir : "/dev/shm";
  enum { kJson = 1000, kPrometheus, kGc, kWatch, kCount, kTop, kDir, kVersion, kLayouts };
  static const option kLong[] = {
      {"json", no_argument, nullptr, kJson},       {"prometheus", no_argument, nullptr, kPrometheus},
      {"gc", no_argument, nullptr, kGc},           {"watch", required_argument, nullptr, kWatch},
      {"count", required_argument, nullptr, kCount}, {"top", required_argument, nullptr, kTop},
      {"dir", required_argument, nullptr, kDir},   {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, kVersion}, {"layouts", no_argument, nullptr, kLayouts},
      {"output", required_argument, nullptr, 'o'}, {nullptr, 0, nullptr, 0},
  };
  opterr = 0;  // our own one-line messages
  int c;
  while ((c = getopt_long(argc, argv, ":ho:", kLong, nullptr)) != -1) {
    std::string v = optarg != nullptr ? optarg : "";
    switch (c) {
      case kJson: a.json = true; break;
      case kPrometheus: a.prometheus = true; break;
      case kGc: a.gc = true; break;
      case kWatch:
        if (!parse_number(v, &a.watch) || a.watch < 0.05) usage_error("bad --watch interval '" + v + "'");
        break;
      case kCount: {
        double n = 0;
        if (!parse_number(v, &n) || n < 1) usage_error("bad --count '" + v + "'");
        a.count = static_cast<long>(n);
        break;
      }
      case kTop: {
        double n = 0;
        if (!parse_number(v, &n)) usage_error("bad --top '" + v + "'");
        a.render.top_layouts = static_cast<size_t>(n);
        break;
      }
      case kDir: a.dir = v; break;
      case kLayouts: a.render.prometheus_layouts = true; break;
      case 'o':
        if (v.empty()) usage_error("-o needs a file name");
        a.output = v;
        break;
      case 'h':
        std::cout << kUsage;
        std::exit(0);
      case kVersion:
        std::cout << "cachealloc-stats " CACHEALLOC_VERSION_STRING " (segment ABI version "
                  << CA_STATS_VERSION << ")\n";
        std::exit(0);
      case ':':
        usage_error(std::string(argv[optind - 1]) + " needs a value");
      default:
        usage_error("unknown option '" + std::string(argv[optind - 1]) + "'");
    }
  }
  for (int i = optind; i < argc; ++i) {
    std::string s = argv[i];
    if (a.has_pid) usage_error("more than one PID");
    if (!parse_pid(s, &a.pid)) usage_error("'" + s + "' is not a process id");
    a.has_pid = true;
  }
  if (a.json && a.prometheus) usage_error("--json and --prometheus exclude each other");
  if (a.gc && (a.watch > 0 || a.json || a.prometheus || !a.output.empty())) {
    usage_error("--gc takes no output options");
  }
  if (!a.output.empty() && a.watch > 0) usage_error("-o cannot be used with --watch");
  if (a.render.prometheus_layouts && !a.prometheus) usage_error("--layouts needs --prometheus");
  return a;
}

std::vector<Entry> load_all(const std::string& dir) {
  std::vector<Entry> entries;
  for (uint32_t pid : list_segment_pids(dir)) entries.push_back(load_entry(dir, pid));
  return entries;
}

int run_gc(const Args& a) {
  std::vector<uint32_t> pids = a.has_pid ? std::vector<uint32_t>{a.pid} : list_segment_pids(a.dir);
  int removed = 0;
  for (uint32_t pid : pids) {
    Entry e = load_entry(a.dir, pid);
    bool gone = e.ok() ? e.stale : (e.file.opened && !e.proc.exists);
    if (!gone || !e.file.opened || e.file.owner != geteuid()) continue;
    if (unlink(e.path.c_str()) == 0) {
      std::cout << "removed " << e.path << " (pid " << pid
                << (e.ok() ? ", " + e.seg.exe : std::string(", ") + e.state()) << ")\n";
      ++removed;
    } else {
      std::cerr << "cachealloc-stats: cannot remove " << e.path << ": " << strerror(errno) << "\n";
    }
  }
  std::cout << removed << " stale segment" << (removed == 1 ? "" : "s") << " removed\n";
  return 0;
}

volatile sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

// Renders one frame. Returns the exit status (PID mode: the entry's status).
int frame(const Args& a, std::vector<Entry>& prev, std::ostream& out) {
  RenderOptions opt = a.render;
  opt.now_ns = realtime_now_ns();
  std::vector<Entry> now;
  if (a.has_pid) {
    now.push_back(load_entry(a.dir, a.pid));
  } else {
    now = load_all(a.dir);
  }
  std::vector<Rates> rates;
  bool with_rates = a.watch > 0;
  for (const Entry& e : now) {
    Rates r;
    for (const Entry& p : prev) {
      if (p.pid == e.pid) r = compute_rates(p, e);
    }
    rates.push_back(r);
  }
  int status = 0;
  if (a.has_pid) {
    const Entry& e = now[0];
    if (!e.ok()) {
      std::cerr << "cachealloc-stats: pid " << e.pid << ": " << e.message << "\n";
      status = exit_code(e.status);
      // docs/stats.md: with --json an error is still one JSON object on stdout.
      if (a.json) {
        render_entry_json(out, e, nullptr, opt);
        out << "\n";
      }
    } else if (a.json) {
      render_entry_json(out, e, with_rates ? &rates[0] : nullptr, opt);
      out << "\n";
    } else if (a.prometheus) {
      render_prometheus(out, now, opt);
    } else {
      render_entry_text(out, e, with_rates ? &rates[0] : nullptr, opt);
    }
  } else if (a.json) {
    render_list_json(out, now, with_rates ? &rates : nullptr, opt);
    out << "\n";
  } else if (a.prometheus) {
    render_prometheus(out, now, opt);
  } else {
    render_list_text(out, now, with_rates ? &rates : nullptr, opt);
  }
  prev = std::move(now);
  return status;
}

// One frame into a.output: written to a temporary file in the same directory, flushed, then renamed
// over the target, so a reader (node_exporter's textfile collector) never sees half a file.
int frame_to_file(const Args& a, std::vector<Entry>& prev) {
  std::ostringstream buf;
  int status = frame(a, prev, buf);
  std::string tmp = a.output + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    std::cerr << "cachealloc-stats: cannot write " << tmp << ": " << strerror(errno) << "\n";
    return 1;
  }
  const std::string text = buf.str();
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fflush(f) == 0 && ok;
  ok = fsync(fileno(f)) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), a.output.c_str()) != 0) {
    std::cerr << "cachealloc-stats: cannot write " << a.output << ": " << strerror(errno) << "\n";
    std::remove(tmp.c_str());
    return 1;
  }
  return status;
}

// Note [Profiles on request] (lib/stats/publisher.cpp): adds 1 to the segment's prof_requests,
// the one word a reader writes, then waits for the process to publish prof_dumps >= that value.
int prof_dump_main(int argc, char** argv) {
  uint32_t pid = 0;
  double timeout = 10;
  const char* env_dir = std::getenv("CACHEALLOC_STATS_DIR");
  std::string dir = env_dir != nullptr && *env_dir != '\0' ? env_dir : "/dev/shm";
  bool has_pid = false;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if ((s == "--timeout" || s == "--dir") && i + 1 < argc) {
      std::string v = argv[++i];
      if (s == "--dir") {
        dir = v;
      } else if (!parse_number(v, &timeout) || timeout <= 0) {
        usage_error("bad --timeout '" + v + "'");
      }
    } else if (!has_pid && parse_pid(s, &pid)) {
      has_pid = true;
    } else {
      usage_error("prof-dump takes PID [--timeout SECONDS] [--dir DIR], not '" + s + "'");
    }
  }
  if (!has_pid) usage_error("prof-dump needs a PID");
  Entry e = load_entry(dir, pid);
  if (!e.ok()) {
    std::cerr << "cachealloc-stats: pid " << pid << ": " << status_word(e.status) << "\n";
    return exit_code(e.status);
  }
  int fd = open(e.path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    std::cerr << "cachealloc-stats: cannot open " << e.path << " for writing: " << strerror(errno) << "\n";
    return errno == EACCES ? exit_code(Status::kPermission) : exit_code(Status::kNoSegment);
  }
  void* map = mmap(nullptr, sizeof(ca_stats_header), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    std::cerr << "cachealloc-stats: cannot map " << e.path << ": " << strerror(errno) << "\n";
    return exit_code(Status::kNoSegment);
  }
  auto* h = static_cast<ca_stats_header*>(map);
  const uint64_t want = std::atomic_ref<uint64_t>(h->prof_requests).fetch_add(1) + 1;
  munmap(map, sizeof(ca_stats_header));
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  while (std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    Entry now = load_entry(dir, pid);
    if (!now.ok()) {
      std::cerr << "cachealloc-stats: pid " << pid << ": " << status_word(now.status) << "\n";
      return exit_code(now.status);
    }
    if (now.seg.header.prof_dumps < want) continue;
    if (now.seg.header.prof_dump_errno != 0) {
      std::cerr << "cachealloc-stats: pid " << pid << " did not write a profile: "
                << strerror(static_cast<int>(now.seg.header.prof_dump_errno))
                << (now.seg.header.prof_dump_errno == EINVAL ? " (is it running with CACHEALLOC_PROF=1?)" : "")
                << "\n";
      return 1;
    }
    std::string path(now.seg.totals.prof_dump_path,
                     strnlen(now.seg.totals.prof_dump_path, sizeof now.seg.totals.prof_dump_path));
    std::cout << path << "\n";
    return 0;
  }
  std::cerr << "cachealloc-stats: pid " << pid << " did not answer within " << timeout
            << " s (it answers at its next allocator call)\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "prof-dump") == 0) return prof_dump_main(argc - 1, argv + 1);
  if (argc > 1 && std::strcmp(argv[1], "record") == 0) return record_main(argc - 1, argv + 1);
  if (argc > 1 && std::strcmp(argv[1], "plot") == 0) return plot_main(argc - 1, argv + 1);
  Args a = parse_args(argc, argv);
  if (a.gc) return run_gc(a);
  std::vector<Entry> prev;
  if (a.watch <= 0 && !a.output.empty()) return frame_to_file(a, prev);
  if (a.watch <= 0) return frame(a, prev, std::cout);

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  const bool tty = isatty(1) && !a.json && !a.prometheus;
  for (long n = 1; !g_interrupted; ++n) {
    std::ostringstream buf;
    int status = frame(a, prev, buf);
    if (tty) std::cout << "\x1b[H\x1b[2J";
    std::cout << buf.str();
    if (!tty && !a.json) std::cout << "\n";
    std::cout.flush();
    if (status != 0) return status;  // the process went away (or its segment did)
    if (a.count != 0 && n >= a.count) break;
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(a.watch);
    while (!g_interrupted && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return 0;
}
