"""`run`: check a launch, turn its arguments into per-thread values, and run the grid's
clusters one after another (a kernel without a cluster shape has clusters of one block); the
blocks of a cluster run together in one scheduler, each with fresh shared memory."""
from __future__ import annotations

import itertools
import numbers
import os
import sys
from typing import Optional, Sequence

import numpy as np

from ... import ir
from ...diagnostics import InterpreterLimitError, LaunchError
from ...target import get_target, launch_dims
from . import numerics
from .control import run_region
from .memory import Memory, shared_segment
from .plan import Plan
from .scheduler import run_cluster
from .state import BlockState, Cluster, Group, Launch
from .tma import TensorMapDescriptor, check_descriptor, check_stores_waited, map_tensor_map

MAX_CLUSTER_BLOCKS = 16   # Hopper: 8 portably, 16 with the non-portable cluster size attribute


def _dims(what: str, value) -> tuple:
    try:
        return launch_dims(value)
    except ValueError as e:
        raise LaunchError(f"{what} {e}") from None


def _argument(value, t, name: str, nthreads: int, memory: Memory) -> np.ndarray:
    """One kernel argument as a per-thread array."""
    if isinstance(t, ir.PointerType):
        if isinstance(value, np.ndarray) or not isinstance(value, numbers.Integral):
            raise LaunchError(f"argument '{name}' is a {t}: pass an address from Memory.map_array or "
                              f"Memory.allocate, found {type(value).__name__}")
        if not 0 <= value < 2 ** 64:   # (it wrapped: 2**70 read address 0)
            raise LaunchError(f"argument '{name}' is a {t}, an address of 64 bits, found {value}: pass an address "
                              "from Memory.map_array or Memory.allocate")
        return np.full(nthreads, numerics.from_python(t, value), np.uint64)
    if isinstance(t, ir.TensorMapType):
        if not isinstance(value, TensorMapDescriptor) and hasattr(value, "tensor") and hasattr(value, "box"):
            value = map_tensor_map(value, memory, name)   # an skc.TensorMap over a host array
        check_descriptor(value, t, name)
        values = np.empty(nthreads, object)
        values[:] = [value] * nthreads
        return values
    if not isinstance(value, (numbers.Number, np.generic)) or isinstance(value, complex):
        raise LaunchError(f"argument '{name}' is a {t} scalar, found {type(value).__name__}")
    if t.is_int and not float(value).is_integer():
        raise LaunchError(f"argument '{name}' is a {t}, found the non-integer {value!r}")
    return np.full(nthreads, numerics.from_python(t, value if t.is_float else int(value)), numerics.value_dtype(t))


