"""The GPU execution model's ops on ids and warps: thread/block/grid ids, lane ids, warp
shuffles and votes. A warp is lanes 32w..32w+31 (target.warp_size) of the block.

A shuffle that reads a lane of the block which is not active in the running group (it took another branch, left
the loop, or returned) reads an undefined value on a GPU (CUDA's guidelines for warp collectives: the source lane
of a shfl.sync must be active and in its member mask): undefined.py marks it, and a use of it stops the kernel.
Reads past a warp's or the block's end keep the reader's value, as the IR defines them.

On NVIDIA GPUs a collective runs among the lanes of its member mask. Where the convergence analysis names them
(ir/passes/convergence.py: the whole warp, the lanes not exited, a branch's or a loop's lanes) the GPU waits for
exactly the lanes the interpreter runs it with; elsewhere (after a `continue` some lanes took beside a break
in one branch, in a loop whose bounds differ by thread) the backend can only take `activemask`, the lanes that happen to run together, which
after such control flow may be fewer or others than the interpreter's group. A collective there that part of a
warp reaches while other lanes of it, not exited, are elsewhere stops the kernel: the GPU's answer is not defined.
"""
from __future__ import annotations

import weakref

import numpy as np

from ...ir.passes.convergence import COLLECTIVES, warp_groups
from .state import RETURN, Fault, lane_ranges
from .undefined import key as undefined_key


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
    warp (or past the block's last thread) keep the lane's own value; a read of a lane that is not active gives
    an undefined value (undefined.py marks it: a use of it stops the kernel)."""
    mode, width, lanes = op.attrs["mode"], launch.warp_size, launch.lanes
    within = lanes % width
    base = lanes - within
    value, amount, result = op.operands[0], op.operands[1], op.result
    unnamed = _unnamed(op, launch)
    value_marks, result_marks = undefined_key(value), undefined_key(result)

    def shuffle(group):
        env, active = group.env, group.mask
        source = _source_lane(mode, within, env[amount].astype(np.int64), width)
        valid = (source >= 0) & (source < width) & (base + source < launch.nthreads)
        read = np.where(valid, base + source, lanes)
        undefined, message = None, ""
        if launch.collectives_checked and not group.full:
            if unnamed:
                _check_named(group, f"shfl_{mode}")
            undefined = active & ~active[read]
            if undefined.any():
                launch.undefined = True
                message = _inactive_read(op, group, undefined, read, mode)
            else:
                undefined = None
        env[result] = env[value][read]
        if launch.undefined:   # (what the lanes read is undefined where they read such a lane, or such a value)
            passed = env.get(value_marks)
            if passed is not None:
                message = message or passed[1]
                undefined = passed[0][read] if undefined is None else undefined | passed[0][read]
            if undefined is not None and undefined.any():
                env[result_marks] = (undefined, message)
            else:
                env.pop(result_marks, None)
    return shuffle


def named_collectives(function, target) -> set | None:
    """The ids of `function`'s collectives whose lanes the NVIDIA backend names in their member mask (the convergence
    analysis' groups, which it finds where the block's shape is known); None where every collective's are named
    for this check's purpose (not NVIDIA: a wavefront runs in lockstep; or no block shape: raw tile IR)."""
    if target.vendor != "nvidia" or function.attrs.get("block") is None:
        return None
    ops = sum(1 for _ in function.walk())   # (a function whose op count changed since, by a pass or a test: again)
    kept = _NAMED.get(function)
    if kept is not None and kept[0] == ops:
        return kept[1]
    named = set(warp_groups(function).states) if any(op.name in COLLECTIVES for op in function.walk()) else None
    _NAMED[function] = (ops, named)
    return named


# each function's named collectives, found once: the analysis took about 37 ms of every interpreter launch of
# attention's kernel (launches of one compiled kernel run one ir.Function)
_NAMED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _unnamed(op, launch) -> bool:
    named = launch.named_collectives
    return named is not None and id(op) not in named


