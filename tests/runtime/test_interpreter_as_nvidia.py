"""The interpreter gives what an NVIDIA GPU gives where numpy's x86 answers differ (the sixty-fifth session's search;
an H100's values, benchmarks/results/session65-2026-12-07-interpreter-vs-gpu-h100.txt):

- a NaN that arithmetic makes (inf - inf, inf · 0, 0 / 0, sqrt(-inf), -NaN + 0) is NVIDIA's one NaN, 0x7FFFFFFF for
  f32 and 0x7FFF for f16; numpy gave x86's 0xFFC00000 (f16 0xFE00), so copysign(1.0, inf - inf) was -1.0 here and
  +1.0 on the GPU;
- an f32 atomic add through a generic pointer into global memory flushes subnormals as the global one does (the
  interpreter flushed only for pointers typed global: 1e-39 + 1e-39 was 2e-39 here, 0 on the GPU).
Negation and absolute value of a NaN stay sign-bit operations (docs/language.md says where the GPU differs)."""
import importlib.util
import math
import pathlib

import ml_dtypes
import numpy as np
import pytest

import skc


@skc.kernel(block=1)
def nans(x: skc.Ptr[skc.f32], h: skc.Ptr[skc.f16], o: skc.Ptr[skc.f32], bits: skc.Ptr[skc.u32],
         hb: skc.Ptr[skc.u16]):
    inf = x[0]
    zero = x[1]
    neg_nan = x[2]
    d = inf - inf
    bits[0] = skc.bitcast(d, skc.u32)
    bits[1] = skc.bitcast(inf * zero, skc.u32)
    bits[2] = skc.bitcast(zero / zero, skc.u32)
    bits[3] = skc.bitcast(skc.sqrt(-inf), skc.u32)
    bits[4] = skc.bitcast(neg_nan + zero, skc.u32)
    bits[5] = skc.bitcast(skc.fma(inf, zero, zero), skc.u32)
    o[0] = math.copysign(1.0, d)
    o[1] = math.copysign(1.0, neg_nan + zero)
    hi = h[0]
    hb[0] = skc.bitcast(hi - hi, skc.u16)
    o[2] = math.copysign(1.0, skc.f32(hi - hi))


def _nan_inputs():
    x = np.array([np.inf, 0.0, 0.0], np.float32)
    x.view(np.uint32)[2] = 0xFFC00000   # a negative NaN
    return [x, np.array([np.inf], np.float16)]


def _nan_outputs():
    return [np.zeros(3, np.float32), np.zeros(6, np.uint32), np.zeros(1, np.uint16)]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_arithmetics_nans_are_nvidias_canonical_nan():
    o, bits, hb = outs = _nan_outputs()
    nans.interpret[1, 1](*_nan_inputs(), *outs)
    assert [hex(b) for b in bits] == ["0x7fffffff"] * 6 and hex(hb[0]) == "0x7fff"
    assert o.tolist() == [1.0, 1.0, 1.0]


@skc.kernel(block=1)
def nans_f64(x: skc.Ptr[skc.f64], f: skc.Ptr[skc.f32], bits: skc.Ptr[skc.u64], fb: skc.Ptr[skc.u32]):
    inf = x[0]
    zero = x[1]
    signalling = x[2]   # 0x7FF4000000000123
    bits[0] = skc.bitcast(inf - inf, skc.u64)
    bits[1] = skc.bitcast(zero / zero, skc.u64)
    bits[2] = skc.bitcast(skc.fma(inf, zero, zero), skc.u64)
    bits[3] = skc.bitcast(signalling + zero, skc.u64)
    bits[4] = skc.bitcast(skc.f64(f[0]), skc.u64)
    bits[5] = skc.bitcast(skc.maximum(signalling, zero), skc.u64)
    bits[6] = skc.bitcast(skc.minimum(zero, signalling), skc.u64)
    fb[0] = skc.bitcast(skc.f32(signalling), skc.u32)


