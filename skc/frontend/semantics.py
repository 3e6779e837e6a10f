"""The DSL's typing rules and the IR they emit: promotions, arithmetic with Python's meaning
(floor division, modulo, true division), comparisons, casts, pointer arithmetic, loads, stores.

Promotion follows C with Python literals adapting to the other operand: `x + 1` keeps x's
type, `i + 0.5` with an int i gives f32, i32 with i64 gives i64, iN with uN of the same width
gives uN, f16 with bf16 gives f32.
"""
from __future__ import annotations

import math
import numbers
import struct
import types
from typing import Optional

from .. import ir
from ..ir.passes.folding import cast_to_int
from . import context
from .dtypes import PtrType
from .values import Dyn, RValue

_INT_RANGES = {}


def _int_range(t: ir.ScalarType):
    if t not in _INT_RANGES:
        bits = t.bits
        _INT_RANGES[t] = (0, 2 ** bits - 1) if not t.is_signed else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return _INT_RANGES[t]


def _cg():
    return context.current()


def _b():
    return context.current().builder


def error(message: str, hint: str = ""):
    return _cg().error(message, hint)


def is_number(x) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, Dyn) and not isinstance(x, complex)


def literal_type(value) -> ir.ScalarType:
    """The type a Python literal takes on its own: bool -> i1, int -> i32 (or i64), float -> f32
    (a numpy scalar keeps its own type)."""
    numpy_type = getattr(value, "dtype", None)
    if numpy_type is not None and type(value).__module__ == "numpy" and str(numpy_type) in _NUMPY_SCALARS:
        return ir.ScalarType(_NUMPY_SCALARS[str(numpy_type)])
    found = ir.types.python_number_type(value) if is_number(value) else None
    if found is None:
        if isinstance(value, numbers.Integral):
            raise error(f"integer literal {value} does not fit in 64 bits")
        raise error(f"cannot use {value!r} ({type(value).__name__}) as a number in a kernel")
    return found


_NUMPY_SCALARS = {"float64": "f64", "float32": "f32", "float16": "f16", "int64": "i64", "int32": "i32",
                  "int16": "i16", "int8": "i8", "uint64": "u64", "uint32": "u32", "uint16": "u16", "uint8": "u8",
                  "bool": "i1"}


def constant(value, t: ir.Type) -> RValue:
    """A constant of type t (scalar or vector splat); ints wrap into t's range, like C; whole floats saturate, as
    converting them at run time does."""
    elem = ir.element_type(t)
    if type(value) not in (int, float, bool) and not (  # (the common constants first: the ABC test costs more)
            is_number(value) or hasattr(value, "__index__")
            or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"))):
        # (float('2.5') would parse a string into a number; int() of a tuple raised TypeError from here)
        raise error(f"cannot use {value!r} as a {elem}: it is no number", hint="write the number itself")
    if elem.is_bool:
        value = int(bool(value))
    elif elem.is_int:
        floating = not isinstance(value, numbers.Integral)
        if floating and not float(value).is_integer():
            raise error(f"cannot use {value!r} as a {elem}")
        lo, hi = _int_range(elem)
        value = int(value)
        if floating:   # a float saturates, as the run-time conversion (cvt.rzi.sat) does; an int wraps, like C
            value = min(max(value, lo), hi)
        elif not lo <= value <= hi:
            value = (value - lo) % (hi - lo + 1) + lo
    else:
        value = _float_attribute(value, elem)
    return RValue(_b().constant(value, t), t)


def _float_attribute(value, elem: ir.ScalarType) -> float:
    """A number as the float attribute of a constant of float type elem. An int past 2**53 that f64 cannot hold is
    rounded to odd in f64 for a narrower elem, so that rounding the attribute to elem (the interpreter, the folder,
    the backends) rounds the int once, as a run-time conversion does: float(2**60 + 2**36 + 1) is 2**60 + 2**36,
    a midpoint of f32, which then rounded to 2**60 instead of 2**60 + 2**37."""
    if not isinstance(value, numbers.Integral) or elem.bits == 64 or abs(int(value)) <= 2 ** 53:
        return float(value)
    exact = int(value)
    nearest = float(exact)
    if int(nearest) != exact and struct.unpack("<Q", struct.pack("<d", nearest))[0] & 1 == 0:
        nearest = math.nextafter(nearest, math.inf if exact > nearest else -math.inf)
    return nearest


def to_rvalue(x, like: Optional[ir.Type] = None) -> RValue:
    """A run-time value for x: loads a Slot, materializes a Python number (as `like` if given)."""
    if isinstance(x, Dyn):
        return x.rvalue()
    if is_number(x):
        return constant(x, like if like is not None else literal_type(x))
    raise error(f"expected a number or a run-time value, found {_describe(x)}")


def type_of(value):
    """The DSL type of a value: a run-time value's own, a Python number's literal type."""
    if isinstance(value, Dyn):
        return value.type
    return literal_type(value)


def _describe(x) -> str:
    if isinstance(x, (str, tuple, list, dict)):
        return f"{type(x).__name__} {x!r}"[:80]
    if isinstance(x, (types.FunctionType, types.BuiltinFunctionType)):
        return f"the function {x.__name__} (not called)"
    return f"a {type(x).__name__}"


# -- values that are no numbers ----------------------------------------------------------------
def is_opaque(t) -> bool:
    """Whether run-time values of type t are neither numbers nor pointers: a tensor map, which only TMA copies read
    (they reached the typing rules below, which ask a type for its bits and sign, and failed inside them:
    "'TensorMapType' object has no attribute 'is_signed'")."""
    return not isinstance(t, (ir.ScalarType, ir.VectorType, PtrType))


def describe_opaque(t) -> str:
    if isinstance(t, ir.Im2colTensorMapType):
        return f"an im2col tensor map ({t})"
    if isinstance(t, ir.TensorMapType):
        return f"a tensor map ({t})"
    return f"a run-time {t}"


def _opaque_hint(t) -> str:
    if isinstance(t, ir.TensorMapType):
        return ("a tensor map (skc.TensorMap) is a TMA descriptor: only TMA copies take it (skc.hopper.tma_load, "
                "tma_store, tma_prefetch, or a block made for one, such as TmaLoader or TmaStoreEpilogue); where "
                "an address is wanted, pass the tensor itself to a pointer parameter (skc.Ptr[...])")
    return ""


def refuse_opaque(what: str, expected: str, *values):
    """An error at the user's line where one of values is a run-time value that is no number nor pointer: `what` (an
    operator, a builtin) takes `expected`."""
    for value in values:
        if isinstance(value, Dyn) and is_opaque(value.type):
            raise error(f"{what} takes {expected}, found {describe_opaque(value.type)}", hint=_opaque_hint(value.type))


# -- promotion ---------------------------------------------------------------------------
def promote_scalars(a: ir.ScalarType, b: ir.ScalarType) -> ir.ScalarType:
    if a is b:
        return a
    if a.is_float or b.is_float:
        if not (a.is_float and b.is_float):
            return a if a.is_float else b
        if a.bits == b.bits or a.bits == 8 or b.bits == 8:
            return ir.f32 if max(a.bits, b.bits) <= 32 else ir.f64
        return a if a.bits > b.bits else b
    if a.is_bool:
        return b
    if b.is_bool:
        return a
    if a.is_signed != b.is_signed and max(a.bits, b.bits) < 32:
        # C promotes both to int first, and i32 holds both values (in the unsigned type, i8(-1) * u8(2) read 254)
        return ir.i32
    if a.bits != b.bits:
        return a if a.bits > b.bits else b
    return a if not a.is_signed else b  # same width: unsigned wins, as in C


def _literal_fits(value, t: ir.ScalarType) -> bool:
    if t.is_float:
        return True
    if not isinstance(value, numbers.Integral):
        return False  # a float literal turns an integer operation into a float one
    lo, hi = _int_range(t)
    # negative literals wrap into unsigned types (x - 1 on a u32)
    return lo <= value <= hi or (not t.is_signed and -hi - 1 <= value < 0)


def holding_type(values, t):
    """t, the common type of values (run-time ones and Python numbers), or, where a negative Python int meets an
    unsigned type (which would wrap it: right for `x - 1`, not for a value that is kept, compared or chosen), the
    signed type that holds both: i32 beside u8 and u16, i64 beside u32; where a float t cannot hold an integer as it
    is, the float type that does (chosen_float)."""
    if isinstance(t, (ir.ScalarType, ir.VectorType)) and ir.element_type(t).is_float:
        elem = chosen_float(values, ir.element_type(t))
        return elem if t.is_scalar else ir.VectorType(elem, t.count)
    if not (isinstance(t, ir.ScalarType) and t.is_int and not t.is_signed and not t.is_bool):
        return t
    negative = [v for v in values if _negative_int(v)]
    if not negative:
        return t
    least = min(negative)
    for signed in (ir.i32, ir.i64):
        if signed.bits > t.bits and _int_range(signed)[0] <= least:
            return signed
    raise error(f"no integer type holds both {t} values and {least}",
                hint=f"convert one of them: skc.i64(x) for the {t} value, or a number {t} holds")


def _negative_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, Dyn)) and v < 0


