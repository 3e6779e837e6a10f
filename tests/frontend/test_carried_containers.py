"""Containers and objects that a run-time loop carries from one iteration to the next: bound anew to an attribute
inside the loop (`self.acc = acc`), or changed through a name bound inside it (`acc = self.acc; acc[j] = ...`), with
or without a compile-time continue or break in an unrolled loop. One body is compiled for every iteration, so such a
kernel is refused; it compiled before, and every iteration read the container as it was before the loop (2.0 where
Python says 6.0). A container named before the loop and changed in place carries as Python says. Each kernel runs in
the interpreter beside plain Python."""
import numpy as np
import pytest

import skc

ATTRIBUTE_REBOUND = "is bound to another .* inside run-time control flow"
CHANGED_OUTSIDE = "an element of a list made outside this run-time loop or branch is changed inside it"


def both(fn, n):
    """fn run by skc (interpreter) and by Python on the same inputs: the two outputs (the @skc.func helpers run
    in kernels only: their kernels are refused before Python runs)."""
    got, want = np.zeros(4, np.float32), np.zeros(4, np.float32)
    got[3] = want[3] = 7.0
    skc.kernel(fn)[1, 1](got, n)
    fn(want, n)
    return got, want


class Stencil:
    """The report's kernel: a list of accumulators, copied, changed in an unrolled loop that skips an offset, and
    bound back to the attribute on every run-time iteration."""

    def __init__(self, value, jump):
        self.acc = [value, value]
        self.jump = jump

    def __call__(self, n):
        for r in range(n):
            acc = list(self.acc)
            for offset in skc.static_range(3):
                if offset == 1:
                    if self.jump == "continue":
                        continue
                    if self.jump == "break":
                        break
                for j in skc.static_range(2):
                    acc[j] = acc[j] + 1.0
            self.acc = acc


class Box:
    def __init__(self, value):
        self.value = value


class Holder:
    def __init__(self, value):
        self.box = Box(value)


def stencil_continue(out, n: skc.i32):
    s = Stencil(out[3], "continue")
    s(n)
    out[0] = s.acc[0]


def stencil_break(out, n: skc.i32):
    s = Stencil(out[3], "break")
    s(n)
    out[0] = s.acc[0]


def stencil_without_jump(out, n: skc.i32):
    s = Stencil(out[3], None)
    s(n)
    out[0] = s.acc[0]


def nested_static_continue(out, n: skc.i32):
    s = Stencil(out[3], None)
    for r in range(n):
        acc = list(s.acc)
        for a in skc.static_range(2):
            for offset in skc.static_range(3):
                if offset == 1:
                    continue
                acc[0] = acc[0] + 1.0
        s.acc = acc
    out[0] = s.acc[0]


def while_continue(out, n: skc.i32):
    s = Stencil(out[3], None)
    i = 0
    while i < n:
        acc = list(s.acc)
        for offset in skc.static_range(3):
            if offset == 1:
                continue
            acc[0] = acc[0] + 1.0
        s.acc = acc
        i += 1
    out[0] = s.acc[0]


@skc.func
def bump_skipping(acc):
    for offset in skc.static_range(3):
        if offset == 1:
            continue
        acc[0] = acc[0] + 1.0


def helper_continue(out, n: skc.i32):
    s = Stencil(out[3], None)
    for r in range(n):
        acc = list(s.acc)
        bump_skipping(acc)
        s.acc = acc
    out[0] = s.acc[0]


@skc.func
def bump_unless(acc, offset):
    if offset == 1:
        return
    acc[0] = acc[0] + 1.0


def helper_return(out, n: skc.i32):
    s = Stencil(out[3], None)
    for r in range(n):
        acc = list(s.acc)
        for offset in skc.static_range(3):
            bump_unless(acc, offset)
        s.acc = acc
    out[0] = s.acc[0]


def dict_attribute(out, n: skc.i32):
    s = Box({"a": out[3]})
    for r in range(n):
        acc = dict(s.value)
        for offset in skc.static_range(3):
            if offset == 1:
                continue
            acc["a"] = acc["a"] + 1.0
        s.value = acc
    out[0] = s.value["a"]


def object_attribute(out, n: skc.i32):
    h = Holder(out[3])
    for r in range(n):
        box = Box(h.box.value)
        for offset in skc.static_range(3):
            if offset == 1:
                continue
            box.value = box.value + 1.0
        h.box = box
    out[0] = h.box.value


