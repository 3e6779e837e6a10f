"""The DSL's builtin functions: thread and block ids, memory, math, warp and block
collectives, atomics, inline assembly, printing. Each emits IR into the kernel being compiled;
with only compile-time arguments, the math functions compute in Python."""
from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Optional

from .. import ir
from . import semantics
from .arrays import Array
from .context import current
from .dtypes import PtrType, as_ir_type
from .markers import skc_builtin
from .values import Dyn, RValue

# -- ids and shape ---------------------------------------------------------------------------


def compile_time_int(value, what: str, low: Optional[int] = None, high: Optional[int] = None) -> int:
    """value as a Python int known at compile time, low <= value <= high; else an error naming `what`."""
    if isinstance(value, Dyn):
        raise semantics.error(f"{what} must be known at compile time, found a run-time {value.type}",
                              hint="pass it as an int literal, a global constant or a skc.constexpr parameter")
    if isinstance(value, bool) or not isinstance(value, int) and not (
            isinstance(value, float) and value.is_integer()) and not hasattr(value, "__index__"):
        raise semantics.error(f"{what} must be an int, found {value!r}")
    value = int(value)
    if low is not None and value < low or high is not None and value > high:
        bounds = f"at least {low}" if high is None else f"{low} to {high}"
        raise semantics.error(f"{what} must be {bounds}, found {value}")
    return value


def _dim(dim) -> int:
    if isinstance(dim, Dyn):
        compile_time_int(dim, "the dimension")
    if dim not in (0, 1, 2):
        raise semantics.error(f"dimension must be 0, 1 or 2, found {dim!r}")
    return dim


def _index_op(name: str, dim: int) -> RValue:
    return RValue(current().builder.value(name, (), ir.i32, dim=_dim(dim)), ir.i32)


@skc_builtin
def thread_id(dim: int = 0):
    """This thread's index in its block along dim (0 = x)."""
    if current().block[_dim(dim)] == 1:
        return semantics.constant(0, ir.i32)
    return _index_op("gpu.thread_id", dim)


@skc_builtin
def block_id(dim: int = 0):
    """This block's index in the grid along dim."""
    return _index_op("gpu.block_id", dim)


@skc_builtin
def grid_dim(dim: int = 0):
    """The number of blocks along dim."""
    return _index_op("gpu.grid_dim", dim)


@skc_builtin
def block_dim(dim: int = 0) -> int:
    """The number of threads per block along dim (known at compile time)."""
    return current().block[_dim(dim)]


@skc_builtin
def current_target():
    """The Target the kernel compiles for (compile time): blocks choose instructions from it."""
    return current().target


@skc_builtin
def num_threads() -> int:
    """The number of threads in a block (a compile-time int: the block is part of the specialization)."""
    return current().num_threads


@skc_builtin
def warp_size() -> int:
    """Lanes in a warp (a compile-time int): 32 on NVIDIA, 64 (a wavefront) on AMD CDNA."""
    return current().target.warp_size


