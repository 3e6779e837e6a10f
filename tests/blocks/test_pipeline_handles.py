"""One handle a role of a pipeline: a handle keeps its role's place in the ring (stage index and phase, starting at
stage 0, phase 0), so a second consumer (or producer) handle of the same pipeline, or one taken anew each iteration
of the tile loop, started the ring again where the other side had moved on: the interpreter reported a deadlock (on a
GPU, a hang) or the consumer read a stage before its fill. So did a producer handle whose `with` (which drains the
ring on exit) was entered once a tile, and a second handle after the run-time `if` branch holding the first, where
that branch falls through (`if w == 0:` one warpgroup's handle, then another handle that warpgroup takes too). Each
is now a CompileError at the user's line that says to take the handle once; handles of one role where the first need
not have run (the two branches of a run-time `if`, each consumer warpgroup's own under `if w == 0` and `if w == 1`, a
first one in a branch that returns) still compile and run."""
import inspect

import numpy as np
import pytest

import skc
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, OperandLayout,
                        TilePayload, TileScheduler, TmaLoader, WarpRoles, Wgmma)

T = 64


@skc.func
def produce(producer, load, tiles, k_tiles):
    """The producer's tile loop over a handle taken (and entered) once."""
    for tile in tiles:
        for k in range(k_tiles):
            with producer.acquire() as stage:
                load(stage, k, a=tile.row0, b=tile.col0)


@skc.func
def consume(consumer, mma, acc, tiles, k_tiles, epilogue):
    """A consumer warpgroup's tile loop over a handle taken once."""
    for tile in tiles:
        acc.zero()
        for k in range(k_tiles):
            with consumer.acquire() as stage:
                mma(acc, stage.a, stage.b)
        epilogue(acc, tile.row0, tile.col0)


@skc.kernel
def gemm(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32,
         mode: skc.constexpr):
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        k_tiles = skc.cdiv(K, T)
        tiles = TileScheduler(M, N, T, T)
        if roles.is_producer():
            if load.is_issuing():
                if mode == "producer in the tile loop":
                    for tile in tiles:
                        with pipe.producer() as producer:   # HERE producer in the tile loop
                            for k in range(k_tiles):
                                with producer.acquire() as stage:
                                    load(stage, k, a=tile.row0, b=tile.col0)
                elif mode == "producer entered a tile":
                    producer = pipe.producer()
                    for tile in tiles:
                        with producer:   # HERE producer entered a tile
                            for k in range(k_tiles):
                                with producer.acquire() as stage:
                                    load(stage, k, a=tile.row0, b=tile.col0)
                elif mode == "producer entered twice":
                    producer = pipe.producer()
                    with producer:
                        with producer.acquire() as stage:
                            load(stage, 0, a=0, b=0)
                    with producer:   # HERE producer entered twice
                        for k in range(1, k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=0, b=0)
                elif mode == "producer entered in two branches":
                    producer = pipe.producer()
                    if K > 0:
                        with producer:
                            produce(producer, load, tiles, k_tiles)
                    else:
                        with producer:
                            with producer.acquire() as stage:
                                load(stage, 0, a=0, b=0)
                elif mode == "second producer":
                    with pipe.producer() as producer:
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=0, b=0)
                    with pipe.producer() as producer:   # HERE second producer
                        for k in range(k_tiles):
                            with producer.acquire() as stage:
                                load(stage, k, a=T, b=0)
                elif mode == "producer entered after a branch":
                    producer = pipe.producer()
                    if K > T:
                        with producer:
                            with producer.acquire() as stage:
                                load(stage, 0, a=0, b=0)
                    with producer:   # HERE producer entered after a branch
                        produce(producer, load, tiles, k_tiles)
                elif mode == "producers in two branches":
                    if K > 0:
                        with pipe.producer() as producer:
                            produce(producer, load, tiles, k_tiles)
                    else:
                        with pipe.producer() as producer:
                            with producer.acquire() as stage:
                                load(stage, 0, a=0, b=0)
                else:
                    with pipe.producer() as producer:
                        produce(producer, load, tiles, k_tiles)
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            epilogue = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))
            if mode == "consumer in the tile loop":
                for tile in tiles:
                    acc.zero()
                    with pipe.consumer(mma) as consumer:   # HERE consumer in the tile loop
                        for k in range(k_tiles):
                            with consumer.acquire() as stage:
                                mma(acc, stage.a, stage.b)
                    epilogue(acc, tile.row0, tile.col0)
            elif mode == "second consumer":
                with pipe.consumer(mma) as consumer:
                    with consumer.acquire() as stage:
                        mma(acc, stage.a, stage.b)
                with pipe.consumer(mma) as consumer:   # HERE second consumer
                    for k in range(1, k_tiles):
                        with consumer.acquire() as stage:
                            mma(acc, stage.a, stage.b)
                epilogue(acc, 0, 0)
            elif mode == "consumers in two branches":
                if M > 1000:
                    with pipe.consumer() as consumer:
                        for tile in tiles:
                            for k in range(k_tiles):
                                with consumer.acquire() as stage:
                                    mma(acc, stage.a, stage.b)
                else:
                    with pipe.consumer(mma) as consumer:
                        consume(consumer, mma, acc, tiles, k_tiles, epilogue)
            else:
                with pipe.consumer(mma) as consumer:
                    consume(consumer, mma, acc, tiles, k_tiles, epilogue)


