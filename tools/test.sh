#!/usr/bin/env bash
# Quick start, part 2: build (if needed) and run every test suite. Ends with "N passed, N failed".
# Extra arguments go to `meson test` (e.g. --suite unit).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  command -v meson >/dev/null || { echo "meson is missing: run bash tools/demo.sh first" >&2; exit 1; }
  meson setup build >/dev/null || exit 1
fi
ninja -C build >/dev/null || { ninja -C build; echo "0 passed, 1 failed"; exit 1; }
meson test -C build --print-errorlogs --num-processes 2 "$@"
rc=$?
log=build/meson-logs/testlog.json
if [ -f "$log" ]; then
  python3 - "$log" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif r == "SKIP":
        skipped += 1
    else:
        failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
else
  echo "0 passed, 1 failed"
  rc=1
fi
exit $rc
