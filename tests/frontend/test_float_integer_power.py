"""A float to an integer power is one rule whether the exponent is known at compile time or not: square and multiply
over the exponent's bits, 1 / that for a negative exponent. x ** 5 with a constant 5 was four multiplications left
to right and with a run-time 5 math.pow (numpy's powf in the interpreter, exp2(5 * log2 x) on the GPU): 1 ulp apart
in the interpreter for 43% of 2000 normal f32s (x = 1.0847852 gave 1.502169 against 1.5021691), and a constant 9 or
-1 went through math.pow too. The same products now, in the interpreter and in the PTX (tests/fuzz/ptx_emulator.py)."""
import os
import sys

import numpy as np
import pytest

import skc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import ptx_emulator  # noqa: E402

EXPONENTS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 31, -1, -2, -3, -5, -8, 100, -100)
_rng = np.random.default_rng(7)
BASES = np.concatenate([(_rng.standard_normal(10) * 3), [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 1e-20,
                                                         1e20, 1.0000001, -2.2178]]).astype(np.float32)
N = len(BASES)


def _kernel(dtype, index):
    """out[k * N + t]: BASES[t] ** EXPONENTS[k] with the exponent a constant; runs[...]: the same from a run-time
    `index` array of exponents."""
    @skc.kernel(block=N)
    def powers(x: skc.Ptr[dtype], n: skc.Ptr[index], out: skc.Ptr[dtype], runs: skc.Ptr[dtype]):
        t = skc.thread_id(0)
        for k in skc.static_range(len(EXPONENTS)):
            out[k * N + t] = x[t] ** EXPONENTS[k]
            runs[k * N + t] = x[t] ** n[k]
    return powers


def _arrays(np_type, np_index):
    with np.errstate(over="ignore"):
        x = BASES.astype(np_type)
    n = np.array(EXPONENTS, np.int64).astype(np_index)
    return x, n, np.zeros(N * len(EXPONENTS), np_type), np.zeros(N * len(EXPONENTS), np_type)


def _same(a, b):
    return (a.view(np.uint8).reshape(len(a), -1) == b.view(np.uint8).reshape(len(b), -1)).all(1) | (
        np.isnan(a) & np.isnan(b))


CASES = [(skc.f32, skc.i32, np.float32, np.int32), (skc.f16, skc.i64, np.float16, np.int64),
         (skc.f64, skc.i32, np.float64, np.int32), (skc.f32, skc.i8, np.float32, np.int8)]


