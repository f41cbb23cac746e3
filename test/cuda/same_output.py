#!/usr/bin/env python3
"""Runs a program without and with LD_PRELOAD=libcachealloc.so; exit code and stdout must match.

usage: same_output.py <path of libcachealloc.so> <program> [args...]

The preloaded run also sets CACHEALLOC_SHOW_STATS=1, whose exit summary on stderr proves that the
preload took (a missing or broken library would otherwise pass by running plain libc twice).
"""
import os
import subprocess
import sys


def main():
    lib, prog = sys.argv[1], sys.argv[2:]
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    plain = subprocess.run(prog, env=env, capture_output=True, timeout=120)
    env.update(LD_PRELOAD=lib, CACHEALLOC_SHOW_STATS="1")
    pre = subprocess.run(prog, env=env, capture_output=True, timeout=120)
    sys.stdout.write(plain.stdout.decode(errors="replace"))
    if b"cachealloc: stats for" not in pre.stderr:
        print("FAIL: the preloaded run printed no cachealloc summary: the preload did not take\n"
              + pre.stderr.decode(errors="replace"), file=sys.stderr)
        return 1
    if (plain.returncode, plain.stdout) != (pre.returncode, pre.stdout):
        print("FAIL: output differs under the preload\n--- plain (rc %d)\n%s--- preload (rc %d)\n%s"
              % (plain.returncode, plain.stdout.decode(errors="replace"), pre.returncode,
                 pre.stdout.decode(errors="replace")), file=sys.stderr)
        return 1
    print("same output, exit code %d" % plain.returncode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
