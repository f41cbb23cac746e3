// malloc_checks.cpp - the libc malloc family's contract, as glibc gives it: errno on failure,
// calloc zeroing, realloc semantics, alignment requests, page-aligned allocators, malloc_trim.
#include "conformance.h"

#include <catch2/catch.hpp>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vector>

using namespace conformance;

namespace {

const size_t kPtrdiffMaxPlus1 = static_cast<size_t>(PTRDIFF_MAX) + 1;

// The sizes a request can never be satisfied for, however much memory the machine has.
std::vector<size_t> impossible_sizes() {
  return {SIZE_MAX, SIZE_MAX - 4096, kPtrdiffMaxPlus1, SIZE_MAX / 2 + 4096};
}

}  // namespace

bool conformance::all_zero(const void* p, size_t n) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != 0) return false;
  return true;
}

TEST_CASE("impossible requests fail with ENOMEM", "[malloc]") {
  for (size_t n : impossible_sizes()) {
    INFO("size " << n);
    errno = 0;
    void* p = malloc(opaque(n));
    int err = errno;
    CHECK(p == nullptr);
    CHECK(err == ENOMEM);
    free(p);
  }
}

TEST_CASE("malloc_usable_size(NULL) is 0", "[malloc]") {
  CHECK(malloc_usable_size(nullptr) == 0);
}

TEST_CASE("calloc zeroes, even memory that was just freed dirty", "[calloc]") {
  const size_t sizes[] = {8,     16,    24,    100,   512,   1024,           4000, 8192, 20000,
                          65536, 70000, 200000, kLargeThreshold + 1, 300000, kMiB, 2 * kMiB + 3};
  for (size_t n : sizes) {
    INFO("size " << n);
    for (int round = 0; round < 4; ++round) {
      void* dirty = malloc(opaque(n));
      REQUIRE(dirty != nullptr);
      memset(dirty, 0xA5, malloc_usable_size(dirty));
      free(dirty);
      // Same size as one count, and as count x element.
      void* p = round % 2 ? calloc(1, opaque(n)) : calloc(opaque(n), 1);
      REQUIRE(p != nullptr);
      CHECK(all_zero(p, n));
      free(p);
    }
  }
}

TEST_CASE("calloc that overflows fails with ENOMEM", "[calloc]") {
  const std::pair<size_t, size_t> cases[] = {{SIZE_MAX / 2 + 1, 2},
                                             {2, SIZE_MAX / 2 + 1},
                                             {size_t{1} << 32, size_t{1} << 32},
                                             {SIZE_MAX, SIZE_MAX},
                                             {kPtrdiffMaxPlus1, 1}};
  for (auto [count, size] : cases) {
    INFO("calloc(" << count << ", " << size << ")");
    errno = 0;
    void* p = calloc(opaque(count), opaque(size));
    int err = errno;
    CHECK(p == nullptr);
    CHECK(err == ENOMEM);
    free(p);
  }
}

TEST_CASE("realloc keeps contents across growth and shrink, small to large to small", "[realloc]") {
  // 16 B -> ... -> 4 MiB (large path is > 256 KiB) -> ... -> 8 B.
  const size_t steps[] = {16,    100,   1000,      4096,    70000,       kLargeThreshold,
                          kLargeThreshold + 1,     kMiB,    4 * kMiB,    kMiB + 17,
                          300000, 200000, 5000,    64,      8};
  size_t have = 16;
  void* p = malloc(have);
  REQUIRE(p != nullptr);
  pattern::fill(p, have, 7);
  size_t kept = have;  // bytes known to hold the pattern
  for (size_t n : steps) {
    INFO("realloc to " << n << " from " << have);
    void* q = realloc(p, opaque(n));
    REQUIRE(q != nullptr);
    CHECK(aligned_to(q, 16));
    CHECK(malloc_usable_size(q) >= n);
    CHECK(ca().owns(q) == 1);
    CHECK(ca().refcount(q) == 1);
    kept = std::min(kept, n);
    CHECK(pattern::first_mismatch(q, kept, 7) == kept);
    pattern::fill(q, n, 7);
    kept = n;
    p = q;
    have = n;
  }
  free(p);
}

TEST_CASE("realloc in place and to the same size keeps contents", "[realloc]") {
  for (size_t n : {size_t{40}, size_t{5000}, 2 * kMiB}) {
    void* p = malloc(n);
    REQUIRE(p != nullptr);
    pattern::fill(p, n, n);
    for (int i = 0; i < 5; ++i) {
      p = realloc(p, opaque(n - i));
      REQUIRE(p != nullptr);
      REQUIRE(pattern::first_mismatch(p, n - i, n) == n - i);
    }
    free(p);
  }
}

