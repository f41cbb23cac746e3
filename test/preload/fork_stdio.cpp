// fork_stdio.cpp - fork() while other threads are inside stdio (Note [Fork], lib/core/fork.cpp).
//
// getline() reallocates its buffer while it holds its FILE's lock, and fflush(NULL) holds stdio's
// list lock while it waits for each FILE's lock; glibc's fork takes the list lock after the
// pthread_atfork prepare handlers. An allocator whose prepare handler takes its own locks first
// deadlocks here: the forking thread holds the allocator and waits for the list lock, the
// fflush(NULL) thread holds the list lock and waits for a FILE, and the getline thread holds that
// FILE and waits in realloc for the allocator.
//
// Threads: kForkers fork in a loop (each child allocates, frees and exits), kReaders getline a
// 60,000-byte line (the buffer grows through small and large sizes) from their own FILE, and one
// thread calls fflush(NULL) in a loop. Runs for `seconds` (default 2). A deadlock is reported by
// the watchdog alarm as a failure, never as a hung test. usage: fork_stdio [seconds]
#include "preload_support.h"

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using namespace preload_test;

namespace {

constexpr int kForkers = 4;
constexpr int kReaders = 8;
constexpr size_t kLineBytes = 60000;
constexpr unsigned kWatchdogSlack = 10;  // seconds past the planned run before we call it a hang

std::atomic<bool> g_stop{false};
std::atomic<long> g_forks{0}, g_lines{0}, g_flushes{0};
std::vector<char> g_text;  // two lines of kLineBytes characters each

void on_alarm(int) {
  static const char msg[] =
      "FAIL: fork_stdio: no progress before the watchdog alarm: fork() deadlocked against threads "
      "in getline()/fflush(NULL) (allocator locks taken before stdio's list lock?)\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(1);
}

void reader() {
  FILE* f = fmemopen(g_text.data(), g_text.size(), "r");
  if (f == nullptr) fail("fmemopen failed");
  while (!g_stop.load(std::memory_order_relaxed)) {
    char* line = nullptr;  // a fresh buffer each time: getline grows it by realloc under the lock
    size_t cap = 0;
    ssize_t got = getline(&line, &cap, f);
    if (got < 0) {
      rewind(f);
    } else {
      if (static_cast<size_t>(got) != kLineBytes + 1 || line[kLineBytes / 2] != 'x') {
        fail("getline returned %zd bytes", got);
      }
      g_lines.fetch_add(1, std::memory_order_relaxed);
    }
    free(line);
    sched_yield();  // lets fflush(NULL), and so the forking threads, get the FILE lock now and then
  }
  fclose(f);
}

void flusher() {
  while (!g_stop.load(std::memory_order_relaxed)) {
    fflush(nullptr);
    g_flushes.fetch_add(1, std::memory_order_relaxed);
  }
}

void forker(int id) {
  while (!g_stop.load(std::memory_order_relaxed)) {
    pid_t pid = fork();
    if (pid < 0) fail("fork failed");
    if (pid == 0) {
      alarm(5);  // the SIGALRM handler is inherited: a child stuck in malloc reports and exits 1
      void* small = malloc(100 + static_cast<size_t>(id));
      void* large = malloc(kLineBytes * 3);
      if (small == nullptr || large == nullptr) _exit(2);
      memset(large, id, kLineBytes * 3);
      free(small);
      free(large);
      _exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) fail("waitpid failed");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fail("a forked child failed (status 0x%x)", status);
    }
    g_forks.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

int main(int argc, char** argv) {
  require_cachealloc("fork_stdio");
  double seconds = argc > 1 ? atof(argv[1]) : 2.0;
  struct sigaction sa {};
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, nullptr);
  alarm(static_cast<unsigned>(seconds) + kWatchdogSlack);

  g_text.assign(2 * (kLineBytes + 1), 'x');
  g_text[kLineBytes] = '\n';
  g_text[2 * kLineBytes + 1] = '\n';

  std::vector<std::thread> threads;
  for (int i = 0; i < kReaders; ++i) threads.emplace_back(reader);
  threads.emplace_back(flusher);
  for (int i = 0; i < kForkers; ++i) threads.emplace_back(forker, i);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  g_stop = true;
  for (auto& t : threads) t.join();
  alarm(0);
  if (g_forks.load() == 0 || g_lines.load() == 0) fail("no forks or no lines: nothing was tested");
  printf("fork_stdio: %ld forks while %d threads read %ld lines of %zu bytes and fflush(NULL) ran "
         "%ld times\n", g_forks.load(), kReaders, g_lines.load(), kLineBytes, g_flushes.load());
  return 0;
}
