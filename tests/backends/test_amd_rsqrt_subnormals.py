"""skc.rsqrt of a subnormal f32 is finite (rsqrt(1e-40) = 1e20: the interpreter, NVIDIA's rsqrt.approx.f32). AMD's
v_rsq_f32 does not handle subnormal inputs (LLVM's own 1-ulp rsq expansion, and ROCm's ocml rsqrtf, scale them first
where f32 denormals are on, as skc's kernels have them); the lowering called it bare and gave +inf. It now scales
inputs under 2^-126 by 2^24 and the result by 2^12, as LLVM does."""
import numpy as np
import pytest

import skc

F32P = skc.Ptr[skc.f32]


@skc.kernel(block=64)
def inverse_roots(x: F32P, y: F32P):
    t = skc.thread_id(0)
    y[t] = skc.rsqrt(x[t])


def test_the_interpreter_takes_the_root_of_subnormals():
    x = np.array([1e-40, 2.0 ** -149, 4.0, 0.0, -0.0, np.inf], np.float32)
    y = np.zeros_like(x)
    inverse_roots.interpret[1, 6](x, y)
    assert np.allclose(y[:3], [1e20, 2.0 ** 74.5, 0.5], rtol=1e-5)
    assert y[3:].tolist() == [np.inf, -np.inf, 0.0]


@pytest.mark.parametrize("target", ["gfx942", "gfx90a"])
def test_amd_scales_subnormal_inputs_around_v_rsq(target):
    compiled = inverse_roots.compile(F32P, F32P, target=target)
    llvm, gcn = compiled.ir("llvm"), compiled.asm("gcn")
    assert "fcmp olt float %v" in llvm and "0x3810000000000000" in llvm   # x < 2^-126
    assert "0x4170000000000000" in llvm and "0x40B0000000000000" in llvm  # 2^24 in, 2^12 out
    lines = [line.strip() for line in gcn.splitlines()]
    rsq = next(i for i, line in enumerate(lines) if line.startswith("v_rsq_f32"))
    assert any("0x800000" in line for line in lines[:rsq]) and any("0x45800000" in line for line in lines[rsq:])
