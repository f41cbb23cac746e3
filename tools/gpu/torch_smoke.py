#!/usr/bin/env python3
"""A real CUDA program under cachealloc: PyTorch with its own caching allocator turned off
(PYTORCH_NO_CUDA_MEMORY_CACHING=1, set by validate.sh), so every tensor is one cudaMalloc/cudaFree
pair that reaches cachealloc. Prints only values the program computed (no addresses, no timings),
so the plain and the preloaded run must print the same. Exits 77 without torch or a GPU.
"""
import sys

try:
    import torch
except ImportError:
    print("skipped: no torch")
    sys.exit(77)
if not torch.cuda.is_available():
    print("skipped: no GPU")
    sys.exit(77)

torch.manual_seed(0)
dev = torch.device("cuda")
side = torch.cuda.Stream()
acc = torch.zeros((), dtype=torch.float64, device=dev)
for step in range(200):
    n = 256 + (step * 37) % 768
    a = torch.randn(n, n, device=dev, dtype=torch.float32)
    b = torch.randn(n, n, device=dev, dtype=torch.float32)
    c = (a @ b).relu_()
    with torch.cuda.stream(side):  # work on a second stream, freed while still queued
        side.wait_stream(torch.cuda.current_stream())
        d = (c * 0.5).sum(dim=0)
    torch.cuda.current_stream().wait_stream(side)
    acc += d.double().sum() / n
    del a, b, c, d
print(f"acc={acc.item():.6e}")
# Graph capture with tensors allocated outside and inside the capture, checked against the same
# computation run eagerly. Plain CUDA may refuse it (an allocation or a free during a global
# capture) where the cache serves it, so validate.sh compares this line by its own rule: under the
# preload the replay must match whenever plain CUDA's did, and must never give other numbers.
x = torch.randn(1024, device=dev)
want = (x * 2).sin().sum().item()
try:
    g = torch.cuda.CUDAGraph()
    torch.cuda.synchronize()
    with torch.cuda.graph(g):
        y = (x * 2).sin()
    for _ in range(10):
        g.replay()
    torch.cuda.synchronize()
    got = y.sum().item()
    graph = "match" if abs(got - want) <= 1e-5 * abs(want) + 1e-5 else f"mismatch {got:.6e} != {want:.6e}"
except Exception as e:  # some torch builds refuse capture without their caching allocator
    graph = "refused " + type(e).__name__
print(f"graph={graph}")
free, total = torch.cuda.mem_get_info()
print("mem_get_info ok" if 0 < free <= total else "mem_get_info BAD")
