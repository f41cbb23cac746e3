#!/usr/bin/env python3
"""Runs the cachealloc benchmark workloads under several allocators and reports a Markdown table.

Each workload runs once per allocator per repetition; within a repetition the allocators
alternate (and their order rotates from one repetition to the next), so slow drift on a shared
machine spreads over all of them instead of penalising whichever ran last. The allocator is chosen
with LD_PRELOAD: glibc (none), mimalloc, jemalloc, tcmalloc, cachealloc (--lib), and any
`--variant NAME:ENV=VAL[,ENV=VAL]` (cachealloc with extra environment). A library that is not
installed is skipped with a note.

Reported per workload: median time (the program's own measured section; whole-process wall time
for the real programs), ratio to the fastest allocator and to glibc, and peak RSS (ru_maxrss of the
child from os.wait4), each with a geometric-mean row.

  tools/bench/run.py                         # everything, 5 repetitions, table on stdout
  tools/bench/run.py --reps 3 --workloads churn,large --markdown out.md --json out.json
  tools/bench/run.py --variant nostats:CACHEALLOC_STATS=0 --variant check:CACHEALLOC_CHECK=1
  tools/bench/run.py --chart ratios.svg
  tools/bench/run.py --callgrind             # instruction counts, one run each, small sizes

Standard library only (plus valgrind for --callgrind).
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SYSLIB = Path("/usr/lib/x86_64-linux-gnu")


# --------------------------------------------------------------------------------------------
# Workloads and allocators
# --------------------------------------------------------------------------------------------

@dataclass
class Workload:
    name: str
    what: str
    binary: bool = True          # a bench-<name> program from the build (else a real program)
    callgrind_scale: float = 0.0  # 0: not part of the default --callgrind set
    env: dict = field(default_factory=dict)

    def command(self, ctx: "Context", scale: float | None = None) -> tuple[list[str], Path | None]:
        """argv and an optional stdin file."""
        if self.binary:
            argv = [str(ctx.bench_dir / f"bench-{self.name}")]
            if scale is not None:
                argv += ["--scale", repr(scale)]
            return argv, None
        if self.name == "python":
            return [ctx.python, str(HERE / "programs" / "dict_str.py")] + (
                [repr(scale)] if scale is not None else []), None
        if self.name == "sqlite":
            return [ctx.sqlite3, ":memory:"], HERE / "programs" / "sqlite.sql"
        raise ValueError(self.name)


WORKLOADS = [
    Workload("churn", "small-object churn, 16-256 B, random free order, 10k live, 1 thread",
             callgrind_scale=0.02),
    Workload("mixed", "sizes 16 B-1 MiB log-uniform, 512 live, every page touched",
             callgrind_scale=0.02),
    # Not in the default --callgrind set: its cost is page faults, which callgrind does not see.
    Workload("large", "recurring 1-64 MiB buffers, each written in full then freed"),
    Workload("growth", "48 strings (realloc per append) and a doubling vector growing to 32 MiB, "
             "3 rounds"),
    Workload("prodcons", "producer thread allocates 16-512 B, consumer thread frees"),
    Workload("realloc", "strings (realloc per append) and vectors (doubling) growing",
             callgrind_scale=0.02),
    Workload("threads", "2 threads, each doing the churn workload on its own objects",
             callgrind_scale=0.02),
    Workload("thread_churn", "50 rounds of 32 short-lived threads, 16 B-2 KiB, half freed by "
             "the next round", callgrind_scale=0.25),
    Workload("python", "real program: CPython dict/str-heavy script, PYTHONMALLOC=malloc",
             binary=False, env={"PYTHONMALLOC": "malloc"}),
    Workload("sqlite", "real program: sqlite3 in-memory database, 200k rows, indexes, GROUP BY",
             binary=False),
]


@dataclass
class Allocator:
    name: str
    lib: Path | None              # None: glibc, no preload
    env: dict = field(default_factory=dict)
    skipped: str | None = None    # why it cannot run
    variant: bool = False         # a cachealloc configuration (--variant), not a peer


PEERS = [
    ("glibc", None),
    ("mimalloc", SYSLIB / "libmimalloc.so.2"),
    ("jemalloc", SYSLIB / "libjemalloc.so.2"),
    ("tcmalloc", SYSLIB / "libtcmalloc_minimal.so.4"),
]


@dataclass
class Context:
    bench_dir: Path
    python: str
    sqlite3: str | None
    timeout: float
    launcher: Path | None  # bench-launch, for honest ru_maxrss; None: run children directly


# --------------------------------------------------------------------------------------------
# Running one process
# --------------------------------------------------------------------------------------------

BENCH_LINE = re.compile(r"^BENCH (.*)$", re.M)


def parse_bench_line(text: str) -> dict:
    m = BENCH_LINE.search(text)
    if not m:
        return {}
    return dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)


def child_env(alloc: Allocator, workload: Workload, with_preload: bool = True) -> dict:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(workload.env)
    if alloc.lib is not None and with_preload:
        env["LD_PRELOAD"] = str(alloc.lib)
    env.update(alloc.env)
    return env


LAUNCH_LINE = re.compile(r"^LAUNCH rc=(-?\d+) wall=([0-9.]+) maxrss_kib=(\d+)$", re.M)


def run_process(argv: list[str], env: dict, stdin: Path | None, timeout: float,
                launcher: Path | None = None, preload: Path | None = None) -> dict:
    """Runs argv; returns exit code, wall time, ru_maxrss (KiB), stdout and stderr.

    With a launcher (bench-launch), the launcher forks the program and reports its rusage, and
    the program gets LD_PRELOAD=preload; without one, env must already hold LD_PRELOAD and
    ru_maxrss comes from our own os.wait4 (and then includes this interpreter's RSS: see
    launch.cpp)."""
    if launcher:
        argv = [str(launcher)] + (["--preload", str(preload)] if preload else []) + (
            ["--stdin", str(stdin)] if stdin else []) + ["--"] + argv
        stdin = None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            (open(stdin, "rb") if stdin else open(os.devnull, "rb")) as inp:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=inp, stdout=out, stderr=err, env=env,
                                start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        result = {
            "rc": proc.returncode,
            "wall": wall,
            "maxrss_kib": rusage.ru_maxrss,
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
            "timed_out": timed_out.is_set(),
        }
    if launcher:
        found = LAUNCH_LINE.findall(result["stderr"])
        if found and result["rc"] == 0:
            rc, wall, rss = found[-1]
            result.update(rc=int(rc), wall=float(wall), maxrss_kib=int(rss))
        elif not result["timed_out"]:
            result["rc"] = result["rc"] or 127
    return result


def run_one(ctx: Context, workload: Workload, alloc: Allocator) -> dict:
    argv, stdin = workload.command(ctx)
    env = child_env(alloc, workload, with_preload=ctx.launcher is None)
    r = run_process(argv, env, stdin, ctx.timeout, ctx.launcher, alloc.lib)
    fields = parse_bench_line(r["stdout"])
    result = {
        "wall": r["wall"],
        "maxrss_kib": r["maxrss_kib"],
        "checksum": fields.get("checksum"),
        "ops": int(fields["ops"]) if "ops" in fields else None,
        # The C++ workloads time their own measured section; real programs are timed from outside.
        "seconds": float(fields["seconds"]) if "seconds" in fields else r["wall"],
        "error": None,
    }
    if r["timed_out"]:
        result["error"] = f"timed out after {ctx.timeout:g} s"
    elif r["rc"] != 0:
        lines = [x for x in r["stderr"].splitlines()
                 if x.strip() and not x.startswith("LAUNCH ")]
        result["error"] = f"exit {r['rc']}: {(lines or [''])[-1][:160]}"
    elif fields.get("status") != "ok":
        result["error"] = f"bad result line: {r['stdout'].strip()[:160]!r}"
    return result


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------

def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarise(runs: dict, workloads: list[Workload], allocs: list[Allocator]) -> dict:
    """runs[w][a] = list of run results -> per (w, a) medians and ratios."""
    summary = {}
    for w in workloads:
        row = {}
        for a in allocs:
            rs = runs.get(w.name, {}).get(a.name, [])
            good = [r for r in rs if not r["error"]]
            errors = [r["error"] for r in rs if r["error"]]
            if not good or errors:
                row[a.name] = {"error": errors[0] if errors else "no runs", "runs": len(rs)}
                continue
            secs = [r["seconds"] for r in good]
            med = statistics.median(secs)
            row[a.name] = {
                "median_s": med,
                "min_s": min(secs),
                "max_s": max(secs),
                "spread": (max(secs) - min(secs)) / med if med > 0 else 0.0,
                "maxrss_mib": statistics.median(r["maxrss_kib"] for r in good) / 1024.0,
                "runs": len(good),
            }
        ok = {k: v for k, v in row.items() if "median_s" in v}
        fastest = min((v["median_s"] for v in ok.values()), default=None)
        base = ok.get("glibc", {}).get("median_s")
        for v in ok.values():
            v["vs_fastest"] = v["median_s"] / fastest if fastest else None
            v["vs_glibc"] = v["median_s"] / base if base else None
        summary[w.name] = row
    return summary


def checksum_problems(runs: dict) -> list[str]:
    """The C++ workloads and the Python script print a checksum that must not depend on the
    allocator."""
    problems = []
    for w, per_alloc in runs.items():
        seen = {}
        for a, rs in per_alloc.items():
            for r in rs:
                if r["checksum"] is not None and not r["error"]:
                    seen.setdefault(r["checksum"], set()).add(a)
        if len(seen) > 1:
            desc = "; ".join(f"{c} from {', '.join(sorted(s))}" for c, s in seen.items())
            problems.append(f"{w}: checksums differ between allocators ({desc})")
    return problems


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------

def machine_description() -> dict:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
                break
    except OSError:
        pass
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or "libc ?"
    except (ValueError, OSError):
        libc = "libc ?"
    try:
        load = "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = ""
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "libc": libc,
        "load_at_start": load,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def package_version(path: Path | None) -> str:
    """The Debian package and version that own a library, when dpkg knows it."""
    if path is None or not shutil.which("dpkg-query"):
        return ""
    try:
        pkg = subprocess.run(["dpkg-query", "-S", str(path)], capture_output=True, text=True,
                             timeout=10).stdout.split(":")[0].strip()
        if not pkg:
            return ""
        ver = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        return f"{pkg} {ver}".strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_revision() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


NOISY_SPREAD = 0.25  # cells whose runs spread more than this get a dagger


def fmt_cell(v: dict, key: str, fmt: str, bold_if_one: bool = False) -> str:
    if "error" in v:
        return "FAILED"
    x = v.get(key)
    if x is None:
        return "–"
    s = fmt.format(x)
    return f"**{s}**" if bold_if_one and abs(v.get("vs_fastest", 2) - 1.0) < 1e-12 else s


def markdown(summary: dict, workloads: list[Workload], allocs: list[Allocator], meta: dict,
             notes: list[str]) -> str:
    ran = [a for a in allocs if not a.skipped]
    names = [a.name for a in ran]
    head = "| workload | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names) + "\n"
    lines = []
    m = meta["machine"]
    lines.append(f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory']}, {m['kernel']}, "
                 f"{m['libc']}; {m['load_at_start']} at start; {m['date']}.  ")
    lines.append(f"Command: `{meta['command']}` (cachealloc {meta['revision'] or '?'}).  ")
    lines.append(f"Median of {meta['reps']} runs per cell; the allocators alternate within each "
                 "repetition. Time is the measured section of each C++ workload, and the whole "
                 "process for the real programs (python, sqlite).")
    lines.append("")

    def table(title: str, cell, foot_label: str, foot) -> None:
        lines.append(f"**{title}**")
        lines.append("")
        lines.append(head.rstrip("\n"))
        for w in workloads:
            row = summary[w.name]
            lines.append(f"| {w.name} | " + " | ".join(cell(row[n]) for n in names) + " |")
        lines.append(f"| *{foot_label}* | " + " | ".join(foot(n) for n in names) + " |")
        lines.append("")

    def gm(key: str, n: str, fmt: str) -> str:
        g = geomean([summary[w.name][n].get(key) for w in workloads])
        return f"*{fmt.format(g)}*" if g else "–"

    table("Time: median seconds (ratio to the fastest allocator; 1.00× in bold)",
          lambda v: ("FAILED" if "error" in v else
                     fmt_cell(v, "median_s", "{:.3f}") + " (" +
                     fmt_cell(v, "vs_fastest", "{:.2f}×", bold_if_one=True) + ")" +
                     (" †" if v.get("spread", 0) > NOISY_SPREAD else "")),
          "geomean of ratio to fastest", lambda n: gm("vs_fastest", n, "{:.2f}×"))
    table("Time relative to glibc (below 1 is faster than glibc)",
          lambda v: fmt_cell(v, "vs_glibc", "{:.2f}"),
          "geomean", lambda n: gm("vs_glibc", n, "{:.2f}"))
    table("Peak RSS, MiB (ru_maxrss of the process, median of runs)",
          lambda v: fmt_cell(v, "maxrss_mib", "{:.1f}"),
          "geomean", lambda n: gm("maxrss_mib", n, "{:.1f}"))

    spreads = [(v["spread"], w, a) for w, row in summary.items() for a, v in row.items()
               if "spread" in v]
    if spreads and meta["reps"] > 1:
        s, w, a = max(spreads)
        lines.append(f"† marks cells whose runs spread (max−min)/median by more than "
                     f"{NOISY_SPREAD * 100:.0f}%: the machine was busy or the workload depends "
                     f"on scheduling; do not read much into them. Largest spread: {s * 100:.0f}% "
                     f"({w}, {a}); median spread "
                     f"{statistics.median(x[0] for x in spreads) * 100:.0f}%.")
        lines.append("")
    lines.append("Allocators:")
    for a in allocs:
        what = "no preload" if a.lib is None else f"`{a.lib}`"
        if a.env:
            what += " with " + " ".join(f"`{k}={v}`" for k, v in a.env.items())
        if a.skipped:
            what += f" — **skipped: {a.skipped}**"
        elif meta["versions"].get(a.name):
            what += f" ({meta['versions'][a.name]})"
        lines.append(f"- {a.name}: {what}")
    lines.append("")
    lines.append("Workloads:")
    for w in workloads:
        lines.append(f"- {w.name}: {w.what}")
    if notes:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines) + "\n"


FIXED_COLORS = {"glibc": "#7f7f7f", "mimalloc": "#1f77b4", "jemalloc": "#2ca02c",
                "tcmalloc": "#9467bd", "cachealloc": "#d62728"}
VARIANT_COLORS = ["#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#f7b6d2"]


def chart_colors(names: list[str]) -> list[str]:
    """The same colour for an allocator in every chart; cachealloc variants in warm tones."""
    spare = iter(VARIANT_COLORS * 4)
    return [FIXED_COLORS.get(n) or next(spare) for n in names]


def svg_panel(x0: float, y0: float, w: float, h: float, title: str, groups: list[str],
              names: list[str], colors: list[str], cells: dict, cap: float) -> list[str]:
    """One grouped bar panel: cells[(group, name)] = (value, low, high) as ratios to the best
    (1 = best), drawn on a linear axis from 0.8 to `cap`; bars past it are cut and labelled."""
    out = [f'<text x="{x0 + w / 2:.1f}" y="{y0 - 22:.1f}" text-anchor="middle" '
           f'font-weight="bold">{html.escape(title)}</text>']
    lo = 0.8

    def y(v: float) -> float:
        return y0 + h - (min(v, cap) - lo) / (cap - lo) * h

    tick = 0.8
    while tick <= cap + 1e-9:
        yy = y(tick)
        out.append(f'<line x1="{x0:.1f}" x2="{x0 + w:.1f}" y1="{yy:.1f}" y2="{yy:.1f}" '
                   f'stroke="{"#000" if abs(tick - 1) < 1e-9 else "#ddd"}"/>')
        out.append(f'<text x="{x0 - 6:.1f}" y="{yy + 4:.1f}" text-anchor="end">{tick:.1f}</text>')
        tick = round(tick + (0.2 if cap <= 2.5 else 0.4), 6)
    gw = w / max(1, len(groups))
    bw = gw * 0.8 / max(1, len(names))
    for gi, g in enumerate(groups):
        gx = x0 + gi * gw + gw * 0.1
        out.append(f'<text x="{gx + gw * 0.4:.1f}" y="{y0 + h + 16:.1f}" text-anchor="middle">'
                   f'{html.escape(g)}</text>')
        for ni, n in enumerate(names):
            v = cells.get((g, n))
            if v is None:
                continue
            val, low, high = v
            bx = gx + ni * bw
            top = y(val)
            out.append(f'<rect x="{bx:.1f}" y="{top:.1f}" width="{bw * 0.92:.1f}" '
                       f'height="{max(0.0, y(lo) - top):.1f}" fill="{colors[ni]}">'
                       f'<title>{html.escape(n)}: {val:.2f}x</title></rect>')
            if high > low:
                cx = bx + bw * 0.46
                out.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(high):.1f}" '
                           f'y2="{y(low):.1f}" stroke="#222" stroke-width="1"/>')
                for e in (low, high):
                    out.append(f'<line x1="{cx - 2.5:.1f}" x2="{cx + 2.5:.1f}" y1="{y(e):.1f}" '
                               f'y2="{y(e):.1f}" stroke="#222" stroke-width="1"/>')
            if val > cap:
                out.append(f'<text x="{bx + bw * 0.46:.1f}" y="{top - 3:.1f}" '
                           f'text-anchor="middle" font-size="9">{val:.1f}</text>')
    return out


def draw_chart(path: Path, summary: dict, workloads: list[Workload], allocs: list[Allocator],
               caption: str) -> str | None:
    """Time and peak RSS side by side, each relative to the best allocator of the workload, with
    the spread of the runs as error bars (time) and the geomean as the last group. Peers only: the
    variants (--variant) go to a second file named like the first with "-variants". SVG, written
    with the standard library. Returns an error message or None."""
    peers = [a for a in allocs if not a.skipped and not a.variant]
    variants = [a for a in allocs if not a.skipped and a.variant]
    sets = [(path, peers)]
    if variants:
        sets.append((path.with_name(path.stem + "-variants" + path.suffix),
                     [a for a in peers if a.name == "cachealloc"] + variants))
    for out_path, chosen in sets:
        names = [a.name for a in chosen]
        colors = chart_colors(names)
        groups = [w.name for w in workloads] + ["geomean"]
        time_cells, rss_cells = {}, {}
        for w in workloads:
            row = summary[w.name]
            ok = [n for n in names if "median_s" in row.get(n, {})]
            if not ok:
                continue
            best_t = min(row[n]["median_s"] for n in ok)
            best_r = min(row[n]["maxrss_mib"] for n in ok)
            for n in ok:
                v = row[n]
                time_cells[(w.name, n)] = (v["median_s"] / best_t, v["min_s"] / best_t,
                                           v["max_s"] / best_t)
                r = v["maxrss_mib"] / best_r if best_r > 0 else 1.0
                rss_cells[(w.name, n)] = (r, r, r)
        for cells in (time_cells, rss_cells):
            for n in names:
                vals = [cells[(w.name, n)][0] for w in workloads if (w.name, n) in cells]
                g = geomean(vals) if len(vals) == len(workloads) else None
                if g:
                    cells[("geomean", n)] = (g, g, g)
        panel_w = max(420, 34 * len(groups) * max(1, len(names)) / 2)
        width = 2 * panel_w + 160
        height = 430
        svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
               f'font-family="sans-serif" font-size="11">',
               f'<rect width="100%" height="100%" fill="white"/>']
        svg += svg_panel(60, 60, panel_w, 290, "time / fastest (median; bars: min-max of runs)",
                         groups, names, colors, time_cells, 2.2)
        svg += svg_panel(panel_w + 130, 60, panel_w, 290, "peak RSS / leanest (median)",
                         groups, names, colors, rss_cells, 3.0)
        lx = 60
        for n, c in zip(names, colors):
            svg.append(f'<rect x="{lx}" y="385" width="12" height="12" fill="{c}"/>')
            svg.append(f'<text x="{lx + 16}" y="395">{html.escape(n)}</text>')
            lx += 24 + 7 * len(n) + 16
        svg.append(f'<text x="60" y="420" fill="#444" font-size="10">{html.escape(caption)}</text>')
        svg.append("</svg>")
        try:
            out_path.write_text("\n".join(svg) + "\n")
        except OSError as e:
            return f"cannot write {out_path}: {e}"
    return None


# --------------------------------------------------------------------------------------------
# Callgrind mode
# --------------------------------------------------------------------------------------------

def run_callgrind(ctx: Context, workloads: list[Workload], allocs: list[Allocator],
                  scale_override: float | None) -> tuple[str, dict]:
    """One run per (workload, allocator) under callgrind, counting only the instructions of the
    measured section (functions named bench_measured*)."""
    valgrind = shutil.which("valgrind")
    if not valgrind:
        sys.exit("run.py: --callgrind needs valgrind")
    ran = [a for a in allocs if not a.skipped]
    rows = []
    for w in workloads:
        if not w.binary:
            continue
        scale = scale_override or w.callgrind_scale or 0.02
        row = {}
        for a in ran:
            with tempfile.TemporaryDirectory() as tmp:
                outfile = Path(tmp) / "callgrind.out"
                argv, stdin = w.command(ctx, scale)
                argv = [valgrind, "--tool=callgrind", f"--callgrind-out-file={outfile}",
                        "--collect-atstart=no", "--toggle-collect=bench_measured*"] + argv
                env = child_env(a, w)
                # Publication is timed (5 ms, and a 250 ms thread): under valgrind's ~50x slowdown
                # it would run ~50x more often per operation and make the counts vary run to run.
                # Variants that set CACHEALLOC_STATS themselves keep their setting.
                env.setdefault("CACHEALLOC_STATS", "0")
                r = run_process(argv, env, stdin, ctx.timeout * 20)
                fields = parse_bench_line(r["stdout"])
                total = None
                if outfile.exists():
                    m = re.search(r"^(?:summary|totals):\s+(\d+)", outfile.read_text(), re.M)
                    total = int(m.group(1)) if m else None
                if r["rc"] != 0 or total is None or fields.get("status") != "ok":
                    tail = (r["stderr"].strip().splitlines() or [""])[-1][:120]
                    row[a.name] = {"error": f"exit {r['rc']}: {tail}"}
                else:
                    ops = int(fields.get("ops", 0)) or None
                    row[a.name] = {"ir": total, "ops": ops,
                                   "ir_per_op": total / ops if ops else None}
                print(f"  callgrind {w.name:9s} {a.name:12s} "
                      f"{row[a.name].get('ir', row[a.name].get('error'))}", file=sys.stderr)
        best = min((v["ir"] for v in row.values() if "ir" in v), default=None)
        for v in row.values():
            if "ir" in v:
                v["vs_fewest"] = v["ir"] / best
        rows.append((w, scale, row))
    names = [a.name for a in ran]
    out = ["**Instructions executed in the measured section (callgrind; per op, and ratio to the "
           "fewest)**", "",
           "| workload (scale) | " + " | ".join(names) + " |",
           "|---|" + "---:|" * len(names)]
    for w, scale, row in rows:
        cells = []
        for n in names:
            v = row[n]
            if "error" in v:
                cells.append("FAILED")
            else:
                per = f"{v['ir_per_op']:.0f}/op " if v["ir_per_op"] else ""
                cells.append(f"{per}({v['vs_fewest']:.2f}×)")
        out.append(f"| {w.name} ({scale:g}) | " + " | ".join(cells) + " |")
    gms = [geomean([row[n].get("vs_fewest") for _, _, row in rows]) for n in names]
    out.append("| *geomean of ratio to fewest* | " +
               " | ".join(f"*{g:.2f}×*" if g else "–" for g in gms) + " |")
    out.append("")
    out.append("cachealloc runs with CACHEALLOC_STATS=0 here (timed publication under valgrind's slowdown would not repeat). Instruction counts are repeatable on a noisy machine but ignore page faults, cache "
               "misses and lock contention, so `large` (page faults) is left out by default, and "
               "so is `prodcons` (its spin-waits make the count depend on scheduling); name them "
               "with --workloads to include them anyway.")
    raw = {w.name: {"scale": scale, "allocators": row} for w, scale, row in rows}
    return "\n".join(out) + "\n", raw


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_variant(text: str, lib: Path) -> Allocator:
    name, sep, rest = text.partition(":")
    if not sep or not name or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected NAME:ENV=VAL[,ENV=VAL]")
    env = {}
    for item in filter(None, rest.split(",")):
        k, eq, v = item.partition("=")
        if not eq or not k:
            raise argparse.ArgumentTypeError(f"--variant {text!r}: {item!r} is not ENV=VAL")
        env[k] = v
    return Allocator(name, lib, env, variant=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Workloads:\n" + "\n".join(
                                    f"  {w.name:9s} {w.what}" for w in WORKLOADS))
    p.add_argument("--build", default="build",
                   help="meson build directory holding preload/libcachealloc.so and "
                        "tools/bench/bench-* (default: build, relative to the repository)")
    p.add_argument("--lib", help="the cachealloc library (default: BUILD/preload/libcachealloc.so)")
    p.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    p.add_argument("--workloads", help="comma-separated subset (default: all)")
    p.add_argument("--allocators", help="comma-separated subset of glibc,mimalloc,jemalloc,"
                                        "tcmalloc,cachealloc (default: all); variants always run")
    p.add_argument("--allocator", action="append", default=[], metavar="NAME=PATH",
                   help="an extra peer preloaded from PATH (repeatable), e.g. "
                        "--allocator mimalloc3=/opt/mimalloc-3.4.3/libmimalloc.so")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:ENV=VAL[,ENV=VAL]",
                   help="an extra cachealloc configuration (repeatable)")
    p.add_argument("--json", type=Path, help="write all runs and the summary as JSON")
    p.add_argument("--markdown", type=Path, help="write the Markdown report to this file too")
    p.add_argument("--chart", type=Path, help="draw time and peak RSS relative to the best as an "
                   "SVG (variants in FILE-variants.svg)")
    p.add_argument("--callgrind", action="store_true",
                   help="count instructions under valgrind instead of timing (one run each)")
    p.add_argument("--scale", type=float,
                   help="with --callgrind: the --scale passed to every workload "
                        "(default: a per-workload small size)")
    p.add_argument("--timeout", type=float, default=60.0, help="per-run limit in s (default 60)")
    p.add_argument("--python", default="/usr/bin/python3" if Path("/usr/bin/python3").exists()
                   else sys.executable, help="interpreter for the python workload")
    args = p.parse_args()

    build = Path(args.build)
    if not build.is_absolute() and not build.exists():
        build = REPO / build
    lib = Path(args.lib) if args.lib else build / "preload" / "libcachealloc.so"
    if not lib.is_absolute() and not lib.exists() and (REPO / lib).exists():
        lib = REPO / lib
    lib = lib.resolve() if lib.exists() else lib

    allocs = [Allocator(n, path) for n, path in PEERS]
    for spec in args.allocator:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            p.error(f"--allocator {spec!r}: expected NAME=PATH")
        allocs.append(Allocator(name.strip(), Path(path).expanduser().resolve()))
    allocs.append(Allocator("cachealloc", lib))
    if args.allocators:
        wanted = [x.strip() for x in args.allocators.split(",") if x.strip()]
        unknown = set(wanted) - {a.name for a in allocs}
        if unknown:
            p.error(f"unknown allocator(s): {', '.join(sorted(unknown))}")
        allocs = [a for a in allocs if a.name in wanted]
    try:
        variants = [parse_variant(v, lib) for v in args.variant]
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    if len({a.name for a in allocs + variants}) != len(allocs + variants):
        p.error("allocator and variant names must be unique")
    allocs += variants
    for a in allocs:
        if a.lib is not None and not a.lib.exists():
            a.skipped = f"{a.lib} not found" + (
                " (build it: meson setup build && ninja -C build)" if a.lib == lib else "")

    workloads = WORKLOADS
    if args.workloads:
        wanted = [x.strip() for x in args.workloads.split(",") if x.strip()]
        unknown = set(wanted) - {w.name for w in WORKLOADS}
        if unknown:
            p.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
        workloads = [w for w in WORKLOADS if w.name in wanted]
    elif args.callgrind:
        workloads = [w for w in WORKLOADS if w.callgrind_scale]

    bench_dir = build / "tools" / "bench"
    launcher = bench_dir / "bench-launch"
    ctx = Context(bench_dir=bench_dir, python=args.python, sqlite3=shutil.which("sqlite3"),
                  timeout=args.timeout, launcher=launcher if launcher.exists() else None)
    notes = []
    if not ctx.launcher:
        notes.append(f"{launcher} not built: peak RSS includes the runner's own (~20 MiB)")
    if any(w.binary for w in workloads) and not (bench_dir / "bench-churn").exists():
        sys.exit(f"run.py: no workload programs in {bench_dir}; build them first: "
                 f"meson setup {args.build} && ninja -C {args.build}")
    if not ctx.sqlite3 and any(w.name == "sqlite" for w in workloads):
        workloads = [w for w in workloads if w.name != "sqlite"]
        notes.append("sqlite skipped: no sqlite3 program on PATH")
    for a in allocs:
        if a.skipped:
            print(f"run.py: skipping {a.name}: {a.skipped}", file=sys.stderr)
    ran = [a for a in allocs if not a.skipped]
    if not ran:
        sys.exit("run.py: no allocator to run")

    command = "tools/bench/run.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    if args.callgrind:
        report, raw = run_callgrind(ctx, workloads, allocs, args.scale)
        report = (f"Command: `{command}` (cachealloc {git_revision() or '?'}).\n\n" + report +
                  "".join(f"\n- {n}" for n in notes))
        print(report)
        if args.markdown:
            args.markdown.write_text(report)
        if args.json:
            args.json.write_text(json.dumps({"command": command, "callgrind": raw,
                                             "notes": notes}, indent=2) + "\n")
        failed = any("error" in v for r in raw.values() for v in r["allocators"].values())
        return 1 if failed else 0

    runs: dict = {w.name: {a.name: [] for a in ran} for w in workloads}
    t_start = time.perf_counter()
    for rep in range(args.reps):
        order = ran[rep % len(ran):] + ran[:rep % len(ran)]  # rotate who goes first
        for w in workloads:
            for a in order:
                r = run_one(ctx, w, a)
                runs[w.name][a.name].append(r)
                status = r["error"] or f"{r['seconds']:.3f} s  {r['maxrss_kib'] / 1024:.1f} MiB"
                print(f"[{rep + 1}/{args.reps}] {w.name:9s} {a.name:12s} {status}",
                      file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t_start

    summary = summarise(runs, workloads, allocs)
    problems = checksum_problems(runs)
    failures = [f"{w}/{a}: {v['error']}" for w, row in summary.items() for a, v in row.items()
                if "error" in v and not any(x.name == a and x.skipped for x in allocs)]
    notes += problems + [f"FAILED {f}" for f in failures]
    meta = {
        "machine": machine_description(),
        "command": command,
        "revision": git_revision(),
        "reps": args.reps,
        "elapsed_s": round(elapsed, 1),
        "versions": {a.name: package_version(a.lib) for a in ran if a.lib and a.name in
                     dict(PEERS)},
    }
    report = markdown(summary, workloads, allocs, meta, notes)
    print(report)
    print(f"run.py: {len(workloads)} workloads x {len(ran)} allocators x {args.reps} reps in "
          f"{elapsed:.0f} s", file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(report)
    if args.json:
        args.json.write_text(json.dumps({
            "meta": meta,
            "allocators": [{"name": a.name, "lib": str(a.lib) if a.lib else None, "env": a.env,
                            "skipped": a.skipped} for a in allocs],
            "workloads": [{"name": w.name, "what": w.what} for w in workloads],
            "runs": runs,
            "summary": summary,
            "notes": notes,
        }, indent=2) + "\n")
    if args.chart:
        err = draw_chart(args.chart, summary, workloads, allocs,
                         f"{command}  (cachealloc {git_revision() or '?'}, median of {args.reps} "
                         f"runs per cell, {os.cpu_count()} CPUs)")
        if err:
            print(f"run.py: {err}", file=sys.stderr)
            return 1
    return 1 if problems or failures else 0


if __name__ == "__main__":
    sys.exit(main())
