"""A kernel that reads a global compiles again when the global changes value (correct); one whose globals change at
almost every launch compiles at almost every launch. At the RECOMPILE_WARNING-th such compile skc warns once, naming
the global and saying to pass the value as an argument (as torch.compile warns at its recompile limit)."""
import warnings

import numpy as np
import pytest

import skc
from skc import jit


class Config:
    tile = 1


CFG = Config()
STEP = 1


@skc.kernel(block=1)
def add_tile(x: skc.Ptr[skc.f32]):
    x[0] = x[0] + CFG.tile


@skc.kernel(block=1)
def add_step(x: skc.Ptr[skc.f32]):
    x[0] = x[0] + STEP


@skc.kernel(block=1)
def add_constexpr(x: skc.Ptr[skc.f32], step: skc.constexpr):
    x[0] = x[0] + step


@pytest.fixture(autouse=True)
def fresh_kernels():
    global STEP
    STEP = 1
    for kernel in (add_tile, add_step, add_constexpr):
        kernel.rebound()   # (an earlier test's specializations and count: none)
        kernel._recompiles = 0
    yield
    CFG.tile, STEP = 1, 1


def launches(kernel, change, count):
    """`count` launches, each after `change(i)`; the sum they add and the warnings they gave."""
    x = np.zeros(1, np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(count):
            change(i)
            kernel.interpret[1, 1](x)
    return x[0], [w for w in caught if "compiled again" in str(w.message)]


def test_a_field_of_a_global_object_changed_at_every_launch_warns_once_naming_it():
    total, caught = launches(add_tile, lambda i: setattr(CFG, "tile", i), 3 * jit.RECOMPILE_WARNING)
    assert total == sum(range(3 * jit.RECOMPILE_WARNING))   # every launch ran with the value it was given
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"add_tile has compiled again {jit.RECOMPILE_WARNING} times because the global CFG changed" in message
    assert "skc.constexpr" in message
    assert caught[0].filename == __file__   # (the user's launch, not skc's code)


def test_a_rebound_global_warns_once_and_fewer_changes_do_not():
    def change(i):
        global STEP
        STEP = i

    total, caught = launches(add_step, change, jit.RECOMPILE_WARNING)   # the first compiles, 7 compile again
    assert total == sum(range(jit.RECOMPILE_WARNING)) and caught == []
    total, caught = launches(add_step, lambda i: change(100 + i), 2)
    assert [str(w.message).count("global STEP") for w in caught] == [1]


def test_a_global_bound_again_to_an_equal_value_does_not_count():
    def change(i):
        global STEP
        STEP = int(str(5))   # (another int object of the same value: the kernel is kept)

    total, caught = launches(add_step, change, 3 * jit.RECOMPILE_WARNING)
    assert total == 5 * 3 * jit.RECOMPILE_WARNING and caught == [] and add_step._recompiles == 0


def test_a_constexpr_argument_that_changes_neither_drops_nor_warns():
    x = np.zeros(1, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(3 * jit.RECOMPILE_WARNING):
            add_constexpr.interpret[1, 1](x, i % 4)
    assert x[0] == sum(i % 4 for i in range(3 * jit.RECOMPILE_WARNING))
    assert len(add_constexpr._compiled) == 4   # (one per value, kept)
