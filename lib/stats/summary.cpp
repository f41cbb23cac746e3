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

void emit(const Line& l) noexcept {
  os::write_stderr(l.data(), l.size());
  os::write_stderr("\n", 1);
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

void pool_line(const ca_stats_pool_row& p) noexcept {
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
  emit(l);
}

}  // namespace

void print_summary(const Image& image) noexcept {
  const ca_stats_header& h = *image.header();
  const ca_stats_totals& t = *image.totals();
  uint64_t now = os::realtime_ns();
  uint64_t up_ms = now > h.start_time_ns ? (now - h.start_time_ns) / 1000000 : 0;
  {
    Line l;
    l.str("cachealloc: stats for ").str(h.exe).str(" (pid ").dec(h.pid).str("), up ");
    l.dec(up_ms / 1000).chr('.').dec(up_ms % 1000 / 100).dec(up_ms % 100 / 10).str(" s, ");
    l.dec(h.publish_count).str(" publications");
    emit(l);
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
    emit(l);
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
    emit(l);
  }
  {
    Line l;
    l.str("cachealloc:   os mapped ");
    bytes(l, t.bytes_os_mapped);
    l.str("  large upstream ");
    bytes(l, t.bytes_large_upstream);
    l.str("  threads ").dec(t.threads);
    emit(l);
  }
  {
    Line l;
    l.str("cachealloc:   hit rate ");
    percent(l, t.hits, t.hits + t.misses);
    l.str("  refills ").dec(t.refills).str("  flushes ").dec(t.flushes);
    l.str("  retains ").dec(t.retains).str("  releases ").dec(t.releases);
    if (t.adopts != 0) l.str("  adopts ").dec(t.adopts);
    emit(l);
  }
  {
    Line l;
    l.str("cachealloc:   pool       allocs      frees     hit%  evictions   up-allocs   up-frees"
          "     cached       live");
    emit(l);
  }
  for (uint32_t i = 0; i < h.pool_count && i < CA_STATS_POOL_CAPACITY; ++i) pool_line(*image.pool(i));

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
    emit(l);
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
      emit(l);
      header_done = true;
    }
    Line l;
    l.str("cachealloc:                  ");
    field(l, 12, [&](Line& x) { x.dec(best->block_size); });
    field(l, 14, [&](Line& x) { x.dec(best->blocks_live); });
    field(l, 13, [&](Line& x) { bytes(x, best->bytes_live); });
    field(l, 12, [&](Line& x) { x.dec(best->refills); });
    field(l, 12, [&](Line& x) { x.dec(best->flushes); });
    emit(l);
  }
}

}  // namespace cachealloc::stats
