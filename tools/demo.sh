#!/usr/bin/env bash
# Quick start, part 1: install what is missing, build, and run the demo (a real program with and
# without cachealloc preloaded). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
need=()
command -v meson >/dev/null || need+=(meson)
command -v ninja >/dev/null || need+=(ninja-build)
command -v g++ >/dev/null || need+=(g++)
command -v python3 >/dev/null || need+=(python3)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -f /usr/include/mimalloc.h ] || need+=(libmimalloc-dev)
[ -f /usr/include/catch2/catch.hpp ] || need+=(catch2)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! ninja -C build -n 2>/dev/null | grep -q "no work to do"; then
  echo "== building into build/ (a few minutes on 2 cores)"
fi
[ -f build/build.ninja ] || meson setup build >/dev/null
# ninja's "[done/total]" lines, one in ten (and the last), so the build is seen to move.
ninja -C build | awk -F'[][/]' '/^\[[0-9]+\/[0-9]+\]/ { if ($2 % 10 == 0 || $2 == $3) printf "   built %s of %s\n", $2, $3; fflush() }' || { echo "build failed: ninja -C build shows why"; exit 1; }
echo "== built build/preload/libcachealloc.so"

run() {  # prints the program's own elapsed seconds
  "$@" 2>&1 >/dev/null | awk '/^elapsed/ {print $2}'
}
steps=${DEMO_STEPS:-300}
echo "== demo: python3 tools/demo/buffers.py $steps (recurring 1-16 MiB buffers), best of 3"
best() {
  local b=""
  for _ in 1 2 3; do
    t=$(run "$@")
    if [ -z "$b" ] || awk -v t="$t" -v b="$b" 'BEGIN{exit !(t<b)}'; then b=$t; fi
  done
  echo "$b"
}
glibc=$(best python3 tools/demo/buffers.py "$steps")
ours=$(best build/tools/cachealloc run -- python3 tools/demo/buffers.py "$steps")
same=$(cmp <(python3 tools/demo/buffers.py 20 2>/dev/null) <(build/tools/cachealloc run -- python3 tools/demo/buffers.py 20 2>/dev/null) && echo yes || echo NO)
printf '   glibc malloc : %6.3f s\n   cachealloc   : %6.3f s   (%s)\n' "$glibc" "$ours" \
  "$(awk -v g="$glibc" -v c="$ours" 'BEGIN{printf "%.2fx faster", g/c}')"
echo "   same output  : $same"
echo "== next: bash tools/test.sh   (the whole test suite)"
