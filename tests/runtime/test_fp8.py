"""fp8 (OCP e4m3 and e5m2) in the interpreter, bit for bit against references built here from the formats'
definitions: the value of each of the 256 codes, and conversions from f32, f16, bf16 and f64 by
round-to-nearest-even with PTX's `.satfinite` (overflow and infinities give the largest finite value, NaN
stays NaN). ml_dtypes, where installed, checks the references themselves (its casts do not saturate)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from skc import ir
from skc.runtime.interpreter import numerics

FORMATS = {  # name: (exponent bits, mantissa bits, bias, largest finite)
    "f8e4m3": (4, 3, 7, 448.0),
    "f8e5m2": (5, 2, 15, 57344.0),
}
RNG = np.random.default_rng(8)
pytestmark = pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered in cast:RuntimeWarning")


# -- references from first principles -----------------------------------------------------------
def code_value(code: int, name: str) -> Fraction | float:
    """The exact value of an fp8 code (OCP FP8 v1.0): e4m3 has no infinities and one NaN per sign
    (S.1111.111); e5m2 is IEEE-like (S.11111.00 infinite, S.11111.mm NaN)."""
    exponent_bits, mantissa_bits, bias, _ = FORMATS[name]
    sign = -1 if code & 0x80 else 1
    exponent = (code >> mantissa_bits) & ((1 << exponent_bits) - 1)
    mantissa = code & ((1 << mantissa_bits) - 1)
    if name == "f8e4m3" and exponent == 15 and mantissa == 7:
        return math.nan
    if name == "f8e5m2" and exponent == 31:
        return sign * math.inf if mantissa == 0 else math.nan
    if exponent == 0:   # subnormal: 0.m * 2**(1 - bias)
        return sign * Fraction(mantissa, 1 << mantissa_bits) * Fraction(2) ** (1 - bias)
    return sign * (1 + Fraction(mantissa, 1 << mantissa_bits)) * Fraction(2) ** (exponent - bias)


def finite_codes(name: str) -> list:
    """(value, code) of the non-negative finite codes, in increasing value."""
    pairs = [(code_value(code, name), code) for code in range(0x80)]
    return [(v, c) for v, c in pairs if isinstance(v, Fraction)]


def reference_encode(x: float, name: str, saturate: bool = True) -> int:
    """The code of x rounded to nearest, ties to the even code (even mantissa), by exact comparison.
    saturate: PTX .satfinite; otherwise IEEE-style overflow (NaN for e4m3, infinity for e5m2), as torch
    and ml_dtypes cast."""
    _, _, _, top = FORMATS[name]
    if math.isnan(x):   # PTX's f32 -> fp8 conversions give the positive NaN 0x7F for every NaN
        return 0x7F
    sign = 0x80 if math.copysign(1.0, x) < 0 else 0
    magnitude = abs(x)
    if math.isinf(magnitude) or magnitude > top:
        codes = finite_codes(name)
        step = codes[-1][0] - codes[-2][0]
        midpoint = Fraction(top) + step / 2   # a tie there goes to the even one of max and "the next"
        below = not math.isinf(magnitude) and (Fraction(magnitude) < midpoint or
                                                (Fraction(magnitude) == midpoint and codes[-1][1] % 2 == 0))
        if saturate or below:
            return sign | codes[-1][1]
        return sign | (0x7F if name == "f8e4m3" else 0x7C)
    exact = Fraction(magnitude)
    best = None
    for value, code in finite_codes(name):
        distance = abs(value - exact)
        if best is None or distance < best[0] or (distance == best[0] and code % 2 == 0):
            best = (distance, code)
    return sign | best[1]


REFERENCE_VALUES = {name: np.array([math.copysign(float(code_value(c, name)), -1.0 if c & 0x80 else 1.0)
                                    for c in range(256)]) for name in FORMATS}


def reference_table(name: str):
    """Sorted non-negative finite values and codes, for a vectorized version of reference_encode."""
    pairs = finite_codes(name)
    return np.array([float(v) for v, _ in pairs]), np.array([c for _, c in pairs])


def reference_encode_array(x: np.ndarray, name: str) -> np.ndarray:
    """reference_encode (saturating) for many float64 values at once: every midpoint between neighbouring
    fp8 values is exact in float64, so comparisons with it decide the rounding exactly."""
    values, codes = reference_table(name)
    magnitude = np.abs(x)
    above = np.clip(np.searchsorted(values, magnitude), 1, len(values) - 1)
    low, high = values[above - 1], values[above]
    midpoint = (low + high) / 2
    pick_high = (magnitude > midpoint) | ((magnitude == midpoint) & (codes[above] % 2 == 0))
    code = np.where(pick_high, codes[above], codes[above - 1])
    code = np.where(magnitude >= values[-1], codes[-1], code)   # saturation, infinities included
    code = code | np.where(np.signbit(x), 0x80, 0)
    return np.where(np.isnan(x), 0x7F, code).astype(np.uint8)


def interpreter_codes(src: str, x: np.ndarray, name: str) -> np.ndarray:
    """The interpreter's `arith.cast` from src to fp8, as stored bits."""
    dst = ir.ScalarType(name)
    return numerics.to_storage(dst, numerics.cast(ir.ScalarType(src), dst, x))


