"""Stream-K GEMM (StreamKScheduler + StreamKFixup, one launch) in the interpreter, exact against numpy (small
integers: every fp32 partial sum is exact), on grids that leave the last wave part-full (the interpreter models
4 SMs): tiles split between two blocks, whole tiles before them, tails in M, N and K, and the buffers' contract."""
import numpy as np
import pytest

import skc
from skc.blocks import EpilogueSpec, MatmulConfig, gemm
from skc.blocks.host_plans import stream_k_buffers
from skc.blocks.scheduler import SplitTailScheduler

RNG = np.random.default_rng(11)


def integers(*shape):
    return RNG.integers(-2, 3, shape).astype(np.float32)


def launch(a, b, out, workspace, counters, cfg, grid, c=None, bias=None, alpha=1.0, beta=0.0):
    boxes = cfg.boxes()
    (m, k), n = a.shape, b.shape[1]
    c = out if c is None else c
    gemm.matmul_stream_k_kernel[grid, cfg.threads](
        skc.TensorMap(a, boxes["a"]), skc.TensorMap(b, boxes["b"]), skc.TensorMap(out, boxes["out"]), workspace,
        counters, m, n, k, c, c if bias is None else bias, alpha, beta, cfg)


@pytest.mark.parametrize("shape, fields", [
    ((64 * 5, 128, 256), {}),                                         # 5 tiles on 4 blocks: all shared
    ((64 * 9, 128, 320), {}),                                         # a whole tile a block, then 5 shared
    ((136, 136, 200), {"tile_n": 64}),                                # tails in M, N and K (a short last k-step)
    ((136 * 2, 256, 256), {"tile_m": 128, "consumers": 2}),           # two warpgroups: a counter each
    ((256 * 5, 128, 192), {"tile_m": 256, "consumers": 2}),           # 128 rows a consumer: two parts each
], ids=["all-shared", "whole-then-shared", "tails", "two-warpgroups", "stacked"])
def test_stream_k_is_exact(hopper_interpreter, shape, fields):
    m, n, k = shape
    a, b = integers(m, k), integers(k, n)
    out = np.full((m, n), np.nan, np.float16)
    fields = dict({"tile_m": 64, "consumers": 1, "stages": 2, "stream_k": True}, **fields)
    skc.blocks.matmul(a.astype(np.float16), b.astype(np.float16), out=out, config=MatmulConfig(dtype="f16", **fields))
    np.testing.assert_array_equal(out.astype(np.float32), a @ b)


def test_stream_k_buffers_are_reused_and_left_zero(hopper_interpreter):
    """Split tiles meet in the workspace (here garbage at first: a launch reads only what it wrote) and leave the
    counters zero for the next launch; grids of 3 and 4 blocks for 5 tiles split differently."""
    m, n, k = 64 * 5, 128, 384
    cfg = MatmulConfig(dtype="f16", tile_m=64, consumers=1, stages=2, stream_k=True)
    a, b = integers(m, k).astype(np.float16), integers(k, n).astype(np.float16)
    for grid in (4, 3, 4):
        workspace, counters = stream_k_buffers(a, grid, cfg)
        assert workspace.shape == (grid * 64 * cfg.tile_n,) and counters.shape == (grid,)
        workspace[:] = np.nan
        for _ in range(2):
            out = np.full((m, n), np.nan, np.float16)
            launch(a, b, out, workspace, counters, cfg, grid)
            np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))
            assert not counters.any()
        assert np.isfinite(workspace).any()   # tiles were split: a first part left its sum there


def test_whole_waves_split_no_tile(hopper_interpreter):
    """8 tiles on 4 blocks fill two waves: every unit is a whole tile, the workspace is never written."""
    m, n, k = 64 * 8, 128, 256
    cfg = MatmulConfig(dtype="f16", tile_m=64, consumers=1, stages=2, stream_k=True)
    a, b = integers(m, k).astype(np.float16), integers(k, n).astype(np.float16)
    workspace, counters = stream_k_buffers(a, 4, cfg)
    workspace[:] = np.nan
    out = np.full((m, n), np.nan, np.float16)
    launch(a, b, out, workspace, counters, cfg, 4)
    np.testing.assert_array_equal(out.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32))
    assert np.isnan(workspace).all() and not counters.any()


def test_stream_k_fused_epilogue_applies_once_to_the_whole_sum(hopper_interpreter):
    """alpha, beta · C, bias and relu by the unit that completes a split tile, once: relu of a sum is not a sum of
    relus."""
    m, n, k = 64 * 5, 128, 320
    a, b = integers(m, k), integers(k, n)
    c, bias = RNG.integers(-4, 5, (m, n)).astype(np.float16), RNG.integers(-4, 5, n).astype(np.float16)
    out = np.full((m, n), np.nan, np.float16)
    cfg = MatmulConfig(dtype="f16", tile_m=64, consumers=1, stages=2, stream_k=True,
                       epilogue=EpilogueSpec(alpha=True, beta=True, bias=True, activation="relu"))
    skc.blocks.matmul(a.astype(np.float16), b.astype(np.float16), out=out, c=c, bias=bias, alpha=2.0, beta=-1.0,
                      activation="relu", config=cfg)
    np.testing.assert_array_equal(out.astype(np.float32), np.maximum(2.0 * (a @ b) - c + bias, 0.0))


