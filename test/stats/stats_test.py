#!/usr/bin/env python3
"""stats_test.py LIBCACHEALLOC WORKLOAD CLI CASE - the live-statistics tests (suite 'stats').

Runs stats_workload under LD_PRELOAD (the interpreter itself is never preloaded) and checks what
cachealloc-stats reports. Each case prints one line and exits 0 on success, 1 on failure (with the
reason), 77 when it cannot run here (e.g. needs root).
"""
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zlib

LIB, WORKLOAD, CLI, CASE = sys.argv[1:5]
SHM = "/dev/shm"


def fail(msg):
    print(f"FAIL: {CASE}: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Workload:
    """stats_workload MODE under the preload, driven line by line."""

    def __init__(self, mode, env=None):
        e = dict(os.environ)
        e["LD_PRELOAD"] = LIB
        e.pop("CACHEALLOC_STATS", None)
        e.update(env or {})
        self.p = subprocess.Popen([WORKLOAD, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=e, text=True)
        self.pid = self.p.pid

    def expect(self, word):
        line = self.p.stdout.readline().split()
        if not line:
            err = self.p.stderr.read()
            fail(f"workload ended before '{word}': {err.strip()}")
        check(line[0] == word, f"workload said {line}, expected {word}")
        return int(line[1])

    def expect_any(self, *words):
        got = {}
        for _ in words:
            line = self.p.stdout.readline().split()
            check(line and line[0] in words and line[0] not in got, f"workload said {line}, expected {words}")
            got[line[0]] = int(line[1])
        return got

    def go(self):
        self.p.stdin.write("\n")
        self.p.stdin.flush()

    def finish(self):
        self.p.stdin.close()
        rc = self.p.wait(timeout=30)
        err = self.p.stderr.read()
        check(rc == 0, f"workload exited {rc}: {err.strip()}")
        return err


def cli(*args, env=None, user=None):
    cmd = [CLI, *args]
    if user is not None:
        cmd = user + cmd
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    e.update(env or {})
    r = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=60)
    return r.returncode, r.stdout, r.stderr


def stats_json(pid, *extra):
    rc, out, err = cli(str(pid), "--json", *extra)
    check(rc == 0, f"cachealloc-stats {pid} --json exited {rc}: {err.strip()}")
    return json.loads(out)


def layout(doc, size, kind="small"):
    rows = [r for r in doc["layouts"] if r["block_size"] == size and r["kind"] == kind]
    return rows[0] if rows else {k: 0 for k in ("blocks_live", "bytes_live", "blocks_cached", "hits", "refills")}


def pool(doc, name):
    return [p for p in doc["pools"] if p["name"] == name][0]


def consistent(doc, where):
    t = doc["totals"]
    check(t["blocks_live"] == t["allocs"] + t["adopts"] - t["frees"],
          f"{where}: blocks_live {t['blocks_live']} != allocs {t['allocs']} + adopts - frees {t['frees']}")
    small, large = pool(doc, "small"), pool(doc, "large")
    for kind, p in (("small", small), ("large", large)):
        rows = [r for r in doc["layouts"] if r["kind"] == kind]
        by_layout = sum(r["blocks_live"] for r in rows)
        check(p["blocks_live"] == by_layout,
              f"{where}: {kind} pool live blocks {p['blocks_live']} != sum over its layouts {by_layout}")
        bytes_by_layout = sum(r["bytes_live"] for r in rows)
        check(p["bytes_live"] == bytes_by_layout,
              f"{where}: {kind} pool live bytes {p['bytes_live']} != sum over its layouts {bytes_by_layout}")
    check(t["blocks_live"] == small["blocks_live"] + large["blocks_live"],
          f"{where}: total live blocks != small + large")
    check(t["bytes_live"] == small["bytes_live"] + large["bytes_live"],
          f"{where}: bytes_live {t['bytes_live']} != small + large")
    check(t["retains"] >= t["releases"], f"{where}: more releases than retains")


# ---- cases ---------------------------------------------------------------------------------------

def case_pattern():
    w = Workload("pattern")
    pid = w.expect("ready")
    before = stats_json(pid)
    w.go()
    w.expect("done")
    after = stats_json(pid)
    w.finish()
    consistent(before, "before")
    consistent(after, "after")
    d = lambda k: after["totals"][k] - before["totals"][k]
    expect = {"allocs": 1305, "frees": 402, "blocks_live": 903, "retains": 2, "releases": 1,
              "bytes_live": 600 * 64 + 300 * 4096 + 3 * (1 << 20),
              "bytes_requested": 1000 * 64 + 300 * 4096 + 5 * (1 << 20)}
    for k, v in expect.items():
        check(d(k) == v, f"totals.{k} grew by {d(k)}, expected exactly {v}")
    for size, live in ((64, 600), (4096, 300)):
        got = layout(after, size)["blocks_live"] - layout(before, size)["blocks_live"]
        check(got == live, f"layout {size}: blocks_live grew by {got}, expected {live}")
    l0, l1 = layout(before, 1 << 20, "large"), layout(after, 1 << 20, "large")
    for k, v in {"blocks_live": 3, "blocks_cached": 2, "refills": 5, "hits": 0}.items():
        check(l1[k] - l0[k] == v, f"large layout 1 MiB: {k} grew by {l1[k] - l0[k]}, expected {v}")
    lp0, lp1 = pool(before, "large"), pool(after, "large")
    for k, v in {"allocs": 5, "frees": 2, "blocks_live": 3, "bytes_live": 3 << 20}.items():
        check(lp1[k] - lp0[k] == v, f"large pool {k} grew by {lp1[k] - lp0[k]}, expected {v}")
    check(lp1["bytes_cached"] - lp0["bytes_cached"] == 2 << 20, "the two freed 1 MiB blocks are not cached")
    check(after["publish_count"] > before["publish_count"], "publish_count did not grow")
    print(f"pattern: allocs +{d('allocs')} frees +{d('frees')} live +{d('bytes_live')} bytes, exact")


def case_threads():
    w = Workload("threads")
    pid = w.expect("ready")
    before = stats_json(pid)
    w.go()
    # Read while the 8 threads run: every copy must parse and stay internally plausible.
    seen = []
    for _ in range(20):
        rc, out, err = cli(str(pid), "--json")
        if rc != 0:
            break
        seen.append(json.loads(out)["totals"]["allocs"])
        if w.p.poll() is not None:
            break
    check(seen == sorted(seen), f"allocs went backwards between reads: {seen}")
    w.expect("done")
    after = stats_json(pid)
    w.finish()
    consistent(after, "after 8 threads")
    d = lambda k: after["totals"][k] - before["totals"][k]
    # 8 x 4000 allocations by the workers, 8 x 3000 freed by them and 8 x 500 by main; libc may
    # add a few of its own per thread (TLS), so allow a little slack above, never below.
    check(32000 <= d("allocs") <= 32000 + 8 * 8, f"allocs grew by {d('allocs')}")
    check(28000 <= d("frees") <= 28000 + 8 * 8, f"frees grew by {d('frees')}")
    check(4000 <= d("blocks_live") <= 4000 + 8 * 8, f"blocks_live grew by {d('blocks_live')}")
    check(after["totals"]["threads"] <= before["totals"]["threads"] + 1, "exited threads still counted")
    print(f"threads: 8 threads, live {after['totals']['blocks_live']} == allocs - frees, layouts sum up")


def pid_namespace():
    return int(os.readlink("/proc/self/ns/pid").split("[")[1].rstrip("]"))


def segment(pid):
    """The segment of a process in our pid namespace (Note [Segment names])."""
    return os.path.join(SHM, f"cachealloc.{pid}.{pid_namespace()}")


def case_lifecycle():
    w = Workload("idle")
    pid = w.expect("ready")
    path = segment(pid)
    check(os.path.exists(path), f"{path} does not exist while the process runs")
    st = os.lstat(path)
    check(stat.S_ISREG(st.st_mode), f"{path} is not a regular file")
    check(stat.S_IMODE(st.st_mode) == 0o600, f"{path} has mode {oct(stat.S_IMODE(st.st_mode))}, not 0600")
    check(st.st_uid == os.geteuid(), f"{path} is owned by uid {st.st_uid}")
    rc, out, _ = cli()
    row = [l for l in out.splitlines() if l.split()[:1] == [str(pid)]]
    check(rc == 0 and row and "live" in row[0], f"list does not show {pid} as live:\n{out}")
    w.finish()
    check(not os.path.exists(path), f"{path} still exists after a normal exit")
    print(f"lifecycle: {path} mode 0600 while running, gone after exit")


def threads_of(pid):
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            names.append(open(f"/proc/{pid}/task/{tid}/comm").read().strip())
        except OSError:
            pass
    return names


def wait_live(pid: int, want: int, seconds: float) -> int:
    """Polls the segment until bytes_live reaches `want` or `seconds` pass; the last value read."""
    deadline = time.monotonic() + seconds
    live = 0
    while time.monotonic() < deadline:
        live = stats_json(pid)["totals"]["bytes_live"]
        if live >= want:
            break
        time.sleep(0.05)
    return live


def case_quiet():
    """Two 128 MiB blocks, then silence: the publisher thread shows them within 1 s."""
    w = Workload("quiet")
    pid = w.expect("ready")
    start = time.monotonic()
    live = wait_live(pid, 256 << 20, 1.0)
    waited = time.monotonic() - start
    check(live >= 256 << 20, f"bytes_live {live} one second after two 128 MiB allocations")
    names = threads_of(pid)
    check(names.count("cachealloc-stat") == 1, f"threads of the process: {names}")
    # Nothing changes now: the publisher keeps the segment as it is.
    first = stats_json(pid)["publish_count"]
    time.sleep(0.6)
    again = stats_json(pid)["publish_count"]
    check(first == again, f"an idle process still publishes: publish_count {first} -> {again}")
    w.finish()
    # Neither CACHEALLOC_STATS=0 nor CACHEALLOC_STATS_THREAD=0 starts a thread, even in a program
    # with threads of its own.
    for setting in ({"CACHEALLOC_STATS": "0"}, {"CACHEALLOC_STATS_THREAD": "0"}):
        off = Workload("quiet", env=setting)
        off_pid = off.expect("ready")
        time.sleep(0.4)
        names_off = threads_of(off_pid)
        check(names_off.count("cachealloc-stat") == 0, f"{setting} threads: {names_off}")
        off.finish()
    # A single-threaded program stays single-threaded (Note [No thread in a single-threaded
    # process]): its segment is as of its last slow path.
    single = Workload("single")
    single_pid = single.expect("ready")
    time.sleep(0.4)
    names_single = threads_of(single_pid)
    check(names_single == ["stats_workload"], f"single-threaded program's threads: {names_single}")
    check(stats_json(single_pid)["publish_count"] >= 1, "single-threaded program never published")
    single.finish()
    # CACHEALLOC_STATS_THREAD=always: a single-threaded daemon gets the thread, and is seen idle.
    always = Workload("quiet-single", env={"CACHEALLOC_STATS_THREAD": "always"})
    always_pid = always.expect("ready")
    live_always = wait_live(always_pid, 256 << 20, 1.0)
    check(live_always >= 256 << 20,
          f"STATS_THREAD=always: bytes_live {live_always} one second after two 128 MiB allocations")
    names_always = threads_of(always_pid)
    check(names_always == ["stats_workload", "cachealloc-stat"], f"STATS_THREAD=always threads: {names_always}")
    always.finish()
    print(f"quiet: 256 MiB live seen after {waited:.2f} s; idle segment unchanged; "
          f"CACHEALLOC_STATS=0 runs no thread; a single-threaded program gets none unless "
          f"CACHEALLOC_STATS_THREAD=always (then seen within 1 s); =0 starts none")


def case_peak():
    """400 MiB live for an instant between two publications: the peak shows it; ca_reset_peak."""
    w = Workload("spike")
    pid = w.expect("ready")
    doc = stats_json(pid)
    t = doc["totals"]
    check(t["bytes_live_peak"] >= 400 << 20, f"bytes_live_peak {t['bytes_live_peak']} after 400 MiB live")
    # The pools' own peaks: the spike was large blocks; the small pool's peak is its own.
    large_peak, small_peak = pool(doc, "large")["bytes_live_peak"], pool(doc, "small")["bytes_live_peak"]
    check(large_peak >= 400 << 20, f"large pool bytes_live_peak {large_peak} after 400 MiB live")
    check(small_peak < 100 << 20 and small_peak >= pool(doc, "small")["bytes_live"],
          f"small pool bytes_live_peak {small_peak}")
    check(t["bytes_live"] < 100 << 20, f"bytes_live {t['bytes_live']}: the spike was not freed")
    w.go()
    w.expect("done")
    after_doc = stats_json(pid)
    after = after_doc["totals"]
    w.finish()
    check(after["bytes_live_peak"] < 100 << 20, f"peak {after['bytes_live_peak']} after ca_reset_peak")
    check(pool(after_doc, "large")["bytes_live_peak"] < 100 << 20, "large pool peak after ca_reset_peak")
    check(after["bytes_live_peak"] >= after["bytes_live"], "peak below live")
    print(f"peak: {t['bytes_live_peak'] >> 20} MiB after a 400 MiB spike (live {t['bytes_live'] >> 10} KiB); "
          f"{after['bytes_live_peak'] >> 10} KiB after ca_reset_peak")


def case_cli():
    """getopt_long options, --help, usage errors, JSON errors, large rows under their own heading."""
    w = Workload("quiet")
    pid = w.expect("ready")
    for _ in range(40):  # the publisher thread brings the two large blocks within a second
        if stats_json(pid)["totals"]["bytes_live"] >= 256 << 20:
            break
        time.sleep(0.05)
    rc, out, _ = cli(str(pid), "--watch=0.1", "--count=2", "--json")
    check(rc == 0 and len([l for l in out.splitlines() if l.strip()]) == 2, f"--watch=0.1 --count=2: {rc}")
    rc, out, _ = cli("--top=1", str(pid))
    check(rc == 0 and "more layouts" in out, f"--top=1 before the pid: {rc}\n{out}")
    rc, out, _ = cli("--top=0", str(pid))
    check(rc == 0 and "\nLARGE " in out and "MISSES" in out and "\nLAYOUT " in out,
          f"large rows lack their heading:\n{out}")
    w.finish()
    rc, out, err = cli("--help")
    check(rc == 0 and out.startswith("usage: cachealloc-stats") and err == "", f"--help: {rc} {err!r}")
    rc, out, err = cli("--bogus")
    check(rc == 2 and out == "" and err.count("\n") == 2 and "try 'cachealloc-stats --help'" in err,
          f"unknown option: {rc} {err!r}")
    rc, out, err = cli("--watch")
    check(rc == 2 and "--watch needs a value" in err, f"--watch without a value: {rc} {err!r}")
    dead = dead_pid()
    rc, out, err = cli(str(dead), "--json")
    doc = json.loads(out)
    check(rc == 3 and doc == {"pid": dead, "state": "no-process", "error": doc.get("error")} and doc["error"],
          f"--json on a missing pid: {rc} {out!r}")
    launcher = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(CLI))), "tools", "cachealloc")
    if os.path.exists(launcher):
        for args in (["--help"], ["run", "--help"]):
            r = subprocess.run([launcher, *args], capture_output=True, text=True)
            check(r.returncode == 0 and r.stdout.startswith("usage: cachealloc run"), f"cachealloc {args}: {r}")
        r = subprocess.run([launcher, "run", "--large-threshold=8K", "--cache-bytes", "1G", "--", "env"],
                           capture_output=True, text=True)
        check(r.returncode == 0 and "CACHEALLOC_LARGE_THRESHOLD=8K" in r.stdout and
              "CACHEALLOC_CACHE_BYTES=1G" in r.stdout, f"launcher options: {r}")
        r = subprocess.run([launcher, "run", "--cache-bytes=banana", "--", "true"], capture_output=True, text=True)
        check(r.returncode == 2 and "bad size for --cache-bytes: 'banana'" in r.stderr and
              r.stderr.count("\n") == 2, f"launcher bad size: {r}")
    else:
        fail(f"launcher not found at {launcher}")
    print("cli: --opt=value, --help on stdout, one-line usage errors, JSON error object, LARGE heading; "
          "launcher --help, --opt=value, sizes checked")


