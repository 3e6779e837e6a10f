"""Blocks that let misuse through (a helper's search, forty-first session): a handle acquiring a stage inside
another `with` of its own (the inner acquire waited for the stage the outer one held: a deadlock), one lease
entered by two `with`s (its stage released twice: a deadlock), a handle used after its own `with` (a deadlock), a
tensor map of another element size given to a loader or an epilogue (wrong answers), a Wgmma whose rows lie past the
A tile (it read B as A). Each is now a compile error at the user's line; the correct composition still runs exactly
in the interpreter."""
import numpy as np
import pytest

import skc
from split_k_kernels import split_k
from skc import ir
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, OperandLayout,
                        TilePayload, TileScheduler, TmaLoader, TmaStoreEpilogue, VectorLoader, WarpRoles, Wgmma)
from skc.blocks.epilogue import StreamKFixup

T = 64
PART_K = {"k_past": (48, 32), "k_partial": (8, 16), "k_nothing": (0, 8), "k_halves": (16, 32)}   # (k0, k) of a stage


@skc.kernel
def composed(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32,
             mode: skc.constexpr):
    """The composition, with the misuse `mode` names, or a run-time flow through the pipeline that must still
    compile (a reviewer's finding: run-time returns, handles entered in two branches, runs of stages)."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 3, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        kt = skc.cdiv(K, T)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    if mode == "early_return_producer":
                        if K == 0:
                            return
                    if mode.startswith("producer_run"):
                        count = int(mode[-1])
                        for k in range(kt // count):
                            with producer.acquire(count) as run:
                                for i in skc.static_range(count):
                                    load(run.stage(i), k * count + i, a=0, b=0)
                    else:
                        for k in range(kt):
                            with producer.acquire() as stage:
                                load(stage, k, a=0, b=0)
                if mode == "after":
                    with producer.acquire() as stage:   # HERE after
                        load(stage, 0, a=0, b=0)
        else:
            mma = Wgmma(T, T, skc.f8e4m3 if mode == "fp8_op" else skc.bf16,   # HERE fp8_op
                        warpgroup=1 if mode == "rows" else 0)   # HERE rows
            acc = mma.zeros()
            epi = DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))
            if mode == "two_branches":
                consumer = pipe.consumer(mma)
                if M > 1000:
                    with consumer:
                        for k in range(kt):
                            with consumer.acquire() as s:
                                mma(acc, s.a, s.b)
                else:
                    with consumer:
                        for k in range(kt):
                            with consumer.acquire() as s:
                                mma(acc, s.a, s.b)
            else:
                with pipe.consumer(mma) as consumer:
                    if mode == "early_return":
                        if M == 0:
                            return
                    if mode == "run2":
                        for k in range(kt // 2):
                            with consumer.acquire(2) as run:
                                for i in skc.static_range(2):
                                    st = run.stage(i)
                                    mma(acc, st.a, st.b)
                    elif mode == "static":
                        for k in skc.static_range(4):
                            with consumer.acquire() as s:
                                mma(acc, s.a, s.b)
                    elif mode == "branch_acquire":
                        for k in range(kt):
                            if k % 2 == 0:
                                with consumer.acquire() as s:
                                    mma(acc, s.a, s.b)
                            else:
                                with consumer.acquire() as s:
                                    mma(acc, s.a, s.b)
                    else:
                        for k in range(kt):
                            if mode == "nested":
                                with consumer.acquire() as s1:
                                    with consumer.acquire() as s2:   # HERE nested
                                        mma(acc, s2.a, s2.b)
                            elif mode == "twice":
                                lease = consumer.acquire()
                                with lease as s:
                                    mma(acc, s.a, s.b)
                                with lease as s:   # HERE twice
                                    pass
                            else:
                                with consumer.acquire() as s:
                                    if mode == "return_in_lease" and k == 100:
                                        return
                                    mma(acc, s.a, s.b, k0=PART_K.get(mode, (0, 0))[0], k=PART_K.get(mode, (0, 0))[1])
            epi(acc, 0, 0)


def operands(M=64, N=64, K=256, a_dtype=skc.bf16):
    rng = np.random.default_rng(0)
    A = rng.integers(-2, 3, (M, K)).astype(np.float32)
    B = rng.integers(-2, 3, (N, K)).astype(np.float32)
    out = skc.to_device(np.full((M, N), np.nan, np.float32))
    maps = (skc.TensorMap(skc.to_device(A, dtype=a_dtype), box=(64, 64 if a_dtype is skc.bf16 else 32)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(64, 64)))
    return A, B, out, maps


@pytest.mark.parametrize("misuse, message", [("nested", "already holds a stage"), ("twice", "entered by a `with`"),
                                             ("after", "after its `with"), ("rows", "rows 64 to 127"),
                                             # bf16 tiles multiplied as fp8 (half of each row's K, its bytes read
                                             # as e4m3: wrong answers, silently)
                                             ("fp8_op", "A tile holds 2-byte elements; this TileOp multiplies "
                                                        "f8e4m3"),
                                             # part of a stage's k past its end (it read the next stage), in part
                                             # of an instruction (floored: other columns), or none (no MMA at all)
                                             ("k_past", "k=32 of the stage's k from k0=48"),
                                             ("k_partial", "k=16 of the stage's k from k0=8"),
                                             ("k_nothing", "whole instructions of 16, inside the stage's 64")])
def test_misuse_is_a_compile_error_at_its_line(misuse, message):
    _, _, out, maps = operands()
    with pytest.raises(skc.CompileError, match=message) as info:
        composed[1, 256](*maps, out, 64, 64, 256, misuse)
    assert "test_block_contracts_more.py:" in str(info.value).splitlines()[0]


def test_a_wgmma_over_part_of_the_stages_k():
    A, B, out, maps = operands()
    composed[1, 256](*maps, out, 64, 64, 256, "k_halves")
    columns = np.concatenate([np.arange(k * T + 16, k * T + 48) for k in range(256 // T)])
    np.testing.assert_array_equal(out.numpy(), A[:, columns] @ B[:, columns].T)


def test_a_loader_map_of_another_element_size():
    _, _, out, maps = operands(a_dtype=skc.f32)
    with pytest.raises(skc.CompileError, match="4-byte elements"):
        composed[1, 256](*maps, out, 64, 64, 256, "")


@pytest.mark.parametrize("box", [(32, 64), (128, 64)])
def test_a_loader_map_of_another_box(box):
    """A map whose box is not the layout's brought other bytes than the stage expects: too few, a deadlock the
    interpreter named at run time; too many, a copy past the tile into the next one (or past shared memory)."""
    A, B, out, (a, _) = operands()
    b = skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=box)
    with pytest.raises(skc.CompileError, match=f"tile 'b' copies boxes of {box[0]}x64; the tile's layout loads boxes "
                                               "of 64x64") as info:
        composed[1, 256](a, b, out, 64, 64, 256, "")
    assert "test_block_contracts_more.py:" in str(info.value).splitlines()[0]
    assert "box=(64, 64)" in str(info.value)


@skc.kernel
def stored(a: skc.TensorMap, b: skc.TensorMap, o: skc.TensorMap, M: skc.i32, N: skc.i32, K: skc.i32):
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 3, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for k in range(skc.cdiv(K, T)):
                        with producer.acquire() as stage:
                            load(stage, k, a=0, b=0)
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            with TmaStoreEpilogue(o, skc.f32, EpilogueArgs(EpilogueSpec(), M, N), 0, 1) as epilogue:
                with pipe.consumer(mma) as consumer:
                    for k in range(skc.cdiv(K, T)):
                        with consumer.acquire() as s:
                            mma(acc, s.a, s.b)
                    epilogue(acc, 0, 0)


@skc.kernel
def stored_by_two(a: skc.TensorMap, b: skc.TensorMap, o: skc.TensorMap, K: skc.i32, warpgroup: skc.constexpr,
                  warpgroups: skc.constexpr):
    """Two consumer warpgroups, each storing its 64 rows of a 128 x 64 tile through a TmaStoreEpilogue made for
    `warpgroups` (None: left out) with index `warpgroup` (None: the run-time consumer index)."""
    payload = TilePayload(a=OperandLayout(2 * T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=2) as pipe:
        roles = WarpRoles(2)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for k in range(skc.cdiv(K, T)):
                        with producer.acquire() as stage:
                            load(stage, k, a=0, b=0)
        else:
            mma = Wgmma(T, T, skc.bf16, warpgroup=roles.consumer_index())
            acc = mma.zeros()
            index = roles.consumer_index() if warpgroup is None else warpgroup
            args = EpilogueArgs(EpilogueSpec(), 2 * T, T)
            epilogue = (TmaStoreEpilogue(o, skc.f32, args, index) if warpgroups is None else
                        TmaStoreEpilogue(o, skc.f32, args, index, warpgroups))   # HERE made
            with epilogue, pipe.consumer(mma) as consumer:
                for k in range(skc.cdiv(K, T)):
                    with consumer.acquire() as s:
                        mma(acc, s.a, s.b)
                epilogue(acc, 0, 0)   # HERE used


@pytest.mark.parametrize("warpgroup, warpgroups, where, message", [
    # warpgroup 1 staged past the epilogue's shared memory (the interpreter's out-of-bounds store, or another block's
    # memory) and waited at no barrier
    (None, 1, "made", r"TmaStoreEpilogue is made for 1 warpgroup\(s\) and given a run-time warpgroup index, in a "
                      r"kernel of 2 consumer warpgroups \(WarpRoles\(2\)\)"),
    # both warpgroups staged in warpgroup 0's buffers, any 128 of their threads meeting its barrier (the interpreter
    # ran it right; a race on the GPU)
    (0, 2, "used", "TmaStoreEpilogue of warpgroup 0 is used by every consumer warpgroup of the kernel's 2"),
    (2, 2, "made", r"TmaStoreEpilogue is made for 2 warpgroup\(s\), 0 to 1; warpgroup 2 is none of them"),
])
def test_an_epilogue_of_fewer_warpgroups_than_use_it(warpgroup, warpgroups, where, message):
    """TmaStoreEpilogue(out, dtype, args, roles.consumer_index()) in a kernel of two consumers: its warpgroups defaulted
    to 1, so consumer 1 staged its chunks past the shared memory the epilogue allocated and synchronized at no barrier.
    warpgroups now defaults to the kernel's consumer warpgroups (WarpRoles), and fewer for a run-time index, an index
    past them, or one warpgroup's part used by every consumer are compile errors."""
    M, N, K = 2 * T, T, 2 * T
    rng = np.random.default_rng(0)
    A, B = rng.integers(-2, 3, (M, K)).astype(np.float32), rng.integers(-2, 3, (N, K)).astype(np.float32)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(2 * T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    out = skc.to_device(np.full((M, N), np.nan, np.float32))
    with pytest.raises(skc.CompileError, match=message) as info:
        stored_by_two[1, 384](*maps, skc.TensorMap(out, box=(T, 32)), K, warpgroup, warpgroups)
    assert f"# HERE {where}" in str(info.value)
    for warpgroups in (None, 2):   # left out: the kernel's two consumers
        stored_by_two[1, 384](*maps, skc.TensorMap(out, box=(T, 32)), K, None, warpgroups)
        np.testing.assert_array_equal(out.numpy(), A @ B.T)


def test_an_epilogue_map_of_another_element_size():
    _, _, _, maps = operands()
    out = skc.TensorMap(skc.to_device(np.zeros((64, 64), np.float32), dtype=skc.bf16), box=(64, 64))
    with pytest.raises(skc.CompileError, match="this epilogue stores"):
        stored[1, 256](*maps, out, 64, 64, 256)


@pytest.mark.parametrize("mode", ["", "early_return", "early_return_producer", "two_branches", "return_in_lease",
                                  "run2", "static", "branch_acquire", "producer_run2"])
def test_run_time_flow_through_the_pipeline_still_compiles(mode):
    A, B, out, maps = operands()
    composed[1, 256](*maps, out, 64, 64, 256, mode)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


@pytest.mark.parametrize("box, swizzle", [((32, 32), 128), ((64, 16), 64), ((64, 32), 0), ((64, 16), 128)])
def test_an_epilogue_map_of_another_box_or_swizzle(box, swizzle):
    """The epilogue stages 64 x 32 f32 chunks in the 128-byte swizzle: a map copying another box wrote part of the
    tile, or other rows, and another swizzle scrambled it."""
    _, _, _, maps = operands()
    out = skc.TensorMap(skc.to_device(np.zeros((64, 64), np.float32)), box=box, swizzle=swizzle)
    with pytest.raises(skc.CompileError, match="this epilogue stores chunks of 64x32") as info:
        stored[1, 256](*maps, out, 64, 64, 256)
    assert "test_block_contracts_more.py:" in str(info.value).splitlines()[0]


def test_an_epilogue_map_of_its_chunk_stores_the_tile():
    A, B, _, maps = operands()
    out = skc.to_device(np.full((64, 64), np.nan, np.float32))
    stored[1, 256](*maps, skc.TensorMap(out, box=(64, 32)), 64, 64, 256)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


def test_a_producer_run_longer_than_a_readers_lag_leaves_is_refused():
    """Three stages, a Wgmma reader keeping one in flight: a producer's run of three waited for the stage the
    consumer held until the run filled the next one (the interpreter named the deadlock at run time)."""
    _, _, out, maps = operands()
    with pytest.raises(skc.CompileError, match="runs of 3 stages and a consumer's reader keeps 1 in flight") as info:
        composed[1, 256](*maps, out, 64, 64, 384, "producer_run3")
    assert "test_block_contracts_more.py:" in str(info.value).splitlines()[0]


@skc.kernel
def vector_loaded(a: skc.Ptr[skc.bf16], b: skc.Ptr[skc.bf16], out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32,
                  K: skc.i32, tile_n: skc.constexpr, threads: skc.constexpr, rest: skc.constexpr = True):
    """A VectorLoader of `threads` threads (0: the warpgroup) filling a 64 x 64 A tile and a tile_n x 64 B tile
    (`rest`: the producer's other threads rest, as is_issuing() says; else they run the loading loop too)."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(tile_n, T))
    load = VectorLoader(threads=threads or None, a=(a, M, K), b=(b, N, K))
    with InputTilePipeline(payload, 2, load, consumers=1) as pipe:
        roles = WarpRoles(1)
        if roles.is_producer():
            if load.is_issuing() if rest else True:
                with pipe.producer() as producer:
                    for k in range(skc.cdiv(K, T)):
                        with producer.acquire() as stage:
                            load(stage, k, a=0, b=0)
        else:
            mma = Wgmma(tile_n, T, skc.bf16)
            acc = mma.zeros()
            with pipe.consumer(mma) as consumer:
                for k in range(skc.cdiv(K, T)):
                    with consumer.acquire() as s:
                        mma(acc, s.a, s.b)
            DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))(acc, 0, 0)


def vector_operands(N):
    rng = np.random.default_rng(0)
    A, B = (rng.integers(-2, 3, shape).astype(np.float32) for shape in ((T, T), (N, T)))
    out = skc.to_device(np.full((T, N), np.nan, np.float32))
    return A, B, out, skc.to_device(A, dtype=skc.bf16), skc.to_device(B, dtype=skc.bf16)


@pytest.mark.parametrize("threads", [64, 32])
def test_a_vector_loader_of_fewer_threads_than_the_warpgroup(threads):
    """VectorLoader(threads=64) in a producer warpgroup: is_issuing() named every thread, so all 128 copied and
    arrived on a barrier expecting 64 (two phases a stage: a deadlock in the interpreter, a stage read before it
    landed on a GPU)."""
    A, B, out, a, b = vector_operands(T)
    vector_loaded[1, 256](a, b, out, T, T, T, T, threads)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


def test_a_vector_loader_called_by_every_producer_thread():
    """VectorLoader(threads=64) whose loading loop all 128 producer threads ran (no `if load.is_issuing()`): the
    other 64 copied and arrived too, two phases a stage (a deadlock in the interpreter, stages read before they
    landed on a GPU). The loader copies and arrives with its own threads only, as TmaLoader issues with its one."""
    rng = np.random.default_rng(0)
    A, B = (rng.integers(-2, 3, (T, 4 * T)).astype(np.float32) for _ in range(2))
    out = skc.to_device(np.full((T, T), np.nan, np.float32))
    vector_loaded[1, 256](skc.to_device(A, dtype=skc.bf16), skc.to_device(B, dtype=skc.bf16), out, T, T, 4 * T, T, 64,
                          False)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


def test_a_vector_loader_whose_loads_do_not_share_out_evenly():
    """A 24 x 64 B tile is 192 loads of 8: 128 threads made one each and left rows 16-23 uncopied (wrong answers,
    silently); 64 threads share them out."""
    A, B, out, a, b = vector_operands(24)
    with pytest.raises(skc.CompileError, match=r"tile 'b' \(24 x 64\) takes 192 loads, no multiple of 128") as info:
        vector_loaded[1, 256](a, b, out, T, 24, T, 24, 0)
    assert "test_block_contracts_more.py:" in str(info.value).splitlines()[0]
    assert "threads= dividing 192" in str(info.value)
    vector_loaded[1, 256](a, b, out, T, 24, T, 24, 64)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


def test_a_vector_loader_of_more_threads_than_the_warpgroup():
    _, _, out, a, b = vector_operands(T)
    with pytest.raises(skc.CompileError, match="threads of the producer warpgroup: 1 to 128, not 256"):
        vector_loaded[1, 256](a, b, out, T, T, T, T, 256)


@skc.kernel
def loader_untold(a: skc.Ptr[skc.bf16], b: skc.Ptr[skc.bf16], am: skc.TensorMap, bm: skc.TensorMap,
                  out: skc.Ptr[skc.f32], K: skc.i32, told: skc.constexpr):
    """vector_loaded with the pipeline told of another loader than the one that fills it (`told`: "none", "tma",
    or "vector": the right one)."""
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = VectorLoader(a=(a, T, K), b=(b, T, K))
    other = TmaLoader(payload, a=am, b=bm)
    with InputTilePipeline(payload, 2, {"none": None, "tma": other, "vector": load}[told], consumers=1) as pipe:
        roles = WarpRoles(1)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for k in range(skc.cdiv(K, T)):
                        with producer.acquire() as stage:
                            load(stage, k, a=0, b=0)   # HERE
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            with pipe.consumer(mma) as consumer:
                for k in range(skc.cdiv(K, T)):
                    with consumer.acquire() as s:
                        mma(acc, s.a, s.b)
            DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), T, T))(acc, 0, 0)


@pytest.mark.parametrize("told", ["none", "tma"])
def test_a_pipeline_not_given_its_vector_loader(told):
    """InputTilePipeline(payload, stages) with no producer expects one arrival a stage, as a TmaLoader makes; a
    VectorLoader's 128 threads each arrived, completing a phase apiece: stages read before their copies landed on a
    GPU, a deadlock report of '128 phases completed' in the interpreter. The loader now refuses a stage whose
    pipeline counts other arrivals, at the user's call."""
    A, B, out, a, b = vector_operands(T)
    maps = skc.TensorMap(a, box=(T, T)), skc.TensorMap(b, box=(T, T))
    with pytest.raises(skc.CompileError, match=r"VectorLoader completes a stage with 128 arrival\(s\); this stage's "
                                               r"pipeline waits for 1") as info:
        loader_untold[1, 256](a, b, *maps, out, T, told)
    assert "test_block_contracts_more.py:" in str(info.value).splitlines()[0] and "# HERE" in str(info.value)
    assert "InputTilePipeline(payload, stages, load" in str(info.value)
    loader_untold[1, 256](a, b, *maps, out, T, "vector")
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


@skc.kernel
def multicast(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, K: skc.i32,
              pipe_cluster: skc.constexpr, N: skc.i32 = T, clusters: skc.constexpr = (2, 2, 1)):
    """Clusters of two blocks along M sharing B (each loading one row share of it into both), the pipeline made for
    clusters of `pipe_cluster`; `clusters` = (the kernel's cluster, the scheduler's cluster_m, its cluster_n)."""
    skc.hopper.kernel_attributes(cluster=(clusters[0], 1, 1))
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T, row_shares=2))
    load = TmaLoader(payload, a=a, b=b, multicast=("b", 2))   # HERE loader
    with InputTilePipeline(payload, 2, load, consumers=1, cluster=pipe_cluster) as pipe:
        roles = WarpRoles(1)
        tiles = TileScheduler(M, N, T, T, cluster_m=clusters[1], cluster_n=clusters[2])   # HERE scheduler
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(skc.cdiv(K, T)):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)   # HERE
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            with pipe.consumer(mma) as consumer:
                for tile in tiles:
                    acc.zero()
                    for k in range(skc.cdiv(K, T)):
                        with consumer.acquire() as s:
                            mma(acc, s.a, s.b)
                    DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))(acc, tile.row0, tile.col0)


