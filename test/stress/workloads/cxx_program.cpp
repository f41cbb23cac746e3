// A C++ program for the real-programs stress test: compiled by g++ (under the preload), then run.
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <regex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

template <class T>
struct Tree {
  std::unique_ptr<Tree> left, right;
  T value;
  explicit Tree(T v) : value(v) {}
  void insert(T v) {
    auto& side = v < value ? left : right;
    if (side) side->insert(v); else side = std::make_unique<Tree>(v);
  }
  T sum() const { return value + (left ? left->sum() : T{}) + (right ? right->sum() : T{}); }
};

int main() {
  std::map<std::string, int> counts;
  std::unordered_map<int, std::vector<std::string>> by_len;
  std::ostringstream text;
  for (int i = 0; i < 20000; ++i) text << "w" << (i * 7919) % 1000 << (i % 3 ? " " : "\n");
  std::istringstream in(text.str());
  std::string w;
  while (in >> w) {
    ++counts[w];
    by_len[static_cast<int>(w.size())].push_back(w);
  }
  Tree<long> t(500000);
  for (long i = 0; i < 100000; ++i) t.insert((i * 104729) % 1000003);
  std::vector<int> v(200000);
  std::iota(v.begin(), v.end(), 0);
  std::sort(v.begin(), v.end(), [](int a, int b) { return (a * 31) % 1009 < (b * 31) % 1009 || ((a * 31) % 1009 == (b * 31) % 1009 && a < b); });
  std::regex re("w(1[0-9])+");
  int matches = 0;
  for (auto& [k, c] : counts) matches += std::regex_match(k, re);
  std::cout << counts.size() << " " << by_len.size() << " " << t.sum() << " " << v[12345] << " "
            << matches << "\n";
}
