// options_test.cpp - the options table and its parser (config/options.h), and that
// docs/configuration.md lists every variable of the table.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "config/options.h"

using namespace cachealloc;

namespace {
std::map<std::string, std::string> g_env;
std::vector<std::string> g_warnings;

const char* fake_lookup(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}
void fake_warn(const char* line) { g_warnings.emplace_back(line); }

const OptionInfo& info_for(const char* env) {
  size_t n = 0;
  const OptionInfo* t = option_table(&n);
  for (size_t i = 0; i < n; ++i) {
    if (strcmp(t[i].env, env) == 0) return t[i];
  }
  FAIL("no option " << env);
  return t[0];
}

bool parse(const char* env, const char* text, uint64_t* out) {
  return parse_option_value(info_for(env), text, out);
}
}  // namespace

TEST_CASE("sizes accept bytes and K/M/G/T suffixes", "[options]") {
  uint64_t v = 0;
  REQUIRE(parse("CACHEALLOC_CACHE_BYTES", "65536", &v));
  REQUIRE(v == 65536);
  REQUIRE(parse("CACHEALLOC_CACHE_BYTES", "64K", &v));
  REQUIRE(v == 64 << 10);
  REQUIRE(parse("CACHEALLOC_CACHE_BYTES", "64k", &v));
  REQUIRE(v == 64 << 10);
  REQUIRE(parse("CACHEALLOC_CACHE_BYTES", "256M", &v));
  REQUIRE(v == uint64_t{256} << 20);
  REQUIRE(parse("CACHEALLOC_CACHE_BYTES", "2G", &v));
  REQUIRE(v == uint64_t{2} << 30);
  REQUIRE(parse("CACHEALLOC_CACHE_BYTES", "1T", &v));
  REQUIRE(v == uint64_t{1} << 40);
  REQUIRE(parse("CACHEALLOC_CACHE_BYTES", "3MiB", &v));
  REQUIRE(v == uint64_t{3} << 20);
  REQUIRE(parse("CACHEALLOC_CACHE_BYTES", "3MB", &v));
  REQUIRE(v == uint64_t{3} << 20);
  REQUIRE(parse("CACHEALLOC_CACHE_BYTES", "0", &v));
  REQUIRE(v == 0);
}

TEST_CASE("malformed and out-of-range sizes are refused", "[options]") {
  uint64_t v = 42;
  for (const char* bad : {"", "banana", "12X", "-1", " 5", "5 ", "1.5G", "K", "99999999999999999999",
                          "17179869184G", "1P"}) {
    INFO(bad);
    REQUIRE_FALSE(parse("CACHEALLOC_CACHE_BYTES", bad, &v));
  }
  REQUIRE(v == 42);  // untouched on failure
  REQUIRE_FALSE(parse("CACHEALLOC_LARGE_THRESHOLD", "1K", &v));    // below min 4K
  REQUIRE_FALSE(parse("CACHEALLOC_LARGE_THRESHOLD", "1M", &v));    // above max 256K
  REQUIRE(parse("CACHEALLOC_LARGE_THRESHOLD", "4K", &v));
  REQUIRE(parse("CACHEALLOC_LARGE_THRESHOLD", "256K", &v));
}

TEST_CASE("booleans accept the on/off words in any case", "[options]") {
  uint64_t v = 7;
  for (const char* on : {"1", "on", "ON", "true", "True", "yes", "YES"}) {
    INFO(on);
    REQUIRE(parse("CACHEALLOC_CHECK", on, &v));
    REQUIRE(v == 1);
  }
  for (const char* off : {"0", "off", "Off", "false", "FALSE", "no", "No"}) {
    INFO(off);
    REQUIRE(parse("CACHEALLOC_CHECK", off, &v));
    REQUIRE(v == 0);
  }
  for (const char* bad : {"", "2", "y", "enable", "onn", "truee", "-1"}) {
    INFO(bad);
    REQUIRE_FALSE(parse("CACHEALLOC_CHECK", bad, &v));
  }
}

TEST_CASE("load_options: defaults without environment, values with it", "[options]") {
  g_env.clear();
  g_warnings.clear();
  Options d = load_options(&fake_lookup, &fake_warn);
  REQUIRE(g_warnings.empty());
  REQUIRE(d.cache_bytes == uint64_t{256} << 20);
  REQUIRE(d.large_threshold == uint64_t{64} << 10);
  REQUIRE(d.check == 0);
  REQUIRE(d.stats == 1);

  g_env = {{"CACHEALLOC_CACHE_BYTES", "1G"}, {"CACHEALLOC_CHECK", "yes"},
           {"CACHEALLOC_LARGE_THRESHOLD", "64K"}, {"CACHEALLOC_STATS", "off"}};
  Options o = load_options(&fake_lookup, &fake_warn);
  REQUIRE(g_warnings.empty());
  REQUIRE(o.cache_bytes == uint64_t{1} << 30);
  REQUIRE(o.check == 1);
  REQUIRE(o.large_threshold == 64 << 10);
  REQUIRE(o.stats == 0);
}

