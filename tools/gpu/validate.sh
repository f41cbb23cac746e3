#!/usr/bin/env bash
# validate.sh - cachealloc on a real GPU, in one command. Under 8 minutes on an H200.
#
#   bash tools/gpu/validate.sh [BUILD]      (BUILD: a build directory, default build/)
#
# Uses BUILD as it is when it holds libcachealloc.so (a build carried from another machine: put
# libmimalloc.so.2 in BUILD/deps/ when the GPU machine lacks it, tools/gpu/carry.sh does this),
# else configures and builds it. Then, each step with its own time limit:
#   1. the GPU tests (suite gpu: the driver API loop under the preload and without it);
#   2. the real runtime built by nvcc (static and shared) with and without the preload;
#   3. cachealloc-gpu-probe: every scenario of tools/gpu/probe.cu, plain and preloaded; the two
#      lines must match (scenarios "cachealloc only" must print ok under the preload);
#   4. PyTorch without its own cache (every tensor a cudaMalloc/cudaFree), plain and preloaded;
#   5. a short tools/bench/gpu/run_gpu.py.
# Prints one table (step, result, detail) and exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
LIB=$BUILD/preload/libcachealloc.so
if [ ! -f "$LIB" ]; then
  echo "== building $BUILD"
  { [ -f "$BUILD/build.ninja" ] || meson setup "$BUILD"; } && ninja -C "$BUILD" || exit 1
fi
[ -d "$BUILD/deps" ] && export LD_LIBRARY_PATH="$PWD/$BUILD/deps${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
LIB=$PWD/$LIB
unset LD_PRELOAD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'

rows=()
failed=0
row() {  # step, result, detail
  rows+=("| $1 | $2 | $3 |")
  [ "$2" = ok ] || [ "$2" = skipped ] || failed=1
  echo "-- $1: $2 $3"
}

# 1. suite gpu
for mode in cached raw; do
  t=$BUILD/test/gpu/gpu_driver_test
  if [ "$mode" = cached ]; then out=$(LD_PRELOAD=$LIB timeout 120 "$t" 2>&1); rc=$?
  else out=$(CACHEALLOC_CUDA=0 timeout 120 "$t" 2>&1); rc=$?; fi
  case $rc in 0) r=ok ;; 77) r=skipped ;; *) r="FAIL rc=$rc" ;; esac
  row "gpu_driver_$mode" "$r" "$(echo "$out" | tr '\n' ' ' | cut -c1-140)"
done

# 2. the real runtime, static and shared
for rt in static shared; do
  exe=$BUILD/test/cuda/cuda_nvcc_$rt
  if [ -x "$exe" ]; then
    out=$(timeout 120 python3 test/cuda/same_output.py "$LIB" "$exe" 2>&1); rc=$?
    [ $rc -eq 0 ] && r=ok || r="FAIL rc=$rc"
    row "nvcc_${rt}_runtime" "$r" "$(echo "$out" | tail -n 1 | cut -c1-140)"
  else
    row "nvcc_${rt}_runtime" skipped "not built (no nvcc where BUILD was made)"
  fi
done

# 3. the probe
probe=$BUILD/tools/gpu/cachealloc-gpu-probe
if [ -x "$probe" ] && scenarios=$("$probe" --list 2>/dev/null); then
  for s in $scenarios; do
    extra=()
    case $s in capture_free | capture_race) extra=(CACHEALLOC_CUDA_CACHE_BYTES=64M) ;; esac
    plain=$(timeout 60 "$probe" "$s" 2>&1 | tail -n 1); prc=${PIPESTATUS[0]}
    pre=$(env LD_PRELOAD="$LIB" "${extra[@]}" timeout 60 "$probe" "$s" 2>&1 | tail -n 1); crc=${PIPESTATUS[0]}
    if [ "$prc" -eq 77 ]; then row "probe $s" skipped "no device"; continue; fi
    if [ "$plain" = "$s ok n/a" ]; then
      [ "$crc" -eq 0 ] && r=ok || r="FAIL"
      row "probe $s" "$r" "cachealloc only: $pre"
    elif [ "$plain" = "$pre" ] && [ "$prc" -eq "$crc" ] && [ "$crc" -eq 0 ]; then
      row "probe $s" ok "same: $pre"
    else
      row "probe $s" FAIL "plain(rc $prc): $plain / preload(rc $crc): $pre"
    fi
  done
else
  row probe skipped "cachealloc-gpu-probe not built (no nvcc where BUILD was made) or no driver"
fi

# 4. PyTorch
plain=$(PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 180 python3 tools/gpu/torch_smoke.py 2>&1); prc=$?
if [ $prc -eq 77 ]; then
  row torch_smoke skipped "$plain"
else
  pre=$(PYTORCH_NO_CUDA_MEMORY_CACHING=1 LD_PRELOAD=$LIB CACHEALLOC_SHOW_STATS=1 timeout 180 \
        python3 tools/gpu/torch_smoke.py 2>/tmp/validate-torch.err); crc=$?
  if [ "$plain" != "$pre" ]; then  # is the plain run itself repeatable?
    again=$(PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 180 python3 tools/gpu/torch_smoke.py 2>&1)
    [ "$again" = "$plain" ] || plain="$plain (plain again: $again)"
  fi
  # The graph line by its own rule (torch_smoke.py): the preload must match where plain CUDA
  # matched, and never give other numbers; the other lines must be the same.
  plain_graph=$(echo "$plain" | grep '^graph=' | head -n 1)
  pre_graph=$(echo "$pre" | grep '^graph=' | head -n 1)
  graph_ok=1
  case "$pre_graph" in *mismatch*) graph_ok=0 ;; esac
  [ "$plain_graph" = "graph=match" ] && [ "$pre_graph" != "graph=match" ] && graph_ok=0
  if [ $prc -eq 0 ] && [ $crc -eq 0 ] && [ $graph_ok -eq 1 ] &&
     [ "$(echo "$plain" | grep -v '^graph=')" = "$(echo "$pre" | grep -v '^graph=')" ]; then
    row torch_smoke ok "same: $(echo "$pre" | tr '\n' ' ')(plain $plain_graph) $(grep -m1 -i 'device' /tmp/validate-torch.err | cut -c1-80)"
  else
    row torch_smoke FAIL "plain(rc $prc): $(echo "$plain" | tail -n 2 | tr '\n' ' ') / preload(rc $crc): $(echo "$pre" | tr '\n' ' ') $(tail -n 3 /tmp/validate-torch.err | tr '\n' ' ')"
  fi
fi

# 5. the benchmark, short
if [ -x "$BUILD/tools/bench/bench-gpu" ]; then
  out=$(timeout 240 python3 tools/bench/gpu/run_gpu.py --build "$BUILD" --reps "${REPS:-3}" --scale "${SCALE:-0.5}" 2>&1); rc=$?
  echo "$out"
  [ $rc -eq 0 ] && r=ok || r="FAIL rc=$rc"
  row run_gpu "$r" "table above"
else
  row run_gpu skipped "bench-gpu not built"
fi

echo
echo "| step | result | detail |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $failed
