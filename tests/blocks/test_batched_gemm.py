"""A batch of GEMMs in one launch (a batch coordinate in the tile scheduler, 3-D tensor maps one matrix deep), in
the interpreter, exact against numpy: B x M x K times B x K x N, a strided (non-foldable) a, tails, clusters."""
import numpy as np
import pytest

import skc
from skc.blocks import MatmulConfig, matmul_host
from skc.blocks.host_plans import GemmPlan

RNG = np.random.default_rng(17)


def integers(*shape):
    return RNG.integers(-2, 3, shape).astype(np.float16)


def one_launch_plan():
    plans = [p for p in matmul_host._PLANS.values() if isinstance(p, GemmPlan) and p.cfg.batched]
    assert len(plans) == 1, list(matmul_host._PLANS.values())
    return plans[0]


@pytest.mark.parametrize("shape", [(3, 40, 48, 64), (2, 72, 136, 96)], ids=["small", "tails"])
def test_batch_times_batch_in_one_launch(hopper_interpreter, shape):
    batch, m, n, k = shape
    a, b = integers(batch, m, k), integers(batch, k, n)
    out = np.full((batch, m, n), np.nan, np.float16)
    skc.blocks.matmul(a, b, out=out)
    assert one_launch_plan().cfg.batched == "ab"
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))


def test_strided_a_times_a_matrix_in_one_launch(hopper_interpreter):
    """a's batch is not outermost in memory (cannot fold into M): its 3-D map has the batch stride it has."""
    a = integers(40, 3, 64).transpose(1, 0, 2)
    b, bias = integers(64, 48), integers(48)
    out = skc.blocks.matmul(a, b, bias=bias, activation="relu")
    assert one_launch_plan().cfg.batched == "a"
    expected = np.maximum(a.astype(np.float32) @ b.astype(np.float32) + bias, 0.0)
    np.testing.assert_array_equal(out.astype(np.float32), expected)


def test_a_matrix_times_a_batch_in_one_launch(hopper_interpreter):
    a, b = integers(40, 64), integers(2, 64, 136)
    out = skc.blocks.matmul(a, b)
    assert one_launch_plan().cfg.batched == "b"
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))


def test_batched_kernel_with_clusters_of_two(hopper_interpreter):
    """Clusters share (multicast) B: both blocks of a cluster work on the same matrix of the batch."""
    from skc.blocks import gemm

    batch, m, n, k = 2, 256, 128, 64
    a, b = integers(batch, m, k), integers(batch, k, n)
    out = np.full((batch, m, n), np.nan, np.float16)
    cfg = MatmulConfig(dtype="f16", cluster_m=2, stages=2, batched="ab")
    boxes = cfg.boxes()
    maps = [skc.TensorMap(x, boxes[name]) for x, name in ((a, "a"), (b, "b"), (out, "out"))]
    gemm.matmul_batched_kernel[4, cfg.threads](*maps, batch, m, n, k, out, out, 1.0, 0.0, cfg)
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))


def test_a_batch_with_c_still_runs_one_gemm_per_batch(hopper_interpreter):
    a, b, c = integers(2, 40, 64), integers(2, 64, 48), integers(2, 40, 48)
    out = skc.blocks.matmul(a, b, c=c, beta=1.0)
    assert isinstance(next(iter(matmul_host._PLANS.values())), matmul_host._LoopedBatch)
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32) + c)


def test_a_folded_batch_keeps_its_activation(hopper_interpreter):
    """A contiguous a folds into one GEMM of (B·M) x K; the activation and bias reach that GEMM."""
    a, b, bias = integers(3, 40, 64), integers(64, 48), integers(48)
    out = skc.blocks.matmul(a, b, bias=bias, activation="relu")
    assert isinstance(next(iter(matmul_host._PLANS.values())), matmul_host._FoldedBatch)
    expected = np.maximum(a.astype(np.float32) @ b.astype(np.float32) + bias, 0.0)
    assert (expected == 0).any() and (expected > 0).any()
    np.testing.assert_array_equal(out.astype(np.float32), expected)


