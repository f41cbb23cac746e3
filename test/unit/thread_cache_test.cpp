// thread_cache_test.cpp - per-thread bins: refill and flush in batches (core/thread_cache.h).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <set>
#include <vector>

#include "heap_fixture.h"

using namespace cachealloc;
using namespace cachealloc::test;

TEST_CASE("thread cache: refills start at 8 blocks and double up to a batch", "[thread_cache]") {
  // Note [Refill slow start]
  TestHeap t;
  unsigned cls = class_of(40);
  REQUIRE(batch_size(cls) == 16);
  REQUIRE(t.tc->try_alloc(cls, 0) == nullptr);  // starts empty
  std::set<void*> seen;
  uint32_t want = 8;
  uint64_t taken = 0;
  for (uint64_t refill = 1; refill <= 6; ++refill) {
    void* p = t.alloc(40);
    REQUIRE(p != nullptr);
    REQUIRE(seen.insert(p).second);
    REQUIRE(t.tc->counters().refills == refill);
    taken += want;
    REQUIRE(t.heap.pool(cls).counters().blocks_taken == taken);
    REQUIRE(t.tc->bin_count(cls) == want - 1);
    // The rest of this refill is served without touching the pool.
    for (uint32_t i = 1; i < want; ++i) REQUIRE(seen.insert(t.alloc(40)).second);
    REQUIRE(t.tc->counters().refills == refill);
    REQUIRE(t.tc->bin_count(cls) == 0);
    want = want * 2 < batch_size(cls) ? want * 2 : batch_size(cls);
  }
  REQUIRE(want == batch_size(cls));  // a long-lived thread reaches full batches
  for (void* q : seen) t.free(q);
}

TEST_CASE("thread cache: a short-lived thread hands back only what it took", "[thread_cache]") {
  TestHeap t;
  ThreadCache* tc = t.heap.create_thread_cache();
  unsigned cls = class_of(16);
  REQUIRE(batch_size(cls) == 16);
  void* a = t.heap.alloc(tc, 16, 0, false);
  void* b = t.heap.alloc(tc, 16, 0, false);
  t.heap.free(tc, a, "free");
  t.heap.free(tc, b, "free");
  REQUIRE(t.heap.pool(cls).counters().blocks_taken == 8);  // not a whole batch of 16
  t.heap.destroy_thread_cache(tc);
  REQUIRE(t.heap.pool(cls).counters().blocks_given == 8);
}

TEST_CASE("thread cache: a full bin flushes one batch to the central pool", "[thread_cache]") {
  TestHeap t;
  unsigned cls = class_of(100);
  uint32_t max = thread_cache_max(cls);
  std::vector<void*> blocks;
  for (uint32_t i = 0; i < max + batch_size(cls); ++i) blocks.push_back(t.alloc(100));
  for (void* p : blocks) t.free(p);
  REQUIRE(t.tc->counters().flushes >= 1);
  REQUIRE(t.tc->bin_count(cls) <= max);
  REQUIRE(t.tc->bin_count(cls) > 0);
  REQUIRE(t.tc->frees() == blocks.size());
  const auto& pc = t.heap.pool(cls).counters();
  REQUIRE(pc.blocks_given == pc.blocks_taken - t.tc->bin_count(cls));  // nothing lost
  // flush_all empties every bin.
  size_t bytes = t.tc->flush_all();
  REQUIRE(bytes > 0);
  REQUIRE(t.tc->bin_count(cls) == 0);
  REQUIRE(pc.blocks_given == pc.blocks_taken);
}

