"""The CPU interpreter of the tile IR against numpy and Python: kernels from the frontend and
from IR text, control flow, warps, barriers, atomics, numerics, and the faults it reports."""
from __future__ import annotations

import inspect
import math
import struct
import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skc import ir
from skc.diagnostics import DeadlockError, InterpreterError, LaunchError
from skc.frontend import POINTER, SCALAR, ParamSpec, PtrType, Specialization, compile_to_ir
from skc.frontend import language as L
from skc.runtime.interpreter import Memory, run
from skc.target import get_target

TARGET = get_target("sm_90a")
RNG = np.random.default_rng(1234)


# -- helpers ------------------------------------------------------------------------------------
def ptr(elem):
    return PtrType(elem)


def compile_kernel(fn, block=(128, 1, 1), **params) -> ir.Function:
    """Compile fn with each parameter a pointer (ptr(elem)) or a scalar (an IR type)."""
    specs = tuple(ParamSpec(name, POINTER, t) if isinstance(t, PtrType) else ParamSpec(name, SCALAR, t)
                  for name, t in params.items())
    module, _ = compile_to_ir(fn, Specialization(specs, block), TARGET)
    return module.function()


def launch(function, grid, *args, memory=None):
    """Run with numpy arrays mapped into memory (written in place) and numbers passed as they are."""
    memory = memory or Memory()
    values = [memory.map_array(a, name=f"arg{i}") if isinstance(a, np.ndarray) else a for i, a in enumerate(args)]
    run(function, grid=grid, block=tuple(function.attrs["block"]), args=values, memory=memory, target=TARGET)
    return memory


def parse(text: str) -> ir.Function:
    function = ir.parse_module(text).function()
    ir.verify(function)
    return function


def line_of(fn, marker: str) -> int:
    """The line number of the line of fn's source that contains marker."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if marker in line)


def elementwise(body: str, a: str, b: str, out: str, threads: int = 64) -> ir.Function:
    """A kernel loading %a: a and %b: b per thread, running body (which defines %r: out), storing %r."""
    return parse(f"""
kernel @k(%x: ptr<global>, %y: ptr<global>, %out: ptr<global>) {{block = [{threads}, 1, 1]}} {{
  %tid = gpu.thread_id {{dim = 0}} : i32
  %px = ptr.offset %x, %tid {{elem = {a}}} : ptr<global>
  %a = mem.load %px : {a}
  %py = ptr.offset %y, %tid {{elem = {b}}} : ptr<global>
  %b = mem.load %py : {b}
  {body}
  %po = ptr.offset %out, %tid {{elem = {out}}} : ptr<global>
  mem.store %po, %r
}}
""")


def _bf16_value(bits: int) -> Fraction:
    """The value of a positive bf16 pattern; 0x7F80 (inf) stands for 2**128, where the exponent would go on."""
    if bits == 0x7F80:
        return Fraction(2) ** 128
    return Fraction(struct.unpack("<f", struct.pack("<I", bits << 16))[0])


def bf16_reference(values) -> np.ndarray:
    """The nearest bf16 (ties to even) of each value, as uint16 bits, by exact rational comparison."""
    out = []
    for value in np.asarray(values, np.float64).tolist():
        if math.isnan(value):   # (NVIDIA's conversions give the canonical NaN, whatever the sign and payload)
            out.append(0x7FFF)
            continue
        magnitude = Fraction(abs(value))
        low, high = 0, 0x7F80          # positive patterns increase with their values: bisect
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if _bf16_value(middle) <= magnitude else (low, middle)
        below, above = magnitude - _bf16_value(low), _bf16_value(high) - magnitude
        bits = low if below < above or (below == above and low % 2 == 0) or below == 0 else high
        out.append(bits | (0x8000 if math.copysign(1.0, value) < 0 else 0))
    return np.array(out, np.uint16)


# -- frontend kernels against numpy ---------------------------------------------------------------
def vector_add(a, b, c, n):
    i = L.block_id(0) * L.block_dim(0) + L.thread_id(0)
    if i < n:
        c[i] = a[i] + b[i]


@pytest.mark.parametrize("n", [1024, 1000, 1])
def test_vector_add_with_masked_tail(n):
    f = compile_kernel(vector_add, (128, 1, 1), a=ptr(ir.f32), b=ptr(ir.f32), c=ptr(ir.f32), n=ir.i32)
    a, b = RNG.random(1024, np.float32), RNG.random(1024, np.float32)
    c = np.full(1024, -7.0, np.float32)
    launch(f, (-(-n // 128), 1, 1), a, b, c, n)
    np.testing.assert_array_equal(c[:n], a[:n] + b[:n])
    assert (c[n:] == -7.0).all()


def test_vector_add_of_a_million_elements_is_fast():
    f = compile_kernel(vector_add, (256, 1, 1), a=ptr(ir.f32), b=ptr(ir.f32), c=ptr(ir.f32), n=ir.i32)
    n = 1 << 20
    a, b, c = RNG.random(n, np.float32), RNG.random(n, np.float32), np.zeros(n, np.float32)
    start = time.perf_counter()
    launch(f, (n // 256, 1, 1), a, b, c, n)
    assert time.perf_counter() - start < 5.0
    np.testing.assert_array_equal(c, a + b)


def reductions(x, warp_out, block_out):
    i = L.block_id(0) * 256 + L.thread_id(0)
    total = L.block_sum(x[i])
    partial = L.warp_sum(x[i])
    if L.lane_id() == 0:
        warp_out[i // 32] = partial
    if L.thread_id(0) == 0:
        block_out[L.block_id(0)] = total


def test_warp_sum_and_block_sum():
    f = compile_kernel(reductions, (256, 1, 1), x=ptr(ir.f32), warp_out=ptr(ir.f32), block_out=ptr(ir.f32))
    x = RNG.integers(-50, 50, 1024).astype(np.float32)   # small integers: every order of summing is exact
    warp_out, block_out = np.zeros(32, np.float32), np.zeros(4, np.float32)
    launch(f, (4, 1, 1), x, warp_out, block_out)
    np.testing.assert_array_equal(warp_out, x.reshape(32, 32).sum(axis=1))
    np.testing.assert_array_equal(block_out, x.reshape(4, 256).sum(axis=1))


TILE = 8


def sgemm(a, b, c, m, n, k):
    tile_a = L.shared((TILE, TILE), "f32")
    tile_b = L.shared((TILE, TILE), "f32")
    tx, ty = L.thread_id(0), L.thread_id(1)
    row, col = L.block_id(1) * TILE + ty, L.block_id(0) * TILE + tx
    acc = 0.0
    for t in range(0, k, TILE):
        tile_a[ty, tx] = a[row * k + t + tx]
        tile_b[ty, tx] = b[(t + ty) * n + col]
        L.barrier()
        for kk in range(TILE):
            acc += tile_a[ty, kk] * tile_b[kk, tx]
        L.barrier()
    c[row * n + col] = acc


def test_sgemm_tile_with_shared_memory_and_barriers():
    f = compile_kernel(sgemm, (TILE, TILE, 1), a=ptr(ir.f32), b=ptr(ir.f32), c=ptr(ir.f32), m=ir.i32, n=ir.i32,
                       k=ir.i32)
    m, n, k = 16, 24, 32
    a = RNG.integers(-4, 5, (m, k)).astype(np.float32)
    b = RNG.integers(-4, 5, (k, n)).astype(np.float32)
    c = np.zeros((m, n), np.float32)
    launch(f, (n // TILE, m // TILE, 1), a, b, c, m, n, k)
    np.testing.assert_array_equal(c, a @ b)


def control_flow(out):
    t = L.thread_id(0)
    acc = 0
    for k in range(t):
        if k % 3 == 1:
            continue
        acc += k
        if acc > 50:
            if t % 2 == 0:
                out[t] = -acc
                return          # a return in a nested if inside a loop
            break
    j = 0
    while j * j < t:
        j += 1
    out[t] = acc * 100 + j


def control_flow_reference(t: int) -> int:
    acc = 0
    for k in range(t):
        if k % 3 == 1:
            continue
        acc += k
        if acc > 50:
            if t % 2 == 0:
                return -acc
            break
    j = 0
    while j * j < t:
        j += 1
    return acc * 100 + j


def test_loops_with_break_continue_and_early_return():
    f = compile_kernel(control_flow, (96, 1, 1), out=ptr(ir.i32))
    out = np.zeros(96, np.int32)
    launch(f, (1, 1, 1), out)
    assert out.tolist() == [control_flow_reference(t) for t in range(96)]


def nested_breaks(out, n):
    t = L.thread_id(0)
    found = -1
    for i in range(n):
        for j in range(n):
            if (i * n + j) * (t + 1) % 7 == 6:
                if j > i:
                    found = i * 100 + j
                    break
        if found >= 0:
            break
    out[t] = found


def test_breaks_of_nested_loops_per_thread():
    f = compile_kernel(nested_breaks, (64, 1, 1), out=ptr(ir.i32), n=ir.i32)
    out = np.zeros(64, np.int32)
    launch(f, (1, 1, 1), out, 9)

    def reference(t):
        for i in range(9):
            for j in range(9):
                if (i * 9 + j) * (t + 1) % 7 == 6 and j > i:
                    return i * 100 + j
        return -1
    assert out.tolist() == [reference(t) for t in range(64)]


def collatz(out):
    t = L.thread_id(0) + 1
    steps = 0
    while t != 1:
        if t % 2 == 0:
            t = t // 2
        else:
            t = 3 * t + 1
        steps += 1
    out[L.thread_id(0)] = steps


def test_while_loop_with_per_thread_trip_counts():
    f = compile_kernel(collatz, (128, 1, 1), out=ptr(ir.i32))
    out = np.zeros(128, np.int32)
    launch(f, (1, 1, 1), out)

    def steps(t):
        count = 0
        while t != 1:
            t = t // 2 if t % 2 == 0 else 3 * t + 1
            count += 1
        return count
    assert out.tolist() == [steps(t + 1) for t in range(128)]


def while_with_continue(out):
    t = L.thread_id(0)
    i = 0
    acc = 0
    while i < t + 3:
        i += 1
        if i % 3 == 0:
            continue
        acc += i
    out[t] = acc


def test_while_loop_with_continue():
    f = compile_kernel(while_with_continue, (40, 1, 1), out=ptr(ir.i32))
    out = np.zeros(40, np.int32)
    launch(f, (1, 1, 1), out)
    assert out.tolist() == [sum(i for i in range(1, t + 4) if i % 3) for t in range(40)]


def test_break_out_of_a_block_from_nested_ifs():
    f = parse("""
