#!/usr/bin/env python3
"""Heavier real programs must behave the same with and without LD_PRELOAD=libcachealloc.so.

usage: real_workloads.py <path of libcachealloc.so> <case>
cases: python   json, re, sorting and 8 threads (workloads/py_workload.py)
       gxx      g++ -O2 compiles workloads/cxx_program.cpp (cc1plus, as, ld all preloaded); the
                program's output and the object's symbols must match
       sqlite   sqlite3 builds a 60,000-row database with indexes and runs joins/aggregates
       redis    redis-server on 127.0.0.1 (random high port) under the preload, redis-benchmark
                (bounded request count) against it, then deterministic redis-cli commands
       xz       multi-threaded xz -T4 compresses and decompresses 24 MiB; bytes must match

Each case runs once without and once with the preload, in fresh temporary directories, and
compares exit codes and outputs. The driver first checks that the preload really takes.
"""
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def env_for(lib):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["LC_ALL"] = "C"
    if lib:
        env["LD_PRELOAD"] = lib
    return env


def run(cmd, lib, cwd, timeout=240, **kw):
    t0 = time.time()
    r = subprocess.run(cmd, env=env_for(lib), cwd=cwd, capture_output=True, timeout=timeout, **kw)
    return r.returncode, r.stdout, r.stderr, time.time() - t0


def check_preload(lib):
    r = subprocess.run(["cat", "/proc/self/maps"], env=env_for(lib), capture_output=True, timeout=30)
    if os.path.realpath(lib) not in r.stdout.decode(errors="replace"):
        fail("%s is not mapped in a preloaded process: %s" % (lib, r.stderr.decode(errors="replace")))


def case_python(lib, d):
    return [run([sys.executable, os.path.join(WORKLOADS, "py_workload.py")], lib, d)]


def case_gxx(lib, d):
    src = os.path.join(WORKLOADS, "cxx_program.cpp")
    out = []
    out.append(run(["g++", "-O2", "-std=c++17", "-c", src, "-o", "prog.o"], lib, d))
    out.append(run(["g++", "prog.o", "-o", "prog"], lib, d))
    rc, so, se, t = run(["nm", "--defined-only", "prog.o"], lib, d)
    out.append((rc, so, b"", t))
    out.append(run(["./prog"], lib, d))
    return out


SQL = """
CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT, city INTEGER, score REAL);
CREATE TABLE cities(id INTEGER PRIMARY KEY, name TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
INSERT INTO people SELECT i, printf('person-%06d-%s', i, hex(i * 7919 % 1000)),
  i * 31 % 500, (i * 104729 % 10007) / 100.0 FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 499)
INSERT INTO cities SELECT i, printf('city-%03d', i) FROM n;
CREATE INDEX people_city ON people(city);
CREATE INDEX people_score ON people(score);
SELECT count(*), sum(score), max(length(name)) FROM people;
SELECT c.name, count(*), round(avg(p.score), 3) FROM people p JOIN cities c ON c.id = p.city
  GROUP BY c.name ORDER BY 3 DESC, 1 LIMIT 15;
SELECT name FROM people WHERE score BETWEEN 50 AND 50.5 ORDER BY name LIMIT 20;
SELECT group_concat(name, ',') FROM (SELECT name FROM people ORDER BY score DESC, id LIMIT 200);
UPDATE people SET name = upper(name) WHERE id % 3 = 0;
DELETE FROM people WHERE id % 5 = 0;
VACUUM;
SELECT count(*), sum(length(name)) FROM people;
PRAGMA integrity_check;
"""


def case_sqlite(lib, d):
    return [run(["sqlite3", os.path.join(d, "t.db")], lib, d, input=SQL.encode())]


