"""A fused epilogue the library does not ship, as docs/blocks.md says to write one: a subclass of FusedEpilogue given
where an epilogue takes EpilogueArgs. Here `out = relu(a @ b + bias) * gate`, gate an M x N operand of the user's, in
a composition of the user's (TmaStoreEpilogue) and through the library's own Hopper composition (`gemm.wgmma_gemm`)
with its TMA store, its direct store, split-K and swapped operands (the fused part given the output's places). Exact
in the interpreter: small integers. Before, an epilogue took EpilogueArgs only: a FusedEpilogue given there failed
inside skc ("'FusedEpilogue' object has no attribute 'scaled'")."""
import numpy as np
import pytest

import skc
from skc.blocks import (EpilogueArgs, EpilogueSpec, FusedEpilogue, InputTilePipeline, MatmulConfig, OperandLayout,
                        TilePayload, TileScheduler, TmaLoader, TmaStoreEpilogue, WarpRoles, Wgmma)
from skc.blocks.gemm import wgmma_gemm
from skc.blocks.host_plans import split_buffers
from helpers import line_of

RNG = np.random.default_rng(56)
SPEC = EpilogueSpec(bias=True, activation="relu")


def integers(*shape, low=-2, high=3):
    return RNG.integers(low, high, shape).astype(np.float16)


class Gated(FusedEpilogue):
    """The library's fused part (bias, relu), then times gate[row, column] (row-major M x N, f16)."""

    def __init__(self, args, gate):
        super().__init__(args)
        self.gate = gate

    def __call__(self, value, row, column, batch=None, scales=None):
        value = super().__call__(value, row, column, batch, scales)
        inside = (row < self.args.M) & (column < self.args.N)
        return value * skc.f32(skc.load(self.gate + (skc.i64(row) * self.args.N + column), mask=inside))


T = 64


