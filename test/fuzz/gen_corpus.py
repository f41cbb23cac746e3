#!/usr/bin/env python3
"""Writes the seed corpus of heap_fuzz (test/fuzz/corpus/): one file per theme, each a valid
operation stream (see heap_fuzz.cpp for the format). Deterministic; rerun after changing the format.
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")

# opcodes (op % 12): 0,1 malloc  2 calloc  3 aligned  4,5 free  6 realloc  7 retain  8 release
# 9 clear  10 budget  11 calloc + full check. High bit: second thread cache.
THEMES = {
    "small_churn": ([0, 1, 4, 5, 0x80, 0x84], [0, 1, 2]),
    "class_boundaries": ([0, 1, 2, 4, 0x85], [2]),
    "realloc_pingpong": ([0, 6, 6, 6, 0x86, 4], [0, 1, 3, 4, 5, 6]),
    "aligned": ([3, 3, 4, 0x83, 0x84], [0, 1, 2, 3, 6]),
    "large_lru": ([0, 4, 10, 0, 4, 9], [5, 6]),
    "threshold": ([0, 2, 6, 4], [4]),
    "shared_refs": ([0, 7, 7, 8, 4, 0x88, 0x87], [0, 1, 5]),
    "clear_storm": ([0, 1, 9, 4, 0x89, 11], [0, 1, 3, 5]),
    "budget_zero": ([0, 10, 4, 0, 4, 11], [1, 3, 5, 6]),
    "cross_thread": ([0, 0x84, 0x80, 4, 0x86], [0, 1, 3]),
    "impossible": ([0, 6, 2, 4], [7]),
    "calloc_reuse": ([0, 4, 2, 11, 0x82, 4], [0, 1, 3, 5]),
}


def size_bytes(rng, kinds):
    k = rng.choice(kinds)
    if k == 7:
        return [0x87, rng.randrange(256)]
    return [k] + [rng.randrange(256) for _ in range(3)]


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, (ops, kinds)) in enumerate(sorted(THEMES.items())):
        rng = random.Random(i + 1)
        for heap in (0, 1):
            data = [heap | (rng.randrange(4) << 1)]
            live = 0
            for _ in range(120):
                op = rng.choice(ops)
                data.append(op)
                if live:
                    data.append(rng.randrange(256))
                code = op % 12
                if code in (0, 1, 2):
                    data += size_bytes(rng, kinds)
                    live += 1
                elif code == 3:
                    data.append(rng.randrange(21))
                    data += size_bytes(rng, kinds)
                    live += 1
                elif code in (4, 5, 8):
                    live = max(0, live - 1)
                elif code == 6:
                    data += size_bytes(rng, kinds)
                elif code == 10:
                    data.append(rng.randrange(4))
                elif code == 11:
                    data += size_bytes(rng, kinds)
                    live += 1 if live else 0
            with open(os.path.join(OUT, "%s_%s" % (name, "check" if heap else "default")), "wb") as f:
                f.write(bytes(data))


if __name__ == "__main__":
    main()
