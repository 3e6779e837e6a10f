"""More misuses of the blocks (the sixty-fourth session's search), each an skc error at the user's line: a
TmaStoreEpilogue used without its `with` (the block ended with its stores still reading shared memory: on the GPU a
random output tile; the interpreter said nothing), an epilogue storing f16 through a bf16 output map (f16 bits in
a bf16 output), a block's run-time count (the refusal's own f-string failed: "an f-string can only format
compile-time values"), a VectorLoader wider than 16 bytes (refused only at its load, "split it into several
loads"), a TensorMap's box or swizzle of no ints (a bare TypeError, or 64.5 cut to 64), a TmaLoader made on the
host over its TensorMaps ("expected a number or a run-time value, found a TensorMap")."""
import ml_dtypes
import numpy as np
import pytest

import skc
from helpers import line_of
from skc.blocks import (EpilogueArgs, EpilogueSpec, InputTilePipeline, OperandLayout, TilePayload, TileScheduler,
                        TmaLoader, TmaStoreEpilogue, VectorLoader, WarpRoles, Wgmma)

T = 64


@skc.kernel
def gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32, K: skc.i32,
         mode: skc.constexpr):
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = HOST_LOADER if mode == "host_loader" else TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = TileScheduler(M, N, T, T)
        if roles.is_producer():
            roles.enter_producer()
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)   # M:host_loader
        else:
            roles.enter_consumer()
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            stored = skc.f16 if mode == "f16_into_bf16" else skc.bf16
            rows = M if mode == "rows_at_run_time" else 64
            epilogue = TmaStoreEpilogue(out, stored, EpilogueArgs(EpilogueSpec(), M, N), rows=rows)   # M:epilogue
            if mode != "no_with":
                with epilogue, pipe.consumer(mma) as consumer:
                    for tile in tiles:
                        acc.zero()
                        for k in range(k_tiles):
                            with consumer.acquire() as stage:
                                mma(acc, stage.a, stage.b)
                        epilogue(acc, tile.row0, tile.col0)
            else:
                with pipe.consumer(mma) as consumer:
                    for tile in tiles:
                        acc.zero()
                        for k in range(k_tiles):
                            with consumer.acquire() as stage:
                                mma(acc, stage.a, stage.b)
                        epilogue(acc, tile.row0, tile.col0)   # M:no_with


_HOST_MAP = skc.TensorMap(np.zeros((128, 128), ml_dtypes.bfloat16), box=(T, T))
HOST_LOADER = TmaLoader(TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T)), a=_HOST_MAP, b=_HOST_MAP)


def _operands():
    rng = np.random.default_rng(0)
    a, b = rng.integers(-2, 3, (128, 128)).astype(np.float32), rng.integers(-2, 3, (128, 128)).astype(np.float32)
    maps = [skc.TensorMap(x.astype(ml_dtypes.bfloat16), box=(T, T)) for x in (a, b)]
    out = np.full((128, 128), np.nan, ml_dtypes.bfloat16)
    return a, b, maps, out, skc.TensorMap(out, box=(64, 64))


def test_the_composition_with_its_epilogue_in_a_with_runs():
    a, b, maps, out, out_map = _operands()
    gemm[1, 256](*maps, out_map, 128, 128, 128, "")
    np.testing.assert_array_equal(out.astype(np.float32), a @ b.T)


@pytest.mark.parametrize("mode, error, words", [
    ("no_with", skc.InterpreterError, "ended with TMA stores still reading"),
    ("f16_into_bf16", skc.CompileError, "holds bf16; this epilogue stores skc.f16"),
    ("rows_at_run_time", skc.CompileError, "rows is a compile-time int of 1 or more, found a run-time i32"),
    ("host_loader", skc.CompileError, "TmaLoader was made on the host, with the host's skc.TensorMap"),
])
def test_a_misused_epilogue_is_an_error_at_the_users_line(mode, error, words):
    _, _, maps, _, out_map = _operands()
    with pytest.raises(error, match=words) as info:
        gemm[1, 256](*maps, out_map, 128, 128, 128, mode)
    marker = {"no_with": "M:no_with", "host_loader": "M:host_loader"}.get(mode, "M:epilogue")
    assert f"{__file__}:{line_of(gemm, marker)}:" in str(info.value).splitlines()[0], str(info.value)


@skc.kernel
def wide_loads(a: skc.Ptr[skc.bf16], b: skc.Ptr[skc.bf16], M: skc.i32, N: skc.i32, K: skc.i32):
    VectorLoader(width=16, a=(a, M, K), b=(b, N, K))   # M:wide


def test_a_vector_loader_wider_than_16_bytes_is_refused_where_it_is_made():
    x = np.zeros((64, 64), ml_dtypes.bfloat16)
    with pytest.raises(skc.CompileError, match=r"width=16 of operand a's bf16 is 32 bytes") as info:
        wide_loads.compile(x, x, 64, 64, 64, target="sm_90a", block=256)
    assert f":{line_of(wide_loads, 'M:wide')}:" in str(info.value).splitlines()[0]
    assert "width=8 for bf16" in str(info.value)


@pytest.mark.parametrize("options", [dict(box=None), dict(box=64), dict(box=(64.5, 64)),
                                     dict(box=(64, 64), swizzle=None)])
def test_a_tensor_maps_box_and_swizzle_are_ints(options):
    with pytest.raises(skc.LaunchError, match="a TensorMap's (box|swizzle) is"):
        skc.TensorMap(np.zeros((64, 128), np.float16), **options)