def test_a_multicasting_loader_in_a_pipeline_made_for_one_block():
    """A TmaLoader multicasting B to a cluster of two, in a pipeline made without cluster=2: a stage was free once
    its own block's consumer released it, so the peer's producer could copy into it while this block's wgmma still
    read it (and the blocks could exit while a peer still wrote to them). The interpreter, which does not check
    another block's copies, ran it right. The loader now refuses the stage at the user's call."""
    M, K = 128, 192
    rng = np.random.default_rng(0)
    A, B = (rng.integers(-2, 3, shape).astype(np.float32) for shape in ((M, K), (T, K)))
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T // 2, T)))
    out = skc.to_device(np.full((M, T), np.nan, np.float32))
    with pytest.raises(skc.CompileError, match="multicasts tile 'b' to the 2 blocks of a cluster; the stage's "
                                               r"pipeline frees a stage once the consumers of 1 block\(s\)") as info:
        multicast[2, 256](*maps, out, M, K, 1)
    assert "test_block_contracts_more.py:" in str(info.value).splitlines()[0] and "# HERE" in str(info.value)
    assert "InputTilePipeline(..., cluster=2)" in str(info.value)
    multicast[2, 256](*maps, out, M, K, 2)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


def multicast_operands(M, N, K):
    rng = np.random.default_rng(0)
    A, B = (rng.integers(-2, 3, shape).astype(np.float32) for shape in ((M, K), (N, K)))
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T // 2, T)))
    return A, B, maps, skc.to_device(np.full((M, N), np.nan, np.float32))


