"""Split-K GEMM (SplitKScheduler + SplitKEpilogue, one launch) in the interpreter, exact against numpy (small
integers: every fp32 partial sum is exact, so the order the shares add in cannot show), the tile-shape rule,
and the scheduler's work units."""
import numpy as np
import pytest

import skc
from skc.blocks import MatmulConfig
from skc.blocks.config import tile_shape

RNG = np.random.default_rng(5)


def integers(*shape):
    return RNG.integers(-2, 3, shape).astype(np.float32)


@pytest.mark.parametrize("shape, fields", [
    ((16, 128, 256), {"split_k": 2}),                                # skinny M: one tile, two shares
    ((72, 192, 320), {"split_k": 3}),                                # partial tiles and a short last share
    ((64, 128, 192), {"split_k": 4}),                                # 3 k-steps in 4 shares: one share empty
    ((136, 128, 256), {"split_k": 2, "tile_m": 128, "consumers": 2}),  # two warpgroups, a counter each
], ids=["skinny", "tails", "empty-share", "two-warpgroups"])
def test_split_k_is_exact(hopper_interpreter, shape, fields):
    m, n, k = shape
    a, b = integers(m, k), integers(k, n)
    out = np.full((m, n), np.nan, np.float16)
    fields = dict({"tile_m": 64, "consumers": 1, "stages": 2}, **fields)
    skc.blocks.matmul(a.astype(np.float16), b.astype(np.float16), out=out,
                      config=MatmulConfig(dtype="f16", **fields))
    np.testing.assert_array_equal(out.astype(np.float32), a @ b)


def test_split_k_fused_epilogue_applies_once_to_the_whole_sum(hopper_interpreter):
    """alpha, beta · C, bias and relu by the last share only: relu of a sum is not a sum of relus."""
    m, n, k = 40, 128, 256
    a, b = integers(m, k), integers(k, n)
    c, bias = RNG.integers(-4, 5, (m, n)).astype(np.float16), RNG.integers(-4, 5, n).astype(np.float16)
    out = np.full((m, n), np.nan, np.float16)
    cfg = MatmulConfig(dtype="f16", tile_m=64, consumers=1, stages=2, split_k=4,
                       epilogue=skc.blocks.EpilogueSpec(alpha=True, beta=True, bias=True, activation="relu"))
    skc.blocks.matmul(a.astype(np.float16), b.astype(np.float16), out=out, c=c, bias=bias, alpha=2.0, beta=-1.0,
                      activation="relu", config=cfg)
    expected = np.maximum(2.0 * (a @ b) - c + bias, 0.0)
    np.testing.assert_array_equal(out.astype(np.float32), expected)


def test_split_k_leaves_its_counters_zero_for_the_next_launch(hopper_interpreter):
    """The counters must be zero at a launch and are left so; the workspace needs no zeroing (each share writes its
    slice before any share reads it): here it starts as garbage."""
    from skc.blocks import gemm
    from skc.blocks.host_plans import split_buffers

    m, n, k = 16, 128, 256
    cfg = MatmulConfig(dtype="f16", tile_m=64, consumers=1, stages=2, split_k=2)
    a, b = integers(m, k).astype(np.float16), integers(k, n).astype(np.float16)
    workspace, counters = split_buffers(a, m, n, cfg)
    assert workspace.shape == (2 * 64 * cfg.tile_n,)   # one strip, two shares
    workspace[:] = np.nan
    boxes = cfg.boxes()
    for _ in range(2):  # the second launch reuses the buffers the first one left
        out = np.full((m, n), np.nan, np.float16)
        gemm.matmul_split_kernel[2, cfg.threads](skc.TensorMap(a, boxes["a"]), skc.TensorMap(b, boxes["b"]), out,
                                                  workspace, counters, m, n, k, out, out, 1.0, 0.0, cfg)
        np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))
        assert not counters.any()


