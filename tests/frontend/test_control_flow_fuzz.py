"""Random kernels of nested static_range / range / while loops (with else blocks), run-time ifs, break, continue,
return and with-blocks: each runs in the interpreter and as Python on the same arrays and must agree (issue 8,
item 1: run-time jumps out of unrolled loops once miscompiled)."""
import importlib.util
import random

import numpy as np
import pytest

from skc import ir
from frontend_run import F32P, matches_python

HEADER = '''
import skc


class Guard:
    def __init__(self, x):
        self.x = x

    def __enter__(self):
        self.x[6] += 1.0
        return self

    def __exit__(self, *exc):
        self.x[7] = self.x[7] * 0.5 + 1.0


@skc.func
def helper(x, n, a):
    a = a * x[3] * 2.0   # x[3] is 0.5: a float32 on every path, in Python as in the kernel
    for s in skc.static_range(3):
        if n == s:
            return a + x[s]
        if n > 4:
            break
        a = a * 0.5
    with Guard(x):
        if n < 0:
            return a - 1.0
    return a


@skc.func
def helper2(x, n, a):
    for s in skc.static_range(3):
        if n > s + 1:
            break
        if s == 1:   # reached at compile time, after a run-time break that skips it
            return a + x[4]
        a = a - x[s]
    return a

'''


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.loops = 0
        self.static = []   # the unrolled loops' variables in scope (compile-time ints)

    def block(self, depth: int, indent: str, in_loop: bool) -> list:
        lines = []
        for _ in range(self.rng.randint(1, 3)):
            lines += self.statement(depth, indent, in_loop)
        return lines

    def statement(self, depth: int, indent: str, in_loop: bool) -> list:
        r, k = self.rng.random(), self.rng.randint(-1, 5)
        inner = indent + "    "
        if depth >= 3 or r < 0.3:
            return [indent + self.rng.choice([
                f"a = a + x[{self.rng.randint(0, 5)}]", f"b = x[{self.rng.randint(0, 5)}] * 2.0 + b",
                f"a = {self.rng.randint(0, 9)}.0", "a, b = b, a", "b = b - a * 0.5", "a = helper(x, n, a)",
                "b = helper2(x, n, b)"])]
        if r < 0.38 and self.static:   # a jump taken at compile time, in some iterations only
            return [indent + f"if {self.rng.choice(self.static)} == {self.rng.randint(0, 2)}:",
                    inner + self.rng.choice(["return", "break", "continue"] if in_loop else ["return"])]
        if r < 0.45 and in_loop:
            return [indent + f"if n {self.rng.choice(['>', '==', '<'])} {k}:",
                    inner + self.rng.choice(["break", "continue"])]
        if r < 0.5:
            return [indent + f"if n == {k}:", inner + "return"]
        if r < 0.65:
            lines = [indent + f"if n {self.rng.choice(['>', '<=', '!='])} {k}:"] + self.block(depth + 1, inner, in_loop)
            if self.rng.random() < 0.5:
                lines += [indent + "else:"] + self.block(depth + 1, inner, in_loop)
            return lines
        if r < 0.72:
            return [indent + "with Guard(x):"] + self.block(depth + 1, inner, in_loop)
        self.loops += 1
        var = f"i{self.loops}"
        kind = self.rng.random()
        if kind < 0.6:
            self.static.append(var)
            head = f"for {var} in skc.static_range({self.rng.randint(1, 3)}):"
            lines = [indent + head] + self.block(depth + 1, inner, True)
            self.static.pop()
            return lines + self.else_block(depth, indent, in_loop)
        elif kind < 0.75:
            head = f"for {var} in range(n % 3):"
        elif kind < 0.85:
            return ([indent + f"{var} = n % 4", indent + f"while {var} > 0:", inner + f"{var} -= 1"]
                    + self.block(depth + 1, inner, True) + self.else_block(depth, indent, in_loop))
        else:
            return [indent + f"{var} = 0", indent + f"while {var} < {self.rng.randint(1, 3)}:",
                    inner + f"{var} += 1"] + self.block(depth + 1, inner, True)
        return [indent + head] + self.block(depth + 1, inner, True) + self.else_block(depth, indent, in_loop)

    def else_block(self, depth: int, indent: str, in_loop: bool) -> list:
        """Sometimes an else block, whose jumps are the enclosing loop's (one there was once not seen)."""
        if self.rng.random() < 0.6:
            return []
        return [indent + "else:"] + self.block(depth + 1, indent + "    ", in_loop)

    def kernel(self, name: str) -> str:
        body = self.block(0, "    ", False)
        return "\n".join([f"@skc.kernel\ndef {name}(x: skc.Ptr[skc.f32], n: skc.i32):", "    a = x[0]",
                          "    b = 0.0"] + body + ["    x[0] = a", "    x[1] = b", ""])


SEEDS = range(40)   # 2000 seeds passed when this was written (4 min)


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    source = HEADER + "\n".join(Generator(seed).kernel(f"k{seed}") for seed in SEEDS)
    path = tmp_path_factory.mktemp("fuzz") / "control_flow_kernels.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("control_flow_kernels", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.mark.parametrize("seed", SEEDS)
def test_random_control_flow_matches_python(module, seed):
    kernel = getattr(module, f"k{seed}")

    def x():
        return np.array([1.5, -2.0, 3.25, 0.5, 8.0, -1.0, 0.0, 0.0], np.float32)

    plain = {name: getattr(module, name).__skc_function__ for name in ("helper", "helper2")}

    def reference(*args):
        saved = {name: kernel.fn.__globals__[name] for name in plain}
        kernel.fn.__globals__.update(plain)
        try:
            kernel.fn(*args)
        finally:
            kernel.fn.__globals__.update(saved)

    matches_python(kernel, x, [(n,) for n in range(-2, 7)], reference=reference, x=F32P, n=ir.i32)
