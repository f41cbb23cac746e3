// thread_churn: short-lived threads. 50 rounds of 32 threads (--threads changes the 32), each
// created, allocating 2,000 objects of mixed sizes (16 B-2 KiB, log-uniform), freeing half of them
// itself and leaving the other half in a mailbox that a thread of the next round frees, then
// exiting. Thread caches are created and torn down constantly and half of all frees are of blocks
// another (by then dead) thread allocated: the pattern of thread-per-request servers and of
// parallel loops that spawn workers per batch.
#include <thread>
#include <vector>

#include "bench_util.h"

namespace {
constexpr unsigned kRounds = 50;
constexpr uint64_t kBaseObjects = 2000;  // per thread per round

struct Mailbox {
  std::vector<void*> ptrs;
  std::vector<size_t> sizes;
};

struct Totals {
  uint64_t checksum = 0;
  uint64_t expected = 0;
};
}  // namespace

extern "C" [[gnu::noinline]] void bench_measured_thread_churn(uint64_t seed, uint64_t objects,
                                                              Mailbox* inbox, Mailbox* outbox,
                                                              Totals* out) {
  bench::Rng rng(seed);
  Totals t;
  for (size_t i = 0; i < inbox->ptrs.size(); ++i) {  // the previous round's leftovers
    t.checksum += bench::unstamp(inbox->ptrs[i], inbox->sizes[i]);
    std::free(inbox->ptrs[i]);
  }
  inbox->ptrs.clear();
  inbox->sizes.clear();
  std::vector<void*> mine;
  std::vector<size_t> my_sizes;
  mine.reserve(objects);
  my_sizes.reserve(objects);
  for (uint64_t i = 0; i < objects; ++i) {
    size_t n = rng.log_uniform(16, 2048);
    void* p = std::malloc(n);
    if (!p) std::abort();
    t.expected += bench::stamp(p, n, rng.next());
    if (i % 2 == 0) {
      outbox->ptrs.push_back(p);
      outbox->sizes.push_back(n);
    } else {
      mine.push_back(p);
      my_sizes.push_back(n);
    }
  }
  for (size_t i = 0; i < mine.size(); ++i) {
    t.checksum += bench::unstamp(mine[i], my_sizes[i]);
    std::free(mine[i]);
  }
  *out = t;
}

int main(int argc, char** argv) {
  auto o = bench::parse_args(argc, argv, "bench-thread_churn",
                             "50 rounds of short-lived threads (--threads, default 32) that "
                             "allocate mixed sizes and leave half for the next round to free");
  if (o.threads == 2) o.threads = 32;  // parse_args' default is for the two-thread workloads
  const uint64_t objects = bench::scaled(kBaseObjects, o.scale) + 2;
  std::vector<Mailbox> boxes(o.threads);
  for (auto& b : boxes) {
    b.ptrs.reserve(objects);
    b.sizes.reserve(objects);
  }
  std::vector<Totals> results(o.threads);
  Totals all;
  bench::Stopwatch sw;
  for (unsigned r = 0; r < kRounds; ++r) {
    std::vector<std::thread> workers;
    workers.reserve(o.threads);
    // Thread i frees what thread i-1 of the previous round left in box i-1 and fills box i.
    // Boxes are swapped so that each thread reads one and writes another.
    std::vector<Mailbox> next(o.threads);
    for (auto& b : next) {
      b.ptrs.reserve(objects);
      b.sizes.reserve(objects);
    }
    for (unsigned i = 0; i < o.threads; ++i) {
      workers.emplace_back(bench_measured_thread_churn, o.seed + r * 1000 + i, objects,
                           &boxes[(i + o.threads - 1) % o.threads], &next[i], &results[i]);
    }
    for (auto& w : workers) w.join();
    for (const auto& t : results) {
      all.checksum += t.checksum;
      all.expected += t.expected;
    }
    boxes.swap(next);
  }
  for (auto& b : boxes) {
    for (size_t i = 0; i < b.ptrs.size(); ++i) {
      all.checksum += bench::unstamp(b.ptrs[i], b.sizes[i]);
      std::free(b.ptrs[i]);
    }
  }
  const double t = sw.seconds();
  return bench::report("thread_churn", t, uint64_t{kRounds} * o.threads * objects, all.checksum,
                       all.expected);
}
