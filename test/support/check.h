// check.h - how a standalone test program (the preload and stress programs; unit and conformance
// tests use Catch2) reports a failed check: one line "FAIL: <what>" on stderr, exit status 1.
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

namespace test_support {

[[noreturn, gnu::format(printf, 1, 2)]] inline void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  fflush(stderr);
  _exit(1);
}

}  // namespace test_support

// Fails with the file, the line and the condition's text unless `cond` holds.
#define TEST_EXPECT(cond)                                                         \
  do {                                                                            \
    if (!(cond)) ::test_support::fail("%s:%d: %s", __FILE__, __LINE__, #cond);   \
  } while (0)