def object_rebound(out, n: skc.i32):   # no unrolled loop at all
    h = Holder(out[3])
    for r in range(n):
        h.box = Box(h.box.value + 1.0)
    out[0] = h.box.value


def object_in_branch(out, n: skc.i32):
    h = Holder(out[3])
    if n > 0:
        h.box = Box(out[3] + 1.0)
    out[0] = h.box.value


def tuple_rebound(out, n: skc.i32):
    h = Box((out[3],))
    for r in range(n):
        h.value = (h.value[0] + 1.0,)
        out[r % 3] = h.value[0]


@pytest.mark.parametrize("fn", [stencil_continue, stencil_break, stencil_without_jump, nested_static_continue,
                                while_continue, helper_continue, dict_attribute, object_attribute,
                                object_rebound, object_in_branch, tuple_rebound])
def test_an_attribute_bound_to_another_container_in_run_time_flow_is_refused(fn):
    with pytest.raises(skc.CompileError, match=ATTRIBUTE_REBOUND) as info:
        both(fn, 3)
    assert "before the loop or branch" in info.value.hint


def test_an_early_return_of_a_helper_under_a_compile_time_if_is_refused_as_without_it():
    # (the helper's run-time-looking return is a compile-time one: the element change meets the loop's refusal)
    with pytest.raises(skc.CompileError, match=CHANGED_OUTSIDE):
        both(helper_return, 3)


class Aliased:
    def __init__(self, value, jump):
        self.acc = [value, value]
        self.jump = jump

    def __call__(self, n):
        for r in range(n):
            acc = self.acc   # (named inside the loop: the run-time loop does not see the list)
            for offset in skc.static_range(3):
                if offset == 1:
                    if self.jump:
                        continue
                for j in skc.static_range(2):
                    acc[j] = acc[j] + 1.0


def aliased_continue(out, n: skc.i32):
    s = Aliased(out[3], True)
    s(n)
    out[0] = s.acc[0]


def aliased_in_branch(out, n: skc.i32):
    acc = [out[3]]
    for r in range(n):
        alias = acc
        if r >= 0:
            alias[0] = alias[0] + 1.0
    out[0] = acc[0]


def aliased_in_helper(out, n: skc.i32):
    acc = [out[3], out[3]]
    for r in range(n):
        bump_skipping(acc)
    out[0] = acc[0]


@pytest.mark.parametrize("fn", [aliased_continue, aliased_in_branch, aliased_in_helper])
def test_a_list_from_outside_the_loop_changed_through_another_name_is_refused(fn):
    # (the unrolled loop or the `if` kept its elements in variables made inside the run-time loop: each iteration
    # started again from the value before the loop, and a loop run zero times left them unset)
    with pytest.raises(skc.CompileError, match=CHANGED_OUTSIDE):
        both(fn, 3)


def through_the_attribute(out, n: skc.i32):
    s = Box([out[3], out[3]])
    for r in range(n):
        for j in skc.static_range(2):
            s.value[j] = s.value[j] + 1.0
    out[0] = s.value[0]


def through_a_name_bound_before(out, n: skc.i32):
    s = Box([out[3], out[3]])
    held = s.value
    for r in range(n):
        for j in skc.static_range(2):
            held[j] = held[j] + 1.0
    out[0] = s.value[0]


def test_the_refusals_hint_names_the_way_that_compiles():
    """The change is in the loop's own body, through the attribute: the hint said to assign the element in the
    loop's own body, as the code did; it names a plain name bound before the loop, whose way carries."""
    with pytest.raises(skc.CompileError, match=CHANGED_OUTSIDE) as refused:
        both(through_the_attribute, 3)
    assert "a plain name bound to the container before the loop" in str(refused.value)
    got, want = both(through_a_name_bound_before, 3)
    assert got[0] == want[0] == 10.0


class InPlace:
    def __init__(self, value):
        self.acc = [value, value]

    def __call__(self, n):
        acc = self.acc   # (named before the loop: its elements carry)
        for r in range(n):
            for offset in skc.static_range(3):
                if offset == 1:
                    continue
                for j in skc.static_range(2):
                    acc[j] = acc[j] + 1.0


def in_place(out, n: skc.i32):
    s = InPlace(out[3])
    s(n)
    out[0] = s.acc[0]
    out[1] = s.acc[1]


def made_in_the_loop(out, n: skc.i32):
    total = out[3]
    for r in range(n):
        acc = [total]
        if r >= 0:
            acc[0] = acc[0] + 1.0
        total = acc[0]
    out[0] = total


