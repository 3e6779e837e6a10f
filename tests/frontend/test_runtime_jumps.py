"""Issue 8, items 1 and 6: run-time break/continue out of unrolled loops (static_range, compile-time
while), run-time returns next to assignments, and names defined on some paths only. Each kernel runs
in the interpreter and as plain Python on the same arrays."""
import numpy as np
import pytest

import skc
from skc import ir
from frontend_run import F32P, compile_kernel, launch, matches_python
from skc.frontend import PtrType

I32 = ir.i32


def eight():
    return np.arange(1.0, 9.0, dtype=np.float32)


@skc.kernel
def break_keeps_earlier_value(x: skc.Ptr[skc.f32], n: skc.i32):
    a = x[0]
    for s in skc.static_range(2):
        if n > 0:
            break
        a = 5.0
    x[0] = a


@skc.kernel
def break_keeps_runtime_value(x: skc.Ptr[skc.f32], n: skc.i32):
    a = x[0]
    for s in skc.static_range(3):
        if n > s:
            break
        a = x[s + 1] * 2.0
    x[0] = a


@skc.kernel
def break_in_else(x: skc.Ptr[skc.f32], n: skc.i32):
    a = x[0]
    for s in skc.static_range(3):
        if n == s:
            a = x[5]
        else:
            break
    x[1] = a


@skc.kernel
def continue_skips_rest(x: skc.Ptr[skc.f32], n: skc.i32):
    total = 0.0
    count = 0
    for s in skc.static_range(4):
        if n == s:
            continue
        total += x[s]
        count += 1
    x[0] = total
    x[1] = count


@skc.kernel
def nested_static_ranges(x: skc.Ptr[skc.f32], n: skc.i32):
    a = 0.0
    for i in skc.static_range(3):
        for j in skc.static_range(3):
            if n == i + j:
                break
            if n == j:
                continue
            a += x[i * 3 + j - 2 * i]
        if n > 3 + i:
            break
        a = a * 2.0
    x[0] = a
    x[1] = i


@skc.kernel
def static_range_in_runtime_loop(x: skc.Ptr[skc.f32], n: skc.i32):
    a = 0.0
    for k in range(n):
        for s in skc.static_range(3):
            if k == s:
                continue
            if k + s > 4:
                break
            a += x[s]
    x[0] = a


class Counter:
    def __init__(self, x):
        self.x = x

    def __enter__(self):
        self.x[6] += 1.0
        return self

    def __exit__(self, *exc):
        self.x[7] += 10.0


@skc.kernel
def jumps_out_of_with(x: skc.Ptr[skc.f32], n: skc.i32):
    a = x[0]
    for s in skc.static_range(3):
        with Counter(x):
            if n == s:
                break
            if n == s + 1:
                continue
            a = a + x[s]
    x[0] = a


@skc.func
def first_over(x, n):
    found = -1
    for s in skc.static_range(5):
        if x[s] > n:
            found = s
            break
    return found


@skc.kernel
def break_inside_func(x: skc.Ptr[skc.f32], n: skc.i32):
    x[0] = first_over(x, n)


@skc.kernel
def compile_time_break_after_runtime_continue(x: skc.Ptr[skc.f32], n: skc.i32):
    a = 0.0
    for s in skc.static_range(4):
        a += 1.0
        if n > s:
            continue
        break
    x[0] = a


@skc.kernel
def while_true_runtime_break(x: skc.Ptr[skc.f32], n: skc.i32):
    i = 0
    while 1:
        if i >= n:
            break
        i += 1
        if i == 2:
            continue
        x[i] = x[i] + 1.0
    x[0] = i


WIDE = 3


@skc.kernel
def compile_time_while_runtime_break(x: skc.Ptr[skc.f32], n: skc.i32):
    i = 0
    a = 0.0
    while i < WIDE:
        if n == i:
            break
        a += x[i]
        i += 1
    x[0] = a
    x[1] = i