@pytest.mark.parametrize("cluster_m, cluster_n", [(1, 1), (1, 2)])
def test_a_multicasting_loader_beside_a_scheduler_of_other_clusters(cluster_m, cluster_n):
    """A TmaLoader multicasting B to clusters of two, beside a TileScheduler made without cluster_m=2 (or along N):
    the blocks of a cluster were handed tiles of different columns, each loaded its share of its own B tile into
    both, and every block multiplied pieces of two B tiles (wrong answers, silently, in the interpreter too). The
    scheduler records which of its coordinates a cluster's blocks share; the loader refuses a multicast tile's origin
    that is not shared by its cluster, at the user's call."""
    M, N, K = 192, 128, 128   # three rows of tiles: the raster hands blocks 0 and 1 tiles of two columns
    A, B, maps, out = multicast_operands(M, N, K)
    with pytest.raises(skc.CompileError, match=f"multicasts tile 'b' to the 2 blocks of a cluster, which must all load "
                                               f"it from one origin; its origin is tile.col0 of TileScheduler.*"
                                               f"cluster_m={cluster_m}, cluster_n={cluster_n}.*not the same") as info:
        multicast[2, 256](*maps, out, M, K, 2, N, (2, cluster_m, cluster_n))
    assert "test_block_contracts_more.py:" in str(info.value).splitlines()[0] and "# HERE\n" in str(info.value) + "\n"
    assert "TileScheduler(..., cluster_m=2) when the shared tile's origin is tile.col0" in str(info.value)
    multicast[2, 256](*maps, out, M, K, 2, N, (2, 2, 1))
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


