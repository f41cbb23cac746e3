// lru_clock.cpp - see lru_clock.h.
#include "core/lru_clock.h"

#include <atomic>

namespace cachealloc {
namespace {
constinit std::atomic<uint64_t> g_lru_clock{1};
}  // namespace

uint64_t next_lru_stamp() noexcept { return g_lru_clock.fetch_add(1, std::memory_order_relaxed); }

}  // namespace cachealloc