@skc.kernel(block=1)
def nans_bf16(h: skc.Ptr[skc.bf16], f: skc.Ptr[skc.f32], hb: skc.Ptr[skc.u16]):
    inf = h[0]
    zero = h[1]
    signalling = h[2]   # 0x7FA1
    hb[0] = skc.bitcast(inf - inf, skc.u16)
    hb[1] = skc.bitcast(zero / zero, skc.u16)
    hb[2] = skc.bitcast(skc.fma(inf, zero, zero), skc.u16)
    hb[3] = skc.bitcast(signalling * zero, skc.u16)
    hb[4] = skc.bitcast(skc.sqrt(signalling), skc.u16)
    hb[5] = skc.bitcast(skc.bf16(f[0]), skc.u16)
    hb[6] = skc.bitcast(skc.bf16(f[1]), skc.u16)
    hb[7] = skc.bitcast(skc.maximum(signalling, zero), skc.u16)
    hb[8] = skc.bitcast(skc.minimum(zero, signalling), skc.u16)


@skc.kernel(block=1)
def nan_casts(f: skc.Ptr[skc.f32], h: skc.Ptr[skc.f16], hb: skc.Ptr[skc.u16], fb: skc.Ptr[skc.u32]):
    for i in skc.static_range(2):
        hb[i] = skc.bitcast(skc.f16(f[i]), skc.u16)
        fb[i] = skc.bitcast(skc.f32(h[i]), skc.u32)


@skc.kernel(block=1)
def nans_passed(d: skc.Ptr[skc.f64], f: skc.Ptr[skc.f32], h: skc.Ptr[skc.f16], g: skc.Ptr[skc.bf16],
                e: skc.Ptr[skc.e4m3], db: skc.Ptr[skc.u64], fb: skc.Ptr[skc.u32], hb: skc.Ptr[skc.u16]):
    quiet = d[0]
    negative = d[1]
    one = d[3]
    db[0] = skc.bitcast(quiet + negative, skc.u64)
    db[1] = skc.bitcast(quiet / negative, skc.u64)
    db[2] = skc.bitcast(-negative, skc.u64)
    db[3] = skc.bitcast(abs(negative), skc.u64)
    db[4] = skc.bitcast(skc.maximum(negative, one), skc.u64)
    db[5] = skc.bitcast(skc.f64(h[0]), skc.u64)
    db[6] = skc.bitcast(skc.f64(e[0]), skc.u64)
    fb[0] = skc.bitcast(-f[0], skc.u32)
    fb[1] = skc.bitcast(abs(f[0]), skc.u32)
    fb[2] = skc.bitcast(skc.f32(g[0]) + 1.0, skc.u32)
    fb[3] = skc.bitcast(math.copysign(f[0], -1.0), skc.u32)
    hb[0] = skc.bitcast(-h[0], skc.u16)
    hb[1] = skc.bitcast(abs(g[0]), skc.u16)
    hb[2] = skc.bitcast(skc.f16(d[2]), skc.u16)
    hb[3] = skc.bitcast(skc.bf16(negative), skc.u16)


def _bits(dtype, *patterns):
    return np.array(patterns, {8: np.uint64, 4: np.uint32, 2: np.uint16, 1: np.uint8}[np.dtype(dtype).itemsize]).view(
        dtype)


