"""The Hopper GEMM composition in the interpreter (exact results, no torch needed) and the blocks'
contracts: loaders load at the coordinates they are given, accumulators describe their own layout,
the pipeline asks its producer and consumer for their policies, and nothing a block records about a
kernel outlives the kernel's compilation."""
import collections
import dataclasses
import gc
import re
import sys

import numpy as np
import pytest

import skc
from skc import ir
from skc.blocks import MatmulConfig, compile_arguments, matmul_kernel, roles
from skc.blocks.epilogue import EpilogueSpec
from skc.blocks.layout import OperandLayout
from skc.blocks.payload import TilePayload
from skc.blocks.tile_io import TmaLoader
from skc.runtime import devices

RNG = np.random.default_rng(11)


def stored(x: np.ndarray, dtype, transposed: bool):
    """x (float32) as `dtype`, row-major or a transposed view of a row-major array."""
    return np.ascontiguousarray(x.T).astype(dtype).T if transposed else x.astype(dtype)


@pytest.mark.parametrize("shape, config", [
    ((200, 136, 72), {}),                                       # partial tiles: TMA zero fill and clipped stores
    ((256, 192, 256), {"a_k_major": False, "b_k_major": True}),   # MN-major A and K-major B
    ((512, 256, 192), {"cluster_m": 2}),                        # clusters of 2, B multicast
    ((200, 136, 72), {"loader": "vector"}),                     # the vector loader instead of TMA
    ((256, 192, 128), {"loader": "vector", "a_k_major": False, "b_k_major": True}),
    ((136, 256, 128), {"tile_n": 256, "stages": 2}),            # 64 x 256 per warpgroup: four epilogue chunks
    # pingpong: each consumer its own 64-row tiles, taking turns; odd and even tile counts per block, a ring of
    # stages that the k-steps of a tile do not divide, and more tiles than the interpreter has SMs
    ((200, 136, 72), {"tile_m": 64, "stages": 3, "pingpong": True}),
    ((256, 128, 320), {"tile_m": 64, "tile_n": 64, "stages": 4, "pingpong": True}),
    ((64 * 9, 128, 64), {"tile_m": 64, "stages": 2, "pingpong": True}),
    ((328, 136, 200), {"tile_m": 128, "stages": 3, "pingpong": True}),   # 128-row tiles: two wgmma parts a consumer
    ((200, 136, 72), {"tile_m": 128, "stages": 3, "pingpong": True, "loader": "vector", "b_k_major": True}),
    # three consumer warpgroups: 192-row tiles (registers from roles.register_shares)
    ((200, 136, 72), {"tile_m": 192, "consumers": 3, "stages": 3}),
    ((400, 192, 128), {"tile_m": 192, "tile_n": 192, "consumers": 3, "stages": 2}),
    # the wave rule's other tiles with a K-major B (x @ w.t()) and tails: 192 x 192, 128 x 192
    ((200, 200, 136), {"tile_m": 192, "tile_n": 192, "consumers": 3, "stages": 3, "b_k_major": True}),
    ((136, 200, 72), {"tile_n": 192, "stages": 3, "b_k_major": True}),
    ((400, 200, 136), {"tile_m": 192, "tile_n": 96, "consumers": 3, "stages": 3, "b_k_major": True}),   # 192 x 96
    # 128-row tiles of a K-major B between those widths (FILL_WIDTH_SPEEDS), with tails in M, N and K
    ((136, 300, 200), {"tile_n": 144, "stages": 3, "b_k_major": True}),
    ((200, 360, 72), {"tile_n": 208, "stages": 2, "b_k_major": True}),
    # tiles narrower than a 128-byte row of outputs, or no multiple of one (a K-major B): narrower epilogue boxes
    ((72, 200, 128), {"tile_m": 64, "consumers": 1, "tile_n": 32, "b_k_major": True, "stages": 3}),
    ((136, 200, 64), {"tile_n": 96, "b_k_major": True, "stages": 2}),
    # a row-major B an odd multiple of 32 columns wide: 32-column chunks, the 64-byte swizzle; 96 with 192-row tiles,
    # 160 with a tail in N; in clusters along M sharing B by rows of K (three and five chunks do not split in two)
    ((400, 200, 136), {"tile_m": 192, "tile_n": 96, "consumers": 3, "stages": 3}),
    ((136, 200, 72), {"tile_n": 160, "stages": 3}),
    ((520, 200, 136), {"tile_n": 96, "cluster_m": 2, "stages": 3}),
    ((328, 168, 200), {"tile_n": 160, "cluster_m": 2, "stages": 2}),
    # 256-row tiles, each of two consumers computing 128 rows as two stacked wgmma parts (cuBLAS's 256 x 128)
    ((328, 136, 200), {"tile_m": 256, "consumers": 2, "stages": 3}),
    ((600, 256, 128), {"tile_m": 256, "consumers": 2, "stages": 2, "cluster_m": 2}),
    ((296, 200, 96), {"tile_m": 256, "consumers": 2, "stages": 2, "a_k_major": False, "b_k_major": True}),
    # clusters along N, A multicast: each block loads a share of A's (loaded) rows, of every 128-byte chunk of K;
    # a cluster's last tile past N (5 tiles of 64 in clusters of 2 and 4), K in a share of a stage, an MN-major A
    # (its 64-row chunks), 192-row tiles one chunk deep (96-row shares)
    ((40, 320, 320), {"tile_m": 64, "consumers": 1, "tile_n": 64, "tile_k": 128, "cluster_n": 2, "stages": 3,
                      "a_rows": 48}),
    ((72, 296, 200), {"tile_m": 64, "consumers": 1, "tile_n": 64, "tile_k": 256, "cluster_n": 4, "stages": 2}),
    ((200, 136, 136), {"tile_n": 64, "b_k_major": True, "tile_k": 128, "cluster_n": 2, "stages": 2}),
    ((136, 200, 72), {"a_k_major": False, "cluster_n": 2, "stages": 3}),
    ((400, 520, 136), {"tile_m": 192, "consumers": 3, "tile_n": 192, "cluster_n": 2, "stages": 2}),
    # one epilogue buffer a consumer: each chunk written once the store of the one before has read it (four chunks
    # a tile; two a tile over several tiles a block; pingpong)
    ((136, 256, 128), {"tile_n": 256, "stages": 2, "epilogue_buffers": 1}),
    ((200 * 3, 136, 72), {"epilogue_buffers": 1}),
    ((200, 136, 72), {"tile_m": 64, "stages": 3, "pingpong": True, "epilogue_buffers": 1}),
    # clusters along M with a K-major B: each block loads a share of B's rows (of every chunk of K), multicast; a
    # cluster's second tile past M, tiles past N, two chunks of K a stage, 32-wide tiles (16-row shares)
    ((328, 200, 200), {"cluster_m": 2, "b_k_major": True, "stages": 3}),
    ((520, 136, 256), {"cluster_m": 2, "b_k_major": True, "tile_k": 128, "stages": 2}),
    ((200, 72, 128), {"cluster_m": 2, "b_k_major": True, "tile_n": 32, "stages": 3}),
    # clusters along M with a row-major B whose 64-column chunks do not split evenly (three, or one): each block
    # loads a share of every chunk's rows of K; a tail of K inside the second share
    ((400, 520, 136), {"tile_m": 192, "consumers": 3, "tile_n": 192, "cluster_m": 2, "stages": 2}),
    ((200, 136, 232), {"tile_m": 64, "consumers": 1, "tile_n": 64, "cluster_m": 2, "stages": 3}),
    ((72, 200, 232), {"tile_m": 64, "consumers": 1, "a_k_major": False, "cluster_n": 2, "stages": 3}),
], ids=["tails", "mn-major", "cluster2", "vector", "vector-mn", "n256", "pingpong", "pingpong-ring", "pingpong-many",
        "pingpong-128", "pingpong-vector", "three-consumers", "three-consumers-192",
        "three-consumers-192-kmajor-b", "n192-kmajor-b", "192x96-kmajor-b", "n144-kmajor-b", "n208-kmajor-b", "n32",
        "n96", "192x96-swizzle64",
        "n160-swizzle64", "n96-swizzle64-cluster2", "n160-swizzle64-cluster2", "m256",
        "m256-cluster2", "m256-mn", "cluster-n2", "cluster-n4", "cluster-n2-kmajor-b", "cluster-n2-mn-a",
        "cluster-n2-192", "n256-one-buffer", "one-buffer-tiles",
        "pingpong-one-buffer", "cluster2-kmajor-b", "cluster2-kmajor-b-k128", "cluster2-kmajor-b-n32",
        "cluster2-n192-k-shares", "cluster2-n64-k-shares", "cluster-n2-mn-a-k-shares"])