kernel @k(%out: ptr<global>) {block = [8, 1, 1]} {
  %slot = var.alloc : var<i32>
  %tid = gpu.thread_id {dim = 0} : i32
  %zero = arith.constant {value = 0} : i32
  %c2 = arith.constant {value = 2} : i32
  %c5 = arith.constant {value = 5} : i32
  var.store %slot, %zero
  scf.block {label = "B"} {
    %small = arith.cmp %tid, %c5 {pred = "lt"} : i1
    scf.if %small {
      %low_bit = arith.rem %tid, %c2 : i32
      %even = arith.cmp %low_bit, %zero {pred = "eq"} : i1
      scf.if %even {
        var.store %slot, %c2
        scf.break {label = "B"}
      } {
      }
    } {
    }
    var.store %slot, %c5
  }
  %v = var.load %slot : i32
  %dst = ptr.offset %out, %tid {elem = i32} : ptr<global>
  mem.store %dst, %v
}
""")
    out = np.zeros(8, np.int32)
    launch(f, (1, 1, 1), out)
    assert out.tolist() == [2, 5, 2, 5, 2, 5, 5, 5]


def histogram(x, bins, order, n):
    i = L.block_id(0) * 128 + L.thread_id(0)
    if i < n:
        L.atomic_add(bins + x[i], 1)
        order[i] = L.atomic_add(bins + 16, 1)


def test_atomics_with_conflicting_addresses():
    f = compile_kernel(histogram, (128, 1, 1), x=ptr(ir.i32), bins=ptr(ir.i32), order=ptr(ir.i32), n=ir.i32)
    n = 1000
    x = RNG.integers(0, 16, n).astype(np.int32)
    bins, order = np.zeros(17, np.int32), np.zeros(n, np.int32)
    launch(f, (8, 1, 1), x, bins, order, n)
    np.testing.assert_array_equal(bins[:16], np.bincount(x, minlength=16))
    assert bins[16] == n
    assert order.tolist() == list(range(n))  # lanes apply in lane order, blocks one after another


def float_atomics(x, total, low):
    i = L.thread_id(0)
    L.atomic_add(total, x[i])
    L.atomic_min(low, L.cast(x[i] * 8.0, "i32"))


def test_float_atomic_add_and_int_min():
    f = compile_kernel(float_atomics, (64, 1, 1), x=ptr(ir.f32), total=ptr(ir.f32), low=ptr(ir.i32))
    x = RNG.standard_normal(64).astype(np.float32)
    total, low = np.zeros(1, np.float32), np.full(1, 1000, np.int32)
    launch(f, (1, 1, 1), x, total, low)
    expected = np.float32(0)
    for value in x:              # lane order, rounding after every add
        expected = np.float32(expected + value)
    assert total[0] == expected
    assert low[0] == min(1000, int((x * 8).astype(np.int32).min()))


def spin_lock_free_counter(counter, seen):
    t = L.thread_id(0)
    old = L.atomic_cas(counter, 0, t + 1)
    seen[t] = old


def test_atomic_cas_applies_in_lane_order():
    f = compile_kernel(spin_lock_free_counter, (32, 1, 1), counter=ptr(ir.i32), seen=ptr(ir.i32))
    counter, seen = np.zeros(1, np.int32), np.full(32, -1, np.int32)
    launch(f, (1, 1, 1), counter, seen)
    assert counter[0] == 1                  # lane 0 wins, the others see its value
    assert seen.tolist() == [0] + [1] * 31


def division(a, b, quotient, remainder):
    i = L.thread_id(0)
    quotient[i] = a[i] // b[i]
    remainder[i] = a[i] % b[i]


def test_integer_floor_division_and_modulo_match_python():
    f = compile_kernel(division, (64, 1, 1), a=ptr(ir.i32), b=ptr(ir.i32), quotient=ptr(ir.i32),
                       remainder=ptr(ir.i32))
    a = RNG.integers(-100, 100, 64).astype(np.int32)
    b = RNG.integers(1, 9, 64).astype(np.int32) * RNG.choice([-1, 1], 64).astype(np.int32)
    q, r = np.zeros(64, np.int32), np.zeros(64, np.int32)
    launch(f, (1, 1, 1), a, b, q, r)
    assert q.tolist() == [int(x) // int(y) for x, y in zip(a, b)]
    assert r.tolist() == [int(x) % int(y) for x, y in zip(a, b)]


def c_division(x: int, y: int, bits: int, signed: bool):
    """C / and % (truncating), wrapped to the width; by zero the backends divide by 1 (lowering._safe_divisor), and
    the interpreter does the same."""
    if y == 0:
        q, r = x, 0
    else:
        q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)
        r = x - q * y
    mask = (1 << bits) - 1

    def wrap(v):
        v &= mask
        return v - (1 << bits) if signed and v >> (bits - 1) else v
    return wrap(q), wrap(r)


@pytest.mark.parametrize("type_name, dtype", [("i32", np.int32), ("i8", np.int8), ("u32", np.uint32),
                                              ("i64", np.int64)])
def test_arith_div_and_rem_truncate_and_survive_zero(type_name, dtype):
    f = elementwise("%q = arith.div %a, %b : T\n  %m = arith.rem %a, %b : T\n"
                    "  %r = arith.xor %q, %m : T".replace("T", type_name), type_name, type_name, type_name)
    info = np.iinfo(dtype)
    wrap = lambda values: np.array(values, np.int64).astype(dtype)  # noqa: E731  (-7 as u32 wraps)
    a = wrap([7, -7, 7, -7, 0, 5, info.min, info.min, info.max, 3] * 6 + [1, 2, 3, 4])
    b = wrap([2, 2, -2, -2, 3, 0, -1, 0, 7, int(info.max) // 3] * 6 + [0, 0, 1, 1])
    out = np.zeros(64, dtype)
    launch(f, (1, 1, 1), a, b, out)
    signed = info.min < 0
    expected = []
    for x, y in zip(a.tolist(), b.tolist()):
        q, r = c_division(x, y, info.bits, signed)
        expected.append(q ^ r)
    assert out.tolist() == expected


def c_binary(name: str, x: int, y: int, bits: int, signed: bool) -> int:
    """The tile IR's integer binary ops (two's complement, C division, saturating shifts) on Python ints."""
    mask = (1 << bits) - 1

    def wrap(v):
        v &= mask
        return v - (1 << bits) if signed and v >> (bits - 1) else v
    amount = y & mask
    if name in ("div", "rem"):
        return c_division(x, y, bits, signed)[name == "rem"]
    if name == "shl":
        return 0 if amount >= bits else wrap(x << amount)
    if name == "shr":
        return x >> min(amount, bits - 1) if signed else (0 if amount >= bits else x >> amount)
    return wrap({"add": x + y, "sub": x - y, "mul": x * y, "min": min(x, y), "max": max(x, y),
                 "and": x & y, "or": x | y, "xor": x ^ y}[name])


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(["add", "sub", "mul", "div", "rem", "min", "max", "and", "or", "xor", "shl", "shr"]),
       type_name=st.sampled_from(["i32", "u16", "i64", "u64", "i8"]), seed=st.integers(0, 2**32 - 1))
def test_integer_ops_against_python(name, type_name, seed):
    dtype = np.dtype(type_name.replace("i", "int").replace("u", "uint"))
    info, rng = np.iinfo(dtype), np.random.default_rng(seed)
    signed = info.min < 0

    def values():
        """Edge cases, small numbers and numbers across the whole range, wrapped into the type."""
        picks = [0, 1, -1, info.min, info.max, info.bits, info.bits - 1, 7]
        picks += rng.integers(-300, 300, 24).tolist() + [int(v) for v in rng.integers(0, 2**62, 32) * 4 + 3]
        wrapped = [v % (1 << info.bits) for v in picks]
        wrapped = [v - (1 << info.bits) if signed and v >> (info.bits - 1) else v for v in wrapped]
        return rng.permutation(np.array(wrapped, dtype))
    a, b = values(), values()
    f = elementwise(f"%r = arith.{name} %a, %b : {type_name}", type_name, type_name, type_name)
    out = np.zeros(64, dtype)
    launch(f, (1, 1, 1), a, b, out)
    assert out.tolist() == [c_binary(name, x, y, info.bits, signed) for x, y in zip(a.tolist(), b.tolist())]


def test_shifts_of_the_bit_width_or_more():
    f = elementwise("%l = arith.shl %a, %b : i32\n  %s = arith.shr %a, %b : i32\n"
                    "  %r = arith.xor %l, %s : i32", "i32", "i32", "i32")
    a = np.array([1, -8, 12345, -1] * 16, np.int32)
    b = np.array([0, 1, 31, 32, 33, 100, -1, 4] * 8, np.int32)
    out = np.zeros(64, np.int32)
    launch(f, (1, 1, 1), a, b, out)
    expected = []
    for x, s in zip(a.tolist(), b.tolist()):
        amount = s & 0xFFFFFFFF
        left = 0 if amount >= 32 else (x << amount)
        right = (-1 if x < 0 else 0) if amount >= 32 else (x >> amount)
        value = (left ^ right) & 0xFFFFFFFF
        expected.append(value - (1 << 32) if value >> 31 else value)
    assert out.tolist() == expected


def test_logical_shift_right_of_unsigned():
    f = elementwise("%r = arith.shr %a, %b : u8", "u8", "u8", "u8")
    a = np.full(64, 0x80, np.uint8)
    b = np.arange(64, dtype=np.uint8) % 10
    out = np.zeros(64, np.uint8)
    launch(f, (1, 1, 1), a, b, out)
    assert out.tolist() == [0x80 >> s if s < 8 else 0 for s in b.tolist()]


# -- casts and float formats ----------------------------------------------------------------------
def test_float_to_int_casts_truncate_and_saturate_with_nan_to_zero():
    f = elementwise("%i = arith.cast %a : i32\n  %u = arith.cast %a : u8\n  %u32 = arith.cast %u : i32\n"
                    "  %r = vec.from %i, %u32 : vec<2xi32>", "f32", "f32", "vec<2xi32>", threads=8)
    a = np.array([1.9, -1.9, 3e9, -3e9, np.nan, np.inf, -np.inf, 255.5], np.float32)
    out = np.zeros((8, 2), np.int32)
    launch(f, (1, 1, 1), a, np.zeros(8, np.float32), out)
    assert out[:, 0].tolist() == [1, -1, 2**31 - 1, -2**31, 0, 2**31 - 1, -2**31, 255]
    assert out[:, 1].tolist() == [1, 0, 255, 0, 0, 255, 0, 255]
    wide = elementwise("%i = arith.cast %a : i64\n  %u = arith.cast %a : u64\n  %ui = arith.bitcast %u : i64\n"
                       "  %r = vec.from %i, %ui : vec<2xi64>", "f32", "f32", "vec<2xi64>", threads=4)
    a = np.array([2.0**63, 2.0**64, -2.0**63, 2.0**62], np.float32)
    out = np.zeros((4, 2), np.int64)
    launch(wide, (1, 1, 1), a, a, out)
    assert out[:, 0].tolist() == [2**63 - 1, 2**63 - 1, -2**63, 2**62]
    assert out[:, 1].view(np.uint64).tolist() == [2**63, 2**64 - 1, 0, 2**62]


def test_int_casts_extend_by_source_signedness_and_wrap():
    f = elementwise("%s = arith.cast %a : i32\n  %w = arith.bitcast %a : u8\n  %z = arith.cast %w : i32\n"
                    "  %n = arith.cast %s : i8\n  %t = arith.cast %n : i1\n  %bi = arith.cast %t : i32\n"
                    "  %big = arith.constant {value = 1000} : i32\n  %sum = arith.add %s, %big : i32\n"
                    "  %low = arith.cast %sum : i8\n  %l32 = arith.cast %low : i32\n"
                    "  %r = vec.from %s, %z, %bi, %l32 : vec<4xi32>", "i8", "i8", "vec<4xi32>", threads=4)
    a = np.array([-1, 127, -128, 0], np.int8)
    out = np.zeros((4, 4), np.int32)
    launch(f, (1, 1, 1), a, a, out)
    wrapped = [((v + 1000 + 128) % 256) - 128 for v in a.tolist()]
    assert out.tolist() == [[-1, 255, 1, wrapped[0]], [127, 127, 1, wrapped[1]], [-128, 128, 1, wrapped[2]],
                            [0, 0, 0, wrapped[3]]]


def test_bf16_casts_round_to_nearest_even_and_store_bit_patterns():
    f = elementwise("%h = arith.cast %a : bf16\n  %s = arith.add %h, %h : bf16\n  %r = arith.bitcast %h : u16",
                    "f32", "f32", "u16")
    special = [1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.0 + 2**-8 + 2**-20, -(1.0 + 2**-8), 3.4e38, np.nan, -0.0, 1e-40]
    a = np.concatenate([np.array(special, np.float32), RNG.standard_normal(56).astype(np.float32) * 1000])
    a[-1] = np.array([0x7F800001], np.uint32).view(np.float32)[0]   # a NaN with its payload in the low bits
    out = np.zeros(64, np.uint16)
    launch(f, (1, 1, 1), a, a, out)
    np.testing.assert_array_equal(out, bf16_reference(a))


def test_f64_to_bf16_rounds_once():
    f = elementwise("%h = arith.cast %a : bf16\n  %r = arith.bitcast %h : u16", "f64", "f64", "u16")
    # 1 + 2**-8 + 2**-30 rounds up to bf16; through f32 it would tie and round down to 1.0.
    a = np.concatenate([[1 + 2**-8 + 2**-30, -(1 + 2**-8 + 2**-30), 1e300, 1e-300],
                        RNG.standard_normal(60) * 1e5]).astype(np.float64)
    out = np.zeros(64, np.uint16)
    launch(f, (1, 1, 1), a, a, out)
    np.testing.assert_array_equal(out, bf16_reference(a))
    assert out[0] == 0x3F81


def test_bf16_loads_stores_and_arithmetic():
    f = elementwise("%r = arith.mul %a, %b : bf16", "bf16", "bf16", "bf16")
    x_bits = bf16_reference(RNG.standard_normal(64))
    y_bits = bf16_reference(RNG.standard_normal(64))
    out = np.zeros(64, np.uint16)
    launch(f, (1, 1, 1), x_bits, y_bits, out)
    as_float = lambda bits: (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)  # noqa: E731
    np.testing.assert_array_equal(out, bf16_reference(as_float(x_bits) * as_float(y_bits)))


def fp8_decode(code: int, exponent_bits: int) -> float:
    """An OCP FP8 code's value, from the format's definition."""
    mantissa_bits = 7 - exponent_bits
    bias = (1 << (exponent_bits - 1)) - 1
    sign = -1.0 if code & 0x80 else 1.0
    exponent, mantissa = (code >> mantissa_bits) & ((1 << exponent_bits) - 1), code & ((1 << mantissa_bits) - 1)
    if exponent_bits == 4 and exponent == 15 and mantissa == 7:
        return math.nan
    if exponent_bits == 5 and exponent == 31:
        return sign * math.inf if mantissa == 0 else math.nan
    if exponent == 0:
        return sign * mantissa * 2.0 ** (1 - bias - mantissa_bits)
    return sign * (1 + mantissa / (1 << mantissa_bits)) * 2.0 ** (exponent - bias)


@pytest.mark.parametrize("fp8, exponent_bits", [("f8e4m3", 4), ("f8e5m2", 5)])
def test_fp8_loads_casts_and_stores_are_exact(fp8, exponent_bits):
    f = elementwise(f"%r = arith.cast %a : f32", fp8, "u8", "f32", threads=256)
    codes = np.arange(256, dtype=np.uint8)
    out = np.zeros(256, np.float32)
    launch(f, (1, 1, 1), codes, codes, out)
    expected = np.array([fp8_decode(c, exponent_bits) for c in range(256)], np.float32)
    np.testing.assert_array_equal(out, expected)   # NaNs compare equal here
    back = elementwise(f"%r = arith.cast %a : {fp8}", "f32", "f32", fp8, threads=256)
    codes_out = np.zeros(256, np.uint8)
    launch(back, (1, 1, 1), out, out, codes_out)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(codes_out[finite], codes[finite])
    assert all(math.isnan(fp8_decode(int(c), exponent_bits)) for c in codes_out[np.isnan(expected)])
    largest = max(v for v in expected.tolist() if math.isfinite(v))   # satfinite: infinities saturate
    saturated = [fp8_decode(int(c), exponent_bits) for c in codes_out[np.isinf(expected)]]
    assert saturated == ([] if fp8 == "f8e4m3" else [largest, -largest])


def test_fp8_e4m3_casts_saturate_like_satfinite():
    f = elementwise("%h = arith.cast %a : f8e4m3\n  %r = arith.cast %h : f32", "f32", "f32", "f32", threads=8)
    a = np.array([1000.0, -1000.0, np.inf, -np.inf, 464.0, 0.3, 2**-10, np.nan], np.float32)
    out = np.zeros(8, np.float32)
    launch(f, (1, 1, 1), a, a, out)
    assert out[:7].tolist() == [448.0, -448.0, 448.0, -448.0, 448.0, 0.3125, 0.0]  # 2**-10 ties to even 0
    assert np.isnan(out[7])


def nearest_f32(exact: Fraction) -> np.float32:
    """The float32 nearest to an exact rational (ties to even), by comparing exact distances."""
    guess = np.float32(float(exact))
    candidates = [guess, np.nextafter(guess, np.float32(np.inf)), np.nextafter(guess, np.float32(-np.inf))]
    return min(candidates, key=lambda c: (abs(Fraction(float(c)) - exact), int(c.view(np.uint32)) & 1))


def test_f64_fma_past_the_range_is_infinite():
    """An f64 fma whose exact result overflows is inf (IEEE), not an internal error: before Python 3.13 (no
    math.fma) the exact sum's float() raised OverflowError (the mixed-type fuzzer, tests/fuzz/mixgen.py)."""
    from skc.runtime.interpreter.numerics import _fma64_scalar

    assert _fma64_scalar(1e300, 1e300, 1.0) == math.inf and _fma64_scalar(-1e300, 1e300, 1.0) == -math.inf
    assert _fma64_scalar(1e300, 1e300, -math.inf) == -math.inf and _fma64_scalar(1.5, 2.0, 0.25) == 3.25


