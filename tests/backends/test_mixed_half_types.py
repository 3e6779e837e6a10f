"""f16 and bf16 operands in one f32 operation whose result is rounded to f16 (or bf16): LLVM's InstCombine narrows
fptrunc(fadd(fpext bfloat, fpext half)) to an f16 addition of the bf16 operand rounded to f16, as if bf16 fitted in
f16 (its range is f32's): skc.f16(60000 + bf16(-70000)) gave -inf on NVIDIA, -10000 in the interpreter (the
mixed-type fuzzer, tests/fuzz/mixgen.py). bf16 widens by its bits instead (lowering._widen_bf16)."""
import ml_dtypes
import numpy as np
import pytest

import skc
from skc.backends import ptx_tools


@skc.kernel(block=1)
def mixed(a: skc.Ptr[skc.f16], b: skc.Ptr[skc.bf16], out: skc.Ptr[skc.f16], out_b: skc.Ptr[skc.bf16],
          wide: skc.Ptr[skc.f64]):
    x, y = a[0], b[0]
    out[0] = skc.f16(x + y)
    out[1] = skc.f16(x * y)
    out[2] = skc.f16(y - x)
    out[3] = skc.f16(y)
    out_b[0] = skc.bf16(x + y)
    v = skc.load(b, width=2)
    w = skc.load(a, width=2)
    s = skc.cast(v + w, skc.f16)
    out[4] = s[0]
    wide[0] = skc.f64(y)


def _run(x, y):
    a = np.array([x, 1.0], np.float16)
    b = np.array([y, -70000.0], ml_dtypes.bfloat16)
    out, out_b, wide = np.zeros(5, np.float16), np.zeros(1, ml_dtypes.bfloat16), np.zeros(1)
    mixed.interpret[1, 1](a, b, out, out_b, wide)
    return out, out_b, wide


def test_the_interpreter_rounds_the_f32_result_once():
    out, out_b, wide = _run(60000.0, -70000.0)
    x, y = np.float32(np.float16(60000.0)), np.float32(ml_dtypes.bfloat16(-70000.0))   # y is -70144
    assert out[0] == np.float16(x + y) == np.float16(-10144.0)   # no -inf
    assert out[2] == np.float16(y - x) and out[3] == -np.inf and wide[0] == -70144.0
    assert out[4] == out[0]   # (the vector form, lane 0)


@pytest.mark.parametrize("target", ["sm_90a", "gfx942"])
def test_no_half_operation_on_a_bf16_operand(target):
    if target.startswith("sm") and not ptx_tools.have_nvjitlink():
        pytest.skip("nvJitLink is not installed")
    kernel = mixed.compile(target=target)
    opt = kernel.ir("llvm-opt")
    assert "fadd half" not in opt and "fmul half" not in opt and "fsub half" not in opt, opt
    assert "fpext bfloat" not in opt
    if target.startswith("sm"):
        ptx = kernel.asm("ptx")
        assert "add.rn.f16" not in ptx and "mul.rn.f16" not in ptx and "sub.rn.f16" not in ptx
