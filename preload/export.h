// export.h - marks the symbols libcachealloc.so exports (the version script, exports.map, has the
// final say). Everything else in the library is hidden (-fvisibility=hidden).
//   CA_EXPORT      a C symbol (malloc, ca_*, the glibc and CUDA names): extern "C" and visible.
//   CA_CXX_EXPORT  a C++ symbol whose mangled name is the interface (the operator new/delete
//                  forms in new_delete.cpp): visible, with C++ linkage, which extern "C" would
//                  break (operators cannot have C linkage).
#pragma once
#define CA_EXPORT extern "C" __attribute__((visibility("default")))
#define CA_CXX_EXPORT __attribute__((visibility("default")))
