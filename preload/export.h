// export.h - marks the symbols libcachealloc.so exports (the version script has the final say).
#pragma once
#define CA_EXPORT extern "C" __attribute__((visibility("default")))
