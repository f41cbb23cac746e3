// profile_table.cpp - see profile_table.h.
#include "prof/profile_table.h"

#include "platform/os.h"
#include "prof/sampler.h"

namespace cachealloc::prof {
namespace {
uint64_t mix(uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

void* map_zeroed(size_t bytes) noexcept {
  size_t page = os::page_size();
  bytes = (bytes + page - 1) & ~(page - 1);
  return os::map_aligned(bytes, page);
}
}  // namespace

bool ProfileTable::init(size_t max_sites, size_t max_blocks, uint64_t rate) noexcept {
  LockGuard g(lock_);
  rate_ = rate;
  if (blocks_ != nullptr) return true;
  auto* sites = static_cast<Site*>(map_zeroed(max_sites * sizeof(Site)));
  auto* index = static_cast<uint32_t*>(map_zeroed(2 * max_sites * sizeof(uint32_t)));
  auto* blocks = static_cast<LiveBlock*>(map_zeroed(max_blocks * sizeof(LiveBlock)));
  if (sites == nullptr || index == nullptr || blocks == nullptr) return false;
  sites_ = sites;
  site_index_ = index;
  max_sites_ = max_sites;
  block_mask_ = max_blocks - 1;
  blocks_ = blocks;
  return true;
}

uint32_t ProfileTable::find_or_add_site(const uintptr_t* pcs, int depth) noexcept {
  uint64_t h = mix(static_cast<uint64_t>(depth));
  for (int i = 0; i < depth; ++i) h = mix(h ^ pcs[i]);
  const size_t mask = 2 * max_sites_ - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    uint32_t k = site_index_[i];
    if (k == 0) break;
    Site& s = sites_[k - 1];
    if (s.hash != h || s.depth != static_cast<uint32_t>(depth)) continue;
    bool same = true;
    for (int f = 0; f < depth && same; ++f) same = s.pcs[f] == pcs[f];
    if (same) return k - 1;
  }
  if (site_count_ == max_sites_) return UINT32_MAX;
  uint32_t n = static_cast<uint32_t>(site_count_++);
  Site& s = sites_[n];
  s.hash = h;
  s.depth = static_cast<uint32_t>(depth);
  for (int f = 0; f < depth; ++f) s.pcs[f] = pcs[f];
  size_t i = h & mask;
  while (site_index_[i] != 0) i = (i + 1) & mask;
  site_index_[i] = n + 1;
  return n;
}

size_t ProfileTable::slot_of(uintptr_t addr) const noexcept { return mix(addr) & block_mask_; }

void ProfileTable::insert(uintptr_t addr, uint64_t size, const uintptr_t* pcs, int depth) noexcept {
  const double w = sample_weight(size, rate_);
  LockGuard g(lock_);
  if (blocks_ == nullptr) return;
  // At most 3/4 full, so that every probe sequence ends at an empty slot.
  if (block_count_ >= (block_mask_ + 1) / 4 * 3) {
    ++dropped_;
    return;
  }
  uint32_t site = find_or_add_site(pcs, depth);
  if (site == UINT32_MAX) {
    ++dropped_;
    return;
  }
  size_t i = slot_of(addr);
  while (blocks_[i].addr != 0 && blocks_[i].addr != addr) i = (i + 1) & block_mask_;
  if (blocks_[i].addr == addr) {
    // Recorded twice (the runtime's cudaMalloc through the driver's cuMemAlloc): the last wins.
    Site& old = sites_[blocks_[i].site];
    double ow = sample_weight(blocks_[i].size, rate_);
    old.live_count -= 1;
    old.live_bytes -= blocks_[i].size;
    old.est_count -= ow;
    old.est_bytes -= ow * static_cast<double>(blocks_[i].size);
  } else {
    __atomic_store_n(&block_count_, block_count_ + 1, __ATOMIC_RELAXED);
  }
  blocks_[i] = LiveBlock{addr, size, site, 0};
  Site& s = sites_[site];
  s.live_count += 1;
  s.live_bytes += size;
  s.total_count += 1;
  s.total_bytes += size;
  s.est_count += w;
  s.est_bytes += w * static_cast<double>(size);
}

bool ProfileTable::contains(uintptr_t addr) noexcept {
  LockGuard g(lock_);
  if (blocks_ == nullptr || block_count_ == 0) return false;
  for (size_t i = slot_of(addr); blocks_[i].addr != 0; i = (i + 1) & block_mask_) {
    if (blocks_[i].addr == addr) return true;
  }
  return false;
}

bool ProfileTable::erase(uintptr_t addr) noexcept {
  LockGuard g(lock_);
  if (blocks_ == nullptr || block_count_ == 0) return false;
  size_t i = slot_of(addr);
  while (blocks_[i].addr != addr) {
    if (blocks_[i].addr == 0) return false;
    i = (i + 1) & block_mask_;
  }
  const LiveBlock b = blocks_[i];
  Site& s = sites_[b.site];
  s.live_count -= 1;
  s.live_bytes -= b.size;
  if (s.live_count == 0) {
    s.est_count = 0;  // no rounding left over
    s.est_bytes = 0;
  } else {
    double w = sample_weight(b.size, rate_);
    s.est_count -= w;
    s.est_bytes -= w * static_cast<double>(b.size);
  }
  // Backward-shift deletion: move later entries of the probe run into the hole.
  size_t hole = i;
  for (size_t j = (i + 1) & block_mask_; blocks_[j].addr != 0; j = (j + 1) & block_mask_) {
    size_t home = slot_of(blocks_[j].addr);
    // j's entry may move to the hole when its home is not cyclically in (hole, j].
    bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    blocks_[hole] = blocks_[j];
    hole = j;
  }
  blocks_[hole] = LiveBlock{};
  __atomic_store_n(&block_count_, block_count_ - 1, __ATOMIC_RELAXED);
  return true;
}

}  // namespace cachealloc::prof
