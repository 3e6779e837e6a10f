"""skc.exp2(x, ftz=True): 2 ** x with results under 2 ** -126 flushed to 0 — one ex2.approx.ftz.f32 on NVIDIA (the
plain form adds a subnormal fix-up around the MUFU), a compare and select after v_exp_f32 on AMD, and the flush in the
interpreter, which defines the op."""
import numpy as np
import pytest

import skc

F32P = skc.Ptr[skc.f32]


@skc.kernel
def powers(x: F32P, plain: F32P, flushed: F32P, n: skc.i32):
    i = skc.thread_index()
    if i < n:
        plain[i] = skc.exp2(x[i])
        flushed[i] = skc.exp2(x[i], ftz=True)


def test_the_interpreter_flushes_only_what_lies_under_the_smallest_normal():
    x = np.array([0.0, 3.0, -10.0, -125.5, -126.0, -126.5, -130.0, -150.0, -np.inf], np.float32)
    plain, flushed = np.zeros_like(x), np.full_like(x, np.nan)
    powers.interpret[1, 32](x, plain, flushed, len(x))
    np.testing.assert_array_equal(plain, np.exp2(x))
    expected = np.where(np.exp2(x) < np.float32(2.0 ** -126), np.float32(0), np.exp2(x))
    np.testing.assert_array_equal(flushed, expected)
    assert flushed[4] == np.float32(2.0 ** -126) and flushed[5] == 0 and plain[5] > 0   # 2^-126.5 is subnormal


def test_ptx_takes_the_ftz_form_only_where_asked():
    ptx = powers.compile(F32P, F32P, F32P, skc.i32, target="sm_90a", block=32).asm("ptx")
    assert ptx.count("ex2.approx.ftz.f32") == 1 and ptx.count("ex2.approx.f32") == 1


def test_amd_flushes_after_v_exp():
    from test_amdgpu import gcn_of

    llvm, gcn = gcn_of(powers, "gfx942", F32P, F32P, F32P, skc.i32)
    assert "0x3810000000000000" in llvm and "v_exp_f32" in gcn   # the compare with 2^-126 before the select


def test_half_precision_computes_in_f32():
    @skc.kernel
    def half(x: skc.Ptr[skc.bf16], y: skc.Ptr[skc.bf16]):
        i = skc.thread_index()
        y[i] = skc.exp2(x[i], ftz=True)

    ptx = half.compile(skc.Ptr[skc.bf16], skc.Ptr[skc.bf16], target="sm_90a", block=32).asm("ptx")
    assert "ex2.approx.ftz.f32" in ptx


def test_ftz_is_a_compile_time_bool():
    @skc.kernel
    def bad(x: F32P, flag: skc.i32):
        x[0] = skc.exp2(x[0], ftz=flag > 0)

    with pytest.raises(skc.CompileError, match="ftz must be True or False"):
        bad.compile(F32P, skc.i32, target="sm_90a", block=32)


def test_compile_time_values_fold_to_inf_where_they_overflow():
    @skc.kernel
    def folded(out: F32P):
        out[0] = skc.exp2(2000.0, ftz=True)
        out[1] = skc.exp2(2000.0)
        out[2] = skc.exp(800.0)
        out[3] = skc.exp2(-2000.0, ftz=True)

    out = np.full(4, np.nan, np.float32)
    folded.interpret[1, 1](out)
    assert list(out) == [np.inf, np.inf, np.inf, 0.0]