def _negative_beside_unsigned(a, b):
    """For an unsigned run-time integer beside a negative Python int, in an operation whose result is a float (`/`,
    `**` to a negative power): both as floats (f64 beside a u64, else f32), the number as itself; else None."""
    dyn, number = (a, b) if isinstance(a, Dyn) else (b, a)
    if not (isinstance(dyn, Dyn) and _negative_int(number)):
        return None
    elem = ir.element_type(dyn.type)
    if isinstance(dyn.type, PtrType) or not elem.is_int or elem.is_signed or elem.is_bool:
        return None
    ft = ir.f64 if elem.bits == 64 else ir.f32
    count = _count(dyn.type)
    x, y = _coerce(dyn, ft, count), _coerce(float(number), ft, count)
    return (x, y) if dyn is a else (y, x)


def _operand_types(a, b, keep_values: bool = False):
    """The common element type of two operands (at least one run-time) and whether either is a vector; with
    keep_values, a negative Python int beside an unsigned type takes a signed one that holds both (holding_type)."""
    ta = a.type if isinstance(a, Dyn) else None
    tb = b.type if isinstance(b, Dyn) else None
    refuse_opaque("this operation", "numbers", a, b)
    for t in (ta, tb):
        if isinstance(t, PtrType):
            raise error("pointer arithmetic supports ptr + int, ptr - int and ptr - ptr only")
    ea = ir.element_type(ta) if ta is not None else None
    eb = ir.element_type(tb) if tb is not None else None
    count = next((t.count for t in (ta, tb) if t is not None and t.is_vector), None)
    if ta is not None and tb is not None and ta.is_vector and tb.is_vector and ta.count != tb.count:
        raise error(f"vector lengths differ: {ta} and {tb}")
    if ea is None or eb is None:
        known, literal = (ea, b) if ea is not None else (eb, a)
        if not is_number(literal):
            uncalled = isinstance(literal, (types.FunctionType, types.BuiltinFunctionType))
            raise error(f"cannot combine a run-time {known} with {_describe(literal)}",
                        hint=f"call it: {literal.__name__}()" if uncalled else "")
        if isinstance(literal, bool) and known.is_bool:
            elem = known
        elif known.is_bool:
            elem = promote_scalars(ir.i32, literal_type(literal))
        elif keep_values and _negative_int(literal) and known.is_int and not known.is_signed:
            elem = holding_type([literal], known)
        elif _literal_fits(literal, known):
            elem = known
        else:
            elem = promote_scalars(known, literal_type(literal))
    else:
        elem = promote_scalars(ea, eb)
    return elem, count


def _coerce(x, elem: ir.ScalarType, count: Optional[int]) -> RValue:
    t = ir.VectorType(elem, count) if count else elem
    if not isinstance(x, Dyn):
        return constant(x, t)
    x = x.rvalue()
    if x.type is t:
        return x
    if count and not x.type.is_vector:
        scalar = cast(x, elem)
        return RValue(_b().value("vec.splat", (scalar.value,), t), t)
    return cast(x, t)


def unify(a, b, keep_values: bool = False):
    """Both operands as run-time values of their common type (keep_values: see _operand_types)."""
    elem, count = _operand_types(a, b, keep_values)
    return _coerce(a, elem, count), _coerce(b, elem, count)


# -- arithmetic --------------------------------------------------------------------------
_DIRECT = {"add": "arith.add", "sub": "arith.sub", "mul": "arith.mul",
           "and": "arith.and", "or": "arith.or", "xor": "arith.xor"}


def binary(op: str, a, b):
    """a <op> b for op in add sub mul truediv floordiv mod pow lshift rshift and or xor."""
    refuse_opaque(f"'{_SYMBOL.get(op, op)}'", "numbers, or a pointer and an integer" if op in ("add", "sub")
                  else "numbers", a, b)
    ta = a.type if isinstance(a, Dyn) else None
    tb = b.type if isinstance(b, Dyn) else None
    if isinstance(ta, PtrType) or isinstance(tb, PtrType):
        return pointer_arith(op, a, b)
    if op == "pow":
        return power(a, b)
    if op in ("floordiv", "mod") and isinstance(b, int) and b == 0 and isinstance(a, Dyn) \
            and not ir.element_type(a.type).is_float:
        # (an integer division by a run-time 0 gives an unspecified value (docs/tutorial.md); by a constant 0 it
        # is certain, and Python raises for it whatever the dividend. A float's gives x / 0, as numpy's does.)
        raise error(f"integer '{_SYMBOL[op]}' by the constant 0 divides by zero",
                    hint="as in Python, an integer divisor must not be 0: check the divisor (a constexpr that became "
                         "0?)")
    if op in ("lshift", "rshift") and is_number(b):
        return _shift_by_constant(op, a, b)
    if op in ("lshift", "rshift") and isinstance(a, Dyn):
        return _shift_by_value(op, a, b)
    if op in ("lshift", "rshift") and is_number(a) and isinstance(b, Dyn):
        return _shift_by_value(op, _shifted_number(a, b), b)
    floats = _negative_beside_unsigned(a, b) if op == "truediv" else None
    # (u32 / -2 is a float division: the -2 must not wrap into the u32; nor into a u8 in u8 // -2, which read 0:
    # // and % of a wrapped number are not the wrapped results of the number's, as + - * & | ^ are)
    x, y = floats if floats else unify(a, b, keep_values=op in ("floordiv", "mod"))
    t = x.type
    elem = ir.element_type(t)
    if op in ("add", "sub", "mul") and elem.is_bool:
        x, y = _coerce(x, ir.i32, _count(t)), _coerce(y, ir.i32, _count(t))
        t, elem = x.type, ir.i32
    if op in ("and", "or", "xor", "lshift", "rshift") and elem.is_float:
        raise error(f"operator '{_SYMBOL[op]}' needs integers, found {t}")
    builder = _b()
    if op in _DIRECT:
        return RValue(builder.binary(_DIRECT[op], x.value, y.value), t)
    if op == "truediv":
        x, y = _as_floats(x, y)
        return RValue(builder.binary("arith.div", x.value, y.value), x.type)
    if op == "floordiv":
        return _floordiv(x, y)
    if op == "mod":
        return _mod(x, y)
    if op == "lshift":
        return RValue(builder.binary("arith.shl", x.value, y.value), t)
    if op == "rshift":
        return RValue(builder.binary("arith.shr", x.value, y.value), t)
    raise error(f"operator '{op}' is not supported on run-time values")


_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%", "pow": "**",
           "lshift": "<<", "rshift": ">>", "and": "&", "or": "|", "xor": "^"}


def _shift_by_constant(op: str, a, count):
    """a << count or a >> count for a compile-time count, with Python's meaning: a negative count is an error,
    and a count past the width gives what the infinitely wide shift gives after wrapping (0, or -1 for >>
    of a negative signed value) where the machine shift would be undefined."""
    if isinstance(count, float):
        raise error(f"a shift count must be an integer, found {count!r}")
    if count < 0:
        raise error(f"negative shift count {count}", hint="as in Python, a shift count must not be negative; shift the other way")
    x = _shifted(op, a)
    elem = ir.element_type(x.type)
    if count < elem.bits:
        y = constant(count, x.type)
        return RValue(_b().binary("arith.shl" if op == "lshift" else "arith.shr", x.value, y.value), x.type)
    if op == "lshift" or not elem.is_signed:
        return constant(0, x.type)
    return RValue(_b().binary("arith.shr", x.value, constant(elem.bits - 1, x.type).value), x.type)


def _shifted(op: str, a) -> RValue:
    """The left operand of a shift as the shift's result type: its own (an i1 as i32, as True << 1 == 2)."""
    x = to_rvalue(a)
    elem = ir.element_type(x.type)
    if elem.is_float:
        raise error(f"operator '{_SYMBOL[op]}' needs integers, found {x.type}")
    return cast(x, ir.with_element(x.type, ir.i32)) if elem.is_bool else x


