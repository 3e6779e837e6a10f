"""Tile IR to LLVM IR: the lowering every target shares.

One dispatcher (`lower_op`) looks each op up in a table of `_lower_<family>` methods; target
facts (address spaces, special registers, barriers, shuffles, math instructions, the kernel
signature) come from the target's `TargetLowering` (nvptx.py, amdgpu.py). Structured control
flow becomes basic blocks; var slots become allocas that LLVM promotes to registers.
"""
from __future__ import annotations

import math

from .. import ir
from ..diagnostics import CompileError
from .llvm_text import FunctionText, ModuleText, asm_string, constant_literal, llvm_type

_INT_BINARY = {"arith.add": "add", "arith.sub": "sub", "arith.mul": "mul",
               "arith.and": "and", "arith.or": "or", "arith.xor": "xor"}
_FLOAT_BINARY = {"arith.add": "fadd", "arith.sub": "fsub", "arith.mul": "fmul", "arith.div": "fdiv",
                 "arith.rem": "frem"}
_ICMP_SIGNED = {"eq": "eq", "ne": "ne", "lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge"}
_ICMP_UNSIGNED = {"eq": "eq", "ne": "ne", "lt": "ult", "le": "ule", "gt": "ugt", "ge": "uge"}
_FCMP = {"eq": "oeq", "ne": "une", "lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge"}
_LLVM_MATH = {"math.floor": "floor", "math.ceil": "ceil", "math.trunc": "trunc", "math.round": "roundeven",
              "math.sqrt": "sqrt", "math.abs": "fabs"}


def _is_constant_zero(value: ir.Value) -> bool:
    return getattr(value.owner, "name", None) == "arith.constant" and value.owner.attrs["value"] == 0


def _zero_arm_of_a_min_or_max(c: ir.Value, a: ir.Value, b: ir.Value):
    """Which arm (0 or 1) of select(c, a, b) is a float constant zero where c compares a with b in that order
    (`a if a < b else b`: Python's min and max, and the same spelled out), or None. LLVM makes such a select
    against a constant a min or max instruction (NVPTX's min.f32), whose zeros are ordered, -0.0 below +0.0, where
    the select picks by the compare: min(0.0, x) of x = -0.0 is 0.0, as in the interpreter, and the GPU gave -0.0.
    So it does with x first and a zero second where c compares x with a zero on either side (`x if 0.0 > x else
    0.0`, `x if x < -0.0 else 0.0`): LLVM moves a constant to a compare's right and takes -0.0 there as 0.0. With
    the zero first (`0.0 if x < 0.0 else x`, the fused relu) LLVM keeps the select, and so does skc."""
    cmp = c.owner
    if getattr(cmp, "name", None) != "arith.cmp" or not ir.element_type(a.type).is_float:
        return None
    left, right = cmp.operands
    if left is a and right is b:
        for i, arm in enumerate((a, b)):
            if _is_constant_zero(arm):
                return i
    if _is_constant_zero(b) and (left is a and _is_constant_zero(right) or right is a and _is_constant_zero(left)):
        return 1
    return None


def intrinsic_suffix(t: ir.Type) -> str:
    """LLVM's overload suffix: .f32, .i32, .v4f32."""
    if isinstance(t, ir.VectorType):
        return f".v{t.count}{intrinsic_suffix(t.elem)[1:]}"
    if t.is_float:
        return f".f{t.bits}" if t.name != "bf16" else ".bf16"
    return f".i{t.bits}"


def _argument_type(argument: str) -> str:
    """The type T of a typed argument "T V": T may hold spaces ('ptr addrspace(1)', '<4 x float>'), and so
    may V when it is a vector constant ('<4 x float> <float 1.0, ...>')."""
    opening = argument[0]
    if opening in "<{[":
        closing = {"<": ">", "{": "}", "[": "]"}[opening]
        depth = 0
        for i, c in enumerate(argument):
            depth += (c == opening) - (c == closing)
            if depth == 0:
                return argument[:i + 1]
    return argument.rsplit(" ", 1)[0]


