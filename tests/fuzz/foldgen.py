"""Folding against run-time arithmetic: the same random expressions over typed values (i8..u64, f16, bf16, f32, f64,
bool), once with every value a compile-time constant (`skc.i8(c[3])` of a constexpr tuple: the IR passes fold
them), once with every value loaded at run time, and once mixed (each value either way). The interpreter must give
the same bits for all three (NaN as NaN); each form is also compiled to PTX for sm_90a, and that PTX (in which LLVM
folds what skc did not) run in the PTX emulator must agree too.

The expressions are mixgen's (casts, promotions, Python literals, // % << >> & | ^ ~, comparisons, selects,
min/max/abs, float()/int(), vectors, fp8, powers, rounding); the values lean on the edges: type bounds, -1, 0,
NaN, infinities, -0.0, subnormals, large ints.

`--functions` draws one math function or builtin per expression instead (Functions): sqrt, rsqrt, exp, exp2, log,
log2, sin, cos, tanh, the roundings, abs, minimum/maximum, `**` to constant and run-time exponents, casts to every
type and fp8. The GPU's approximations (ex2.approx, ...) are not the interpreter's: for those expressions the PTX
forms are compared with the run-time PTX (the emulator models them as numpy's float32 functions).

    python foldgen.py --seed 1 --batches 20 --count 40
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzzgen  # noqa: E402
import mixgen  # noqa: E402
from mixgen import INTS, TYPES, int_range, is_signed  # noqa: E402

NV = 3                     # values of each type
FORMS = ("run", "fold", "mixed")
_NP = dict(mixgen._NP)


def _bf16():
    import ml_dtypes
    return ml_dtypes.bfloat16


class Expressions(mixgen.Program):
    """mixgen's expression generator without a program body: `count` expressions over the typed values."""

    def __init__(self, rng, count, depth=3, extra=True):
        self.rng, self.name, self.max_depth = rng, "e", depth
        self.allow_vectors, self.extra = True, extra
        self.returned, self.counter, self.helpers = False, 0, []
        # half the batches over two or three types only: more arithmetic within one narrow type, where it wraps
        few = rng.random() < 0.5
        types = [TYPES[k] for k in rng.choice(len(TYPES), int(rng.integers(2, 4)), replace=False)] if few else TYPES
        self.env = {f"v_{t}_{j}": t for t in types for j in range(NV)}
        self.env.update({f"v_b_{j}": "i1" for j in range(NV if not few else 1)})
        self.items = [self.expr(self.env, 0) for _ in range(count)]   # (text, type, literal)


BINARY = ("+", "-", "*", "//", "%", "<<", ">>", "&", "|", "^", "<", "<=", "==", "!=", "min", "max")
UNARY = ("-", "~", "abs")


class Flat(mixgen.Program):
    """One operator or cast per expression, straight on the values (mostly of one type), so that each folding rule
    is met many times: `v_i8_0 // v_i8_2`, `v_u16_1 << v_u16_0`, `skc.f32(v_u64_2)`, `v_f64_1 != v_f64_1`."""

    def __init__(self, rng, count):
        self.rng = rng
        self.items = [self.item() for _ in range(count)]

    def value(self, t):
        return f"v_{'b' if t == 'i1' else t}_{int(self.rng.integers(0, NV))}"

    def item(self):
        t = self.pick(TYPES + ("i1",))
        u = t if self.chance(0.7) else self.pick(TYPES)
        a, b = self.value(t), self.value(u)
        k = self.rng.random()
        if k < 0.25:
            dst = self.pick(TYPES + ("i1",))
            return f"skc.{dst}({a})", dst, None
        if k < 0.35:
            op = self.pick(UNARY if not mixgen.is_float(t) else ("-", "abs"))
            rt = "i32" if t == "i1" else t
            return (f"abs({a})" if op == "abs" else f"({op}{a})"), (t if op == "~" else rt), None
        op = self.pick(BINARY)
        if mixgen.is_float(t) or mixgen.is_float(u):
            if op in ("<<", ">>", "&", "|", "^"):
                op = "*"
        rt = mixgen.promote(t, u)
        if op in ("<", "<=", "==", "!=", "min", "max"):
            text = f"{op}({a}, {b})" if op in ("min", "max") else f"({a} {op} {b})"
            return text, ("i1" if op not in ("min", "max") else rt), None
        if op in ("<<", ">>"):
            return f"({a} {op} {b})", ("i32" if t == "i1" else t), None
        if rt == "i1":
            rt = "i32" if op in ("+", "-", "*", "//", "%") else rt
        return f"({a} {op} {b})", rt, None