def _shifted_number(a, b) -> RValue:
    """A Python number shifted by a run-time count b, as a value of its own type (an int's i32, or i64 where it does
    not fit), as in C and as Python gives it where that type holds the result: the count's type is not the result's
    (-8 >> u32(1) was 2147483644 and 1 << u8(8) was 0, the literal taken into the count's unsigned type). A 64-bit
    count widens it to 64 bits (1 << n of an i64 n is 2**n), signed unless the count is a u64 and the number not
    negative."""
    t = literal_type(a)
    t = ir.i32 if t.is_bool else t   # (True << n is 2 << (n - 1), as for a run-time i1)
    count = ir.element_type(b.type) if not isinstance(b.type, PtrType) else None
    if t.is_int and count is not None and count.is_int and count.bits > t.bits:
        t = ir.ScalarType("u64" if not count.is_signed and not _negative_int(a) else "i64")
    return constant(a, t)


def _shift_by_value(op: str, a, b) -> RValue:
    """a << b or a >> b for a run-time a and count b: the result has a's type whatever b's type, as in C and as for a
    compile-time count (an unsigned count must not make a signed >> logical, nor a wide one widen the result).
    A count that a's type cannot hold is past a's width, and shifts as such."""
    x = _shifted(op, a)
    n = to_rvalue(b)
    nelem = ir.element_type(n.type)
    if not nelem.is_int:
        raise error(f"operator '{_SYMBOL[op]}' needs integers, found {n.type}")
    elem = ir.element_type(x.type)
    if n.type.is_vector and x.type.is_vector and n.type.count != x.type.count:
        raise error(f"vector lengths differ: {x.type} and {n.type}")
    count = _count(x.type) or _count(n.type)
    if nelem.bits > elem.bits:
        unsigned = cast(n, ir.with_element(n.type, ir.ScalarType(f"u{nelem.bits}")))
        n = select(compare("ge", unsigned, elem.bits), elem.bits, unsigned)
    x, n = _coerce(x, elem, count), _coerce(n, elem, count)
    name = "arith.shl" if op == "lshift" else "arith.shr"
    return RValue(_b().binary(name, x.value, n.value), x.type)


def _count(t):
    return t.count if t.is_vector else None


def _zero_like(x: RValue) -> RValue:
    return constant(0, x.type)


def _floordiv(x: RValue, y: RValue) -> RValue:
    """Python's //: rounds toward -inf (C's / truncates toward zero)."""
    builder, t = _b(), x.type
    elem = ir.element_type(t)
    if elem.is_float:
        return float_divmod(x, y)[0]
    q = builder.binary("arith.div", x.value, y.value)
    if not elem.is_signed:
        return RValue(q, t)
    # q - 1 where the remainder is non-zero and the operands' signs differ
    r = builder.binary("arith.rem", x.value, y.value)
    zero = _zero_like(x).value
    cmp_t = ir.with_element(t, ir.i1)
    nonzero = builder.cmp("ne", r, zero, cmp_t)
    signs_differ = builder.cmp("lt", builder.binary("arith.xor", r, y.value), zero, cmp_t)
    fix = builder.binary("arith.and", nonzero, signs_differ)
    one = constant(1, t).value
    return RValue(builder.select(fix, builder.binary("arith.sub", q, one), q), t)


def float_divmod(x: RValue, y: RValue):
    """Python's float divmod (CPython's float_divmod, numpy's npy_divmod), step by step in x's type so that
    the interpreter and the LLVM lowering compute the same thing: the remainder is exact (fmod) and the
    quotient is (x - mod) / y, corrected so that x == (x // y) * y + x % y as nearly as rounding allows. Floats
    narrower than f32 are computed in f32 and rounded once (in their own type the steps rounded to 8 or 11 bits and
    the floor's correction went wrong)."""
    if ir.element_type(x.type).bits < 32:
        wide = ir.with_element(x.type, ir.f32)
        quotient, remainder = float_divmod(cast(x, wide), cast(y, wide))
        return cast(quotient, x.type), cast(remainder, x.type)
    builder, t = _b(), x.type
    cmp_t = ir.with_element(t, ir.i1)

    def c(value):
        return constant(value, t).value

    def less(a, b):
        return builder.cmp("lt", a, b, cmp_t)

    zero = c(0.0)
    mod = builder.binary("arith.rem", x.value, y.value)
    div = builder.binary("arith.div", builder.binary("arith.sub", x.value, mod), y.value)
    # a non-zero remainder of the wrong sign moves one divisor over
    mod_nonzero = builder.cmp("ne", mod, zero, cmp_t)
    wrong_sign = builder.cmp("ne", less(y.value, zero), less(mod, zero), cmp_t)
    fix = builder.binary("arith.and", mod_nonzero, wrong_sign)
    mod_fixed = builder.select(fix, builder.binary("arith.add", mod, y.value), mod)
    div = builder.select(fix, builder.binary("arith.sub", div, c(1.0)), div)
    # a zero remainder takes the divisor's sign
    signed_zero = builder.select(less(y.value, zero), c(-0.0), zero)
    mod = builder.select(mod_nonzero, mod_fixed, signed_zero)
    # div is an integer up to rounding: floor it, rounding up when it was just below the next integer
    floor = builder.unary("math.floor", div)
    up = builder.cmp("gt", builder.binary("arith.sub", div, floor), c(0.5), cmp_t)
    floor = builder.select(up, builder.binary("arith.add", floor, c(1.0)), floor)
    # a zero quotient takes the sign of x / y
    quotient = builder.binary("arith.div", x.value, y.value)
    zero_quotient = builder.binary("arith.mul", quotient, zero)
    div_nonzero = builder.cmp("ne", div, zero, cmp_t)
    div = builder.select(div_nonzero, floor, zero_quotient)
    # by a zero divisor the quotient is x / y (±inf, or NaN for 0 / 0 and NaN), as numpy's and torch's
    # floor_divide give (the remainder is fmod's NaN); CPython raises ZeroDivisionError
    by_zero = builder.cmp("eq", y.value, zero, cmp_t)
    return RValue(builder.select(by_zero, quotient, div), t), RValue(mod, t)


def _mod(x: RValue, y: RValue) -> RValue:
    """Python's %: the result takes the divisor's sign."""
    builder, t = _b(), x.type
    elem = ir.element_type(t)
    if elem.is_float:
        return float_divmod(x, y)[1]
    r = builder.binary("arith.rem", x.value, y.value)
    if elem.is_int and not elem.is_signed:
        return RValue(r, t)
    zero = _zero_like(x).value
    cmp_t = ir.with_element(t, ir.i1)
    nonzero = builder.cmp("ne", r, zero, cmp_t)
    if elem.is_float:
        r_neg = builder.cmp("lt", r, zero, cmp_t)
        y_neg = builder.cmp("lt", y.value, zero, cmp_t)
        signs_differ = builder.cmp("ne", r_neg, y_neg, cmp_t)
    else:
        signs_differ = builder.cmp("lt", builder.binary("arith.xor", r, y.value), zero, cmp_t)
    fix = builder.binary("arith.and", nonzero, signs_differ)
    return RValue(builder.select(fix, builder.binary("arith.add", r, y.value), r), t)


def fmod(a, b) -> RValue:
    """C's fmod (Python's math.fmod): the remainder of a / b with a's sign, exact (arith.rem); integers as floats
    (f64 for 64-bit ones, else f32). By 0, and of an infinite a, it is NaN, where Python raises ValueError."""
    x, y = _as_floats(*unify(a, b))
    return RValue(_b().binary("arith.rem", x.value, y.value), x.type)


def copysign(a, b) -> RValue:
    """Python's math.copysign: |a| with the sign bit of b (of -0.0 and of a NaN's too), in their common float type.
    Bit operations, exact everywhere: -x and abs(x) of a NaN are NVIDIA's canonical NaN on its GPUs, and a's NaN
    keeps its payload here."""
    x, y = _as_floats(*unify(a, b))
    width = ir.element_type(x.type).bits
    ints = ir.with_element(x.type, ir.ScalarType(f"i{width}"))
    sign = 1 << (width - 1)
    magnitude = _b().binary("arith.and", bitcast(x, ints).value, constant(sign - 1, ints).value)
    signed = _b().binary("arith.and", bitcast(y, ints).value, constant(sign, ints).value)
    return bitcast(RValue(_b().binary("arith.or", magnitude, signed), ints), x.type)


