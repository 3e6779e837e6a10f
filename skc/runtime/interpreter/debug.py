"""Debugging ops: device printf (C formats, formatted in Python, one line per active thread in
lane order, to sys.stdout), assertions, and inline assembly (which the interpreter cannot run)."""
from __future__ import annotations

import re
import sys

import numpy as np

from .access import failing
from .state import Fault

# %[flags][width][.precision][length]conversion (C11 7.21.6.1), without `*` widths or %s/%n.
_SPEC = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d+)?(?:\.(?P<precision>\d+))?"
                   r"(?P<length>hh|h|ll|l|j|z|t|L)?(?P<conv>[diouxXeEfFgGaAcp%])")
_LENGTH_BITS = {"hh": 8, "h": 16, None: 32, "l": 64, "ll": 64, "j": 64, "z": 64, "t": 64, "L": 64}


def _as_signed(value, bits: int) -> int:
    value = int(value) & ((1 << bits) - 1)
    return value - (1 << bits) if value >> (bits - 1) else value


def _converter(match):
    """A function from one argument to its text, for one conversion spec."""
    flags, width, precision = match["flags"], match["width"] or "", match["precision"]
    spec = "%" + flags + width + ("." + precision if precision is not None else "")
    conv, bits = match["conv"], _LENGTH_BITS[match["length"]]
    if conv in "di":
        return lambda v: (spec + "d") % _as_signed(v, bits)
    if conv in "uoxX":
        return lambda v: (spec + ("d" if conv == "u" else conv)) % (int(v) & ((1 << bits) - 1))
    if conv == "c":
        return lambda v: (spec + "c") % chr(int(v) & 0xFF)
    if conv == "p":
        return lambda v: (spec.replace("#", "") + "s") % f"{int(v):#x}"
    if conv in "aA":
        return lambda v: (spec.replace("#", "") + "s") % (float(v).hex() if conv == "a" else float(v).hex().upper())
    return lambda v: (spec + conv) % float(v)


def compile_format(format: str):
    """The pieces of a printf format: literal strings and converters; raises ValueError on what it cannot print."""
    pieces, position = [], 0
    for match in _SPEC.finditer(format):
        pieces.append(format[position:match.start()])
        pieces.append("%" if match["conv"] == "%" else _converter(match))
        position = match.end()
    pieces.append(format[position:])
    for piece in pieces:
        if isinstance(piece, str) and "%" in piece and piece != "%":
            raise ValueError(f"unsupported conversion in format {format!r} near {piece[piece.index('%'):][:6]!r}")
    return [p for p in pieces if p != ""]


def _print(op, launch):
    try:
        pieces = compile_format(op.attrs["format"])
    except ValueError as e:
        return failing(f"gpu.print: {e}", hint="use %d %u %lld %llu %x %f %e %g %c %p or %%")
    converters = sum(1 for p in pieces if not isinstance(p, str))
    if converters != len(op.operands):
        return failing(f"gpu.print: format {op.attrs['format']!r} has {converters} conversions "
                       f"but the op has {len(op.operands)} operands")
    operands = op.operands

    def print_(group):
        arrays = [group.env[v] for v in operands]
        lines = []
        for lane in np.flatnonzero(group.mask):
            values = iter([a[lane].item() for a in arrays])
            lines.append("".join(p if isinstance(p, str) else p(next(values)) for p in pieces))
        if lines:
            sys.stdout.write("".join(lines))
    return print_


def _assert(op, launch):
    condition, message = op.operands[0], op.attrs["message"]

    def check(group):
        broken = group.mask & ~group.env[condition]
        if broken.any():
            raise Fault(f"assertion failed: {message}", int(np.argmax(broken)))
    return check


def _asm(op, launch):
    return failing("inline assembly (gpu.asm) cannot run in the interpreter",
                   hint="guard it with a compile-time check of the target, or run on a GPU")


EFFECTS = {"gpu.print": _print, "gpu.assert": _assert, "gpu.asm": _asm}
