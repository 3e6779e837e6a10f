"""Side-by-side benchmarks: skc against a reference measured in the same run (needs a GPU, torch
and triton). Prints a table and writes JSON (to $OUT or --json).

    python benchmarks/run.py [--only vector_add,softmax,launch,matmul_host,compile,import,gemm] [--json FILE]

(`launch`: a kernel launch against torch, Triton and a bare cuLaunchKernel with a ready argument array;
`matmul_host`: host time per skc.blocks.matmul call against torch.matmul; benchmarks/host_overhead.py gives
the Python part alone on a machine without a GPU.)

Timing: medians of many repetitions with CUDA events (triton.testing.do_bench), after a warm-up,
on random data, at sizes that fill the GPU. Figures are ratios of skc to the reference.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from fair import fair_times  # noqa: E402  (beside this file)


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(fn, rep_ms=200):
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=rep_ms, return_mode="median")  # milliseconds


def vector_add(rows):
    import torch

    example = load_example("vector_add")
    for n in (1 << 24, 1 << 26, 1 << 28):
        x, y = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
        out = torch.empty_like(x)
        example.launch(x, y, out, n)
        assert torch.equal(out, x + y)
        times = fair_times({"skc": lambda: example.launch(x, y, out, n), "copy": lambda: out.copy_(x),
                            "add": lambda: torch.add(x, y, out=out)}, bench)   # in turn (fair.py)
        skc_ms, copy_ms, torch_add_ms = times["skc"], times["copy"], times["add"]
        skc_bw = 3 * n * 4 / skc_ms / 1e9
        copy_bw = 2 * n * 4 / copy_ms / 1e9
        add_bw = 3 * n * 4 / torch_add_ms / 1e9
        rows.append({"benchmark": "vector_add", "size": n, "skc_TBps": skc_bw, "torch_copy_TBps": copy_bw,
                     "torch_add_TBps": add_bw, "ratio_vs_copy": skc_bw / copy_bw, "target": ">= 0.95"})


def softmax(rows):
    import torch

    example = load_example("softmax")
    for cols in (4096, 8192, 16384, 32768):
        n_rows = (1 << 28) // (cols * 4)  # 256 MiB of input
        x = torch.randn(n_rows, cols, device="cuda")
        out = torch.empty_like(x)
        example.launch(x, out, n_rows, cols)
        torch.testing.assert_close(out, torch.softmax(x, dim=1), rtol=1e-4, atol=1e-6)
        times = fair_times({"skc": lambda: example.launch(x, out, n_rows, cols),
                            "torch": lambda: torch.softmax(x, dim=1)}, bench)   # in turn (fair.py)
        skc_ms, torch_ms = times["skc"], times["torch"]
        rows.append({"benchmark": "softmax", "size": f"{n_rows}x{cols}", "skc_ms": skc_ms, "torch_ms": torch_ms,
                     "skc_TBps": 2 * x.numel() * 4 / skc_ms / 1e9, "ratio_vs_torch": torch_ms / skc_ms,
                     "target": ">= 1.0"})


def per_launch(fn, batches=100, batch=200):
    """Host time of one call, from batches of `batch` calls timed without the synchronize that follows
    each batch (few enough calls that the GPU's launch queue never fills and makes the host wait)."""
    import torch

    for _ in range(batch):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - started) / batch)
        torch.cuda.synchronize()
    return statistics.median(samples) * 1e6  # microseconds


def interleaved(functions: dict, rounds=40, batch=200) -> dict:
    """Host microseconds per call of each function, measured side by side: after a warm-up of every one, rounds
    in which each runs one batch in turn (so a slow start of the process, clocks still rising or the first use of
    a code path, weighs on all alike); the median over the rounds."""
    import torch

    for fn in functions.values():
        for _ in range(5 * batch):
            fn()
    torch.cuda.synchronize()
    samples = {name: [] for name in functions}
    for _ in range(rounds):
        for name, fn in functions.items():
            started = time.perf_counter()
            for _ in range(batch):
                fn()
            samples[name].append((time.perf_counter() - started) / batch)
            torch.cuda.synchronize()
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


def launch(rows):
    import torch
    import triton
    import triton.language as tl

    example = load_example("vector_add")
    n = 1024
    x, y, out = (torch.randn(n, device="cuda") for _ in range(3))
    k = example.vector_add[1, 256]

    @triton.jit
    def triton_add(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask),
                 mask=mask)

    k(x, y, out, n)   # compiled and loaded, for the bare launch's module
    figures = interleaved({"skc": lambda: k(x, y, out, n), "torch": lambda: torch.add(x, y, out=out),
                           "triton": lambda: triton_add[(1,)](x, y, out, n, BLOCK=1024),
                           "bare": _bare_launch(example.vector_add, (x, y, out), n)})
    skc_us, torch_us, triton_us, bare_us = (figures[name] for name in ("skc", "torch", "triton", "bare"))
    rows.append({"benchmark": "launch_overhead", "skc_us": skc_us, "torch_add_us": torch_us,
                 "triton_us": triton_us, "target": "<= 5 us and below torch"})
    rows.append({"benchmark": "launch_vs_bare_cuLaunchKernel", "skc_us": skc_us, "bare_us": bare_us,
                 "ratio": skc_us / bare_us, "target": "<= 1.3"})