TEST_CASE("thread cache: blocks freed by one thread cache are reused by another", "[thread_cache]") {
  TestHeap t;
  ThreadCache* other = t.heap.create_thread_cache();
  REQUIRE(other != nullptr);
  unsigned cls = class_of(64);
  uint32_t batch = batch_size(cls);
  std::vector<void*> blocks;
  for (uint32_t i = 0; i < 4 * batch; ++i) blocks.push_back(t.heap.alloc(t.tc, 64, 0, false));
  std::set<void*> produced(blocks.begin(), blocks.end());
  for (void* p : blocks) t.heap.free(other, p, "free");  // cross-thread frees
  other->flush_all();
  t.tc->flush_all();
  // The consumer thread gets the producer's blocks back (transfer slots or slabs), not fresh memory.
  uint64_t maps_before = t.pages.maps;
  std::vector<void*> again;
  for (uint32_t i = 0; i < 4 * batch; ++i) again.push_back(t.heap.alloc(other, 64, 0, false));
  REQUIRE(t.pages.maps == maps_before);
  // Most of them are the producer's; the rest are blocks its last refill carved but never handed
  // out (flushed back with its bin), which is no fresh memory either.
  size_t reused = 0;
  for (void* p : again) reused += produced.count(p);
  REQUIRE(reused >= 3 * batch);
  for (void* p : again) t.heap.free(t.tc, p, "free");
  t.heap.destroy_thread_cache(other);
}

TEST_CASE("thread cache: freeing the bin's head twice is caught on the fast path", "[thread_cache][death]") {
  DeathResult d = run_in_child([] {
    TestHeap t;
    void* p = t.alloc(32);
    t.free(p);
    t.free(p);
  });
  REQUIRE(d.aborted);
  REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): double free 0x"));
}

// Note [Free-list hardening]: a second free of any block still in the bin is caught, whatever its
// position; the bin is left as it was when the free returns.
TEST_CASE("thread cache: a double free at every position of the bin is caught", "[thread_cache][death]") {
  constexpr int kBlocks = 6;
  for (int pos = 0; pos < kBlocks; ++pos) {
    DeathResult d = run_in_child([pos] {
      TestHeap t;
      void* v[kBlocks];
      for (void*& p : v) p = t.alloc(48);
      for (void* p : v) t.free(p);
      t.free(v[pos]);
    });
    INFO("position " << pos);
    REQUIRE(d.aborted);
    REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): double free 0x"));
  }
}

TEST_CASE("thread cache: malloc clears the key, so a reused block frees normally", "[thread_cache]") {
  TestHeap t;
  void* a = t.alloc(48);
  void* b = t.alloc(48);
  t.free(a);
  void* again = t.alloc(48);  // a, its key cleared by malloc
  REQUIRE(again == a);
  uintptr_t words[2];
  memcpy(words, a, sizeof words);
  REQUIRE(words[1] == 0);
  t.free(a);
  t.free(b);
  t.tc->flush_all();  // the blocks keep their key; malloc clears it again
  void* c = t.alloc(48);
  memcpy(words, c, sizeof words);
  REQUIRE(words[1] == 0);
  t.free(c);
}

namespace {
// Runs `misuse` in a child, which must stop with "free(): double free".
void require_double_free(const std::function<void()>& misuse) {
  DeathResult d = run_in_child(misuse);
  REQUIRE(d.aborted);
  REQUIRE_THAT(d.stderr_text, Catch::Contains("cachealloc: free(): double free 0x"));
}
}  // namespace

TEST_CASE("thread cache: a second free of a block waiting in a transfer slot is caught",
          "[thread_cache][death]") {
  // A whole batch flushed by another cache waits in a transfer slot: its blocks keep the key.
  require_double_free([] {
    TestHeap t;
    ThreadCache* other = t.heap.create_thread_cache();
    const uint32_t batch = batch_size(class_of(48));
    std::vector<void*> blocks;
    for (uint32_t i = 0; i < batch; ++i) blocks.push_back(t.alloc(48));
    for (void* b : blocks) t.heap.free(other, b, "free");
    other->flush_all();
    REQUIRE(t.heap.pool(class_of(48)).counters().slot_blocks == batch);
    t.free(blocks[3]);
  });
}

TEST_CASE("thread cache: a second free from another thread's cache is caught", "[thread_cache][death]") {
  // The block sits in the first cache's bin; the second cache does not hold it, but the key says
  // it is binned somewhere: a double free.
  require_double_free([] {
    TestHeap t;
    ThreadCache* other = t.heap.create_thread_cache();
    void* p = t.alloc(48);
    t.free(p);
    t.heap.free(other, p, "free");
  });
}

