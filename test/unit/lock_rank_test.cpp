// lock_rank_test.cpp - Note [Lock ranks] (platform/spin_lock.h): the order check of debug builds.
#include <catch2/catch.hpp>

#include <string>

#include "heap_fixture.h"  // run_in_child
#include "platform/spin_lock.h"

using namespace cachealloc;
using cachealloc::test::DeathResult;
using cachealloc::test::run_in_child;

TEST_CASE("locks taken in rank order pass; an inversion stops debug builds", "[lock_rank]") {
  SpinLock pool_a{LockRank::kCentralPool}, pool_b{LockRank::kCentralPool};
  SpinLock arena{LockRank::kMetaArena}, unranked;
  {
    // Upwards, two of one rank, and an unranked lock anywhere: all allowed.
    LockGuard a(pool_a);
    LockGuard b(pool_b);
    LockGuard c(arena);
    LockGuard d(unranked);
  }
  {
    // try_lock cannot wait, so it is never an inversion.
    LockGuard c(arena);
    REQUIRE(pool_a.try_lock());
    pool_a.unlock();
  }
  DeathResult r = run_in_child([&] {
    LockGuard c(arena);
    LockGuard a(pool_a);  // below a held rank
  });
#ifdef CA_LOCK_RANKS
  REQUIRE(r.aborted);
  REQUIRE(r.stderr_text.find("lock order") != std::string::npos);
#else
  REQUIRE_FALSE(r.aborted);  // release builds keep neither rank nor check
#endif
}
