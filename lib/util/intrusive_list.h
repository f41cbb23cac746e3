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
#pragma once

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

}  // namespace cachealloc
