// segment_table_test.cpp - address -> segment metadata (core/segment_table.h).
#include <catch2/catch.hpp>

#include <cstdio>
#include <memory>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/segment_table.h"
#include "core/slab_source.h"
#include "platform/os.h"

using namespace cachealloc;

TEST_CASE("segment table: lookup covers exactly the registered segments", "[segment_table]") {
  auto table = std::make_unique<SegmentTable>();
  SegmentMeta a, b;
  uintptr_t base_a = uintptr_t{0x7f1200000000};
  uintptr_t base_b = base_a + 5 * kSegmentSize;
  uintptr_t far = (uintptr_t{1} << 46) + 17 * kSegmentSize;  // far from the first
  SegmentMeta c;

  REQUIRE(table->lookup(reinterpret_cast<void*>(base_a)) == nullptr);
  REQUIRE(table->set(base_a, &a));
  REQUIRE(table->set(base_b, &b));
  REQUIRE(table->set(far, &c));

  for (uintptr_t off : {uintptr_t{0}, uintptr_t{1}, uintptr_t{4096}, kSegmentSize / 2, kSegmentSize - 1}) {
    REQUIRE(table->lookup(reinterpret_cast<void*>(base_a + off)) == &a);
    REQUIRE(table->lookup(reinterpret_cast<void*>(base_b + off)) == &b);
    REQUIRE(table->lookup(reinterpret_cast<void*>(far + off)) == &c);
  }
  REQUIRE(table->lookup(reinterpret_cast<void*>(base_a - 1)) == nullptr);
  REQUIRE(table->lookup(reinterpret_cast<void*>(base_a + kSegmentSize)) == nullptr);
  REQUIRE(table->lookup(reinterpret_cast<void*>(base_b + kSegmentSize)) == nullptr);
  REQUIRE(table->lookup(nullptr) == nullptr);
  // Outside the 47-bit user address space: never ours, never a crash.
  REQUIRE(table->lookup(reinterpret_cast<void*>(uintptr_t{1} << 47)) == nullptr);
  REQUIRE(table->lookup(reinterpret_cast<void*>(~uintptr_t{0})) == nullptr);

  REQUIRE(table->set(base_a, nullptr));
  REQUIRE(table->lookup(reinterpret_cast<void*>(base_a + 100)) == nullptr);
  REQUIRE(table->lookup(reinterpret_cast<void*>(base_b + 100)) == &b);
}

TEST_CASE("segment meta: page index and class from the address alone", "[segment_table]") {
  // The second base has low 32 bits that are not zero: the boundary test subtracts the slab
  // start's low 32 bits (PageDesc::slab_low), not its offset in the segment.
  for (uintptr_t base : {uintptr_t{0x7f0000000000}, uintptr_t{0x7f1234400000}}) {
    SegmentMeta m;
    m.base = base;
    for (unsigned i = 0; i < kPagesPerSegment; ++i) {
      m.set_page_head(i, i & ~1u);
      if (i % 3 == 0) {
        m.clear_page_class(i);
      } else {
        m.set_page_class(i, 2, 2730);  // 48-byte blocks, 2730 in a 2-page slab
      }
    }
    for (unsigned i = 0; i < kPagesPerSegment; ++i) {
      uintptr_t slab = m.base + (uintptr_t{i & ~1u} << kPageShift);
      void* p = reinterpret_cast<void*>(m.base + (uintptr_t{i} << kPageShift) + 48);
      REQUIRE(SegmentMeta::page_of(p) == i);
      REQUIRE(m.class_at(p) == (i % 3 == 0 ? kNoClass : 2));
      REQUIRE(m.slab_at(p) == &m.slabs[i & ~1u]);
      // The boundary test counts from the slab's first page, and refuses every pointer into a page
      // no active slab covers.
      // On an odd page, offset 65456 is the slab's last block (2729 * 48 from its start) and 65504
      // the start of its 32-byte tail; on an even page, 65520 is block 1365.
      for (uintptr_t off : {uintptr_t{0}, uintptr_t{48}, uintptr_t{96}, uintptr_t{16},
                            uintptr_t{65456}, uintptr_t{65504}, uintptr_t{65520}}) {
        uintptr_t a = (uintptr_t{i} << kPageShift) + off + m.base;
        bool block = (a - slab) % 48 == 0 && (a - slab) / 48 < 2730;
        INFO("page " << i << " offset " << off);
        REQUIRE(m.is_block_start(reinterpret_cast<void*>(a)) == (i % 3 != 0 && block));
        REQUIRE(m.is_block_start(reinterpret_cast<void*>(a), 2) == (i % 3 != 0 && block));
        REQUIRE_FALSE(m.is_block_start(reinterpret_cast<void*>(a), 3));
        if (i % 3 != 0 && block) {
          REQUIRE(m.block_number(reinterpret_cast<void*>(a)) == (a - slab) / 48);
        }
        if (i % 3 != 0) REQUIRE(m.bin_at(reinterpret_cast<void*>(a)) == 2 * kBinBytes);
      }
    }
  }
}

