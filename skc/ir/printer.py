"""The tile IR's one textual form (printed here, parsed back by parser.py).

    kernel @name(%0: ptr<global>, %1: i32) {block = [128, 1, 1]} {
      %2 = gpu.thread_id {dim = 0} : i32
      scf.for %3, %4, %5 {label = "L0"} { ^(%6: i32)
        ...
      }
    }

An op is `[results =] name [operands] [{attributes}] [: result types] [loc(...)] [regions]`,
one per line; a region is `{ [^(arguments)]`, its ops, then `}`.
"""
from __future__ import annotations

import json

from .core import Function, Module, Op, Region, Value
from .types import Type


def format_attr(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # round-trips exactly; 'inf', '-inf' and 'nan' included
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Type):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    raise TypeError(f"cannot print attribute value {value!r} of type {type(value).__name__}")


def format_attrs(attrs: dict) -> str:
    return "{" + ", ".join(f"{k} = {format_attr(v)}" for k, v in attrs.items()) + "}"


class Printer:
    def __init__(self, locs: bool = False):
        self.names: dict[int, str] = {}
        self.locs = locs
        self.lines: list[str] = []

    def name(self, value: Value) -> str:
        key = id(value)
        if key not in self.names:
            self.names[key] = f"%{len(self.names)}"
        return self.names[key]

    def ref(self, value: Value) -> str:
        return self.names.get(id(value), "%<undefined>")

    def op_line(self, op: Op) -> str:
        text = ""
        if op.results:
            text = ", ".join(self.name(r) for r in op.results) + " = "
        text += op.name
        if op.operands:
            text += " " + ", ".join(self.ref(v) for v in op.operands)
        if op.attrs:
            text += " " + format_attrs(op.attrs)
        if op.results:
            text += " : " + ", ".join(str(r.type) for r in op.results)
        if self.locs and op.loc is not None:
            text += f" loc({json.dumps(op.loc.file)}:{op.loc.line}:{op.loc.col})"
        return text

    def region(self, region: Region, indent: str, head: str):
        args = ""
        if region.args:
            args = " ^(" + ", ".join(f"{self.name(a)}: {a.type}" for a in region.args) + ")"
        self.lines.append(f"{head}{{{args}")
        for op in region.ops:
            self.op(op, indent + "  ")
        self.lines.append(f"{indent}}}")

    def op(self, op: Op, indent: str):
        line = indent + self.op_line(op)
        if not op.regions:
            self.lines.append(line)
            return
        head = line + " "
        for region in op.regions:
            self.region(region, indent, head)
            head = self.lines.pop() + " "  # the closing brace and the next region share a line
        self.lines.append(head.rstrip())

    def function(self, fn: Function):
        args = ", ".join(f"{self.name(a)}: {a.type}" for a in fn.args)
        head = f"kernel @{fn.name}({args})"
        if fn.attrs:
            head += " " + format_attrs(fn.attrs)
        self.region(_body_without_args(fn), "", head + " ")


def _body_without_args(fn: Function) -> Region:
    """The body printed with its arguments already named in the signature."""
    view = Region()
    view.ops = fn.body.ops
    return view


def print_function(fn: Function, locs: bool = False) -> str:
    printer = Printer(locs)
    printer.function(fn)
    return "\n".join(printer.lines) + "\n"


def print_module(module: Module, locs: bool = False) -> str:
    parts = []
    if module.attrs:
        parts.append("module " + format_attrs(module.attrs) + "\n")
    for fn in module.functions:
        parts.append(print_function(fn, locs))
    return "\n".join(parts)


def print_op(op: Op) -> str:
    """One op and its regions, with values numbered locally (for error messages)."""
    printer = Printer()
    for v in op.operands:
        printer.name(v)
    printer.op(op, "")
    return "\n".join(printer.lines)