@pytest.mark.parametrize("clusters, pipe_cluster, block", [
    ((2, 4, 1), 2, "scheduler"),   # a scheduler of clusters of 4 in clusters of 2: two of its tiles never computed
    ((1, 2, 1), 2, "loader"),      # no clusters: every block's rank 0, multicast to a block that is not there
])
def test_blocks_of_clusters_the_kernel_is_not_launched_in(clusters, pipe_cluster, block):
    """TileScheduler(cluster_m=4) in a kernel of clusters of 2 (or cluster_m=2, a multicasting loader, a pipeline of
    cluster=2 in a kernel of no clusters) took its rank from the kernel's clusters: blocks computed the same tile
    twice and others none (wrong answers, silently). Each block that works across a cluster now checks the kernel's
    clusters where it is made, the first one made naming itself."""
    M, N, K = 256, 64, 128
    _, _, maps, out = multicast_operands(M, N, K)
    with pytest.raises(skc.CompileError, match=r"works across clusters of \d blocks along x; the kernel is launched "
                                               rf"in clusters of {clusters[0]}x1x1") as info:
        multicast[2, 256](*maps, out, M, K, pipe_cluster, N, clusters)
    assert f"# HERE {block}" in str(info.value)
    assert "skc.hopper.kernel_attributes(cluster=(" in str(info.value)



