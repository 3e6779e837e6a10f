"""Block barriers (`gpu.barrier`, PTX bar.sync): threads arrive at a barrier id and wait
until the expected number has arrived — the whole block (threads that returned count as
arrived, as on the GPU) or the op's `threads` count for a named barrier. `gpu.barrier_arrive`
(PTX bar.arrive) counts its threads in at a named barrier without waiting."""
from __future__ import annotations

import numpy as np

from .scheduler import Wait, at
from .state import Fault, Group, lane_ranges


class Barrier:
    """One barrier id of a block: who has arrived in the current phase, and how many are expected."""

    def __init__(self, block, barrier_id: int):
        self.block, self.id = block, barrier_id
        self.threads = None            # None: the whole block
        self.arrived = block.launch.no_lanes
        self.count = 0
        self.generation = 0
        self.spilled = 0               # threads past the last whole count of the latest arrival (see arrive)

    def name(self) -> str:
        if self.threads is None:
            return f"block barrier {self.id}"
        return f"named barrier {self.id} ({self.threads} threads)"

    def arrive(self, group, threads) -> int:
        """Count the group's active lanes in; give the phase they wait to see completed.

        A barrier with a thread count completes each time that many threads have arrived and starts over at once
        (PTX ISA 9.7.13.1, bar/barrier): when more arrive than complete it, the ones past the last whole count are
        the first arrivals of the next phase and wait for it. Which threads those are is up to the GPU; the group
        they came with waits with them (so 96 threads at a 64-thread barrier wait for 32 more, as on the GPU)."""
        if self.count and threads != self.threads:
            raise Fault(f"barrier {self.id} is waited on with {self.threads or 'all'} threads and "
                        f"{threads or 'all'} threads at once", group.first_lane(),
                        hint="use one thread count per barrier id")
        self.threads = threads
        self.arrived = self.arrived | group.mask
        self.count += group.count
        self.block.cluster.progress += 1
        self.spilled = 0
        if threads is not None and self.count > threads:
            completed, left = divmod(self.count, threads)
            self.generation += completed
            self.count, self.spilled = left, left
            self.arrived = group.mask if left else self.block.launch.no_lanes
            return self.generation if left else self.generation - 1
        return self.generation

    def expected(self) -> int:
        if self.threads is not None:
            return self.threads
        return self.block.launch.nthreads - int(np.count_nonzero(self.block.exited()))

    def poll(self):
        """Release the phase when enough threads have arrived."""
        if self.count and self.count >= self.expected():
            self.generation += 1
            if self.threads is None:   # (the whole block's: a new epoch for the race checks, races.py)
                self.block.epoch += 1
            self.arrived = self.block.launch.no_lanes
            self.count = 0
            self.block.cluster.progress += 1


class BarrierWait(Wait):
    primary = True
    hint = ("every thread the barrier expects must reach it, the same number of times; a barrier inside a "
            "branch that only some threads take never completes")

    def __init__(self, barrier: Barrier, generation: int, op):
        self.barrier, self.generation, self.op, self.loc = barrier, generation, op, op.loc

    def ready(self) -> bool:
        self.barrier.poll()
        return self.barrier.generation > self.generation

    def describe(self, group) -> str:
        bar = self.barrier
        exited = bar.block.exited()   # as expected() counts them: returned, or their warpgroup ran to its end
        absent = ~bar.arrived & ~exited
        text = (f"threads {lane_ranges(group.mask)} wait at {bar.name()}{at(self.loc)}: "
                f"threads {lane_ranges(bar.arrived)} arrived")
        if exited.any():
            text += f", {lane_ranges(exited)} exited"
        if absent.any():
            text += f", {lane_ranges(absent)} did not arrive"
        expected = bar.expected()
        text += f"; {expected - bar.count} of {expected} threads still to arrive"
        if bar.spilled:
            text += (f" (more threads arrived at once than the barrier counts: {bar.spilled} of them are the first "
                     "arrivals of its next phase)")
        return text


