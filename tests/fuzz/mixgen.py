"""Random kernels over every scalar type (i8..i64, u8..u64, f16, bf16, f32, f64, bool), for differential testing of
the CPU interpreter against the NVPTX backend's code run by the PTX emulator (ptx_emulator.py).

Unlike fuzzgen.py there is no Python reference: the interpreter is the definition, and the emulator runs the
compiled PTX with the PTX ISA's semantics. So programs may use everything the IR defines: casts between all types
(float to int saturates, NaN gives 0), mixed-type arithmetic (the promotion rules), integer division by any value
(by zero it divides by 1), shifts by any count, comparisons across signed/unsigned/float, selects, small vectors,
for/while loops with run-time bounds, break/continue, early returns, inlined @skc.func helpers, the thread index.

A batch is one kernel: block b runs program b; thread t of block b reads NV values of every type at offset
o = (b * T + t) * NV of the input arrays and writes NV values of every type (and NV bools as u8) to the outputs.
"""
from __future__ import annotations

import numpy as np

from fuzzgen import Choices

NV = 2
T = 16
INTS = ("i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64")
FLOATS = ("f16", "bf16", "f32", "f64")
TYPES = INTS + FLOATS
F8 = ("f8e4m3", "f8e5m2")
BITS = {"f8e4m3": 8, "f8e5m2": 8, "i1": 1, "i8": 8, "i16": 16, "i32": 32, "i64": 64, "u8": 8, "u16": 16, "u32": 32, "u64": 64,
        "f16": 16, "bf16": 16, "f32": 32, "f64": 64}


def is_float(t):
    return t in FLOATS or t in F8


def is_signed(t):
    return t.startswith("i") and t != "i1"


def promote(a, b):
    """skc's promote_scalars (semantics.py)."""
    if a == b:
        return a
    if is_float(a) or is_float(b):
        if not (is_float(a) and is_float(b)):
            return a if is_float(a) else b
        if BITS[a] == BITS[b] or BITS[a] == 8 or BITS[b] == 8:
            return "f32" if max(BITS[a], BITS[b]) <= 32 else "f64"
        return a if BITS[a] > BITS[b] else b
    if a == "i1":
        return b
    if b == "i1":
        return a
    if is_signed(a) != is_signed(b) and max(BITS[a], BITS[b]) < 32:
        return "i32"
    if BITS[a] != BITS[b]:
        return a if BITS[a] > BITS[b] else b
    return a if not is_signed(a) else b


def int_range(t):
    b = BITS[t]
    return (-(1 << (b - 1)), (1 << (b - 1)) - 1) if is_signed(t) else (0, (1 << b) - 1)


def literal_type(v):
    if isinstance(v, bool):
        return "i1"
    if isinstance(v, int):
        return "i32" if -(1 << 31) <= v < (1 << 31) else "i64"
    return "f32"


def with_literal(t, v):
    """The type of a run-time t beside the Python number v (semantics._operand_types, without keep_values)."""
    if t == "i1":
        return promote("i32", literal_type(v)) if not isinstance(v, bool) else "i1"
    if is_float(t):
        return t
    if isinstance(v, int) and not isinstance(v, bool):
        lo, hi = int_range(t)
        if lo <= v <= hi or (not is_signed(t) and -hi - 1 <= v < 0):
            return t
    return promote(t, literal_type(v))


FORMATS = {"f16": (11, 15), "bf16": (8, 127), "f32": (24, 127), "f64": (53, 1023)}   # significand bits, emax


def float_holds(t, operand):
    """Whether the float type t holds an operand (text, type, literal) exactly, as semantics._float_holds says:
    every value of a run-time integer's type, or an int literal (fp8: 3 significand bits, literals taken as held)."""
    lit = operand[2]
    if lit is not None:
        if not isinstance(lit, int) or isinstance(lit, bool) or t not in FORMATS:
            return True
        digits, emax = FORMATS[t]
        drop = max(abs(lit).bit_length() - digits, 0)
        return abs(lit) >> drop << drop == abs(lit) and abs(lit) <= ((1 << digits) - 1) << (emax - digits + 1)
    other = operand[1]
    return other not in INTS or BITS[other] - is_signed(other) <= FORMATS.get(t, (3,))[0]