@pytest.mark.parametrize("fn", [in_place, made_in_the_loop])
@pytest.mark.parametrize("n", [0, 3])
def test_containers_changed_in_place_carry_as_python_says(fn, n):
    got, want = both(fn, n)
    np.testing.assert_array_equal(got, want)


def test_the_reported_stencil_of_tiles_is_refused():
    class Tiles:
        def __init__(self):
            self.acc = [skc.full(2, 0.0, skc.f32) for _ in skc.static_range(2)]

        def __call__(self, n):
            for r in range(n):
                acc = list(self.acc)
                for offset in skc.static_range(3):
                    if offset == 1:
                        continue
                    for j in skc.static_range(2):
                        acc[j] = acc[j] + 1.0
                self.acc = acc

    @skc.kernel(block=1)
    def k(out: skc.Ptr[skc.f32], n: skc.i32):
        s = Tiles()
        s(n)
        skc.store(out, s.acc[0][0])

    with pytest.raises(skc.CompileError, match="attribute 'acc' holds the compile-time list"):
        k[1, 1](np.zeros(1, np.float32), 3)


# -- past a run-time jump --------------------------------------------------------------------------------------------
# A run-time break, continue or return leaves code that only some paths run, with no run-time region open. An element
# of a container made before the jump, changed past it through a name the unrolled loop's start does not see (or in
# a helper), got a variable made there: the paths that jumped skipped its first store and read it unset after the loop
# (0.0 where Python gives 7.0), or a compile-time value changed for every path (3.0 where Python gives 0.0).
CHANGED_PAST_JUMP = "an element of a .* made before a run-time break, continue or return is changed past it"


def aliased_past_break(out, n: skc.i32):
    acc = [out[3]]
    for i in skc.static_range(3):
        if n > i:
            break
        alias = acc
        alias[0] = alias[0] + 1.0
    out[0] = acc[0]


def aliased_past_continue(out, n: skc.i32):
    acc = [out[3]]
    for i in skc.static_range(3):
        if n > i:
            continue
        alias = acc
        alias[0] = alias[0] + 1.0
    out[0] = acc[0]


def dict_past_break(out, n: skc.i32):
    acc = {"x": out[3]}
    for i in skc.static_range(3):
        if n > i:
            break
        alias = acc
        alias["x"] = alias["x"] + 1.0
    out[0] = acc["x"]


def nested_past_inner_break(out, n: skc.i32):
    acc = [out[3]]
    for j in skc.static_range(2):
        for i in skc.static_range(2):
            if n > i + j:
                break
            alias = acc
            alias[0] = alias[0] + 1.0
    out[0] = acc[0]


def nested_past_outer_break(out, n: skc.i32):
    acc = [out[3]]
    for j in skc.static_range(2):
        if n > j:
            break
        for i in skc.static_range(2):
            alias = acc
            alias[0] = alias[0] + 1.0
    out[0] = acc[0]


def number_past_break(out, n: skc.i32):
    acc = [0.0]
    for i in skc.static_range(3):
        if n > i:
            break
        alias = acc
        alias[0] = alias[0] + 1.0
    out[0] = acc[0]


def array_past_break(out, n: skc.i32):
    made = np.zeros(1)   # (a numpy array the kernel makes: compile-time)
    for i in skc.static_range(2):
        if n > i:
            break
        made[0] = 5.0
    out[0] = made[0]


def augmented_past_break(out, n: skc.i32):
    acc = [out[3], out[3]]
    for i in skc.static_range(3):
        if n > i:
            break
        alias = acc
        alias[0] += 1.0
    out[0] = acc[0]


def inner_list_past_break(out, n: skc.i32):   # (by its own name: the loop keeps only acc's own elements)
    acc = [[out[3]]]
    for i in skc.static_range(3):
        if n > i:
            break
        acc[0][0] = acc[0][0] + 1.0
    out[0] = acc[0][0]


class Marker:
    pass


def object_past_break(out, n: skc.i32):
    held = [None]
    for i in skc.static_range(2):
        if n > i:
            break
        held[0] = Marker()
    out[0] = 1.0 if held[0] is None else 2.0


@pytest.mark.parametrize("fn", [aliased_past_break, aliased_past_continue, dict_past_break, nested_past_inner_break,
                                nested_past_outer_break, number_past_break, array_past_break, object_past_break,
                                augmented_past_break, inner_list_past_break])
