"""The frontend's entry points: a kernel's parameters, their specialization, and compiling a
specialized kernel to tile IR. Also `@skc.func`, the decorator for inlined device functions."""
from __future__ import annotations

import functools
import inspect
import re
import types
from dataclasses import dataclass
from typing import Any, Optional

from .. import ir
from ..diagnostics import CompileError, Location, SkcError
from ..target import TARGETS, Target
from . import context, semantics
from .context import CodeGen
from .dtypes import DType, PtrType, is_constexpr_annotation
from .evaluator import Evaluator
from .frames import CompileTimeReturn, Frame, closure_of
from .keying import record_defaults, value_key
from .source import get_source
from .wrappers import definition
from .values import RValue

POINTER, SCALAR, CONSTEXPR, TENSORMAP = "pointer", "scalar", "constexpr", "tensormap"

# A kernel's entry symbol is its Python name where that is a PTX identifier ([A-Za-z_][A-Za-z0-9_]*, but not `_`
# alone) that names nothing the backends emit or PTX predefines; any other name (non-ASCII letters, a __name__ set to
# "k-1", "1k" or "") aborted LLVM, failed to parse as LLVM IR or was refused by ptxas, and a kernel named vprintf
# or __skc_shared clashed with a symbol skc declares. Those names are spelled out in ASCII under a prefix.
_PLAIN_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TAKEN_SYMBOLS = {"_", "vprintf", "WARP_SZ"}


def symbol_name(name: str) -> str:
    """The entry symbol of a kernel named `name` in LLVM IR, PTX and GCN code objects."""
    if (isinstance(name, str) and _PLAIN_SYMBOL.fullmatch(name) and name not in _TAKEN_SYMBOLS
            and not name.startswith(("__skc", "skc_k_", "__nv_", "__ocml", "__ockl"))):
        return name
    text = name if isinstance(name, str) else repr(name)
    return "skc_k_" + "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"_{ord(c):x}_" for c in text)


