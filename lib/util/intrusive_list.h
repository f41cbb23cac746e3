// intrusive_list.h - a doubly linked list through two pointer fields of the element itself.
//
// The elements carry their own links (no allocation, O(1) remove given the element), and one
// element may sit on several lists through different pairs of fields (a LargeBlock is on its
// layout's list and on the LRU list). The list names the pair with member pointers:
//
//   IntrusiveList<Slab, &Slab::next, &Slab::prev> empty_;                    // head and tail
//   IntrusiveList<Slab, &Slab::next, &Slab::prev, ListEnds::kHead> partial_; // head only
//
// Order: push_front makes an element the front; from the front, next() walks towards the back.
// A head-only list is one pointer (hash buckets are arrays of them: the static *_at functions work
// on such a head wherever it is kept). A removed element's links are null again. Everything is
// inline and does exactly the loads and stores of the hand-written list: no sentinel, no
// indirection. Not thread-safe: the owner's lock guards the list and the links of its elements.
//
// IndexList, below, is the same list for elements that live in a table and are named by 32-bit
// ids (the device blocks of cuda/block_table.h): the links are ids and the list reaches an
// element through the table's accessor.
#pragma once

#include <cstdint>
#include <type_traits>

namespace cachealloc {

enum class ListEnds { kHead, kHeadAndTail };

template <class T, T* T::*Next, T* T::*Prev, ListEnds Ends = ListEnds::kHeadAndTail>
class IntrusiveList {
  static constexpr bool kTail = Ends == ListEnds::kHeadAndTail;
  struct NoTail {};

 public:
  constexpr IntrusiveList() noexcept = default;
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  T* front() const noexcept { return head_; }
  T* back() const noexcept
    requires kTail
  {
    return tail_;
  }
  static T* next(const T* e) noexcept { return e->*Next; }  // towards the back; nullptr at the end
  static T* prev(const T* e) noexcept { return e->*Prev; }  // towards the front

  void push_front(T* e) noexcept {
    T* first = head_;
    e->*Prev = nullptr;
    e->*Next = first;
    if (first != nullptr) first->*Prev = e; else set_tail(e);
    head_ = e;
  }
  // Pre: e is on this list.
  void remove(T* e) noexcept {
    T* n = e->*Next;
    T* p = e->*Prev;
    if (p != nullptr) p->*Next = n; else head_ = n;
    if (n != nullptr) n->*Prev = p; else set_tail(p);
    e->*Next = nullptr;
    e->*Prev = nullptr;
  }
  // A head-only list whose head pointer the caller keeps (a hash bucket). remove_at takes a
  // function returning that pointer by reference, called only when e is the front (so a hash is
  // computed only then). Pre: e is on that list.
  static void push_front_at(T*& head, T* e) noexcept {
    T* first = head;
    e->*Prev = nullptr;
    e->*Next = first;
    if (first != nullptr) first->*Prev = e;
    head = e;
  }
  template <class HeadOf>
  static void remove_at(HeadOf&& head_of, T* e) noexcept {
    T* n = e->*Next;
    T* p = e->*Prev;
    if (p != nullptr) p->*Next = n; else head_of() = n;
    if (n != nullptr) n->*Prev = p;
    e->*Next = nullptr;
    e->*Prev = nullptr;
  }

 private:
  void set_tail(T* e) noexcept {
    if constexpr (kTail) tail_ = e;
  }

  T* head_ = nullptr;
  [[no_unique_address]] std::conditional_t<kTail, T*, NoTail> tail_{};
};

// A doubly linked list through two id fields of elements kept in a table of type Store, which
// names them by uint32_t ids and gives the element of an id with (store.*At)(id). `kNone` (0 by
// default) is the id that means "no element"; a removed element's links are kNone again.
//
//   IndexList<BlockTable, Block, &BlockTable::block, &Block::next, &Block::prev> ready;
//   ready.push_back(table, id);
//
// Every operation that follows a link takes the table. The order, the head-only form and the
// *_at functions are those of IntrusiveList; push_back adds at the back (lists kept in arrival
// order). Not thread-safe, like IntrusiveList.
template <class Store, class T, T& (Store::*At)(uint32_t) noexcept, uint32_t T::*Next,
          uint32_t T::*Prev, ListEnds Ends = ListEnds::kHeadAndTail, uint32_t kNone = 0>
class IndexList {
  static constexpr bool kTail = Ends == ListEnds::kHeadAndTail;
  struct NoTail {};

 public:
  constexpr IndexList() noexcept = default;
  IndexList(const IndexList&) = delete;
  IndexList& operator=(const IndexList&) = delete;

  bool empty() const noexcept { return head_ == kNone; }
  uint32_t front() const noexcept { return head_; }
  uint32_t back() const noexcept
    requires kTail
  {
    return tail_;
  }
  static uint32_t next(Store& s, uint32_t id) noexcept { return (s.*At)(id).*Next; }
  static uint32_t prev(Store& s, uint32_t id) noexcept { return (s.*At)(id).*Prev; }

  void push_front(Store& s, uint32_t id) noexcept {
    T& e = (s.*At)(id);
    uint32_t first = head_;
    e.*Prev = kNone;
    e.*Next = first;
    if (first != kNone) (s.*At)(first).*Prev = id; else set_tail(id);
    head_ = id;
  }
  void push_back(Store& s, uint32_t id) noexcept
    requires kTail
  {
    T& e = (s.*At)(id);
    uint32_t last = tail_;
    e.*Prev = last;
    e.*Next = kNone;
    if (last != kNone) (s.*At)(last).*Next = id; else head_ = id;
    tail_ = id;
  }
  // Pre: id is on this list.
  void remove(Store& s, uint32_t id) noexcept {
    T& e = (s.*At)(id);
    uint32_t n = e.*Next;
    uint32_t p = e.*Prev;
    if (p != kNone) (s.*At)(p).*Next = n; else head_ = n;
    if (n != kNone) (s.*At)(n).*Prev = p; else set_tail(p);
    e.*Next = kNone;
    e.*Prev = kNone;
  }
  // Empties the list without touching its elements (their records are dropped some other way).
  void clear() noexcept {
    head_ = kNone;
    set_tail(kNone);
  }
  // A head-only list whose head id the caller keeps (an array of bucket heads), as
  // IntrusiveList::push_front_at / remove_at.
  static void push_front_at(Store& s, uint32_t& head, uint32_t id) noexcept {
    T& e = (s.*At)(id);
    uint32_t first = head;
    e.*Prev = kNone;
    e.*Next = first;
    if (first != kNone) (s.*At)(first).*Prev = id;
    head = id;
  }
  template <class HeadOf>
  static void remove_at(Store& s, HeadOf&& head_of, uint32_t id) noexcept {
    T& e = (s.*At)(id);
    uint32_t n = e.*Next;
    uint32_t p = e.*Prev;
    if (p != kNone) (s.*At)(p).*Next = n; else head_of() = n;
    if (n != kNone) (s.*At)(n).*Prev = p;
    e.*Next = kNone;
    e.*Prev = kNone;
  }

 private:
  void set_tail(uint32_t id) noexcept {
    if constexpr (kTail) tail_ = id;
  }

  static constexpr auto no_tail() noexcept {
    if constexpr (kTail) return kNone; else return NoTail{};
  }

  uint32_t head_ = kNone;
  [[no_unique_address]] std::conditional_t<kTail, uint32_t, NoTail> tail_ = no_tail();
};

}  // namespace cachealloc
