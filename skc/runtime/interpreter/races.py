"""Shared-memory races between warps. The interpreter runs a block's threads in groups, so a kernel whose warps
exchange values through shared memory without a barrier between the write and the read gets them right here; on
the GPU its warps run in any order, and the read may come first. For kernels whose only synchronization is the
whole-block barrier (gpu.barrier of every thread), the accesses between two barriers are one epoch, and within an
epoch a warp may not read bytes another warp wrote, nor write another value over bytes another warp read or wrote
(two warps storing the same value leave it whatever their order, so a warp that stored a byte reads its own value
whenever another warp's store of that value lands, and a read of a byte sees the same value before and after a
store of the value it holds). Atomic updates of several warps to one byte are no race, but an atomic update and a
load or store by another warp in one epoch are. Bytes written by TMA or cp.async are not checked.

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
    """Per shared byte, since the block's last whole barrier (epoch): the lane that last wrote it, the warps that
    wrote it and those that wrote it again with another value, and the lowest and highest warp that read it, each
    with the epoch it was recorded in."""

    def __init__(self, nbytes: int):
        self.written = np.full(nbytes, -1, np.int64)   # epoch of the last write (-1: none)
        self.writer = np.zeros(nbytes, np.int32)
        self.writers = np.zeros(nbytes, np.uint64)     # the warps that wrote it in that epoch (bits: warp_bits)
        self.rewriters = np.zeros(nbytes, np.uint64)   # those that changed it after a write of that epoch
        self.read = np.full(nbytes, -1, np.int64)
        self.low = np.zeros(nbytes, np.int32)          # lowest and highest warp that read it in that epoch
        self.high = np.zeros(nbytes, np.int32)
        self.atomic = np.full(nbytes, -1, np.int64)    # epoch of the last atomic update (-1: none)
        self.updaters = np.zeros(nbytes, np.uint64)    # the warps that updated it atomically in that epoch
        self.last_write = self.last_read = self.last_atomic = -1   # the latest epoch with any write, read, atomic


def warp_bits(warps: np.ndarray) -> np.ndarray:
    """One bit a warp (a block has at most 1024 threads, 32 warps of 32; any past the 64th share the last bit)."""
    return np.left_shift(np.uint64(1), np.minimum(warps, 63).astype(np.uint64))


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
    if marks.last_atomic == epoch:
        _not_updated_by_others(block, marks, addresses, readers, warps, "a load reads")
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
    """A warp reads another's write unless it wrote the byte too and no other warp changed it since writing it: then
    it reads its own value whenever the others' stores of that value land."""
    size, epoch = block.launch.warp_size, block.epoch
    own = warp_bits(warps)
    others = marks.writers[addresses] & ~own
    clash = (marks.written[addresses] == epoch) & (others != 0) & (
        ((marks.writers[addresses] & own) == 0) | ((marks.rewriters[addresses] & ~own) != 0))
    if clash.any():
        row, byte = _first(clash, addresses)
        changed = int(marks.rewriters[byte] & ~own[row, 0])   # (a warp that changed it, else one that wrote it)
        who = _writer(block, marks, byte, warps[row, 0], changed or int(marks.writers[byte] & ~own[row, 0]))
        raise Fault(f"a load reads shared memory that {who} wrote since the last barrier: on the GPU warps run in any "
                    f"order, so it may read the bytes before that write (shared byte {int(byte)})", int(readers[row]),
                    hint="put skc.barrier() between the write and the read")