@skc.kernel
def clusters_said_late(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, K: skc.i32,
                       first: skc.constexpr, then: skc.constexpr, shared: skc.constexpr):
    """The blocks of clusters of two made before the kernel says its clusters (`then`), and after it said `first`
    (0: nothing); `shared`: the loader multicasts B (else each block loads its own tiles, the scheduler alone working
    across the cluster)."""
    if first:
        skc.hopper.kernel_attributes(cluster=(first, 1, 1))
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T, row_shares=2 if shared else 1))
    load = TmaLoader(payload, a=a, b=b, multicast=("b", 2) if shared else None)   # HERE loader
    with InputTilePipeline(payload, 2, load, consumers=1, cluster=2 if shared else 1) as pipe:
        roles = WarpRoles(1)
        tiles = TileScheduler(M, T, T, T, cluster_m=2)   # HERE scheduler
        skc.hopper.kernel_attributes(cluster=(then, 1, 1))
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for tile in tiles:
                        for k in range(skc.cdiv(K, T)):
                            with producer.acquire() as stage:
                                load(stage, k, a=tile.row0, b=tile.col0)
        else:
            mma = Wgmma(T, T, skc.bf16)
            acc = mma.zeros()
            with pipe.consumer(mma) as consumer:
                for tile in tiles:
                    acc.zero()
                    for k in range(skc.cdiv(K, T)):
                        with consumer.acquire() as s:
                            mma(acc, s.a, s.b)
                    DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, T))(acc, tile.row0, tile.col0)


