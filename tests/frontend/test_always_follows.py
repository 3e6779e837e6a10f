"""frontend.always_follows(point): whether every run-time path through an earlier point of the kernel goes on to the
code being compiled now. Blocks refuse what must not happen twice on one path (a pipeline's second handle of a role)
only where it surely does, so the answer is True only where it is known: a path may skip the code (a branch it is
outside of, a loop it is in, a return, break or continue since) and it is False. Each kernel marks a point and asks
at a later one with host functions; it is only compiled."""
import pytest

import skc
from skc import frontend, ir
from frontend_run import F32P, compile_kernel

POINTS, ANSWERS = [], []


@frontend.host
def mark():
    POINTS.append(frontend.path_point())


@frontend.host
def ask():
    ANSWERS.append(frontend.always_follows(POINTS[0]))


@skc.kernel
def after_a_branch_that_falls_through(x: skc.Ptr[skc.f32], n: skc.i32):
    if n > 0:
        if n > 1:
            mark()
        x[0] = 1.0
    ask()


@skc.kernel
def after_a_branch_that_returns(x: skc.Ptr[skc.f32], n: skc.i32):
    if n > 0:
        mark()
        return
    ask()


@skc.kernel
def in_the_other_branch(x: skc.Ptr[skc.f32], n: skc.i32):
    if n > 0:
        mark()
    else:
        ask()


@skc.kernel
def in_a_later_branch(x: skc.Ptr[skc.f32], n: skc.i32):
    if n > 0:
        mark()
    if n > 1:
        ask()


@skc.kernel
def past_a_return_on_some_paths(x: skc.Ptr[skc.f32], n: skc.i32):
    if n > 0:
        mark()
    if n > 1:
        return
    ask()


@skc.func
def marks_then_returns(n):
    if n > 0:
        mark()
        return
    ask()


@skc.kernel
def after_a_call_that_returns(x: skc.Ptr[skc.f32], n: skc.i32):
    marks_then_returns(n)
    ask()


@skc.kernel
def after_a_loop_with_its_own_break(x: skc.Ptr[skc.f32], n: skc.i32):
    if n > 0:
        mark()
    for i in range(n):
        if i > 2:
            break
        x[i] = 1.0
    ask()


@skc.kernel
def after_the_loop_around_the_point(x: skc.Ptr[skc.f32], n: skc.i32):
    for i in range(n):
        mark()
    ask()


@skc.kernel
def later_in_one_iteration(x: skc.Ptr[skc.f32], n: skc.i32):
    for i in range(n):
        if i == 0:
            mark()
        ask()


@skc.kernel
def past_a_continue_of_the_loop_around_both(x: skc.Ptr[skc.f32], n: skc.i32):
    for i in range(n):
        if i == 0:
            mark()
        if i == 1:
            continue
        ask()


@skc.kernel
def after_an_unrolled_loop_left_by_break(x: skc.Ptr[skc.f32], n: skc.i32):
    for s in skc.static_range(2):
        if n > s:
            mark()
            break
    ask()


@skc.kernel
def in_an_unrolled_loop_past_its_break(x: skc.Ptr[skc.f32], n: skc.i32):
    for s in skc.static_range(2):
        if s == 1:
            ask()
        if n > s:
            mark()
            break


CASES = [
    (after_a_branch_that_falls_through, [True]),
    (after_a_branch_that_returns, [False]),
    (in_the_other_branch, [False]),
    (in_a_later_branch, [False]),
    (past_a_return_on_some_paths, [False]),
    (after_a_call_that_returns, [False, True]),   # (in the helper, past its return; in the kernel, after the call)
    (after_a_loop_with_its_own_break, [True]),
    (after_the_loop_around_the_point, [False]),
    (later_in_one_iteration, [True]),
    (past_a_continue_of_the_loop_around_both, [False]),
    (after_an_unrolled_loop_left_by_break, [True]),
    (in_an_unrolled_loop_past_its_break, [False]),   # (the second iteration's ask, after the first's break)
]


@pytest.mark.parametrize("kernel, answers", CASES, ids=[kernel.fn.__name__ for kernel, _ in CASES])
def test_always_follows(kernel, answers):
    POINTS.clear()
    ANSWERS.clear()
    compile_kernel(kernel, x=F32P, n=ir.i32)
    assert ANSWERS == answers