def test_hopper_gemm_is_exact_in_the_interpreter(hopper_interpreter, shape, config):
    m, n, k = shape
    a, b = RNG.integers(-2, 3, (m, k)).astype(np.float32), RNG.integers(-2, 3, (k, n)).astype(np.float32)
    a_arg = stored(a, np.float16, not config.get("a_k_major", True))
    b_arg = stored(b, np.float16, config.get("b_k_major", False))
    out = np.full((m, n), np.nan, np.float16)
    skc.blocks.matmul(a_arg, b_arg, out=out, config=MatmulConfig(dtype="f16", **config))
    np.testing.assert_array_equal(out.astype(np.float32), a @ b)


def test_hopper_fused_epilogue_is_exact(hopper_interpreter):
    """alpha, beta · C, bias and relu at every (row, column) the accumulator says it holds."""
    m, n, k = 136, 128, 64
    a, b = RNG.integers(-2, 3, (m, k)).astype(np.float16), RNG.integers(-2, 3, (k, n)).astype(np.float16)
    c = RNG.integers(-4, 5, (m, n)).astype(np.float16)
    bias = RNG.integers(-4, 5, n).astype(np.float16)
    out = np.full((m, n), np.nan, np.float16)
    skc.blocks.matmul(a, b, out=out, c=c, bias=bias, alpha=2.0, beta=-1.0, activation="relu")
    expected = np.maximum(2.0 * (a.astype(np.float32) @ b) - c + bias, 0.0)
    np.testing.assert_array_equal(out.astype(np.float32), expected)


def test_fused_relu_keeps_nan_and_negative_zero_as_torch_does(hopper_interpreter):
    """F.relu(NaN) is NaN and F.relu(-0.0) is -0.0 in torch; a maximum (IEEE maxNum) would give 0 and +0.0."""
    m, n, k = 64, 48, 64
    a, b = RNG.integers(-2, 3, (m, k)).astype(np.float16), RNG.integers(-2, 3, (k, n)).astype(np.float16)
    a[3, 5] = np.nan                                   # row 3 of the product is NaN
    bias = np.zeros(n, np.float16)
    bias[7] = -0.0                            # row 0's product is -0.0 (alpha -1): its column 7 stays -0.0
    a[0] = 0
    out = skc.blocks.matmul(a, b, bias=bias, alpha=-1.0, activation="relu")
    expected = -(a.astype(np.float32) @ b.astype(np.float32)) + bias
    expected = np.where(expected < 0, np.float32(0), expected)
    assert np.isnan(out[3]).all() and not np.isnan(np.delete(out, 3, axis=0)).any()
    np.testing.assert_array_equal(out.astype(np.float32), expected)
    numbers = ~np.isnan(expected)
    assert np.signbit(out[0, 7]) and np.array_equal(np.signbit(out[numbers]), np.signbit(expected[numbers]))


