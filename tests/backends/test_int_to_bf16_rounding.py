"""A 32- or 64-bit integer cast to bf16 rounds once, as arith.cast defines (the interpreter:
tests/runtime/test_int64_to_bf16.py). AMD CDNA and sm_80 have no such conversion, and LLVM converted through f32
(v_cvt_f32_i32, cvt.rn.f32.s32) and then to bf16, rounding twice: 2**30 + 2**22 + 1, just above a bf16 midpoint,
became 2**30 (f32 rounds it onto the midpoint, which ties to even) where once rounded it is 2**30 + 2**23. The
lowering first folds the magnitude's bits far below bf16's last place into one sticky bit, so that its conversion
to f32 (32-bit integers) or f64 (64-bit ones, which the targets round to bf16 once: to odd in f32 first) is exact.
sm_90a keeps its one instruction."""
import numpy as np
import pytest

import skc
from skc.backends import ptx_tools


@skc.kernel(block=4)
def to_bf16(i: skc.Ptr[skc.i32], u: skc.Ptr[skc.u32], l: skc.Ptr[skc.i64], q: skc.Ptr[skc.u64],
            out: skc.Ptr[skc.f32]):
    t = skc.thread_id(0)
    out[t] = skc.f32(skc.bf16(i[t]))
    out[4 + t] = skc.f32(skc.bf16(u[t]))
    out[8 + t] = skc.f32(skc.bf16(l[t]))
    out[12 + t] = skc.f32(skc.bf16(q[t]))


ARGS = (skc.Ptr[skc.i32], skc.Ptr[skc.u32], skc.Ptr[skc.i64], skc.Ptr[skc.u64], skc.Ptr[skc.f32])


def test_the_interpreter_rounds_once():
    i = np.array([2 ** 30 + 2 ** 22 + 1, -(2 ** 30 + 2 ** 22 + 1), 2 ** 24 + 2 ** 16 + 1, -2 ** 31], np.int32)
    l = np.array([2 ** 62 + 2 ** 54 + 1, 2 ** 40 + 2 ** 32 + 1, -(2 ** 40 + 2 ** 32 + 1), -2 ** 63], np.int64)
    out = np.zeros(16, np.float32)
    to_bf16.interpret[1, 4](i, i.view(np.uint32), l, l.view(np.uint64), out)
    assert out[:3].tolist() == [2 ** 30 + 2 ** 23, -(2 ** 30 + 2 ** 23), 2 ** 24 + 2 ** 17]
    assert out[8:11].tolist() == [2 ** 62 + 2 ** 55, 2 ** 40 + 2 ** 33, -(2 ** 40 + 2 ** 33)]


@pytest.mark.parametrize("target", ["gfx942", "gfx90a"])
def test_amd_converts_an_exact_magnitude(target):
    gcn = to_bf16.compile(*ARGS, target=target).asm("gcn")
    assert "v_cvt_f32_i32" not in gcn      # the signed integer straight to f32: the first of two roundings
    assert "v_cvt_f32_u32" in gcn and "v_cvt_f64_u32" in gcn


def test_sm_80_converts_an_exact_magnitude_and_sm_90a_in_one_instruction():
    if not ptx_tools.have_nvjitlink():
        pytest.skip("nvJitLink is not installed")
    ptx = to_bf16.compile(*ARGS, target="sm_80").asm("ptx")
    assert "cvt.rn.f32.s32" not in ptx and "cvt.rn.f32.s64" not in ptx and "cvt.rn.bf16.s" not in ptx
    assert "cvt.rn.f32.u32" in ptx and "cvt.rn.f64.u64" in ptx
    ptx = to_bf16.compile(*ARGS, target="sm_90a").asm("ptx")
    assert ptx.count("cvt.rn.bf16.s32") == 1 and ptx.count("cvt.rn.bf16.u64") == 1
