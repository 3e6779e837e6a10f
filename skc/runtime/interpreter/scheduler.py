"""The scheduler of one cluster of blocks (a lone block is a cluster of one): runs thread
groups (generators) of all its blocks, interleaved, until each blocks or ends, wakes the
blocked groups whose wait is over, and reports a deadlock when none can move.

A group blocks by yielding a Wait. A Wait says when it is over (`ready`, polled when no group
can run) and what it waits on (`describe`, for deadlock reports), and may start other groups
when it begins (`started`). A `spin` wait (mbarrier.try_wait finding its phase incomplete) is
ready at once: it only lets the other groups run before the spinning group looks again.
Spinning is no progress: when for SPIN_ROUNDS rounds in a row only spinning groups could run
and no synchronization state changed (Cluster.progress: arrivals, phases, transaction bytes,
finished groups), nothing will ever change, and that is a deadlock too. A spin loop that
gives up after fewer rounds and then does something else is not taken for one; a loop that
spins longer while it changes nothing but memory or its own registers is.
"""
from __future__ import annotations

from collections import deque
from typing import Optional

import numpy as np

from ...diagnostics import DeadlockError, Location, user_location
from .state import Cluster, Group, lane_ranges

# Rounds of nothing but spinning, with no synchronization state changing, that make a deadlock: a loop
# that tries a barrier up to this many times and then does something else still runs; a spin loop that can
# never succeed is reported after it (a few milliseconds).
SPIN_ROUNDS = 1000


def at(loc: Optional[Location]) -> str:
    """' at FILE:LINE' of the user's code, or nothing when the op has no location."""
    shown = user_location(loc)
    return f" at {shown.file}:{shown.line}" if shown is not None else ""


class Wait:
    """What a blocked group waits for."""

    loc: Optional[Location] = None
    hint = ""
    primary = False   # a deadlock report points at the first primary wait (a barrier rather than a join)
    spin = False      # ready at once; the group only lets the others run (mbarrier.try_wait)

    def started(self, runnable: deque):
        """Called once when the group blocks; may add groups to run."""

    def ready(self) -> bool:
        raise NotImplementedError

    def describe(self, group: Group) -> str:
        raise NotImplementedError


class Join(Wait):
    """A group at the end of an `scf.if` whose two branches run as child groups, until both finish."""

    def __init__(self, op, children):
        self.op, self.children, self.loc = op, children, op.loc

    def started(self, runnable: deque):
        runnable.extend(self.children)

    def ready(self) -> bool:
        return all(child.done for child in self.children)

    def describe(self, group: Group) -> str:
        finished = [c.members for c in self.children if c.done]
        running = [c.members for c in self.children if not c.done]
        waiting = np.logical_or.reduce(finished) if finished else group.block.launch.no_lanes
        busy = np.logical_or.reduce(running) if running else group.block.launch.no_lanes
        if not finished:
            return (f"threads {lane_ranges(busy)} run both branches of the 'scf.if'{at(self.loc)}; neither has "
                    "finished")
        return (f"threads {lane_ranges(waiting)} finished their branch of the 'scf.if'{at(self.loc)} and wait "
                f"for threads {lane_ranges(busy)} to finish the other branch")


def run_cluster(cluster: Cluster, roots):
    """Run the root groups of the cluster's blocks (and the groups they fork) to the end, or raise DeadlockError."""
    runnable, waiting = deque(roots), []
    idle_rounds = 0
    while True:
        mark = cluster.progress
        while runnable:
            group = runnable.popleft()
            try:
                wait = group.gen.send(None)
            except StopIteration:
                group.done = True
                cluster.progress += 1
                continue
            wait.started(runnable)
            waiting.append((group, wait))
        if not waiting:
            return
        still, spinning = [], True
        for group, wait in waiting:
            if wait.ready():
                runnable.append(group)
                spinning = spinning and wait.spin
            else:
                still.append((group, wait))
        if not runnable:
            raise deadlock(cluster, still)
        idle_rounds = idle_rounds + 1 if spinning and cluster.progress == mark else 0
        if idle_rounds >= SPIN_ROUNDS:
            raise deadlock(cluster, waiting)
        waiting = still


def deadlock(cluster: Cluster, waiting) -> DeadlockError:
    """The report of a cluster where every waiting group waits on something no running group will do."""
    if len(cluster.blocks) == 1:
        lines = [f"deadlock in block {cluster.blocks[0].index}: no thread can make progress"]
        lines += ["  " + wait.describe(group) for group, wait in waiting]
    else:
        blocks = ", ".join(str(b.index) for b in cluster.blocks)
        lines = [f"deadlock in the cluster of blocks {blocks}: no thread can make progress"]
        lines += [f"  block {group.block.index}: " + wait.describe(group) for group, wait in waiting]
    primary = next((w for _, w in waiting if w.primary), waiting[0][1])
    return DeadlockError("\n".join(lines), primary.loc, primary.hint)
