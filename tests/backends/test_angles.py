"""skc.sin and skc.cos reduce their argument modulo 2 pi before the GPUs' approximations (skc/backends/angles.py).
sin.approx and cos.approx are accurate on [-pi, pi] only: on an H100, sin and cos near 2**31 read 0.0 and 1.0 where
they are 0.97 and 0.24 (sixty-first session's search). The reduction is tested three ways: its LLVM function run on
this host (llvmlite's JIT) against the exact remainder over the whole f32 range, the PTX in the emulator, and the GPU
against numpy."""
import ctypes
import os
import re
import sys
from fractions import Fraction

import numpy as np
import pytest

import skc
from skc.backends import angles

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import ptx_emulator  # noqa: E402

F32P = skc.Ptr[skc.f32]
# pi to 100 digits (about 330 bits): the table is checked against it, not against the Machin sum that made it
PI = Fraction("3.1415926535897932384626433832795028841971693993751058209749445923078164062862089986280348253421170679")

rng = np.random.default_rng(7)
ARGUMENTS = np.concatenate([
    rng.uniform(-10, 10, 300), rng.uniform(-1e5, 1e5, 300),
    10.0 ** rng.uniform(4, 38.5, 1200) * rng.choice([-1, 1], 1200),
    [2.0 ** 24, 2.0 ** 24 - 1, -(2.0 ** 24), 2.0 ** 31, -(2.0 ** 31), 3.4028235e38, -3.4028235e38, 0.0, -0.0, 1e-40,
     np.pi, -np.pi, 1e8, 12345678.0]]).astype(np.float32)


@skc.kernel(block=64)
def sine_and_cosine(x: F32P, s: F32P, c: F32P, n: skc.i32):
    i = skc.block_id(0) * 64 + skc.thread_id(0)
    if i < n:
        s[i] = skc.sin(x[i])
        c[i] = skc.cos(x[i])


def _remainder_error(reduced: float, x: float) -> Fraction:
    """How far `reduced` is from x mod 2 pi (either representative)."""
    two_pi = 2 * PI
    exact = Fraction(x) - round(Fraction(x) / two_pi) * two_pi
    d = abs(Fraction(reduced) - exact)
    return min(d, abs(d - two_pi))


def test_the_table_holds_two_to_the_e_mod_two_pi():
    two_pi = 2 * PI
    for e, (high, low) in enumerate(angles.table(), 1):
        exact = Fraction(2) ** e - (Fraction(2) ** e // two_pi) * two_pi
        assert abs(Fraction(high) + Fraction(low) - exact) < Fraction(1, 2 ** 104), e    # two doubles: about 106 bits
        assert abs(low) <= abs(high) * 2.0 ** -52


def _host_reduction():
    """The LLVM function @__skc_reduce_angle of a sm_90a kernel, compiled for this host."""
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    text = sine_and_cosine.compile(target="sm_90a").ir("llvm")
    function = re.search(r"define internal float @__skc_reduce_angle.*?\n}\n", text, re.S)
    assert function, "no argument reduction in the LLVM IR"
    lines = text.splitlines()
    parts = [line for line in lines if line.startswith("declare") and re.search(r"llvm\.(fma|rint|fabs)\.f", line)]
    parts += [line for line in lines if line.startswith("@__skc_angle")]
    parts.append(function.group(0).replace("define internal", "define"))
    module = llvm.parse_assembly("\n".join(parts).replace(" addrspace(4)", ""))
    module.verify()
    engine = llvm.create_mcjit_compiler(module, llvm.Target.from_default_triple().create_target_machine())
    engine.finalize_object()
    address = engine.get_function_address("__skc_reduce_angle")
    return engine, ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_float)(address)


def test_the_reduction_is_exact_over_the_f32_range():
    engine, reduce = _host_reduction()
    worst = max(_remainder_error(reduce(float(x)), float(x)) for x in ARGUMENTS)
    assert worst <= Fraction(2) ** -22     # the f32 result's rounding near pi (half an ulp: 2**-23 there)
    assert reduce(float("inf")) == float("inf") and np.isnan(reduce(float("nan")))
    inside = [float(x) for x in ARGUMENTS if abs(x) <= 3.1415925]   # (up to the largest f32 below pi: x itself)
    assert inside and all(reduce(x) == x for x in inside)


def _reference():
    return np.sin(ARGUMENTS.astype(np.float64)), np.cos(ARGUMENTS.astype(np.float64))


def _arrays():
    n = ARGUMENTS.size
    return [ARGUMENTS.copy(), np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32), np.int32(n)]


def test_the_ptx_reduces_before_the_approximation():
    ptx = sine_and_cosine.compile(*_arrays(), target="sm_90a").asm("ptx")
    assert ptx.count("ld.const.b64") >= 2 and "sin.approx.f32" in ptx and "cos.approx.f32" in ptx
    x, s, c, n = _arrays()
    count = 128                                 # the emulator is slow: the first 128 arguments and the edges
    picked = np.concatenate([x[:count], x[-14:]])
    arrays = [picked, np.full(picked.size, np.nan, np.float32), np.full(picked.size, np.nan, np.float32)]
    s, c = ptx_emulator.run_grid(ptx, "sine_and_cosine", arrays, -(-picked.size // 64), 64,
                                 scalars=(picked.size,))[1:3]
    wide = picked.astype(np.float64)
    assert np.abs(s - np.sin(wide)).max() < 1e-6 and np.abs(c - np.cos(wide)).max() < 1e-6


def test_the_amd_code_reduces_too():
    compiled = sine_and_cosine.compile(*_arrays(), target="gfx942")
    text = compiled.ir("llvm")
    assert "@__skc_reduce_angle" in text and "@llvm.sin.f32" in text
    gcn = compiled.asm("gcn")
    assert "v_fma_f64" in gcn and "v_sin_f32" in gcn and "v_cos_f32" in gcn


@pytest.mark.gpu
def test_sine_and_cosine_of_large_arguments_on_the_gpu():
    x, s, c, n = (skc.to_device(a) if isinstance(a, np.ndarray) else a for a in _arrays())
    sine_and_cosine[-(-ARGUMENTS.size // 64), 64](x, s, c, n)
    sine, cosine = _reference()
    # sin.approx and cos.approx: absolute error 2**-20.9 on [-pi, pi]; the reduced argument's rounding adds 2**-23
    assert np.abs(s.numpy() - sine).max() < 2e-6
    assert np.abs(c.numpy() - cosine).max() < 2e-6
