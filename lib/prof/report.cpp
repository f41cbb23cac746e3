// report.cpp - see report.h.
#include "prof/report.h"

#include <cstring>

#include "platform/os.h"
#include "platform/process.h"
#include "prof/sampler.h"
#include "util/format.h"

namespace cachealloc::prof {
namespace {
constexpr size_t kShownSites = 10;   // leak report: the largest sites
constexpr int kShownFrames = 8;      // leak report: frames per site
constexpr size_t kNameMax = 320;

size_t round_pages(size_t bytes) noexcept {
  size_t page = os::page_size();
  return (bytes + page - 1) & ~(page - 1);
}

// A copy of the table's sites, taken under its lock, in memory mapped for the purpose.
class SiteCopy {
 public:
  explicit SiteCopy(ProfileTable& t) noexcept {
    LockGuard g(t.lock());
    bytes_ = round_pages((t.site_count() + 1) * sizeof(Site));
    sites_ = static_cast<Site*>(os::map_aligned(bytes_, os::page_size()));
    if (sites_ == nullptr) return;
    count_ = t.site_count();
    if (count_ != 0) memcpy(static_cast<void*>(sites_), &t.site(0), count_ * sizeof(Site));
  }
  ~SiteCopy() {
    if (sites_ != nullptr) os::unmap(sites_, bytes_);
  }
  SiteCopy(const SiteCopy&) = delete;
  SiteCopy& operator=(const SiteCopy&) = delete;
  bool ok() const noexcept { return sites_ != nullptr; }
  size_t count() const noexcept { return count_; }
  const Site& operator[](size_t i) const noexcept { return sites_[i]; }

 private:
  Site* sites_ = nullptr;
  size_t count_ = 0;
  size_t bytes_ = 0;
};

// Buffered writes to one descriptor.
class FdWriter {
 public:
  explicit FdWriter(int fd) noexcept : fd_(fd) {}
  template <size_t N>
  void put(const StackText<N>& t) noexcept {
    if (len_ + t.size() > sizeof buf_) flush();
    if (t.size() > sizeof buf_) {
      ok_ = ok_ && os::write_fd(fd_, t.data(), t.size());
      return;
    }
    memcpy(buf_ + len_, t.data(), t.size());
    len_ += t.size();
  }
  bool flush() noexcept {
    if (len_ != 0) ok_ = ok_ && os::write_fd(fd_, buf_, len_);
    len_ = 0;
    return ok_;
  }