EXACT_MATH = ("sqrt", "floor", "ceil", "trunc", "rint")          # defined on f64 too
APPROXIMATE = ("exp", "exp2", "log", "log2", "rsqrt", "sin", "cos", "tanh")   # f32's approximations on the GPU
POWERS = (-8, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 31, 0.0, 1.0, 2.0, 3.0, 0.5, -0.5, -1.0, 2.5, -2.0)


class Functions(Flat):
    """The math functions and builtins, one per expression, straight on the values: skc.sqrt, rsqrt, exp, exp2, log,
    log2, sin, cos, tanh, floor, ceil, trunc, rint, abs, skc.minimum/maximum, min/max, `**` to a constant (negative,
    zero, large, fractional) or run-time exponent, and float-to-int casts. `approximate` holds the expressions whose
    GPU code is an approximation (ex2.approx, lg2.approx, ...): their PTX is compared form with form, not with the
    interpreter."""

    def __init__(self, rng, count):
        self.rng, self.approximate, self.items = rng, set(), []
        for _ in range(count):
            self.items.append(self.item())

    def item(self):
        k = self.rng.random()
        t = self.pick(("f16", "bf16", "f32", "f64") if k < 0.8 else TYPES)
        a = self.value(t)
        if k < 0.3:
            fn = self.pick(EXACT_MATH + APPROXIMATE)
            if fn in APPROXIMATE and t == "f64":
                t, a = "f32", self.value("f32")
            rt = t if mixgen.is_float(t) else "f32"
            if fn in APPROXIMATE:
                self.approximate.add(len(self.items))
            return f"skc.{fn}({a})", rt, None
        if k < 0.45:   # to a constant: an int n is products (1 / products for n < 0), a float n math.pow
            n = self.pick(POWERS)
            if not mixgen.is_float(t) or t == "f64" and isinstance(n, float):
                t, a = "f32", self.value("f32")
            if isinstance(n, float):
                self.approximate.add(len(self.items))
            return f"({a} ** {n})", t, None
        if k < 0.55:   # to a run-time exponent: an integer one is products, a float one math.pow
            u = self.pick(("i32", "u8", "i8", "i64", "u32", t))
            if t == "f64" and u == t or not mixgen.is_float(t):
                t, a = "f32", self.value("f32")
                u = "f32" if u == "f64" else u
            if mixgen.is_float(u):
                self.approximate.add(len(self.items))
            rt = mixgen.promote(t, u) if mixgen.is_float(u) else t
            return f"({a} ** {self.value(u)})", rt, None
        if k < 0.65:
            fn = self.pick(("skc.minimum", "skc.maximum", "min", "max"))
            b = self.value(t)
            return f"{fn}({a}, {b})", t, None
        if k < 0.75:
            return f"abs({a})", t, None
        if k < 0.9:
            return self.item_plain(t, a)
        dst = self.pick(TYPES + ("i1",) + mixgen.F8)
        return f"skc.{dst}({a})", dst, None

    def item_plain(self, t, a):
        dst = self.pick(INTS)
        return f"skc.{dst}({a})", dst, None


def _int_values(rng, t):
    lo, hi = int_range(t)
    special = [0, 1, lo, hi, lo + 1, hi - 1, 2, 7, 8, 100, 127, 128, 255, 256, 1 << 15, (1 << 31) - 1, 1 << 31,
               (1 << 32) - 1, 1 << 53, (1 << 53) + 1, (1 << 63) - 1, 15, 16, 17, 31, 32, 33, 63, 64, 65] + ([-1, -2, -128, -129, -(1 << 31)]
                                                                        if is_signed(t) else [])
    special = [v for v in special if lo <= v <= hi]
    out = []
    for _ in range(NV):
        k = rng.random()
        if k < 0.5:
            out.append(int(special[int(rng.integers(0, len(special)))]))
        elif k < 0.75:
            out.append(int(rng.integers(-20 if is_signed(t) else 0, 21)))
        else:
            out.append(int(rng.integers(lo, hi, endpoint=True, dtype=np.int64 if is_signed(t) else np.uint64)))
    return out


