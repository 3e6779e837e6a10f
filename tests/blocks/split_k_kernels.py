"""A user's split-K GEMM of 64 x 64 tiles, composed from the blocks, for the tests of SplitKScheduler and
SplitKEpilogue's contracts (test_block_contracts_more, test_block_contracts_hunt)."""
import skc
from skc.blocks import EpilogueArgs, EpilogueSpec, InputTilePipeline, OperandLayout, TilePayload, TmaLoader, WarpRoles, Wgmma
from skc.blocks.epilogue import SplitKEpilogue
from skc.blocks.scheduler import SplitKScheduler

T = 64


@skc.kernel
def split_k(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], workspace: skc.Ptr[skc.f32],
            counters: skc.Ptr[skc.i32], M: skc.i32, N: skc.i32, K: skc.i32, scheduled: skc.constexpr,
            summed: skc.constexpr, tile_n: skc.constexpr):
    """SplitKScheduler handing out `scheduled` shares of K, SplitKEpilogue(..., summed, tile_n=tile_n) summing them."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = SplitKScheduler(M, N, T, T, k_tiles, scheduled)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        first, end = tile.k_steps(k_tiles)
                        for k in range(first, end):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            epilogue = SplitKEpilogue(out, workspace, counters, skc.f32, EpilogueArgs(EpilogueSpec(), M, N), summed,
                                      tile_n=tile_n)
            with epilogue, pipe.consumer(mma) as consumer:
                for tile in tiles:
                    acc.zero()
                    first, end = tile.k_steps(k_tiles)
                    for k in range(first, end):
                        with consumer.acquire() as s:
                            mma(acc, s.a, s.b)
                    epilogue(acc, tile.row0, tile.col0, tile.share)   # HERE
