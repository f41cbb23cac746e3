// cuda_api.h - the real CUDA runtime and driver entry points, found lazily with dlsym.
//
// This is the second OS-like interface of cachealloc (os.h is the first): nothing else in lib/
// names a CUDA function. The library has no NEEDED entry on libcudart or libcuda and calls nothing
// CUDA at load time; the tables below are filled on first use.
//
// - runtime(): the libcudart the program uses, found with dlsym(RTLD_NEXT) from this library or,
//   failing that, among the loaded objects whose name starts with "libcudart". nullptr when the
//   program has no shared runtime (it may still use a static one through the driver).
// - driver(): libcuda.so.1, but only once something else has loaded it (dlopen RTLD_NOLOAD):
//   cachealloc never loads a driver. nullptr while it is not loaded.
// Every pointer in a returned table is non-null, except those marked optional. The tables never change once returned.
//
// The types are ABI stand-ins for the CUDA headers (which the library does not include): enums are
// ints, handles are opaque pointers, device pointers are 64-bit integers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cachealloc::cuda_api {

using RtError = int;   // cudaError_t
using CuResult = int;  // CUresult
using DevicePtr = unsigned long long;  // CUdeviceptr
using Context = struct CtxHandle*;     // CUcontext
using Stream = struct StreamHandle*;   // CUstream / cudaStream_t
using Event = struct EventHandle*;     // CUevent
using Device = int;                    // CUdevice

// cudaError_t values used here (same numbers as the toolkit's driver_types.h).
inline constexpr RtError kRtSuccess = 0;
inline constexpr RtError kRtInvalidValue = 1;
inline constexpr RtError kRtMemoryAllocation = 2;
inline constexpr RtError kRtInitializationError = 3;
// CUresult values (cuda.h).
inline constexpr CuResult kCuSuccess = 0;
inline constexpr CuResult kCuInvalidValue = 1;
inline constexpr CuResult kCuOutOfMemory = 2;
inline constexpr CuResult kCuNotInitialized = 3;
inline constexpr CuResult kCuNotReady = 600;

inline constexpr unsigned kEventDisableTiming = 0x2;  // CU_EVENT_DISABLE_TIMING
inline constexpr unsigned kStreamNonBlocking = 0x1;   // CU_STREAM_NON_BLOCKING

// Signatures of the runtime functions cachealloc calls or forwards to.
struct Runtime {
  RtError (*malloc)(void** p, size_t size);
  RtError (*free)(void* p);
  RtError (*malloc_host)(void** p, size_t size);
  RtError (*host_alloc)(void** p, size_t size, unsigned flags);
  RtError (*free_host)(void* p);
  RtError (*mem_get_info)(size_t* free_bytes, size_t* total_bytes);
  RtError (*device_reset)();
  RtError (*get_device)(int* device);
  RtError (*get_last_error)();
  RtError (*peek_at_last_error)();  // cudaPeekAtLastError
  RtError (*device_synchronize)();  // cudaDeviceSynchronize (optional)
};

