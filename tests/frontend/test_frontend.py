"""The frontend: what Python constructs become in the tile IR (CHECK-style assertions)."""
import pytest

import skc
from helpers import check_lines, check_not, tile_ir

F32P = skc.Ptr[skc.f32]
I32P = skc.Ptr[skc.i32]


@skc.kernel
def add(x: F32P, y: F32P, out: F32P, n: skc.i32):
    i = skc.block_id(0) * skc.block_dim(0) + skc.thread_id(0)
    if i < n:
        out[i] = x[i] + y[i]


def test_spmd_kernel():
    text = tile_ir(add, block=256)
    check_lines(text, r"kernel @add\(%0: ptr<global>, %1: ptr<global>, %2: ptr<global>, %3: i32\)",
                r"gpu.block_id \{dim = 0\}", r"arith.constant \{value = 256\}", r"gpu.thread_id",
                r"arith.cmp .* \{pred = \"lt\"\}", r"scf.if", r"ptr.offset .* \{elem = f32\}",
                r"mem.load .* : f32", r"arith.add .* : f32", r"mem.store")


def test_block_dim_of_one_is_a_constant():
    @skc.kernel
    def k(x: I32P):
        x[skc.thread_id(1)] = skc.thread_id(0)

    text = tile_ir(k, block=64, passes=False)
    assert text.count("gpu.thread_id") == 1


@skc.kernel
def promotions(x: F32P, i: skc.i32, j: skc.i64, u: skc.u32, h: skc.f16, b: skc.bf16):
    x[0] = i + 1          # i32
    x[1] = i + j          # i64
    x[2] = i * 0.5        # f32
    x[3] = h + b          # f32
    x[4] = u - 1          # u32
    x[5] = i / 2          # true division: f32
    x[6] = i // 2         # floor division on ints
    x[7] = i % 3


def test_promotion_rules():
    text = tile_ir(promotions, passes=False)
    check_lines(text,
                r"arith.add %\d+, %\d+ : i32",
                r"arith.cast %\d+ : i64", r"arith.add %\d+, %\d+ : i64",
                r"arith.cast %\d+ : f32", r"arith.mul %\d+, %\d+ : f32",
                r"arith.cast %\d+ : f32", r"arith.cast %\d+ : f32", r"arith.add %\d+, %\d+ : f32",
                r"arith.constant \{value = 1\} : u32", r"arith.sub %\d+, %\d+ : u32",
                r"arith.div %\d+, %\d+ : f32",
                r"arith.div %\d+, %\d+ : i32", r"arith.rem", r"arith.select",
                r"arith.rem %\d+, %\d+ : i32")


@skc.kernel
def control_flow(x: F32P, n: skc.i32):
    total = 0.0
    for i in range(n):
        if x[i] < 0.0:
            continue
        if x[i] > 100.0:
            break
        total += x[i]
    k = 0
    while k < n:
        k += 3
    x[0] = total + k


def test_loops_break_continue():
    text = tile_ir(control_flow, passes=False)
    check_lines(text, r"var.alloc : var<f32>", r"var.store", r"scf.for .* \{label = \"(L\d+)\"\}",
                r"scf.continue \{label = \"L\d+\"\}", r"scf.break \{label = \"L\d+\"\}",
                r"scf.loop", r"scf.break")


@skc.kernel
def unrolled(x: F32P):
    for i in skc.static_range(4):
        x[i] = i * 2.0


def test_static_range_unrolls():
    text = tile_ir(unrolled, passes=False)
    assert text.count("mem.store") == 4
    check_not(text, r"scf\.for")


@skc.kernel
def compile_time_if(x: F32P, mode: skc.constexpr):
    if mode == "double":
        x[0] = x[0] * 2.0
    else:
        x[0] = x[0] + 1.0


def test_compile_time_if_takes_one_branch():
    doubled = tile_ir(compile_time_if, F32P, "double", passes=False)
    assert "arith.mul" in doubled and "arith.add" not in doubled and "scf.if" not in doubled
    other = tile_ir(compile_time_if, F32P, "add", passes=False)
    assert "arith.add" in other and "arith.mul" not in other


class Recorder:
    """A context manager whose exit writes `value` at `ptr`: it must run on every path out."""

    def __init__(self, ptr, value):
        self.ptr = ptr
        self.value = value

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        skc.store(self.ptr, self.value)


@skc.kernel
def with_every_exit(x: F32P, out: F32P, n: skc.i32):
    for i in range(n):
        with Recorder(out + i, 7.0):
            if x[i] > 0.0:
                continue
            if x[i] < -1.0:
                break
            if x[i] == -0.5:
                return
            x[i] = 2.0


def test_with_exit_runs_on_every_path():
    text = tile_ir(with_every_exit, passes=False)
    # the exit's store precedes each jump and ends the normal path
    check_lines(text, r"mem.store .*", r"scf.continue", r"mem.store .*", r"scf.break",
                r"mem.store .*", r"func.return", r"mem.store .*", r"mem.store .*")
    assert text.count("7.0") == 4


@skc.func
def clamp(v, lo, hi):
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


@skc.kernel
def early_returns(x: F32P):
    x[0] = clamp(x[0], 0.0, 1.0)


