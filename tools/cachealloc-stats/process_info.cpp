// process_info.cpp - see process_info.h.
#include "process_info.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "cachealloc/stats_abi.h"

namespace castats {

bool parse_pid(const std::string& s, uint32_t* pid) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v == 0 || v > 0x7fffffff) return false;
  *pid = static_cast<uint32_t>(v);
  return true;
}

ProcessInfo probe_process(uint32_t pid) {
  ProcessInfo info;
  info.exists = kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
  if (!info.exists) return info;
  std::string proc = "/proc/" + std::to_string(pid);
  struct stat st;
  if (stat(proc.c_str(), &st) == 0) {
    info.uid_known = true;
    info.uid = st.st_uid;
  }
  std::ifstream f(proc + "/stat");
  std::string line;
  if (std::getline(f, line)) {
    size_t close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 1));
      std::string field;
      for (int n = 3; rest >> field; ++n) {
        if (n == 22) {
          info.start_ticks = std::strtoull(field.c_str(), nullptr, 10);
          break;
        }
      }
    }
  }
  return info;
}

uint64_t own_pid_namespace() {
  char buf[64];
  ssize_t n = readlink("/proc/self/ns/pid", buf, sizeof buf - 1);
  if (n <= 0) return 0;
  std::string s(buf, static_cast<size_t>(n));
  size_t open = s.find('['), close = s.find(']');
  if (open == std::string::npos || close == std::string::npos || close <= open + 1) return 0;
  uint64_t v = 0;
  for (size_t i = open + 1; i < close; ++i) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
  }
  return v;
}

std::vector<uint32_t> list_segment_pids(const std::string& dir) {
  std::vector<uint32_t> pids;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return pids;
  const std::string prefix = CA_STATS_NAME_PREFIX;
  std::string ns_suffix(1, '.');
  ns_suffix.append(std::to_string(own_pid_namespace()));
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    std::string rest = name.substr(prefix.size());
    if (rest.size() > ns_suffix.size() &&
        rest.compare(rest.size() - ns_suffix.size(), ns_suffix.size(), ns_suffix) == 0) {
      rest.resize(rest.size() - ns_suffix.size());
    }
    uint32_t pid = 0;
    if (parse_pid(rest, &pid)) pids.push_back(pid);
  }
  closedir(d);
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  return pids;
}

std::string segment_path(const std::string& dir, uint32_t pid) {
  std::string d = dir;
  if (d.empty() || d.back() != '/') d.push_back('/');
  std::string legacy = d + CA_STATS_NAME_PREFIX + std::to_string(pid);
  uint64_t ns = own_pid_namespace();
  if (ns != 0) {
    std::string named = legacy;
    named.push_back('.');
    named.append(std::to_string(ns));
    struct stat st;
    if (lstat(named.c_str(), &st) == 0 || lstat(legacy.c_str(), &st) != 0) return named;
  }
  return legacy;
}

}  // namespace castats
