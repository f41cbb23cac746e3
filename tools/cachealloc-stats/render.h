// render.h - the CLI's outputs: text tables, JSON (docs/stats.md), Prometheus text format.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

#include "entry.h"

namespace castats {

struct RenderOptions {
  size_t top_layouts = 20;  // 0: all
  uint64_t now_ns = 0;      // CLOCK_REALTIME, for uptimes
  bool prometheus_layouts = false;  // --layouts: per-layout series (up to ~130 per process)
};

// One row per segment: pid, program, state, uptime, live, cached, hit rate (+ allocs/s with rates).
void render_list_text(std::ostream& os, const std::vector<Entry>& entries,
                      const std::vector<Rates>* rates, const RenderOptions& opt);
// The full table of one process. `rates` may be null.
void render_entry_text(std::ostream& os, const Entry& e, const Rates* rates, const RenderOptions& opt);

void render_list_json(std::ostream& os, const std::vector<Entry>& entries,
                      const std::vector<Rates>* rates, const RenderOptions& opt);
void render_entry_json(std::ostream& os, const Entry& e, const Rates* rates, const RenderOptions& opt);

// Every usable entry (status ok) in the Prometheus text exposition format, version 0.0.4.
void render_prometheus(std::ostream& os, const std::vector<Entry>& entries, const RenderOptions& opt);

// "1.5 MiB".
std::string human_bytes(uint64_t v);
// "3h02m", "12.3s".
std::string human_duration(double seconds);

}  // namespace castats