@pytest.mark.parametrize("shape, fields", [
    ((64 * 5, 128, 256), {}),                                  # 5 tiles on 4 blocks: 1 whole a block, 1 in 4 shares
    ((64 * 6, 128, 320), {}),                                  # 2 left: 2 shares each (5 k-steps: 2 and 3)
    ((64 * 3, 128, 192), {}),                                  # fewer tiles than blocks: each alone (3 left, 1 share)
    ((136, 200, 200), {"tile_n": 64}),                         # 12 tiles: whole waves, nothing split
    ((64 * 5 + 8, 128, 200), {}),                              # 6 tiles: 2 left; tails in M and K
    ((128 * 5, 256, 256), {"tile_m": 128, "consumers": 2}),    # two warpgroups: a counter each
    ((64, 128, 64), {}),                                       # one tile, one k-step: a single share
], ids=["one-left", "two-left", "few-tiles", "whole-waves", "tails", "two-warpgroups", "one-k-step"])
def test_split_tail_is_exact(hopper_interpreter, shape, fields):
    """The last part-full wave's tiles split along K into as many shares as the 4 modelled SMs hold (up to 4), the
    last share to count adding the others' records: exact, twice on one plan (the counters left zero)."""
    m, n, k = shape
    a, b = integers(m, k), integers(k, n)
    fields = dict({"tile_m": 64, "consumers": 1, "stages": 2, "split_tail": True}, **fields)
    for _ in range(2):
        out = np.full((m, n), np.nan, np.float16)
        skc.blocks.matmul(a.astype(np.float16), b.astype(np.float16), out=out,
                          config=MatmulConfig(dtype="f16", **fields))
        np.testing.assert_array_equal(out.astype(np.float32), a @ b)


@skc.kernel(block=1)
def split_tail_units(units: skc.Ptr[skc.i32], M: skc.i32, N: skc.i32, k_tiles: skc.i32, tile_n: skc.constexpr):
    """Each block's work units as SplitTailScheduler gives them: (row0, col0, k_begin, k_end, share or -1)."""
    first = skc.block_id(0) * 64
    i = 0
    for unit in SplitTailScheduler(M, N, 128, tile_n, k_tiles):
        at = units + (first + i) * 5
        at[0], at[1], at[2], at[3] = unit.row0, unit.col0, unit.k_begin, unit.k_end
        at[4] = skc.where(unit.partial, unit.share, -1)
        i += 1