TEST_CASE("load_options: each bad value warns once, names it, and keeps the default", "[options]") {
  g_env = {{"CACHEALLOC_CACHE_BYTES", "banana"}, {"CACHEALLOC_VERBOSE", "maybe"},
           {"CACHEALLOC_LARGE_THRESHOLD", "1G"}, {"CACHEALLOC_CHECK", "1"}};
  g_warnings.clear();
  Options o = load_options(&fake_lookup, &fake_warn);
  REQUIRE(g_warnings.size() == 3);
  REQUIRE(o.cache_bytes == uint64_t{256} << 20);
  REQUIRE(o.verbose == 0);
  REQUIRE(o.large_threshold == uint64_t{64} << 10);
  REQUIRE(o.check == 1);  // the good one still applies
  bool saw_banana = false;
  for (const std::string& w : g_warnings) {
    if (w.find("CACHEALLOC_CACHE_BYTES") != std::string::npos && w.find("banana") != std::string::npos) {
      saw_banana = true;
    }
    REQUIRE(w.find('\n') == std::string::npos);  // one line each
  }
  REQUIRE(saw_banana);
  g_env.clear();
}

TEST_CASE("every option of the table is documented in docs/configuration.md", "[options][docs]") {
  std::ifstream in(CA_SOURCE_ROOT "/docs/configuration.md");
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  size_t n = 0;
  const OptionInfo* t = option_table(&n);
  REQUIRE(n >= 8);
  for (size_t i = 0; i < n; ++i) {
    INFO(t[i].env);
    REQUIRE(doc.find(std::string("`") + t[i].env + "`") != std::string::npos);
    REQUIRE(t[i].default_value >= t[i].min);
    REQUIRE(t[i].default_value <= t[i].max);
    REQUIRE(strlen(t[i].doc) > 10);
  }
}

TEST_CASE("a misspelt CACHEALLOC_ name warns once, known names do not", "[options]") {
  g_warnings.clear();
  const char* env[] = {"CACHEALLOC_CACHEBYTES=1G", "CACHEALLOC_CACHE_BYTES=1G", "CACHEALLOC_STATS=0",
                       "CACHEALLOC_STATS_DIR=/tmp", "PATH=/bin", "CACHEALLOC_STAT=1",
                       "CACHEALLOC_STATS_X", "XCACHEALLOC_FOO=1", nullptr};
  CHECK(warn_unknown_names(env, &fake_warn) == 3);
  REQUIRE(g_warnings.size() == 3);
  CHECK(g_warnings[0].find("unknown setting CACHEALLOC_CACHEBYTES=1G ignored") == 0);
  CHECK(g_warnings[1].find("unknown setting CACHEALLOC_STAT=1 ignored") == 0);
  CHECK(g_warnings[2].find("unknown setting CACHEALLOC_STATS_X ignored") == 0);
  CHECK(warn_unknown_names(nullptr, &fake_warn) == 0);
}

TEST_CASE("CACHEALLOC_SHOW_STATS takes a boolean or an absolute path", "[options]") {
  g_warnings.clear();
  g_env = {{"CACHEALLOC_SHOW_STATS", "/var/log/app/cachealloc.txt"}};
  Options o = load_options(&fake_lookup, &fake_warn);
  CHECK(g_warnings.empty());
  CHECK(o.show_stats == kOptionPath);
  CHECK(std::string(o.path_of) == "/var/log/app/cachealloc.txt");
  g_env = {{"CACHEALLOC_SHOW_STATS", "yes"}};
  o = load_options(&fake_lookup, &fake_warn);
  CHECK(o.show_stats == 1);
  CHECK(o.path_of[0] == '\0');
  g_env = {{"CACHEALLOC_SHOW_STATS", "relative/file"}};
  o = load_options(&fake_lookup, &fake_warn);
  CHECK(o.show_stats == 0);
  REQUIRE(g_warnings.size() == 1);
  CHECK(g_warnings[0].find("boolean or absolute path") != std::string::npos);
  g_env = {{"CACHEALLOC_SHOW_STATS", "/" + std::string(kOptionPathMax, 'x')}};
  o = load_options(&fake_lookup, &fake_warn);
  CHECK(o.show_stats == 0);  // too long: refused, not cut
  g_env.clear();
}

TEST_CASE("CACHEALLOC_STATS_THREAD takes a boolean or \"always\"", "[options]") {
  g_warnings.clear();
  g_env.clear();
  CHECK(load_options(&fake_lookup, &fake_warn).stats_thread == 1);
  g_env = {{"CACHEALLOC_STATS_THREAD", "Always"}};
  CHECK(load_options(&fake_lookup, &fake_warn).stats_thread == kOptionAlways);
  g_env = {{"CACHEALLOC_STATS_THREAD", "off"}};
  CHECK(load_options(&fake_lookup, &fake_warn).stats_thread == 0);
  CHECK(g_warnings.empty());
  g_env = {{"CACHEALLOC_STATS_THREAD", "fail"}};
  CHECK(load_options(&fake_lookup, &fake_warn).stats_thread == 1);
  REQUIRE(g_warnings.size() == 1);
  CHECK(g_warnings[0].find("CACHEALLOC_STATS_THREAD=\"fail\" is not a valid boolean or \"always\"") == 0);
  g_env.clear();
}
