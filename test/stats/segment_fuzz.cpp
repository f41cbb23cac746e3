// segment_fuzz.cpp - see segment_fuzz.h.
#include "segment_fuzz.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cachealloc/stats_abi.h"
#include "segment_reader.h"

namespace {

[[noreturn]] void broken(const char* what) {
  fprintf(stderr, "segment reader broke a promise: %s\n", what);
  abort();
}

}  // namespace

std::vector<unsigned char> make_seed_segment(uint32_t pid, uint32_t layouts) {
  std::vector<unsigned char> buf(CA_STATS_SEGMENT_SIZE, 0);
  ca_stats_header h{};
  h.magic = CA_STATS_MAGIC;
  h.version = CA_STATS_VERSION;
  h.header_size = sizeof h;
  h.total_size = CA_STATS_SEGMENT_SIZE;
  h.pid = pid;
  h.start_time_ns = 1;
  h.publish_time_ns = 2;
  h.publish_count = 1;
  memcpy(h.exe, "seed", 5);
  memcpy(h.library_version, "0.1.0", 6);
  h.totals_offset = sizeof h;
  h.totals_size = sizeof(ca_stats_totals);
  h.pools_offset = h.totals_offset + h.totals_size;
  h.pool_row_size = sizeof(ca_stats_pool_row);
  h.pool_capacity = CA_STATS_POOL_CAPACITY;
  h.pool_count = 2;
  h.layouts_offset = h.pools_offset + h.pool_row_size * h.pool_capacity;
  h.layout_row_size = sizeof(ca_stats_layout_row);
  h.layout_capacity = CA_STATS_LAYOUT_CAPACITY;
  h.layout_count = layouts;
  h.devices_offset = h.layouts_offset + h.layout_row_size * h.layout_capacity;
  h.device_row_size = sizeof(ca_stats_device_row);
  h.device_capacity = CA_STATS_DEVICE_CAPACITY;
  h.device_count = 1;
  memcpy(buf.data(), &h, sizeof h);
  ca_stats_totals t{};
  t.allocs = 10;
  t.frees = 4;
  t.blocks_live = 6;
  memcpy(buf.data() + h.totals_offset, &t, sizeof t);
  for (uint32_t i = 0; i < 2; ++i) {
    ca_stats_pool_row p{};
    p.id = i;
    memcpy(p.name, i == 0 ? "small" : "large", 6);
    p.allocs = 5;
    memcpy(buf.data() + h.pools_offset + i * h.pool_row_size, &p, sizeof p);
  }
  for (uint32_t i = 0; i < layouts; ++i) {
    ca_stats_layout_row r{};
    r.size_class = i;
    r.block_size = 16 * (i + 1);
    r.blocks_live = i;
    memcpy(buf.data() + h.layouts_offset + i * h.layout_row_size, &r, sizeof r);
  }
  return buf;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  castats::Segment seg;
  castats::ParseError err;
  // The reader gets its own copy in real use too; a vector lets ASan see every overread.
  std::vector<unsigned char> copy(data, data + size);
  bool ok = castats::parse_segment(copy.data(), copy.size(), &seg, &err);
  if (ok) {
    const ca_stats_header& h = seg.header;
    if (h.magic != CA_STATS_MAGIC || h.version != CA_STATS_VERSION) broken("accepted a bad magic/version");
    if (h.total_size != size) broken("accepted a size mismatch");
    if (seg.pools.size() != h.pool_count || h.pool_count > h.pool_capacity) broken("pool count");
    if (seg.layouts.size() != h.layout_count || h.layout_count > h.layout_capacity) broken("layout count");
    if (seg.devices.size() != h.device_count || h.device_count > h.device_capacity) broken("device count");
    for (char c : seg.exe) {
      if (c < 0x20 || c >= 0x7f) broken("unprintable program name");
    }
  } else if (err.status == castats::Status::kOk || err.message.empty()) {
    broken("rejected without a status and a message");
  }
  return 0;
}