def assert_codes_equal(got: np.ndarray, expected: np.ndarray, inputs: np.ndarray):
    wrong = np.flatnonzero(got != expected)
    if wrong.size:
        i = wrong[0]
        raise AssertionError(f"{wrong.size} of {got.size} conversions differ, first: {inputs[i]!r} "
                             f"({np.asarray(inputs[i]).tobytes().hex()}) gave {got[i]:#04x}, "
                             f"expected {expected[i]:#04x}")


# -- the 256 codes -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FORMATS)
def test_every_code_decodes_to_its_value(name):
    got = numerics.from_storage(ir.ScalarType(name), np.arange(256, dtype=np.uint8)).astype(np.float64)
    expected = REFERENCE_VALUES[name]
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    assert np.array_equal(got[finite], expected[finite])
    assert np.array_equal(np.signbit(got[finite]), np.signbit(expected[finite]))   # -0 is 0x80
    assert got[np.isfinite(got)].max() == FORMATS[name][3]
    assert np.isinf(got).sum() == (2 if name == "f8e5m2" else 0)


@pytest.mark.parametrize("name", FORMATS)
def test_every_value_encodes_back_to_its_code(name):
    values = REFERENCE_VALUES[name]
    codes = interpreter_codes("f32", values.astype(np.float32), name)
    finite = np.isfinite(values)
    assert np.array_equal(codes[finite], np.arange(256)[finite])
    assert (codes[np.isnan(values)] == 0x7F).all()   # -NaN too
    assert list(codes[np.isinf(values)]) == [0x7B, 0xFB][:np.isinf(values).sum()]   # e5m2's infinities saturate


def test_the_vectorized_reference_is_the_scalar_one():
    for name in FORMATS:
        inputs = np.concatenate([RNG.normal(0, 300, 400), RNG.uniform(-1, 1, 200) * 2.0 ** -7, [0.0, -0.0, 1e9]])
        midpoints = np.array([float((a + b) / 2) for (a, _), (b, _) in zip(finite_codes(name), finite_codes(name)[1:])])
        inputs = np.concatenate([inputs, midpoints, -midpoints, [np.inf, -np.inf, np.nan]])
        expected = np.array([reference_encode(float(x), name) for x in inputs], np.uint8)
        assert_codes_equal(reference_encode_array(inputs, name), expected, inputs)


