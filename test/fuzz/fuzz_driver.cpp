// fuzz_driver.cpp - a main() for the fuzz target when libFuzzer is not available (g++ builds, CI):
// replays every file of the given corpus directories, then N pseudo-random inputs.
//
//   heap_fuzz_replay [-random=N] [-seed=S] [-max_len=L] [DIR_OR_FILE...]
//
// Random inputs are printed (hex) before they run only with -verbose; a failing input aborts the
// program through the target's own check, and the driver names the file or the random index first.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
void run_file(const std::filesystem::path& f) {
  std::ifstream in(f, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fprintf(stderr, "replay %s (%zu bytes)\n", f.c_str(), bytes.size());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
}
}  // namespace

int main(int argc, char** argv) {
  long random_runs = 0;
  unsigned long seed = 1;
  size_t max_len = 4096;
  bool verbose = false;
  size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("-random=", 0) == 0) {
      random_runs = std::atol(a.c_str() + 8);
    } else if (a.rfind("-seed=", 0) == 0) {
      seed = std::strtoul(a.c_str() + 6, nullptr, 10);
    } else if (a.rfind("-max_len=", 0) == 0) {
      max_len = std::strtoul(a.c_str() + 9, nullptr, 10);
    } else if (a == "-verbose") {
      verbose = true;
    } else if (std::filesystem::is_directory(a)) {
      std::vector<std::filesystem::path> entries;
      for (const auto& e : std::filesystem::directory_iterator(a)) {
        if (e.is_regular_file()) entries.push_back(e.path());
      }
      std::sort(entries.begin(), entries.end());
      for (const auto& e : entries) {
        run_file(e);
        ++files;
      }
    } else {
      run_file(a);
      ++files;
    }
  }
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> buf;
  for (long r = 0; r < random_runs; ++r) {
    size_t len = 1 + rng() % max_len;
    buf.resize(len);
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    if (verbose) fprintf(stderr, "random input %ld (seed %lu, %zu bytes)\n", r, seed, len);
    LLVMFuzzerTestOneInput(buf.data(), buf.size());
  }
  printf("heap_fuzz_replay: %zu corpus files and %ld random inputs passed (seed %lu)\n", files,
         random_runs, seed);
  return 0;
}
