"""Issue 8, item 4: float // and % mean what Python (and numpy) mean, in f32 and f64, in the interpreter;
the LLVM lowering is the same formula (the frontend expands it into primitive ops both run)."""
import math
import re

import numpy as np
import pytest

import skc
from skc import ir
from skc.frontend import PtrType
from frontend_run import TARGET, compile_kernel

from skc.runtime.interpreter import Memory, run

N = 256


@skc.kernel
def divmod_kernel(a: skc.Ptr[skc.f32], b: skc.Ptr[skc.f32], q: skc.Ptr[skc.f32], r: skc.Ptr[skc.f32]):
    i = skc.thread_id(0)
    q[i] = a[i] // b[i]
    r[i] = a[i] % b[i]


def run_divmod(dtype, a, b):
    t = {np.float32: ir.f32, np.float64: ir.f64}[dtype]
    function = compile_kernel(divmod_kernel, block=(N, 1, 1), a=PtrType(t), b=PtrType(t), q=PtrType(t), r=PtrType(t))
    q, r = np.zeros(N, dtype), np.zeros(N, dtype)
    memory = Memory()
    args = [memory.map_array(v, name=f"arg{k}") for k, v in enumerate((a, b, q, r))]
    run(function, grid=(1, 1, 1), block=(N, 1, 1), args=args, memory=memory, target=TARGET)
    return q, r


def pairs(dtype, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(N) * 10.0 ** rng.integers(-3, 4, N)).astype(dtype)
    b = (rng.standard_normal(N) * 10.0 ** rng.integers(-3, 3, N)).astype(dtype)
    a[:8] = [2.0, -2.0, 2.0, -2.0, 0.0, -0.0, 7.5, 1e-3]
    b[:8] = [0.1, 0.1, -0.1, -0.1, 3.0, 3.0, 2.5, -7.0]
    a[8:16] = b[8:16] * rng.integers(-5, 6, 8)   # exact multiples: zero remainders take the divisor's sign
    return a, b


def same(got, want):
    """Equal including the sign of zero."""
    return np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f64_floordiv_and_mod_match_python(seed):
    a, b = pairs(np.float64, seed)
    q, r = run_divmod(np.float64, a, b)
    want_q = np.array([x // y for x, y in zip(a.tolist(), b.tolist())])
    want_r = np.array([x % y for x, y in zip(a.tolist(), b.tolist())])
    assert same(q, want_q), np.nonzero(q != want_q)
    assert same(r, want_r), np.nonzero(r != want_r)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f32_floordiv_and_mod_match_numpy(seed):
    a, b = pairs(np.float32, seed)
    q, r = run_divmod(np.float32, a, b)
    assert same(q, np.floor_divide(a, b)), np.nonzero(q != np.floor_divide(a, b))
    assert same(r, np.remainder(a, b)), np.nonzero(r != np.remainder(a, b))
    assert q[0] == 19.0 and r[0] == np.remainder(np.float32(2.0), np.float32(0.1))   # 2.0 // 0.1 == 19.0


def test_a_zero_divisor_gives_numpys_quotient():
    """x // ±0.0 is x / ±0.0 (±inf, NaN for 0 and NaN) as numpy's and torch's floor_divide give; it read NaN for
    every x (the formula's (x - fmod) / y is NaN there)."""
    values = [3.0, -3.0, 0.0, -0.0, math.inf, -math.inf, math.nan, 2.0, 1e-45]
    for dtype in (np.float32, np.float64):
        a = np.resize(np.array(values, dtype), N)
        b = np.resize(np.array([0.0, -0.0], dtype), N)
        q, r = run_divmod(dtype, a, b)
        with np.errstate(all="ignore"):
            want_q, want_r = np.floor_divide(a, b), np.remainder(a, b)
        number = ~np.isnan(want_q)   # (a NaN's sign is x86's in numpy; an f32 NaN is NVIDIA's 0x7FFFFFFF here)
        assert np.array_equal(q, want_q, equal_nan=True) and np.array_equal(np.signbit(q[number]),
                                                                            np.signbit(want_q[number])), q[:9]
        assert np.isnan(r).all() and np.isnan(want_r).all()


def test_the_reviewers_identity_holds():
    a, b = pairs(np.float64, 7)
    q, r = run_divmod(np.float64, a, b)
    for x, y, qq, rr in zip(a.tolist(), b.tolist(), q.tolist(), r.tolist()):
        assert (qq, rr) == divmod(x, y)
        assert math.isclose(x, qq * y + rr, rel_tol=1e-12, abs_tol=1e-12 * max(abs(x), abs(y)))


def test_tile_ir_holds_the_formula():
    """The frontend expands // and % into ops the interpreter and the LLVM lowering both define."""
    from helpers import tile_ir

    tile = tile_ir(divmod_kernel, *(skc.Ptr[skc.f32],) * 4)
    for op in ("arith.rem", "arith.sub", "arith.div", "math.floor", "arith.select", "arith.cmp"):
        assert op in tile, op


def test_llvm_ir_of_float_floordiv():
    kernel = divmod_kernel.compile(target="sm_90a", block=N)
    llvm = kernel.ir("llvm")
    body = llvm[llvm.index("define ptx_kernel"):]
    assert re.search(r"call float @__skc_fmod_f32", body), body      # exact fmod, not LLVM's frem (inexact on NVPTX)
    assert re.search(r"call float @llvm\.floor\.f32", body), body
    assert len(re.findall(r"fdiv float", body)) == 2          # (a - mod) / b and the sign of a / b
    assert len(re.findall(r"select i1", body)) >= 5


def test_float_divmod_assembles_through_ptxas():
    """nvJitLink/ptxas take the lowered formula (frem, floor, selects) for f32 and f64."""
    @skc.kernel
    def divmod_f64(a: skc.Ptr[skc.f64], b: skc.Ptr[skc.f64], q: skc.Ptr[skc.f64], r: skc.Ptr[skc.f64]):
        i = skc.thread_id(0)
        q[i], r[i] = divmod(a[i], b[i])

    for kernel in (divmod_kernel, divmod_f64):
        compiled = kernel.compile(target="sm_90a", block=N)
        assert compiled.cubin and "cvt.rmi" in compiled.asm("ptx")
