// profile_table_test.cpp - the heap profile's tables and the sampler's weights (lib/prof).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "prof/profile_table.h"
#include "prof/sample_math.h"
#include "prof/sampler.h"

using namespace cachealloc::prof;

namespace {
double site_est_bytes(ProfileTable& t, size_t i) { return t.site(i).est_bytes; }
}  // namespace

TEST_CASE("live blocks survive any order of erases (backward-shift deletion)", "[prof]") {
  static ProfileTable t;
  REQUIRE(t.init(64, 1 << 12, 0));
  const uintptr_t stack_a[2] = {0x1000, 0x2000};
  const uintptr_t stack_b[3] = {0x1000, 0x2000, 0x3000};
  std::mt19937_64 rng(42);
  std::unordered_map<uintptr_t, uint64_t> live;
  for (int round = 0; round < 20000; ++round) {
    // Addresses from a small range, so that probe runs collide and wrap.
    uintptr_t a = (rng() % 2500 + 1) * 16;
    if (live.count(a) != 0) {
      CHECK(t.erase(a));
      live.erase(a);
    } else if (live.size() < 2000) {
      uint64_t size = rng() % 1000 + 1;
      t.insert(a, size, (a & 16) != 0 ? stack_a : stack_b, (a & 16) != 0 ? 2 : 3);
      live[a] = size;
    }
    if (round % 997 == 0) {
      for (const auto& [addr, size] : live) REQUIRE(t.contains(addr));
    }
  }
  CHECK(t.live_blocks() == live.size());
  CHECK(t.site_count() == 2);
  uint64_t bytes = 0;
  for (const auto& [addr, size] : live) bytes += size;
  CHECK(t.site(0).live_bytes + t.site(1).live_bytes == bytes);
  // Rate 0: every block weighs 1, so the estimates are the exact figures.
  CHECK(std::llround(site_est_bytes(t, 0) + site_est_bytes(t, 1)) == static_cast<long long>(bytes));
  for (const auto& [addr, size] : live) CHECK(t.erase(addr));
  CHECK(t.live_blocks() == 0);
  CHECK(!t.erase(16));
  CHECK(t.site(0).est_bytes == 0);
}

TEST_CASE("a block recorded twice counts once (runtime over driver)", "[prof]") {
  static ProfileTable t;
  REQUIRE(t.init(8, 64, 0));
  const uintptr_t s1[1] = {0x10};
  const uintptr_t s2[1] = {0x20};
  t.insert(0x5000, 100, s1, 1);
  t.insert(0x5000, 100, s2, 1);
  CHECK(t.live_blocks() == 1);
  CHECK(t.site(0).live_count == 0);
  CHECK(t.site(1).live_count == 1);
}

TEST_CASE("sample weights undo the sampling probability", "[prof]") {
  const uint64_t rate = 512 << 10;
  CHECK(sample_weight(100, 0) == 1.0);
  // A block far larger than the rate is always sampled: weight 1.
  CHECK(std::fabs(sample_weight(64ull << 20, rate) - 1.0) < 1e-9);
  // A small block: about rate / size.
  CHECK(std::fabs(sample_weight(512, rate) * 512 / rate - 1.0) < 0.001);
}

TEST_CASE("the countdown samples about one allocation per rate bytes", "[prof]") {
  const uint64_t rate = 64 << 10;
  set_sample_rate(rate);
  const size_t n = 256;
  uint64_t sampled = 0;
  double est = 0;
  const size_t count = 4000000;
  for (size_t i = 0; i < count; ++i) {
    if (count_bytes(n) && sample_slow(n)) {
      ++sampled;
      est += sample_weight(n, rate) * n;
    }
  }
  set_sample_rate(0);
  const double truth = static_cast<double>(count) * n;  // 1 GB: about 15,600 samples
  CHECK(sampled > 14000);
  CHECK(sampled < 17000);
  CHECK(std::fabs(est / truth - 1.0) < 0.05);
  // Off: parks near INT64_MAX after one slow call.
  CHECK((count_bytes(n) ? !sample_slow(n) : true));
  CHECK(!count_bytes(size_t{1} << 40));
}

TEST_CASE("the sampler's log and expm1 agree with libm (Note [No libm])", "[prof]") {
  std::mt19937_64 rng(7);
  double worst_log = 0, worst_expm1 = 0;
  auto rel = [](double got, double want) { return std::fabs(got - want) / std::fabs(want); };
  // The sampler's arguments: u in (0, 1] (53-bit), and -size/rate for any size and rate.
  for (int i = 0; i < 200000; ++i) {
    double u = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;
    if (u != 1.0) worst_log = std::max(worst_log, rel(log_positive(u), std::log(u)));
    double y = -std::ldexp(static_cast<double>(rng() >> 11) * 0x1.0p-53, static_cast<int>(rng() % 80) - 60);
    if (y != 0.0) worst_expm1 = std::max(worst_expm1, rel(expm1_nonpositive(y), std::expm1(y)));
  }
  CHECK(log_positive(1.0) == 0.0);
  CHECK(log_positive(0x1.0p-53) == Approx(std::log(0x1.0p-53)).epsilon(1e-15));
  CHECK(log_positive(1e300) == Approx(std::log(1e300)).epsilon(1e-15));
  for (double y : {-1e-300, -1e-9, -0.25, -0.5, -0.5000001, -1.0, -10.0, -44.9, -45.1, -1e6}) {
    CHECK(rel(expm1_nonpositive(y), std::expm1(y)) < 1e-14);
  }
  CHECK(worst_log < 1e-14);
  CHECK(worst_expm1 < 1e-14);
}