FLOAT_SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, math.inf, -math.inf, math.nan, 65504.0, 65520.0, 70000.0, 1e-6,
                 6e-8, 5.96e-8, 3e-8, 3e38, 3.4028235e38, 1e-40, 1e-45, 2.5, 3.5, -2.5, 127.5, 255.0, 256.0, -128.5,
                 2147483648.0, 4294967296.0, 1e19, -1e19, 1.0000001, 9007199254740993.0, 0.1, 1 / 3, 2049.0,
                 16777217.0, 1.00390625, 1.0009765625, 1e300, 1e-310]


def _float_values(rng, t):
    out = []
    for _ in range(NV):
        k = rng.random()
        if k < 0.5:
            v = FLOAT_SPECIAL[int(rng.integers(0, len(FLOAT_SPECIAL)))]
        elif k < 0.75:
            v = float(np.round(rng.standard_normal() * 8, int(rng.integers(0, 3))))
        else:
            v = float(rng.standard_normal() * 10.0 ** int(rng.integers(-8, 9)))
        out.append(v)
    numpy_type = _bf16() if t == "bf16" else _NP[t]
    with np.errstate(all="ignore"):
        held = np.array(out, np.float64).astype(np.float32 if t == "bf16" else numpy_type).astype(numpy_type)
    return held


class Batch:
    """`count` expressions and the values of the variables; `source(form)` is the kernel of one form."""

    def __init__(self, seed, count=40, depth=3, extra=True, flat=False, functions=False):
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.exprs = (Functions(rng, count) if functions else Flat(rng, count) if flat
                      else Expressions(rng, count, depth, extra))
        self.approximate = getattr(self.exprs, "approximate", set())
        self.arrays = {}
        for t in TYPES:
            if t in INTS:
                self.arrays[t] = np.array(_int_values(rng, t), _NP[t])
            else:
                self.arrays[t] = _float_values(rng, t)
        self.arrays["b"] = np.array([int(rng.integers(0, 2)) * 200 for _ in range(NV)], np.uint8)
        self.compile_time = [bool(rng.integers(0, 2)) for _ in range(len(self.arrays) * NV)]
        self.dropped = set()

    def constants(self):
        """The constexpr tuple: each array's values as Python numbers, type by type."""
        values = []
        for t in TYPES:
            values += [int(v) if t in INTS else float(v) for v in self.arrays[t]]
        values += [bool(v > 100) for v in self.arrays["b"]]
        return tuple(values)

    def source(self, form):
        names = [f"x_{t}: skc.Ptr[skc.{t}]" for t in TYPES] + ["x_b: skc.Ptr[skc.u8]"]
        names += [f"o_{t}: skc.Ptr[skc.{t}]" for t in TYPES] + ["o_b: skc.Ptr[skc.u8]", "c: skc.constexpr"]
        lines = ["import skc", "", "", "@skc.kernel", f"def fold_batch({', '.join(names)}):"]
        slot = 0
        for t in TYPES + ("b",):
            for j in range(NV):
                folded = form == "fold" or (form == "mixed" and self.compile_time[slot])
                if t == "b":
                    value = f"skc.i1(c[{slot}])" if folded else f"x_b[{j}] > 100"
                else:
                    value = f"skc.{t}(c[{slot}])" if folded else f"x_{t}[{j}]"
                lines.append(f"    v_{t}_{j} = {value}")
                slot += 1
        self.first_line = len(lines) + 1
        for k, (text, t, _) in enumerate(self.exprs.items):
            if k in self.dropped:
                lines.append("    pass")
            elif t == "i1":
                lines.append(f"    o_b[{k}] = skc.u8({text})")
            elif t in mixgen.F8:   # (widened exactly: fp8 arrays are no kernel arguments here)
                lines.append(f"    o_f32[{k}] = skc.f32(skc.{t}({text}))")
            else:
                lines.append(f"    o_{t}[{k}] = skc.{t}({text})")
        return "\n".join(lines) + "\n"

    def expression_at(self, line):
        k = line - self.first_line
        return k if 0 <= k < len(self.exprs.items) else None

    def inputs(self):
        return [self.arrays[t].copy() for t in TYPES] + [self.arrays["b"].copy()]

    def outputs(self):
        n = len(self.exprs.items)
        return [np.zeros(n, self.arrays[t].dtype) for t in TYPES] + [np.zeros(n, np.uint8)]

    def written(self, k):
        """(output index, element) expression k writes."""
        t = self.exprs.items[k][1]
        t = "f32" if t in mixgen.F8 else t
        return (len(TYPES) if t == "i1" else TYPES.index(t)), k