def case_names():
    """Names carry the pid namespace; the publisher removes old segments of dead processes."""
    ns = pid_namespace()
    w = Workload("idle")
    pid = w.expect("ready")
    check(os.path.exists(os.path.join(SHM, f"cachealloc.{pid}.{ns}")), f"no cachealloc.{pid}.{ns}")
    check(not os.path.exists(os.path.join(SHM, f"cachealloc.{pid}")), "an old-style name was created")
    check(stats_json(pid)["pid"] == pid, "the CLI does not find the segment by pid")
    image = bytearray(open(segment(pid), "rb").read())
    w.finish()
    # Three leftovers of dead processes: one last published long ago (removed), one just now
    # (kept a while: a reader sees it stale), one in another namespace (not ours to judge).
    dead_old, dead_new = dead_pid(), dead_pid(skip=1)
    planted_paths = {}
    for name, dead, when in (("old", dead_old, 0), ("new", dead_new, time.time_ns()),
                             ("other-ns", dead_old, 0)):
        img = bytearray(image)
        struct.pack_into("<I", img, 32, dead)
        struct.pack_into("<Q", img, 56, when)
        path = os.path.join(SHM, f"cachealloc.{dead}.{ns if name != 'other-ns' else ns + 1}")
        with open(path, "wb") as f:
            f.write(img)
        os.chmod(path, 0o600)
        planted_paths[name] = path
    try:
        w = Workload("quiet")
        w.expect("ready")
        for _ in range(30):
            if not os.path.exists(planted_paths["old"]):
                break
            time.sleep(0.05)
        w.finish()
        check(not os.path.exists(planted_paths["old"]), "a dead process's old segment was not removed")
        check(os.path.exists(planted_paths["new"]), "a segment of a process that just died was removed")
        check(os.path.exists(planted_paths["other-ns"]), "another namespace's segment was removed")
        rc, out, _ = cli(str(dead_new), "--json")
        check(rc == 0 and json.loads(out)["state"] == "stale", f"the recent leftover is not listed stale: {out}")
        rc, out, _ = cli("--gc")
        check(rc == 0 and not os.path.exists(planted_paths["new"]), f"--gc left the stale segment: {out}")
    finally:
        for p in planted_paths.values():
            if os.path.exists(p):
                os.unlink(p)
    print(f"names: cachealloc.<pid>.{ns}; an old dead segment removed by the next process's publisher, "
          "a fresh one kept (stale, then --gc), another namespace's left alone")


