// stub_driver.cpp - a stand-in libcuda.so.1 for tests without a GPU.
//
// Host memory stands in for device memory. Streams hold queued "kernels" (fills) that run only
// when a test completes the stream, the stream or context is synchronised, or memory is freed
// (cuMemFree synchronises, as the real one does). cuStreamDestroy returns at once, as the real one
// does, and the stream's queued work still runs later (context synchronisation, a real free, a
// test's complete): until then events on it, and context-wide events, wait for it. Events
// remember the stream positions they wait for; an event on the legacy stream also waits for every
// blocking stream (implicit sync).
// Graph capture is modelled as a per-stream flag: in global mode, unsafe calls (allocation, free,
// event query/synchronise, synchronisation) fail with CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED and
// invalidate the capture; recording an event on a capturing stream is also counted as a
// violation, since cachealloc must never do it. Built with -Bsymbolic so cuGetProcAddress returns
// this library's own functions even when libcachealloc.so exports the same names.
#include <cstdlib>
#include <unistd.h>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "stub_cuda.h"

#define STUB_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

struct Op {
  uint64_t seq;
  void* dst;
  int value;
  size_t n;
};
struct StreamRec {
  unsigned flags = 0;
  bool capturing = false;
  int mode = 0;
  bool invalidated = false;
  std::deque<Op> ops;
  uint64_t enqueued = 0;  // seq of the last queued op
  uint64_t done = 0;      // seq of the last op run
};
struct EventRec {
  std::vector<std::pair<StreamRec*, uint64_t>> waits;
};

std::recursive_mutex g_mu;
StreamRec g_legacy;
StreamRec g_per_thread;  // one shared stand-in for CU_STREAM_PER_THREAD
std::set<StreamRec*> g_streams;
std::set<StreamRec*> g_destroyed;  // destroyed with work still queued; freed once it has run
std::map<uintptr_t, size_t> g_device, g_host;
std::set<uintptr_t> g_ipc;
size_t g_capacity = size_t{1} << 30;
int g_fail_allocs = 0;
bool g_initialized = false;
stubcu_counters g_c{};
char g_ctx_object;
CUcontext const kCtx = reinterpret_cast<CUcontext>(&g_ctx_object);
thread_local CUcontext t_current = nullptr;
thread_local std::vector<CUcontext> t_stack;

StreamRec* stream_of(CUstream s) {
  uintptr_t v = reinterpret_cast<uintptr_t>(s);
  if (v == 0 || v == 1) return &g_legacy;
  if (v == 2) return &g_per_thread;
  return reinterpret_cast<StreamRec*>(s);
}

void run(StreamRec* s) {
  while (!s->ops.empty()) {
    Op op = s->ops.front();
    s->ops.pop_front();
    std::memset(op.dst, op.value, op.n);
    s->done = op.seq;
  }
  s->done = s->enqueued;
}

// Runs a destroyed stream's work and lets it go.
void run_destroyed() {
  for (StreamRec* s : g_destroyed) {
    run(s);
    delete s;
  }
  g_destroyed.clear();
}

void run_all() {
  run(&g_legacy);
  run(&g_per_thread);
  for (StreamRec* s : g_streams) run(s);
  run_destroyed();
}

// Whether an event's wait on s still counts: s is live, or destroyed with work left to run.
bool waits_on(StreamRec* s) {
  return s == &g_legacy || s == &g_per_thread || g_streams.count(s) != 0 ||
         g_destroyed.count(s) != 0;
}

// In global capture mode an unsafe call fails and invalidates the capture.
bool unsafe_during_capture() {
  bool any = false;
  for (StreamRec* s : g_streams) {
    if (s->capturing && s->mode == cudaStreamCaptureModeGlobal) {
      s->invalidated = true;
      any = true;
    }
  }
  if (any) ++g_c.capture_violations;
  return any;
}

// STUBCU_SLOW_EVENTS=1: event and fence calls take 200 us before they look at the captures, as a
// real driver call takes time (widens the window a capture can begin in).
void maybe_slow() {
  static const bool slow = std::getenv("STUBCU_SLOW_EVENTS") != nullptr;
  if (slow) usleep(200);
}

size_t env_capacity() {
  const char* v = std::getenv("STUBCU_CAPACITY");
  return v != nullptr ? std::strtoull(v, nullptr, 0) : g_capacity;
}

}  // namespace

