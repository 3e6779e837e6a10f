"""Structured control flow: running a region's steps for a group, and scf.if / for / loop /
block, break / continue and func.return.

Jumps make lanes inactive and record, per lane, where they go (BlockState.jump): the
construct with the jump's label resumes them when it ends (break: after it; continue: at
its next iteration); returned lanes stay inactive to the end of the kernel. After any
construct, the group's lanes are those it entered with that are still running.

An `scf.if` whose two branches both have lanes runs them one after the other when neither
can block, and otherwise forks them as two child groups that run concurrently (so a
producer branch and a consumer branch can wait on each other) and joins them at its end.
"""
from __future__ import annotations

import numpy as np

from ...diagnostics import InterpreterError, InterpreterLimitError, SkcError
from .scheduler import Join
from .state import RETURN, RUNNING, Fault, Group, lane_ranges

PLAIN, NESTED = 0, 1   # step kinds: a function of the group, or a generator run with `yield from`


def run_region(group: Group, region_plan):
    """Run a region's steps for the group's active lanes (a generator: it yields when the group blocks)."""
    op = None
    try:
        for op, fn, kind in region_plan.steps:
            if kind == PLAIN:
                fn(group)
            else:
                yield from fn(group)
                if not group.count:
                    return
    except Fault as fault:
        raise group.block.error(op.loc, fault) from None
    except SkcError:
        raise
    except Exception as e:  # a bug of the interpreter: still name the op and the kernel's line
        raise InterpreterError(f"internal error of the interpreter running '{op.name}': {type(e).__name__}: {e}",
                               op.loc) from e


def _still_running(group: Group, entry: np.ndarray, may_jump: bool):
    group.set_mask(entry & (group.block.jump == RUNNING) if may_jump else entry)


def _resume(group: Group, lanes: np.ndarray, code: int):
    """Lanes of `lanes` that jumped with `code` run again."""
    jump = group.block.jump
    jump[lanes & (jump == code)] = RUNNING


def _step(group: Group, op):
    """Count one iteration of a loop against the block's step budget (a back-edge, not every op: cheap)."""
    block = group.block
    block.steps += 1
    if block.steps > block.step_budget:
        raise _limit_error(group, op)


def _limit_error(group: Group, op) -> InterpreterLimitError:
    launch, block = group.block.launch, group.block
    lane = group.first_lane()
    threads = f"threads {lane_ranges(group.mask)}" + (f" (first: thread {launch.thread_of(lane)})"
                                                      if lane is not None else "")
    return InterpreterLimitError(
        f"the loop ran past the interpreter's step budget of {launch.max_steps} loop iterations"
        f"{' per warpgroup' if len(block.roots) > 1 else ''} in block {block.index}; {threads} still run it (an endless loop: a condition that never changes, a step of 0, "
        "or a spin on memory nothing writes?)", op.loc,
        "fix the loop, or raise the budget if the kernel really loops that long: SKC_INTERPRETER_STEPS=N "
        "in the environment, or, for tile IR run directly, skc.runtime.interpreter.run(..., max_steps=N)")


def _if(op, launch, plan):
    condition = op.operands[0]
    then_plan, else_plan = plan.region(op.regions[0]), plan.region(op.regions[1])
    may_jump = then_plan.jumps or else_plan.jumps
    may_block = then_plan.blocking or else_plan.blocking

    def if_(group):
        entry, cond = group.mask, group.env[condition]
        taken = cond if group.full else entry & cond
        skipped = entry & ~cond
        run_then = bool(then_plan.steps) and taken.any()
        run_else = bool(else_plan.steps) and skipped.any()
        if run_then and run_else and may_block:
            children = [Group(taken, group.env, group.block), Group(skipped, group.env, group.block)]
            for child, region_plan in zip(children, (then_plan, else_plan)):
                child.gen = run_region(child, region_plan)
            yield Join(op, children)
        else:
            if run_then:
                group.set_mask(taken)
                yield from run_region(group, then_plan)
            if run_else:
                group.set_mask(skipped)
                yield from run_region(group, else_plan)
        _still_running(group, entry, may_jump)
    return if_


def _for(op, launch, plan):
    lower, upper, step_value = op.operands
    body, induction = plan.region(op.regions[0]), op.regions[0].args[0]
    leave, again = plan.codes(op.attrs["label"])

    # as the backends test it (lowering._loop_condition): a constant step counts down only if it is signed and not
    # positive; a run-time one counts down where it is not positive as a signed number (0 included: Python refuses
    # range(..., 0), the GPU then runs while i > ub), and counting down compares signed
    owner = getattr(step_value, "owner", None)
    constant = getattr(owner, "name", None) == "arith.constant"

    def for_(group):
        env, entry = group.env, group.mask
        i, bound, step = env[lower], env[upper], env[step_value]
        signed = np.dtype(step.dtype).kind == "i"
        as_signed = (lambda x: x) if signed else (lambda x: x.view(np.dtype(f"i{np.dtype(step.dtype).itemsize}")))
        if constant:
            backward = np.full(np.shape(step), signed and owner.attrs["value"] <= 0)
        else:
            backward = as_signed(step) <= 0
        down = backward.any()
        active = entry
        while True:
            active = active & (np.where(backward, as_signed(i) > as_signed(bound), i < bound) if down else i < bound)
            group.set_mask(active)
            if not group.count:
                break
            env[induction] = i
            _step(group, op)
            yield from run_region(group, body)
            if body.jumps:
                _resume(group, active, again)
                active = active & (group.block.jump == RUNNING)
            i = i + step
        if body.jumps:
            _resume(group, entry, leave)
        _still_running(group, entry, body.jumps)
    return for_


def _loop(op, launch, plan):
    body = plan.region(op.regions[0])
    leave, again = plan.codes(op.attrs["label"])

    def loop(group):
        entry = active = group.mask
        while group.count:
            _step(group, op)
            yield from run_region(group, body)
            _resume(group, active, again)
            active = active & (group.block.jump == RUNNING)
            group.set_mask(active)
        _resume(group, entry, leave)
        _still_running(group, entry, True)
    return loop


def _block(op, launch, plan):
    body = plan.region(op.regions[0])
    leave, _ = plan.codes(op.attrs["label"])

    def block(group):
        entry = group.mask
        yield from run_region(group, body)
        if body.jumps:
            _resume(group, entry, leave)
        _still_running(group, entry, body.jumps)
    return block


def _jump_to(code: int, launch):
    """Jumps are the last op of their region: the group ends it with no active lanes."""
    def jump(group):
        group.block.jump[group.mask] = code
        group.set_mask(launch.no_lanes)
    return jump


def _break(op, launch, plan):
    return _jump_to(plan.codes(op.attrs["label"])[0], launch)


def _continue(op, launch, plan):
    return _jump_to(plan.codes(op.attrs["label"])[1], launch)


def _return(op, launch, plan):
    return _jump_to(RETURN, launch)


CONTROL = {"scf.if": _if, "scf.for": _for, "scf.loop": _loop, "scf.block": _block,
           "scf.break": _break, "scf.continue": _continue, "func.return": _return}
GENERATORS = frozenset({"scf.if", "scf.for", "scf.loop", "scf.block"})