def test_fma_rounds_once():
    f = parse("""
kernel @k(%x: ptr<global>, %out: ptr<global>) {block = [64, 1, 1]} {
  %tid = gpu.thread_id {dim = 0} : i32
  %px = ptr.offset %x, %tid {elem = vec<4xf32>} : ptr<global>
  %v = mem.load %px : vec<4xf32>
  %a = vec.extract %v {index = 0} : f32
  %b = vec.extract %v {index = 1} : f32
  %c = vec.extract %v {index = 2} : f32
  %r = math.fma %a, %b, %c : f32
  %po = ptr.offset %out, %tid {elem = f32} : ptr<global>
  mem.store %po, %r
}
""")
    x = RNG.standard_normal((64, 4)).astype(np.float32)
    x[:32, 2] = -(x[:32, 0].astype(np.float64) * x[:32, 1]).astype(np.float32)   # cancellation: low bits show
    # (1 + 2**-12)**2 = 1 + 2**-11 + 2**-24 lies halfway between two floats; a tiny c decides the
    # rounding, which a sum rounded to f64 first would lose.
    x[32:36, :3] = [[1 + 2**-12, 1 + 2**-12, 2**-80], [1 + 2**-12, 1 + 2**-12, -2**-80],
                    [1 + 2**-12, -1 - 2**-12, 2**-80], [1 + 2**-12, 1 + 2**-12, 0.0]]
    out = np.zeros(64, np.float32)
    launch(f, (1, 1, 1), x, out)
    expected = [nearest_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))) for a, b, c, _ in x]
    np.testing.assert_array_equal(out, np.array(expected, np.float32))
    assert out[32] == np.float32(1 + 2**-11 + 2**-23) and out[33] == np.float32(1 + 2**-11)


