// bad_input.cpp - one misuse (or hostile start-up condition) per mode, for bad_input.py to run
// under LD_PRELOAD and judge: the exit status or signal, and what cachealloc printed on stderr.
// Before a bad call the program prints "ptr=0x<hex>" on stdout, so the driver can check that the
// fatal message names exactly that pointer.
//
//   free-stack | free-interior | free-interior-small | free-static | free-mmap | realloc-stack |
//   double-free-large | double-free-small | double-free-4000 | double-free-aba | double-free-slab |
//   double-free-slot | poison-link
//       must die with SIGABRT and one "cachealloc: <call>(): ..." line, with default settings
//       (the small double frees also under CACHEALLOC_CHECK=1, which promises to catch every one;
//       by default, one whose block is still in a thread's cache, in a transfer slot or back in its
//       slab).
//   free-sized-big | delete-sized-big | free-aligned-sized-off | delete-aligned-off
//       a 100-byte block freed with a size of 4000 (free_sized, sized operator delete), or a
//       128-byte block not on a 4 KiB boundary freed by free_aligned_sized or the (unsized)
//       aligned operator delete with alignment 4096:
//       must die with "wrong size for" under CACHEALLOC_CHECK=1 (Note [Sized frees]).
//   free-sized  frees blocks of several sizes and alignments with their right sizes through
//             free_sized, free_aligned_sized and the sized operator delete forms, checks that a
//             freed small block is handed out again, prints "sized ok" and exits 0.
//   ok        prints "ok cache_limit=<ca_cache_limit()>" and exits 0 (the bad-env cases).
//   exhaust   run under `ulimit -v`: allocates until NULL (large, then small blocks), expects
//             ENOMEM and std::bad_alloc, frees everything, and must still allocate; exits 0.
#include "preload_support.h"

#include <errno.h>
#include <sys/mman.h>

#include <initializer_list>
#include <new>
#include <thread>

using namespace preload_test;

