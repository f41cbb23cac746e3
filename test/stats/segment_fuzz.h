// segment_fuzz.h - the fuzz target for cachealloc-stats' segment reader, shared by the libFuzzer
// build (segment_libfuzzer) and the plain driver that meson test runs (segment_fuzz_driver).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

// A well-formed version-1 segment with a few pool and layout rows: the seed of every corpus.
std::vector<unsigned char> make_seed_segment(uint32_t pid, uint32_t layouts);

// The target: parse `size` bytes; when the reader accepts them, check what it promised.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