def test_blocks_made_before_the_kernel_says_its_clusters():
    """A multicasting loader, a pipeline and a scheduler of clusters of two, made before the kernel says its clusters
    of two: refused ('the kernel is launched in clusters of 1x1x1'), though it is not. The blocks' clusters are checked
    again once the kernel's are final, so the order does not matter; the composition runs exactly."""
    M, K = 256, 128
    A, B, maps, out = multicast_operands(M, T, K)
    clusters_said_late[2, 256](*maps, out, M, K, 0, 2, True)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)


@pytest.mark.parametrize("said", ["attributes", "launch"])
def test_a_kernel_that_says_other_clusters_after_making_its_blocks(said):
    """A scheduler of clusters of two, made in a kernel of clusters of two that says clusters of four after it (or is
    launched in clusters of four by @skc.kernel(cluster=...) and says so after it: a body saying other clusters than
    the launch's is refused where it says them, tests/frontend/test_kernel_attributes_cluster.py): the check where the
    scheduler was made passed, the kernel ran in clusters of four, ranks 2 and 3 took tiles past the matrix and half
    the rows were never written (wrong answers, silently). Each block's clusters are checked again against the ones the
    kernel is launched in, at the block's line."""
    M, K = 256, 128
    A, B, _, out = multicast_operands(M, T, K)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    kernel, first = ((clusters_said_late, 2) if said == "attributes"
                     else (skc.kernel(cluster=(4, 1, 1))(clusters_said_late.fn), 0))
    then = 4
    with pytest.raises(skc.CompileError, match=r"TileScheduler\(..., cluster_m=2, cluster_n=1\) works across clusters "
                                               r"of 2 blocks along x; the kernel is launched in clusters of 4x1x1") as info:
        kernel[4, 256](*maps, out, M, K, first, then, False)
    assert "test_block_contracts_more.py:" in str(info.value).splitlines()[0] and "# HERE scheduler" in str(info.value)
    assert "skc.hopper.kernel_attributes(cluster=(2, 1, 1))" in str(info.value)


class RampTile:
    """An accumulator of the user's own (no MMA), with the documented members only: a 64 x 32 f32 tile, thread t of
    the warpgroup holding row t // 2, columns 16 (t % 2) .. + 15, the value row * 100 + column."""

    shape, corner = (64, 32), (0, 0)

    def __init__(self):
        self.thread = skc.thread_index() % 128

    def runs(self, first_column=0, columns=None):
        row, start = self.thread // 2, 16 * (self.thread % 2)
        return [([skc.f32(row * 100 + start + j), skc.f32(row * 100 + start + j + 1)], row, start + j)
                for j in range(0, 16, 2)]

    def values(self):
        return [(value, row, column + j) for values, row, column in self.runs() for j, value in enumerate(values)]

    def wait(self):
        pass


@skc.kernel(block=128)
def ramp(o: skc.TensorMap):
    with TmaStoreEpilogue(o, skc.f32, None) as epilogue:
        epilogue(RampTile(), 0, 0)


def test_an_epilogue_stores_an_accumulator_of_the_users_own():
    """TmaStoreEpilogue read acc.n, which the accumulator's interface (docs/blocks.md) does not name: an accumulator
    with only shape, corner, runs, values and wait was a compile error inside the epilogue."""
    out = skc.to_device(np.full((64, 32), np.nan, np.float32))
    ramp[1, 128](skc.TensorMap(out, box=(64, 32)))
    np.testing.assert_array_equal(out.numpy(), np.arange(64)[:, None] * 100 + np.arange(32)[None, :])


@skc.kernel(block=128)
def fused_ramp(out: skc.Ptr[skc.f32], c: skc.Ptr[skc.f32], missing: skc.constexpr):
    """RampTile through DirectStoreEpilogue with out = 2 · C + the ramp, or with the operand `missing` None."""
    given = {name: None if name == missing else value for name, value in {"c": c, "beta": 2.0, "alpha": 1.0}.items()}
    args = EpilogueArgs(EpilogueSpec(alpha=missing == "alpha", beta=True), 64, 32, **given)   # HERE
    DirectStoreEpilogue(out, skc.f32, args)(RampTile(), 0, 0)


