// glibc_introspection.cpp - under the preload, glibc's own names and introspection answer for
// cachealloc: blocks from __libc_malloc & co. are ours (free() accepts them), mallinfo2/mallinfo
// count our live bytes, malloc_stats/malloc_info print our report, mallopt says "not done".
#include "preload_support.h"

#include <errno.h>
#include <malloc.h>

#include <cstdint>

using namespace preload_test;

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* __libc_valloc(size_t);
void* __libc_pvalloc(size_t);
}
// Not in glibc's link-time interface (cfree is a compat symbol there): looked up at run time, so
// the program links without cachealloc and finds them in the preloaded library.

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace {

OwnsFn g_owns;

void check_ours(void* p, const char* what) {
  if (p == nullptr) fail("%s returned nullptr", what);
  if (g_owns(p) != 1) fail("%s returned %p, which cachealloc does not own", what, p);
}

// Runs `fn` with fd 2 sent to a temporary file; returns what it wrote (static buffer).
const char* capture_stderr(void (*fn)()) {
  static char text[65536];
  FILE* tmp = tmpfile();
  TEST_EXPECT(tmp != nullptr);
  fflush(stderr);
  int saved = dup(2);
  dup2(fileno(tmp), 2);
  fn();
  dup2(saved, 2);
  close(saved);
  ssize_t n = pread(fileno(tmp), text, sizeof text - 1, 0);
  text[n > 0 ? n : 0] = '\0';
  fclose(tmp);
  return text;
}

void libc_names() {
  void* p = __libc_malloc(100);
  check_ours(p, "__libc_malloc(100)");
  free(p);  // glibc's __libc_malloc block here aborts with "free(): invalid pointer"
  p = __libc_calloc(10, 10);
  check_ours(p, "__libc_calloc");
  for (int i = 0; i < 100; ++i) TEST_EXPECT(static_cast<unsigned char*>(p)[i] == 0);
  p = __libc_realloc(p, 5000);
  check_ours(p, "__libc_realloc");
  __libc_free(p);
  p = __libc_memalign(256, 1000);
  check_ours(p, "__libc_memalign");
  TEST_EXPECT(reinterpret_cast<uintptr_t>(p) % 256 == 0);
  free(p);
  p = __libc_valloc(10);
  check_ours(p, "__libc_valloc");
  TEST_EXPECT(reinterpret_cast<uintptr_t>(p) % 4096 == 0);
  free(p);
  p = __libc_pvalloc(10);
  check_ours(p, "__libc_pvalloc");
  free(p);
  using PosixMemalignFn = int (*)(void**, size_t, size_t);
  using FreeFn = void (*)(void*);
  auto posix_memalign_fn = reinterpret_cast<PosixMemalignFn>(dlsym(RTLD_DEFAULT, "__posix_memalign"));
  auto cfree_fn = reinterpret_cast<FreeFn>(dlsym(RTLD_DEFAULT, "cfree"));
  TEST_EXPECT(posix_memalign_fn != nullptr && cfree_fn != nullptr);
  TEST_EXPECT(posix_memalign_fn(&p, 64, 100) == 0);
  check_ours(p, "__posix_memalign");
  cfree_fn(p);
  p = malloc(100);
  __libc_free(p);
}

void mallinfo_counts_ours() {
  // 32 MiB live in large blocks and 1 MiB in small ones.
  constexpr size_t kLarge = 8, kLargeSize = size_t{4} << 20, kSmall = 4096, kSmallSize = 256;
  void* large[kLarge];
  void* small[kSmall];
  struct mallinfo2 before = mallinfo2();
  for (auto& p : large) p = malloc(kLargeSize);
  for (auto& p : small) p = malloc(kSmallSize);
  struct mallinfo2 during = mallinfo2();
  struct mallinfo during1 = mallinfo();
  size_t grew = during.uordblks - before.uordblks;
  size_t want = kLarge * kLargeSize + kSmall * kSmallSize;
  if (grew < want || grew > want + (size_t{1} << 20)) {
    fail("mallinfo2().uordblks grew by %zu with %zu bytes more live", grew, want);
  }
  TEST_EXPECT(during.arena >= during.uordblks);
  TEST_EXPECT(during.usmblks >= during.uordblks);  // the peak
  TEST_EXPECT(during.ordblks >= before.ordblks + kLarge + kSmall);
  TEST_EXPECT(static_cast<size_t>(during1.uordblks) >= want);
  for (auto& p : large) free(p);
  for (auto& p : small) free(p);
  struct mallinfo2 after = mallinfo2();
  TEST_EXPECT(after.uordblks + want <= during.uordblks + (size_t{1} << 20));
  // A freed large block is cached; the other seven of its size go back until reuse earns them a
  // place (Note [Reuse evidence]).
  TEST_EXPECT(after.fordblks >= kLargeSize);
  TEST_EXPECT(after.fordblks < kLarge * kLargeSize);
  TEST_EXPECT(after.usmblks >= during.uordblks);       // the peak stays
  printf("mallinfo2: uordblks %zu -> %zu -> %zu, arena %zu, peak %zu\n", before.uordblks,
         during.uordblks, after.uordblks, during.arena, after.usmblks);
}

void reports() {
  const char* text = capture_stderr([] { malloc_stats(); });
  if (strstr(text, "cachealloc: stats for") == nullptr || strstr(text, "Arena") != nullptr) {
    fail("malloc_stats() printed:\n%s", text);
  }
  char* xml = nullptr;
  size_t len = 0;
  FILE* mem = open_memstream(&xml, &len);
  TEST_EXPECT(malloc_info(0, mem) == 0);
  fclose(mem);
  if (strstr(xml, "<malloc version=\"1\" allocator=\"cachealloc\"") == nullptr ||
      strstr(xml, "<total type=\"live\"") == nullptr || strstr(xml, "</malloc>") == nullptr) {
    fail("malloc_info(0) wrote:\n%s", xml);
  }
  free(xml);
  TEST_EXPECT(malloc_info(1, stdout) == EINVAL);
  TEST_EXPECT(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 0);
  TEST_EXPECT(mallopt(M_ARENA_MAX, 1) == 0);
  TEST_EXPECT(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 0);
}

// ca_stats_print: the report in-process, one callback per line.
struct Collected {
  int lines = 0;
  bool one_newline_each = true;
  bool has_header = false;
};
void collect(void* ctx, const char* line) {
  auto* c = static_cast<Collected*>(ctx);
  ++c->lines;
  const char* nl = strchr(line, '\n');
  if (nl == nullptr || nl[1] != '\0') c->one_newline_each = false;
  if (strstr(line, "cachealloc: stats for") != nullptr) c->has_header = true;
  free(malloc(64));  // the callback may allocate
}

void stats_print() {
  using PrintFn = void (*)(void (*)(void*, const char*), void*);
  auto print = reinterpret_cast<PrintFn>(dlsym(RTLD_DEFAULT, "ca_stats_print"));
  TEST_EXPECT(print != nullptr);
  Collected c;
  print(&collect, &c);
  if (c.lines < 5 || !c.one_newline_each || !c.has_header) {
    fail("ca_stats_print: %d lines, one newline each %d, header %d", c.lines, c.one_newline_each,
         c.has_header);
  }
}

}  // namespace

int main() {
  require_cachealloc("glibc_introspection");
  g_owns = find_ca_owns();
  libc_names();
  mallinfo_counts_ours();
  reports();
  stats_print();
  printf("glibc_introspection: __libc_* blocks are ours; mallinfo2, malloc_stats, malloc_info, "
         "mallopt answer for cachealloc\n");
  return 0;
}