INT_LITERALS = (0, 1, 2, 3, 5, 7, -1, -2, -7, 100, -128, 127, 255, 256, 300, -300, 32767, 65535, 65536,
                2147483647, -2147483648, 4294967295, 1 << 40, -(1 << 40), (1 << 63) - 1)
FLOAT_LITERALS = (0.0, 0.5, -0.5, 1.0, -1.0, 2.5, 3.0, 1e-3, 1e4, 65504.0, 1e10, -1e30, 0.1, 1.5e-5, 255.5, -0.0,
                  3.4e38, 1e300)


class Program(Choices):
    def __init__(self, rng, name, depth=3, allow_vectors=True, extra=False):
        self.rng, self.name, self.max_depth = rng, name, depth
        self.allow_vectors = allow_vectors
        self.extra = extra
        self.returned = False      # an early return was written: no block or warp collective after it
        self.counter = 0
        self.helpers = []          # (name, source, param types, return type)
        for h in range(int(rng.integers(0, 3))):
            self._helper(f"{name}_h{h}")
        self.body = self._body()

    # -- random choices ---------------------------------------------------------------------------------
    def fresh(self, prefix):
        self.counter += 1
        return f"{self.name}_{prefix}{self.counter}"

    # -- expressions: (text, type, constant) ------------------------------------------------------------
    def leaf(self, env, want=None):
        if self.chance(0.12):
            if want == "int" or (want is None and self.chance(0.6)):
                v = self.pick(INT_LITERALS)
            else:
                v = self.pick(FLOAT_LITERALS)
            return (f"({v!r})" if (isinstance(v, int) and v < 0) or (isinstance(v, float) and str(v).startswith("-"))
                    else repr(v)), literal_type(v), v
        names = [(n, t) for n, t in env.items()
                 if want is None or (want == "int" and not is_float(t)) or (want == "float" and is_float(t))]
        if not names:
            names = list(env.items())
        n, t = self.pick(names)
        return n, t, None

    def expr(self, env, depth=0, want=None):
        """A run-time expression; want 'int' or 'float' asks for that kind (best effort)."""
        if depth >= self.max_depth or self.chance(0.25):
            text, t, const = self.leaf(env, want)
            if const is None:
                return text, t, None
            return self._nonconst(env, depth, want)
        kinds = ["arith", "arith", "cast", "cast", "cmpsel", "minmax", "unary", "div", "cond", "where"]
        if want != "float":
            kinds += ["bits", "shift", "bits"]
        if want != "int":
            kinds += ["fdiv", "fma", "sqrt"]
        if self.helpers:
            kinds += ["call"]
        if self.allow_vectors:
            kinds += ["vector"]
        if self.extra:
            kinds += ["wide", "wide", "rounding", "power", "f8", "f8"]
            if want != "int":
                kinds += ["exp2", "minimum"]
        kind = self.pick(kinds)
        return getattr(self, f"_e_{kind}")(env, depth, want)

    def _nonconst(self, env, depth, want):
        names = [(n, t) for n, t in env.items()
                 if want is None or (want == "int" and not is_float(t)) or (want == "float" and is_float(t))]
        n, t = self.pick(names or list(env.items()))
        return n, t, None

    def _operand(self, env, depth, want=None):
        """An operand that may be a literal (returns text, type-or-literal-value marker)."""
        if self.chance(0.15):
            return self.leaf(env, want)
        return self.expr(env, depth + 1, want)

    def _pair(self, env, depth, want=None):
        a = self._operand(env, depth, want)
        b = self._operand(env, depth, want)
        if a[2] is not None and b[2] is not None:
            b = self.expr(env, depth + 1, want)
        if a[2] is not None:
            t = with_literal(b[1], a[2])
        elif b[2] is not None:
            t = with_literal(a[1], b[2])
        else:
            t = promote(a[1], b[1])
        return a, b, t

    def _e_arith(self, env, depth, want):
        a, b, t = self._pair(env, depth, want)
        op = self.pick(["+", "-", "*"])
        if t == "i1":
            t = "i32"
        return f"({a[0]} {op} {b[0]})", t, None

    def _e_div(self, env, depth, want):
        a, b, t = self._pair(env, depth, want)
        op = self.pick(["//", "%"])
        if t == "i1":
            return self._e_arith(env, depth, want)
        return f"({a[0]} {op} {b[0]})", t, None

    def _e_fdiv(self, env, depth, want):
        a, b, t = self._pair(env, depth)
        if not is_float(t):
            t = "f64" if BITS.get(t, 32) == 64 else "f32"
        if a[2] is not None and isinstance(a[2], int) and a[2] < 0 or b[2] is not None and isinstance(b[2], int) \
                and b[2] < 0:
            return self._e_arith(env, depth, want)     # (a negative literal beside an unsigned: a float of its own)
        return f"({a[0]} / {b[0]})", t, None

    def _e_bits(self, env, depth, want):
        a, b, t = self._pair(env, depth, "int")
        if is_float(t):
            return self._e_arith(env, depth, want)
        return f"({a[0]} {self.pick(['&', '|', '^'])} {b[0]})", t, None

    def _e_shift(self, env, depth, want):
        a = self.expr(env, depth + 1, "int")
        if is_float(a[1]):
            return self._e_arith(env, depth, want)
        t = "i32" if a[1] == "i1" else a[1]
        op = self.pick(["<<", ">>"])
        if self.chance(0.4):
            return f"({a[0]} {op} {int(self.rng.integers(0, BITS[t] + 3))})", t, None
        b = self.expr(env, depth + 1, "int")
        if is_float(b[1]):
            return self._e_arith(env, depth, want)
        return f"({a[0]} {op} {b[0]})", t, None

    def _e_cast(self, env, depth, want):
        choices = TYPES + ("i1",)
        if want == "int":
            choices = INTS
        elif want == "float":
            choices = FLOATS
        t = self.pick(choices)
        a = self.expr(env, depth + 1)
        if self.chance(0.1) and not is_float(a[1]):
            return f"float({a[0]})", ("f64" if BITS[a[1]] == 64 else "f32"), None
        if self.chance(0.1) and is_float(a[1]) and a[1] not in ("f64",) + F8:
            return f"int({a[0]})", "i32", None
        return f"skc.{t}({a[0]})", t, None

    def cond(self, env, depth=0):
        k = int(self.rng.integers(0, 8))
        if depth < 2 and k == 0:
            return f"({self.cond(env, depth + 1)} {self.pick(['and', 'or'])} {self.cond(env, depth + 1)})"
        if depth < 2 and k == 1:
            return f"(not {self.cond(env, depth + 1)})"
        bools = [n for n, t in env.items() if t == "i1"]
        if self.extra and k == 3 and f"{self.name}_t" in env and self.chance(0.5):
            me = f"{self.name}_t"
            return self.pick([f"({me} < {int(self.rng.integers(1, T))})", f"({me} % {self.pick([2, 3, 4])} == 0)",
                              f"(({me} & {int(self.rng.integers(1, T))}) != 0)"])
        if k == 2 and bools:
            return self.pick(bools)
        a, b, _ = self._pair(env, depth + 1)
        return f"({a[0]} {self.pick(['<', '<=', '==', '!=', '>', '>='])} {b[0]})"

    def _e_cmpsel(self, env, depth, want):
        return self.cond(env, depth + 1), "i1", None

    def _e_cond(self, env, depth, want):
        a, b, t = self._pair(env, depth, want)
        if a[2] is not None or b[2] is not None:
            t = self._select_type(a, b, t)
            if t is None:
                return self._e_arith(env, depth, want)
        x, y = self._chosen_in(t, a, b)
        return f"({x} if {self.cond(env, depth + 1)} else {y})", t, None

    def _select_type(self, a, b, t):
        lit = a[2] if a[2] is not None else b[2]
        other = b[1] if a[2] is not None else a[1]
        if isinstance(lit, int) and not isinstance(lit, bool) and lit < 0 and other in INTS and not is_signed(other):
            for s in ("i32", "i64"):
                if BITS[s] > BITS[other] and lit >= int_range(s)[0]:
                    return s
            return None
        return t

    @staticmethod
    def _chosen_in(t, *operands):
        """The operands' texts for a choice made in type t: an integer t cannot hold exactly converted to t first
        (skc would choose it in a wider float that holds it, semantics.chosen_float, or refuse a 64-bit one; the
        conversion keeps the programs as they were before that rule)."""
        if not is_float(t):
            return [o[0] for o in operands]
        return [o[0] if float_holds(t, o) else f"skc.{t}({o[0]})" for o in operands]

    def _e_where(self, env, depth, want):
        a, b, t = self._pair(env, depth, want)
        if a[2] is not None or b[2] is not None:
            t = self._select_type(a, b, t)
            if t is None:
                return self._e_arith(env, depth, want)
        x, y = self._chosen_in(t, a, b)
        return f"skc.where({self.cond(env, depth + 1)}, {x}, {y})", t, None

    def _e_minmax(self, env, depth, want):
        a, b, t = self._pair(env, depth, want)
        if a[2] is not None or b[2] is not None:
            t = self._select_type(a, b, t)
            if t is None:
                return self._e_arith(env, depth, want)
        x, y = self._chosen_in(t, a, b)
        return f"{self.pick(['min', 'max'])}({x}, {y})", t, None

    def _e_unary(self, env, depth, want):
        a = self.expr(env, depth + 1, want)
        t = "i32" if a[1] == "i1" else a[1]
        ops = ["-", "abs"] + ([] if is_float(t) else ["~"])
        op = self.pick(ops)
        if op == "abs":
            return f"abs({a[0]})", t, None
        if op == "~":
            return f"(~{a[0]})", a[1], None
        return f"(-{a[0]})", t, None

    def _e_fma(self, env, depth, want):
        a = self.expr(env, depth + 1, "float")
        b = self.expr(env, depth + 1)
        c = self.expr(env, depth + 1)
        t = a[1] if is_float(a[1]) else "f32"
        t = promote(promote(t, b[1]), c[1])
        return f"skc.fma({a[0]}, {b[0]}, {c[0]})", t, None

    def _e_sqrt(self, env, depth, want):
        a = self.expr(env, depth + 1, "float")
        t = a[1] if is_float(a[1]) else "f32"
        return f"skc.sqrt(abs({a[0]}))", t, None

    def _e_call(self, env, depth, want):
        name, _, params, ret = self.pick(self.helpers)
        args = []
        for p in params:
            e = self.expr(env, depth + 1)
            args.append(f"skc.{p}({e[0]})")
        return f"{name}({', '.join(args)})", ret, None

    def _e_vector(self, env, depth, want):
        a, b, t = self._pair(env, depth, want)
        if a[2] is not None or b[2] is not None or t == "i1":
            return self._e_arith(env, depth, want)
        c = self.expr(env, depth + 1, want)
        d = self.expr(env, depth + 1, want)
        tv = promote(c[1], d[1])
        if tv == "i1":
            return self._e_arith(env, depth, want)
        op = self.pick(["+", "-", "*", "min", "max"] + (["&", "^"] if not is_float(promote(t, tv)) else []))
        lane = int(self.rng.integers(0, 2))
        v1 = f"skc.vector({a[0]}, {b[0]})"
        v2 = f"skc.vector({c[0]}, {d[0]})"
        rt = promote(t, tv)
        if op in ("min", "max"):
            return f"skc.{'minimum' if op == 'min' else 'maximum'}({v1}, {v2})[{lane}]", rt, None
        return f"({v1} {op} {v2})[{lane}]", rt, None


    # -- the wider feature set (extra=True) ------------------------------------------------------------------
    def _e_f8(self, env, depth, want):
        """A value through an fp8 type: a cast, fp8 arithmetic, or an fp8 value cast on."""
        f = self.pick(F8)
        a = self.expr(env, depth + 1)
        k = int(self.rng.integers(0, 4))
        if k == 0:
            return f"skc.{f}({a[0]})", f, None
        b = self.expr(env, depth + 1)
        g = self.pick(F8) if self.chance(0.3) else f
        op = self.pick(["+", "-", "*", "/"] if k == 1 else ["min", "max"] if k == 2 else ["+", "*"])
        if op in ("min", "max"):
            return f"{op}(skc.{f}({a[0]}), skc.{g}({b[0]}))", promote(f, g), None
        if k == 3:       # fp8 beside a wider type
            t = self.pick(("f16", "bf16", "f32", "i32", "u8"))
            return f"(skc.{f}({a[0]}) {op} skc.{t}({b[0]}))", promote(f, t), None
        return f"(skc.{f}({a[0]}) {op} skc.{g}({b[0]}))", promote(f, g), None

    def _e_wide(self, env, depth, want):
        """A vector of 4 to 8 lanes of one type: lane-wise ops, math builtins on it, then one lane (or a sum)."""
        n = self.pick([4, 4, 8, 3, 5])
        t = self.pick(TYPES + F8) if want is None else self.pick(INTS if want == "int" else FLOATS)
        def vec():
            return "skc.vector(" + ", ".join(f"skc.{t}({self.expr(env, depth + 2)[0]})" for _ in range(n)) + ")"
        v, w = vec(), vec()
        ops = ["+", "-", "*", "minimum", "maximum", "where"]
        if not is_float(t):
            ops += ["&", "|", "^", "<<", ">>", "//", "%"]
        else:
            ops += ["/", "sqrt", "floor", "ceil", "trunc", "rint", "abs", "fma"]
        op = self.pick(ops)
        if op in ("minimum", "maximum"):
            e = f"skc.{op}({v}, {w})"
        elif op == "where":
            e = f"skc.where({v} < {w}, {v}, {w})"
        elif op == "sqrt":
            e = f"skc.sqrt(abs({v}))"
        elif op in ("floor", "ceil", "trunc", "rint"):
            e = f"skc.{op}({v})"
        elif op == "abs":
            e = f"abs({v})"
        elif op == "fma":
            e = f"skc.fma({v}, {w}, {vec()})"
        else:
            e = f"({v} {op} {w})"
        lane = int(self.rng.integers(0, n))
        rt = t if t not in F8 or op not in ("floor", "ceil", "trunc", "rint", "sqrt", "fma") else t
        return f"{e}[{lane}]", rt, None

    def _e_rounding(self, env, depth, want):
        a = self.expr(env, depth + 1, "float")
        t = a[1] if is_float(a[1]) else "f32"
        op = self.pick(["floor", "ceil", "trunc", "rint"])
        e = f"skc.{op}({a[0]})" if is_float(a[1]) else f"skc.{op}(skc.f32({a[0]}))"
        if want == "int":
            it = self.pick(INTS)
            return f"skc.{it}({e})", it, None
        return e, t, None

    def _e_exp2(self, env, depth, want):
        """2 to a whole power (exact on every backend): exp2 of a float holding a small integer."""
        a = self.expr(env, depth + 1, "int")
        t = self.pick(["f32", "f16"])     # (no exp2 on f64 for NVIDIA: a clear compile error)
        return f"skc.exp2(skc.{t}(skc.i32({a[0]}) % 24))", t, None

    def _e_minimum(self, env, depth, want):
        a, b, t = self._pair(env, depth, "float")
        if a[2] is not None or b[2] is not None:
            return self._e_arith(env, depth, want)
        return f"skc.{self.pick(['minimum', 'maximum'])}({a[0]}, {b[0]})", t, None

    def _e_power(self, env, depth, want):
        a = self.expr(env, depth + 1, "int" if self.chance(0.7) else None)
        if is_float(a[1]):
            k = self.pick([0, 1, 2, 3, 4, 5])
            return f"({a[0]} ** {k})", a[1], None
        t = "i32" if a[1] == "i1" else a[1]
        if self.chance(0.5):
            return f"({a[0]} ** {self.pick([0, 1, 2, 3, 5, 7, 13])})", t, None
        b = self.expr(env, depth + 1, "int")
        if is_float(b[1]):
            return f"({a[0]} ** {self.pick([2, 3])})", t, None
        return f"({a[0]} ** (skc.u32({b[0]}) % 9))", t, None

    def _atomic(self, env, indent):
        """An atomic on the thread's own input slot (x_T[o + j], read already): its old value is known."""
        pad = "    " * indent
        t = self.pick(("i32", "u32", "i64", "u64", "i16", "u16", "f32", "f64", "f16", "bf16"))
        j = int(self.rng.integers(0, NV))
        ops = ["add", "min", "max", "xchg"] + (["and", "or", "xor"] if not is_float(t) else [])
        op = self.pick(ops)
        target = f"{self.name}_{t}_{j}"
        e = self.expr(env, 1)
        mask = f", {self.cond(env, 1)}" if self.chance(0.2) else ""
        lines = [f"{pad}{target} = skc.{t}(skc.atomic_{op}(x_{t} + (o + {j}), skc.{t}({e[0]}){mask}))"]
        if self.chance(0.6):
            other = self.pick([n for n in self.outputs if env[n] == t and n != target] or [target])
            lines.append(f"{pad}{other} = x_{t}[o + {j}]")
        return lines

    def _collective(self, env, indent):
        """Shared memory through a barrier, a warp reduction, a shuffle or a vote: only at the program's top
        level, before any early return, so every thread of the block gets there."""
        pad = "    " * indent
        k = int(self.rng.integers(0, 4))
        target = self.pick(self.outputs)
        tt = env[target]
        me = f"{self.name}_t"
        if k == 0:
            t = self.pick(TYPES)
            sh = self.fresh("sh")
            e = self.expr(env, 1)
            c = int(self.rng.integers(1, T))
            read = self.pick([f"{sh}[({me} + {c}) % {T}]", f"{sh}[{T - 1} - {me}]", f"{sh}[({me} ^ {c % T}) % {T}]"])
            return [f"{pad}{sh} = skc.shared(({T},), skc.{t})", f"{pad}{sh}[{me}] = skc.{t}({e[0]})",
                    f"{pad}skc.barrier()", f"{pad}{target} = skc.{tt}({read})"]
        if k == 1:
            t = self.pick(("i32", "u32", "i64", "u64", "f32", "f64", "i16", "u8", "f16"))
            red = self.pick(["warp_sum", "warp_max", "warp_min"])
            e = self.expr(env, 1)
            return [f"{pad}{target} = skc.{tt}(skc.{red}(skc.{t}({e[0]})))"]
        if k == 2:
            t = self.pick(("i32", "u32", "i64", "u64", "f32", "f64", "i16", "u16", "f16", "bf16"))
            e = self.expr(env, 1)
            if self.chance(0.5):
                return [f"{pad}{target} = skc.{tt}(skc.shfl_xor(skc.{t}({e[0]}), {self.pick([1, 2, 4, 8, 3, 15])}))"]
            return [f"{pad}{target} = skc.{tt}(skc.shfl_idx(skc.{t}({e[0]}), {me} % {self.pick([1, 3, 8, 16])}))"]
        vote = self.pick(["ballot", "vote_any", "vote_all"])
        return [f"{pad}{target} = skc.{tt}(skc.{vote}({self.cond(env, 1)}))"]

    # -- helpers --------------------------------------------------------------------------------------------
    def _helper(self, name):
        params = [self.pick(TYPES) for _ in range(int(self.rng.integers(1, 4)))]
        ret = self.pick(TYPES)
        env = {f"a{k}": t for k, t in enumerate(params)}
        lines = ["@skc.func", f"def {name}({', '.join(env)}):"]
        if self.chance(0.4):
            acc = "r"
            lines.append(f"    r = skc.{ret}({self.expr(env, 1)[0]})")
            inner = dict(env, r=ret)
            loopvar = self.fresh("hl")
            inner[loopvar] = "i32"
            lines.append(f"    for {loopvar} in range(skc.i32({self.expr(env, 1, 'int')[0]}) % 6):")
            lines.append(f"        if {self.cond(inner, 1)}:")
            lines.append(f"            return skc.{ret}({self.expr(inner, 1)[0]})")
            lines.append(f"        r = skc.{ret}({self.expr(inner, 1)[0]})")
            lines.append(f"    return {acc}")
        else:
            if self.chance(0.6):
                lines += [f"    if {self.cond(env, 1)}:", f"        return skc.{ret}({self.expr(env, 1)[0]})"]
            lines.append(f"    return skc.{ret}({self.expr(env, 0)[0]})")
        self.helpers.append((name, "\n".join(lines), params, ret))

    # -- statements ---------------------------------------------------------------------------------------
    def _body(self):
        env = {}
        lines = []
        for t in TYPES:
            for j in range(NV):
                env[f"{self.name}_{t}_{j}"] = t
        for j in range(NV):
            env[f"{self.name}_b_{j}"] = "i1"
        env[f"{self.name}_t"] = "i32"
        self.outputs = [n for n, t in env.items() if not n.endswith("_t")]
        lines += self._block(env, 2, None, int(self.rng.integers(3, 8)))
        lines += self.stores(2)
        return lines

    def stores(self, indent):
        pad = "    " * indent
        out = []
        for t in TYPES:
            for j in range(NV):
                out.append(f"{pad}o_{t}[o + {j}] = {self.name}_{t}_{j}")
        for j in range(NV):
            out.append(f"{pad}o_b[o + {j}] = skc.u8({self.name}_b_{j})")
        return out

    def _block(self, env, indent, loop, count):
        lines = []
        for _ in range(count):
            lines += self._statement(env, indent, loop)
        return lines or ["    " * indent + "pass"]

    def _assign(self, env, indent):
        pad = "    " * indent
        target = self.pick(self.outputs)
        t = env[target]
        e = self.expr(env, 0)
        if self.chance(0.2) and e[1] is not None and t != "i1":
            e2 = self.expr(env, 1)
            return [f"{pad}{target} = skc.{t}({target} {self.pick(['+', '-', '*'])} {e2[0]})"]
        return [f"{pad}{target} = skc.{t}({e[0]})"]

    def _statement(self, env, indent, loop):
        pad = "    " * indent
        nested = indent < self.max_depth + 2
        k = int(self.rng.integers(0, 11))
        if self.extra and self.chance(0.15):
            return self._atomic(env, indent)
        if self.extra and indent == 2 and loop is None and not self.returned and self.chance(0.25):
            return self._collective(env, indent)
        if k <= 4 or not nested:
            return self._assign(env, indent)
        if k <= 6:
            lines = [f"{pad}if {self.cond(env)}:"] + self._block(env, indent + 1, loop, int(self.rng.integers(1, 3)))
            if self.chance(0.3):
                lines += [f"{pad}elif {self.cond(env)}:"] + self._block(env, indent + 1, loop, 1)
            if self.chance(0.5):
                lines += [f"{pad}else:"] + self._block(env, indent + 1, loop, int(self.rng.integers(1, 3)))
            return lines
        if k == 7:
            return self._for(env, indent)
        if k == 8:
            return self._while(env, indent)
        if loop is not None and self.chance(0.7):
            return [f"{pad}if {self.cond(env)}:", f"{pad}    {self.pick(['break', 'continue'])}"]
        self.returned = True
        return [f"{pad}if {self.cond(env)}:"] + self.stores(indent + 1) + [f"{pad}    return"]

    def _bound(self, env):
        e = self.expr(env, 1, "int")
        if is_float(e[1]) or e[1] == "u64":
            return f"skc.i32({e[0]}) % 8", "i32"
        return f"({e[0]}) % 8", ("i32" if e[1] == "i1" else e[1])

    def _for(self, env, indent):
        pad = "    " * indent
        var = self.fresh("l")
        a, ta = self._bound(env)
        if self.chance(0.4):
            header, t = f"range({a})", ta
        else:
            b, tb = self._bound(env)
            step = self.pick([1, 2, 3, -1, -2])
            t = promote(ta, tb)
            if step < 0:
                header = f"range({a}, {b} - 3, {step})"
            else:
                header = f"range({a} - 3, {b}, {step})"
        inner = dict(env)
        inner[var] = t
        return [f"{pad}for {var} in {header}:"] + self._block(inner, indent + 1, "run", int(self.rng.integers(1, 4)))

    def _while(self, env, indent):
        pad = "    " * indent
        var = self.fresh("w")
        bound, bt = self._bound(env)
        start = self.pick(["0", f"{self.name}_t & 0", f"skc.{bt}(0)"])
        inner = dict(env)
        inner[var] = bt if start.startswith("skc.") else "i32"
        return ([f"{pad}{var} = {start}", f"{pad}while {var} < {bound}:", f"{pad}    {var} = {var} + 1"]
                + self._block(inner, indent + 1, "run", int(self.rng.integers(1, 4))))


