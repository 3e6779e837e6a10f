"""A consumer with no reader that keeps stages in flight (`pipe.consumer()`) releases a stage only once the wgmma
that read its tiles completed. wgmma reads shared memory asynchronously: a kernel that issued a stage's MMAs and let
its `with` end released the stage to the producer while they still read it (the interpreter stopped it as a race;
on the GPU a refill could land under the MMAs: a wrong answer). Where the code does not retire the group itself, the
release now does."""
import re

import numpy as np
import pytest

import skc
from skc import ir
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, OperandLayout,
                        TilePayload, TileScheduler, TmaLoader, WarpRoles, Wgmma)

T = 64


@skc.kernel
def no_reader(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32,
              mode: skc.constexpr):
    """64 x 64 tiles through two stages, the consumer made without a reader. mode "retires": the code retires each
    stage's MMAs itself; "leaves": it does not; "runs": it takes the stages two at a time and does not; "some paths
    retire": it retires in a run-time branch, on even k-steps only."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = TileScheduler(M, N, T, T)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            with pipe.consumer() as consumer:
                for tile in tiles:
                    acc.zero()
                    if mode == "runs":
                        for k in range(k_tiles // 2):
                            with consumer.acquire(2) as run:
                                mma(acc, run.stage(0).a, run.stage(0).b)
                                mma(acc, run.stage(1).a, run.stage(1).b)
                    else:
                        for k in range(k_tiles):
                            with consumer.acquire() as s:
                                mma(acc, s.a, s.b)
                                if mode == "retires":
                                    mma.retire(0)
                                if mode == "some paths retire":   # (odd k-steps do not: their release must)
                                    if k % 2 == 0:
                                        mma.retire(0)
                    acc.wait()
                    DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))(acc, tile.row0, tile.col0)


def operands(M, N, K, device):
    rng = np.random.default_rng(0)
    A, B = rng.integers(-2, 3, (M, K)).astype(np.float32), rng.integers(-2, 3, (N, K)).astype(np.float32)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    out = skc.to_device(np.full((M, N), np.nan, np.float32)) if not device else \
        skc.empty((M, N), skc.f32).fill_bytes(0xFF)
    return A, B, maps, out


@pytest.mark.parametrize("mode", ["retires", "leaves", "runs", "some paths retire"])
def test_a_consumer_without_a_reader_runs_right(mode):
    M, N, K = 128, 128, 256   # four tiles for two blocks, four k-steps a tile through two stages
    A, B, maps, out = operands(M, N, K, device=False)
    no_reader[2, 256](*maps, out, M, N, K, mode)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


def ptx(mode) -> str:
    box = ir.TensorMapType(ir.ScalarType("bf16"), (T, T), 128)
    text = no_reader.compile(box, box, skc.Ptr[skc.f32], skc.i32, skc.i32, skc.i32, mode, target="sm_90a",
                             block=256).asm("ptx")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith((".loc", "//", ".file")))


def test_the_release_waits_where_the_code_did_not_and_only_there():
    """Without its own retire the kernel waits for the group at the same place, before the stage's release: the
    PTX is the one of the kernel that retires itself (which gets no second wait)."""
    leaves, retires = ptx("leaves"), ptx("retires")
    assert leaves == retires
    body = leaves[leaves.index("wgmma.commit_group"):]
    assert re.search(r"wgmma\.wait_group\.sync\.aligned\s+0", body[:body.index("mbarrier.arrive")])


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["leaves", "runs", "some paths retire"])
def test_a_consumer_without_a_reader_on_the_gpu(mode):
    """Many tiles a block, deep K through two stages: a refill landing under MMAs still reading would show."""
    M, N, K = 512, 512, 2048
    A, B, maps, out = operands(M, N, K, device=True)
    no_reader[4, 256](*maps, out, M, N, K, mode)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)
