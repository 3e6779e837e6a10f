"""mbarriers (PTX ISA 9.7.12.15): 8-byte barriers in shared memory that count arrivals and
asynchronous transaction bytes, completing one phase after another.

The state of each barrier lives in a side table of its block (BlockState.mbarriers, keyed by
shared address), not in the 8 bytes themselves. A phase completes when its pending arrivals
reach 0 and its transaction count (tx-count) is 0; then the pending count is reset to the
expected count and the next phase begins (PTX ISA 9.7.12.15, "Contents of the mbarrier
object" and "Phase completion of the mbarrier object"). The tx-count may go below 0 for a
while: a TMA copy may complete its bytes before a thread expects them ("Tracking
asynchronous operations by the mbarrier object").

`mbarrier.wait %bar, %parity` waits until the phase with that parity has completed, i.e.
until the current phase's parity differs from it (PTX ISA 9.7.12.15, mbarrier.test_wait and
mbarrier.try_wait, .parity variant): a fresh barrier (phase 0) lets a wait for parity 1
through at once.
"""
from __future__ import annotations

import numpy as np

from .scheduler import Wait, at
from .state import Fault, lane_ranges, warp_ranges

# PTX ISA 9.7.12.15, "Contents of the mbarrier object": the arrival counts range over 1..2**20-1 and the
# tx-count over -(2**20-1)..2**20-1.
COUNT_LIMIT = (1 << 20) - 1
TX_LIMIT = (1 << 20) - 1
BARRIER_BYTES = 8

HINT = ("a phase completes when every expected arrival has happened and its transaction bytes are back to 0: "
        "check the count given to mbarrier.init, that every producer arrives (mbarrier.arrive_tx) once per phase, "
        "that the bytes it expects equal the bytes its TMA copies deliver, and the parity each side waits for")


class MBarrier:
    """One initialized mbarrier: expected arrivals per phase, pending arrivals and tx-count of the current phase,
    and how many phases have completed (the current phase's parity is `phases & 1`)."""

    __slots__ = ("block", "address", "expected", "pending", "tx", "phases")

    def __init__(self, block, address: int, expected: int):
        self.block, self.address = block, address
        self.expected = self.pending = expected
        self.tx = 0
        self.phases = 0

    def arrive(self, count: int, lane: int):
        """`count` arrivals, one at a time (an arrival past the end of a phase counts in the next one)."""
        while count:
            if self.pending == 0:
                raise Fault(f"arrival on {self.name()} after all {self.expected} arrivals of phase {self.phases} "
                            f"were made, while it still waits for {self.tx} transaction bytes (PTX leaves this "
                            "undefined)", lane, hint=HINT)
            taken = min(count, self.pending)
            self.pending -= taken
            count -= taken
            self._settle()

    def transact(self, nbytes: int, lane: int):
        """Add nbytes to the tx-count (expect-tx), or take them off it (complete-tx, nbytes < 0)."""
        self.tx += nbytes
        if abs(self.tx) > TX_LIMIT:
            raise Fault(f"the transaction count of {self.name()} went to {self.tx} bytes, outside "
                        f"+-{TX_LIMIT} (PTX ISA 9.7.12.15)", lane, hint="expect fewer bytes per phase")
        self._settle()

    def _settle(self):
        self.block.cluster.progress += 1
        if self.pending == 0 and self.tx == 0:
            self.phases += 1
            self.pending = self.expected

    def completed(self, parity: int) -> bool:
        """Whether the phase with this parity has completed: the current phase has the other parity."""
        return (self.phases & 1) != parity

    def name(self) -> str:
        text = f"the mbarrier at shared offset {self.address:#x}"
        buffer = shared_buffer_of(self.block.launch, self.address)
        return text + (f" ({buffer})" if buffer else "")

    def state(self) -> str:
        return (f"{self.phases} phases completed, the current phase (parity {self.phases & 1}) has "
                f"{self.pending} of {self.expected} arrivals and {self.tx} transaction bytes pending")


def shared_buffer_of(launch, address: int) -> str:
    """Where address lies in the function's shared-memory layout (its mem.shared buffers)."""
    for op in launch.shared_buffers:
        offset, nbytes = op.attrs["offset"], op.attrs["bytes"]
        if offset <= address < offset + nbytes:
            name = op.attrs.get("name")
            what = f"'{name}', " if name else ""
            return (f"byte {address - offset} of shared buffer {what}{nbytes} bytes at offset {offset}"
                    f"{at(op.loc).replace(' at ', ', declared at ')}")
    if not launch.shared_buffers:
        return ""
    layout = ", ".join(f"[{op.attrs['offset']}, {op.attrs['offset'] + op.attrs['bytes']})"
                       for op in launch.shared_buffers)
    return f"in no shared buffer; the layout is {layout}"


