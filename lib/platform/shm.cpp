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

uint64_t realtime_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace cachealloc::os
