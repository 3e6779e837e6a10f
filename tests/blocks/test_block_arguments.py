"""A block given the wrong kind of argument, or called out of order, says so where the bad value enters (a helper's
search by mutating working compositions, tests/fuzz/blockmisuse_gen.py, fifty-seventh session). Before, each of these
failed inside skc/blocks in Python's words ("'float' object has no attribute 'layouts'", "'int' object is not
iterable", "'NoneType' object has no attribute 'check'"), or at a later line in another block's terms ("expected a
tensor map parameter" at the load call, "range() bounds must be integers" at the `for`), or compiled and then hung
(a stage filled twice or never, a skip with one consumer, a block barrier in one role, `if roles.is_producer:`) or
stored wrong values (batches=0, a float origin or corner, a constant place past a stage's tile, bf16 tiles multiplied
as f16). The composition is a small Hopper GEMM (out = A Bᵀ); `mode` names the misuse, and the line that makes it
carries `# M:<mode>`."""
import dataclasses
import re

import numpy as np
import pytest

import skc
from helpers import line_of

NUMPY_ONE = np.int64(1)   # (a module global the kernel reads: WarpRoles' count as a numpy integer)
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, FusedEpilogue, InputTilePipeline,
                        MatmulConfig, OnlineSoftmax, OperandLayout, TilePayload, TileScheduler, TmaLoader,
                        TmaStoreEpilogue, VectorLoader, WarpRoles, Wgmma, WgmmaRegA)
from skc.blocks.gemm import wgmma_gemm
from skc.blocks.stencil import ChannelTapsLoader, GroupStencil, PixelLoader, PixelScheduler, PixelStoreEpilogue

T = 64


