"""Random kernels over compile-time Python objects, for differential testing of Python's meaning in skc.

Each program is a kernel `p(out, x, n)` that mixes compile-time Python objects (lists, tuples, dicts, sets,
iterators and generators, comprehensions, lambdas and nested functions, a small class with a method and
properties, a dataclass, a class with `__iadd__`, `:=`, augmented assignment, unpacking, `is`/`in`, `and`/`or`
with effects) with run-time values (`x[k]`, `n`) and run-time control flow (`if`, `for i in range(n)`, `while`,
`break`, `continue`, early `return`, `@skc.func` helpers with early returns, `raise` under a run-time test).

Arithmetic is on integers only (no rounding question): `x` is an int32 array of small numbers, `out` an int32
array; the reference runs the same source as plain Python on lists of Python ints. The same module text runs in
both modes; only `func` differs (skc.func, or the identity). A program is then:

  same       skc's interpreter wrote what Python computed, for every n (or both raised at run time)
  refused    skc refused it with an skc error (CompileError...) at compile time: allowed
  DIFFERENT  skc ran and wrote something else, or ran where Python raised
  FOREIGN    skc raised an exception that is not an skc error (a bug in itself)

`python tests/fuzz/pygen.py --seed S --count N` runs programs and prints the DIFFERENT and FOREIGN ones; the test
test_pygen.py runs a fixed seed.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import random
import signal
import sys
import tempfile
import traceback

import numpy as np

OUT = 32            # out slots: 0..15 written inside the body, 16.. the final observations
XLEN = 8
N_VALUES = (0, 1, 2, 3, 5)

HEADER_SKC = "import skc\nfunc = skc.func\ni32 = skc.i32\n"
HEADER_REF = "def func(fn):\n    return fn\n\n\ni32 = int\n"

PRELUDE = '''
import dataclasses


class Box:
    def __init__(self, v):
        self.v = v
        self._w = v

    def bump(self, k):
        self.v += k
        return self

    def get(self):
        return self.v

    @property
    def dbl(self):
        return self.v * 2

    @property
    def w(self):
        return self._w

    @w.setter
    def w(self, value):
        self._w = value + 1


@dataclasses.dataclass
class Pt:
    x: int
    y: int = 0

    def norm1(self):
        return abs(self.x) + abs(self.y)


class Acc:
    def __init__(self, v):
        self.v = v

    def __add__(self, k):
        return Acc(self.v + k)

    def __iadd__(self, k):
        self.v = self.v + 2 * k
        return self


@func
def h_set(o, v, t):
    if t > 2:
        return 1
    o.v = v
    return 2


@func
def h_append(lst, v):
    lst.append(v)
    return lst


@func
def h_make(v):
    return [v, v + 1]


@func
def h_pair(a, b):
    return a + b, a - b


@func
def h_find(x, n, k):
    for i in range(n):
        if x[i] > k:
            return i
    return -1


@func
def h_nested(o, n):
    def inner(m):
        if m > 1:
            return o.v + m
        return o.v
    return inner(n) + inner(1)


@func
def h_box(v, t):
    b = Box(v)
    if t > 1:
        b.v = v + t
    else:
        b.v = v - t
    return b


@func
def h_first(lst, t):
    for v in lst:
        if v > t:
            return v
    return 0


def p_put(lst, v):
    lst[0] = v


def p_total(lst):
    return sum(lst)

'''


class Gen:
    """One program's source: a fixed set of variables of fixed kinds, all bound at the top."""

    def __init__(self, rng: random.Random):
        self.r = rng
        self.lines: list[str] = []
        self.loop_vars: list[str] = []     # loop variables (ints) in scope
        self.iterating = 0                 # > 0 inside a loop over a container or iterator: lists not grown
        self.loop_depth = 0
        self.in_runtime = 0
        self.slot = 0
        self.counter = 0
        self.budget = 0

    # -- expressions ----------------------------------------------------------------------------------------------
    def const(self):
        return str(self.r.choice([0, 1, 2, 3, 4, 5, -1, -2, 7]))

    def leaf(self):
        r = self.r
        choices = [
            lambda: self.const(),
            lambda: f"x[{r.randrange(XLEN)}]",
            lambda: "n",
            lambda: r.choice(["a", "b", "c", "w"]),
            lambda: r.choice(["a", "b", "c"]),
            lambda: "len(L)", lambda: "len(M)", lambda: "sum(L)",
            lambda: r.choice(["L[0]", "L[-1]", "M[0]"]),
            lambda: r.choice(["T[0]", "T[1]", "T[-1]"]),
            lambda: r.choice(["D['p']", "D.get('q', 4)", "D.get('r', -3)", "len(D)"]),
            lambda: r.choice(["len(S)", "max(S, default=-4)"]),
            lambda: r.choice(["o.v", "o.dbl", "o.get()", "o.w", "o2.v"]),
            lambda: r.choice(["q.x", "q.y", "q.norm1()"]),
            lambda: "acc.v",
            lambda: f"f({self.small()})",
        ]
        if self.loop_vars:
            choices += [lambda: r.choice(self.loop_vars)] * 3
        return r.choice(choices)()

    def small(self):
        return self.r.choice([self.const(), self.leaf() if self.r.random() < 0.5 else "n"])

    def expr(self, depth=2):
        r = self.r
        if depth <= 0 or r.random() < 0.3:
            return self.leaf()
        k = r.randrange(24)
        e = lambda: self.expr(depth - 1)
        if k < 5:
            return f"({e()} {r.choice(['+', '-'])} {e()})"
        if k == 5:
            return f"({e()} * {r.choice([2, 3, -1])})"
        if k == 6:
            return f"({e()} // {r.choice([2, 3])})"
        if k == 7:
            return f"({e()} % {r.choice([3, 5])})"
        if k == 8:
            return f"{r.choice(['min', 'max'])}({e()}, {e()})"
        if k == 9:
            return f"({e()} if {self.cond(depth - 1)} else {e()})"
        if k == 10:
            return f"({self.cond(0)} {r.choice(['and', 'or'])} {e()})"
        if k == 11:
            return f"{self.cond(depth - 1)}"
        if k == 12:
            return f"sum({r.choice(['v', 'v * 2', 'v - ' + self.const()])} for v in {r.choice(['L', 'M', 'T'])})"
        if k == 13:
            return f"len([v for v in {r.choice(['L', 'M', 'range(4)'])} if v > {self.const()}])"
        if k == 14:
            return f"next(it, {self.const()})"
        if k == 15:
            return f"(w := {e()})"
        if k == 16:
            return f"(L.append({e()}) or {e()})" if not self.iterating else f"({e()} or {e()})"
        if k == 17:
            return f"(o.bump({e()}).v)"
        if k == 18:
            return f"h_first({r.choice(['L', 'M', 'T'])}, {e()})"
        if k == 19:
            return f"h_nested(o, {e()})"
        if k == 20:
            return f"abs({e()})"
        if k == 21:
            return f"h_box({e()}, {e()}).v"
        if k == 22:
            return f"(acc + {e()}).v"
        return f"sum([{e()}, {e()}][{r.randrange(2)}:])"

    def cond(self, depth=1):
        r = self.r
        k = r.randrange(12)
        if k < 5:
            return f"({self.expr(depth)} {r.choice(['<', '<=', '>', '>=', '==', '!='])} {self.expr(depth)})"
        if k == 5:
            return f"({self.const()} in {r.choice(['L', 'M', 'T', 'S'])})"
        if k == 6:
            return f"(o {r.choice(['is', 'is not'])} o2)"
        if k == 7:
            return f"({self.cond(0)} {r.choice(['and', 'or'])} {self.cond(0)})"
        if k == 8:
            return f"(not {self.cond(0)})"
        if k == 9:
            return f"('{r.choice('pqr')}' in D)"
        if k == 10:
            return r.choice(["bool(L)", "(len(M) > 1)", "bool(S)"])
        return f"(n > {self.const()})"

    # -- statements -----------------------------------------------------------------------------------------------
    def emit(self, ind, text):
        self.lines.append("    " * ind + text)

    def grows(self):
        return not self.iterating

    # statements that change a container, an iterator or a function value made outside a run-time branch or loop
    MUTATING = {7, 8, 9, 10, 11, 13, 14, 15, 16, 19, 20, 23, 25, 26, 27, 28, 30, 33, 34, 35, 37}

    def simple(self, ind):
        r = self.r
        e = self.expr
        k = r.randrange(40)
        if self.in_runtime and k in self.MUTATING and r.random() < 0.8:
            k = r.choice([0, 1, 4, 5, 17, 32, 36])   # (most such changes are refused under run-time control)
        v = r.choice(["a", "b", "c"])
        if k < 4:
            self.emit(ind, f"{v} = {e()}")
        elif k < 7:
            self.emit(ind, f"{v} {r.choice(['+=', '-='])} {e()}")
        elif k == 7 and self.grows():
            self.emit(ind, f"{r.choice(['L', 'M'])}.append({e()})")
        elif k == 8:
            self.emit(ind, f"{r.choice(['L[0]', 'M[-1]', 'L[-1]'])} = {e()}")
        elif k == 9 and self.grows():
            self.emit(ind, f"{r.choice(['L', 'M'])} += [{e()}]")
        elif k == 10:
            self.emit(ind, f"M = {r.choice(['L', 'list(L)', 'L[:2]', 'L + [' + e(1) + ']', '[v + 1 for v in L]', 'h_make(' + e(1) + ')'])}")
        elif k == 11 and self.grows():
            self.emit(ind, f"{r.choice(['L', 'M'])} = h_append({r.choice(['L', 'M'])}, {e()})")
        elif k == 12:
            self.emit(ind, f"T = ({e()}, {e()})")
        elif k == 13:
            self.emit(ind, f"{r.choice(['a, b = T', 'a, b = b, a', 'b, c = h_pair(' + e(1) + ', ' + e(1) + ')', 'a, *M = L', '(a, b), c = T, ' + e(1)])}")
        elif k == 14:
            self.emit(ind, f"D['{r.choice('pqr')}'] = {e()}")
        elif k == 15:
            self.emit(ind, f"{r.choice(['D.setdefault', 'D.get'])}('{r.choice('pqr')}', {e()})")
        elif k == 16:
            self.emit(ind, f"S.{r.choice(['add', 'discard'])}({self.const()})")
        elif k == 17:
            self.emit(ind, f"{r.choice(['o', 'o2'])}.v = {e()}")
        elif k == 18:
            self.emit(ind, f"o.bump({e()})")
        elif k == 19:
            self.emit(ind, f"o.w = {e()}")
        elif k == 20:
            self.emit(ind, f"{r.choice(['o', 'o2'])} = {r.choice(['Box(' + e(1) + ')', 'o', 'o2', 'h_box(' + e(1) + ', n)'])}")
        elif k == 21:
            self.emit(ind, f"{r.choice(['a', 'c'])} = h_set({r.choice(['o', 'o2'])}, {e()}, {e(1)})")
        elif k == 22:
            self.emit(ind, f"q.{r.choice('xy')} = {e()}")
        elif k == 23:
            self.emit(ind, f"q = {r.choice(['Pt(' + e(1) + ')', 'Pt(' + e(1) + ', ' + e(1) + ')', 'dataclasses.replace(q, y=' + e(1) + ')'])}")
        elif k == 24:
            self.emit(ind, f"acc += {e()}")
        elif k == 25:
            self.emit(ind, f"it = {r.choice(['iter(L)', 'iter(M)', '(v * 2 for v in L)', 'iter(T)', 'iter([' + e(1) + ', ' + e(1) + '])', 'zip(L, M)' if False else 'reversed(L)'])}")
        elif k == 26:
            self.emit(ind, f"{v} = next(it, {self.const()})")
        elif k == 27:
            self.emit(ind, f"f = {r.choice(['lambda y: y + ' + v, 'lambda y: y * 2 - o.v', 'lambda y, k=' + v + ': y + k', 'lambda y: len(L) + y'])}")
        elif k == 28:
            name = f"g{self.counter}"
            self.counter += 1
            self.emit(ind, f"def {name}(y):")
            self.emit(ind + 1, f"if y > {self.const()}:")
            self.emit(ind + 2, f"return y + {r.choice(['a', 'o.v', 'len(L)', 'T[0]'])}")
            if r.random() < 0.5:
                self.emit(ind + 1, f"for t in {r.choice(['L', 'T'])}:")
                self.emit(ind + 2, f"if t == y:")
                self.emit(ind + 3, "return t * 3")
            self.emit(ind + 1, f"return {r.choice(['b', 'y - 1', 'o.dbl'])}")
            self.emit(ind, f"f = {name}")
        elif k == 29:
            self.emit(ind, f"{v} = h_find(x, n, {e(1)})")
        elif k == 30:
            self.emit(ind, f"p_put({r.choice(['L', 'M'])}, {e()})")
        elif k == 31:
            self.emit(ind, f"{v} = p_total({r.choice(['L', 'M', 'T'])})")
        elif k == 32:
            self.emit(ind, f"out[{self.slot % 16}] = {e()}")
            self.slot += 1
        elif k == 33:
            self.emit(ind, f"{r.choice(['L', 'M'])}.pop()" if self.grows() else f"{v} = {e()}")
        elif k == 34:
            self.emit(ind, f"{v} = {r.choice(['(', '(o.bump(1) and ', '(L.append(2) or ' if self.grows() else '('])}{e(1)})")
        elif k == 35 and self.grows():
            self.emit(ind, f"{r.choice(['L', 'M'])}.insert(0, {e()})")
        elif k == 36:
            self.emit(ind, f"{v} = {r.choice(['o.v', 'o.dbl', 'q.x', 'acc.v', 'T[0]', 'len(S)'])}")
        elif k == 37:
            self.emit(ind, f"o2 = o")
        else:
            self.emit(ind, f"{v} = {e()}")

    def block(self, ind, depth, count=None):
        count = count if count is not None else self.r.randint(1, 3)
        for _ in range(count):
            self.stmt(ind, depth)

    def stmt(self, ind, depth):
        r = self.r
        self.budget -= 1
        if depth <= 0 or self.budget <= 0 or r.random() < 0.55:
            return self.simple(ind)
        k = r.randrange(12)
        if k in (9, 10) and (self.in_runtime or r.random() < 0.5) and r.random() < 0.8:
            k = 0
        if k < 3:
            self.emit(ind, f"if {self.cond()}:")
            self.in_runtime += 1
            self.block(ind + 1, depth - 1)
            if r.random() < 0.5:
                self.emit(ind, "else:")
                self.block(ind + 1, depth - 1)
            self.in_runtime -= 1
        elif k == 3:
            self.emit(ind, f"if (w := {self.expr(1)}) > {self.const()}:")
            self.block(ind + 1, depth - 1)
        elif k in (4, 5):   # a run-time range loop
            i = f"i{self.loop_depth}"
            self.emit(ind, f"{i} = {self.const()}")
            self.emit(ind, f"for {i} in range({r.choice(['n', 'n', 'min(n, 3)', self.const()])}):")
            self.loop(ind, depth, i)
            if r.random() < 0.1:   # (refused unless the body assigns it: documented)
                self.emit(ind, f"out[{self.slot % 16}] = {i}")
                self.slot += 1
        elif k == 6:   # a while loop with a run-time test
            j = f"j{self.loop_depth}"
            self.emit(ind, f"{j} = 0")
            self.emit(ind, f"while {j} < n{r.choice(['', ' and ' + self.cond(0), ' or ' + j + ' < 1'])}:")
            self.emit(ind + 1, f"{j} += 1")
            self.emit(ind + 1, f"if {j} > 6:")
            self.emit(ind + 2, "break")
            self.loop(ind, depth, j)
        elif k == 7:   # over a container or iterator: unrolled
            i = f"i{self.loop_depth}"
            src = r.choice(["L", "M", "T", "it", "enumerate(L)", "zip(L, T)", "S", "D", "D.values()",
                            "[v * 2 for v in L]", "(v for v in T if v > n)", "range(3)"])
            self.emit(ind, f"{i} = {self.const()}")
            if src.startswith(("enumerate", "zip")):
                self.emit(ind, f"for {i}, u in {src}:")
            elif src == "D":
                self.emit(ind, f"for u in D:")
            else:
                self.emit(ind, f"for {i} in {src}:")
            self.iterating += 1
            self.loop(ind, depth, i if src != "D" else None)
            self.iterating -= 1
        elif k == 8:
            self.emit(ind, f"if {self.cond()}:")
            self.emit(ind + 1, r.choice(["return", "raise ValueError('boom')"]) if r.random() < 0.3 else "return")
        elif k == 9:   # closures over a loop variable
            i = f"i{self.loop_depth}"
            self.emit(ind, f"fs = []")
            self.emit(ind, f"for {i} in range({r.choice([2, 3])}):")
            self.emit(ind + 1, f"fs.append(lambda y: y + {i}{r.choice(['', ' * a', ' + o.v'])})")
            self.emit(ind, f"f = fs[{r.choice([0, -1])}]")
        elif k == 10:   # a closure made in a run-time loop, called after it
            i = f"i{self.loop_depth}"
            self.emit(ind, f"{i} = 0")
            self.emit(ind, f"for {i} in range(n):")
            self.emit(ind + 1, f"f = lambda y: y + {i}")
            self.emit(ind, f"out[{self.slot % 16}] = f(1)")
            self.slot += 1
        else:
            self.emit(ind, f"if {self.cond()}:")
            self.in_runtime += 1
            self.emit(ind + 1, f"o.v = {self.expr(1)}")
            self.block(ind + 1, depth - 1, 1)
            self.emit(ind, "elif " + self.cond() + ":")
            self.emit(ind + 1, f"o = Box({self.expr(1)})")
            self.emit(ind, "else:")
            self.block(ind + 1, depth - 1, 1)
            self.in_runtime -= 1

    def loop(self, ind, depth, var):
        r = self.r
        if var:
            self.loop_vars.append(var)
        self.loop_depth += 1
        self.in_runtime += 1
        self.block(ind + 1, depth - 1)
        if r.random() < 0.5:
            self.emit(ind + 1, f"if {self.cond(0)}:")
            self.emit(ind + 2, r.choice(["break", "continue"]))
            self.block(ind + 1, depth - 1, 1)
        self.in_runtime -= 1
        self.loop_depth -= 1
        if var:
            self.loop_vars.pop()

    def program(self):
        r = self.r
        self.budget = r.randint(6, 16)
        init = [
            f"a = {r.choice(['x[0]', '1', 'n'])}",
            f"b = {r.choice(['x[1]', '2', '0'])}",
            f"c = {r.choice(['3', 'x[2]'])}",
            "w = 0",
            f"L = [{r.choice(['1, 2', 'x[3], 2', '1, x[4], 3', '5'])}]",
            f"M = {r.choice(['[4]', 'L', '[x[5], 6]', 'list(L)'])}",
            f"T = ({r.choice(['1, 2', 'x[6], 3', 'a, b'])})",
            f"D = {r.choice(['{' + repr('p') + ': 1}', '{' + repr('p') + ': x[7], ' + repr('q') + ': 2}', 'dict(p=a)'])}",
            f"S = {r.choice(['{1, 2}', 'set()', '{3}'])}",
            f"o = Box({r.choice(['1', 'x[0]', 'x[0]', 'a'])})",
            f"o2 = {r.choice(['o', 'Box(2)'])}",
            f"q = Pt({r.choice(['1', 'x[1]', 'x[1]'])}{r.choice(['', ', 2', ', x[3]'])})",
            f"acc = Acc({r.choice(['0', 'x[2]', 'x[2]'])})",
            f"it = {r.choice(['iter(L)', '(v + 1 for v in L)', 'iter(T)'])}",
            f"f = {r.choice(['lambda y: y + 1', 'lambda y: y + a'])}",
        ]
        body_start = len(self.lines)
        for line in init:
            self.emit(1, line)
        while self.budget > 0:
            self.stmt(1, 3)
        finals = ["a", "b", "c", "w", "len(L)", "sum(L)", "len(M)", "T[0] + T[1]", "D['p']", "len(S)", "o.v",
                  "o.w", "o2.v", "q.x + 10 * q.y", "acc.v", "next(it, -9)"]
        for k, f in enumerate(finals):
            self.emit(1, f"out[{16 + k}] = {f}")
        return "def p(out, x, n: i32):\n" + "\n".join(self.lines[body_start:]) + "\n"