def test_early_return_from_inlined_function():
    text = tile_ir(early_returns, passes=False)
    check_lines(text, r"scf.block \{label = \"(R\d+)\"\}", r"scf.break \{label = \"R\d+\"\}",
                r"scf.break \{label = \"R\d+\"\}", r"var.load", r"mem.store")


class Counter:
    def __init__(self, start):
        self.value = skc.i32(start)

    def bump(self, by):
        self.value += by
        return self.value


@skc.kernel
def methods_inline(x: I32P, n: skc.i32):
    counter = Counter(0)
    for i in range(n):
        counter.bump(x[i])
    x[0] = counter.value


def test_methods_of_plain_classes_inline_with_state_in_slots():
    text = tile_ir(methods_inline, passes=False)
    check_lines(text, r"var.alloc : var<i32>", r"scf.for", r"var.load", r"arith.add", r"var.store",
                r"var.load", r"mem.store")


@skc.kernel
def comprehension(x: F32P):
    values = [x[i] for i in range(4)]
    total = sum(values)
    x[4] = total


def test_comprehension_over_compile_time_range():
    text = tile_ir(comprehension, passes=False)
    assert text.count("mem.load") == 4


@skc.kernel
def counter_in_loop(x: I32P, n: skc.i32):
    state = Holder()
    for i in range(n):
        state.count += 1
    x[0] = state.count


class Holder:
    def __init__(self):
        self.count = 0


def test_compile_time_attribute_changed_in_runtime_loop_is_kept_in_a_slot():
    text = tile_ir(counter_in_loop, passes=False)
    check_lines(text, r"var.alloc : var<i32>", r"var.store", r"scf.for", r"var.load", r"arith.add",
                r"var.store")


class Hidden:
    def __init__(self):
        self.count = 0

    def bump(self):
        self.count += 1


@skc.kernel
def hidden_counter(x: I32P, n: skc.i32):
    state = Hidden()
    for i in range(n):
        state.bump()
    x[0] = state.count


def test_compile_time_attribute_changed_by_a_method_in_a_loop_is_an_error():
    with pytest.raises(skc.CompileError, match="attribute 'count' holds the compile-time value 0"):
        tile_ir(hidden_counter)


@skc.kernel
def list_accumulators(x: F32P, n: skc.i32):
    acc = [0.0] * 4
    for k in range(n):
        for j in skc.static_range(4):
            acc[j] += x[k * 4 + j]
    for j in skc.static_range(4):
        x[j] = acc[j]


def test_list_elements_assigned_in_a_loop_live_in_slots():
    text = tile_ir(list_accumulators, passes=False)
    assert text.count("var.alloc : var<f32>") == 4


@skc.kernel
def shared_and_barrier(x: F32P):
    tile = skc.shared((32, 33), skc.f32)
    t = skc.thread_id(0)
    tile[t, 0] = x[t]
    skc.barrier()
    x[t] = tile[0, t]


def test_shared_arrays_are_laid_out_statically():
    text = tile_ir(shared_and_barrier, block=32, passes=False)
    check_lines(text, r"shared_bytes = 4224", r"mem.shared \{offset = 0, bytes = 4224\}", r"gpu.barrier")


@skc.kernel
def reductions(x: F32P):
    v = x[skc.thread_id(0)]
    x[0] = skc.warp_sum(v)
    x[1] = skc.block_max(v)


def test_reductions_use_shuffles_and_shared_memory():
    text = tile_ir(reductions, block=128, passes=False)
    assert text.count('gpu.shuffle') == 10
    check_lines(text, r"mem.shared", r"gpu.barrier", r"gpu.barrier")


@skc.kernel
def short_circuit(x: F32P, p: I32P, n: skc.i32):
    i = skc.thread_id(0)
    if i < n and p[i] > 0:
        x[i] = 1.0


def test_and_with_a_load_on_the_right_short_circuits():
    text = tile_ir(short_circuit, passes=False)
    # the load of p[i] happens only where i < n
    check_lines(text, r"arith.cmp", r"scf.if", r"mem.load .* : i32", r"var.store")


@skc.kernel
def inline_asm(x: I32P):
    x[0] = skc.asm("mov.u32 $0, %laneid;", constraints="=r", dtype=skc.i32)


def test_inline_asm():
    text = tile_ir(inline_asm, passes=False)
    assert 'gpu.asm {code = "mov.u32 $0, %laneid;", constraints = "=r", side_effects = true} : i32' in text


def test_tile_ir_round_trips_through_the_parser():
    from skc import ir

    for kernel, args in ((control_flow, ()), (with_every_exit, ()), (early_returns, ()), (reductions, ())):
        text = tile_ir(kernel, *args, passes=False)
        assert ir.print_module(ir.parse_module(text)) == text


@skc.kernel
def array_runtime_index(x: I32P):
    buffer = skc.shared((64,), skc.i32)
    t = skc.thread_id(0)
    buffer[t] = x[t]
    skc.barrier()
    x[t] = (buffer + (63 - t))[0]


def test_arrays_take_runtime_indices_and_offsets():
    text = tile_ir(array_runtime_index, block=64, passes=False)
    check_lines(text, r"mem.shared", r"ptr.offset %\d+, %\d+ \{elem = i32\} : ptr<shared>", r"mem.store",
                r"gpu.barrier", r"arith.sub", r"ptr.offset", r"mem.load .* : i32")
