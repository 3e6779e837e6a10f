"""Random kernels as Python source, for differential testing: the same text runs in skc (interpreter or GPU)
and as plain Python (the reference), with int32 wrap-around and float32 rounding made explicit.

Every int operation of a program is wrapped in `W(...)` and every float operation in `F(...)`: in skc both are
identity `@skc.func`s (the kernel's values are i32 and f32 already); in the reference `W` wraps a Python int
to int32 and `F` rounds a Python float (a double, in which one f32 operation is exact) to float32. Programs
avoid undefined behaviour: divisors are odd and in 1..255, shift counts are masked to 0..31, no float is
converted to an int, loops have small bounded trip counts, and no operation has two compile-time operands
(Python would fold it at compile time without the W/F rounding of the reference). Batch(extra=True) goes where Python
and C part ways or C is undefined, to what skc documents (docs/tutorial.md, docs/ir.md): // and % by negative divisors
(Python's floor), shifts by up to the width and past it, float to integer casts out of range and of NaN; and adds integers of other widths (u8 ... i64, with casts named U8 ... I64
that the reference defines as the documented casts), f16/bf16, NaN, infinities and -0.0 among the float inputs, loops
with `else:`, `while True:` and atomics on a thread's own output slot.

A batch is a module of `@func` programs `p0 ... pN-1` (each with helpers) and, in skc mode, one kernel that
runs program b in block b: thread t of block b reads and writes NV ints and NV floats at offset
o = (b * T + t) * NV of the four arrays. Known-bug patterns (a run-time break or continue whose nearest loop
is a static_range: the frontend miscompiles it) are generated only with known_bugs=True.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

NV = 4          # int and float variables (inputs and outputs) per thread
T = 32          # threads per block

SKC_HEADER = '''import skc

func = skc.func
static_range = skc.static_range
fsqrt = skc.sqrt


@skc.func
def W(x):
    return x


@skc.func
def F(x):
    return x
'''

REFERENCE_HEADER = '''import numpy as np


def func(fn):
    return fn


static_range = range


def W(x):
    return ((int(x) + 2147483648) % 4294967296) - 2147483648


def F(x):
    return float(np.float32(x))


def fsqrt(x):
    return float(np.sqrt(np.float32(x)))
'''


# extra=True programs also convert between integer widths, to f16/bf16 and from floats to integers: the casts are
# skc's in the kernel and, in the reference, the documented meaning (docs/ir.md arith.cast: an integer wraps to the
# width; a float truncates toward zero and saturates, NaN gives 0; a float rounds to nearest even)
EXTRA_SKC_HEADER = '''
U8, I8, U16, I16, U32, I32, I64 = skc.u8, skc.i8, skc.u16, skc.i16, skc.u32, skc.i32, skc.i64
F16, BF16, F32 = skc.f16, skc.bf16, skc.f32


@skc.func
def A_ADD(p, i, v):
    return skc.atomic_add(p + i, v)


@skc.func
def A_MIN(p, i, v):
    return skc.atomic_min(p + i, v)


@skc.func
def A_MAX(p, i, v):
    return skc.atomic_max(p + i, v)


@skc.func
def A_XOR(p, i, v):
    return skc.atomic_xor(p + i, v)


@skc.func
def A_XCHG(p, i, v):
    return skc.atomic_xchg(p + i, v)


@skc.func
def A_CAS(p, i, c, v):
    return skc.atomic_cas(p + i, c, v)
'''

EXTRA_REFERENCE_HEADER = '''
import ml_dtypes


def _int(x, bits, signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if isinstance(x, float):
        return 0 if x != x else lo if x <= lo else hi if x >= hi else int(x)
    x = int(x) & ((1 << bits) - 1)
    return x - (1 << bits) if x > hi else x


def U8(x): return _int(x, 8, False)
def I8(x): return _int(x, 8, True)
def U16(x): return _int(x, 16, False)
def I16(x): return _int(x, 16, True)
def U32(x): return _int(x, 32, False)
def I32(x): return _int(x, 32, True)
def I64(x): return _int(x, 64, True)
def F16(x): return float(np.float16(x))
def BF16(x): return float(ml_dtypes.bfloat16(x))
def F32(x): return float(np.float32(x))


def _atomic(combine):   # an atomic on the thread's own slot: no other thread touches it, so it is a plain update
    def apply(p, i, *values):
        old = p[i]
        p[i] = combine(old, *values)
        return old
    return apply


A_ADD, A_MIN, A_MAX = _atomic(lambda a, v: W(a + v)), _atomic(min), _atomic(max)
A_XOR, A_XCHG, A_CAS = _atomic(lambda a, v: a ^ v), _atomic(lambda a, v: v), _atomic(lambda a, c, v: v if a == c else a)
'''

NARROW = ("U8", "I8", "U16", "I16")


def _kernel_source(count: int) -> str:
    lines = ["", "", "@skc.kernel",
             "def batch(xi: skc.Ptr[skc.i32], xf: skc.Ptr[skc.f32], oi: skc.Ptr[skc.i32], of: skc.Ptr[skc.f32]):",
             "    b = skc.block_id(0)",
             f"    o = (b * {T} + skc.thread_id(0)) * {NV}"]
    for k in range(count):
        lines += [f"    if b == {k}:", f"        p{k}(xi, xf, oi, of, o)"]
    return "\n".join(lines) + "\n"


class Choices:
    """Random choices from a generator's numpy `self.rng` (mixgen's and convgen's programs)."""

    def pick(self, seq):
        return seq[int(self.rng.integers(0, len(seq)))]

    def chance(self, p):
        return bool(self.rng.random() < p)


