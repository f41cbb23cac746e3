// intrusive_list_test.cpp - util/intrusive_list.h: order, removal from every position, both ends,
// a head kept outside the list, and one element on two lists at once; the same for IndexList,
// whose elements live in a table and are linked by id.
#include <catch2/catch.hpp>

#include <vector>

#include "util/intrusive_list.h"

using namespace cachealloc;

namespace {
struct Node {
  int id = 0;
  Node* next = nullptr;
  Node* prev = nullptr;
  Node* b_next = nullptr;  // a second list
  Node* b_prev = nullptr;
};
using List = IntrusiveList<Node, &Node::next, &Node::prev>;
using HeadList = IntrusiveList<Node, &Node::next, &Node::prev, ListEnds::kHead>;
using BList = IntrusiveList<Node, &Node::b_next, &Node::b_prev>;

template <class L>
std::vector<int> forward(const L& l) {
  std::vector<int> ids;
  for (Node* n = l.front(); n != nullptr; n = L::next(n)) ids.push_back(n->id);
  return ids;
}
std::vector<int> backward(const List& l) {
  std::vector<int> ids;
  for (Node* n = l.back(); n != nullptr; n = List::prev(n)) ids.push_back(n->id);
  return ids;
}
}  // namespace

TEST_CASE("push_front orders newest first; back is the oldest", "[intrusive_list]") {
  Node n[4];
  List l;
  REQUIRE(l.empty());
  REQUIRE(l.back() == nullptr);
  for (int i = 0; i < 4; ++i) {
    n[i].id = i;
    l.push_front(&n[i]);
  }
  REQUIRE(forward(l) == std::vector<int>{3, 2, 1, 0});
  REQUIRE(backward(l) == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("remove from the front, the middle and the back keeps both ends right", "[intrusive_list]") {
  for (int victim = 0; victim < 3; ++victim) {
    Node n[3];
    List l;
    for (int i = 0; i < 3; ++i) {
      n[i].id = i;
      l.push_front(&n[i]);
    }
    l.remove(&n[victim]);
    REQUIRE(n[victim].next == nullptr);
    REQUIRE(n[victim].prev == nullptr);
    std::vector<int> want;
    for (int i = 2; i >= 0; --i) {
      if (i != victim) want.push_back(i);
    }
    REQUIRE(forward(l) == want);
    REQUIRE(backward(l) == std::vector<int>(want.rbegin(), want.rend()));
  }
  Node one;
  List l;
  l.push_front(&one);
  l.remove(&one);
  REQUIRE(l.empty());
  REQUIRE(l.back() == nullptr);
}

TEST_CASE("a head-only list is one pointer; a head kept outside works the same", "[intrusive_list]") {
  static_assert(sizeof(HeadList) == sizeof(Node*));
  static_assert(sizeof(List) == 2 * sizeof(Node*));
  Node n[3];
  HeadList l;
  Node* bucket = nullptr;
  for (int i = 0; i < 3; ++i) {
    n[i].id = i;
    l.push_front(&n[i]);
  }
  l.remove(&n[2]);
  l.remove(&n[0]);
  REQUIRE(forward(l) == std::vector<int>{1});
  l.remove(&n[1]);
  REQUIRE(l.empty());

  int head_lookups = 0;
  auto head_of = [&]() -> Node*& {
    ++head_lookups;
    return bucket;
  };
  for (Node& x : n) HeadList::push_front_at(bucket, &x);  // 2, 1, 0
  HeadList::remove_at(head_of, &n[1]);                    // not the front: head not needed
  REQUIRE(head_lookups == 0);
  HeadList::remove_at(head_of, &n[2]);
  REQUIRE(head_lookups == 1);
  REQUIRE(bucket == &n[0]);
  HeadList::remove_at(head_of, &n[0]);
  REQUIRE(bucket == nullptr);
}

TEST_CASE("one element on two lists through different links", "[intrusive_list]") {
  Node n[2];
  List a;
  BList b;
  n[0].id = 0;
  n[1].id = 1;
  a.push_front(&n[0]);
  a.push_front(&n[1]);
  b.push_front(&n[1]);
  b.push_front(&n[0]);
  a.remove(&n[1]);
  REQUIRE(forward(a) == std::vector<int>{0});
  REQUIRE(forward(b) == std::vector<int>{0, 1});
}

// ---- IndexList: elements in a table, linked by 32-bit id (id 0 = none, as in cuda/block_table.h)

namespace {
struct Rec {
  uint32_t next = 0, prev = 0;
  uint32_t b_next = 0, b_prev = 0;  // a second list
};
struct Table {
  Rec recs[8];
  Rec& at(uint32_t id) noexcept { return recs[id]; }
};
using IdList = IndexList<Table, Rec, &Table::at, &Rec::next, &Rec::prev>;
using IdHeadList = IndexList<Table, Rec, &Table::at, &Rec::b_next, &Rec::b_prev, ListEnds::kHead>;
using IdBList = IndexList<Table, Rec, &Table::at, &Rec::b_next, &Rec::b_prev>;

template <class L>
std::vector<uint32_t> forward_ids(Table& t, const L& l) {
  std::vector<uint32_t> ids;
  for (uint32_t id = l.front(); id != 0; id = L::next(t, id)) ids.push_back(id);
  return ids;
}
std::vector<uint32_t> backward_ids(Table& t, const IdList& l) {
  std::vector<uint32_t> ids;
  for (uint32_t id = l.back(); id != 0; id = IdList::prev(t, id)) ids.push_back(id);
  return ids;
}
}  // namespace

TEST_CASE("index list: push_back keeps arrival order, push_front puts first", "[intrusive_list]") {
  static_assert(sizeof(IdList) == 2 * sizeof(uint32_t));
  static_assert(sizeof(IdHeadList) == sizeof(uint32_t));
  Table t;
  IdList l;
  REQUIRE(l.empty());
  REQUIRE(l.back() == 0);
  l.push_back(t, 1);
  l.push_back(t, 2);
  l.push_back(t, 3);
  l.push_front(t, 4);
  REQUIRE(forward_ids(t, l) == std::vector<uint32_t>{4, 1, 2, 3});
  REQUIRE(backward_ids(t, l) == std::vector<uint32_t>{3, 2, 1, 4});
  l.clear();  // forgets the elements without touching them
  REQUIRE(l.empty());
  REQUIRE(l.back() == 0);
}

TEST_CASE("index list: remove from the front, the middle and the back keeps both ends right",
          "[intrusive_list]") {
  for (uint32_t victim = 1; victim <= 3; ++victim) {
    Table t;
    IdList l;
    for (uint32_t id = 1; id <= 3; ++id) l.push_back(t, id);
    l.remove(t, victim);
    REQUIRE(t.recs[victim].next == 0);
    REQUIRE(t.recs[victim].prev == 0);
    std::vector<uint32_t> want;
    for (uint32_t id = 1; id <= 3; ++id) {
      if (id != victim) want.push_back(id);
    }
    REQUIRE(forward_ids(t, l) == want);
    REQUIRE(backward_ids(t, l) == std::vector<uint32_t>(want.rbegin(), want.rend()));
  }
  Table t;
  IdList l;
  l.push_back(t, 5);
  l.remove(t, 5);
  REQUIRE(l.empty());
  REQUIRE(l.back() == 0);
}

TEST_CASE("index list: heads kept in an array (buckets); a second list through other links",
          "[intrusive_list]") {
  Table t;
  uint32_t bucket = 0;
  int head_lookups = 0;
  auto head_of = [&]() -> uint32_t& {
    ++head_lookups;
    return bucket;
  };
  for (uint32_t id = 1; id <= 3; ++id) IdHeadList::push_front_at(t, bucket, id);  // 3, 2, 1
  IdHeadList::remove_at(t, head_of, 2);  // not the front: head not needed
  REQUIRE(head_lookups == 0);
  IdHeadList::remove_at(t, head_of, 3);
  REQUIRE(head_lookups == 1);
  REQUIRE(bucket == 1);
  IdHeadList::remove_at(t, head_of, 1);
  REQUIRE(bucket == 0);

  IdList a;
  IdBList b;
  a.push_back(t, 1);
  a.push_back(t, 2);
  b.push_back(t, 2);
  b.push_back(t, 1);
  a.remove(t, 2);
  REQUIRE(forward_ids(t, a) == std::vector<uint32_t>{1});
  REQUIRE(forward_ids(t, b) == std::vector<uint32_t>{2, 1});
}