# -- conversions ---------------------------------------------------------------------------------
def f32_cases(name: str) -> np.ndarray:
    """Every fp8 value, every midpoint between neighbours and the f32 values either side of it (ties and
    near-ties), the same around the saturation threshold and in the subnormals, specials, and random bits."""
    values, _ = reference_table(name)
    midpoints = (values[1:] + values[:-1]) / 2
    top = values[-1]
    overflow_edge = np.array([top + (values[-1] - values[-2]) / 2, top * 2, 3.0e38, 1.0e-45, 2.0 ** -30])
    points = np.concatenate([values, midpoints, overflow_edge]).astype(np.float32)
    near = np.concatenate([points, np.nextafter(points, np.float32(np.inf)), np.nextafter(points, np.float32(0))])
    specials = np.array([np.inf, np.nan, 0.0], np.float32)
    random_bits = RNG.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    cases = np.concatenate([near, specials, random_bits])
    return np.concatenate([cases, -cases])


@pytest.mark.parametrize("name", FORMATS)
def test_f32_to_fp8_rounds_to_nearest_even_and_saturates(name):
    x = f32_cases(name)
    got = interpreter_codes("f32", x, name)
    assert_codes_equal(got, reference_encode_array(x.astype(np.float64), name), x)


@pytest.mark.parametrize("name", FORMATS)
def test_every_f16_converts_exactly(name):
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    got = interpreter_codes("f16", x, name)
    assert_codes_equal(got, reference_encode_array(x.astype(np.float64), name), x)


@pytest.mark.parametrize("name", FORMATS)
def test_every_bf16_converts_exactly(name):
    bits = np.arange(1 << 16, dtype=np.uint32)
    x = (bits << np.uint32(16)).view(np.float32)     # bf16 values live in float32 in the interpreter
    got = interpreter_codes("bf16", x, name)
    assert_codes_equal(got, reference_encode_array(x.astype(np.float64), name), x)


@pytest.mark.parametrize("name", FORMATS)
def test_f64_converts_through_f32_as_ptx_does(name):
    """PTX has no f64 -> fp8 conversion: the value rounds to f32 first. Just above a midpoint in f64 but on it
    in f32, the tie then goes to the even code, not up."""
    values, codes = reference_table(name)
    i = int(np.flatnonzero(codes % 2 == 1)[3])   # an odd code: the tie above it goes up to the even one
    below = (values[i - 1] + values[i]) / 2      # the tie below it goes down to the even code i - 1
    x = np.array([below + below * 2.0 ** -40, -below - below * 2.0 ** -40, 1e300, -1e300, 2.0 ** -1000])
    got = interpreter_codes("f64", x, name)
    assert got[0] == codes[i - 1] and got[1] == 0x80 | codes[i - 1]   # one rounding from f64 would give code i
    assert got[2] == codes[-1] and got[3] == 0x80 | codes[-1] and got[4] == 0
    assert_codes_equal(got, reference_encode_array(x.astype(np.float32).astype(np.float64), name), x)


@pytest.mark.parametrize("name", FORMATS)
def test_fp8_to_wider_floats_is_exact(name):
    codes = np.arange(256, dtype=np.uint8)
    fp8 = ir.ScalarType(name)
    values = numerics.from_storage(fp8, codes)
    for wide in ("f16", "bf16", "f32", "f64"):
        got = numerics.cast(fp8, ir.ScalarType(wide), values).astype(np.float64)
        finite = ~np.isnan(REFERENCE_VALUES[name])
        assert np.array_equal(got[finite], REFERENCE_VALUES[name][finite]), wide
        assert np.isnan(got[~finite]).all(), wide


def test_integers_convert_through_f32():
    x = np.array([0, 1, -3, 17, 1000, -(1 << 40), (1 << 24) + 1], np.int64)
    for name in FORMATS:
        got = interpreter_codes("i64", x, name)
        assert_codes_equal(got, reference_encode_array(x.astype(np.float32).astype(np.float64), name), x)


# -- the references against ml_dtypes -------------------------------------------------------------
ML_NAMES = {"f8e4m3": "float8_e4m3fn", "f8e5m2": "float8_e5m2"}