TEST_CASE("realloc(NULL, n) is malloc(n)", "[realloc]") {
  for (size_t n : {size_t{0}, size_t{1}, size_t{300}, 2 * kMiB}) {
    INFO("size " << n);
    void* p = realloc(nullptr, opaque(n));
    REQUIRE(p != nullptr);
    CHECK(ca().owns(p) == 1);
    CHECK(ca().refcount(p) == 1);
    CHECK(malloc_usable_size(p) >= n);
    free(p);
  }
}

TEST_CASE("realloc(p, 0) frees p and returns NULL, as glibc does", "[realloc]") {
  void* small = malloc(100);
  REQUIRE(small != nullptr);
  CHECK(realloc(small, opaque(size_t{0})) == nullptr);

  // A freed large block is no longer live: its count reads 0.
  void* large = malloc(2 * kMiB);
  REQUIRE(large != nullptr);
  CHECK(realloc(large, opaque(size_t{0})) == nullptr);
  CHECK(ca().refcount(large) == 0);
}

TEST_CASE("realloc that cannot be satisfied fails with ENOMEM and keeps the old block",
          "[realloc]") {
  for (size_t have : {size_t{100}, size_t{5000}, 2 * kMiB}) {
    void* p = malloc(have);
    REQUIRE(p != nullptr);
    pattern::fill(p, have, have);
    for (size_t n : impossible_sizes()) {
      INFO("realloc of " << have << " bytes to " << n);
      errno = 0;
      void* q = realloc(p, opaque(n));
      int err = errno;
      CHECK(q == nullptr);
      CHECK(err == ENOMEM);
      CHECK(ca().refcount(p) == 1);
      CHECK(pattern::first_mismatch(p, have, have) == have);
    }
    free(p);
  }
}

TEST_CASE("reallocarray multiplies with overflow checks", "[realloc]") {
  void* p = reallocarray(nullptr, 10, 100);
  REQUIRE(p != nullptr);
  CHECK(malloc_usable_size(p) >= 1000);
  pattern::fill(p, 1000, 3);
  p = reallocarray(p, 1000, 100);
  REQUIRE(p != nullptr);
  CHECK(pattern::first_mismatch(p, 1000, 3) == 1000);

  const std::pair<size_t, size_t> overflows[] = {{SIZE_MAX / 2 + 1, 2}, {size_t{1} << 33, size_t{1} << 33}};
  for (auto [count, size] : overflows) {
    INFO("reallocarray(p, " << count << ", " << size << ")");
    errno = 0;
    void* q = reallocarray(p, opaque(count), opaque(size));
    int err = errno;
    CHECK(q == nullptr);
    CHECK(err == ENOMEM);
    CHECK(pattern::first_mismatch(p, 1000, 3) == 1000);
  }
  free(p);
}

TEST_CASE("posix_memalign rejects bad alignments with EINVAL", "[memalign]") {
  for (size_t a : {size_t{0}, size_t{1}, size_t{2}, size_t{4}, size_t{3}, size_t{12}, size_t{24},
                   size_t{48}, size_t{4097}, SIZE_MAX}) {
    INFO("alignment " << a);
    void* p = nullptr;
    CHECK(posix_memalign(&p, opaque(a), 64) == EINVAL);
  }
  void* p = nullptr;
  CHECK(posix_memalign(&p, sizeof(void*), 64) == 0);
  CHECK(p != nullptr);
  free(p);
}

// As glibc, mimalloc and tcmalloc: the ENOMEM is in errno too (programs and glibc's tests read
// it); EINVAL and success leave errno alone.
TEST_CASE("posix_memalign sets errno to ENOMEM when it returns ENOMEM", "[memalign]") {
  void* p = nullptr;
  for (size_t n : {SIZE_MAX - 4096, SIZE_MAX / 2 + 1, SIZE_MAX}) {
    INFO("size " << n);
    errno = 0;
    CHECK(posix_memalign(&p, 64, opaque(n)) == ENOMEM);
    int err = errno;
    CHECK(err == ENOMEM);
  }
  errno = EDOM;
  CHECK(posix_memalign(&p, opaque(size_t{24}), 64) == EINVAL);
  int err = errno;
  CHECK(err == EDOM);
  errno = EDOM;
  REQUIRE(posix_memalign(&p, 64, 64) == 0);
  err = errno;
  CHECK(err == EDOM);
  free(p);
}

TEST_CASE("aligned_alloc rejects bad alignments with NULL and EINVAL", "[memalign]") {
  for (size_t a : {size_t{3}, size_t{12}, size_t{24}, size_t{48}, size_t{1000}, size_t{4097},
                   SIZE_MAX / 2 + 2}) {
    INFO("alignment " << a);
    errno = 0;
    void* p = aligned_alloc(opaque(a), 64);
    int err = errno;
    CHECK(p == nullptr);
    CHECK(err == EINVAL);
    free(p);
  }
}

