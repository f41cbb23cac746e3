// chained_index.h - a hash index of records that carry their own chain link: key -> record.
//
// Used by LargeCache (pointer -> LargeBlock) and RefcountTable (pointer -> count, one per shard).
// The records are the caller's (from a MetaPool); the index keeps only an array of chain heads,
// mapped from MetaArena, a power of two in size. Growth doubles it when an insert would make the
// load above 1 and re-links every record; a growth that cannot map its array keeps the old one
// (the chains only get longer), so an insert fails only while there is no array at all.
//
//   ChainedIndex<Node, &Node::next, &Node::key, const void*, &hash, 256> index;
//   if (!index.make_room()) return 0;  // no memory for a first array
//   index.insert(node);
//
// Hash(key) mixes the key; the bucket is its low bits. Lookups walk one chain. Not thread-safe:
// the owner's lock guards the index and the links of its records.
//
// Not used by cuda/BlockTable: its records are a fixed array named by 32-bit ids, and its index is
// a fixed open-addressing table of twice that many ids (block_table.h), which never grows.
#pragma once

#include <cstddef>

#include "core/meta_arena.h"

namespace cachealloc {

template <class T, T* T::*Next, auto KeyField, class Key, size_t (*Hash)(Key) noexcept,
          size_t kFirstBuckets>
class ChainedIndex {
  static_assert((kFirstBuckets & (kFirstBuckets - 1)) == 0, "a power of two");

 public:
  constexpr ChainedIndex() noexcept = default;
  ChainedIndex(const ChainedIndex&) = delete;
  ChainedIndex& operator=(const ChainedIndex&) = delete;

  size_t buckets() const noexcept { return nbuckets_; }  // 0 until the first insert
  size_t size() const noexcept { return size_; }

  // The record with key k, or nullptr.
  T* find(Key k) const noexcept {
    if (nbuckets_ == 0) return nullptr;
    for (T* e = heads_[bucket(k)]; e != nullptr; e = e->*Next) {
      if (e->*KeyField == k) return e;
    }
    return nullptr;
  }
  // The link that points at the record with key k (for unlink), or nullptr.
  T** link_to(Key k) noexcept {
    if (nbuckets_ == 0) return nullptr;
    for (T** link = &heads_[bucket(k)]; *link != nullptr; link = &((*link)->*Next)) {
      if ((*link)->*KeyField == k) return link;
    }
    return nullptr;
  }

  // Whether the index has room for one more record: at a load of 1 it grows first. False only
  // when there is no array and none could be mapped.
  bool make_room() noexcept { return size_ + 1 <= nbuckets_ || grow() || nbuckets_ != 0; }
  bool full() const noexcept { return size_ + 1 > nbuckets_; }
  // Doubles the array (or maps the first one) and re-links every record. False, with nothing
  // changed, when the new array could not be mapped.
  bool grow() noexcept {
    size_t n = nbuckets_ == 0 ? kFirstBuckets : nbuckets_ * 2;
    auto** fresh = static_cast<T**>(MetaArena::map_array(n * sizeof(T*)));
    if (fresh == nullptr) return false;
    T** old = heads_;
    size_t old_n = nbuckets_;
    heads_ = fresh;
    nbuckets_ = n;
    for (size_t i = 0; i < old_n; ++i) {
      for (T* e = old[i]; e != nullptr;) {
        T* next = e->*Next;
        size_t k = bucket(e->*KeyField);
        e->*Next = fresh[k];
        fresh[k] = e;
        e = next;
      }
    }
    MetaArena::unmap_array(old, old_n * sizeof(T*));
    return true;
  }

  // Adds e at the front of its chain. Pre: make_room() was true; no record with e's key.
  void insert(T* e) noexcept {
    size_t k = bucket(e->*KeyField);
    e->*Next = heads_[k];
    heads_[k] = e;
    ++size_;
  }
  // Removes the record `link` points at (from link_to).
  void unlink(T** link) noexcept {
    T* e = *link;
    *link = e->*Next;
    e->*Next = nullptr;
    --size_;
  }
  // Removes e. Pre: e is in the index.
  void erase(T* e) noexcept {
    T** link = &heads_[bucket(e->*KeyField)];
    while (*link != e) link = &((*link)->*Next);
    unlink(link);
  }

 private:
  size_t bucket(Key k) const noexcept { return Hash(k) & (nbuckets_ - 1); }

  T** heads_ = nullptr;
  size_t nbuckets_ = 0;
  size_t size_ = 0;
};

}  // namespace cachealloc
