// stub_cuda.h - the CUDA API subset the stub runtime and stub driver implement, plus the stub's
// test controls. Test programs include this instead of the toolkit headers, so CI needs no CUDA.
// Numbers and signatures match the toolkit (cudaError_t/CUresult values, _v2 ABI).
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {
typedef int cudaError_t;
typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st* CUcontext;
typedef struct CUstream_st* CUstream;
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* CUevent;

enum {
  cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3, cudaErrorInsufficientDriver = 35, cudaErrorNoDevice = 100,
  cudaErrorStreamCaptureUnsupported = 900, cudaErrorStreamCaptureInvalidated = 901,
};
enum { CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1, CUDA_ERROR_OUT_OF_MEMORY = 2,
       CUDA_ERROR_NOT_INITIALIZED = 3, CUDA_ERROR_INVALID_CONTEXT = 201, CUDA_ERROR_NOT_FOUND = 500,
       CUDA_ERROR_NOT_READY = 600, CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900,
       CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901 };
enum { cudaStreamNonBlocking = 1, CU_STREAM_NON_BLOCKING = 1 };
enum { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
       cudaStreamCaptureModeRelaxed = 2 };
enum { cudaHostAllocPortable = 1, cudaHostAllocMapped = 2 };

// Runtime (libcudart_stub.so).
cudaError_t cudaMalloc(void** p, size_t size);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t size);
cudaError_t cudaHostAlloc(void** p, size_t size, unsigned flags);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, int mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, void** graph);
cudaError_t cudaIpcGetMemHandle(void* handle, void* p);

// Driver (libcuda.so.1), for programs linked with it.
CUresult cuInit(unsigned flags);
CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, int dev);
CUresult cuCtxSetCurrent(CUcontext ctx);
CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t size);
CUresult cuMemFree_v2(CUdeviceptr p);
CUresult cuMemAllocHost_v2(void** p, size_t size);
CUresult cuMemFreeHost(void* p);
CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes);
CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int cuda_version,
                             unsigned long long flags, int* status);

// Test controls of the stub driver.
struct stubcu_counters {
  uint64_t device_allocs, device_frees, host_allocs, host_frees;
  uint64_t used_bytes;          // device bytes allocated right now
  uint64_t capture_violations;  // unsafe calls (or event records on a capturing stream)
  uint64_t event_records, event_queries, syncs;
  uint64_t ipc_exports;
  uint64_t fence_violations;  // event record/query/sync, ctx sync or a free during a global capture
  uint64_t future_calls;      // calls of the made-up cuMemAlloc _v3 (cuGetProcAddress >= 14000)
};
// Queues a "kernel" on stream s that fills n bytes at dst with value when the stream runs.
void stubcu_launch(CUstream s, void* dst, int value, size_t n);
// Runs every queued kernel of s (legacy stream: also of every blocking stream).
void stubcu_complete(CUstream s);
// Makes the next n device allocations fail with CUDA_ERROR_OUT_OF_MEMORY.
void stubcu_fail_allocs(int n);
void stubcu_set_capacity(size_t bytes);
// Device memory allocated by the stub directly (as another library's allocator would): a pointer
// cachealloc never handed out.
void* stubcu_raw_alloc(size_t bytes);
void stubcu_get_counters(stubcu_counters* out);
}
