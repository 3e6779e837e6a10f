"""Isolate a GPU-vs-interpreter fuzz mismatch to a layer: one batch of benchmarks/fuzz_gpu.py, its PTX run by the
PTX emulator (tests/fuzz/ptx_emulator.py: LLVM's NVPTX output with the ISA's semantics), and on the GPU as the
driver's JIT of the PTX (what skc launches), as ptxas -O3 and as ptxas -O0 cubins, each launch repeated.

    python benchmarks/fuzz_isolate.py --seed 20261130 --batch 9 [--repeat 3]

Reading the table: the emulator agreeing while every GPU image disagrees the same way points at the hardware or
the launch; -O0 agreeing while -O3 and the JIT disagree points at ptxas's optimizer; launches that disagree with
each other point at a race or uninitialized state. Prints each mismatch (program, thread, slot, bits); exits 1
when any image disagrees with the interpreter. Without a GPU it runs the emulator alone.
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "fuzz"))
import fuzzgen
import ptx_emulator

import skc
from skc.backends import ptx_tools
from skc.runtime import cuda


def cubin(ptx: str, level: int) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        source, output = os.path.join(folder, "k.ptx"), os.path.join(folder, "k.cubin")
        with open(source, "w") as f:
            f.write(ptx)
        subprocess.run([ptx_tools.ptxas_path(), "-arch=sm_90a", f"-O{level}", source, "-o", output], check=True)
        with open(output, "rb") as f:
            return f.read()


def launch(image: bytes, batch):
    """The image's `batch` kernel on device 0 (outputs poisoned first), as skc's launcher passes arguments."""
    module = cuda.Module(image, "batch", 0)
    arrays = [skc.to_device(batch.xi), skc.to_device(batch.xf),
              skc.to_device(np.full_like(batch.xi, 0x7FBADBAD)), skc.to_device(np.full_like(batch.xf, np.nan))]
    slots = [ctypes.c_void_p(a.ptr) for a in arrays]
    params = (ctypes.c_void_p * 4)(*[ctypes.addressof(s) for s in slots])
    cuda.call("cuLaunchKernel", module.function, batch.count, 1, 1, fuzzgen.T, 1, 1, 0, 0, ctypes.addressof(params), 0)
    cuda.synchronize(0)
    return arrays[2].numpy(), arrays[3].numpy()


def report(batch, what, got, want) -> int:
    found = fuzzgen.mismatches(batch, *got, *want)
    programs = sorted({m[0] for m in found})
    print(f"{what:28s} {len(found):5d} mismatching outputs in programs {programs}")
    for program, thread, kind, slot, value, expected in found[:12]:
        bits = (lambda v: f"{np.float32(v).view(np.uint32):08x}") if kind == "float" else (lambda v: f"{v & 0xFFFFFFFF:08x}")
        print(f"    p{program} thread {thread} {kind} {slot}: {value!r} ({bits(value)}), interpreter {expected!r} "
              f"({bits(expected)})")
    return len(found)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--batch", type=int, default=9)
    parser.add_argument("--per-batch", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--extra", action="store_true", help="a batch of fuzz_gpu.py --extra")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    batch = fuzzgen.Batch(args.seed * 1000 + args.batch, args.per_batch,   # as fuzz_gpu.py numbers its batches
                          extra=args.extra)
    folder = tempfile.mkdtemp(prefix="skc-fuzz-isolate-")
    want_ref = batch.reference(folder)
    kernel = batch.kernel(folder)
    interpreted = (np.zeros_like(batch.xi), np.zeros_like(batch.xf))
    kernel.interpret[batch.count, fuzzgen.T](batch.xi, batch.xf, *interpreted)
    ptx = kernel.compile(batch.xi, batch.xf, *interpreted, target="sm_90a", block=(fuzzgen.T, 1, 1)).asm("ptx")
    bad = report(batch, "interpreter vs Python", interpreted, want_ref)
    bad += report(batch, "PTX emulator", ptx_emulator.run_batch(batch, ptx), interpreted)
    if skc.gpu_available():
        images = [("driver JIT of the PTX", ptx.encode())]
        if ptx_tools.ptxas_path() is not None:
            images += [(f"ptxas -O{level} cubin", cubin(ptx, level)) for level in (3, 2, 1, 0)]
        for name, image in images:
            for run in range(args.repeat):
                bad += report(batch, f"GPU, {name} #{run}", launch(image, batch), interpreted)
    else:
        print("no GPU: the emulator alone")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
