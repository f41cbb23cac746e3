// allocator_fronts.h - every way a program can get a block, as a type the generic checks in
// front_checks.cpp are instantiated over (RMM's mr_ref_test pattern): allocate(n), deallocate(p, n)
// and the alignment the front promises.
#pragma once

#include "conformance.h"

#include <malloc.h>
#include <stdlib.h>

#include <new>

namespace conformance::fronts {

struct Malloc {
  static constexpr const char* kName = "malloc/free";
  static constexpr size_t kAlignment = 16;
  static void* allocate(size_t n) { return malloc(opaque(n)); }
  static void deallocate(void* p, size_t) { free(p); }
};

struct Calloc {
  static constexpr const char* kName = "calloc/free";
  static constexpr size_t kAlignment = 16;
  static void* allocate(size_t n) { return calloc(1, opaque(n)); }
  static void deallocate(void* p, size_t) { free(p); }
};

struct ReallocFromNull {
  static constexpr const char* kName = "realloc(NULL)/realloc(p,0)";
  static constexpr size_t kAlignment = 16;
  static void* allocate(size_t n) { return realloc(nullptr, opaque(n)); }
  static void deallocate(void* p, size_t) { escape(realloc(p, 0)); }
};

struct PosixMemalign128 {
  static constexpr const char* kName = "posix_memalign(128)";
  static constexpr size_t kAlignment = 128;
  static void* allocate(size_t n) {
    void* p = nullptr;
    return posix_memalign(&p, kAlignment, opaque(n)) == 0 ? p : nullptr;
  }
  static void deallocate(void* p, size_t) { free(p); }
};

struct AlignedAlloc4096 {
  static constexpr const char* kName = "aligned_alloc(4096)";
  static constexpr size_t kAlignment = 4096;
  static void* allocate(size_t n) { return aligned_alloc(kAlignment, opaque(n)); }
  static void deallocate(void* p, size_t) { free(p); }
};

struct Memalign64 {
  static constexpr const char* kName = "memalign(64)";
  static constexpr size_t kAlignment = 64;
  static void* allocate(size_t n) { return memalign(kAlignment, opaque(n)); }
  static void deallocate(void* p, size_t) { free(p); }
};

struct Valloc {
  static constexpr const char* kName = "valloc";
  static constexpr size_t kAlignment = 4096;
  static void* allocate(size_t n) { return valloc(opaque(n)); }
  static void deallocate(void* p, size_t) { free(p); }
};

struct New {
  static constexpr const char* kName = "operator new/delete";
  static constexpr size_t kAlignment = 16;
  static void* allocate(size_t n) { return ::operator new(opaque(n)); }
  static void deallocate(void* p, size_t) { ::operator delete(p); }
};

struct NewSized {
  static constexpr const char* kName = "operator new/sized delete";
  static constexpr size_t kAlignment = 16;
  static void* allocate(size_t n) { return ::operator new(opaque(n)); }
  static void deallocate(void* p, size_t n) { ::operator delete(p, n); }
};

struct NewArray {
  static constexpr const char* kName = "operator new[]/delete[] (plain and sized)";
  static constexpr size_t kAlignment = 16;
  static void* allocate(size_t n) { return ::operator new[](opaque(n)); }
  static void deallocate(void* p, size_t n) {
    if (n & 1)
      ::operator delete[](p, n);
    else
      ::operator delete[](p);
  }
};

struct NewNothrow {
  static constexpr const char* kName = "operator new(nothrow)/delete(nothrow)";
  static constexpr size_t kAlignment = 16;
  static void* allocate(size_t n) { return ::operator new(opaque(n), std::nothrow); }
  static void deallocate(void* p, size_t) { ::operator delete(p, std::nothrow); }
};

struct NewArrayNothrow {
  static constexpr const char* kName = "operator new[](nothrow)/delete[](nothrow)";
  static constexpr size_t kAlignment = 16;
  static void* allocate(size_t n) { return ::operator new[](opaque(n), std::nothrow); }
  static void deallocate(void* p, size_t) { ::operator delete[](p, std::nothrow); }
};

struct NewAligned256 {
  static constexpr const char* kName = "operator new(align 256)/delete(align, sized and not)";
  static constexpr size_t kAlignment = 256;
  static void* allocate(size_t n) { return ::operator new(opaque(n), std::align_val_t{kAlignment}); }
  static void deallocate(void* p, size_t n) {
    if (n & 1)
      ::operator delete(p, n, std::align_val_t{kAlignment});
    else
      ::operator delete(p, std::align_val_t{kAlignment});
  }
};

struct NewArrayAligned8192 {
  static constexpr const char* kName = "operator new[](align 8192)/delete[](align, sized and not)";
  static constexpr size_t kAlignment = 8192;
  static void* allocate(size_t n) {
    return ::operator new[](opaque(n), std::align_val_t{kAlignment});
  }
  static void deallocate(void* p, size_t n) {
    if (n & 1)
      ::operator delete[](p, n, std::align_val_t{kAlignment});
    else
      ::operator delete[](p, std::align_val_t{kAlignment});
  }
};

struct NewAlignedNothrow64 {
  static constexpr const char* kName = "operator new(align 64, nothrow)/delete(align, nothrow)";
  static constexpr size_t kAlignment = 64;
  static void* allocate(size_t n) {
    return ::operator new(opaque(n), std::align_val_t{kAlignment}, std::nothrow);
  }
  static void deallocate(void* p, size_t) {
    ::operator delete(p, std::align_val_t{kAlignment}, std::nothrow);
  }
};

struct NewArrayAlignedNothrow32 {
  static constexpr const char* kName = "operator new[](align 32, nothrow)/delete[](align, nothrow)";
  static constexpr size_t kAlignment = 32;
  static void* allocate(size_t n) {
    return ::operator new[](opaque(n), std::align_val_t{kAlignment}, std::nothrow);
  }
  static void deallocate(void* p, size_t) {
    ::operator delete[](p, std::align_val_t{kAlignment}, std::nothrow);
  }
};

}  // namespace conformance::fronts

// Every front, for TEMPLATE_TEST_CASE / TEMPLATE_LIST_TEST_CASE.
#define CONFORMANCE_ALL_FRONTS                                                              \
  conformance::fronts::Malloc, conformance::fronts::Calloc,                                 \
      conformance::fronts::ReallocFromNull, conformance::fronts::PosixMemalign128,          \
      conformance::fronts::AlignedAlloc4096, conformance::fronts::Memalign64,               \
      conformance::fronts::Valloc, conformance::fronts::New, conformance::fronts::NewSized, \
      conformance::fronts::NewArray, conformance::fronts::NewNothrow,                       \
      conformance::fronts::NewArrayNothrow, conformance::fronts::NewAligned256,             \
      conformance::fronts::NewArrayAligned8192, conformance::fronts::NewAlignedNothrow64,   \
      conformance::fronts::NewArrayAlignedNothrow32