@skc.kernel
def gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32,
         mode: skc.constexpr):
    """out = A Bᵀ, each output tile T x T, with the misuse `mode` names ("" for none)."""
    layout_a = OperandLayout(T, T)
    if mode == "layout_runtime":
        layout_a = OperandLayout(M, T)
    elif mode == "layout_float":
        layout_a = OperandLayout(64.0, T)
    payload = TilePayload(a=layout_a, b=OperandLayout(T, T))   # M:layout_runtime M:layout_float
    if mode == "payload_float":
        load = TmaLoader(1.5, a=a, b=b)   # M:payload_float
    elif mode == "map_int":
        load = TmaLoader(payload, a=0, b=b)   # M:map_int
    elif mode == "map_pointer":
        load = TmaLoader(payload, a=out, b=b)   # M:map_pointer
    elif mode == "multicast_int":
        load = TmaLoader(payload, multicast=2, a=a, b=b)   # M:multicast_int
    elif mode == "vector_maps":
        load = VectorLoader(a=(a, M, K), b=(b, N, K))   # M:vector_maps
    elif mode == "unknown_map":
        load = TmaLoader(payload, a=a, b=b, c=a)   # M:unknown_map
    elif mode == "vector_short":
        load = VectorLoader(a=(out, M), b=(out, N, K))   # M:vector_short
    else:
        load = TmaLoader(payload, a=a, b=b)
    if mode == "pipeline_payload_int":
        pipe = InputTilePipeline(T, 2, load, consumers=1)   # M:pipeline_payload_int
    elif mode == "pipeline_producer_payload":
        pipe = InputTilePipeline(payload, 2, payload, consumers=1)   # M:pipeline_producer_payload
    else:
        pipe = InputTilePipeline(payload, 2, load, consumers=1)
    with pipe:
        roles = WarpRoles(1.0 if mode == "roles_float" else NUMPY_ONE if mode == "roles_numpy" else 1)   # M:roles_float
        k_tiles = skc.cdiv(K, T)
        if mode == "batches_0":
            tiles = TileScheduler(M, N, T, T, batches=0)   # M:batches_0
        elif mode == "scheduler_M_float":
            tiles = TileScheduler(96.5, N, T, T)   # M:scheduler_M_float
        else:
            tiles = TileScheduler(M, N, T, T)
        if roles.is_producer():
            if mode == "sync_in_role":
                pipe.sync()   # M:sync_in_role
            if mode == "enter_consumer":
                roles.enter_consumer()   # M:enter_consumer
            if load.is_issuing():
                with (pipe if mode == "pipe_as_handle" else pipe.producer()) as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with producer.acquire(2 if mode == "stage_run" else 1) as stage:   # M:pipe_as_handle M:load_none
                                if mode == "stage_run":
                                    load(stage, k, a=tile.row0, b=tile.col0)   # M:stage_run
                                elif mode == "stage_handle":
                                    load(producer, k, a=tile.row0, b=tile.col0)   # M:stage_handle
                                elif mode == "stage_int":
                                    load(0, k, a=tile.row0, b=tile.col0)   # M:stage_int
                                elif mode == "origin_float":
                                    load(stage, k, a=1.5, b=tile.col0)   # M:origin_float
                                elif mode == "origin_pair":
                                    load(stage, k, a=(tile.row0, 0), b=tile.col0)   # M:origin_pair
                                elif mode == "load_twice":
                                    load(stage, k, a=tile.row0, b=tile.col0)
                                    load(stage, k, a=tile.row0, b=tile.col0)   # M:load_twice
                                elif mode != "load_none":   # (the stage is then released unfilled)
                                    load(stage, k, a=tile.row0, b=tile.col0)
        else:
            if mode == "dtype_f16":
                mma = Wgmma(T, T, skc.f16)
            elif mode == "reg_a_smem":
                mma = WgmmaRegA(T, T, skc.bf16)
            else:
                mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            spec, extra = EpilogueSpec(), {}
            if mode == "epi_bias_map":
                spec, extra = EpilogueSpec(bias=True), {"bias": b}
            if mode == "epi_spec_none":
                spec = None
            rows = 96.5 if mode == "epi_M_float" else M
            args = EpilogueArgs(spec, rows, N, **extra)   # M:epi_bias_map M:epi_spec_none M:epi_M_float
            if mode == "epi_dtype_str":
                epilogue = DirectStoreEpilogue(out, "f32", args)   # M:epi_dtype_str
            elif mode == "epi_pointer_int":
                epilogue = DirectStoreEpilogue(0, skc.f32, args)   # M:epi_pointer_int
            elif mode == "tma_store_pointer":
                epilogue = TmaStoreEpilogue(out, skc.f32, args)   # M:tma_store_pointer
            elif mode == "fused_none":
                epilogue = DirectStoreEpilogue(out, skc.f32, FusedEpilogue(None))   # M:fused_none
            else:
                epilogue = DirectStoreEpilogue(out, skc.f32, args)
            with pipe.consumer(1 if mode == "reader_int" else mma) as consumer:   # M:reader_int
                for tile in tiles:
                    acc.zero()
                    for k in range(k_tiles):
                        with (consumer if mode == "handle_as_stage" else consumer.acquire()) as stage:
                            if mode == "mma_acc_float":
                                mma(1.0, stage.a, stage.b)   # M:mma_acc_float
                            elif mode == "mma_stage_for_tile":
                                mma(acc, stage, stage.b)   # M:mma_stage_for_tile
                            elif mode == "unknown_tile":
                                mma(acc, stage.a, stage.c)   # M:unknown_tile
                            elif mode == "accumulate_str":
                                mma(acc, stage.a, stage.b, accumulate="yes")   # M:accumulate_str
                            else:
                                mma(acc, stage.a, stage.b)   # M:handle_as_stage M:reg_a_smem M:dtype_f16
                            if mode == "read_unretired":
                                OnlineSoftmax(1.0).update(acc)   # M:read_unretired
                            if mode == "retired_in_branch":
                                if k >= 0:   # (a run-time branch: its retire precedes its read on every path)
                                    mma.retire(0)
                                    OnlineSoftmax(1.0).update(acc)
                            if mode == "retired_in_a_branch_before":
                                if k >= 1:   # (a retire on this branch's paths only)
                                    mma.retire(0)
                                OnlineSoftmax(1.0).update(acc)   # M:retired_in_a_branch_before
                            if mode == "row_past_tile":
                                skc.store(out, skc.f32(stage.a.load(T, 0, skc.bf16)))   # M:row_past_tile
                            if mode == "skip_one_consumer":
                                consumer.skip(1)   # M:skip_one_consumer
                    if mode == "epi_acc_float":
                        epilogue(1.0, tile.row0, tile.col0)   # M:epi_acc_float
                    elif mode == "epi_row_float":
                        epilogue(acc, 0.5, tile.col0)   # M:epi_row_float
                    else:
                        epilogue(acc, tile.row0, tile.col0)


