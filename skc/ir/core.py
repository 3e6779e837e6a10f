"""The tile IR's skeleton: values, ops, regions, functions and modules.

Control flow is structured: an op may own regions (lists of ops run in order), and
jumps out of them (break, continue, return) name the construct they leave by its label.
Values are SSA: each is defined once, by an op result or a region argument, and may be
used after its definition in the same region or in regions nested inside it.
"""
from __future__ import annotations

from typing import ClassVar, Iterator, Optional

from ..diagnostics import Location, VerificationError
from .types import Type

# Op traits.
PURE = "pure"              # no side effects: may be folded, deduplicated or removed when unused
TERMINATOR = "terminator"  # leaves the enclosing region; nothing after it in the region runs
BLOCKING = "blocking"      # may wait on other threads (barriers, mbarrier waits)

OPS: dict[str, type["Op"]] = {}


class Value:
    """An SSA value: the result of an op, or an argument of a region."""

    __slots__ = ("type", "owner", "index")

    def __init__(self, type: Type, owner=None, index: int = 0):
        self.type, self.owner, self.index = type, owner, index

    def __repr__(self):
        return f"<Value {self.type} of {getattr(self.owner, 'name', 'region')}>"


class Region:
    """An ordered list of ops with optional arguments (the induction variable of a loop)."""

    __slots__ = ("ops", "args", "parent")

    def __init__(self, arg_types=(), parent: Optional["Op"] = None):
        self.ops: list[Op] = []
        self.args = [Value(t, self, i) for i, t in enumerate(arg_types)]
        self.parent = parent

    def append(self, op: "Op") -> "Op":
        op.parent = self
        self.ops.append(op)
        return op

    def walk(self) -> Iterator["Op"]:
        """Every op in this region and in regions nested inside it, in program order."""
        for op in self.ops:
            yield op
            for region in op.regions:
                yield from region.walk()


class Op:
    """One operation. Subclasses declare the op's name, arity, traits and its `verify`."""

    name: ClassVar[str] = "<op>"
    num_operands: ClassVar[Optional[int]] = 0   # None: any number
    num_results: ClassVar[Optional[int]] = 0    # None: any number
    num_regions: ClassVar[int] = 0
    traits: ClassVar[frozenset] = frozenset()
    required_attrs: ClassVar[tuple] = ()

    __slots__ = ("operands", "results", "attrs", "regions", "loc", "parent")

    def __init__(self, operands=(), result_types=(), attrs=None, regions=None,
                 loc: Optional[Location] = None):
        self.operands: list[Value] = list(operands)
        self.results = [Value(t, self, i) for i, t in enumerate(result_types)]
        self.attrs: dict = dict(attrs or {})
        self.regions: list[Region] = list(regions) if regions is not None else [
            Region(parent=self) for _ in range(self.num_regions)]
        for region in self.regions:
            region.parent = self
        self.loc = loc
        self.parent: Optional[Region] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in OPS:
                raise ValueError(f"op {cls.name} defined twice")
            OPS[cls.name] = cls

    @property
    def result(self) -> Value:
        if len(self.results) != 1:
            raise ValueError(f"'{self.name}' has {len(self.results)} results, not one")
        return self.results[0]

    def has(self, trait: str) -> bool:
        return trait in self.traits

    # -- verification -----------------------------------------------------------------
    def fail(self, message: str, error: type = VerificationError):
        raise error(f"'{self.name}' op: {message}", self.loc)

    def verify_shape(self):
        """Arity, regions and attributes, which every op checks the same way."""
        if self.num_operands is not None and len(self.operands) != self.num_operands:
            self.fail(f"expected {self.num_operands} operands, found {len(self.operands)}")
        if self.num_results is not None and len(self.results) != self.num_results:
            self.fail(f"expected {self.num_results} results, found {len(self.results)}")
        if len(self.regions) != self.num_regions:
            self.fail(f"expected {self.num_regions} regions, found {len(self.regions)}")
        for attr in self.required_attrs:
            if attr not in self.attrs:
                self.fail(f"missing attribute '{attr}'")

    def verify(self):
        """Op-specific checks of operand and result types; raise through `fail`."""

    def __repr__(self):
        return f"<{self.name}>"


class Function:
    """A kernel: named arguments and one body region. `attrs` hold launch facts (block size, shared bytes)."""

    def __init__(self, name: str, arg_types=(), arg_names=(), attrs=None, loc: Optional[Location] = None):
        self.name = name
        self.body = Region(arg_types)
        self.arg_names = list(arg_names) or [f"arg{i}" for i in range(len(arg_types))]
        self.attrs: dict = dict(attrs or {})
        self.loc = loc

    @property
    def args(self) -> list[Value]:
        return self.body.args

    def walk(self) -> Iterator[Op]:
        return self.body.walk()


class Module:
    """What one compile produces: kernels, with module-wide attributes (the target)."""

    def __init__(self, functions=(), attrs=None):
        self.functions: list[Function] = list(functions)
        self.attrs: dict = dict(attrs or {})

    def function(self, name: Optional[str] = None) -> Function:
        if name is None:
            if len(self.functions) != 1:
                raise ValueError(f"module has {len(self.functions)} functions; name one")
            return self.functions[0]
        for fn in self.functions:
            if fn.name == name:
                return fn
        raise KeyError(name)

    def __repr__(self):
        # The text form lives in the printer (skc.ir.print_module), which imports this module.
        names = ", ".join(fn.name for fn in self.functions)
        return f"<skc.ir.Module {names or '(empty)'}; skc.ir.print_module(module) gives its text>"
