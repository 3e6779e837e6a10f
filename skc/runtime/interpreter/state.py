"""Execution state: the facts of one launch, the state of the block being run, and thread groups.

A thread group is a set of the block's threads (a boolean mask over lanes; lane = linear
thread index, x fastest) running the same code together as one Python generator. Values are
numpy arrays with one entry per lane of the block; only the entries of a group's active lanes
mean anything. Side effects are masked by the active lanes.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...diagnostics import InterpreterError, Location

# Per-lane jump codes (BlockState.jump): 0 runs, RETURN left the kernel; each labeled
# construct gets a pair of codes for break and continue from the plan.
RUNNING, RETURN = 0, 1

# The step budget: loop iterations (back-edges) one block may run, summed over its thread groups, before the
# interpreter stops with InterpreterLimitError (an endless loop would otherwise never end). About 10 s of a
# trivial loop; SKC_INTERPRETER_STEPS or run(max_steps=...) change it.
DEFAULT_MAX_STEPS = 1_000_000


class Fault(Exception):
    """A thread did something the interpreter stops for; the executor adds the op's location,
    the block and the thread (`lane`, a linear thread index, when one thread is to blame)."""

    def __init__(self, message: str, lane: Optional[int] = None, hint: str = ""):
        super().__init__(message)
        self.message, self.lane, self.hint = message, lane, hint


class Launch:
    """What stays fixed over one run: the grid, the block and cluster shapes, the target, memory, per-lane ids."""

    def __init__(self, function, grid, block, target, memory, cluster=(1, 1, 1), max_steps: int = 0):
        self.function, self.grid, self.block, self.target, self.memory = function, grid, block, target, memory
        self.cluster = cluster
        self.max_steps = max_steps or DEFAULT_MAX_STEPS   # loop iterations a block may run (BlockState.steps)
        self.nthreads = block[0] * block[1] * block[2]
        self.warp_size = target.warp_size
        self.shared_bytes = int(function.attrs.get("shared_bytes", 0))
        lanes = np.arange(self.nthreads)
        self.lanes = lanes
        self.thread_ids = tuple(a.astype(np.int32) for a in (lanes % block[0], lanes // block[0] % block[1],
                                                              lanes // (block[0] * block[1])))
        self.lane_ids = (lanes % self.warp_size).astype(np.int32)
        self.all_lanes = np.ones(self.nthreads, bool)
        self.no_lanes = np.zeros(self.nthreads, bool)
        self.grid_dims = tuple(np.full(self.nthreads, g, np.int32) for g in grid)
        # The static shared-memory buffers (mem.shared ops) by offset, to name addresses in reports.
        self.shared_buffers = sorted((op for op in function.walk() if op.name == "mem.shared"),
                                     key=lambda op: op.attrs["offset"])
        self.races = False   # whether shared-memory races between warps are checked (races.py; set by the plan)
        # whether a shuffle reading a lane that is not active, or a collective whose lanes no member mask names run
        # by part of a warp, stops the kernel (warp.py): a tool that studies which lanes run together rather than
        # the values they read (tests/ir/convergence_oracle.py) turns it off
        self.collectives_checked = True
        self.named_collectives = None   # the collectives whose member mask the backend names (warp.py; by the plan)
        self.undefined = False   # whether a shuffle read a lane that was not active (undefined.py follows its value)

    def thread_of(self, lane: int) -> tuple:
        return tuple(int(ids[lane]) for ids in self.thread_ids)


class Slot:
    """The storage of a `var.alloc`: one value per lane, replaced (never changed in place) by stores."""

    __slots__ = ("value",)

    def __init__(self, value: np.ndarray):
        self.value = value


class Cluster:
    """Blocks that run together in one scheduler (a thread-block cluster; a lone block is a cluster of one).

    `blocks` are in rank order (x fastest). `progress` counts changes of synchronization state
    (arrivals, phases, transaction bytes, finished groups): the scheduler reads it to tell a
    spin loop that waits for another thread from one that waits forever.
    """

    def __init__(self, launch: Launch, index: tuple):
        self.launch, self.index = launch, index
        self.blocks: list = []
        self.progress = 0
        self.sync = None   # the cluster barrier's state (clusters.py), made on first use


class BlockState:
    """One block's state while it runs: its index, cluster and rank, shared memory, jump codes and barriers
    (`barriers`: bar.sync ids; `mbarriers`: mbarrier state by shared address)."""

    def __init__(self, launch: Launch, index: tuple, shared, cluster: Optional[Cluster] = None):
        self.launch, self.index, self.shared = launch, index, shared   # shared: the block's memory.Segment
        if cluster is None:
            cluster = Cluster(launch, index)
        self.cluster, self.rank = cluster, len(cluster.blocks)
        cluster.blocks.append(self)
        self.jump = np.zeros(launch.nthreads, np.int32)
        self.steps = 0     # loop iterations run so far, against step_budget
        self.step_budget = launch.max_steps   # launch.max_steps for each root group (set by launch)
        self.barriers: dict = {}
        self.mbarriers: dict = {}
        # TMA stores whose shared source the copy engine may still read (tma.py): by issuing lane, the open
        # group's and each committed group's shared byte addresses; `reading`, their union (None: none pending)
        self.bulk_reads: dict = {}
        self.last_bulk_store = None   # where the last TMA store was issued (its location)
        # wgmma ops whose shared operands the tensor cores may still read (wgmma.py): by warpgroup, the open wgmma
        # group's and each committed group's shared byte addresses, until a wgmma.wait retires the group
        self.mma_reads: dict = {}
        self.mma_reading = None
        # the accumulators wgmma ops give (the result arrays, by identity) that the tensor cores may still be
        # writing: by warpgroup, the open wgmma group's and each committed group's, until a wgmma.wait retires it
        self.mma_results: dict = {}
        # wgmma.fence (wgmma.py): the lanes that ran one, and by register set (wgmma.register_sets) the lanes
        # whose ordinary instructions read or wrote a value of the set since their warpgroup's last fence
        self.mma_fenced = None
        self.register_access: dict = {}
        # whole-block barriers completed so far, and what each shared byte's accesses since were (races.py)
        self.epoch = 0
        self.race_marks = None
        self.reading = None
        # shared bytes that TMA loads and cp.async copies may still be writing: the interpreter copies when a copy
        # is issued, the GPU's copy lands some time before the phase of the mbarrier it completes on. `landing`
        # counts the copies in flight per byte (None: none yet); `landings` holds, by mbarrier address, each copy's
        # (phase, byte addresses), until a wait sees that phase complete; `unarrived`, (lanes, their bytes by row)
        # of cp.async copies that no cp.async.arrive of their lane has tied to a phase yet
        self.landing = None
        self.landings: dict = {}
        self.unarrived: list = []
        # shared bytes that threads wrote through the generic proxy (st.shared, atomics) and have not fenced
        # (fence.proxy.async) since: 1 + the writing lane per byte, 0 where none (None: no such write yet); the
        # async proxy (a TMA store's source, a wgmma's operands) may read the bytes as they were before
        self.unfenced = None
        self.roots: list = []   # the groups running the kernel's body (set by launch)
        self._spaces: dict = {}
        self._block_ids = None

    def block_id(self, dim: int) -> np.ndarray:
        if self._block_ids is None:
            self._block_ids = tuple(np.full(self.launch.nthreads, i, np.int32) for i in self.index)
        return self._block_ids[dim]

    def space(self, name: str):
        """The AddressMap decoding addresses of pointers into address space `name`."""
        found = self._spaces.get(name)
        if found is None:
            found = self._spaces[name] = self.launch.memory.address_map_for(name, self.shared)
        return found

    def returned(self) -> np.ndarray:
        return self.jump == RETURN

    def exited(self) -> np.ndarray:
        """Threads that left the kernel: returned, or in a root group that ran the block's body to its end (a
        block barrier counts them as arrived, as the GPU does)."""
        exited = self.returned()
        for root in self.roots:
            if root.done:
                exited = exited | root.members
        return exited

    def carry_in_flight(self, held, merged):
        """`merged` (a variable's value, `held` stored into it for some lanes) is a wgmma's accumulator in flight
        wherever `held` is one (`mma_results`)."""
        for open_group, groups in self.mma_results.values():
            for arrays in (open_group, *groups):
                if any(a is held for a in arrays):
                    arrays.append(merged)

    def check_not_read_by_stores(self, addresses: np.ndarray, lane_of, what: str):
        """A Fault if a write of shared bytes `addresses` (byte addresses, any shape whose first axis is the writing
        lanes') hits the source of a TMA store still in flight (`reading`): on the GPU the copy may read the new
        bytes. `lane_of(i)` names the lane of row i."""
        hits = self.reading[addresses]
        if hits.any():
            row = int(np.flatnonzero(hits.reshape(hits.shape[0], -1).any(axis=1))[0])
            if self.mma_reading is not None and self.mma_reading[addresses].any():
                # PTX ISA 9.7.15.4 and 9.7.15.7.3: wgmma.mma_async reads its shared operands asynchronously (async
                # proxy) until a wgmma.wait_group retires its wgmma-group
                raise Fault(f"{what} writes shared memory that a wgmma issued earlier may still be reading (its wgmma "
                            "group was not waited for)", lane_of(row),
                            hint="wait for the wgmma group first (skc.hopper.wgmma_wait(pending)) before writing, or "
                                 "releasing to a producer, the tiles it reads")
            raise Fault(f"{what} writes shared memory that a TMA store issued earlier may still be reading (its bulk "
                        f"group was not waited for)", lane_of(row),
                        hint="wait for the store's group first (skc.hopper.tma_wait(pending, read=True)), or write "
                             "another buffer")

    def copying(self, addresses: np.ndarray):
        """Shared bytes `addresses` that an asynchronous copy issued now writes (each byte once): in flight, and no
        longer a thread's unfenced store."""
        if self.landing is None:
            self.landing = np.zeros(self.shared.nbytes, np.uint16)
        self.landing[addresses] += 1
        if self.unfenced is not None:
            self.unfenced[addresses] = 0

    def completes_on(self, barrier, addresses: np.ndarray):
        """The copy of `addresses` (counted by copying) completes on the current phase of `barrier`."""
        self.landings.setdefault(barrier.address, []).append((barrier.phases, addresses))

    def landed(self, address: int, phases: int):
        """A wait saw the phases before `phases` of the mbarrier at `address` complete: their copies have landed."""
        entries = self.landings.get(address)
        if entries:
            for phase, addresses in entries:
                if phase < phases:
                    self.landing[addresses] -= 1
            entries[:] = [entry for entry in entries if entry[0] >= phases]

    def check_not_landing(self, addresses: np.ndarray, lane_of, what: str):
        """A Fault if `what` (a read or write of shared bytes `addresses`, any shape whose first axis is the
        accessing lanes') touches bytes a TMA load or cp.async may still be writing: on the GPU it may see them
        before or after the copy. `lane_of(i)` names the lane of row i."""
        hits = self.landing[addresses] != 0
        if hits.any():
            row = int(np.flatnonzero(hits.reshape(hits.shape[0], -1).any(axis=1))[0])
            raise Fault(f"{what} shared memory that a TMA load or cp.async issued earlier may still be writing: no "
                        "thread has waited for the mbarrier phase the copy completes on", lane_of(row),
                        hint="wait on the copy's mbarrier (skc.hopper.mbarrier_wait(barrier, phase)) before using the "
                             "tile, and tie cp.async copies to a barrier with skc.hopper.cp_async_arrive")

    def written_generically(self, addresses: np.ndarray, writers: np.ndarray):
        """Shared bytes `addresses` (rows, bytes) that a store by lanes `writers` (one a row) wrote."""
        if self.unfenced is None:
            self.unfenced = np.zeros(self.shared.nbytes, np.int32)
        self.unfenced[addresses] = (writers.astype(np.int32) + 1)[:, None]

    def fenced(self, lanes: np.ndarray):
        """The lanes ran fence.proxy.async: their generic writes are visible to the async proxy now."""
        if self.unfenced is not None:
            member = np.zeros(self.launch.nthreads + 1, bool)
            member[lanes + 1] = True
            self.unfenced[member[self.unfenced]] = 0

    def check_async_read(self, addresses: np.ndarray, lane: int, what: str):
        """A Fault if the async proxy's read of shared bytes `addresses` (by `what`: a TMA store's source, a wgmma's
        operand, issued by `lane`) meets bytes a copy may still be writing, or bytes a thread stored to and did not
        fence since."""
        if self.landing is not None:
            self.check_not_landing(addresses[None], lambda row: lane, what)
        if self.unfenced is None:
            return
        writers = self.unfenced[addresses]
        if writers.any():
            writer = int(writers[np.flatnonzero(writers)[0]]) - 1
            raise Fault(f"{what} shared memory that thread {self.launch.thread_of(writer)} stored to and has not "
                        "fenced since: the async proxy may read the bytes as they were before the store", lane,
                        hint="after the stores, the writing threads call skc.hopper.fence_proxy_async() (then a "
                             "barrier hands the tile on), as the blocks' epilogues do before their TMA stores")

    def where(self, lane: Optional[int]) -> str:
        text = f"block {self.index}"
        if lane is not None:
            text += f", thread {self.launch.thread_of(lane)}"
        return text

    def error(self, loc: Optional[Location], fault: Fault) -> InterpreterError:
        return InterpreterError(f"{fault.message} (in {self.where(fault.lane)})", loc, fault.hint)


class Group:
    """Threads of one block running together: `mask` holds the active lanes; `env` maps IR values to arrays."""

    __slots__ = ("mask", "count", "full", "env", "block", "gen", "done", "members")

    def __init__(self, mask: np.ndarray, env: dict, block: BlockState):
        self.env, self.block, self.gen, self.done = env, block, None, False
        self.members = mask
        self.set_mask(mask)

    def set_mask(self, mask: np.ndarray):
        self.mask = mask
        self.count = int(np.count_nonzero(mask))
        self.full = self.count == mask.shape[0]

    @property
    def alive(self) -> bool:
        return self.count > 0

    def first_lane(self, where: Optional[np.ndarray] = None) -> Optional[int]:
        """The lowest active lane (of `where`, a subset of lanes, when given)."""
        lanes = np.flatnonzero(self.mask if where is None else where)
        return int(lanes[0]) if lanes.size else None


def warp_ranges(mask: np.ndarray, warp_size: int) -> str:
    """The warps holding the lanes of a mask, as ranges: 'warps 4-11'."""
    warps = np.zeros(-(-mask.shape[0] // warp_size), bool)
    warps[np.flatnonzero(mask) // warp_size] = True
    text = lane_ranges(warps)
    return ("warp " if np.count_nonzero(warps) == 1 else "warps ") + text


def lane_ranges(mask: np.ndarray) -> str:
    """The lanes of a mask as ranges: '0-31, 64-95'."""
    lanes = np.flatnonzero(mask)
    if lanes.size == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(lanes) != 1)
    starts = np.concatenate(([lanes[0]], lanes[breaks + 1]))
    ends = np.concatenate((lanes[breaks], [lanes[-1]]))
    return ", ".join(str(s) if s == e else f"{s}-{e}" for s, e in zip(starts, ends))
