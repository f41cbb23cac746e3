// heap_fixture.h - a Heap over fake upstreams, and a death-test helper, for the unit tests.
#pragma once

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/heap.h"
#include "fake_large_source.h"
#include "fake_segment_source.h"

#include "../support/pattern.h"  // the fill pattern written into blocks and checked

namespace cachealloc::test {

// One allocator instance over fakes. The Heap is big (segment table, 96 pools), so it lives on
// the heap of the test process (glibc malloc: the core under test does not export malloc).
struct TestHeap {
  FakeSegmentSource pages;
  FakeLargeSource large;
  std::unique_ptr<Heap> heap_ptr{new Heap()};
  Heap& heap = *heap_ptr;
  ThreadCache* tc = nullptr;

  // split_min: large blocks of that size and more are mappings of their own (FakeLargeSource).
  explicit TestHeap(HeapConfig config = {}, bool with_cache = true, size_t split_min = SIZE_MAX) {
    large.split_min_bytes = split_min;
    heap.init(&pages, &large, config);
    if (with_cache) tc = heap.create_thread_cache();
  }
  ~TestHeap() {
    if (tc != nullptr) heap.destroy_thread_cache(tc);
    heap.clear(nullptr);
  }
  void* alloc(size_t n, size_t align = 0) { return heap.alloc(tc, n, align, false); }
  void* calloc(size_t n) { return heap.alloc(tc, n, 0, true); }
  void free(void* p) { heap.free(tc, p, "free"); }
};

inline HeapConfig config_with(size_t cache_limit, bool check = false, size_t threshold = 256 << 10) {
  HeapConfig c;
  c.cache_limit = cache_limit;
  c.check = check;
  c.large_threshold = threshold;
  return c;
}

struct DeathResult {
  bool aborted = false;   // killed by SIGABRT
  int status = 0;
  std::string stderr_text;
};

// Runs fn in a forked child with stderr captured. The child exits 0 if fn returns.
inline DeathResult run_in_child(const std::function<void()>& fn) {
  DeathResult r;
  int fds[2];
  if (pipe(fds) != 0) return r;
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    // Catch2's fatal-signal handler would report the expected abort as a failure of the child:
    // restore the default actions, and keep the child's Catch2 output out of the parent's report.
    signal(SIGABRT, SIG_DFL);
    signal(SIGSEGV, SIG_DFL);
    dup2(fds[1], 2);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 1);
    fn();
    _exit(0);
  }
  close(fds[1]);
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) r.stderr_text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  waitpid(pid, &r.status, 0);
  r.aborted = WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT;
  return r;
}

}  // namespace cachealloc::test