@pytest.mark.parametrize("what, shape, message", [
    ("bias", (40,), r"bias has shape \(40,\), expected \(48,\)"),     # too short: read past its end
    ("bias", (64,), r"bias has shape \(64,\), expected \(48,\)"),
    ("bias", (40, 48), r"bias has shape \(40, 48\), expected \(48,\)"),
    ("c", (48, 40), r"c has shape \(48, 40\), expected \(40, 48\)"),  # as many elements, read as 40 x 48
    ("c", (40, 64), r"c has shape \(40, 64\), expected \(40, 48\)"),
])
def test_bias_and_c_of_another_shape_are_refused(hopper_interpreter, what, shape, message):
    a, b = np.ones((40, 64), np.float16), np.ones((64, 48), np.float16)
    with pytest.raises(skc.LaunchError, match=message):
        skc.blocks.matmul(a, b, beta=1.0 if what == "c" else None, **{what: np.ones(shape, np.float16)})
    if what == "bias":   # a batch run in one launch reads bias the same way
        with pytest.raises(skc.LaunchError, match=message):
            skc.blocks.matmul(np.ones((40, 2, 64), np.float16).transpose(1, 0, 2), b, bias=np.ones(shape, np.float16))


@pytest.mark.parametrize("call, message", [
    (lambda a, b: skc.blocks.matmul(a, b, out=np.ones((40, 48), np.float32)), r"out is float32; matmul writes"),
    (lambda a, b: skc.blocks.matmul(a, b, out=np.ones((40, 96), np.float16)[:, ::2]), r"out .* must be row-major"),
    (lambda a, b: skc.blocks.matmul(a, b, out=np.ones((40, 96), np.float16)[:, :48]),
     r"out \(strides \(96, 1\)\) must be row-major with its rows one after another \(a transposed, strided or "
     r"column-sliced view is not written, though a and b may be such views\)"),
    (lambda a, b: skc.blocks.matmul(a, b, c=np.ones((40, 96), np.float16)[:, ::2], beta=1.0),
     r"c \(strides \(96, 2\)\) must be contiguous"),
    (lambda a, b: skc.blocks.matmul(a, b, bias=np.ones(96, np.float16)[::2]), r"bias .* must be contiguous"),
], ids=["f32-out", "strided-out", "column-sliced-out", "strided-c", "strided-bias"])
def test_outputs_it_cannot_write_are_named(hopper_interpreter, call, message):
    """Each of these gave an error about something else (row-major operands, a TMA box, a kernel argument
    'c_in'), or none; a column slice of a wider out was said not to be row-major (strides (96, 1)), where a and b may
    be such slices."""
    with pytest.raises(skc.LaunchError, match=message):
        call(np.ones((40, 64), np.float16), np.ones((64, 48), np.float16))


def test_a_bf16_out_of_an_f16_product_is_refused(hopper_interpreter):
    """The out check asked whether "f16" was in the out's dtype name with bfloat16 written bf16: a bf16 out took
    the f16 product's bits (64.0 read as 2.2e12)."""
    torch = pytest.importorskip("torch")
    a, b = torch.ones(40, 64, dtype=torch.float16), torch.ones(64, 48, dtype=torch.float16)
    with pytest.raises(skc.LaunchError, match=r"out is torch.bfloat16; matmul writes the operands' type \(f16\)"):
        skc.blocks.matmul(a, b, out=torch.zeros(40, 48, dtype=torch.bfloat16))


def test_one_row_of_a_wider_array_is_a_contiguous_out_and_c(hopper_interpreter):
    """An M = 1 product's out and c as `big[:1, :n]` (strides (2n, 1): one row, contiguous) were refused as not
    row-major by the out, c and bias checks; the launchers took them before those checks."""
    a, b = RNG.integers(-2, 3, (1, 64)).astype(np.float16), RNG.integers(-2, 3, (64, 48)).astype(np.float16)
    out, c = np.zeros((2, 96), np.float16), RNG.integers(-4, 5, (2, 96)).astype(np.float16)
    skc.blocks.matmul(a, b, out=out[:1, :48], c=c[:1, :48], beta=1.0)
    np.testing.assert_array_equal(out[:1, :48].astype(np.float32), a.astype(np.float32) @ b + c[:1, :48])
    assert not out[1:].any() and not out[:1, 48:].any()


@pytest.mark.parametrize("value", ["2", 1j, np.complex64(1), [1.0], np.array(2 + 1j), np.timedelta64(2, "s")],
                         ids=["str", "complex", "numpy-complex", "list", "0-d-complex-array", "numpy-duration"])
@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_alpha_and_beta_are_real_numbers(hopper_interpreter, name, value):
    """alpha="2" was taken as 2.0, alpha=1j raised a bare TypeError from float(); a 0-d complex array was taken as
    its real part, a numpy duration as its count."""
    a, b = np.ones((40, 64), np.float16), np.ones((64, 48), np.float16)
    c = np.ones((40, 48), np.float16) if name == "beta" else None
    with pytest.raises(skc.LaunchError, match=f"{name} must be a real number"):
        skc.blocks.matmul(a, b, c=c, **{name: value})
    out = skc.blocks.matmul(a, b, alpha=np.float32(0.5), c=np.ones((40, 48), np.float16), beta=np.int64(2))
    assert np.array_equal(np.asarray(out, np.float32), np.full((40, 48), 0.5 * 64 + 2, np.float32))


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_a_complex_tensor_for_alpha_or_beta_is_named(name):
    """float() of a complex torch tensor raised torch's RuntimeError ("value cannot be converted to type double")."""
    torch = pytest.importorskip("torch")
    a, b = np.ones((40, 64), np.float16), np.ones((64, 48), np.float16)
    c = np.ones((40, 48), np.float16) if name == "beta" else None
    with pytest.raises(skc.LaunchError, match=f"{name} must be a real number, found Tensor"):
        skc.blocks.matmul(a, b, c=c, **{name: torch.tensor(1 + 2j)})


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_alpha_and_beta_past_a_float_are_named(hopper_interpreter, name):
    """alpha=10**400 raised a bare OverflowError from float()."""
    a = np.ones((40, 64), np.float16)
    with pytest.raises(skc.LaunchError, match=f"{name} is an int of 1329 bits, past the range of a float"):
        skc.blocks.matmul(a, a.T.copy(), c=np.ones((40, 40), np.float16), **{name: 10**400})