def test_f64_fma_overflows_to_infinity():
    """A product past the largest f64 is infinite (it raised OverflowError from Fraction's float());
    a finite product plus an infinity is that infinity (not inf - inf of a product rounded first)."""
    f = parse("""
kernel @k(%x: ptr<global>, %y: ptr<global>, %out: ptr<global>) {block = [4, 1, 1]} {
  %tid = gpu.thread_id {dim = 0} : i32
  %px = ptr.offset %x, %tid {elem = vec<2xf64>} : ptr<global>
  %v = mem.load %px : vec<2xf64>
  %a = vec.extract %v {index = 0} : f64
  %b = vec.extract %v {index = 1} : f64
  %py = ptr.offset %y, %tid {elem = f64} : ptr<global>
  %c = mem.load %py : f64
  %r = math.fma %a, %b, %c : f64
  %po = ptr.offset %out, %tid {elem = f64} : ptr<global>
  mem.store %po, %r
}
""")
    x = np.array([[1e200, 1e200], [-1e200, 1e200], [1e200, 1e200], [1.5, 2.0]], np.float64)
    y = np.array([0.0, 1.0, -np.inf, 0.25])
    out = np.zeros(4, np.float64)
    launch(f, (1, 1, 1), x, y, out)
    assert out.tolist() == [np.inf, -np.inf, -np.inf, 3.25]


