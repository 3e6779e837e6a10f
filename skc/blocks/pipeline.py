"""TilePipeline: a ring of `stages` shared-memory stages between a producer and its consumers,
each stage guarded by a `full` mbarrier (the producer's copies landed) and an `empty` one
(every consumer is done with it), with the phase bit flipping each time round the ring.

Roles hold the protocol; context managers make it impossible to write out of order:

    with InputTilePipeline(payload, stages, load, consumers=2) as pipe:   # the loader says its arrivals
        with pipe.producer() as prod:          # on exit, waits until the consumers released every stage
            with prod.acquire() as stage:      # waits for an empty stage; advances on exit
                load(stage, k, a=row0, b=col0)
        with pipe.consumer(mma) as cons:       # on exit, retires mma's reads and releases the stages it held
            with cons.acquire() as stage:      # waits for a full stage; releases it (now or later) on exit
                mma(acc, stage.a, stage.b)
"""
from __future__ import annotations

import numbers

import skc
from skc import frontend

from . import clusters
from skc.diagnostics import CompileError

from .arguments import Missing, check_has, refuse
from .once import falls_through, note_made, repeated
from .payload import TilePayload
from .roles import WarpgroupTurns, current_role, every_warpgroup_of_role, kernel_consumers


class InputTilePipeline:
    """Stages of `payload` between a producer and `consumers` consumer warpgroups (each arriving once a
    stage). The pipeline knows stages and barriers only: `producer`, the TileIO that fills the stages, says
    how many arrivals complete a stage (`arrivals`: 1 with TMA, whose copies bring the bytes); by default
    one. A `with` over the pipeline closes it on exit."""

    def __init__(self, payload: TilePayload, stages: int, producer=None, consumers: int = 1, cluster: int = 1):
        stages = _compile_time_int(stages, "a pipeline's stages")
        if stages < 1:
            raise frontend.current().error(f"a pipeline needs at least one stage, found {stages}",
                                           hint="give stages=2 or more: the producer fills one while a consumer "
                                                "reads another")
        # (each consumer warpgroup, of each block of the cluster, arrives once on a stage's empty barrier: a count of
        # 0 would complete it at once, a fraction or a flag would be rounded)
        for name, count in (("consumers", consumers), ("cluster", cluster)):
            if _compile_time_int(count, f"a pipeline's {name}") < 1:
                raise frontend.current().error(f"a pipeline's {name} is a count of 1 or more, found {count}",
                                               hint=f"give {name}=1 or more" + (" (the consumer warpgroups that "
                                                    "release each stage)" if name == "consumers" else ""))
        clusters.check_kernel_cluster(f"InputTilePipeline(..., cluster={cluster})", cluster,
                                      "make the pipeline with cluster=1 (no loader multicasting)")
        check_has("InputTilePipeline", "payload", payload, ("allocate", "tiles"), "a TilePayload (what a stage holds)",
                  "InputTilePipeline(payload, stages, load, consumers=...) with payload = TilePayload(a=OperandLayout("
                  "...), ...)")
        if producer is not None:
            check_has("InputTilePipeline", "producer", producer, ("arrivals",), "the loader that fills the stages "
                      "(it says its `arrivals`)", "InputTilePipeline(payload, stages, load, ...) with the "
                      "loader made for the payload (TmaLoader(payload, a=..., b=...)), or leave it out")
        self.payload = payload.allocate(stages)
        self.stages = stages
        self.consumers = consumers
        self.cluster = cluster  # blocks whose producers multicast into each other's stages
        self.consumer_threads = skc.current_target().warpgroup_size  # a consumer is a warpgroup
        self.longest_run, self.deepest_lag = 0, 0   # of the producer's runs, of the consumers' readers (check_room)
        self.full = skc.shared((stages,), skc.u64, align=8)
        self.empty = skc.shared((stages,), skc.u64, align=8)
        self.arrivals = producer.arrivals if producer is not None else 1
        note_made(self, "producer", "consumer")
        if skc.thread_index() == 0:
            for s in skc.static_range(stages):
                skc.hopper.mbarrier_init(self.full + s, self.arrivals)
                # with multicast, a stage is free once the consumers of every block of the cluster released it
                skc.hopper.mbarrier_init(self.empty + s, consumers * cluster)
            skc.hopper.fence_mbarrier_init()
        self.sync()

    def sync(self):
        """Every thread of the block (of the cluster, with multicast) waits for the others."""
        role = current_role()
        if role is not None:   # (the other role's threads never arrive: a deadlock)
            raise frontend.current().error(
                f"pipe.sync() waits for every thread of the block, and this code runs as the {role} only: the "
                "other role's threads never arrive (a hang)", hint="sync where the whole block runs, outside "
                "`if roles.is_producer():` and its else")
        if self.cluster > 1:
            skc.hopper.cluster_sync()
        else:
            skc.barrier()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """End of the kernel: with multicast, no block may exit while its peers can still write to it."""
        if self.cluster > 1:
            skc.hopper.cluster_sync()

    @frontend.host   # (plain Python: a record of the whole kernel's handles, kept across its run-time branches)
    def check_room(self, run: int = 0, lag: int = 0):
        """A producer's run of stages waits for all of them to be empty before it fills one, while a consumer's
        reader keeps its last `lag` stages until it has issued a later one: a run longer than the stages a lag
        leaves would wait for ever. Checked as each is made (whichever comes second names the first)."""
        self.longest_run, self.deepest_lag = max(self.longest_run, run), max(self.deepest_lag, lag)
        if self.longest_run + self.deepest_lag > self.stages:
            raise frontend.current().error(
                f"the producer takes runs of {self.longest_run} stages and a consumer's reader keeps "
                f"{self.deepest_lag} in flight, more than the pipeline's {self.stages}: the run would wait for a "
                f"stage the consumer holds until the run fills the next one",
                hint=f"give the pipeline {self.longest_run + self.deepest_lag} stages, or take runs of at most "
                     f"{self.stages - self.deepest_lag}")

    def acquire(self, count: int = 1):
        """(No stage is acquired from the pipeline itself: from a role's handle.)"""
        raise frontend.current().error(
            "stages are acquired from a role's handle, not from the pipeline",
            hint="`with pipe.producer() as producer:` then `with producer.acquire() as stage:` (or pipe.consumer() "
                 "in the consumers' branch)")

    def producer(self) -> "ProducerRole":
        _check_role(self, "producer")
        _check_one_handle(self, "producer")
        return ProducerRole(self)

    def consumer(self, reader=None) -> "ConsumerRole":
        """The consumers' handle. `reader`, the TileOp that reads the stages, may keep reading a stage after
        its `with` ended: it says how many stages it keeps in flight (`stages_in_flight`) and retires its
        reads on request (`retire(pending)`: wait until at most `pending` stages' reads still run)."""
        _check_role(self, "consumer")
        _check_one_handle(self, "consumer")
        return ConsumerRole(self, reader)


