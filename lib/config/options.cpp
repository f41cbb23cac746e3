// options.cpp - the parser for options.h.
#include "config/options.h"

#include "platform/os.h"
#include "util/diagnostics.h"
#include "util/format.h"

namespace cachealloc {
namespace {

constexpr OptionInfo kTable[] = {
#define CA_OPTION_INFO(field, env, kind, def, lo, hi, doc) {env, OptionKind::kind, def, lo, hi, doc},
    CACHEALLOC_OPTIONS(CA_OPTION_INFO)
#undef CA_OPTION_INFO
};

constinit Options g_options{};
constinit bool g_loaded_with_env = false;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_nocase(const char* a, const char* b) {
  for (; *a != '\0' && *b != '\0'; ++a, ++b) {
    if (lower(*a) != lower(*b)) return false;
  }
  return *a == *b;
}

bool parse_size(const char* s, uint64_t* out) {
  if (*s < '0' || *s > '9') return false;
  uint64_t v = 0;
  for (; *s >= '0' && *s <= '9'; ++s) {
    uint64_t d = static_cast<uint64_t>(*s - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  unsigned shift = 0;
  switch (lower(*s)) {
    case 'k': shift = 10; break;
    case 'm': shift = 20; break;
    case 'g': shift = 30; break;
    case 't': shift = 40; break;
    case '\0': break;
    case 'b': break;
    default: return false;
  }
  if (shift != 0) {
    ++s;
    if (lower(*s) == 'i') ++s;
  }
  if (lower(*s) == 'b') ++s;
  if (*s != '\0') return false;
  if (shift != 0 && v > (UINT64_MAX >> shift)) return false;
  *out = v << shift;
  return true;
}

bool parse_bool(const char* s, uint64_t* out) {
  static constexpr const char* kOn[] = {"1", "on", "true", "yes"};
  static constexpr const char* kOff[] = {"0", "off", "false", "no"};
  for (const char* w : kOn) {
    if (equals_nocase(s, w)) {
      *out = 1;
      return true;
    }
  }
  for (const char* w : kOff) {
    if (equals_nocase(s, w)) {
      *out = 0;
      return true;
    }
  }
  return false;
}

void library_warn(const char* line) { warn(line); }

}  // namespace

const OptionInfo* option_table(size_t* count) noexcept {
  *count = sizeof(kTable) / sizeof(kTable[0]);
  return kTable;
}

namespace {
// The word a "boolean or word" kind accepts besides the booleans (value 2), or nullptr.
const char* option_word(OptionKind kind) noexcept {
  return kind == OptionKind::kBoolOrFail ? "fail" : kind == OptionKind::kBoolOrAlways ? "always" : nullptr;
}
}  // namespace

bool parse_option_value(const OptionInfo& info, const char* text, uint64_t* out) noexcept {
  uint64_t v = 0;
  bool ok = false;
  if (info.kind == OptionKind::kSize) {
    ok = parse_size(text, &v);
  } else if (info.kind == OptionKind::kPath) {
    size_t len = 0;
    while (text[len] != '\0') ++len;
    ok = len != 0 && len < kOptionPathMax;
    v = 1;
  } else if (option_word(info.kind) != nullptr && equals_nocase(text, option_word(info.kind))) {
    ok = true;
    v = 2;  // kOptionFail, kOptionAlways
  } else {
    ok = parse_bool(text, &v);
    if (!ok && info.kind == OptionKind::kBoolOrPath && text[0] == '/') {
      size_t len = 0;
      while (text[len] != '\0') ++len;
      ok = len < kOptionPathMax;
      v = kOptionPath;
    }
  }
  if (!ok || v < info.min || v > info.max) return false;
  *out = v;
  return true;
}

Options load_options(EnvLookup lookup, WarnFn warn_fn) noexcept {
  Options o{};
  uint64_t* fields[] = {
#define CA_OPTION_PTR(field, env, kind, def, lo, hi, doc) &o.field,
      CACHEALLOC_OPTIONS(CA_OPTION_PTR)
#undef CA_OPTION_PTR
  };
  size_t i = 0;
  for (const OptionInfo& info : kTable) {
    uint64_t* field = fields[i++];
    const char* text = lookup(info.env);
    if (text == nullptr) continue;
    if (!parse_option_value(info, text, field)) {
      StackText<400> t;
      t.str(info.env).str("=\"").str(text).str("\" is not a valid ");
      if (const char* word = option_word(info.kind)) {
        t.str("boolean or \"").str(word).str("\" (1/0, on/off, ..., ").str(word).chr(')');
      } else {
        t.str(info.kind == OptionKind::kSize ? "size (bytes, or a number with K, M, G or T)"
              : info.kind == OptionKind::kBool ? "boolean (use 1/0, on/off, true/false, yes/no)"
              : info.kind == OptionKind::kPath ? "file name prefix (1 to 255 bytes)"
                                               : "boolean or absolute path (1/0, on/off, ..., or /file)");
      }
      if (info.kind == OptionKind::kSize) t.str(" in range ").dec(info.min).str("..").dec(info.max);
      t.str("; using the default ").dec(info.default_value);
      if (warn_fn != nullptr) warn_fn(t.data());
    } else if (info.kind == OptionKind::kBoolOrPath && *field == kOptionPath) {
      size_t k = 0;
      for (; text[k] != '\0' && k + 1 < kOptionPathMax; ++k) o.path_of[k] = text[k];
      o.path_of[k] = '\0';
    } else if (info.kind == OptionKind::kPath) {
      size_t k = 0;
      for (; text[k] != '\0' && k + 1 < kOptionPathMax; ++k) o.prefix_of[k] = text[k];
      o.prefix_of[k] = '\0';
    }
  }
  return o;
}

size_t warn_unknown_names(const char* const* env, WarnFn warn_fn) noexcept {
  static constexpr char kPrefix[] = "CACHEALLOC_";
  size_t found = 0;
  for (; env != nullptr && *env != nullptr; ++env) {
    const char* e = *env;
    size_t k = 0;
    while (kPrefix[k] != '\0' && e[k] == kPrefix[k]) ++k;
    if (kPrefix[k] != '\0') continue;
    size_t len = 0;
    while (e[len] != '\0' && e[len] != '=') ++len;
    auto same = [&](const char* name) {
      size_t i = 0;
      while (i < len && name[i] == e[i]) ++i;
      return i == len && name[i] == '\0';
    };
    bool known = false;
    for (const OptionInfo& info : kTable) known = known || same(info.env);
    for (const char* other : kOtherEnvNames) known = known || same(other);
    if (known) continue;
    ++found;
    StackText<200> t;
    t.str("unknown setting ");
    for (size_t i = 0; e[i] != '\0' && i < 120; ++i) t.chr(e[i]);  // NAME=value
    t.str(" ignored (docs/configuration.md lists the CACHEALLOC_* variables)");
    if (warn_fn != nullptr) warn_fn(t.data());
  }
  return found;
}

const Options& options() noexcept { return g_options; }
Options& mutable_options() noexcept { return g_options; }

void options_init() noexcept {
  g_loaded_with_env = os::get_env("PATH") != nullptr || os::get_env("HOME") != nullptr;
  g_options = load_options(&os::get_env, &library_warn);
  // Once, with the real environment (options_reload does not come back here after that).
  if (g_loaded_with_env) warn_unknown_names(os::environment(), &library_warn);
  if (g_options.verbose != 0) {
    StackText<512> t;
    t.str("cachealloc: ");
    size_t n = 0;
    const OptionInfo* table = option_table(&n);
    const uint64_t* values = &g_options.cache_bytes;
    for (size_t i = 0; i < n; ++i) t.str(table[i].env).chr('=').dec(values[i]).chr(' ');
    t.chr('\n');
    os::write_stderr(t.data(), t.size());
  }
}

void options_reload() noexcept {
  if (g_loaded_with_env) return;  // the first read already saw the environment (and warned)
  options_init();
}

}  // namespace cachealloc