def _bare_launch(kernel, pointers, n):
    """cuLaunchKernel of `kernel`'s loaded specialization with a ready argument array (no Python around it)."""
    import ctypes

    from skc.runtime import cuda

    compiled = next(iter(kernel._compiled.values()))
    module = cuda.Module(compiled.binary or compiled.stages["ptx"].encode(), compiled.name, 0, compiled.shared_bytes)
    slots = [ctypes.c_uint64(p.data_ptr()) for p in pointers] + [ctypes.c_int32(n)]
    array = (ctypes.c_void_p * len(slots))(*[ctypes.addressof(s) for s in slots])
    address, function, launch = ctypes.addressof(array), module.function, cuda.driver().cuLaunchKernel
    block = kernel.block or (256, 1, 1)
    bx, by, bz = block if isinstance(block, tuple) else (block, 1, 1)

    def bare():
        launch(function, 1, 1, 1, bx, by, bz, compiled.shared_bytes, 0, address, 0)
    bare.keep = (module, slots, array)
    return bare


def matmul_host(rows):
    """Host time per call of skc.blocks.matmul on unchanged shapes against torch.matmul (a small bf16 GEMM: the
    GPU keeps up, so the figure is the Python and driver time of one call)."""
    import torch

    import skc

    for size in (256, 1024):
        a, b = (torch.randn(size, size, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        c = torch.empty(size, size, device="cuda", dtype=torch.bfloat16)
        skc.blocks.matmul(a, b, out=c)
        torch.cuda.synchronize()
        expected = a.float() @ b.float()
        error = ((c.float() - expected).norm() / expected.norm()).item()
        figures = interleaved({"skc_out_us": lambda: skc.blocks.matmul(a, b, out=c),
                               "torch_out_us": lambda: torch.matmul(a, b, out=c),
                               "skc_us": lambda: skc.blocks.matmul(a, b),
                               "torch_us": lambda: torch.matmul(a, b)}, rounds=30, batch=100)
        rows.append({"benchmark": "matmul_host_us", "size": size, **figures,
                     "ratio_vs_torch": figures["skc_us"] / figures["torch_us"], "relative_error": error,
                     "target": "<= 1.0 (host time per call at most torch.matmul's)"})


_COLD = textwrap.dedent('''
    import sys, time, json
    t0 = time.perf_counter()
    import skc
    t1 = time.perf_counter()
    import numpy, torch
    sys.path.insert(0, sys.argv[1])
    import vector_add as example
    x = torch.randn(1 << 20, device="cuda")
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    compiled = example.vector_add.compile(target="sm_90a")
    t3 = time.perf_counter()
    example.launch(x, x, x, x.numel())
    torch.cuda.synchronize()
    t4 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "compile": t3 - t2, "first_launch": t4 - t2, "from_cache": compiled.from_cache}))
''')


def compile_times(rows):
    """`import skc`; compiling vector add cold and from the disk cache in a new process; the first launch
    (compile, load, run) in each case. Fresh processes, a fresh cache folder per pair."""
    records = {True: [], False: []}
    imports = []
    for _ in range(5):
        with tempfile.TemporaryDirectory() as cache_dir:
            env = dict(os.environ, SKC_CACHE_DIR=cache_dir)
            for attempt in range(2):
                out = subprocess.run([sys.executable, "-c", _COLD, os.path.join(ROOT, "examples")], env=env,
                                     capture_output=True, text=True, check=True).stdout
                record = json.loads(out.strip().splitlines()[-1])
                records[record["from_cache"]].append(record)
                imports.append(record["import"])

    def median(hit, field):
        return 1e3 * statistics.median(r[field] for r in records[hit])

    rows.append({"benchmark": "cold_compile_vector_add", "compile_ms": median(False, "compile"),
                 "first_launch_ms": median(False, "first_launch"), "target": "<= 150 ms"})
    rows.append({"benchmark": "cache_hit_new_process", "compile_ms": median(True, "compile"),
                 "first_launch_ms": median(True, "first_launch"), "target": "<= 20 ms"})
    rows.append({"benchmark": "import_skc", "median_s": statistics.median(imports), "target": "<= 0.3 s"})


def gemm(rows):
    import torch

    import skc

    for size in (4096, 8192):
        a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
        c = torch.empty(size, size, device="cuda", dtype=torch.bfloat16)
        skc.blocks.matmul(a, b, out=c)
        expected = a.float() @ b.float()
        error = ((c.float() - expected).norm() / expected.norm()).item()
        times = fair_times({"skc": lambda: skc.blocks.matmul(a, b, out=c), "torch": lambda: torch.matmul(a, b)},
                           lambda fn: bench(fn, rep_ms=500))   # in turn (fair.py)
        skc_ms, torch_ms = times["skc"], times["torch"]
        flops = 2 * size ** 3
        rows.append({"benchmark": "gemm_bf16", "size": size, "skc_TFLOPs": flops / skc_ms / 1e9,
                     "cublas_TFLOPs": flops / torch_ms / 1e9, "ratio_vs_cublas": torch_ms / skc_ms,
                     "relative_error": error})


BENCHMARKS = {"vector_add": vector_add, "softmax": softmax, "launch": launch, "matmul_host": matmul_host,
              "compile": compile_times, "gemm": gemm}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    parser.add_argument("--json", default=os.path.join(os.environ.get("OUT", "."), "benchmarks.json"))
    args = parser.parse_args()
    import torch

    rows = []
    for name in args.only.split(","):
        try:
            BENCHMARKS[name](rows)
        except Exception as e:  # report and go on: one failure should not hide the other figures
            rows.append({"benchmark": name, "error": f"{type(e).__name__}: {e}"})
    meta = {"device": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d"),
            "command": "python benchmarks/run.py " + " ".join(sys.argv[1:])}
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(f"# {meta['device']}, {meta['date']}")
    for row in rows:
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
