"""cp.async (PTX ISA 9.7.9.25.3): copies of 4, 8 or 16 bytes from global to shared memory that pass no register,
and `cp.async.mbarrier.arrive.noinc`, one arrival on an mbarrier once the thread's earlier copies have landed.

The interpreter copies when a lane issues the copy (memory is sequentially consistent here), so the arrival that
follows may count at once. Until a wait sees the phase that arrival counts in, the copied bytes are in flight
(BlockState.landing): a read or write of them faults, as the GPU may see them before or after the copy. Both
addresses must be aligned to the copy's size, as on the GPU; a lane whose mask is false reads nothing and writes
zeros (the src-size 0 form), in flight as any copy's."""
from __future__ import annotations

import numpy as np

from .access import check_not_read_by_stores
from .mbarriers import addresses, barrier_at, each_lane_arrives


def _cp_async(op, launch):
    nbytes = int(op.attrs["bytes"])
    dst, src = op.operands[:2]
    mask = op.operands[2] if len(op.operands) == 3 else None
    span = np.arange(nbytes)

    def copy(group):
        env, block = group.env, group.block
        lanes = np.flatnonzero(group.mask)
        if not lanes.size:
            return
        data = np.zeros((lanes.size, nbytes), np.uint8)
        reads = np.ones(lanes.size, bool) if mask is None else env[mask][lanes].astype(bool)
        if reads.any():
            chosen = np.flatnonzero(reads)
            for seg, selection, offsets in block.space("global").locate(env[src][lanes[chosen]], lanes[chosen],
                                                                           nbytes, "cp.async read"):
                rows = chosen if selection is None else chosen[selection]
                data[rows] = seg.data[offsets.astype(np.int64)[:, None] + span]
        for seg, selection, offsets in block.space("shared").locate(env[dst][lanes], lanes, nbytes, "cp.async write"):
            if block.reading is not None and seg is block.shared:
                check_not_read_by_stores(block, offsets, nbytes, lanes, selection, "a cp.async")
            rows = slice(None) if selection is None else selection
            written = offsets.astype(np.int64)[:, None] + span
            seg.data[written] = data[rows]
            if seg is block.shared:   # in flight until a cp.async.arrive ties it to a phase a wait then sees
                block.copying(written)
                block.unarrived.append((lanes if selection is None else lanes[selection], written))
    return copy


def _arrive(op, launch):
    bar = op.operands[0]

    def arrive(group):
        block = group.block
        if block.unarrived:
            lanes = np.flatnonzero(group.mask)
            addrs = addresses(group, bar, lanes, "cp.async.arrive")
            kept = []
            for copied, written in block.unarrived:
                at = np.searchsorted(lanes, copied).clip(0, lanes.size - 1)
                arriving = lanes[at] == copied
                for address in np.unique(addrs[at[arriving]]).tolist():
                    rows = arriving.copy()
                    rows[arriving] = addrs[at[arriving]] == address
                    barrier = barrier_at(block, address, int(copied[rows][0]), "cp.async.arrive")
                    block.completes_on(barrier, written[rows])
                if not arriving.all():
                    kept.append((copied[~arriving], written[~arriving]))
            block.unarrived[:] = kept
        each_lane_arrives(group, bar, 1, "cp.async.arrive")
    return arrive


EFFECTS = {"cp.async": _cp_async, "cp.async.arrive": _arrive}
