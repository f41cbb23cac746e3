#!/usr/bin/env bash
# The library's writable file-backed pages (.data) stay few: g_heap and the CUDA cache are zero
# until init, so they sit in .bss, where only the pages a process writes become resident (Note
# [Zero until init], lib/core/heap.h). A non-zero default there moves ~80-150 KiB back into
# every process's RSS; this test fails then. Release builds only (meson registers it so): debug
# builds store lock ranks in g_heap.
set -uo pipefail
lib="$1"
page_kib=$(( $(getconf PAGESIZE) / 1024 ))
limit_kib=$(( 4 * page_kib ))
smaps=$(LD_PRELOAD="$lib" cat /proc/self/smaps) || { echo "FAIL: cannot read /proc/self/smaps"; exit 1; }
read -r maps rss < <(printf '%s\n' "$smaps" | awk '
  /^[0-9a-f]+-[0-9a-f]+ / { mine = ($NF ~ /libcachealloc/); if (mine) n++; wdata = (mine && $2 ~ /^rw/) }
  wdata && /^Rss:/ { sum += $2 }
  END { print n + 0, sum + 0 }')
if [ "$maps" -eq 0 ]; then
  echo "FAIL: libcachealloc is not mapped in cat under LD_PRELOAD=$lib"
  exit 1
fi
echo "resident .data of the library under cat: $rss KiB (limit $limit_kib: 4 pages)"
if [ "$rss" -gt "$limit_kib" ]; then
  echo "FAIL: the library's .data holds $rss KiB: a constinit object with a non-zero default?"
  exit 1
fi
