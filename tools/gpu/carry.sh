#!/usr/bin/env bash
# carry.sh - prepares BUILD (default build/) to run on a GPU machine that lacks the build's
# libraries: copies libmimalloc.so.2 (the large-object upstream) into BUILD/deps/, where
# validate.sh finds it. Run it here, then carry BUILD with the working tree.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
mkdir -p "$BUILD/deps"
lib=$(ldd "$BUILD/preload/libcachealloc.so" | awk '/libmimalloc/ {print $3}')
cp -L "$lib" "$BUILD/deps/"
du -sh "$BUILD"
