// budget_rss.cpp - the cache budget bounds what the process holds, in RSS, not only in the
// library's own counter (issue 13; Note [Large upstream] in core/large_source.h).
//
// Run with CACHEALLOC_CACHE_BYTES=64M (meson sets it). 300 large blocks of 150 sizes between 0.5
// and 75 MiB are each written in full, then freed, one at a time: every size goes through the
// cache, the budget pushes blocks out to the upstream (mimalloc below 1 MiB, the OS above), and
// the process must not keep more than the budget + 8 MiB beyond what is live:
//   - after each block is written: RSS - baseline - that block <= 72 MiB;
//   - after the last free: RSS - baseline <= 72 MiB.
// Before the upstream was driven to decommit, mimalloc kept evicted blocks and RSS grew by
// 127-145 MiB here.
#include "preload_support.h"

#include <cmath>

using namespace preload_test;

int main() {
  require_cachealloc("budget_rss");
  using CachedFn = size_t (*)();
  auto cached = reinterpret_cast<CachedFn>(dlsym(RTLD_DEFAULT, "ca_cached_bytes"));
  TEST_EXPECT(cached != nullptr);
  const char* budget_env = getenv("CACHEALLOC_CACHE_BYTES");
  if (budget_env == nullptr || strcmp(budget_env, "64M") != 0) fail("run with CACHEALLOC_CACHE_BYTES=64M");
  constexpr size_t kMiB = size_t{1} << 20;
  constexpr size_t kAllowed = 72 * kMiB;
  constexpr int kSizes = 150, kBlocks = 300;
  size_t sizes[kSizes];
  for (int i = 0; i < kSizes; ++i) {  // log-spaced, 0.5 .. 75 MiB
    double f = std::exp(std::log(0.5) + (std::log(75.0) - std::log(0.5)) * i / (kSizes - 1));
    sizes[i] = static_cast<size_t>(f * static_cast<double>(kMiB));
  }
  const size_t baseline = rss_bytes();
  size_t worst = 0;
  for (int i = 0; i < kBlocks; ++i) {
    const size_t n = sizes[(i * 37) % kSizes];
    auto* p = static_cast<unsigned char*>(malloc(n));
    TEST_EXPECT(p != nullptr);
    memset(p, i & 0xff, n);
    const size_t rss = rss_bytes();
    const size_t over = rss > baseline + n ? rss - baseline - n : 0;
    if (over > worst) worst = over;
    if (over > kAllowed) {
      fail("block %d (%zu bytes): RSS %zu MiB over the baseline beyond the live block, budget 64 "
           "MiB + 8 (cache counter %zu MiB)", i, n, over / kMiB, cached() / kMiB);
    }
    free(p);
  }
  const size_t rss = rss_bytes();
  const size_t held = rss > baseline ? rss - baseline : 0;
  printf("budget 64 MiB: worst RSS beyond the live block %zu MiB, held after the last free %zu MiB "
         "(cache counter %zu MiB)\n", worst / kMiB, held / kMiB, cached() / kMiB);
  if (held > kAllowed) fail("after the last free RSS is %zu MiB over the baseline", held / kMiB);
  if (cached() > 64 * kMiB) fail("cache counter %zu MiB over the 64 MiB budget", cached() / kMiB);
  return 0;
}
