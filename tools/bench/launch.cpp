// bench-launch: runs one workload process and reports its wall time and peak RSS.
//
//   bench-launch [--preload LIB] [--stdin FILE] -- PROGRAM [ARGS...]
//
// prints, on its own stderr as the last line:
//   LAUNCH rc=0 wall=0.412345678 maxrss_kib=5123
// and exits 0 unless it could not start the program (127).
//
// Why it exists: Linux keeps a process's peak RSS (ru_maxrss) across execve, and at execve it
// folds in the peak of the address space being replaced — which for a child of run.py is a copy
// of the Python interpreter (~18 MiB). Every small workload would then report the runner's RSS.
// This launcher is a tiny process, so the workload it forks starts from a ~1 MiB baseline. It is
// started by run.py without LD_PRELOAD and sets LD_PRELOAD only in the child it forks.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace {

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void usage() {
  std::fputs("usage: bench-launch [--preload LIB] [--stdin FILE] -- PROGRAM [ARGS...]\n", stderr);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const char* preload = nullptr;
  const char* input = nullptr;
  int i = 1;
  for (; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      ++i;
      break;
    }
    if (std::strcmp(argv[i], "--preload") == 0 && i + 1 < argc)
      preload = argv[++i];
    else if (std::strcmp(argv[i], "--stdin") == 0 && i + 1 < argc)
      input = argv[++i];
    else
      usage();
  }
  if (i >= argc) usage();

  const double t0 = now();
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("bench-launch: fork");
    return 127;
  }
  if (pid == 0) {
    if (input) {
      const int fd = open(input, O_RDONLY | O_CLOEXEC);
      if (fd < 0 || dup2(fd, 0) < 0) {
        std::fprintf(stderr, "bench-launch: %s: %s\n", input, std::strerror(errno));
        _exit(127);
      }
    }
    if (preload)
      setenv("LD_PRELOAD", preload, 1);
    else
      unsetenv("LD_PRELOAD");
    execvp(argv[i], argv + i);
    std::fprintf(stderr, "bench-launch: %s: %s\n", argv[i], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      std::perror("bench-launch: wait4");
      return 127;
    }
  }
  const double wall = now() - t0;
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  std::fprintf(stderr, "\nLAUNCH rc=%d wall=%.9f maxrss_kib=%ld\n", rc, wall, ru.ru_maxrss);
  return 0;
}
