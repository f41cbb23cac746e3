// fake_cuda_device.h - an in-process CUDA device for the lib/cuda unit tests (suite cuda_unit).
//
// Driver and runtime tables (cuda_api::Driver / Runtime) whose functions act on one FakeDevice:
// host memory stands in for device memory (a capacity, failures on demand); contexts are distinct
// handles with a current one per thread; streams queue "kernels" (fills) that run only when the
// test completes them, or the context is synchronised; events remember the stream positions they
// wait for (cuCtxRecordEvent: every stream of the context); captures are per-stream flags, and
// any fence work (event query, synchronisation, a record on a capturing stream, a context event)
// while a global-mode capture runs is counted as a violation and fails, as the real driver
// invalidates the capture. The functions are plain function pointers, so the device is a
// process-wide singleton: FakeDevice::instance(), reset() between tests.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "platform/cuda_api.h"

namespace cachealloc::test {

namespace ca = cachealloc::cuda_api;

class FakeDevice {
 public:
  struct Op {
    uint64_t seq;
    void* dst;
    int value;
    size_t n;
  };
  struct StreamRec {
    ca::Context ctx = nullptr;
    unsigned flags = 0;
    bool capturing = false;
    int mode = 0;
    std::deque<Op> ops;
    uint64_t enqueued = 0;
    uint64_t done = 0;
  };
  struct EventRec {
    std::vector<std::pair<StreamRec*, uint64_t>> waits;
  };
  struct Counters {
    uint64_t device_allocs = 0, device_frees = 0, host_allocs = 0, host_frees = 0;
    uint64_t failed_allocs = 0, syncs = 0, ctx_events = 0, event_queries = 0;
    uint64_t violations = 0;  // fence work during a global capture
    uint64_t mem_infos = 0;   // cuMemGetInfo calls
  };

  static FakeDevice& instance() {
    static FakeDevice d;
    return d;
  }

  // ---- Test controls --------------------------------------------------------------------------
  void reset(bool ctx_events = true) {
    std::lock_guard<std::recursive_mutex> l(mu);
    for (auto& [p, n] : device) std::free(reinterpret_cast<void*>(p));
    for (auto& [p, n] : host) std::free(reinterpret_cast<void*>(p));
    device.clear();
    host.clear();
    for (StreamRec* s : streams) delete s;
    streams.clear();
    for (EventRec* e : events) delete e;  // the events a dropped cache never destroyed
    events.clear();
    legacy.clear();
    used = 0;
    capacity = size_t{1} << 30;
    fail_next = 0;
    c = Counters{};
    has_ctx_events = ctx_events;
    last_error = 0;
    fail_push = false;
    ctx_device.clear();
    owner.clear();
    t_rt_device = -1;
  }
  // A new context, made current on this thread.
  ca::Context new_context() {
    std::lock_guard<std::recursive_mutex> l(mu);
    auto ctx = reinterpret_cast<ca::Context>(++next_ctx);
    t_current = ctx;
    return ctx;
  }
  void set_current(ca::Context ctx) { t_current = ctx; }
  ca::Stream new_stream(unsigned flags) {
    std::lock_guard<std::recursive_mutex> l(mu);
    auto* s = new StreamRec;
    s->ctx = t_current;
    s->flags = flags;
    streams.insert(s);
    return reinterpret_cast<ca::Stream>(s);
  }
  // Queues a kernel that fills n bytes at dst with value when the stream runs.
  void launch(ca::Stream s, void* dst, int value, size_t n) {
    std::lock_guard<std::recursive_mutex> l(mu);
    StreamRec* r = rec(s);
    r->ops.push_back({++r->enqueued, dst, value, n});
  }
  void complete(ca::Stream s) {
    std::lock_guard<std::recursive_mutex> l(mu);
    run(rec(s));
  }
  void complete_all() {
    std::lock_guard<std::recursive_mutex> l(mu);
    for (auto& [ctx, s] : legacy) run(&s);
    for (StreamRec* s : streams) run(s);
  }
  void begin_capture(ca::Stream s, int mode) {
    std::lock_guard<std::recursive_mutex> l(mu);
    rec(s)->capturing = true;
    rec(s)->mode = mode;
  }
  void end_capture(ca::Stream s) {
    std::lock_guard<std::recursive_mutex> l(mu);
    rec(s)->capturing = false;
  }
  bool owns_device(uint64_t p) {
    std::lock_guard<std::recursive_mutex> l(mu);
    return device.count(p) != 0;
  }
  // The device of a context (0 unless the context is another device's primary).
  int device_of(ca::Context ctx) {
    std::lock_guard<std::recursive_mutex> l(mu);
    auto it = ctx_device.find(ctx);
    return it == ctx_device.end() ? 0 : it->second;
  }
  // The primary context of a device (0x1000 for device 0, as the runtime's).
  ca::Context primary(int dev) {
    std::lock_guard<std::recursive_mutex> l(mu);
    auto ctx = reinterpret_cast<ca::Context>(dev == 0 ? 0x1000 : 0x100000 + dev);
    ctx_device[ctx] = dev;
    return ctx;
  }
  // The device whose context was current when the memory at p was allocated.
  int device_of_ptr(const void* p) {
    std::lock_guard<std::recursive_mutex> l(mu);
    auto it = owner.find(reinterpret_cast<uint64_t>(p));
    return it == owner.end() ? -1 : device_of(it->second);
  }

