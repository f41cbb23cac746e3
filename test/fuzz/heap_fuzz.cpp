// heap_fuzz.cpp - model-checked fuzz target for the core Heap.
//
// The input is decoded into a sequence of operations (malloc, calloc, realloc, aligned allocation,
// free, free from another thread cache, retain, release, clear, budget change) over two Heap
// instances built on the real upstreams (OsSegmentSource: mmap/madvise, SystemLargeSource): a default one
// and one in hardened check mode. A reference model tracks every live block (pointer, requested
// size, alignment, reference count, fill pattern) and each step is checked against it:
//   - alignment honoured, usable size >= request, nullptr only for impossible sizes (+ ENOMEM);
//   - live blocks never overlap (over their usable sizes);
//   - contents survive realloc, clear, budget changes and other blocks' traffic;
//   - calloc reads zero, even on reused memory;
//   - refcounts and the number of live large blocks match the model; at the end of each input,
//     with every block freed and the caches cleared, nothing is cached and no large block is live.
// A failed check prints one line and aborts, which libFuzzer records as a crash with its input.
//
// Built twice (test/fuzz/meson.build): with clang -fsanitize=fuzzer for long runs, and with the
// project compiler plus fuzz_driver.cpp, which replays the seed corpus and pseudo-random inputs in
// `meson test --suite fuzz`. Input format: byte 0 picks the heap and the budget; then each
// operation is one opcode byte followed by its operand bytes (missing bytes read as 0).
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <vector>

#include "core/heap.h"
#include "core/large_source.h"
#include "core/segment_source.h"

using namespace cachealloc;