@pytest.mark.parametrize("dtype,index,np_type,np_index", CASES)
def test_a_constant_and_a_run_time_integer_exponent_give_the_same_bits(dtype, index, np_type, np_index):
    x, n, out, runs = _arrays(np_type, np_index)
    with np.errstate(all="ignore"):
        _kernel(dtype, index).interpret[1, N](x, n, out, runs)
    bad = np.flatnonzero(~_same(out, runs))
    assert not bad.size, [(x[i % N], EXPONENTS[i // N], out[i], runs[i]) for i in bad[:5]]
    # the products of x: x ** 5 is x * (x ** 4) (and 1 / x ** 5 for -5), whatever rounds where; an f16's in f32,
    # rounded once
    wide = np.float32 if np_type is np.float16 else np_type
    with np.errstate(all="ignore"):
        xw = x.astype(wide)
        x5 = xw * ((xw * xw) * (xw * xw))
        five, minus_five = EXPONENTS.index(5) * N, EXPONENTS.index(-5) * N
        assert _same(out[five:five + N], x5.astype(np_type)).all()
        assert _same(out[minus_five:minus_five + N], (wide(1) / x5).astype(np_type)).all()
    assert (out[:N] == 1).all()   # x ** 0 is 1, of a NaN too (C's pow)


@pytest.mark.parametrize("dtype,index,np_type,np_index", CASES)
def test_the_ptx_computes_the_interpreters_products(dtype, index, np_type, np_index):
    x, n, out, runs = _arrays(np_type, np_index)
    kernel = _kernel(dtype, index)
    with np.errstate(all="ignore"):
        kernel.interpret[1, N](x, n, out, runs)
    ptx = kernel.compile(x, n, out, runs, target="sm_90a").asm("ptx")
    assert "ex2.approx" not in ptx and "lg2.approx" not in ptx
    got = ptx_emulator.run_grid(ptx, "powers", [x.copy(), n.copy(), np.zeros_like(out), np.zeros_like(runs)], 1, N)
    for want, have in ((out, got[2]), (runs, got[3])):
        bad = np.flatnonzero(~_same(want, have))
        assert not bad.size, [(x[i % N], EXPONENTS[i // N], want[i], have[i]) for i in bad[:5]]


def test_the_most_negative_exponent_is_a_reciprocal_of_a_whole_power():
    @skc.kernel(block=1)
    def extreme(out: skc.Ptr[skc.f32], n: skc.i8):
        out[0] = skc.f32(1.0078125) ** n      # n = -128: |n| is 128, not the -128 that negating wraps to
        out[1] = skc.f32(1.0078125) ** -128

    out = np.zeros(2, np.float32)
    extreme.interpret[1, 1](out, -128)
    x = np.float32(1.0078125)
    for _ in range(7):
        x = x * x
    assert out[0] == out[1] == np.float32(1) / x


def test_a_float_exponent_stays_math_pow():
    @skc.kernel(block=1)
    def float_exponent(out: skc.Ptr[skc.f32], x: skc.f32, y: skc.f32):
        out[0] = x ** y
        out[1] = x ** 2.5

    assert "math.pow" in float_exponent.compile(target="sm_90a").ir("tile")


def test_a_whole_float_exponent_is_the_integer_power():
    """x ** 2.0 is x ** 2 (and x ** -1.0 is 1 / x): math.pow computed it as exp2(2 · log2 x), 1e-6 off on a GPU,
    where ptxas then computes a constant x's exactly, so that a folded and a run-time x disagreed."""
    @skc.kernel(block=N)
    def whole(x: skc.Ptr[skc.f32], floats: skc.Ptr[skc.f32], ints: skc.Ptr[skc.f32]):
        t = skc.thread_id(0)
        floats[t] = x[t] ** 2.0
        ints[t] = x[t] ** 2
        floats[N + t] = x[t] ** -1.0
        ints[N + t] = x[t] ** -1
        floats[2 * N + t] = x[t] ** 0.0
        ints[2 * N + t] = x[t] ** 0
        floats[3 * N + t] = x[t] ** 7.0
        ints[3 * N + t] = x[t] ** 7

    compiled = whole.compile(target="sm_90a")
    assert "math.pow" not in compiled.ir("tile")
    ptx = compiled.asm("ptx")
    assert "ex2.approx" not in ptx and "lg2.approx" not in ptx
    x, floats, ints = BASES.copy(), np.zeros(4 * N, np.float32), np.zeros(4 * N, np.float32)
    with np.errstate(all="ignore"):
        whole.interpret[1, N](x, floats, ints)
    assert _same(floats, ints).all()
    got = ptx_emulator.run_grid(ptx, "whole", [x.copy(), np.zeros_like(floats), np.zeros_like(ints)], 1, N)
    assert _same(got[1], floats).all() and _same(got[2], ints).all()


@pytest.mark.parametrize("dtype,torch_type", [(skc.bf16, "bfloat16"), (skc.f16, "float16")])
def test_a_narrow_float_power_rounds_once(dtype, torch_type):
    """An f16 or bf16 to an integer power is computed in f32 and rounded once to its type, as torch.pow and numpy's
    power compute it (was: rounded at every product, a bf16 ** 100 23 ulps, 17%, off), a constant exponent and a
    run-time one alike."""
    torch = pytest.importorskip("torch")
    exponents = (3, 13, 100, -31)

    @skc.kernel(block=64)
    def powers(x: skc.Ptr[dtype], n: skc.Ptr[skc.i32], out: skc.Ptr[dtype], runs: skc.Ptr[dtype]):
        t = skc.thread_id(0)
        for k in skc.static_range(len(exponents)):
            out[k * 64 + t] = x[t] ** exponents[k]
            runs[k * 64 + t] = x[t] ** n[k]

    kind = getattr(torch, torch_type)
    x = (1 + torch.linspace(-0.05, 0.05, 64, dtype=torch.float64)).to(kind)
    out, runs = torch.zeros(64 * len(exponents), dtype=kind), torch.zeros(64 * len(exponents), dtype=kind)
    powers.interpret[1, 64](x, torch.tensor(exponents, dtype=torch.int32), out, runs)
    for k, n in enumerate(exponents):
        got, exact = out[k * 64:(k + 1) * 64], x.double() ** n
        assert torch.equal(got, runs[k * 64:(k + 1) * 64]), n
        # within an ulp of the exact power (f32's products are some f32 ulps off, which a tie may round either way)
        assert ((got.double() - exact).abs() <= torch.finfo(kind).eps * exact.abs()).all(), n