def user_line(error) -> int:
    """The line of the user's file the error is placed at (its first line: FILE:LINE:COL: error: ...)."""
    path, line = str(error).split(":")[:2]
    assert path == __file__, error
    return int(line)


def operands(M=96, N=72, K=128):
    rng = np.random.default_rng(57)
    A, B = rng.integers(-2, 3, (M, K)).astype(np.float32), rng.integers(-2, 3, (N, K)).astype(np.float32)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    out = skc.to_device(np.full((M, N), np.nan, np.float32))
    return A, B, maps, out


def test_the_composition_runs_right():
    A, B, maps, out = operands()
    gemm[2, 256](*maps, out, 96, 72, 128, "")
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


def test_warp_roles_take_a_numpy_integer():
    """WarpRoles' new check of its count takes any integer (a numpy one was taken before the check came)."""
    A, B, maps, out = operands()
    gemm[2, 256](*maps, out, 96, 72, 128, "roles_numpy")
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


MISUSES = [
    # (mode, a phrase of the message, a phrase of the hint); before: what it did
    # 'float' object has no attribute 'layouts' (inside TmaLoader.__init__)
    ("payload_float", "TmaLoader's payload is a TilePayload (what a stage holds), found float 1.5", "TilePayload(a="),
    # 'int' object has no attribute 'allocate'
    ("pipeline_payload_int", "InputTilePipeline's payload is a TilePayload", "InputTilePipeline(payload, stages"),
    # 'TilePayload' object has no attribute 'arrivals'
    ("pipeline_producer_payload", "InputTilePipeline's producer is the loader that fills the stages", "TmaLoader("),
    # "expected a tensor map parameter (skc.TensorMap), found i32" at the load call, inside TmaLoader.load
    ("map_int", "TmaLoader's map for tile 'a' (a=...) is a tensor map (skc.TensorMap), found int 0", "skc.TensorMap("),
    # "the tensor map for payload tile 'a' holds f32": a pointer is no tensor map of another type
    ("map_pointer", "is a tensor map (skc.TensorMap), found a pointer", "skc.TensorMap("),
    # 'int' object is not iterable
    ("multicast_int", "TmaLoader's multicast is a pair (tile name, blocks)", "multicast=('b', 2)"),
    # '+' takes numbers ... found a tensor map, inside VectorLoader.element at the load call
    ("vector_maps", "VectorLoader's pointer of operand a is a pointer (skc.Ptr[...]), found a tensor map",
     "a tensor map is for TmaLoader"),
    # cannot unpack 2 values into 3 names, inside VectorLoader.element at the load call
    ("vector_short", "VectorLoader's operand a is a tuple (pointer, rows, cols), found a tuple of 2", "a=(pointer"),
    # "a run-time value is used where Python needs a bool" inside TmaLoader.__init__
    ("layout_runtime", "an operand layout's rows is a compile-time int, found a run-time i32", "a Python int"),
    # "a shared array's shape must be positive compile-time ints, found (32768.0,)" at the pipeline
    ("layout_float", "an operand layout's rows is a compile-time int, found float 64.0", "a Python int"),
    # compiled: no tile walked, nothing stored
    ("batches_0", "TileScheduler's batches is how many matrices the output holds, 1 or more, found int 0",
     "batches=1"),
    # "range() bounds must be integers, found f32" at the `for tile in tiles`
    ("scheduler_M_float", "TileScheduler's M is an integer", "give M as an integer"),
    # compiled: a block-wide barrier the consumers never reach (a deadlock)
    ("sync_in_role", "pipe.sync() waits for every thread of the block, and this code runs as the producer only",
     "outside `if roles.is_producer():`"),
    # 'InputTilePipeline' object has no attribute 'acquire'
    ("pipe_as_handle", "stages are acquired from a role's handle, not from the pipeline", "pipe.producer()"),
    # 'StageRun' object has no attribute 'full' (inside TmaLoader.__call__)
    ("stage_run", "TmaLoader's stage is one stage, found a StageRun", "load(run.stage(i), ...)"),
    # 'ProducerRole' object has no attribute 'full'
    ("stage_handle", "TmaLoader's stage is a stage, found a ProducerRole", "with producer.acquire() as stage:"),
    # 'int' object has no attribute 'full'
    ("stage_int", "TmaLoader's stage is a pipeline stage", "load(stage, k"),
    # compiled: a TMA box at row 1 (the float truncated), every output row off by one
    ("origin_float", "TmaLoader's origin of tile 'a' (a=...) is an integer row", "tile.row0"),
    # "cannot convert tuple (<run-time i32>, 0) to i32", without a hint
    ("origin_pair", "TmaLoader's origin of tile 'a' (a=...) is one integer (its first row): the tile's box has 2 "
                    "dimensions", "BatchedOperandLayout"),
    # compiled: the stage's full barrier armed twice (the interpreter reported a deadlock)
    ("load_twice", "TmaLoader fills a stage it already filled", "load each stage once"),
    # compiled: a stage released unfilled, the consumers waited for ever
    ("load_none", "this stage is acquired by the producer and released to the consumers unfilled",
     "load(stage, k, a=..., b=...)"),
    # 'ConsumerRole' object has no attribute 'a'
    ("handle_as_stage", "a pipeline's consumer handle holds no stage, so no 'a'", "with handle.acquire() as stage:"),
    # 'StageLease' object has no attribute 'c' (its own explanation was dropped)
    ("unknown_tile", "a stage holds the payload's tiles a, b; it has no tile 'c'", "add 'c' to the TilePayload"),
    # 'float' object has no attribute 'fragment' (inside Wgmma.issue)
    ("mma_acc_float", "Wgmma's accumulator is an accumulator (this TileOp's zeros()), found float 1.0", "mma.zeros()"),
    # 'StageLease' object has no attribute 'layout' (inside Wgmma.check)
    ("mma_stage_for_tile", "Wgmma's a operand is a tile in shared memory", "mma(acc, stage.a, stage.b)"),
    # indexing 'SmemTile' object with int 0: 'SmemTile' object is not subscriptable (inside WgmmaRegA.__call__)
    ("reg_a_smem", "WgmmaRegA's left operand is this op's operand(p): a vector of 32 values, found a SmemTile",
     "mma.operand(p)"),
    # compiled: bf16 tiles multiplied as f16 (a wrong answer)
    ("dtype_f16", "the stage's A tile is loaded from a tensor map of bf16; this TileOp multiplies f16",
     "the operands' type (bf16)"),
    # 'NoneType' object has no attribute 'check' (inside EpilogueArgs.__init__)
    ("epi_spec_none", "EpilogueArgs's spec is an EpilogueSpec", "EpilogueSpec()"),
    # compiled: rows compared with 96.5, one row past the output stored (out of bounds)
    ("epi_M_float", "EpilogueArgs's M is the output's rows, found float 96.5", "give M as an integer"),
    # "'+' takes numbers, or a pointer and an integer, found a tensor map" at the epilogue's call
    ("epi_bias_map", "EpilogueArgs's bias is a pointer to its values (skc.Ptr[...]), found a tensor map", "TmaStore"),
    # "str 'f32' is not a function and cannot be called" at the epilogue's call
    ("epi_dtype_str", "DirectStoreEpilogue's dtype is an element type (skc.bf16, skc.f32, ...), found str 'f32'",
     "skc.f32"),
    # "expected a pointer, found i64" at the epilogue's call
    ("epi_pointer_int", "DirectStoreEpilogue's out is a pointer to the output (skc.Ptr[...]), found int 0",
     "pointer parameter"),
    # "expected a tensor map parameter (skc.TensorMap), found skc.Ptr[skc.f32]"
    ("tma_store_pointer", "TmaStoreEpilogue's out_map is a tensor map (skc.TensorMap), found a pointer",
     "DirectStoreEpilogue(out, dtype, args)"),
    # 'NoneType' object has no attribute 'spec' (later)
    ("fused_none", "FusedEpilogue's args is an EpilogueArgs", "FusedEpilogue(EpilogueArgs(spec, M, N, ...))"),
    # 'float' object has no attribute 'wait' (inside DirectStoreEpilogue.__call__)
    ("epi_acc_float", "DirectStoreEpilogue's accumulator is an accumulator", "acc = mma.zeros()"),
    # compiled: rows 0.5 + row, stored at truncated places (a wrong answer)
    ("epi_row_float", "DirectStoreEpilogue's row0 is an integer (the output tile's first row), found float 0.5",
     "tile.row0"),
    # compiled: a constant place past the tile read the next tile's element
    ("row_past_tile", "tile 'a' has 64 rows; row 64 lies outside it", "rows 0 to 63"),
    # compiled: a map the payload has no tile of, never loaded
    ("unknown_map", "TmaLoader is given a tensor map for c, which its payload has no tile of", "leave its map out"),
    # compiled: a float count of consumers
    ("roles_float", "WarpRoles' consumers is a compile-time int of 1 or more, found 1.0", "WarpRoles(n)"),
    # compiled: the producer's registers raised to the consumers' (with more consumers, setmaxnreg waits for ever)
    ("enter_consumer", "enter_consumer() is the consumer's, used in code that runs as the producer",
     "roles.enter_producer() in the producer's"),
    # compiled: 1 taken as a reader that keeps no stage in flight
    ("reader_int", "pipe.consumer's reader is the TileOp that reads the stages", "pipe.consumer(mma)"),
    # compiled: "yes" taken as true
    ("accumulate_str", "Wgmma's accumulate is a compile-time bool, found str 'yes'", "accumulate=False"),
    # compiled: the softmax read the accumulator's registers while the wgmma still wrote them (right in the
    # interpreter, which computes a wgmma at once; wrong on a GPU)
    ("read_unretired", "OnlineSoftmax reads an accumulator that a wgmma may still be writing", "mma.retire(0)"),
    # (and one retired in a branch the read is not inside: on the other branch's paths the wgmma still runs)
    ("retired_in_a_branch_before", "OnlineSoftmax reads an accumulator that a wgmma may still be writing",
     "mma.retire(0)"),
    # compiled: the stages skipped were never released (a deadlock)
    ("skip_one_consumer", "consumer.skip leaves stages to the other consumer warpgroups, and the kernel's WarpRoles "
                          "has one", "read every stage (no skip)"),
]


