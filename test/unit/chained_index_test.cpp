// chained_index_test.cpp - core/chained_index.h: lookups, growth at load 1 that keeps every record,
// removal from any place in a chain, and a growth that cannot map its array.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "core/chained_index.h"
#include "platform/os.h"

using namespace cachealloc;

namespace {
struct Rec {
  const void* key = nullptr;
  Rec* next = nullptr;
};
// The key's own bits: key k lands in bucket k mod buckets().
size_t low_bits(const void* k) noexcept { return reinterpret_cast<uintptr_t>(k); }
using Index = ChainedIndex<Rec, &Rec::next, &Rec::key, const void*, &low_bits, 4>;
size_t zero(const void*) noexcept { return 0; }
using OneChain = ChainedIndex<Rec, &Rec::next, &Rec::key, const void*, &zero, 4>;

const void* key(uintptr_t i) { return reinterpret_cast<const void*>(i); }

// Inserts recs[0..n) with keys 1..n.
void fill(Index& index, std::vector<Rec>& recs) {
  for (size_t i = 0; i < recs.size(); ++i) {
    recs[i].key = key(i + 1);
    REQUIRE(index.make_room());
    index.insert(&recs[i]);
  }
}
}  // namespace

TEST_CASE("chained index: empty, then every record found after growth", "[chained_index]") {
  Index index;
  REQUIRE(index.buckets() == 0);
  REQUIRE(index.find(key(1)) == nullptr);
  REQUIRE(index.link_to(key(1)) == nullptr);
  std::vector<Rec> recs(100);
  fill(index, recs);
  REQUIRE(index.size() == 100);
  REQUIRE(index.buckets() == 128);  // 4, doubled while the load would pass 1
  for (size_t i = 0; i < recs.size(); ++i) REQUIRE(index.find(key(i + 1)) == &recs[i]);
  REQUIRE(index.find(key(1000)) == nullptr);
}

TEST_CASE("chained index: erase and unlink from the front, middle and end of a chain",
          "[chained_index]") {
  OneChain index;  // every record in one chain, newest first: 5, 4, 3, 2, 1
  Rec recs[5];
  for (uintptr_t i = 0; i < 5; ++i) {
    recs[i].key = key(i + 1);
    REQUIRE(index.make_room());
    index.insert(&recs[i]);
  }
  index.erase(&recs[0]);  // the end
  REQUIRE(recs[0].next == nullptr);
  index.erase(&recs[2]);  // the middle
  Rec** link = index.link_to(key(5));  // the front
  REQUIRE(link != nullptr);
  REQUIRE(*link == &recs[4]);
  index.unlink(link);
  REQUIRE(recs[4].next == nullptr);
  REQUIRE(index.size() == 2);
  for (int gone : {0, 2, 4}) REQUIRE(index.find(key(gone + 1)) == nullptr);
  REQUIRE(index.find(key(2)) == &recs[1]);
  REQUIRE(index.find(key(4)) == &recs[3]);
  REQUIRE(index.link_to(key(1)) == nullptr);
}

TEST_CASE("chained index: a growth that cannot map keeps the old array; none at all fails",
          "[chained_index]") {
  Index index;
  Rec r;
  r.key = key(1);
  os::inject_map_failures(-1);
  bool first = index.make_room();
  os::inject_map_failures(0);
  REQUIRE_FALSE(first);  // no array yet and none could be mapped
  REQUIRE(index.buckets() == 0);

  std::vector<Rec> recs(4);
  fill(index, recs);
  REQUIRE(index.buckets() == 4);
  REQUIRE(index.full());
  os::inject_map_failures(-1);
  bool room = index.make_room();
  os::inject_map_failures(0);
  REQUIRE(room);  // the chains only get longer
  REQUIRE(index.buckets() == 4);
  Rec fifth;
  fifth.key = key(5);
  index.insert(&fifth);
  REQUIRE(index.find(key(5)) == &fifth);
  REQUIRE(index.find(key(1)) == &recs[0]);
}