  // ---- The tables -----------------------------------------------------------------------------
  static const ca::Driver* driver_table() noexcept {
    static const ca::Driver d = make_driver();
    return &d;
  }
  // A driver before CUDA 12.5: no cuCtxRecordEvent at all (reset(false) also makes the table
  // above answer CUDA_ERROR_NOT_SUPPORTED, as a newer driver on a context without it would).
  static const ca::Driver* driver_table_before_12_5() noexcept {
    static const ca::Driver d = [] {
      ca::Driver t = make_driver();
      t.ctx_record_event = nullptr;
      return t;
    }();
    return &d;
  }
  static const ca::Runtime* runtime_table() noexcept {
    static const ca::Runtime r = make_runtime();
    return &r;
  }
  static const ca::Runtime* runtime_for(const void*, uint8_t* index) noexcept {
    *index = 0;
    return runtime_table();
  }
  static const ca::Runtime* runtime_at(uint8_t) noexcept { return runtime_table(); }

  std::recursive_mutex mu;
  std::map<uint64_t, size_t> device, host;
  std::set<StreamRec*> streams;
  std::set<EventRec*> events;
  std::map<ca::Context, StreamRec> legacy;  // each context's legacy default stream
  size_t used = 0;
  size_t capacity = size_t{1} << 30;
  int fail_next = 0;
  bool has_ctx_events = true;
  bool fail_push = false;  // cuCtxPushCurrent fails (a context being torn down)
  Counters c;
  int last_error = 0;  // the runtime's
  uintptr_t next_ctx = 0x1000;
  std::map<ca::Context, int> ctx_device;
  std::map<uint64_t, ca::Context> owner;  // device memory -> the context it was allocated in
  static inline thread_local ca::Context t_current = nullptr;
  // The runtime's current device (cudaSetDevice), -1 while unset. As in runtimes before CUDA 12.0,
  // setting it does not make the device's primary context current: the next runtime call that
  // needs a context does (bind_runtime).
  static inline thread_local int t_rt_device = -1;
  static inline thread_local std::vector<ca::Context> t_stack;

 private:
  StreamRec* rec(ca::Stream s) {
    auto v = reinterpret_cast<uintptr_t>(s);
    if (v == 0 || v == 1 || v == 2) return &legacy[t_current];
    return reinterpret_cast<StreamRec*>(s);
  }
  static void run(StreamRec* s) {
    while (!s->ops.empty()) {
      Op op = s->ops.front();
      s->ops.pop_front();
      std::memset(op.dst, op.value, op.n);
    }
    s->done = s->enqueued;
  }
  // Fence work during a global capture: counted, and it fails (the capture is invalidated).
  bool violates() {
    for (StreamRec* s : streams) {
      if (s->capturing && s->mode == 0) {
        ++c.violations;
        return true;
      }
    }
    return false;
  }
  ca::CuResult alloc(uint64_t* out, size_t n, bool dev) {
    std::lock_guard<std::recursive_mutex> l(mu);
    if (t_current == nullptr) return 201;  // CUDA_ERROR_INVALID_CONTEXT
    if (n == 0) return ca::kCuInvalidValue;
    if (fail_next > 0 || (dev && used + n > capacity)) {
      if (fail_next > 0) --fail_next;
      ++c.failed_allocs;
      return ca::kCuOutOfMemory;
    }
    void* p = std::malloc(n);
    if (p == nullptr) return ca::kCuOutOfMemory;
    *out = reinterpret_cast<uint64_t>(p);
    if (dev) {
      device[*out] = n;
      owner[*out] = t_current;
      used += n;
      ++c.device_allocs;
    } else {
      host[*out] = n;
      ++c.host_allocs;
    }
    return ca::kCuSuccess;
  }
  ca::CuResult release(uint64_t p, bool dev) {
    std::lock_guard<std::recursive_mutex> l(mu);
    auto& m = dev ? device : host;
    auto it = m.find(p);
    if (it == m.end()) return ca::kCuInvalidValue;
    if (dev) used -= it->second;
    m.erase(it);
    std::free(reinterpret_cast<void*>(p));
    ++(dev ? c.device_frees : c.host_frees);
    return ca::kCuSuccess;
  }