namespace {

constinit OsSegmentSource g_pages;
constinit SystemLargeSource g_large;
Heap g_heaps[2];  // [0] default, [1] CACHEALLOC_CHECK
ThreadCache* g_tc[2][2];
bool g_ready = false;

constexpr size_t kMaxLive = 256;
constexpr size_t kMaxOps = 4000;
constexpr size_t kMaxLiveBytes = size_t{64} << 20;  // keeps a run's memory bounded

[[noreturn]] void failure(const char* what, const void* p, size_t a, size_t b) {
  fprintf(stderr, "heap_fuzz: check failed: %s (ptr %p, %zu, %zu)\n", what, p, a, b);
  abort();
}
#define FUZZ_CHECK(cond, what, p, a, b) \
  do {                                  \
    if (!(cond)) failure(what, p, a, b); \
  } while (0)

struct Reader {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  bool done() const { return pos >= size; }
  uint8_t u8() { return pos < size ? data[pos++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u24() { return u16() | (static_cast<uint32_t>(u8()) << 16); }
};

struct Block {
  unsigned char* p;
  size_t size;
  size_t align;
  uint32_t refs;
  uint8_t seed;
  bool large;
};

// The bytes of a block that carry the pattern: all of a block up to 64 KiB; of bigger ones the
// first and last 4 KiB and every 509th byte between. The pattern code is kept out of libFuzzer's
// coverage instrumentation (it is the model, not the code under test, and byte loops would
// dominate the run time otherwise).
#if defined(__clang__)
#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define FUZZ_NO_COVERAGE
#endif
#define FOR_PATTERN_BYTES(n, i, body)                                   \
  do {                                                                  \
    if ((n) <= 65536) {                                                 \
      for (size_t i = 0; i < (n); ++i) body;                            \
    } else {                                                            \
      for (size_t i = 0; i < 4096; ++i) body;                           \
      for (size_t i = 4096; i < (n) - 4096; i += 509) body;             \
      for (size_t i = (n) - 4096; i < (n); ++i) body;                   \
    }                                                                   \
  } while (0)

inline unsigned char pattern(uint8_t seed, size_t i) {
  return static_cast<unsigned char>(seed ^ (i * 131) ^ (i >> 8));
}
FUZZ_NO_COVERAGE void write_pattern(const Block& b) {
  FOR_PATTERN_BYTES(b.size, i, b.p[i] = pattern(b.seed, i));
}
// Checks the pattern bytes of a block of b.size bytes that lie below `limit` (a realloc keeps the
// first min(old, new) bytes; the sample positions are those of the size the pattern was written at).
FUZZ_NO_COVERAGE void check_pattern(const Block& b, size_t limit, const char* when) {
  size_t bad = SIZE_MAX;
  size_t n = b.size;
  FOR_PATTERN_BYTES(n, i, {
    if (bad == SIZE_MAX && i < limit && b.p[i] != pattern(b.seed, i)) bad = i;
  });
  if (bad != SIZE_MAX) failure(when, b.p, bad, b.size);
}
// A quick check of every live block between operations: the first and last 64 bytes and a stride
// through the middle (every 251st byte of blocks up to 64 KiB, every 509th sample of bigger ones).
FUZZ_NO_COVERAGE void check_sparse(const Block& b, const char* when) {
  size_t n = b.size;
  size_t bad = SIZE_MAX;
  size_t head = n < 64 ? n : 64;
  for (size_t i = 0; i < head; ++i) {
    if (b.p[i] != pattern(b.seed, i)) bad = i;
  }
  if (n > 128) {
    size_t from = n <= 65536 ? 64 : 4096, step = n <= 65536 ? 251 : 509, to = n <= 65536 ? n - 64 : n - 4096;
    for (size_t i = from; i < to; i += step) {
      if (b.p[i] != pattern(b.seed, i)) bad = i;
    }
    for (size_t i = n - 64; i < n; ++i) {
      if (b.p[i] != pattern(b.seed, i)) bad = i;
    }
  }
  if (bad != SIZE_MAX) failure(when, b.p, bad, b.size);
}
FUZZ_NO_COVERAGE void check_zero(const unsigned char* p, size_t n) {
  size_t bad = SIZE_MAX;
  FOR_PATTERN_BYTES(n, i, {
    if (bad == SIZE_MAX && p[i] != 0) bad = i;
  });
  if (bad != SIZE_MAX) failure("calloc memory not zero", p, bad, n);
}

// Sizes spread over every path: tiny, class boundaries, medium, around the large threshold,
// large, and the occasional impossible one.
size_t decode_size(Reader& r) {
  uint8_t kind = r.u8();
  switch (kind % 8) {
    case 0: return r.u8();                                    // 0..255 (0 included)
    case 1: return 1 + r.u16() % 4096;
    case 2: return class_size(r.u8() % kNumClasses) + (r.u8() % 3) - 1;  // boundaries
    case 3: return 1 + r.u24() % (256 << 10);
    case 4: return (256 << 10) - 64 + r.u8();                 // the large threshold
    case 5: return (256 << 10) + r.u24() % (2 << 20);
    case 6: return (size_t{1} << (12 + r.u8() % 11)) + (r.u8() % 3) - 1;  // powers of two to 4 MiB
    default: return (kind & 0x80) ? SIZE_MAX - r.u8() : 1 + r.u8() % 64;
  }
}

struct Model {
  Heap* heap;
  ThreadCache** tc;
  std::vector<Block> live;
  std::map<uintptr_t, uintptr_t> ranges;  // start -> end (usable), live blocks
  uint8_t next_seed = 1;
  size_t live_bytes = 0;

  void add_range(const Block& b) {
    uintptr_t s = reinterpret_cast<uintptr_t>(b.p);
    uintptr_t e = s + heap->usable_size(b.p);
    auto it = ranges.lower_bound(s);
    if (it != ranges.end()) FUZZ_CHECK(it->first >= e, "overlaps the next live block", b.p, it->first, e);
    if (it != ranges.begin()) {
      auto prev = std::prev(it);
      FUZZ_CHECK(prev->second <= s, "overlaps the previous live block", b.p, prev->first, prev->second);
    }
    ranges[s] = e;
  }
  // The live blocks just below and above p in the address space: the ones a bad block boundary
  // would corrupt first.
  void check_neighbours(const void* p, const char* when) {
    auto it = ranges.find(reinterpret_cast<uintptr_t>(p));
    if (it == ranges.end()) return;
    const void* near[2] = {nullptr, nullptr};
    if (it != ranges.begin()) near[0] = reinterpret_cast<void*>(std::prev(it)->first);
    if (std::next(it) != ranges.end()) near[1] = reinterpret_cast<void*>(std::next(it)->first);
    for (const Block& b : live) {
      if (b.p == near[0] || b.p == near[1]) check_sparse(b, when);
    }
  }
  void drop_range(const Block& b) { ranges.erase(reinterpret_cast<uintptr_t>(b.p)); }

  void check_new(void* p, size_t n, size_t align) {
    size_t a = align < 16 ? 16 : align;
    FUZZ_CHECK(reinterpret_cast<uintptr_t>(p) % a == 0, "misaligned", p, n, align);
    FUZZ_CHECK(heap->usable_size(p) >= n, "usable size below the request", p, n, heap->usable_size(p));
    FUZZ_CHECK(heap->owns(p), "a new block is not owned", p, n, 0);
    FUZZ_CHECK(heap->refcount(p) == 1, "a new block's count is not 1", p, heap->refcount(p), 0);
  }

  void adopt_block(unsigned char* p, size_t n, size_t align, bool zeroed) {
    size_t eff = n == 0 ? 1 : n;
    check_new(p, eff, align);
    if (zeroed) check_zero(p, n);
    Block b{p, n, align, 1, next_seed++, heap->table().lookup(p) == nullptr};
    add_range(b);
    write_pattern(b);
    live.push_back(b);
    live_bytes += n;
  }

  void alloc(size_t n, size_t align, bool zero, ThreadCache* t) {
    if (live.size() >= kMaxLive) return;
    if (n <= size_t{PTRDIFF_MAX} && live_bytes + n > kMaxLiveBytes) return;
    errno = 0;
    void* p = heap->alloc(t, n, align, zero);
    if (n > size_t{PTRDIFF_MAX}) {
      FUZZ_CHECK(p == nullptr && errno == ENOMEM, "impossible size did not fail with ENOMEM", p, n, 0);
      return;
    }
    FUZZ_CHECK(p != nullptr, "allocation failed", nullptr, n, align);
    adopt_block(static_cast<unsigned char*>(p), n, align, zero);
  }

  void remove(size_t k) {
    live_bytes -= live[k].size;
    drop_range(live[k]);
    live[k] = live.back();
    live.pop_back();
  }

  void free_ref(size_t k, bool via_release, ThreadCache* t) {
    Block& b = live[k];
    check_pattern(b, b.size, "contents changed before free");
    FUZZ_CHECK(heap->refcount(b.p) == b.refs, "refcount differs from the model", b.p, heap->refcount(b.p), b.refs);
    if (via_release) {
      FUZZ_CHECK(heap->release(t, b.p) == 0, "release of a live block failed", b.p, b.refs, 0);
    } else {
      heap->free(t, b.p, "free");
    }
    if (--b.refs == 0) {
      void* p = b.p;
      remove(k);
      // Freed (cached, binned or handed upstream): neither counted nor retainable.
      FUZZ_CHECK(heap->refcount(p) == 0, "a freed block still counts", p, heap->refcount(p), 0);
      FUZZ_CHECK(heap->retain(p) == EINVAL, "a freed block was retained", p, 0, 0);
    } else {
      FUZZ_CHECK(heap->refcount(b.p) == b.refs, "refcount after release", b.p, heap->refcount(b.p), b.refs);
      check_pattern(b, b.size, "contents changed by releasing a shared block");
    }
  }

  void realloc(size_t k, size_t n, ThreadCache* t) {
    Block b = live[k];
    if (b.refs != 1) return;  // realloc of a shared block is not a model operation
    if (n <= size_t{PTRDIFF_MAX} && n > b.size && live_bytes + (n - b.size) > kMaxLiveBytes) return;
    check_pattern(b, b.size, "contents changed before realloc");
    errno = 0;
    void* q = heap->realloc(t, b.p, n, "realloc");
    if (n == 0) {  // frees
      FUZZ_CHECK(q == nullptr, "realloc(p, 0) returned a block", q, 0, 0);
      remove(k);
      return;
    }
    if (n > size_t{PTRDIFF_MAX}) {
      FUZZ_CHECK(q == nullptr && errno == ENOMEM, "impossible realloc did not fail", q, n, 0);
      check_pattern(b, b.size, "failed realloc changed the block");
      return;
    }
    FUZZ_CHECK(q != nullptr, "realloc failed", b.p, n, 0);
    remove(k);
    Block nb{static_cast<unsigned char*>(q), n, 16, 1, b.seed, heap->table().lookup(q) == nullptr};
    check_new(q, n, 16);
    Block moved = b;  // the old contents, at the new address
    moved.p = nb.p;
    check_pattern(moved, n, "realloc lost the contents");
    add_range(nb);
    write_pattern(nb);
    live.push_back(nb);
    live_bytes += n;
  }

  // Every live block, on a sparse sample: full checks happen when a block is freed or reallocated.
  void check_all(const char* when) {
    size_t large = 0;
    for (const Block& b : live) {
      check_sparse(b, when);
      large += b.large;
    }
    FUZZ_CHECK(heap->large().live_blocks() == large, "live large blocks differ from the model", nullptr,
               heap->large().live_blocks(), large);
  }
};

void init_once() {
  if (g_ready) return;
  HeapConfig normal;
  HeapConfig check;
  check.check = true;
  SystemLargeSource::init();
  g_heaps[0].init(&g_pages, &g_large, normal);
  g_heaps[1].init(&g_pages, &g_large, check);
  for (int h = 0; h < 2; ++h) {
    for (int t = 0; t < 2; ++t) g_tc[h][t] = g_heaps[h].create_thread_cache();
  }
  g_ready = true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  init_once();
  Reader r{data, size};
  uint8_t head = r.u8();
  int h = head & 1;
  static constexpr size_t kLimits[] = {size_t{256} << 20, 0, 1 << 20, 16 << 20};
  Model m{&g_heaps[h], g_tc[h], {}, {}, 1};
  m.heap->set_cache_limit(kLimits[(head >> 1) & 3]);
  size_t ops = 0;
  size_t last_full_check = 0;
  while (!r.done() && ops++ < kMaxOps) {
    uint8_t op = r.u8();
    ThreadCache* t = m.tc[(op >> 7) & 1];  // the high bit picks the thread cache
    size_t pick = m.live.empty() ? 0 : r.u8() % m.live.size();
    switch (op % 12) {
      case 0:
      case 1: m.alloc(decode_size(r), 0, false, t); break;
      case 2: m.alloc(decode_size(r), 0, true, t); break;
      case 3: {
        size_t align = size_t{1} << (r.u8() % 21);  // 1 .. 1 MiB
        m.alloc(decode_size(r) % (4 << 20), align, false, t);
        break;
      }
      case 4:
      case 5:
        if (!m.live.empty()) m.free_ref(pick, false, t);
        break;
      case 6:
        if (!m.live.empty()) m.realloc(pick, decode_size(r), t);
        break;
      case 7:
        if (!m.live.empty()) {
          Block& b = m.live[pick];
          if (b.refs < 1000) {
            FUZZ_CHECK(m.heap->retain(b.p) == 0, "retain of a live block failed", b.p, b.refs, 0);
            ++b.refs;
            FUZZ_CHECK(m.heap->refcount(b.p) == b.refs, "refcount after retain", b.p, m.heap->refcount(b.p), b.refs);
          }
        }
        break;
      case 8:
        if (!m.live.empty()) m.free_ref(pick, true, t);
        break;
      // After a clear or a budget change every live block is checked (at most once every 16
      // operations, which keeps long inputs fast).
      case 9:
        m.heap->clear(t);
        if (ops - last_full_check >= 16) m.check_all("contents changed by clear"), last_full_check = ops;
        break;
      case 10:
        m.heap->set_cache_limit(kLimits[r.u8() & 3]);
        if (ops - last_full_check >= 16) m.check_all("contents changed by a budget change"), last_full_check = ops;
        break;
      default:  // a calloc, then its neighbours in memory must be intact
        m.alloc(decode_size(r) % 70000, 0, true, t);
        if (!m.live.empty()) m.check_neighbours(m.live.back().p, "a new block disturbed its neighbours");
        break;
    }
  }
  m.check_all("contents changed");
  while (!m.live.empty()) m.free_ref(m.live.size() - 1, false, m.tc[0]);
  for (ThreadCache* t : {m.tc[0], m.tc[1]}) m.heap->clear(t);
  FUZZ_CHECK(m.heap->cached_bytes() == 0, "cached bytes after clear", nullptr, m.heap->cached_bytes(), 0);
  FUZZ_CHECK(m.heap->large().live_blocks() == 0, "large blocks leaked", nullptr, m.heap->large().live_blocks(), 0);
  FUZZ_CHECK(m.heap->refs().entries() == 0, "refcount entries leaked", nullptr, m.heap->refs().entries(), 0);
  return 0;
}
