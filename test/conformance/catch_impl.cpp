// catch_impl.cpp - Catch2's implementation, compiled once for both conformance programs. Each
// front's main() does its own set-up, then calls run_catch().
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "conformance.h"

int conformance::run_catch(int argc, char** argv) { return Catch::Session().run(argc, argv); }