def test_float_min_max_ignore_nan_and_compare_is_ordered_except_ne():
    f = elementwise("%lo = arith.min %a, %b : f32\n  %hi = arith.max %a, %b : f32\n"
                    "  %lt = arith.cmp %a, %b {pred = \"lt\"} : i1\n  %ne = arith.cmp %a, %b {pred = \"ne\"} : i1\n"
                    "  %fl = arith.cast %lt : f32\n  %fn = arith.cast %ne : f32\n"
                    "  %r = vec.from %lo, %hi, %fl, %fn : vec<4xf32>", "f32", "f32", "vec<4xf32>", threads=4)
    a = np.array([np.nan, 1.0, np.nan, 2.0], np.float32)
    b = np.array([3.0, np.nan, np.nan, 1.0], np.float32)
    out = np.zeros((4, 4), np.float32)
    launch(f, (1, 1, 1), a, b, out)
    np.testing.assert_array_equal(out[:, 0], [3.0, 1.0, np.nan, 1.0])
    np.testing.assert_array_equal(out[:, 1], [3.0, 1.0, np.nan, 2.0])
    assert out[:, 2].tolist() == [0, 0, 0, 0]
    assert out[:, 3].tolist() == [1, 1, 1, 1]


def math_functions(x, out):
    i = L.thread_id(0)
    v = x[i]
    out[i * 4] = L.exp(v)
    out[i * 4 + 1] = L.sqrt(v)
    out[i * 4 + 2] = L.rsqrt(v)
    out[i * 4 + 3] = L.tanh(v)


def test_math_functions_in_f32():
    f = compile_kernel(math_functions, (64, 1, 1), x=ptr(ir.f32), out=ptr(ir.f32))
    x = RNG.random(64).astype(np.float32) * 4 + 0.1
    out = np.zeros(256, np.float32)
    launch(f, (1, 1, 1), x, out)
    got = out.reshape(64, 4)
    np.testing.assert_allclose(got[:, 0], np.exp(x), rtol=2e-7)
    np.testing.assert_array_equal(got[:, 1], np.sqrt(x))         # correctly rounded
    np.testing.assert_allclose(got[:, 2], 1 / np.sqrt(x.astype(np.float64)), rtol=3e-7)
    np.testing.assert_allclose(got[:, 3], np.tanh(x), rtol=3e-7)


