#!/usr/bin/env python3
"""Misuse and hostile start-up conditions under LD_PRELOAD=libcachealloc.so.

usage: bad_input.py <path of libcachealloc.so> <path of bad_input program> <case>

Fatal misuse must abort (SIGABRT) with one stderr line naming the call and the exact pointer
(which bad_input prints as "ptr=0x..." just before the bad call):
  free-stack free-interior free-interior-small free-static free-mmap realloc-stack
  double-free-large double-free-small double-free-4000 double-free-aba (free a, free b, free a)
  double-free-slab (two threads free a in turn, a write after free between: caught when the
                    second cache goes back)
  double-free-slot (a block of a batch waiting in a transfer slot freed again)
  poison-link (an address planted in a freed block's link must never be returned), and with
  CACHEALLOC_CHECK=1: check-double-free-small check-double-free-4000
Start-up conditions must not disturb the program:
  env-banana       CACHEALLOC_CACHE_BYTES=banana: exactly one warning line naming the variable
                   and the value, the default budget, normal exit.
  env-out-of-range CACHEALLOC_LARGE_THRESHOLD=1K (below its minimum): same.
  env-misspelt     CACHEALLOC_CACHEBYTES=1G (not a setting): one warning naming it, default budget.
  env-good         CACHEALLOC_CACHE_BYTES=64M: no output on stderr, the budget is 64 MiB.
  ulimit-true      /bin/true under `ulimit -v 200 MiB` starts and exits 0 silently.
  ulimit-exhaust   bad_input exhaust under the same limit: NULL+ENOMEM, bad_alloc, no crash.
"""
import os
import re
import resource
import signal
import subprocess
import sys

AS_LIMIT = 200 << 20
DEFAULT_CACHE_BYTES = 256 << 20  # lib/config/options.h


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def run(lib, argv, extra_env=None, as_limit=None):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("CACHEALLOC_"):
            del env[k]
    env["LD_PRELOAD"] = lib
    env["CACHEALLOC_STATS"] = "0"  # aborting children would leave stale stats segments behind
    env.update(extra_env or {})

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

    r = subprocess.run(argv, env=env, capture_output=True, timeout=60,
                       preexec_fn=limit if as_limit else None)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


# case -> (bad_input mode, call named in the message, kind of error, extra environment)
CHECK_ON = {"CACHEALLOC_CHECK": "1"}
FATAL = {
    "free-stack": ("free-stack", "free", "invalid pointer", {}),
    "free-interior": ("free-interior", "free", "invalid pointer", {}),
    "free-interior-small": ("free-interior-small", "free", "invalid pointer", {}),
    "free-static": ("free-static", "free", "invalid pointer", {}),
    "free-mmap": ("free-mmap", "free", "invalid pointer", {}),
    "realloc-stack": ("realloc-stack", "realloc", "invalid pointer", {}),
    "double-free-large": ("double-free-large", "free", "double free", {}),
    "double-free-small": ("double-free-small", "free", "double free", {}),
    "double-free-4000": ("double-free-4000", "free", "double free", {}),
    "double-free-aba": ("double-free-aba", "free", "double free", {}),
    "double-free-slab": ("double-free-slab", "thread exit", "double free", {}),
    "double-free-slot": ("double-free-slot", "free", "double free", {}),
    "poison-link": ("poison-link", "malloc", "write after free: corrupted free-list link in", {}),
    "check-double-free-small": ("double-free-small", "free", "double free", CHECK_ON),
    "check-double-free-4000": ("double-free-4000", "free", "double free", CHECK_ON),
    "check-free-sized-big": ("free-sized-big", "free_sized", "wrong size for", CHECK_ON),
    "check-delete-sized-big": ("delete-sized-big", "operator delete", "wrong size for", CHECK_ON),
    "check-free-aligned-sized-off": ("free-aligned-sized-off", "free_aligned_sized", "wrong size for",
                                     CHECK_ON),
    "check-delete-aligned-off": ("delete-aligned-off", "operator delete", "wrong size for", CHECK_ON),
}


