#!/usr/bin/env python3
"""Compiles and runs every C and C++ snippet in README.md and docs/*.md, so that no example in the
documentation teaches something that does not build or does not do what it says.

usage: snippets.py --lib LIBCACHEALLOC_SO --include DIR [--include DIR...] FILE.md...

A snippet is a fenced block tagged c, cpp or c++. One without a main() is a fragment: its
#include lines go first and the rest becomes the body of main(). Each is built at -O2 with
-Wall -Wextra -Werror by gcc/g++ and clang/clang++ (those installed), linked with -lcachealloc, and
run twice: as built and under LD_PRELOAD of the same library. A run must exit 0, print no
"cachealloc:" line on stderr, and print, in order, the text of every `prints: TEXT` comment in
the snippet (`// prints: 2` or `/* prints: 2 */`).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^```(c|cpp|c\+\+)\s*\n(.*?)^```", re.M | re.S)
PRINTS = re.compile(r"(?://|/\*)\s*prints:\s*(.*?)\s*(?:\*/)?\s*$", re.M)


def snippets(path):
    text = open(path, encoding="utf-8").read()
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        yield m.group(1), m.group(2), line


def as_program(code):
    if re.search(r"\bint\s+main\s*\(", code):
        return code
    includes = [l for l in code.splitlines() if l.lstrip().startswith("#include")]
    body = [l for l in code.splitlines() if not l.lstrip().startswith("#include")]
    return "\n".join(includes) + "\nint main(void) {\n" + "\n".join("  " + l for l in body) + \
        "\n  return 0;\n}\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--include", action="append", default=[])
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    libdir = os.path.dirname(os.path.abspath(a.lib))
    compilers = {"c": [c for c in ("gcc", "clang") if shutil.which(c)],
                 "cpp": [c for c in ("g++", "clang++") if shutil.which(c)]}
    failures = 0
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        # -lcachealloc needs the unversioned name; the build has only the versioned file.
        link = os.path.join(tmp, "libcachealloc.so")
        os.symlink(os.path.abspath(a.lib), link)
        for path in a.files:
            for lang, code, line in snippets(path):
                lang = "c" if lang == "c" else "cpp"
                where = "%s:%d" % (os.path.relpath(path), line)
                count += 1
                src = os.path.join(tmp, "snippet%d.%s" % (count, "c" if lang == "c" else "cpp"))
                open(src, "w").write(as_program(code))
                expected = PRINTS.findall(code)
                for cc in compilers[lang]:
                    exe = src + "." + cc
                    std = ["-std=c11"] if lang == "c" else ["-std=c++17"]
                    cmd = [cc, "-O2", "-Wall", "-Wextra", "-Werror", *std, src, "-o", exe,
                           *("-I" + d for d in a.include), "-L" + tmp, "-lcachealloc",
                           "-Wl,-rpath," + libdir]
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    if r.returncode != 0:
                        print("FAIL %s (%s): does not build:\n%s" % (where, cc, r.stderr))
                        failures += 1
                        continue
                    for mode in ("linked", "preloaded"):
                        env = dict(os.environ)
                        env.pop("LD_PRELOAD", None)
                        env["CACHEALLOC_STATS"] = "0"
                        if mode == "preloaded":
                            env["LD_PRELOAD"] = os.path.abspath(a.lib)
                        r = subprocess.run([exe], capture_output=True, text=True, env=env,
                                           timeout=60)
                        problems = []
                        if r.returncode != 0:
                            problems.append("exit status %d" % r.returncode)
                        if "cachealloc:" in r.stderr:
                            problems.append("stderr: " + r.stderr.strip())
                        pos = 0
                        for want in expected:
                            k = r.stdout.find(want, pos)
                            if k < 0:
                                problems.append("did not print %r (stdout: %r)" % (want, r.stdout))
                                break
                            pos = k + len(want)
                        if problems:
                            print("FAIL %s (%s, %s): %s" % (where, cc, mode, "; ".join(problems)))
                            failures += 1
                        else:
                            print("ok   %s (%s, %s)%s" % (where, cc, mode,
                                  ", printed " + ", ".join(expected) if expected else ""))
    if count == 0:
        print("FAIL: no C or C++ snippet found in " + " ".join(a.files))
        return 1
    print("%d snippets, %d failures" % (count, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
