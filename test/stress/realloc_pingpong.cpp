// realloc_pingpong.cpp - blocks grown and shrunk by realloc across every size class, through the
// large threshold and back, by several threads, with the surviving prefix verified at each step
// (in place or moved). Also realloc to 0 and from nullptr. usage: realloc_pingpong [seconds]
#include <thread>
#include <vector>

#include "stress_common.h"

using namespace stress;

int main(int argc, char** argv) {
  require_preload("realloc_pingpong");
  Deadline deadline(seconds_arg(argc, argv, 3.0));
  std::atomic<uint64_t> steps{0};
  auto worker = [&](int id) {
    Rng rng(id + 5);
    struct B {
      void* p;
      size_t n;
      uint64_t tag;
    };
    std::vector<B> v(16, B{nullptr, 0, 0});
    uint64_t tag = uint64_t(id) << 32;
    static const size_t kLadder[] = {1, 16, 17, 100, 128, 129, 1000, 4096, 4097, 65536, 200000,
                                     262144, 262145, 300000, 1 << 20, 5 << 20};
    while (!deadline.passed()) {
      B& b = v[rng.below(v.size())];
      size_t n = (rng.next() & 1) ? kLadder[rng.below(16)] : rng.size();
      if ((rng.next() & 31) == 0) n = 0;
      void* q = realloc(b.p, n);
      if (n == 0) {
        // realloc(p, 0) frees (and returns NULL) in cachealloc; realloc(NULL, 0) is malloc(0).
        if (b.p != nullptr && q != nullptr) fail("realloc(p, 0) returned a block");
        if (b.p == nullptr) free(q);
        b = B{nullptr, 0, 0};
        continue;
      }
      if (q == nullptr) fail("realloc failed");
      if (b.p != nullptr && !pattern::sparse_prefix_intact(q, b.n, n < b.n ? n : b.n, b.tag)) fail("realloc lost contents");
      b = B{q, n, ++tag};
      pattern::fill_sparse(q, n, b.tag);
      steps.fetch_add(1, std::memory_order_relaxed);
    }
    for (B& b : v) {
      if (b.p != nullptr && !pattern::sparse_intact(b.p, b.n, b.tag)) fail("block changed");
      free(b.p);
    }
  };
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) ts.emplace_back(worker, i);
  for (auto& t : ts) t.join();
  printf("realloc_pingpong: %llu verified realloc steps\n", static_cast<unsigned long long>(steps.load()));
  return 0;
}