def operands(M, N, K):
    rng = np.random.default_rng(0)
    A, B = (rng.integers(-2, 3, shape).astype(np.float32) for shape in ((M, K), (N, K)))
    maps = tuple(skc.TensorMap(skc.to_device(x, dtype=skc.bf16), box=(T, T)) for x in (A, B))
    return A, B, maps


def marked_line(mode: str) -> int:
    lines, first = inspect.getsourcelines(gemm.fn)
    return first + next(i for i, line in enumerate(lines) if line.rstrip().endswith(f"# HERE {mode}"))


@pytest.mark.parametrize("mode", ["right", "consumers in two branches", "producers in two branches",
                                  "producer entered in two branches"])
def test_one_handle_a_role_runs_two_tiles_a_block(hopper_interpreter, mode):
    """One block, two tiles of three k-steps each over two stages: the ring wraps in the middle of a tile."""
    A, B, maps = operands(128, 64, 192)
    out = np.full((128, 64), np.nan, np.float32)
    gemm[1, 256](*maps, out, 128, 64, 192, mode)
    assert np.array_equal(out, A @ B.T)


@pytest.mark.parametrize("mode, message", [
    ("consumer in the tile loop", "the consumer handle of the pipeline made at .* is taken in a run-time loop the "
                                  "pipeline is made outside of"),
    ("producer in the tile loop", "the producer handle of the pipeline made at .* is taken in a run-time loop the "
                                  "pipeline is made outside of"),
    ("second consumer", "a second consumer handle of the pipeline made at .* \\(the first is taken at "),
    ("second producer", "a second producer handle of the pipeline made at .* \\(the first is taken at "),
    ("producer entered a tile", "the producer handle's `with` is entered in a run-time loop the handle is taken "
                                "outside of"),
    ("producer entered twice", "the producer handle's `with` is entered again \\(first at "),
    ("producer entered after a branch", "the producer handle's `with` is entered again \\(first at .*, in a run-time "
                                        "`if` branch that goes on to this line\\)"),
])
def test_a_second_handle_of_a_role_is_refused_at_its_line(hopper_interpreter, mode, message):
    """Before, each deadlocked in the interpreter (a hang on a GPU) or read a stage out of turn."""
    A, B, maps = operands(128, 64, 192)
    out = np.full((128, 64), np.nan, np.float32)
    with pytest.raises(skc.CompileError, match=message) as error:
        gemm[1, 256](*maps, out, 128, 64, 192, mode)
    assert str(error.value).startswith(f"{__file__}:{marked_line(mode)}:")
    assert "once" in error.value.hint
    if mode in FIRST:   # (the first handle's line too, so the user sees both)
        assert f"first {'is taken ' if 'second' in mode else ''}at {__file__}:{marked_line(mode) - FIRST[mode]}:" in \
            str(error.value)


# how many lines above the second handle the first is taken
FIRST = {"second consumer": 3, "second producer": 4, "producer entered twice": 3, "producer entered after a branch": 3}


@skc.func
def warpgroup(pipe, mma, tiles, k_tiles, epilogue):
    """One consumer warpgroup's own handle and tile loop (a user's helper, called once a warpgroup)."""
    acc = mma.zeros()
    with pipe.consumer(mma) as consumer:
        consume(consumer, mma, acc, tiles, k_tiles, epilogue)


@skc.func
def first_warpgroup(pipe, w, tiles, k_tiles, epilogue, then_second: skc.constexpr):
    """The first warpgroup's own handle, in a branch that returns from this helper (not from the kernel): the second
    one's, taken here after the branch, is apart from it; taken by the caller after the call, it runs after it."""
    if w == 0:
        mma = Wgmma(T, T, skc.bf16, warpgroup=0)
        with pipe.consumer(mma) as consumer:
            consume(consumer, mma, mma.zeros(), tiles, k_tiles, epilogue)
        return
    if then_second:
        warpgroup(pipe, Wgmma(T, T, skc.bf16, warpgroup=1), tiles, k_tiles, epilogue)


