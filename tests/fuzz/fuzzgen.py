"""Random kernels as Python source, for differential testing: the same text runs in skc (interpreter or GPU)
and as plain Python (the reference), with int32 wrap-around and float32 rounding made explicit.

Every int operation of a program is wrapped in `W(...)` and every float operation in `F(...)`: in skc both are
identity `@skc.func`s (the kernel's values are i32 and f32 already); in the reference `W` wraps a Python int
to int32 and `F` rounds a Python float (a double, in which one f32 operation is exact) to float32. Programs
avoid undefined behaviour: divisors are odd and in 1..255, shift counts are masked to 0..31, no float is
converted to an int, loops have small bounded trip counts, and no operation has two compile-time operands
(Python would fold it at compile time without the W/F rounding of the reference).

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

    def __init__(self, rng: np.random.Generator, name: str, known_bugs: bool = False, depth: int = 3):
        self.rng, self.name, self.known_bugs, self.max_depth = rng, name, known_bugs, depth
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
        kind = int(self.rng.integers(0, 12))
        if kind == 11 and self.helpers and self._chance(0.5):
            return self._call_helper(ints, floats, depth, "int")
        a, b = self._nonconst_pair(ints, floats, depth, self.int_expr)
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
        kind = int(self.rng.integers(0, 9))
        if kind == 8 and self.helpers and self._chance(0.5):
            return self._call_helper(ints, floats, depth, "float")
        if kind == 0:
            x, _ = self._nonconst(ints, floats, depth, self.int_expr)
            return f"F(float({x}))", False
        a, b = self._nonconst_pair(ints, floats, depth, self.float_expr)
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
        kind = int(self.rng.integers(0, 6))
        if depth < 3 and kind == 4:
            return f"({self.cond(ints, floats, depth + 1)} {self._pick(['and', 'or'])} " \
                   f"{self.cond(ints, floats, depth + 1)})"
        if depth < 3 and kind == 5:
            return f"(not {self.cond(ints, floats, depth + 1)})"
        op = self._pick(["<", "<=", "==", "!=", ">", ">="])
        expr = self.float_expr if kind == 3 else self.int_expr
        a, b = self._nonconst_pair(ints, floats, depth + 1, expr)
        return f"({a} {op} {b})"

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
        kind = int(self.rng.integers(0, 10))
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

    def __init__(self, seed: int, count: int, known_bugs: bool = False):
        rng = np.random.default_rng(seed)
        self.seed, self.count = seed, count
        self.programs = [Program(rng, f"p{k}", known_bugs) for k in range(count)]
        body = "\n\n\n".join(p.source for p in self.programs)
        self.skc_source = SKC_HEADER + "\n\n" + body + "\n" + _kernel_source(count)
        self.reference_source = REFERENCE_HEADER + "\n\n" + body + "\n"
        size = count * T * NV
        special = np.array([0, 1, -1, 2147483647, -2147483648, 65535, -65536, 12345678], np.int64)
        ints = rng.integers(-2 ** 31, 2 ** 31, size, dtype=np.int64)
        small = rng.integers(-20, 21, size)
        pick = rng.random(size)
        ints = np.where(pick < 0.5, small, np.where(pick < 0.6, special[rng.integers(0, 8, size)], ints))
        self.xi = ints.astype(np.int32)
        floats = rng.standard_normal(size) * np.where(rng.random(size) < 0.1, 1e30, 4.0)
        floats = np.where(rng.random(size) < 0.1, np.round(floats), floats)
        self.xf = floats.astype(np.float32)

    def reference(self, folder: str):
        """The outputs (int32 and float32 arrays) of the programs run as plain Python, thread by thread."""
        module = load_module(self.reference_source, folder, f"fuzz_ref_{self.seed}_{self.count}")
        xi, xf = [int(v) for v in self.xi], [float(v) for v in self.xf]
        oi, of = [0] * len(xi), [0.0] * len(xf)
        for k in range(self.count):
            program = getattr(module, f"p{k}")
            for t in range(T):
                program(xi, xf, oi, of, (k * T + t) * NV)
        return np.array(oi, np.int64).astype(np.int32), np.array(of, np.float64).astype(np.float32)

    def kernel(self, folder: str):
        """The skc kernel running program b in block b (grid = count blocks of T threads)."""
        return load_module(self.skc_source, folder, f"fuzz_skc_{self.seed}_{self.count}").batch


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
