"""Writing LLVM IR as text: types, constants, names, basic blocks and declarations.

skc writes LLVM IR text directly (as tinygrad's renderers do) and hands it to llvmlite's
parser: every attribute LLVM 22 knows is at hand (kernel calling conventions, grid_constant
parameters, string function attributes), with no builder API in the way.
"""
from __future__ import annotations

import math
import struct

from .. import ir

_SCALAR = {"i1": "i1", "i8": "i8", "i16": "i16", "i32": "i32", "i64": "i64",
           "u8": "i8", "u16": "i16", "u32": "i32", "u64": "i64",
           "f16": "half", "bf16": "bfloat", "f32": "float", "f64": "double",
           "f8e4m3": "i8", "f8e5m2": "i8", "f8e4m3fnuz": "i8", "f8e5m2fnuz": "i8"}


def llvm_type(t: ir.Type, address_spaces: dict) -> str:
    if isinstance(t, ir.ScalarType):
        return _SCALAR[t.name]
    if isinstance(t, ir.PointerType):
        space = address_spaces[t.space]
        return "ptr" if space == 0 else f"ptr addrspace({space})"
    if isinstance(t, ir.VectorType):
        return f"<{t.count} x {_SCALAR[t.elem.name]}>"
    if isinstance(t, ir.VarType):
        return "ptr"
    if isinstance(t, ir.TensorMapType):
        return "ptr"
    raise TypeError(f"no LLVM type for {t}")


def _f32_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]


def float_literal(value: float, t: ir.ScalarType) -> str:
    """An exact LLVM literal: hex doubles for float/double, 0xH for half, 0xR for bfloat. The value rounds
    to t to nearest even, and one too large for t becomes infinity, as a C cast (and the interpreter) does."""
    if t.name == "f64":
        return "0x%016X" % struct.unpack("<Q", struct.pack("<d", value))[0]
    if t.name == "f32":
        return "0x%016X" % struct.unpack("<Q", struct.pack("<d", _narrow(value, "<f")))[0]
    if t.name == "f16":
        return "0xH%04X" % struct.unpack("<H", struct.pack("<e", _narrow(value, "<e")))[0]
    if t.name == "bf16":
        if value != value:   # (a quiet NaN of the value's sign, as the f16 and f32 literals and the interpreter keep)
            return "0xRFFC0" if math.copysign(1.0, value) < 0 else "0xR7FC0"
        return "0xR%04X" % (_f32_bits(_round_bf16(value)) >> 16)
    raise TypeError(f"no float literal for {t}")


