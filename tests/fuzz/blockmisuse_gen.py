"""Misusing the blocks inside a kernel: working compositions (a small TMA GEMM as docs/blocks.md writes it, the
library's `wgmma_gemm` with a fused part of the user's as examples/gated_gemm.py, examples/rmsnorm.py's element-wise
reads of a run of stages, attention's Wgmma + OnlineSoftmax + WgmmaRegA over three pipelines, and the depthwise
stencil's blocks) with one place mutated: a wrong argument type (a float where a tile, an int where a pipeline, a
tensor map where a pointer, a tuple of the wrong length), a wrong shape (tiles that do not divide, a k the MMA does not
take, too many stages, a box TMA does not take), calls out of order (a stage past the run, a release before an
acquire, a consumer's call in the producer's role), wrong dtypes, missing keywords, run-time values where compile-time
ones are needed.

Each case is compiled for sm_90a (PTX, no GPU) and run in the interpreter on a small problem, and judged:
  refused                  an skc error at the mutated line of the user's file (or a line of the mutation), with a
                           hint (what to do);
  refused at a later use   the same at a later line of the user's file (where two values that disagree meet: a
                           payload and the TileOp that reads it);
  refused, no hint         an skc error at the mutated line without a hint;
  accepted                 it compiles and the interpreter's answer is right (the mutation was no misuse);
  other meaning            a wrong answer from a mutation that is valid code meaning something else (OTHER_MEANINGS);
  BAD unplaced / at skc's files / at another file / later use, no hint / python's words   an skc error not placed
                           at the user's line, or in Python's words ("'float' object has no attribute ...");
  BAD foreign X            a Python exception from inside skc (TypeError, AttributeError, ...), llvmlite's, ptxas's;
  BAD wrong answer / deadlock / timeout / run-time fault    it compiled, and the interpreter's answer is wrong, it
                           deadlocks, hangs or faults (a race, an access out of bounds) at run time;
  BAD targets differ       sm_90a and the interpreter disagree on whether it compiles.

    python tests/fuzz/blockmisuse_gen.py --seed 1 --count 400       # counts per class, one example of each BAD one
    python tests/fuzz/blockmisuse_gen.py --all                      # every mutation once
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib.util
import os
import re
import signal
import sys
import tempfile
import warnings

import numpy as np

# -- the compositions: @@slot@@ marks a place a mutation replaces (an expression, or a statement: `pass`) ------------

GEMM = '''import numpy as np
import skc
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, OnlineSoftmax,
                        OperandLayout, TilePayload, TileScheduler, TmaLoader, TmaStoreEpilogue, VectorLoader,
                        WarpRoles, Wgmma, WgmmaRegA)

T = 64


@skc.kernel
def kernel(a: skc.TensorMap, b: skc.TensorMap, out: skc.Ptr[skc.f32], M: skc.i32, N: skc.i32, K: skc.i32):
    payload = @@payload@@
    load = @@loader@@
    with @@pipeline@@ as pipe:
        roles = @@roles@@
        k_tiles = @@k_tiles@@
        tiles = @@scheduler@@
        if @@is_producer@@:
            @@producer_first@@
            if @@issuing@@:
                with @@producer_handle@@ as producer:
                    for tile in tiles:
                        for k in range(k_tiles):
                            with @@producer_acquire@@ as stage:
                                @@load_call@@
                                @@producer_extra@@
        else:
            mma = @@mma@@
            acc = @@zeros@@
            epilogue = @@epilogue@@
            with @@consumer_handle@@ as consumer:
                for tile in tiles:
                    acc.zero()
                    for k in range(k_tiles):
                        with @@consumer_acquire@@ as stage:
                            @@mma_call@@
                            @@consumer_extra@@
                    @@after_mainloop@@
                    @@epilogue_call@@
'''

GEMM_SLOTS = {
    "payload": ("TilePayload(a=OperandLayout(T, T), b=OperandLayout(T, T))", [
        ("layout_tuple", "TilePayload(a=(T, T), b=OperandLayout(T, T))"),
        ("layout_int", "TilePayload(a=T, b=OperandLayout(T, T))"),
        ("k_not_chunks", "TilePayload(a=OperandLayout(T, 40), b=OperandLayout(T, 40))"),
        ("rows_not_eights", "TilePayload(a=OperandLayout(60, T), b=OperandLayout(T, T))"),
        ("k_differs", "TilePayload(a=OperandLayout(T, 2 * T), b=OperandLayout(T, T))"),
        ("one_byte", "TilePayload(a=OperandLayout(T, T, 1), b=OperandLayout(T, T, 1))"),
        ("elem_bytes_3", "TilePayload(a=OperandLayout(T, T, 3), b=OperandLayout(T, T, 3))"),
        ("swizzle_64_k_major", "TilePayload(a=OperandLayout(T, T, swizzle=64), b=OperandLayout(T, T, swizzle=64))"),
        ("swizzle_32", "TilePayload(a=OperandLayout(T, T, swizzle=32), b=OperandLayout(T, T, swizzle=32))"),
        ("rows_float", "TilePayload(a=OperandLayout(64.0, T), b=OperandLayout(T, T))"),
        ("rows_runtime", "TilePayload(a=OperandLayout(M, T), b=OperandLayout(T, T))"),
        ("empty", "TilePayload()"),
        ("int", "64"),
        ("no_b", "TilePayload(a=OperandLayout(T, T))"),
        ("rows_256", "TilePayload(a=OperandLayout(4 * T, T), b=OperandLayout(T, T))"),
        ("loaded_rows_odd", "TilePayload(a=OperandLayout(T, T, loaded_rows=12), b=OperandLayout(T, T))"),
        ("row_shares_0", "TilePayload(a=OperandLayout(T, T, row_shares=0), b=OperandLayout(T, T))"),
        ("k_256", "TilePayload(a=OperandLayout(T, 4 * T), b=OperandLayout(T, 4 * T))"),
    ]),
    "loader": ("TmaLoader(payload, a=a, b=b)", [
        ("missing_b", "TmaLoader(payload, a=a)"),
        ("unknown_c", "TmaLoader(payload, a=a, b=b, c=a)"),
        ("pointer_for_map", "TmaLoader(payload, a=out, b=b)"),
        ("int_for_map", "TmaLoader(payload, a=0, b=b)"),
        ("float_payload", "TmaLoader(1.5, a=a, b=b)"),
        ("positional_maps", "TmaLoader(payload, a, b)"),
        ("multicast_unknown", "TmaLoader(payload, multicast=('c', 2), a=a, b=b)"),
        ("multicast_int", "TmaLoader(payload, multicast=2, a=a, b=b)"),
        ("multicast_three", "TmaLoader(payload, multicast=('b', 3), a=a, b=b)"),
        ("multicast_short", "TmaLoader(payload, multicast=('b',), a=a, b=b)"),
        ("extents_unshared", "TmaLoader(payload, extents={'a': M}, a=a, b=b)"),
        ("extents_list", "TmaLoader(payload, extents=[M], a=a, b=b)"),
        ("vector_of_maps", "VectorLoader(a=(a, M, K), b=(b, N, K))"),
        ("vector_short_tuple", "VectorLoader(a=(out, M), b=(out, N, K))"),
        ("none", "None"),
        ("maps_tuple", "TmaLoader(payload, a=(a, b), b=b)"),
    ]),
    "pipeline": ("InputTilePipeline(payload, 2, load, consumers=1)", [
        ("stages_float", "InputTilePipeline(payload, 2.0, load, consumers=1)"),
        ("stages_runtime", "InputTilePipeline(payload, K, load, consumers=1)"),
        ("stages_tuple", "InputTilePipeline(payload, (2, 2), load, consumers=1)"),
        ("stages_many", "InputTilePipeline(payload, 40, load, consumers=1)"),
        ("stages_one", "InputTilePipeline(payload, 1, load, consumers=1)"),
        ("stages_negative", "InputTilePipeline(payload, -1, load, consumers=1)"),
        ("stages_str", "InputTilePipeline(payload, '2', load, consumers=1)"),
        ("consumers_2", "InputTilePipeline(payload, 2, load, consumers=2)"),
        ("consumers_0", "InputTilePipeline(payload, 2, load, consumers=0)"),
        ("consumers_runtime", "InputTilePipeline(payload, 2, load, consumers=M)"),
        ("no_loader", "InputTilePipeline(payload, 2, consumers=1)"),
        ("loader_first", "InputTilePipeline(load, 2, payload, consumers=1)"),
        ("int_payload", "InputTilePipeline(T, 2, load, consumers=1)"),
        ("cluster_2", "InputTilePipeline(payload, 2, load, consumers=1, cluster=2)"),
        ("producer_int", "InputTilePipeline(payload, 2, 1, consumers=1)"),
        ("producer_payload", "InputTilePipeline(payload, 2, payload, consumers=1)"),
    ]),
    "roles": ("WarpRoles(1)", [
        ("two", "WarpRoles(2)"), ("zero", "WarpRoles(0)"), ("runtime", "WarpRoles(M)"), ("float", "WarpRoles(1.0)"),
        ("registers_high", "WarpRoles(1, 248, 248)"), ("registers_odd", "WarpRoles(1, 41, 232)"),
        ("registers_float", "WarpRoles(1, 40.0, 232)"), ("none", "WarpRoles(None)"),
    ]),
    "k_tiles": ("skc.cdiv(K, T)", [
        ("float", "K / T"), ("one_more", "skc.cdiv(K, T) + 1"), ("string", "'2'"),
    ]),
    "scheduler": ("TileScheduler(M, N, T, T)", [
        ("tile_float", "TileScheduler(M, N, 64.0, T)"),
        ("tile_runtime", "TileScheduler(M, N, K, T)"),
        ("tile_n_128", "TileScheduler(M, N, T, 2 * T)"),
        ("tile_n_32", "TileScheduler(M, N, T, 32)"),
        ("tile_m_128", "TileScheduler(M, N, 2 * T, T)"),
        ("group_0", "TileScheduler(M, N, T, T, group_m=0)"),
        ("cluster_2", "TileScheduler(M, N, T, T, cluster_m=2)"),
        ("tile_str", "TileScheduler(M, N, '64', T)"),
        ("tile_zero", "TileScheduler(M, N, 0, T)"),
        ("batches_0", "TileScheduler(M, N, T, T, batches=0)"),
        ("M_float", "TileScheduler(96.5, N, T, T)"),
        ("M_map", "TileScheduler(a, N, T, T)"),
    ]),
    "is_producer": ("roles.is_producer()", [
        ("negated", "not roles.is_producer()"),
        ("a_warp", "skc.warp_id() == 0"),
        ("method", "roles.is_producer"),
    ]),
    "producer_first": ("pass", [
        ("consumer_handle", "with pipe.consumer() as wrong:\n    pass"),
        ("enter_consumer", "roles.enter_consumer()"),
        ("enter_twice", "roles.enter_producer()\nroles.enter_producer()"),
        ("block_barrier", "pipe.sync()"),
        ("acquire_unentered", "early = pipe.producer().acquire()"),
        ("consumer_index", "skc.store(out, skc.f32(roles.consumer_index()))"),
        ("wgmma_in_producer", "extra = Wgmma(T, T, skc.bf16)"),
    ]),
    "issuing": ("load.is_issuing()", [
        ("every_thread", "True"), ("method", "load.is_issuing"), ("thread_0", "skc.thread_index() == 0"),
    ]),
    "producer_handle": ("pipe.producer()", [
        ("consumer", "pipe.consumer()"), ("pipeline", "pipe"), ("load", "load"),
    ]),
    "producer_acquire": ("producer.acquire()", [
        ("run_2", "producer.acquire(2)"), ("zero", "producer.acquire(0)"), ("past_stages", "producer.acquire(3)"),
        ("runtime", "producer.acquire(k)"), ("float", "producer.acquire(1.0)"), ("handle", "producer"),
    ]),
    "load_call": ("load(stage, k, a=tile.row0, b=tile.col0)", [
        ("missing_b", "load(stage, k, a=tile.row0)"),
        ("k_float", "load(stage, k * 1.0, a=tile.row0, b=tile.col0)"),
        ("k_tile", "load(stage, tile, a=tile.row0, b=tile.col0)"),
        ("stage_int", "load(0, k, a=tile.row0, b=tile.col0)"),
        ("stage_pipeline", "load(pipe, k, a=tile.row0, b=tile.col0)"),
        ("origin_tuple", "load(stage, k, a=(tile.row0, 0), b=tile.col0)"),
        ("origin_triple", "load(stage, k, a=(0, tile.row0, 0), b=tile.col0)"),
        ("origin_float", "load(stage, k, a=1.5, b=tile.col0)"),
        ("origin_tile", "load(stage, k, a=tile, b=tile.col0)"),
        ("positional", "load(stage, k, tile.row0, tile.col0)"),
        ("twice", "load(stage, k, a=tile.row0, b=tile.col0)\nload(stage, k, a=tile.row0, b=tile.col0)"),
        ("no_k", "load(stage, a=tile.row0, b=tile.col0)"),
        ("handle", "load(producer, k, a=tile.row0, b=tile.col0)"),
        ("none", "pass"),
    ]),
    "producer_extra": ("pass", [
        ("advance", "producer.advance()"),
        ("release", "producer.release_stage(0)"),
        ("read_stage", "skc.store(out, skc.f32(stage.a.load(0, 0, skc.bf16)))"),
        ("wait_full", "skc.hopper.mbarrier_wait(stage.full, 1)"),
        ("acquire_again", "with producer.acquire() as again:\n    pass"),
        ("mma_here", "Wgmma(T, T, skc.bf16).zeros()"),
    ]),
    "mma": ("Wgmma(T, T, skc.bf16)", [
        ("k_32", "Wgmma(T, 32, skc.bf16)"), ("k_128", "Wgmma(T, 2 * T, skc.bf16)"),
        ("n_32", "Wgmma(32, T, skc.bf16)"), ("n_128", "Wgmma(2 * T, T, skc.bf16)"),
        ("dtype_str", "Wgmma(T, T, 'bf16')"), ("dtype_f16", "Wgmma(T, T, skc.f16)"),
        ("fp8", "Wgmma(T, T, skc.f8e4m3)"), ("dtype_b_fp8", "Wgmma(T, T, skc.bf16, dtype_b=skc.f8e4m3)"),
        ("warpgroup_runtime", "Wgmma(T, T, skc.bf16, warpgroup=M)"), ("warpgroup_float", "Wgmma(T, T, skc.bf16, 0.5)"),
        ("register_a", "WgmmaRegA(T, T, skc.bf16)"), ("no_dtype", "Wgmma(T, T)"), ("k_float", "Wgmma(T, 64.0, skc.bf16)"),
        ("n_runtime", "Wgmma(N, T, skc.bf16)"), ("dtype_numpy", "Wgmma(T, T, np.float16)"),
    ]),
    "zeros": ("mma.zeros()", [
        ("other_op", "Wgmma(32, T, skc.bf16).zeros()"), ("vector", "skc.full(32, 0.0, skc.f32)"), ("float", "0.0"),
        ("method", "mma.zeros"),
    ]),
    "epilogue": ("DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))", [
        ("map_for_pointer", "DirectStoreEpilogue(a, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))"),
        ("dtype_bf16", "DirectStoreEpilogue(out, skc.bf16, EpilogueArgs(EpilogueSpec(), M, N))"),
        ("dtype_str", "DirectStoreEpilogue(out, 'f32', EpilogueArgs(EpilogueSpec(), M, N))"),
        ("args_tuple", "DirectStoreEpilogue(out, skc.f32, (M, N))"),
        ("no_args", "DirectStoreEpilogue(out, skc.f32)"),
        ("M_float", "DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), 96.5, N))"),
        ("spec_none", "DirectStoreEpilogue(out, skc.f32, EpilogueArgs(None, M, N))"),
        ("activation_unknown", "DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(activation='tanh'), M, N))"),
        ("tma_store_on_pointer", "TmaStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))"),
        ("alpha_map", "DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(alpha=True), M, N, alpha=a))"),
        ("bias_float", "DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(bias=True), M, N, bias=1.0))"),
        ("bias_map", "DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(bias=True), M, N, bias=b))"),
        ("spec_dict", "DirectStoreEpilogue(out, skc.f32, EpilogueArgs({}, M, N))"),
        ("pointer_int", "DirectStoreEpilogue(0, skc.f32, EpilogueArgs(EpilogueSpec(), M, N))"),
    ]),
    "consumer_handle": ("pipe.consumer(mma)", [
        ("no_reader", "pipe.consumer()"), ("reader_acc", "pipe.consumer(acc)"), ("reader_int", "pipe.consumer(1)"),
        ("reader_loader", "pipe.consumer(load)"), ("producer", "pipe.producer()"), ("pipeline", "pipe"),
    ]),
    "consumer_acquire": ("consumer.acquire()", [
        ("run_2", "consumer.acquire(2)"), ("runtime", "consumer.acquire(K)"), ("negative", "consumer.acquire(-1)"),
        ("float", "consumer.acquire(1.5)"), ("handle", "consumer"),
    ]),
    "mma_call": ("mma(acc, stage.a, stage.b)", [
        ("acc_float", "mma(1.0, stage.a, stage.b)"),
        ("stage_for_tile", "mma(acc, stage, stage.b)"),
        ("k0_16", "mma(acc, stage.a, stage.b, k0=16)"),
        ("accumulate_runtime", "mma(acc, stage.a, stage.b, accumulate=k > 0)"),
        ("accumulate_str", "mma(acc, stage.a, stage.b, accumulate='yes')"),
        ("consume", "mma.consume(acc, stage, tile)"),
        ("missing_b", "mma(acc, stage.a)"),
        ("barrier_for_tile", "mma(acc, stage.full, stage.b)"),
        ("tile_c", "mma(acc, stage.a, stage.c)"),
        ("k_runtime", "mma(acc, stage.a, stage.b, k=K)"),
        ("map_for_tile", "mma(acc, a, stage.b)"),
        ("pointer_for_tile", "mma(acc, stage.a, out)"),
        ("tuple_acc", "mma((acc, acc), stage.a, stage.b)"),
    ]),
    "consumer_extra": ("pass", [
        ("retire_negative", "mma.retire(-1)"), ("retire_runtime", "mma.retire(k)"), ("retire_big", "mma.retire(5)"),
        ("wait_full_phase", "skc.hopper.mbarrier_wait(stage.full, 1)"),
        ("store_into_stage", "skc.store(stage.a.pointer(0, 0, skc.bf16), skc.bf16(0.0))"),
        ("skip", "consumer.skip(1)"),
        ("row_past_tile", "skc.store(out, skc.f32(stage.a.load(T, 0, skc.bf16)))"),
        ("column_past_tile", "skc.store(out, skc.f32(stage.a.load(0, T, skc.bf16)))"),
        ("vector_too_wide", "skc.store(out, skc.f32(stage.a.load(0, 0, skc.bf16, width=16))[0])"),
        ("dtype_wider", "skc.store(out, stage.a.load(0, 0, skc.f32))"),
        ("load_float_row", "skc.store(out, skc.f32(stage.a.load(0.5, 0, skc.bf16)))"),
        ("nested_acquire", "with consumer.acquire() as inner:\n    pass"),
        ("producer_acquire", "with pipe.producer().acquire() as other:\n    pass"),
        ("arrive_empty", "skc.hopper.mbarrier_arrive(stage.full)"),
        ("stage_0_of_lease", "mma(acc, stage.stage(1).a, stage.b)"),
        ("softmax_unretired", "OnlineSoftmax(1.0).update(acc)"),
    ]),
    "after_mainloop": ("pass", [
        ("stage_after", "mma(acc, stage.a, stage.b)"), ("lease_unentered", "consumer.acquire()"),
        ("retire", "mma.retire(0)"), ("wait", "acc.wait()"), ("zero_then", "acc.zero()"),
    ]),
    "epilogue_call": ("epilogue(acc, tile.row0, tile.col0)", [
        ("row_float", "epilogue(acc, 0.5, tile.col0)"), ("no_acc", "epilogue(tile.row0, tile.col0)"),
        ("tile", "epilogue(acc, tile)"), ("stage", "epilogue(stage, tile.row0, tile.col0)"),
        ("acc_float", "epilogue(1.0, tile.row0, tile.col0)"), ("mma_for_acc", "epilogue(mma, tile.row0, tile.col0)"),
        ("row_tuple", "epilogue(acc, (tile.row0, 0), tile.col0)"),
    ]),
}


RMSNORM = """import numpy as np
import skc
from skc.blocks import InputTilePipeline, OperandLayout, TilePayload, TileScheduler, TmaLoader, WarpRoles