 private:
  int fd_;
  bool ok_ = true;
  size_t len_ = 0;
  char buf_[8192];
};

uint64_t rounded(double v) noexcept { return v <= 0 ? 0 : static_cast<uint64_t>(v + 0.5); }

// "12.3 MiB" (or KiB / bytes) for people; the exact figure is printed beside it.
template <size_t N>
void human_bytes(StackText<N>& t, uint64_t b) noexcept {
  const char* unit = "GiB";
  uint64_t scale = uint64_t{1} << 30;
  if (b < (uint64_t{1} << 10)) {
    t.dec(b).str(" bytes");
    return;
  }
  if (b < (uint64_t{1} << 20)) {
    unit = "KiB";
    scale = uint64_t{1} << 10;
  } else if (b < (uint64_t{1} << 30)) {
    unit = "MiB";
    scale = uint64_t{1} << 20;
  }
  uint64_t tenths = (b * 10 + scale / 2) / scale;
  t.dec(tenths / 10).chr('.').dec(tenths % 10).chr(' ').str(unit);
}

// Note [Held by the C library]
// glibc allocates for itself and keeps until the process ends: stdio buffers, locale data, NSS
// modules, the dynamic loader's link maps, getpwnam's result. It frees them only for valgrind
// (__libc_freeres), and LeakSanitizer does not report them because they stay reachable from
// libc's globals. We do not scan for reachability, so we tell them by their stack instead: a site
// whose frames are in libc or the loader up to the first frame of any other object is held by the
// C library, unless the outermost of those frames (the function the program called) is one whose
// result the caller owns (strdup, getline, fopen, ...: kCallerOwns), or one we cannot name: then
// it is the caller's leak. Such sites are summed on
// one line and never count as leaks (nor for CACHEALLOC_LEAK_CHECK=fail).
constexpr const char* kCallerOwns[] = {
    "strdup", "strndup", "__strdup", "__strndup", "wcsdup", "getline", "getdelim", "__getdelim",
    "asprintf", "vasprintf", "__asprintf", "__vasprintf_chk", "__asprintf_chk", "realpath",
    "canonicalize_file_name", "get_current_dir_name", "getcwd", "open_memstream",
    "open_wmemstream", "fopen", "fopen64", "fdopen", "fmemopen", "fopencookie", "popen", "tempnam",
    "scandir", "scandir64", "getaddrinfo", "regcomp", "backtrace_symbols", "opendir", "fdopendir",
    "malloc", "calloc", "realloc", "reallocarray", "aligned_alloc", "memalign", "posix_memalign",
    "valloc", "pvalloc"};

bool is_c_library(const char* file) noexcept {
  const char* base = file;
  for (const char* c = file; *c != '\0'; ++c) {
    if (*c == '/') base = c + 1;
  }
  return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "ld-linux", 8) == 0;
}

bool caller_owns(const os::AddressInfo& info, uintptr_t pc) noexcept {
  // dladdr names the nearest exported symbol: unless pc is inside it, the frame is an internal
  // function the program reached through a tail call (fopen -> __fopen_internal), which we
  // cannot name: the caller's, so that a real leak is never hidden.
  if (info.symbol == nullptr || pc - info.symbol_addr >= info.symbol_size) return true;
  for (const char* name : kCallerOwns) {
    if (strcmp(info.symbol, name) == 0) return true;
  }
  return false;
}

bool held_by_c_library(const Site& s) noexcept {
  // The outermost libc frame before the program's code is the function the program called.
  os::AddressInfo entry{};
  uint32_t f = 0;
  for (; f < s.depth; ++f) {
    os::AddressInfo info{};
    if (!os::describe_address(reinterpret_cast<const void*>(s.pcs[f] - 1), &info) ||
        !is_c_library(info.file)) {
      break;
    }
    entry = info;
  }
  if (f == 0) return false;                     // the program called malloc itself
  if (f == s.depth) return true;                // libc all the way (its own threads, start-up)
  return !caller_owns(entry, s.pcs[f - 1] - 1);
}

// ---- symbolization ----------------------------------------------------------------------------

struct Frame {
  uintptr_t pc;
  char text[kNameMax];
};

// Copies the first line of *cursor into out (at most cap - 1 bytes) and moves past it.
void take_line(const char** cursor, char* out, size_t cap) noexcept {
  const char* s = *cursor;
  size_t n = 0;
  while (*s != '\0' && *s != '\n') {
    if (n + 1 < cap) out[n++] = *s;
    ++s;
  }
  out[n] = '\0';
  if (*s == '\n') ++s;
  *cursor = s;
}

// The fallback: dladdr's nearest dynamic symbol, or the object and offset.
void name_with_dladdr(Frame& f) noexcept {
  StackText<kNameMax> t;
  os::AddressInfo info{};
  if (!os::describe_address(reinterpret_cast<const void*>(f.pc), &info)) {
    t.str("??");
  } else if (info.symbol != nullptr) {
    t.str(info.symbol).chr('+').hex(f.pc - info.symbol_addr).str(" (").str(info.file).chr(')');
  } else {
    t.str("?? (").str(info.file).str("+").hex(f.pc - info.base).chr(')');
  }
  memcpy(f.text, t.data(), t.size() + 1);
}

// Names frames[0..n) with addr2line, one run per object file, then dladdr for what is left.
void symbolize(Frame* frames, size_t n) noexcept {
  constexpr size_t kBatch = 64;
  bool done[kShownSites * kShownFrames] = {};
  const size_t out_cap = 64 << 10;
  char* out = static_cast<char*>(os::map_aligned(round_pages(out_cap), os::page_size()));
  StackText<40> exe;
  exe.str("/proc/").dec(os::process_id()).str("/exe");
  for (size_t i = 0; i < n && out != nullptr; ++i) {
    if (done[i]) continue;
    os::AddressInfo first{};
    if (!os::describe_address(reinterpret_cast<const void*>(frames[i].pc), &first)) continue;
    // The executable's name is what the program was started as ("", or "perl" through PATH):
    // only a name with a '/' is a path addr2line can open; else ours, by pid (addr2line's
    // /proc/self is its own).
    const char* file = first.file != nullptr && strchr(first.file, '/') != nullptr ? first.file
                                                                                 : exe.data();
    // Every not yet named frame of the same object, up to a batch.
    size_t members[kBatch];
    char addrs[kBatch][24];
    const char* argv[kBatch + 8];
    size_t argc = 0;
    argv[argc++] = "addr2line";
    argv[argc++] = "-a";  // each address first: inlined frames make the line count vary
    argv[argc++] = "-i";
    argv[argc++] = "-C";
    argv[argc++] = "-f";
    argv[argc++] = "-e";
    argv[argc++] = file;
    size_t m = 0;
    for (size_t j = i; j < n && m < kBatch; ++j) {
      if (done[j]) continue;
      os::AddressInfo info{};
      if (!os::describe_address(reinterpret_cast<const void*>(frames[j].pc), &info) ||
          info.base != first.base) {
        continue;
      }
      // A return address: the call is the byte before it.
      uintptr_t a = frames[j].pc - 1 - (info.relocatable ? info.base : 0);
      StackText<24> t;
      t.hex(a);
      memcpy(addrs[m], t.data(), t.size() + 1);
      argv[argc++] = addrs[m];
      members[m++] = j;
      done[j] = true;
    }
    argv[argc] = nullptr;
    if (os::run_capture(argv, out, out_cap) < 0) continue;
    // Per address: "0x<addr>", then (function, file:line) pairs, innermost first; the later
    // pairs are the functions it was inlined into, at their call sites.
    const char* cursor = out;
    size_t k = 0;
    bool in_member = false;
    StackText<kNameMax> t;
    auto finish = [&]() {
      if (in_member && t.size() != 0) memcpy(frames[members[k - 1]].text, t.data(), t.size() + 1);
    };
    while (*cursor != '\0') {
      char fn[kNameMax / 2];
      take_line(&cursor, fn, sizeof fn);
      if (fn[0] == '0' && fn[1] == 'x') {
        finish();
        in_member = k < m;
        ++k;
        t = StackText<kNameMax>();
        continue;
      }
      char where[kNameMax / 2];
      take_line(&cursor, where, sizeof where);
      if (!in_member || fn[0] == '\0' || (fn[0] == '?' && fn[1] == '?')) continue;  // dladdr
      if (t.size() == 0) {
        t.str(fn);
        if (where[0] != '?') t.chr(' ').str(where);
      } else {
        t.str(" <- ").str(fn);  // the function it was inlined into, at the call
        if (where[0] != '?') t.chr(' ').str(where);
      }
    }
    finish();
  }
  if (out != nullptr) os::unmap(out, round_pages(out_cap));
  for (size_t i = 0; i < n; ++i) {
    if (frames[i].text[0] == '\0') name_with_dladdr(frames[i]);
  }
}

void line_out(const char* s, size_t len) noexcept { os::write_stderr(s, len); }
template <size_t N>
void line_out(const StackText<N>& t) noexcept { line_out(t.data(), t.size()); }

}  // namespace