@pytest.mark.parametrize("mode, phrase, hint", MISUSES, ids=[case[0] for case in MISUSES])
def test_a_misuse_is_an_error_where_the_bad_value_enters(mode, phrase, hint):
    _, _, maps, out = operands()
    with pytest.raises(skc.CompileError) as info:
        gemm.compile(*maps, out, 96, 72, 128, mode, target="sm_90a", block=256)
    error = info.value
    assert phrase in error.message, error
    assert hint in error.hint, error
    assert user_line(error) == line_of(gemm, f"M:{mode}"), error
    assert "object has no attribute" not in str(error) and "TypeError" not in str(error)


def test_a_read_after_a_retire_in_its_own_branch_compiles():
    """A retire that precedes the read in the run-time branch that holds both runs on every path to the read: it
    was refused as "reads an accumulator that a wgmma may still be writing" (the retire's scope, the branch, does
    not enclose the MMA's)."""
    _, _, maps, out = operands()
    assert "wgmma.wait_group" in gemm.compile(*maps, out, 96, 72, 128, "retired_in_branch", target="sm_90a",
                                              block=256).asm("ptx")


@skc.kernel
def softmax_misuse(out: skc.Ptr[skc.f32], scale: skc.f32, mode: skc.constexpr):
    """An OnlineSoftmax over an accumulator, with the misuse `mode` names."""
    acc = Wgmma(T, T, skc.bf16).zeros()
    if mode == "scale_none":
        softmax = OnlineSoftmax(None)   # M:scale_none
    elif mode == "lazy_runtime":
        softmax = OnlineSoftmax(scale, lazy=scale)   # M:lazy_runtime
    else:
        softmax = OnlineSoftmax(scale)
    if mode == "update_float":
        softmax.update(1.0)   # M:update_float
    elif mode == "mask_float":
        softmax.update(acc, mask=lambda row, column: 1.5)   # M:mask_float
    else:
        softmax.update(acc, mask=lambda row, column: column < 50)
    if mode == "finish_float":
        softmax.finish(1.0)   # M:finish_float
    else:
        softmax.finish(acc)
    skc.store(out + skc.thread_index(), acc.fragment[0])


