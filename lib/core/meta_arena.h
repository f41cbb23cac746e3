// meta_arena.h - the bootstrap allocator for cachealloc's own metadata.
//
// Everything the allocator needs for itself (segment metadata, thread caches, large-block records,
// hash-table arrays) comes from here, never from malloc: memory is mapped from the OS in 1 MiB
// chunks and handed out by a bump pointer under one lock. Objects that come and go (thread caches,
// block records) are recycled through typed free lists (MetaPool) so churn does not grow the arena.
// Big arrays (hash tables) are mapped and unmapped directly.
//
// SYNCHRONIZATION: lock_ protects the bump pointer; it is a leaf lock (nothing is taken under it).
#pragma once

#include <cstddef>
#include <new>

#include "platform/spin_lock.h"

namespace cachealloc {

class MetaArena {
 public:
  constexpr MetaArena() = default;
  // Zeroed memory, 64-byte aligned, or nullptr when the OS refuses.
  void* alloc(size_t size) noexcept;
  // Direct mappings for large arrays (rounded to OS pages), zeroed.
  static void* map_array(size_t bytes) noexcept;
  static void unmap_array(void* p, size_t bytes) noexcept;

  SpinLock& lock() noexcept { return lock_; }

 private:
  SpinLock lock_{LockRank::kMetaArena};
  char* cur_ = nullptr;
  char* end_ = nullptr;
};

// The process-wide arena (constinit, usable before constructors).
MetaArena& meta_arena() noexcept;

// A free list of fixed-size records recycled through the arena. T must be trivially destructible
// after reset; objects are value-initialised on get().
template <class T>
class MetaPool {
 public:
  constexpr MetaPool() = default;
  T* get() noexcept {
    void* p = nullptr;
    {
      LockGuard g(lock_);
      if (free_ != nullptr) {
        p = free_;
        free_ = free_->next;
      }
    }
    if (p == nullptr) p = meta_arena().alloc(sizeof(T) < sizeof(Node) ? sizeof(Node) : sizeof(T));
    if (p == nullptr) return nullptr;
    return new (p) T();
  }
  void put(T* t) noexcept {
    if (t == nullptr) return;
    Node* n = reinterpret_cast<Node*>(t);
    LockGuard g(lock_);
    n->next = free_;
    free_ = n;
  }
  SpinLock& lock() noexcept { return lock_; }

 private:
  struct Node {
    Node* next;
  };
  SpinLock lock_{LockRank::kMetaPool};
  Node* free_ = nullptr;
};

}  // namespace cachealloc