bool write_pprof(ProfileTable& t, int fd) noexcept {
  SiteCopy sites(t);
  if (!sites.ok()) return false;
  uint64_t live_n = 0, live_b = 0, total_n = 0, total_b = 0;
  for (size_t i = 0; i < sites.count(); ++i) {
    live_n += sites[i].live_count;
    live_b += sites[i].live_bytes;
    total_n += sites[i].total_count;
    total_b += sites[i].total_bytes;
  }
  FdWriter w(fd);
  StackText<160> head;
  head.str("heap profile: ").dec(live_n).str(": ").dec(live_b).str(" [").dec(total_n).str(": ");
  head.dec(total_b).str("] @ heap_v2/").dec(t.rate() == 0 ? 1 : t.rate()).chr('\n');
  w.put(head);
  for (size_t i = 0; i < sites.count(); ++i) {
    const Site& s = sites[i];
    if (s.total_count == 0) continue;
    StackText<64 + kMaxFrames * 20> line;
    line.dec(s.live_count).str(": ").dec(s.live_bytes).str(" [").dec(s.total_count).str(": ");
    line.dec(s.total_bytes).str("] @");
    for (uint32_t f = 0; f < s.depth; ++f) line.chr(' ').hex(f == 0 ? s.pcs[f] - 1 : s.pcs[f]);
    line.chr('\n');
    w.put(line);
  }
  StackText<32> maps;
  maps.str("\nMAPPED_LIBRARIES:\n");
  w.put(maps);
  if (!w.flush()) return false;
  return os::copy_file("/proc/self/maps", fd);
}