@pytest.mark.parametrize("mode, phrase", [
    ("scale_none", "OnlineSoftmax's scale is a number (a compile-time float or a run-time f32), found NoneType None"),
    # "'moved' may be undefined here: it is assigned on some paths that reach this point but not on others"
    ("lazy_runtime", "OnlineSoftmax's lazy is a compile-time float of 0 or more, found a run-time f32"),
    ("update_float", "OnlineSoftmax's accumulator is an accumulator that says its rows"),   # 'float' ... 'rows'
    ("finish_float", "OnlineSoftmax's accumulator is an accumulator that says its rows"),   # ... 'row_lanes'
    # compiled: the float taken as true, nothing masked (a wrong answer)
    ("mask_float", "OnlineSoftmax's mask(row, column)'s result is a truth value"),
])
def test_online_softmax_refuses_what_it_cannot_use(mode, phrase):
    with pytest.raises(skc.CompileError) as info:
        softmax_misuse.compile(skc.Ptr[skc.f32], skc.f32, mode, target="sm_90a", block=128)
    assert phrase in info.value.message, info.value
    assert info.value.hint and user_line(info.value) == line_of(softmax_misuse, f"M:{mode}")


def test_the_softmax_kernel_compiles_without_a_misuse():
    assert "ex2" in softmax_misuse.compile(skc.Ptr[skc.f32], skc.f32, "", target="sm_90a", block=128).asm("ptx")