namespace {

char g_static_buffer[256];

void announce(const void* p) {
  printf("ptr=%p\n", p);
  fflush(stdout);
}

// Allocates blocks of `size` until malloc returns NULL, chaining them through their first word so
// the chain itself needs no memory. Returns the count; *err is errno after the failing call.
size_t fill_until_null(size_t size, void** head, int* err) {
  size_t count = 0;
  for (;;) {
    errno = 0;
    void* p = malloc(size);
    if (p == nullptr) {
      *err = errno;
      return count;
    }
    memset(p, 0x6B, size < 4096 ? size : 4096);
    *static_cast<void**>(p) = *head;
    *head = p;
    ++count;
  }
}

void free_chain(void* head) {
  while (head != nullptr) {
    void* next = *static_cast<void**>(head);
    free(head);
    head = next;
  }
}

int exhaust() {
  // Phase 1: 1 MiB blocks until NULL, then the C++ forms at the limit; free them all.
  void* large = nullptr;
  int err = 0;
  size_t n_large = fill_until_null(size_t{1} << 20, &large, &err);
  if (n_large == 0) fail("exhaust: not even one 1 MiB block under the limit");
  if (err != ENOMEM) fail("exhaust: malloc(1 MiB) failed with errno %d, want ENOMEM", err);
  bool threw = false;
  try {
    char* c = new char[size_t{64} << 20];
    asm volatile("" : : "g"(c) : "memory");
    delete[] c;
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  if (!threw) fail("exhaust: new char[64 MiB] did not throw std::bad_alloc at the limit");
  void* nt = ::operator new(size_t{64} << 20, std::nothrow);
  if (nt != nullptr) fail("exhaust: nothrow new of 64 MiB did not return nullptr at the limit");
  free_chain(large);

  // Phase 2: the freed (now cached) large memory must be usable for small blocks.
  void* small = nullptr;
  size_t n_small = fill_until_null(256, &small, &err);
  if (err != ENOMEM) fail("exhaust: malloc(256) failed with errno %d, want ENOMEM", err);
  if (n_small * 256 < (n_large << 20) / 4)
    fail("exhaust: only %zu KiB of 256 B blocks fit after freeing %zu MiB of large blocks",
         n_small * 256 / 1024, n_large);
  free_chain(small);

  // Still alive and allocating after both exhaustions.
  void* p = malloc(1000);
  void* q = malloc(size_t{1} << 20);
  if (p == nullptr || q == nullptr) fail("exhaust: malloc fails after freeing everything");
  free(p);
  free(q);
  printf("exhaust: %zu x 1 MiB, then %zu x 256 B until ENOMEM\n", n_large, n_small);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) fail("usage: bad_input <mode>");
  const char* mode = argv[1];
  OwnsFn owns = require_cachealloc("bad_input");
  if (strcmp(mode, "ok") == 0) {
    using LimitFn = size_t (*)();
    auto limit = reinterpret_cast<LimitFn>(dlsym(RTLD_DEFAULT, "ca_cache_limit"));
    if (limit == nullptr) fail("ca_cache_limit not found");
    void* p = malloc(3 << 20);
    memset(p, 1, 3 << 20);
    free(p);
    printf("ok cache_limit=%zu\n", limit());
    return 0;
  }
  if (strcmp(mode, "exhaust") == 0) return exhaust();
  // C23's sized frees: glibc 2.36 does not have them, so they are looked up (ours, preloaded).
  using FreeSizedFn = void (*)(void*, size_t);
  using FreeAlignedSizedFn = void (*)(void*, size_t, size_t);
  auto free_sized = reinterpret_cast<FreeSizedFn>(dlsym(RTLD_DEFAULT, "free_sized"));
  auto free_aligned_sized = reinterpret_cast<FreeAlignedSizedFn>(dlsym(RTLD_DEFAULT, "free_aligned_sized"));
  if (free_sized == nullptr || free_aligned_sized == nullptr) fail("free_sized not exported");
  if (strcmp(mode, "free-sized") == 0) {
    for (size_t n : {size_t{1}, size_t{64}, size_t{4000}, size_t{100000}, size_t{1} << 20}) {
      void* p = malloc(n);
      memset(p, 1, n);
      free_sized(p, n);
      void* q = operator new(n);
      memset(q, 2, n);
      operator delete(q, n);
      void* r = operator new[](n, std::align_val_t{256});
      memset(r, 3, n);
      operator delete[](r, n, std::align_val_t{256});
      for (size_t a : {size_t{64}, size_t{4096}}) {
        void* s = aligned_alloc(a, (n + a - 1) / a * a);
        memset(s, 4, n);
        free_aligned_sized(s, a, (n + a - 1) / a * a);
      }
    }
    void* p = malloc(48);
    free_sized(p, 48);
    if (malloc(48) != p) fail("a block freed by free_sized was not reused");
    printf("sized ok\n");
    return 0;
  }
  if (strcmp(mode, "free-stack") == 0) {
    char local[64];
    announce(local);
    free(local);
  } else if (strcmp(mode, "realloc-stack") == 0) {
    char local[64];
    announce(local);
    void* r = realloc(local, 100);
    printf("realloc returned %p\n", r);
  } else if (strcmp(mode, "free-interior") == 0) {
    auto* p = static_cast<char*>(malloc(size_t{1} << 20));
    if (owns(p) != 1) fail("1 MiB block not owned");
    announce(p + (size_t{1} << 19) + 16);
    free(p + (size_t{1} << 19) + 16);
  } else if (strcmp(mode, "free-interior-small") == 0) {
    // 16-aligned, inside a live 64 B block: not a block start, so not a pointer we were given.
    auto* p = static_cast<char*>(malloc(64));
    announce(p + 16);
    free(p + 16);
    // If that was taken as a block, the next allocations overlap p.
    void* a = malloc(64);
    void* b = malloc(64);
    printf("after: p=%p a=%p b=%p\n", static_cast<void*>(p), a, b);
  } else if (strcmp(mode, "double-free-small") == 0 || strcmp(mode, "double-free-4000") == 0) {
    size_t n = strcmp(mode, "double-free-small") == 0 ? 64 : 4000;
    void* p = malloc(n);
    memset(p, 7, n);
    announce(p);
    free(p);
    free(p);
  } else if (strcmp(mode, "double-free-aba") == 0) {
    // The pattern glibc calls "double free detected in tcache 2": another free in between, so
    // the block is no longer the bin's head.
    void* a = malloc(32);
    void* b = malloc(32);
    announce(a);
    free(a);
    free(b);
    free(a);
    void* x = malloc(32);
    void* y = malloc(32);
    void* z = malloc(32);
    printf("after: %p %p %p%s\n", x, y, z, (x == z || x == y || y == z) ? " (duplicate)" : "");
  } else if (strcmp(mode, "double-free-slab") == 0) {
    // Freed by one thread, whose cache goes back at its exit (one block: to its slab, not a
    // transfer slot); a write after free wipes the block's key, and another thread frees it
    // again: caught when that second copy reaches the slab (Note [Slab free bits]).
    void* keep = malloc(32);  // this thread's refill keeps the slab active
    void* a = malloc(32);
    announce(a);
    std::thread([a] { free(a); }).join();
    memset(a, 0, 32);
    std::thread([a] { free(a); }).join();
    void* x = malloc(32);
    void* y = malloc(32);
    printf("after: %p %p %p\n", keep, x, y);
  } else if (strcmp(mode, "double-free-slot") == 0) {
    // A whole batch freed by another thread, whose cache goes back at its exit into a transfer
    // slot; then one of its blocks is freed again here (Note [Free-list hardening]: blocks keep
    // the key while they wait in a slot).
    void* blocks[16];
    for (void*& b : blocks) b = malloc(32);
    std::thread([&blocks] {
      for (void* b : blocks) free(b);
    }).join();
    announce(blocks[5]);
    free(blocks[5]);
    void* x[17];
    for (void*& b : x) b = malloc(32);
    printf("after: %p %p\n", x[0], x[16]);
  } else if (strcmp(mode, "poison-link") == 0) {
    // tcache poisoning: a write after free plants an address in a freed block's first word.
    void* a = malloc(32);
    void* b = malloc(32);
    free(b);
    free(a);
    void* target = g_static_buffer + 64;
    memcpy(a, &target, sizeof target);  // the write after free
    announce(a);
    for (int i = 0; i < 3; ++i) {
      void* q = malloc(32);
      if (q == target) {
        printf("planted pointer returned\n");
        return 1;
      }
    }
  } else if (strcmp(mode, "free-sized-big") == 0) {
    void* p = malloc(100);
    announce(p);
    free_sized(p, 4000);
  } else if (strcmp(mode, "free-aligned-sized-off") == 0) {
    void* p = malloc(128);
    if (reinterpret_cast<uintptr_t>(p) % 4096 == 0) p = malloc(128);  // the next block is not
    announce(p);
    free_aligned_sized(p, 4096, 128);
  } else if (strcmp(mode, "delete-aligned-off") == 0) {
    void* p = malloc(128);
    if (reinterpret_cast<uintptr_t>(p) % 4096 == 0) p = malloc(128);  // the next block is not
    announce(p);
    operator delete(p, std::align_val_t{4096});
  } else if (strcmp(mode, "delete-sized-big") == 0) {
    void* p = operator new(100);
    announce(p);
    operator delete(p, size_t{4000});
  } else if (strcmp(mode, "free-static") == 0) {
    announce(g_static_buffer + 16);
    free(g_static_buffer + 16);
  } else if (strcmp(mode, "free-mmap") == 0) {
    void* m = mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail("mmap failed");
    char* p = static_cast<char*>(m) + 4096 + 16;
    announce(p);
    free(p);
  } else if (strcmp(mode, "double-free-large") == 0) {
    void* p = malloc(size_t{1} << 20);
    memset(p, 7, size_t{1} << 20);
    announce(p);
    free(p);
    free(p);
  } else {
    fail("unknown mode %s", mode);
  }
  printf("survived\n");
  return 0;
}