@pytest.mark.parametrize("config", [{}, {"split_k": 2}], ids=["plain", "split-k"])
def test_c_without_beta_is_added_once(hopper_interpreter, config):
    """As torch.addmm: c without beta is added with beta = 1 (it was multiplied by 0, so c was ignored and an inf in
    it made a NaN); c with beta = 0 is ignored, as torch ignores it."""
    a, b = np.ones((40, 64), np.float16), np.ones((64, 48), np.float16)
    c = np.full((40, 48), 5, np.float16)
    c[0, 0] = np.inf
    kwargs = dict(config=MatmulConfig.for_problem(40, 48, 64, "f16", **config)) if config else {}
    out = np.asarray(skc.blocks.matmul(a, b, c=c, **kwargs), np.float32)
    expected = np.full((40, 48), 69, np.float32)
    expected[0, 0] = np.inf
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.asarray(skc.blocks.matmul(a, b, c=np.full((40, 48), 5, np.float16), beta=0.0,
                                                               **kwargs), np.float32), np.full((40, 48), 64))


@pytest.mark.parametrize("m, config", [(16, {}), (5, {"tile_n": 64}), (40, {"split_k": 2}), (100, {"tile_m": 128}),
                                       (16, {"stream_k": True})],
                         ids=["m16", "m5", "m40-split", "m100-of-128", "m16-stream-k"])
