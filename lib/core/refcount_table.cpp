// refcount_table.cpp - see refcount_table.h.
#include "core/refcount_table.h"

#include "util/counter.h"

namespace cachealloc {
namespace {
constexpr size_t kGolden = 0x9E3779B97F4A7C15ull;
}

RefcountTable::Shard& RefcountTable::shard_for(Shard* shards, const void* p) noexcept {
  return shards[(reinterpret_cast<uintptr_t>(p) >> 4) * kGolden >> 60];
}

size_t RefcountTable::bucket(const Shard& s, const void* p) noexcept {
  return ((reinterpret_cast<uintptr_t>(p) >> 4) * kGolden >> 24) & (s.nbuckets - 1);
}

bool RefcountTable::grow(Shard& s) noexcept {
  size_t n = s.nbuckets == 0 ? 256 : s.nbuckets * 2;
  auto** nb = static_cast<Node**>(MetaArena::map_array(n * sizeof(Node*)));
  if (nb == nullptr) return false;
  Node** old = s.buckets;
  size_t old_n = s.nbuckets;
  s.buckets = nb;
  s.nbuckets = n;
  for (size_t i = 0; i < old_n; ++i) {
    for (Node* e = old[i]; e != nullptr;) {
      Node* next = e->next;
      size_t k = bucket(s, e->key);
      e->next = nb[k];
      nb[k] = e;
      e = next;
    }
  }
  MetaArena::unmap_array(old, old_n * sizeof(Node*));
  return true;
}

uint32_t RefcountTable::retain(const void* p, bool* inserted) noexcept {
  *inserted = false;
  Shard& s = shard_for(shards_, p);
  {
    LockGuard g(s.lock);
    if (s.nbuckets != 0) {
      for (Node* e = s.buckets[bucket(s, p)]; e != nullptr; e = e->next) {
        if (e->key == p) {
          if (e->count == UINT32_MAX) return 0;
          owner_add(s.retains, 1);
          return ++e->count;
        }
      }
    }
  }
  Node* fresh = nodes_.get();  // outside the shard lock: the pool may map memory
  if (fresh == nullptr) return 0;
  LockGuard g(s.lock);
  if (s.nbuckets != 0) {  // somebody may have inserted p meanwhile
    for (Node* e = s.buckets[bucket(s, p)]; e != nullptr; e = e->next) {
      if (e->key == p) {
        nodes_.put(fresh);
        owner_add(s.retains, 1);
        return ++e->count;
      }
    }
  }
  if ((s.size + 1 > s.nbuckets) && !grow(s) && s.nbuckets == 0) {
    nodes_.put(fresh);
    return 0;
  }
  fresh->key = p;
  fresh->count = 2;
  size_t k = bucket(s, p);
  fresh->next = s.buckets[k];
  s.buckets[k] = fresh;
  ++s.size;
  owner_add(s.retains, 1);
  *inserted = true;
  return 2;
}

uint32_t RefcountTable::release(const void* p, bool* erased) noexcept {
  *erased = false;
  Shard& s = shard_for(shards_, p);
  Node* gone = nullptr;
  uint32_t left = 0;
  {
    LockGuard g(s.lock);
    if (s.nbuckets == 0) return 0;
    for (Node** link = &s.buckets[bucket(s, p)]; *link != nullptr; link = &(*link)->next) {
      Node* e = *link;
      if (e->key != p) continue;
      left = --e->count;
      owner_add(s.releases, 1);
      if (left == 1) {
        *link = e->next;
        --s.size;
        gone = e;
        *erased = true;
      }
      break;
    }
  }
  if (gone != nullptr) nodes_.put(gone);
  return left;
}

uint32_t RefcountTable::count(const void* p) noexcept {
  Shard& s = shard_for(shards_, p);
  LockGuard g(s.lock);
  if (s.nbuckets == 0) return 0;
  for (Node* e = s.buckets[bucket(s, p)]; e != nullptr; e = e->next) {
    if (e->key == p) return e->count;
  }
  return 0;
}

size_t RefcountTable::entries() noexcept {
  size_t n = 0;
  for (Shard& s : shards_) {
    LockGuard g(s.lock);
    n += s.size;
  }
  return n;
}

void RefcountTable::counts(uint64_t* retains, uint64_t* releases) const noexcept {
  uint64_t r = 0, d = 0;
  for (const Shard& s : shards_) {
    r += s.retains.load(std::memory_order_relaxed);
    d += s.releases.load(std::memory_order_relaxed);
  }
  *retains = r;
  *releases = d;
}

void RefcountTable::lock_all() noexcept {
  for (Shard& s : shards_) s.lock.lock();
  nodes_.lock().lock();
}

void RefcountTable::unlock_all() noexcept {
  nodes_.lock().unlock();
  for (Shard& s : shards_) s.lock.unlock();
}

}  // namespace cachealloc
