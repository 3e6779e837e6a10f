"""Shared-memory races between warps. The interpreter runs a block's threads in groups, so a kernel whose warps
exchange values through shared memory without a barrier between the write and the read gets them right here; on
the GPU its warps run in any order, and the read may come first. For kernels whose only synchronization is the
whole-block barrier (gpu.barrier of every thread), the accesses between two barriers are one epoch, and within an
epoch a warp may not read bytes another warp wrote, nor write bytes another warp read or wrote with another value
(two warps storing the same value leave it whatever their order). A load by a warp of its own writes, atomics, and
bytes written by TMA or cp.async are not checked.

Kernels that synchronize otherwise (mbarriers, named barriers, clusters, TMA, cp.async, wgmma, MFMA, inline asm, a
shared-memory compare-and-swap or exchange, which make locks) are not checked: their order is not the barrier's.
"""
from __future__ import annotations

import numpy as np

from .state import Fault

SYNCHRONIZING = ("mbarrier.", "cp.async", "tma.", "wgmma.", "cluster.", "mfma.", "gpu.barrier_arrive", "gpu.asm",
                 "fence.proxy_async")


def checked(function) -> bool:
    """Whether the kernel's only synchronization is the whole-block barrier (then its races are checked)."""
    for op in function.walk():
        name = op.name
        if name.startswith(SYNCHRONIZING):
            return False
        if name == "gpu.barrier" and (op.operands or op.attrs.get("id", 0) or op.attrs.get("threads")):
            return False   # (a named barrier: some threads only)
        if ((name == "mem.atomic_cas" or name == "mem.atomic" and op.attrs.get("op") == "xchg")
                and op.operands[0].type.space != "global"):
            return False
    return True


class Marks:
    """Per shared byte, since the block's last whole barrier (epoch): the lane that last wrote it, and the lowest and
    highest warp that read it, each with the epoch it was recorded in."""

    def __init__(self, nbytes: int):
        self.written = np.full(nbytes, -1, np.int64)   # epoch of the last write (-1: none)
        self.writer = np.zeros(nbytes, np.int32)
        self.read = np.full(nbytes, -1, np.int64)
        self.low = np.zeros(nbytes, np.int32)          # lowest and highest warp that read it in that epoch
        self.high = np.zeros(nbytes, np.int32)
        self.last_write = self.last_read = -1          # the latest epoch with any write, with any read


def _marks(block) -> Marks:
    if block.race_marks is None:
        block.race_marks = Marks(block.shared.nbytes)
    return block.race_marks