def _as_floats(x: RValue, y: RValue):
    """Two operands of one type in a float type: integers as `/` divides them, in f64 for 64 bits, else f32."""
    elem = ir.element_type(x.type)
    if not elem.is_float:
        ft = ir.f64 if elem.bits == 64 else ir.f32
        x, y = _coerce(x, ft, _count(x.type)), _coerce(y, ft, _count(x.type))
    return x, y


def power(a, b):
    """a ** b. To an integer exponent (a Python int, or a run-time integer) the power is square and multiply over the
    exponent's bits, and 1 / that for a negative exponent: for integers exact and wrapping like `*`, for floats the
    same products whether the exponent is known at compile time or not (x ** 5 with a constant 5 was four
    multiplications, with a run-time 5 math.pow: 1 ulp apart in the interpreter, more on a GPU); f16 and bf16 in f32,
    rounded once. So is a compile-time float exponent that is a whole number (x ** 2.0 is x ** 2). Another float
    exponent is math.pow, approximate."""
    if _whole_number(b) and b >= 0:
        return _narrow_in_f32(to_rvalue(a), lambda x: _constant_power(x, b))
    floats = _negative_beside_unsigned(a, b)   # (u8 ** -1 is 0.5: the -1 must not wrap into the u8)
    x, y = floats if floats else unify(a, b)
    elem = ir.element_type(x.type)
    if elem.is_int and not elem.is_bool and isinstance(b, Dyn):
        exponent = ir.element_type(b.type)
        if not elem.is_signed and exponent.is_int and exponent.is_signed:
            # an unsigned base, a signed exponent: unified, a negative exponent would read as a huge one; it gives
            # the power truncated toward zero, as for signed bases (1 for x = 1, else 0)
            truncated = select(compare("eq", x, 1), constant(1, x.type), constant(0, x.type))
            return select(compare("lt", b, 0), truncated, _integer_power(x, y))
        return _integer_power(x, y)
    if not elem.is_float:
        x, y = _coerce(x, ir.f32, _count(x.type)), _coerce(y, ir.f32, _count(x.type))
    # a negative constant, or a whole float (x ** 2.0 as x ** 2): products, not exp2(2 · log2 x), which was 1e-6 off
    # on a GPU, whose ptxas then computed a constant x's exactly (a folded and a run-time x disagreed)
    if _whole_number(b) or _whole_float(b):
        return _narrow_in_f32(x, lambda x: _constant_power(x, int(b)))
    if isinstance(b, Dyn) and _is_integer_type(b.type):
        return _narrow_in_f32(x, lambda x: _float_to_integer_power(x, b))
    check_approximate_math("math.pow", x.type)
    return RValue(_b().binary("math.pow", x.value, y.value), x.type)


def _whole_number(b) -> bool:
    """Whether b is a Python int exponent (one a 64-bit integer holds: a larger one is refused as a literal)."""
    return (is_number(b) and isinstance(b, numbers.Integral) and not isinstance(b, bool)
            and -2 ** 63 <= b < 2 ** 64)


def _whole_float(b) -> bool:
    """Whether b is a compile-time float exponent that is a whole number a 64-bit integer holds (2.0, -1.0)."""
    return (is_number(b) and isinstance(b, numbers.Real) and not isinstance(b, numbers.Integral)
            and math.isfinite(b) and float(b).is_integer() and -2 ** 63 <= b < 2 ** 64)


def _is_integer_type(t) -> bool:
    elem = ir.element_type(t) if not isinstance(t, PtrType) else None
    return elem is not None and elem.is_int and not elem.is_bool


def _narrow_in_f32(x: RValue, power) -> RValue:
    """power(x), for a float narrower than f32 (f16, bf16) computed in f32 and rounded once to x's type, as numpy's
    and torch's powers of them are: rounded to bf16 at every product, a bf16 ** 100 was 23 ulps (17%) off."""
    elem = ir.element_type(x.type)
    if not elem.is_float or elem.bits >= 32:
        return power(x)
    return cast(power(_coerce(x, ir.f32, _count(x.type))), x.type)


def _constant_power(x: RValue, n: int) -> RValue:
    """x ** n for a Python int n: the products _float_to_integer_power makes for a run-time n of that value (the
    squares of x whose bits |n| has, lowest first; 1 / those for n < 0, x a float); x ** 0 is 1 (of a NaN too, as
    C's pow)."""
    if n < 0:
        return binary("truediv", constant(1, x.type), _constant_power(x, -n))
    result, square = None, x
    while n:
        if n & 1:
            result = square if result is None else binary("mul", result, square)
        n >>= 1
        if n:
            square = binary("mul", square, square)
    return constant(1, x.type) if result is None else result


def _float_to_integer_power(x: RValue, n: RValue) -> RValue:
    """x ** n for a float x and a run-time integer n: square and multiply over the bits of |n| (as _constant_power
    for a constant n), then 1 / that where n < 0."""
    exponent = ir.element_type(n.type)
    magnitude = n.rvalue() if isinstance(n, Dyn) else n
    if exponent.is_signed:   # |n| as unsigned, so that -INT_MIN (which wraps to itself) reads 2 ** (bits - 1)
        unsigned = ir.with_element(n.type, ir.ScalarType(f"u{exponent.bits}"))
        magnitude = cast(select(compare("lt", n, 0), unary("neg", n), n), unsigned)
    one = constant(1, x.type)
    result, square = one, x
    for bit in range(exponent.bits):
        taken = compare("ne", binary("and", binary("rshift", magnitude, bit), 1), 0)
        result = select(taken, binary("mul", result, square), result)
        if bit + 1 < exponent.bits:
            square = binary("mul", square, square)
    if not exponent.is_signed:
        return result
    return select(compare("lt", n, 0), binary("truediv", one, result), result)


def check_approximate_math(op: str, t):
    """A CompileError at the user's line for a transcendental op on f64: every GPU computes them by f32's
    approximations and has none for f64 (ir.APPROXIMATE_MATH), and the interpreter, which could, refuses it as
    they do, so that a kernel it runs is one a GPU compiles."""
    if op in ir.APPROXIMATE_MATH and ir.element_type(t).bits > 32:
        name = "x ** y" if op == "math.pow" else f"skc.{op.split('.')[1]}"
        hint = ("compute it in f32 (skc.f32(x)), or, for a whole power, give an integer exponent: x ** n with n "
                "an int or a run-time integer (multiplications)" if op == "math.pow" else "compute it in f32 (skc.f32(x))")
        note = widened_choice_note(t)
        raise error(f"{name} is not available on {t}: the GPUs compute it by f32's approximations only",
                    hint=f"{hint}; {note}" if note else hint)


def _integer_power(x: RValue, y: RValue) -> RValue:
    """x ** y for integers and a run-time exponent: an integer of their common type, exact and wrapping like `*`
    (square and multiply over the exponent's bits, no branches). A negative exponent (where Python gives a float)
    gives the power truncated toward zero as an integer: 1 for x = 1, ±1 for x = -1, else 0 (0 ** -n too, where
    Python raises). (Through f32's math.pow, 3 ** 19 read 1162261376 and the result was an f32.)"""
    elem = ir.element_type(x.type)
    one, zero = constant(1, x.type), _zero_like(x)
    result, square = one, x
    for bit in range(elem.bits - (1 if elem.is_signed else 0)):
        taken = compare("ne", binary("and", binary("rshift", y, bit), 1), 0)
        result = select(taken, binary("mul", result, square), result)
        square = binary("mul", square, square)
    if not elem.is_signed:
        return result
    odd = compare("ne", binary("and", y, 1), 0)
    negative_one = compare("eq", x, -1)
    truncated = select(compare("eq", x, 1), one, select(negative_one, select(odd, constant(-1, x.type), one), zero))
    return select(compare("lt", y, 0), truncated, result)


def pointer_arith(op: str, a, b) -> RValue:
    if isinstance(a, Dyn) and isinstance(a.type, PtrType):
        p = a.rvalue()
        if isinstance(b, Dyn) and isinstance(b.type, PtrType):
            if op != "sub":
                raise error(f"cannot apply '{_SYMBOL.get(op, op)}' to two pointers")
            return _pointer_difference(p, b.rvalue())
        if op not in ("add", "sub"):
            raise error(f"cannot apply '{_SYMBOL.get(op, op)}' to a pointer", hint="pointers take + and - of integers")
        index = index_value(b)
        if op == "sub":
            if not index.type.is_signed:   # (negated in its own unsigned type it would wrap to a huge offset;
                index = cast(index, ir.i64)   # a u64 past i64's range wraps as the address arithmetic does)
            index = unary("neg", index)
        return offset(p, index)
    if op == "add":
        return pointer_arith("add", b, a)
    raise error(f"cannot apply '{_SYMBOL.get(op, op)}' with a pointer on the right")