def run(function, grid=(1, 1, 1), block=None, args: Sequence = (), memory: Optional[Memory] = None,
        target="sm_90a", arg_names: Optional[Sequence[str]] = None, max_steps: Optional[int] = None) -> None:
    """Run `function` (an ir.Function, or a Module of one) over `grid` blocks of `block` threads.

    `args` has one entry per function argument: an address (int) for a pointer, a number for a
    scalar, a TensorMapDescriptor (or an skc.TensorMap over a host array, mapped into `memory`)
    for a tensor map. A function with attrs["cluster"] runs in clusters of that shape. Faults
    (out-of-bounds or misaligned accesses, failed asserts, ops the interpreter cannot run)
    raise InterpreterError, deadlocks DeadlockError, at the kernel's source line. A block whose loops run more
    than `max_steps` iterations in all (default: SKC_INTERPRETER_STEPS, else state.DEFAULT_MAX_STEPS) stops
    with InterpreterLimitError at the loop's line: an endless loop ends.
    """
    if isinstance(function, ir.Module):
        function = function.function()
    if not isinstance(function, ir.Function):
        raise LaunchError(f"run takes an ir.Function or an ir.Module of one, found {type(function).__name__}")
    if memory is not None and not isinstance(memory, Memory):   # (the accesses failed inside, as internal errors)
        raise LaunchError(f"run's memory is an interpreter Memory (or None for a new one), found "
                          f"{type(memory).__name__}")
    target = get_target(target)
    declared = function.attrs.get("block")
    block = _dims("block", block if block is not None else declared if declared is not None else 1)
    if declared is not None and tuple(declared) != block:
        raise LaunchError(f"kernel '{function.name}' was compiled for blocks of {tuple(declared)} threads; "
                          f"it cannot run with block={block}")
    grid = _dims("grid", grid)
    for size, limit, axis in zip(grid, target.max_grid, "xyz"):   # (past them, numpy's OverflowError)
        if size > limit:
            raise LaunchError(f"grid {grid} exceeds the limit of {limit} blocks along {axis} ({target})")
    if block[0] * block[1] * block[2] > target.max_threads_per_block:
        raise LaunchError(f"block {block} has more than {target.max_threads_per_block} threads ({target})")
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise LaunchError(f"run's args is a sequence of the kernel's arguments, found {type(args).__name__}")
    names = _arg_names(function, arg_names)
    if len(args) != len(function.args):
        raise LaunchError(f"kernel '{function.name}' takes {len(function.args)} arguments "
                          f"({', '.join(names)}), found {len(args)}")
    ir.verify(function)
    cluster = _cluster_shape(function, grid)
    launch = Launch(function, grid, block, target, memory if memory is not None else Memory(), cluster,
                    _step_budget(max_steps))
    values = [_argument(v, a.type, name, launch.nthreads, launch.memory)
              for v, a, name in zip(args, function.args, names)]
    try:
        plan = Plan(function, launch)
        with np.errstate(all="ignore"):
            for z, y, x in itertools.product(*(range(g // c) for g, c in zip(grid[::-1], cluster[::-1]))):
                _run_cluster(launch, plan, (x, y, z), values)
    except RecursionError:   # (the plan and the run recurse into nested regions: an elif chain of hundreds)
        raise InterpreterLimitError(
            f"kernel '{function.name}' nests its regions (ifs, loops) too deeply for the CPU interpreter, which "
            f"recurses into each (Python's recursion limit is {sys.getrecursionlimit()})",
            hint="write a long if/elif chain over one value as a lookup (a tuple or list indexed by it), or raise the "
                 "limit with sys.setrecursionlimit") from None


def _arg_names(function, arg_names) -> list:
    """The names an error gives the arguments: arg_names (one a parameter) or the function's own."""
    if arg_names is None:
        return function.arg_names
    if isinstance(arg_names, (str, bytes)) or not isinstance(arg_names, Sequence) or \
            len(arg_names) != len(function.args):
        raise LaunchError(f"run's arg_names names the kernel's {len(function.args)} parameters "
                          f"({', '.join(function.arg_names)}), found {arg_names!r}")
    return list(arg_names)


def _step_budget(max_steps: Optional[int]) -> int:
    """run(max_steps=...), else SKC_INTERPRETER_STEPS, else 0 (the default budget)."""
    where = "run(max_steps=...)"
    if max_steps is None:
        max_steps, where = os.environ.get("SKC_INTERPRETER_STEPS", "").strip() or 0, "SKC_INTERPRETER_STEPS"
    try:
        value = int(max_steps)
    except (TypeError, ValueError):
        raise LaunchError(f"{where} must be a positive number of loop iterations, found {max_steps!r}") from None
    if value < 0 or (value == 0 and where != "SKC_INTERPRETER_STEPS"):
        raise LaunchError(f"{where} must be a positive number of loop iterations, found {max_steps!r}")
    return value


def _cluster_shape(function, grid) -> tuple:
    cluster = _dims("cluster", function.attrs.get("cluster", (1, 1, 1)))
    if any(g % c for g, c in zip(grid, cluster)):
        raise LaunchError(f"kernel '{function.name}' runs in clusters of {cluster} blocks; the grid {grid} is not a "
                          "multiple of that in every dimension")
    if cluster[0] * cluster[1] * cluster[2] > MAX_CLUSTER_BLOCKS:
        raise LaunchError(f"a cluster of {cluster} blocks has more than {MAX_CLUSTER_BLOCKS} blocks")
    return cluster


def _run_cluster(launch: Launch, plan: Plan, index: tuple, values: list):
    """Run the blocks of cluster `index`, in rank order (x fastest), interleaved in one scheduler."""
    cluster, shape, units = Cluster(launch, index), launch.cluster, _units(launch)
    roots, blocks = [], []
    for z, y, x in itertools.product(range(shape[2]), range(shape[1]), range(shape[0])):
        block_index = (index[0] * shape[0] + x, index[1] * shape[1] + y, index[2] * shape[2] + z)
        state = BlockState(launch, block_index, shared_segment(launch.shared_bytes), cluster)
        state.roots = [Group(lanes, dict(zip(launch.function.args, values)), state) for lanes in units]
        state.step_budget = launch.max_steps * len(state.roots)   # the budget is each root group's
        for root in state.roots:
            root.gen = run_region(root, plan.body)
            roots.append(root)
        blocks.append(state)
    run_cluster(cluster, roots)
    for state in blocks:
        check_stores_waited(state)


def _units(launch: Launch) -> list:
    """The lanes of the groups that run a block's body: one per warpgroup where the target has warpgroups (they
    progress independently, as on the GPU: one may wait at a named barrier for another that is past an `if` both
    were in), else the whole block. Each has its own values (env)."""
    size = launch.target.warpgroup_size
    if not size or launch.nthreads <= size or launch.nthreads % size:
        return [launch.all_lanes]
    return [(launch.lanes // size) == w for w in range(launch.nthreads // size)]
