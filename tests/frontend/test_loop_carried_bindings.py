"""What a run-time loop carries from one iteration to the next (a helper's search, sixtieth session): an annotated
assignment in the body (`acc: skc.f32 = acc + i`) made a new variable at each compile of the body, so every
iteration read the value from before the loop; a name bound other than by `=` (an inner loop's target, a def, a
del) and read at the top of the body read the value from before the loop too. The first now carries as `=` does;
the second is a compile error naming the name. Kernels run in the interpreter beside plain Python."""
import numpy as np
import pytest

import skc

F32, I32 = skc.Ptr[skc.f32], skc.Ptr[skc.i32]


def both(fn, *args, dtype=np.float32):
    got, want = np.zeros(1, dtype), np.zeros(1, dtype)
    skc.kernel(fn)[1, 1](got, *args)
    fn(want, *args)
    return got[0], want[0]


def test_an_annotated_assignment_in_a_for_loop_carries_its_value():
    def k(out: F32, n: skc.i32):
        acc: skc.f32 = 0.0
        for i in range(n):
            acc: skc.f32 = acc + i
        out[0] = acc

    for n in (0, 1, 4, 7):
        got, want = both(k, n)
        assert got == want == sum(range(n))


def test_an_annotated_assignment_in_a_while_loop_and_after_a_continue_carries_its_value():
    def k(out: F32, n: skc.i32):
        acc: skc.f32 = 1.0
        i: skc.i32 = 0
        while i < n:
            i: skc.i32 = i + 1
            if i % 2 == 0:
                continue
            acc: skc.f32 = acc * 2.0 + i
        out[0] = acc

    for n in (0, 3, 6):
        got, want = both(k, n)
        assert got == want


def test_an_annotation_of_another_type_inside_the_loop_that_carries_the_variable_is_an_error():
    @skc.kernel
    def k(out: F32, n: skc.i32):
        acc: skc.f32 = 0.0
        for i in range(n):
            acc: skc.i32 = i
        out[0] = acc

    with pytest.raises(skc.CompileError, match="'acc' is a run-time variable of type f32.*declared again as i32") as e:
        k[1, 1](np.zeros(1, np.float32), 3)
    assert e.value.loc.line == k.fn.__code__.co_firstlineno + 4   # (the annotated line)


def test_an_annotation_of_another_type_outside_loops_declares_a_new_variable():
    def k(out: F32, n: skc.i32):
        x: skc.f32 = 2.5
        x: skc.i32 = n * 2
        out[0] = x / 4

    got, want = both(k, 3)
    assert got == want == 1.5


def inner_loop_target(out: I32, n: skc.i32):
    s = 0
    j = 0
    for i in range(n):
        s += j
        for j in range(i):
            pass
    out[0] = s


def unrolled_loop_target(out: I32, n: skc.i32):
    s = 0
    j = 100
    for i in range(n):
        s += j
        for j in skc.static_range(3):
            pass
    out[0] = s


def def_in_the_body(out: I32, n: skc.i32):
    s = 0
    f = lambda: 3
    for i in range(n):
        s += f()

        def f():
            return 300
    out[0] = s


def del_in_the_body(out: I32, n: skc.i32):
    s = 0
    y = 2
    for i in range(n):
        s += y
        del y
    out[0] = s


def target_read_in_a_while_test(out: I32, n: skc.i32):
    s = 0
    j = 0
    i = 0
    while i + j < n:
        i += 1
        for j in skc.static_range(2):
            s += 1
    out[0] = s


@pytest.mark.parametrize("fn, name", [(inner_loop_target, "j"), (unrolled_loop_target, "j"), (def_in_the_body, "f"),
                                      (del_in_the_body, "y"), (target_read_in_a_while_test, "j")])
def test_a_name_read_and_then_bound_other_than_by_assignment_in_a_run_time_loop_is_an_error(fn, name):
    with pytest.raises(skc.CompileError, match=f"'{name}' is read in this run-time loop and then bound again"):
        skc.kernel(fn)[1, 1](np.zeros(1, np.int32), 4)


def test_an_inner_loop_target_declared_as_a_run_time_variable_before_the_loop_carries():
    """The error's hint: declared before the loop, the inner run-time loop's target is that variable."""
    def k(out: I32, n: skc.i32):
        s = 0
        j: skc.i32 = 0
        for i in range(n):
            s += j
            for j in range(i):
                pass
        out[0] = s

    for n in (0, 3, 4, 6):
        got, want = both(k, n, dtype=np.int32)
        assert got == want


def test_inner_loop_targets_bound_before_they_are_read_stay_legal():
    def k(out: I32, n: skc.i32):
        s = 0
        j = 7
        for i in range(n):
            for j in skc.static_range(3):
                s += j
            s += j
        out[0] = s

    got, want = both(k, 4, dtype=np.int32)
    assert got == want


def test_a_run_time_loops_own_target_bound_before_the_loop_stays_legal():
    """The check above first refused these (a helper's search): the loop's own target is bound before each
    iteration's body, so a name that held a value before the loop is never read stale through it."""
    def after_an_unrolled_loop(out: F32, n: skc.i32):
        for i in skc.static_range(2):
            out[i] = 5.0
        for i in range(n):
            out[i] = out[i] + 1.0

    def after_an_assignment(out: F32, n: skc.i32):
        i = 0
        out[i] = 1.0
        for i in range(1, n):
            out[i] = out[i - 1] + 1.0

    def tuple_target(out: F32, n: skc.i32):
        i, j = 0, 0
        out[i + j] = 2.0
        for i in range(n, 0, -3):
            out[i % 4] = out[i % 4] + 1.0

    for fn in (after_an_unrolled_loop, after_an_assignment, tuple_target):
        got, want = np.zeros(4, np.float32), np.zeros(4, np.float32)
        skc.kernel(fn)[1, 1](got, 3)
        fn(want, 3)
        assert np.array_equal(got, want), fn.__name__
