// huge_pages.cpp - CACHEALLOC_THP=1 advises huge pages on big blocks mapped from the OS, and the
// default does not (Note [Huge pages] in core/large_source.h).
//
// Usage: huge_pages on|off (meson runs "on" with CACHEALLOC_THP=1, "off" without it). An 8 MiB
// block is written in full, then the VmFlags line of the mapping that holds it in
// /proc/self/smaps must show "hg" (MADV_HUGEPAGE) with "on" and must not with "off". Whether the
// kernel then backs it with huge pages depends on its memory; the advice itself is deterministic.
// Skips (77) on a kernel without transparent huge pages or without VmFlags in smaps.
#include "preload_support.h"

using namespace preload_test;

namespace {

// Whether the VmFlags of the mapping containing p list "hg". Fails when no mapping contains p;
// skips when smaps has no VmFlags lines at all (kernels before 3.8, some sandboxes).
bool advised_huge(const void* p) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == nullptr) fail("cannot open /proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(p);
  char line[512];
  bool inside = false, found = false, hg = false, any_flags = false;
  while (fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = a >= lo && a < hi;
      continue;
    }
    if (strncmp(line, "VmFlags:", 8) != 0) continue;
    any_flags = true;
    if (inside) {
      found = true;
      hg = strstr(line, " hg") != nullptr;
    }
  }
  fclose(f);
  if (!any_flags) {
    printf("no VmFlags in /proc/self/smaps: skipped\n");
    exit(77);
  }
  if (!found) fail("no mapping in /proc/self/smaps holds the block");
  return hg;
}

}  // namespace

int main(int argc, char** argv) {
  require_cachealloc("huge_pages");
  if (argc != 2 || (strcmp(argv[1], "on") != 0 && strcmp(argv[1], "off") != 0)) {
    fail("usage: huge_pages on|off");
  }
  if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) {
    printf("no transparent huge pages in this kernel: skipped\n");
    return 77;
  }
  const bool want = strcmp(argv[1], "on") == 0;
  const char* env = getenv("CACHEALLOC_THP");
  if (want != (env != nullptr && strcmp(env, "1") == 0)) fail("run \"on\" with CACHEALLOC_THP=1");
  constexpr size_t kSize = size_t{8} << 20;
  auto* p = static_cast<unsigned char*>(malloc(kSize));
  TEST_EXPECT(p != nullptr);
  memset(p, 0x5a, kSize);
  TEST_EXPECT(reinterpret_cast<uintptr_t>(p) % (size_t{2} << 20) == 0 || !want);
  const bool hg = advised_huge(p);
  if (hg != want) fail(want ? "CACHEALLOC_THP=1: the 8 MiB block is not advised MADV_HUGEPAGE"
                            : "default settings: the 8 MiB block is advised MADV_HUGEPAGE");
  free(p);
  printf("8 MiB block: MADV_HUGEPAGE %s, as expected\n", hg ? "set" : "not set");
  return 0;
}