def _check_role(pipeline, wanted: str):
    role = current_role()
    if role is not None and role != wanted:
        raise frontend.current().error(
            f"the pipeline's {wanted} handle is taken in code that runs as the {role}",
            hint=f"take pipe.{role}() in the {role} branch, pipe.{wanted}() in the {wanted} branch")


@frontend.host
def _check_one_handle(pipeline, role: str):
    """A role's handle holds its place in the ring (the stage index and the phase, run-time values that start at stage
    0, phase 0): a second handle of the role, or one taken anew each iteration of a run-time loop, starts the ring
    again while the other side has moved on, and waits for a phase that never comes (or takes a stage out of turn)."""
    found = repeated(pipeline, role)
    if found is None:
        return
    made_at, earlier = found
    what = (f"a second {role} handle of the pipeline made at {made_at} (the first is taken at {earlier[0]}"
            f"{falls_through(earlier)})" if earlier is not None else
            f"the {role} handle of the pipeline made at {made_at} is taken in a run-time loop the pipeline is made "
            "outside of (a new handle each iteration)")
    stuck = ("the consumers wait for a phase the producer already passed or never fills (a hang), or read a stage "
             "before it is filled" if role == "consumer" else
             "the producer waits for a phase the consumers never release (a hang), or refills a stage they still read")
    raise frontend.current().error(
        f"{what}: a handle keeps the {role}'s place in the ring, and each new one starts again at stage 0 (phase 0) "
        f"where the other side has moved on, so {stuck}",
        hint=f"take the pipeline's {role} handle once and acquire every stage from it: `with pipe.{role}("
             f"{'mma' if role == 'consumer' else ''}) as {role}:` around the tile loop (in the {role}'s branch)" +
             ("; or, where each warpgroup takes its own, keep the first's path from reaching this one: end its "
              "branch with `return`, or take this one in that `if`'s `else`" if earlier is not None and earlier[1]
              else ""))