def _pointer_difference(p: RValue, q: RValue) -> RValue:
    if p.type != q.type:
        raise error(f"cannot subtract pointers of different types: {p.type} and {q.type}")
    builder = _b()
    pi = builder.value("ptr.to_int", (p.value,), ir.i64)
    qi = builder.value("ptr.to_int", (q.value,), ir.i64)
    diff = RValue(builder.binary("arith.sub", pi, qi), ir.i64)
    return binary("floordiv", diff, p.type.elem.bytes)


def index_value(x) -> RValue:
    """An integer index (a literal becomes i32 or i64)."""
    v = to_rvalue(x)
    if not (isinstance(v.type, ir.ScalarType) and v.type.is_int):
        raise error(f"an index must be an integer, found {v.type}", hint="cast it: skc.i32(x)")
    if v.type.is_bool:
        v = cast(v, ir.i32)
    return v


def offset(p: RValue, index) -> RValue:
    """p advanced by index elements."""
    if is_number(index) and index == 0:
        return p
    i = index_value(index)
    return RValue(_b().value("ptr.offset", (p.value, i.value), p.type.ir, elem=p.type.elem), p.type)


# -- comparisons and logic ----------------------------------------------------------------
def compare(pred: str, a, b, exact: bool = False) -> RValue:
    """a <pred> b; exact (a comparison the user wrote): a Python int the other side's integer type cannot hold
    compares by value, as Python does (-1 < a u8's every value) instead of wrapping into it."""
    refuse_opaque(f"'{_COMPARISON_SYMBOL.get(pred, pred)}'", "numbers, or two pointers", a, b)
    ta = a.type if isinstance(a, Dyn) else None
    tb = b.type if isinstance(b, Dyn) else None
    if isinstance(ta, PtrType) or isinstance(tb, PtrType):
        if not (isinstance(ta, PtrType) and isinstance(tb, PtrType)):
            raise error("a pointer can only be compared with another pointer")
        return RValue(_b().cmp(pred, a.rvalue().value, b.rvalue().value), ir.i1)
    widened = _fp8_beside_number(a, b)
    if widened is not None:   # (in f32, which holds every fp8 value: the number converted to fp8 would saturate)
        return compare(pred, *widened, exact=exact)
    known = _outside_range(a, b) if exact else None
    if known is not None:
        return constant(known(pred), ir.with_element((a if isinstance(a, Dyn) else b).type, ir.i1))
    if exact:
        against_number = _integer_against_float(pred, a, b)
        if against_number is None:
            against_number = _float_against_integer(pred, a, b)
        if against_number is None:
            against_number = _run_time_integer_against_float(pred, a, b)
        if against_number is not None:
            return against_number
    elem, count = _operand_types(a, b)
    if narrow_of_both_signs(a, b):
        elem = ir.i32
    x, y = _coerce(a, elem, count), _coerce(b, elem, count)
    result_t = ir.with_element(x.type, ir.i1)
    return RValue(_b().cmp(pred, x.value, y.value, result_t), result_t)


_COMPARISON_SYMBOL = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


def narrow_of_both_signs(a, b) -> bool:
    """Whether a and b are run-time integers narrower than 32 bits, one signed and one unsigned: C promotes both to
    int before comparing them, and i32 holds both values, so they compare by value as in Python too (in the unsigned
    type they unify to, i8(-1) < u8(255) read False and i8(-1) == u8(255) True)."""
    if not (isinstance(a, Dyn) and isinstance(b, Dyn)) or isinstance(a.type, PtrType) or isinstance(b.type, PtrType):
        return False
    ea, eb = ir.element_type(a.type), ir.element_type(b.type)
    return (ea.is_int and eb.is_int and not ea.is_bool and not eb.is_bool and ea.is_signed != eb.is_signed
            and max(ea.bits, eb.bits) < 32)


def _value_beside_number(a, b):
    """For a comparison of a run-time value with a compile-time one: (the run-time value, the other, whether they
    came in the other order, the run-time value's element type); None unless exactly one side is run-time."""
    if isinstance(a, Dyn) == isinstance(b, Dyn):
        return None
    x, number, mirrored = (a, b, False) if isinstance(a, Dyn) else (b, a, True)
    return x, number, mirrored, ir.element_type(x.type)


def _integer_against_float(pred: str, a, b):
    """A run-time integer (scalar or vector) compared with a Python float, by value as Python compares them (converted to f32,
    16777217 == 16777216.0 held): against a whole float as against that int, against another through its floor
    or ceiling; None where the operands are others."""
    pair = _value_beside_number(a, b)
    if pair is None:
        return None
    x, number, mirrored, t = pair
    if not (type(number) is float and isinstance(t, ir.ScalarType) and t.is_int and not t.is_bool):
        return None
    pred = _MIRROR[pred] if mirrored else pred
    truth = ir.with_element(x.type, ir.i1)   # (an integer vector's comparison: one truth per element)
    if math.isnan(number):
        return constant(pred == "ne", truth)
    if math.isinf(number):   # (every integer lies below inf and above -inf)
        below = number < 0
        return constant(_BELOW[pred] if below or pred in ("eq", "ne") else not _BELOW[pred], truth)
    if number.is_integer():
        return compare(pred, x, int(number), exact=True)
    if pred in ("eq", "ne"):
        return constant(pred == "ne", truth)
    if pred in ("lt", "le"):
        return compare("le", x, math.floor(number), exact=True)
    return compare("ge", x, math.ceil(number), exact=True)


def _fp8_beside_number(a, b):
    """An fp8 run-time value (scalar or vector) beside a Python number: the pair with the fp8 side in f32, else
    None. Converted to fp8, the number would saturate (inf and 1e30 became e5m2's 57344: `x < math.inf` read
    False for 57344, `abs(x) == float('inf')` True)."""
    pair = _value_beside_number(a, b)
    if pair is None:
        return None
    x, number, _, t = pair
    if not (isinstance(t, ir.ScalarType) and t.is_float and t.bits == 8 and is_number(number)):
        return None
    wide = cast(x, ir.with_element(x.type, ir.f32))
    return (wide, number) if x is a else (number, wide)


_FLOAT_FORMATS = {"f16": (11, 15), "bf16": (8, 127), "f32": (24, 127), "f64": (53, 1023)}   # significand bits, emax


def _significand_digits(t: ir.ScalarType) -> int:
    return _FLOAT_FORMATS[t.name][0] if t.name in _FLOAT_FORMATS else 3   # (fp8: e5m2's 3, e4m3's 4)


def _float_holds_int(t: ir.ScalarType, number: int) -> bool:
    """Whether the float type t holds the int exactly (fp8: taken as held, its own conversion rules apply)."""
    if t.name not in _FLOAT_FORMATS:
        return True
    digits, emax = _FLOAT_FORMATS[t.name]
    magnitude = abs(int(number))
    drop = max(magnitude.bit_length() - digits, 0)
    return magnitude >> drop << drop == magnitude and magnitude <= ((1 << digits) - 1) << (emax - digits + 1)


def _float_holds(t: ir.ScalarType, value) -> bool:
    """Whether the float type t holds value exactly: every value of a run-time integer's type, or a Python int."""
    if isinstance(value, Dyn):
        if isinstance(value.type, PtrType):
            return True
        elem = ir.element_type(value.type)
        return not elem.is_int or elem.is_bool or elem.bits - elem.is_signed <= _significand_digits(t)
    return not isinstance(value, numbers.Integral) or isinstance(value, bool) or _float_holds_int(t, value)


def chosen_float(values, elem: ir.ScalarType) -> ir.ScalarType:
    """The type of values chosen between as they are (an if-expression's or `and`/`or`'s operands, min()'s and
    max()'s, a name's values where run-time paths meet) whose common type is elem: elem, or where elem is a float
    type that cannot hold one of the integers exactly, f32 or f64, the narrowest that holds them all. Python keeps
    the integer itself (`n if c else 0.5` is n): in f32, an i32 16777217 read 16777216.0, and was stored or used as
    16777216. An error where no float type holds one (a 64-bit integer). Arithmetic on the two stays in elem."""
    if not elem.is_float:
        return elem
    given = elem
    for v in values:
        while not _float_holds(elem, v):
            if elem is ir.f64:
                raise _no_float_holds(v)
            elem = ir.f32 if elem.bits < 32 else ir.f64
            _note_widened_choice(v, given, elem)
    return elem


