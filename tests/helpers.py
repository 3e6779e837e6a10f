"""Helpers shared by the tests: compiling kernels to tile IR, finding source lines, CHECK lines."""
from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import re
import threading

import skc
from skc import ir
from skc.frontend import Specialization, compile_to_ir
from skc.target import get_target


def tile_ir(kernel, *args, block=128, target="sm_90a", passes=True) -> str:
    """The tile IR text of `kernel` specialized for `args` (values or types such as skc.Ptr[skc.f32])."""
    module = tile_module(kernel, *args, block=block, target=target, passes=passes)
    return ir.print_module(module)


def tile_module(kernel, *args, block=128, target="sm_90a", passes=True):
    values = kernel._abstract_arguments(list(args), {})
    spec = kernel.specialize(values, (block, 1, 1) if isinstance(block, int) else tuple(block))
    module, _ = compile_to_ir(kernel.fn, spec, get_target(target))
    ir.verify(module)
    if passes:
        ir.passes.run_pipeline(module)
        ir.verify(module)
    return module


def finished(function, timeout: float = 10.0) -> bool:
    """Whether `function()` returns within `timeout` seconds, run on a daemon thread of its own, so a test of what
    could hang fails instead (the thread is left waiting); raises what the function raised."""
    errors = []

    def run():
        try:
            function()
        except Exception as error:
            errors.append(error)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if errors:
        raise errors[0]
    return not worker.is_alive()


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def load_example(name: str, prefix: str = "example"):
    """Import examples/<name>.py as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"{prefix}_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def line_of(fn, marker: str) -> int:
    """The file line number of the first line of fn's source that contains `marker`."""
    fn = getattr(fn, "fn", getattr(fn, "__skc_function__", fn))
    lines, first = inspect.getsourcelines(fn)
    for offset, line in enumerate(lines):
        if marker in line:
            return first + offset
    raise AssertionError(f"marker {marker!r} not found in {fn.__qualname__}")


def check_lines(text: str, *patterns: str):
    """FileCheck-like: each regular expression must match a line, in order."""
    lines = text.splitlines()
    position = 0
    for pattern in patterns:
        regex = re.compile(pattern)
        while position < len(lines) and not regex.search(lines[position]):
            position += 1
        if position == len(lines):
            raise AssertionError(f"CHECK not found (in order): {pattern!r}\n--- text ---\n{text}")
        position += 1


def check_not(text: str, pattern: str):
    if re.search(pattern, text, re.M):
        raise AssertionError(f"CHECK-NOT matched: {pattern!r}\n--- text ---\n{text}")


__all__ = ["tile_ir", "tile_module", "line_of", "check_lines", "check_not", "load_example", "skc", "Specialization"]


