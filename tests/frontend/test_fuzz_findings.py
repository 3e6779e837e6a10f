"""Findings of a search with generated malformed and unusual kernels: each is Python's meaning, or a clean skc
error at the user's line, where skc gave a wrong answer, a foreign exception or an abort."""
import functools

import numpy as np

import skc


def _doubled(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) * 2.0
    return wrapper


@_doubled
@skc.func
def _wrapped_identity(a):
    return a


@skc.kernel
def _calls_a_wrapped_func(x: skc.Ptr[skc.f32]):
    x[0] = _wrapped_identity(x[1])


def test_a_functools_wraps_wrapper_around_an_skc_func_runs():
    """functools.wraps copies the wrapped object's __dict__: an @skc.func kept its function there, so the wrapper
    passed for the @skc.func itself and the kernel inlined the function without the wrapper (1.0, not 2.0)."""
    x = np.array([0.0, 1.0], np.float32)
    _calls_a_wrapped_func[1, 1](x)
    assert x[0] == 2.0