def _note_widened_choice(integer, given: ir.ScalarType, chosen: ir.ScalarType):
    """Remember, for this compile's later errors, the first place where an integer beside a `given` float was chosen
    in the wider `chosen`: an f64 the user never wrote, which an op refusing f64 (skc.exp) or a variable of another
    type meets lines later."""
    widened = _cg().facts(__name__).setdefault("widened choices", {})
    what = str(ir.element_type(integer.type)) if isinstance(integer, Dyn) else repr(integer)
    widened.setdefault(chosen, (_cg().loc, what, given))


def _a(what) -> str:
    """A type's name (or a number) with its article, as it is read: an f32, an i32, a u32, a bf16."""
    what = str(what)
    return f"an {what}" if what[:1] in ("f", "i") else f"a {what}" if what[:1] in ("u", "b") else what


def widened_choice_note(t) -> str:
    """Where this compile first chose an integer beside a narrower float in t's element type (chosen_float), as a
    sentence for a hint; '' where it made none."""
    elem = ir.element_type(t) if isinstance(t, (ir.ScalarType, ir.VectorType)) else None
    found = _cg().facts(__name__).get("widened choices", {}).get(elem)
    if found is None:
        return ""
    loc, integer, given = found
    where = f" at {loc}" if loc is not None else ""
    return (f"{elem} here may come from the choice{where} between {_a(integer)} and {_a(given)} (an if-expression, "
            f"`and`/`or`, min/max, skc.where or a name set on two paths): Python keeps the integer as it is, so skc "
            f"chooses in {elem}, which holds it; convert the integer there, skc.{given}(n), to choose in {given}")


def _no_float_holds(v):
    if isinstance(v, Dyn):
        t = ir.element_type(v.type)
        return error(f"a run-time {t} value and a float are chosen between here: Python keeps the integer as it is, "
                     f"and no float type holds every {t}",
                     hint="convert one of them yourself: skc.f64(n) to choose the nearest f64 (as arithmetic on the "
                          f"two would), or skc.{t.name}(x) to choose an integer")
    return error(f"{v} and a float are chosen between here: Python keeps the int as it is, and no float type holds it "
                 "exactly", hint=f"write it as a float ({float(v)!r}) to choose the nearest, or make the other value "
                                 "an integer")


def is_integer_value(v) -> bool:
    """Whether v is an integer: a Python int or a run-time integer scalar or vector (a bool too)."""
    if isinstance(v, Dyn):
        return isinstance(v.type, (ir.ScalarType, ir.VectorType)) and ir.element_type(v.type).is_int
    return isinstance(v, numbers.Integral)


def unify_chosen(a, b):
    """Both operands as run-time values of one type that holds each as it is, to choose one (chosen_float)."""
    elem, count = _operand_types(a, b, keep_values=True)
    elem = chosen_float((a, b), elem)
    return _coerce(a, elem, count), _coerce(b, elem, count)


def _float_against_integer(pred: str, a, b):
    """A run-time float (scalar or vector) compared with a Python int its type cannot hold exactly, by value as
    Python compares them (converted, 16777217 read 16777216.0 in f32, and 10**400 overflowed): equal to none, and
    below or above it exactly where below or above the nearest floats on its sides. None where the operands are
    others or the int is exact in the type."""
    pair = _value_beside_number(a, b)
    if pair is None:
        return None
    x, number, mirrored, t = pair
    if not (isinstance(number, numbers.Integral) and not isinstance(number, bool) and isinstance(t, ir.ScalarType)
            and t.name in _FLOAT_FORMATS):
        return None
    digits, emax = _FLOAT_FORMATS[t.name]
    largest = ((1 << digits) - 1) << (emax - digits + 1)
    magnitude = abs(int(number))
    drop = max(magnitude.bit_length() - digits, 0)
    down = magnitude >> drop << drop   # the floats of the type next to |number|, below and above
    if down == magnitude and magnitude <= largest:
        return None
    up = down + (1 << drop) if down != magnitude else down
    down, up = min(down, largest), up if up <= largest else math.inf
    below, above = (-up, -down) if number < 0 else (down, up)
    pred = _MIRROR[pred] if mirrored else pred
    if pred in ("eq", "ne"):
        return constant(pred == "ne", ir.with_element(x.type, ir.i1))
    if pred in ("lt", "le"):
        return compare("le", x, below)
    return compare("ge", x, above)


def _run_time_integer_against_float(pred: str, a, b):
    """A run-time integer compared with a run-time float by value, as Python compares them (converted to the float
    type, i32 16777217 == f32 16777216.0 held): in f64 where it holds every value of the integer type; a 64-bit
    integer through its nearest f64, whose order against the float is the integer's where the two differ, and where
    they are equal (the float is then a whole number) the integer's order against the float made an integer. None
    where the operands are others or the float type holds every value of the integer type."""
    if not (isinstance(a, Dyn) and isinstance(b, Dyn)) or isinstance(a.type, PtrType) or isinstance(b.type, PtrType):
        return None
    ea, eb = ir.element_type(a.type), ir.element_type(b.type)
    if ea.is_float:
        a, b, ea, eb, pred = b, a, eb, ea, _MIRROR[pred]
    if not (ea.is_int and not ea.is_bool and eb.is_float):
        return None
    digits = _FLOAT_FORMATS[eb.name][0] if eb.name in _FLOAT_FORMATS else 3   # (fp8: e5m2's 3, e4m3's 4)
    if ea.bits - ea.is_signed <= digits:
        return None
    _, count = _operand_types(a, b)
    wide = cast(b, ir.with_element(b.type, ir.f32)) if eb.bits == 8 else b   # (fp8 reaches f64 through f32)
    f = _coerce(wide, ir.f64, count)
    nearest = _coerce(a, ir.f64, count)
    if ea.bits <= 32:
        return compare(pred, nearest, f)
    limit = float(_int_range(ea)[1] + 1)   # (2**63 or 2**64: the one whole f64 an equal pair can hold past the type)
    whole = select(compare("ge", f, limit), constant(pred in ("lt", "le", "ne"), ir.with_element(f.type, ir.i1)),
                   compare(pred, _coerce(a, ea, count), cast(f, ir.with_element(f.type, ea))))
    return select(compare("eq", nearest, f), whole, compare(pred, nearest, f))


_BELOW = {"lt": False, "le": False, "gt": True, "ge": True, "eq": False, "ne": True}   # x <pred> (a number below x)
_MIRROR = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le", "eq": "eq", "ne": "ne"}


def _outside_range(a, b):
    """For a run-time integer (scalar or vector) compared with a Python int its type cannot hold (-1 beside a u8, 2**63 beside
    an i64), the comparison's result as a function of the predicate: Python compares the values, which every value
    of the type lies above (or below); converting the number would wrap it. None otherwise."""
    pair = _value_beside_number(a, b)
    if pair is None:
        return None
    x, number, mirrored, t = pair
    if not (isinstance(number, numbers.Integral) and not isinstance(number, bool) and isinstance(t, ir.ScalarType)
            and t.is_int and not t.is_bool):
        return None
    lo, hi = _int_range(t)
    if lo <= number <= hi:
        return None
    below = number < lo

    def result(pred):
        pred = _MIRROR[pred] if mirrored else pred
        return _BELOW[pred] if below else (not _BELOW[pred] if pred not in ("eq", "ne") else _BELOW[pred])
    return result


def to_bool(x) -> RValue:
    """x as i1: non-zero (or non-null) is true."""
    refuse_opaque("a condition (if, while, and / or / not, a mask)", "a number or a pointer", x)
    v = to_rvalue(x)
    if v.type is ir.i1:
        return v
    if isinstance(v.type, PtrType):
        zero = RValue(_b().value("ptr.from_int", (constant(0, ir.i64).value,), v.type.ir), v.type)
        return RValue(_b().cmp("ne", v.value, zero.value), ir.i1)
    if v.type.is_vector:
        raise error(f"a vector ({v.type}) cannot be used as a condition",
                    hint="its lanes are separate conditions: test a lane (v[0] > 0), combine the lanes "
                         "(max(v) > 0 for any lane above 0), or choose lane by lane with skc.where(v > 0, a, b)")
    return compare("ne", v, 0)


