"""Float `%` and `//` (arith.rem on floats, C's fmod) must be exact on the GPU as in the interpreter. LLVM's `frem`
is not: NVPTX (and AMDGPU) lower it to x - trunc(x / y) * y, which is wrong once the quotient x / y has more digits
than the format holds (1e10 % 3.0 gave 256.0, 1e30 % 7.0 gave -2.8e22, 1e7 % 0.1 a negative remainder). The lowering
computes fmod by long division of the significands instead."""
import os
import sys

import numpy as np
import pytest

import skc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "fuzz"))
import ptx_emulator  # noqa: E402

F32P = skc.Ptr[skc.f32]


@skc.kernel(block=64)
def remainder(x: F32P, y: F32P, out: F32P):
    t = skc.block_id(0) * 64 + skc.thread_id(0)
    out[t] = x[t] % y[t]


def _operands():
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.0, -3.0, 1e10, 1e-40, 3e38,
                        2.0 ** -126, 7.0], np.float32)
    x, y = np.repeat(special, special.size), np.tile(special, special.size)       # 196 pairs
    rng = np.random.default_rng(0)
    random_bits = rng.integers(0, 2 ** 32, (2, 52), dtype=np.uint64).astype(np.uint32).view(np.float32)
    big = np.array([1e10, 3e9, 5e7, 1e30, 1e7, 123456789.0, -1e9, 33554430.0], np.float32)
    small = np.array([3.0, 7.0, 3.0, 7.0, 0.1, 10.0, 7.0, 3.0], np.float32)
    return np.concatenate([x, random_bits[0], big]), np.concatenate([y, random_bits[1], small])


def _same(a, b):
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def test_the_interpreter_is_exact():
    x, y = _operands()
    out = np.zeros(x.size, np.float32)
    with np.errstate(all="ignore"):
        remainder.interpret[x.size // 64, 64](x, y, out)
        expected = np.array([float(a) % float(b) if b != 0 and np.isfinite(a) and not np.isnan(b) else np.nan
                             for a, b in zip(x.astype(np.float64), y.astype(np.float64))], np.float32)
    assert _same(out, expected).all()


def test_the_ptx_is_exact():
    x, y = _operands()
    blocks = x.size // 64
    with np.errstate(all="ignore"):
        expected = np.zeros(x.size, np.float32)
        remainder.interpret[blocks, 64](x, y, expected)
    ptx = remainder.compile(x, y, expected, target="sm_90a").asm("ptx")
    out = ptx_emulator.run_grid(ptx, "remainder", [x.copy(), y.copy(), np.zeros(x.size, np.float32)], blocks, 64)[2]
    bad = np.flatnonzero(~_same(out, expected))
    assert not bad.size, [(x[i], y[i], out[i], expected[i]) for i in bad[:8]]


@pytest.mark.parametrize("dtype", [skc.f64, skc.f16, skc.bf16])
def test_other_float_types_compile(dtype):
    @skc.kernel(block=32)
    def rem(x: skc.Ptr[dtype], y: skc.Ptr[dtype], out: skc.Ptr[dtype]):
        t = skc.thread_id(0)
        out[t] = x[t] % y[t]

    ptx = rem.compile(target="sm_90a", block=(32, 1, 1)).asm("ptx")
    assert "cvt.rzi" not in ptx     # no trunc(x / y)


@pytest.mark.gpu
def test_the_gpu_is_exact():
    x, y = _operands()
    expected = np.zeros(x.size, np.float32)
    with np.errstate(all="ignore"):
        remainder.interpret[x.size // 64, 64](x, y, expected)
    out = skc.to_device(np.zeros(x.size, np.float32))
    remainder[x.size // 64, 64](skc.to_device(x), skc.to_device(y), out)
    assert _same(out.numpy(), expected).all()