@skc.kernel
def library_gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, M: skc.i32, N: skc.i32, K: skc.i32,
                 cfg: skc.constexpr, mode: skc.constexpr):
    fused = EpilogueArgs(cfg.epilogue, M, N)
    if mode == "config_none":
        wgmma_gemm(a, b, out, M, N, K, fused, None)   # M:config_none
    elif mode == "replaced":
        wgmma_gemm(a, b, out, M, N, K, fused, dataclasses.replace(cfg, tile_m=96))   # M:replaced
    else:
        wgmma_gemm(a, b, out, M, N, K, fused, cfg)


@pytest.mark.parametrize("mode, phrase", [
    ("config_none", "wgmma_gemm's cfg is a MatmulConfig (its tiles, stages and epilogue), found NoneType None"),
    # placed at `<string>:32:3` (the dataclass's generated __init__), "replace() raised ValueError: ..."
    ("replaced", "tile_m must be 64 or 128 per consumer warpgroup"),
])
def test_the_library_gemm_refuses_a_config_at_the_users_line(mode, phrase):
    cfg = MatmulConfig(tile_n=64, stages=2)
    maps = [skc.ir.TensorMapType(skc.ir.bf16, box, cfg.swizzle(name) if name != "out" else 128)
            for name, box in cfg.boxes().items()]
    with pytest.raises(skc.CompileError) as info:
        library_gemm.compile(*maps, skc.i32, skc.i32, skc.i32, cfg, mode, target="sm_90a", block=cfg.threads)
    assert phrase in info.value.message, info.value
    assert str(info.value).startswith(f"{__file__}:{line_of(library_gemm, f'M:{mode}')}:"), info.value
    assert "raised ValueError" not in str(info.value)


# -- the depthwise stencil's blocks (skc/blocks/stencil.py): a StencilConfig was never checked, nor their arguments ----
def depthwise_config():
    from skc.blocks.conv import ConvShape
    from skc.blocks.stencil import stencil_config
    return stencil_config(ConvShape(N=1, H=8, W=8, C=16, K=16, R=3, S=3, padding=(1, 1), groups=16), "bf16",
                          EpilogueSpec(bias=True))


