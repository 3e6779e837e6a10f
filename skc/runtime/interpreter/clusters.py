"""Thread-block clusters: a block's cluster index and rank, and the cluster barrier
(barrier.cluster.arrive / barrier.cluster.wait, PTX ISA 9.7.12, barrier.cluster).

The blocks of a cluster run together in one scheduler, each with its own shared memory
(launch.py). The cluster barrier counts, per thread, how many times it has arrived; a thread
that waits after its g-th arrival waits until every thread of every block of the cluster that
has not exited has arrived g times ("all non-exited threads of the cluster").
"""
from __future__ import annotations

import numpy as np

from . import numerics
from .scheduler import Wait, at
from .state import Fault, lane_ranges


def _cluster_id(op, launch):
    dim, result = op.attrs["dim"], op.result
    dtype = numerics.value_dtype(op.result.type)

    def cluster_id(group):
        group.env[result] = np.full(launch.nthreads, group.block.index[dim] // launch.cluster[dim], dtype)
    return cluster_id


def _cluster_rank(op, launch):
    dtype, result = numerics.value_dtype(op.result.type), op.result

    def cluster_rank(group):
        group.env[result] = np.full(launch.nthreads, group.block.rank, dtype)
    return cluster_rank


class ClusterSync:
    """The cluster barrier: arrivals and completed waits of each thread, per block (by rank)."""

    def __init__(self, cluster):
        n = cluster.launch.nthreads
        self.cluster = cluster
        self.arrived = [np.zeros(n, np.int64) for _ in cluster.blocks]
        self.waited = [np.zeros(n, np.int64) for _ in cluster.blocks]

    def behind(self, generation: int) -> list:
        """[(block, mask)] of the threads that have not exited and have arrived fewer than `generation` times."""
        late = []
        for block, arrived in zip(self.cluster.blocks, self.arrived):
            mask = (arrived < generation) & ~block.exited()
            if mask.any():
                late.append((block, mask))
        return late


def _sync(block) -> ClusterSync:
    cluster = block.cluster
    if cluster.sync is None:
        cluster.sync = ClusterSync(cluster)
    return cluster.sync


def _arrive(op, launch):
    def arrive(group):
        sync, rank, mask = _sync(group.block), group.block.rank, group.mask
        again = mask & (sync.arrived[rank] > sync.waited[rank])
        if again.any():
            raise Fault("cluster.arrive twice without a cluster.wait in between (PTX leaves this undefined)",
                        int(np.argmax(again)), hint="pair every cluster.arrive with one cluster.wait")
        sync.arrived[rank][mask] += 1
        group.block.cluster.progress += 1
    return arrive


class ClusterWait(Wait):
    primary = True
    hint = "every thread of every block of the cluster must reach cluster.arrive as many times as the waiting ones"

    def __init__(self, sync, generation: int, op):
        self.sync, self.generation, self.op, self.loc = sync, generation, op, op.loc

    def ready(self) -> bool:
        return not self.sync.behind(self.generation)

    def describe(self, group) -> str:
        late = "; ".join(f"block {block.index} threads {lane_ranges(mask)}" for block, mask in
                         self.sync.behind(self.generation))
        return (f"threads {lane_ranges(group.mask)} wait at the cluster barrier{at(self.loc)} for arrival "
                f"{self.generation} of every thread; not arrived: {late}")


def _wait(op, launch, plan):
    def wait(group):
        sync, rank, mask = _sync(group.block), group.block.rank, group.mask
        unarrived = mask & (sync.arrived[rank] == sync.waited[rank])
        if unarrived.any():
            raise Fault("cluster.wait without a cluster.arrive before it (PTX leaves this undefined)",
                        int(np.argmax(unarrived)), hint="arrive (cluster.arrive) before waiting")
        generation = int(sync.arrived[rank][mask].max())
        sync.waited[rank][mask] = sync.arrived[rank][mask]
        if sync.behind(generation):
            yield ClusterWait(sync, generation, op)
    return wait


EFFECTS = {"cluster.id": _cluster_id, "cluster.rank": _cluster_rank, "cluster.arrive": _arrive}
CONTROL = {"cluster.wait": _wait}
GENERATORS = frozenset(CONTROL)
