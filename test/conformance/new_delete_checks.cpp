// new_delete_checks.cpp - operator new/delete beyond what the generic front checks cover: the
// new-handler loop, std::bad_alloc, nothrow forms returning nullptr, over-aligned types in
// new-expressions, deleting nullptr, and the standard containers running on cachealloc.
#include "conformance.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <new>
#include <string>
#include <vector>

using namespace conformance;

namespace {

int g_handler_calls = 0;

// Uninstalls itself, so the second attempt fails and the throwing forms throw.
void counting_handler() {
  ++g_handler_calls;
  std::set_new_handler(nullptr);
}

const size_t kHuge = static_cast<size_t>(PTRDIFF_MAX) + 1;

template <class Fn>
void expect_handler_then_bad_alloc(const char* what, Fn allocate) {
  INFO(what);
  g_handler_calls = 0;
  std::set_new_handler(counting_handler);
  bool threw = false;
  try {
    void* p = allocate();
    escape(p);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  std::set_new_handler(nullptr);
  CHECK(threw);
  CHECK(g_handler_calls == 1);
}

template <class Fn>
void expect_nullptr(const char* what, Fn allocate) {
  INFO(what);
  g_handler_calls = 0;
  std::set_new_handler(counting_handler);
  void* p = allocate();
  std::set_new_handler(nullptr);
  CHECK(p == nullptr);
  // [new.delete.single]: the nothrow form behaves as if it called the throwing one and caught.
  CHECK(g_handler_calls == 1);
}

struct alignas(128) Aligned128 {
  unsigned char bytes[300];
};
struct alignas(4096) AlignedPage {
  unsigned char bytes[100];
};

}  // namespace

TEST_CASE("operator new calls the new-handler, then throws std::bad_alloc", "[new]") {
  expect_handler_then_bad_alloc("new", [] { return ::operator new(opaque(kHuge)); });
  expect_handler_then_bad_alloc("new[]", [] { return ::operator new[](opaque(kHuge)); });
  expect_handler_then_bad_alloc("new align", [] {
    return ::operator new(opaque(kHuge), std::align_val_t{64});
  });
  expect_handler_then_bad_alloc("new[] align", [] {
    return ::operator new[](opaque(kHuge), std::align_val_t{4096});
  });
}

TEST_CASE("operator new without a handler throws std::bad_alloc", "[new]") {
  std::set_new_handler(nullptr);
  CHECK_THROWS_AS(::operator new(opaque(SIZE_MAX)), std::bad_alloc);
  CHECK_THROWS_AS(::operator new[](opaque(SIZE_MAX)), std::bad_alloc);
  CHECK_THROWS_AS(::operator new(opaque(SIZE_MAX), std::align_val_t{32}), std::bad_alloc);
}

TEST_CASE("nothrow operator new returns nullptr", "[new]") {
  expect_nullptr("new nothrow", [] { return ::operator new(opaque(kHuge), std::nothrow); });
  expect_nullptr("new[] nothrow", [] { return ::operator new[](opaque(kHuge), std::nothrow); });
  expect_nullptr("new align nothrow", [] {
    return ::operator new(opaque(kHuge), std::align_val_t{256}, std::nothrow);
  });
  expect_nullptr("new[] align nothrow", [] {
    return ::operator new[](opaque(kHuge), std::align_val_t{16}, std::nothrow);
  });
}

// The handler may throw std::bad_alloc itself; a nothrow form must still return nullptr
// ([new.delete.single]: it behaves as if it called the throwing form inside a try/catch).
// cachealloc catches through libstdc++ (Note [No libstdc++ dependency] in preload/new_delete.cpp).
void throwing_handler() {
  ++g_handler_calls;
  throw std::bad_alloc();
}

TEST_CASE("nothrow operator new returns nullptr when the new-handler throws", "[new]") {
  auto run = [](const char* what, auto allocate) {
    INFO(what);
    g_handler_calls = 0;
    std::set_new_handler(throwing_handler);
    void* p = allocate();
    std::set_new_handler(nullptr);
    CHECK(p == nullptr);
    CHECK(g_handler_calls == 1);
  };
  run("new nothrow", [] { return ::operator new(opaque(kHuge), std::nothrow); });
  run("new[] nothrow", [] { return ::operator new[](opaque(kHuge), std::nothrow); });
  run("new align nothrow", [] {
    return ::operator new(opaque(kHuge), std::align_val_t{256}, std::nothrow);
  });
  // And the throwing form lets the handler's exception through.
  g_handler_calls = 0;
  std::set_new_handler(throwing_handler);
  CHECK_THROWS_AS(::operator new(opaque(kHuge)), std::bad_alloc);
  std::set_new_handler(nullptr);
  CHECK(g_handler_calls == 1);
}

TEST_CASE("a new-handler that returns lets operator new try again", "[new]") {
  // The handler is only run on failure, so a successful allocation must not call it.
  g_handler_calls = 0;
  std::set_new_handler(counting_handler);
  void* p = ::operator new(opaque(size_t{100}));
  void* q = ::operator new(opaque(2 * kMiB), std::align_val_t{64});
  std::set_new_handler(nullptr);
  CHECK(g_handler_calls == 0);
  ::operator delete(p);
  ::operator delete(q, std::align_val_t{64});
}

TEST_CASE("new-expressions honour over-aligned types", "[new]") {
  auto* one = new Aligned128;
  CHECK(aligned_to(one, 128));
  CHECK(ca().owns(one) == 1);
  auto* many = new Aligned128[37];
  CHECK(aligned_to(many, 128));
  CHECK(ca().owns(many) == 1);
  auto* page = new AlignedPage;
  CHECK(aligned_to(page, 4096));
  auto* pages = new AlignedPage[3000];  // 12 MB of 4 KiB-aligned objects: the large path
  CHECK(aligned_to(pages, 4096));
  for (int i = 0; i < 3000; ++i) pages[i].bytes[99] = static_cast<unsigned char>(i);
  for (int i = 0; i < 3000; ++i) REQUIRE(pages[i].bytes[99] == static_cast<unsigned char>(i));
  delete one;
  delete[] many;
  delete page;
  delete[] pages;
}

TEST_CASE("deleting nullptr is a no-op in every form", "[new]") {
  ca_totals before{}, after{};
  ca().get_totals(&before);
  ::operator delete(nullptr);
  ::operator delete[](nullptr);
  ::operator delete(nullptr, size_t{16});
  ::operator delete[](nullptr, size_t{16});
  ::operator delete(nullptr, std::nothrow);
  ::operator delete[](nullptr, std::nothrow);
  ::operator delete(nullptr, std::align_val_t{64});
  ::operator delete[](nullptr, std::align_val_t{64});
  ::operator delete(nullptr, size_t{64}, std::align_val_t{64});
  ::operator delete[](nullptr, size_t{64}, std::align_val_t{64});
  ::operator delete(nullptr, std::align_val_t{64}, std::nothrow);
  ::operator delete[](nullptr, std::align_val_t{64}, std::nothrow);
  free(nullptr);
  ca().get_totals(&after);
  // A null pointer never reaches the heap: nothing was freed (and nothing allocated meanwhile).
  CHECK(after.frees == before.frees);
  CHECK(after.allocs == before.allocs);
}

TEST_CASE("standard containers run on cachealloc", "[new]") {
  std::map<int, std::string> m;
  std::vector<std::vector<int>> vv;
  for (int i = 0; i < 20000; ++i) {
    m[i * 7 % 10007] = std::string(static_cast<size_t>(i % 300), static_cast<char>('a' + i % 26));
    vv.emplace_back(static_cast<size_t>(i % 100), i);
  }
  CHECK(ca().owns(vv.data()) == 1);
  std::string longer(1000, 'x');
  CHECK(ca().owns(longer.data()) == 1);
  size_t total = 0;
  for (auto& [k, v] : m) total += v.size();
  CHECK(total > 0);
  for (size_t i = 0; i < vv.size(); ++i)
    REQUIRE((vv[i].empty() || vv[i][0] == static_cast<int>(i)));
}
