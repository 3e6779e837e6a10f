"""fp8 on the GPU against the interpreter, bit for bit: conversions (every f16 and bf16 value, every fp8
midpoint and its neighbours in f32, random f32 bits, specials; every code decoded), and m64nNk32 wgmma
from shared memory (exact sums, and sums whose rounding the accumulation order decides)."""
from __future__ import annotations

import numpy as np
import pytest

import skc
from fp8_kernels import (THREADS, block_image, decode_fp8, encode_fp8, encode_fp8_from, fp8_wgmma, fp8_wgmma_block,
                         fragments, wgmma_problem)
from skc import ir
from skc.runtime.interpreter import numerics

pytestmark = pytest.mark.gpu
RNG = np.random.default_rng(89)
FORMATS = ("f8e4m3", "f8e5m2")


def on_gpu_and_interpreter(kernel, grid, block, inputs, outputs, *scalars, **constexprs):
    """Run kernel on the GPU and in the interpreter with the same inputs; outputs (host arrays, poisoned) come
    back as (gpu, interpreter) pairs."""
    gpu_in = [skc.to_device(x) for x in inputs]
    gpu_out = [skc.to_device(y.copy()) for y in outputs]
    kernel[grid, block](*gpu_in, *gpu_out, *scalars, **constexprs)
    cpu_out = [y.copy() for y in outputs]
    kernel.interpret[grid, block](*inputs, *cpu_out, *scalars, **constexprs)
    return [(g.numpy(), c) for g, c in zip(gpu_out, cpu_out)]


def f32_inputs() -> np.ndarray:
    """Every fp8 value, the midpoints between neighbours, the f32 values either side of each, past the largest
    finite value, subnormals of f32, specials, and random bit patterns; both signs."""
    points = []
    for name in FORMATS:
        values = numerics.from_storage(ir.ScalarType(name), np.arange(0x7F, dtype=np.uint8)).astype(np.float64)
        values = np.sort(values[np.isfinite(values)])
        points += [values, (values[1:] + values[:-1]) / 2, [values[-1] * 1.03, values[-1] * 1.1, 1e30]]
    points = np.concatenate(points).astype(np.float32)
    near = np.concatenate([points, np.nextafter(points, np.float32(np.inf)), np.nextafter(points, np.float32(0))])
    specials = np.array([np.inf, np.nan, 0.0, 1e-45, 2.0 ** -126], np.float32)
    random_bits = RNG.integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32).view(np.float32)
    cases = np.concatenate([near, specials, random_bits])
    return np.concatenate([cases, -cases])


def assert_same_codes(gpu: np.ndarray, cpu: np.ndarray, inputs: np.ndarray, what: str):
    wrong = np.flatnonzero(gpu != cpu)
    if wrong.size:
        i = wrong[0]
        shown = [(inputs[j], hex(gpu[j]), hex(cpu[j])) for j in wrong[:8]]
        raise AssertionError(f"{what}: {wrong.size} of {gpu.size} codes differ (input, GPU, interpreter): {shown}")


@pytest.mark.parametrize("src", ["f32", "f64"])
def test_conversions_from_f32_and_f64_match_the_interpreter(src):
    x = f32_inputs()
    n = x.size
    outputs = [np.full(n, 0xAA, np.uint8), np.full(n, 0xAA, np.uint8)]
    results = on_gpu_and_interpreter(encode_fp8, (skc.cdiv(n, THREADS),), THREADS, [x], outputs, n, src=src)
    for (gpu, cpu), name in zip(results, FORMATS):
        assert_same_codes(gpu, cpu, x, f"{src} -> {name}")