def test_f16_arithmetic_rounds_to_half():
    f = elementwise("%r = arith.add %a, %b : f16", "f16", "f16", "f16")
    a = (RNG.standard_normal(64) * 100).astype(np.float16)
    b = (RNG.standard_normal(64) * 0.01).astype(np.float16)
    out = np.zeros(64, np.float16)
    launch(f, (1, 1, 1), a, b, out)
    np.testing.assert_array_equal(out, (a.astype(np.float64) + b.astype(np.float64)).astype(np.float16))


# -- warps ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["idx", "up", "down", "xor"])
def test_shuffle_modes(mode):
    f = elementwise(f"%r = gpu.shuffle %a, %b {{mode = \"{mode}\"}} : f32", "f32", "i32", "f32")
    x = RNG.random(64).astype(np.float32)
    amount = RNG.integers(0, 40, 64).astype(np.int32)
    out = np.zeros(64, np.float32)
    launch(f, (1, 1, 1), x, amount, out)
    expected = []
    for lane, n in enumerate(amount.tolist()):
        base, within = lane - lane % 32, lane % 32
        n &= 31  # only the low bits count, as in PTX
        source = {"idx": n, "up": within - n, "down": within + n, "xor": within ^ n}[mode]
        expected.append(x[base + source] if 0 <= source < 32 else x[lane])
    np.testing.assert_array_equal(out, expected)


def butterfly(x, out):
    i = L.thread_id(0)
    out[i] = L.shfl_xor(x[i], 1) + L.shfl_down(x[i], 16)


def test_frontend_shuffles():
    f = compile_kernel(butterfly, (64, 1, 1), x=ptr(ir.i32), out=ptr(ir.i32))
    x = RNG.integers(0, 1000, 64).astype(np.int32)
    out = np.zeros(64, np.int32)
    launch(f, (1, 1, 1), x, out)
    lanes = np.arange(64)
    down = np.where(lanes % 32 + 16 < 32, lanes + 16, lanes)
    np.testing.assert_array_equal(out, x[lanes ^ 1] + x[down])


def votes(x, out):
    i = L.thread_id(0)
    if i % 4 != 3:                # the vote sees only the active lanes of each warp
        positive = x[i] > 0
        out[i * 3] = L.cast(L.vote_any(positive), "i32")
        out[i * 3 + 1] = L.cast(L.vote_all(positive), "i32")
        out[i * 3 + 2] = L.cast(L.ballot(positive), "i32")


def test_votes_over_the_active_lanes_of_each_warp():
    f = compile_kernel(votes, (96, 1, 1), x=ptr(ir.i32), out=ptr(ir.i32))
    x = np.ones(96, np.int32)
    x[3] = x[7] = -1          # inactive lanes: must not matter
    x[32:64] = -1             # warp 1: none positive
    x[64 + 5] = -1            # warp 2: one active lane negative
    out = np.zeros(96 * 3, np.int32)
    launch(f, (1, 1, 1), x, out)
    got = out.reshape(96, 3)
    active = np.arange(96) % 4 != 3
    for warp in range(3):
        lanes = np.arange(warp * 32, warp * 32 + 32)
        p = (x[lanes] > 0) & active[lanes]
        ballot = sum(1 << j for j in range(32) if p[j])
        row = got[lanes[0]]
        assert row.tolist() == [int(p.any()), int(all(x[lanes][active[lanes]] > 0)),
                                ballot - (1 << 32) if ballot >= 1 << 31 else ballot]
        assert (got[lanes][~active[lanes]] == 0).all()


def test_ballot_of_a_wavefront_of_64_gives_u64():
    f = parse("""
kernel @k(%out: ptr<global>) {block = [128, 1, 1]} {
  %tid = gpu.thread_id {dim = 0} : i32
  %c3 = arith.constant {value = 3} : i32
  %c0 = arith.constant {value = 0} : i32
  %r = arith.rem %tid, %c3 : i32
  %p = arith.cmp %r, %c0 {pred = "eq"} : i1
  %b = gpu.vote %p {mode = "ballot"} : u64
  %o = ptr.offset %out, %tid {elem = u64} : ptr<global>
  mem.store %o, %b
}
""")
    out = np.zeros(128, np.uint64)
    memory = Memory()
    run(f, grid=1, block=(128, 1, 1), args=[memory.map_array(out)], memory=memory, target="gfx942")
    for wave in range(2):
        expected = sum(1 << j for j in range(64) if (64 * wave + j) % 3 == 0)
        assert out[64 * wave:64 * wave + 64].tolist() == [expected] * 64


# -- barriers and thread groups -------------------------------------------------------------------
PRODUCER_CONSUMER = """
kernel @k(%out: ptr<global>, %rounds: i32) {block = [64, 1, 1], shared_bytes = 128} {
  %tid = gpu.thread_id {dim = 0} : i32
  %c32 = arith.constant {value = 32} : i32
  %zero = arith.constant {value = 0} : i32
  %one = arith.constant {value = 1} : i32
  %buf = mem.shared {offset = 0, bytes = 128} : ptr<shared>
  %producer = arith.cmp %tid, %c32 {pred = "lt"} : i1
  scf.if %producer {
    scf.for %zero, %rounds, %one {label = "P"} { ^(%r: i32)
      %slot = ptr.offset %buf, %tid {elem = i32} : ptr<shared>
      %v = arith.mul %r, %c32 : i32
      %w = arith.add %v, %tid : i32
      mem.store %slot, %w
      gpu.barrier {id = 1, threads = 64}
      gpu.barrier {id = 2, threads = 64}
    }
  } {
    %lane = arith.sub %tid, %c32 : i32
    scf.for %zero, %rounds, %one {label = "C"} { ^(%round: i32)
      gpu.barrier {id = 1, threads = 64}
      %src = ptr.offset %buf, %lane {elem = i32} : ptr<shared>
      %got = mem.load %src : i32
      %i = arith.mul %round, %c32 : i32
      %j = arith.add %i, %lane : i32
      %dst = ptr.offset %out, %j {elem = i32} : ptr<global>
      %big = arith.mul %got, %c32 : i32
      mem.store %dst, %big
      gpu.barrier {id = 2, threads = 64}
    }
  }
}
"""


def test_warp_specialized_producer_and_consumer_with_named_barriers():
    f = parse(PRODUCER_CONSUMER)
    out = np.zeros(5 * 32, np.int32)
    launch(f, (1, 1, 1), out, 5)
    assert out.tolist() == [32 * v for v in range(5 * 32)]


def early_exit_then_barrier(x, out):
    t = L.thread_id(0)
    if t >= 40:
        return
    buffer = L.shared((1, 64), "i32")   # 2-D: `buffer[t] = v` on a 1-D array trips a frontend bug
    buffer[0, t] = x[t]
    L.barrier()                    # threads that returned count as arrived
    out[t] = buffer[0, 39 - t]