def unary(op: str, a):
    refuse_opaque(_UNARY_NAME.get(op, f"unary '{op}'"), "a number or a pointer" if op == "not" else "a number", a)
    x = to_rvalue(a)
    t = x.type
    if isinstance(t, PtrType):
        raise error(f"cannot apply unary '{op}' to a pointer")
    elem = ir.element_type(t)
    builder = _b()
    if op == "neg":
        if elem.is_bool:
            x = cast(x, ir.with_element(t, ir.i32))
            t = x.type
        return RValue(builder.unary("arith.neg", x.value), t)
    if op == "invert":
        if elem.is_float:
            raise error(f"operator '~' needs integers, found {t}")
        return RValue(builder.unary("arith.not", x.value), t)
    if op == "not":
        return RValue(builder.unary("arith.not", to_bool(x).value), ir.i1)
    if op == "abs":
        if elem.is_int and not elem.is_signed:
            return x
        return RValue(builder.unary("math.abs", x.value), t)
    raise error(f"unknown unary operator {op}")


_UNARY_NAME = {"neg": "unary '-'", "invert": "'~'", "not": "'not'", "abs": "abs()"}


def select(cond, a, b) -> RValue:
    """a where cond holds, else b: one of the two as it is (an integer beside a float too: chosen_float)."""
    refuse_opaque("a choice's condition", "a number or a pointer", cond)
    c = to_rvalue(cond)
    if ir.element_type(c.type) is not ir.i1:
        c = to_bool(c)
    if any(isinstance(v, Dyn) and is_opaque(v.type) for v in (a, b)):
        x, y = _opaque_choice(c, a, b)
    elif isinstance(a, Dyn) and isinstance(a.type, PtrType) or isinstance(b, Dyn) and isinstance(b.type, PtrType):
        x, y = to_rvalue(a), to_rvalue(b)
        if x.type != y.type:
            raise error(f"select between pointers of different types: {x.type} and {y.type}")
    elif not isinstance(a, Dyn) and not isinstance(b, Dyn):
        t = chosen_float((a, b), promote_scalars(literal_type(a), literal_type(b)))
        x, y = constant(a, t), constant(b, t)
    else:
        x, y = unify_chosen(a, b)
    if c.type.is_vector and not x.type.is_vector:
        x, y = _coerce(x, x.type, c.type.count), _coerce(y, y.type, c.type.count)
    elif c.type.is_vector and c.type.count != x.type.count:
        raise error(f"a choice lane by lane takes a condition of as many lanes as its values: the condition is "
                    f"{c.type}, the values {x.type}", hint="choose between vectors of the condition's length, or "
                    "between scalars")
    return RValue(_b().select(c.value, x.value, y.value), x.type)


def _opaque_choice(c: RValue, a, b):
    """The two sides of a choice where one is no number nor pointer: two tensor maps of one type (a choice of
    descriptor, which TMA copies take as one) chosen by a scalar, else an error naming both."""
    if not (isinstance(a, Dyn) and isinstance(b, Dyn) and a.type is b.type):
        kinds = [describe_opaque(v.type) if isinstance(v, Dyn) and is_opaque(v.type) else _kind(v) for v in (a, b)]
        opaque = next(v.type for v in (a, b) if isinstance(v, Dyn) and is_opaque(v.type))
        raise error(f"a choice between {kinds[0]} and {kinds[1]}: it chooses between numbers, pointers, or tensor "
                    "maps of one type", hint=_opaque_hint(opaque))
    if c.type.is_vector:
        raise error(f"a choice of tensor map takes a scalar condition, found {c.type}")
    return a.rvalue(), b.rvalue()


def _kind(v) -> str:
    """A value as a message names it: its run-time type, or what the Python value is."""
    return f"a run-time {v.type}" if isinstance(v, Dyn) else _describe(v) if not is_number(v) else repr(v)


def minmax(op: str, values) -> RValue:
    """min or max of several values (at least one run-time)."""
    refuse_opaque(f"{op}()", "numbers", *values)
    result = values[0]
    for v in values[1:]:
        x, y = unify(result, v, keep_values=True)
        result = RValue(_b().binary(f"arith.{op}", x.value, y.value), x.type)
    return to_rvalue(result)


# -- casts ---------------------------------------------------------------------------------
def cast(x, t: ir.Type):
    """Convert x to type t (a scalar, or a vector of the same length)."""
    if isinstance(x, Dyn) and is_opaque(x.type):
        raise error(f"cannot convert {describe_opaque(x.type)} to {t}: it is no number", hint=_opaque_hint(x.type))
    if isinstance(t, PtrType):
        v = to_rvalue(x)
        if not isinstance(v.type, PtrType):
            raise error(f"cannot cast {v.type} to a pointer", hint="use skc.int_to_ptr")
        if v.type.space != t.space:
            raise error(f"cannot cast a {v.type.space} pointer to a {t.space} pointer")
        return RValue(v.value, t)
    if not isinstance(x, Dyn):
        if not is_number(x):
            raise error(f"cannot convert {_describe(x)} to {t}")
        elem = ir.element_type(t)
        if elem.is_int and not elem.is_bool and not isinstance(x, numbers.Integral):
            # (as the run-time conversion: skc.i32(1.5) of a compile-time 1.5 was an error where a run-time 1.5 gives 1)
            x = cast_to_int(float(x), elem)
        return constant(x, t)
    v = x.rvalue()
    if isinstance(v.type, PtrType):
        raise error(f"cannot cast a pointer to {t}", hint="use skc.ptr_to_int")
    if v.type.is_vector and not t.is_vector:
        t = ir.VectorType(t, v.type.count)
    if v.type is t:
        return v
    return RValue(_b().cast(v.value, t), t)


def bitcast(x, t: ir.Type) -> RValue:
    if isinstance(x, Dyn) and is_opaque(x.type):
        raise error(f"cannot bitcast {describe_opaque(x.type)} to {t}: it is no number", hint=_opaque_hint(x.type))
    v = to_rvalue(x)
    if isinstance(v.type, PtrType) or isinstance(t, (PtrType, ir.PointerType)):
        raise error(f"cannot bitcast {v.type} to {t}: a bitcast takes numbers (scalars or vectors)",
                    hint="a pointer's address is skc.ptr_to_int(p), the pointer at an address skc.int_to_ptr(a, dtype)")
    width_in, width_out = _width_bits(v.type), _width_bits(t)
    if width_in != width_out:
        raise error(f"cannot bitcast {v.type} ({width_in} bits) to {t} ({width_out} bits): a bitcast keeps the bits",
                    hint="bitcast to a type of the same width; two f16 lanes of a u32 are "
                         "skc.bitcast(bits, skc.ir.VectorType(skc.ir.f16, 2))")
    return RValue(_b().value("arith.bitcast", (v.value,), t), t)


def _width_bits(t) -> int:
    return t.elem.bits * t.count if t.is_vector else t.bits


def convert_for_store(value, t, what: str = "", in_memory: bool = False) -> RValue:
    """value converted to the type of the place it is stored into (like C assignment); in_memory (an element of an
    array): a Python int the element type cannot hold is an error, as numpy's assignment is."""
    if isinstance(value, Dyn) and is_opaque(value.type):
        raise error(f"cannot store {describe_opaque(value.type)} into {what or 'a place'} of type {t}",
                    hint=_opaque_hint(value.type))
    if isinstance(t, PtrType):
        v = to_rvalue(value)
        if v.type != t:
            raise error(f"cannot store {v.type} into {what or 'a place'} of type {t}")
        return v
    if not isinstance(value, Dyn):
        elem = ir.element_type(t)
        if (in_memory and type(value) is int and elem.is_int
                and not elem.is_bool and not _int_range(elem)[0] <= value <= _int_range(elem)[1]):
            # (numpy refuses it too: a[0] = 300 into uint8 is an OverflowError; it wrapped to 44)
            raise error(f"{value} does not fit {what or 'a place'} of type {t}",
                        hint=f"store a number {elem} holds (for all bits set, {_int_range(elem)[1]} or -1 in a "
                             "signed type), or convert it explicitly")
        return constant(value, t)
    v = value.rvalue()
    if isinstance(v.type, PtrType):
        raise error(f"cannot store a pointer into {what or 'a place'} of type {t}")
    if v.type.is_vector != t.is_vector:
        raise error(f"cannot store {v.type} into {what or 'a place'} of type {t}")
    return cast(v, t)