def case_interval():
    """--watch shows the hit rate of each interval, not only the cumulative one."""
    w = Workload("busy", env={"CACHEALLOC_CACHE_BYTES": "0"})
    pid = w.expect("ready")
    w.go()
    rc, out, err = cli(str(pid), "--watch=0.4", "--count=4", "--json")
    check(rc == 0, f"--watch --json exited {rc}: {err}")
    frames = [json.loads(l) for l in out.splitlines() if l.strip()]
    rates = [f["rates"] for f in frames if "rates" in f]
    check(len(rates) == 3, f"{len(rates)} frames with rates")
    for r in rates:
        check(r["hit_rate"] is not None and 0.0 <= r["hit_rate"] <= 1.0, f"interval hit_rate {r}")
        check(abs(r["hit_rate"] - r["hits"] / (r["hits"] + r["misses"])) < 1e-6, f"hit_rate != hits/(hits+misses): {r}")
    rc, out, _ = cli(str(pid), "--watch=0.3", "--count=2")
    check(rc == 0 and re.search(r"hit rate [0-9.]+% \(this interval\)", out), f"text frames lack the interval rate:\n{out}")
    w.expect("done")
    w.finish()
    print(f"interval: hit rate per interval {[round(r['hit_rate'], 4) for r in rates]} "
          f"(cumulative {frames[-1]['hit_rate']:.4f})")


