// process.cpp - Linux implementation of process.h.
#include "platform/process.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cachealloc::os {
namespace {

// Reads up to cap-1 bytes of a small /proc file into buf, NUL-terminated. Returns the length.
size_t read_small_file(const char* path, char* buf, size_t cap) noexcept {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t len = 0;
  while (len + 1 < cap) {
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += static_cast<size_t>(r);
  }
  close(fd);
  buf[len] = '\0';
  return len;
}

size_t copy_name(const char* s, size_t n, char* out, size_t cap) noexcept {
  if (cap == 0) return 0;
  size_t len = 0;
  for (size_t i = 0; i < n && len + 1 < cap; ++i) {
    char c = s[i];
    if (c == '\n' || c == '\0') break;
    out[len++] = (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  out[len] = '\0';
  return len;
}

}  // namespace

uint32_t process_id() noexcept { return static_cast<uint32_t>(syscall(SYS_getpid)); }

uint64_t process_start_ticks() noexcept {
  char buf[1024];
  size_t len = read_small_file("/proc/self/stat", buf, sizeof buf);
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so start after the last ')'.
  size_t i = len;
  while (i > 0 && buf[i - 1] != ')') --i;
  if (i == 0) return 0;
  // Fields after ')' are numbered from 3; starttime is field 22.
  unsigned field = 2;
  while (i < len) {
    while (i < len && buf[i] == ' ') ++i;
    if (++field == 22) {
      uint64_t v = 0;
      while (i < len && buf[i] >= '0' && buf[i] <= '9') v = v * 10 + static_cast<uint64_t>(buf[i++] - '0');
      return v;
    }
    while (i < len && buf[i] != ' ') ++i;
  }
  return 0;
}

uint64_t pid_namespace_id() noexcept {
  char buf[64];
  ssize_t n = readlink("/proc/self/ns/pid", buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  uint64_t v = 0;
  const char* p = buf;
  while (*p != '\0' && *p != '[') ++p;
  if (*p != '[') return 0;
  for (++p; *p >= '0' && *p <= '9'; ++p) v = v * 10 + static_cast<uint64_t>(*p - '0');
  return *p == ']' ? v : 0;
}

size_t executable_name(char* out, size_t cap) noexcept {
  char path[512];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n > 0) {
    size_t len = static_cast<size_t>(n);
    // A deleted executable reads as "/path/prog (deleted)"; the base name is still right.
    size_t base = len;
    while (base > 0 && path[base - 1] != '/') --base;
    return copy_name(path + base, len - base, out, cap);
  }
  char comm[64];
  size_t len = read_small_file("/proc/self/comm", comm, sizeof comm);
  return copy_name(comm, len, out, cap);
}

bool process_may_exist(uint32_t pid) noexcept {
  return pid != 0 && !(syscall(SYS_kill, static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH);
}

}  // namespace cachealloc::os