@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is specialized: a pointer to elem, a scalar of a type, a compile-time value."""

    name: str
    kind: str
    type: Any = None      # PtrType for pointers, an IR scalar type for scalars
    value: Any = None     # the value of a constexpr

    def key(self):
        if self.kind == CONSTEXPR:
            return (self.name, self.kind, value_key(self.value))
        return (self.name, self.kind, self.type)


@dataclass(frozen=True)
class Specialization:
    """Everything about a launch that changes the generated code, besides sources."""

    params: tuple
    block: tuple = (128, 1, 1)
    cluster: tuple = (1, 1, 1)
    options: tuple = ()

    def key(self):
        return (tuple(p.key() for p in self.params), self.block, self.cluster, self.options)


@dataclass
class Parameter:
    """A kernel parameter as declared: its name, annotation and default."""

    name: str
    annotation: Any = None
    default: Any = inspect.Parameter.empty

    @property
    def is_constexpr(self) -> bool:
        return is_constexpr_annotation(self.annotation)


def kernel_parameters(fn) -> list:
    """The parameters of a kernel function, annotations evaluated."""
    try:
        annotations = inspect.get_annotations(fn, eval_str=True)
    except Exception as e:
        raise SkcError(f"cannot evaluate the annotations of {fn.__qualname__}: {e}") from e
    params = []
    code = getattr(fn, "__code__", None)
    where = Location(code.co_filename, code.co_firstlineno, 0, fn.__qualname__) if code is not None else None
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            stars = "*" if p.kind == p.VAR_POSITIONAL else "**"
            raise CompileError(f"kernel {fn.__qualname__} has {stars}{p.name}; kernels take named parameters only",
                               where)
        annotation = annotations.get(p.name)
        if annotation in (int, float, bool):
            raise CompileError(
                f"parameter '{p.name}' of {fn.__qualname__} is annotated {annotation.__name__}, which names no width",
                where, hint=f"annotate it skc.{ {int: 'i32', float: 'f32', bool: 'i1'}[annotation]} (or another skc "
                            "dtype), skc.constexpr for a compile-time value, or leave it unannotated so that the "
                            "argument decides")
        params.append(Parameter(p.name, annotation, p.default))
    return params


def annotated_spec(param: Parameter) -> Optional[ParamSpec]:
    """The specialization an annotation alone implies (None when the argument decides)."""
    a = param.annotation
    if param.is_constexpr:
        if param.default is inspect.Parameter.empty:
            return None
        return ParamSpec(param.name, CONSTEXPR, value=param.default)
    if isinstance(a, PtrType):
        return ParamSpec(param.name, POINTER, a)
    if isinstance(a, DType):
        return ParamSpec(param.name, SCALAR, a.ir)
    if getattr(a, "__skc_tensor_map__", False):
        return ParamSpec(param.name, TENSORMAP, ir.tmap)
    return None


def check_block(fn, block: tuple):
    """At definition (`@skc.kernel(block=...)`): a block no target can run is an error at the def line."""
    limit = max(t.max_threads_per_block for t in TARGETS.values())
    threads = block[0] * block[1] * block[2]
    if threads > limit or min(block) < 1:
        code = fn.__code__
        raise CompileError(f"block {tuple(block)} has {threads} threads; GPUs run 1 to {limit} threads per block",
                           Location(code.co_filename, code.co_firstlineno, 0, fn.__qualname__),
                           hint="use fewer threads per block and more blocks in the grid")


def compile_to_ir(fn, spec: Specialization, target: Target):
    """Run the kernel's source through the evaluator; give the tile IR module and its dependencies."""
    source = get_source(fn)
    threads = spec.block[0] * spec.block[1] * spec.block[2]
    if threads > target.max_threads_per_block or min(spec.block) < 1:
        raise CompileError(f"block {tuple(spec.block)} has {threads} threads; {target.name} allows 1 to "
                           f"{target.max_threads_per_block} threads per block", source.location(source.node),
                           hint="use fewer threads per block and more blocks in the grid")
    if any(n > most for n, most in zip(spec.block, target.max_block)):
        raise CompileError(f"block {tuple(spec.block)} is larger than {target.name} allows along x, y, z: "
                           f"{target.max_block}", source.location(source.node),
                           hint="lay the threads out along another dimension")
    runtime_params = [p for p in spec.params if p.kind != CONSTEXPR]
    arg_types = [p.type.ir if isinstance(p.type, PtrType) else p.type for p in runtime_params]
    function = ir.Function(symbol_name(fn.__name__), arg_types, [p.name for p in runtime_params],
                           loc=source.location(source.node))
    codegen = CodeGen(function, target, spec.block, spec.cluster, rules=semantics)
    evaluator = Evaluator(codegen)
    env, args = {}, iter(function.args)
    for p in spec.params:
        env[p.name] = p.value if p.kind == CONSTEXPR else RValue(next(args), p.type)
    evaluator.note_constexpr_args({p.name: p.value for p in spec.params if p.kind == CONSTEXPR})
    frame = Frame(source, env, fn.__globals__, closure_of(fn), is_kernel=True,
                  cells=dict(zip(fn.__code__.co_freevars, fn.__closure__ or ())))
    record_defaults(codegen.deps, fn, source)   # (what a cached kernel's load compares: the source and the defaults)
    with context.generating(codegen):
        evaluator.frames.append(frame)
        try:
            try:
                evaluator.exec_body(source.node.body)
            except CompileTimeReturn:
                pass
            finally:
                evaluator.frames.pop()
            # (a launch's cluster, from @skc.kernel(cluster=...) or compile(cluster=...), is the one its kernel runs
            # in: skc.hopper.kernel_attributes may only say it again; without one, the last kernel_attributes said)
            cluster = tuple(spec.cluster) if tuple(spec.cluster) != (1, 1, 1) else tuple(codegen.cluster)
            codegen.finish(cluster)
        except BaseException:
            evaluator.put_back_attributes()   # (the user's objects as before the compile that failed)
            raise
    function.attrs.update(block=tuple(spec.block), shared_bytes=codegen.shared_bytes)
    if codegen.shared_bytes:
        function.attrs["shared_align"] = codegen.shared_align
    function.attrs.pop("cluster", None)
    if cluster != (1, 1, 1):
        function.attrs["cluster"] = cluster
    module = ir.Module([function], {"target": target.name})
    return module, codegen.deps


class DeviceFunction:
    """`@skc.func`: a function inlined into the kernels that call it."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self._skc_function = fn

    @property
    def __skc_function__(self):
        # a property, not an entry of the instance's __dict__: functools.wraps copies that __dict__ into a user's
        # wrapper, which then passed for this function and was inlined without the wrapper's own code
        return self._skc_function

    def __get__(self, instance, owner=None):
        # an @skc.func def in a class body is a method: read from an instance, it binds it, as a def does
        return self if instance is None else types.MethodType(self, instance)

    def __call__(self, *args, **kwargs):
        if context.active() and context.current().evaluator is not None:
            return context.current().evaluator.inline(self.__skc_function__, args, kwargs)
        raise SkcError(f"{self.__qualname__} is an @skc.func: it runs inside kernels only",
                       ) from None

    def __repr__(self):
        return f"<skc.func {self.__qualname__}>"


def func(fn=None):
    """Decorate a device function: calls from kernels inline it (with run-time control flow)."""
    if fn is None:
        return func
    if not callable(fn):
        raise SkcError(f"skc.func decorates a function written with def, found {type(fn).__name__} {fn!r}")
    return DeviceFunction(definition(fn, "func"))

