#!/usr/bin/env python3
"""Real programs must behave the same with and without LD_PRELOAD=libcachealloc.so.

usage: real_programs.py <path of libcachealloc.so> <case>
cases: python perl sort git gcc

Each case runs a fixed sequence of commands twice, in fresh temporary directories: once without
the preload and once with it (inherited by every child: cc1, as, ld, git's helpers, sort's
threads). Exit codes, stdout and stderr must be identical. Before that, the driver checks that
the preload really takes (the library is mapped in a preloaded process and ld.so said nothing),
so pointing it at a missing or broken library fails the test.
"""
import difflib
import os
import random
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def base_env():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["LC_ALL"] = "C"
    return env


def preload_env(lib):
    env = base_env()
    env["LD_PRELOAD"] = lib
    return env


def check_preload_takes(lib):
    r = subprocess.run(["cat", "/proc/self/maps"], env=preload_env(lib), capture_output=True,
                       timeout=30)
    maps = r.stdout.decode(errors="replace")
    if r.returncode != 0 or os.path.realpath(lib) not in maps:
        fail("%s is not mapped in a preloaded process (rc %d); stderr: %s"
             % (lib, r.returncode, r.stderr.decode(errors="replace").strip()))
    # cat is a C program: the preload must not drag the C++ runtime in (the library has no NEEDED
    # entry on libstdc++; Note [No libstdc++ dependency] in preload/new_delete.cpp).
    if "libstdc++" in maps:
        fail("a C program under the preload maps libstdc++: libcachealloc.so depends on it")
    if r.stderr:
        fail("the preloaded process printed on stderr: %s" % r.stderr.decode(errors="replace"))


def run(steps, label, cmd, env, cwd, stdin=None):
    r = subprocess.run(cmd, env=env, cwd=cwd, input=stdin, capture_output=True, timeout=120)
    steps.append((label, r.returncode, r.stdout, r.stderr))


# ---- cases: each runs its commands in `cwd` with `env` and returns [(label, rc, out, err)] ----

def case_python(env, cwd):
    steps = []
    run(steps, "python3 workload", [sys.executable, os.path.join(WORKLOADS, "python_workload.py")],
        env, cwd)
    return steps


def case_perl(env, cwd):
    steps = []
    run(steps, "perl workload", ["perl", os.path.join(WORKLOADS, "perl_workload.pl")], env, cwd)
    return steps


def case_sort(env, cwd):
    rng = random.Random(4242)
    lines = []
    for i in range(100000):
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 20)))
        lines.append("%s,%d,%08x" % (word, rng.randint(-10**6, 10**6), rng.getrandbits(32)))
    with open(os.path.join(cwd, "input.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    steps = []
    run(steps, "sort", ["sort", "input.txt"], env, cwd)
    run(steps, "sort -t, -k2,2n", ["sort", "-t,", "-k2,2n", "-k1,1", "input.txt"], env, cwd)
    run(steps, "sort -u -r", ["sort", "-u", "-r", "input.txt"], env, cwd)
    # A tiny buffer and two threads force temporary files and a multi-threaded merge.
    run(steps, "sort --parallel=2 -S 1M", ["sort", "--parallel=2", "-S", "1M", "-T", cwd,
                                          "-t,", "-k3", "input.txt"], env, cwd)
    return steps


def case_git(env, cwd):
    env = dict(env)
    env.update({"HOME": cwd, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Test",
                "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "Test",
                "GIT_COMMITTER_EMAIL": "test@example.com", "GIT_PAGER": "cat", "PAGER": "cat",
                "TZ": "UTC"})
    steps = []
    repo = os.path.join(cwd, "repo")

    def git(label, *args, date="2024-01-01T00:00:00"):
        e = dict(env, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        run(steps, label, ["git", *args], e, repo if os.path.isdir(repo) else cwd)

    git("init", "init", "-q", "-b", "main", "repo")
    rng = random.Random(7)
    for commit in range(6):
        for k in range(8):
            path = os.path.join(repo, "dir%d" % (k % 3), "file%d.txt" % k)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a") as f:
                for _ in range(200 + 50 * commit):
                    f.write("line %d %s\n" % (rng.randint(0, 10**9), "x" * rng.randint(0, 80)))
        if commit == 3:
            git("diff %d" % commit, "diff", "--stat")
            git("diff -p %d" % commit, "diff")
        git("add %d" % commit, "add", "-A")
        git("commit %d" % commit, "commit", "-q", "-m", "commit %d" % commit,
            date="2024-01-0%dT12:00:00" % (commit + 1))
    git("log", "log", "--stat", "--format=%H %an %ad %s")
    git("log -p", "log", "-p", "-2")
    git("diff HEAD~3", "diff", "HEAD~3", "HEAD", "--numstat")
    git("gc", "gc", "-q")
    git("fsck", "fsck", "--no-progress")
    git("show", "show", "HEAD~2:dir1/file1.txt")
    git("rev-list", "rev-list", "--all", "--objects")
    return steps


def case_gcc(env, cwd):
    shutil.copy(os.path.join(WORKLOADS, "c_program.c"), cwd)
    steps = []
    run(steps, "gcc -S", ["gcc", "-O2", "-S", "-o", "-", "c_program.c"], env, cwd)
    run(steps, "gcc -O2", ["gcc", "-O2", "-Wall", "-o", "c_program", "c_program.c"], env, cwd)
    run(steps, "run", ["./c_program"], env, cwd)
    return steps


CASES = {"python": case_python, "perl": case_perl, "sort": case_sort, "git": case_git,
         "gcc": case_gcc}


def describe_difference(a, b, what):
    al = a.decode(errors="replace").splitlines()
    bl = b.decode(errors="replace").splitlines()
    diff = list(difflib.unified_diff(al, bl, "without preload", "with preload", lineterm="", n=1))
    return "%s differs:\n%s" % (what, "\n".join(diff[:30]))


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        fail("usage: real_programs.py <libcachealloc.so> {%s}" % "|".join(CASES))
    lib, name = sys.argv[1], sys.argv[2]
    check_preload_takes(lib)
    results = []
    for env in (base_env(), preload_env(lib)):
        with tempfile.TemporaryDirectory(prefix="ca-preload-") as tmp:
            results.append(CASES[name](env, tmp))
    plain, preloaded = results
    problems = []
    for (label, rc0, out0, err0), (_, rc1, out1, err1) in zip(plain, preloaded):
        if rc0 != 0:
            problems.append("%s: fails even without the preload (rc %d): %s"
                            % (label, rc0, err0.decode(errors="replace")[:500]))
        if rc0 != rc1:
            problems.append("%s: exit status %d without preload, %d with it; stderr: %s"
                            % (label, rc0, rc1, err1.decode(errors="replace")[:500]))
        if out0 != out1:
            problems.append("%s: %s" % (label, describe_difference(out0, out1, "stdout")))
        if err0 != err1:
            problems.append("%s: %s" % (label, describe_difference(err0, err1, "stderr")))
    if problems:
        fail("\n".join(problems))
    total = sum(len(s[2]) for s in preloaded)
    print("%s: %d commands, %d bytes of output identical with and without the preload"
          % (name, len(preloaded), total))


if __name__ == "__main__":
    main()
