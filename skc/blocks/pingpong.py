"""TilePipeline for AMD CDNA: a ring of LDS stages (two: ping-pong) that the *same* waves fill and read,
synchronized by the block barrier (s_barrier) instead of mbarriers. The interface is the Hopper
pipeline's (pipeline.py), with the same compile-time checks on stages:

    with pipe.producer() as prod, pipe.consumer() as cons:
        with prod.acquire() as stage:      # the stage is free for every wave: write it
            load(stage, ...)
        with cons.acquire() as stage:      # every wave's writes to the stage are done: read it
            mma(acc, stage.a, stage.b)

On CDNA a wave cannot wait for another's single arrival, only for the whole block, and one barrier
settles everything issued before it: every stage filled before it is full for every wave, every stage
released before it is free. So the pipeline counts, at run time (uniform scalars), the stages filled
and released, and those counts at the last barrier; an acquire barriers only when its stage is not
settled yet. A loop that reads stage k and then fills stage k + 1 (or fills, then reads) pays one
barrier per k-step: reading k needs the barrier after its filling, which also frees the stage that
k + 1 overwrites (last read at k - 1). The waves cannot wait for themselves: the producer may run at
most `stages` fills ahead of the consumer's releases (a loop that fills further would overwrite a stage
it has not read yet; the Hopper producer would block there): such a fill, or a read of a stage not filled, fails
an assertion at the acquire.
"""
from __future__ import annotations

import skc
from skc import frontend

from .payload import TilePayload
from .pipeline import StageLease, check_not_internal


class LdsPipeline:
    """`stages` copies of `payload` in LDS, filled and read in turn by every wave of the block."""

    def __init__(self, payload: TilePayload, stages: int = 2):
        if stages < 2:
            raise frontend.current().error(f"a pipeline whose waves both fill and read stages needs at least two "
                                           f"stages (ping-pong), found {stages}")
        self.payload = payload.allocate(stages)
        self.stages = stages
        self.filled = skc.i32(0)            # stages the producer has released (written)
        self.released = skc.i32(0)          # stages the consumer has released (read)
        self.filled_at_barrier = skc.i32(0)
        self.released_at_barrier = skc.i32(0)

    def barrier(self):
        """Every wave of the block waits for the others: what was filled or released before is settled."""
        skc.barrier()
        self.filled_at_barrier = self.filled
        self.released_at_barrier = self.released

    def producer(self) -> "LdsProducer":
        return LdsProducer(self)

    def consumer(self, reader=None) -> "LdsConsumer":
        """The consumers' handle. A stage is released when its `with` ends: `reader`, the TileOp reading the
        stages, must have finished its reads by then (`stages_in_flight` 0, as MFMAs: they interlock)."""
        if getattr(reader, "stages_in_flight", 0):
            raise frontend.current().error(
                f"{type(reader).__name__} keeps {reader.stages_in_flight} stages in flight; the LDS ping-pong "
                "pipeline releases each stage when its `with` ends", hint="use a TileOp that reads synchronously")
        return LdsConsumer(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Nothing to wait for: the waves that wrote the stages are the ones that read them."""


class _Ring:
    """One role's place in the ring: the stage it acquires next (a run-time index)."""

    def __init__(self, pipeline: LdsPipeline):
        self.pipeline = pipeline
        self.index = skc.i32(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def __getattr__(self, name):
        check_not_internal(name)
        raise AttributeError(name)

    def acquire(self) -> StageLease:
        return StageLease(self)

    def settle(self, holder):
        """Nothing reads a stage once its `with` ended: the LDS ring's readers read synchronously."""

    def _advance(self):
        self.index += 1
        if self.index == self.pipeline.stages:
            self.index = 0


class LdsProducer(_Ring):
    def _wait_stage(self, index):
        # the stage's previous contents (fill number filled - stages) must have been read by every wave
        pipe = self.pipeline
        # (the waves cannot wait for reads they have not made yet, as a Hopper producer would: a fill further ahead
        # would overwrite a stage before any wave read it)
        assert pipe.filled - pipe.stages < pipe.released, \
            "LdsPipeline: a fill more than `stages` ahead of the reads overwrites a stage no wave has read yet"
        if pipe.filled - pipe.stages >= pipe.released_at_barrier:
            pipe.barrier()

    def _release_stage(self, index):
        self.pipeline.filled += 1


class LdsConsumer(_Ring):
    def _wait_stage(self, index):
        # every wave must have written the stage (fill number `released`)
        pipe = self.pipeline
        assert pipe.released < pipe.filled, "LdsPipeline: a read of a stage no wave has filled yet"
        if pipe.released >= pipe.filled_at_barrier:
            pipe.barrier()

    def _release_stage(self, index):
        self.pipeline.released += 1
