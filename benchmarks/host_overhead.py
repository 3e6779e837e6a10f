"""The Python cost of skc's launch paths, excluding the driver: timed on the CPU with a fake driver
(skc.runtime.fake_cuda) whose cuLaunchKernel returns at once. No GPU needed.

    python benchmarks/host_overhead.py [--json FILE]

Reports microseconds per call, with the cost of calling the fake cuLaunchKernel with a ready argument array
subtracted, for: a plain `kernel[grid, block](...)` launch (4 arguments), and `skc.blocks.matmul` on unchanged
shapes (the Hopper TMA plan: three tensor maps), over a stand-in for torch's CUDA tensors (fake_cuda's fake torch
module: the torch fast paths, its current stream read per launch) and over arrays exporting
__cuda_array_interface__ (cupy's path). The fake tensors' own methods are counted in (torch's are similar). The
fake allocates every tensor at a new address; the last row reuses freed blocks, as torch's caching allocator does.
The GPU figures (against torch.matmul and a bare cuLaunchKernel) come from benchmarks/run.py --only launch.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
import weakref

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import skc
from skc.runtime import fake_cuda
from skc.runtime.fake_cuda import FakeTensor


@skc.kernel(block=32)
def empty(a: skc.Ptr[skc.f32], b: skc.Ptr[skc.f32], c: skc.Ptr[skc.f32], n: skc.i32):
    if n < 0:
        a[0] = 1.0


def per_call(fn, calls=20000, repeats=7) -> float:
    """Median microseconds per call of `repeats` runs of `calls` calls."""
    for _ in range(1000):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return sorted(samples)[len(samples) // 2]


def reusing_freed_blocks(torch):
    """The fake torch module's new_empty handing back the block of a tensor freed since, as torch's caching allocator
    does (an out that matmul allocates and the caller drops lies where the last one lay)."""
    free: dict = {}

    def new_empty(self, shape, dtype=None):
        dtype = dtype or self.dtype
        blocks = free.setdefault((tuple(shape), dtype.name), [])
        tensor = torch.Tensor(shape, dtype, address=blocks.pop() if blocks else None, device=self.get_device())
        weakref.finalize(tensor, blocks.append, tensor.data_ptr())
        return tensor

    torch.Tensor.new_empty = new_empty


def paths(label, bare, x, make) -> dict:
    launch, matmul = empty[1, 32], skc.blocks.matmul
    a, b, out = make((4096, 4096)), make((4096, 4096)), make((4096, 4096))
    matmul(a, b, out)
    return {f"{label}: kernel[grid, block](...)": per_call(lambda: launch(x, x, x, 1024)) - bare,
            f"{label}: kernel[grid, block](..., stream=0)": per_call(lambda: launch(x, x, x, 1024, stream=0)) - bare,
            f"{label}: empty[1, 32](...) (bracket lookup)": per_call(lambda: empty[1, 32](x, x, x, 1024)) - bare,
            f"{label}: matmul(a, b, out)": per_call(lambda: matmul(a, b, out)) - bare,
            f"{label}: matmul(a, b, out, stream=0)": per_call(lambda: matmul(a, b, out, stream=0)) - bare,
            f"{label}: matmul(a, b) (allocates out)": per_call(lambda: matmul(a, b), calls=5000) - bare}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures to this file")
    options = parser.parse_args()
    with fake_cuda.installed(record=False) as driver:
        slots = [ctypes.c_uint64(1 << 32) for _ in range(3)] + [ctypes.c_int32(1024)]
        array = (ctypes.c_void_p * 4)(*[ctypes.addressof(s) for s in slots])
        address, launch_kernel = ctypes.addressof(array), driver.cuLaunchKernel
        bare = per_call(lambda: launch_kernel("empty", 1, 1, 1, 32, 1, 1, 0, 0, address, 0))
        figures = {"fake cuLaunchKernel, ready array": bare}
        with fake_cuda.torch_installed() as torch:
            x = torch.Tensor((1024,), torch.float32)
            figures.update(paths("torch", bare, x, lambda shape: torch.Tensor(shape, torch.bfloat16)))
            reusing_freed_blocks(torch)
            a, b = torch.Tensor((4096, 4096), torch.bfloat16), torch.Tensor((4096, 4096), torch.bfloat16)
            figures["torch: matmul(a, b) (reused block)"] = per_call(lambda: skc.blocks.matmul(a, b),
                                                                              calls=5000) - bare
        x = FakeTensor((1024,), "float32")
        figures.update(paths("cai", bare, x, lambda shape: FakeTensor(shape, "float16")))
    for name, us in figures.items():
        print(f"{name:40s} {us:7.2f} us")
    if options.json:
        with open(options.json, "w") as file:
            json.dump(figures, file, indent=1)


if __name__ == "__main__":
    main()