// Signatures of the driver functions (the exact versioned exports of libcuda.so.1).
struct Driver {
  CuResult (*mem_alloc)(DevicePtr* p, size_t size);                    // cuMemAlloc_v2
  CuResult (*mem_free)(DevicePtr p);                                   // cuMemFree_v2
  CuResult (*mem_alloc_host)(void** p, size_t size);                   // cuMemAllocHost_v2
  CuResult (*mem_host_alloc)(void** p, size_t size, unsigned flags);   // cuMemHostAlloc
  CuResult (*mem_free_host)(void* p);                                  // cuMemFreeHost
  CuResult (*mem_get_info)(size_t* free_bytes, size_t* total_bytes);   // cuMemGetInfo_v2
  CuResult (*ctx_get_current)(Context* ctx);                           // cuCtxGetCurrent
  CuResult (*ctx_push_current)(Context ctx);                           // cuCtxPushCurrent_v2
  CuResult (*ctx_pop_current)(Context* ctx);                           // cuCtxPopCurrent_v2
  CuResult (*ctx_get_device)(Device* dev);                             // cuCtxGetDevice
  CuResult (*ctx_synchronize)();                                       // cuCtxSynchronize
  CuResult (*device_total_mem)(size_t* bytes, Device dev);             // cuDeviceTotalMem_v2
  CuResult (*event_create)(Event* ev, unsigned flags);                 // cuEventCreate
  CuResult (*event_query)(Event ev);                                   // cuEventQuery
  CuResult (*event_destroy)(Event ev);                                 // cuEventDestroy_v2
  CuResult (*primary_ctx_retain)(Context* ctx, Device dev);            // cuDevicePrimaryCtxRetain
  CuResult (*primary_ctx_release)(Device dev);                  // cuDevicePrimaryCtxRelease_v2
  CuResult (*primary_ctx_get_state)(Device dev, unsigned* flags, int* active);
  // Optional (nullptr on drivers before CUDA 12.5): an event capturing all work of a context.
  CuResult (*ctx_record_event)(Context ctx, Event ev);                 // cuCtxRecordEvent
  // Optional: whether a failed cuStreamEndCapture left the capture running (0: it ended).
  CuResult (*stream_is_capturing)(Stream s, int* status);            // cuStreamIsCapturing
  // Optional: CACHEALLOC_CUDA_SCRUB fills reused blocks with it.
  CuResult (*memset_d8)(DevicePtr p, unsigned char v, size_t n);       // cuMemsetD8_v2
};

const Runtime* runtime() noexcept;
const Driver* driver() noexcept;

// Note [Runtime per caller]
// The exported cudaMalloc & co. interpose every object's calls, and not every object would have
// reached the runtime RTLD_NEXT finds: a library built by nvcc with the static runtime (and no
// --exclude-libs) exports its own copy, and when it was loaded RTLD_LOCAL (a Python extension,
// say) and the global scope has no runtime, RTLD_NEXT finds nothing at all. So the exported
// functions pass their return address, and the call goes where the dynamic linker would have
// bound it without cachealloc: the global scope's runtime after us (runtime()) when there is one
// (also for a second runtime whose other calls bind there too), else the runtime the calling
// object's own handle resolves `cudaMalloc` to (it and its dependencies), else runtime()'s
// fallback, else the first runtime of its own any object had (a tail call `return cudaFree(p);`
// in a wrapper leaves the wrapper's caller as the return address). The answer is cached per object, by address range (the object stays referenced), in a
// small table; a block remembers the index of the runtime that allocated it, so it goes back
// there. runtime_for returns nullptr when there is none; *index is 0 for runtime().
inline constexpr uint8_t kMaxRuntimes = 16;
const Runtime* runtime_for(const void* caller, uint8_t* index) noexcept;
// The table of an index runtime_for gave (0: runtime()).
const Runtime* runtime_at(uint8_t index) noexcept;

// True when `addr` lies in an object whose file name starts with "libcuda.so" (the driver).
bool in_driver_library(const void* addr) noexcept;

// The driver's own export `name` from libcuda.so.1, or nullptr when the driver is not loaded (it
// is never loaded here: dlopen RTLD_NOLOAD) or has no such symbol.
void* driver_export(const char* name) noexcept;

// True when the object that contains `addr` exports one of names[0..n) at exactly `addr`.
bool object_exports_at(const void* addr, const char* const* names, size_t n) noexcept;

// Re-entry guard. Note [Runtime re-entry]: the shared runtime implements cudaMalloc with the
// driver's cuMemAlloc_v2, which it fetched through cuGetProcAddress and so reaches our driver
// wrapper. While a runtime wrapper is calling the real runtime, driver wrappers on the same thread
// pass straight through, so one allocation is cached (and counted) once.
bool in_runtime_call() noexcept;
class RuntimeCallScope {
 public:
  RuntimeCallScope() noexcept;
  ~RuntimeCallScope();
  RuntimeCallScope(const RuntimeCallScope&) = delete;
  RuntimeCallScope& operator=(const RuntimeCallScope&) = delete;
};

}  // namespace cachealloc::cuda_api
