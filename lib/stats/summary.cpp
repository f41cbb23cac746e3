// summary.cpp - see summary.h. Example:
//
//   cachealloc: stats for myprog (pid 4242), up 1.52 s, 31 publications
//   cachealloc:   allocs 120345 (9.5 MiB requested)  frees 120001  live 344 blocks, 1.2 MiB (peak 8.0 MiB)
//   cachealloc:   cached 3.0 MiB (limit 256.0 MiB)  thread caches 96.0 KiB  transfer 0 B
//   cachealloc:   os mapped 12.0 MiB  large upstream 1.0 MiB  threads 4
//   cachealloc:   hit rate 99.1%  refills 1532  flushes 1490  retains 0  releases 0
//   cachealloc:   pool       allocs      frees     hit%  evictions   up-allocs   up-frees     cached       live
//   cachealloc:   small      120001     119700     99.1          0           3          0    3.0 MiB  1.1 MiB
//   cachealloc:   cuda device 0: reserved 96.0 MiB  cached 32.0 MiB  live 64.0 MiB  hit rate 98.0%  ...
//   cachealloc:   layouts by live bytes (size  live-blocks  live-bytes  refills  flushes  slabs):
#include "stats/summary.h"

#include "platform/os.h"
#include "platform/shm.h"
#include "util/format.h"

