# dict_str.py — a "real program" workload for tools/bench/run.py: string- and dict-heavy Python.
#
# run.py runs it with PYTHONMALLOC=malloc, so that CPython sends every allocation (including the
# small objects its own pymalloc arena allocator would otherwise serve) to the malloc chosen with
# LD_PRELOAD. It builds word-frequency tables from generated text, formats and joins strings,
# and rebuilds dicts of lists: the allocation pattern of scripting-language interpreters.
# Usage: python3 dict_str.py [SCALE]   (prints a checksum line; exits 1 if it is wrong)
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
rounds = max(1, int(10 * scale))
n = 60000

checksum = 0
ok = True
for r in range(rounds):
    # Generated text: words built by formatting and slicing (many short-lived small strings).
    words = [f"w{(i * 7919 + r) % 5003:x}{'abcdefgh'[i % 8] * (i % 13)}" for i in range(n)]
    text = " ".join(words)
    counts = {}
    for w in text.split():
        counts[w] = counts.get(w, 0) + 1
    # Group words by their first characters: dicts of growing lists.
    groups = {}
    for w, c in counts.items():
        groups.setdefault(w[:3], []).append((w.upper(), c))
    for k in sorted(groups):
        groups[k].sort()
    # Re-serialise: one large string from many medium ones.
    out = "\n".join(f"{k}:{','.join(w for w, _ in v)}" for k, v in groups.items())
    ok = ok and sum(counts.values()) == n
    checksum += len(out) + len(counts)
    del words, text, counts, groups, out

print(f"BENCH workload=python checksum={checksum} status={'ok' if ok else 'MISMATCH'}")
sys.exit(0 if ok else 1)