@pytest.mark.parametrize("missing, term", [("c", "beta"), ("alpha", "alpha")])
def test_epilogue_args_without_an_operand_their_spec_reads(missing, term):
    """EpilogueSpec(beta=True) with no c given (or alpha=True with alpha=None) failed where the fused part read it:
    'cannot use None with add', with nothing said of which operand was missing."""
    out, c = np.full((64, 32), np.nan, np.float32), np.ones((64, 32), np.float32)
    with pytest.raises(skc.CompileError, match=f"the epilogue's spec has {term}=True, which reads {missing}; these "
                                               "arguments give none") as info:
        fused_ramp[1, 128](out, c, missing)
    assert "# HERE" in str(info.value) and f"EpilogueArgs(..., {missing}=...)" in str(info.value)
    fused_ramp[1, 128](out, c, "")
    np.testing.assert_array_equal(out, 2 + np.arange(64)[:, None] * 100 + np.arange(32)[None, :])


@skc.kernel
def misconfigured(a: skc.TensorMap, b: skc.TensorMap, a_ptr: skc.Ptr[skc.bf16], which: skc.constexpr):
    payload = TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    if which == "stages":
        InputTilePipeline(payload, 2.0, load)   # HERE stages
    elif which == "consumers":
        InputTilePipeline(payload, 2, load, consumers=0)   # HERE consumers
    elif which == "cluster":
        InputTilePipeline(payload, 2, load, cluster=0)   # HERE cluster
    elif which == "unclustered":
        InputTilePipeline(payload, 2, load, cluster=2)   # HERE unclustered
    elif which == "tile":
        TileScheduler(T, T, 0, T)   # HERE tile
    elif which == "roles":
        WarpRoles(2, 40, 256)   # HERE roles
    elif which == "strips":
        StreamKFixup(a_ptr, a_ptr, 0, 2, tile_m=64)   # HERE strips
    elif which == "fixup_warpgroups":
        roles = WarpRoles(2)
        StreamKFixup(a_ptr, a_ptr, roles.consumer_index(), 1)   # HERE fixup_warpgroups
    elif which == "empty":
        TilePayload()   # HERE empty
    elif which == "layout":
        TilePayload(a=OperandLayout(T, T), b=T)   # HERE layout
    else:
        VectorLoader(width=3, a=(a_ptr, T, T))   # HERE width


@pytest.mark.parametrize("which, message", [
    ("stages", "a pipeline's stages takes a compile-time int, found 2.0"),   # (was: a shared array's shape ...)
    ("consumers", "a pipeline's consumers is a count of 1 or more, found 0"),   # (were taken: barriers of count 0)
    ("cluster", "a pipeline's cluster is a count of 1 or more, found 0"),
    # consumers arriving on the empty barriers of a peer block the kernel has not (a fault, or a hang)
    ("unclustered", r"InputTilePipeline\(..., cluster=2\) works across clusters of 2 blocks along x; the kernel is "
                    "launched in clusters of 1x1x1"),
    ("tile", "a tile's tile_m is a compile-time int of 1 or more, found 0"),   # (was: ZeroDivisionError)
    ("width", "VectorLoader loads vectors of 1, 2, 4, 8 or 16 elements"),   # (was: a load of 3 x bf16 moves 6 bytes)
    ("empty", "a payload holds at least one tile"),   # (was: IndexError: list index out of range, at allocate)
    ("layout", "payload tile 'b' is 64: a tile's layout has `bytes` and `check"),   # (was: 'int' object has no ...)
    # setmaxnreg counts past the registers a block of 384 threads holds: the configs refused them, WarpRoles took them
    # (the interpreter does not model registers: a hang on the GPU alone)
    ("roles", r"registers \(40 a producer thread, 256 a consumer thread\) exceed the 64512"),
    # two warpgroups' strips of a tile in one record and counter (they added each other's sums, silently)
    ("strips", r"a tile of 64 rows holds 1 strip\(s\) of 64 rows; its 2 warpgroups need one each"),
    # a record and counter of one warpgroup's, a run-time index of two (warpgroup 1's count read past them)
    ("fixup_warpgroups", r"StreamKFixup is made for 1 warpgroup\(s\) and given a run-time warpgroup index"),
])
def test_blocks_refuse_counts_they_cannot_use(which, message):
    """A pipeline of 2.0 stages, of 0 consumers or a cluster of 0 (empty barriers that complete at once), a tile 0
    rows tall, a vector loader of 3 elements a load, a payload of no tiles or of something not a layout: each failed
    later, inside the block or not at all, and is now refused where the block is made."""
    _, _, _, (a, b) = operands()
    with pytest.raises(skc.CompileError, match=message) as info:
        misconfigured.compile(a, b, skc.Ptr[skc.bf16], which, target="sm_90a",
                              block=384 if which in ("roles", "fixup_warpgroups") else 256)
    assert f"# HERE {which}" in str(info.value)


