#!/usr/bin/env python3
"""The device-memory benchmark: raw cudaMalloc/cudaFree, cudaMallocAsync (release threshold
at maximum) and cachealloc (the raw calls under LD_PRELOAD=libcachealloc.so), same run, alternating.

usage: run_gpu.py [--build BUILD] [--reps N] [--scale S] [--workloads loop,sizes,streams,thrust]

Needs a GPU; prints "skipped" and exits 0 without one. Prints a Markdown table: median seconds
per configuration, cachealloc's speed-up over raw, its time relative to cudaMallocAsync, and peak
reserved / peak live for each. Targets: >= 50x faster than raw on `loop`, within 1.5x of
cudaMallocAsync, peak reserved <= 1.3x peak live.
"""
import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = [("raw", "raw", False), ("async", "async", False), ("cachealloc", "raw", True)]


def run_one(bench, lib, workload, alloc, preload, scale):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = str(lib)
    r = subprocess.run([str(bench), "--alloc", alloc, "--workload", workload, "--scale", str(scale)],
                       env=env, capture_output=True, text=True, timeout=600)
    if r.returncode == 77:
        return None
    line = next((l for l in r.stdout.splitlines() if l.startswith("GPUBENCH ")), None)
    if r.returncode != 0 or line is None:
        sys.exit(f"bench-gpu {workload} {alloc} preload={preload} failed (rc {r.returncode}):\n"
                 f"{r.stdout}{r.stderr}")
    fields = dict(kv.split("=", 1) for kv in line.split()[1:])
    if preload and fields["cachealloc"] != "1":
        sys.exit("libcachealloc.so was not loaded in the preloaded run")
    return fields


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--workloads", default="loop,sizes,streams,thrust")
    a = ap.parse_args()
    build = Path(a.build)
    bench = build / "tools" / "bench" / "bench-gpu"
    lib = build / "preload" / "libcachealloc.so"
    if not bench.exists():
        sys.exit(f"{bench} not built (it needs nvcc: meson setup with the CUDA toolkit on PATH)")
    results = {}
    for w in a.workloads.split(","):
        for rep in range(a.reps):
            for name, alloc, preload in CONFIGS:
                f = run_one(bench, lib, w, alloc, preload, a.scale)
                if f is None:
                    print("skipped: no CUDA device")
                    return 0
                results.setdefault((w, name), []).append(f)
    print(f"Command: `tools/bench/gpu/run_gpu.py --reps {a.reps} --scale {a.scale} --workloads {a.workloads}`\n")
    print("| workload | raw s | async s | cachealloc s | speed-up over raw | vs async | reserved/live raw | async | cachealloc |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in a.workloads.split(","):
        med = {n: statistics.median(float(f["seconds"]) for f in results[(w, n)]) for n, _, _ in CONFIGS}
        ratio = {}
        for n, _, _ in CONFIGS:
            f = results[(w, n)][-1]
            live = int(f["peak_live"])
            ratio[n] = f"{int(f['peak_reserved']) / live:.2f}" if live else "-"
        print(f"| {w} | {med['raw']:.4f} | {med['async']:.4f} | {med['cachealloc']:.4f} | "
              f"{med['raw'] / med['cachealloc']:.1f}x | {med['cachealloc'] / med['async']:.2f}x | "
              f"{ratio['raw']} | {ratio['async']} | {ratio['cachealloc']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