def test_returned_threads_count_as_arrived_at_block_barrier():
    f = compile_kernel(early_exit_then_barrier, (64, 1, 1), x=ptr(ir.i32), out=ptr(ir.i32))
    x = RNG.integers(0, 100, 64).astype(np.int32)
    out = np.full(64, -1, np.int32)
    launch(f, (1, 1, 1), x, out)
    np.testing.assert_array_equal(out[:40], x[:40][::-1])
    assert (out[40:] == -1).all()


def barrier_in_branch(x):
    t = L.thread_id(0)
    if t < 32:
        L.barrier()  # DEADLOCK
        x[t] = 1.0


def test_barrier_that_only_some_threads_reach_is_a_deadlock():
    f = compile_kernel(barrier_in_branch, (64, 1, 1), x=ptr(ir.f32))
    start = time.perf_counter()
    with pytest.raises(DeadlockError) as info:
        launch(f, (2, 1, 1), np.zeros(64, np.float32))
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert f":{line_of(barrier_in_branch, '# DEADLOCK')}" in message
    assert "block barrier 0" in message and "block (0, 0, 0)" in message
    assert "threads 0-31 arrived" in message and "32 of 64 threads still to arrive" in message


def test_deadlock_between_forked_groups_names_both():
    f = parse("""
kernel @k() {block = [64, 1, 1]} {
  %tid = gpu.thread_id {dim = 0} : i32
  %c32 = arith.constant {value = 32} : i32
  %low = arith.cmp %tid, %c32 {pred = "lt"} : i1
  scf.if %low {
    gpu.barrier {id = 1, threads = 64}
  } {
    gpu.barrier {id = 2, threads = 64}
  }
}
""")
    with pytest.raises(DeadlockError) as info:
        run(f, grid=(1, 1, 1), block=(64, 1, 1), args=[])
    message = str(info.value)
    assert "threads 0-31 wait at named barrier 1 (64 threads)" in message
    assert "threads 32-63 wait at named barrier 2 (64 threads)" in message


# -- memory -------------------------------------------------------------------------------------
def test_memory_places_allocations_apart_and_maps_arrays_in_place():
    mem = Memory()
    x = np.arange(10, dtype=np.float32)
    a = mem.map_array(x, name="x")
    b = mem.allocate(100, name="scratch")
    c = mem.map_array(np.zeros(3, np.int8), name="y")
    assert a and a % 256 == 0 and b % 256 == 0 and c % 256 == 0
    assert b >= a + x.nbytes + 256 and c >= b + 100 + 256
    assert (mem.view(b, np.uint8) == 0).all() and len(mem.view(b)) == 100
    mem.view(a, np.float32)[2] = 42.0
    assert x[2] == 42.0
    with pytest.raises(LaunchError, match="byte order"):
        mem.map_array(np.zeros(4, ">f4"))


def test_stores_to_read_only_arrays_fault():
    f = compile_kernel(copy_past_end, (4, 1, 1), a=ptr(ir.i32), c=ptr(ir.i32))
    frozen = np.zeros(64, np.int32)
    frozen.flags.writeable = False
    with pytest.raises(InterpreterError, match="store to read-only array 'arg1'"):
        launch(f, (1, 1, 1), np.ones(4, np.int32), frozen)


def copy_shifted(a, c):
    i = L.block_id(0) * 64 + L.thread_id(0)
    value = a[i + 1]  # OOB-LOAD
    c[i] = value


def copy_past_end(a, c):
    i = L.thread_id(0)
    c[i + 60] = a[i]  # OOB-STORE


def test_out_of_bounds_load_names_the_line_the_array_and_the_thread():
    f = compile_kernel(copy_shifted, (64, 1, 1), a=ptr(ir.f32), c=ptr(ir.f32))
    with pytest.raises(InterpreterError) as info:
        launch(f, (2, 1, 1), np.zeros(128, np.float32), np.zeros(128, np.float32))
    message = str(info.value)
    assert f":{line_of(copy_shifted, '# OOB-LOAD')}:" in message
    assert "out-of-bounds load of 4 bytes" in message and "'arg0' (512 bytes" in message
    assert "4 bytes past its end" in message and "block (1, 0, 0), thread (63, 0, 0)" in message


def test_out_of_bounds_store_is_caught_before_writing():
    f = compile_kernel(copy_past_end, (8, 1, 1), a=ptr(ir.i32), c=ptr(ir.i32))
    c = np.zeros(64, np.int32)
    with pytest.raises(InterpreterError) as info:
        launch(f, (1, 1, 1), np.ones(8, np.int32), c)
    message = str(info.value)
    assert f":{line_of(copy_past_end, '# OOB-STORE')}:" in message and "out-of-bounds store" in message
    assert "thread (4, 0, 0)" in message and "'arg1'" in message
    assert not c.any()


def vector_copy(a, c, offset):
    t = L.thread_id(0)
    v = L.load(a + offset + t * 4, width=4)  # VECTOR-LOAD
    L.store(c + t * 4, v * 2.0)


def test_vector_loads_need_aligned_addresses():
    f = compile_kernel(vector_copy, (8, 1, 1), a=ptr(ir.f32), c=ptr(ir.f32), offset=ir.i32)
    a, c = RNG.random(40).astype(np.float32), np.zeros(32, np.float32)
    launch(f, (1, 1, 1), a, c, 4)
    np.testing.assert_array_equal(c, a[4:36] * 2)
    with pytest.raises(InterpreterError) as info:
        launch(f, (1, 1, 1), a, c, 1)
    message = str(info.value)
    assert "misaligned 16-byte load" in message and f":{line_of(vector_copy, '# VECTOR-LOAD')}:" in message


def masked_vector_tail(a, c, n):
    base = L.thread_id(0) * 4
    v = L.load(a + base, mask=base < n, other=-1.0, width=4)
    L.store(c + base, v, mask=base < n)
    c[32 + L.thread_id(0)] = v[0]


def test_masked_vector_loads_give_other_and_touch_nothing():
    f = compile_kernel(masked_vector_tail, (8, 1, 1), a=ptr(ir.f32), c=ptr(ir.f32), n=ir.i32)
    a, c = RNG.random(12).astype(np.float32), np.zeros(40, np.float32)
    launch(f, (1, 1, 1), a, c, 12)   # threads 3..7 would read past a's 12 elements: masked off
    np.testing.assert_array_equal(c[:12], a)
    assert (c[12:32] == 0).all()
    assert c[32:40].tolist() == [a[0], a[4], a[8]] + [-1.0] * 5


