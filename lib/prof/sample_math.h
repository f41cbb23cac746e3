// sample_math.h - the two functions of libm the sampler needs, written out so that the library
// does not link libm.
//
// Note [No libm]
// libm is ~320 KiB of resident file pages in every process that loads it, and a C program that
// does not use it would load it only for us (the sampler's exponential draw and the weight of a
// sampled block). These are accurate to a few units in the last place over the ranges the sampler
// uses (test/unit/profile_table_test.cpp checks them against <cmath>).
#pragma once

#include <cstdint>
#include <cstring>

namespace cachealloc::prof {

// ln(x) for a positive, normal, finite x.
inline double log_positive(double x) noexcept {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((uint64_t{1} << 52) - 1)) | (uint64_t{1023} << 52);
  double m;
  std::memcpy(&m, &bits, sizeof m);  // x = m * 2^e, m in [1, 2)
  if (m > 1.4142135623730951) {
    m *= 0.5;
    ++e;
  }
  // ln(m) = 2 atanh(f), f = (m - 1) / (m + 1), |f| <= 0.1716: the series' 11th term is < 1e-17.
  double f = (m - 1.0) / (m + 1.0);
  double s = f * f;
  double sum = 0.0;
  for (int k = 21; k >= 3; k -= 2) sum = (sum + 1.0 / k) * s;
  double ln_m = 2.0 * f * (1.0 + sum);
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // ln 2 split so that e * kLn2Hi is exact
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  return static_cast<double>(e) * kLn2Hi + (ln_m + static_cast<double>(e) * kLn2Lo);
}

// e^y - 1 for y <= 0, without the cancellation of exp(y) - 1 near 0.
inline double expm1_nonpositive(double y) noexcept {
  if (y < -45.0) return -1.0;  // e^-45 < 3e-20: below half an ulp of 1
  // Taylor series, for |r| <= 0.5: the 19th term is < 1e-22.
  auto series = [](double r) {
    double sum = 0.0;
    for (int k = 18; k >= 1; --k) sum = (sum + 1.0) * r / k;
    return sum;  // r + r^2/2! + ... + r^18/18!
  };
  if (y >= -0.5) return series(y);
  // e^y = 2^k e^r with r = y - k ln 2, |r| <= ln2/2.
  constexpr double kLn2 = 0.6931471805599453;
  int k = static_cast<int>(y / kLn2 - 0.5);  // round to nearest (y < 0)
  double r = y - static_cast<double>(k) * 6.93147180369123816490e-01 -
             static_cast<double>(k) * 1.90821492927058770002e-10;
  uint64_t bits = static_cast<uint64_t>(k + 1023) << 52;  // 2^k, k >= -65: normal
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return (1.0 + series(r)) * scale - 1.0;
}

}  // namespace cachealloc::prof
