// os_linux.cpp - Linux implementation of os.h.
#include "platform/os.h"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <spawn.h>
#include <cstdio>
#include <sys/wait.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <type_traits>
#include <unistd.h>

#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define CA_HAVE_SINGLE_THREADED 1
#endif

extern "C" char** environ;

// glibc exports these (GLIBC_2.2.5) without declaring them in any header. Weak, so that a libc
// without them leaves null pointers and the stdio_list_* functions do nothing.
extern "C" {
[[gnu::weak]] void _IO_list_lock(void);
[[gnu::weak]] void _IO_list_unlock(void);
[[gnu::weak]] void _IO_list_resetlock(void);
}
// What pthread_atfork calls (GLIBC_2.3.2), and the handle of this library (crtbeginS.o).
extern "C" int __register_atfork(void (*prepare)(), void (*parent)(), void (*child)(), void* dso);
extern "C" void* __dso_handle;

namespace cachealloc::os {
namespace {
std::atomic<long> g_map_failures{0};

bool injected_failure() noexcept {
  long n = g_map_failures.load(std::memory_order_relaxed);
  if (n == 0) return false;
  if (n > 0) g_map_failures.fetch_sub(1, std::memory_order_relaxed);
  return true;
}
}  // namespace

bool single_threaded() noexcept {
#ifdef CA_HAVE_SINGLE_THREADED
  return __libc_single_threaded != 0;
#else
  return false;
#endif
}

void stdio_list_lock() noexcept {
  if (&_IO_list_lock != nullptr) _IO_list_lock();
}

void stdio_list_unlock() noexcept {
  if (&_IO_list_unlock != nullptr) _IO_list_unlock();
}

void stdio_list_reset() noexcept {
  if (&_IO_list_resetlock != nullptr) _IO_list_resetlock();
}

void inject_map_failures(long n) noexcept { g_map_failures.store(n, std::memory_order_relaxed); }

uint64_t address_space_limit() noexcept {
  struct rlimit r;
  if (getrlimit(RLIMIT_AS, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
  return static_cast<uint64_t>(r.rlim_cur);
}

uint64_t physical_memory() noexcept {
  long pages = sysconf(_SC_PHYS_PAGES);
  long size = sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(size) : 0;
}

size_t page_size() noexcept {
  static std::atomic<size_t> cached{0};
  size_t p = cached.load(std::memory_order_relaxed);
  if (p == 0) {
    long v = sysconf(_SC_PAGESIZE);
    p = v > 0 ? static_cast<size_t>(v) : 4096;
    cached.store(p, std::memory_order_relaxed);
  }
  return p;
}

void* map_aligned(size_t size, size_t align) noexcept {
  if (injected_failure()) {
    errno = ENOMEM;
    return nullptr;
  }
  const int prot = PROT_READ | PROT_WRITE;
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  // Try the exact size first: the kernel often hands back an aligned address already.
  void* p = mmap(nullptr, size, prot, flags, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if ((a & (align - 1)) == 0) return p;
  munmap(p, size);
  // Over-map by the alignment and trim both ends.
  size_t over = size + align - page_size();
  p = mmap(nullptr, over, prot, flags, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  a = reinterpret_cast<uintptr_t>(p);
  uintptr_t start = (a + align - 1) & ~(uintptr_t{align} - 1);
  if (start > a) munmap(p, start - a);
  uintptr_t end = a + over;
  if (end > start + size) munmap(reinterpret_cast<void*>(start + size), end - (start + size));
  return reinterpret_cast<void*>(start);
}

void unmap(void* p, size_t size) noexcept { munmap(p, size); }

void* reserve_zeros(size_t size) noexcept {
  if (injected_failure()) return nullptr;
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

bool make_writable(void* p, size_t size) noexcept {
  if (injected_failure()) return false;
  return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

void* remap(void* p, size_t old_size, size_t new_size) noexcept {
  if (injected_failure()) return nullptr;
  void* q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  return q == MAP_FAILED ? nullptr : q;
}

namespace {
// Whether every page of the page-aligned range is mapped (mincore says ENOMEM otherwise).
bool fully_mapped(void* p, size_t size) noexcept {
  unsigned char resident[512];
  const size_t page = page_size();
  for (size_t at = 0; at < size; at += sizeof resident * page) {
    const size_t n = size - at < sizeof resident * page ? size - at : sizeof resident * page;
    if (mincore(static_cast<char*>(p) + at, n, resident) != 0) return false;
  }
  return true;
}
}  // namespace

MoveResult move_pages(void* from, size_t size, void* to) noexcept {
  if (injected_failure()) return MoveResult::kRefused;
  int saved = errno;
  MoveResult r = MoveResult::kMoved;
  if (mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to) {
    // Older kernels unmap `to` before they find they cannot move; newer ones check first and
    // leave it mapped (mincore fails on a range with an unmapped page). A hole is mapped again
    // only if nothing else took any of it meanwhile (another thread's mmap may have):
    // MAP_FIXED would replace that mapping; MAP_FIXED_NOREPLACE refuses.
    r = MoveResult::kRefused;
    if (!fully_mapped(to, size)) {
      const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE;
      void* again = mmap(to, size, PROT_READ | PROT_WRITE, flags, -1, 0);
      if (again != to) {
        if (again != MAP_FAILED) munmap(again, size);  // a kernel before 4.17 took it as a hint
        r = MoveResult::kLost;
      }
    }
  }
  errno = saved;
  return r;
}

bool decommit(void* p, size_t size) noexcept {
  if (injected_failure()) return false;
  return madvise(p, size, MADV_DONTNEED) == 0;
}

bool advise_huge_pages(void* p, size_t size) noexcept {
#ifdef MADV_HUGEPAGE
  return madvise(p, size, MADV_HUGEPAGE) == 0;
#else
  (void)p, (void)size;
  return false;
#endif
}

const char* const* environment() noexcept {
  if (getauxval(AT_SECURE) != 0) return nullptr;
  return environ;
}

const char* get_env(const char* name) noexcept {
  if (getauxval(AT_SECURE) != 0) return nullptr;
  char** env = environ;
  if (env == nullptr) return nullptr;
  for (; *env != nullptr; ++env) {
    const char* e = *env;
    const char* n = name;
    while (*n != '\0' && *e == *n) {
      ++e;
      ++n;
    }
    if (*n == '\0' && *e == '=') return e + 1;
  }
  return nullptr;
}

int open_append(const char* path) noexcept {
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

bool write_fd(int fd, const char* s, size_t len) noexcept {
  while (len > 0) {
    ssize_t w = write(fd, s, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    s += w;
    len -= static_cast<size_t>(w);
  }
  return true;
}

void close_fd(int fd) noexcept { close(fd); }

void write_stderr(const char* s, size_t len) noexcept { write_fd(2, s, len); }

void die(const char* msg, size_t len) noexcept {
  write_stderr(msg, len);
  abort();
}

static_assert(std::is_same_v<ThreadKey, pthread_key_t>);

bool create_thread_key(ThreadKey* key, void (*on_exit)(void* value)) noexcept {
  return pthread_key_create(key, on_exit) == 0;
}

void set_thread_value(ThreadKey key, void* value) noexcept { pthread_setspecific(key, value); }

void yield_thread() noexcept { sched_yield(); }

// pthread_atfork is a stub from libc_nonshared.a that calls __register_atfork with the library's
// __dso_handle; the linker put it after all our code, where it kept the last 64 KiB of the text
// resident in every process (Note [Cold code last] in lib/meson.build). Same call, no stub.
void register_fork_handlers(void (*prepare)(), void (*parent)(), void (*child)()) noexcept {
  __register_atfork(prepare, parent, child, __dso_handle);
}

namespace {
uint64_t mix64(uint64_t x) noexcept {  // a bijective 64-bit finaliser (splitmix64's constants)
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

uint32_t thread_id() noexcept { return static_cast<uint32_t>(syscall(SYS_gettid)); }

void name_this_thread(const char* name) noexcept { prctl(PR_SET_NAME, name, 0, 0, 0); }

uint64_t random_u64() noexcept {
  uint64_t v = 0;
  int saved = errno;
  long got = syscall(SYS_getrandom, &v, sizeof v, 0x1 /* GRND_NONBLOCK */);
  errno = saved;
  if (got == static_cast<long>(sizeof v)) return v;
  // Not the AT_RANDOM bytes themselves: glibc derives the stack canary from them.
  uint64_t seed = 0;
  if (auto* at = reinterpret_cast<const unsigned char*>(getauxval(AT_RANDOM))) memcpy(&seed, at + 8, sizeof seed);
  uintptr_t stack = reinterpret_cast<uintptr_t>(&v);
  return mix64(seed ^ mix64(now_ns() ^ mix64(stack)));
}

void sleep_ns(uint64_t ns) noexcept {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000u);
  ts.tv_nsec = static_cast<long>(ns % 1000000000u);
  clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);
}

unsigned thread_count() noexcept {
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // "pid (comm) state ppid ..." : comm may hold spaces and parentheses, so count from the last ')'.
  const char* p = nullptr;
  for (ssize_t i = 0; i < n; ++i) {
    if (buf[i] == ')') p = buf + i;
  }
  if (p == nullptr) return 0;
  int field = 2;  // the ')' ends field 2
  for (++p; *p != '\0' && field < 20; ++p) {
    if (*p == ' ') ++field;
  }
  // p is now at field 20 (num_threads).
  while (*p == ' ') ++p;
  unsigned v = 0;
  for (; *p >= '0' && *p <= '9'; ++p) v = v * 10 + static_cast<unsigned>(*p - '0');
  return v;
}

uint64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// ---- heap profiling ------------------------------------------------------------------------

int open_truncate(const char* path) noexcept {
  return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

bool copy_file(const char* path, int fd) noexcept {
  int in = open(path, O_RDONLY | O_CLOEXEC);
  if (in < 0) return false;
  char buf[4096];
  bool ok = true;
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    if (!write_fd(fd, buf, static_cast<size_t>(n))) {
      ok = false;
      break;
    }
  }
  close(in);
  return ok;
}

bool describe_address(const void* addr, AddressInfo* out) noexcept {
  Dl_info info;
  void* entry = nullptr;
  if (dladdr1(addr, &info, &entry, RTLD_DL_SYMENT) == 0 || info.dli_fbase == nullptr) return false;
  const auto* sym = static_cast<const ElfW(Sym)*>(entry);
  out->symbol_size = sym != nullptr ? sym->st_size : 0;
  out->file = info.dli_fname;
  out->base = reinterpret_cast<uintptr_t>(info.dli_fbase);
  out->symbol = info.dli_sname;
  out->symbol_addr = reinterpret_cast<uintptr_t>(info.dli_saddr);
  out->relocatable = static_cast<const ElfW(Ehdr)*>(info.dli_fbase)->e_type == ET_DYN;
  return true;
}

namespace {
struct RangeQuery {
  uintptr_t addr;
  uintptr_t lo;
  uintptr_t hi;
  bool found;
};

int find_range(struct dl_phdr_info* info, size_t, void* data) {
  auto* q = static_cast<RangeQuery*>(data);
  uintptr_t lo = UINTPTR_MAX;
  uintptr_t hi = 0;
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (start < lo) lo = start;
    if (start + ph.p_memsz > hi) hi = start + ph.p_memsz;
  }
  if (q->addr < lo || q->addr >= hi) return 0;
  q->lo = lo;
  q->hi = hi;
  q->found = true;
  return 1;
}
}  // namespace

void* library_symbol(const char* file, const char* name) noexcept {
  void* lib = dlopen(file, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  DlsymFn find = real_dlsym();  // not the exported interposer of lib/cuda
  return lib == nullptr || find == nullptr ? nullptr : find(lib, name);
}

bool object_range(const void* addr, uintptr_t* lo, uintptr_t* hi) noexcept {
  RangeQuery q{reinterpret_cast<uintptr_t>(addr), 0, 0, false};
  dl_iterate_phdr(&find_range, &q);
  *lo = q.lo;
  *hi = q.hi;
  return q.found;
}

namespace {
constinit std::atomic<DlsymFn> g_real_dlsym{nullptr};
}  // namespace

DlsymFn real_dlsym() noexcept {
  DlsymFn f = g_real_dlsym.load(std::memory_order_acquire);
  if (f != nullptr) return f;
  // glibc >= 2.34 keeps dlsym in libc with version GLIBC_2.34; older ones in libdl as 2.2.5.
  void* p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
  if (p == nullptr) p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
  if (p == nullptr) p = dlvsym(RTLD_DEFAULT, "dlsym", "GLIBC_2.34");
  if (p == nullptr) p = dlvsym(RTLD_DEFAULT, "dlsym", "GLIBC_2.2.5");
  f = reinterpret_cast<DlsymFn>(p);
  g_real_dlsym.store(f, std::memory_order_release);
  return f;
}

long run_capture(const char* const* argv, char* out, size_t cap) noexcept {
  // The child's environment: ours less what would load cachealloc into it again.
  const char* env[512];
  size_t n = 0;
  for (char** e = environ; e != nullptr && *e != nullptr && n + 1 < 512; ++e) {
    if (strncmp(*e, "LD_PRELOAD=", 11) == 0 || strncmp(*e, "CACHEALLOC_", 11) == 0) continue;
    env[n++] = *e;
  }
  env[n] = nullptr;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  int e = posix_spawnp(&pid, argv[0], &actions, nullptr, const_cast<char* const*>(argv),
                       const_cast<char* const*>(env));
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  size_t got = 0;
  if (e == 0) {
    for (;;) {
      char sink[512];
      char* to = got + 1 < cap ? out + got : sink;
      size_t room = got + 1 < cap ? cap - 1 - got : sizeof sink;
      ssize_t r = read(fds[0], to, room);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      if (to != sink) got += static_cast<size_t>(r);
    }
  }
  close(fds[0]);
  if (cap != 0) out[got < cap ? got : cap - 1] = '\0';
  if (e != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? static_cast<long>(got) : -1;
}

void flush_and_exit(int status) noexcept {
  fflush(nullptr);
  _exit(status);
}

}  // namespace cachealloc::os