def test_a_batch_run_per_matrix_keeps_its_activation(hopper_interpreter):
    a, b, c = integers(2, 40, 64), integers(2, 64, 48), integers(2, 40, 48)
    out = skc.blocks.matmul(a, b, c=c, beta=1.0, activation="relu")
    assert isinstance(next(iter(matmul_host._PLANS.values())), matmul_host._LoopedBatch)
    expected = np.maximum(a.astype(np.float32) @ b.astype(np.float32) + c, 0.0)
    np.testing.assert_array_equal(out.astype(np.float32), expected)


@pytest.mark.parametrize("tile_m", [64, 128])
def test_batched_kernel_with_consumers_taking_tiles_in_turn(hopper_interpreter, tile_m):
    """pingpong over a batch: each consumer takes every other tile of the block's, across the batch's matrices."""
    from skc.blocks import gemm

    batch, m, n, k = 3, 136, 128, 128
    a, b = integers(batch, m, k), integers(batch, k, n)
    out = np.full((batch, m, n), np.nan, np.float16)
    cfg = MatmulConfig(dtype="f16", tile_m=tile_m, tile_n=64, stages=3, batched="ab", pingpong=True)
    boxes = cfg.boxes()
    maps = [skc.TensorMap(x, boxes[name]) for x, name in ((a, "a"), (b, "b"), (out, "out"))]
    gemm.matmul_batched_kernel[2, cfg.threads](*maps, batch, m, n, k, out, out, 1.0, 0.0, cfg)
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))


def test_batched_kernel_on_three_consumers_192_row_tiles(hopper_interpreter):
    """192-row tiles (three consumer warpgroups), which the wave rule may pick for a batch: M (200) is no multiple
    of them, so each matrix's last tile is part-full and no tile reads the next matrix's rows."""
    from skc.blocks import gemm

    batch, m, n, k = 2, 200, 136, 72
    a, b = integers(batch, m, k), integers(batch, k, n)
    out = np.full((batch, m, n), np.nan, np.float16)
    cfg = MatmulConfig(dtype="f16", tile_m=192, tile_n=192, consumers=3, stages=2, batched="ab")
    boxes = cfg.boxes()
    maps = [skc.TensorMap(x, boxes[name]) for x, name in ((a, "a"), (b, "b"), (out, "out"))]
    gemm.matmul_batched_kernel[2, cfg.threads](*maps, batch, m, n, k, out, out, 1.0, 0.0, cfg)
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))


def test_the_wave_rule_counts_a_batchs_tiles_per_matrix():
    """24 matrices of 1000 rows on 192-row tiles take 6 tiles each, 144 (two waves on 132 SMs), not 24000 rows
    over 192 (125, one wave)."""
    from skc.blocks.tile_rules import tile_shape, wave_cost

    assert wave_cost(1000, 192, (192, 192), 132, 24) == 2 * wave_cost(1000, 192, (192, 192), 132)
    assert tile_shape(8 * 2048, 2048, 2048, 132, 8)[:2] == (128, 256)
    # 3 matrices of 1000 rows: 192-row tiles take 6 a matrix (18 rows of tiles, not 3000 / 192 = 16), so 128 x 256
    # tiles win; counted as one matrix of 3000 rows, 192 x 128 would
    assert tile_shape(3 * 1000, 1024, 512, 132, 3)[:2] == (128, 256)
    assert tile_shape(3 * 1000, 1024, 512, 132)[:2] == (192, 128)


@pytest.mark.parametrize("a_batch, b_batch", [(1, 3), (3, 1)], ids=["a-of-one", "b-of-one"])
def test_a_batch_of_one_broadcasts_as_in_torch_matmul(hopper_interpreter, a_batch, b_batch):
    """torch.matmul broadcasts a batch of one (1 x M x K with B x K x N gives B x M x N): it was refused as "the batch
    sizes differ". It is that one matrix times the batch, the epilogue's c and bias included."""
    a, b = integers(a_batch, 40, 64), integers(b_batch, 64, 24)
    c, bias = integers(3, 40, 24), integers(24)
    out = skc.blocks.matmul(a, b, bias=bias, c=c, alpha=2.0, activation="relu")
    expected = np.maximum(2 * (a.astype(np.float32) @ b.astype(np.float32)) + c + bias, 0.0)
    assert out.shape == (3, 40, 24)
    np.testing.assert_array_equal(out.astype(np.float32), expected)
    with pytest.raises(skc.LaunchError, match="the batch sizes differ"):
        skc.blocks.matmul(integers(2, 40, 64), integers(3, 64, 24))