STEP, VEC, LANES, ROWS = 512, 8, 32, 8


@skc.kernel
def kernel(x: skc.TensorMap, w: skc.Ptr[skc.bf16], out: skc.Ptr[skc.bf16], rows: skc.i32, eps: skc.f32,
           cols: skc.constexpr):
    steps = skc.cdiv(cols, STEP)
    payload = @@payload@@
    load = @@loader@@
    with @@pipeline@@ as pipe:
        roles = WarpRoles(1)
        blocks = @@scheduler@@
        if roles.is_producer():
            roles.enter_producer()
            if load.is_issuing():
                with pipe.producer() as producer:
                    for block in blocks:
                        for k in range(steps):
                            with producer.acquire() as stage:
                                @@load_call@@
        else:
            roles.enter_consumer()
            with pipe.consumer() as consumer:
                for block in blocks:
                    with @@consumer_acquire@@ as run:
                        @@normalize_call@@


@skc.func
def normalize(run, row0, w, out, rows, eps, cols, steps):
    lane, warp = skc.lane_id(), skc.warp_id() % 4
    for r in skc.static_range(ROWS // 4):
        row = warp * (ROWS // 4) + r
        squares = 0.0
        for s in skc.static_range(steps):
            for p in skc.static_range(STEP // (VEC * LANES)):
                values = @@read@@
                for i in skc.static_range(VEC):
                    squares += values[i] * values[i]
        scale = skc.rsqrt(skc.warp_sum(squares) / cols + eps)
        for s in skc.static_range(steps):
            for p in skc.static_range(STEP // (VEC * LANES)):
                column = s * STEP + (p * LANES + lane) * VEC
                inside = column < cols
                values = skc.f32(run.stage(s).x.load(row, (p * LANES + lane) * VEC, skc.bf16, width=VEC))
                weights = skc.f32(skc.load(w + column, width=VEC, mask=inside))
                skc.store(out + (skc.i64(row0 + row) * cols + column), skc.bf16(values * scale * weights),
                          mask=inside & (row0 + row < rows))
"""

RMSNORM_SLOTS = {
    "payload": ("TilePayload(x=OperandLayout(ROWS, STEP))", [
        ("rows_4", "TilePayload(x=OperandLayout(4, STEP))"),
        ("step_500", "TilePayload(x=OperandLayout(ROWS, 500))"),
        ("rows_16", "TilePayload(x=OperandLayout(2 * ROWS, STEP))"),
        ("name_y", "TilePayload(y=OperandLayout(ROWS, STEP))"),
        ("list", "[OperandLayout(ROWS, STEP)]"),
        ("huge", "TilePayload(x=OperandLayout(ROWS, 64 * STEP))"),
    ]),
    "loader": ("TmaLoader(payload, x=x)", [
        ("pointer", "TmaLoader(payload, x=w)"), ("missing", "TmaLoader(payload)"), ("named_a", "TmaLoader(payload, a=x)"),
    ]),
    "pipeline": ("InputTilePipeline(payload, 2 * steps, load, consumers=1)", [
        ("one_stage_short", "InputTilePipeline(payload, steps - 1, load, consumers=1)"),
        ("fewer_than_run", "InputTilePipeline(payload, 1, load, consumers=1)"),
        ("too_many", "InputTilePipeline(payload, 64 * steps, load, consumers=1)"),
        ("stages_runtime", "InputTilePipeline(payload, rows, load, consumers=1)"),
        ("consumers_2", "InputTilePipeline(payload, 2 * steps, load, consumers=2)"),
    ]),
    "scheduler": ("TileScheduler(rows, cols, ROWS, cols)", [
        ("tile_rows_16", "TileScheduler(rows, cols, 2 * ROWS, cols)"),
        ("tile_float", "TileScheduler(rows, cols, 8.0, cols)"),
        ("cols_runtime", "TileScheduler(rows, cols, ROWS, rows)"),
    ]),
    "load_call": ("load(stage, k, x=block.row0)", [
        ("origin_col", "load(stage, k, x=block.col0)"),
        ("origin_pair", "load(stage, k, x=(block.row0, 0))"),
        ("k_float", "load(stage, k / 2, x=block.row0)"),
        ("stage_run", "load(producer, k, x=block.row0)"),
    ]),
    "consumer_acquire": ("consumer.acquire(steps)", [
        ("one", "consumer.acquire()"), ("past", "consumer.acquire(steps + 1)"), ("runtime", "consumer.acquire(rows)"),
        ("zero", "consumer.acquire(0)"), ("float", "consumer.acquire(steps / 1)"),
    ]),
    "normalize_call": ("normalize(run, block.row0, w, out, rows, eps, cols, steps)", [
        ("run_block", "normalize(block, block.row0, w, out, rows, eps, cols, steps)"),
        ("steps_more", "normalize(run, block.row0, w, out, rows, eps, cols, steps + 1)"),
        ("missing_steps", "normalize(run, block.row0, w, out, rows, eps, cols)"),
        ("map_for_pointer", "normalize(run, block.row0, x, out, rows, eps, cols, steps)"),
        ("consumer_for_run", "normalize(consumer, block.row0, w, out, rows, eps, cols, steps)"),
    ]),
    "read": ("skc.f32(run.stage(s).x.load(row, (p * LANES + lane) * VEC, skc.bf16, width=VEC))", [
        ("stage_past", "skc.f32(run.stage(s + 2).x.load(row, (p * LANES + lane) * VEC, skc.bf16, width=VEC))"),
        ("stage_runtime", "skc.f32(run.stage(lane).x.load(row, (p * LANES + lane) * VEC, skc.bf16, width=VEC))"),
        ("width_16", "skc.f32(run.stage(s).x.load(row, (p * LANES + lane) * VEC, skc.bf16, width=16))"),
        ("dtype_f32", "run.stage(s).x.load(row, (p * LANES + lane) * VEC, skc.f32, width=4)"),
        ("dtype_str", "skc.f32(run.stage(s).x.load(row, (p * LANES + lane) * VEC, 'bf16', width=VEC))"),
        ("column_past", "skc.f32(run.stage(s).x.load(row, STEP, skc.bf16, width=VEC))"),
        ("row_past", "skc.f32(run.stage(s).x.load(ROWS, (p * LANES + lane) * VEC, skc.bf16, width=VEC))"),
        ("unaligned", "skc.f32(run.stage(s).x.load(row, (p * LANES + lane) * VEC + 1, skc.bf16, width=VEC))"),
        ("width_runtime", "skc.f32(run.stage(s).x.load(row, (p * LANES + lane) * VEC, skc.bf16, width=lane))"),
        ("tile_b", "skc.f32(run.stage(s).b.load(row, (p * LANES + lane) * VEC, skc.bf16, width=VEC))"),
        ("row_float", "skc.f32(run.stage(s).x.load(0.5, (p * LANES + lane) * VEC, skc.bf16, width=VEC))"),
        ("stage_index_float", "skc.f32(run.stage(0.0).x.load(row, (p * LANES + lane) * VEC, skc.bf16, width=VEC))"),
        ("no_dtype", "skc.f32(run.stage(s).x.load(row, (p * LANES + lane) * VEC, width=VEC))"),
        ("pointer_width", "skc.f32(skc.load(run.stage(s).x.pointer(row, (p * LANES + lane) * VEC, skc.bf16), width=16))"),
    ]),
}


def rmsnorm_arguments(skc):
    """rmsnorm of 20 x 1000 bf16 (two stages a row block, a part-full last block), one consumer warpgroup."""
    from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits
    rng = np.random.default_rng(57)
    rows, cols = 20, 1000

    def bf16(v):
        return bf16_bits_to_float32(float32_to_bf16_bits(v.astype(np.float32)))
    x, w = bf16(rng.standard_normal((rows, cols), dtype=np.float32) * 3), bf16(rng.standard_normal(cols, np.float32))
    out = skc.empty((rows, cols), skc.bf16).fill_bytes(0xFF)
    x64 = x.astype(np.float64)
    want = x64 / np.sqrt((x64 * x64).mean(axis=1, keepdims=True) + 1e-6) * w
    arguments = [skc.TensorMap(skc.to_device(x, dtype=skc.bf16), box=(8, 64)), skc.to_device(w, dtype=skc.bf16), out,
                 rows, 1e-6, cols]
    return arguments, lambda: _differs(out.numpy(), want)


ATTENTION = """import numpy as np
import skc
from skc.blocks import (DirectStoreEpilogue, EpilogueArgs, EpilogueSpec, InputTilePipeline, OnlineSoftmax,
                        OperandLayout, TilePayload, TmaLoader, WarpRoles, Wgmma, WgmmaRegA)

T, D, KEYS = 64, 64, 64


@skc.kernel
def kernel(q: skc.TensorMap, k: skc.TensorMap, v: skc.TensorMap, out: skc.Ptr[skc.f32], Sq: skc.i32, Skv: skc.i32,
           scale: skc.f32):
    q_payload = TilePayload(q=OperandLayout(T, D))
    k_payload = TilePayload(key=OperandLayout(KEYS, D))
    v_payload = @@v_payload@@
    q_load, k_load, v_load = TmaLoader(q_payload, q=q), TmaLoader(k_payload, key=k), TmaLoader(v_payload, value=v)
    row0 = skc.block_id(0) * T
    end = skc.cdiv(Skv, KEYS)
    with InputTilePipeline(q_payload, 1, q_load) as q_pipe, InputTilePipeline(k_payload, 2, k_load) as k_pipe, \\
            InputTilePipeline(v_payload, 2, v_load) as v_pipe:
        roles = WarpRoles(1)
        if roles.is_producer():
            if q_load.is_issuing():
                with q_pipe.producer() as q_producer, k_pipe.producer() as k_producer, \\
                        v_pipe.producer() as v_producer:
                    with q_producer.acquire() as stage:
                        q_load(stage, 0, q=row0)
                    for j in range(end):
                        with k_producer.acquire() as stage:
                            k_load(stage, 0, key=j * KEYS)
                        with v_producer.acquire() as stage:
                            @@v_load_call@@
        else:
            qk, pv = @@qk@@, @@pv@@
            softmax = @@softmax@@
            scores, acc = @@scores@@, pv.zeros()
            with q_pipe.consumer() as q_consumer, k_pipe.consumer() as k_consumer, v_pipe.consumer() as v_consumer:
                with q_consumer.acquire() as q_stage:
                    for j in range(end):
                        with k_consumer.acquire() as stage:
                            scores.zero()
                            @@qk_call@@
                            @@qk_retire@@
                        factors = @@update@@
                        @@rescale@@
                        with v_consumer.acquire() as stage:
                            @@pv_call@@
                            acc.wait()
            @@finish@@
            DirectStoreEpilogue(out, skc.f32, EpilogueArgs(EpilogueSpec(), Sq, D))(acc, row0, 0)
"""

ATTENTION_SLOTS = {
    "v_payload": ("TilePayload(value=OperandLayout(D, KEYS, k_major=False))", [
        ("k_major", "TilePayload(value=OperandLayout(D, KEYS))"),
        ("keys_32", "TilePayload(value=OperandLayout(D, 32, k_major=False))"),
    ]),
    "v_load_call": ("v_load(stage, j, value=0)", [
        ("origin_keys", "v_load(stage, 0, value=j * KEYS)"), ("float", "v_load(stage, j, value=0.0)"),
        ("k_float", "v_load(stage, j * 1.0, value=0)"),
    ]),
    "qk": ("Wgmma(KEYS, D, skc.bf16)", [
        ("n_128", "Wgmma(2 * KEYS, D, skc.bf16)"), ("k_32", "Wgmma(KEYS, 32, skc.bf16)"),
        ("register_a", "WgmmaRegA(KEYS, D, skc.bf16)"), ("f16", "Wgmma(KEYS, D, skc.f16)"),
    ]),
    "pv": ("WgmmaRegA(D, KEYS, skc.bf16)", [
        ("smem_a", "Wgmma(D, KEYS, skc.bf16)"), ("f32", "WgmmaRegA(D, KEYS, skc.f32)"),
        ("k_32", "WgmmaRegA(D, 32, skc.bf16)"), ("n_32", "WgmmaRegA(32, KEYS, skc.bf16)"),
        ("k_128", "WgmmaRegA(D, 2 * KEYS, skc.bf16)"),
    ]),
    "softmax": ("OnlineSoftmax(scale)", [
        ("scale_map", "OnlineSoftmax(q)"), ("rows_1", "OnlineSoftmax(scale, rows=1)"),
        ("rows_3", "OnlineSoftmax(scale, rows=3)"), ("rows_runtime", "OnlineSoftmax(scale, rows=Sq)"),
        ("exp2_negative", "OnlineSoftmax(scale, exp2_on_fma=-1)"), ("exp2_runtime", "OnlineSoftmax(scale, exp2_on_fma=Sq)"),
        ("lazy_runtime", "OnlineSoftmax(scale, lazy=scale)"), ("scale_none", "OnlineSoftmax(None)"),
        ("tree_str", "OnlineSoftmax(scale, tree='yes')"), ("no_scale", "OnlineSoftmax()"),
        ("exp2_float", "OnlineSoftmax(scale, exp2_on_fma=1.5)"), ("lazy_negative", "OnlineSoftmax(scale, lazy=-2.0)"),
    ]),
    "scores": ("qk.zeros()", [
        ("pv_zeros", "pv.zeros()"), ("vector", "skc.full(32, 0.0, skc.f32)"),
    ]),
    "qk_call": ("qk(scores, q_stage.q, stage.key)", [
        ("swapped", "qk(scores, stage.key, q_stage.q)"), ("acc", "qk(acc, q_stage.q, stage.key)"),
        ("stage_for_tile", "qk(scores, q_stage, stage.key)"),
    ]),
    "qk_retire": ("qk.retire(0)", [
        ("missing", "pass"), ("one", "qk.retire(1)"), ("negative", "qk.retire(-1)"),
    ]),
    "update": ("softmax.update(scores, mask=lambda row, column: j * KEYS + column < Skv)", [
        ("no_mask", "softmax.update(scores)"),
        ("of_acc", "softmax.update(acc)"), ("mask_bool", "softmax.update(scores, mask=True)"),
        ("mask_args", "softmax.update(scores, mask=lambda row: row < Sq)"),
        ("mask_float", "softmax.update(scores, mask=lambda row, column: 1.5)"),
        ("float", "softmax.update(1.0)"), ("tuple", "softmax.update((scores, scores))"),
        ("pointer", "softmax.update(out)"),
    ]),
    "rescale": ("softmax.rescale(acc, factors)", [
        ("missing", "pass"), ("twice", "softmax.rescale(acc, factors)\nsoftmax.rescale(acc, factors)"),
        ("of_scores", "softmax.rescale(scores, factors)"), ("factors_float", "softmax.rescale(acc, 1.0)"),
        ("factors_short", "softmax.rescale(acc, factors[:1])"), ("no_factors", "softmax.rescale(acc)"),
    ]),
    "pv_call": ("pv(acc, pv.operand(scores), stage.value)", [
        ("smem_p", "pv(acc, stage.value, stage.value)"), ("scores_raw", "pv(acc, scores, stage.value)"),
        ("operand_of_acc", "pv(acc, pv.operand(acc), stage.value)"), ("into_scores", "pv(scores, pv.operand(scores), stage.value)"),
        ("operand_float", "pv(acc, pv.operand(1.0), stage.value)"), ("b_key", "pv(acc, pv.operand(scores), q_stage.q)"),
    ]),
    "finish": ("softmax.finish(acc)", [
        ("missing", "pass"), ("of_scores", "softmax.finish(scores)"), ("twice", "softmax.finish(acc)\nsoftmax.finish(acc)"),
        ("float", "softmax.finish(1.0)"),
    ]),
}


def attention_arguments(skc):
    """softmax(scale · Q Kᵀ) V of 64 queries, 100 keys, head_dim 64; V is given transposed (D x Skv), K-major for PV."""
    from skc.runtime.dtypes import bf16_bits_to_float32, float32_to_bf16_bits
    rng = np.random.default_rng(57)

    def bf16(v):
        return bf16_bits_to_float32(float32_to_bf16_bits(v.astype(np.float32)))
    q, k, v = (bf16(rng.standard_normal(shape, dtype=np.float32)) for shape in ((64, 64), (100, 64), (100, 64)))
    maps = [skc.TensorMap(skc.to_device(x, dtype=skc.bf16), box=(64, 64)) for x in (q, k)]
    maps.append(skc.TensorMap(skc.to_device(np.ascontiguousarray(v), dtype=skc.bf16), box=(64, 64)))
    out = skc.to_device(np.full((64, 64), np.nan, np.float32))
    scale = 1 / np.sqrt(64)
    s = q.astype(np.float64) @ k.astype(np.float64).T * scale
    p = np.exp(s - s.max(1, keepdims=True))
    want = (p / p.sum(1, keepdims=True)) @ v.astype(np.float64)
    return [*maps, out, 64, 100, scale], lambda: _differs(out.numpy(), want)


LIBRARY = """import dataclasses

import skc
from skc.blocks import EpilogueArgs, EpilogueSpec, FusedEpilogue, MatmulConfig
from skc.blocks.gemm import wgmma_gemm


class Gated(FusedEpilogue):
    def __init__(self, args, gate):
        super().__init__(args)
        self.gate = gate

    def __call__(self, value, row, column, batch=None, scales=None):
        value = super().__call__(value, row, column, batch, scales)
        inside = (row < self.args.M) & (column < self.args.N)
        return value * skc.f32(skc.load(self.gate + (skc.i64(row) * self.args.N + column), mask=inside))


@skc.kernel
def kernel(a: skc.TensorMap, b: skc.TensorMap, out: skc.TensorMap, gate: skc.Ptr[skc.bf16], bias: skc.Ptr[skc.bf16],
           M: skc.i32, N: skc.i32, K: skc.i32, cfg: skc.constexpr):
    config = @@config@@
    fused = @@fused@@
    @@call@@
"""

LIBRARY_SLOTS = {
    "config": ("cfg", [
        ("tile_m_96", "dataclasses.replace(cfg, tile_m=96)"), ("payload", "cfg.payload()"), ("none", "None"),
        ("tile_n_128", "dataclasses.replace(cfg, tile_n=128)"), ("no_bias", "dataclasses.replace(cfg, epilogue=EpilogueSpec())"),
        ("stages_40", "dataclasses.replace(cfg, stages=40)"), ("dict", "dict(tile_m=64)"),
        ("consumers_1", "dataclasses.replace(cfg, consumers=1)"), ("vector_loader", "dataclasses.replace(cfg, loader='vector')"),
        ("split_k", "dataclasses.replace(cfg, split_k=2)"),
    ]),
    "fused": ("Gated(EpilogueArgs(config.epilogue, M, N, bias=bias), gate)", [
        ("no_bias", "Gated(EpilogueArgs(config.epilogue, M, N), gate)"),
        ("gate_map", "Gated(EpilogueArgs(config.epilogue, M, N, bias=bias), a)"),
        ("args_none", "Gated(None, gate)"), ("no_gate", "Gated(EpilogueArgs(config.epilogue, M, N, bias=bias))"),
        ("alpha_unasked", "Gated(EpilogueArgs(config.epilogue, M, N, bias=bias, alpha=2.0), gate)"),
        ("bias_map", "Gated(EpilogueArgs(config.epilogue, M, N, bias=b), gate)"),
        ("spec", "config.epilogue"), ("float", "1.0"),
    ]),
    "call": ("wgmma_gemm(a, b, out, M, N, K, fused, config)", [
        ("no_config", "wgmma_gemm(a, b, out, M, N, K, fused)"),
        ("payload_config", "wgmma_gemm(a, b, out, M, N, K, fused, config.payload())"),
        ("out_pointer", "wgmma_gemm(a, b, gate, M, N, K, fused, config)"),
        ("shifted", "wgmma_gemm(a, b, out, M, N, fused, config)"),
        ("split_unasked", "wgmma_gemm(a, b, out, M, N, K, fused, config, split=(gate, gate))"),
        ("stream_k_short", "wgmma_gemm(a, b, out, M, N, K, fused, config, stream_k=(gate,))"),
        ("extra_map", "wgmma_gemm(a, b, out, M, N, K, fused, config, sa=a)"),
        ("M_float", "wgmma_gemm(a, b, out, 128.0, N, K, fused, config)"),
        ("a_pointer", "wgmma_gemm(gate, b, out, M, N, K, fused, config)"),
        ("batches_runtime", "wgmma_gemm(a, b, out, M, N, K, fused, config, batches=M)"),
    ]),
}


def library_arguments(skc):
    """out = gelu(a @ b + bias) · gate of 128 x 128 x 128 through wgmma_gemm (two consumers, 64-wide tiles)."""
    from skc.blocks import EpilogueSpec, MatmulConfig
    rng = np.random.default_rng(57)
    M = N = K = 128
    A, B, gate, bias = _small(rng, M, K), _small(rng, K, N), _small(rng, M, N), _small(rng, N)
    cfg = MatmulConfig(tile_n=64, stages=2, epilogue=EpilogueSpec(bias=True, activation="gelu"))
    boxes = cfg.boxes()
    out = skc.empty((M, N), skc.bf16).fill_bytes(0xFF)
    maps = [skc.TensorMap(skc.to_device(A, dtype=skc.bf16), boxes["a"], cfg.swizzle("a")),
            skc.TensorMap(skc.to_device(B, dtype=skc.bf16), boxes["b"], cfg.swizzle("b")), skc.TensorMap(out, boxes["out"])]
    v = A.astype(np.float64) @ B + bias
    want = 0.5 * v * (1 + np.tanh(0.7978845608028654 * (v + 0.044715 * v ** 3))) * gate
    arguments = [*maps, skc.to_device(gate, dtype=skc.bf16), skc.to_device(bias, dtype=skc.bf16), M, N, K, cfg]
    return arguments, lambda: _differs(np.asarray(out.numpy(), np.float32), want)


STENCIL = """import dataclasses

import skc
from skc.blocks.stencil import ChannelTapsLoader, GroupStencil, PixelLoader, PixelScheduler, PixelStoreEpilogue


@skc.kernel
def kernel(x: skc.Ptr[skc.bf16], w: skc.Ptr[skc.bf16], bias: skc.Ptr[skc.bf16], out: skc.Ptr[skc.bf16], N: skc.i32,
           H: skc.i32, W: skc.i32, C: skc.i32, P: skc.i32, Q: skc.i32, cfg: skc.constexpr):
    config = @@config@@
    tiles = @@scheduler@@
    taps = @@taps@@
    @@taps_call@@
    stencil = @@stencil@@
    @@stencil_call@@
    @@store@@
"""

STENCIL_SLOTS = {
    "config": ("cfg", [
        ("width_3", "dataclasses.replace(cfg, width=3)"), ("rows_0", "dataclasses.replace(cfg, R=0)"),
        ("padding_int", "dataclasses.replace(cfg, padding=1)"), ("stride_0", "dataclasses.replace(cfg, stride=(0, 1))"),
        ("dtype_f32", "dataclasses.replace(cfg, dtype='f32')"), ("dtype_unknown", "dataclasses.replace(cfg, dtype='bf17')"),
        ("columns_0", "dataclasses.replace(cfg, columns=0)"), ("lanes_0", "dataclasses.replace(cfg, lanes=0)"),
        ("group_channels_3", "dataclasses.replace(cfg, group_channels=3)"),
        ("dilation_short", "dataclasses.replace(cfg, dilation=(1,))"), ("width_float", "dataclasses.replace(cfg, width=8.0)"),
        ("none", "None"),
    ]),
    "scheduler": ("PixelScheduler(config, N, P, Q, C)", [
        ("float_N", "PixelScheduler(config, 1.5, P, Q, C)"), ("pointer_C", "PixelScheduler(config, N, P, Q, x)"),
    ]),
    "taps": ("ChannelTapsLoader(config, config.R * config.S)", [
        ("zero", "ChannelTapsLoader(config, 0)"), ("float", "ChannelTapsLoader(config, 1.5)"),
        ("runtime", "ChannelTapsLoader(config, C)"), ("fewer", "ChannelTapsLoader(config, config.R)"),
    ]),
    "taps_call": ("taps(w, C * config.multiplier, tiles.slice)", [
        ("tile_for_slice", "taps(w, C * config.multiplier, tiles)"), ("float_K", "taps(w, 1.5, tiles.slice)"),
        ("int_for_w", "taps(0, C * config.multiplier, tiles.slice)"), ("missing", "pass"),
    ]),
    "stencil": ("GroupStencil(config)", [("config_none", "GroupStencil(None)"), ("int", "GroupStencil(8)")]),
    "stencil_call": ("stencil(PixelLoader(x, H, W, C, config.width), taps, tiles)", [
        ("swapped", "stencil(taps, PixelLoader(x, H, W, C, config.width), tiles)"),
        ("width_4", "stencil(PixelLoader(x, H, W, C, 4), taps, tiles)"),
        ("width_16", "stencil(PixelLoader(x, H, W, C, 16), taps, tiles)"),
        ("H_float", "stencil(PixelLoader(x, 8.5, W, C, config.width), taps, tiles)"),
        ("int_for_x", "stencil(PixelLoader(0, H, W, C, config.width), taps, tiles)"),
        ("tiles_missing", "stencil(PixelLoader(x, H, W, C, config.width), taps)"),
    ]),
    "store": ("PixelStoreEpilogue(out, bias, P, Q, config)(stencil, tiles, C)", [
        ("C_float", "PixelStoreEpilogue(out, bias, P, Q, config)(stencil, tiles, 16.5)"),
        ("taps_for_stencil", "PixelStoreEpilogue(out, bias, P, Q, config)(taps, tiles, C)"),
        ("int_for_out", "PixelStoreEpilogue(0, bias, P, Q, config)(stencil, tiles, C)"),
        ("bias_none", "PixelStoreEpilogue(out, None, P, Q, config)(stencil, tiles, C)"),
        ("config_none", "PixelStoreEpilogue(out, bias, P, Q, None)(stencil, tiles, C)"),
    ]),
}


def stencil_arguments(skc):
    """A depthwise 3 x 3 convolution (padding 1, bias) of 1 x 8 x 8 x 16 bf16 NHWC, a generous grid of 4 blocks."""
    from skc.blocks.conv import ConvShape
    from skc.blocks.epilogue import EpilogueSpec
    from skc.blocks.stencil import stencil_config
    rng = np.random.default_rng(57)
    x, w, bias = _small(rng, 1, 8, 8, 16), _small(rng, 16, 3, 3, 1), _small(rng, 16)
    cfg = stencil_config(ConvShape(N=1, H=8, W=8, C=16, K=16, R=3, S=3, padding=(1, 1), groups=16), "bf16",
                         EpilogueSpec(bias=True))
    out = skc.empty((1, 8, 8, 16), skc.bf16).fill_bytes(0xFF)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = sum(padded[:, r:r + 8, s:s + 8, :] * w[:, r, s, 0] for r in range(3) for s in range(3)) + bias
    arguments = [skc.to_device(v, dtype=skc.bf16) for v in (x, w, bias)] + [out, 1, 8, 8, 16, 8, 8, cfg]
    return arguments, lambda: _differs(np.asarray(out.numpy(), np.float32), want, exact=True)


def _small(rng, *shape):
    return rng.integers(-2, 3, shape).astype(np.float32)


def gemm_arguments(skc):
    """(arguments, check): out = A Bᵀ of 96 x 72 x 128 (unaligned tiles, two k-steps, grid of 2 over 4 tiles)."""
    rng = np.random.default_rng(57)
    A, B = _small(rng, 96, 128), _small(rng, 72, 128)
    maps = [skc.TensorMap(skc.to_device(x, dtype=skc.bf16), box=(64, 64)) for x in (A, B)]
    out = skc.to_device(np.full((96, 72), np.nan, np.float32))
    want = A @ B.T
    return [*maps, out, 96, 72, 128], lambda: _differs(out.numpy(), want, exact=True)


def _differs(got, want, exact=False, tolerance=2e-2):
    """'' where got is want (exactly, or within tolerance of its largest value), else what differs."""
    got = np.asarray(got, np.float64)
    if exact and np.array_equal(got, want):
        return ""
    error = np.abs(got - want)
    if not exact and np.isfinite(got).all() and error.max() <= tolerance * max(1.0, np.abs(want).max()):
        return ""
    return f"{np.count_nonzero(~np.isfinite(got) | (error > 0 if exact else error > tolerance))} of {got.size} " \
           f"values wrong (largest error {np.nanmax(np.where(np.isfinite(error), error, 0)):.3g}, " \
           f"{np.count_nonzero(~np.isfinite(got))} not finite)"


@dataclasses.dataclass(frozen=True)
class Composition:
    name: str
    source: str
    slots: dict          # slot: (the working text, [(label, mutated text)])
    arguments: object    # skc -> (arguments, check): check() is '' where the interpreter's answer is right
    grid: int
    block: int


COMPOSITIONS = {"gemm": Composition("gemm", GEMM, GEMM_SLOTS, gemm_arguments, 2, 256),
                "rmsnorm": Composition("rmsnorm", RMSNORM, RMSNORM_SLOTS, rmsnorm_arguments, 2, 256),
                "attention": Composition("attention", ATTENTION, ATTENTION_SLOTS, attention_arguments, 1, 256),
                "library": Composition("library", LIBRARY, LIBRARY_SLOTS, library_arguments, 2, 384),
                "stencil": Composition("stencil", STENCIL, STENCIL_SLOTS, stencil_arguments, 4, 128)}


# Mutations that are no misuse: valid code that means something else (an accumulator zeroed before its store, a
# k-range of the user's, the rescale left out or done twice, the finish left out, operands traded, no mask over the
# keys past the end): a wrong answer is theirs, not the blocks'.
OTHER_MEANINGS = {
    "gemm.after_mainloop.zero_then", "gemm.mma_call.k0_16", "gemm.producer_first.consumer_index",
    "attention.v_payload.k_major", "attention.v_load_call.origin_keys", "attention.qk_call.swapped",
    "attention.qk_call.acc", "attention.update.no_mask", "attention.update.of_acc", "attention.rescale.missing",
    "attention.rescale.twice", "attention.rescale.of_scores", "attention.pv_call.operand_of_acc",
    "attention.pv_call.into_scores", "attention.pv_call.b_key", "attention.finish.missing",
    "attention.finish.of_scores", "attention.scores.pv_zeros",
}


@dataclasses.dataclass(frozen=True)
class Case:
    composition: str
    slot: str
    label: str

    @property
    def name(self) -> str:
        return f"{self.composition}.{self.slot}.{self.label}"

    def source(self) -> tuple:
        """(text, the mutated line, the lines of the mutation) of the case's source."""
        return render(COMPOSITIONS[self.composition], {self.slot: self.label})


def render(composition: Composition, chosen: dict) -> tuple:
    lines, marked, mutation = [], 0, set()
    for line in composition.source.splitlines():
        rest = []
        for slot, (working, mutations) in composition.slots.items():
            token = f"@@{slot}@@"
            if token not in line:
                continue
            text = dict(mutations)[chosen[slot]] if slot in chosen else working
            indent = " " * line.index(token)
            first, *more = text.split("\n")
            line = line.replace(token, first)
            rest = [indent + m for m in more]
            if slot in chosen:
                marked = len(lines) + 1
                mutation = set(range(marked, marked + 1 + len(more)))
        lines.append(line)
        lines.extend(rest)
    return "\n".join(lines) + "\n", marked, mutation


def every_case() -> list:
    return [Case(c.name, slot, label) for c in COMPOSITIONS.values() for slot, (_, mutations) in c.slots.items()
            for label, _ in mutations]


def draw(rng, compositions=None) -> Case:
    cases = [case for case in every_case() if not compositions or case.composition in compositions]
    return cases[rng.integers(len(cases))]


# -- running and judging a case --------------------------------------------------------------------------------------

class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


PYTHON_WORDS = ("TypeError", "AttributeError", "KeyError", "AssertionError", "RecursionError", "IndexError",
                "ValueError", "NameError", "OverflowError", "ZeroDivisionError", "llvmlite", "ptxas", "Traceback",
                "internal error", "object has no attribute", "raised ")


def judge_error(error, path, marked, mutation):
    """The class of an skc error raised by compiling (or running) the case."""
    import skc
    from skc.diagnostics import LocatedError
    text = str(error)
    first = text.splitlines()[0] if text else ""
    if isinstance(error, skc.DeadlockError):
        return "BAD deadlock"
    if isinstance(error, skc.InterpreterError):
        return "BAD run-time fault"
    if not isinstance(error, LocatedError) or error.loc is None:
        return f"BAD unplaced {type(error).__name__}"
    m = re.match(r"^(.*?):(\d+):(\d+): error:", first)
    if not m:
        return "BAD unplaced text"
    if os.path.abspath(m.group(1)) != os.path.abspath(path):
        inside = os.path.dirname(os.path.abspath(skc.__file__))
        return "BAD at skc's files" if m.group(1).startswith(inside) else "BAD at another file"
    if any(word in first for word in PYTHON_WORDS):
        return "BAD python's words"
    hinted = bool(getattr(error, "hint", None))
    if int(m.group(2)) not in mutation | {marked}:
        return "refused at a later use" if hinted else "BAD later use, no hint"
    return "refused" if hinted else "refused, no hint"


def run_case(case: Case, folder: str, timeout: int = 60):
    """(outcome, detail)."""
    import skc
    text, marked, mutation = case.source()
    tag = case.name.replace(".", "_")
    path = os.path.join(folder, f"misuse_{tag}.py")
    with open(path, "w") as handle:
        handle.write(text)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        return _run(case, path, marked, mutation, skc)
    except _Timeout:
        return "BAD timeout", ""
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _load(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.loader.exec_module(module)
    return module


def _attempt(skc, step, path, marked, mutation):
    """(outcome, detail) of step(): ('ok', value) where it returns."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", step()
    except _Timeout:
        raise
    except skc.SkcError as e:
        return judge_error(e, path, marked, mutation), str(e)
    except Exception as e:   # noqa: BLE001 - the point: every foreign exception is a finding
        import traceback
        return f"BAD foreign {type(e).__name__}", traceback.format_exc()[-2000:]


def _run(case, path, marked, mutation, skc):
    composition = COMPOSITIONS[case.composition]
    module = _load(path)
    arguments, check = composition.arguments(skc)
    compiled = _attempt(skc, lambda: module.kernel.compile(*arguments, target="sm_90a", block=composition.block)
                        .asm("ptx"), path, marked, mutation)
    ran = _attempt(skc, lambda: module.kernel.interpret[composition.grid, composition.block](*arguments),
                   path, marked, mutation)
    for outcome in (compiled, ran):
        if outcome[0].startswith("BAD") and outcome[0] not in ("BAD deadlock", "BAD run-time fault"):
            return outcome
    if (compiled[0] == "ok") != (ran[0] == "ok") and ran[0] not in ("BAD deadlock", "BAD run-time fault"):
        return "BAD targets differ", f"sm_90a: {str(compiled[1])[:600]}\ninterpreter: {str(ran[1])[:600]}"
    if compiled[0] != "ok":
        return compiled
    if ran[0] != "ok":
        return ran
    wrong = check()
    if wrong and case.name in OTHER_MEANINGS:
        return "other meaning", wrong
    return ("BAD wrong answer", wrong) if wrong else ("accepted", "")


def run(seed, count, compositions=None, verbose=False, cases=None):
    """{outcome: [(case, detail)]} over `count` drawn cases (or the cases given)."""
    import skc
    folder = tempfile.mkdtemp(prefix="skc_blockmisuse_")
    skc.set_cache_dir(os.path.join(folder, "cache"))
    rng = np.random.default_rng(seed)
    if cases is None:
        cases = [draw(rng, compositions) for _ in range(count)]
    found = collections.defaultdict(list)
    for k, case in enumerate(cases):
        outcome, detail = run_case(case, folder)
        found[outcome].append((case, detail))
        if verbose:
            print(f"[{k}] {case.name}: {outcome}", flush=True)
    return found


CLASSES = {"refused": "good", "refused, no hint": "no hint", "accepted": "accepted"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--all", action="store_true", help="every mutation once")
    parser.add_argument("--composition", action="append", choices=sorted(COMPOSITIONS))
    parser.add_argument("--case", action="append", help="composition.slot.label")
    parser.add_argument("--show", type=int, default=1, help="examples shown of each class")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    cases = None
    if args.case:
        cases = [Case(*name.split(".")) for name in args.case]
    elif args.all:
        cases = [c for c in every_case() if not args.composition or c.composition in args.composition]
    found = run(args.seed, args.count, args.composition, verbose=not args.quiet, cases=cases)
    for outcome in sorted(found):
        print(f"{outcome}: {len(found[outcome])}")
    for outcome in sorted(found):
        if outcome == "refused" and args.show < 2:
            continue
        print(f"\n=== {outcome}")
        for case, detail in found[outcome][:None if outcome != "refused" else args.show]:
            print(f"--- {case.name}\n{detail[:1500]}")
    return 1 if any(o.startswith("BAD") for o in found) else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.exit(main())
