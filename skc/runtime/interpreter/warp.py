"""The GPU execution model's ops on ids and warps: thread/block/grid ids, lane ids, warp
shuffles and votes. A warp is lanes 32w..32w+31 (target.warp_size) of the block.

A shuffle that reads a lane of the block which is not active in the running group (it took another branch, left
the loop, or returned) stops the kernel: on a GPU the value it reads is undefined (CUDA's guidelines for warp
collectives: the source lane of a shfl.sync must be active and in its member mask). Reads past a warp's or the
block's end keep the reader's value, as the IR defines them.
"""
from __future__ import annotations

import numpy as np

from .state import RETURN, Fault, lane_ranges


def _thread_id(op, launch):
    ids = launch.thread_ids[op.attrs["dim"]]
    return lambda: ids


def _grid_dim(op, launch):
    dims = launch.grid_dims[op.attrs["dim"]]
    return lambda: dims


def _lane_id(op, launch):
    ids = launch.lane_ids
    return lambda: ids


def _block_id(op, launch):
    dim, result = op.attrs["dim"], op.result

    def block_id(group):
        group.env[result] = group.block.block_id(dim)
    return block_id


def _source_lane(mode: str, within: np.ndarray, amount: np.ndarray, width: int) -> np.ndarray:
    """The lane within the warp each lane reads (out of range: no such lane). Only the amount's low
    log2(width) bits count, as in PTX's shfl.sync (PTX ISA 9.7.9.6: bval = b[4:0])."""
    amount = amount & (width - 1)
    if mode == "idx":
        return amount & (width - 1)
    if mode == "up":
        return within - amount
    if mode == "down":
        return within + amount
    return within ^ amount


def _shuffle(op, launch):
    """With n the amount's low bits: idx reads lane n; up lane - n; down lane + n; xor lane ^ n; reads outside the
    warp (or past the block's last thread) keep the lane's own value; a read of a lane that is not active is a
    Fault (undefined on the GPU)."""
    mode, width, lanes = op.attrs["mode"], launch.warp_size, launch.lanes
    within = lanes % width
    base = lanes - within
    value, amount, result = op.operands[0], op.operands[1], op.result

    def shuffle(group):
        env, active = group.env, group.mask
        source = _source_lane(mode, within, env[amount].astype(np.int64), width)
        valid = (source >= 0) & (source < width) & (base + source < launch.nthreads)
        read = np.where(valid, base + source, lanes)
        if launch.lane_reads_checked and not group.full:
            undefined = active & ~active[read]
            if undefined.any():
                raise _inactive_read(group, undefined, read, mode)
        env[result] = env[value][read]
    return shuffle


def _inactive_read(group, undefined: np.ndarray, read: np.ndarray, mode: str) -> Fault:
    """The Fault of a shuffle whose active lanes `undefined` read lanes (`read`) that are not active."""
    block, launch = group.block, group.block.launch
    lane = int(np.flatnonzero(undefined)[0])
    source = int(read[lane])
    why = ("has returned from the kernel" if block.jump[source] == RETURN else
           "is not running this code with it (it took another branch or left the loop)")
    readers = np.zeros(launch.nthreads, bool)
    readers[read[undefined]] = True
    return Fault(f"shfl_{mode} reads thread {launch.thread_of(source)} (lane {source % launch.warp_size} of warp "
                 f"{source // launch.warp_size}), which {why}: on the GPU the value a shuffle reads from a lane that "
                 f"is not active is undefined (threads read that are not active: {lane_ranges(readers)})", lane,
                 hint="shuffle where every lane it reads is active: before the branch or the return, with every "
                      "thread of the warp, then keep the result where it is wanted (skc.where)")


def _vote(op, launch):
    """any/all of the predicate over each warp's active lanes; ballot: bit i set where lane i is active and true
    (a u32 ballot of a wavefront of 64 keeps lanes 0-31)."""
    mode, width, n = op.attrs["mode"], launch.warp_size, launch.nthreads
    warps = -(-n // width)
    pad = warps * width - n
    weights = np.left_shift(np.uint64(1), np.arange(width, dtype=np.uint64))
    predicate, result = op.operands[0], op.result
    ballot_dtype = np.uint64 if op.result.type.name == "u64" else np.uint32

    def by_warp(x):
        return (np.concatenate((x, np.zeros(pad, bool))) if pad else x).reshape(warps, width)

    def vote(group):
        p, active = group.env[predicate], group.mask
        if mode == "any":
            per_warp = by_warp(p & active).any(axis=1)
        elif mode == "all":
            per_warp = ~by_warp(active & ~p).any(axis=1)
        else:
            bits = (by_warp(p & active) * weights).sum(axis=1, dtype=np.uint64)
            per_warp = bits.astype(ballot_dtype)   # u32 keeps the low 32 lanes, u64 a wavefront of 64
        group.env[result] = np.repeat(per_warp, width)[:n]
    return vote


def _elect_one(op, launch):
    """True in the lowest active lane of each warp (PTX elect.sync with the active lanes as its member mask)."""
    width, n, result = launch.warp_size, launch.nthreads, op.result

    def elect_one(group):
        chosen = np.zeros(n, bool)
        active = np.flatnonzero(group.mask)
        _, first = np.unique(active // width, return_index=True)
        chosen[active[first]] = True
        group.env[result] = chosen
    return elect_one


PURE = {"gpu.thread_id": _thread_id, "gpu.grid_dim": _grid_dim, "gpu.lane_id": _lane_id}
EFFECTS = {"gpu.block_id": _block_id, "gpu.shuffle": _shuffle, "gpu.vote": _vote, "gpu.elect_one": _elect_one}
