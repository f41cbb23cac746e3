// process.h - who this process is: its pid, start time, pid namespace and executable name, and
// whether another process may still exist.
//
// The statistics segment (include/cachealloc/stats_abi.h) names its process with these facts, and
// the profiler names its dump files and finds its executable with them. Like os.h, every function
// here is safe to call from inside malloc (after libc has started), from a fork() child handler and
// from a library destructor, and never allocates.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cachealloc::os {

// getpid(), without libc's cache (correct in a fork() child at any point).
uint32_t process_id() noexcept;

// Start time of this process in clock ticks since boot (field 22 of /proc/self/stat), or 0 when
// /proc is not readable.
uint64_t process_start_ticks() noexcept;

// The inode number of this process's pid namespace (/proc/self/ns/pid, "pid:[4026531836]"), or 0
// when it cannot be read. Two processes with the same pid in different namespaces differ here.
uint64_t pid_namespace_id() noexcept;

// Copies the base name of the running executable (from /proc/self/exe, else /proc/self/comm) into
// out[0..cap), NUL-terminated. Returns its length (0 when unknown).
size_t executable_name(char* out, size_t cap) noexcept;

// True unless `pid` certainly does not exist (kill(pid, 0) fails with ESRCH).
bool process_may_exist(uint32_t pid) noexcept;

}  // namespace cachealloc::os