// A write after free that plants an address in the link of a binned block (tcache poisoning):
// the planted address is never handed out, whichever block was overwritten and whichever path
// (malloc's pop or a flush) follows the link first.
TEST_CASE("thread cache: a forged link at every position never hands out its address", "[thread_cache][death]") {
  constexpr int kBlocks = 6;
  alignas(64) static unsigned char target[256];
  // An address, and a zeroed link: neither may read as the end of the bin (Note [Chain end]).
  for (void* planted : {static_cast<void*>(target + 64), static_cast<void*>(nullptr)}) {
    for (int via_flush = 0; via_flush < 2; ++via_flush) {
      for (int pos = 0; pos < kBlocks; ++pos) {
        DeathResult d = run_in_child([pos, via_flush, planted] {
          TestHeap t;
          void* v[kBlocks];
          for (void*& p : v) p = t.alloc(48);
          for (void* p : v) t.free(p);  // the bin, head first: v[5], v[4], ..., v[0]
          memcpy(v[pos], &planted, sizeof planted);
          if (via_flush) {
            t.tc->flush_all();
          } else {
            for (int i = 0; i < kBlocks + 1; ++i) {
              if (t.alloc(48) == planted) _exit(3);
            }
          }
          _exit(4);  // the corruption went unnoticed
        });
        INFO("position " << pos << (via_flush ? ", flushed" : ", popped") << ", planted " << planted);
        REQUIRE(d.aborted);
        REQUIRE_THAT(d.stderr_text, Catch::Contains("write after free: corrupted free-list link in 0x"));
      }
    }
  }
}

TEST_CASE("thread cache: a cache never attached (the boot cache) misses without writing", "[thread_cache]") {
  // Note [Boot cache]: threads without a cache of their own share one that was never attached;
  // its empty bins must fail malloc's link test as attached ones do (Note [Chain end]), which
  // takes an odd secret before attach too. With a zero secret the end passed the test and was
  // written (SIGSEGV: it is read-only).
  static ThreadCache never;
  for (unsigned c = 0; c < kNumClasses; ++c) REQUIRE(never.try_alloc(c, 16) == nullptr);
  alignas(16) static unsigned char block[64] = {};
  REQUIRE_FALSE(never.try_free(block, 2));
  REQUIRE(kChainEndBlock.words[1] == 0);
}

TEST_CASE("thread cache: an empty bin's head is the chain end, and popping it refills", "[thread_cache]") {
  // Note [Chain end]: the end's link fails malloc's link test, whose cold branch refills; the end
  // itself is never handed out, linked into a chain as a block, or written.
  TestHeap t;
  for (int round = 0; round < 3; ++round) {
    std::vector<void*> v;
    for (int i = 0; i < 600; ++i) {  // past a bin's 256 blocks: refills, then flushes below
      void* p = t.alloc(48);
      REQUIRE(p != kChainEnd);
      v.push_back(p);
    }
    REQUIRE(std::set<void*>(v.begin(), v.end()).size() == v.size());
    for (void* p : v) t.free(p);
    t.tc->flush_all();
  }
  REQUIRE(kChainEndBlock.words[0] == 0);
  REQUIRE(kChainEndBlock.words[1] == 0);
}

