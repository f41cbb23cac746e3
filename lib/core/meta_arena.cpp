// meta_arena.cpp - see meta_arena.h.
#include "core/meta_arena.h"

#include <cstring>

#include "platform/os.h"

namespace cachealloc {
namespace {
constexpr size_t kChunk = size_t{1} << 20;
constinit MetaArena g_arena;

size_t round_os_pages(size_t n) {
  size_t ps = os::page_size();
  return (n + ps - 1) & ~(ps - 1);
}
}  // namespace

MetaArena& meta_arena() noexcept { return g_arena; }

void* MetaArena::alloc(size_t size) noexcept {
  size = (size + 63) & ~size_t{63};
  if (size > kChunk / 4) return map_array(size);
  LockGuard g(lock_);
  if (cur_ == nullptr || static_cast<size_t>(end_ - cur_) < size) {
    void* chunk = os::map_aligned(kChunk, os::page_size());
    if (chunk == nullptr) return nullptr;
    cur_ = static_cast<char*>(chunk);
    end_ = cur_ + kChunk;
  }
  void* p = cur_;
  cur_ += size;
  return p;  // fresh mapping: already zero; recycled objects are re-initialised by MetaPool
}

void* MetaArena::map_array(size_t bytes) noexcept {
  return os::map_aligned(round_os_pages(bytes), os::page_size());
}

void MetaArena::unmap_array(void* p, size_t bytes) noexcept {
  if (p != nullptr) os::unmap(p, round_os_pages(bytes));
}

}  // namespace cachealloc
