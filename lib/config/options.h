// options.h - every run-time setting of cachealloc, in one table.
//
// Settings come from the environment, are parsed once without allocating (at the first allocation,
// and again at load time once libc has set up `environ`), and are read with secure_getenv
// semantics. A bad value prints one warning naming the variable and the value, and the default is
// used. docs/configuration.md lists exactly this table (test/unit/options_test.cpp checks that).
//
// Sizes accept a plain number of bytes or a K/M/G/T suffix (powers of 1024, optional "iB"/"B").
// Booleans accept 1/0, on/off, true/false, yes/no, in any case.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cachealloc {

// kBoolOrPath: a boolean (0/1), or an absolute path (value 2, the path in Options::path_of).
// kPath: a file name prefix (value 1 when set, the text in Options::prefix_of; unset: 0).
// kBoolOrFail: a boolean, or the word "fail" (value 2).
// kBoolOrAlways: a boolean, or the word "always" (value 2).
enum class OptionKind : uint8_t { kSize, kBool, kBoolOrPath, kPath, kBoolOrFail, kBoolOrAlways };
inline constexpr uint64_t kOptionFail = 2;    // the word of kBoolOrFail
inline constexpr uint64_t kOptionAlways = 2;  // the word of kBoolOrAlways
inline constexpr uint64_t kOptionPath = 2;
inline constexpr size_t kOptionPathMax = 256;  // bytes, with the NUL

// X(field, ENV_NAME, kind, default, min, max, "one-line doc")
#define CACHEALLOC_OPTIONS(X)                                                                     \
  X(cache_bytes, "CACHEALLOC_CACHE_BYTES", kSize, 256ull << 20, 0, 1ull << 50,                    \
    "Budget for cached memory (freed large blocks plus empty slabs still committed); past it "    \
    "the least recently used memory goes back upstream.")                                         \
  X(cache_below_peak, "CACHEALLOC_CACHE_BELOW_PEAK", kBool, 1, 0, 1,                          \
    "The cache also fits under the program's peak of live memory (plus 1/4, at least 8 MiB), so "\
    "it never adds more than that to the process; 0: only the budget bounds it.")                \
  X(decay_ms, "CACHEALLOC_DECAY_MS", kSize, 10000, 0, 1ull << 40,                                \
    "Cached memory nobody has taken for this many milliseconds goes back upstream (checked as "   \
    "the program allocates); 0: it stays until the budget needs it.")                             \
  X(large_threshold, "CACHEALLOC_LARGE_THRESHOLD", kSize, 64ull << 10, 4ull << 10, 256ull << 10, \
    "Requests above this many bytes take the large-object path (mimalloc plus the LRU cache); "   \
    "smaller ones come from slabs.")                                                              \
  X(thp, "CACHEALLOC_THP", kBool, 0, 0, 1,                                                        \
    "Ask for transparent huge pages (madvise) on blocks of 2 MiB and more mapped from the OS: far " \
    "fewer page faults for big buffers, but a touched page costs 2 MiB of RSS, not 4 KiB.")        \
  X(verbose, "CACHEALLOC_VERBOSE", kBool, 0, 0, 1,                                                \
    "Print the effective settings to stderr at start-up.")                                        \
  X(check, "CACHEALLOC_CHECK", kBool, 0, 0, 1,                                                    \
    "Hardened mode: detect every double free of small blocks and poison freed memory (slower).")  \
  X(stats, "CACHEALLOC_STATS", kBool, 1, 0, 1,                                                    \
    "Publish live counters in /dev/shm/cachealloc.<pid>.<ns> for cachealloc-stats.")              \
  X(stats_thread, "CACHEALLOC_STATS_THREAD", kBoolOrAlways, 1, 0, 2,                             \
    "The publisher thread: 1 starts it once the program has a thread of its own, \"always\" in "  \
    "single-threaded programs too, 0 never.")                                                     \
  X(show_stats, "CACHEALLOC_SHOW_STATS", kBoolOrPath, 0, 0, 2,                                    \
    "Print a summary of the counters at exit: 1 to stderr, or an absolute path: appended to that "\
    "file.")                                                                                      \
  X(cuda, "CACHEALLOC_CUDA", kBool, 1, 0, 1,                                                      \
    "Cache CUDA device and pinned host memory; 0 passes every CUDA call through untouched.")      \
  X(cuda_cache_bytes, "CACHEALLOC_CUDA_CACHE_BYTES", kSize, 0, 0, 1ull << 50,                     \
    "Budget for cached device memory per context, and for pinned host memory; 0 means a quarter "\
    "of the device's memory (pinned: 1/16 of physical memory).")                                  \
  X(cuda_free_sync, "CACHEALLOC_CUDA_FREE_SYNC", kBool, 0, 0, 1,                                  \
    "cudaFree/cuMemFree of a cached block synchronise the device as CUDA's own free does, and "   \
    "return an earlier kernel's error.")                                                          \
  X(cuda_scrub, "CACHEALLOC_CUDA_SCRUB", kBool, 0, 0, 1,                                          \
    "Fill device and pinned blocks reused from the cache with 0xcb (finds reads of memory the "   \
    "program never wrote).")                                                                      \
  X(prof, "CACHEALLOC_PROF", kBool, 0, 0, 1,                                                      \
    "Heap profiling: about one allocation per CACHEALLOC_PROF_SAMPLE bytes records its call "     \
    "stack (docs/profiling.md).")                                                                 \
  X(prof_sample, "CACHEALLOC_PROF_SAMPLE", kSize, 512ull << 10, 1, 1ull << 40,                    \
    "Mean bytes between two sampled allocations (a Poisson process over the bytes allocated).")   \
  X(prof_prefix, "CACHEALLOC_PROF_PREFIX", kPath, 0, 0, 1,                                        \
    "With CACHEALLOC_PROF=1, write pprof heap profiles at exit to <prefix>.<pid>.heap (and "      \
    "<prefix>.<pid>.device.heap).")                                                               \
  X(leak_check, "CACHEALLOC_LEAK_CHECK", kBoolOrFail, 0, 0, 2,                                    \
    "Print the live sampled blocks at exit, grouped by allocation site; \"fail\" also makes the " \
    "exit status 23 when any leaked.")