@pytest.mark.parametrize("src", ["f16", "bf16"])
def test_every_16_bit_value_converts_as_in_the_interpreter(src):
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    n = x.size
    outputs = [np.full(n, 0xAA, np.uint8), np.full(n, 0xAA, np.uint8)]
    results = on_gpu_and_interpreter(encode_fp8_from, (skc.cdiv(n, THREADS),), THREADS, [x], outputs, n, src=src)
    for (gpu, cpu), name in zip(results, FORMATS):
        assert_same_codes(gpu, cpu, x, f"{src} -> {name}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_code_decodes_as_in_the_interpreter(fmt):
    codes = np.arange(256, dtype=np.uint8)
    [(gpu, cpu)] = on_gpu_and_interpreter(decode_fp8, (2,), THREADS, [codes], [np.full(3 * 256, 7.0, np.float32)],
                                          256, fmt=fmt)
    assert np.array_equal(np.isnan(gpu), np.isnan(cpu))
    assert np.array_equal(gpu.view(np.uint32)[~np.isnan(cpu)], cpu.view(np.uint32)[~np.isnan(cpu)])


def fp8_codes(values: np.ndarray, name: str) -> np.ndarray:
    fp8 = ir.ScalarType(name)
    return numerics.to_storage(fp8, numerics.cast(ir.f32, fp8, values.astype(np.float32)))


@pytest.mark.parametrize("types", [("f8e4m3", "f8e4m3"), ("f8e5m2", "f8e5m2"), ("f8e4m3", "f8e5m2")])
@pytest.mark.parametrize("swizzle", [128, 64, 32, 0])
@pytest.mark.parametrize("n", [8, 64, 256])
def test_fp8_wgmma_with_exact_sums_matches_numpy_and_the_interpreter_bit_for_bit(types, swizzle, n):
    """Two m64nNk32 wgmmas, K-major A and B in every swizzle: halves and small integers make every sum exact,
    so the GPU must equal acc + A B (and the interpreter) to the bit, whatever its accumulation order."""
    a = RNG.integers(-6, 7, (64, 64)) / 2.0
    b = RNG.integers(-6, 7, (64, n)) / 2.0
    acc = RNG.integers(-100, 100, (64, n)).astype(np.float32)
    image, descriptors = wgmma_problem(fp8_codes(a, types[0]), fp8_codes(b.T, types[1]), swizzle)
    out = np.full((128, n // 2), np.nan, np.float32)
    gpu_in = [skc.to_device(image), skc.to_device(fragments(acc))]
    gpu_out = skc.to_device(out.copy())
    cfg = (n, image.size, *types)
    fp8_wgmma[(1,), (128,)](*gpu_in, gpu_out, *descriptors, cfg=cfg)
    cpu_out = out.copy()
    fp8_wgmma.interpret[(1,), (128,)](image, fragments(acc), cpu_out, *descriptors, cfg=cfg)
    expected = fragments((acc + a @ b).astype(np.float32))
    np.testing.assert_array_equal(cpu_out, expected)
    np.testing.assert_array_equal(gpu_out.numpy(), expected)


def test_fp8_wgmma_with_rounding_stays_within_the_accumulation_order_caveat():
    """Random e4m3 values over their whole range: sums round. The interpreter adds products in k order in f32;
    the tensor cores' order and width are unspecified. Report how many results are bit-identical and bound the
    others by 2**-8 of the sum of |products| (the hardware is known to keep fewer bits than f32 for fp8)."""
    n = 64
    a = numerics.from_storage(ir.f8e4m3, fp8_codes(RNG.normal(0, 8, (64, 64)), "f8e4m3")).astype(np.float64)
    b = numerics.from_storage(ir.f8e4m3, fp8_codes(RNG.normal(0, 8, (64, n)), "f8e4m3")).astype(np.float64)
    acc = RNG.normal(0, 100, (64, n)).astype(np.float32)
    image, descriptors = wgmma_problem(fp8_codes(a, "f8e4m3"), fp8_codes(b.T, "f8e4m3"), 128)
    gpu_out = skc.to_device(np.full((128, n // 2), np.nan, np.float32))
    cfg = (n, image.size, "f8e4m3", "f8e4m3")
    fp8_wgmma[(1,), (128,)](skc.to_device(image), skc.to_device(fragments(acc)), gpu_out, *descriptors, cfg=cfg)
    cpu_out = np.full((128, n // 2), np.nan, np.float32)
    fp8_wgmma.interpret[(1,), (128,)](image, fragments(acc), cpu_out, *descriptors, cfg=cfg)
    gpu = gpu_out.numpy()
    magnitude = fragments((np.abs(acc) + np.abs(a) @ np.abs(b)).astype(np.float32)).astype(np.float64)
    error = np.abs(gpu.astype(np.float64) - cpu_out.astype(np.float64))
    identical = np.mean(gpu == cpu_out)
    print(f"fp8 wgmma with rounding: {identical:.1%} bit-identical to the interpreter, "
          f"largest difference {np.max(error / magnitude):.3g} of the sum of magnitudes")
    # a wrongly placed operand errs by about the magnitude itself; fewer accumulation bits by far less
    assert np.all(error <= magnitude * 2.0 ** -8), np.max(error / magnitude)


@pytest.mark.parametrize("types", [("f8e4m3", "f8e4m3"), ("f8e5m2", "f8e4m3")])
def test_the_wgmma_block_on_fp8_tiles_matches_numpy(types):
    n, k = 128, 128
    a = RNG.integers(-6, 7, (64, k)) / 2.0
    b = RNG.integers(-6, 7, (k, n)) / 2.0
    image = block_image(fp8_codes(a, types[0]), fp8_codes(b.T, types[1]))
    gpu_out = skc.to_device(np.full((128, n // 2), np.nan, np.float32))
    fp8_wgmma_block[(1,), (128,)](skc.to_device(image), gpu_out, cfg=(n, k, *types))
    np.testing.assert_array_equal(gpu_out.numpy(), fragments((a @ b).astype(np.float32)))
