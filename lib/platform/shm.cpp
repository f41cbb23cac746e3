// shm.cpp - Linux implementation of shm.h.
#include "platform/shm.h"

#include <cerrno>
#include <ctime>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cachealloc::os {
namespace {

constexpr int kCreateFlags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;

// One try at an exclusive create. 0 and *out, or an errno value.
int create_once(const char* name, size_t size, void** out) noexcept {
  int fd = shm_open(name, kCreateFlags, 0600);
  if (fd < 0) return errno;
  int err = 0;
  // The umask may have taken bits away (never added any); make the mode exactly 0600 anyway.
  if (fchmod(fd, 0600) != 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) {
    err = errno;
  } else {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      err = errno;
    } else {
      *out = p;
    }
  }
  close(fd);
  if (err != 0) shm_unlink(name);
  return err;
}

// True when `name` exists, is a regular file and belongs to our effective uid.
bool owned_by_us(const char* name) noexcept {
  int fd = shm_open(name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) return false;
  struct stat st;
  bool ours = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid();
  close(fd);
  return ours;
}

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

int shm_create(const char* name, size_t size, void** out) noexcept {
  int err = create_once(name, size, out);
  if (err == EEXIST && owned_by_us(name)) {
    shm_unlink(name);
    err = create_once(name, size, out);
  }
  return err;
}

void shm_unmap(void* p, size_t size) noexcept { munmap(p, size); }

int shm_remove(const char* name) noexcept { return shm_unlink(name) == 0 ? 0 : errno; }

size_t shm_list(bool (*fn)(void* ctx, const char* name), void* ctx, size_t max_entries) noexcept {
  int fd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return 0;
  // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name (NUL-terminated).
  alignas(8) char buf[4096];
  size_t seen = 0;
  bool go = true;
  while (go && seen < max_entries) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n && go && seen < max_entries;) {
      unsigned short reclen;
      __builtin_memcpy(&reclen, buf + off + 16, sizeof reclen);
      const char* name = buf + off + 19;
      ++seen;
      go = fn(ctx, name);
      off += reclen;
    }
  }
  close(fd);
  return seen;
}

bool shm_read_own(const char* name, void* buf, size_t n) noexcept {
  int fd = shm_open(name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) return false;
  struct stat st;
  bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
            pread(fd, buf, n, 0) == static_cast<ssize_t>(n);
  close(fd);
  return ok;
}

bool process_may_exist(uint32_t pid) noexcept {
  return pid != 0 && !(syscall(SYS_kill, static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH);
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

uint32_t process_id() noexcept { return static_cast<uint32_t>(syscall(SYS_getpid)); }

uint64_t realtime_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

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

}  // namespace cachealloc::os