@pytest.mark.parametrize("name", FORMATS)
def test_references_agree_with_ml_dtypes(name):
    """ml_dtypes rounds to nearest even without saturating: clamping to the largest finite value first gives
    the saturating cast (a value between the largest finite and the next midpoint rounds down either way)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = getattr(ml_dtypes, ML_NAMES[name])
    codes = np.arange(256, dtype=np.uint8)
    ml_values = codes.view(dtype).astype(np.float64)
    assert np.array_equal(np.isnan(ml_values), np.isnan(REFERENCE_VALUES[name]))
    finite = ~np.isnan(ml_values)
    assert np.array_equal(ml_values[finite], REFERENCE_VALUES[name][finite])

    x = f32_cases(name)
    top = np.float32(FORMATS[name][3])
    ml_saturated = np.where(np.isnan(x), x, np.clip(x, -top, top)).astype(dtype).view(np.uint8)
    expected = reference_encode_array(x.astype(np.float64), name)
    number = ~np.isnan(x)
    assert_codes_equal(ml_saturated[number], expected[number], x[number])
    # without saturation ml_dtypes overflows to NaN / infinity, as the scalar reference does
    sample = x[number][:3000]
    unsaturated = np.array([reference_encode(float(v), name, saturate=False) for v in sample], np.uint8)
    ml_plain = sample.astype(dtype).view(np.uint8)
    plain_nan = np.isnan(sample.astype(dtype).astype(np.float32))
    assert_codes_equal(ml_plain[~plain_nan], unsaturated[~plain_nan], sample[~plain_nan])
    assert ((unsaturated[plain_nan] & 0x7F) == 0x7F).all()


@pytest.mark.parametrize("name", FORMATS)
def test_casts_differ_from_torchs_only_on_overflow(name):
    """What the README and numerics.cast say of torch's `.to()`: the same codes wherever the value rounds inside the
    format; past it skc saturates (infinities too), where torch's e5m2 gives infinity and its e4m3fn NaN (older
    releases, c10's fp8e4m3fn_from_fp32_value) or the largest value (2.14's, as skc)."""
    torch = pytest.importorskip("torch")
    x = f32_cases(name)
    x = x[~np.isnan(x)]   # (torch keeps a NaN's sign; skc's NaN is 0x7F)
    fp8 = ir.ScalarType(name)
    ours = numerics.to_storage(fp8, numerics.cast(ir.f32, fp8, x))
    theirs = torch.from_numpy(x).to(getattr(torch, ML_NAMES[name])).view(torch.uint8).numpy()
    top = np.float32(FORMATS[name][3])
    inside = np.abs(x) <= top
    assert_codes_equal(theirs[inside], ours[inside], x[inside])
    assert ((ours[~inside] & 0x7F) == (0x7E if name == "f8e4m3" else 0x7B)).all()   # the largest value
    allowed = (0x7E, 0x7F) if name == "f8e4m3" else (0x7B, 0x7C)   # (within half an ulp of it torch rounds down too)
    assert np.isin(theirs[~inside] & 0x7F, allowed).all()
    if name == "f8e5m2":
        assert (theirs[np.isinf(x)] & 0x7F == 0x7C).all()


# -- conversion kernels through the frontend -----------------------------------------------------
def test_conversion_kernels_in_the_interpreter_give_the_reference_codes():
    """The same kernels the GPU test runs: f32 / f16 / bf16 / f64 sources, and the decoding of all 256 codes."""
    from fp8_kernels import THREADS, decode_fp8, encode_fp8, encode_fp8_from

    x = f32_cases("f8e4m3")[::37].copy()
    n = x.size
    grid = (-(-n // THREADS),)
    for src, wide in (("f32", np.float32), ("f64", np.float64)):
        e4m3, e5m2 = np.zeros(n, np.uint8), np.zeros(n, np.uint8)
        encode_fp8.interpret[grid, THREADS](x, e4m3, e5m2, n, src=src)
        exact = x.astype(wide).astype(np.float64)
        assert_codes_equal(e4m3, reference_encode_array(exact, "f8e4m3"), x)
        assert_codes_equal(e5m2, reference_encode_array(exact, "f8e5m2"), x)
    patterns = RNG.integers(0, 1 << 16, 20_000).astype(np.uint16)
    for src, values in (("f16", patterns.view(np.float16).astype(np.float64)),
                        ("bf16", (patterns.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64))):
        e4m3, e5m2 = np.zeros(patterns.size, np.uint8), np.zeros(patterns.size, np.uint8)
        grid16 = (-(-patterns.size // THREADS),)
        encode_fp8_from.interpret[grid16, THREADS](patterns, e4m3, e5m2, patterns.size, src=src)
        assert_codes_equal(e4m3, reference_encode_array(values, "f8e4m3"), patterns)
        assert_codes_equal(e5m2, reference_encode_array(values, "f8e5m2"), patterns)
    codes = np.arange(256, dtype=np.uint8)
    for name in FORMATS:
        out = np.zeros(3 * 256, np.float32)
        decode_fp8.interpret[(2,), THREADS](codes, out, 256, fmt=name)
        expected = REFERENCE_VALUES[name]
        for part in out.reshape(3, 256):   # f32, and through f16 and bf16 (every fp8 value is exact in both)
            assert np.array_equal(part.astype(np.float64), expected, equal_nan=True)


# -- fp8 wgmma -----------------------------------------------------------------------------------
def fp8_codes(values: np.ndarray, name: str) -> np.ndarray:
    fp8 = ir.ScalarType(name)
    return numerics.to_storage(fp8, numerics.cast(ir.f32, fp8, values.astype(np.float32)))


def run_fp8_wgmma(a: np.ndarray, b: np.ndarray, acc: np.ndarray, types=("f8e4m3", "f8e4m3"), swizzle=128):
    """D = acc + a @ b by two m64nNk32 wgmmas in the interpreter (a: 64 x 64, b: 64 x n, values exact in fp8)."""
    from fp8_kernels import fragments, fp8_wgmma, wgmma_problem

    n = b.shape[1]
    image, descriptors = wgmma_problem(fp8_codes(a, types[0]), fp8_codes(b.T, types[1]), swizzle)
    out = np.full((128, n // 2), np.nan, np.float32)
    fp8_wgmma.interpret[(1,), (128,)](image, fragments(acc), out, *descriptors, cfg=(n, image.size, *types))
    return out


@pytest.mark.parametrize("types", [("f8e4m3", "f8e4m3"), ("f8e5m2", "f8e5m2"), ("f8e4m3", "f8e5m2"),
                                   ("f8e5m2", "f8e4m3")])
@pytest.mark.parametrize("swizzle", [128, 64, 32, 0])
def test_fp8_wgmma_against_numpy_in_its_fragment_layout(types, swizzle):
    """Small integers and halves (exact in both formats) make every sum exact: D is acc + A B to the bit, read
    from K-major A and B in every swizzle, in the m64nNk16 fragment layout (k32 keeps it)."""
    from fp8_kernels import fragments

    n = 64
    a = RNG.integers(-6, 7, (64, 64)) / 2.0
    b = RNG.integers(-6, 7, (64, n)) / 2.0
    acc = RNG.integers(-100, 100, (64, n)).astype(np.float32)
    out = run_fp8_wgmma(a, b, acc, types, swizzle)
    np.testing.assert_array_equal(out, fragments((acc + a @ b).astype(np.float32)))


def test_fp8_wgmma_products_are_exact_and_accumulate_in_f32_in_k_order():
    """Products of fp8 values are exact in f32 (here 2**-9 * 2**-9 = 2**-18, from e4m3's smallest subnormal).
    Added one at a time to 64 (whose f32 ulp is 2**-17) each is a tie that rounds back to 64; summed first they
    would give 64 + 2**-17. Large products stay exact: 448 * 448 = 200704."""
    from fp8_kernels import fragments

    a = np.zeros((64, 64))
    b = np.zeros((64, 8))
    a[:, 0] = a[:, 1] = 2.0 ** -9
    b[0, :] = b[1, :] = 2.0 ** -9
    a[:, 40], b[40, :] = 448.0, 448.0
    acc = np.full((64, 8), 64.0, np.float32)
    out = run_fp8_wgmma(a, b, acc)
    assert (out == np.float32(64.0 + 448.0 * 448.0)).all()
    acc_small = np.full((64, 8), 64.0, np.float32)
    a[:, 40] = 0.0
    out = run_fp8_wgmma(a, b, acc_small)
    assert (out == np.float32(64.0)).all()
    np.testing.assert_array_equal(out, fragments(acc_small))


def fp8_wgmma_ir(attrs: str) -> str:
    return f"""
kernel @k(%d: i64) {{block = [128, 1, 1], shared_bytes = 16384}} {{
  %zero = arith.constant {{value = 0.0}} : vec<4xf32>
  %r = wgmma.mma %zero, %d, %d {attrs} : vec<4xf32>
}}
"""


def test_fp8_wgmma_ops_print_parse_and_verify():
    text = fp8_wgmma_ir('{n = 8, dtype = "f8e4m3", dtype_b = "f8e5m2"}')
    module = ir.parse_module(text)
    ir.verify(module)
    printed = ir.print_module(module)
    assert 'dtype = "f8e4m3"' in printed and 'dtype_b = "f8e5m2"' in printed
    assert ir.print_module(ir.parse_module(printed)) == printed
    with pytest.raises(Exception, match="wgmma reads fp8 operands K-major only"):
        ir.verify(ir.parse_module(fp8_wgmma_ir('{n = 8, dtype = "f8e4m3", trans_b = 1}')))
    with pytest.raises(Exception, match="only the fp8 types .* may mix"):
        ir.verify(ir.parse_module(fp8_wgmma_ir('{n = 8, dtype = "bf16", dtype_b = "f8e4m3"}')))
    with pytest.raises(Exception, match="dtype must be one of bf16, f16, f8e4m3, f8e5m2"):
        ir.verify(ir.parse_module(fp8_wgmma_ir('{n = 8, dtype = "i8"}')))


@pytest.mark.parametrize("types", [("f8e4m3", "f8e4m3"), ("f8e4m3", "f8e5m2")])
def test_the_wgmma_block_on_fp8_tiles_in_the_interpreter(types):
    """The Wgmma TileOp on one stage of 128-deep K-major fp8 tiles (four m64nNk32 steps, 32-byte k-slices of the
    128-byte-swizzled layout) gives A B exactly."""
    from fp8_kernels import block_image, fp8_wgmma_block, fragments

    n, k = 64, 128
    a = RNG.integers(-6, 7, (64, k)) / 2.0
    b = RNG.integers(-6, 7, (k, n)) / 2.0
    image = block_image(fp8_codes(a, types[0]), fp8_codes(b.T, types[1]))
    out = np.full((128, n // 2), np.nan, np.float32)
    fp8_wgmma_block.interpret[(1,), (128,)](image, out, cfg=(n, k, *types))
    np.testing.assert_array_equal(out, fragments((a @ b).astype(np.float32)))


def test_fp8_dtype_names():
    import skc
    from skc.frontend.dtypes import as_ir_type

    assert skc.float8_e4m3fn is skc.f8e4m3 and skc.float8_e5m2 is skc.f8e5m2
    assert as_ir_type("e4m3") is ir.f8e4m3 and as_ir_type("float8_e5m2") is ir.f8e5m2
    assert skc.f8e4m3.bits == 8 and skc.f8e5m2.itemsize == 1