def free_port():
    for _ in range(50):
        port = random.randint(20000, 60000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    fail("no free port")


def case_redis(lib, d):
    port = str(free_port())
    server = subprocess.Popen(
        ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", d, "--daemonize", "no", "--protected-mode", "yes"],
        env=env_for(lib), cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", port]
        for _ in range(100):
            if subprocess.run(cli + ["ping"], capture_output=True, env=env_for(None)).stdout.strip() == b"PONG":
                break
            time.sleep(0.05)
        else:
            fail("redis-server did not answer")
        if lib:
            maps = open("/proc/%d/maps" % server.pid).read()
            if os.path.realpath(lib) not in maps:
                fail("redis-server does not have the preload mapped")
        bench = run(["redis-benchmark", "-h", "127.0.0.1", "-p", port, "-n", "20000", "-c", "8", "-P", "8",
                     "-q", "-t", "set,get,incr,lpush,lpop,sadd,hset,lrange_100", "-d", "300", "-r", "5000"],
                    None, d, timeout=120)
        if bench[0] != 0:
            fail("redis-benchmark failed: %s" % bench[2].decode(errors="replace"))
        script = ["FLUSHALL"]  # the benchmark's keys depend on timing; start the script clean
        for i in range(2000):
            script.append("SET key:%d %s" % (i, "v" * (i % 700 + 1)))
            if i % 3 == 0:
                script.append("APPEND key:%d %s" % (i, "x" * (i % 5000)))
        script += ["DEL key:%d" % i for i in range(0, 2000, 7)]
        script += ["RPUSH list %s" % " ".join(str(j) for j in range(k, k + 50)) for k in range(0, 5000, 50)]
        script += ["LRANGE list 100 130", "LLEN list", "DBSIZE"]
        script += ["STRLEN key:%d" % i for i in range(0, 2000, 97)]
        script += ["GET key:1999", "INFO keyspace"]
        cmds = run(cli, None, d, input=("\n".join(script) + "\n").encode())
        # The benchmark's own keys depend on timing; only the scripted part is compared.
        return [(bench[0], b"", b"", bench[3]), cmds]
    finally:
        server.terminate()
        try:
            out, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            fail("redis-server did not stop on SIGTERM")
        if server.returncode not in (0, -15):
            fail("redis-server exited with %d: %s" % (server.returncode, out.decode(errors="replace")[-2000:]))


def case_xz(lib, d):
    rng = random.Random(7)
    chunks = []
    for i in range(24):
        line = ("%06d " % i + "".join(rng.choice("abcdefgh ") for _ in range(120)) + "\n").encode()
        chunks.append(line * 8000 + os.urandom(0))
    data = b"".join(chunks)[: 24 << 20]
    with open(os.path.join(d, "data"), "wb") as f:
        f.write(data)
    out = [run(["xz", "-T4", "-6", "--block-size=2MiB", "-k", "-c", "data"], lib, d)]
    with open(os.path.join(d, "data.xz"), "wb") as f:
        f.write(out[0][1])
    rc, so, se, t = run(["xz", "-T4", "-d", "-c", "data.xz"], lib, d)
    out.append((rc, b"same" if so == data else b"DIFFERENT", se, t))
    return out


CASES = {"python": case_python, "gxx": case_gxx, "sqlite": case_sqlite, "redis": case_redis, "xz": case_xz}
NEEDS = {"python": [], "gxx": ["g++", "nm"], "sqlite": ["sqlite3"],
         "redis": ["redis-server", "redis-cli", "redis-benchmark"], "xz": ["xz"]}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        fail(__doc__)
    lib, case = os.path.abspath(sys.argv[1]), sys.argv[2]
    if not os.path.exists(lib):
        fail("no library at %s" % lib)
    missing = [p for p in NEEDS[case] if shutil.which(p) is None]
    if missing:
        print("SKIP: %s not installed" % ", ".join(missing))
        sys.exit(77)  # meson: skipped
    check_preload(lib)
    results = {}
    for label, preload in (("plain", None), ("preloaded", lib)):
        d = tempfile.mkdtemp(prefix="cachealloc-real-")
        try:
            results[label] = CASES[case](preload, d)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    for i, (a, b) in enumerate(zip(results["plain"], results["preloaded"])):
        if a[0] != b[0]:
            fail("%s step %d: exit code %d without the preload, %d with it; stderr: %s"
                 % (case, i, a[0], b[0], b[2].decode(errors="replace")[-2000:]))
        if a[1] != b[1]:
            fail("%s step %d: stdout differs (%d vs %d bytes):\n--- plain\n%s\n--- preloaded\n%s"
                 % (case, i, len(a[1]), len(b[1]), a[1][-1500:].decode(errors="replace"),
                    b[1][-1500:].decode(errors="replace")))
        if a[2] != b[2]:
            fail("%s step %d: stderr differs:\n--- plain\n%s\n--- preloaded\n%s"
                 % (case, i, a[2].decode(errors="replace")[-1500:], b[2].decode(errors="replace")[-1500:]))
        if a[0] != 0:
            fail("%s step %d failed in both runs (%d): %s" % (case, i, a[0], a[2].decode(errors="replace")[-1500:]))
    tp = sum(r[3] for r in results["plain"])
    tl = sum(r[3] for r in results["preloaded"])
    print("%s: %d steps identical with and without the preload (%.2fs plain, %.2fs preloaded)"
          % (case, len(results["plain"]), tp, tl))


if __name__ == "__main__":
    main()
