"""Stale kernels the sixty-fourth session's search found: what a kernel read at compile time changed after a launch
in a way its launches did not watch, so the next launch ran the code compiled for the old value. Each case failed
before (the kernel stored 1.0 where Python now gives 7.0)."""
import os
import sys

import numpy as np
import pytest

from test_cache_keys_reads import launched, load  # noqa: F401 (a fixture)

KERNELS = """import argparse
import enum
import functools
import os
import sys

import numpy as np
import skc

import rebound_cfg_a as cfg

ARGS = argparse.Namespace(scale=1.0)
G = 1.0


class Holder:
    backend = cfg


class Act(enum.Enum):
    LEAKY = 1


Act.LEAKY.slope = 1.0


def with_default(s=1.0):
    return s


def with_keyword(*, s=1.0):
    return s


def seven():
    return 7.0


def code():
    return 1.0


@skc.func
def scaled(x, s=1.0):
    return x * s


def counter():
    value = 1.0

    def read():
        return value

    def bump():
        nonlocal value
        value = 7.0
    return read, bump


read_cell, bump_cell = counter()


@functools.lru_cache(maxsize=None)
def cached():
    return G


@skc.kernel(block=1)
def other(x: skc.Ptr[skc.f32]):
    x[0] = 1.0


other.scale = 1.0

A = 1.0
B = 1.0
first = lambda: A   # noqa: E731 (two helpers of one qualified name, <lambda>)
second = lambda: B   # noqa: E731


@skc.kernel(block=1)
def k(x: skc.Ptr[skc.f32]):
    x[0] = READ
"""
# (what the kernel stores, the change that makes Python give 7.0)
CHANGES = {
    "argparse_namespace": ("ARGS.scale", lambda m: setattr(m.ARGS, "scale", 7.0)),
    "module_global_bound_to_another_module": ("cfg.X", lambda m: setattr(m, "cfg", sys.modules["rebound_cfg_b"])),
    "class_attribute_bound_to_another_module": ("Holder.backend.X",
                                                lambda m: setattr(m.Holder, "backend", sys.modules["rebound_cfg_b"])),
    "kernel_attribute_of_a_kernel_defined_again": ("other.scale", lambda m: setattr(m, "other", _seven_kernel())),
    "enum_members_attribute": ("Act.LEAKY.slope", lambda m: setattr(m.Act.LEAKY, "slope", 7.0)),
    "environ": ("float(os.environ['REBOUND_TEST_SCALE'])", lambda m: os.environ.__setitem__("REBOUND_TEST_SCALE", "7")),
    "getenv": ("float(os.getenv('REBOUND_TEST_SCALE'))", lambda m: os.environ.__setitem__("REBOUND_TEST_SCALE", "7")),
    "helpers_defaults": ("with_default()", lambda m: setattr(m.with_default, "__defaults__", (7.0,))),
    "helpers_keyword_defaults": ("with_keyword()", lambda m: setattr(m.with_keyword, "__kwdefaults__", {"s": 7.0})),
    "helpers_code_replaced": ("code()", lambda m: setattr(m.code, "__code__", m.seven.__code__)),   # (autoreload)
    "helpers_closure_cell": ("read_cell()", lambda m: m.bump_cell()),
    "lru_cache_cleared": ("cached()", lambda m: (setattr(m, "G", 7.0), m.cached.cache_clear())),
}


def _seven_kernel():
    import skc

    @skc.kernel(block=1)
    def other(x: skc.Ptr[skc.f32]):
        x[0] = 7.0
    other.scale = 7.0
    return other


@pytest.fixture
def modules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("REBOUND_TEST_SCALE", "1")
    for name, value in (("rebound_cfg_a", 1.0), ("rebound_cfg_b", 7.0)):
        (tmp_path / f"{name}.py").write_text(f"X = {value}\n")
        __import__(name)
    yield
    for name in ("rebound_cfg_a", "rebound_cfg_b"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("way", sorted(CHANGES))
def test_a_change_after_a_launch_gives_a_new_kernel(load, modules, way):
    read, change = CHANGES[way]
    module = load(f"rebound_{way}", KERNELS.replace("READ", read))
    assert launched(module.k) == 1.0
    assert launched(module.k) == 1.0 and module.k._recompiles == 0   # (nothing changed: no compile)
    change(module)
    assert launched(module.k) == 7.0
    assert launched(module.k) == 7.0


def test_a_cached_helper_called_by_plain_code_between_launches_is_no_change(load, modules):
    """The lru_cache's hits are not watched: plain code that finds the cached value changes nothing."""
    module = load("rebound_cache_hits", KERNELS.replace("READ", "cached()"))
    for _ in range(3):
        assert launched(module.k) == 1.0
        assert module.cached() == 1.0
    assert module.k._recompiles == 0


def test_an_unchanged_environment_keeps_the_native_call(load, modules):
    module = load("rebound_environ_native", KERNELS.replace("READ", "float(os.environ['REBOUND_TEST_SCALE'])"))
    assert launched(module.k) == 1.0
    assert module.k[1, 1]._fast is not None
    os.environ["REBOUND_TEST_SCALE"] = "1"   # (stored again, equal: the view takes it)
    assert launched(module.k) == 1.0 and module.k._recompiles == 0


def test_two_helpers_of_one_name_given_as_constexprs_are_both_watched(load, modules):
    """Two lambdas (one qualified name, `<lambda>`) run in one compile: the second one's globals went unwatched."""
    module = load("rebound_two_lambdas", KERNELS.replace("READ", "1.0") + """

@skc.kernel(block=1)
def both(x: skc.Ptr[skc.f32], f: skc.constexpr, g: skc.constexpr):
    x[0] = f() + 10.0 * g()
""")
    out = np.zeros(1, np.float32)
    module.both[1, 1](out, module.first, module.second)
    assert out[0] == 11.0
    module.B = 7.0
    module.both[1, 1](out, module.first, module.second)
    assert out[0] == 71.0


LIBRARY_OBJECTS = """import abc

import torch
import skc


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.n = 2.0

    def factor(self):
        return 2.0

    @property
    def doubled(self):
        return [self.n * 2.0]


class Backend(abc.ABC):
    def width(self):
        return 3.0


MODEL = Model()
BACKEND = Backend()
NESTED = torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)])


@skc.kernel(block=1)
def k(x: skc.Ptr[skc.f32]):
    x[0] = MODEL.factor() + MODEL.doubled[0] + BACKEND.width() + float(NESTED.is_nested)
"""


def test_methods_and_properties_of_library_based_objects_are_no_change_at_every_launch(load):
    """A bound method or a property's result is a new object at each read: watched by identity (the attribute views
    of the sixty-fourth session's first version), every launch compiled again. A nested tensor read at compile time
    (it has no sizes) compiles."""
    module = load("rebound_library_objects", LIBRARY_OBJECTS)
    for _ in range(4):
        assert launched(module.k) == 10.0
    assert module.k._recompiles == 0


def test_a_cached_helper_host_code_calls_with_other_arguments_is_no_change(load, modules):
    """Only a cache that shrank (cleared) is a change: host code that calls the helper with other arguments fills it
    (the first version watched its size and misses, and compiled again at each new call)."""
    module = load("rebound_cache_grows", KERNELS.replace("READ", "cached()").replace(
        "def cached():\n    return G", "def cached(n=0):\n    return G + n"))
    for step in range(3):
        assert launched(module.k) == 1.0
        module.cached(step + 1)
    assert module.k._recompiles == 0