def test_shared_memory_bounds_and_generic_pointers():
    f = parse("""
kernel @k(%out: ptr<global>) {block = [32, 1, 1], shared_bytes = 128} {
  %tid = gpu.thread_id {dim = 0} : i32
  %buf = mem.shared {offset = 0, bytes = 128} : ptr<shared>
  %slot = ptr.offset %buf, %tid {elem = i32} : ptr<shared>
  %generic = ptr.cast %slot : ptr<generic>
  mem.store %generic, %tid
  gpu.barrier
  %c31 = arith.constant {value = 31} : i32
  %other = arith.sub %c31, %tid : i32
  %src = ptr.offset %buf, %other {elem = i32} : ptr<shared>
  %v = mem.load %src : i32
  %dst = ptr.offset %out, %tid {elem = i32} : ptr<global>
  %gdst = ptr.cast %dst : ptr<generic>
  mem.store %gdst, %v
  %past = ptr.offset %buf, %c31 {elem = vec<2xi32>} : ptr<shared>
  %bad = mem.load %past : vec<2xi32>
}
""")
    out = np.zeros(32, np.int32)
    with pytest.raises(InterpreterError) as info:
        launch(f, (1, 1, 1), out)
    assert out.tolist() == list(range(31, -1, -1))
    assert "out-of-bounds load of 8 bytes at address 0xf8 in shared memory" in str(info.value)


# -- debugging ops --------------------------------------------------------------------------------
def checked(x):
    t = L.thread_id(0)
    assert x[t] >= 0.0, "negative input"  # ASSERT


def test_failed_assert_names_the_message_line_and_first_thread():
    f = compile_kernel(checked, (32, 1, 1), x=ptr(ir.f32))
    x = np.ones(32, np.float32)
    launch(f, (1, 1, 1), x)
    x[[9, 5]] = -1.0
    with pytest.raises(InterpreterError) as info:
        launch(f, (1, 1, 1), x)
    message = str(info.value)
    assert "assertion failed: negative input" in message and "thread (5, 0, 0)" in message
    assert f":{line_of(checked, '# ASSERT')}:" in message


def printing(x):
    t = L.thread_id(0)
    if t % 3 == 0:
        L.device_print("thread", t, "x =", x[t], "u =", L.cast(t, "u64") * 3)


def test_device_print_writes_one_line_per_active_thread_in_lane_order(capsys):
    f = compile_kernel(printing, (8, 1, 1), x=ptr(ir.f32))
    launch(f, (1, 1, 1), np.arange(8, dtype=np.float32) / 4)
    assert capsys.readouterr().out.splitlines() == [
        "thread 0 x = 0.000000 u = 0", "thread 3 x = 0.750000 u = 9", "thread 6 x = 1.500000 u = 18"]


def test_print_formats_follow_c():
    f = parse("""
kernel @k() {block = [2, 1, 1]} {
  %tid = gpu.thread_id {dim = 0} : i32
  %m = arith.constant {value = -1} : i32
  %x = arith.constant {value = 2.5} : f64
  %neg = arith.mul %tid, %m : i32
  gpu.print %neg, %neg, %neg, %x, %x {format = "%d %u %x|%8.3f|%e %%\\n"}
}
""")
    import contextlib
    import io
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        run(f, grid=1, block=(2, 1, 1), args=[])
    assert captured.getvalue().splitlines() == ["0 0 0|   2.500|2.500000e+00 %",
                                                "-1 4294967295 ffffffff|   2.500|2.500000e+00 %"]


def test_inline_assembly_cannot_run():
    def uses_asm(out):
        out[L.thread_id(0)] = L.asm("mov.u32 $0, %laneid;", constraints="=r", dtype="u32")  # ASM
    f = compile_kernel(uses_asm, (4, 1, 1), out=ptr(ir.u32))
    with pytest.raises(InterpreterError) as info:
        launch(f, (1, 1, 1), np.zeros(4, np.uint32))
    assert "inline assembly" in str(info.value) and f":{line_of(uses_asm, '# ASM')}:" in str(info.value)


def test_every_ir_op_has_a_handler():
    from skc.runtime.interpreter import plan
    handled = set(plan.PURE) | set(plan.EFFECTS) | set(plan.CONTROL)
    assert sorted(set(ir.OPS) - handled) == []   # the interpreter defines what each op means


def test_an_op_without_handler_fails_naming_it():
    class MysteryOp(ir.Op):   # no `name` in its body: not registered as an IR op
        pass

    function = ir.Function("k", [], attrs={"block": (4, 1, 1)})
    op = MysteryOp()
    function.body.append(op)
    with pytest.raises(InterpreterError, match="cannot run '<op>'"):
        run(function, grid=1, block=(4, 1, 1), args=[])


# -- launch checks -------------------------------------------------------------------------------
def test_launch_checks_block_and_arguments():
    f = compile_kernel(vector_add, (128, 1, 1), a=ptr(ir.f32), b=ptr(ir.f32), c=ptr(ir.f32), n=ir.i32)
    mem = Memory()
    x = mem.allocate(512)
    with pytest.raises(LaunchError, match="compiled for blocks of"):
        run(f, grid=(1, 1, 1), block=(64, 1, 1), args=[x, x, x, 128], memory=mem)
    with pytest.raises(LaunchError, match="takes 4 arguments"):
        run(f, grid=(1, 1, 1), block=(128, 1, 1), args=[x, x, x], memory=mem)
    with pytest.raises(LaunchError, match="pass an address"):
        run(f, grid=(1, 1, 1), block=(128, 1, 1), args=[np.zeros(4), x, x, 4], memory=mem)


def test_grid_ids_in_three_dimensions():
    f = parse("""
kernel @k(%out: ptr<global>) {block = [2, 2, 1]} {
  %bx = gpu.block_id {dim = 0} : i32
  %by = gpu.block_id {dim = 1} : i32
  %bz = gpu.block_id {dim = 2} : i32
  %gx = gpu.grid_dim {dim = 0} : i32
  %gy = gpu.grid_dim {dim = 1} : i32
  %tx = gpu.thread_id {dim = 0} : i32
  %ty = gpu.thread_id {dim = 1} : i32
  %zy = arith.mul %bz, %gy : i32
  %zyy = arith.add %zy, %by : i32
  %block = arith.mul %zyy, %gx : i32
  %linear = arith.add %block, %bx : i32
  %c4 = arith.constant {value = 4} : i32
  %c2 = arith.constant {value = 2} : i32
  %base = arith.mul %linear, %c4 : i32
  %row = arith.mul %ty, %c2 : i32
  %t = arith.add %row, %tx : i32
  %i = arith.add %base, %t : i32
  %dst = ptr.offset %out, %i {elem = i32} : ptr<global>
  %v = arith.mul %linear, %c2 : i32
  %lane = gpu.lane_id : i32
  %w = arith.add %v, %lane : i32
  mem.store %dst, %w
}
""")
    out = np.full(3 * 2 * 2 * 4, -1, np.int32)
    launch(f, (3, 2, 2), out)
    assert out.tolist() == [2 * (i // 4) + i % 4 for i in range(48)]
