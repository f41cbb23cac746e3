// driver.cpp - the exported CUDA driver functions (for programs linked with -lcuda): one-line
// forwarders into driver_hooks.h. Programs that fetch the driver through dlsym/cuGetProcAddress
// (the runtime, static or shared) reach the same code through the thunks in driver_hooks.cpp.
#include "cuda/driver_hooks.h"

using cachealloc::cuda_api::CuResult;
using cachealloc::cuda_api::DevicePtr;
using cachealloc::cuda_api::Stream;
namespace cf = cachealloc::cuda;

#define CA_EXPORT extern "C" __attribute__((visibility("default")))

CA_EXPORT CuResult cuMemAlloc_v2(DevicePtr* p, size_t size) { return cf::exported_mem_alloc(p, size); }
CA_EXPORT CuResult cuMemFree_v2(DevicePtr p) { return cf::exported_mem_free(p); }
CA_EXPORT CuResult cuMemAllocHost_v2(void** p, size_t size) {
  return cf::exported_mem_alloc_host(p, size);
}
CA_EXPORT CuResult cuMemHostAlloc(void** p, size_t size, unsigned flags) {
  return cf::exported_mem_host_alloc(p, size, flags);
}
CA_EXPORT CuResult cuMemFreeHost(void* p) { return cf::exported_mem_free_host(p); }
CA_EXPORT CuResult cuMemGetInfo_v2(size_t* f, size_t* t) { return cf::exported_mem_get_info(f, t); }
CA_EXPORT CuResult cuStreamCreate(Stream* s, unsigned flags) {
  return cf::exported_stream_create(s, flags);
}
CA_EXPORT CuResult cuStreamCreateWithPriority(Stream* s, unsigned flags, int priority) {
  return cf::exported_stream_create_with_priority(s, flags, priority);
}
CA_EXPORT CuResult cuStreamDestroy_v2(Stream s) { return cf::exported_stream_destroy(s); }
CA_EXPORT CuResult cuStreamBeginCapture_v2(Stream s, int mode) {
  return cf::exported_stream_begin_capture(s, mode);
}
CA_EXPORT CuResult cuStreamEndCapture(Stream s, void** graph) {
  return cf::exported_stream_end_capture(s, graph);
}
CA_EXPORT CuResult cuIpcGetMemHandle(void* handle, DevicePtr p) {
  return cf::exported_ipc_get_mem_handle(handle, p);
}
CA_EXPORT CuResult cuDevicePrimaryCtxReset_v2(int dev) { return cf::exported_primary_ctx_reset(dev); }
CA_EXPORT CuResult cuDevicePrimaryCtxRelease_v2(int dev) {
  return cf::exported_primary_ctx_release(dev);
}
#define CA_OOM_FORWARD(name, proc, since, params, args, ...) \
  CA_EXPORT CuResult name params { return cf::exported_##name args; }
CA_CUDA_OOM_ROUTES(CA_OOM_FORWARD)
#undef CA_OOM_FORWARD
CA_EXPORT CuResult cuCtxDestroy_v2(cachealloc::cuda_api::Context ctx) {
  return cf::exported_ctx_destroy(ctx);
}
CA_EXPORT CuResult cuGetProcAddress(const char* symbol, void** pfn, int cuda_version,
                                    unsigned long long flags) {
  return cf::exported_get_proc_address(symbol, pfn, cuda_version, flags);
}
CA_EXPORT CuResult cuGetProcAddress_v2(const char* symbol, void** pfn, int cuda_version,
                                       unsigned long long flags, int* status) {
  return cf::exported_get_proc_address_v2(symbol, pfn, cuda_version, flags, status);
}
