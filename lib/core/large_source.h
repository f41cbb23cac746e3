// large_source.h - where large blocks come from: the upstream of the large-object cache.
//
// The library uses MimallocSource (large_source.cpp is the only file that includes mimalloc.h);
// unit tests inject a fake that counts calls and fails on demand (test/fakes/fake_large_source.h).
#pragma once

#include <cstddef>

namespace cachealloc {

class LargeSource {
 public:
  // `size` bytes aligned to `align` (a power of two >= 16), or nullptr.
  virtual void* alloc(size_t size, size_t align, bool zero) noexcept = 0;
  virtual void free(void* p, size_t size, size_t align) noexcept = 0;

 protected:
  constexpr LargeSource() = default;
  ~LargeSource() = default;
};

class MimallocSource final : public LargeSource {
 public:
  constexpr MimallocSource() = default;
  void* alloc(size_t size, size_t align, bool zero) noexcept override;
  void free(void* p, size_t size, size_t align) noexcept override;
};

}  // namespace cachealloc