@pytest.mark.parametrize("n", [0, 1])
def test_a_container_from_before_a_run_time_jump_changed_past_it_is_refused(fn, n):
    with pytest.raises(skc.CompileError, match=CHANGED_PAST_JUMP) as info:
        both(fn, n)
    assert "before the jump" in info.value.hint


@skc.func
def bump(acc):
    acc[0] = acc[0] + 1.0


@skc.func
def bump_unless_positive(acc, n):
    if n > 0:
        return
    acc["x" if isinstance(acc, dict) else 0] = acc["x" if isinstance(acc, dict) else 0] + 1.0


def helper_past_break(out, n: skc.i32):
    acc = [out[3]]
    for i in skc.static_range(3):
        if n > i:
            break
        bump(acc)
    out[0] = acc[0]


def helper_past_its_return(out, n: skc.i32):
    acc = [out[3]]
    bump_unless_positive(acc, n)
    out[0] = acc[0]


def helper_past_its_return_dict(out, n: skc.i32):
    acc = {"x": out[3]}
    bump_unless_positive(acc, n)
    out[0] = acc["x"]


@pytest.mark.parametrize("fn", [helper_past_break, helper_past_its_return, helper_past_its_return_dict])
def test_a_helper_changing_a_container_past_a_run_time_jump_is_refused(fn):
    # (before: 0.0 for n = 1, where the kernel's meaning is 7.0)
    with pytest.raises(skc.CompileError, match=CHANGED_PAST_JUMP):
        both(fn, 1)


def object_in_branch(out, n: skc.i32):
    held = [None]
    if n > 0:
        held[0] = Marker()
    out[0] = 1.0 if held[0] is None else 2.0


def string_in_branch(out, n: skc.i32):
    held = {"mode": "a"}
    if n > 0:
        held["mode"] = "b"
    out[0] = 1.0 if held["mode"] == "a" else 2.0


@pytest.mark.parametrize("fn", [object_in_branch, string_in_branch])
def test_a_compile_time_element_changed_in_a_run_time_branch_is_refused(fn):
    # (before: 2.0 for n = 0, where Python gives 1.0: the change was made for every path)
    with pytest.raises(skc.CompileError, match=CHANGED_OUTSIDE.replace("list", "(list|dict)")):
        both(fn, 0)


def kept_before_the_jump(out, n: skc.i32):   # the hint's way
    acc = [out[3], 0.0]
    acc[0] = skc.f32(acc[0])
    acc[1] = skc.f32(acc[1])
    for i in skc.static_range(3):
        if n > i:
            break
        alias = acc
        alias[0] = alias[0] + 1.0
        alias[1] = alias[1] + 2.0
    out[0] = acc[0]
    out[1] = acc[1]


def named_before_the_loop(out, n: skc.i32):
    acc = [out[3]]
    alias = acc
    for i in skc.static_range(3):
        if n > i:
            break
        alias[0] = alias[0] + 1.0
    out[0] = acc[0]


def made_past_the_jump(out, n: skc.i32):
    total = out[3]
    for i in skc.static_range(3):
        if n > i:
            break
        acc = [total]
        acc[0] = acc[0] + 1.0
        total = acc[0]
    out[0] = total


def changed_before_the_jump(out, n: skc.i32):
    acc = [out[3]]
    for i in skc.static_range(3):
        alias = acc
        alias[0] = alias[0] + 1.0
        if n > i:
            break
    out[0] = acc[0]


def same_element_past_the_jump(out, n: skc.i32):
    acc = [out[3], None]
    for i in skc.static_range(3):
        if n > i:
            continue
        alias = acc
        alias[1] = None
    out[0] = acc[0]


@pytest.mark.parametrize("n, want", [(0, (10.0, 6.0)), (1, (7.0, 0.0)), (5, (7.0, 0.0))])
def test_the_hints_way_keeps_the_elements_in_variables_every_path_reads(n, want):
    # (skc.f32 runs in kernels only: the numbers are Python's for the same loop)
    got = np.zeros(4, np.float32)
    got[3] = 7.0
    skc.kernel(kept_before_the_jump)[1, 1](got, n)
    assert tuple(got[:2]) == want


@pytest.mark.parametrize("fn", [named_before_the_loop, made_past_the_jump,
                                changed_before_the_jump, same_element_past_the_jump])
@pytest.mark.parametrize("n", [0, 1, 5])
def test_containers_around_a_run_time_jump_carry_as_python_says(fn, n):
    got, want = both(fn, n)
    np.testing.assert_array_equal(got, want)