TEST_CASE("segment table: a window around the first segment where the OS refuses 256 MiB",
          "[segment_table]") {
  // Note [Segment table window]: the full table's reservation fails (injected), the next size, 2^21
  // entries (16 MiB), is granted and centred on the first segment registered.
  auto table = std::make_unique<SegmentTable>();
  SegmentMeta a, b;
  // More than half a window (4 TiB) from either end of the space: the window is not clamped.
  const uintptr_t base = uintptr_t{0x555500000000};
  os::inject_map_failures(1);
  REQUIRE(table->set(base, &a));
  os::inject_map_failures(0);
  const size_t window = table->window();
  REQUIRE(window == size_t{1} << 21);
  REQUIRE(table->lookup(reinterpret_cast<void*>(base + 64)) == &a);
  // Within the window, below and above the first segment.
  const uintptr_t below = base - (window / 2 - 1) * kSegmentSize;
  const uintptr_t above = base + (window / 2 - 1) * kSegmentSize;
  REQUIRE(table->set(below, &b));
  REQUIRE(table->lookup(reinterpret_cast<void*>(below + 8)) == &b);
  REQUIRE(table->set(above, &b));
  REQUIRE(table->lookup(reinterpret_cast<void*>(above + kSegmentSize - 1)) == &b);
  // Outside it: not registered, and every lookup there (or far away) finds nothing.
  const uintptr_t outside = base + (window / 2 + 1) * kSegmentSize;
  REQUIRE_FALSE(table->set(outside, &b));
  REQUIRE(table->set(outside, nullptr));
  REQUIRE(table->lookup(reinterpret_cast<void*>(outside)) == nullptr);
  const uintptr_t outside_below = base - (window / 2 + 1) * kSegmentSize;
  REQUIRE(table->lookup(reinterpret_cast<void*>(outside_below)) == nullptr);
  REQUIRE(table->lookup(reinterpret_cast<void*>(uintptr_t{4096})) == nullptr);
  REQUIRE(table->lookup(reinterpret_cast<void*>(~uintptr_t{0})) == nullptr);
  REQUIRE(table->set(below, nullptr));
  REQUIRE(table->lookup(reinterpret_cast<void*>(below + 8)) == nullptr);
}

TEST_CASE("segment table: nothing registered when no table can be mapped", "[segment_table]") {
  auto table = std::make_unique<SegmentTable>();
  SegmentMeta a;
  os::inject_map_failures(-1);
  REQUIRE_FALSE(table->set(uintptr_t{0x7f1200000000}, &a));
  REQUIRE(table->set(uintptr_t{0x7f1200000000}, nullptr));
  os::inject_map_failures(0);
  REQUIRE(table->window() == 0);
  REQUIRE(table->lookup(reinterpret_cast<void*>(uintptr_t{0x7f1200000000})) == nullptr);
  REQUIRE(table->set(uintptr_t{0x7f1200000000}, &a));
  REQUIRE(table->window() == SegmentTable::kSpan);
  REQUIRE(table->lookup(reinterpret_cast<void*>(uintptr_t{0x7f1200000000})) == &a);
}

TEST_CASE("segment table: an entry whose page cannot be made writable is not registered",
          "[segment_table]") {
  auto table = std::make_unique<SegmentTable>();
  SegmentMeta a, b;
  const uintptr_t first = uintptr_t{0x7f1200000000};
  const uintptr_t other = first + (uintptr_t{8} << 30);  // another OS page of the table
  REQUIRE(table->set(first, &a));
  REQUIRE(table->set(other, nullptr));  // its page was never written: nothing to clear
  os::inject_map_failures(1);
  REQUIRE_FALSE(table->set(other, &b));
  os::inject_map_failures(0);
  REQUIRE(table->lookup(reinterpret_cast<void*>(other)) == nullptr);
  REQUIRE(table->lookup(reinterpret_cast<void*>(first)) == &a);
  REQUIRE(table->set(other, &b));
  REQUIRE(table->lookup(reinterpret_cast<void*>(other + 1)) == &b);
}

TEST_CASE("segment table: the window fits an address-space limit", "[segment_table]") {
  // Note [Segment table window]: under a limit the table takes the largest size that fits in 1/16
  // of it. Run in a child that sets the limit itself (512 MiB above what the process maps now,
  // so the reservation is granted), whatever limit the test runs under.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  SUCCEED("sanitizers map terabytes of shadow memory: no address-space limit to test under");
  return;
#endif
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    struct rlimit r;
    getrlimit(RLIMIT_AS, &r);
    FILE* f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f == nullptr || fscanf(f, "%lu", &pages) != 1) _exit(2);
    fclose(f);
    r.rlim_cur = pages * sysconf(_SC_PAGESIZE) + (uint64_t{512} << 20);
    if (setrlimit(RLIMIT_AS, &r) != 0) _exit(3);
    const uint64_t limit = os::address_space_limit();
    size_t expect = SegmentTable::kSpan;
    while (expect > (size_t{1} << 13) && expect * sizeof(void*) > limit / 16) expect >>= 4;
    SegmentTable* table = new SegmentTable();
    SegmentMeta a;
    if (!table->set(uintptr_t{0x555500000000}, &a)) _exit(4);
    if (table->lookup(reinterpret_cast<void*>(uintptr_t{0x555500000000})) != &a) _exit(5);
    if (expect == SegmentTable::kSpan) _exit(7);  // the process maps too much to force a window
    _exit(table->window() == expect && limit != UINT64_MAX ? 0 : 6);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}