  static ca::Driver make_driver() {
    ca::Driver d{};
    d.mem_alloc = [](ca::DevicePtr* p, size_t n) noexcept {
      uint64_t a = 0;
      ca::CuResult r = instance().alloc(&a, n, true);
      if (r == ca::kCuSuccess) *p = a;
      return r;
    };
    d.mem_free = [](ca::DevicePtr p) noexcept { return instance().release(p, true); };
    d.mem_alloc_host = [](void** p, size_t n) noexcept {
      uint64_t a = 0;
      ca::CuResult r = instance().alloc(&a, n, false);
      if (r == ca::kCuSuccess) *p = reinterpret_cast<void*>(a);
      return r;
    };
    d.mem_host_alloc = [](void** p, size_t n, unsigned) noexcept {
      uint64_t a = 0;
      ca::CuResult r = instance().alloc(&a, n, false);
      if (r == ca::kCuSuccess) *p = reinterpret_cast<void*>(a);
      return r;
    };
    d.mem_free_host = [](void* p) noexcept {
      return instance().release(reinterpret_cast<uint64_t>(p), false);
    };
    d.mem_get_info = [](size_t* f, size_t* t) noexcept {
      FakeDevice& x = instance();
      std::lock_guard<std::recursive_mutex> l(x.mu);
      ++x.c.mem_infos;
      *f = x.capacity - x.used;
      *t = x.capacity;
      return ca::kCuSuccess;
    };
    d.ctx_get_current = [](ca::Context* ctx) noexcept {
      *ctx = t_current;
      return ca::kCuSuccess;
    };
    d.ctx_push_current = [](ca::Context ctx) noexcept {
      if (instance().fail_push) return 201;
      t_stack.push_back(t_current);
      t_current = ctx;
      return ca::kCuSuccess;
    };
    d.ctx_pop_current = [](ca::Context* ctx) noexcept {
      if (t_stack.empty()) return 201;
      if (ctx != nullptr) *ctx = t_current;
      t_current = t_stack.back();
      t_stack.pop_back();
      return ca::kCuSuccess;
    };
    d.ctx_get_device = [](ca::Device* dev) noexcept {
      if (t_current == nullptr) return 201;
      *dev = instance().device_of(t_current);
      return ca::kCuSuccess;
    };
    d.ctx_synchronize = [](void) noexcept -> ca::CuResult {
      FakeDevice& x = instance();
      std::lock_guard<std::recursive_mutex> l(x.mu);
      if (x.violates()) return 900;
      ++x.c.syncs;
      run(&x.legacy[t_current]);
      for (StreamRec* s : x.streams) {
        if (s->ctx == t_current) run(s);
      }
      return ca::kCuSuccess;
    };
    d.device_total_mem = [](size_t* bytes, ca::Device) noexcept {
      *bytes = instance().capacity;
      return ca::kCuSuccess;
    };
    d.event_create = [](ca::Event* ev, unsigned) noexcept {
      FakeDevice& x = instance();
      std::lock_guard<std::recursive_mutex> l(x.mu);
      auto* e = new EventRec;
      x.events.insert(e);
      *ev = reinterpret_cast<ca::Event>(e);
      return ca::kCuSuccess;
    };
    d.event_query = [](ca::Event ev) noexcept -> ca::CuResult {
      FakeDevice& x = instance();
      std::lock_guard<std::recursive_mutex> l(x.mu);
      if (x.violates()) return 900;
      ++x.c.event_queries;
      for (auto& [s, seq] : reinterpret_cast<EventRec*>(ev)->waits) {
        if (s->done < seq) return ca::kCuNotReady;
      }
      return ca::kCuSuccess;
    };
    d.event_destroy = [](ca::Event ev) noexcept {
      FakeDevice& x = instance();
      std::lock_guard<std::recursive_mutex> l(x.mu);
      x.events.erase(reinterpret_cast<EventRec*>(ev));
      delete reinterpret_cast<EventRec*>(ev);
      return ca::kCuSuccess;
    };
    d.primary_ctx_retain = [](ca::Context* ctx, ca::Device) noexcept {
      *ctx = reinterpret_cast<ca::Context>(0x1000);
      return ca::kCuSuccess;
    };
    d.primary_ctx_release = [](ca::Device) noexcept { return ca::kCuSuccess; };
    d.primary_ctx_get_state = [](ca::Device, unsigned* flags, int* active) noexcept {
      *flags = 0;
      *active = 1;
      return ca::kCuSuccess;
    };
    d.ctx_record_event = [](ca::Context ctx, ca::Event ev) noexcept -> ca::CuResult {
      FakeDevice& x = instance();
      std::lock_guard<std::recursive_mutex> l(x.mu);
      if (!x.has_ctx_events) return 801;  // CUDA_ERROR_NOT_SUPPORTED
      if (x.violates()) return 900;
      ++x.c.ctx_events;
      auto* e = reinterpret_cast<EventRec*>(ev);
      e->waits.clear();
      StreamRec* lg = &x.legacy[ctx];
      e->waits.push_back({lg, lg->enqueued});
      for (StreamRec* s : x.streams) {
        if (s->ctx == ctx) e->waits.push_back({s, s->enqueued});
      }
      return ca::kCuSuccess;
    };
    // Asynchronous, as cuMemsetD8 on device memory is: queued on the legacy stream.
    d.memset_d8 = [](ca::DevicePtr p, unsigned char v, size_t n) noexcept {
      instance().launch(nullptr, reinterpret_cast<void*>(p), v, n);
      return ca::kCuSuccess;
    };
    return d;
  }

