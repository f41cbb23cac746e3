#!/usr/bin/env bash
# A single-threaded program stays single-threaded under the preload: user namespaces refuse a
# multi-threaded caller, so `unshare -U` is the check (Note [No thread in a single-threaded
# process], lib/stats/publisher.cpp). Skips where this machine does not allow user namespaces.
lib="$1"
command -v unshare >/dev/null || { echo "unshare not installed: skipped"; exit 77; }
unshare -U true 2>/dev/null || { echo "user namespaces not allowed here: skipped"; exit 77; }
out=$(LD_PRELOAD="$lib" unshare -U sh -c 'x=$(seq 1 20000 | sort -n | tail -n 1); echo "$x"' 2>&1)
if [ "$out" != "20000" ]; then
  echo "FAIL: unshare -U under the preload: $out"
  exit 1
fi
tasks=$(LD_PRELOAD="$lib" python3 -c 'import os,time; b=[bytearray(1<<20) for _ in range(50)]; time.sleep(0.3); print(len(os.listdir("/proc/self/task")))')
if [ "$tasks" != "1" ]; then
  echo "FAIL: a single-threaded python3 has $tasks threads under the preload"
  exit 1
fi
echo "unshare -U works under the preload; single-threaded python3 keeps 1 thread"