@frontend.host
def _check_drains_once(role):
    """The producer's `with` drains the ring on exit (it waits for every stage to be empty, stepping its place a whole
    lap on): entered again, on a path that ran it before or each iteration of a run-time loop, its fills come a lap
    ahead of the consumers' waits, and both wait for each other (a hang)."""
    found = repeated(role, "entered")
    if found is None:
        return
    earlier = found[1]
    raise frontend.current().error(
        "the producer handle's `with` is entered " + (f"again (first at {earlier[0]}{falls_through(earlier)})"
                                                      if earlier is not None else
                                                      "in a run-time loop the handle is taken outside of (once an "
                                                      "iteration)") +
        ": each `with` drains the ring on exit (waits for every stage to be released, moving the producer's place a "
        "whole lap on), so the fills after it come a lap ahead of the consumers, and each side waits for the other "
        "(a hang)",
        hint="enter the producer's handle once, around the loops: `with pipe.producer() as producer:` before `for tile "
             "in tiles:`")


# the handles' steps of the ring protocol (private methods `_wait_stage`, ...): named by a user, a clear error
INTERNAL_STEPS = ("wait_stage", "release_stage", "release_held", "advance", "drain", "arrive")


def check_not_internal(name: str, skips: bool = False) -> None:
    """A ring's own step (INTERNAL_STEPS) asked of a role's handle by the user's code is an error (by hand, a stage is
    released twice, or one never acquired: the other side runs ahead, or waits for ever); `skips` says the handle's
    consumers can leave stages to others (consumer.skip)."""
    if name in INTERNAL_STEPS:
        raise Missing(f"a pipeline handle's '{name}' is the pipeline's own step, not the user's: a stage is waited "
                      "for when it is acquired and released when its `with` ends (by hand, it is released twice, "
                      "or one never acquired: the other side runs ahead, or waits for ever)",
                      hint="acquire and release stages only by `with handle.acquire() as stage:`"
                           + ("; consumers that leave stages to others call consumer.skip(n)" if skips else ""))


class _Role:
    """Where this role is in the ring: the stage index and the phase bit (run-time values)."""

    def __init__(self, pipeline: InputTilePipeline):
        self.pipeline = pipeline
        self.index = skc.i32(0)
        self.phase = skc.i32(0)

    def __enter__(self):
        return self

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        check_not_internal(name, skips=True)
        raise Missing(f"a pipeline's {type(self).__name__[:-4].lower()} handle holds no stage, so no '{name}'",
                      hint=f"acquire a stage from it: `with handle.acquire() as stage:`, then stage.{name}")

    def acquire(self, count: int = 1):
        """The next stage (a StageLease), or the next `count` stages together (a StageRun: a TileOp that reads
        several stages at once, its MMAs of one in flight while it works on another's)."""
        count = _compile_time_int(count, "acquire(count)")
        if frontend.with_ended(self) and not frontend.inside_with(self):
            raise frontend.current().error(
                "this pipeline handle is used after its `with pipe.producer()` / `with pipe.consumer()` block ended "
                "(the producer drained its stages there; the consumer released what it held)",
                hint="acquire stages inside the handle's `with` block")
        return StageLease(self) if count == 1 else StageRun(self, count)

    def settle(self, holder):
        """Before a stage (or a run) held by `holder` is released: nothing may still read it (the consumer's)."""

    def _advance(self):
        self.index += 1
        if self.index == self.pipeline.stages:
            self.index = 0
            self.phase ^= 1