@pytest.mark.parametrize("tile_n", [None, T])
def test_a_split_k_epilogue_takes_its_tiles_width_from_the_accumulator(tile_n):
    """SplitKEpilogue's tile_n defaulted to 256, the GEMM's widest tile: a user's kernel of 64-wide tiles that left it
    out numbered the strips of a row of tiles as one (their counters and records shared), and half the output was
    never stored. The width is now the accumulator's, and a tile_n given must be it."""
    M, N, K = 64, 128, 256
    rng = np.random.default_rng(0)
    A, B = rng.integers(-2, 3, (M, K)).astype(np.float32), rng.integers(-2, 3, (N, K)).astype(np.float32)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(T, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    strips = (M // T) * (N // T)
    buffers = (np.zeros(strips * 2 * T * T, np.float32), np.zeros(strips, np.int32))
    out = np.full((M, N), np.nan, np.float32)
    split_k[4, 256](*maps, out, *buffers, M, N, K, 2, 2, tile_n)
    np.testing.assert_array_equal(out, A @ B.T)
    with pytest.raises(skc.CompileError, match="made for tiles 256 wide .tile_n.; the accumulator is 64 wide") as info:
        split_k[4, 256](*maps, out, *buffers, M, N, K, 2, 2, 256)
    assert "# HERE" in str(info.value)


def test_a_split_k_epilogue_given_a_tensor_map_for_out_says_so_where_it_is_made():
    """A tensor map for SplitKEpilogue's out (which it offsets and stores through) failed inside its epilogue: "this
    statement: 'TensorMapType' object has no attribute 'is_signed'"."""
    maps = [ir.TensorMapType(ir.bf16, (T, T), 128)] * 2
    with pytest.raises(skc.CompileError, match=r"SplitKEpilogue's out is a pointer to the output \(skc.Ptr\[...\]\), "
                                               r"found a tensor map \(tmap<f32, 64x64, swizzle=0>\)") as info:
        split_k.compile(*maps, ir.TensorMapType(ir.f32, (T, T), 0), skc.Ptr[skc.f32], skc.Ptr[skc.i32], skc.i32,
                        skc.i32, skc.i32, 2, 2, T, target="sm_90a", block=256)
    assert "SplitKEpilogue(out, workspace" in str(info.value).splitlines()[1]


@skc.kernel
def read_by_all(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], K: skc.i32, readers: skc.constexpr,
                consumers: skc.constexpr):
    """`consumers` consumer warpgroups, each multiplying its 64 rows by every stage, over a pipeline made for
    `readers` consumers."""
    payload = TilePayload(a=OperandLayout(consumers * T, T), b=OperandLayout(T, T))
    load = TmaLoader(payload, a=a, b=b)
    with InputTilePipeline(payload, 2, load, consumers=readers) as pipe:
        roles = WarpRoles(consumers)
        if roles.is_producer():
            if load.is_issuing():
                with pipe.producer() as producer:
                    for k in range(skc.cdiv(K, T)):
                        with producer.acquire() as stage:
                            load(stage, k, a=0, b=0)
        else:
            mma = Wgmma(T, T, skc.bf16, warpgroup=roles.consumer_index())
            acc = mma.zeros()
            with pipe.consumer(mma) as consumer:   # HERE
                for k in range(skc.cdiv(K, T)):
                    with consumer.acquire() as s:
                        mma(acc, s.a, s.b)
            DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), consumers * T, T))(acc, 0, 0)


@pytest.mark.parametrize("readers, consumers, message", [
    # two releases a stage on a barrier counting one: a deadlock in the interpreter (the barrier's phases ran ahead),
    # stages refilled under a consumer on a GPU
    (1, 2, "each of the kernel's 2 consumer warpgroups reads and releases every stage, and the pipeline waits for 1"),
    # releases that never come: a hang
    (2, 1, "the pipeline waits for 2 consumer warpgroups to release each stage; the kernel's WarpRoles has 1"),
    (3, 2, "the pipeline waits for 3 consumer warpgroups to release each stage; the kernel's WarpRoles has 2"),
])
def test_a_pipeline_of_other_consumers_than_read_it(readers, consumers, message):
    """InputTilePipeline(consumers=n) beside WarpRoles of another count whose every consumer reads every stage: the
    interpreter reported a deadlock at run time, a GPU hung or refilled stages still being read. Pingpong consumers,
    which take the stages in turn (consumer.skip), still make a pipeline of one (the GEMM's pingpong tests)."""
    M, K = consumers * T, 4 * T
    rng = np.random.default_rng(0)
    A, B = rng.integers(-2, 3, (M, K)).astype(np.float32), rng.integers(-2, 3, (T, K)).astype(np.float32)
    maps = (skc.TensorMap(skc.to_device(A, dtype=skc.bf16), box=(M, T)),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), box=(T, T)))
    out = skc.to_device(np.full((M, T), np.nan, np.float32))
    with pytest.raises(skc.CompileError, match=message) as info:
        read_by_all[1, 128 * (1 + consumers)](*maps, out, K, readers, consumers)
    assert "# HERE" in str(info.value) and f"consumers={consumers}" in str(info.value)
    read_by_all[1, 128 * (1 + consumers)](*maps, out, K, consumers, consumers)
    np.testing.assert_array_equal(out.numpy(), A @ B.T)