def _kernel_source(programs, ranges=None):
    params = [f"x_{t}: skc.Ptr[skc.{t}]" for t in TYPES] + [f"o_{t}: skc.Ptr[skc.{t}]" for t in TYPES] + \
        ["o_b: skc.Ptr[skc.u8]"]
    lines = ["import skc", ""]
    for p in programs:
        for _, src, _, _ in p.helpers:
            lines += ["", src, ""]
    lines += ["", "@skc.kernel", f"def batch({', '.join(params)}):",
              "    b = skc.block_id(0)",
              f"    o = (b * {T} + skc.thread_id(0)) * {NV}"]
    lines = "\n".join(lines).split("\n")   # (a helper's source is several lines: count them one by one)
    for k, p in enumerate(programs):
        start = len(lines) + 1
        lines.append(f"    if b == {k}:")
        lines += [f"        {p.name}_{t}_{j} = x_{t}[o + {j}]" for t in TYPES for j in range(NV)]
        lines += [f"        {p.name}_b_{j} = x_u8[o + {j}] > 100" for j in range(NV)]
        lines.append(f"        {p.name}_t = skc.thread_id(0)")
        lines += p.body
        if ranges is not None:
            ranges.append((start, len(lines)))
    return "\n".join(lines) + "\n"


def _inputs(rng, t, size):
    if t in INTS:
        lo, hi = int_range(t)
        special = np.array([0, 1, lo, hi, lo + 1, hi - 1, 2, 3, 7, 8, 100] + ([-1, -2] if is_signed(t) else []),
                           dtype=object)
        wide = np.array([int(rng.integers(lo, hi, endpoint=True, dtype=np.int64 if is_signed(t) else np.uint64))
                         for _ in range(size)], dtype=object)
        small = rng.integers(-20 if is_signed(t) else 0, 21, size).astype(object)
        pick = rng.random(size)
        vals = np.where(pick < 0.45, small, np.where(pick < 0.65, special[rng.integers(0, len(special), size)], wide))
        return np.array([int(v) for v in vals], dtype=np.dtype(_NP[t]))
    special = [0.0, -0.0, 1.0, -1.0, 0.5, np.inf, -np.inf, np.nan, 65504.0, 70000.0, 1e-6, 6e-8, 3e38, 1e-40,
               2.5, 127.5, 255.0, 256.0, -128.5, 2147483648.0, 1e19, -1e19, 1.0000001]
    normal = rng.standard_normal(size) * np.where(rng.random(size) < 0.2, 1e5, 8.0)
    normal = np.where(rng.random(size) < 0.3, np.round(normal), normal)
    vals = np.where(rng.random(size) < 0.25, np.array(special)[rng.integers(0, len(special), size)], normal)
    if t == "bf16":
        import ml_dtypes
        return vals.astype(np.float32).astype(ml_dtypes.bfloat16)
    with np.errstate(over="ignore"):
        return vals.astype(_NP[t])