STUB_EXPORT CUresult cuInit(unsigned) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  if (!g_initialized) g_capacity = env_capacity();
  g_initialized = true;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuDriverGetVersion(int* v) {
  *v = 12080;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuDeviceGetCount(int* n) {
  *n = 1;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuDeviceGet(int* d, int ordinal) {
  if (ordinal != 0) return CUDA_ERROR_INVALID_VALUE;
  *d = 0;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, int) {
  *bytes = g_capacity;
  return CUDA_SUCCESS;
}
int g_primary_refs = 0;
STUB_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, int dev) {
  if (dev != 0) return CUDA_ERROR_INVALID_VALUE;
  *ctx = kCtx;
  ++g_primary_refs;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuDevicePrimaryCtxGetState(int dev, unsigned* flags, int* active) {
  if (dev != 0) return CUDA_ERROR_INVALID_VALUE;
  *flags = 0;
  *active = g_primary_refs > 0;
  return CUDA_SUCCESS;
}
// The context's end: its work completes, every allocation is freed, and its streams go with
// their captures (a capture still under way is discarded).
static void free_everything() {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  run_all();
  for (StreamRec* s : g_streams) s->capturing = false;
  for (auto& [p, n] : g_device) std::free(reinterpret_cast<void*>(p));
  for (auto& [p, n] : g_host) std::free(reinterpret_cast<void*>(p));
  g_device.clear();
  g_host.clear();
  g_c.used_bytes = 0;
}
STUB_EXPORT CUresult cuDevicePrimaryCtxReset_v2(int) {
  free_everything();
  return CUDA_SUCCESS;
}
// The last release resets the primary context (Numba's cuda.close()): its memory is freed.
STUB_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(int dev) {
  if (dev != 0 || g_primary_refs == 0) return CUDA_ERROR_INVALID_CONTEXT;
  if (--g_primary_refs == 0) free_everything();
  return CUDA_SUCCESS;
}
// The stub has one context object, so a created context gets the handle a destroyed one had:
// exactly the case where a stale cache would hand out freed memory.
STUB_EXPORT CUresult cuCtxCreate_v2(CUcontext* ctx, unsigned, int dev) {
  if (ctx == nullptr || dev != 0) return CUDA_ERROR_INVALID_VALUE;
  *ctx = kCtx;
  t_current = kCtx;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx) {
  if (ctx != kCtx) return CUDA_ERROR_INVALID_VALUE;
  free_everything();
  t_current = nullptr;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuCtxSetCurrent(CUcontext ctx) {
  t_current = ctx;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuCtxGetCurrent(CUcontext* ctx) {
  *ctx = t_current;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
  t_stack.push_back(t_current);
  t_current = ctx;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuCtxPopCurrent_v2(CUcontext* ctx) {
  if (t_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
  if (ctx != nullptr) *ctx = t_current;
  t_current = t_stack.back();
  t_stack.pop_back();
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuCtxGetDevice(int* d) {
  if (t_current == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  *d = 0;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuCtxSynchronize() {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  if (unsafe_during_capture()) {
    ++g_c.fence_violations;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  ++g_c.syncs;
  run_all();
  return CUDA_SUCCESS;
}

static CUresult alloc_common(void** out, size_t n, bool device) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  if (!g_initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (t_current == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  if (out == nullptr || n == 0) return CUDA_ERROR_INVALID_VALUE;
  if (unsafe_during_capture()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  if (device) {
    if (g_fail_allocs > 0) {
      --g_fail_allocs;
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (g_c.used_bytes + n > g_capacity) return CUDA_ERROR_OUT_OF_MEMORY;
  }
  size_t rounded = (n + 255) & ~size_t{255};
  void* p = std::aligned_alloc(256, rounded);
  if (p == nullptr) return CUDA_ERROR_OUT_OF_MEMORY;
  if (device) {
    g_device[reinterpret_cast<uintptr_t>(p)] = n;
    g_c.used_bytes += n;
    ++g_c.device_allocs;
  } else {
    g_host[reinterpret_cast<uintptr_t>(p)] = n;
    ++g_c.host_allocs;
  }
  *out = p;
  return CUDA_SUCCESS;
}

static CUresult free_common(void* p, bool device) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  if (p == nullptr) return CUDA_SUCCESS;
  if (unsafe_during_capture()) {
    ++g_c.fence_violations;  // a real free: only cachealloc's eviction frees in these tests
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  auto& table = device ? g_device : g_host;
  auto it = table.find(reinterpret_cast<uintptr_t>(p));
  if (it == table.end()) return CUDA_ERROR_INVALID_VALUE;
  run_all();  // the real free synchronises the device
  if (device) {
    g_c.used_bytes -= it->second;
    ++g_c.device_frees;
  } else {
    ++g_c.host_frees;
  }
  table.erase(it);
  g_ipc.erase(reinterpret_cast<uintptr_t>(p));
  std::free(p);
  return CUDA_SUCCESS;
}

STUB_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) {
  return alloc_common(reinterpret_cast<void**>(p), n, true);
}
STUB_EXPORT CUresult cuMemFree_v2(CUdeviceptr p) {
  return free_common(reinterpret_cast<void*>(p), true);
}
STUB_EXPORT CUresult cuMemAllocHost_v2(void** p, size_t n) { return alloc_common(p, n, false); }
// A stream-ordered allocation from the device's default pool: a route cachealloc does not cache.
STUB_EXPORT CUresult cuMemAllocAsync(CUdeviceptr* p, size_t n, CUstream) {
  return alloc_common(reinterpret_cast<void**>(p), n, true);
}
STUB_EXPORT CUresult cuMemFreeAsync(CUdeviceptr p, CUstream) {
  return free_common(reinterpret_cast<void*>(p), true);
}
STUB_EXPORT CUresult cuMemHostAlloc(void** p, size_t n, unsigned) {
  return alloc_common(p, n, false);
}
STUB_EXPORT CUresult cuMemFreeHost(void* p) { return free_common(p, false); }
STUB_EXPORT CUresult cuMemGetInfo_v2(size_t* f, size_t* t) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  *f = g_capacity - g_c.used_bytes;
  *t = g_capacity;
  return CUDA_SUCCESS;
}

STUB_EXPORT CUresult cuStreamCreate(CUstream* s, unsigned flags) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  auto* rec = new StreamRec;
  rec->flags = flags;
  g_streams.insert(rec);
  *s = reinterpret_cast<CUstream>(rec);
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuStreamCreateWithPriority(CUstream* s, unsigned flags, int) {
  return cuStreamCreate(s, flags);
}
STUB_EXPORT CUresult cuStreamDestroy_v2(CUstream s) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  StreamRec* rec = stream_of(s);
  if (g_streams.erase(rec) == 0) return CUDA_ERROR_INVALID_VALUE;
  if (rec->done < rec->enqueued) {
    g_destroyed.insert(rec);  // its work runs later (the header)
  } else {
    delete rec;  // events waiting on it only hold finished positions: see cuEventQuery
  }
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuStreamSynchronize(CUstream s) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  if (unsafe_during_capture()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  run(stream_of(s));
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuStreamBeginCapture_v2(CUstream s, int mode) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  StreamRec* rec = stream_of(s);
  if (rec == &g_legacy || rec->capturing) return CUDA_ERROR_INVALID_VALUE;
  rec->capturing = true;
  rec->mode = mode;
  rec->invalidated = false;
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuStreamEndCapture(CUstream s, void** graph) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  StreamRec* rec = stream_of(s);
  if (!rec->capturing) return CUDA_ERROR_INVALID_VALUE;
  rec->capturing = false;
  if (graph != nullptr) *graph = rec->invalidated ? nullptr : reinterpret_cast<void*>(0x6a);
  return rec->invalidated ? CUDA_ERROR_STREAM_CAPTURE_INVALIDATED : CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuStreamIsCapturing(CUstream s, int* status) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  StreamRec* rec = stream_of(s);
  *status = rec->capturing ? (rec->invalidated ? 2 : 1) : 0;
  return CUDA_SUCCESS;
}

STUB_EXPORT CUresult cuEventCreate(CUevent* ev, unsigned) {
  *ev = reinterpret_cast<CUevent>(new EventRec);
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuEventRecord(CUevent ev, CUstream s) {
  maybe_slow();
  std::lock_guard<std::recursive_mutex> l(g_mu);
  auto* e = reinterpret_cast<EventRec*>(ev);
  StreamRec* rec = stream_of(s);
  ++g_c.event_records;
  if (rec->capturing) {
    ++g_c.capture_violations;
    ++g_c.fence_violations;
  }
  e->waits.clear();
  e->waits.push_back({rec, rec->enqueued});
  if (rec == &g_legacy) {  // implicit synchronisation with blocking streams
    e->waits.push_back({&g_per_thread, g_per_thread.enqueued});
    for (StreamRec* s2 : g_streams) {
      if ((s2->flags & CU_STREAM_NON_BLOCKING) == 0) e->waits.push_back({s2, s2->enqueued});
    }
    for (StreamRec* s2 : g_destroyed) {
      if ((s2->flags & CU_STREAM_NON_BLOCKING) == 0) e->waits.push_back({s2, s2->enqueued});
    }
  }
  return CUDA_SUCCESS;
}
// All the work of the context, every stream. STUBCU_NO_CTX_EVENT=1 plays a driver older than
// CUDA 12.5 (cachealloc then makes each fence a synchronisation: Note [Older drivers]).
STUB_EXPORT CUresult cuCtxRecordEvent(CUcontext, CUevent ev) {
  maybe_slow();
  std::lock_guard<std::recursive_mutex> l(g_mu);
  if (std::getenv("STUBCU_NO_CTX_EVENT") != nullptr) return 801;  // CUDA_ERROR_NOT_SUPPORTED
  if (unsafe_during_capture()) {
    ++g_c.fence_violations;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  ++g_c.event_records;
  auto* e = reinterpret_cast<EventRec*>(ev);
  e->waits.clear();
  e->waits.push_back({&g_legacy, g_legacy.enqueued});
  e->waits.push_back({&g_per_thread, g_per_thread.enqueued});
  for (StreamRec* s2 : g_streams) e->waits.push_back({s2, s2->enqueued});
  for (StreamRec* s2 : g_destroyed) e->waits.push_back({s2, s2->enqueued});
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuEventQuery(CUevent ev) {
  maybe_slow();
  std::lock_guard<std::recursive_mutex> l(g_mu);
  if (unsafe_during_capture()) {
    ++g_c.fence_violations;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  ++g_c.event_queries;
  for (auto& [s, seq] : reinterpret_cast<EventRec*>(ev)->waits) {
    if (waits_on(s) && s->done < seq) return CUDA_ERROR_NOT_READY;
  }
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuEventSynchronize(CUevent ev) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  if (unsafe_during_capture()) {
    ++g_c.fence_violations;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  for (auto& [s, seq] : reinterpret_cast<EventRec*>(ev)->waits) {
    if (waits_on(s)) run(s);
  }
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuEventDestroy_v2(CUevent ev) {
  delete reinterpret_cast<EventRec*>(ev);
  return CUDA_SUCCESS;
}
STUB_EXPORT CUresult cuIpcGetMemHandle(void* handle, CUdeviceptr p) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  if (g_device.count(p) == 0) return CUDA_ERROR_INVALID_VALUE;
  std::memset(handle, 0, 64);
  std::memcpy(handle, &p, sizeof p);
  g_ipc.insert(p);
  ++g_c.ipc_exports;
  return CUDA_SUCCESS;
}

// A made-up future signature: (pointer, size, flags); counted in future_calls.
STUB_EXPORT CUresult cuMemAlloc_v3_future(CUdeviceptr* p, size_t n, unsigned long long) {
  ++g_c.future_calls;
  return alloc_common(reinterpret_cast<void**>(p), n, true);
}

// ---- cuGetProcAddress -------------------------------------------------------------------------
static CUresult old_signature_stub() { return CUDA_ERROR_NOT_FOUND; }

STUB_EXPORT CUresult cuGetProcAddress(const char* sym, void** pfn, int ver, unsigned long long fl);
STUB_EXPORT CUresult cuGetProcAddress_v2(const char* sym, void** pfn, int ver,
                                         unsigned long long flags, int* status) {
  struct Entry {
    const char* name;
    void* fn;
    int v2_since;   // below it: an older signature (not provided by the stub)
  };
  static const Entry kTable[] = {
      {"cuInit", (void*)&cuInit, 0},
      {"cuDriverGetVersion", (void*)&cuDriverGetVersion, 0},
      {"cuDeviceGetCount", (void*)&cuDeviceGetCount, 0},
      {"cuDeviceGet", (void*)&cuDeviceGet, 0},
      {"cuDeviceTotalMem", (void*)&cuDeviceTotalMem_v2, 3020},
      {"cuDevicePrimaryCtxRetain", (void*)&cuDevicePrimaryCtxRetain, 0},
      {"cuDevicePrimaryCtxReset", (void*)&cuDevicePrimaryCtxReset_v2, 11000},
      {"cuDevicePrimaryCtxRelease", (void*)&cuDevicePrimaryCtxRelease_v2, 11000},
      {"cuDevicePrimaryCtxGetState", (void*)&cuDevicePrimaryCtxGetState, 0},
      {"cuCtxRecordEvent", (void*)&cuCtxRecordEvent, 12050},
      {"cuMemAllocAsync", (void*)&cuMemAllocAsync, 11020},
      {"cuMemFreeAsync", (void*)&cuMemFreeAsync, 11020},
      {"cuCtxSetCurrent", (void*)&cuCtxSetCurrent, 0},
      {"cuCtxCreate", (void*)&cuCtxCreate_v2, 3020},
      {"cuCtxDestroy", (void*)&cuCtxDestroy_v2, 4000},
      {"cuCtxGetCurrent", (void*)&cuCtxGetCurrent, 0},
      {"cuCtxSynchronize", (void*)&cuCtxSynchronize, 0},
      {"cuMemAlloc", (void*)&cuMemAlloc_v2, 3020},
      {"cuMemFree", (void*)&cuMemFree_v2, 3020},
      {"cuMemAllocHost", (void*)&cuMemAllocHost_v2, 3020},
      {"cuMemHostAlloc", (void*)&cuMemHostAlloc, 0},
      {"cuMemFreeHost", (void*)&cuMemFreeHost, 0},
      {"cuMemGetInfo", (void*)&cuMemGetInfo_v2, 3020},
      {"cuStreamCreate", (void*)&cuStreamCreate, 0},
      {"cuStreamCreateWithPriority", (void*)&cuStreamCreateWithPriority, 0},
      {"cuStreamDestroy", (void*)&cuStreamDestroy_v2, 4000},
      {"cuStreamSynchronize", (void*)&cuStreamSynchronize, 0},
      {"cuStreamBeginCapture", (void*)&cuStreamBeginCapture_v2, 10010},
      {"cuStreamEndCapture", (void*)&cuStreamEndCapture, 0},
      {"cuStreamIsCapturing", (void*)&cuStreamIsCapturing, 0},
      {"cuEventCreate", (void*)&cuEventCreate, 0},
      {"cuEventRecord", (void*)&cuEventRecord, 0},
      {"cuEventQuery", (void*)&cuEventQuery, 0},
      {"cuEventSynchronize", (void*)&cuEventSynchronize, 0},
      {"cuEventDestroy", (void*)&cuEventDestroy_v2, 4000},
      {"cuIpcGetMemHandle", (void*)&cuIpcGetMemHandle, 0},
      {"cuGetProcAddress", (void*)&cuGetProcAddress_v2, 12000},
  };
  (void)flags;
  if (pfn == nullptr || sym == nullptr) return CUDA_ERROR_INVALID_VALUE;
  // A future driver: "cuMemAlloc" at version 14000 is a _v3 with a new signature, exported under
  // a name cachealloc does not know. cachealloc must hand it back unwrapped.
  if (ver >= 14000 && std::strcmp(sym, "cuMemAlloc") == 0) {
    *pfn = (void*)&cuMemAlloc_v3_future;
    if (status != nullptr) *status = 0;
    return CUDA_SUCCESS;
  }
  for (const Entry& e : kTable) {
    if (std::strcmp(e.name, sym) != 0) continue;
    if (std::strcmp(sym, "cuGetProcAddress") == 0 && ver < 12000) {
      *pfn = (void*)&cuGetProcAddress;
    } else {
      *pfn = ver >= e.v2_since ? e.fn : (void*)&old_signature_stub;
    }
    if (status != nullptr) *status = 0;  // CU_GET_PROC_ADDRESS_SUCCESS
    return CUDA_SUCCESS;
  }
  *pfn = nullptr;
  if (status != nullptr) *status = 1;  // CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND
  return CUDA_ERROR_NOT_FOUND;
}
STUB_EXPORT CUresult cuGetProcAddress(const char* sym, void** pfn, int ver, unsigned long long fl) {
  return cuGetProcAddress_v2(sym, pfn, ver, fl, nullptr);
}

// ---- Test controls ----------------------------------------------------------------------------
STUB_EXPORT void stubcu_launch(CUstream s, void* dst, int value, size_t n) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  StreamRec* rec = stream_of(s);
  rec->ops.push_back({++rec->enqueued, dst, value, n});
}
STUB_EXPORT void stubcu_complete(CUstream s) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  StreamRec* rec = stream_of(s);
  if (!waits_on(rec)) return;  // a destroyed stream whose work already ran: its record is gone
  if (rec == &g_legacy) {
    run(&g_per_thread);
    for (StreamRec* s2 : g_streams) {
      if ((s2->flags & CU_STREAM_NON_BLOCKING) == 0) run(s2);
    }
  }
  run(rec);
}
STUB_EXPORT void stubcu_fail_allocs(int n) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  g_fail_allocs = n;
}
STUB_EXPORT void stubcu_set_capacity(size_t bytes) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  g_capacity = bytes;
}
STUB_EXPORT void* stubcu_raw_alloc(size_t bytes) {
  void* p = nullptr;
  CUcontext saved = t_current;
  t_current = kCtx;
  alloc_common(&p, bytes, true);
  t_current = saved;
  return p;
}
STUB_EXPORT void stubcu_get_counters(stubcu_counters* out) {
  std::lock_guard<std::recursive_mutex> l(g_mu);
  *out = g_c;
}