def _check_named(group, what: str):
    """A Fault if the group runs collective `what`, whose member mask the backend cannot name (`activemask`), with part
    of a warp whose other lanes, not exited, are elsewhere."""
    block, launch = group.block, group.block.launch
    width, active = launch.warp_size, group.mask
    elsewhere = ~active & ~block.exited()
    for warp in np.unique(np.flatnonzero(active) // width).tolist():
        span = slice(warp * width, min((warp + 1) * width, launch.nthreads))
        if elsewhere[span].any():
            here, away = np.zeros_like(active), np.zeros_like(active)
            here[span], away[span] = active[span], elsewhere[span]
            raise Fault(f"{what} runs with threads {lane_ranges(here)} of warp {warp} while threads "
                        f"{lane_ranges(away)} of it are elsewhere (a `continue` some took, or a loop whose trip count "
                        f"differs by thread): no member mask names the lanes that get here together, and the GPU "
                        f"runs it with those that happen to (activemask), which may be fewer or others; its answer "
                        f"is not defined", group.first_lane(where=here),
                        hint="take the collective where the lanes that get there are known: where every thread of "
                             "the warp gets (outside the loop, or with the loop's bounds the same for the whole warp: "
                             "loop while skc.vote_any(...) of the lanes' own conditions), or before the `continue` "
                             "(an `if` around the rest of the body instead)")


def _inactive_read(op, group, undefined: np.ndarray, read: np.ndarray, mode: str) -> str:
    """What shuffle `op` did where its active lanes `undefined` read lanes (`read`) that are not active."""
    block, launch = group.block, group.block.launch
    lane = int(np.flatnonzero(undefined)[0])
    source = int(read[lane])
    why = ("has returned from the kernel" if block.jump[source] == RETURN else
           "is not running this code with it (it took another branch or left the loop)")
    readers = np.zeros(launch.nthreads, bool)
    readers[read[undefined]] = True
    at = f" at line {op.loc.line}" if op.loc is not None else ""
    return (f"shfl_{mode}{at} read thread {launch.thread_of(source)} (lane {source % launch.warp_size} of warp "
            f"{source // launch.warp_size}), which {why}: on the GPU the value a shuffle reads from a lane that is not "
            f"active is undefined (threads read that are not active: {lane_ranges(readers)})")


def _vote(op, launch):
    """any/all of the predicate over each warp's active lanes; ballot: bit i set where lane i is active and true
    (a u32 ballot of a wavefront of 64 keeps lanes 0-31)."""
    mode, width, n = op.attrs["mode"], launch.warp_size, launch.nthreads
    warps = -(-n // width)
    pad = warps * width - n
    weights = np.left_shift(np.uint64(1), np.arange(width, dtype=np.uint64))
    predicate, result = op.operands[0], op.result
    ballot_dtype = np.uint64 if op.result.type.name == "u64" else np.uint32
    unnamed, what = _unnamed(op, launch), "ballot" if mode == "ballot" else f"vote_{mode}"

    def by_warp(x):
        return (np.concatenate((x, np.zeros(pad, bool))) if pad else x).reshape(warps, width)

    def vote(group):
        p, active = group.env[predicate], group.mask
        if unnamed and not group.full and launch.collectives_checked:
            _check_named(group, what)
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
    unnamed = _unnamed(op, launch)

    def elect_one(group):
        if unnamed and not group.full and launch.collectives_checked:
            _check_named(group, "elect_one")
        chosen = np.zeros(n, bool)
        active = np.flatnonzero(group.mask)
        _, first = np.unique(active // width, return_index=True)
        chosen[active[first]] = True
        group.env[result] = chosen
    return elect_one


PURE = {"gpu.thread_id": _thread_id, "gpu.grid_dim": _grid_dim, "gpu.lane_id": _lane_id}
EFFECTS = {"gpu.block_id": _block_id, "gpu.shuffle": _shuffle, "gpu.vote": _vote, "gpu.elect_one": _elect_one}
