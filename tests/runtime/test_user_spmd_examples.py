"""examples/layer_norm.py, examples/prefix_sum.py and examples/transpose.py (SPMD kernels a user writes from the docs)
in the interpreter against numpy, on small shapes with tails: row widths that take 8-, 4-, 2- and 1-element vectors
and rows past one chunk a thread; scans of a partial vector, a partial tile, and more tiles than the offsets' scan
takes in one chunk; transposes of every edge case of the 32 x 32 tiles, in 2- and 4-byte types. And what they
compile to: 16-byte loads, shuffles, shared rows padded to an odd number of words, code objects for AMD."""
import os

import numpy as np
import pytest

import skc
from helpers import load_example
from skc import cli


@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 2), (3, 6), (2, 12), (3, 33), (2, 64), (1, 1000), (2, 4096),
                                        (2, 5000), (1, 8200), (2, 8193), (1, 70_000)])
@pytest.mark.parametrize("dtype", [skc.f16, skc.bf16])
def test_layer_norm_matches_numpy_on_any_row_width(rows, cols, dtype):
    """8193 odd columns (one element a vector) and 70,000 (8 a vector) take the wide kernel's run-time loops."""
    assert load_example("layer_norm").check(rows, cols, dtype) <= 2 ** -7


def test_layer_norm_keeps_a_row_far_from_zero():
    """Rows of mean 1000 and spread 1 (f16's largest step there is 0.5): E[x²] - mean² in f32 would lose the
    variance; the mean of (x - mean)² keeps it."""
    example = load_example("layer_norm")
    x_host = (1000 + np.tile(np.array([-1.0, 1.0], np.float32), (2, 64))).astype(np.float32)
    x = skc.to_device(x_host, dtype=skc.f16)
    w, b = skc.to_device(np.ones(128, np.float32), dtype=skc.f16), skc.to_device(np.zeros(128, np.float32), dtype=skc.f16)
    y, mean, rstd = skc.empty((2, 128), skc.f16), skc.empty(2, skc.f32), skc.empty(2, skc.f32)
    example.launch(x, w, b, y, mean, rstd, 2, 128)
    rstd_exact = 1 / np.sqrt(1 + 1e-5)                  # the variance is 1; E[x²] - mean² in f32 would lose it
    assert np.array_equal(y.numpy(), (x_host - 1000) * np.float16(rstd_exact).astype(np.float32))
    assert np.allclose(rstd.numpy(), rstd_exact) and np.array_equal(mean.numpy(), [1000, 1000])


@pytest.mark.parametrize("n, threads, rounds", [(1, 256, 4), (3, 256, 4), (4, 32, 1), (5, 32, 1), (4095, 256, 4),
                                                (4096, 256, 4), (4097, 256, 4), (3 * 4096 + 5, 256, 4),
                                                (100_003, 64, 2), (128 * 4100 + 3, 32, 1)])
def test_prefix_sum_matches_numpy_with_tails(n, threads, rounds):
    """128 · 4100 + 3 floats in tiles of 128 make 4101 tile sums: the offsets' scan takes them in two chunks."""
    assert load_example("prefix_sum").check(n, threads, rounds) <= 1


def test_prefix_sum_of_integers_is_exact():
    example = load_example("prefix_sum")
    x_host = np.arange(-7000, 7001, dtype=np.float32) % 13 - 6
    y = skc.empty(x_host.size, skc.f32)
    example.launch(skc.to_device(x_host), y, x_host.size)
    assert np.array_equal(y.numpy(), np.cumsum(x_host))


@pytest.mark.parametrize("m, n", [(1, 1), (1, 33), (33, 1), (32, 32), (31, 64), (64, 31), (45, 70), (100, 3)])
@pytest.mark.parametrize("dtype", [skc.f32, skc.i32, skc.f16, skc.bf16, skc.i16])
def test_transpose_matches_numpy_on_every_edge(m, n, dtype):
    load_example("transpose").check(m, n, dtype)


@pytest.mark.parametrize("dtype, row_bytes", [(skc.f32, 33 * 4), (skc.f16, 34 * 2), (skc.i16, 34 * 2)])
def test_transpose_pads_shared_rows_to_an_odd_number_of_words(dtype, row_bytes):
    """A block's 8 rows of threads store rows ty, ty + 8, ...: 8 rows of shared memory apart."""
    example = load_example("transpose")
    ptx = example.transpose.compile(skc.Ptr[dtype], skc.Ptr[dtype], target="sm_90a", block=(32, 8)).asm("ptx")
    assert f"+{8 * row_bytes}]" in ptx and (row_bytes // 4) % 2 == 1


def test_the_examples_read_16_bytes_at_a_time_and_scan_with_shuffles():
    layer_norm = load_example("layer_norm")
    half = skc.Ptr[skc.f16]
    ptx = layer_norm.layer_norm.compile(half, half, half, half, vec=8, chunks=2, target="sm_90a", block=256).asm("ptx")
    assert ptx.count("ld.global.v4.b32") == 6 and ptx.count("st.global.v4.b32") == 2   # x, w, b: two vectors each
    prefix_sum = load_example("prefix_sum")
    ptx = prefix_sum.scan_tiles.compile(rounds=4, target="sm_90a", block=256).asm("ptx")
    assert "ld.global.v4.f32" in ptx or "ld.global.v4.b32" in ptx
    assert ptx.count("shfl.sync.up") == 4 * (5 + 5)     # each round: a warp's scan and warp 0's scan of the warps


@pytest.mark.parametrize("name", ["layer_norm", "prefix_sum", "transpose"])
def test_the_examples_link_into_amd_code_objects(name, tmp_path):
    assert cli.main(["compile", os.path.join(os.path.dirname(__file__), "..", "..", "examples", f"{name}.py"),
                     "--target", "gfx942", "--emit", "gcn", "-o", str(tmp_path)]) == 0
    objects = [f for f in os.listdir(tmp_path) if f.endswith(".hsaco")]
    assert objects and all((tmp_path / f).read_bytes()[:4] == b"\x7fELF" for f in objects)
