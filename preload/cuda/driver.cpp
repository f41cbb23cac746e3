// driver.cpp - the exported CUDA driver functions (for programs linked with -lcuda): one-line
// forwarders into driver_hooks.h, one per line of CA_CUDA_DRIVER_HOOKS. Programs that fetch the
// driver through dlsym/cuGetProcAddress (the runtime, static or shared) reach the same hooks
// through the thunks in driver_hooks.cpp.
#include "cuda/driver_hooks.h"
#include "../export.h"

using cachealloc::cuda::Context;
using cachealloc::cuda::CuResult;
using cachealloc::cuda::DevicePtr;
using cachealloc::cuda::Stream;
namespace cf = cachealloc::cuda;

#define CA_HOOK_FORWARD(name, proc, since, impl, params, args, ...) \
  CA_EXPORT CuResult name params { return cf::exported_##name args; }
CA_CUDA_DRIVER_HOOKS(CA_HOOK_FORWARD)
#undef CA_HOOK_FORWARD
