"""A @contextlib.contextmanager manager in a kernel (a helper's search, sixtieth session): its exit code (the rest of
its generator, run as Python) runs once, so with a run-time return, break or continue in the block only the first way
out compiled got it and the others silently lost it (n = 3: [0, 1, 1] for [1, 1, 1]). With one way out it runs as
before; with more it is a CompileError at the `with`, whose hint's class form runs on every way out."""
import contextlib

import numpy as np
import pytest

import skc


@contextlib.contextmanager
def counted(p):
    yield
    p[0] = p[0] + 1


class Counted:
    def __init__(self, p):
        self.p = p

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.p[0] = self.p[0] + 1


def test_a_generator_manager_with_one_way_out_runs_its_exit_code():
    @skc.kernel
    def k(out: skc.Ptr[skc.i32], n: skc.i32):
        with counted(out):
            out[1] = n

    out = np.zeros(2, np.int32)
    k[1, 1](out, 7)
    assert out.tolist() == [1, 7]


def test_a_generator_manager_with_a_run_time_return_in_its_block_is_refused():
    @skc.kernel
    def k(out: skc.Ptr[skc.i32], n: skc.i32):
        with counted(out):
            if n > 5:
                return
            out[1] = 1
        out[2] = 1

    with pytest.raises(skc.CompileError, match="more than one way out .* @contextlib.contextmanager generator") as e:
        k[1, 1](np.zeros(3, np.int32), 3)
    assert "hint: write the manager as a class with __enter__ and __exit__" in str(e.value)
    assert e.value.loc.line == k.fn.__code__.co_firstlineno + 2


def test_the_class_form_runs_its_exit_on_every_way_out():
    @skc.kernel
    def k(out: skc.Ptr[skc.i32], n: skc.i32):
        with Counted(out):
            if n > 5:
                return
            out[1] = 1
        out[2] = 1

    for n, want in ((3, [1, 1, 1]), (9, [1, 0, 0])):
        out = np.zeros(3, np.int32)
        k[1, 1](out, n)
        assert out.tolist() == want