def reading(block, addresses: np.ndarray, readers: np.ndarray):
    """Lanes `readers` (one a row) load shared bytes `addresses` (rows, bytes): a Fault where another warp wrote one
    in this epoch; else the reads are marked."""
    marks, epoch, size = _marks(block), block.epoch, block.launch.warp_size
    warps = (readers // size).astype(np.int32)[:, None]
    if marks.last_write == epoch:
        _not_written_by_others(block, marks, addresses, readers, warps)
    flat, warp = addresses.reshape(-1), np.repeat(warps[:, 0], addresses.shape[1])
    if marks.last_read == epoch:
        earlier = marks.read[flat] == epoch
        low, high = np.where(earlier, np.minimum(marks.low[flat], warp), warp), np.where(
            earlier, np.maximum(marks.high[flat], warp), warp)
    else:
        low = high = warp
    # (rows come in lane order, so a byte read by several rows gets the last row's value: the highest warp; the
    # lowest, assigned in reverse)
    marks.low[flat[::-1]] = low[::-1]
    marks.high[flat] = high
    marks.read[flat] = marks.last_read = epoch


def _not_written_by_others(block, marks, addresses, readers, warps):
    size, epoch = block.launch.warp_size, block.epoch
    clash = (marks.written[addresses] == epoch) & (marks.writer[addresses] // size != warps)
    if clash.any():
        row, column = np.argwhere(clash)[0]
        writer = int(marks.writer[addresses[row, column]])
        raise Fault(f"a load reads shared memory that thread {_thread(block, writer)} (warp {writer // size}) wrote "
                    "since the last barrier: on the GPU warps run in any order, so it may read the bytes before that "
                    f"write (shared byte {int(addresses[row, column])})", int(readers[row]),
                    hint="put skc.barrier() between the write and the read")


def writing(block, addresses: np.ndarray, writers: np.ndarray, new: np.ndarray, old: np.ndarray):
    """Lanes `writers` store bytes `new` over `old` at shared bytes `addresses` (all (rows, bytes)): a Fault where
    another warp read one in this epoch, or wrote one with a value other than this; else the writes are marked."""
    marks, epoch, size = _marks(block), block.epoch, block.launch.warp_size
    warps = (writers // size).astype(np.int32)[:, None]
    if marks.last_read == epoch:
        _not_read_by_others(block, marks, addresses, writers, warps)
    if marks.last_write == epoch:
        _not_overwriting_others(block, marks, addresses, writers, warps, new, old)
    _one_value_a_byte(block, addresses, writers, warps, new)
    marks.written[addresses] = marks.last_write = epoch
    marks.writer[addresses] = writers.astype(np.int32)[:, None]


def _not_read_by_others(block, marks, addresses, writers, warps):
    read = marks.read[addresses] == block.epoch
    others_read = read & ((marks.low[addresses] != warps) | (marks.high[addresses] != warps))
    if others_read.any():
        row, column = np.argwhere(others_read)[0]
        byte = addresses[row, column]
        reader = int(marks.low[byte] if marks.low[byte] != warps[row, 0] else marks.high[byte])
        raise Fault(f"a store writes shared memory that warp {reader} read since the last barrier: on the GPU warps "
                    f"run in any order, so that read may see this write (shared byte {int(byte)})", int(writers[row]),
                    hint="put skc.barrier() between the read and the write")


def _not_overwriting_others(block, marks, addresses, writers, warps, new, old):
    size = block.launch.warp_size
    overwritten = ((marks.written[addresses] == block.epoch) & (marks.writer[addresses] // size != warps)
                   & (new != old))
    if overwritten.any():
        row, column = np.argwhere(overwritten)[0]
        writer = int(marks.writer[addresses[row, column]])
        raise Fault(f"a store writes another value over shared memory that thread {_thread(block, writer)} (warp "
                    f"{writer // size}) wrote since the last barrier: on the GPU warps run in any order, so which "
                    f"value stays is undefined (shared byte {int(addresses[row, column])})", int(writers[row]),
                    hint="let one warp write it, or put skc.barrier() between the writes")


def _one_value_a_byte(block, addresses, writers, warps, new):
    """A Fault where lanes of two warps store other values to one byte in the same store (`if lane == 0: s[0] = w`
    run by every warp)."""
    starts = np.sort(addresses[:, 0])
    if not (starts[1:] == starts[:-1]).any():   # (aligned accesses of one size: disjoint unless they start alike)
        return
    flat = addresses.reshape(-1)
    order = np.argsort(flat, kind="stable")
    at = flat[order]
    if not (at[1:] == at[:-1]).any():
        return
    starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])
    warp = np.repeat(warps[:, 0], addresses.shape[1])[order]
    value = new.reshape(-1)[order]
    clash = ((np.minimum.reduceat(warp, starts) != np.maximum.reduceat(warp, starts))
             & (np.minimum.reduceat(value, starts) != np.maximum.reduceat(value, starts)))
    if clash.any():
        group = int(np.flatnonzero(clash)[0])
        rows = order[starts[group]:(starts[group + 1] if group + 1 < len(starts) else len(order))] // addresses.shape[1]
        first, other = int(writers[rows[0]]), int(writers[rows[np.argmax(warps[rows, 0] != warps[rows[0], 0])]])
        size = block.launch.warp_size
        raise Fault(f"threads {_thread(block, first)} and {_thread(block, other)} of warps {first // size} and "
                    f"{other // size} store other values to the same shared memory: on the GPU which value stays is "
                    f"undefined (shared byte {int(at[starts[group]])})", other,
                    hint="let one thread write it, or give each warp a place of its own")


def _thread(block, lane: int) -> str:
    return str(block.launch.thread_of(lane))
