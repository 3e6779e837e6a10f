"""The plan of a kernel for one launch: each region's ops turned once into steps (functions
of a thread group) through the handler tables, so running an op costs a call, not a lookup.

Handler tables, by how an op runs:
  PURE     name -> builder(op, launch) giving a numpy function of the operand arrays
  EFFECTS  name -> builder(op, launch) giving a function of the group (memory, ids, warps, debug)
  CONTROL  name -> builder(op, launch, plan) giving a function of the group, or a generator
           function for the ops in GENERATORS (regions, blocking ops)
An op with no handler becomes a step that stops the kernel, naming the op, when a thread reaches it.
"""
from __future__ import annotations

from ...ir.core import BLOCKING
from . import (access, arith, barriers, clusters, control, cp_async, debug, mbarriers, mfma, races, tma, undefined, warp,
               wgmma)
from .control import NESTED, PLAIN

PURE = {**arith.PURE, **access.PURE, **warp.PURE}
EFFECTS = {**access.EFFECTS, **warp.EFFECTS, **debug.EFFECTS, **mbarriers.EFFECTS, **tma.EFFECTS, **wgmma.EFFECTS,
           **mfma.EFFECTS, **clusters.EFFECTS, **cp_async.EFFECTS}
CONTROL = {**control.CONTROL, **barriers.CONTROL, **mbarriers.CONTROL, **clusters.CONTROL}
GENERATORS = control.GENERATORS | barriers.GENERATORS | mbarriers.GENERATORS | clusters.GENERATORS
JUMPS = frozenset({"scf.break", "scf.continue", "func.return"})


class RegionPlan:
    """A region's steps, and whether threads may block in it or jump out of it."""

    __slots__ = ("steps", "blocking", "jumps")

    def __init__(self, steps, blocking: bool, jumps: bool):
        self.steps, self.blocking, self.jumps = steps, blocking, jumps


class Plan:
    def __init__(self, function, launch):
        self.launch = launch
        self._labels: dict = {}
        self._regions: dict = {}
        self._results = wgmma.result_values(function)   # (values that may hold a wgmma's accumulator)
        self._registers = wgmma.register_sets(function)  # (values that share registers with a wgmma's operands)
        launch.races = races.checked(function)
        launch.named_collectives = warp.named_collectives(function, launch.target)
        self._reached = undefined.reached(function, PURE)   # (values that may hold what a shuffle read)
        self.body = self.region(function.body)

    def codes(self, label: str) -> tuple:
        """The jump codes (break, continue) of the construct labeled `label`."""
        found = self._labels.get(label)
        if found is None:
            base = 2 + 2 * len(self._labels)   # 0 and 1 are RUNNING and RETURN
            found = self._labels[label] = (base, base + 1)
        return found

    def region(self, region) -> RegionPlan:
        found = self._regions.get(id(region))
        if found is None:
            ops = list(region.walk())
            found = RegionPlan([self.step(op) for op in region.ops],
                               any(op.has(BLOCKING) for op in ops),
                               any(op.name in JUMPS for op in ops))
            self._regions[id(region)] = found
        return found

    def step(self, op) -> tuple:
        name, launch = op.name, self.launch
        if name in CONTROL:
            return op, self._defined(op, CONTROL[name](op, launch, self)), NESTED if name in GENERATORS else PLAIN
        if name in EFFECTS:
            return op, self._defined(op, self._checked(op, EFFECTS[name](op, launch))), PLAIN
        if name in PURE:
            return op, self._defined(op, self._checked(op, _pure_step(op, PURE[name](op, launch)))), PLAIN
        return op, access.failing(f"the interpreter cannot run '{name}': no handler for this op",
                                  hint="run on a GPU, or add the op's handler to skc/runtime/interpreter"), PLAIN

    def _checked(self, op, step):
        """`step`, checking first that no value it reads is the accumulator of a wgmma still in flight, and that
        wgmma.fence orders the registers a wgmma shares with other instructions."""
        values = wgmma.read_operands(op, self._results) if self._results else ()
        step = wgmma.checking_results(op, values, step) if values else step
        return wgmma.fencing(op, self._registers, step) if self._registers else step


    def _defined(self, op, step):
        """`step`, passing on which lanes' values are undefined (what a shuffle read from a lane that was not
        active), or first checking that none of the values it uses is (undefined.py)."""
        reached = self._reached
        if not reached:
            return step
        name = op.name
        if name in PURE or name in undefined.MOVES:
            ok = any(v in reached for v in op.operands) or name == "var.alloc" and op.results[0] in reached
            return undefined.carrying(op, step, reached, self.launch) if ok else step
        used = op.operands[1:] if name in undefined.SOURCES else op.operands   # (a shuffle passes its value's on)
        used = tuple(dict.fromkeys(v for v in used if v in reached))
        return undefined.using(op, step, used, self.launch) if used else step


def _pure_step(op, fn):
    """A step storing fn(operands...) as the op's result (computed once when it has no operands)."""
    result, operands = op.results[0], op.operands
    if not operands:
        value = fn()

        def constant(group):
            group.env[result] = value
        return constant
    if len(operands) == 1:
        (a,) = operands

        def unary(group):
            env = group.env
            env[result] = fn(env[a])
        return unary
    if len(operands) == 2:
        a, b = operands

        def binary(group):
            env = group.env
            env[result] = fn(env[a], env[b])
        return binary

    def nary(group):
        env = group.env
        env[result] = fn(*[env[v] for v in operands])
    return nary
