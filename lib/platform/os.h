// os.h - the only place cachealloc talks to the operating system.
//
// Every function here is safe to call before libc constructors have run, from inside malloc, and
// never allocates. Nothing outside lib/platform includes a system header for mmap/madvise/shm or
// reads the environment directly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cachealloc::os {

// Maps `size` bytes of fresh, zeroed, read-write anonymous memory whose start is a multiple of
// `align`. Pre: size and align are multiples of page_size(), align a power of two.
// Post: the mapping or nullptr (errno left as mmap set it). Never reserves more than
// size + align - page_size() at once, so it keeps working under a tight RLIMIT_AS.
void* map_aligned(size_t size, size_t align) noexcept;

// Unmaps what map_aligned returned (or a page-aligned part of it).
void unmap(void* p, size_t size) noexcept;

// Moves or resizes a mapping made by map_aligned without copying its pages (mremap with
// MREMAP_MAYMOVE): the contents up to min(old_size, new_size) stay, the rest reads as zero.
// Pre: p, old_size and new_size page-aligned. Post: the new start (page-aligned only: a larger
// alignment is not kept), or nullptr with the old mapping untouched.
void* remap(void* p, size_t old_size, size_t new_size) noexcept;

// Moves the pages of [from, from + size) onto [to, to + size) without copying them (mremap with
// MREMAP_FIXED): `to` then holds what `from` held, and `from` is unmapped. Pre: all page-aligned,
// the two ranges apart, each inside one mapping (one kernel VMA: not a range that earlier moves
// pieced together), `to` made by map_aligned. An older kernel may unmap `to` before it finds it
// cannot move, so a failure maps fresh pages there again where nothing else took the hole. kMoved;
// kRefused: `from` as it was, `to` fresh zero pages; kLost: `from` as it was, and the range of
// `to` is no longer the caller's (it may be another mapping now: never unmap or touch it).
// errno is kept.
enum class MoveResult { kMoved, kRefused, kLost };
MoveResult move_pages(void* from, size_t size, void* to) noexcept;

// Tells the kernel the pages are no longer needed: RSS drops, the range stays mapped and reads as
// zero when touched again. Pre: p and size page-aligned. Returns false if the kernel refused.
bool decommit(void* p, size_t size) noexcept;

// Reserves `size` bytes of address space that read as zero and cost neither memory nor commit
// charge (read-only, MAP_NORESERVE) until parts of it are made writable. Pre: size a multiple of
// page_size(). Post: the range, or nullptr when refused (RLIMIT_AS, or an injected failure).
void* reserve_zeros(size_t size) noexcept;
// Makes a page-aligned part of a reserve_zeros range writable; its pages are committed when first
// written. False when refused (the range stays read-only and zero).
bool make_writable(void* p, size_t size) noexcept;

// Asks for transparent huge pages in the range (madvise MADV_HUGEPAGE): page faults there may map
// 2 MiB at a time. Pre: p and size page-aligned. Returns false if the kernel refused (THP
// compiled out, or the range is not anonymous); the range works as before either way.
bool advise_huge_pages(void* p, size_t size) noexcept;

size_t page_size() noexcept;
// The process's address-space limit in bytes (RLIMIT_AS, soft), or UINT64_MAX when unlimited.
uint64_t address_space_limit() noexcept;
// Bytes of physical memory (sysconf), or 0 when unknown.
uint64_t physical_memory() noexcept;

// Looks `name` up in the process environment without allocating, with secure_getenv semantics:
// nullptr for set-uid/set-gid programs (AT_SECURE) and before the environment exists.
const char* get_env(const char* name) noexcept;

// The environment as `environ` has it (nullptr before it exists, or for set-uid/set-gid programs,
// as get_env). Entries are "NAME=value".
const char* const* environment() noexcept;

// Opens `path` for appending (O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, mode 0644 less the umask).
// The descriptor, or -1 (errno set).
int open_append(const char* path) noexcept;
// Writes all of `len` bytes to `fd`, retrying on EINTR; false on an error. close_fd closes it.
bool write_fd(int fd, const char* s, size_t len) noexcept;
void close_fd(int fd) noexcept;

// Writes all of `len` bytes to stderr with write(2), retrying on EINTR. Never allocates.
void write_stderr(const char* s, size_t len) noexcept;

// Prints `msg` to stderr and aborts. Never returns, never allocates.
[[noreturn]] void die(const char* msg, size_t len) noexcept;

// ---- threads ----
// A per-thread value with a destructor (pthread keys): `on_exit(value)` runs when a thread that
// set a non-null value exits. create_thread_key: false when the process has no key left.
// set_thread_value may allocate (glibc does, past the first 32 keys).
using ThreadKey = unsigned;
bool create_thread_key(ThreadKey* key, void (*on_exit)(void* value)) noexcept;
void set_thread_value(ThreadKey key, void* value) noexcept;

// Gives the CPU to another thread (sched_yield).
void yield_thread() noexcept;

// The kernel's id of the calling thread (gettid), no libc TLS needed.
uint32_t thread_id() noexcept;