def python_twin(kernel, *funcs):
    """kernel's function run as Python, with the @skc.func it calls replaced by their plain functions."""
    fn = kernel.fn
    names = {f.__skc_function__.__name__: f.__skc_function__ for f in funcs}

    def twin(*args):
        saved = {name: fn.__globals__[name] for name in names}
        fn.__globals__.update(names)
        try:
            fn(*args)
        finally:
            fn.__globals__.update(saved)
    return twin


CASES = [break_keeps_earlier_value, break_keeps_runtime_value, break_in_else, continue_skips_rest,
         nested_static_ranges, static_range_in_runtime_loop, jumps_out_of_with, break_inside_func,
         compile_time_break_after_runtime_continue, while_true_runtime_break, compile_time_while_runtime_break]


@pytest.mark.parametrize("kernel", CASES, ids=lambda k: k.fn.__name__)
def test_runtime_jumps_in_unrolled_loops_mean_what_python_means(kernel):
    twin = python_twin(kernel, first_over, early)
    matches_python(kernel, eight, [(n,) for n in range(-1, 7)], reference=twin, x=F32P, n=I32)


# -- item 6: run-time return next to assignments -------------------------------------------------
@skc.kernel
def return_in_then_assign_in_else(x: skc.Ptr[skc.f32], n: skc.i32):
    a = x[0]
    if n > 2:
        return
    else:
        a = x[1]
    x[2] = a


@skc.kernel
def return_in_loop_then_use(x: skc.Ptr[skc.f32], n: skc.i32):
    a = x[0]
    for s in skc.static_range(3):
        if n == s:
            return
        a = a + x[s + 1]
    x[2] = a


@skc.func
def early(x, n):
    a = x[3]
    if n > 2:
        return a
    else:
        a = x[1] + 1.0
    return a * 2.0


@skc.kernel
def return_in_func(x: skc.Ptr[skc.f32], n: skc.i32):
    x[2] = early(x, n)


@pytest.mark.parametrize("kernel", [return_in_then_assign_in_else, return_in_loop_then_use, return_in_func],
                         ids=lambda k: k.fn.__name__)
def test_values_assigned_beside_a_runtime_return_reach_their_uses(kernel):
    twin = python_twin(kernel, first_over, early)
    matches_python(kernel, eight, [(n,) for n in range(-1, 5)], reference=twin, x=F32P, n=I32)


# -- a return an unrolled loop's earlier run-time break can skip ---------------------------------
@skc.func
def returns_after_a_break(x, n):
    a = x[0]
    for s in skc.static_range(3):
        if n > s:
            break
        if s == 1:
            return a + 10.0
        a = a + 1.0
    return a


@skc.kernel
def func_returns_after_a_break(x: skc.Ptr[skc.f32], n: skc.i32):
    x[1] = returns_after_a_break(x, n)


@skc.kernel
def kernel_returns_after_a_break(x: skc.Ptr[skc.f32], n: skc.i32):
    for s in skc.static_range(3):
        if n > s:
            break
        if s == 1:
            return
        x[2] = x[2] + 1.0
    x[0] = 50.0


@skc.kernel
def return_after_a_continue(x: skc.Ptr[skc.f32], n: skc.i32):
    for s in skc.static_range(3):
        if n == s:
            continue
        if s == 0:
            return
    x[0] = 5.0


@skc.kernel
def compile_time_break_in_the_first_iteration(x: skc.Ptr[skc.f32], n: skc.i32):
    a = x[0]
    for s in skc.static_range(3):
        a = a + x[1]
        if s == 0:
            break
    x[0] = a


@pytest.mark.parametrize("kernel", [func_returns_after_a_break, kernel_returns_after_a_break,
                                    return_after_a_continue,
                                    compile_time_break_in_the_first_iteration], ids=lambda k: k.fn.__name__)
