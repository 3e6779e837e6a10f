"""Random kernels of tangled control flow with warp collectives everywhere, for the convergence oracle: ifs, for
and while loops (bounds alike on all threads or not), static_range loops, break / continue / return at any depth,
inlined helpers with loops, returns and collectives of their own, conditions on block ids, arguments, votes,
loop counters and thread ids, and vars some threads change."""
from __future__ import annotations

import numpy as np

from fuzzgen import Choices

VARS = ("a", "c", "d")          # i32 vars every kernel and helper declares first
WIDTH = 128                     # the most threads along x: o and x hold WIDTH * 4


class Gen(Choices):
    """One kernel `k(o, x, n, m)` and its helpers: `Gen(seed).kernel()` is its source."""

    def __init__(self, seed: int, depth: int = 3):
        self.rng = np.random.default_rng(seed)
        self.depth = depth
        self.counter = 0
        self.helpers: list = []   # (name, parameter count)
        self.in_helper = False

    def fresh(self, prefix):
        self.counter += 1
        return f"{prefix}{self.counter}"

    # -- expressions, all i32 --------------------------------------------------------------------------
    def uniform(self, names):
        """An expression alike on every thread (unless a var was changed by some threads only)."""
        outer = ["1", "2"] if self.in_helper else ["n", "m", "b", "1", "2", "(n + b)", "(m & 3)"]
        return self.pick(outer + [v for v in names if v[0] in "iws"] + ["c"])   # (loop counters; c: see cond)

    def value(self, names, depth=0):
        k = int(self.rng.integers(0, 12))
        leaves = list(names) + list(VARS) + ["t", "ty"] + ([] if self.in_helper else ["n", "m", "b", "x[ix]"])
        if depth >= 2 or k < 4:
            return self.pick(leaves)
        if k < 7:
            return f"(({self.value(names, depth + 1)}) {self.pick(['+', '-', '^', '&', '|'])} " \
                   f"({self.value(names, depth + 1)}))"
        if k < 10:
            return self.collective(names, depth)
        if k == 10 and self.helpers:
            name, params = self.pick(self.helpers)
            return f"{name}({', '.join(self.value(names, depth + 1) for _ in range(params))})"
        return f"(({self.value(names, depth + 1)}) & 7)"

    def collective(self, names, depth=1):
        v = self.value(names, depth + 1)
        k = int(self.rng.integers(0, 8))
        if k == 0:
            return f"skc.i32(skc.vote_any(({v}) > {int(self.rng.integers(0, 8))}))"
        if k == 1:
            return f"skc.i32(skc.vote_all(({v}) > {int(self.rng.integers(-2, 6))}))"
        if k == 2:
            return f"skc.i32(skc.ballot(({v}) > 3) & 255)"
        if k == 3:
            return f"skc.warp_sum({v})"
        mode = self.pick(["xor", "down", "up", "idx"])
        return f"skc.shfl_{mode}({v}, {self.pick([1, 2, 5, 16, 't', 'c'])})"

    def cond(self, names, depth=0):
        k = int(self.rng.integers(0, 9))
        if depth < 1 and k == 0:
            return f"({self.cond(names, 1)} {self.pick(['and', 'or'])} {self.cond(names, 1)})"
        if k in (1, 2, 3):   # alike on all threads, unless c was set by some threads only (the analysis must tell)
            return f"({self.uniform(names)} {self.pick(['<', '>', '==', '!='])} {self.uniform(names)})"
        if k == 4:
            return f"skc.vote_any({self.value(names, 1)} > {int(self.rng.integers(0, 6))})"
        if k == 5:
            return f"(t < {int(self.rng.integers(1, 40))})"
        return f"({self.value(names)} {self.pick(['<', '>', '==', '!='])} {self.value(names)})"

    # -- statements --------------------------------------------------------------------------------------
    def block(self, names, indent, loop, helper, count=None):
        lines = []
        for _ in range(count if count is not None else int(self.rng.integers(1, 4))):
            lines += self.statement(names, indent, loop, helper)
        return lines

    def statement(self, names, indent, loop, helper):
        pad = "    " * indent
        nested = indent < self.depth + 2
        k = int(self.rng.integers(0, 16))
        if k < 4 or not nested:
            var = self.pick(VARS)
            return [f"{pad}{var} = {self.value(names) if self.chance(0.7) else self.uniform(names)}"]
        if k < 6:
            return [f"{pad}a = a + {self.collective(names)}"]
        if k < 8:
            lines = [f"{pad}if {self.cond(names)}:"] + self.block(names, indent + 1, loop, helper)
            if self.chance(0.4):
                lines += [f"{pad}else:"] + self.block(names, indent + 1, loop, helper)
            return lines
        if k == 8:
            var = self.fresh("i")
            bound = f"(({self.pick([self.uniform(names), self.value(names)])}) & 3)"
            header = self.pick([f"range({bound})", f"range(({self.uniform(names)}) & 3, {bound} + 2)",
                                f"range({bound}, 0, -1)"])
            return [f"{pad}for {var} in {header}:"] + self.block(names + [var], indent + 1, True, helper)
        if k == 9:
            var = self.fresh("w")
            bound = f"(({self.pick([self.uniform(names), self.value(names)])}) & 3)"
            top = [f"{pad}{var} = skc.i32(0)"]   # (run-time: a compile-time counter would unroll the loop)
            if self.chance(0.5):
                top += [f"{pad}while {var} < {bound}:", f"{pad}    {var} = {var} + 1"]
            else:
                top += [f"{pad}while True:", f"{pad}    {var} = {var} + 1",
                        f"{pad}    if {var} > (({bound}) & 3):", f"{pad}        break"]
            return top + self.block(names + [var], indent + 1, True, helper)
        if k == 10:
            var = self.fresh("s")
            return [f"{pad}for {var} in skc.static_range({int(self.rng.integers(1, 4))}):"] + \
                self.block(names + [var], indent + 1, True, helper)
        if k in (11, 12) and loop:
            return [f"{pad}if {self.cond(names)}:", f"{pad}    {self.pick(['break', 'continue'])}"]
        if k == 13:
            if helper:
                return [f"{pad}if {self.cond(names)}:", f"{pad}    return {self.value(names)}"]
            return [f"{pad}if {self.cond(names)}:", f"{pad}    o[ix] = a", f"{pad}    return"]
        return [f"{pad}a = a + {self.collective(names)}"]

    def helper(self):
        name = self.fresh("h")
        params = int(self.rng.integers(1, 3))
        args = [f"p{k}" for k in range(params)]
        lines = ["@skc.func", f"def {name}({', '.join(args)}):", "    t = skc.thread_id(0)",
                 "    ty = skc.thread_id(1)", "    a = p0", "    c = 0", "    d = 1"]
        self.in_helper = True
        lines += self.block(args, 1, False, True, int(self.rng.integers(2, 5)))
        lines.append(f"    return a + {self.value(args)}")
        self.in_helper = False
        self.helpers.append((name, params))
        return lines

    def kernel(self):
        helper_lines = []
        for _ in range(int(self.rng.integers(0, 3))):
            helper_lines += self.helper() + [""]
        body = ["    t = skc.thread_id(0)", "    ty = skc.thread_id(1)", "    b = skc.block_id(0)",
                f"    ix = t + ty * {WIDTH}", "    a = t", "    c = n", "    d = 0"]
        body += self.block([], 1, False, False, int(self.rng.integers(3, 7)))
        body.append("    o[ix] = a + c + d")
        return "\n".join(["import skc", ""] + helper_lines +
                         ["@skc.kernel", "def k(o: skc.Ptr[skc.i32], x: skc.Ptr[skc.i32], n: skc.i32, m: skc.i32):"]
                         + body) + "\n"
