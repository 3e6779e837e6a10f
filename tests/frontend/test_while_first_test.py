"""A while loop whose test is known at compile time runs its test once per iteration, as Python does. The
frontend evaluates the test once to see whether it is known at compile time; it then evaluated it again for the
first iteration, so a test that consumes something (`while next(it, None) is not None`) skipped an item."""
import numpy as np

import skc


@skc.kernel(block=1)
def consume(out: skc.Ptr[skc.i32]):
    items = iter([5, 6, 7])
    count = 0
    while next(items, None) is not None:
        count += 1
    out[0] = count


@skc.func
def tick(counter, i):
    skc.atomic_add(counter, 1)      # run-time effect of a test whose value is known at compile time
    return i < 3


@skc.kernel(block=1)
def ticks(out: skc.Ptr[skc.i32], counter: skc.Ptr[skc.i32]):
    i = 0
    while tick(counter, i):
        i += 1
    out[0] = i


def test_the_first_test_of_a_compile_time_while_runs_once():
    out = np.zeros(1, np.int32)
    consume.interpret[1, 1](out)
    assert out[0] == 3


def test_its_run_time_effects_happen_once_per_test():
    out, counter = np.zeros(1, np.int32), np.zeros(1, np.int32)
    ticks.interpret[1, 1](out, counter)
    assert out[0] == 3 and counter[0] == 4     # tested at i = 0, 1, 2, 3