# -- finding barriers ------------------------------------------------------------------------------
def addresses(group, value, lanes, what: str) -> np.ndarray:
    """The shared addresses of `value` in `lanes`, checked to be inside shared memory and 8-byte aligned."""
    addrs = group.env[value][lanes]
    group.block.space("shared").locate(addrs, lanes, BARRIER_BYTES, what)
    return addrs


def barrier_at(block, address: int, lane: int, what: str) -> MBarrier:
    found = block.mbarriers.get(address)
    if found is None:
        buffer = shared_buffer_of(block.launch, address)
        raise Fault(f"{what} on the mbarrier at shared offset {address:#x}{f' ({buffer})' if buffer else ''}, "
                    "which was never initialized", lane,
                    hint="initialize it with mbarrier.init (from one thread), then fence.mbarrier_init and a "
                         "barrier, before any thread uses it")
    return found


def parities(group, value, lanes) -> np.ndarray:
    values = group.env[value][lanes]
    bad = (values != 0) & (values != 1)
    if bad.any():
        position = int(np.argmax(bad))
        raise Fault(f"the parity of an mbarrier wait must be 0 or 1, found {int(values[position])}",
                    int(lanes[position]), hint="pass the phase bit (phase & 1)")
    return values


# -- ops ---------------------------------------------------------------------------------------------
def _init(op, launch):
    bar, count = op.operands

    def init(group):
        lanes = np.flatnonzero(group.mask)
        addrs, counts = addresses(group, bar, lanes, "mbarrier.init"), group.env[count][lanes]
        for lane, address, expected in zip(lanes.tolist(), addrs.tolist(), counts.tolist()):
            if not 1 <= expected <= COUNT_LIMIT:
                raise Fault(f"mbarrier.init with a count of {expected}: it must be 1 to {COUNT_LIMIT} "
                            "(PTX ISA 9.7.12.15, mbarrier.init)", lane)
            group.block.landed(address, 1 << 62)   # (copies tied to a barrier initialized again: not tracked on)
            group.block.mbarriers[address] = MBarrier(group.block, address, expected)
            group.block.cluster.progress += 1
    return init


def each_lane_arrives(group, bar, count: int, what: str):
    """`count` arrivals of every running lane on the barrier at its `bar`, barrier by barrier."""
    lanes = np.flatnonzero(group.mask)
    addrs = addresses(group, bar, lanes, what)
    for address in np.unique(addrs).tolist():
        mine = lanes[addrs == address]
        barrier_at(group.block, address, int(mine[0]), what).arrive(count * mine.size, int(mine[0]))


def _arrive(op, launch):
    bar, count = op.operands[0], int(op.attrs.get("count", 1))
    return lambda group: each_lane_arrives(group, bar, count, "mbarrier.arrive")


def _arrive_tx(op, launch):
    """Each lane performs an expect-tx of its bytes, then an arrive-on (PTX ISA 9.7.12.15, mbarrier.arrive
    with .expect_tx)."""
    bar, nbytes = op.operands

    def arrive_tx(group):
        lanes = np.flatnonzero(group.mask)
        addrs, counts = addresses(group, bar, lanes, "mbarrier.arrive_tx"), group.env[nbytes][lanes]
        for lane, address, expected in zip(lanes.tolist(), addrs.tolist(), counts.tolist()):
            barrier = barrier_at(group.block, address, lane, "mbarrier.arrive_tx")
            barrier.transact(int(expected), lane)
            barrier.arrive(1, lane)
    return arrive_tx


def _expect_tx(op, launch):
    bar, nbytes = op.operands

    def expect_tx(group):
        lanes = np.flatnonzero(group.mask)
        addrs, counts = addresses(group, bar, lanes, "mbarrier.expect_tx"), group.env[nbytes][lanes]
        for lane, address, expected in zip(lanes.tolist(), addrs.tolist(), counts.tolist()):
            barrier_at(group.block, address, lane, "mbarrier.expect_tx").transact(int(expected), lane)
    return expect_tx


def cluster_block(block, rank: int, lane: int, what: str):
    """The block of `block`'s cluster with this rank."""
    blocks = block.cluster.blocks
    if not 0 <= rank < len(blocks):
        raise Fault(f"{what} names block {rank} of the cluster, which has {len(blocks)} blocks (ranks 0 to "
                    f"{len(blocks) - 1})", lane, hint="set the kernel's cluster shape, or name a rank inside it")
    return blocks[rank]