  // A runtime call that needs a context: the primary context of the runtime's device becomes
  // current when no context is, or when cudaSetDevice chose another device.
  static void bind_runtime() {
    FakeDevice& x = instance();
    if (t_rt_device >= 0) {
      if (t_current == nullptr || x.device_of(t_current) != t_rt_device) {
        t_current = x.primary(t_rt_device);
      }
    } else if (t_current == nullptr) {
      t_current = reinterpret_cast<ca::Context>(0x1000);  // device 0's primary
    }
  }

  static ca::Runtime make_runtime() {
    ca::Runtime r{};
    r.malloc = [](void** p, size_t n) noexcept -> ca::RtError {
      FakeDevice& x = instance();
      bind_runtime();
      uint64_t a = 0;
      ca::CuResult e = x.alloc(&a, n, true);
      if (e != ca::kCuSuccess) return x.last_error = ca::kRtMemoryAllocation;
      *p = reinterpret_cast<void*>(a);
      return ca::kRtSuccess;
    };
    r.free = [](void* p) noexcept -> ca::RtError {
      FakeDevice& x = instance();
      bind_runtime();
      if (p == nullptr) return ca::kRtSuccess;
      if (x.release(reinterpret_cast<uint64_t>(p), true) != ca::kCuSuccess) {
        return x.last_error = ca::kRtInvalidValue;
      }
      return ca::kRtSuccess;
    };
    r.malloc_host = [](void** p, size_t n) noexcept -> ca::RtError {
      return driver_table()->mem_alloc_host(p, n) == ca::kCuSuccess ? ca::kRtSuccess
                                                                     : ca::kRtMemoryAllocation;
    };
    r.host_alloc = [](void** p, size_t n, unsigned) noexcept -> ca::RtError {
      return driver_table()->mem_alloc_host(p, n) == ca::kCuSuccess ? ca::kRtSuccess
                                                                     : ca::kRtMemoryAllocation;
    };
    r.free_host = [](void* p) noexcept -> ca::RtError {
      return driver_table()->mem_free_host(p) == ca::kCuSuccess ? ca::kRtSuccess
                                                                : ca::kRtInvalidValue;
    };
    r.mem_get_info = [](size_t* f, size_t* t) noexcept -> ca::RtError {
      driver_table()->mem_get_info(f, t);
      return ca::kRtSuccess;
    };
    r.device_reset = [](void) noexcept -> ca::RtError { return ca::kRtSuccess; };
    r.get_device = [](int* dev) noexcept -> ca::RtError {
      *dev = t_rt_device >= 0 ? t_rt_device
             : t_current != nullptr ? instance().device_of(t_current) : 0;
      return ca::kRtSuccess;
    };
    r.get_last_error = [](void) noexcept -> ca::RtError {
      int e = instance().last_error;
      instance().last_error = 0;
      return e;
    };
    r.peek_at_last_error = [](void) noexcept -> ca::RtError { return instance().last_error; };
    r.device_synchronize = [](void) noexcept -> ca::RtError {
      return driver_table()->ctx_synchronize() == ca::kCuSuccess ? ca::kRtSuccess : 900;
    };
    return r;
  }
};

}  // namespace cachealloc::test
