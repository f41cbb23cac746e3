// cachealloc.hpp - C++ helpers over the C API: an RAII handle to a shared block.
//
//   cachealloc::shared_block buf(4096);        // malloc, count 1
//   cachealloc::shared_block other = buf;      // ca_retain, count 2
//   other.reset();                             // ca_release, count 1
// The block is recycled when the last handle goes away. Works with LD_PRELOAD or -lcachealloc.
#ifndef CACHEALLOC_HPP
#define CACHEALLOC_HPP

#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

#include "cachealloc.h"

namespace cachealloc {

class shared_block {
 public:
  shared_block() noexcept = default;
  explicit shared_block(std::size_t bytes) : p_(std::malloc(bytes)) {
    if (p_ == nullptr) throw std::bad_alloc();
  }
  // Takes over one reference the caller already owns (from malloc or ca_retain).
  static shared_block adopt_reference(void* p) noexcept {
    shared_block b;
    b.p_ = p;
    return b;
  }
  shared_block(const shared_block& o) noexcept : p_(o.p_) {
    if (p_ != nullptr) ca_retain(p_);
  }
  shared_block(shared_block&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  shared_block& operator=(shared_block o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~shared_block() { reset(); }

  void reset() noexcept {
    if (p_ != nullptr) ca_release(std::exchange(p_, nullptr));
  }
  void* get() const noexcept { return p_; }
  template <class T>
  T* as() const noexcept {
    return static_cast<T*>(p_);
  }
  std::size_t use_count() const noexcept { return p_ == nullptr ? 0 : ca_refcount(p_); }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  void* p_ = nullptr;
};

}  // namespace cachealloc

#endif  // CACHEALLOC_HPP