def type_to_hold(t, value):
    """The scalar type a variable of type t would need to take value (a Python number or a run-time scalar) without
    loss: f32 for the float 0.5 or a run-time f32 beside an i32, i32 for 5 beside an i1; None where t takes it as it
    is, or where no scalar type is the answer (a pointer or a vector beside another type: storing it is the error)."""
    if isinstance(t, PtrType) or isinstance(getattr(value, "type", None), PtrType):
        return None
    elem = ir.element_type(t)
    if not isinstance(value, Dyn):
        if not (elem.is_int and is_number(value)) or _number_fits_variable(value, elem):
            return None
        # (a number must not wrap silently)
        return literal_type(value) if isinstance(value, numbers.Integral) else ir.f32
    if value.type.is_vector != t.is_vector or value.type.is_vector and value.type.count != t.count:
        return None
    widened = promote_scalars(elem, ir.element_type(value.type))
    return None if widened is elem else widened


def convert_for_variable(value, t, name: str) -> RValue:
    """value for a variable of type t: only conversions that lose nothing happen silently."""
    if isinstance(t, PtrType) or not isinstance(value, Dyn):
        if not isinstance(value, Dyn) and not isinstance(t, PtrType):
            elem = ir.element_type(t)
            if elem.is_int and isinstance(value, float) and not value.is_integer():
                raise error(f"variable '{name}' holds {t}; it cannot take the float {value!r}",
                            hint=f"start it as a float, e.g. `{name} = 0.0`, or declare `{name}: skc.f32 = ...`")
            wider = type_to_hold(t, value)
            if wider is not None:
                start = zero_written(wider)
                raise error(f"variable '{name}' holds {t}; it cannot take {value!r}, which {t} cannot represent",
                            hint=f"give it a type that holds the value from the start, e.g. `{name} = {start}` or "
                                 f"`{name}: skc.{wider} = ...`")
        return convert_for_store(value, t, f"variable '{name}'")
    v = value.rvalue()
    if v.type is t:
        return v
    if (isinstance(v.type, PtrType) or v.type.is_vector != t.is_vector
            or v.type.is_vector and v.type.count != t.count):
        raise error(f"variable '{name}' holds {t}; it cannot take a {v.type}",
                    hint="use a new name for a value of another type")
    widened = type_to_hold(t, v)
    if widened is not None:
        start = zero_written(widened)
        hint = f"give it the wider type from the start, e.g. `{name} = {start}` or `{name}: skc.{widened} = ...`"
        found = _cg().facts(__name__).get("widened choices", {}).get(widened) if ir.element_type(t).is_int else None
        if found is not None and found[1] == str(ir.element_type(t)):
            # (`m = 0` then `m = max(m, x)`: m's own integer type made the choice f64; a float start keeps it x's)
            given = found[2]
            hint = (f"start it as a float, e.g. `{name} = {zero_written(given)}`: it is {widened} here because its "
                    f"{t} was chosen beside {_a(given)} at {found[0]} (Python keeps the integer as it is: skc chooses "
                    f"in {widened}, which holds it); or `{name}: skc.{widened} = ...` to keep {widened}")
        raise error(f"variable '{name}' holds {t} but is assigned {v.type}, which {t} cannot represent", hint=hint)
    return cast(v, t)


def zero_written(t: ir.ScalarType) -> str:
    """How a kernel writes a zero of type t, for hints: `0.0` only for f32 (a Python float is an f32 beside run-time
    values), `skc.f64(0)` and the like otherwise."""
    return "0.0" if t is ir.f32 else f"skc.{t}(0)"


def _number_fits_variable(value, elem: ir.ScalarType) -> bool:
    """Whether an integer variable of type elem holds the compile-time number value as it is (negative numbers
    wrap into unsigned types, as `x - 1` does; an i1 holds 0 and 1)."""
    if not isinstance(value, numbers.Integral):
        value = float(value)
        if not value.is_integer():
            return False
    value = int(value)
    if elem.is_bool:
        return value in (0, 1)
    return _literal_fits(value, elem)


# -- memory ------------------------------------------------------------------------------
def _pointer(p) -> RValue:
    v = to_rvalue(p)
    if not isinstance(v.type, PtrType):
        raise error(f"expected a pointer, found {describe_opaque(v.type) if is_opaque(v.type) else v.type}",
                    hint=_opaque_hint(v.type))
    return v


def load(p, mask=None, other=None, width: int = 1) -> RValue:
    """Read width elements at p (a vector when width > 1); masked-off threads get `other` (default 0)."""
    ptr = _pointer(p)
    elem = ptr.type.elem
    width = int(width)
    t = ir.VectorType(elem, width) if width > 1 else elem
    if t.bytes > 16 or t.bytes & (t.bytes - 1):
        raise error(f"a load of {width} x {elem} moves {t.bytes} bytes; one access moves 1, 2, 4, 8 or 16 bytes",
                    hint="split it into several loads")
    operands = [ptr.value]
    if mask is not None and not (mask is True):
        if mask is False:
            return constant(0 if other is None else other, t)
        operands.append(_access_mask(mask, "load", width).value)
        if other is not None:
            operands.append(_coerce(other, elem, width if width > 1 else None).value)
    return RValue(_b().value("mem.load", operands, t, align=t.bytes), t)


def store(p, value, mask=None):
    ptr = _pointer(p)
    elem = ptr.type.elem
    if isinstance(value, Dyn) and value.type.is_vector:
        v = value.rvalue()
        if ir.element_type(v.type) is not elem:
            v = cast(v, ir.VectorType(elem, v.type.count))
    else:
        v = convert_for_store(value, elem, "an element", in_memory=True)
    if v.type.bytes > 16 or v.type.bytes & (v.type.bytes - 1):
        raise error(f"a store of {v.type} moves {v.type.bytes} bytes; one access moves 1, 2, 4, 8 or 16 bytes")
    operands = [ptr.value, v.value]
    if mask is not None and mask is not True:
        if mask is False:
            return
        operands.append(_access_mask(mask, "store", v.type.count if v.type.is_vector else 1).value)
    _b().create("mem.store", operands, attrs={"align": v.type.bytes})


def _access_mask(mask, access: str, width: int) -> RValue:
    """A load's or store's mask as one i1: it keeps or drops the whole access, a vector's every lane at once.
    A mask per lane (a vector or a list of conditions) is an error that says how to mask lanes one by one."""
    lanes = (len(mask) if isinstance(mask, (list, tuple)) else
             mask.type.count if isinstance(mask, Dyn) and getattr(mask.type, "is_vector", False) else None)
    if lanes is not None:
        raise error(f"a {access}'s mask is one condition for the whole access (all {width} lanes or none), found "
                    f"{lanes} conditions", hint=f"mask the whole vector (mask=start + {width} <= n) and {access} a "
                    "partial vector's elements one at a time, each with its own mask, as examples/vector_add.py's "
                    "tail does")
    return to_bool(mask)


def subscript(base: RValue, index):
    t = base.type
    if isinstance(t, PtrType):
        return load(offset(base, index))
    if t.is_vector:
        if isinstance(index, Dyn):
            raise error("a vector element index must be a compile-time int")
        if isinstance(index, slice):   # Python's slice: a vector of those lanes
            lanes = range(t.count)[index]
            if len(lanes) < 2:
                raise error(f"v[{index.start}:{index.stop}:{index.step}] of {t} takes {len(lanes)} lane(s); a vector "
                            "has 2 or more", hint="index one lane as v[i]")
            values = [_b().value("vec.extract", (base.value,), t.elem, index=i) for i in lanes]
            sliced = ir.VectorType(t.elem, len(lanes))
            return RValue(_b().value("vec.from", values, sliced), sliced)
        if not (isinstance(index, numbers.Integral) or hasattr(index, "__index__")):
            raise error(f"a vector's lane index is an int, found {index!r}")
        i = int(index)
        if not -t.count <= i < t.count:
            raise error(f"index {i} is out of range for {t}")
        return RValue(_b().value("vec.extract", (base.value,), t.elem, index=i % t.count), t.elem)
    if is_opaque(t):
        raise error(f"cannot index {describe_opaque(t)}: only pointers and vectors can be indexed",
                    hint=_opaque_hint(t))
    raise error(f"cannot index a {t}", hint="only pointers and vectors can be indexed")


def store_subscript(base: RValue, index, value):
    if is_opaque(base.type):
        raise error(f"cannot assign to an element of {describe_opaque(base.type)}: only a pointer's elements can be "
                    "assigned", hint=_opaque_hint(base.type))
    if not isinstance(base.type, PtrType):
        raise error(f"cannot assign to an element of a {base.type}",
                    hint="vectors are values: build a new one with skc.vector(...)")
    store(offset(base, index), value)
