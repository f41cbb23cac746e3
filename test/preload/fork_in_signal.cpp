// fork_in_signal.cpp - fork() from a signal handler in a single-threaded program (Note [Fork],
// lib/core/fork.cpp).
//
// fork is async-signal-safe in POSIX.1-2008, and glibc keeps it usable from a handler as long as
// the process is single-threaded: it takes no malloc or stdio locks then, because the interrupted
// code may hold them and would never get to release them. A profiling timer (SIGPROF, counted in
// CPU time, so it lands while main is busy in malloc, free and realloc, often holding a pool or
// large-cache lock) forks; the child _exits at once, the parent reaps it from main. Runs until
// kForks children or `seconds` (default 2) have passed. A deadlock is reported by the SIGALRM
// watchdog as a failure, never as a hung test. usage: fork_in_signal [seconds]
#include "preload_support.h"

#include <signal.h>
#include <sys/single_threaded.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>

#include <atomic>

using namespace preload_test;

namespace {

constexpr long kForks = 400;
constexpr unsigned kWatchdogSlack = 10;  // seconds past the planned run before we call it a hang
constexpr int kSlots = 512;

volatile sig_atomic_t g_forks = 0;
volatile sig_atomic_t g_fork_errors = 0;

void on_alarm(int) {
  static const char msg[] =
      "FAIL: fork_in_signal: the watchdog alarm fired: fork() from a SIGPROF handler deadlocked "
      "on an allocator lock held by the code it interrupted\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(1);
}

void on_prof(int) {
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) _exit(0);  // only async-signal-safe calls in a child forked from a handler
  if (pid < 0) {
    g_fork_errors = g_fork_errors + 1;
  } else {
    g_forks = g_forks + 1;
  }
  errno = saved;
}

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Threads of this process other than the calling one and cachealloc's publisher
// ("cachealloc-stat").
int other_threads() {
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == gettid()) continue;
    char comm_path[96], comm[32] = {};
    snprintf(comm_path, sizeof comm_path, "/proc/self/task/%s/comm", e->d_name);
    FILE* f = fopen(comm_path, "r");
    if (f != nullptr) {
      if (fgets(comm, sizeof comm, f) == nullptr) comm[0] = '\0';
      fclose(f);
    }
    if (strncmp(comm, "cachealloc-stat", 15) != 0) ++n;
  }
  closedir(d);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  require_cachealloc("fork_in_signal");
  // cachealloc's statistics publisher is a thread of its own (Note [Helper threads] in
  // lib/core/fork.h): started here, so that the forks below run with it, and tolerated as the only
  // other thread. Any other thread would make the test prove nothing.
  using FlushFn = int (*)();
  auto flush = reinterpret_cast<FlushFn>(dlsym(RTLD_DEFAULT, "ca_stats_flush"));
  if (flush != nullptr) flush();
  if (!__libc_single_threaded && other_threads() != 0) {
    fail("the process has threads besides cachealloc's publisher: the test proves nothing");
  }
  double seconds = argc > 1 ? atof(argv[1]) : 2.0;

  struct sigaction sa {};
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, nullptr);
  alarm(static_cast<unsigned>(seconds) + kWatchdogSlack);
  sa.sa_handler = on_prof;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGPROF, &sa, nullptr);
  itimerval every{{0, 500}, {0, 500}};  // 0.5 ms of CPU time
  setitimer(ITIMER_PROF, &every, nullptr);

  // Sizes that keep the slow paths (and their locks) busy: small blocks in runs longer than a
  // thread-cache bin, large blocks through the large cache, reallocs across the threshold.
  void* slots[kSlots] = {};
  size_t sizes[kSlots] = {};
  unsigned long rng = 12345;
  long reaped = 0;
  double end = now_s() + seconds;
  for (long round = 0; g_forks < kForks && now_s() < end; ++round) {
    for (int i = 0; i < kSlots; ++i) {
      rng = rng * 6364136223846793005ul + 1442695040888963407ul;
      size_t n = (rng >> 33) % 8 == 0 ? (size_t{64} << 10) + (rng >> 20) % (size_t{1} << 20)
                                      : 16 + (rng >> 40) % 4000;
      if (slots[i] != nullptr && !pattern::sparse_intact(slots[i], sizes[i], sizes[i])) {
        fail("block %d corrupted", i);
      }
      if ((round + i) % 3 == 0 && slots[i] != nullptr) {
        void* q = realloc(slots[i], n);
        if (q == nullptr) fail("realloc(%zu) failed", n);
        slots[i] = q;
      } else {
        free(slots[i]);
        slots[i] = malloc(n);
        if (slots[i] == nullptr) fail("malloc(%zu) failed", n);
      }
      sizes[i] = n;
      pattern::fill_sparse(slots[i], n, n);
    }
    while (waitpid(-1, nullptr, WNOHANG) > 0) ++reaped;
  }
  itimerval off{};
  setitimer(ITIMER_PROF, &off, nullptr);
  for (void*& p : slots) free(p);
  while (waitpid(-1, nullptr, 0) > 0) ++reaped;
  alarm(0);
  if (g_fork_errors != 0) fail("%d forks failed", static_cast<int>(g_fork_errors));
  if (g_forks == 0) fail("the timer never fired: nothing was tested");
  if (reaped != g_forks) fail("forked %ld children, reaped %ld", static_cast<long>(g_forks), reaped);
  printf("fork_in_signal: %ld forks from a SIGPROF handler interrupting malloc/free/realloc%s\n",
         static_cast<long>(g_forks),
         __libc_single_threaded ? "" : " (with cachealloc's publisher thread paused at each fork)");
  return 0;
}
