"""Pointer arguments that share memory (one array passed twice, a and a[1:], views of one torch storage) lie as far
apart in the interpreter as on the host, as on a GPU, where pointers into one allocation subtract and compare as
their addresses do; unrelated arrays stay apart (was: each argument mapped at an address of its own, so that a and
a[1:] lay 1,048,832 bytes apart and p == q was false for one array passed twice)."""
import numpy as np
import pytest

import skc
from skc.diagnostics import InterpreterError


@skc.kernel(block=1)
def distance(p: skc.Ptr[skc.f32], q: skc.Ptr[skc.f32], out: skc.Ptr[skc.i64]):
    out[0] = q - p
    out[1] = skc.i64(q > p)
    out[2] = skc.i64(q == p)


def measure(p, q) -> list:
    out = np.full(3, -99, np.int64)
    distance[1, 1](p, q, out)
    return out.tolist()


a = np.arange(64, dtype=np.float32)
numpy_pairs = {   # p, q, q - p in elements
    "one array twice": (a, a, 0),
    "a and a[1:]": (a, a[1:], 1),
    "disjoint views": (a[8:], a[:4], -8),
    "views of views": (a[4:][2:], a[16:32], 10),
    "a strided view": (a[1:], a[5::2], 4),
    "a reversed view": (a, a[::-1], 63),   # (its pointer is its first element's, the array's last)
}


@pytest.mark.parametrize("name", numpy_pairs)
def test_views_of_one_numpy_array_lie_as_far_apart_as_on_the_host(name):
    p, q, elements = numpy_pairs[name]
    assert measure(p, q) == [elements, int(elements > 0), int(elements == 0)]


def test_unrelated_arrays_stay_apart():
    b = np.arange(64, dtype=np.float32)
    assert abs(measure(a, b)[0]) * 4 >= a.nbytes + (1 << 20)   # (past the unmapped gap after each allocation)


@skc.kernel(block=1)
def read_at(p: skc.Ptr[skc.f32], q: skc.Ptr[skc.f32], out: skc.Ptr[skc.f32], i: skc.i32):
    out[0] = p[i] + q[0]


def test_the_bytes_between_two_views_of_one_array_stay_unmapped():
    out = np.zeros(1, np.float32)
    read_at[1, 1](a[:4], a[8:], out, 3)
    assert out[0] == 3.0 + 8.0
    with pytest.raises(InterpreterError, match="out-of-bounds load"):
        read_at[1, 1](a[:4], a[8:], out, 5)


def test_views_of_one_torch_storage_lie_as_far_apart_as_on_the_host():
    torch = pytest.importorskip("torch")
    t = torch.arange(64, dtype=torch.float32)
    assert measure(t, t[3:]) == [3, 1, 0]
    assert measure(t[5:], t[:2]) == [-5, 0, 0]   # (their numpy arrays are no views of one another)
    assert measure(t.numpy(), t[2:]) == [2, 1, 0]
    assert measure(t, t.view(8, 8)[2:, 3]) == [19, 1, 0]   # (a strided view: its first element is t[19])