namespace cachealloc::stats {
namespace {

using Line = StackText<256>;

// Hands one finished line to the sink, with its newline, in one call.
void emit(LineSink out, const Line& l) noexcept {
  char buf[sizeof(Line) + 2];
  size_t n = l.size();
  for (size_t i = 0; i < n; ++i) buf[i] = l.data()[i];
  buf[n] = '\n';
  buf[n + 1] = '\0';
  out.write(out.ctx, buf);
}

void write_fd2(void*, const char* line) noexcept {
  size_t n = 0;
  while (line[n] != '\0') ++n;
  os::write_stderr(line, n);
}

// "1.5 MiB": one decimal, binary units.
void bytes(Line& l, uint64_t v) noexcept {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  unsigned u = 0;
  uint64_t whole = v, tenths = 0;
  while (whole >= 1024 && u + 1 < sizeof kUnits / sizeof kUnits[0]) {
    tenths = (whole % 1024) * 10 / 1024;
    whole /= 1024;
    ++u;
  }
  l.dec(whole);
  if (u != 0) l.chr('.').dec(tenths);
  l.chr(' ').str(kUnits[u]);
}

void percent(Line& l, uint64_t num, uint64_t den) noexcept {
  if (den == 0) {
    l.str("-");
    return;
  }
  uint64_t per_mille = num >= den ? 1000 : num * 1000 / den;
  l.dec(per_mille / 10).chr('.').dec(per_mille % 10).chr('%');
}

// Right-aligns what `fill` writes in a field of `width` characters.
template <typename F>
void field(Line& l, size_t width, F fill) noexcept {
  Line tmp;
  fill(tmp);
  for (size_t i = tmp.size(); i < width; ++i) l.chr(' ');
  l.str(tmp.data());
}

void pool_line(LineSink out, const ca_stats_pool_row& p) noexcept {
  Line l;
  l.str("cachealloc:   ");
  size_t len = 0;
  for (; len < sizeof p.name && p.name[len] != '\0'; ++len) l.chr(p.name[len]);
  for (; len < 6; ++len) l.chr(' ');
  field(l, 11, [&](Line& t) { t.dec(p.allocs); });
  field(l, 11, [&](Line& t) { t.dec(p.frees); });
  field(l, 9, [&](Line& t) { percent(t, p.hits, p.hits + p.misses); });
  field(l, 11, [&](Line& t) { t.dec(p.evictions); });
  field(l, 12, [&](Line& t) { t.dec(p.upstream_allocs); });
  field(l, 11, [&](Line& t) { t.dec(p.upstream_frees); });
  field(l, 11, [&](Line& t) { bytes(t, p.bytes_cached); });
  field(l, 11, [&](Line& t) { bytes(t, p.bytes_live); });
  emit(out, l);
}

}  // namespace

LineSink stderr_sink() noexcept { return LineSink{&write_fd2, nullptr}; }

namespace {
void write_to_fd(void* ctx, const char* line) noexcept {
  size_t n = 0;
  while (line[n] != '\0') ++n;
  os::write_fd(*static_cast<int*>(ctx), line, n);
}
}  // namespace

LineSink fd_sink(int* fd) noexcept { return LineSink{&write_to_fd, fd}; }

void print_summary(const Image& image, LineSink out) noexcept {
  const ca_stats_header& h = *image.header();
  const ca_stats_totals& t = *image.totals();
  uint64_t now = os::realtime_ns();
  uint64_t up_ms = now > h.start_time_ns ? (now - h.start_time_ns) / 1000000 : 0;
  {
    Line l;
    l.str("cachealloc: stats for ").str(h.exe).str(" (pid ").dec(h.pid).str("), up ");
    l.dec(up_ms / 1000).chr('.').dec(up_ms % 1000 / 100).dec(up_ms % 100 / 10).str(" s, ");
    l.dec(h.publish_count).str(" publications");
    emit(out, l);
  }
  {
    Line l;
    l.str("cachealloc:   allocs ").dec(t.allocs).str(" (");
    bytes(l, t.bytes_requested);
    l.str(" requested)  frees ").dec(t.frees).str("  live ");
    l.dec(t.blocks_live).str(" blocks, ");
    bytes(l, t.bytes_live);
    l.str(" (peak ");
    bytes(l, t.bytes_live_peak);
    l.chr(')');
    emit(out, l);
  }
  {
    Line l;
    l.str("cachealloc:   cached ");
    bytes(l, t.bytes_cached);
    l.str(" (limit ");
    bytes(l, t.cache_limit);
    l.str(")  thread caches ");
    bytes(l, t.bytes_thread_cached);
    l.str("  transfer ");
    bytes(l, t.bytes_transfer);
    emit(out, l);
  }
  {
    Line l;
    l.str("cachealloc:   os mapped ");
    bytes(l, t.bytes_os_mapped);
    l.str("  large upstream ");
    bytes(l, t.bytes_large_upstream);
    l.str(" (+");
    bytes(l, t.bytes_upstream_retained);
    l.str(" retained)  threads ").dec(t.threads);
    emit(out, l);
  }
  {
    Line l;
    l.str("cachealloc:   hit rate ");
    percent(l, t.hits, t.hits + t.misses);
    l.str("  refills ").dec(t.refills).str("  flushes ").dec(t.flushes);
    l.str("  retains ").dec(t.retains).str("  releases ").dec(t.releases);
    if (t.adopts != 0) l.str("  adopts ").dec(t.adopts);
    emit(out, l);
  }
  {
    Line l;
    l.str("cachealloc:   pool       allocs      frees     hit%  evictions   up-allocs   up-frees"
          "     cached       live");
    emit(out, l);
  }
  for (uint32_t i = 0; i < h.pool_count && i < CA_STATS_POOL_CAPACITY; ++i) pool_line(out, *image.pool(i));

  for (uint32_t i = 0; i < h.device_count && i < CA_STATS_DEVICE_CAPACITY; ++i) {
    const ca_stats_device_row& d = *image.device(i);
    Line l;
    l.str("cachealloc:   cuda device ").dec(static_cast<uint64_t>(d.device));
    l.str(d.pinned ? " pinned: reserved " : ": reserved ");
    bytes(l, d.bytes_reserved);
    l.str("  cached ");
    bytes(l, d.bytes_cached);
    l.str("  live ");
    bytes(l, d.bytes_live);
    l.str("  hit rate ");
    percent(l, d.hits, d.hits + d.misses);
    l.str("  syncs ").dec(d.syncs_forced).str("  oom retries ").dec(d.oom_retries);
    emit(out, l);
  }

  // The five layouts holding the most live bytes (selection, no sorting buffer needed).
  uint32_t n = h.layout_count < CA_STATS_LAYOUT_CAPACITY ? h.layout_count : CA_STATS_LAYOUT_CAPACITY;
  bool shown[CA_STATS_LAYOUT_CAPACITY] = {};
  bool header_done = false;
  for (int k = 0; k < 5; ++k) {
    const ca_stats_layout_row* best = nullptr;
    uint32_t best_i = 0;
    for (uint32_t i = 0; i < n; ++i) {
      const ca_stats_layout_row* r = image.layout(i);
      if (shown[i] || r->bytes_live == 0) continue;
      if (best == nullptr || r->bytes_live > best->bytes_live) {
        best = r;
        best_i = i;
      }
    }
    if (best == nullptr) break;
    shown[best_i] = true;
    if (!header_done) {
      Line l;
      l.str("cachealloc:   busiest layouts      size   live-blocks   live-bytes     refills     flushes");
      emit(out, l);
      header_done = true;
    }
    Line l;
    l.str("cachealloc:                  ");
    field(l, 12, [&](Line& x) { x.dec(best->block_size); });
    field(l, 14, [&](Line& x) { x.dec(best->blocks_live); });
    field(l, 13, [&](Line& x) { bytes(x, best->bytes_live); });
    field(l, 12, [&](Line& x) { x.dec(best->refills); });
    field(l, 12, [&](Line& x) { x.dec(best->flushes); });
    emit(out, l);
  }
}

// <malloc version="1" allocator="cachealloc"> ... </malloc>: one line per element. The elements
// are cachealloc's own (glibc's arena/fastbin structure does not exist here); a reader that only
// wants the totals finds them in the <total> and <system> elements, as in glibc's output.
void print_xml(const Image& image, LineSink out) noexcept {
  const ca_stats_header& h = *image.header();
  const ca_stats_totals& t = *image.totals();
  {
    Line l;
    l.str("<malloc version=\"1\" allocator=\"cachealloc\" library_version=\"")
        .str(h.library_version).str("\" pid=\"").dec(h.pid).str("\">");
    emit(out, l);
  }
  {
    Line l;
    l.str("<sizes>");
    emit(out, l);
  }
  uint32_t n = h.layout_count < CA_STATS_LAYOUT_CAPACITY ? h.layout_count : CA_STATS_LAYOUT_CAPACITY;
  for (uint32_t i = 0; i < n; ++i) {
    const ca_stats_layout_row& r = *image.layout(i);
    Line l;
    l.str("<size kind=\"").str(r.kind == CA_STATS_LAYOUT_LARGE ? "large" : "small");
    l.str("\" block_size=\"").dec(r.block_size).str("\" live_count=\"").dec(r.blocks_live);
    l.str("\" live_size=\"").dec(r.bytes_live).str("\"/>");
    emit(out, l);
  }
  {
    Line l;
    l.str("</sizes>");
    emit(out, l);
  }
  for (uint32_t i = 0; i < h.pool_count && i < CA_STATS_POOL_CAPACITY; ++i) {
    const ca_stats_pool_row& p = *image.pool(i);
    char name[CA_STATS_POOL_NAME_LEN + 1] = {};
    for (size_t k = 0; k < sizeof p.name && p.name[k] != '\0'; ++k) name[k] = p.name[k];
    Line l;
    l.str("<pool name=\"").str(name).str("\" live_count=\"").dec(p.blocks_live);
    l.str("\" live_size=\"").dec(p.bytes_live).str("\" cached_size=\"").dec(p.bytes_cached);
    l.str("\" hits=\"").dec(p.hits).str("\" misses=\"").dec(p.misses).str("\"/>");
    emit(out, l);
  }
  struct Item {
    const char* element;
    const char* type;
    uint64_t size;
    bool count;  // the element carries count="blocks live"
  };
  const Item items[] = {
      {"total", "live", t.bytes_live, true},
      {"total", "peak", t.bytes_live_peak, false},
      {"total", "cached", t.bytes_cached, false},
      {"total", "thread_cached", t.bytes_thread_cached, false},
      {"total", "transfer", t.bytes_transfer, false},
      {"system", "current", t.bytes_os_mapped + t.bytes_large_upstream, false},
  };
  for (const Item& it : items) {
    Line l;
    l.chr('<').str(it.element).str(" type=\"").str(it.type).str("\" size=\"").dec(it.size);
    if (it.count) l.str("\" count=\"").dec(t.blocks_live);
    l.str("\"/>");
    emit(out, l);
  }
  {
    Line l;
    l.str("</malloc>");
    emit(out, l);
  }
}

}  // namespace cachealloc::stats