_NP = {"i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64, "u8": np.uint8, "u16": np.uint16,
       "u32": np.uint32, "u64": np.uint64, "f16": np.float16, "f32": np.float32, "f64": np.float64}


class Batch:
    def __init__(self, seed, count, depth=3, vectors=True, extra=False):
        rng = np.random.default_rng(seed)
        self.seed, self.count = seed, count
        self.programs = [Program(rng, f"p{k}", depth, vectors, extra) for k in range(count)]
        self.rng = rng
        self.build()
        size = count * T * NV
        self.inputs = [_inputs(rng, t, size) for t in TYPES]

    def inputs_now(self):
        size = self.count * T * NV
        return [x[:size] for x in self.inputs]

    def build(self):
        self.ranges = []
        self.source = _kernel_source(self.programs, self.ranges)
        self.count = len(self.programs)

    def program_at(self, line):
        """The index of the program whose body (or helper) holds source line `line`, else None."""
        for k, (a, b) in enumerate(self.ranges):
            if a <= line <= b:
                return k
        for k, p in enumerate(self.programs):
            for name, src, _, _ in p.helpers:
                pos = self.source.find(src)
                first = self.source[:pos].count("\n") + 1
                if first <= line <= first + src.count("\n"):
                    return k
        return None

    def drop(self, k):
        self.programs.pop(k)
        for j, p in enumerate(self.programs):
            pass
        self.build()

    def outputs_template(self):
        return [np.zeros_like(x) for x in self.inputs_now()] + [np.zeros(self.count * T * NV, np.uint8)]


def same(a, b):
    """Elementwise equal bit patterns, or both NaN."""
    if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
        fa, fb = a.astype(np.float64), b.astype(np.float64)
        bits_a = a.view(np.uint16 if a.itemsize == 2 else np.uint32 if a.itemsize == 4 else np.uint64)
        bits_b = b.view(bits_a.dtype)
        return (bits_a == bits_b) | (np.isnan(fa) & np.isnan(fb))
    return a == b
