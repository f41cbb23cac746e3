// shm.h - POSIX shared-memory segments, and the wall clock their records are stamped with.
//
// The only place cachealloc calls shm_open/ftruncate/mmap(MAP_SHARED)/shm_unlink. Used by
// lib/stats to publish the statistics segment (include/cachealloc/stats_abi.h). Like os.h, every
// function here is safe to call from inside malloc (after libc has started), from a fork() child
// handler, and from a library destructor, and never allocates.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cachealloc::os {

// Creates the shared-memory object `name` ("/name", no other slash) exclusively
// (O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC) with mode 0600 whatever the umask, sizes it to `size`
// bytes (zero-filled) and maps it read-write, shared.
// If the name exists and its owner is our effective uid, it is the leftover of an earlier program
// image with this pid (exec) or of a dead process whose pid we now have: it is unlinked and the
// creation tried once more. A name owned by anybody else is left alone.
// Post: 0 and *out = the mapping, or an errno value (EEXIST, EACCES, ENOSPC, ...) and nothing left
// behind.
int shm_create(const char* name, size_t size, void** out) noexcept;

// Unmaps a mapping from shm_create (the object stays). Safe in a fork() child on the parent's
// mapping: it only drops the child's view.
void shm_unmap(void* p, size_t size) noexcept;

// Removes the object `name`. 0 or an errno value.
int shm_remove(const char* name) noexcept;

// Calls fn(ctx, name) for each entry of /dev/shm (the directory shm_open uses), at most
// `max_entries` of them, until fn returns false. Reads the directory with getdents64 into a stack
// buffer (no opendir: it allocates). Returns the number of entries seen.
size_t shm_list(bool (*fn)(void* ctx, const char* name), void* ctx, size_t max_entries) noexcept;

// Reads the first `n` bytes of the object `name` ("/name") into buf, if it is a regular file owned
// by our effective uid (O_NOFOLLOW). True when all n bytes were read.
bool shm_read_own(const char* name, void* buf, size_t n) noexcept;

// CLOCK_REALTIME in nanoseconds.
uint64_t realtime_ns() noexcept;

}  // namespace cachealloc::os