def check_fatal(lib, prog, case):
    mode, call, kind, env = FATAL[case]
    rc, out, err = run(lib, [prog, mode], env)
    m = re.search(r"^ptr=(0x[0-9a-fA-F]+)$", out, re.M)
    if not m:
        fail("%s: bad_input did not reach the bad call (rc %d)\nstdout: %s\nstderr: %s"
             % (case, rc, out, err))
    ptr = int(m.group(1), 16)
    if rc != -signal.SIGABRT:
        fail("%s: expected death by SIGABRT, got %s\nstdout: %s\nstderr: %s"
             % (case, "signal %d" % -rc if rc < 0 else "exit %d" % rc, out, err))
    want = re.compile(r"^cachealloc: %s\(\): %s (0x[0-9a-fA-F]+)$" % (re.escape(call), kind))
    lines = [l for l in err.splitlines() if l.startswith("cachealloc:")]
    hits = [l for l in lines if want.match(l)]
    if len(hits) != 1 or int(want.match(hits[0]).group(1), 16) != ptr:
        fail("%s: expected one stderr line 'cachealloc: %s(): %s %#x', got:\n%s"
             % (case, call, kind, ptr, err or "(nothing)"))
    print("%s: SIGABRT with '%s'" % (case, hits[0]))


def check_env(lib, prog, var, value, expect_warning, expect_limit):
    rc, out, err = run(lib, [prog, "ok"], {var: value})
    if rc != 0 or not out.startswith("ok "):
        fail("%s=%s: program did not run normally (rc %d)\nstdout: %s\nstderr: %s"
             % (var, value, rc, out, err))
    lines = err.splitlines()
    if expect_warning:
        if len(lines) != 1 or var not in lines[0] or value not in lines[0]:
            fail("%s=%s: expected exactly one warning line naming the variable and the value, "
                 "got %d lines:\n%s" % (var, value, len(lines), err))
    elif lines:
        fail("%s=%s: expected nothing on stderr, got:\n%s" % (var, value, err))
    limit = int(re.search(r"cache_limit=(\d+)", out).group(1))
    if limit != expect_limit:
        fail("%s=%s: ca_cache_limit() is %d, expected %d" % (var, value, limit, expect_limit))
    print("%s=%s: %s; cache limit %d" % (var, value, lines[0] if lines else "no warning", limit))


def main():
    if len(sys.argv) != 4:
        fail(__doc__)
    lib, prog, case = sys.argv[1:]
    if not os.path.exists(lib):
        fail("%s does not exist" % lib)
    if case in FATAL:
        check_fatal(lib, prog, case)
    elif case in ("free-sized", "check-free-sized"):
        rc, out, err = run(lib, [prog, "free-sized"], CHECK_ON if case.startswith("check") else {})
        if rc != 0 or out.strip() != "sized ok" or err:
            fail("%s: rc %d\nstdout: %s\nstderr: %s" % (case, rc, out, err))
        print("%s: every sized free took its block back" % case)
    elif case == "env-banana":
        check_env(lib, prog, "CACHEALLOC_CACHE_BYTES", "banana", True, DEFAULT_CACHE_BYTES)
    elif case == "env-out-of-range":
        check_env(lib, prog, "CACHEALLOC_LARGE_THRESHOLD", "1K", True, DEFAULT_CACHE_BYTES)
    elif case == "env-misspelt":
        check_env(lib, prog, "CACHEALLOC_CACHEBYTES", "1G", True, DEFAULT_CACHE_BYTES)
    elif case == "env-good":
        check_env(lib, prog, "CACHEALLOC_CACHE_BYTES", "64M", False, 64 << 20)
    elif case == "ulimit-true":
        rc, out, err = run(lib, ["/bin/true"], as_limit=AS_LIMIT)
        if rc != 0 or err:
            fail("/bin/true under ulimit -v %d KiB: rc %d, stderr: %s" % (AS_LIMIT >> 10, rc, err))
        # The same limit with the loader's own check that the preload took.
        rc, out, err = run(lib, [prog, "ok"], as_limit=AS_LIMIT)
        if rc != 0 or err:
            fail("bad_input ok under ulimit -v: rc %d, stderr: %s" % (rc, err))
        print("ulimit -v %d KiB: /bin/true and bad_input ok start and exit 0" % (AS_LIMIT >> 10))
    elif case == "ulimit-exhaust":
        rc, out, err = run(lib, [prog, "exhaust"], as_limit=AS_LIMIT)
        if rc != 0:
            fail("exhaust under ulimit -v %d KiB: %s\nstdout: %s\nstderr: %s"
                 % (AS_LIMIT >> 10, "signal %d" % -rc if rc < 0 else "exit %d" % rc, out, err))
        print(out.strip())
    else:
        fail("unknown case %s" % case)


if __name__ == "__main__":
    main()