class FunctionLowering:
    """Writes one tile IR function as an LLVM function."""

    def __init__(self, fn: ir.Function, module: ModuleText, target):
        self.fn, self.module, self.target = fn, module, target
        self.spaces = target.address_spaces
        # Var slots are allocas in the target's stack address space (the datalayout's A<n>: 5 on AMDGPU).
        stack = target.alloca_space
        self.alloca_suffix = f", addrspace({stack})" if stack else ""
        self.slot_type = f"ptr addrspace({stack})" if stack else "ptr"
        self.text = FunctionText()
        self.values: dict[int, str] = {}
        self.jumps: dict[str, tuple[str, str]] = {}  # label -> (break block, continue block)
        self.analyses: dict = {}  # what a target's lowering found out about fn, by name (computed once)

    # -- helpers ----------------------------------------------------------------------
    def type(self, t: ir.Type) -> str:
        return llvm_type(t, self.spaces)

    def get(self, value: ir.Value) -> str:
        return self.values[id(value)]

    def typed(self, value: ir.Value) -> str:
        return f"{self.type(value.type)} {self.get(value)}"

    def set(self, op: ir.Op, name: str, index: int = 0):
        self.values[id(op.results[index])] = name

    def call(self, name: str, ret: str, args: list, attrs: str = "", result_range=None, flags: str = "") -> str:
        """Call an intrinsic (declared on first use); give its result name ('' for void).
        `result_range` (lo, hi) tells LLVM the result lies in [lo, hi); `flags` are fast-math flags ('afn')."""
        arg_types = ", ".join(_argument_type(a) for a in args)
        self.module.declare(name, f"{ret} @{name}({arg_types}){attrs}")
        known = f"range({ret} {result_range[0]}, {result_range[1]}) " if result_range else ""
        line = f"call {flags + ' ' if flags else ''}{known}{ret} @{name}({', '.join(args)})"
        if ret == "void":
            self.text.emit(line)
            return ""
        return self.text.value(line)

    def constant(self, value, t: ir.Type) -> str:
        return constant_literal(value, t, self.spaces)

    def lanewise(self, t: ir.Type, operands: list, scalar) -> str:
        """Apply scalar(*names) -> name to each lane of vector type t (the operands' lanes in turn)."""
        result = "poison"
        elem = self.type(t.elem)
        for i in range(t.count):
            lanes = [self.text.value(f"extractelement {self.typed(v)}, i32 {i}") for v in operands]
            result = self.text.value(f"insertelement {self.type(t)} {result}, {elem} {scalar(*lanes)}, i32 {i}")
        return result

    def trap_unless(self, cond: ir.Value, report=None):
        """Where cond is false: run report() (if given; it may print), then trap; go on where it holds."""
        text = self.text
        fail, ok = text.new_label("assert"), text.new_label("ok")
        text.terminate(f"br i1 {self.get(cond)}, label %{ok}, label %{fail}")
        text.start_block(fail)
        if report is not None:
            report()
        self.call("llvm.trap", "void", [])
        text.terminate("unreachable")
        text.start_block(ok)

    def fail(self, op: ir.Op, message: str):
        operands = ", ".join(str(v.type) for v in op.operands) or "no operands"
        raise CompileError(f"cannot lower '{op.name}' ({operands}) for {self.target.name}: {message}", op.loc)

    # -- driver -----------------------------------------------------------------------
    def lower(self) -> str:
        fn = self.fn
        params = self.target.kernel_params(fn)
        for value, (_, name) in zip(fn.args, params):
            self.values[id(value)] = name
        self.target.prologue(self)
        self.region(fn.body)
        self.text.terminate("ret void")
        header = self.target.kernel_header(fn, [p for p, _ in params])
        return self.text.render(header)

    def region(self, region: ir.Region):
        for op in region.ops:
            self.lower_op(op)

    def lower_op(self, op: ir.Op):
        # a target's own entry comes first: it may refuse a shared op it cannot emit (gpu.asm on AMD)
        handler = self.target.ops.get(op.name) or self.TABLE.get(op.name)
        if handler is None:
            self.fail(op, "no lowering for this op")
        handler(self, op)

    # -- arithmetic -------------------------------------------------------------------
    def _lower_constant(self, op):
        # LLVM takes constants as operands anywhere: the literal itself stands for the value.
        self.set(op, self.constant(op.attrs["value"], op.result.type))

    def _lower_binary(self, op):
        a, b = op.operands
        t = op.result.type
        elem = ir.element_type(t)
        ty = self.type(t)
        name = op.name
        if elem.is_float:
            if name == "arith.rem":
                self.set(op, self.float_rem(a, b, t))
                return
            if name in _FLOAT_BINARY:
                self.set(op, self.text.value(f"{_FLOAT_BINARY[name]} {ty} {self.get(a)}, {self.get(b)}"))
                return
            if name in ("arith.min", "arith.max"):
                kind = "minnum" if name == "arith.min" else "maxnum"
                self.set(op, self.call(f"llvm.{kind}{intrinsic_suffix(t)}", ty, [self.typed(a), self.typed(b)]))
                return
            self.set(op, self.float_math(op))
            return
        if name in _INT_BINARY:
            self.set(op, self.text.value(f"{_INT_BINARY[name]} {ty} {self.get(a)}, {self.get(b)}"))
        elif name in ("arith.div", "arith.rem"):
            kind = ("sdiv" if elem.is_signed else "udiv") if name == "arith.div" else ("srem" if elem.is_signed else "urem")
            self.set(op, self.text.value(f"{kind} {ty} {self.get(a)}, {self._safe_divisor(a, b, t)}"))
        elif name in ("arith.min", "arith.max"):
            kind = ("s" if elem.is_signed else "u") + name[-3:]
            self.set(op, self.call(f"llvm.{kind}{intrinsic_suffix(t)}", ty, [self.typed(a), self.typed(b)]))
        elif name in ("arith.shl", "arith.shr"):
            self.set(op, self._shift(op, a, b, t))
        else:
            self.fail(op, "not defined on integers")

    def float_rem(self, a, b, t) -> str:
        """C's fmod, exact (LLVM's `frem` is not: NVPTX and AMDGPU lower it to x - trunc(x / y) * y, which is wrong
        once the quotient has more digits than the format, e.g. 1e10 % 3.0 gave 256). f16/bf16 go through f32,
        where the remainder is exact and representable in the narrow format too; vectors lane by lane."""
        elem = ir.element_type(t)
        wide = ir.f64 if elem.name == "f64" else ir.f32
        helper = self._fmod_helper(wide)
        wty, ety = self.type(wide), self.type(elem)

        def scalar(x, y):
            if elem is not wide:
                x = self.text.value(f"fpext {ety} {x} to {wty}")
                y = self.text.value(f"fpext {ety} {y} to {wty}")
            r = self.text.value(f"call {wty} {helper}({wty} {x}, {wty} {y})")
            return r if elem is wide else self.text.value(f"fptrunc {wty} {r} to {ety}")

        if isinstance(t, ir.VectorType):
            return self.lanewise(t, [a, b], scalar)
        return scalar(self.get(a), self.get(b))

    def _fmod_helper(self, t: ir.ScalarType) -> str:
        """@__skc_fmod_f32/_f64: fmod by long division of the significands (as musl's fmodf: subnormals normalized
        first), every step exact."""
        bits, mant = (32, 23) if t.name == "f32" else (64, 52)
        ity, fty = f"i{bits}", self.type(t)
        sign, inf, frac = 1 << (bits - 1), ((1 << (bits - mant - 1)) - 1) << mant, (1 << mant) - 1
        self.module.declare(f"llvm.ctlz.{ity}", f"{ity} @llvm.ctlz.{ity}({ity}, i1)")
        self.module.declare(f"llvm.umin.{ity}", f"{ity} @llvm.umin.{ity}({ity}, {ity})")
        name = f"__skc_fmod_{t.name}"
        lit = lambda v: str(v - (1 << bits) if v >= 1 << (bits - 1) else v)  # noqa: E731 (LLVM reads them signed)
        body = f"""define internal {fty} @{name}({fty} %x, {fty} %y) alwaysinline {{
entry:
  %ux = bitcast {fty} %x to {ity}
  %uy = bitcast {fty} %y to {ity}
  %sx = and {ity} %ux, {lit(sign)}
  %ax = and {ity} %ux, {lit(sign - 1)}
  %ay = and {ity} %uy, {lit(sign - 1)}
  %yzero = icmp eq {ity} %ay, 0
  %ynan = icmp ugt {ity} %ay, {lit(inf)}
  %xbig = icmp uge {ity} %ax, {lit(inf)}
  %bad0 = or i1 %yzero, %ynan
  %bad = or i1 %bad0, %xbig
  br i1 %bad, label %nan, label %small
nan:
  %p = fmul {fty} %x, %y
  %q = fdiv {fty} %p, %p
  ret {fty} %q
small:
  %lt = icmp ult {ity} %ax, %ay
  br i1 %lt, label %keep, label %same
keep:
  ret {fty} %x
same:
  %eq = icmp eq {ity} %ax, %ay
  br i1 %eq, label %zero, label %start
zero:
  %z = bitcast {ity} %sx to {fty}
  ret {fty} %z
start:
  %ex = lshr {ity} %ax, {mant}
  %ey = lshr {ity} %ay, {mant}
  %exz = icmp eq {ity} %ex, 0
  %eyz = icmp eq {ity} %ey, 0
  %fx = and {ity} %ax, {frac}
  %fy = and {ity} %ay, {frac}
  %hx = or {ity} %fx, {frac + 1}
  %hy = or {ity} %fy, {frac + 1}
  %lzx = call {ity} @llvm.ctlz.{ity}({ity} %ax, i1 true)
  %lzy = call {ity} @llvm.ctlz.{ity}({ity} %ay, i1 true)
  %shx = sub {ity} %lzx, {bits - mant - 1}
  %shy = sub {ity} %lzy, {bits - mant - 1}
  %nx = shl {ity} %ax, %shx
  %ny = shl {ity} %ay, %shy
  %sex = sub {ity} 1, %shx
  %sey = sub {ity} 1, %shy
  %mx = select i1 %exz, {ity} %nx, {ity} %hx
  %my = select i1 %eyz, {ity} %ny, {ity} %hy
  %ex1 = select i1 %exz, {ity} %sex, {ity} %ex
  %ey1 = select i1 %eyz, {ity} %sey, {ity} %ey
  %n = sub {ity} %ex1, %ey1
  br label %loop
loop:
  %i = phi {ity} [ %n, %start ], [ %i1, %step ]
  %m = phi {ity} [ %mx, %start ], [ %m1, %step ]
  %d = sub {ity} %m, %my
  %ge = icmp uge {ity} %m, %my
  %r = select i1 %ge, {ity} %d, {ity} %m
  %more = icmp ne {ity} %i, 0
  br i1 %more, label %step, label %done
step:
  %m1 = shl {ity} %r, 1
  %i1 = sub {ity} %i, 1
  br label %loop
done:
  %rz = icmp eq {ity} %r, 0
  br i1 %rz, label %zero, label %pack
pack:
  %normal = icmp sgt {ity} %ey1, 0
  br i1 %normal, label %big, label %tiny
tiny:
  %down = sub {ity} 1, %ey1
  %bt = lshr {ity} %r, %down
  br label %out
big:
  %lz = call {ity} @llvm.ctlz.{ity}({ity} %r, i1 true)
  %up = sub {ity} %lz, {bits - mant - 1}
  %room = sub {ity} %ey1, 1
  %s = call {ity} @llvm.umin.{ity}({ity} %up, {ity} %room)
  %rm = shl {ity} %r, %s
  %e2 = sub {ity} %room, %s
  %eb = shl {ity} %e2, {mant}
  %bb = add {ity} %rm, %eb
  br label %out
out:
  %b = phi {ity} [ %bt, %tiny ], [ %bb, %big ]
  %bs = or {ity} %b, %sx
  %f = bitcast {ity} %bs to {fty}
  ret {fty} %f
}}"""
        return self.module.define(name, body)

    def _safe_divisor(self, a, b, t) -> str:
        """The divisor of an integer division, made 1 where LLVM's division would be undefined behaviour (by zero,
        and INT_MIN / -1 for signed types). The IR's result there is only an unspecified value, but an LLVM
        `sdiv`/`srem` by zero lets the optimizer assume the divisor is non-zero everywhere, and delete the
        program's own test of it (`x // y if y != 0 else 0` and `y != 0 and x % y == 0` evaluate both sides)."""
        elem = ir.element_type(t)
        owner = b.owner if isinstance(b.owner, ir.Op) else None
        if owner is not None and owner.name == "arith.constant" and not isinstance(t, ir.VectorType):
            value = owner.attrs["value"]
            if value != 0 and not (elem.is_signed and value == -1):
                return self.get(b)
        ty, i1 = self.type(t), self.type(ir.with_element(t, ir.i1))
        unsafe = self.text.value(f"icmp eq {ty} {self.get(b)}, {self.constant(0, t)}")
        if elem.is_signed and elem.bits > 1:
            minus_one = self.text.value(f"icmp eq {ty} {self.get(b)}, {self.constant(-1, t)}")
            smallest = self.text.value(f"icmp eq {ty} {self.get(a)}, {self.constant(-(1 << (elem.bits - 1)), t)}")
            overflow = self.text.value(f"and {i1} {minus_one}, {smallest}")
            unsafe = self.text.value(f"or {i1} {unsafe}, {overflow}")
        return self.text.value(f"select {i1} {unsafe}, {ty} {self.constant(1, t)}, {ty} {self.get(b)}")

    def _shift(self, op, a, b, t) -> str:
        """Shifts of the bit width or more give 0 (or the sign for signed >>), as the IR defines."""
        ty = self.type(t)
        elem = ir.element_type(t)
        width = self.constant(elem.bits, t)
        count = self.get(b)
        if elem.bits > 32:
            # the count clamped to the width first: LLVM's NVPTX backend (PerformSELECTShiftCombine, LLVM 22) drops the
            # select below for a PTX shift, which clamps, but reads only the count's low 32 bits: x << (2**32 + 1)
            # shifted by 1 on the GPU, where the IR gives 0 (the mixed-type fuzzer, tests/fuzz/mixgen.py)
            count = self.call(f"llvm.umin{intrinsic_suffix(t)}", ty, [self.typed(b), f"{ty} {width}"])
        big = self.text.value(f"icmp uge {ty} {count}, {width}")
        if op.name == "arith.shr" and elem.is_signed:
            limit = self.constant(elem.bits - 1, t)
            amount = self.text.value(f"select {self.type(ir.with_element(t, ir.i1))} {big}, {ty} {limit}, {ty} {count}")
            return self.text.value(f"ashr {ty} {self.get(a)}, {amount}")
        kind = "shl" if op.name == "arith.shl" else "lshr"
        shifted = self.text.value(f"{kind} {ty} {self.get(a)}, {count}")
        zero = self.constant(0, t)
        return self.text.value(f"select {self.type(ir.with_element(t, ir.i1))} {big}, {ty} {zero}, {ty} {shifted}")

    def _lower_unary(self, op):
        (a,) = op.operands
        t = op.result.type
        ty = self.type(t)
        elem = ir.element_type(t)
        if op.name == "arith.neg":
            text = f"fneg {ty} {self.get(a)}" if elem.is_float else f"sub {ty} {self.constant(0, t)}, {self.get(a)}"
            self.set(op, self.text.value(text))
        elif op.name == "arith.not":
            self.set(op, self.text.value(f"xor {ty} {self.get(a)}, {self.constant(-1, t)}"))
        elif op.name == "math.abs" and not elem.is_float:
            self.set(op, self.call(f"llvm.abs{intrinsic_suffix(t)}", ty, [self.typed(a), "i1 false"]))
        elif op.name in _LLVM_MATH and (elem.name in ("f32", "f64") or op.name in ("math.abs", "math.sqrt")):
            self.set(op, self.call(f"llvm.{_LLVM_MATH[op.name]}{intrinsic_suffix(t)}", ty, [self.typed(a)]))
        else:
            self.set(op, self.float_math(op))

    def float_math(self, op) -> str:
        """A transcendental op on f32 (or f32 vectors, lane by lane) from the target's table."""
        t = op.result.type
        elem = ir.element_type(t)
        if elem.name != "f32":
            self.fail(op, f"not available on {elem} for {self.target.name}; compute in f32 (skc.f32(x))")
        scalar = self.target.f32_math[op.name]
        if op.name == "math.pow":
            target_pow = scalar
            scalar = lambda lw, a, b: lw.pow_cases(target_pow, a, b)  # noqa: E731
        if not isinstance(t, ir.VectorType):
            return scalar(self, *[self.get(v) for v in op.operands])
        return self.lanewise(t, op.operands, lambda *lanes: scalar(self, *lanes))

    def pow_cases(self, target_pow, a: str, b: str) -> str:
        """a ** b as the interpreter's (C's) pow gives it, around the target's exp2(b * log2 |a|), which alone gave NaN
        for 0 ** 0, inf ** 0, 1 ** inf and 1 ** nan (all 1) and for every negative a (-3 ** 2.0 is 9): a ** 0 is 1;
        |a| == 1 takes log2 0 and no product with an infinite or NaN b; a negative a (or -0) is negated where b is
        an odd integer; a negative finite a with a b that is no integer is NaN (-inf ** 0.5 is inf, -inf ** -0.5 is 0,
        as C's pow)."""
        def v(text):
            return self.text.value(text)

        one, zero = self.constant(1.0, ir.f32), self.constant(0.0, ir.f32)
        size = self.call("llvm.fabs.f32", "float", [f"float {a}"])
        unit = v(f"fcmp oeq float {size}, {one}")
        exponent = v(f"select i1 {unit}, float {zero}, float {b}")
        power = target_pow(self, size, exponent)
        whole = v(f"fcmp oeq float {self.call('llvm.trunc.f32', 'float', [f'float {b}'])}, {b}")
        half = v(f"fmul float {b}, {self.constant(0.5, ir.f32)}")
        even = v(f"fcmp oeq float {self.call('llvm.trunc.f32', 'float', [f'float {half}'])}, {half}")
        odd = v(f"and i1 {whole}, {v(f'xor i1 {even}, true')}")
        negative_zero_or_less = v(f"icmp slt i32 {v(f'bitcast float {a} to i32')}, 0")
        flip = v(f"and i1 {negative_zero_or_less}, {odd}")
        signed = v(f"select i1 {flip}, float {v(f'fneg float {power}')}, float {power}")
        minus_infinity = self.constant(-math.inf, ir.f32)
        below_zero, finite = v(f"fcmp olt float {a}, {zero}"), v(f"fcmp one float {a}, {minus_infinity}")
        finite_negative = v(f"and i1 {below_zero}, {finite}")
        undefined = v(f"and i1 {finite_negative}, {v(f'xor i1 {whole}, true')}")
        result = v(f"select i1 {undefined}, float {self.constant(float('nan'), ir.f32)}, float {signed}")
        return v(f"select i1 {v(f'fcmp oeq float {b}, {zero}')}, float {one}, float {result}")

    def _lower_fma(self, op):
        t = op.result.type
        self.set(op, self.call(f"llvm.fma{intrinsic_suffix(t)}", self.type(t), [self.typed(v) for v in op.operands]))

    def _lower_cmp(self, op):
        a, b = op.operands
        pred = op.attrs["pred"]
        t = a.type
        if isinstance(t, ir.PointerType):
            kind = f"icmp {_ICMP_UNSIGNED[pred]}"
        elif ir.element_type(t).is_float:
            kind = f"fcmp {_FCMP[pred]}"
        elif ir.element_type(t).is_signed:
            kind = f"icmp {_ICMP_SIGNED[pred]}"
        else:
            kind = f"icmp {_ICMP_UNSIGNED[pred]}"
        self.set(op, self.text.value(f"{kind} {self.type(t)} {self.get(a)}, {self.get(b)}"))

    def _lower_select(self, op):
        c, a, b = op.operands
        arms = [self.typed(a), self.typed(b)]
        zero = _zero_arm_of_a_min_or_max(c, a, b)
        if zero is not None:   # (the constant hidden from LLVM, which would make the select a min or a max)
            arms[zero] = f"{self.type(a.type)} {self._opaque((a, b)[zero])}"
        self.set(op, self.text.value(f"select {self.typed(c)}, {arms[0]}, {arms[1]}"))

    def _opaque(self, constant: ir.Value) -> str:
        """A float constant (or a vector of it, lane by lane: a vector select against a zero became min.f32 per lane
        too) moved where LLVM cannot see it."""
        t = constant.type
        if not isinstance(t, ir.VectorType):
            return self.target.opaque(self, self.get(constant), t)
        lane = self.target.opaque(self, self.constant(constant.owner.attrs["value"], t.elem), t.elem)
        result = "poison"
        for i in range(t.count):
            result = self.text.value(f"insertelement {self.type(t)} {result}, {self.type(t.elem)} {lane}, i32 {i}")
        return result

    def _lower_cast(self, op):
        self.set(op, self.convert(op.operands[0], op.result.type, op))

    def convert(self, value: ir.Value, dst: ir.Type, op) -> str:
        s, d = ir.element_type(value.type), ir.element_type(dst)
        if s.is_float and s.bits == 8 or d.is_float and d.bits == 8:
            return self.target.convert_fp8(self, value, dst, op)
        return self.convert_name(self.get(value), value.type, dst)

    def convert_name(self, name: str, src: ir.Type, dst: ir.Type) -> str:
        """LLVM value `name` of IR type src converted to dst (neither an fp8 type) as arith.cast defines; the
        targets' fp8 conversions go through f32 with it."""
        s, d = ir.element_type(src), ir.element_type(dst)
        sty, dty = self.type(src), self.type(dst)
        if s is d:
            return name
        if _split_lanes(self.target, src, dst):
            return self._lanes_converted(name, src, dst)
        if d.is_bool:
            if s.is_float:
                return self.text.value(f"fcmp une {sty} {name}, {self.constant(0.0, src)}")
            return self.text.value(f"icmp ne {sty} {name}, {self.constant(0, src)}")
        if s.is_int and d.is_int:
            if s.bits == d.bits:
                return name if sty == dty else self.text.value(f"bitcast {sty} {name} to {dty}")
            if s.bits > d.bits:
                return self.text.value(f"trunc {sty} {name} to {dty}")
            kind = "sext" if s.is_signed else "zext"
            return self.text.value(f"{kind} {sty} {name} to {dty}")
        if s.is_int and d.is_float:
            if d.name == "bf16" and s.bits > 24 and not self.target.target.has("cvt_bf16_int"):
                return self._int_to_bf16(name, src, dst)
            kind = "sitofp" if s.is_signed else "uitofp"
            return self.text.value(f"{kind} {sty} {name} to {dty}")
        if s.is_float and d.is_int:
            return self.target.float_to_int(self, name, src, dst)
        if s.name == "bf16" and d.bits > s.bits or s.bits == d.bits:   # (f16 <-> bf16 go through f32)
            wide = ir.with_element(src, ir.f32)
            mid = self._widen_bf16(name, src) if s.name == "bf16" else \
                self.text.value(f"fpext {sty} {name} to {self.type(wide)}")
            if d.name == "f32":
                return mid
            return self.text.value(f"{'fpext' if d.bits > 32 else 'fptrunc'} {self.type(wide)} {mid} to {dty}")
        kind = "fpext" if d.bits > s.bits else "fptrunc"
        return self.text.value(f"{kind} {sty} {name} to {dty}")

    def _int_to_bf16(self, name: str, src: ir.Type, dst: ir.Type) -> str:
        """A 32- or 64-bit integer to bf16 rounded once, as arith.cast defines, where the target has no instruction for
        it: LLVM converts through f32 (v_cvt_f32_i32 on AMD, cvt.rn.f32.s32 on sm_80) and rounds twice (2**30 + 2**22
        + 1 gave 2**30, not 2**30 + 2**23). The magnitude's bits far below bf16's last place are first folded into one
        sticky bit, which makes it exact in f32 (32 bits: bits 0-7 into bit 8) or f64 (64 bits: bits 0-10 into bit 11,
        as the interpreter's _int64_to_f64_sticky), so that only the last conversion rounds (f64 to bf16: the targets
        round to odd in f32 first)."""
        s = ir.element_type(src)
        narrow = s.bits <= 32
        sty = self.type(src)
        wide = self.type(ir.with_element(src, ir.f32 if narrow else ir.f64))
        bools = self.type(ir.with_element(src, ir.i1))
        v = self.text.value
        c = lambda value: self.constant(value, src)  # noqa: E731
        dropped, exact_below = (8, 1 << 24) if narrow else (11, 1 << 53)
        magnitude, negative = name, None
        if s.is_signed:   # (the most negative value's magnitude is right as an unsigned number)
            negative = v(f"icmp slt {sty} {name}, {c(0)}")
            magnitude = v(f"select {bools} {negative}, {sty} {v(f'sub {sty} {c(0)}, {name}')}, {sty} {name}")
        low = v(f"and {sty} {magnitude}, {c((1 << dropped) - 1)}")
        sticky = v(f"select {bools} {v(f'icmp ne {sty} {low}, {c(0)}')}, {sty} {c(1 << dropped)}, {sty} {c(0)}")
        folded = v(f"or {sty} {v(f'and {sty} {magnitude}, {c(-(1 << dropped))}')}, {sticky}")
        big = v(f"icmp uge {sty} {magnitude}, {c(exact_below)}")
        exact = v(f"uitofp {sty} {v(f'select {bools} {big}, {sty} {folded}, {sty} {magnitude}')} to {wide}")
        if negative is not None:
            exact = v(f"select {bools} {negative}, {wide} {v(f'fneg {wide} {exact}')}, {wide} {exact}")
        return v(f"fptrunc {wide} {exact} to {self.type(dst)}")

    def _lanes_converted(self, name: str, src: ir.VectorType, dst: ir.VectorType) -> str:
        """convert_name lane by lane (a vector the target's backend cannot convert whole: _split_lanes)."""
        result, s, d = "poison", src.elem, dst.elem
        for i in range(src.count):
            lane = self.text.value(f"extractelement {self.type(src)} {name}, i32 {i}")
            result = self.text.value(f"insertelement {self.type(dst)} {result}, {self.type(d)} "
                                     f"{self.convert_name(lane, s, d)}, i32 {i}")
        return result

    def _widen_bf16(self, name: str, src: ir.Type) -> str:
        """A bf16 value (or vector) as f32, exactly, by its bits: the upper half of the f32's. Not `fpext`: LLVM's
        InstCombine narrows fptrunc(fadd(fpext bfloat, fpext half)) to half, an f16 addition of the bf16 operand
        rounded to f16 (-70000 became -inf: skc.f16(f16 + bf16) gave -inf for 60000 + -70000, where the f32 sum
        rounds to -10000), as it would for two halves; an operand that is no fpext keeps the f32 operation whole."""
        bits16 = self.text.value(f"bitcast {self.type(src)} {name} to {self.type(ir.with_element(src, ir.i16))}")
        wide_int = self.type(ir.with_element(src, ir.i32))
        bits32 = self.text.value(f"zext {self.type(ir.with_element(src, ir.i16))} {bits16} to {wide_int}")
        shifted = self.text.value(f"shl {wide_int} {bits32}, {self.constant(16, ir.with_element(src, ir.i32))}")
        return self.text.value(f"bitcast {wide_int} {shifted} to {self.type(ir.with_element(src, ir.f32))}")

    def _lower_bitcast(self, op):
        (a,) = op.operands
        self.set(op, self.text.value(f"bitcast {self.typed(a)} to {self.type(op.result.type)}"))

    # -- pointers and memory ------------------------------------------------------------
    def _lower_ptr_offset(self, op):
        p, i = op.operands
        index = self.typed(i)
        if not i.type.is_signed and not i.type.is_bool:
            index = f"i64 {self.text.value(f'zext {self.typed(i)} to i64')}" if i.type.bits < 64 else index
        elem = self.type(op.attrs["elem"])
        self.set(op, self.text.value(f"getelementptr {elem}, {self.typed(p)}, {index}"))

    def _lower_ptr_to_int(self, op):
        self.set(op, self.text.value(f"ptrtoint {self.typed(op.operands[0])} to {self.type(op.result.type)}"))

    def _lower_ptr_from_int(self, op):
        self.set(op, self.text.value(f"inttoptr {self.typed(op.operands[0])} to {self.type(op.result.type)}"))

    def _lower_ptr_cast(self, op):
        self.set(op, self.text.value(f"addrspacecast {self.typed(op.operands[0])} to {self.type(op.result.type)}"))

    def guarded(self, mask, emit_access, result_type=None, other=None):
        """Run emit_access() only where mask is true; give its value (or `other`) after the guard."""
        if mask is None:
            return emit_access()
        text = self.text
        origin = text.block
        then_label, join_label = text.new_label("guard"), text.new_label("join")
        text.terminate(f"br i1 {self.get(mask)}, label %{then_label}, label %{join_label}")
        text.start_block(then_label)
        result = emit_access()
        inner = text.block
        text.start_block(join_label)
        if result_type is None:
            return None
        return text.value(f"phi {result_type} [ {result}, %{inner} ], [ {other}, %{origin} ]")

    def _lower_load(self, op):
        ptr = op.operands[0]
        mask = op.operands[1] if len(op.operands) > 1 else None
        t = op.result.type
        align = op.attrs.get("align", getattr(t, "bytes", 8))
        bools = ir.element_type(t) is ir.i1
        memory_t = self.type(ir.with_element(t, ir.u8)) if bools else self.type(t)

        def access():
            loaded = self.text.value(f"load {memory_t}, {self.typed(ptr)}, align {align}")
            if bools:   # an i1 takes a byte in memory (an i1 vector a byte an element), as the interpreter stores it
                #         (LLVM's <N x i1> in memory is N packed bits): a byte is true where it is not 0, as there
                return self.text.value(f"icmp ne {memory_t} {loaded}, zeroinitializer")
            return loaded

        other = self.get(op.operands[2]) if len(op.operands) > 2 else self.constant(0, t) if not t.is_pointer \
            else "null"
        self.set(op, self.guarded(mask, access, self.type(t), other))

    def _lower_store(self, op):
        ptr, value = op.operands[:2]
        mask = op.operands[2] if len(op.operands) > 2 else None
        align = op.attrs.get("align", getattr(value.type, "bytes", 8))

        def access():
            stored = self.typed(value)
            if ir.element_type(value.type) is ir.i1:   # a byte an element (see _lower_load)
                bytes_t = self.type(ir.with_element(value.type, ir.u8))
                stored = f"{bytes_t} {self.text.value(f'zext {stored} to {bytes_t}')}"
            self.text.emit(f"store {stored}, {self.typed(ptr)}, align {align}")

        self.guarded(mask, access)

    def _lower_atomic(self, op):
        ptr, value = op.operands[:2]
        mask = op.operands[2] if len(op.operands) > 2 else None
        kind = op.attrs["op"]
        elem = value.type
        if elem.is_float:
            kind = {"add": "fadd", "min": "fmin", "max": "fmax"}.get(kind, kind)
        elif kind in ("min", "max"):
            kind = kind if elem.is_signed else "u" + kind
        scope = self.target.atomic_scope

        def access():
            return self.text.value(f"atomicrmw {kind} {self.typed(ptr)}, {self.typed(value)} {scope} monotonic")

        self.set(op, self.guarded(mask, access, self.type(elem), self.constant(0, elem)))

    def _lower_atomic_cas(self, op):
        ptr, cmp, value = op.operands
        pair = self.text.value(f"cmpxchg {self.typed(ptr)}, {self.typed(cmp)}, {self.typed(value)} "
                               f"{self.target.atomic_scope} monotonic monotonic")
        self.set(op, self.text.value(f"extractvalue {{ {self.type(value.type)}, i1 }} {pair}, 0"))

    def _lower_shared(self, op):
        base = self.target.shared_base(self)
        self.set(op, self.text.value(f"getelementptr i8, {self.type(ir.PointerType('shared'))} {base}, "
                                     f"i32 {op.attrs['offset']}"))

    def _lower_var_alloc(self, op):
        self.set(op, self.text.value(f"alloca {self.type(op.result.type.elem)}{self.alloca_suffix}"))

    def _lower_var_load(self, op):
        t = op.result.type
        self.set(op, self.text.value(f"load {self.type(t)}, {self.slot_type} {self.get(op.operands[0])}"))

    def _lower_var_store(self, op):
        slot, value = op.operands
        self.text.emit(f"store {self.typed(value)}, {self.slot_type} {self.get(slot)}")

    # -- inline assembly (LLVM's `asm` calls; the code and constraints are the target's) -----
    def _lower_asm(self, op):
        types = [self.type(r.type) for r in op.results]
        ret = "void" if not types else types[0] if len(types) == 1 else "{ " + ", ".join(types) + " }"
        effects = " sideeffect" if op.attrs.get("side_effects", True) else ""
        args = ", ".join(self.typed(v) for v in op.operands)
        line = (f"call {ret} asm{effects} {asm_string(op.attrs['code'])}, "
                f"{asm_string(op.attrs['constraints'])}({args})")
        if ret == "void":
            self.text.emit(line)
            return
        result = self.text.value(line)
        if len(types) == 1:
            self.set(op, result)
            return
        for i in range(len(types)):
            self.set(op, self.text.value(f"extractvalue {ret} {result}, {i}"), i)

    # -- vectors ------------------------------------------------------------------------
    def _lower_vec_splat(self, op):
        t = op.result.type
        vec = f"insertelement {self.type(t)} poison, {self.typed(op.operands[0])}, i32 0"
        first = self.text.value(vec)
        self.set(op, self.text.value(f"shufflevector {self.type(t)} {first}, {self.type(t)} poison, "
                                     f"<{t.count} x i32> zeroinitializer"))

    def _lower_vec_from(self, op):
        t = op.result.type
        current = "poison"
        for i, element in enumerate(op.operands):
            current = self.text.value(f"insertelement {self.type(t)} {current}, {self.typed(element)}, i32 {i}")
        self.set(op, current)

    def _lower_vec_extract(self, op):
        self.set(op, self.text.value(f"extractelement {self.typed(op.operands[0])}, i32 {op.attrs['index']}"))

    def _lower_vec_insert(self, op):
        v, x = op.operands
        self.set(op, self.text.value(f"insertelement {self.typed(v)}, {self.typed(x)}, i32 {op.attrs['index']}"))

    # -- control flow -------------------------------------------------------------------
    def _lower_if(self, op):
        text = self.text
        self._target_hook("before_branch", op)   # (what a target computes over the lanes that reach the branch)
        then_label, else_label, end_label = (text.new_label(p) for p in ("then", "else", "endif"))
        text.terminate(f"br i1 {self.get(op.operands[0])}, label %{then_label}, label %{else_label}")
        for label, region in ((then_label, op.regions[0]), (else_label, op.regions[1])):
            text.start_block(label)
            self.region(region)
            text.terminate(f"br label %{end_label}")
        text.start_block(end_label)
        self._target_hook("after_branch", op)    # (what a target updates once the lanes that stay are past it)

    def _target_hook(self, name: str, op):
        """The target's `name(lowering, op)` where it has one (NVPTX names its warp masks there)."""
        hook = getattr(self.target, name, None)
        if hook is not None:
            hook(self, op)

    def _lower_for(self, op):
        text = self.text
        lb, ub, step = op.operands
        t = lb.type
        ty = self.type(t)
        self._target_hook("before_loop", op)    # (what a target computes over the lanes that enter the loop)
        pre = text.block
        head, body, latch, done = (text.new_label(p) for p in ("for", "body", "next", "done"))
        text.start_block(head)
        induction = text.fresh("i")
        phi_at = len(text.lines)
        compare = self._loop_condition(induction, ub, step, t)
        text.terminate(f"br i1 {compare}, label %{body}, label %{done}")
        self.values[id(op.regions[0].args[0])] = induction
        self.jumps[op.attrs["label"]] = (done, latch)
        text.start_block(body)
        self.region(op.regions[0])
        text.start_block(latch)
        following = text.value(f"add {ty} {induction}, {self.get(step)}")
        text.terminate(f"br label %{head}")
        head_lines = next(lines for label, lines in text.blocks if label == head)
        head_lines.insert(phi_at, f"  {induction} = phi {ty} [ {self.get(lb)}, %{pre} ], [ {following}, %{latch} ]")
        text.start_block(done)

    def _loop_condition(self, induction, ub, step, t) -> str:
        ty = self.type(t)
        signed = t.is_signed
        less = f"icmp {'slt' if signed else 'ult'} {ty} {induction}, {self.get(ub)}"
        step_op = step.owner if isinstance(step.owner, ir.Op) else None
        if step_op is not None and step_op.name == "arith.constant":
            if step_op.attrs["value"] > 0 or not signed:
                return self.text.value(less)
            return self.text.value(f"icmp sgt {ty} {induction}, {self.get(ub)}")
        up = self.text.value(less)
        down = self.text.value(f"icmp sgt {ty} {induction}, {self.get(ub)}")
        positive = self.text.value(f"icmp sgt {ty} {self.get(step)}, 0")
        return self.text.value(f"select i1 {positive}, i1 {up}, i1 {down}")

    def _lower_loop(self, op):
        text = self.text
        self._target_hook("before_loop", op)
        head, done = text.new_label("loop"), text.new_label("done")
        self.jumps[op.attrs["label"]] = (done, head)
        text.start_block(head)
        self.region(op.regions[0])
        text.terminate(f"br label %{head}")
        text.start_block(done)

    def _lower_block(self, op):
        done = self.text.new_label("end")
        self.jumps[op.attrs["label"]] = (done, done)
        self.region(op.regions[0])
        self.text.start_block(done)

    def _lower_break(self, op):
        self.text.terminate(f"br label %{self.jumps[op.attrs['label']][0]}")

    def _lower_continue(self, op):
        self.text.terminate(f"br label %{self.jumps[op.attrs['label']][1]}")

    def _lower_return(self, op):
        self.text.terminate("ret void")

    TABLE = {
        "arith.constant": _lower_constant,
        **dict.fromkeys(ir.ops_arith.BINARY, _lower_binary),
        **dict.fromkeys(ir.ops_arith.UNARY, _lower_unary),
        "math.fma": _lower_fma,
        "arith.cmp": _lower_cmp,
        "arith.select": _lower_select,
        "arith.cast": _lower_cast,
        "arith.bitcast": _lower_bitcast,
        "ptr.offset": _lower_ptr_offset,
        "ptr.to_int": _lower_ptr_to_int,
        "ptr.from_int": _lower_ptr_from_int,
        "ptr.cast": _lower_ptr_cast,
        "mem.load": _lower_load,
        "mem.store": _lower_store,
        "mem.atomic": _lower_atomic,
        "mem.atomic_cas": _lower_atomic_cas,
        "mem.shared": _lower_shared,
        "var.alloc": _lower_var_alloc,
        "var.load": _lower_var_load,
        "var.store": _lower_var_store,
        "gpu.asm": _lower_asm,
        "vec.splat": _lower_vec_splat,
        "vec.from": _lower_vec_from,
        "vec.extract": _lower_vec_extract,
        "vec.insert": _lower_vec_insert,
        "scf.if": _lower_if,
        "scf.for": _lower_for,
        "scf.loop": _lower_loop,
        "scf.block": _lower_block,
        "scf.break": _lower_break,
        "scf.continue": _lower_continue,
        "func.return": _lower_return,
    }


def lower_module(module: ir.Module, target) -> str:
    """The LLVM IR text of a tile IR module for a target lowering (nvptx.NVPTX(...), ...)."""
    text = ModuleText(target.triple, target.datalayout)
    target.module_prelude(text, module)
    for fn in module.functions:
        text.functions.append(FunctionLowering(fn, text, target).lower())
    return text.render()


def _split_lanes(target, src: ir.Type, dst: ir.Type) -> bool:
    """Whether a conversion of vector type src to dst goes lane by lane: on a target whose backend fails on whole
    conversions of 16-bit floats in vectors of 5 to 7 lanes (LLVM 22's AMDGPU: fpext and fptrunc of <5 x half> merged
    with the loads and stores beside them into an extending load or truncating store it cannot select, an assertion
    that killed the process)."""
    if not (isinstance(src, ir.VectorType) and getattr(target, "splits_odd_half_vectors", False)):
        return False
    halves = any(t.is_float and t.bits == 16 for t in (src.elem, ir.element_type(dst)))
    return halves and src.count > 4 and src.count & (src.count - 1) != 0