def _nan_cases():
    """(kernel, inputs, outputs, the outputs' bits on an H100) of the f64, bf16 and cast cases."""
    f64 = _bits(np.float64, 0x7FF0000000000000, 0, 0x7FF4000000000123)
    f32 = _bits(np.float32, 0x7FA00123, 0xFFC00001)
    bf16 = _bits(np.uint16, 0x7F80, 0, 0x7FA1).view(ml_dtypes.bfloat16)
    f16 = _bits(np.float16, 0x7D23, 0xFE01)
    return [(nans_f64, [f64, f32], [np.zeros(7, np.uint64), np.zeros(1, np.uint32)],
             [[0xFFF8000000000000] * 3 + [0x7FFC000000000123, 0x7FFC002460000000, 0, 0], [0x7FE00000]]),
            (nans_bf16, [bf16, f32], [np.zeros(9, np.uint16)], [[0x7FFF] * 7 + [0, 0]]),
            (nan_casts, [f32, f16], [np.zeros(2, np.uint16), np.zeros(2, np.uint32)],
             [[0x7FFF, 0x7FFF], [0x7FFFFFFF, 0x7FFFFFFF]]),
            (nans_passed, [_bits(np.float64, 0x7FF8000000000000, 0xFFFC000000000456, 0x7FF4000000000123,
                                 0x3FF0000000000000), f32[:1],
                           f16[:1], bf16[2:], _bits(np.uint8, 0x7F).view(ml_dtypes.float8_e4m3fn)],
             [np.zeros(7, np.uint64), np.zeros(4, np.uint32), np.zeros(4, np.uint16)],
             [[0xFFFC000000000456, 0x7FF8000000000000, 0xFFFC000000000456, 0xFFFC000000000456, 0x3FF0000000000000,
               0x7FFC8C0000000000, 0x7FFFFC0000000000], [0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF, 0xFFA00123],
              [0x7FFF, 0x7FFF, 0x7F00, 0xFFE0]])]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_bf16_and_f64_nans_and_nan_casts_are_the_gpus():
    """bf16 arithmetic and casts to f16 or bf16 (or from f16) give the canonical NaN; f64 passes an operand's NaN on,
    quieted (the later operand's, division's the first's; -x and abs(x) keep its sign), and so do its casts, bf16's to
    f32 and f16's to f64; fp8 casts go through f16; -x and abs(x) of an f32, f16 or bf16 NaN are the canonical NaN, and
    copysign keeps a NaN's payload; minimum and maximum of a signalling NaN give the other operand (x86's fmax gave a
    NaN). Every value is an H100's (benchmarks/results/session66-2026-12-08-nans-h100.txt)."""
    for kernel, inputs, outputs, expected in _nan_cases():
        kernel.interpret[1, 1](*inputs, *outputs)
        assert [[hex(int(v)) for v in o] for o in outputs] == [[hex(v) for v in e] for e in expected], kernel.__name__


def test_every_nan_case_of_the_h100s_table():
    """Every cast among f64, f32, f16, bf16 and the fp8 types, and the arithmetic of f64, f32, f16 and bf16 over
    NaNs of both signs, quiet and signalling, 1, inf and 0 (1705 cases) give the H100's bits."""
    root = pathlib.Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("nans_against_gpu", root / "benchmarks" / "nans_against_gpu.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    table = root / "benchmarks" / "results" / "session66-2026-12-08-nans-h100.json"
    assert script.main(["--against", str(table)]) == 0


@skc.kernel(block=1)
def generic_atomic(x: skc.Ptr[skc.f32], o: skc.Ptr[skc.f32]):
    g = skc.int_to_ptr(skc.ptr_to_int(x), skc.f32, space="generic")
    o[1] = skc.atomic_add(g, o[0])
    o[2] = x[0]
    skc.atomic_add(x + 1, o[0])
    o[3] = x[1]


def _atomic_arrays():
    return [np.array([1e-39, 1e-39], np.float32), np.array([1e-39, 0, 0, 0], np.float32)]


def test_a_generic_atomic_add_into_global_memory_flushes_subnormals():
    x, o = _atomic_arrays()
    generic_atomic.interpret[1, 1](x, o)
    assert o[1] == np.float32(1e-39) and o[2] == 0.0 and o[3] == 0.0


@pytest.mark.gpu
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_gpu_gives_the_interpreters_nans_and_atomics():
    cases = [(nans, _nan_inputs(), _nan_outputs()), (generic_atomic, _atomic_arrays()[:1], _atomic_arrays()[1:])]
    for kernel, inputs, outputs, _ in _nan_cases():
        cases.append((kernel, inputs, outputs))
    for kernel, inputs, outputs in cases:
        want = [a.copy() for a in outputs]
        kernel.interpret[1, 1](*[a.copy() for a in inputs], *want)
        on_gpu = [skc.to_device(a) for a in (*inputs, *outputs)]
        kernel[1, 1](*on_gpu)
        for got, expected in zip(on_gpu[len(inputs):], want):
            assert np.array_equal(got.numpy().view(np.uint8), expected.view(np.uint8)), (got.numpy(), expected)
