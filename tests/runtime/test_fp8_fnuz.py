"""AMD's FNUZ fp8 formats (gfx942's own): f8e4m3fnuz and f8e5m2fnuz as IR types. Against first principles and
ml_dtypes: the exponent bias one larger than OCP's, 0x80 the only NaN, no -0 and no infinities; conversions round
to nearest even and saturate (as skc's OCP conversions do). gfx942 converts them directly; NVIDIA refuses them."""
import math

import numpy as np
import pytest

import skc
from skc import ir
from skc.backends.llvm_text import fp8_bits
from skc.runtime import dtypes
from skc.runtime.interpreter import numerics

FORMATS = {"f8e4m3fnuz": (3, 8, 240.0), "f8e5m2fnuz": (2, 16, 57344.0)}   # mantissa bits, bias, largest
pytestmark = pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered in cast:RuntimeWarning")


def code_value(code: int, name: str) -> float:
    mantissa_bits, bias, _ = FORMATS[name]
    if code == 0x80:
        return math.nan
    sign = -1.0 if code & 0x80 else 1.0
    exponent, mantissa = (code & 0x7F) >> mantissa_bits, code & ((1 << mantissa_bits) - 1)
    if exponent == 0:
        return sign * math.ldexp(mantissa, 1 - bias - mantissa_bits)
    return sign * math.ldexp((1 << mantissa_bits) + mantissa, exponent - bias - mantissa_bits)


@pytest.mark.parametrize("name", FORMATS)
def test_every_code_decodes_to_its_value(name):
    values = numerics.from_storage(ir.ScalarType(name), np.arange(256, dtype=np.uint8))
    expected = np.array([code_value(c, name) for c in range(256)], np.float32)
    assert np.isnan(values[0x80]) and np.isnan(values).sum() == 1 and not np.isinf(values).any()
    np.testing.assert_array_equal(values[np.arange(256) != 0x80], expected[np.arange(256) != 0x80])
    assert np.nanmax(values) == FORMATS[name][2] == -np.nanmin(values)


@pytest.mark.parametrize("name", FORMATS)
def test_conversions_round_to_nearest_even_and_saturate(name):
    t = ir.ScalarType(name)
    top = FORMATS[name][2]
    x = np.float32([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 2 * top, -2 * top, 1e-30, -1e-30])
    codes = numerics.to_storage(t, x)
    assert codes.tolist() == [0, 0, 0x80, 0x80, 0x7F, 0xFF, 0x7F, 0xFF, 0, 0]   # no -0; NaN is 0x80
    every = numerics.from_storage(t, np.arange(256, dtype=np.uint8))
    finite = np.isfinite(every)
    np.testing.assert_array_equal(numerics.to_storage(t, every[finite]), np.arange(256)[finite])   # back to its code
    for value in (1.0, -3.25, top, 1.0 / 1024, 5e-3):
        assert fp8_bits(value, name) == numerics.to_storage(t, np.float32([value]))[0]   # constants: the same
    assert fp8_bits(math.nan, name) == 0x80 and fp8_bits(-0.0, name) == 0


@pytest.mark.parametrize("name, ml_name", [("f8e4m3fnuz", "float8_e4m3fnuz"), ("f8e5m2fnuz", "float8_e5m2fnuz")])
def test_against_ml_dtypes(name, ml_name):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    ml = getattr(ml_dtypes, ml_name)
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(numerics.from_storage(ir.ScalarType(name), codes), codes.view(ml).astype(np.float32))
    top = FORMATS[name][2]
    x = (np.random.default_rng(3).standard_normal(200_000) * top / 3).astype(np.float32)
    # ml_dtypes gives NaN past the largest value; skc saturates: compare on the clamped values
    np.testing.assert_array_equal(numerics.to_storage(ir.ScalarType(name), x),
                                  np.clip(x, -top, top).astype(ml).view(np.uint8))
    assert dtypes.to_ir(np.dtype(ml)).name == name


@skc.kernel(block=64)
def through_fnuz(x: skc.Ptr[skc.f32], codes: skc.Ptr[skc.u8], back: skc.Ptr[skc.f32], n: skc.i32):
    t = skc.thread_id(0)
    if t < n:
        q = skc.cast(x[t], skc.f8e4m3fnuz)
        codes[t] = skc.bitcast(q, skc.u8)
        back[t] = skc.cast(q, skc.f32)


X = np.float32([0.0, -0.0, 1.0, -1.5, 240.0, 250.0, 1e9, -1e9, np.nan, 1e-30, 0.0078125, 3.3])


def test_a_kernel_converts_in_the_interpreter():
    codes, back = np.zeros(X.size, np.uint8), np.zeros(X.size, np.float32)
    through_fnuz.interpret[1, 64](X, codes, back, X.size)
    np.testing.assert_array_equal(codes, numerics.to_storage(ir.ScalarType("f8e4m3fnuz"), X))
    np.testing.assert_array_equal(back, numerics.from_storage(ir.ScalarType("f8e4m3fnuz"), codes))


def test_gfx942_converts_directly_and_nvidia_refuses():
    gcn = through_fnuz.compile(X, np.zeros(X.size, np.uint8), X, X.size, target="gfx942").asm("gcn")
    assert "v_cvt_pk_fp8_f32" in gcn and "v_cvt_f32_fp8" in gcn
    assert "0.5" not in gcn and "0x3f000000" not in gcn   # no halving: FNUZ is the hardware's format (OCP is not)
    with pytest.raises(skc.CompileError, match="f8e4m3fnuz is AMD's FNUZ fp8 format.*use f8e4m3"):
        through_fnuz.compile(X, np.zeros(X.size, np.uint8), X, X.size, target="sm_90a")