struct Options {
#define CA_OPTION_FIELD(field, env, kind, def, lo, hi, doc) uint64_t field = def;
  CACHEALLOC_OPTIONS(CA_OPTION_FIELD)
#undef CA_OPTION_FIELD
  // The path of the kBoolOrPath option whose value is kOptionPath (only one option has that kind).
  char path_of[kOptionPathMax] = {};
  // The text of the kPath option when it is set (only one option has that kind).
  char prefix_of[kOptionPathMax] = {};
};

struct OptionInfo {
  const char* env;
  OptionKind kind;
  uint64_t default_value;
  uint64_t min;
  uint64_t max;
  const char* doc;
};

// The table, in declaration order.
const OptionInfo* option_table(size_t* count) noexcept;

// Parses one value of the given kind. Returns false on anything malformed or out of range.
bool parse_option_value(const OptionInfo& info, const char* text, uint64_t* out) noexcept;

// Reads every option from `lookup` (os::get_env in the library, a fake in tests). Bad values warn
// through `warn_fn` (one line each) and keep the default.
using EnvLookup = const char* (*)(const char* name);
using WarnFn = void (*)(const char* line);
Options load_options(EnvLookup lookup, WarnFn warn_fn) noexcept;

// Warns once (one line through `warn_fn`, naming the entry) for each CACHEALLOC_* name in `env` ("NAME=value"
// entries, nullptr-terminated; nullptr for none) that is neither in the table nor in
// kOtherEnvNames: a misspelt setting would otherwise be ignored silently. Returns how many.
size_t warn_unknown_names(const char* const* env, WarnFn warn_fn) noexcept;
// CACHEALLOC_* names that are not library settings but are read elsewhere (the tools).
inline constexpr const char* kOtherEnvNames[] = {"CACHEALLOC_STATS_DIR"};

// The process-wide options. Valid after options_init(); before it, the defaults.
const Options& options() noexcept;
void options_init() noexcept;
// Re-reads the environment once it exists (called from the library constructor). Warnings are
// not repeated for values already reported.
void options_reload() noexcept;
Options& mutable_options() noexcept;  // for tests only

}  // namespace cachealloc
