"""The frontend: Python kernels to tile IR through a partial evaluator of their source."""
from . import builtins as language
from .arrays import Array
from .context import current, generating
from .dtypes import DTYPES, DType, Ptr, PtrType, TensorMap, as_ir_type, constexpr
from .kernel import (CONSTEXPR, POINTER, SCALAR, TENSORMAP, DeviceFunction, Parameter, ParamSpec, Specialization,
                     annotated_spec, compile_to_ir, func, kernel_parameters, symbol_name)
from .keying import KEYABLE, Unkeyable, dependency_key, inlined_function_key, trusted_module, value_key
from .markers import host
from .source import source_digest
from .values import Dyn, RValue, Slot
from .wrappers import definition


def enclosing_conditions() -> list:
    """The (condition, branch taken) pairs of the run-time `if`s around the code being compiled, outermost
    first: blocks use them to check which role a piece of code runs in."""
    return list(current().evaluator.conditions)


def runtime_scope() -> tuple:
    """The run-time regions (and marks of run-time jumps) around the code being compiled, outermost first: code
    whose scope begins with another code's scope runs on every path that runs the other (for blocks that count what
    has run, such as the wgmma groups retired before a stage's release)."""
    return tuple(current().evaluator.scope_stack)


def runtime_loops() -> tuple:
    """The run-time loops around the code being compiled (their bodies' region ids), outermost first: code inside a
    loop that was not open where a block object was made runs once an iteration for that one object (for blocks
    whose state must not start again each iteration, such as a pipeline's place in its ring)."""
    evaluator = current().evaluator
    return tuple(region for region in evaluator.region_stack if region in evaluator.loop_regions)


def path_point() -> tuple:
    """This point of the code being compiled, for `always_follows` (a block notes where it did something that must
    not be done twice on one path)."""
    return current().evaluator.path_point()


def always_follows(point) -> bool:
    """Whether every run-time path through `point` (an earlier path_point() of this compilation) goes on to the code
    being compiled now (no branch it is outside of, no loop around `point` alone, no return, break or continue since
    that skips it): then code at both points runs together wherever the first runs. False where that is not known."""
    return current().evaluator.always_follows(point)


def inside_with(manager) -> bool:
    """Whether the kernel being compiled is inside a with-block of `manager` (for blocks' protocol checks)."""
    return current().evaluator.inside_with(manager)


def open_withs() -> list:
    """The managers of the with-blocks open in the kernel being compiled (for blocks' protocol checks)."""
    return current().evaluator.open_withs()


def with_ended(manager) -> bool:
    """Whether a with-statement of `manager` was compiled to its end before (for blocks' protocol checks)."""
    return current().evaluator.with_ended(manager)


def variable_of(value):
    """The variable (the IR slot of a `Slot`) a run-time value was read from, else None: a block that tags a
    variable (an object's attribute holding a run-time value lives in one) knows the values read from it."""
    owner = getattr(getattr(value, "value", None), "owner", None)
    return owner.operands[0] if getattr(owner, "name", None) == "var.load" else None


def tag(owner: str, value, *facts) -> None:
    """Record `facts` about a run-time value (or about the variable a `Slot` is: the values read from it later) in
    `owner`'s facts of this compilation, for `tagged`. A value of no IR (a Python constant) is not tagged."""
    key = value.slot if isinstance(value, Slot) else getattr(value, "value", None)
    if key is not None:
        current().facts(owner)[id(key)] = (key, *facts)


def tagged(owner: str, value):
    """The facts `tag` recorded under `owner` for a run-time value or for the variable it was read from (a tuple),
    else None: a value of the user's, of which nothing is known."""
    for key in (getattr(value, "value", None), variable_of(value)):
        entry = current().facts(owner).get(id(key)) if key is not None else None
        if entry is not None and entry[0] is key:
            return entry[1:]
    return None


__all__ = [
    "language", "Array", "host", "current", "generating", "DTYPES", "DType", "Ptr", "PtrType", "TensorMap",
    "as_ir_type", "constexpr", "CONSTEXPR", "POINTER", "SCALAR", "TENSORMAP", "DeviceFunction", "Parameter",
    "ParamSpec", "Specialization", "annotated_spec", "compile_to_ir", "func", "kernel_parameters", "symbol_name",
    "Dyn", "RValue", "Slot", "variable_of", "tag", "tagged", "inside_with", "open_withs", "with_ended",
    "enclosing_conditions", "runtime_scope", "runtime_loops", "path_point", "always_follows",
    "source_digest", "KEYABLE", "Unkeyable",
    "dependency_key", "inlined_function_key", "value_key",
]