uint64_t report_leaks(ProfileTable& t, const char* what) noexcept {
  SiteCopy sites(t);
  const bool sampled = t.rate() != 0;
  if (!sites.ok()) return 0;
  // The largest sites by estimated live bytes (a selection: only the first few are shown).
  size_t top[kShownSites];
  size_t shown = 0;
  uint64_t live_sites = 0, sampled_blocks = 0;
  double est_bytes = 0, est_count = 0;
  uint64_t held_sites = 0;
  double held_bytes = 0;
  for (size_t i = 0; i < sites.count(); ++i) {
    const Site& s = sites[i];
    if (s.live_count == 0) continue;
    if (held_by_c_library(s)) {  // Note [Held by the C library]
      ++held_sites;
      held_bytes += s.est_bytes;
      continue;
    }
    ++live_sites;
    sampled_blocks += s.live_count;
    est_bytes += s.est_bytes;
    est_count += s.est_count;
    size_t k = shown < kShownSites ? shown++ : kShownSites;
    if (k == kShownSites) {
      if (s.est_bytes <= sites[top[kShownSites - 1]].est_bytes) continue;
      k = kShownSites - 1;
    }
    while (k > 0 && sites[top[k - 1]].est_bytes < s.est_bytes) {
      top[k] = top[k - 1];
      --k;
    }
    top[k] = i;
  }
  StackText<512> head;
  head.str("cachealloc: leak check: ").str(what).str(": ");
  if (live_sites == 0) {
    head.str(sampled ? "no sampled block is still live\n" : "no block is still live\n");
    line_out(head);
  }
  if (held_sites != 0) {
    StackText<256> t;
    t.str("cachealloc: leak check: ").str(what).str(": not counted: ").str(sampled ? "about " : "");
    t.dec(rounded(held_bytes)).str(" bytes from ").dec(held_sites);
    t.str(held_sites == 1 ? " site" : " sites").str(" inside the C library, which keeps them until exit\n");
    line_out(t);
  }
  if (live_sites == 0) return 0;
  head.str(sampled ? "about " : "").dec(rounded(est_bytes)).str(" bytes (");
  human_bytes(head, rounded(est_bytes));
  head.str(") in ").str(sampled ? "about " : "").dec(rounded(est_count));
  head.str(" blocks still live at exit, from ").dec(live_sites).str(live_sites == 1 ? " site" : " sites");
  if (sampled) {
    head.str(" (").dec(sampled_blocks).str(" sampled blocks, one per ").dec(t.rate()).str(" bytes)");
  }
  head.chr('\n');
  line_out(head);

  // Symbolize the frames shown, all at once (one addr2line per object).
  Frame* frames = static_cast<Frame*>(
      os::map_aligned(round_pages(kShownSites * kShownFrames * sizeof(Frame)), os::page_size()));
  size_t nframes = 0;
  if (frames != nullptr) {
    for (size_t k = 0; k < shown; ++k) {
      const Site& s = sites[top[k]];
      for (uint32_t f = 0; f < s.depth && f < static_cast<uint32_t>(kShownFrames); ++f) {
        frames[nframes].pc = s.pcs[f];
        frames[nframes++].text[0] = '\0';
      }
    }
    symbolize(frames, nframes);
  }
  size_t next = 0;
  for (size_t k = 0; k < shown; ++k) {
    const Site& s = sites[top[k]];
    StackText<512> t;
    t.str("cachealloc:   ").str(sampled ? "about " : "").dec(rounded(s.est_bytes)).str(" bytes (");
    human_bytes(t, rounded(s.est_bytes));
    t.str(") in ").str(sampled ? "about " : "").dec(rounded(s.est_count)).str(" blocks");
    if (sampled) t.str(" (").dec(s.live_count).str(" sampled)");
    t.str(" allocated at:\n");
    line_out(t);
    for (uint32_t f = 0; f < s.depth && f < static_cast<uint32_t>(kShownFrames); ++f) {
      StackText<kNameMax + 64> fl;
      fl.str("cachealloc:     #").dec(f).chr(' ').hex(s.pcs[f]).chr(' ');
      fl.str(frames != nullptr ? frames[next++].text : "").chr('\n');
      line_out(fl);
    }
  }
  if (live_sites > shown) {
    StackText<128> t;
    t.str("cachealloc:   ... and ").dec(live_sites - shown).str(" smaller sites\n");
    line_out(t);
  }
  if (frames != nullptr) {
    os::unmap(frames, round_pages(kShownSites * kShownFrames * sizeof(Frame)));
  }
  return sampled_blocks;
}

}  // namespace cachealloc::prof