def _arrive_cluster(op, launch):
    """mbarrier.arrive.shared::cluster on the barrier at the same offset in another block (PTX ISA 9.7.12.15,
    mbarrier.arrive)."""
    bar, cta = op.operands

    def arrive_cluster(group):
        lanes = np.flatnonzero(group.mask)
        addrs, ranks = addresses(group, bar, lanes, "mbarrier.arrive_cluster"), group.env[cta][lanes]
        for lane, address, rank in zip(lanes.tolist(), addrs.tolist(), ranks.tolist()):
            block = cluster_block(group.block, int(rank), lane, "mbarrier.arrive_cluster")
            barrier_at(block, address, lane, "mbarrier.arrive_cluster").arrive(1, lane)
    return arrive_cluster


def _phase_waits(group, bar, parity, what: str):
    """[(barrier, parity, lanes)] of the group's active lanes, one per distinct barrier and parity."""
    lanes = np.flatnonzero(group.mask)
    addrs, bits = addresses(group, bar, lanes, what), parities(group, parity, lanes)
    found = []
    for address, bit in sorted(set(zip(addrs.tolist(), bits.tolist()))):
        mine = lanes[(addrs == address) & (bits == bit)]
        found.append((barrier_at(group.block, address, int(mine[0]), what), bit, mine))
    return found


class PhaseWait(Wait):
    """Threads waiting (mbarrier.wait) or spinning (mbarrier.try_wait) until phases of mbarriers complete."""

    primary = True
    hint = HINT

    def __init__(self, waits, group, op, spin: bool):
        self.waits, self.op, self.loc, self.spin = waits, op, op.loc, spin
        self.mask = group.mask

    def ready(self) -> bool:
        return self.spin or all(barrier.completed(bit) for barrier, bit, _ in self.waits)

    def describe(self, group) -> str:
        verb = "spin in mbarrier.try_wait" if self.spin else "wait in mbarrier.wait"
        launch = group.block.launch
        parts = []
        for barrier, bit, lanes in self.waits:
            if barrier.completed(bit):
                continue
            mask = np.zeros(launch.nthreads, bool)
            mask[lanes] = True
            parts.append(f"threads {lane_ranges(mask)} ({warp_ranges(mask, launch.warp_size)}) {verb}{at(self.loc)} "
                         f"for the phase of parity {bit} of {barrier.name()} to complete: {barrier.state()}")
        return "; ".join(parts) or f"threads {lane_ranges(self.mask)} {verb}{at(self.loc)}"


def _wait(op, launch, plan):
    bar, parity = op.operands

    def wait(group):
        waits = _phase_waits(group, bar, parity, "mbarrier.wait")
        if not all(barrier.completed(bit) for barrier, bit, _ in waits):
            yield PhaseWait(waits, group, op, spin=False)
        for barrier, bit, _ in waits:
            _seen(barrier, bit)
    return wait


def _seen(barrier: MBarrier, parity: int):
    """A wait saw the phase of this parity complete (and so every one before): the copies that completed on them
    have landed. A wait that resumes when the barrier has completed the next phase as well saw the one before:
    on the GPU it returned before that next phase completed (once it has, the parity waited for is pending again)."""
    phases = barrier.phases if barrier.completed(parity) else barrier.phases - 1
    barrier.block.landed(barrier.address, phases)


def _try_wait(op, launch, plan):
    """The condition as it is when the op runs, without blocking; when it is false the group first lets every
    other group run once (so that a spin loop on it moves), then gets false and may spin again."""
    bar, parity = op.operands
    result = op.result

    def try_wait(group):
        waits = _phase_waits(group, bar, parity, "mbarrier.try_wait")
        done = np.zeros(launch.nthreads, bool)
        for barrier, bit, lanes in waits:
            done[lanes] = barrier.completed(bit)
            if done[lanes[0]]:
                _seen(barrier, bit)
        if not done[group.mask].all():
            yield PhaseWait(waits, group, op, spin=True)
        group.env[result] = done
    return try_wait


def _nothing(op, launch):
    """Memory is sequentially consistent in the interpreter: fences have nothing to order."""
    return lambda group: None


EFFECTS = {"mbarrier.init": _init, "mbarrier.arrive": _arrive, "mbarrier.arrive_tx": _arrive_tx,
           "mbarrier.expect_tx": _expect_tx, "mbarrier.arrive_cluster": _arrive_cluster,
           "fence.mbarrier_init": _nothing}
CONTROL = {"mbarrier.wait": _wait, "mbarrier.try_wait": _try_wait}
GENERATORS = frozenset(CONTROL)