@pytest.mark.parametrize("M, N, tile_n, k_tiles, split, shares", [
    (4096, 7168, 192, 128, 28, 4),     # 1216 tiles on 132 blocks: the last 28 in 4 shares each
    (4096, 7168, 256, 128, 0, 1),      # 896 tiles: 104 left, no room to split them
    (4096, 24576, 192, 12, 4, 4),      # 4096 tiles: 4 left, at most 4 shares
    (1536, 4224, 192, 64, 0, 1),       # 264 tiles: whole waves, nothing split
])
def test_split_tail_splits_what_is_left_of_the_last_wave(hopper_interpreter, M, N, tile_n, k_tiles, split, shares):
    """The schedule itself, in the interpreter on the H200's 132 blocks: every tile's k-steps covered once, by one
    unit or by `shares` consecutive ones (share-major across the last wave's tiles), and only the last wave's split."""
    units = np.full((132 * 64, 5), -2, np.int32)
    split_tail_units[132, 1](units, M, N, k_tiles, tile_n)
    pieces = {}
    for row0, col0, k_begin, k_end, share in units[units[:, 0] != -2].tolist():
        pieces.setdefault((row0, col0), []).append((k_begin, k_end, share))
    assert len(pieces) == -(-M // 128) * -(-N // tile_n)
    split_tiles = {tile: sorted(p) for tile, p in pieces.items() if len(p) > 1}
    assert len(split_tiles) == split
    for tile, parts in pieces.items():
        parts = sorted(parts)
        assert parts[0][0] == 0 and parts[-1][1] == k_tiles and all(
            a[1] == b[0] for a, b in zip(parts, parts[1:])), (tile, parts)
        assert [share for _, _, share in parts] == (list(range(shares)) if len(parts) > 1 else [-1])


@pytest.mark.parametrize("fields", [{"split_k": 2}, {"tile_n": 256, "cluster_m": 2}, {"pingpong": True, "tile_m": 64},
                                    {"batched": "a"}, {"stream_k": True}])
def test_split_tail_refuses_what_it_does_not_split(fields):
    with pytest.raises(ValueError, match="split_tail"):
        MatmulConfig(split_tail=True, **fields)


@pytest.mark.parametrize("fields", [{"split_k": 2}, {"tile_n": 256, "cluster_m": 2}, {"pingpong": True, "tile_m": 64},
                                    {"batched": "a"}])
def test_stream_k_refuses_what_it_does_not_share(fields):
    with pytest.raises(ValueError, match="stream_k"):
        MatmulConfig(stream_k=True, **fields)


def test_register_shares_fit_what_the_block_holds():
    """setmaxnreg only moves the registers ptxas compiled the block's threads for: four consumers (640 threads, 96
    registers each at launch) get 112, not the 120 an even split of the whole file gives (a wait for ever on the
    GPU); two blocks of two consumers get 104; a config asking for more is refused by name."""
    from skc.blocks.attention_kernel import AttentionConfig
    from skc.blocks.roles import held_registers, register_shares

    assert register_shares(4) == (24, 112) and register_shares(3) == (24, 160) and register_shares(2) == (40, 232)
    assert register_shares(2, 2) == (24, 104) and register_shares(1, 2) == (24, 232)
    for consumers, blocks in ((1, 1), (2, 1), (3, 1), (4, 1), (6, 1), (1, 2), (2, 2)):
        producer, consumer = register_shares(consumers, blocks)
        assert 128 * (producer + consumers * consumer) <= held_registers(consumers, blocks)
    assert MatmulConfig(tile_m=256, tile_n=128, consumers=4).consumer_registers == 112
    with pytest.raises(ValueError, match="setmaxnreg"):
        MatmulConfig(tile_m=256, tile_n=128, consumers=4, producer_registers=24, consumer_registers=120)
    with pytest.raises(ValueError, match="setmaxnreg"):
        AttentionConfig(head_dim=64, blocks_per_sm=2, consumers=2, block_m=128, consumer_registers=112)


@pytest.mark.parametrize("grid, k", [(8, 128), (6, 128), (5, 128), (4, 0)], ids=["8-blocks", "6-blocks", "5-blocks",
                                                                                  "no-k-steps"])
def test_stream_k_with_more_blocks_than_tiles_or_no_k_steps(hopper_interpreter, grid, k):
    """5 tiles on more blocks than that: a tile a block, the rest idle; K = 0: every tile whole, zero."""
    m, n = 64 * 5, 128
    cfg = MatmulConfig(dtype="f16", tile_m=64, consumers=1, stages=2, stream_k=True)
    width = max(k, 64)   # (the operands' maps need a column; the kernel reads K = k of them)
    a, b = integers(m, width).astype(np.float16), integers(width, n).astype(np.float16)
    workspace, counters = stream_k_buffers(a, grid, cfg)
    out = np.full((m, n), np.nan, np.float16)
    boxes = cfg.boxes()
    gemm.matmul_stream_k_kernel[grid, cfg.threads](
        skc.TensorMap(a, boxes["a"]), skc.TensorMap(b, boxes["b"]), skc.TensorMap(out, boxes["out"]), workspace,
        counters, m, n, k, out, out, 1.0, 0.0, cfg)
    expected = a.astype(np.float32)[:, :k] @ b.astype(np.float32)[:k]
    np.testing.assert_array_equal(out.astype(np.float32), expected)
    assert not counters.any()


def test_consumer_counts_that_make_no_block_are_refused():
    from skc.blocks.attention_kernel import AttentionConfig

    for bad in (0, -1):
        with pytest.raises(ValueError, match="consumer warpgroups, 1 or more"):
            MatmulConfig(consumers=bad)
        with pytest.raises(ValueError, match="consumer warpgroups, 1 or more"):
            AttentionConfig(consumers=bad)


@pytest.mark.parametrize("make, fields, message", [
    ("matmul", dict(producer_registers=7), "producer_registers is a count setmaxnreg sets: a multiple of 8 from 24"),
    ("attention", dict(head_dim=64, consumer_registers=100), "consumer_registers is a count setmaxnreg sets"),
    ("matmul", dict(stages=2.0), "stages must be an int of at least 1, found 2.0"),
    ("matmul", dict(split_k=2.0), "split_k must be an int of at least 1, found 2.0"),
    ("matmul", dict(tile_k=0), "tile_k must be an int of at least 1, found 0"),
    ("matmul", dict(group_m=1.5), "group_m is how many tile-rows the scheduler walks at a time, 1 or more, found 1.5"),
    ("attention", dict(stages=0), "stages must be an int of at least 1, found 0"),
    ("attention", dict(exp2_on_fma=-1), "exp2_on_fma must be an int of at least 0, found -1"),
    ("attention", dict(exp2_on_fma=True), "exp2_on_fma must be an int of at least 0, found True")])
def test_configs_refuse_counts_that_would_fail_inside_a_block(make, fields, message):
    """A register count setmaxnreg cannot set failed the IR verifier (an error docs/errors.md calls skc's own bug);
    stages=0, tile_k=0 and float counts failed deep in the pipeline, the TMA boxes or the grid; group_m=1.5 and
    exp2_on_fma=-1 were taken."""
    from skc.blocks.attention_kernel import AttentionConfig

    with pytest.raises(ValueError, match=message):
        (MatmulConfig if make == "matmul" else AttentionConfig)(**fields)
