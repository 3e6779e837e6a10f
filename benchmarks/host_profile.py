"""Where the host time of a call goes, on a GPU with torch's CUDA tensors: the torch attribute reads and calls
skc's host paths make (timed one by one), then cProfile of `skc.blocks.matmul` (with and without out=) and of a
plain `kernel[grid, block](...)` launch. benchmarks/host_overhead.py gives the Python part on a machine without
a GPU (fake tensors and driver); this is the breakdown with torch's real ones.

    python benchmarks/host_profile.py
"""
from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def per_call(fn, calls=20000) -> float:
    for _ in range(1000):
        fn()
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return sorted(samples)[2]


def profile(label, fn, calls=20000):
    fn()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
    print(f"== cProfile: {label} ({calls} calls)")
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:4000])


def main():
    import torch

    import skc
    from skc.blocks import host_plans
    from skc.runtime import devices

    a, b, c = (torch.randn(256, 256, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    raw = torch._C._cuda_getCurrentRawStream
    pieces = {"a.shape": lambda: a.shape, "a.stride()": lambda: a.stride(), "a.dtype": lambda: a.dtype,
              "a.device": lambda: a.device, "a.data_ptr()": lambda: a.data_ptr(), "a.get_device()": lambda: a.get_device(),
              "raw stream": lambda: raw(0), "skc.current_device()": devices.current_device,
              "host_plans.facts(a)": lambda: host_plans.facts(a),
              "hash of facts(a)": lambda: hash(host_plans.facts(a)),
              "torch.empty 256x256 bf16": lambda: torch.empty((256, 256), dtype=torch.bfloat16, device="cuda"),
              "a.new_empty": lambda: a.new_empty((256, 256)),
              "matmul(a, b, out=c)": lambda: skc.blocks.matmul(a, b, out=c),
              "matmul(a, b)": lambda: skc.blocks.matmul(a, b),
              "torch.matmul(a, b, out=c)": lambda: torch.matmul(a, b, out=c),
              "torch.matmul(a, b)": lambda: torch.matmul(a, b)}
    for name, fn in pieces.items():
        print(f"{name:32s} {per_call(fn, 5000 if 'matmul' in name else 20000):8.3f} us")
        torch.cuda.synchronize()
    profile("matmul(a, b, out=c)", lambda: skc.blocks.matmul(a, b, out=c), 5000)
    torch.cuda.synchronize()
    profile("matmul(a, b)", lambda: skc.blocks.matmul(a, b), 5000)
    torch.cuda.synchronize()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    import vector_add

    x, y, out = (torch.randn(1024, device="cuda") for _ in range(3))
    k = vector_add.vector_add[1, 256]
    print(f"{'k(x, y, out, n)':32s} {per_call(lambda: k(x, y, out, 1024)):8.3f} us")
    torch.cuda.synchronize()
    profile("k(x, y, out, n)", lambda: k(x, y, out, 1024))


if __name__ == "__main__":
    main()
