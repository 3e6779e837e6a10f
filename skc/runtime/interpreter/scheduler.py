"""The scheduler of one block: runs thread groups (generators) until each blocks or ends,
wakes the blocked groups whose wait is over, and reports a deadlock when none can move.

A group blocks by yielding a Wait. Waits are the extension point for ops that block on a
condition (barriers now; mbarrier phases, transaction counts and cluster syncs later): a
Wait says when it is over (`ready`, polled when no group can run) and what it waits on
(`describe`, for deadlock reports), and may start other groups when it begins (`started`).
"""
from __future__ import annotations

from collections import deque
from typing import Optional

import numpy as np

from ...diagnostics import DeadlockError, Location, user_location
from .state import BlockState, Group, lane_ranges


def at(loc: Optional[Location]) -> str:
    """' at FILE:LINE' of the user's code, or nothing when the op has no location."""
    shown = user_location(loc)
    return f" at {shown.file}:{shown.line}" if shown is not None else ""


class Wait:
    """What a blocked group waits for."""

    loc: Optional[Location] = None
    hint = ""
    primary = False   # a deadlock report points at the first primary wait (a barrier rather than a join)

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
        return (f"threads {lane_ranges(waiting)} finished their branch of the 'scf.if'{at(self.loc)} and wait "
                f"for threads {lane_ranges(busy)} to finish the other branch")


def run_block(block: BlockState, root: Group):
    """Run the root group (and the groups it forks) to the end, or raise DeadlockError."""
    runnable, waiting = deque([root]), []
    while True:
        while runnable:
            group = runnable.popleft()
            try:
                wait = group.gen.send(None)
            except StopIteration:
                group.done = True
                continue
            wait.started(runnable)
            waiting.append((group, wait))
        if not waiting:
            return
        still = []
        for group, wait in waiting:
            if wait.ready():
                runnable.append(group)
            else:
                still.append((group, wait))
        if not runnable:
            raise deadlock(block, still)
        waiting = still


def deadlock(block: BlockState, waiting) -> DeadlockError:
    """The report of a block where every waiting group waits on something no running group will do."""
    lines = [f"deadlock in block {block.index}: no thread can make progress"]
    lines += ["  " + wait.describe(group) for group, wait in waiting]
    primary = next((w for _, w in waiting if w.primary), waiting[0][1])
    return DeadlockError("\n".join(lines), primary.loc, primary.hint)