def test_a_return_reached_at_compile_time_after_a_runtime_break_is_a_runtime_return(kernel):
    """A static_range iteration's return is reached at compile time, but an earlier iteration's run-time break (or
    this iteration's continue) leaves paths that never reach it: those paths go on after the loop (the function's
    value, the kernel's last store was lost: 0.0 in x[1], no store to x[0]). And a compile-time break in the first
    iteration of a loop with run-time jumps kept its names at the loop's end, where their values were not visible
    (a VerificationError)."""
    twin = python_twin(kernel, returns_after_a_break)
    matches_python(kernel, eight, [(n,) for n in range(-1, 5)], reference=twin, x=F32P, n=I32)


class Choice:
    def __init__(self, wide):
        self.wide = wide

    def swizzle(self):
        if self.wide:
            return 128
        return 64


@skc.func
def small_or_large(flag):
    if flag:
        return 3
    return 5


@skc.func
def scaled_or_not(x, flag):
    if flag:
        return x[0] * 2.0   # a run-time value made inside the function: it leaves through a slot
    return x[1]


@skc.kernel
def compile_time_returns_stay_compile_time(x: skc.Ptr[skc.f32], wide: skc.constexpr):
    swizzle = Choice(wide).swizzle()
    count = small_or_large(wide)
    x[6] = scaled_or_not(x, wide)
    for s in skc.static_range(count):   # (a run-time count: "static_range bounds must be known at compile time")
        x[s] = x[s] + 1.0
    if swizzle in (64, 128):            # ("'NotIn' cannot take a run-time operand")
        x[7] = float(swizzle)


@pytest.mark.parametrize("wide", [True, False])
def test_an_early_return_at_compile_time_gives_a_compile_time_value(wide, monkeypatch):
    """`if <compile-time test>: return x` then `return y` in an inlined function or method: the value stays a
    compile-time one (it became a run-time one, refused where a compile-time value is needed)."""
    from skc.runtime import devices

    monkeypatch.setattr(devices, "_selected", [devices.Device("interpreter")])
    got = eight()
    compile_time_returns_stay_compile_time[1, 1](got, wide)
    want = eight()
    want[6] = 2.0 * want[0] if wide else want[1]
    want[:3 if wide else 5] += 1.0
    want[7] = 128.0 if wide else 64.0
    np.testing.assert_array_equal(got, want)


# -- names defined on some paths only ------------------------------------------------------------
@skc.kernel
def defined_in_one_branch(x: skc.Ptr[skc.f32], n: skc.i32):
    if n > 0:
        a = x[1]
    x[0] = a  # HERE


@skc.kernel
def defined_before_the_branch(x: skc.Ptr[skc.f32], n: skc.i32):
    a = x[2]
    if n > 0:
        a = x[1]
    x[0] = a


@skc.kernel
def defined_after_a_possible_break(x: skc.Ptr[skc.f32], n: skc.i32):
    for s in skc.static_range(2):
        if n > s:
            break
        b = x[s]
    x[0] = b  # HERE


@skc.kernel
def defined_on_every_path(x: skc.Ptr[skc.f32], n: skc.i32):
    if n > 0:
        a = x[1]
    elif n < -3:
        return
    else:
        a = x[2]
    x[0] = a


def test_name_assigned_on_some_paths_only_is_an_error_at_its_use():
    from helpers import line_of

    for kernel in (defined_in_one_branch, defined_after_a_possible_break):
        with pytest.raises(skc.CompileError) as info:
            compile_kernel(kernel, x=F32P, n=I32)
        text = str(info.value)
        assert f":{line_of(kernel, 'x[0] = ')}:" in text.splitlines()[0], text
        assert "may be undefined here" in text, text


def test_name_defined_on_every_path_that_continues_is_fine():
    matches_python(defined_before_the_branch, eight, [(n,) for n in (-1, 0, 1)], x=F32P, n=I32)
    matches_python(defined_on_every_path, eight, [(n,) for n in (-5, -1, 0, 1)], x=F32P, n=I32)