def case_node_exporter():
    """--prometheus -o into a textfile directory; Debian's node exporter serves the metrics."""
    exporter = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if exporter is None:
        print("node-exporter: prometheus-node-exporter not installed; skipped")
        sys.exit(77)
    import socket
    import urllib.request
    d = tempfile.mkdtemp(prefix="castats-prom-")
    w = Workload("idle")
    pid = w.expect("ready")
    ne = None
    try:
        target = os.path.join(d, "cachealloc.prom")
        rc, out, err = cli("--prometheus", "-o", target)
        check(rc == 0 and out == "" and os.path.exists(target), f"-o: {rc} {err}")
        check(sorted(os.listdir(d)) == ["cachealloc.prom"], f"left behind: {os.listdir(d)}")
        check(f'cachealloc_bytes_live{{pid="{pid}"' in open(target).read(), "the file lacks the process")
        rc, _, err = cli("--prometheus", "-o", target, "--watch=1")
        check(rc == 2, f"-o with --watch: {rc}")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        ne = subprocess.Popen([exporter, "--collector.disable-defaults", "--collector.textfile",
                               f"--collector.textfile.directory={d}",
                               f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        body = ""
        for _ in range(100):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        check(f'cachealloc_bytes_live{{pid="{pid}",program="stats_workload"}}' in body,
              f"the scrape lacks cachealloc_bytes_live for {pid}:\n{body[:2000]}")
        check("node_textfile_scrape_error 0" in body, "the textfile collector reported an error")
        n = len([l for l in body.splitlines() if l.startswith("cachealloc_")])
    finally:
        if ne is not None:
            ne.terminate()
            ne.wait(timeout=10)
        w.finish()
        shutil.rmtree(d, ignore_errors=True)
    print(f"node-exporter: {n} cachealloc samples in the scrape of {os.path.basename(exporter)} on 127.0.0.1:{port}")


def case_timeline():
    """record samples a process until it exits; plot draws memory, hit rate per interval, sizes."""
    import xml.etree.ElementTree as ET
    d = tempfile.mkdtemp(prefix="castats-tl-")
    try:
        rec_path, svg = os.path.join(d, "run.rec"), os.path.join(d, "run.svg")
        w = Workload("busy", env={"CACHEALLOC_CACHE_BYTES": "0"})
        pid = w.expect("ready")
        e = dict(os.environ)
        e.pop("LD_PRELOAD", None)
        rec = subprocess.Popen([CLI, "record", str(pid), "-o", rec_path, "--interval=0.1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
        w.go()
        w.expect("done")
        w.finish()
        out, err = rec.communicate(timeout=30)
        check(rec.returncode == 0, f"record exited {rec.returncode}: {err}")
        lines = open(rec_path).read().splitlines()
        check(lines[0].startswith(f"# cachealloc-stats record v1 pid={pid} program=stats_workload"), lines[0])
        samples = [l for l in lines if l.startswith("s ")]
        hist = [l for l in lines if l.startswith("h ")]
        check(len(samples) >= 10 and hist, f"{len(samples)} samples, {len(hist)} size classes")
        rc, out, err = cli("plot", rec_path, "-o", svg)
        check(rc == 0, f"plot exited {rc}: {err}")
        root = ET.parse(svg).getroot()
        ns = "{http://www.w3.org/2000/svg}"
        lines_drawn = [p for p in root.iter(ns + "polyline") if len(p.get("points").split()) >= 2]
        bars = [r for r in root.iter(ns + "rect") if r.get("class") == "bar"]
        texts = " ".join(t.text or "" for t in root.iter(ns + "text"))
        check(len(lines_drawn) >= 6 and bars, f"{len(lines_drawn)} polylines, {len(bars)} bars")
        for word in ("memory", "hit rate per interval", "live bytes by size class", "live", "cached",
                     "os mapped", "device"):
            check(word in texts, f"the chart lacks '{word}'")
        # Drawn by a real SVG renderer (librsvg, Debian's librsvg2-bin; skipped without it): it
        # must accept the file and draw something (a blank 900x800 PNG compresses below 5 KB).
        renderers = []
        rsvg = shutil.which("rsvg-convert")
        if rsvg is not None:
            png = svg + ".png"
            r = subprocess.run([rsvg, "-o", png, svg], capture_output=True, text=True, timeout=60)
            check(r.returncode == 0 and os.path.exists(png), f"rsvg-convert: exit {r.returncode} {r.stderr[:200]}")
            renderers.append(("librsvg", png))
        # And by a browser: Debian's chromium, headless, takes a screenshot of the file.
        chromium = shutil.which("chromium")
        if chromium is not None:
            shot = svg + ".chromium.png"
            r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                f"--user-data-dir={d}/chromium-profile", f"--screenshot={shot}",
                                "--window-size=1000,900", "file://" + os.path.abspath(svg)],
                               capture_output=True, text=True, timeout=120)
            check(r.returncode == 0 and os.path.exists(shot),
                  f"chromium --screenshot: exit {r.returncode} {r.stderr[-300:]}")
            renderers.append(("chromium", shot))
        for name, png in renderers:
            # Every series' colour is on the picture (its legend at least: a series at 0 lies
            # under the next one), and the live series' colour on many pixels (its line and the
            # size-class bars): a blank or half-drawn picture fails.
            counts = png_color_counts(png)
            for color, least in (("#1f77b4", 1000), ("#2ca02c", 20), ("#ff7f0e", 20),
                                 ("#9467bd", 20), ("#d62728", 20)):
                near = sum(n for c, n in counts.items() if color_near(c, color))
                check(near >= least, f"{name}: only {near} pixels of {color} in the rendered timeline")
        rc, _, err = cli("record", str(pid), "-o", rec_path)
        check(rc in (3, 4), f"record of a gone process: {rc}")
        rc, _, err = cli("plot", svg, "-o", svg + ".2")
        check(rc == 1 and "not a record file" in err, f"plot of a non-record: {rc} {err}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(f"timeline: {len(samples)} samples until exit; SVG with {len(lines_drawn)} lines and "
          f"{len(bars)} size-class bars (parsed as XML; drawn by {', '.join(n for n, _ in renderers) or 'no renderer'})")


def png_color_counts(path: str) -> dict:
    """Pixel counts by (r, g, b) of an 8-bit RGB or RGBA, non-interlaced PNG (what librsvg and
    chromium write), decoded with zlib alone."""
    data = open(path, "rb").read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG")
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    check(depth == 8 and ctype in (2, 6) and interlace == 0, f"{path}: PNG type {depth}/{ctype}/{interlace}")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    counts: dict = {}
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        for i in range(0, stride, bpp):
            if bpp == 4 and line[i + 3] == 0:
                continue
            key = (line[i], line[i + 1], line[i + 2])
            counts[key] = counts.get(key, 0) + 1
        prev = line
    return counts


def color_near(rgb: tuple, hexcolor: str, tolerance: int = 40) -> bool:
    want = [int(hexcolor[k:k + 2], 16) for k in (1, 3, 5)]
    return all(abs(x - w) <= tolerance for x, w in zip(rgb, want))


def case_killed():
    w = Workload("idle")
    pid = w.expect("ready")
    live = Workload("idle")  # a live process: --gc must leave it alone
    live_pid = live.expect("ready")
    os.kill(pid, signal.SIGKILL)
    w.p.wait()
    path = segment(pid)
    check(os.path.exists(path), "a SIGKILLed process's segment should remain (stale)")
    rc, out, _ = cli()
    row = [l for l in out.splitlines() if l.split()[:1] == [str(pid)]]
    check(rc == 0 and row and "stale" in row[0], f"list does not mark {pid} stale:\n{out}")
    rc, out, _ = cli(str(pid), "--json")
    check(rc == 0 and json.loads(out)["state"] == "stale", f"{pid} --json is not stale: {out}")
    rc, out, err = cli("--gc")
    check(rc == 0, f"--gc exited {rc}: {err}")
    check(f"cachealloc.{pid}.{pid_namespace()} " in out, f"--gc did not report removing {pid}:\n{out}")
    check(not os.path.exists(path), "--gc did not remove the stale segment")
    check(os.path.exists(segment(live_pid)), "--gc removed a live process's segment")
    live.finish()
    print(f"killed: {pid} listed stale, removed by --gc; live {live_pid} kept")


def case_fork():
    w = Workload("fork")
    got = w.expect_any("child", "ready")
    child, parent = got["child"], got["ready"]
    check(child != parent, "child and parent pids are the same")
    c, p = stats_json(child), stats_json(parent)
    check(c["forked"] and not p["forked"], "the forked flag is wrong")
    check(c["pid"] == child and p["pid"] == parent, "pids in the segments are wrong")
    w.go()  # the child
    w.go()  # the parent
    w.finish()
    for pid in (child, parent):
        check(not os.path.exists(segment(pid)), f"segment of {pid} left behind")
    print(f"fork: child {child} published its own segment; both removed at exit")


def case_disabled():
    w = Workload("noflush", env={"CACHEALLOC_STATS": "0"})
    pid = w.expect("off")
    check(not os.path.exists(segment(pid)), "CACHEALLOC_STATS=0 still created a segment")
    rc, _, err = cli(str(pid))
    check(rc == 4 and "no statistics segment" in err, f"expected exit 4 'no statistics segment', got {rc}: {err}")
    w.finish()
    print("disabled: no segment, ca_stats_flush says ENOENT, CLI exits 4")


def case_show_stats():
    w = Workload("idle", env={"CACHEALLOC_SHOW_STATS": "1"})
    w.expect("ready")
    err = w.finish()
    check(re.search(r"cachealloc: stats for stats_workload \(pid \d+\)", err), f"no summary header:\n{err}")
    check(re.search(r"allocs \d+ \([0-9.]+ [KMGT]?i?B requested\)  frees \d+  live", err) and "hit rate" in err, f"summary incomplete:\n{err}")
    # To a file, with nothing on stderr; and with fd 2 closed (coreutils close it) the file still
    # gets it. One write per line: every line is whole.
    d = tempfile.mkdtemp(prefix="castats-")
    try:
        path = os.path.join(d, "summary.txt")
        w = Workload("idle", env={"CACHEALLOC_SHOW_STATS": path})
        w.expect("ready")
        err = w.finish()
        check(err == "", f"stderr with a summary file: {err!r}")
        text = open(path).read()
        check(text.count("cachealloc: stats for stats_workload") == 1, f"summary file:\n{text}")
        e = dict(os.environ, LD_PRELOAD=LIB, CACHEALLOC_SHOW_STATS=path)
        r = subprocess.run(["sh", "-c", 'exec "$0" idle 2>&-', WORKLOAD], input="", capture_output=True,
                           text=True, env=e, timeout=30)
        text = open(path).read()
        check(r.returncode == 0 and text.count("cachealloc: stats for stats_workload") == 2,
              f"with fd 2 closed: rc {r.returncode}, file:\n{text}")
        check(all(l.startswith("cachealloc: ") for l in text.splitlines()), f"a line is not whole:\n{text}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("show-stats: summary printed at exit; CACHEALLOC_SHOW_STATS=/path appends it there, also with fd 2 closed")


PROM_SAMPLE = re.compile(r'^cachealloc_[a-z_]+\{pid="\d+",program="[^"]*"(,[a-z]+="[^"]*")*\} [-+0-9.e]+$')


def case_formats():
    w = Workload("idle")
    pid = w.expect("ready")
    rc, out, err = cli(str(pid), "--prometheus")
    check(rc == 0, f"--prometheus exited {rc}: {err}")
    declared = set()
    for line in out.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            check(name not in declared, f"metric {name} declared twice")
            declared.add(name)
        elif line.startswith("# HELP "):
            continue
        else:
            check(PROM_SAMPLE.match(line), f"bad exposition line: {line!r}")
            check(line.split("{")[0] in declared, f"sample before its TYPE: {line!r}")
    for m in ("cachealloc_allocs_total", "cachealloc_bytes_live", "cachealloc_pool_hits_total"):
        check(m in declared, f"{m} missing")
    check(not any(m.startswith("cachealloc_layout_") for m in declared), "per-layout series by default")
    rc, out, _ = cli(str(pid), "--prometheus", "--layouts")
    check(rc == 0 and "cachealloc_layout_blocks_live{" in out, "--layouts gives no layout series")
    rc, out, _ = cli("--json")
    procs = json.loads(out)["processes"]
    check(any(p["pid"] == pid and p["state"] == "live" for p in procs), "list --json lacks the process")
    rc, out, _ = cli(str(pid), "--watch", "0.1", "--count", "3", "--json")
    frames = [json.loads(l) for l in out.splitlines() if l.strip()]
    check(rc == 0 and len(frames) == 3, f"--watch --count 3 gave {len(frames)} frames (exit {rc})")
    check("rates" in frames[-1], "--watch frames carry no rates")
    rc, out, _ = cli(str(pid), "--watch", "0.1", "--count", "2")
    check(rc == 0 and out.count("process ") == 2 and "rates" in out, f"--watch text frames wrong:\n{out}")
    rc, out, _ = cli(str(pid))
    check(rc == 0 and "POOL" in out and "LAYOUT" in out, f"table lacks sections:\n{out}")
    w.finish()
    print(f"formats: prometheus ({len(declared)} metrics), json, list json, watch")


# ---- planted segments ----------------------------------------------------------------------------

def planted(case_fn):
    """Runs case_fn(dir, pid, image) with a live workload and a copy of its real segment."""
    w = Workload("idle")
    pid = w.expect("ready")
    image = bytearray(open(segment(pid), "rb").read())
    d = tempfile.mkdtemp(prefix="castats-")
    try:
        case_fn(d, pid, image)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        w.finish()


def plant(d, pid, data, mode=0o600):
    path = os.path.join(d, f"cachealloc.{pid}")
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def expect_error(d, pid, code, text, user=None):
    rc, out, err = cli(str(pid), "--dir", d, user=user)
    check(rc == code, f"expected exit {code} ({text!r}), got {rc}: {err.strip()}")
    check(text in err, f"expected {text!r} in the message, got: {err.strip()}")


def field_offsets():
    # Offsets of the table descriptors in ca_stats_header (stats_abi.h): after exe[64] at 80 and
    # library_version[16] at 144 come 14 uint32: totals_offset, totals_size, pools_offset,
    # pool_row_size, pool_count, pool_capacity, layouts_offset, layout_row_size, layout_count,
    # layout_capacity, devices_offset, ...
    names = ["totals_offset", "totals_size", "pools_offset", "pool_row_size", "pool_count",
             "pool_capacity", "layouts_offset", "layout_row_size", "layout_count", "layout_capacity",
             "devices_offset", "device_row_size", "device_count", "device_capacity"]
    return {n: 160 + 4 * i for i, n in enumerate(names)}


def put32(image, off, v):
    image[off:off + 4] = struct.pack("<I", v)


def case_errors():
    def run(d, pid, image):
        off = field_offsets()
        # a good copy reads fine
        plant(d, pid, image)
        rc, out, err = cli(str(pid), "--dir", d, "--json")
        check(rc == 0 and json.loads(out)["pid"] == pid, f"a good planted copy fails: {rc} {err}")
        # truncated: shorter than a header, and shorter than the header says
        plant(d, pid, image[:100])
        expect_error(d, pid, 7, "truncated")
        plant(d, pid, image[:4096])
        expect_error(d, pid, 7, "truncated: the header says 32768 bytes, the segment has 4096")
        # corrupt: bad magic, count past capacity, table past the end, header pid mismatch, torn
        bad = bytearray(image); bad[0:8] = b"NOTSTATS"
        plant(d, pid, bad)
        expect_error(d, pid, 7, "corrupt: bad magic")
        bad = bytearray(image); put32(bad, off["layout_count"], 100000)
        plant(d, pid, bad)
        expect_error(d, pid, 7, "corrupt: layout count 100000 exceeds capacity")
        bad = bytearray(image); put32(bad, off["devices_offset"], 0xFFFFFFF8)
        plant(d, pid, bad)
        expect_error(d, pid, 7, "corrupt: device table ends at")
        bad = bytearray(image); struct.pack_into("<I", bad, 32, pid + 1)
        plant(d, pid, bad)
        expect_error(d, pid, 7, "corrupt: the header names pid")
        bad = bytearray(image); struct.pack_into("<Q", bad, 24, 7)
        plant(d, pid, bad)
        expect_error(d, pid, 7, "torn")
        # wrong version
        bad = bytearray(image); struct.pack_into("<I", bad, 8, 2)
        plant(d, pid, bad)
        expect_error(d, pid, 6, "unsupported segment version 2")
        # no segment / no such process
        os.unlink(os.path.join(d, f"cachealloc.{pid}"))
        expect_error(d, pid, 4, "no statistics segment")
        dead = dead_pid()
        expect_error(d, dead, 3, "no such process")
        # wrong owner: readable by others, or owned by a uid that is not the process's
        plant(d, pid, image, mode=0o644)
        expect_error(d, pid, 8, "wrong owner: segment is accessible to other users")
        plant(d, pid, image)
        if os.geteuid() == 0:
            os.chown(os.path.join(d, f"cachealloc.{pid}"), 65534, 65534)
            expect_error(d, pid, 8, "wrong owner: segment belongs to uid 65534")
        else:
            plant(d, 1, bytes(image[:32]) + struct.pack("<I", 1) + bytes(image[36:]))
            expect_error(d, 1, 8, "wrong owner: segment belongs to uid")
        # a symbolic link is never followed
        link = os.path.join(d, "cachealloc.1")
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(segment(pid), link)
        rc, _, err = cli("1", "--dir", d)
        check(rc == 7 and "symbolic link" in err, f"a symlinked segment was not refused: {rc} {err}")
    planted(run)
    print("errors: truncated, corrupt (5 kinds), version, no segment, no process, wrong owner, symlink")


def case_permission():
    if os.geteuid() != 0:
        print("permission: needs root to read as another user; skipped")
        sys.exit(77)
    runner = shutil.which("setpriv")
    if runner is None:
        print("permission: setpriv not found; skipped")
        sys.exit(77)

    def run(d, pid, image):
        os.chmod(d, 0o755)
        plant(d, pid, image)
        user = [runner, "--reuid=65534", "--regid=65534", "--clear-groups"]
        expect_error(d, pid, 5, "permission denied", user=user)
    planted(run)
    print("permission: another user's segment gives exit 5")


def dead_pid(skip=0):
    limit = int(open("/proc/sys/kernel/pid_max").read())
    for pid in range(limit - 1, 1, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            if skip == 0:
                return pid
            skip -= 1
        except PermissionError:
            pass
    fail("no free pid")


CASES = {
    "pattern": case_pattern, "threads": case_threads, "lifecycle": case_lifecycle,
    "killed": case_killed, "fork": case_fork, "disabled": case_disabled,
    "show-stats": case_show_stats, "quiet": case_quiet, "peak": case_peak, "cli": case_cli, "names": case_names, "interval": case_interval, "node-exporter": case_node_exporter, "timeline": case_timeline, "formats": case_formats, "errors": case_errors,
    "permission": case_permission,
}

if __name__ == "__main__":
    CASES[CASE]()