@skc.kernel
def users_gated_gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, gate: skc.Ptr[skc.f16],
                     bias: skc.Ptr[skc.f16], M: skc.i32, N: skc.i32, K: skc.i32):
    """A composition of the user's: 64 x 64 tiles of A Bᵀ (B stored N x K), one consumer warpgroup."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        tiles = TileScheduler(M, N, T, T)
        k_tiles = skc.cdiv(K, T)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)
        else:
            mma = Wgmma(T, T, skc.f16)
            acc = mma.zeros()
            store = TmaStoreEpilogue(out, skc.f16, Gated(EpilogueArgs(SPEC, M, N, bias=bias), gate))
            with store, pipe.consumer(mma) as consumer:
                for tile in tiles:
                    acc.zero()
                    for k in range(k_tiles):
                        with consumer.acquire() as stage:
                            mma(acc, stage.a, stage.b)
                    store(acc, tile.row0, tile.col0)


def expected(a, b_nk, bias, gate):
    return np.maximum(a.astype(np.float32) @ b_nk.astype(np.float32).T + bias, 0) * gate


def test_a_fused_epilogue_subclass_in_a_users_composition(hopper_interpreter):
    M, N, K = 100, 72, 160
    a, b, gate, bias = integers(M, K), integers(N, K), integers(M, N), integers(N, low=-8, high=9)
    out = np.full((M, N), np.nan, np.float16)
    users_gated_gemm[2, 256](skc.TensorMap(a, box=(T, T)), skc.TensorMap(b, box=(T, T)),
                             skc.TensorMap(out, box=(T, T)), gate, bias, M, N, K)
    np.testing.assert_array_equal(out.astype(np.float32), expected(a, b, bias, gate))


@skc.kernel
def library_gated_gemm(a, b, out, gate: skc.Ptr[skc.f16], bias: skc.Ptr[skc.f16], M: skc.i32, N: skc.i32,
                       K: skc.i32, cfg: skc.constexpr):
    wgmma_gemm(a, b, out, M, N, K, Gated(EpilogueArgs(SPEC, M, N, bias=bias), gate), cfg)


@skc.kernel
def library_gated_split_gemm(a, b, out, workspace, counters, gate: skc.Ptr[skc.f16], bias: skc.Ptr[skc.f16],
                             M: skc.i32, N: skc.i32, K: skc.i32, cfg: skc.constexpr):
    wgmma_gemm(a, b, out, M, N, K, Gated(EpilogueArgs(SPEC, M, N, bias=bias), gate), cfg, split=(workspace, counters))


@pytest.mark.parametrize("fields", [{}, {"store": "direct"}, {"split_k": 2}],
                         ids=["tma-store", "direct-store", "split-k"])
def test_a_fused_epilogue_subclass_through_the_library_composition(hopper_interpreter, fields):
    M, N, K = 72, 136, 256
    a, b_nk, gate, bias = integers(M, K), integers(N, K), integers(M, N), integers(N, low=-8, high=9)
    cfg = MatmulConfig(dtype="f16", tile_m=64, consumers=1, stages=2, b_k_major=True, **fields)
    boxes = cfg.boxes()
    out = np.full((M, N), np.nan, np.float16)
    maps = skc.TensorMap(a, boxes["a"]), skc.TensorMap(b_nk, boxes["b"])
    if cfg.split_k > 1:
        workspace, counters = split_buffers(a, M, N, cfg)
        library_gated_split_gemm[4, cfg.threads](*maps, out, workspace, counters, gate, bias, M, N, K, cfg)
    else:
        stored = out if cfg.store == "direct" else skc.TensorMap(out, cfg.out_box())
        library_gated_gemm[4, cfg.threads](*maps, stored, gate, bias, M, N, K, cfg)
    np.testing.assert_array_equal(out.astype(np.float32), expected(a, b_nk, bias, gate))


def test_a_fused_epilogue_subclass_sees_the_outputs_places_when_the_operands_are_swapped(hopper_interpreter):
    """swap_ab: the kernel computes outᵀ = b aᵀ (its M is out's N) and stores each tile transposed; the fused part, a
    copy over the transposed arguments, reads gate and bias at out's own places and sizes."""
    M, N, K = 24, 136, 128
    a, b_nk, gate, bias = integers(M, K), integers(N, K), integers(M, N), integers(N, low=-8, high=9)
    cfg = MatmulConfig(dtype="f16", tile_m=64, consumers=1, tile_n=24, stages=2, b_k_major=True, swap_ab=True)
    boxes = cfg.boxes()
    out = np.full((M, N), np.nan, np.float16)
    library_gated_gemm[4, cfg.threads](skc.TensorMap(b_nk, boxes["a"]), skc.TensorMap(a, boxes["b"]),
                                       skc.TensorMap(out, cfg.out_box()), gate, bias, N, M, K, cfg)
    np.testing.assert_array_equal(out.astype(np.float32), expected(a, b_nk, bias, gate))


@skc.kernel
def wrong_arguments(out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32):
    skc.blocks.DirectStoreEpilogue(out, skc.f32, {"bias": out})   # marker: wrong


def test_an_epilogue_given_neither_arguments_nor_a_fused_part_says_what_it_takes(hopper_interpreter):
    with pytest.raises(skc.CompileError) as info:
        wrong_arguments.compile(target="sm_90a")
    message = str(info.value)
    assert f":{line_of(wrong_arguments, 'marker: wrong')}:" in message
    assert "DirectStoreEpilogue applies the fused part its `args` give" in message and "found dict" in message
    assert "FusedEpilogue" in message and "EpilogueArgs(EpilogueSpec(...), M, N, ...)" in message


class BatchGated(FusedEpilogue):
    """Gated's fused part for a batch: gate is B x M x N, each matrix times its own gate (the `batch` the library's
    batched store passes)."""

    def __init__(self, args, gate):
        super().__init__(args)
        self.gate = gate

    def __call__(self, value, row, column, batch=None, scales=None):
        value = super().__call__(value, row, column, batch, scales)
        inside = (row < self.args.M) & (column < self.args.N)
        at = (skc.i64(batch) * self.args.M + row) * self.args.N + column
        return value * skc.f32(skc.load(self.gate + at, mask=inside))


@skc.kernel
def library_batched_gated_gemm(a, b, out, gate: skc.Ptr[skc.f16], bias: skc.Ptr[skc.f16], batches: skc.i32,
                               M: skc.i32, N: skc.i32, K: skc.i32, cfg: skc.constexpr):
    wgmma_gemm(a, b, out, M, N, K, BatchGated(EpilogueArgs(SPEC, M, N, bias=bias), gate), cfg, batches=batches)


@pytest.mark.parametrize("fields", [{}, {"tile_m": 128, "consumers": 2, "pingpong": True}], ids=["one", "pingpong"])
def test_a_fused_epilogue_subclass_is_given_each_matrixs_batch(hopper_interpreter, fields):
    """A batched launch (3-D maps, the scheduler over every matrix's tiles): the subclass reads each matrix's own
    gate by the `batch` it is given."""
    B, M, N, K = 3, 72, 80, 128
    a, b, gate, bias = integers(B, M, K), integers(B, K, N), integers(B, M, N), integers(N, low=-8, high=9)
    cfg = MatmulConfig(**{"dtype": "f16", "tile_m": 64, "tile_n": 64, "consumers": 1, "stages": 2, "batched": "ab",
                          **fields})
    boxes = cfg.boxes()
    out = np.full((B, M, N), np.nan, np.float16)
    maps = [skc.TensorMap(x, boxes[name]) for x, name in ((a, "a"), (b, "b"), (out, "out"))]
    library_batched_gated_gemm[3, cfg.threads](*maps, gate, bias, B, M, N, K, cfg)
    want = np.maximum(a.astype(np.float32) @ b.astype(np.float32) + bias, 0) * gate
    np.testing.assert_array_equal(out.astype(np.float32), want)