class Program:
    """One random program: `source` defines its helpers and `@func def NAME(xi, xf, oi, of, o)`."""

    INT_LITERALS = (0, 1, 2, 3, 7, -1, -5, 100, -100, 255, 65535, 2147483647, -2147483647, 1 << 20)

    def __init__(self, rng: np.random.Generator, name: str, known_bugs: bool = False, depth: int = 3,
                 extra: bool = False):
        self.rng, self.name, self.known_bugs, self.max_depth = rng, name, known_bugs, depth
        self.extra = extra       # also the constructs of _extra_int, _extra_float, _extra_cond and _extra_statement
        self.counter = 0
        self.helpers: list = []      # (name, source, returns 'int' or 'float')
        for h in range(int(rng.integers(0, 3))):
            self._helper(f"{name}_h{h}")
        body = self._body()
        self.source = "\n\n".join(src for _, src, _ in self.helpers) + ("\n\n" if self.helpers else "") + body

    # -- random choices ---------------------------------------------------------------------------
    def _pick(self, seq):
        return seq[int(self.rng.integers(0, len(seq)))]

    def _chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def _fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # -- expressions: (text, is_constant) ---------------------------------------------------------
    def int_expr(self, ints, floats, depth=0):
        if depth >= 3 or self._chance(0.3):
            if self._chance(0.15):
                return str(self._pick(self.INT_LITERALS)), True
            name, const = self._pick(ints)
            return name, const
        kind = int(self.rng.integers(0, 20 if self.extra else 12))
        if kind == 11 and self.helpers and self._chance(0.5):
            return self._call_helper(ints, floats, depth, "int")
        a, b = self._nonconst_pair(ints, floats, depth, self.int_expr)
        if kind >= 12:
            return self._extra_int(kind - 12, a, b, ints, floats, depth), False
        if kind == 0:
            return f"W({a} {self._pick(['+', '-', '*'])} {b})", False
        if kind == 1:
            return f"W({a} {self._pick(['//', '%'])} (({b} & 255) | 1))", False
        if kind == 2:
            return f"({a} {self._pick(['&', '|', '^'])} {b})", False
        if kind == 3:
            return f"W({a} << ({b} & 31))", False
        if kind == 4:
            return f"({a} >> ({b} & 31))", False
        if kind == 5:
            return f"{self._pick(['min', 'max'])}({a}, {b})", False
        if kind == 6:
            x, _ = self._nonconst(ints, floats, depth, self.int_expr)
            return self._pick([f"W(abs({x}))", f"W(-{x})", f"(~{x})"]), False
        if kind == 7:
            return f"({a} if {self.cond(ints, floats, depth + 1)} else {b})", False
        if kind == 8:
            return f"int({self.cond(ints, floats, depth + 1)})", False
        return f"W({a} {self._pick(['+', '-', '*', '^'])} {b})", False

    def float_expr(self, ints, floats, depth=0):
        if depth >= 3 or self._chance(0.3):
            if self._chance(0.15):
                return repr(int(self.rng.integers(-64, 65)) / 8), True
            return self._pick(floats)
        kind = int(self.rng.integers(0, 13 if self.extra else 9))
        if kind == 8 and self.helpers and self._chance(0.5):
            return self._call_helper(ints, floats, depth, "float")
        if kind == 0:
            x, _ = self._nonconst(ints, floats, depth, self.int_expr)
            return f"F(float({x}))", False
        a, b = self._nonconst_pair(ints, floats, depth, self.float_expr)
        if kind >= 9:
            return self._extra_float(kind - 9, a, b, ints, floats, depth), False
        if kind in (1, 2):
            return f"F({a} {self._pick(['+', '-', '*'])} {b})", False
        if kind == 3:
            return f"F({a} / F(abs({b}) + 1.0))", False
        if kind == 4:
            x, _ = self._nonconst(ints, floats, depth, self.float_expr)
            return self._pick([f"F(-{x})", f"F(abs({x}))", f"fsqrt(F(abs({x})))"]), False
        if kind == 5:
            return f"({a} if {self.cond(ints, floats, depth + 1)} else {b})", False
        return f"F({a} {self._pick(['+', '-', '*'])} {b})", False

    def cond(self, ints, floats, depth=0) -> str:
        kind = int(self.rng.integers(0, 8 if self.extra else 6))
        if kind >= 6:
            return self._extra_cond(ints, floats, depth)
        if depth < 3 and kind == 4:
            return f"({self.cond(ints, floats, depth + 1)} {self._pick(['and', 'or'])} " \
                   f"{self.cond(ints, floats, depth + 1)})"
        if depth < 3 and kind == 5:
            return f"(not {self.cond(ints, floats, depth + 1)})"
        op = self._pick(["<", "<=", "==", "!=", ">", ">="])
        expr = self.float_expr if kind == 3 else self.int_expr
        a, b = self._nonconst_pair(ints, floats, depth + 1, expr)
        return f"({a} {op} {b})"

    # -- extra=True: what users write that the first generator left out ----------------------------------
    def _extra_int(self, kind, a, b, ints, floats, depth) -> str:
        """Python's // and % by negative divisors, shifts by up to 63, narrow and unsigned and 64-bit integers in
        one expression (each narrow result wrapped to a width, so C's promotions and skc's agree on it), float to
        integer casts out of range, select chains."""
        if kind == 0:   # odd divisors in -127..127
            return f"W({a} {self._pick(['//', '%'])} ((({b}) & 255) - 128 | 1))"
        if kind == 1:
            return self._pick([f"W({a} << ({b} & 63))", f"({a} >> ({b} & 63))"])
        if kind == 2:
            outer, other = self._pick(NARROW), self._pick(NARROW)
            op = self._pick(["+", "-", "*", "&", "|", "^", "//", "%"])
            right = f"{other}({b} | 1)" if op in ("//", "%") else f"{other}({b})"
            return f"I32({outer}({outer}({a}) {op} {right}))"
        if kind == 3:
            return self._pick([f"I32(U32({a}) {self._pick(['+', '-', '*', '&', '|', '^'])} U32({b}))",
                               f"I32(U32({a}) {self._pick(['//', '%'])} U32({b} | 1))",
                               f"I32(U32({a}) >> ({b} & 63))",
                               "I32({0}({0}({1}) << ({2} & 15)))".format(self._pick(NARROW), a, b),
                               f"I32({self._pick(NARROW)}({a}) >> ({b} & 15))"])
        if kind == 4:
            if self._chance(0.3):   # 64-bit shifts by up to 127 (the count's type is the value's, i64)
                return self._pick([f"I32(I64(I64({a}) << I64({b} & 127)) >> 32)", f"I32(I64({a}) >> I64({b} & 127))"])
            return f"I32((I64({a}) * I64({b})) >> {self._pick(['16', '31', '32', '33', f'({b} & 63)'])})"
        if kind == 5:
            x, _ = self._nonconst(ints, floats, depth, self.float_expr)
            return self._pick([f"I32({self._pick(NARROW + ('U32', 'I32'))}({x}))", f"I32(I64({x}) >> 24)",
                               f"I32({x})"])
        c = self._nonconst(ints, floats, depth, self.int_expr)[0]
        return f"({a} if {self.cond(ints, floats, depth + 1)} else {b} if {self.cond(ints, floats, depth + 1)} else {c})"

    def _extra_float(self, kind, a, b, ints, floats, depth) -> str:
        """Python's min/max (NaN and -0.0 by position), % by a negative or positive divisor, f16/bf16 arithmetic
        with its rounding, integers of other widths to f32."""
        if kind == 0:
            return f"{self._pick(['min', 'max'])}({a}, {b})"
        if kind == 1:
            return self._pick([f"F({a} % F(abs({b}) + 0.5))", f"F({a} % F(-0.5 - abs({b})))"])
        if kind == 2:
            half, other = self._pick(["F16", "BF16"]), self._pick(["F16", "BF16"])
            op = self._pick(["+", "-", "*"])
            return f"F32({half}({half}({a}) {op} {other}({b})))"
        x, _ = self._nonconst(ints, floats, depth, self.int_expr)
        return f"F32({self._pick(NARROW + ('U32',))}({x}))"

    def _extra_cond(self, ints, floats, depth) -> str:
        """Comparisons of narrow and unsigned integers (promoted as C promotes) and of halves."""
        a, b = self._nonconst_pair(ints, floats, depth + 1, self.int_expr)
        op = self._pick(["<", "<=", "==", "!=", ">", ">="])
        if self._chance(0.3):
            x, y = self._nonconst_pair(ints, floats, depth + 1, self.float_expr)
            half = self._pick(["F16", "BF16"])
            return f"({half}({x}) {op} {half}({y}))"
        left, right = self._pick(NARROW + ("U32",)), self._pick(NARROW)
        return f"({left}({a}) {op} {'U32' if left == 'U32' else right}({b}))"

    def _extra_statement(self, ints, floats, indent) -> list:
        """`while True:` left by a break, for/while loops with an `else:` (run unless a break left), the old value an
        atomic on the thread's own output slot gives (the slot's earlier atomics, or 0; the outputs are stored last)."""
        pad = "    " * indent
        if self._chance(0.25):
            target, j = self._pick(ints)[0], int(self.rng.integers(0, NV))
            if target not in {f"i{k}" for k in range(NV)}:
                target = f"i{j}"
            value = self._nonconst(ints, floats, 1, self.int_expr)[0]
            if self._chance(0.2):
                compare = self._pick([f"oi[o + {j}]", self._nonconst(ints, floats, 1, self.int_expr)[0]])
                return [f"{pad}{target} = A_CAS(oi, o + {j}, {compare}, {value})"]
            return [f"{pad}{target} = {self._pick(['A_ADD', 'A_MIN', 'A_MAX', 'A_XOR', 'A_XCHG'])}(oi, o + {j}, {value})"]
        var = self._fresh("w")
        bound = self._nonconst(ints, floats, 1, self.int_expr)[0]
        inner = ints + [(var, False)]
        body = self._block(inner, floats, indent + 1, "run", int(self.rng.integers(1, 4)))
        if self._chance(0.5):
            return ([f"{pad}{var} = xi[o] & 0", f"{pad}while True:", f"{pad}    {var} = {var} + 1",
                     f"{pad}    if {var} > (({bound}) & 7):", f"{pad}        break"] + body)
        head = (f"{pad}for {var} in range(({bound}) & 7):" if self._chance(0.5) else
                f"{pad}while {var} < (({bound}) & 7):")
        lines = ([f"{pad}{var} = xi[o] & 0", head] + ([f"{pad}    {var} = {var} + 1"] if "while" in head else [])
                 + body + [f"{pad}else:"])
        return lines + self._block(ints, floats, indent + 1, None, int(self.rng.integers(1, 3)))

    def _nonconst(self, ints, floats, depth, make):
        for _ in range(20):
            text, const = make(ints, floats, depth + 1)
            if not const:
                return text, False
        runtime = [v for v in (ints if make == self.int_expr else floats) if not v[1]]
        return self._pick(runtime)

    def _nonconst_pair(self, ints, floats, depth, make):
        a, a_const = make(ints, floats, depth + 1)
        b, b_const = make(ints, floats, depth + 1)
        if a_const and b_const:
            b, _ = self._nonconst(ints, floats, depth, make)
        return a, b

    def _call_helper(self, ints, floats, depth, returns):
        options = [(n, r) for n, _, r in self.helpers if r == returns]
        if not options:
            return (self._nonconst(ints, floats, depth, self.int_expr) if returns == "int"
                    else self._nonconst(ints, floats, depth, self.float_expr))
        name, _ = self._pick(options)
        a, _ = self._nonconst(ints, floats, depth, self.int_expr)
        b, _ = self._nonconst(ints, floats, depth, self.int_expr)
        x, _ = self._nonconst(ints, floats, depth, self.float_expr)
        return f"{name}({a}, {b}, {x})", False

    # -- helpers (inlined @func with early returns) -------------------------------------------------
    def _helper(self, name: str):
        returns = self._pick(["int", "float"])
        ints, floats = [("a", False), ("b", False)], [("x", False)]
        make = self.int_expr if returns == "int" else self.float_expr
        lines = ["@func", f"def {name}(a, b, x):"]
        if self._chance(0.35):   # a value returned from inside a loop, or after it
            acc = ("r", False)
            inner_ints = ints + [("l", False)] + ([acc] if returns == "int" else [])
            inner_floats = floats + ([acc] if returns == "float" else [])
            lines += [f"    r = {'a' if returns == 'int' else 'x'}",
                      f"    for l in range({self._nonconst(ints, floats, 1, self.int_expr)[0]} & 7):",
                      f"        if {self.cond(inner_ints, inner_floats, 1)}:",
                      f"            return {self._nonconst(inner_ints, inner_floats, 1, make)[0]}",
                      f"        r = {self._nonconst(inner_ints, inner_floats, 1, make)[0]}"]
            self.helpers.append((name, "\n".join(lines + ["    return r"]), returns))
            return
        if self._chance(0.6):
            lines += [f"    if {self.cond(ints, floats, 1)}:", f"        return {self._nonconst(ints, floats, 1, make)[0]}"]
            if self._chance(0.4):
                lines += [f"    elif {self.cond(ints, floats, 1)}:",
                          f"        return {self._nonconst(ints, floats, 1, make)[0]}"]
        lines.append(f"    return {self._nonconst(ints, floats, 0, make)[0]}")
        self.helpers.append((name, "\n".join(lines), returns))

    # -- statements -----------------------------------------------------------------------------------
    def _body(self) -> str:
        ints = [(f"i{j}", False) for j in range(NV)]
        floats = [(f"f{j}", False) for j in range(NV)]
        lines = ["@func", f"def {self.name}(xi, xf, oi, of, o):"]
        lines += [f"    i{j} = xi[o + {j}]" for j in range(NV)]
        lines += [f"    f{j} = xf[o + {j}]" for j in range(NV)]
        lines += self._block(ints, floats, 1, loop=None, count=int(self.rng.integers(3, 8)))
        lines += self._stores(1)
        return "\n".join(lines)

    def _stores(self, indent: int) -> list:
        pad = "    " * indent
        return ([f"{pad}oi[o + {j}] = i{j}" for j in range(NV)] +
                [f"{pad}of[o + {j}] = f{j}" for j in range(NV)])

    def _block(self, ints, floats, indent, loop, count) -> list:
        lines = []
        for _ in range(count):
            lines += self._statement(ints, floats, indent, loop)
        return lines or ["    " * indent + "pass"]

    def _statement(self, ints, floats, indent, loop) -> list:
        pad = "    " * indent
        nested = indent < self.max_depth + 1
        kind = int(self.rng.integers(0, 12 if self.extra else 10))
        if kind >= 10 and nested:
            return self._extra_statement(ints, floats, indent)
        if kind <= 3 or not nested:
            if self._chance(0.55):
                target = f"i{int(self.rng.integers(0, NV))}"
                return [f"{pad}{target} = {self._nonconst(ints, floats, 0, self.int_expr)[0]}"]
            target = f"f{int(self.rng.integers(0, NV))}"
            return [f"{pad}{target} = {self._nonconst(ints, floats, 0, self.float_expr)[0]}"]
        if kind <= 5:
            return self._if(ints, floats, indent, loop)
        if kind == 6:
            return self._for(ints, floats, indent)
        if kind == 7:
            return self._while(ints, floats, indent)
        if kind == 8:
            return self._static_for(ints, floats, indent)
        # an early return (storing the outputs first), or a jump out of the enclosing loop
        if loop is not None and self._chance(0.7) and (loop == "run" or self.known_bugs):
            return [f"{pad}if {self.cond(ints, floats)}:", f"{pad}    {self._pick(['break', 'continue'])}"]
        return [f"{pad}if {self.cond(ints, floats)}:"] + self._stores(indent + 1) + [f"{pad}    return"]

    def _if(self, ints, floats, indent, loop) -> list:
        pad = "    " * indent
        lines = [f"{pad}if {self.cond(ints, floats)}:"]
        lines += self._block(ints, floats, indent + 1, loop, int(self.rng.integers(1, 4)))
        for _ in range(int(self.rng.integers(0, 3))):
            if self._chance(0.5):
                lines.append(f"{pad}elif {self.cond(ints, floats)}:")
                lines += self._block(ints, floats, indent + 1, loop, int(self.rng.integers(1, 3)))
        if self._chance(0.5):
            lines.append(f"{pad}else:")
            lines += self._block(ints, floats, indent + 1, loop, int(self.rng.integers(1, 3)))
        return lines

    def _for(self, ints, floats, indent) -> list:
        pad = "    " * indent
        var = self._fresh("l")
        a = self._nonconst(ints, floats, 1, self.int_expr)[0]
        if self._chance(0.5):
            header = f"range(({a}) & 7)"
        else:
            b = self._nonconst(ints, floats, 1, self.int_expr)[0]
            step = self._pick([1, 2, 3, -1, -2])
            header = f"range(({a}) & 7, (({b}) & 7) - 3, {step})" if step < 0 else \
                f"range((({a}) & 7) - 3, ({b}) & 7, {step})"
        inner = ints + [(var, False)]
        return [f"{pad}for {var} in {header}:"] + self._block(inner, floats, indent + 1, "run",
                                                                 int(self.rng.integers(1, 4)))

    def _while(self, ints, floats, indent) -> list:
        pad = "    " * indent
        var = self._fresh("w")
        bound = self._nonconst(ints, floats, 1, self.int_expr)[0]
        inner = ints + [(var, False)]
        return ([f"{pad}{var} = xi[o] & 0", f"{pad}while {var} < (({bound}) & 7):", f"{pad}    {var} = {var} + 1"]
                + self._block(inner, floats, indent + 1, "run", int(self.rng.integers(1, 4))))

    def _static_for(self, ints, floats, indent) -> list:
        pad = "    " * indent
        var = self._fresh("s")
        inner = ints + [(var, True)]
        return [f"{pad}for {var} in static_range({int(self.rng.integers(1, 4))}):"] + \
            self._block(inner, floats, indent + 1, "static", int(self.rng.integers(1, 3)))