class ProducerRole(_Role):
    def __init__(self, pipeline: InputTilePipeline):
        super().__init__(pipeline)
        note_made(self, "entered")

    def __enter__(self):
        _check_drains_once(self)
        return self

    def _wait_stage(self, index):
        # The first time round, every stage is free: waiting for parity 1 returns at once.
        skc.hopper.mbarrier_wait(self.pipeline.empty + index, self.phase ^ 1)

    def _release_stage(self, index):
        pass  # the copies complete the full barrier themselves (transaction bytes)

    def __exit__(self, *exc):
        _check_filled(self)
        self._drain()

    def _drain(self):
        """Wait until the consumers have released every stage, so the producer's block cannot exit
        (and its shared memory vanish) while copies it issued are still being read."""
        for _ in skc.static_range(self.pipeline.stages):
            self._wait_stage(self.index)
            self._advance()


class Held:
    """A stage index a consumer still holds (-1: none), as an attribute so it lives in a run-time variable."""

    def __init__(self, index):
        self.index = index


class ConsumerRole(_Role):
    """Waits for full stages and releases them. A `reader` with `stages_in_flight` = L > 0 may still read
    the last L stages when their `with` ends: a stage is released once L later stages were issued and
    the reader retired all but L of them (its own policy, behind `retire`). Without a reader a stage is released
    when its `with` ends, once the wgmma groups that read its tiles completed (`settle`)."""

    def __init__(self, pipeline: InputTilePipeline, reader=None):
        super().__init__(pipeline)
        _check_consumers(pipeline, kernel_consumers())
        self.takes_turns = False   # (skip() sets it: the consumers take stages in turn, each fewer than all)
        self.waited_outside_turns = False   # (a wait for a stage outside an open WarpgroupTurns: _check_turns)
        if reader is not None:
            check_has("pipe.consumer", "reader", reader, ("retire",), "the TileOp that reads the stages (it says "
                      "`retire(pending)`)", "pipe.consumer(mma) with the stages' MMA TileOp, or pipe.consumer() "
                      "without one")
        self.reader = reader
        self.lag = getattr(reader, "stages_in_flight", 0)
        if self.lag >= pipeline.stages:
            raise frontend.current().error(
                f"the reader keeps {self.lag} stage(s) in flight, and the pipeline has {pipeline.stages}: the consumer "
                "would wait for a stage it still holds", hint="give the pipeline more stages")
        pipeline.check_room(lag=self.lag)
        self.held = [Held(skc.i32(-1)) for _ in range(self.lag)]  # oldest first

    def _wait_stage(self, index):
        _check_turns(self, "wait")
        skc.hopper.mbarrier_wait(self.pipeline.full + index, self.phase)

    def settle(self, holder):
        # Without a reader that keeps stages in flight, the MMAs issued on the stage must have completed: where
        # the code did not retire them itself, the release waits for them (wgmma reads shared memory
        # asynchronously: a refill would land under it).
        if not self.lag and holder.async_reads is not None:
            holder.async_reads.settle()

    def _release_stage(self, index):
        if not self.lag:
            self._arrive(index)
            return
        self.reader.retire(self.lag)  # the reads of the oldest stage held back have completed
        oldest = self.held[0]
        if oldest.index >= 0:
            self._arrive(oldest.index)
        for i in skc.static_range(self.lag - 1):
            self.held[i].index = self.held[i + 1].index
        self.held[self.lag - 1].index = index

    def skip(self, steps):
        """Leave the next `steps` (a run-time count) stages to the other consumers (warpgroups that take tiles in
        turn): release the stages this one still holds, once its reader retired them, and move past those. With
        more than one consumer warpgroup, the handle's waits for stages must be inside WarpgroupTurns (_check_turns)."""
        consumers = kernel_consumers()
        if consumers == 1:
            raise frontend.current().error(
                "consumer.skip leaves stages to the other consumer warpgroups, and the kernel's WarpRoles has one: no "
                "one would read or release the stages skipped, and the producer would wait for them for ever",
                hint="read every stage (no skip); pingpong consumers that take the stages in turn need WarpRoles of "
                     "2 or more")
        self._release_held()
        _takes_turns(self)
        _check_turns(self, "skip")
        position = self.index + steps
        self.phase ^= (position // self.pipeline.stages) & 1
        self.index = position % self.pipeline.stages

    def _arrive(self, index):
        # one arrival per consumer warpgroup (its first thread), on the stage's empty barrier in every
        # block of the cluster (their producers multicast into this block's stage too)
        if skc.thread_index() % self.pipeline.consumer_threads == 0:
            if self.pipeline.cluster == 1:
                skc.hopper.mbarrier_arrive(self.pipeline.empty + index)
            else:
                for peer in skc.static_range(self.pipeline.cluster):
                    skc.hopper.mbarrier_arrive_cluster(self.pipeline.empty + index, peer)

    def __exit__(self, *exc):
        self._release_held()
        _check_readers(self, kernel_consumers())

    def _release_held(self):
        """Release the stages the reader may still have been reading, once it retired all its reads."""
        if self.lag:
            self.reader.retire(0)
            for held in self.held:
                if held.index >= 0:
                    self._arrive(held.index)
                held.index = -1


class StageLease:
    """One acquired stage. Its tiles (`stage.a`, ...) and barrier (`stage.full`) exist only inside
    the `with` that acquired it."""

    def __init__(self, role: _Role, run=None):
        self.role = role
        self.index = role.index
        self.entered = False
        self.run = run   # the StageRun this stage was acquired in, if any
        self.async_reads = None   # (an InFlight: the last MMAs issued on its tiles, which read them asynchronously)

    def __enter__(self):
        if self.entered:
            raise frontend.current().error(
                "this stage was entered by a `with` already: a lease holds one stage, once",
                hint="acquire again (`with cons.acquire() as stage:`) for the next stage")
        self.entered = True
        if self.run is None:
            _one_stage_at_a_time(self.role)
        _note_acquired(self)
        self.role._wait_stage(self.index)
        return self

    def __exit__(self, *exc):
        self.role.settle(self)
        self.role._release_stage(self.index)
        self.role._advance()


    @property
    def full(self):
        self._check()
        return self.role.pipeline.full + self.index

    def stage(self, i: int) -> "StageLease":
        """Stage i of a run of one: `acquire(n)` gives this lease for n = 1, its own stage 0, so code that reads
        `run.stage(i)` for i < n needs no case of its own where n is 1."""
        i = _compile_time_int(i, "run.stage(i)")
        self._check()
        if i != 0:
            raise frontend.current().error(f"this lease holds 1 stage (acquire() or acquire(1)); stage({i}) is none "
                                           "of them", hint="stage(0) is the lease itself; acquire(n) holds n stages")
        return self

    @property
    def arrivals(self) -> int:
        """How many arrivals complete the stage's full barrier: its pipeline's producer's (1 without one)."""
        return self.role.pipeline.arrivals

    @property
    def cluster(self) -> int:
        """How many blocks' consumers release the stage before it is free: its pipeline's cluster."""
        return self.role.pipeline.cluster

    @property
    def holder(self):
        """What the stage is held by: its `with` (the lease itself, or the run it was acquired in)."""
        return self.run or self

    def __getattr__(self, name):
        if name.startswith("_") or name in ("role", "index", "entered", "run", "async_reads"):
            raise AttributeError(name)
        self._check()
        tiles = self.role.pipeline.payload.tiles(self.index, lease=self.holder)
        if name not in tiles:
            raise Missing(f"a stage holds the payload's tiles {', '.join(tiles)}; it has no tile '{name}'",
                          hint=f"read one of them (stage.{next(iter(tiles))}), or add '{name}' to the TilePayload")
        return tiles[name]

    def _check(self):
        _note_used(self)
        if not frontend.inside_with(self.holder):
            raise frontend.current().error(
                "a pipeline stage is used outside `with ....acquire() as stage:`" if not self.entered else
                "a pipeline stage is used after its `with ....acquire()` block ended",
                hint="acquire stages only as `with prod.acquire() as stage:` / `with cons.acquire() as stage:`")


class StageRun:
    """`count` consecutive stages acquired together (`with cons.acquire(2) as run:`, then `run.stage(i)`): each is
    waited for in order, all are held until the `with` ends, then released in order."""

    def __init__(self, role: _Role, count: int):
        lag = getattr(role, "lag", 0)   # the stages the consumer's reader still holds when a run begins
        room = role.pipeline.stages - lag
        if not 1 <= count <= room:
            raise frontend.current().error(
                f"a run of stages holds 1 to {room} (the pipeline's {role.pipeline.stages} stages, less the {lag} its "
                f"reader keeps in flight), not {count}: the stages it waits for would never come",
                hint=f"acquire({max(1, min(count, room))}), or give the pipeline {count + lag} stages")
        if isinstance(role, ProducerRole):
            role.pipeline.check_room(run=count)
        self.role = role
        self.count = count
        self.leases = []   # made when the run is entered (anew each time)
        self.async_reads = None   # (as a StageLease's: the run's tiles are its stages')

    def __enter__(self):
        _one_stage_at_a_time(self.role)
        self.leases = []
        for _ in skc.static_range(self.count):
            lease = StageLease(self.role, run=self)
            _note_acquired(lease)
            self.role._wait_stage(lease.index)
            lease.entered = True
            self.leases.append(lease)
            self.role._advance()
        return self

    def __getattr__(self, name):
        if name.startswith("_") or name in ("role", "count", "leases", "async_reads"):
            raise AttributeError(name)
        raise Missing(f"a run of {self.count} stages has no '{name}' of its own: its stages have their tiles",
                      hint=f"read stage i's: run.stage(i).{name} (i from 0 to {self.count - 1})")

    def stage(self, i: int) -> StageLease:
        i = _compile_time_int(i, "run.stage(i)")
        if not frontend.inside_with(self):
            raise frontend.current().error("a run's stages are used outside `with ....acquire(n) as run:`")
        if not 0 <= i < self.count:
            raise frontend.current().error(f"this run holds {self.count} stages; stage({i}) is none of them",
                                           hint=f"run.stage(i) for i from 0 to {self.count - 1}")
        return self.leases[i]

    def __exit__(self, *exc):
        self.role.settle(self)
        for i in skc.static_range(self.count):
            self.role._release_stage(self.leases[i].index)



@frontend.host
def _check_consumers(pipeline, kernel):
    """A pipeline of more consumers than the kernel's WarpRoles has: its stages would never be released."""
    if kernel is not None and pipeline.consumers > kernel:
        raise frontend.current().error(
            f"the pipeline waits for {pipeline.consumers} consumer warpgroups to release each stage; the kernel's "
            f"WarpRoles has {kernel}, so a stage would never be free again (a hang)",
            hint=f"make the pipeline with consumers={kernel} (the warpgroups that release each stage)")


@frontend.host
def _takes_turns(role):
    role.takes_turns = True   # (plain Python: a compile-time fact, set inside run-time loops)


@frontend.host
def _check_turns(role, doing: str):
    """Consumer warpgroups that take the stages in turn (`skip`) wait for each stage inside WarpgroupTurns. An mbarrier
    wait knows a phase by its parity only: a consumer that skipped to a stage of a later lap than the producer has
    filled (or the previous lap's fill has not yet completed) passes on that earlier lap's phase, and reads a stage
    before it is filled (or another consumer's tile) with no error anywhere: a silent wrong answer on a GPU, a
    deadlock in the interpreter only sometimes. Its turn comes once the consumers before it have waited for every
    earlier stage, so every earlier fill has completed. Checked at whichever of the two comes second in the kernel's
    code: the skip, or a wait outside the turns."""
    consumers = kernel_consumers()
    if consumers is None or consumers < 2:
        return
    if doing == "wait":
        if any(isinstance(m, WarpgroupTurns) and m.consumers > 1 for m in frontend.open_withs()):
            return
        role.waited_outside_turns = True
        if not role.takes_turns:
            return
    elif not role.waited_outside_turns:
        return
    raise frontend.current().error(
        f"the kernel's {consumers} consumer warpgroups take the pipeline's stages in turn (consumer.skip), and this "
        f"{'consumer waits for a stage' if doing == 'wait' else 'consumer skips stages, waiting for them'} outside "
        "WarpgroupTurns: an mbarrier wait knows a stage's phase by its parity only, so a consumer that skipped ahead "
        "of the producer by a lap passes on the earlier lap's phase and reads the stage before it is filled (a silent "
        "wrong answer on a GPU)",
        hint=f"take the stages in turns: `turns = WarpgroupTurns({consumers}, warpgroup)` and `with turns:` around "
             "each consumer's acquires of a tile (as the GEMM's pingpong does), or let every consumer read every stage "
             f"(no skip; InputTilePipeline(..., consumers={consumers}))")


@frontend.host
def _check_readers(role, kernel):
    """Where every consumer warpgroup of the kernel runs a consumer handle that never skips (each reads, and
    releases, every stage), the pipeline counts them all: with fewer, a stage's empty barrier would complete before
    the last of them released it. Consumers that take stages in turn (pingpong: `skip`) release fewer, by design."""
    pipeline = role.pipeline
    if (kernel is not None and pipeline.consumers < kernel and not role.takes_turns
            and current_role() == "consumer" and every_warpgroup_of_role()):
        raise frontend.current().error(
            f"each of the kernel's {kernel} consumer warpgroups reads and releases every stage, and the pipeline "
            f"waits for {pipeline.consumers} release(s) a stage: a stage would be refilled while a consumer still "
            f"reads it (or its barrier's phases run ahead of the consumers: a hang)",
            hint=f"make the pipeline with consumers={kernel}; consumers that take the stages in turn skip the others' "
                 "(consumer.skip(n))")


def _rows_read() -> dict:
    """Of this compilation: {id(pipeline): [pipeline, {(A tile rows, part rows): (parts, MMAs, where)}, {id(consumer
    handle): handle}]}, the parts of its stages' A tiles that MMAs read (note_rows_read)."""
    return frontend.current().facts(__name__ + ".rows_read")


@frontend.host
def note_rows_read(tile, part, rows: int):
    """An MMA reads a part of `rows` rows of a stage's A tile: part `part` (a compile-time index), or, `part` the MMA
    TileOp where its index is a run-time value, one part for each warpgroup that runs it (which one is not known)."""
    role = getattr(getattr(tile, "lease", None), "role", None)
    tile_rows = getattr(getattr(tile, "layout", None), "rows", None)
    if not isinstance(role, ConsumerRole) or not isinstance(tile_rows, int) or tile_rows <= rows:
        return
    pipeline = role.pipeline
    record = _rows_read().get(id(pipeline))
    if record is None or record[0] is not pipeline:
        record = _rows_read()[id(pipeline)] = [pipeline, {}, {}]
        # (checked once the whole kernel is compiled: each warpgroup may take its own handle, the first in a branch
        # that returns before the others are compiled)
        frontend.current().at_end(lambda: _check_rows_covered(record))
    record[2][id(role)] = role
    parts, ops, where = record[1].setdefault((tile_rows, rows), ({}, {}, frontend.current().loc))
    if isinstance(part, int):
        parts[part] = part
    else:
        ops[id(part)] = part


def _check_rows_covered(record):
    """The MMAs of the consumers read every part of the stages' A tiles (a part no one multiplies leaves its rows of
    each output tile never computed, and the store writes whatever the registers held), over all the pipeline's
    consumer handles (each warpgroup may take its own). A compile-time part is one; an MMA of a run-time part covers
    at most one part for each consumer warpgroup that runs it (one, where the consumers take whole tiles in turn)."""
    kernel = kernel_consumers()
    turns = any(role.takes_turns for role in record[2].values())
    for (tile_rows, rows), (parts, ops, where) in record[1].items():
        wanted = tile_rows // rows
        if ops and kernel is None:   # (no WarpRoles: how many warpgroups run them is not known)
            continue
        at_most = len(parts) + len(ops) * (1 if turns else (kernel or 1))
        if at_most >= wanted:
            continue
        missing = [part for part in range(wanted) if part not in parts]
        raise CompileError(
            "the consumers' MMAs multiply " +
            (f"{_parts(sorted(parts), rows)} of the stages' {tile_rows}-row A tiles, and {_parts(missing, rows)} none"
             if not ops else f"at most {at_most} of the {wanted} parts of {rows} rows of the stages' {tile_rows}-row A "
             f"tiles (each warpgroup one part an MMA)") + ": rows of each output tile are never computed", where,
            hint=f"give each consumer warpgroup its own part, Wgmma(..., warpgroup=roles.consumer_index()) with "
                 f"WarpRoles({wanted}), or multiply every part in each (a StackedWgmma of {wanted} parts)")


def _parts(parts: list, rows: int) -> str:
    return ", ".join(f"rows {rows * part} to {rows * part + rows - 1}" for part in parts) or "no rows"


def check_stage(loader: str, stage):
    """A loader fills one stage: a `with producer.acquire() as stage:` lease (a run's stages one at a time), once."""
    if isinstance(stage, StageLease):
        note_fill(stage, loader)
        return
    if isinstance(stage, StageRun):
        refuse(loader, "stage", "one stage", stage, f"fill each stage of the run: for i in skc.static_range("
               f"{stage.count}): load(run.stage(i), ...)")
    if isinstance(stage, (_Role, InputTilePipeline)):
        refuse(loader, "stage", "a stage", stage, "acquire one from the producer's handle: `with producer.acquire() "
               "as stage:`, then load(stage, k, ...)")
    if isinstance(stage, frontend.Dyn) or not hasattr(stage, "full"):
        refuse(loader, "stage", "a pipeline stage (`with producer.acquire() as stage:`)", stage,
               "pass the stage the producer's handle acquired: load(stage, k, a=..., b=...)")


def _fills() -> dict:
    """Of this compilation: {id(lease): (lease, where its with is, [run-time scopes of its fills], used)}."""
    return frontend.current().facts(__name__ + ".fills")


@frontend.host
def _note_acquired(lease):
    if isinstance(lease.role, ProducerRole):
        _fills()[id(lease)] = [lease, frontend.current().loc, [], False]


@frontend.host
def _note_used(lease):
    record = _fills().get(id(lease))
    if record is not None and record[0] is lease:
        record[3] = True


@frontend.host
def note_fill(lease, loader: str):
    """A loader fills the producer's stage `lease`: once on any path (a second fill arrives on its full barrier
    again and expects its bytes again: the phase completes early or never)."""
    record = _fills().get(id(lease))
    if record is None or record[0] is not lease:
        return
    scope = frontend.runtime_scope()
    if any(scope[:len(earlier)] == earlier for earlier in record[2]):
        raise frontend.current().error(
            f"{loader} fills a stage it already filled: the second fill arrives on the stage's full barrier again "
            "(and expects its bytes again), so the barrier's phase completes early or never (a hang)",
            hint="load each stage once: acquire the next one (`with producer.acquire() as stage:`) for more")
    record[2].append(scope)


@frontend.host
def _check_filled(role):
    """Every stage the producer acquired is filled, or used by the producer's own code: a stage released unfilled
    never completes its full barrier, and the consumers wait for it for ever."""
    for lease, where, fills, used in list(_fills().values()):
        # (a `return` inside the stage's own `with` leaves before its fill: that path's stage is the with's to judge)
        if lease.role is role and not fills and not used and not frontend.inside_with(lease.holder):
            raise CompileError(
                "this stage is acquired by the producer and released to the consumers unfilled (no loader call and "
                "no use of its tiles or its full barrier): its full barrier never completes, and the consumers wait "
                "for it for ever", where,
                hint="fill it in the `with`: load(stage, k, a=..., b=...) with the pipeline's loader")


def _one_stage_at_a_time(role):
    """A lease's or run's `with` begins: one at a time per handle (nested, the inner one would wait for the stage
    the outer one holds)."""
    if any(isinstance(m, (StageLease, StageRun)) and m.role is role for m in frontend.open_withs()):
        raise frontend.current().error(
            "this handle already holds a stage in an enclosing `with ....acquire()`: the inner acquire would wait "
            "for that same stage",
            hint="acquire the next stage after the first `with` ends, or several together with acquire(n)")


def _compile_time_int(value, what: str) -> int:
    """value as a Python int (numpy's integers too); a run-time value or another type is a compile error."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise frontend.current().error(f"{what} takes a compile-time int, found {value!r}",
                                       hint="give a Python int (a constexpr), not a run-time value, a float or a "
                                            "tuple")
    return int(value)