def make_source(seed: int) -> str:
    return Gen(random.Random(seed)).program()


# -- running --------------------------------------------------------------------------------------------------------
_counter = [0]


def load(text: str, folder: str):
    _counter[0] += 1
    name = f"pygen_{os.getpid()}_{_counter[0]}"
    path = os.path.join(folder, name + ".py")
    with open(path, "w") as handle:
        handle.write(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout()


def inputs(seed: int):
    rng = np.random.default_rng(seed)
    return rng.integers(-3, 8, XLEN).astype(np.int32)


def reference(program: str, folder: str, x, n):
    module = load(HEADER_REF + PRELUDE + program, folder)
    out = [0] * OUT
    try:
        module.p(out, [int(v) for v in x], n)
    except _Timeout:
        raise
    except Exception as error:   # noqa: BLE001 - any exception is Python's answer
        return ("raises", type(error).__name__)
    values = [int(v) for v in out]
    if any(not -2 ** 31 <= v < 2 ** 31 for v in values):
        return ("overflow", None)
    return ("ok", values)


def run_one(seed: int, folder: str, source: str | None = None):
    """(verdict, detail, source) for one program."""
    import skc

    program = source if source is not None else make_source(seed)
    x = inputs(seed)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        try:
            wants = {n: reference(program, folder, x, n) for n in N_VALUES}
        except _Timeout:
            return "skipped", "the reference ran too long", program
        if any(w[0] == "overflow" for w in wants.values()):
            return "skipped", "int32 overflow in the reference", program
        module = load(HEADER_SKC + PRELUDE + program, folder)
        kernel = skc.kernel(module.p)
        results = {}
        for n in N_VALUES:
            got = np.zeros(OUT, np.int32)
            try:
                kernel[1, 1](got, x.copy(), n)
            except skc.CompileError as error:
                return "refused", str(error).splitlines()[0][:200], program
            except skc.SkcError as error:
                results[n] = ("raises", type(error).__name__)
                continue
            except _Timeout:
                return "FOREIGN", "a hang (over 20 s)", program
            except Exception as error:   # noqa: BLE001
                return "FOREIGN", f"{type(error).__name__}: {error}\n{traceback.format_exc()[-1500:]}", program
            results[n] = ("ok", got.tolist())
        for n in N_VALUES:
            want, got = wants[n], results[n]
            if want[0] == "raises" and got[0] == "raises":
                continue
            if want != got:
                if want[0] == "ok" and got[0] == "ok":
                    slots = [k for k in range(OUT) if want[1][k] != got[1][k]]
                    detail = f"n={n}: slots {slots}: skc {[got[1][k] for k in slots]}, Python {[want[1][k] for k in slots]}"
                else:
                    detail = f"n={n}: skc {got if got[0] != 'ok' else 'ran'}, Python {want if want[0] != 'ok' else 'ran'}"
                return "DIFFERENT", detail, program
        return "same", "", program
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--show-refusals", action="store_true")
    args = parser.parse_args(argv)
    import warnings
    warnings.simplefilter("ignore")
    folder = tempfile.mkdtemp(prefix="pygen")
    sys.path.insert(0, folder)
    tally: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for seed in range(args.seed, args.seed + args.count):
        verdict, detail, program = run_one(seed, folder)
        tally[verdict] = tally.get(verdict, 0) + 1
        if verdict in ("DIFFERENT", "FOREIGN"):
            print(f"=== seed {seed}: {verdict}: {detail}\n{program}", flush=True)
        elif verdict == "refused":
            key = detail.split(":", 2)[-1].strip()[:90]
            reasons[key] = reasons.get(key, 0) + 1
            if args.show_refusals:
                print(f"--- seed {seed}: refused: {detail}")
    print("tally:", tally)
    for key, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {count:4d}  {key}")




def _blocks(lines):
    """(start, end) of each statement with its indented body, last first."""
    spans = []
    for i, line in enumerate(lines):
        if i == 0 or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        j = i + 1
        while j < len(lines) and (len(lines[j]) - len(lines[j].lstrip()) > indent
                                  or lines[j].lstrip().startswith(("else:", "elif ")) and
                                  len(lines[j]) - len(lines[j].lstrip()) == indent and
                                  not lines[i].lstrip().startswith(("else:", "elif "))):
            j += 1
        spans.append((i, j))
    return spans[::-1]


def minimize(seed: int, folder: str, verdict: str, source: str | None = None) -> str:
    """Drop statements (and unwrap compound statements) while the verdict stays the same."""
    lines = (source if source is not None else make_source(seed)).rstrip("\n").split("\n")

    def shape(result):   # the verdict, and for a DIFFERENT one which side raised (a NameError is not kept)
        verdict, detail, _ = result
        return verdict, ("Python ('raises'" in detail, "skc ('raises'" in detail,
                         "NameError" in detail or "UnboundLocalError" in detail)

    wanted = shape(run_one(seed, folder, "\n".join(lines) + "\n"))

    def keeps(candidate):
        text = "\n".join(candidate) + "\n"
        if any(not line.startswith("    ") for line in candidate[1:]):
            return False
        try:
            compile(text, "<candidate>", "exec")
        except SyntaxError:
            return False
        return shape(run_one(seed, folder, text)) == wanted

    changed = True
    while changed:
        changed = False
        for start, end in _blocks(lines):
            if end > len(lines):
                continue
            candidate = lines[:start] + lines[end:]
            if len(candidate) > 1 and keeps(candidate):
                lines, changed = candidate, True
                continue
            head = lines[start].lstrip()
            if end - start > 1 and head.endswith(":") and not head.startswith("def "):
                body = [line[4:] for line in lines[start + 1:end]
                        if not line.lstrip().startswith(("else:", "elif "))]
                candidate = lines[:start] + body + lines[end:]
                if keeps(candidate):
                    lines, changed = candidate, True
    return "\n".join(lines) + "\n"


def _minimize_main():
    parser = argparse.ArgumentParser()
    parser.add_argument("seed", type=int)
    args = parser.parse_args(sys.argv[2:])
    import warnings
    warnings.simplefilter("ignore")
    folder = tempfile.mkdtemp(prefix="pygen")
    verdict, detail, _ = run_one(args.seed, folder)
    print(verdict, detail)
    small = minimize(args.seed, folder, verdict)
    print(run_one(args.seed, folder, small)[1])
    print(small)


if __name__ == "__main__":
    if sys.argv[1:2] == ["minimize"]:
        _minimize_main()
    else:
        main()
