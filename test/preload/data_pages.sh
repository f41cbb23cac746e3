#!/usr/bin/env bash
# The library's writable file-backed pages (.data) stay few: g_heap and the CUDA cache are zero
# until init, so they sit in .bss, where only the pages a process writes become resident (Note
# [Zero until init], lib/core/heap.h). A non-zero default there moves ~80-150 KiB back into
# every process's RSS; this test fails then.
lib="$1"
limit_kib=16
rss=$(LD_PRELOAD="$lib" cat /proc/self/smaps | awk '
  /^[0-9a-f]+-[0-9a-f]+ / { mine = ($2 ~ /^rw/ && $6 ~ /libcachealloc/) }
  mine && /^Rss:/ { sum += $2 }
  END { print sum + 0 }')
echo "resident .data of the library under cat: $rss KiB (limit $limit_kib)"
if [ "$rss" -gt "$limit_kib" ]; then
  echo "FAIL: the library's .data holds $rss KiB: a constinit object with a non-zero default?"
  exit 1
fi