// As glibc (and tcmalloc): memalign is the lenient one. An alignment that is not a power of two
// is rounded up to the next one; only one past the largest power of two is EINVAL.
TEST_CASE("memalign rounds an alignment that is not a power of two up to the next one", "[memalign]") {
  for (size_t a : {size_t{3}, size_t{12}, size_t{24}, size_t{48}, size_t{1000}, size_t{4097},
                   size_t{100000}}) {
    size_t want = 16;
    while (want < a) want *= 2;
    for (size_t n : {size_t{1}, size_t{64}, size_t{5000}, kLargeThreshold + 1}) {
      INFO("alignment " << a << " (rounded to " << want << "), size " << n);
      errno = EDOM;
      void* p = memalign(opaque(a), opaque(n));
      int err = errno;
      REQUIRE(p != nullptr);
      CHECK(err == EDOM);
      CHECK(aligned_to(p, want));
      CHECK(malloc_usable_size(p) >= n);
      CHECK(ca().owns(p) == 1);
      pattern::fill(p, n, a);
      CHECK(pattern::first_mismatch(p, n, a) == n);
      free(p);
    }
  }
  for (size_t a : {SIZE_MAX / 2 + 2, SIZE_MAX}) {
    INFO("alignment " << a);
    errno = 0;
    void* p = memalign(opaque(a), 64);
    int err = errno;
    CHECK(p == nullptr);
    CHECK(err == EINVAL);
  }
}

TEST_CASE("alignments from 16 B to 1 MiB are honoured for small and large sizes", "[memalign]") {
  for (size_t a = 16; a <= kMiB; a *= 2) {
    for (size_t n : {size_t{1}, size_t{100}, a, a + 1, size_t{3000}, kLargeThreshold + 1, 2 * kMiB}) {
      INFO("alignment " << a << ", size " << n);
      void* p = nullptr;
      REQUIRE(posix_memalign(&p, opaque(a), opaque(n)) == 0);
      void* q = aligned_alloc(opaque(a), opaque(n));
      void* r = memalign(opaque(a), opaque(n));
      void* s = ::operator new(opaque(n), std::align_val_t{a});
      for (void* b : {p, q, r, s}) {
        REQUIRE(b != nullptr);
        CHECK(aligned_to(b, a));
        CHECK(malloc_usable_size(b) >= n);
        CHECK(ca().owns(b) == 1);
        pattern::fill(b, n, a);
      }
      for (void* b : {p, q, r, s}) CHECK(pattern::first_mismatch(b, n, a) == n);
      free(p);
      free(q);
      free(r);
      ::operator delete(s, std::align_val_t{a});
    }
  }
}

TEST_CASE("valloc and pvalloc are page aligned", "[memalign]") {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (size_t n : {size_t{1}, size_t{100}, page - 1, page, page + 1, 5 * page + 3, 2 * kMiB + 1}) {
    INFO("size " << n);
    void* v = valloc(opaque(n));
    REQUIRE(v != nullptr);
    CHECK(aligned_to(v, page));
    CHECK(malloc_usable_size(v) >= n);
    void* pv = pvalloc(opaque(n));
    REQUIRE(pv != nullptr);
    CHECK(aligned_to(pv, page));
    // pvalloc rounds the request up to whole pages.
    CHECK(malloc_usable_size(pv) >= (n + page - 1) / page * page);
    memset(v, 1, n);
    memset(pv, 2, (n + page - 1) / page * page);
    free(v);
    free(pv);
  }
}

TEST_CASE("malloc_trim returns and memory still works", "[trim]") {
  std::vector<void*> keep;
  for (int i = 0; i < 200; ++i) {
    size_t n = (i % 10 == 0) ? kMiB : 64 + 37 * static_cast<size_t>(i);
    void* p = malloc(n);
    REQUIRE(p != nullptr);
    pattern::fill(p, n, i);
    if (i % 2)
      free(p);
    else
      keep.push_back(p);
  }
  int r0 = malloc_trim(0);
  int r1 = malloc_trim(1 << 20);
  CHECK((r0 == 0 || r0 == 1));
  CHECK((r1 == 0 || r1 == 1));
  for (size_t k = 0; k < keep.size(); ++k) {
    int i = static_cast<int>(2 * k);
    size_t n = (i % 10 == 0) ? kMiB : 64 + 37 * static_cast<size_t>(i);
    CHECK(pattern::first_mismatch(keep[k], n, i) == n);
    free(keep[k]);
  }
  for (int i = 0; i < 100; ++i) {
    void* p = malloc(opaque(size_t{1000} * static_cast<size_t>(i) + 1));
    REQUIRE(p != nullptr);
    memset(p, 0x5A, 1000 * static_cast<size_t>(i) + 1);
    free(p);
  }
}