def _barriers_of(op, group) -> list:
    """[(barrier, the group's lanes at it)] for a group's op: the id attribute, or the run-time id operand, which may
    differ between warps (each warp arrives at its own barrier) but not inside one (PTX bar requires it)."""
    if not op.operands:
        return [(_barrier(group.block, op.attrs.get("id", 0)), group)]
    ids = group.env[op.operands[0]]
    lanes = np.flatnonzero(group.mask)
    unique = np.unique(ids[lanes]).tolist()
    for barrier_id in unique:
        if not 1 <= barrier_id < 16:
            raise Fault(f"named barrier ids are 1 to 15, found {barrier_id}", group.first_lane())
    if len(unique) == 1:   # one id for the whole group: every warp's is the same
        return [(_barrier(group.block, unique[0]), group)]
    warps = lanes // group.block.launch.warp_size
    for warp in np.unique(warps):
        seen = np.unique(ids[lanes[warps == warp]])
        if seen.size > 1:
            raise Fault(f"a named barrier's run-time id differs between the threads of warp {int(warp)} "
                        f"({seen.tolist()[:4]})", group.first_lane(),
                        hint="compute the id from warp-uniform values (a warpgroup's index)")
    return [(_barrier(group.block, barrier_id), Group(group.mask & (ids == barrier_id), group.env, group.block))
            for barrier_id in unique]


def _check_whole_warps(part, op):
    """skc's barriers are PTX's .aligned forms (bar.sync / bar.arrive .aligned): every thread of a warp that has not
    exited executes the same barrier instruction with the others (PTX ISA 9.7.13.1). A warp split by a condition that
    differs inside it reaches the barrier in parts, which the GPU leaves undefined (the interpreter counted each
    part in, so a named barrier's count could come out right)."""
    block = part.block
    launch = block.launch
    size = launch.warp_size
    absent = ~part.mask & ~block.exited()
    for warp in np.unique(np.flatnonzero(part.mask) // size).tolist():
        span = slice(warp * size, min((warp + 1) * size, launch.nthreads))
        if absent[span].any():
            lanes = np.zeros(launch.nthreads, bool)
            lanes[span] = part.mask[span]
            # (AMD: s_barrier is LLVM's convergent llvm.amdgcn.s.barrier, which a divergent wavefront may not reach)
            warp_word, why, index = (("warp", "PTX's aligned barrier", "a warp or warpgroup index")
                                     if launch.target.vendor == "nvidia" else
                                     ("wavefront", f"{launch.target.name}'s s_barrier (a convergent operation)",
                                      "a wavefront index, skc.warp_id()"))
            raise Fault(f"threads {lane_ranges(lanes)} of {warp_word} {warp} reach {op.name} while threads "
                        f"{lane_ranges(absent & _span_mask(launch.nthreads, span))} of that {warp_word} do not (they "
                        f"took another branch): {why} needs every thread of a {warp_word} at the same barrier",
                        part.first_lane(),
                        hint=f"make the condition around the barrier the same for every thread of a {warp_word} "
                             f"({index}), or move the barrier out of the branch")


def _span_mask(n: int, span: slice) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[span] = True
    return mask


def _barrier(block, barrier_id: int) -> Barrier:
    bar = block.barriers.get(barrier_id)
    if bar is None:
        bar = block.barriers[barrier_id] = Barrier(block, barrier_id)
    return bar


def _sync(op, launch, plan):
    threads = op.attrs.get("threads")

    def barrier(group):
        waits = []
        for bar, part in _barriers_of(op, group):
            _check_whole_warps(part, op)
            waits.append((bar, bar.arrive(part, threads)))
            bar.poll()
        for bar, generation in waits:   # the group goes on once every barrier it reached has completed
            if bar.generation == generation:
                yield BarrierWait(bar, generation, op)
    return barrier


def _arrive(op, launch, plan):
    threads = op.attrs["threads"]

    def arrive(group):
        for bar, part in _barriers_of(op, group):
            _check_whole_warps(part, op)
            bar.arrive(part, threads)
            bar.poll()
        return
        yield  # a generator that never waits
    return arrive


CONTROL = {"gpu.barrier": _sync, "gpu.barrier_arrive": _arrive}
GENERATORS = frozenset(CONTROL)