class Guard:
    def __init__(self, x):
        self.x = x

    def __enter__(self):
        self.x[6] += 1.0
        return self

    def __exit__(self, *exc):
        self.x[7] = self.x[7] * 0.5 + 1.0


@skc.kernel
def return_from_nested_withs(x: skc.Ptr[skc.f32], n: skc.i32):
    with Guard(x):
        with Guard(x):
            if n == 3:
                return
        if n == 4:
            return
        x[0] = 7.0
    x[1] = 1.0


def test_a_return_from_nested_withs_runs_every_exit_once():
    """emit_cleanups lost the inner with-block while emitting the outer one's __exit__ (IndexError)."""
    matches_python(return_from_nested_withs, eight, [(n,) for n in range(2, 6)], x=F32P, n=I32)


@skc.kernel
def defined_in_a_runtime_loop(x: skc.Ptr[skc.f32], n: skc.i32):
    for i in range(n):
        c = x[i]
    x[0] = c  # HERE


@skc.kernel
def defined_before_a_runtime_loop(x: skc.Ptr[skc.f32], n: skc.i32):
    c = x[7]
    for i in range(n):
        c = x[i]
    x[0] = c


def test_a_name_first_assigned_in_a_runtime_loop_may_be_undefined_after_it():
    from helpers import line_of

    with pytest.raises(skc.CompileError) as info:
        compile_kernel(defined_in_a_runtime_loop, x=F32P, n=I32)
    text = str(info.value)
    assert f":{line_of(defined_in_a_runtime_loop, '# HERE')}:" in text.splitlines()[0], text
    assert "may be undefined here" in text and "may run zero times" in text
    matches_python(defined_before_a_runtime_loop, eight, [(n,) for n in (0, 1, 3)], x=F32P, n=I32)


@skc.kernel
def and_or_values(x: skc.Ptr[skc.f32], p: skc.Ptr[skc.i32], a: skc.i32, b: skc.i32):
    x[0] = a and b
    x[1] = a or b
    x[2] = b or 2.5
    x[3] = (a > 1) and 5
    x[4] = a and p[0]           # a load on the right: evaluated only where it decides the value
    x[5] = (a > 1) or p[1]
    x[6] = a and 2.5 or b
    x[7] = (a > 0 and b > 0) or a < -5


def test_and_or_of_numbers_give_an_operand_as_in_python():
    # `a or b` is a where a is true, else b: a number, not the i1 of a != 0 or b != 0
    function = compile_kernel(and_or_values, x=F32P, p=PtrType(ir.i32), a=I32, b=I32)
    for a, b in ((0, 3), (2, 3), (2, 0), (0, 0), (-7, 1)):
        got, want = np.zeros(8, np.float32), np.zeros(8, np.float32)
        launch(function, got, np.array([4, 0], np.int32), a, b)
        and_or_values.fn(want, np.array([4, 0], np.int32), a, b)
        np.testing.assert_array_equal(got, want, err_msg=f"a={a}, b={b}")


NO_BIAS = None


@skc.kernel
def and_or_conditions(x: skc.Ptr[skc.f32], p: skc.Ptr[skc.i32], a: skc.i32):
    if p and a > 0:             # a pointer and a truth value: no one type holds both, their truth decides
        x[0] = 1.0
    if a > 0 and p:
        x[1] = 1.0
    if p and p[0] > 0:          # lazily evaluated right side
        x[2] = 1.0
    if a > 0 and NO_BIAS:       # a compile-time None on the right
        x[3] = 1.0
    if a or NO_BIAS:
        x[4] = 1.0
    x[5] = (a < 0) or (p and p[0] > 3)


def test_and_or_of_a_pointer_or_none_in_a_condition_is_their_truth():
    function = compile_kernel(and_or_conditions, x=F32P, p=PtrType(ir.i32), a=I32)
    for a in (-1, 0, 2):
        got = np.zeros(6, np.float32)
        launch(function, got, np.array([4], np.int32), a)
        np.testing.assert_array_equal(got, [a > 0, a > 0, 1, 0, a != 0, 1], err_msg=f"a={a}")