// The same write after free while the block waits in a transfer slot, between one thread's flush
// and another's refill: the batch keeps its encoded links there (Note [Encoded batches]), so the
// planted address decodes to garbage when the refill or malloc follows it.
TEST_CASE("thread cache: a link planted in a transfer slot's batch is never handed out",
          "[thread_cache][death]") {
  const unsigned cls = class_of(48);
  const uint32_t batch = batch_size(cls);
  for (uint32_t pos = 0; pos < batch; ++pos) {
    DeathResult d = run_in_child([pos, batch, cls] {
      TestHeap t;
      std::vector<void*> blocks;
      for (uint32_t i = 0; i < batch; ++i) blocks.push_back(t.alloc(48));
      void* live = t.alloc(48);  // a block of the class the attacker wants handed out twice
      for (void* b : blocks) t.free(b);
      t.tc->flush(cls, batch, "free");  // the whole bin, to a transfer slot
      if (t.heap.pool(cls).counters().slot_blocks != batch) _exit(5);
      memcpy(blocks[pos], &live, sizeof live);
      while (t.tc->try_alloc(cls, 0) != nullptr) {
      }
      // Its refills have doubled up to a batch by now (Note [Refill slow start]): this one takes
      // the batch from the slot.
      void* p = t.tc->refill(cls);
      if (t.heap.pool(cls).counters().slot_blocks != 0) _exit(6);
      for (uint32_t i = 0; i < batch + 1 && p != nullptr; ++i) {
        if (p == live) _exit(3);  // handed out while live
        p = t.tc->try_alloc(cls, 0);
      }
      _exit(4);  // the corruption went unnoticed
    });
    INFO("position " << pos << ", exit status " << (d.status >> 8));
    REQUIRE(d.aborted);
    REQUIRE_THAT(d.stderr_text, Catch::Contains("write after free: corrupted free-list link in 0x"));
  }
}

// The same batch drained to its slabs (ca_clear) instead: the planted link is refused as a
// pointer, where following it first read an arbitrary address.
TEST_CASE("thread cache: a link planted in a transfer slot's batch is refused when it is drained",
          "[thread_cache][death]") {
  DeathResult d = run_in_child([] {
    TestHeap t;
    const unsigned cls = class_of(48);
    const uint32_t batch = batch_size(cls);
    std::vector<void*> blocks;
    for (uint32_t i = 0; i < batch; ++i) blocks.push_back(t.alloc(48));
    for (void* b : blocks) t.free(b);
    t.tc->flush(cls, batch, "free");
    uintptr_t planted = 0x123456789ab0;
    memcpy(blocks[batch / 2], &planted, sizeof planted);
    t.heap.clear(nullptr);
    _exit(4);
  });
  REQUIRE(d.aborted);
  REQUIRE_THAT(d.stderr_text, Catch::Contains("invalid pointer 0x"));
}

// A write after free wiped the key of a block waiting in its slab; a refill hands the block to a
// bin with the key again (Note [Encoded batches]), so a second free of it is still caught there.
TEST_CASE("thread cache: a block refilled from its slab holds the key again", "[thread_cache][death]") {
  require_double_free([] {
    TestHeap t;
    const unsigned cls = class_of(48);
    void* a = t.alloc(48);
    t.heap.free(nullptr, a, "free");  // no thread cache: straight back to its slab
    memset(a, 0, 16);                 // the write after free
    while (t.tc->try_alloc(cls, 0) != nullptr) {
    }
    void* first = t.tc->refill(cls);  // a (the slab's only free block) and fresh ones
    if (first == a) _exit(5);
    t.free(a);
    _exit(4);  // the second free went unnoticed
  });
}

TEST_CASE("thread cache: a link forged with the secret still must land on a block of its class", "[thread_cache][death]") {
  // An attacker who learnt the secret can encode any address; flush checks the target.
  DeathResult d = run_in_child([] {
    TestHeap t;
    void* a = t.alloc(48);
    void* other = t.alloc(200);  // a live block of another class
    void* b = t.alloc(48);
    t.free(a);
    t.free(b);  // b's link -> a
    const FreeListKeys& k = t.heap.free_list_keys();
    uintptr_t forged = reinterpret_cast<uintptr_t>(other) ^ k.mask(b);
    memcpy(b, &forged, sizeof forged);
    t.tc->flush_all();
    _exit(4);
  });
  REQUIRE(d.aborted);
  REQUIRE_THAT(d.stderr_text, Catch::Contains("write after free: corrupted free-list link in 0x"));
}

TEST_CASE("thread cache: destroy flushes everything back", "[thread_cache]") {
  TestHeap t;
  ThreadCache* tc = t.heap.create_thread_cache();
  std::vector<void*> v;
  for (int i = 0; i < 500; ++i) v.push_back(t.heap.alloc(tc, 16 + (i % 20) * 16, 0, false));
  for (void* p : v) t.heap.free(tc, p, "free");
  t.heap.destroy_thread_cache(tc);
  uint64_t taken = 0, given = 0;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    taken += t.heap.pool(c).counters().blocks_taken;
    given += t.heap.pool(c).counters().blocks_given;
  }
  REQUIRE(taken == given);
  ca_totals tot{};
  t.heap.get_totals(&tot);
  REQUIRE(tot.allocs >= 500);
  REQUIRE(tot.frees >= 500);
}

