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

uint32_t RefcountTable::retain(const void* p, bool* inserted) noexcept {
  *inserted = false;
  Shard& s = shard_for(shards_, p);
  {
    LockGuard g(s.lock);
    if (Node* e = s.index.find(p)) {
      if (e->count == UINT32_MAX) return 0;
      owner_add(s.retains, 1);
      return ++e->count;
    }
  }
  Node* fresh = nodes_.get();  // outside the shard lock: the pool may map memory
  if (fresh == nullptr) return 0;
  LockGuard g(s.lock);
  if (Node* e = s.index.find(p)) {  // somebody inserted p meanwhile
    nodes_.put(fresh);
    owner_add(s.retains, 1);
    return ++e->count;
  }
  if (!s.index.make_room()) {
    nodes_.put(fresh);
    return 0;
  }
  fresh->key = p;
  fresh->count = 2;
  s.index.insert(fresh);
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
    Node** link = s.index.link_to(p);
    if (link == nullptr) return 0;
    Node* e = *link;
    left = --e->count;
    owner_add(s.releases, 1);
    if (left == 1) {
      s.index.unlink(link);
      gone = e;
      *erased = true;
    }
  }
  if (gone != nullptr) nodes_.put(gone);
  return left;
}

uint32_t RefcountTable::count(const void* p) noexcept {
  Shard& s = shard_for(shards_, p);
  LockGuard g(s.lock);
  Node* e = s.index.find(p);
  return e != nullptr ? e->count : 0;
}

size_t RefcountTable::entries() noexcept {
  size_t n = 0;
  for (Shard& s : shards_) {
    LockGuard g(s.lock);
    n += s.index.size();
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