# -- batches ---------------------------------------------------------------------------------------
class Batch:
    """`count` programs from `seed`: their source for skc and for the reference, and their inputs."""

    def __init__(self, seed: int, count: int, known_bugs: bool = False, extra: bool = False):
        rng = np.random.default_rng(seed)
        self.seed, self.count, self.extra = seed, count, extra
        self.programs = [Program(rng, f"p{k}", known_bugs, extra=extra) for k in range(count)]
        body = "\n\n\n".join(p.source for p in self.programs)
        skc_header, reference_header = ((SKC_HEADER + EXTRA_SKC_HEADER, REFERENCE_HEADER + EXTRA_REFERENCE_HEADER)
                                        if extra else (SKC_HEADER, REFERENCE_HEADER))
        self.skc_source = skc_header + "\n\n" + body + "\n" + _kernel_source(count)
        self.reference_source = reference_header + "\n\n" + body + "\n"
        size = count * T * NV
        special = np.array([0, 1, -1, 2147483647, -2147483648, 65535, -65536, 12345678], np.int64)
        ints = rng.integers(-2 ** 31, 2 ** 31, size, dtype=np.int64)
        small = rng.integers(-20, 21, size)
        pick = rng.random(size)
        ints = np.where(pick < 0.5, small, np.where(pick < 0.6, special[rng.integers(0, 8, size)], ints))
        self.xi = ints.astype(np.int32)
        floats = rng.standard_normal(size) * np.where(rng.random(size) < 0.1, 1e30, 4.0)
        floats = np.where(rng.random(size) < 0.1, np.round(floats), floats)
        if extra:   # NaN, infinities, -0.0 and the edges of the integer types' ranges, for min/max, % and casts
            special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 0.5, -0.5, 127.5, -128.9, 255.9, 256.0, 65535.5,
                                -32768.5, 2147483648.0, -2147483904.0, 4294967296.0, 3e9, 1e-40, 65520.0, 3.4e38])
            floats = np.where(rng.random(size) < 0.2, special[rng.integers(0, len(special), size)], floats)
        self.xf = floats.astype(np.float32)

    def reference(self, folder: str):
        """The outputs (int32 and float32 arrays) of the programs run as plain Python, thread by thread."""
        module = load_module(self.reference_source, folder, f"fuzz_ref_{self.seed}_{self.count}{'x' * self.extra}")
        xi, xf = [int(v) for v in self.xi], [float(v) for v in self.xf]
        oi, of = [0] * len(xi), [0.0] * len(xf)
        for k in range(self.count):
            program = getattr(module, f"p{k}")
            for t in range(T):
                program(xi, xf, oi, of, (k * T + t) * NV)
        return np.array(oi, np.int64).astype(np.int32), np.array(of, np.float64).astype(np.float32)

    def kernel(self, folder: str):
        """The skc kernel running program b in block b (grid = count blocks of T threads)."""
        return load_module(self.skc_source, folder, f"fuzz_skc_{self.seed}_{self.count}{'x' * self.extra}").batch


def load_module(source: str, folder: str, name: str):
    path = os.path.join(folder, f"{name}.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def same_floats(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: equal bit patterns, or both NaN (payloads may differ between machines)."""
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def mismatches(batch: Batch, got_i, got_f, want_i, want_f) -> list:
    """(program index, thread, 'int'/'float', slot, got, expected) for each differing output."""
    found = []
    bad_i = np.flatnonzero(got_i != want_i)
    bad_f = np.flatnonzero(~same_floats(got_f, want_f))
    for kind, bad, got, want in (("int", bad_i, got_i, want_i), ("float", bad_f, got_f, want_f)):
        for index in bad:
            program, rest = divmod(int(index), T * NV)
            found.append((program, rest // NV, kind, rest % NV, got[index].item(), want[index].item()))
    return found


def program_report(batch: Batch, program: int, thread: int) -> str:
    """The source of one program and the inputs of one of its threads, to reproduce a mismatch."""
    o = (program * T + thread) * NV
    return (f"# seed {batch.seed}, program p{program}, thread {thread}: inputs "
            f"xi={batch.xi[o:o + NV].tolist()} xf={[float(v) for v in batch.xf[o:o + NV]]}\n"
            + batch.programs[program].source)