def test_split_k_rule_in_the_interpreter(hopper_interpreter, monkeypatch):
    """With the split-K rule on (it is off by default: measured slower on the H200), matmul() splits a skinny
    problem by itself (the interpreter models 4 SMs); off, it does not."""
    from skc.blocks import config, matmul_host

    m, n, k = 16, 64, 1024
    target = skc.current_device().target
    assert matmul_host._config(target, m, n, k, "f16", True, False, skc.blocks.EpilogueSpec(), (), 4).split_k == 1
    monkeypatch.setattr(config, "SPLIT_K_BY_DEFAULT", True)
    matmul_host._config.cache_clear()
    matmul_host._PLANS.clear()
    try:
        cfg = matmul_host._config(target, m, n, k, "f16", True, False, skc.blocks.EpilogueSpec(), (), 4)
        assert cfg.split_k == 4 and cfg.tile_m == 64
        a, b = integers(m, k), integers(k, n)
        out = skc.blocks.matmul(a.astype(np.float16), b.astype(np.float16))
        np.testing.assert_array_equal(out.astype(np.float32), a @ b)
    finally:
        matmul_host._config.cache_clear()
        matmul_host._PLANS.clear()


@pytest.mark.parametrize("shape, expected", [
    ((4096, 4096, 4096), (128, 256, 1, 1)), ((8192, 8192, 8192), (128, 256, 2, 1)),
    ((1024, 1024, 1024), (64, 128, 1, 1)), ((128, 8192, 8192), (64, 128, 1, 1)), ((256, 4096, 4096), (64, 128, 1, 1)),
    # few rows: 64 x 64 tiles where 64 x 128 ones leave most SMs idle (end to end: 64 x 5120 x 5120 0.97x against
    # 0.84x, 128 x 4096 x 4096 1.00x against 0.89x; 16 x 8192 x 8192 0.94x against 0.93x, the table keeping 64 x 128)
    ((64, 5120, 5120), (64, 64, 1, 1)), ((128, 4096, 4096), (64, 64, 1, 1)), ((16, 8192, 8192), (64, 64, 1, 1)),
    # where the waves decide (session17-2026-12-01-gemm-waves.json, kernel time against cuBLAS): 3072³ 192 x 192
    # 1.00x (128 x 256 0.77x); 1536³ 128 x 192 0.82x (64 x 256 0.64x); 512 x 12288 x 4096 128 x 192 1.02x (128 x 256
    # 0.82x); 1024 x 4096 x 4096 and 2048 x 2048 x 8192, 128 tiles of 128 x 256 on 132 SMs, 1.00x and 0.99x (64 x 256
    # 0.97x and 0.94x); 1536³ since 192 x 96 tiles fit it in one wave of 128 (538 against 128 x 192's 491 TFLOP/s
    # sustained, row-major B: session22-2026-12-02-row-major-192x96-ab.txt)
    ((3072, 3072, 3072), (192, 192, 1, 1)), ((1536, 1536, 1536), (192, 96, 1, 1)),
    ((512, 12288, 4096), (128, 192, 1, 1)), ((1024, 4096, 4096), (128, 256, 1, 1)),
    ((2048, 2048, 8192), (128, 256, 1, 1)),
    # where 192 x 192's waves cost as much as 128 x 256's (6144³: 9 waves of 1152 tiles, 8 of 1024 a third larger),
    # 192 x 192 (6144³ and 3072 x 12288 x 4096 1.02x as fast, sustained: session18-2026-12-02-bf16-192-ties-ab.txt)
    ((6144, 6144, 6144), (192, 192, 1, 1)), ((3072, 12288, 4096), (192, 192, 1, 1)),
    ((8192, 8192, 2048), (128, 256, 2, 1)), ((4096, 14336, 4096), (128, 256, 1, 1)),
])
def test_tile_shape_rule_reproduces_the_sweep(shape, expected):
    """The sweep's fastest tile per shape (benchmarks/NOTES.md), or one within 2 % of it; no split-K by default."""
    assert tile_shape(*shape, 132) == expected


@pytest.mark.parametrize("shape, split", [((16, 4096, 8192), 2), ((16, 1024, 8192), 8), ((16, 1024, 256), 1)])
def test_split_rule_when_on(monkeypatch, shape, split):
    from skc.blocks import config

    monkeypatch.setattr(config, "SPLIT_K_BY_DEFAULT", True)
    assert tile_shape(*shape, 132)[3] == split


def test_split_k_refuses_clusters():
    with pytest.raises(ValueError, match="split-K"):
        MatmulConfig(tile_n=256, cluster_m=2, split_k=2)