def wgmma_fragments(d):
    """d (64 x n) as the f32 accumulator fragments of a warpgroup (PTX ISA 9.7.15.5.1.1, figure of the m64nNk16 D
    matrix): in each 8-column block, thread t holds rows 16 (t // 32) + (t % 32) // 4 and 8 below it, columns
    2 (t % 4) and the next."""
    import numpy as np

    n = d.shape[1]
    out = np.empty((128, n // 2), np.float32)
    for t in range(128):
        warp, lane = divmod(t, 32)
        for block in range(n // 8):
            for half in range(2):
                for pair in range(2):
                    out[t, 4 * block + 2 * half + pair] = d[16 * warp + lane // 4 + 8 * half,
                                                           8 * block + 2 * (lane % 4) + pair]
    return out


# a kernel with a parameter of each launch kind (a tensor map, a pointer, an int, a float), for launcher tests
@skc.kernel(block=32)
def touch(t: skc.TensorMap, x: skc.Ptr[skc.f32], n: skc.i32, scale: skc.f32):
    if n < 0:
        x[0] = scale


def touch_arguments(arguments):
    """(the descriptor's address and rank words, x's address, n, scale) of a launch of `touch`, from the kernelParams
    the fake driver was given (its `inspect`)."""
    import ctypes
    import struct

    from skc.runtime import fake_cuda

    t, x, n, scale = fake_cuda.argument_pointers(arguments, 4)
    return (struct.unpack("<2Q", ctypes.string_at(t, 16)), ctypes.c_uint64.from_address(x).value,
            ctypes.c_int32.from_address(n).value, ctypes.c_float.from_address(scale).value)


@contextlib.contextmanager
def fake_host_paths(gpus: int = 1):
    """The fake driver (of `gpus` GPUs) and a stand-in torch (yields both), with no matmul, scaled-matmul or attention
    plans kept before or after: the host paths' GPU side without a GPU."""
    from skc.blocks import attention_host, fp8_host, matmul_host
    from skc.runtime import fake_cuda

    every = (matmul_host._PLANS, fp8_host._PLANS, attention_host._PLANS)
    for plans in every:
        plans.clear()
    try:
        with fake_cuda.installed(gpus=gpus) as driver, fake_cuda.torch_installed() as torch:
            yield driver, torch
    finally:
        for plans in every:
            plans.clear()


def refused(driver, call, match: str):
    """`call()` raises a LaunchError matching `match`, and nothing of it reached the (fake) driver."""
    import pytest

    launches = len(driver.launches)
    with pytest.raises(skc.LaunchError, match=match):
        call()
    assert len(driver.launches) == launches


def small_ints(rng, *shape, dtype=None):
    """A torch tensor of `shape` holding integers in -2..2 drawn from the numpy Generator `rng` (exact in bf16 and
    fp16, and in their products' sums), bf16 unless `dtype` says otherwise; channels_last where it has 4 dimensions
    (NCHW / OIHW), as conv2d takes it."""
    import numpy as np
    import torch

    t = torch.from_numpy(rng.integers(-2, 3, shape).astype(np.float32)).to(dtype or torch.bfloat16)
    return t.to(memory_format=torch.channels_last) if len(shape) == 4 else t


def conv_plan_kinds() -> set:
    """The kinds of the plans conv2d holds (its _PLANS' values): which kernels the calls so far ran."""
    from skc.blocks import conv

    return {type(plan).__name__ for _, plan in conv._PLANS.values()}


def spills_in_the_mma_loop(sass: str) -> list:
    """The local-memory loads and stores (ptxas's spills) inside a kernel's innermost loop of wgmmas: the smallest
    range from a label to a branch back to it that holds an HGMMA, in `nvdisasm -c` text. A spill there costs
    every step; one in a tile's prologue or epilogue costs once a tile. (Branches past the last EXIT are ptxas's
    out-of-line retries of a barrier wait, which jump back into the code: no loops.)"""
    lines = [line.split("*/", 1)[-1].strip() if "*/" in line else line.strip() for line in sass.splitlines()]
    labels = {line[:-1]: n for n, line in enumerate(lines) if line.startswith(".L") and line.endswith(":")}
    last_exit = max(n for n, line in enumerate(lines) if re.match(r"(@!?U?P\w+\s+)?EXIT\b", line))
    loops = [(labels[target], n) for n, line in enumerate(lines[:last_exit]) if "BRA" in line
             for target in re.findall(r"`\((\.L\w+)\)", line) if target in labels and labels[target] < n]
    mma_loops = [(start, end) for start, end in loops
                 if any(line.startswith("HGMMA") for line in lines[start:end + 1])]
    assert mma_loops, "no loop of wgmmas in this SASS"
    start, end = min(mma_loops, key=lambda loop: loop[1] - loop[0])
    return [line for line in lines[start:end + 1] if re.match(r"(@!?U?P\w+\s+)?(STL|LDL)\b", line)]


class OneRowAccumulator:
    """A user's accumulator, not wgmma's: thread t of 128 holds row t // 2 of a 64 x 16 block, its 8 columns from
    8 (t % 2) on; it says what OnlineSoftmax reads (`rows()`, `row_lanes`, `position`, `fragment`), and no `n`."""

    row_lanes = (1,)

    def __init__(self):
        self.thread = skc.thread_index()
        self.fragment = skc.full(8, 0.0, skc.f32)

    def position(self, i: int):
        return self.thread // 2, 8 * (self.thread % 2) + i

    def rows(self) -> list:
        return [(self.thread // 2, list(range(8)))]