def test_a_tile_taller_than_the_problem_loads_only_its_rows(hopper_interpreter, monkeypatch, m, config):
    """for_problem loads only A's rows (a_rows: a box past A's end is zero-filled slowly on the GPU); the tile's
    other rows keep whatever the stage held. Shared memory filled with NaN bytes stands for that: the stored
    outputs, which never read those rows, stay exact (with bias, C and relu in the epilogue)."""
    from skc.runtime.interpreter import launch as interpreter_launch
    from skc.runtime.interpreter.memory import Segment

    monkeypatch.setattr(interpreter_launch, "shared_segment",
                        lambda nbytes: Segment("shared memory", 0, np.full(nbytes, 0xFF, np.uint8)))
    n, k = 200, 256
    cfg = MatmulConfig.for_problem(m, n, k, "f16", multiprocessors=4, **config)
    assert cfg.a_rows == -(-m // 8) * 8 and cfg.boxes()["a"] == (cfg.a_rows, 64)
    a, b = RNG.integers(-2, 3, (m, k)).astype(np.float16), RNG.integers(-2, 3, (k, n)).astype(np.float16)
    c, bias = RNG.integers(-4, 5, (m, n)).astype(np.float16), RNG.integers(-4, 5, n).astype(np.float16)
    out = np.full((m, n), np.nan, np.float16)
    skc.blocks.matmul(a, b, out=out, c=c, bias=bias, beta=1.0, activation="relu", config=cfg)
    np.testing.assert_array_equal(out.astype(np.float32), np.maximum(a.astype(np.float32) @ b + c + bias, 0.0))


def _nan_shared_memory(monkeypatch):
    """Shared memory filled with NaN bytes: rows a stage never loaded show as NaN, not as zeros."""
    from skc.runtime.interpreter import launch as interpreter_launch
    from skc.runtime.interpreter.memory import Segment

    monkeypatch.setattr(interpreter_launch, "shared_segment",
                        lambda nbytes: Segment("shared memory", 0, np.full(nbytes, 0xFF, np.uint8)))


@pytest.mark.parametrize("m", [16, 40, 200])
def test_a_config_chosen_for_fewer_rows_loads_all_of_a_larger_problems(hopper_interpreter, monkeypatch, m):
    """A config picked for 16 rows (a_rows 16) given to matmul for more: each plan loads the rows its problem has
    (the rows past a_rows would hold what a stage held before), also over a batch folded into one GEMM."""
    _nan_shared_memory(monkeypatch)
    n, k = 128, 128
    cfg = MatmulConfig.for_problem(16, n, k, "f16", multiprocessors=4)
    assert cfg.a_rows == 16
    assert cfg.covering(16) is cfg and cfg.covering(40).a_rows == 40 and cfg.covering(64).a_rows == 0
    a, b = RNG.integers(-2, 3, (m, k)).astype(np.float16), RNG.integers(-2, 3, (k, n)).astype(np.float16)
    out = skc.blocks.matmul(a, b, config=cfg)
    np.testing.assert_array_equal(np.asarray(out, np.float32), a.astype(np.float32) @ b)
    batch = RNG.integers(-2, 3, (3, m, k)).astype(np.float16)   # B x m x K times K x N: one GEMM of 3m rows
    out = skc.blocks.matmul(batch, b, config=cfg)
    np.testing.assert_array_equal(np.asarray(out, np.float32), batch.astype(np.float32) @ b)


@pytest.mark.parametrize("m,box,config", [(200, 16, {}), (136, 32, {}), (130, 8, {"stream_k": True}),
                                          (136, 64, {"split_k": 2}), (300, 16, {"cluster_m": 2}),
                                          (200, 16, {"tile_m": 192, "consumers": 3, "tile_n": 64}),
                                          (256, 16, {})],
                         ids=["200-16", "136-32", "130-8-stream-k", "136-64-split-k", "300-16-cluster-m2",
                              "200-16-192-rows", "256-whole"])
def test_a_boxes_past_the_last_row_are_not_loaded(hopper_interpreter, monkeypatch, m, box, config):
    """a_box_rows: A's tile in boxes of that many rows, those that start past A's last row not loaded (the stage's
    byte count leaves them out; the interpreter would name a count its copies do not complete). Shared memory
    filled with NaN bytes: the rows never loaded stay NaN, and the stored outputs, which never read them, stay exact
    (with bias, C and relu in the epilogue)."""
    _nan_shared_memory(monkeypatch)
    n, k = 200, 256
    cfg = MatmulConfig.for_problem(m, n, k, "f16", multiprocessors=4, a_box_rows=box,
                                   **{"tile_m": 128, "tile_n": 128, **config})
    assert cfg.boxes()["a"] == (box, 64) and cfg.a_rows == 0
    a, b = RNG.integers(-2, 3, (m, k)).astype(np.float16), RNG.integers(-2, 3, (k, n)).astype(np.float16)
    c, bias = RNG.integers(-4, 5, (m, n)).astype(np.float16), RNG.integers(-4, 5, n).astype(np.float16)
    out = np.full((m, n), np.nan, np.float16)
    skc.blocks.matmul(a, b, out=out, c=c, bias=bias, beta=1.0, activation="relu", config=cfg)
    np.testing.assert_array_equal(out.astype(np.float32), np.maximum(a.astype(np.float32) @ b + c + bias, 0.0))


@pytest.mark.parametrize("fields", [{"a_box_rows": 12}, {"a_box_rows": 128}, {"a_box_rows": 48},
                                    {"a_box_rows": 16, "a_k_major": False}, {"a_box_rows": 16, "loader": "vector"},
                                    {"a_box_rows": 16, "cluster_n": 2}, {"a_box_rows": 16, "a_rows": 64},
                                    {"a_box_rows": 16, "batched": "a"}])
def test_a_box_rows_is_checked(fields):
    with pytest.raises(ValueError, match="a_box_rows is how many rows"):
        MatmulConfig(**fields)


class _WrappingLoader:
    """A loader written to docs/blocks.md's interface only (`__call__`, `arrivals`, `is_issuing()`): it wraps a
    TmaLoader rather than subclassing it, so it has no `prefetch`."""

    arrivals = 1

    def __init__(self, payload, a, b):
        self.inner = TmaLoader(payload, a=a, b=b)

    def is_issuing(self):
        return self.inner.is_issuing()

    def __call__(self, stage, k, **origins):
        self.inner(stage, k, **origins)


@dataclasses.dataclass(frozen=True)
class _WrappingSpec:
    def build(self, payload, a, b):
        return _WrappingLoader(payload, a, b)


def test_a_loader_with_only_the_documented_members_runs_the_gemm(hopper_interpreter):
    """prefetch() is optional in a loader (the GEMM's producer calls it where there is one)."""
    m, n, k = 128, 128, 128
    a, b = RNG.integers(-2, 3, (m, k)).astype(np.float16), RNG.integers(-2, 3, (k, n)).astype(np.float16)
    out = skc.blocks.matmul(a, b, config=MatmulConfig(dtype="f16", loader=_WrappingSpec()))
    np.testing.assert_array_equal(np.asarray(out, np.float32), a.astype(np.float32) @ b)


def test_a_payload_tile_without_loaded_bytes_counts_its_bytes():
    """loaded_bytes is optional in a payload tile's layout: a TmaLoader's stage expects `bytes` for it."""

    @dataclasses.dataclass(frozen=True)
    class RowOfScales:   # 64 f32 a stage: its bytes and its TMA box
        bytes: int = 256
        chunks: int = 1
        chunk_bytes: int = 256

        def check(self):
            pass

        def box(self):
            return (1, 64)

        def box_coordinates(self, chunk, origin, k):
            return (k, origin)

    payload = TilePayload(a=OperandLayout(128, 64), b=OperandLayout(128, 64), scales=RowOfScales())
    assert TmaLoader(payload, a="A", b="B", scales="S").stage_bytes() == 2 * 128 * 64 * 2 + 256


def test_a_rows_is_checked():
    assert MatmulConfig.for_problem(16, 4096, 4096, multiprocessors=132).a_rows == 16
    assert MatmulConfig.for_problem(64, 4096, 4096, multiprocessors=132).a_rows == 0    # a whole tile
    assert MatmulConfig.for_problem(16, 4096, 4096, a_k_major=False, multiprocessors=132).a_rows == 0
    for fields in ({"a_rows": 12}, {"a_rows": 72}, {"a_rows": 16, "a_k_major": False},
                   {"a_rows": 16, "loader": "vector"}):
        with pytest.raises(ValueError, match="a_rows is how many of a K-major A tile's rows the TMA loader fills"):
            MatmulConfig(tile_m=64, consumers=1, **fields)


# -- nothing outlives a compilation --------------------------------------------------------------------
def _ir_objects() -> int:
    gc.collect()
    kinds = (ir.Op, ir.Value) if hasattr(ir, "Value") else (ir.Op,)
    return sum(1 for o in gc.get_objects() if isinstance(o, kinds))


def _module_state() -> dict:
    """Sizes of the mutable containers at module level in skc.blocks."""
    sizes = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("skc.blocks"):
            for attr, value in vars(module).items():
                if isinstance(value, (dict, list, set)) and not attr.startswith("__"):
                    sizes[f"{name}.{attr}"] = len(value)
    return sizes


def _compile_fresh(cfg):
    """Compile the GEMM for sm_90a without the on-disk or in-memory caches, so every call runs the frontend."""
    matmul_kernel._compiled.clear()
    return matmul_kernel.compile(target="sm_90a", **compile_arguments("sm_90a", config=cfg))


def test_repeated_compilations_leave_nothing_behind(monkeypatch):
    monkeypatch.setenv("SKC_CACHE", "0")
    cfg = MatmulConfig(tile_n=256, cluster_m=2)
    _compile_fresh(cfg)  # warm up: imports, lru caches of the host side, interned types
    objects, state = _ir_objects(), _module_state()
    for _ in range(2):
        _compile_fresh(cfg)
    assert _module_state() == state
    assert _ir_objects() <= objects
    matmul_kernel._compiled.clear()


def test_role_facts_live_in_the_compilation():
    """The role of every `if` condition is recorded in the compilation's facts, which go with it."""
    seen = []

    @skc.kernel
    def two_roles(cfg: skc.constexpr):
        pipe_roles = skc.blocks.WarpRoles(cfg.consumers)
        if pipe_roles.is_producer():
            record(roles.current_role())
        else:
            record(roles.current_role())

    @skc.frontend.host
    def record(role):
        seen.append((role, dict(roles.role_tests())))

    cfg = MatmulConfig()
    two_roles.compile(cfg, target="sm_90a", block=cfg.threads)
    assert [role for role, _ in seen] == ["producer", "consumer"]
    tests = seen[0][1]
    assert len(tests) == 1 and list(tests.values())[0][1:] == ("producer", "consumer")
    assert not any(isinstance(v, dict) and v for k, v in vars(roles).items() if not k.startswith("__"))
    with pytest.raises(skc.CompileError, match="only works inside a kernel being compiled"):
        roles.role_tests()


# -- performance: the composition's instructions ----------------------------------------------------------
def instruction_histogram(ptx: str) -> collections.Counter:
    counts = collections.Counter()
    for line in ptx.splitlines():
        line = line.strip()
        if not line or line.startswith(("//", ".", "{", "}", "$")) or line.endswith(":"):
            continue
        found = re.match(r"(@!?%\w+\s+)?([a-z_][\w.:]*)", line)
        if found:
            counts[found.group(2)] += 1
    return counts


# The default configuration's PTX before the blocks' interfaces were separated (commit 9e81747): every
# synchronizing or asynchronous instruction (wgmma, TMA, mbarriers, fences, barriers, setmaxnreg), by count.
ASYNC_WORDS = ("wgmma", "cp.async", "mbarrier", "setmaxnreg", "bar", "fence", "elect")
DEFAULT_ASYNC = {
    "bar.sync": 16, "barrier.cluster.arrive": 2, "barrier.cluster.wait": 2, "cp.async.bulk.commit_group": 4,
    "cp.async.bulk.tensor.2d.global.shared::cta.tile.bulk_group": 4,
    "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes": 1,
    "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster": 4,
    "cp.async.bulk.wait_group": 1, "cp.async.bulk.wait_group.read": 4, "fence.mbarrier_init.release.cluster": 1,
    "fence.proxy.async.shared::cta": 4, "mbarrier.arrive.expect_tx.shared.b64": 1,
    "mbarrier.arrive.shared::cluster.b64": 4, "mbarrier.init.shared.b64": 8, "mbarrier.try_wait.parity.shared.b64": 6,
    "setmaxnreg.dec.sync.aligned.u32": 1, "setmaxnreg.inc.sync.aligned.u32": 1, "wgmma.commit_group.sync.aligned": 1,
    "wgmma.fence.sync.aligned": 1, "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16": 4,
    "wgmma.wait_group.sync.aligned": 3,
}


def test_default_gemm_keeps_its_instruction_mix(monkeypatch):
    monkeypatch.setenv("SKC_CACHE", "0")
    legacy_default = MatmulConfig.for_problem(4096, 4096, 4096)  # 128 x 256 tiles, clusters of 2 (GPU unknown)
    assert (legacy_default.tile_n, legacy_default.cluster_m, legacy_default.stages) == (256, 2, 4)
    compiled = matmul_kernel.compile(target="sm_90a", **compile_arguments("sm_90a", config=legacy_default))
    counts = instruction_histogram(compiled.asm("ptx"))
    assert {name: n for name, n in counts.items() if any(word in name for word in ASYNC_WORDS)} == DEFAULT_ASYNC
    # the same work, the same loops: 898 before the scheduler's run-time divisions were guarded (a division by 0 or
    # of INT_MIN by -1 divides by 1: LLVM may not assume the divisor non-zero), 913 since
    assert 905 <= sum(counts.values()) <= 920, sum(counts.values())


# -- accumulators describe their own layout -------------------------------------------------------------
I32P = skc.Ptr[skc.i32]


@skc.kernel
def wgmma_owners(owner: I32P, n: skc.constexpr):
    """Every thread writes its index at each (row, column) its wgmma accumulator says it holds."""
    acc = skc.blocks.Wgmma(n, 16, skc.bf16).zeros()
    for value, row, column in acc.values():
        owner[row * n + column] = skc.thread_index()


def test_wgmma_accumulator_says_where_its_values_lie(hopper_interpreter):
    n = 24
    owner = np.full((64, n), -1, np.int32)
    wgmma_owners.interpret[1, 128](owner, n)
    rows, columns = np.indices((64, n))
    # PTX ISA 9.7.15.5.1.1 (checked on the H100, TOOLCHAIN.md): thread t holds rows 16 (t / 32) + (t % 32) / 4
    # and 8 more, columns 2 (t % 4) + {0, 1} of every 8
    expected = 32 * (rows // 16) + 4 * (rows % 8) + (columns % 8) // 2
    np.testing.assert_array_equal(owner, expected)


@skc.kernel
def mfma_owners(owner: I32P, m: skc.constexpr):
    """Every lane writes its index at each (row, column) of the wave's 64 x 64 tile its accumulator holds."""
    acc = skc.blocks.Mfma(64, 64, 8 * (64 // m), skc.bf16, m).zeros()
    for value, row, column in acc.values():
        owner[row * 64 + column] = skc.thread_index()


@pytest.mark.parametrize("m", [32, 16])
def test_mfma_accumulator_says_where_its_values_lie(monkeypatch, m):
    monkeypatch.setenv("SKC_INTERPRETER_TARGET", "gfx942")
    devices._target_of.cache_clear()
    try:
        owner = np.full((64, 64), -1, np.int32)
        mfma_owners.interpret[1, 64](owner, m)
    finally:
        devices._target_of.cache_clear()
    rows, columns = np.indices((64, 64))
    # CDNA3 ISA 7.1: lane l holds column l % m of every m x m tile, rows in groups of 4 by lane / m
    within = rows % m
    expected = columns % m + m * ((within // 4) % (64 // m))
    np.testing.assert_array_equal(owner, expected)


# -- the pipeline asks its consumer how many stages it keeps in flight ---------------------------------
class DeepWgmma(skc.blocks.Wgmma):
    """A Wgmma that keeps two stages' MMAs running: the pipeline must hold two stages back."""

    stages_in_flight = 2


@skc.kernel
def gemm_two_in_flight(a, b, out, M: skc.i32, N: skc.i32, K: skc.i32, cfg: skc.constexpr):
    """The Hopper composition with a consumer that retires its reads two stages late."""
    dtype = skc.f16
    payload = cfg.payload()
    load = skc.blocks.TmaLoader(payload, a=a, b=b)
    with skc.blocks.InputTilePipeline(payload, cfg.stages, load, consumers=cfg.consumers) as pipe:
        roles = skc.blocks.WarpRoles(cfg.consumers)
        tiles = skc.blocks.TileScheduler(M, N, cfg.tile_m, cfg.tile_n)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(skc.cdiv(K, cfg.tile_k)):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)
        else:
            mma = DeepWgmma(cfg.tile_n, cfg.tile_k, dtype, warpgroup=roles.consumer_index())
            acc = mma.zeros()
            args = skc.blocks.EpilogueArgs(EpilogueSpec(), M, N)
            with skc.blocks.TmaStoreEpilogue(out, dtype, args, roles.consumer_index(), cfg.consumers) as epilogue:
                with pipe.consumer(mma) as consumer:
                    for tile in tiles:
                        acc.zero()
                        for k in range(skc.cdiv(K, cfg.tile_k)):
                            with consumer.acquire() as stage:
                                mma(acc, stage.a, stage.b)
                        epilogue(acc, tile.row0, tile.col0)


def test_pipeline_holds_back_as_many_stages_as_the_consumer_keeps_in_flight(hopper_interpreter):
    cfg = MatmulConfig(stages=3, dtype="f16")
    m, n, k = 256, 128, 320  # two tiles for one block, 5 k-steps a tile through a ring of 3 stages
    a = RNG.integers(-2, 3, (m, k)).astype(np.float16)
    b = RNG.integers(-2, 3, (k, n)).astype(np.float16)
    out = np.full((m, n), np.nan, np.float16)
    boxes = cfg.boxes()
    maps = [skc.TensorMap(x, boxes[name]) for x, name in ((a, "a"), (b, "b"), (out, "out"))]
    gemm_two_in_flight.interpret[1, cfg.threads](*maps, m, n, k, cfg)
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b)
    # on the GPU: each k-step waits until at most two groups of MMAs still run, then releases the stage before
    arguments = compile_arguments("sm_90a", config=cfg)
    ptx = gemm_two_in_flight.compile(arguments["a"], arguments["b"], arguments["out"], skc.i32, skc.i32, skc.i32,
                                     cfg, target="sm_90a", block=cfg.threads).asm("ptx")
    waits = re.findall(r"wgmma\.wait_group\.sync\.aligned\s+(\d+)", ptx)
    assert "2" in waits and "1" not in waits, waits


@pytest.mark.gpu
def test_two_stages_in_flight_on_the_gpu():
    """The same composition on the GPU, where wgmma really runs behind the issuing threads: a stage is
    overwritten only after the MMAs two stages later retired its reads (outputs poisoned, exact integers)."""
    cfg = MatmulConfig(stages=3, dtype="f16")
    m, n, k = 512, 256, 512  # 8 k-steps a tile through a ring of 3 stages; sums stay exact in f16
    a = RNG.integers(-2, 3, (m, k)).astype(np.float16)
    b = RNG.integers(-2, 3, (k, n)).astype(np.float16)
    out = skc.empty((m, n), skc.f16).fill_bytes(0xFF)
    boxes = cfg.boxes()
    maps = [skc.TensorMap(skc.to_device(a), boxes["a"]), skc.TensorMap(skc.to_device(b), boxes["b"]),
            skc.TensorMap(out, boxes["out"])]
    grid = skc.blocks.TileScheduler.grid(m, n, cfg.tile_m, cfg.tile_n, skc.current_device().multiprocessors)
    gemm_two_in_flight[grid, cfg.threads](*maps, m, n, k, cfg)
    np.testing.assert_array_equal(out.numpy().astype(np.float32), a.astype(np.float32) @ b)


@pytest.mark.parametrize("m,b_k_major,dtype", [(40, False, np.float16), (150, True, np.float16),
                                               (136, False, "bf16")], ids=["40", "150-x-wt", "136-bf16"])
def test_swapped_operands_store_each_tile_transposed(hopper_interpreter, monkeypatch, m, b_k_major, dtype):
    """swap_ab: out^T = b^T a^T, M the tiles' width (150 rounded up to 152: a row of B^T's tile past a's end), each
    tile stored transposed into the row-major out; C (also in place: c is out), bias, alpha and relu read and
    written at out's own places. Shared memory and out filled with NaN first."""
    import ml_dtypes

    _nan_shared_memory(monkeypatch)
    dtype = ml_dtypes.bfloat16 if dtype == "bf16" else dtype
    n, k = 200, 256
    cfg = MatmulConfig.for_problem(n, m, k, "bf16" if dtype is ml_dtypes.bfloat16 else "f16", b_k_major, True,
                                   multiprocessors=4, tile_m=64, consumers=1, tile_n=-(-m // 8) * 8, swap_ab=True)
    a = RNG.integers(-2, 3, (m, k)).astype(dtype)
    stored_b = RNG.integers(-2, 3, (n, k) if b_k_major else (k, n)).astype(dtype)
    b = stored_b.T if b_k_major else stored_b
    c, bias = RNG.integers(-4, 5, (m, n)).astype(dtype), RNG.integers(-4, 5, n).astype(dtype)
    product = a.astype(np.float32) @ b.astype(np.float32)

    def rounded(exact):   # (f32 sums of small integers are exact; the output rounds them once, as numpy does)
        return exact.astype(dtype).astype(np.float32)

    out = np.full((m, n), np.nan, dtype)
    skc.blocks.matmul(a, b, out=out, c=c, bias=bias, alpha=2.0, beta=1.0, activation="relu", config=cfg)
    np.testing.assert_array_equal(out.astype(np.float32), rounded(np.maximum(2 * product + c + bias, 0.0)))
    in_place = c.copy()
    skc.blocks.matmul(a, b, out=in_place, c=in_place, config=cfg)
    np.testing.assert_array_equal(in_place.astype(np.float32), rounded(product + c))
    made = skc.blocks.matmul(a, b, config=cfg)   # (no out: a row-major one made)
    assert made.shape == (m, n) and made.flags.c_contiguous
    np.testing.assert_array_equal(made.astype(np.float32), rounded(product))


def test_swapped_operands_are_the_default_for_few_rows_and_deep_k(hopper_interpreter):
    """matmul takes swap_ab by itself at 136 x 256 x 4096 (the interpreter counts 4 SMs: four 64-row tiles of N fill
    them) and its result is exact; a config whose layout is not the swapped problem's is refused, naming both."""
    from skc.blocks import matmul_host

    m, n, k = 136, 256, 4096
    a = RNG.integers(-1, 2, (m, k)).astype(np.float16)
    b = RNG.integers(-1, 2, (k, n)).astype(np.float16)
    matmul_host._PLANS.clear()
    out = skc.blocks.matmul(a, b)
    (plan,) = matmul_host._PLANS.values()
    assert plan.inner.cfg.swap_ab and (plan.inner.cfg.tile_m, plan.inner.cfg.tile_n) == (64, 136)
    product = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_array_equal(out.astype(np.float32), product)
    # the rule's swapped configuration keeps the call's epilogue (C, bias, alpha, relu)
    c, bias = RNG.integers(-4, 5, (m, n)).astype(np.float16), RNG.integers(-4, 5, n).astype(np.float16)
    out = skc.blocks.matmul(a, b, c=c, bias=bias, alpha=2.0, beta=1.0, activation="relu")
    assert all(plan.inner.cfg.swap_ab for plan in matmul_host._PLANS.values())
    np.testing.assert_array_equal(out.astype(np.float32), np.maximum(2 * product + c + bias, 0.0))
    with pytest.raises(skc.LaunchError, match="out shares memory with b,"):   # (named as the caller names it)
        skc.blocks.matmul(a, b, out=b[:m])
    refused = (r"the config is for f16 with a_k_major=True, b_k_major=True; the operands \(swap_ab: b\^T a\^T's\) "
               r"are f16 with a_k_major=False, b_k_major=True")
    with pytest.raises(skc.LaunchError, match=refused):
        skc.blocks.matmul(a, b, config=MatmulConfig(dtype="f16", tile_m=64, consumers=1, tile_n=136, b_k_major=True,
                                                    swap_ab=True))


def test_skc_arrays_take_the_unswapped_rule(hopper_interpreter):
    """skc's own arrays have no transposed views: where the rule would swap a and b (136 x 256 x 4096 on the
    interpreter's 4 SMs) they take its unswapped choice, also through the direct path of rows TMA cannot address
    (N = 250), and a given swap_ab configuration is refused by name."""
    m, k = 136, 4096
    for n in (256, 250):
        a = RNG.integers(-1, 2, (m, k)).astype(np.float16)
        b = RNG.integers(-1, 2, (k, n)).astype(np.float16)
        out = skc.blocks.matmul(skc.to_device(a), skc.to_device(b))
        np.testing.assert_array_equal(out.numpy().astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))
    config = MatmulConfig.for_problem(256, m, k, "f16", False, True, multiprocessors=4, tile_m=64, consumers=1,
                                      tile_n=136, swap_ab=True)
    with pytest.raises(skc.LaunchError, match=r"swap_ab multiplies the operands' transposed views \(.T\)"):
        skc.blocks.matmul(skc.to_device(a), skc.to_device(RNG.integers(-1, 2, (k, 256)).astype(np.float16)),
                          config=config)


@pytest.mark.parametrize("batch", [(), (2,)], ids=["matrix", "batch"])
def test_c_with_beta_zero_is_ignored_nan_and_inf_too(hopper_interpreter, batch):
    """torch.addmm with beta = 0 ignores c: NaN and inf in it do not propagate (0 · c made them NaN)."""
    a, b = np.ones((*batch, 40, 64), np.float16), np.ones((64, 48), np.float16)
    c = np.full((*batch, 40, 48), np.nan, np.float16)
    c[..., 0, 0] = np.inf
    for beta in (0.0, 0, -0.0):
        out = np.asarray(skc.blocks.matmul(a, b, c=c, beta=beta), np.float32)
        np.testing.assert_array_equal(out, np.full((*batch, 40, 48), 64, np.float32))