def _narrow(value: float, fmt: str) -> float:
    """value rounded to the struct format fmt ('<f', '<e'); infinity where it overflows."""
    try:
        return struct.unpack(fmt, struct.pack(fmt, value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


_BF16_MAX = float.fromhex("0x1.fep127")


def _round_bf16(value: float) -> float:
    """value rounded once (ties to even) to bf16: 8 significant bits, exponents down to -126 (then subnormal)."""
    magnitude = abs(value)
    if magnitude == 0 or math.isinf(magnitude):
        return value
    _, exponent = math.frexp(magnitude)
    quantum = max(exponent - 1, -126) - 7
    rounded = math.ldexp(round(math.ldexp(magnitude, -quantum)), quantum)
    if rounded > _BF16_MAX:
        rounded = math.inf
    return math.copysign(rounded, value)


def int_literal(value: int, t: ir.ScalarType) -> str:
    if t.is_bool:
        return "true" if value else "false"
    bits = t.bits
    value &= (1 << bits) - 1
    if value >= 1 << (bits - 1):
        value -= 1 << bits  # LLVM reads integer literals as signed
    return str(value)


def scalar_literal(value, t: ir.ScalarType) -> str:
    if t.is_float and t.bits >= 16:
        return float_literal(float(value), t)
    if t.is_float:  # fp8 constants are stored as their bit pattern
        return int_literal(fp8_bits(float(value), t.name), ir.i8)
    return int_literal(int(value), t)


def _fp8_value(bits: int, name: str) -> float:
    exponent_bits = 4 if name.startswith("f8e4m3") else 5
    fnuz = name.endswith("fnuz")   # AMD's: bias one larger, 0x80 the only NaN, no -0 and no infinities
    bias = (1 << (exponent_bits - 1)) - 1 + fnuz
    mantissa_bits = 7 - exponent_bits
    sign = -1.0 if bits & 0x80 else 1.0
    exponent = (bits >> mantissa_bits) & ((1 << exponent_bits) - 1)
    mantissa = bits & ((1 << mantissa_bits) - 1)
    if fnuz and bits == 0x80:
        return float("nan")
    if name == "f8e4m3" and exponent == 15 and mantissa == 7:
        return float("nan")
    if name == "f8e5m2" and exponent == 31:
        return sign * float("inf") if mantissa == 0 else float("nan")
    if exponent == 0:
        return sign * mantissa * 2.0 ** (1 - bias - mantissa_bits)
    return sign * (1 + mantissa / (1 << mantissa_bits)) * 2.0 ** (exponent - bias)


def fp8_bits(value: float, name: str) -> int:
    """The fp8 code of value as the interpreter's cast and PTX cvt.rn.satfinite give it: nearest, ties to the
    even code; beyond the largest finite value (infinities included) that value with value's sign; -0 stays
    -0; NaN is 0x7F (the FNUZ formats: NaN is 0x80 and a zero is 0)."""
    fnuz = name.endswith("fnuz")
    if value != value:
        return 0x80 if fnuz else 0x7F
    sign = 0x80 if math.copysign(1.0, value) < 0 else 0
    finite = [(b, _fp8_value(b, name)) for b in range(0x80)
              if _fp8_value(b, name) == _fp8_value(b, name) and _fp8_value(b, name) != float("inf")]
    magnitude = min(abs(value), finite[-1][1])
    # near a candidate the subtraction is exact (Sterbenz), so ties are found exactly
    best = min(finite, key=lambda item: (abs(item[1] - magnitude), item[0] & 1))
    return 0 if fnuz and best[0] == 0 else sign | best[0]


def constant_literal(value, t: ir.Type, address_spaces: dict) -> str:
    if isinstance(t, ir.VectorType):
        elem = _SCALAR[t.elem.name]
        item = scalar_literal(value, t.elem)
        return "<" + ", ".join(f"{elem} {item}" for _ in range(t.count)) + ">"
    return scalar_literal(value, t)


def string_literal(text: str) -> tuple[str, int]:
    """An LLVM c"..." string with a terminating NUL, and its length in bytes."""
    data = text.encode() + b"\0"
    escaped = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else "\\%02X" % b for b in data)
    return f'c"{escaped}"', len(data)


def asm_string(text: str) -> str:
    """Quote inline-assembly text or constraints for LLVM."""
    return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\%02X" % ord(c) for c in text) + '"'


class FunctionText:
    """The blocks of one LLVM function being written."""

    def __init__(self):
        self.blocks: list[tuple[str, list[str]]] = []
        self.block = "entry"
        self.lines: list[str] = []
        self.blocks.append((self.block, self.lines))
        self.terminated = False
        self._count = 0

    def fresh(self, prefix: str = "v") -> str:
        self._count += 1
        return f"%{prefix}{self._count}"

    def new_label(self, prefix: str = "b") -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def emit(self, line: str):
        self.lines.append("  " + line)

    def value(self, text: str, prefix: str = "v") -> str:
        """Emit `%name = text`; give %name."""
        name = self.fresh(prefix)
        self.emit(f"{name} = {text}")
        return name

    def start_block(self, label: str):
        if not self.terminated:
            self.emit(f"br label %{label}")
        self.block = label
        self.lines = []
        self.blocks.append((label, self.lines))
        self.terminated = False

    def terminate(self, line: str):
        if not self.terminated:
            self.emit(line)
        self.terminated = True

    def render(self, header: str) -> str:
        out = [header + " {"]
        for label, lines in self.blocks:
            out.append(f"{label}:")
            out.extend(lines)
        out.append("}")
        return "\n".join(out)


class ModuleText:
    """An LLVM module being written: declarations, globals and function bodies."""

    def __init__(self, triple: str, datalayout: str):
        self.header = [f'target triple = "{triple}"', f'target datalayout = "{datalayout}"']
        self.declarations: dict[str, str] = {}
        self.globals: list[str] = []
        self.functions: list[str] = []
        self.flags: list[str] = []
        self._strings: dict[str, str] = {}

    def declare(self, name: str, signature: str) -> str:
        """Declare `signature` (e.g. 'i32 @llvm.nvvm.read.ptx.sreg.tid.x()') once; give @name."""
        self.declarations.setdefault(name, f"declare {signature}")
        return f"@{name}"

    def define(self, name: str, definition: str) -> str:
        """Add the full text of helper function @name (an `internal` definition) once; give @name."""
        self.declarations.setdefault(name, definition)
        return f"@{name}"

    def string(self, text: str, address_space: int) -> tuple[str, int]:
        """A private constant string global; give its name and length."""
        key = f"{address_space}:{text}"
        if key not in self._strings:
            literal, length = string_literal(text)
            name = f"@.str.{len(self._strings)}"
            space = f" addrspace({address_space})" if address_space else ""
            self.globals.append(f"{name} = private unnamed_addr{space} constant [{length} x i8] {literal}, align 1")
            self._strings[key] = name
        literal, length = string_literal(text)
        return self._strings[key], length

    def module_flag(self, name: str, value: int, behavior: int = 1):
        """A module flag (LangRef "Module Flags Metadata"; behavior 1 = Error: linked modules must agree)."""
        self.flags.append(f'!{{i32 {behavior}, !"{name}", i32 {value}}}')

    def render(self) -> str:
        metadata = []
        if self.flags:
            metadata = ["!llvm.module.flags = !{" + ", ".join(f"!{i}" for i in range(len(self.flags))) + "}"]
            metadata += [f"!{i} = {flag}" for i, flag in enumerate(self.flags)]
        return "\n".join(self.header + [""] + list(self.declarations.values()) + [""] + self.globals + [""]
                         + self.functions + ([""] + metadata if metadata else [])) + "\n"
