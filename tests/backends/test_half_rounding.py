"""floor, ceil, trunc and rint of f16 and bf16 (and f16's // and divmod, which floor) compile for every target:
they round through f32, which is exact (a half value past 2**10, or bf16's past 2**7, is an integer already).
They ran in the interpreter but NVPTX refused them ("not available on f16"; a helper's search, eighteenth
session)."""
import ml_dtypes
import numpy as np
import pytest

import skc
from skc.backends import ptx_tools


@skc.kernel(block=1)
def rounding(x: skc.Ptr[skc.f16], y: skc.Ptr[skc.bf16], out: skc.Ptr[skc.f32]):
    a = x[0]
    b = y[0]
    out[0] = skc.floor(a)
    out[1] = a // skc.f16(0.75)
    out[2] = skc.trunc(b)
    out[3] = skc.rint(b)
    out[4] = skc.ceil(a)
    v = skc.load(x, width=2)
    w = skc.floor(v)
    out[5] = w[1]


@pytest.mark.parametrize("target", ["sm_90a", "sm_80", "gfx942"])
def test_half_rounding_compiles(target):
    if target.startswith("sm") and not ptx_tools.have_nvjitlink():
        pytest.skip("nvJitLink is not installed")
    kernel = rounding.compile(target=target)
    if target.startswith("sm"):
        assert "cvt.rmi.f32.f32" in kernel.asm("ptx")   # floor, in f32


@pytest.mark.parametrize("a, b", [(-2.5, 3.5), (1000.5, -0.5), (2049.0, 200.5), (-0.25, 2.5)])
def test_half_rounding_in_the_interpreter_matches_numpy(a, b):
    x = np.array([a, -1.75], np.float16)
    y = np.array([b], ml_dtypes.bfloat16)
    out = np.zeros(6, np.float32)
    rounding[1, 1](x, y, out)
    half, brain = np.float16(a), np.float32(y[0])
    assert out.tolist() == [np.floor(half), np.floor(half / np.float16(0.75)), np.trunc(brain), np.rint(brain),
                            np.ceil(half), np.floor(np.float16(-1.75))]