@skc.kernel
def two_warpgroups(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32,
                   mode: skc.constexpr):
    """Two consumer warpgroups, each taking its own consumer handle (as a review of the check found refused): under
    `if w == 0` and `if w == 1`, under one run-time `if` an unrolled iteration, or the first one in a branch that
    returns."""
    payload = TilePayload(a=OperandLayout(2 * T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=2) as pipe:
        roles = WarpRoles(2)
        k_tiles = skc.cdiv(K, T)
        tiles = TileScheduler(M, N, 2 * T, T)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    produce(producer, load, tiles, k_tiles)
        else:
            w = roles.consumer_index()
            epilogue = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))
            if mode == "separate ifs":
                if w == 0:
                    warpgroup(pipe, Wgmma(T, T, skc.bf16, warpgroup=0), tiles, k_tiles, epilogue)
                if w == 1:
                    warpgroup(pipe, Wgmma(T, T, skc.bf16, warpgroup=1), tiles, k_tiles, epilogue)
            elif mode == "static_range":
                for i in skc.static_range(2):
                    if w == i:
                        warpgroup(pipe, Wgmma(T, T, skc.bf16, warpgroup=i), tiles, k_tiles, epilogue)
            elif mode == "early return":
                if w == 0:
                    warpgroup(pipe, Wgmma(T, T, skc.bf16, warpgroup=0), tiles, k_tiles, epilogue)
                    return
                warpgroup(pipe, Wgmma(T, T, skc.bf16, warpgroup=1), tiles, k_tiles, epilogue)
            elif mode == "a helper's early return":
                first_warpgroup(pipe, w, tiles, k_tiles, epilogue, True)
            elif mode == "after a helper's early return":
                first_warpgroup(pipe, w, tiles, k_tiles, epilogue, False)
                mma = Wgmma(T, T, skc.bf16, warpgroup=1)
                with pipe.consumer(mma) as consumer:   # HERE after a helper's early return
                    consume(consumer, mma, mma.zeros(), tiles, k_tiles, epilogue)
            elif mode == "first falls through":
                if w == 0:
                    first = Wgmma(T, T, skc.bf16, warpgroup=0)
                    with pipe.consumer(first) as consumer:
                        consume(consumer, first, first.zeros(), tiles, k_tiles, epilogue)
                mma = Wgmma(T, T, skc.bf16, warpgroup=1)
                with pipe.consumer(mma) as consumer:   # HERE first falls through
                    consume(consumer, mma, mma.zeros(), tiles, k_tiles, epilogue)


def two_warpgroups_operands():
    rng = np.random.default_rng(1)
    A, B = (rng.integers(-2, 3, shape).astype(np.float32) for shape in ((256, 128), (64, 128)))
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(2 * T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    return A, B, maps


@pytest.mark.parametrize("mode", ["separate ifs", "static_range", "early return", "a helper's early return"])
def test_each_warpgroups_own_consumer_handle_compiles_and_runs(hopper_interpreter, mode):
    """A second consumer handle is refused only where it runs with the first: after it in its branches, or after
    the branch that holds it falls through. Taken where the first's path returned (from the kernel, or from the
    helper both are taken in), or in another branch, it is the other warpgroup's own."""
    A, B, maps = two_warpgroups_operands()
    out = np.full((256, 64), np.nan, np.float32)
    two_warpgroups[1, 384](*maps, out, 256, 64, 128, mode)
    assert np.array_equal(out, A @ B.T)


@pytest.mark.parametrize("mode, first", [("first falls through", 3), ("after a helper's early return", None)])
def test_a_second_handle_after_the_firsts_branch_falls_through_is_refused(hopper_interpreter, mode, first):
    """The first consumer handle in `if w == 0:` (in the kernel, or in a helper whose early return lands right after
    its call), the second after that branch: warpgroup 0 took both, and the interpreter reported a deadlock (on a
    GPU, a hang)."""
    A, B, maps = two_warpgroups_operands()
    out = np.full((256, 64), np.nan, np.float32)
    with pytest.raises(skc.CompileError, match="a second consumer handle of the pipeline made at .* \\(the first "
                                               "is taken at .*, in a run-time `if` branch that goes on to this line"
                                               "\\)") as error:
        two_warpgroups[1, 384](*maps, out, 256, 64, 128, mode)
    lines, start = inspect.getsourcelines(two_warpgroups.fn)
    here = start + next(i for i, line in enumerate(lines) if line.rstrip().endswith(f"# HERE {mode}"))
    assert str(error.value).startswith(f"{__file__}:{here}:")
    if first is not None:
        assert f"the first is taken at {__file__}:{here - first}:" in str(error.value)
    assert "end its branch with `return`" in error.value.hint
