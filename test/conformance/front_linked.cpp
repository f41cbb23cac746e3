// front_linked.cpp - the conformance suite linked with -lcachealloc: malloc and operator new
// resolve to libcachealloc.so at link time, and the ca_ API is called directly.
#include "conformance.h"

const conformance::CaApi& conformance::ca() {
  static const CaApi api = {ca_retain,       ca_release,   ca_refcount,    ca_adopt,
                            ca_clear,        ca_cached_bytes, ca_cache_limit, ca_set_cache_limit,
                            ca_owns,         ca_get_totals, ca_version};
  return api;
}

const char* conformance::front_name() { return "linked (-lcachealloc)"; }

int main(int argc, char** argv) { return conformance::run_catch(argc, argv); }