TEST_CASE("thread cache: a bin that only receives frees keeps one batch (outbox bins)", "[thread_cache]") {
  TestHeap t;
  ThreadCache* consumer = t.heap.create_thread_cache();
  REQUIRE(consumer != nullptr);
  unsigned cls = class_of(64);
  uint32_t batch = batch_size(cls);
  REQUIRE(thread_cache_max(cls) >= 2 * batch);  // else there is nothing to bound
  std::vector<void*> blocks;
  for (uint32_t i = 0; i < 8 * batch; ++i) blocks.push_back(t.heap.alloc(t.tc, 64, 0, false));
  // The consumer never allocated this class: its bin never holds more than one batch.
  uint32_t most = 0;
  for (void* p : blocks) {
    t.heap.free(consumer, p, "free");
    most = std::max(most, consumer->bin_count(cls));
  }
  CHECK(most == batch);
  // Once it allocates the class (a refill), its bin may grow to the full size again.
  consumer->flush_all();
  std::vector<void*> mine;
  for (uint32_t i = 0; i < 4 * batch; ++i) mine.push_back(t.heap.alloc(consumer, 64, 0, false));
  most = 0;
  for (void* p : mine) {
    t.heap.free(consumer, p, "free");
    most = std::max(most, consumer->bin_count(cls));
  }
  CHECK(most > batch);
  // Two fills with no refill between make it an outbox again.
  blocks.clear();
  // Enough frees to fill the bin twice, and then to bring it down a batch at a time.
  for (uint32_t i = 0; i < 2 * thread_cache_max(cls) + 4 * batch; ++i) {
    blocks.push_back(t.heap.alloc(t.tc, 64, 0, false));
  }
  for (void* p : blocks) t.heap.free(consumer, p, "free");
  CHECK(consumer->bin_count(cls) <= batch);
  // Through every change of the bin's max, its count stayed exact (Note [Bin slack]): the
  // frees derived from it (Note [Derived free count]) are the frees made.
  REQUIRE(consumer->frees() == 8 * batch + mine.size() + blocks.size());
  t.heap.destroy_thread_cache(consumer);
}

TEST_CASE("thread cache: a free with no thread cache of a block waiting in a bin is caught",
          "[thread_cache][death]") {
  // A thread past its cache's teardown frees through the heap directly: the key still tells.
  require_double_free([] {
    TestHeap t;
    void* p = t.alloc(48);
    t.free(p);
    t.heap.free(nullptr, p, "free");
  });
}

TEST_CASE("thread cache: a block freed with no thread cache carries the key", "[thread_cache][death]") {
  require_double_free([] {
    TestHeap t;
    void* keep = t.alloc(48);  // keeps the slab active
    void* p = t.alloc(48);
    t.heap.free(nullptr, p, "free");
    t.free(p);
    t.free(keep);
  });
}

TEST_CASE("thread cache: a block the heap takes directly holds no key, so it frees normally",
          "[thread_cache]") {
  // Blocks flushed to their slab (fewer than a batch) keep their key; a take with no thread
  // cache (a dying thread, check mode) hands one out, and its free must not look like a second.
  TestHeap t;
  std::vector<void*> blocks;
  for (int i = 0; i < 3; ++i) blocks.push_back(t.alloc(48));
  ThreadCache* other = t.heap.create_thread_cache();
  for (void* b : blocks) t.heap.free(other, b, "free");
  other->flush_all();
  t.heap.destroy_thread_cache(other);
  void* p = t.heap.alloc(nullptr, 48, 0, false);
  REQUIRE(std::find(blocks.begin(), blocks.end(), p) != blocks.end());
  uintptr_t words[2];
  memcpy(words, p, sizeof words);
  REQUIRE(words[1] == 0);
  t.free(p);
}
