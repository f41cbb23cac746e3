#!/bin/sh
# run_libfuzzer.sh FUZZER SEED_CORPUS [libFuzzer options...]
# Runs a libFuzzer binary over a copy of the seed corpus in a temporary directory, so new inputs and
# crash artifacts never land in the source tree. On a crash the artifact is kept and named.
set -u
fuzzer=$1; seeds=$2; shift 2
work=$(mktemp -d "${TMPDIR:-/tmp}/cachealloc-fuzz.XXXXXX")
mkdir -p "$work/corpus" "$work/artifacts"
"$fuzzer" -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$@" "$work/corpus" "$seeds"
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "libFuzzer failed (rc $rc); artifacts kept in $work/artifacts:" >&2
  ls -l "$work/artifacts" >&2
else
  rm -rf "$work"
fi
exit "$rc"