@skc.kernel
def loops_with_else(x: skc.Ptr[skc.f32], n: skc.i32):
    total = 0.0
    for i in range(n):                 # a run-time loop: its else runs where no break left it
        if x[i] > 6.5:
            break
        total += x[i]
    else:
        total += 100.0
    x[0] = total
    i = 0
    while i < n:
        if x[i] == 3.0:
            break
        i += 1
    else:
        i = -1
    x[1] = i
    primes = 0
    for k in range(2, n + 4):          # inside a run-time loop, over a nested loop whose own else continues
        for d in range(2, k):
            if k % d == 0:
                break
        else:
            primes += 1
    x[2] = primes
    for s in skc.static_range(3):      # unrolled, the break decided at run time
        if x[s + 3] > n:
            x[3] = s * 10.0
            break
    else:
        x[3] = -1.0
    for value in (1.0, 2.0, 3.0):      # over compile-time items, the break decided at compile time
        if value == 2.0:
            break
    else:
        x[4] = 0.0
    for r in range(n):
        for c in range(n):
            if r * c == 6:
                break
        else:
            continue                   # the inner loop did not break: next r
        x[5] = r * 1.0                 # it did: leave with r
        break
    else:
        x[5] = -2.0


def test_for_and_while_with_else_blocks_run_as_in_python():
    """`for`/`while ... else` was "not supported in kernels"; the else block now runs where no break left the loop,
    for run-time, unrolled and compile-time loops, nested, and with breaks decided at run time or compile time."""
    matches_python(loops_with_else, eight, [(n,) for n in range(-1, 9)], x=F32P, n=I32)


@skc.kernel
def outer_jump_in_an_unrolled_loops_inner_else(x: skc.Ptr[skc.f32], n: skc.i32):
    a = 0.0
    for i in skc.static_range(5):
        for j in skc.static_range(3):  # (its else is the outer loop's code: a run-time break there leaves it)
            if i + j == n:
                break
        else:
            if i == n - 4:
                break
            continue
        a += x[i]
    x[0] = a
    for i in skc.static_range(3):
        c = 0
        while c < n:
            c += 1
        else:
            if n == i:
                continue
        x[i + 1] = x[i + 1] * 2.0


@skc.kernel
def while_true_left_by_an_inner_loops_else(x: skc.Ptr[skc.f32], n: skc.i32):
    while True:
        n += 1
        if n > 0:
            for j in range(2):
                x[2] += 1.0
            else:
                break                  # the while's own break: the code after the loop runs
    x[0] = 5.0


@pytest.mark.parametrize("kernel", [outer_jump_in_an_unrolled_loops_inner_else, while_true_left_by_an_inner_loops_else],
                         ids=lambda k: k.fn.__name__)
def test_a_jump_in_a_nested_loops_else_block_is_the_enclosing_loops(kernel):
    """A break or continue in a nested loop's else block belongs to the loop around it. An unrolled loop whose only
    run-time jump sat there was compiled as if it had none ("internal: no label for a run-time break"), and a
    `while True:` whose only break sat there, under an if, was taken never to end: the store after it was dropped."""
    matches_python(kernel, eight, [(n,) for n in range(-2, 8)], x=F32P, n=I32)


@skc.kernel
def else_block_error(x: skc.Ptr[skc.f32], n: skc.i32):
    for i in range(n):
        if x[i] > 0.0:
            break
    else:
        x[0] = undefined_in_else  # noqa: F821  # HERE


def test_an_error_in_an_else_block_points_at_its_line():
    from helpers import line_of, tile_ir
    with pytest.raises(skc.CompileError) as info:
        tile_ir(else_block_error, skc.Ptr[skc.f32], skc.i32)
    assert str(info.value).startswith(f"{__file__}:{line_of(else_block_error, '# HERE')}:"), str(info.value)