def run_form(batch, form, folder, ptx=True):
    """The outputs of one form in the interpreter and (ptx=True) in the PTX emulator of its sm_90a code."""
    import ptx_emulator
    module = fuzzgen.load_module(batch.source(form), folder, f"fold_{batch.seed}_{form}_{len(batch.dropped)}")
    kernel = module.fold_batch
    want = batch.outputs()
    kernel.interpret[1, 1](*batch.inputs(), *want, c=batch.constants())
    if not ptx:
        return want, None
    compiled = kernel.compile(*batch.inputs(), *batch.outputs(), c=batch.constants(), target="sm_90a", block=(1, 1, 1))
    got = batch.outputs()
    ptx_emulator.run_grid(compiled.asm("ptx"), "fold_batch", batch.inputs() + got, 1, 1)
    return want, got


def disagreements(batch, results: dict) -> list:
    """(expression, form, value, reference value) where a form's result differs from the run-time interpreter's (for
    an approximate expression, the PTX forms from the run-time PTX's: the GPU's approximations are not the
    interpreter's)."""
    found = []
    for k, (text, t, _) in enumerate(batch.exprs.items):
        if k in batch.dropped:
            continue
        index, element = batch.written(k)
        for key, outs in results.items():
            reference = ("run", key[1] if k in batch.approximate else "interp")
            if outs is None or key == reference or results[reference] is None:
                continue
            want = results[reference][index][element:element + 1]
            got = outs[index][element:element + 1]
            if not mixgen.same(want, got)[0]:
                found.append((k, key, got[0], want[0], t, text))
    return found


def run_batch(batch, folder, ptx=True, drop_errors=True):
    """Every form's outputs, dropping (drop_errors) an expression a form refuses to compile, with the reason."""
    from skc.diagnostics import CompileError
    refused = []
    while True:
        results = {}
        try:
            for form in FORMS:
                interp, emulated = run_form(batch, form, folder, ptx)
                results[(form, "interp")] = interp
                results[(form, "ptx")] = emulated
            return results, refused
        except CompileError as error:
            loc = getattr(error, "location", None) or getattr(error, "loc", None)
            k = batch.expression_at(getattr(loc, "line", 0) or 0)
            if not drop_errors or k is None or k in batch.dropped:
                raise
            refused.append((k, form, str(error).splitlines()[0]))
            batch.dropped.add(k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--no-ptx", action="store_true")
    ap.add_argument("--flat", action="store_true", help="one operator or cast per expression")
    ap.add_argument("--functions", action="store_true", help="one math function, power or cast per expression")
    ap.add_argument("--out", default="/tmp/foldfuzz")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    folder = tempfile.mkdtemp()
    total = bad = errors = refused_total = 0
    for b in range(args.batches):
        seed = args.seed * 100000 + b
        batch = Batch(seed, args.count, args.depth, flat=args.flat, functions=args.functions)
        t0 = time.time()
        try:
            results, refused = run_batch(batch, folder, not args.no_ptx)
        except Exception as error:  # noqa: BLE001
            errors += 1
            with open(f"{args.out}/err_{seed}.txt", "w") as f:
                f.write(batch.source("mixed") + "\n\n" + traceback.format_exc())
            print(f"ERROR seed {seed}: {type(error).__name__}: {str(error).splitlines()[0][:200]}", flush=True)
            continue
        for k, form, message in refused:
            print(f"REFUSED seed {seed} expr {k} ({form}): {message[:160]}", flush=True)
        refused_total += len(refused)
        found = disagreements(batch, results)
        total += len(batch.exprs.items) - len(batch.dropped)
        if found:
            bad += len({f[0] for f in found})
            with open(f"{args.out}/mis_{seed}.txt", "w") as f:
                f.write(batch.source("mixed") + "\n\nconstants " + repr(batch.constants()) + "\n\n"
                        + "\n".join(map(repr, found)))
            for f in found[:6]:
                print(f"MISMATCH seed {seed}: {f}", flush=True)
        print(f"seed {seed}: {len(batch.exprs.items)} expressions, {time.time() - t0:.1f}s", flush=True)
    print(f"done: {total} expressions compared, {bad} disagreeing, {refused_total} refused, {errors} batch errors")


if __name__ == "__main__":
    main()