@pytest.mark.parametrize("field, value, phrase", [
    ("padding", 1, "StencilConfig's padding is an (h, w) pair of ints of 0 or more, found 1"),   # 'int' ... iterable
    ("stride", (0, 1), "StencilConfig's stride is an (h, w) pair of ints of 1 or more"),   # compiled, wrong values
    ("columns", 0, "StencilConfig's columns is an int of 1 or more, found 0"),   # "integer '//' by the constant 0"
    ("width", 3, "StencilConfig's width is 1, 2, 4 or 8 channels"),   # "a load of 3 x bf16 moves 6 bytes"
    ("width", 8.0, "StencilConfig's width is 1, 2, 4 or 8 channels"),   # a shared array of 144.0 elements
    ("dtype", "f32", "StencilConfig's dtype is 'bf16' or 'f16', found 'f32'"),   # "a load of 8 x f32 moves 32 bytes"
    ("group_channels", 3, "StencilConfig's group_channels is one of (1, 2, 4, 8)"),   # "index 8 is out of range"
])
def test_a_stencil_config_checks_itself_when_made(field, value, phrase):
    with pytest.raises(ValueError, match=re.escape(phrase)) as info:
        dataclasses.replace(depthwise_config(), **{field: value})
    assert info.value.hint


@skc.kernel
def stencil(x: skc.Ptr[skc.bf16], w: skc.Ptr[skc.bf16], bias: skc.Ptr[skc.bf16], out: skc.Ptr[skc.bf16],
            N: skc.i32, H: skc.i32, W: skc.i32, C: skc.i32, P: skc.i32, Q: skc.i32, cfg: skc.constexpr,
            mode: skc.constexpr):
    """stencil_conv_kernel's composition, with the misuse `mode` names."""
    tiles = PixelScheduler(cfg, N, P, Q, C)
    taps = ChannelTapsLoader(cfg, cfg.R if mode == "fewer_taps" else cfg.R * cfg.S)   # M:fewer_taps
    if mode != "no_taps":
        taps(w, C * cfg.multiplier, tiles.slice)
    sums = GroupStencil(cfg)
    if mode == "swapped":
        sums(taps, PixelLoader(x, H, W, C, cfg.width), tiles)   # M:swapped
    else:
        sums(PixelLoader(x, H, W, C, 4 if mode == "width_4" else cfg.width), taps, tiles)   # M:width_4 M:no_taps
    PixelStoreEpilogue(out, None if mode == "no_bias" else bias, P, Q, cfg)(sums, tiles, C)   # M:no_bias


@pytest.mark.parametrize("mode, phrase", [
    # an out-of-bounds read of shared memory at run time (the weights of taps it never staged)
    ("fewer_taps", "ChannelTapsLoader's taps is the filter's R · S = 9 taps"),
    # compiled: the weights read from shared memory nothing wrote (wrong values)
    ("no_taps", "GroupStencil reads the filters' taps before the ChannelTapsLoader copied them"),
    ("swapped", "GroupStencil's load is a PixelLoader, found a ChannelTapsLoader"),   # ... has no attribute 'row'
    ("width_4", "GroupStencil's load's width is the config's width, 8, found int 4"),   # "index 4 is out of range"
    ("no_bias", "PixelStoreEpilogue's bias is a pointer to the K biases"),   # "cannot use None with 'add'"
])
def test_the_stencils_blocks_refuse_misuse_at_the_users_line(mode, phrase):
    arguments = [skc.Ptr[skc.bf16]] * 4 + [skc.i32] * 6 + [depthwise_config(), mode]
    with pytest.raises(skc.CompileError) as info:
        stencil.compile(*arguments, target="sm_90a", block=128)
    assert phrase in info.value.message, info.value
    assert info.value.hint and user_line(info.value) == line_of(stencil, f"M:{mode}")


def test_the_stencil_composition_compiles_without_a_misuse():
    arguments = [skc.Ptr[skc.bf16]] * 4 + [skc.i32] * 6 + [depthwise_config(), ""]
    assert "ld.global" in stencil.compile(*arguments, target="sm_90a", block=128).asm("ptx")
