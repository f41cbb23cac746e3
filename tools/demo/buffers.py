"""A real program with the allocation pattern cachealloc is for: recurring large buffers.

Each step slices a 1-16 MiB piece out of a source buffer, transforms it and joins halves, then
drops everything, the way a parser, an image pipeline or a request handler does. With glibc every
one of those buffers is a fresh mmap that page-faults on first touch; under cachealloc the freed
buffers wait in the LRU cache and the next step reuses them.
"""
import sys
import time

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
source = bytes(range(256)) * (64 << 12)  # 64 MiB
t0 = time.perf_counter()
check = 0
for i in range(steps):
    size = (1 + i % 16) << 20
    a = source[:size]                 # malloc + copy
    b = a.upper()                     # another buffer of the same size
    c = b"".join([a[: size // 2], b[: size // 2]])
    check += len(c) + b[size - 1]
    del a, b, c
print(f"checksum {check}")
print(f"elapsed {time.perf_counter() - t0:.3f}", file=sys.stderr)