@skc_builtin
def num_warps() -> int:
    """Warps in a block, the last one partial when the block is no multiple of the warp size (compile-time int)."""
    cg = current()
    return -(-cg.num_threads // cg.target.warp_size)


@skc_builtin
def thread_index():
    """This thread's linear index in its block (x fastest)."""
    x, y, z = current().block
    index = thread_id(0)
    if y > 1:
        index = index + thread_id(1) * x
    if z > 1:
        index = index + thread_id(2) * (x * y)
    return index


@skc_builtin
def lane_id():
    """This thread's index within its warp."""
    return RValue(current().builder.value("gpu.lane_id", (), ir.i32), ir.i32)


@skc_builtin
def warp_id():
    """This thread's warp within its block."""
    return thread_index() // warp_size()


# -- synchronization ---------------------------------------------------------------------------
@skc_builtin
def barrier():
    """Wait until every thread of the block gets here (CUDA's __syncthreads)."""
    current().builder.create("gpu.barrier")


syncthreads = barrier


@skc_builtin
def barrier_named(barrier_id, threads: int):
    """Wait until `threads` threads (a multiple of 32) reach named barrier `barrier_id` (1..15; a run-time id must
    be the same across each warp, as PTX bar.sync requires)."""
    _named_barrier("gpu.barrier", barrier_id, threads)


@skc_builtin
def barrier_arrive(barrier_id, threads: int):
    """Count this thread in at named barrier `barrier_id` (1..15) and go on without waiting: the barrier's phase
    completes when `threads` threads (a multiple of 32) arrived here or wait in `barrier_named(barrier_id, threads)`
    (PTX bar.arrive: a producer signals consumers, or warpgroups take turns)."""
    _named_barrier("gpu.barrier_arrive", barrier_id, threads)


def _named_barrier(name: str, barrier_id, threads):
    threads = compile_time_int(threads, "the thread count of a named barrier", 1)
    if threads % 32:
        raise semantics.error(f"a named barrier counts whole warps: {threads} threads is not a multiple of 32")
    if isinstance(barrier_id, Dyn):   # a run-time id: an operand (checked where it runs)
        current().builder.create(name, [semantics.cast(barrier_id, ir.i32).value], (), {"threads": int(threads)})
        return
    barrier_id = compile_time_int(barrier_id, "a named barrier's id")
    if not 1 <= barrier_id < 16:
        raise semantics.error(f"named barrier ids are 1 to 15 (0 is the block barrier), found {barrier_id}")
    current().builder.create(name, attrs={"id": int(barrier_id), "threads": int(threads)})


# -- memory --------------------------------------------------------------------------------------
@skc_builtin
def shared(shape, dtype, align: int = 16) -> Array:
    """A static shared-memory array of the given shape and dtype, shared by the block."""
    cg = current()
    elem = as_ir_type(dtype)
    dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    count = 1
    for extent in dims:
        if isinstance(extent, Dyn) or not isinstance(extent, int) or extent <= 0:
            raise cg.error(f"a shared array's shape must be positive compile-time ints, found {shape!r}")
        count *= extent
    offset = cg.allocate_shared(count * elem.bytes, align)
    op = ir.OPS["mem.shared"]((), (ir.PointerType("shared"),), {"offset": offset, "bytes": count * elem.bytes},
                              None, cg.loc)
    cg.builder.hoist(op)
    return Array(RValue(op.result, PtrType(elem, "shared")), dims)


@skc_builtin
def load(ptr, mask=None, other=None, width: int = 1):
    """Read `width` consecutive elements at ptr (a vector when width > 1); where mask is false, give other."""
    return semantics.load(_pointer(ptr), mask, other, compile_time_int(width, "a load's width", 1,
                                                                                   ir.MAX_VECTOR_LENGTH))


@skc_builtin
def store(ptr, value, mask=None):
    """Write value (a scalar or vector) at ptr where mask is true."""
    semantics.store(_pointer(ptr), value, mask)


def _pointer(ptr):
    return ptr.ptr if isinstance(ptr, Array) else ptr


@skc_builtin
def ptr_to_int(ptr, dtype=None):
    """A pointer's address as an integer (u64; u32 for shared and local memory), or as dtype."""
    p = semantics.to_rvalue(_pointer(ptr))
    if not isinstance(p.type, PtrType):
        raise semantics.error(f"ptr_to_int needs a pointer, found {p.type}")
    t = as_ir_type(dtype) if dtype is not None else (ir.u32 if p.type.space in ("shared", "local") else ir.u64)
    return RValue(current().builder.value("ptr.to_int", (p.value,), t), t)


@skc_builtin
def int_to_ptr(value, dtype, space: str = "global"):
    """The pointer to dtype at address value in the address space `space`."""
    v = semantics.to_rvalue(value)
    if space not in ir.types.ADDRESS_SPACES:
        raise semantics.error(f"unknown address space {space!r}",
                              hint=f"address spaces: {', '.join(ir.types.ADDRESS_SPACES)}")
    if isinstance(v.type, PtrType) or not ir.element_type(v.type).is_int or v.type.is_vector:
        raise semantics.error(f"int_to_ptr needs an integer, found {v.type}")
    t = PtrType(as_ir_type(dtype), space)
    return RValue(current().builder.value("ptr.from_int", (v.value,), t.ir), t)


@skc_builtin
def vector(*elements):
    """A vector of the given values (converted to their common type)."""
    if len(elements) == 1 and isinstance(elements[0], (tuple, list)):
        elements = tuple(elements[0])
    if not 2 <= len(elements) <= 256:
        raise semantics.error(f"a vector has 2 to 256 elements, found {len(elements)}",
                              hint="one value is a scalar already (as skc.load(..., width=1) gives one): use it as "
                                   "it is" if len(elements) == 1 else "")
    semantics.refuse_opaque("skc.vector", "numbers", *elements)
    elem = None
    for e in elements:
        t = e.type if isinstance(e, Dyn) else semantics.literal_type(e)
        elem = t if elem is None else semantics.promote_scalars(elem, t)
    values = [semantics.cast(e, elem).value for e in elements]
    t = ir.VectorType(elem, len(elements))
    return RValue(current().builder.value("vec.from", values, t), t)


@skc_builtin
def full(count: int, value, dtype):
    """A vector of `count` copies of value."""
    count = compile_time_int(count, "the length of skc.full", 1, ir.MAX_VECTOR_LENGTH)
    elem = as_ir_type(dtype)
    scalar = semantics.cast(value, elem)
    t = ir.VectorType(elem, count)
    return RValue(current().builder.value("vec.splat", (scalar.value,), t), t)


@skc_builtin
def cast(value, dtype):
    """value converted to dtype, as `dtype(value)` (skc.f32(x)) converts: floats round to nearest even, floats to
    integers truncate toward zero."""
    return semantics.cast(value, as_ir_type(dtype))


@skc_builtin
def bitcast(value, dtype):
    """value's bits read as dtype (of the same width)."""
    return semantics.bitcast(value, as_ir_type(dtype))


@skc_builtin
def where(cond, a, b):
    """a where cond is true, else b (both are evaluated)."""
    if not isinstance(cond, Dyn):
        return a if cond else b
    return semantics.select(cond, a, b)


@skc_builtin
def cdiv(a, b):
    """Ceiling division of non-negative integers."""
    return (a + b - 1) // b


# -- math ----------------------------------------------------------------------------------------
def _is_run_time_integer(x) -> bool:
    return not isinstance(x.type, PtrType) and not semantics.is_opaque(x.type) and ir.element_type(x.type).is_int


def float_operand(x, approximate: bool = False) -> RValue:
    """x as a float: an integer in f32, or in f64 where it has 64 bits (as `/` divides them) and the function is exact
    on f64 (sqrt, fma, fmod, copysign, fabs: through f32, sqrt(i64 2**60 + 2**36) lost its low bits); the approximate
    functions have no f64 form, so they take every integer in f32."""
    v = semantics.to_rvalue(x)
    if isinstance(v.type, PtrType):
        raise semantics.error(f"this math function needs a number, found a pointer ({v.type})",
                              hint="load the value first: x[i]")
    elem = ir.element_type(v.type)
    if not elem.is_float:
        ft = ir.f64 if isinstance(elem, ir.ScalarType) and elem.bits == 64 and not approximate else ir.f32
        v = semantics.cast(v, ir.with_element(v.type, ft))
    return v


_ROUNDINGS = ("math.floor", "math.ceil", "math.trunc", "math.round")


def _math_unary(op: str, python):
    def fn(x):
        if not isinstance(x, Dyn):
            return python(x)
        if op in _ROUNDINGS and _is_run_time_integer(x):
            # an integer is whole already: itself (an i1 as i32), as a compile-time int is (_rounded); through f32
            # skc.floor(i32 16777217) was 16777216.0 and math.floor(i32 -2147483647) was -2147483648
            v = x.rvalue()
            return semantics.cast(v, ir.with_element(v.type, ir.i32)) if ir.element_type(v.type).is_bool else v
        v = float_operand(x, approximate=op in ir.APPROXIMATE_MATH)
        semantics.check_approximate_math(op, v.type)
        return RValue(current().builder.unary(op, v.value), v.type)
    fn.__name__ = op.split(".")[1]
    fn.__doc__ = ir.OPS[op].__doc__
    return skc_builtin(fn)


def _overflowing_to_inf(fn):
    """fn on a compile-time value, inf where Python's float overflows (as the GPU's float gives)."""
    def folded(x):
        try:
            return fn(x)
        except OverflowError:
            return math.inf
    return folded


def _ieee(fn, special):
    """fn on a compile-time number, or, where Python raises for a value whose IEEE result is NaN or an infinity
    (math.sqrt(-1), math.log(0), math.sin(inf)), that result, as the run-time op gives it:
    special(x) (a compile-time value must not mean something else than the same value at run time)."""
    def folded(x):
        try:
            return fn(x)
        except (ValueError, ZeroDivisionError, OverflowError):
            if not isinstance(x, (int, float)) or isinstance(x, int) and abs(x) > 2 ** 1000:
                raise
            return special(float(x))
    return folded


def _log_special(x: float) -> float:
    return -math.inf if x == 0 else math.nan   # (log of a negative number, or of -inf)


def _rounded(fn):
    """fn (floor, ceil, trunc, round) on a compile-time number as the run-time op gives it: a float stays a float
    and keeps its sign (skc.ceil(-0.5) is -0.0, where Python's math.ceil gives the int 0); an int stays itself."""
    def folded(x):
        if isinstance(x, numbers.Integral):
            return fn(x)
        value = float(x)
        return type(x)(math.copysign(float(fn(value)), value)) if math.isfinite(value) else x
    return folded


_py_exp2 = _overflowing_to_inf(lambda x: 2.0 ** x)
exp = _math_unary("math.exp", _overflowing_to_inf(math.exp))
_exp2 = _math_unary("math.exp2", _py_exp2)
_exp2_ftz = _math_unary("math.exp2_ftz", lambda x: 0.0 if _py_exp2(x) < 2.0 ** -126 else _py_exp2(x))


@skc_builtin
def exp2(x, ftz: bool = False):
    """2 ** x. With ftz=True a result under 2 ** -126 (the smallest normal f32) is 0: on NVIDIA GPUs one
    MUFU.EX2 instead of four instructions (what a softmax wants; CUDA's fast-math exp2f)."""
    if not isinstance(ftz, bool):
        raise current().error(f"skc.exp2's ftz must be True or False (a compile-time value), found {ftz!r}")
    return _exp2_ftz(x) if ftz else _exp2(x)
log = _math_unary("math.log", _ieee(math.log, _log_special))
log2 = _math_unary("math.log2", _ieee(math.log2, _log_special))
sqrt = _math_unary("math.sqrt", _ieee(math.sqrt, lambda x: math.nan))
rsqrt = _math_unary("math.rsqrt", _ieee(lambda x: 1.0 / math.sqrt(x),
                                        lambda x: math.copysign(math.inf, x) if x == 0 else math.nan))
floor = _math_unary("math.floor", _rounded(math.floor))
ceil = _math_unary("math.ceil", _rounded(math.ceil))
trunc = _math_unary("math.trunc", _rounded(math.trunc))
rint = _math_unary("math.round", _rounded(round))
sin = _math_unary("math.sin", _ieee(math.sin, lambda x: math.nan))
cos = _math_unary("math.cos", _ieee(math.cos, lambda x: math.nan))
tanh = _math_unary("math.tanh", math.tanh)


@skc_builtin
def fma(a, b, c):
    """a * b + c rounded once."""
    if not any(isinstance(v, Dyn) for v in (a, b, c)):
        return _fma_numbers(a, b, c)
    x, y = semantics.unify(float_operand(a), b)
    x, z = semantics.unify(x, c)
    y = semantics.cast(y, x.type)
    return RValue(current().builder.value("math.fma", (x.value, y.value, z.value), x.type), x.type)


def _is_nan(x) -> bool:
    return isinstance(x, float) and x != x


def _fma_numbers(a, b, c):
    """a * b + c on compile-time numbers, rounded once to a float (Python's a * b + c rounds the product first:
    fma(0.1, 10.0, -1.0) gave 0.0 where the run-time op gives 5.55e-17)."""
    if not all(type(v) in (int, float) for v in (a, b, c)) or all(type(v) is int for v in (a, b, c)):
        return a * b + c   # ints are exact; other numbers as Python computes them
    if not all(math.isfinite(v) for v in (a, b, c)):
        return a * b + c   # an infinite or NaN term: one rounding at most
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if not exact:
        return float(a) * float(b) + float(c)   # IEEE's sign of an exact zero sum
    try:
        return float(exact)
    except OverflowError:
        return math.inf if exact > 0 else -math.inf


@skc_builtin
def minimum(a, b):
    """The smaller of a and b; a NaN gives the other operand (IEEE minNum, arith.min), on compile-time numbers too."""
    if isinstance(a, Dyn) or isinstance(b, Dyn):
        return semantics.minmax("min", [a, b])
    if a == 0 and b == 0 and isinstance(a, float) and isinstance(b, float):   # (-0.0 below +0.0, as arith.min)
        return a if math.copysign(1.0, a) < 0 else b
    return b if _is_nan(a) else a if _is_nan(b) else min(a, b)


@skc_builtin
def maximum(a, b):
    """The larger of a and b; a NaN gives the other operand (IEEE maxNum, arith.max), on compile-time numbers too."""
    if isinstance(a, Dyn) or isinstance(b, Dyn):
        return semantics.minmax("max", [a, b])
    if a == 0 and b == 0 and isinstance(a, float) and isinstance(b, float):   # (+0.0 above -0.0, as arith.max)
        return b if math.copysign(1.0, a) < 0 else a
    return b if _is_nan(a) else a if _is_nan(b) else max(a, b)


# -- atomics -------------------------------------------------------------------------------------
def _atomic(kind: str):
    def fn(ptr, value, mask=None):
        p = semantics.to_rvalue(_pointer(ptr))
        if not isinstance(p.type, PtrType):
            raise semantics.error(f"atomic_{kind} needs a pointer, found {p.type}")
        elem = p.type.elem
        if kind in ("and", "or", "xor") and not (isinstance(elem, ir.ScalarType) and elem.is_int):
            raise semantics.error(f"atomic_{kind} is bitwise and needs a pointer to integers, found a pointer to "
                                  f"{elem}", hint=f"bitwise atomics take i32/i64/u32/u64; for {elem} use atomic_cas "
                                                  "in a loop, or atomic_add/atomic_min/atomic_max")
        if not (isinstance(elem, ir.ScalarType) and elem.bits >= 16):
            raise semantics.error(f"atomic_{kind} takes pointers to 16-, 32- or 64-bit scalars, found a pointer "
                                  f"to {elem}")
        if isinstance(value, Dyn) and getattr(value.type, "is_vector", False):
            raise semantics.error(f"atomic_{kind} combines one {elem} into one place, found {value.type}",
                                  hint=f"apply it lane by lane: atomic_{kind}(ptr + i, v[i]) for each lane i")
        v = semantics.convert_for_store(value, elem)
        operands = [p.value, v.value]
        if mask is not None:
            operands.append(semantics.to_bool(mask).value)
        return RValue(current().builder.value("mem.atomic", operands, v.type, op=kind), v.type)
    fn.__name__ = f"atomic_{kind}"
    fn.__doc__ = f"Atomically apply {kind} of value to *ptr; gives the old value."
    return skc_builtin(fn)


atomic_add = _atomic("add")
atomic_min = _atomic("min")
atomic_max = _atomic("max")
atomic_and = _atomic("and")
atomic_or = _atomic("or")
atomic_xor = _atomic("xor")
atomic_xchg = _atomic("xchg")


@skc_builtin
def atomic_cas(ptr, compare, value):
    """If *ptr == compare, store value; atomically. Gives the old value."""
    p = semantics.to_rvalue(_pointer(ptr))
    if not isinstance(p.type, PtrType):
        raise semantics.error(f"atomic_cas needs a pointer, found {p.type}")
    t = p.type.elem
    if not (isinstance(t, ir.ScalarType) and t.is_int and t.bits in (32, 64)):
        # (the verifier's rule: a float's compare would be by bits, not by value, so it is the user's to write)
        hint = None
        if isinstance(t, ir.ScalarType) and t.is_float and t.bits in (32, 64):
            bits, space = f"skc.u{t.bits}", "" if p.type.space == "global" else f", space={p.type.space!r}"
            hint = (f"compare the bits: skc.atomic_cas(skc.int_to_ptr(skc.ptr_to_int(p), {bits}{space}), "
                    f"skc.bitcast(compare, {bits}), skc.bitcast(value, {bits}))")
        raise semantics.error(f"atomic_cas takes pointers to 32- or 64-bit integers, found a pointer to {t}",
                              hint=hint)
    c, v = semantics.convert_for_store(compare, t), semantics.convert_for_store(value, t)
    return RValue(current().builder.value("mem.atomic_cas", (p.value, c.value, v.value), t), t)


# -- warp collectives ----------------------------------------------------------------------------
def _shuffle(mode: str):
    def fn(value, lane):
        semantics.refuse_opaque(f"shfl_{mode}", "a number", value)
        v = semantics.to_rvalue(value)
        if isinstance(v.type, PtrType) or v.type.is_vector:
            raise semantics.error(f"shuffles move scalars, found {v.type}",
                                  hint="shuffle a vector lane by lane: skc.vector(*[skc.shfl_xor(v[i], n) for i in "
                                       "range(lanes)])" if v.type.is_vector else
                                  "shuffle the address: skc.ptr_to_int(p), then skc.int_to_ptr(a, dtype)")
        lane_v = semantics.cast(lane, ir.i32)
        return RValue(current().builder.value("gpu.shuffle", (v.value, lane_v.value), v.type, mode=mode), v.type)
    fn.__name__ = f"shfl_{mode}"
    fn.__doc__ = ir.OPS["gpu.shuffle"].__doc__
    return skc_builtin(fn)


shfl_idx = _shuffle("idx")
shfl_up = _shuffle("up")
shfl_down = _shuffle("down")
shfl_xor = _shuffle("xor")


def _vote(mode: str, result):
    def fn(predicate):
        p = semantics.to_bool(predicate)
        t = result if mode != "ballot" or current().target.warp_size == 32 else ir.u64
        return RValue(current().builder.value("gpu.vote", (p.value,), t, mode=mode), t)
    fn.__name__ = "ballot" if mode == "ballot" else f"vote_{mode}"
    fn.__doc__ = {"any": "Whether predicate is true on any active lane of the warp (every lane gets the answer).",
                  "all": "Whether predicate is true on every active lane of the warp (every lane gets the answer).",
                  "ballot": "A bit mask of the warp's active lanes where predicate is true, lane i bit i (u32; u64 "
                            "for AMD's 64-lane wavefronts)."}[mode]
    return skc_builtin(fn)


vote_any = _vote("any", ir.i1)
vote_all = _vote("all", ir.i1)
ballot = _vote("ballot", ir.u32)

_COMBINE = {
    "sum": lambda a, b: a + b,
    "max": lambda a, b: semantics.minmax("max", [a, b]),
    "min": lambda a, b: semantics.minmax("min", [a, b]),
}


@skc_builtin
def warp_reduce(value, op: str = "sum"):
    """Reduce value over the warp's lanes (sum, max or min); every lane gets the result. Every thread of the warp
    must call it together: in a branch some of them skip, it reads lanes that are not active (undefined on a GPU;
    the interpreter stops there)."""
    combine = _COMBINE.get(op)
    if combine is None:
        raise semantics.error(f"unknown reduction {op!r}; use 'sum', 'max' or 'min'")
    semantics.refuse_opaque(f"a reduction ({op})", "a number", value)
    v = semantics.to_rvalue(value)
    if getattr(v.type, "is_vector", False):
        raise semantics.error(f"a warp or block reduction ({op}) reduces one scalar a thread, found {v.type}",
                              hint=f"reduce the lanes first ({'sum' if op == 'sum' else op}(v)), or each lane on "
                                   "its own (v[0], v[1], ...)")
    elem = ir.element_type(v.type)
    if elem.bits < 16:   # shuffles move 16, 32 or 64 bits: bools and 8-bit values reduce widened, exactly, and
        # keep their type, but for a sum of bools, which is a count (as Python's sum() of bools)
        wide = warp_reduce(semantics.cast(v, ir.with_element(v.type, ir.f32 if elem.is_float else ir.i32)), op)
        return wide if elem.is_bool and op == "sum" else semantics.cast(wide, v.type)
    cg = current()
    size = cg.target.warp_size
    offset = size // 2
    if cg.num_threads % size:
        # the block's last warp is partial: lanes past the block's end do not exist (a shuffle from them reads
        # nothing defined), so each lane adds only lanes that exist, down a tree to lane 0, which then tells all
        lanes = semantics.minmax("min", [size, cg.num_threads - warp_id() * size])
        lane = lane_id()
        while offset:
            exists = semantics.compare("lt", lane + offset, lanes)
            other = shfl_down(v, offset)
            v = combine(v, semantics.select(exists, other, semantics.constant(0, v.type) if op == "sum" else v))
            offset //= 2
        return shfl_idx(v, 0)
    while offset:
        v = combine(v, shfl_xor(v, offset))
        offset //= 2
    return v


@skc_builtin
def warp_sum(value):
    """warp_reduce(value, "sum")."""
    return warp_reduce(value, "sum")


@skc_builtin
def warp_max(value):
    """warp_reduce(value, "max")."""
    return warp_reduce(value, "max")


@skc_builtin
def warp_min(value):
    """warp_reduce(value, "min")."""
    return warp_reduce(value, "min")


@skc_builtin
def block_reduce(value, op: str = "sum"):
    """Reduce value over every thread of the block; every thread gets the result. All threads must call it."""
    v = warp_reduce(value, op)
    warps = num_warps()
    if warps == 1:
        return v
    scratch = shared((warps,), v.type)
    lane, warp = lane_id(), warp_id()
    semantics.store(scratch + warp, v, mask=semantics.compare("eq", lane, 0))
    barrier()
    total = semantics.load(scratch.ptr)
    for w in range(1, warps):
        total = _COMBINE[op](total, semantics.load(scratch + w))
    barrier()  # the scratch may be reused right after
    return total


@skc_builtin
def block_sum(value):
    """block_reduce(value, "sum")."""
    return block_reduce(value, "sum")


@skc_builtin
def block_max(value):
    """block_reduce(value, "max")."""
    return block_reduce(value, "max")


@skc_builtin
def block_min(value):
    """block_reduce(value, "min")."""
    return block_reduce(value, "min")


# -- escape hatches and debugging ----------------------------------------------------------------
@skc_builtin
def asm(code: str, *args, constraints: str, dtype=None, side_effects: bool = True):
    """Inline target assembly. `constraints` are LLVM's ("=r,r,l"); dtype gives the result type(s)."""
    # Loaded at the first skc.asm: its patterns cost about 0.4 ms of `import skc` (measured) for a rare builtin.
    from .asm_constraints import check_constraints

    if not isinstance(code, str):
        raise semantics.error(f"skc.asm takes the assembly as a string, found {type(code).__name__}")
    results = () if dtype is None else tuple(dtype) if isinstance(dtype, (tuple, list)) else (dtype,)
    result_types = [as_ir_type(d) for d in results]
    values = [semantics.to_rvalue(a) for a in args]
    check_constraints(constraints, current().target.vendor, [_asm_bits(t) for t in result_types],
                      [_asm_bits(v.type) for v in values], lambda message, hint: semantics.error(message, hint=hint))
    operands = [v.value for v in values]
    op = current().builder.create("gpu.asm", operands, result_types,
                                  {"code": code, "constraints": constraints, "side_effects": bool(side_effects)})
    values = [RValue(r, t) for r, t in zip(op.results, result_types)]
    if dtype is None:
        return None
    return tuple(values) if isinstance(dtype, (tuple, list)) else values[0]


def _asm_bits(t) -> Optional[int]:
    """The width of a value in an asm register: scalars their bits, pointers 64, a tensor map 64 (its operand is the
    generic address of the kernel parameter it lives in: an 'r' took the low half silently); None for others."""
    if isinstance(t, (PtrType, ir.PointerType, ir.TensorMapType)):
        return 64
    return t.bits if isinstance(t, ir.ScalarType) else None


def _format_of(v: RValue):
    semantics.refuse_opaque("print()", "numbers, pointers and compile-time values", v)
    t = v.type
    if isinstance(t, PtrType):
        return "%p", v
    if t.is_vector:
        raise semantics.error(f"cannot print a vector ({t}); print its elements")
    if t.is_float:
        return "%f", semantics.cast(v, ir.f64)
    if t.is_bool or t.bits < 32:
        return "%d", semantics.cast(v, ir.i32)
    if t.bits == 32:
        return ("%d" if t.is_signed else "%u"), v
    return ("%lld" if t.is_signed else "%llu"), v


@skc_builtin
def device_print(*args, sep: str = " ", end: str = "\n"):
    """print() in a kernel: every thread that runs it prints a line."""
    pieces, operands = [], []
    for arg in args:
        if isinstance(arg, Dyn):
            fmt, value = _format_of(arg.rvalue())
            pieces.append(fmt)
            operands.append(value.value)
        else:
            if _holds_run_time(arg):   # (its str() shows a placeholder, not the value a thread holds)
                raise semantics.error(f"print takes run-time values one by one, not inside a {type(arg).__name__}",
                                      hint="print(a, b) rather than print((a, b))")
            pieces.append(str(arg).replace("%", "%%"))
    # (sep and end are text too: a '%' there was read as a conversion of the format)
    text = sep.replace("%", "%%").join(pieces) + end.replace("%", "%%")
    current().builder.create("gpu.print", operands, attrs={"format": text})


def _holds_run_time(value, depth: int = 0) -> bool:
    """Whether a compile-time container holds a run-time value (a tuple, list or dict, a few levels deep)."""
    if isinstance(value, Dyn):
        return True
    if depth < 4 and isinstance(value, (tuple, list, set, frozenset)):
        return any(_holds_run_time(item, depth + 1) for item in value)
    if depth < 4 and isinstance(value, dict):
        return any(_holds_run_time(item, depth + 1) for pair in value.items() for item in pair)
    return False


def max_unroll() -> int:
    """How many iterations static_range loops may unroll in one kernel, all loops together: SKC_MAX_UNROLL,
    else 4096. Compile time grows with the unrolled code (LLVM's instruction selection and scheduling most)."""
    import os

    text = os.environ.get("SKC_MAX_UNROLL", "").strip()
    if text and not text.isdigit():   # (read as 4096, the limit would hold a user who asked for more)
        raise semantics.error(f"SKC_MAX_UNROLL must be a whole number of iterations, found {text!r}",
                              hint="set it to a number such as 8192, or unset it for the default 4096")
    return int(text) if text else 4096


class static_range:
    """`for i in skc.static_range(n)`: a loop unrolled at compile time (i is a Python int). A kernel unrolls at
    most max_unroll() iterations of these loops in all; `max_unroll=` raises the limit for one loop."""

    def __init__(self, start, stop: Optional[int] = None, step: int = 1, *, max_unroll: Optional[int] = None):
        if stop is None:
            start, stop = 0, start
        for bound in (start, stop, step):
            if isinstance(bound, Dyn):
                raise semantics.error("static_range bounds must be known at compile time",
                                      hint="use range() for a run-time loop")
        start, stop, step = (compile_time_int(bound, "a static_range bound") for bound in (start, stop, step))
        if step == 0:
            raise semantics.error("static_range() step must not be zero")
        self.range = range(start, stop, step)
        self.max_unroll = max_unroll

    def __iter__(self):
        return iter(self.range)

    def __len__(self):
        return len(self.range)