def writing(block, addresses: np.ndarray, writers: np.ndarray, new: np.ndarray, old: np.ndarray):
    """Lanes `writers` store bytes `new` over `old` at shared bytes `addresses` (all (rows, bytes)): a Fault where
    another warp read one in this epoch, or wrote one with a value other than this; else the writes are marked."""
    marks, epoch, size = _marks(block), block.epoch, block.launch.warp_size
    warps = (writers // size).astype(np.int32)[:, None]
    if marks.last_read == epoch:
        _not_read_by_others(block, marks, addresses, writers, warps, new, old)
    if marks.last_write == epoch:
        _not_overwriting_others(block, marks, addresses, writers, warps, new, old)
    if marks.last_atomic == epoch:
        _not_updated_by_others(block, marks, addresses, writers, warps, "a store writes")
    _one_value_a_byte(block, addresses, writers, warps, new)
    _mark_writes(marks, epoch, addresses, warps, new != old)
    marks.writer[addresses] = writers.astype(np.int32)[:, None]


def updating(block, addresses: np.ndarray, lanes: np.ndarray):
    """Lanes `lanes` (one a row) update shared bytes `addresses` (rows, bytes) atomically: a Fault where another warp
    loaded or stored one in this epoch (the atomic may come before or after that access); atomics of several warps
    are no race. Else the updates are marked."""
    marks, epoch, size = _marks(block), block.epoch, block.launch.warp_size
    warps = (lanes // size).astype(np.int32)[:, None]
    own = warp_bits(warps)
    if marks.last_write == epoch:
        stored = _stored_by_others(marks, addresses, own, epoch)
        if stored.any():
            row, byte = _first(stored, addresses)
            who = _writer(block, marks, byte, warps[row, 0], int(marks.writers[byte] & ~own[row, 0]))
            raise Fault(f"an atomic updates shared memory that {who} stored since the last barrier: on the GPU warps "
                        f"run in any order, so the update may come before that store (shared byte {int(byte)})",
                        int(lanes[row]), hint="put skc.barrier() between the store and the atomic")
    if marks.last_read == epoch:
        read = _read_by_others(marks, addresses, warps, epoch)
        if read.any():
            row, byte = _first(read, addresses)
            raise Fault(f"an atomic updates shared memory that warp {_reader(marks, byte, warps[row, 0])} loaded since "
                        f"the last barrier: on the GPU warps run in any order, so that load may see the update (shared "
                        f"byte {int(byte)})", int(lanes[row]), hint="put skc.barrier() between the load and the atomic")
    flat = addresses.reshape(-1)
    marks.updaters[flat[marks.atomic[flat] != epoch]] = 0
    np.bitwise_or.at(marks.updaters, flat, np.repeat(own[:, 0], addresses.shape[1]))
    marks.atomic[flat] = marks.last_atomic = epoch


def _not_updated_by_others(block, marks, addresses, lanes, warps, what: str):
    """A Fault where another warp updated one of the bytes atomically in this epoch."""
    own = warp_bits(warps)
    others = (marks.atomic[addresses] == block.epoch) & ((marks.updaters[addresses] & ~own) != 0)
    if others.any():
        row, byte = _first(others, addresses)
        raise Fault(f"{what} shared memory that warp {_lowest(int(marks.updaters[byte] & ~own[row, 0]))} updated "
                    "atomically since the "
                    f"last barrier: on the GPU warps run in any order, so the update may come after it (shared byte "
                    f"{int(byte)})", int(lanes[row]), hint="put skc.barrier() between the atomic and the access")


def _first(mask: np.ndarray, addresses: np.ndarray) -> tuple:
    """(row, shared byte) of the first access `mask` (rows, bytes) marks: the one a Fault names."""
    row, column = np.argwhere(mask)[0]
    return row, addresses[row, column]


def _mark_writes(marks, epoch, addresses, warps, changed):
    """The writing warps into each byte's writers, and into its rewriters where a write changed a byte written
    before in this epoch."""
    flat = addresses.reshape(-1)
    earlier = marks.written[flat] == epoch
    bits = np.repeat(warp_bits(warps[:, 0]), addresses.shape[1])
    marks.rewriters[flat[~earlier]] = 0
    marks.writers[flat[~earlier]] = 0
    np.bitwise_or.at(marks.writers, flat, bits)
    rewritten = earlier & changed.reshape(-1)
    np.bitwise_or.at(marks.rewriters, flat[rewritten], bits[rewritten])
    marks.written[flat] = marks.last_write = epoch


def _not_read_by_others(block, marks, addresses, writers, warps, new, old):
    """(A store of the value a byte holds changes nothing a read of it may see.)"""
    others_read = _read_by_others(marks, addresses, warps, block.epoch) & (new != old)
    if others_read.any():
        row, byte = _first(others_read, addresses)
        raise Fault(f"a store writes shared memory that warp {_reader(marks, byte, warps[row, 0])} read since the last "
                    "barrier: on the GPU warps "
                    f"run in any order, so that read may see this write (shared byte {int(byte)})", int(writers[row]),
                    hint="put skc.barrier() between the read and the write")


def _not_overwriting_others(block, marks, addresses, writers, warps, new, old):
    """(Against every warp that wrote the byte, not only the last: after warps 0 and 1 store x, warp 0 storing y
    leaves x or y.)"""
    own = warp_bits(warps)
    overwritten = _stored_by_others(marks, addresses, own, block.epoch) & (new != old)
    if overwritten.any():
        row, byte = _first(overwritten, addresses)
        who = _writer(block, marks, byte, warps[row, 0], int(marks.writers[byte] & ~own[row, 0]))
        raise Fault(f"a store writes another value over shared memory that {who} wrote since the last barrier: on the "
                    f"GPU warps run in any order, so which value stays is undefined (shared byte {int(byte)})",
                    int(writers[row]),
                    hint="let one warp write it, or put skc.barrier() between the writes")


def _one_value_a_byte(block, addresses, writers, warps, new):
    """A Fault where lanes of two warps store other values to one byte in the same store (`if lane == 0: s[0] = w`
    run by every warp)."""
    firsts = np.sort(addresses[:, 0])
    if not (firsts[1:] == firsts[:-1]).any():   # (aligned accesses of one size: disjoint unless they start alike)
        return
    flat = addresses.reshape(-1)
    order = np.argsort(flat, kind="stable")
    at = flat[order]
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


def _stored_by_others(marks, addresses, own, epoch) -> np.ndarray:
    """Which of the bytes a warp other than those of `own` (bits, a row each) stored in the epoch."""
    return (marks.written[addresses] == epoch) & ((marks.writers[addresses] & ~own) != 0)


def _read_by_others(marks, addresses, warps, epoch) -> np.ndarray:
    """Which of the bytes a warp other than the row's (`warps`) loaded in the epoch."""
    return (marks.read[addresses] == epoch) & ((marks.low[addresses] != warps) | (marks.high[addresses] != warps))


def _reader(marks, byte, warp: int) -> int:
    """A warp other than `warp` that loaded `byte`."""
    return int(marks.low[byte] if marks.low[byte] != warp else marks.high[byte])


def _lowest(bits: int) -> int:
    """The lowest warp of a set of warps' bits."""
    return (bits & -bits).bit_length() - 1


def _writer(block, marks, byte, warp: int, others: int) -> str:
    """Who wrote `byte` for a report to `warp`: the last writer when of another warp, else the lowest of the warps
    `others` (bits)."""
    size, last = block.launch.warp_size, int(marks.writer[byte])
    if last // size != warp:
        return f"thread {_thread(block, last)} (warp {last // size})"
    return f"warp {_lowest(others)}"


def _thread(block, lane: int) -> str:
    return str(block.launch.thread_of(lane))
