#!/usr/bin/env python3
"""Checks the CUDA driver exports against their one table, CA_CUDA_DRIVER_HOOKS.

usage: exports_check.py <source root> <path of libcachealloc.so>

Every hook of lib/cuda/driver_hooks.h must be listed in preload/exports.map, in the table's
order, and exported (defined, global) by the built library; the map must list no cu* name the
table lacks. The hook list is written once; this keeps the version script from drifting.
"""
import re
import subprocess
import sys
from pathlib import Path


def main():
    root, lib = Path(sys.argv[1]), sys.argv[2]
    header = (root / "lib/cuda/driver_hooks.h").read_text()
    table = header[header.index("#define CA_CUDA_DRIVER_HOOKS(X)"):]
    table = table[:table.index("\n\n")]
    hooks = re.findall(r"\bX\((cu\w+),", table)
    exports = (root / "preload/exports.map").read_text()
    exports = re.sub(r"/\*.*?\*/", "", exports, flags=re.S)
    mapped = re.findall(r"\b(cu[A-Z]\w*);", exports)
    problems = []
    if mapped != hooks:
        problems.append(f"exports.map lists {mapped}\n  the table has {hooks}")
    nm = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True)
    defined = set(re.findall(r" T (\w+)", nm.stdout))
    missing = [h for h in hooks if h not in defined]
    if missing:
        problems.append(f"not exported by {lib}: {missing}")
    if len(hooks) < 10:
        problems.append(f"only {len(hooks)} hooks parsed: the table's format changed")
    for p in problems:
        print("FAIL:", p)
    if not problems:
        print(f"{len(hooks)} driver hooks: exports.map and {Path(lib).name} match the table")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