// Names the calling thread (its /proc comm, at most 15 characters kept) with prctl(PR_SET_NAME):
// pthread_setname_np on another thread formats a /proc path with sprintf, which maps libc's
// printf code into programs that never print: a threaded C program that does not print peaked at
// about 2.29 MiB with it, 2.12 MiB without (medians of 4, /usr/bin/time; glibc alone 1.32).
void name_this_thread(const char* name) noexcept;

// 64 unpredictable bits for per-process secrets: getrandom(2) without blocking, or, where the
// kernel has no entropy yet (early boot) or no getrandom, a hash of the kernel's AT_RANDOM bytes,
// the clock and the stack address. Never allocates.
uint64_t random_u64() noexcept;

// Monotonic clock in nanoseconds.
uint64_t now_ns() noexcept;

// Sleeps about `ns` nanoseconds (monotonic clock; an interrupting signal ends it early).
void sleep_ns(uint64_t ns) noexcept;

// ---- the dynamic loader ----
// libc's own dlsym, found with dlvsym (never through an exported interposer: cachealloc exports
// a dlsym of its own for the CUDA driver hooks). Calling it through this pointer makes RTLD_NEXT
// relative to cachealloc itself. nullptr when libc has none. Used for the CUDA entry points
// (cuda_api.cpp, cuda/driver_hooks.cpp) and the C++ runtime's failure path (preload/new_delete.cpp).
using DlsymFn = void* (*)(void* handle, const char* name);
DlsymFn real_dlsym() noexcept;

// ---- heap profiling (lib/prof) ----
// Opens `path` for writing from the start (O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644 less the
// umask). The descriptor, or -1 (errno set).
int open_truncate(const char* path) noexcept;
// Copies the file at `path` (e.g. /proc/self/maps) to `fd` with read/write; false on an error.
bool copy_file(const char* path, int fd) noexcept;

// The loaded object (executable or shared library) that holds `addr`, as dladdr sees it: its file
// name, its load base and the nearest dynamic symbol at or below addr (nullptr when none). False
// when no object holds addr. dladdr takes the loader's lock: not from inside malloc.
struct AddressInfo {
  const char* file;
  uintptr_t base;
  const char* symbol;
  uintptr_t symbol_addr;
  uintptr_t symbol_size;  // from the symbol table entry; 0 when unknown
  bool relocatable;  // ET_DYN (PIE or library): file offsets are addr - base; else addr itself
};
bool describe_address(const void* addr, AddressInfo* out) noexcept;
// [lo, hi): the address range of the PT_LOAD segments of the object that holds `addr` (this
// library's own code, for the unwinder to skip). False when none does.
bool object_range(const void* addr, uintptr_t* lo, uintptr_t* hi) noexcept;
// `name` in the shared library `file` (a soname such as "libgcc_s.so.1"), loading it if no one has
// (dlopen RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE: it stays for the process). nullptr when it cannot
// be loaded or has no such symbol. dlopen allocates and takes the loader's lock: not from inside
// malloc.
void* library_symbol(const char* file, const char* name) noexcept;

// Runs `argv[0]` (searched in PATH) with `argv`, with the environment less LD_PRELOAD and every
// CACHEALLOC_* entry, stdin from /dev/null, and copies up to cap-1 bytes of its stdout into `out`
// (NUL-terminated). Returns the bytes read, or -1 when it could not be run or did not exit 0.
// posix_spawn and its file actions allocate: not from inside malloc.
long run_capture(const char* const* argv, char* out, size_t cap) noexcept;

// Flushes every stdio stream (fflush(NULL)) and ends the process with `status` (_exit): for a
// failure status decided in a library destructor, after the program's output is written.
[[noreturn]] void flush_and_exit(int status) noexcept;

// ---- fork (Note [Fork], core/fork.cpp) ----
// Registers fork handlers as pthread_atfork does (glibc may allocate). Called once, by core/fork.cpp.
void register_fork_handlers(void (*prepare)(), void (*parent)(), void (*child)()) noexcept;

// Threads of this process now (field 20 of /proc/self/stat), or 0 when it cannot be read.
// Async-signal-safe: open, read and close only.
unsigned thread_count() noexcept;

// True while the process has only ever had one thread: glibc's __libc_single_threaded (2.32+),
// the same test glibc's fork uses to skip its own locks. False when unknown (older glibc), so
// callers then take their locks as before. Async-signal-safe (one byte load).
bool single_threaded() noexcept;

// glibc's stdio list lock (_IO_list_lock), the lock fork() itself takes after the pthread_atfork
// prepare handlers and before its malloc locks. It is recursive, so fork's own acquisition nests
// inside one taken here. Every function is a no-op when libc does not export it.
//   stdio_list_lock:   takes it (prepare, before the allocator's locks).
//   stdio_list_unlock: releases one level (fork parent, after glibc released its own level).
//   stdio_list_reset:  re-creates it unlocked (fork child only; idempotent: glibc's fork resets
//                      it too in a multi-threaded parent's child).
void stdio_list_lock() noexcept;
void stdio_list_unlock() noexcept;
void stdio_list_reset() noexcept;

// Fault injection for tests: when set, map_aligned, reserve_zeros, make_writable, remap,
// move_pages (kRefused, nothing changed) and decommit fail (map_aligned sets ENOMEM)
// for the next `n` calls, or forever with a negative value. 0 turns it off.
void inject_map_failures(long n) noexcept;

}  // namespace cachealloc::os
