#!/usr/bin/env python3
"""Budget sweep: time, peak RSS and large-cache hit rate of cachealloc against CACHEALLOC_CACHE_BYTES.

For each budget and workload (default: large and growth), runs the workload `--reps` times (the
budgets alternate within a repetition) and reports medians, so a user can choose a budget by
looking: where the time stops falling, and what RSS it costs. glibc's time and RSS are measured in
the same run as the reference line. The hit rate is the large pool's, read from the exit summary
(CACHEALLOC_SHOW_STATS to a file).

  tools/bench/sweep.py --lib build/preload/libcachealloc.so --bench-dir build/tools/bench \\
      --budgets 0,16M,32M,64M,128M,256M,512M --chart docs/img/budget-sweep.svg

Standard library only; reuses run.py's process runner.
"""

from __future__ import annotations

import argparse
import html
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

HIT_LINE = re.compile(r"cachealloc:\s+large\s+\d+\s+\d+\s+([0-9.]+)%")


def mib(text: str) -> float:
    units = {"": 1 / 2**20, "K": 1 / 1024, "M": 1, "G": 1024}
    m = re.fullmatch(r"(\d+)([KMG]?)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad budget {text!r}")
    return int(m.group(1)) * units[m.group(2)]


def measure(ctx: bench.Context, workload: bench.Workload, lib: Path | None,
            budget: str | None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".txt") as summary:
        env = {}
        if lib is not None:
            env = {"CACHEALLOC_CACHE_BYTES": budget, "CACHEALLOC_SHOW_STATS": summary.name}
        alloc = bench.Allocator("cachealloc" if lib else "glibc", lib, env)
        r = bench.run_one(ctx, workload, alloc)
        hit = None
        found = HIT_LINE.findall(Path(summary.name).read_text(errors="replace"))
        if found:
            hit = float(found[-1])
    if r["error"]:
        raise RuntimeError(f"{workload.name} budget {budget}: {r['error']}")
    return {"s": r["seconds"], "rss": r["maxrss_kib"] / 1024, "hit": hit}


def polyline(points: list[tuple[float, float]], color: str) -> str:
    return (f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')


def draw(path: Path, budgets: list[str], rows: dict, workloads: list[str], caption: str) -> None:
    panels = [("time (s, median)", "s"), ("peak RSS (MiB, median)", "rss"),
              ("large-cache hit rate (%)", "hit")]
    colors = {"large": "#d62728", "growth": "#1f77b4", "realloc": "#2ca02c", "mixed": "#9467bd"}
    pw, ph, left, top = 300, 220, 60, 50
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + 3 * (pw + 70)}" height="{top + ph + 110}" '
           'font-family="sans-serif" font-size="11">', '<rect width="100%" height="100%" fill="white"/>']
    for pi, (title, key) in enumerate(panels):
        x0 = left + pi * (pw + 70)
        vals = [rows[w][b][key] for w in workloads for b in budgets if rows[w][b][key] is not None]
        vals += [rows[w]["glibc"][key] for w in workloads if key != "hit"]
        hi = max(vals + [1e-9]) * 1.1
        svg.append(f'<text x="{x0 + pw / 2}" y="{top - 20}" text-anchor="middle" font-weight="bold">'
                   f'{html.escape(title)}</text>')
        svg.append(f'<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        for t in range(5):
            v = hi * t / 4
            y = top + ph - ph * t / 4
            svg.append(f'<text x="{x0 - 5}" y="{y + 4:.1f}" text-anchor="end">{v:.3g}</text>')
        def px(i: int) -> float:
            return x0 + pw * (i + 0.5) / len(budgets)
        for i, b in enumerate(budgets):
            svg.append(f'<text x="{px(i):.1f}" y="{top + ph + 15}" text-anchor="middle">{b}</text>')
        for w in workloads:
            pts = [(px(i), top + ph - ph * rows[w][b][key] / hi) for i, b in enumerate(budgets)
                   if rows[w][b][key] is not None]
            if pts:
                svg.append(polyline(pts, colors.get(w, "#333")))
            if key != "hit":
                y = top + ph - ph * rows[w]["glibc"][key] / hi
                svg.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                           f'stroke="{colors.get(w, "#333")}" stroke-dasharray="4,3"/>')
    lx = left
    for w in workloads:
        svg.append(f'<rect x="{lx}" y="{top + ph + 35}" width="12" height="12" fill="{colors.get(w, "#333")}"/>')
        svg.append(f'<text x="{lx + 16}" y="{top + ph + 45}">{html.escape(w)} (dashed: glibc)</text>')
        lx += 170
    svg.append(f'<text x="{left}" y="{top + ph + 75}">budget: CACHEALLOC_CACHE_BYTES</text>')
    svg.append(f'<text x="{left}" y="{top + ph + 95}" fill="#444" font-size="10">{html.escape(caption)}</text>')
    svg.append("</svg>")
    path.write_text("\n".join(svg) + "\n")


def main() -> int:
    here = Path(__file__).resolve().parent
    root = here.parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", type=Path, default=root / "build/preload/libcachealloc.so")
    ap.add_argument("--bench-dir", type=Path, default=root / "build/tools/bench")
    ap.add_argument("--budgets", default="0,16M,32M,64M,128M,256M,512M")
    ap.add_argument("--workloads", default="large,growth")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--chart", type=Path)
    args = ap.parse_args()
    budgets = args.budgets.split(",")
    for b in budgets:
        mib(b)
    wanted = args.workloads.split(",")
    workloads = [w for w in bench.WORKLOADS if w.name in wanted and w.binary]
    launcher = args.bench_dir / "bench-launch"
    ctx = bench.Context(bench_dir=args.bench_dir, python=sys.executable, sqlite3=None, timeout=600,
                        launcher=launcher if launcher.exists() else None)
    runs: dict = {w.name: {b: [] for b in budgets + ["glibc"]} for w in workloads}
    for rep in range(args.reps):
        for w in workloads:
            order = budgets[rep % len(budgets):] + budgets[:rep % len(budgets)]
            runs[w.name]["glibc"].append(measure(ctx, w, None, None))
            for b in order:
                runs[w.name][b].append(measure(ctx, w, args.lib, b))
    rows: dict = {}
    print(f"| workload | budget | time s (median) | peak RSS MiB | large hit % |")
    print("|---|---|---|---|---|")
    for w in workloads:
        rows[w.name] = {}
        for b in budgets + ["glibc"]:
            rs = runs[w.name][b]
            hits = [r["hit"] for r in rs if r["hit"] is not None]
            row = {"s": statistics.median(r["s"] for r in rs),
                   "rss": statistics.median(r["rss"] for r in rs),
                   "hit": statistics.median(hits) if hits else None}
            rows[w.name][b] = row
            hit = f"{row['hit']:.1f}" if row["hit"] is not None else "-"
            print(f"| {w.name} | {b} | {row['s']:.3f} | {row['rss']:.1f} | {hit} |")
    if args.chart:
        draw(args.chart, budgets, rows, [w.name for w in workloads],
             f"tools/bench/sweep.py --budgets {args.budgets} --reps {args.reps}; medians")
    return 0


if __name__ == "__main__":
    sys.exit(main())
