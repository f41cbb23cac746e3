// probe_fuzzer.cpp - meson's check that clang can link a libFuzzer target.
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }
