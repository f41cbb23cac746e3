// prodcons: cross-thread frees. A producer thread allocates small messages (16–512 B), stamps
// them and hands them through a bounded single-producer/single-consumer ring to a consumer thread,
// which checks and frees them.
//
// Models message queues, actor systems and thread pools, where memory is freed by a different
// thread than the one that allocated it. Per-thread caches that are only fast when a block returns
// to its own thread, or that take a global lock for remote frees, are slow here; every freed
// block must find its way back to the producer's side for the producer to keep allocating cheaply.
#include <atomic>
#include <thread>
#include <vector>

#include "bench_util.h"

namespace {
constexpr uint64_t kBaseMessages = 10'000'000;
constexpr size_t kRingSize = 1024;  // power of two

struct Message {
  void* p;
  size_t size;
};

// A Lamport ring: the producer owns tail_, the consumer owns head_, each on its own cache line.
// Each side keeps a private copy of the other's index and rereads the shared one only when the
// copy says full (or empty), so that on two cores the ring itself costs about one cache-line
// transfer per 4 messages and the time measured is the allocator's, not the queue's.
class SpscRing {
 public:
  void push(Message m) {
    const size_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_cache_ == kRingSize) {
      for (unsigned spins = 0;; ++spins) {
        head_cache_ = head_.load(std::memory_order_acquire);
        if (t - head_cache_ != kRingSize) break;
        backoff(spins);
      }
    }
    slots_[t & (kRingSize - 1)] = m;
    tail_.store(t + 1, std::memory_order_release);
  }
  Message pop() {
    const size_t h = head_.load(std::memory_order_relaxed);
    if (tail_cache_ == h) {
      for (unsigned spins = 0;; ++spins) {
        tail_cache_ = tail_.load(std::memory_order_acquire);
        if (tail_cache_ != h) break;
        backoff(spins);
      }
    }
    Message m = slots_[h & (kRingSize - 1)];
    head_.store(h + 1, std::memory_order_release);
    return m;
  }

 private:
  // Spin briefly, then yield, then sleep: the benchmark machine may have fewer free cores than
  // threads, and a thread that only spins or yields while its peer is off-CPU can stretch a
  // 0.3 s run to 10 s. A 20 µs nap lets the peer fill or drain the ring (1024 messages ≈ 20 µs
  // of work) and is never reached while both threads run.
  static void backoff(unsigned spins) {
    if (spins < 64)
      __builtin_ia32_pause();
    else if (spins < 128)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  alignas(64) std::atomic<size_t> head_{0};  // written by the consumer
  size_t tail_cache_ = 0;                     // the consumer's copy of tail_
  alignas(64) std::atomic<size_t> tail_{0};  // written by the producer
  size_t head_cache_ = 0;                     // the producer's copy of head_
  alignas(64) Message slots_[kRingSize];
};

struct Result {
  uint64_t checksum = 0, expected = 0;
};
}  // namespace

extern "C" [[gnu::noinline]] void bench_measured_producer(SpscRing* ring, uint64_t seed,
                                                          uint64_t messages, uint64_t* expected) {
  bench::Rng rng(seed);
  uint64_t sum = 0;
  for (uint64_t i = 0; i < messages; ++i) {
    const size_t size = rng.between(16, 512);
    void* p = std::malloc(size);
    if (!p) std::abort();
    sum += bench::stamp(p, size, rng.next());
    ring->push({p, size});
  }
  *expected = sum;
}

extern "C" [[gnu::noinline]] void bench_measured_consumer(SpscRing* ring, uint64_t messages,
                                                          uint64_t* checksum) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < messages; ++i) {
    const Message m = ring->pop();
    sum += bench::unstamp(m.p, m.size);
    std::free(m.p);
  }
  *checksum = sum;
}

int main(int argc, char** argv) {
  const auto o = bench::parse_args(argc, argv, "bench-prodcons",
                                   "producer allocates 16-512 B, consumer thread frees");
  const uint64_t messages = bench::scaled(kBaseMessages, o.scale);
  auto* ring = new SpscRing;
  Result r;
  bench::Stopwatch sw;
  std::thread consumer(bench_measured_consumer, ring, messages, &r.checksum);
  bench_measured_producer(ring, o.seed, messages, &r.expected);
  consumer.join();
  const double t = sw.seconds();
  delete ring;
  return bench::report("prodcons", t, messages, r.checksum, r.expected);
}
