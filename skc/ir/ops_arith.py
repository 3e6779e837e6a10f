"""Arithmetic and math ops: constants, elementwise binary/unary ops, comparisons, select, casts.

Integer ops wrap (two's complement); signedness comes from the type (iN signed, uN unsigned).
Float ops follow IEEE 754 with round-to-nearest-even unless the op says otherwise.
All elementwise ops accept scalars or vectors of them.
"""
from __future__ import annotations

from .core import Op, PURE
from .types import ScalarType, VectorType, element_type, with_element, i1

PURE_TRAITS = frozenset({PURE})


def _is_value_type(t) -> bool:
    return isinstance(t, (ScalarType, VectorType))


class ConstantOp(Op):
    """`arith.constant {value}`: a compile-time number (a vector type splats it)."""

    name = "arith.constant"
    num_results = 1
    traits = PURE_TRAITS
    required_attrs = ("value",)

    def verify(self):
        value, t = self.attrs["value"], self.result.type
        if not _is_value_type(t):
            self.fail(f"result must be a scalar or vector, found {t}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"value must be an int or a float, found {value!r}")
        elem = element_type(t)
        if elem.is_int and not isinstance(value, int):
            self.fail(f"value of an integer constant must be an int, found {value!r}")
        if elem.is_int:
            lo, hi = (0, 1) if elem.is_bool else (0, 2 ** elem.bits - 1) if not elem.is_signed else \
                (-(2 ** (elem.bits - 1)), 2 ** (elem.bits - 1) - 1)
            if not lo <= value <= hi:
                self.fail(f"value {value} is out of range for {elem} ({lo}..{hi})")


class _Elementwise(Op):
    """Operands and result share one scalar or vector type."""

    traits = PURE_TRAITS
    num_results = 1
    allowed = ("int", "float")  # element kinds accepted

    def verify(self):
        t = self.result.type
        if not _is_value_type(t):
            self.fail(f"result must be a scalar or vector, found {t}")
        for i, operand in enumerate(self.operands):
            if operand.type is not t:
                self.fail(f"operand {i} is {operand.type}, expected {t} like the result")
        elem = element_type(t)
        kind = "float" if elem.is_float else "int"
        if kind not in self.allowed:
            self.fail(f"not defined on {t} (takes {' or '.join(self.allowed)} types)")
        if self.name in APPROXIMATE_MATH and elem.bits > 32:
            self.fail(f"not defined on {t} (an approximation of f32's: compute in f32)")


def _define(base, name: str, doc: str, **fields):
    cls = type(name.replace(".", "_").title().replace("_", "") + "Op", (base,),
               {"name": name, "__doc__": f"`{name}`: {doc}", **fields})
    return cls


# name -> (one-line meaning, element kinds accepted)
BINARY_OPS = {
    "arith.add": ("a + b", ("int", "float")),
    "arith.sub": ("a - b", ("int", "float")),
    "arith.mul": ("a * b", ("int", "float")),
    "arith.div": ("a / b; integers truncate toward zero (by zero, or INT_MIN / -1: divided by 1)",
                  ("int", "float")),
    "arith.rem": ("remainder of a / b with the sign of a (C's % and fmod; integers by zero, or INT_MIN by -1: 0)",
                  ("int", "float")),
    "arith.min": ("minimum; floats return the non-NaN operand (IEEE minNum), -0.0 of -0.0 and +0.0 (in the interpreter: "
                  "the GPU's zero is not checked)", ("int", "float")),
    "arith.max": ("maximum; floats return the non-NaN operand (IEEE maxNum), +0.0 of -0.0 and +0.0 (in the interpreter: "
                  "the GPU's zero is not checked)", ("int", "float")),
    "arith.and": ("bitwise and", ("int",)),
    "arith.or": ("bitwise or", ("int",)),
    "arith.xor": ("bitwise xor", ("int",)),
    "arith.shl": ("a << b; a shift of the bit width or more gives 0", ("int",)),
    "arith.shr": ("a >> b, arithmetic for signed, logical for unsigned; wide shifts saturate", ("int",)),
    "math.pow": ("a raised to b, approximate; special cases as C's pow (a negative a to a whole b, 0 ** 0 and "
                 "1 ** nan are 1)", ("float",)),
}

UNARY_OPS = {
    "arith.neg": ("-a", ("int", "float")),
    "arith.not": ("bitwise not (logical not on i1)", ("int",)),
    "math.abs": ("|a|", ("int", "float")),
    "math.exp": ("e ** a, approximate on NVIDIA GPUs (ex2.approx of a · log2 e)", ("float",)),
    "math.exp2": ("2 ** a, approximate on NVIDIA GPUs (ex2.approx)", ("float",)),
    "math.exp2_ftz": ("2 ** a, with a result under the smallest normal f32 (2 ** -126) flushed to 0", ("float",)),
    "math.log": ("natural logarithm, approximate on NVIDIA GPUs (lg2.approx times ln 2)", ("float",)),
    "math.log2": ("base-2 logarithm, approximate on NVIDIA GPUs (lg2.approx)", ("float",)),
    "math.sqrt": ("square root, correctly rounded", ("float",)),
    "math.rsqrt": ("1 / sqrt(a), approximate", ("float",)),
    "math.floor": ("round toward -inf", ("float",)),
    "math.ceil": ("round toward +inf", ("float",)),
    "math.trunc": ("round toward zero", ("float",)),
    "math.round": ("round to nearest, ties to even", ("float",)),
    "math.sin": ("sine, approximate (on GPUs, of the argument reduced modulo 2 pi exactly)", ("float",)),
    "math.cos": ("cosine, approximate (on GPUs, of the argument reduced modulo 2 pi exactly)", ("float",)),
    "math.tanh": ("hyperbolic tangent, approximate", ("float",)),
}

# the transcendental ops: every backend computes them by f32's approximations (f16 and bf16 widened to f32), and
# has none for f64, so they are defined on floats of at most 32 bits (the interpreter refuses f64 as the GPUs do)
APPROXIMATE_MATH = frozenset({"math.exp", "math.exp2", "math.exp2_ftz", "math.log", "math.log2", "math.rsqrt",
                              "math.sin", "math.cos", "math.tanh", "math.pow"})

BINARY = {name: _define(_Elementwise, name, doc, num_operands=2, allowed=kinds)
          for name, (doc, kinds) in BINARY_OPS.items()}
UNARY = {name: _define(_Elementwise, name, doc, num_operands=1, allowed=kinds)
         for name, (doc, kinds) in UNARY_OPS.items()}


class FmaOp(_Elementwise):
    """`math.fma`: a * b + c with a single rounding."""

    name = "math.fma"
    num_operands = 3
    allowed = ("float",)


COMPARE_PREDICATES = ("eq", "ne", "lt", "le", "gt", "ge")


class CmpOp(Op):
    """`arith.cmp {pred}`: compare (eq ne lt le gt ge) to i1; floats ordered except ne, which is true for NaN."""

    name = "arith.cmp"
    num_operands = 2
    num_results = 1
    traits = PURE_TRAITS
    required_attrs = ("pred",)

    def verify(self):
        a, b = self.operands
        if a.type is not b.type:
            self.fail(f"operands are {a.type} and {b.type}, expected one type")
        if self.attrs["pred"] not in COMPARE_PREDICATES:
            self.fail(f"predicate must be one of {', '.join(COMPARE_PREDICATES)}, found {self.attrs['pred']!r}")
        if not (_is_value_type(a.type) or a.type.is_pointer):
            self.fail(f"cannot compare {a.type}")
        expected = with_element(a.type, i1) if _is_value_type(a.type) else i1
        if self.result.type is not expected:
            self.fail(f"result is {self.result.type}, expected {expected}")


class SelectOp(Op):
    """`arith.select %cond, %a, %b`: a where cond is true, else b (lane by lane for vectors)."""

    name = "arith.select"
    num_operands = 3
    num_results = 1
    traits = PURE_TRAITS

    def verify(self):
        cond, a, b = self.operands
        if a.type is not b.type or self.result.type is not a.type:
            self.fail(f"choices are {a.type} and {b.type} giving {self.result.type}, expected one type")
        if element_type(cond.type) is not i1:
            self.fail(f"condition is {cond.type}, expected i1")
        if cond.type.is_vector and (not a.type.is_vector or cond.type.count != a.type.count):
            self.fail(f"condition {cond.type} does not match the choices {a.type}")


class CastOp(Op):
    """`arith.cast`: convert a value to another number type (ints extend by source signedness; float to int truncates toward zero and saturates, NaN gives 0; to i1 is `!= 0`, true for NaN; to fp8 saturates to the largest finite value, NaN stays NaN)."""

    name = "arith.cast"
    num_operands = 1
    num_results = 1
    traits = PURE_TRAITS

    def verify(self):
        src, dst = self.operands[0].type, self.result.type
        if not (_is_value_type(src) and _is_value_type(dst)):
            self.fail(f"casts {src} to {dst}; both must be scalars or vectors")
        if src.is_vector != dst.is_vector or (src.is_vector and src.count != dst.count):
            self.fail(f"cannot cast {src} to {dst}: shapes differ")


class BitcastOp(Op):
    """`arith.bitcast`: reinterpret the bits of a value as another type of the same size."""

    name = "arith.bitcast"
    num_operands = 1
    num_results = 1
    traits = PURE_TRAITS

    def verify(self):
        src, dst = self.operands[0].type, self.result.type
        if not (_is_value_type(src) and _is_value_type(dst)):
            self.fail(f"bitcasts {src} to {dst}; both must be scalars or vectors")
        if _bits(src) != _bits(dst):
            self.fail(f"cannot bitcast {src} ({_bits(src)} bits) to {dst} ({_bits(dst)} bits)")


def _bits(t) -> int:
    return t.elem.bits * t.count if t.is_vector else t.bits
